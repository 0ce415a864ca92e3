//! The SIGBUS guard: a peer that shrinks a shared object must not kill this process.
//!
//! When a file (POSIX shm, memfd, regular file) is truncated, the kernel takes the pages
//! past the new end out of every mapping of it; the next access there raises `SIGBUS`,
//! whose default action kills the process. Any process that can write the object can do
//! this, at any time. Like libwayland-server for its clients' buffers, this module installs
//! one process-wide `SIGBUS` handler (once, on the first guarded region) that, when the
//! faulting address lies in a registered mapping, maps private anonymous zero pages over the
//! rest of that mapping (`mmap` with `MAP_FIXED`), marks the mapping truncated and returns,
//! so the faulting access completes (reading zeros, or writing into memory no one else
//! sees). Callers check the mark ([`Watch::is_truncated`]) after touching the memory and
//! report [`crate::Error::Truncated`] instead of using what they read. Faults at any other
//! address go to the handler that was installed before, or to the default action.
//!
//! The handler is async-signal-safe: it reads a fixed table of atomics (each slot under a
//! sequence lock that registration, serialised by a mutex the handler never takes, bumps),
//! stores one atomic and calls `mmap` (a thin wrapper over the system call, as libwayland
//! uses); it neither allocates nor locks. Only `BUS_ADRERR` faults are treated as
//! truncation. A truncation to a size that is not a page multiple leaves the partial last
//! page mapped (its tail reads zero) and raises no fault there: `Region::poll_truncation`
//! (an `fstat`) catches that case, and a sealed memfd rules it out. The table has [`SLOTS`] entries; a region that finds it full is
//! simply not guarded (and says so through [`Watch::is_guarded`]).
//!
//! A sealed memfd (`F_SEAL_SHRINK`, [`crate::Options::seal`]) is the other answer: the
//! kernel then refuses to shrink the object at all.

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Once;

/// Guarded mappings at most, per process.
pub const SLOTS: usize = 4096;

/// One registered mapping: `start == 0` marks a free slot. `gen` is a sequence lock:
/// odd while registration code (serialised by `REGISTRY`) rewrites the slot, so the handler
/// never pairs one registration's `start` with another's `len`.
struct Slot {
    gen: AtomicU32,
    start: AtomicUsize,
    len: AtomicUsize,
    truncated: AtomicU32,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot {
    gen: AtomicU32::new(0),
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    truncated: AtomicU32::new(0),
};

/// Serialises registration and unregistration (never taken by the handler).
static REGISTRY: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Slot {
    /// Rewrites the slot under the sequence lock (the caller holds `REGISTRY`).
    fn write(&self, start: usize, len: usize) {
        self.gen.fetch_add(1, Ordering::AcqRel); // odd: being rewritten
        core::sync::atomic::fence(Ordering::Release);
        self.start.store(0, Ordering::Relaxed);
        self.len.store(len, Ordering::Relaxed);
        if start != 0 {
            self.truncated.store(0, Ordering::Relaxed);
        }
        self.start.store(start, Ordering::Relaxed);
        self.gen.fetch_add(1, Ordering::Release); // even: consistent
    }

    /// `(start, len)` if the slot holds a registration read consistently.
    fn read(&self) -> Option<(usize, usize)> {
        let g1 = self.gen.load(Ordering::Acquire);
        if !g1.is_multiple_of(2) {
            return None;
        }
        let start = self.start.load(Ordering::Relaxed);
        let len = self.len.load(Ordering::Relaxed);
        core::sync::atomic::fence(Ordering::Acquire);
        (start != 0 && self.gen.load(Ordering::Relaxed) == g1).then_some((start, len))
    }
}

static TABLE: [Slot; SLOTS] = [FREE; SLOTS];
/// The flag of regions that are not guarded: never set.
static NEVER: AtomicU32 = AtomicU32::new(0);
static INSTALL: Once = Once::new();
/// The page size, read once before the handler is installed.
static PAGE: AtomicUsize = AtomicUsize::new(4096);
/// The `SIGBUS` action that was in place before ours, written once before ours is
/// installed and only read afterwards.
static PREVIOUS: std::sync::OnceLock<libc::sigaction> = std::sync::OnceLock::new();

/// A registration of one mapping; unregisters on drop, which must happen before the
/// mapping is unmapped.
#[derive(Debug)]
pub(crate) struct Guard {
    slot: usize,
}

/// What a region's users check after touching its memory: whether the guard found the
/// object truncated under the mapping. `Copy`, one pointer: cheap to keep in a hot loop.
///
/// A watch answers for its region only while that region is alive: it points at a slot
/// of a process-wide table that a later region may reuse once this one is dropped. Keep
/// it beside the region (the rings keep both in one struct); a stale watch is still safe
/// to read, but its answer is about whichever region holds the slot now.
#[derive(Debug, Clone, Copy)]
pub struct Watch {
    flag: &'static AtomicU32,
    guarded: bool,
}

impl Watch {
    /// `true` once an access found the object shorter than the mapping (the rest of the
    /// mapping is now private zero pages). Check it after reading: what was read since the
    /// truncation is zeros, not data.
    #[inline(always)]
    pub fn is_truncated(self) -> bool {
        // The flag is set (before the zero pages are mapped) by the signal handler, on
        // whichever thread faulted first: order every earlier read of the mapping before
        // this load, so a zero read from those pages is always seen with the flag.
        core::sync::atomic::fence(Ordering::Acquire);
        self.flag.load(Ordering::Relaxed) != 0
    }

    /// Whether the region is guarded at all (file-backed shared mappings are, when a slot
    /// was free); an unguarded one is never reported truncated.
    pub fn is_guarded(self) -> bool {
        self.guarded
    }

    /// The watch of an unguarded region.
    pub(crate) fn never() -> Watch {
        Watch {
            flag: &NEVER,
            guarded: false,
        }
    }
}

impl Guard {
    /// Registers `start .. start + len` (page aligned), installing the handler on first use.
    /// `None` if the table is full or the handler could not be installed.
    pub(crate) fn register(start: usize, len: usize) -> Option<Guard> {
        if !install() || start == 0 || len == 0 {
            return None;
        }
        let _lock = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        let i = TABLE
            .iter()
            .position(|s| s.start.load(Ordering::Relaxed) == 0)?;
        TABLE[i].write(start, len);
        Some(Guard { slot: i })
    }

    /// Marks the mapping truncated (the object was found shorter by `fstat`, before any
    /// access faulted).
    pub(crate) fn mark(&self) {
        TABLE[self.slot].truncated.store(1, Ordering::SeqCst);
    }

    pub(crate) fn watch(&self) -> Watch {
        Watch {
            flag: &TABLE[self.slot].truncated,
            guarded: true,
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // The flag stays readable by watches still held (they live no longer than the
        // region in practice); the slot is free for the next registration.
        let _lock = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        TABLE[self.slot].write(0, 0);
    }
}

/// Installs the handler once; `true` if it is in place.
fn install() -> bool {
    static OK: AtomicU32 = AtomicU32::new(0);
    INSTALL.call_once(|| {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if page > 0 {
            PAGE.store(page as usize, Ordering::Relaxed);
        }
        // SAFETY: a zeroed sigaction is a valid value to fill in; sigaction reads `new`
        // and writes `old`, both live locals.
        unsafe {
            let mut old: libc::sigaction = core::mem::zeroed();
            let mut new: libc::sigaction = core::mem::zeroed();
            new.sa_sigaction = on_sigbus as *const () as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
            libc::sigemptyset(&mut new.sa_mask);
            // Read the previous action first and keep it before ours can run.
            if libc::sigaction(libc::SIGBUS, core::ptr::null(), &mut old) != 0 {
                return;
            }
            let _ = PREVIOUS.set(old);
            if libc::sigaction(libc::SIGBUS, &new, core::ptr::null_mut()) == 0 {
                OK.store(1, Ordering::Release);
            }
        }
    });
    OK.load(Ordering::Acquire) != 0
}

/// The handler: zero pages over a registered mapping's missing range, or the previous
/// action for any other fault.
extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for a SA_SIGINFO handler.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    // Only a fault on a page past the end of the object (BUS_ADRERR) is a truncation; an
    // alignment trap or a hardware error is not cured by zero pages, and a SIGBUS sent by
    // a process (si_code <= 0) carries no address.
    if code != libc::BUS_ADRERR {
        chain(sig, info, ctx);
        return;
    }
    let page = PAGE.load(Ordering::Relaxed);
    for s in TABLE.iter() {
        let Some((start, len)) = s.read() else {
            continue;
        };
        if addr < start || addr - start >= len {
            continue;
        }
        // The mark first: another thread that reads the zero pages without faulting sees
        // it (with the Acquire fence in `Watch::is_truncated`) once the pages are there.
        s.truncated.store(1, Ordering::SeqCst);
        let from = addr & !(page - 1);
        let end = (start + len).div_ceil(page) * page;
        // SAFETY: from .. end lies inside a mapping this process registered and has not
        // unmapped (a region unregisters before it unmaps); replacing its pages with private
        // zero pages changes only what this process sees there.
        let p = unsafe {
            libc::mmap(
                from as *mut libc::c_void,
                end - from,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            return;
        }
        break;
    }
    chain(sig, info, ctx);
}

/// Hands a fault that is not ours to the previous action; the default one is restored, so
/// that returning re-runs the access and the kernel delivers `SIGBUS` with its default
/// action (the process dies, as it would have without us).
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    match PREVIOUS.get() {
        Some(prev) if prev.sa_flags & libc::SA_SIGINFO != 0 && prev.sa_sigaction > 1 => {
            // SAFETY: a SA_SIGINFO action's sa_sigaction is a handler of this signature.
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { core::mem::transmute(prev.sa_sigaction) };
            f(sig, info, ctx);
        }
        Some(prev) if prev.sa_sigaction > 1 => {
            // SAFETY: a classic action's sa_handler is a handler taking the signal number.
            let f: extern "C" fn(libc::c_int) = unsafe { core::mem::transmute(prev.sa_sigaction) };
            f(sig);
        }
        _ => {
            // SIG_DFL (0) or SIG_IGN (1): a memory fault cannot be ignored, so restore the
            // default and let the re-run access raise it again.
            // SAFETY: sigaction with a zeroed (SIG_DFL) action is async-signal-safe.
            unsafe {
                let mut dfl: libc::sigaction = core::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(libc::SIGBUS, &dfl, core::ptr::null_mut());
            }
        }
    }
    // A signal sent by a process has no faulting access to re-run: if the action is now
    // the default (Rust's own handler, like ours, resets it and returns), raise it again so
    // the default action happens, as it would have without us.
    // SAFETY: `info` is the kernel's siginfo; sigaction (query) and raise are
    // async-signal-safe.
    unsafe {
        if (*info).si_code <= 0 {
            let mut cur: libc::sigaction = core::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, core::ptr::null(), &mut cur) == 0
                && cur.sa_sigaction == libc::SIG_DFL
            {
                libc::raise(libc::SIGBUS);
            }
        }
    }
}
