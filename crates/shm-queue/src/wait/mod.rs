//! Waiting for data or space across processes: spin, then yield, then sleep on a futex, always
//! with a deadline, and no system call on the publishing side when nobody sleeps.
//!
//! # The handshake
//!
//! Each direction of a ring has four words in header line 1: a futex word (`event`), the
//! number of sleeping waiters (`waiters`), the number of handles whose strategy may sleep
//! (`sleepers`), and the ring's `closed` word. A waiter that runs out of spins and yields:
//!
//! 1. reads `event`,
//! 2. announces itself: `waiters += 1`, then `fence(SeqCst)`,
//! 3. re-checks its condition (data ready, space free, ring closed) and leaves if it holds,
//! 4. sleeps with `FUTEX_WAIT(event, value read in 1)`, which returns at once if `event`
//!    changed since step 1,
//! 5. on waking: `waiters -= 1`, and goes back to checking.
//!
//! After publishing (data for the consumer, space for the producer) the other side runs
//! `notify`: if any handle of the waiting side uses a sleeping strategy (`sleepers != 0`),
//! `fence(SeqCst)`, then if `waiters != 0` it bumps `event` and calls `FUTEX_WAKE`. The two
//! `SeqCst` fences order "announce, then re-check" against "publish, then check for
//! waiters": either the waiter's re-check sees the publication, or the publisher sees the
//! announced waiter and wakes it (and the bump of `event` makes a wait that had not started
//! yet return at once). So no wake-up is lost, and the publisher never makes a system call
//! when nobody sleeps.
//!
//! When no handle of the other side uses [`WaitStrategy::Blocking`] the publisher pays only
//! one load of a read-mostly word: a handle counts itself in `sleepers` when it is given a
//! sleeping strategy, and leaves on drop or when it switches to one that does not sleep. (A
//! publication concurrent with that switch may be noticed only at the end of the first sleep
//! slice; the loom models set strategies before the other side starts.) A producer holding
//! a readiness descriptor runs the same handshake on the `armed` word (the consumer's
//! `arm_readiness` is the announce-then-re-check), with the fence before it reads `armed`,
//! because a readiness wait has no slice to recover a missed signal.
//!
//! # The fence is asymmetric where the kernel allows
//!
//! A `fence(SeqCst)` on every publication halved the throughput of a ring whose consumer
//! may sleep, although it almost never does. Where `membarrier(2)` offers
//! `MEMBARRIER_CMD_GLOBAL_EXPEDITED` (Linux 4.16 and later, unless a seccomp filter forbids
//! it), a publishing process registers once and replaces its fence with a compiler fence,
//! and the waiter, which is about to sleep anyway, adds a `membarrier` call after its own
//! fence: the kernel makes every running thread of every registered process execute a full
//! barrier, which is what the publisher's fence would have done at that point (a thread not
//! running has passed one in its context switch). The pair orders exactly as the two fences
//! did. The publisher then pays no fence at all, and the waiter about 0.3 µs per sleep.
//! A publisher whose process cannot register uses real fences, as above. If the two
//! processes differ (the publisher registered, the waiter cannot issue the `membarrier`),
//! a publication racing a sleep can go unnoticed until the sleep slice ends: one slice of
//! latency per such race, never a hang. The readiness path, which has no slice, never
//! relies on the pair: a producer holding a descriptor always fences. Under loom the model
//! checks the symmetric protocol, which is the one the asymmetric pair stands in for; the
//! pair itself (a compiler fence and a system call) is outside what loom can model.
//!
//! Sleeps are sliced (at most [`SLEEP_SLICE`] each) so that a waiter re-checks its deadline,
//! the `closed` word and its condition at least that often, whatever a peer does or fails to
//! do: a peer that dies without waking us, a hostile peer that rewrites the words, or a
//! strategy switched on at the very moment of a publication costs at most one slice of
//! latency, never a hang.
//!
//! The futex words are shared between processes, so the calls use plain `FUTEX_WAIT` and
//! `FUTEX_WAKE`, never `FUTEX_PRIVATE_FLAG`. Under `cfg(loom)` the futex is replaced by a
//! stand-in that sleeps until `event` changes, with no time-out, so that a lost wake-up shows
//! up in the model as a deadlock.

#[cfg(not(loom))]
mod announce;
pub(crate) mod blocking;
mod notify;

#[cfg(not(loom))]
pub use announce::{ring_bell, wait_any, AnnouncedWait, MAX_WAIT_ANY};

use std::time::{Duration, Instant};

use crate::error::{Error, TryError};
use crate::sync::{fence, AtomicU32, Ordering};

/// Longest single sleep: a waiter re-checks everything at least this often.
pub const SLEEP_SLICE: Duration = Duration::from_millis(20);

/// How a handle waits when the ring is empty (consumer) or full (producer).
///
/// Set per handle with `set_wait_strategy`; the non-blocking `try_*` methods never wait. The
/// default is [`WaitStrategy::spin_then_yield`], which never sleeps, so a handle that does not
/// ask for [`WaitStrategy::Blocking`] costs the other side nothing on its hot path.
///
/// # Example
///
/// ```
/// use shm_queue::wait::WaitStrategy;
///
/// // Lowest latency, burns a core while waiting:
/// let busy = WaitStrategy::BusySpin;
/// // A sleeping consumer that wakes within microseconds and uses no CPU while idle:
/// let blocking = WaitStrategy::blocking();
/// assert!(blocking.may_sleep() && !busy.may_sleep());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitStrategy {
    /// Spin with a CPU pause hint until the condition holds or the deadline passes.
    BusySpin,
    /// Spin `spins` times, then yield the CPU (`sched_yield`) between checks.
    SpinThenYield {
        /// Checks before the first yield.
        spins: u32,
    },
    /// Spin `spins` times, yield `yields` times, then sleep on a futex until woken.
    Blocking {
        /// Checks before the first yield.
        spins: u32,
        /// Yields before the first sleep.
        yields: u32,
    },
}

impl WaitStrategy {
    /// [`WaitStrategy::Blocking`] with defaults that cost about 10 µs of spinning and
    /// yielding before the first sleep.
    pub const fn blocking() -> Self {
        WaitStrategy::Blocking {
            spins: 2000,
            yields: 20,
        }
    }

    /// [`WaitStrategy::SpinThenYield`] with a default spin count.
    pub const fn spin_then_yield() -> Self {
        WaitStrategy::SpinThenYield { spins: 2000 }
    }

    /// `true` if a handle with this strategy may sleep, so the other side must wake it.
    pub const fn may_sleep(self) -> bool {
        matches!(self, WaitStrategy::Blocking { .. })
    }
}

impl Default for WaitStrategy {
    /// [`WaitStrategy::spin_then_yield`]: never sleeps, so the other side never needs to
    /// wake this handle (choose [`WaitStrategy::blocking`] to stop burning CPU while idle).
    fn default() -> Self {
        Self::spin_then_yield()
    }
}

/// A non-blocking call's result as a wait condition: `Full` and `Empty` mean "not yet"
/// (`Ok(None)`), anything else ends the wait.
#[inline]
pub(crate) fn pending<R>(r: Result<R, TryError>) -> Result<Option<R>, Error> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_retryable() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether a handle is counted among its side's sleepers, and how: `Weak` if its process
/// cannot issue the heavy half of the asymmetric fence, so publishers must not rely on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Sleeper {
    /// Not counted: its strategy never sleeps.
    #[default]
    No,
    /// Counted in `sleepers`.
    Strong,
    /// Counted in `sleepers` and in `weak`.
    Weak,
}

impl Sleeper {
    /// The value an MPMC owner entry records: bit 0 counted in `sleepers`, bit 1 in `weak`.
    pub(crate) fn code(self) -> u64 {
        match self {
            Sleeper::No => 0,
            Sleeper::Strong => 1,
            Sleeper::Weak => 3,
        }
    }
}

/// The words of one direction of a ring (data for the consumer, or space for the producer).
#[derive(Clone, Copy)]
pub(crate) struct Signal<'a> {
    /// The futex word; bumped by every wake.
    pub event: &'a AtomicU32,
    /// Waiters currently asleep (or about to be).
    pub waiters: &'a AtomicU32,
    /// Handles of the waiting side whose strategy may sleep.
    pub sleepers: &'a AtomicU32,
    /// Of those, the ones whose process cannot issue the heavy barrier.
    pub weak: &'a AtomicU32,
    /// Nonzero once the ring is closed.
    pub closed: &'a AtomicU32,
    /// Non-zero while a readiness file descriptor is armed (data direction only).
    pub armed: Option<&'a AtomicU32>,
}

impl Signal<'_> {
    /// The publisher's notification (see `Header::notify_data`) once someone may need
    /// waking: the publisher's fence (unless `light`), a wake if anyone sleeps, and the
    /// consumption of an arming.
    #[cold]
    pub(crate) fn wake(&self, light: bool, armed: bool) -> bool {
        if !light {
            fence(Ordering::SeqCst);
        }
        if self.waiters.load(Ordering::Relaxed) != 0 {
            self.wake_all();
        }
        armed && self.armed.is_some_and(|a| a.swap(0, Ordering::AcqRel) != 0)
    }

    /// Arms the readiness descriptor (the handshake of `sleep`, with the descriptor in place
    /// of the futex): marks it armed, `fence(SeqCst)`, then the caller re-checks its
    /// condition; if the condition already holds it must not wait for the descriptor.
    pub(crate) fn arm(&self) {
        if let Some(a) = self.armed {
            a.store(1, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            barrier::heavy();
        }
    }

    /// Bumps the event word and wakes every sleeper.
    pub(crate) fn wake_all(&self) {
        self.event.fetch_add(1, Ordering::Release);
        futex::wake(self.event);
    }

    /// Counts a handle in `sleepers` (once) or takes it out, as its new strategy says.
    /// `registered` is the handle's own record of how it is counted. A handle whose process
    /// cannot issue the heavy barrier also counts itself in `weak`, which tells publishers
    /// to keep their real fence: the light one is only sound when the sleeper can issue the
    /// heavy one.
    pub(crate) fn set_strategy(&self, registered: &mut Sleeper, strategy: WaitStrategy) {
        if strategy.may_sleep() && *registered == Sleeper::No {
            // Weak first, so no publisher sees the sleeper without its weakness.
            *registered = if barrier::heavy_available() {
                Sleeper::Strong
            } else {
                self.weak.fetch_add(1, Ordering::SeqCst);
                Sleeper::Weak
            };
            self.sleepers.fetch_add(1, Ordering::SeqCst);
        } else if !strategy.may_sleep() {
            self.unregister(registered);
        }
    }

    /// Forgets every waiter and sleeper of this direction: for a side whose only handle
    /// was found dead (its claim force-released), since a handle killed while registered, or
    /// inside its futex wait, never takes its counts back, and every later publish would
    /// otherwise pay the wake path (a fence and a `FUTEX_WAKE` system call) for nobody.
    /// Also disarms the readiness descriptor the dead handle may have armed. Only sound
    /// while no live handle of this side exists (the caller holds the side's claim
    /// recovery, as `force_release_*` requires).
    pub(crate) fn forget_dead_waiters(&self) {
        self.waiters.store(0, Ordering::SeqCst);
        self.sleepers.store(0, Ordering::SeqCst);
        self.weak.store(0, Ordering::SeqCst);
        if let Some(a) = self.armed {
            a.store(0, Ordering::SeqCst);
        }
    }

    /// Takes back the counts of a dead handle that recorded `code` ([`Sleeper::code`]) in its
    /// owner entry. Once no sleeper is left, no live handle can be inside a futex wait (only
    /// sleepers sleep), so a waiter count the dead one left behind is cleared too.
    pub(crate) fn forget_sleeper(&self, code: u64) {
        if code & 1 != 0 {
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
        if code & 2 != 0 {
            self.weak.fetch_sub(1, Ordering::SeqCst);
        }
        if self.sleepers.load(Ordering::SeqCst) == 0 {
            self.waiters.store(0, Ordering::SeqCst);
        }
    }

    /// Takes a handle out of `sleepers` (and `weak`) if it is counted (on drop).
    pub(crate) fn unregister(&self, registered: &mut Sleeper) {
        match core::mem::take(registered) {
            Sleeper::No => {}
            Sleeper::Strong => {
                self.sleepers.fetch_sub(1, Ordering::SeqCst);
            }
            Sleeper::Weak => {
                self.sleepers.fetch_sub(1, Ordering::SeqCst);
                self.weak.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// `true` once the ring has been closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) != 0
    }

    /// Waits, as `strategy` says, until `check` returns `Some`, the ring is closed (then
    /// [`Error::Closed`], but only after `check` found nothing), or `deadline` passes (then
    /// [`Error::Timeout`]). `check` is called at least once; its errors end the wait.
    pub(crate) fn wait<R>(
        &self,
        strategy: WaitStrategy,
        deadline: Option<Instant>,
        what: &'static str,
        mut check: impl FnMut() -> Result<Option<R>, Error>,
    ) -> Result<R, Error> {
        let start = Instant::now();
        let (spins, yields) = match strategy {
            WaitStrategy::BusySpin => (u32::MAX, 0),
            WaitStrategy::SpinThenYield { spins } => (spins, u32::MAX),
            WaitStrategy::Blocking { spins, yields } => (spins, yields),
        };
        let mut round: u64 = 0;
        loop {
            if let Some(r) = check()? {
                return Ok(r);
            }
            if self.is_closed() {
                // The peer may have published and closed between `check` and this load:
                // look once more, so `Closed` comes only after everything sent before it.
                if let Some(r) = check()? {
                    return Ok(r);
                }
                return Err(Error::Closed { what });
            }
            // Reading the clock costs ~20 ns: while spinning, do it every 64 rounds only.
            let now = if round < u64::from(spins) && !round.is_multiple_of(64) {
                None
            } else {
                Some(Instant::now())
            };
            if let (Some(now), Some(d)) = (now, deadline) {
                if now >= d {
                    return Err(Error::Timeout {
                        what,
                        waited: now.duration_since(start),
                    });
                }
            }
            if round < u64::from(spins) {
                spin_hint();
            } else if round < u64::from(spins) + u64::from(yields) {
                yield_now();
            } else {
                let slice = match deadline {
                    Some(d) => d.saturating_duration_since(Instant::now()).min(SLEEP_SLICE),
                    None => SLEEP_SLICE,
                };
                if let Some(r) = self.sleep(slice, &mut check)? {
                    return Ok(r);
                }
            }
            round = round.saturating_add(1);
        }
    }

    /// One sleep of at most `slice`, with the announce-then-re-check handshake.
    fn sleep<R>(
        &self,
        slice: Duration,
        check: &mut impl FnMut() -> Result<Option<R>, Error>,
    ) -> Result<Option<R>, Error> {
        let seen = self.announce();
        let found = match check() {
            Ok(None) if !self.is_closed() => {
                futex::wait(self.event, seen, slice);
                Ok(None)
            }
            other => other,
        };
        self.retract();
        found
    }

    /// The first half of the sleep handshake: counts a waiter and fences, so that a
    /// publisher after the fence sees the waiter and wakes it, and a publisher before it is
    /// seen by the caller's re-check. Returns the event word's value to sleep on. The caller
    /// re-checks its condition next, sleeps only while the word still holds that value, and
    /// then calls [`Signal::retract`].
    pub(crate) fn announce(&self) -> u32 {
        let seen = self.event.load(Ordering::Acquire);
        self.waiters.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        barrier::heavy();
        seen
    }

    /// Takes back the waiter that [`Signal::announce`] counted.
    pub(crate) fn retract(&self) {
        self.waiters.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Creates a readiness file descriptor (an `eventfd`, non-blocking, close-on-exec) for a
/// consumer that waits in `epoll`, `poll` or an async runtime instead of a blocking call.
///
/// The protocol: give a duplicate of the descriptor to the producer process (it is
/// inherited across `fork()`, or send it with `shm_region::send_fd`) and install it with the
/// producer's `set_readiness_fd`. The consumer calls its `arm_readiness()`: if that returns
/// `true`, data is already there; otherwise it waits until the descriptor is readable,
/// reads it with [`clear_readiness`], and drains the ring with the `try_*` calls before
/// arming again. The producer writes to the descriptor only on the first publication after
/// an arming, so an idle consumer costs it nothing and a busy stream one write per wake.
///
/// # Errors
///
/// [`Error::ReadinessFd`] with the errno if `eventfd` fails.
#[cfg(not(loom))]
pub fn readiness_fd() -> Result<std::os::fd::OwnedFd, Error> {
    use std::os::fd::FromRawFd;
    // SAFETY: eventfd takes plain integers; on success it returns a new descriptor that
    // nobody else owns.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(Error::ReadinessFd {
            op: "eventfd",
            errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        });
    }
    // SAFETY: fd is a fresh descriptor returned to us alone.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Reads (and so resets) a readiness descriptor after it polled readable; returns how many
/// signals it had counted (0 if it was not readable).
#[cfg(not(loom))]
pub fn clear_readiness(fd: std::os::fd::BorrowedFd<'_>) -> u64 {
    use std::os::fd::AsRawFd;
    let mut v = 0u64;
    // SAFETY: reads 8 bytes into a local u64; an eventfd read is exactly that.
    let n = unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    if n == 8 {
        v
    } else {
        0
    }
}

/// A producer handle's readiness descriptor (shared by its clones) and how many times this
/// handle has signalled it.
#[derive(Debug, Default)]
pub(crate) struct ReadinessFd {
    fd: Option<std::sync::Arc<std::os::fd::OwnedFd>>,
    signals: u64,
}

/// A clone shares the descriptor and starts its own count at zero.
impl Clone for ReadinessFd {
    fn clone(&self) -> Self {
        ReadinessFd {
            fd: self.fd.clone(),
            signals: 0,
        }
    }
}

impl ReadinessFd {
    /// Installs or removes the descriptor.
    pub(crate) fn set(&mut self, fd: Option<std::os::fd::OwnedFd>) {
        self.fd = fd.map(std::sync::Arc::new);
    }

    /// `true` while a descriptor is installed.
    #[inline]
    pub(crate) fn is_some(&self) -> bool {
        self.fd.is_some()
    }

    /// Times this handle signalled the descriptor.
    pub(crate) fn signals(&self) -> u64 {
        self.signals
    }

    /// Signals the descriptor, if any, when the publisher's notification says it consumed an
    /// arming.
    #[inline]
    pub(crate) fn fire(&mut self, consumed: bool) {
        if consumed {
            if let Some(fd) = &self.fd {
                self.signals += 1;
                #[cfg(not(loom))]
                signal_readiness(fd);
                #[cfg(loom)]
                let _ = fd;
            }
        }
    }
}

/// Adds one to a readiness descriptor (the producer's signal); errors are ignored: a full
/// counter (`EAGAIN`) is already readable.
#[cfg(not(loom))]
fn signal_readiness(fd: &std::os::fd::OwnedFd) {
    use std::os::fd::AsRawFd;
    let one = 1u64;
    // SAFETY: writes 8 bytes from a local u64 to a descriptor we own.
    let _ = unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

/// A busy-wait hint to the CPU (under loom: a yield, so the model can switch threads).
fn spin_hint() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Gives the CPU to another thread (loom's yield under loom).
fn yield_now() {
    #[cfg(not(loom))]
    std::thread::yield_now();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Test hook: from now on this process behaves as one that cannot issue the heavy half of
/// the asymmetric fence (as under a seccomp filter that forbids `membarrier`): its sleepers
/// count themselves as weak, and its waits skip the heavy barrier.
#[cfg(all(feature = "test-hooks", not(loom)))]
pub fn force_no_heavy_barrier() {
    barrier::force_unavailable();
}

/// The publisher's half of the handshake fence, right after a publication: returns `true`
/// if it was the free, asymmetric one (see `barrier`). Otherwise a real fence is still owed
/// before looking for sleepers, paid later in [`Signal::wake`] and only when someone may
/// need waking.
///
/// A producer holding a readiness descriptor (`has_fd`) always pays a real fence here,
/// before it reads the armed word: a readiness wait has no time slice to recover a missed
/// signal, and the asymmetric pair is only sound if the *consumer's* process can issue the
/// membarrier, which this process cannot know (a different seccomp profile, or a failing
/// call). The fence costs little next to the descriptor write it guards.
#[inline]
pub(crate) fn publish_fence(has_fd: bool) -> bool {
    let light = barrier::light();
    if has_fd {
        fence(Ordering::SeqCst);
    }
    light
}

/// The inline fast form of [`publish_fence`] for a publisher without a descriptor: `true`
/// (after a compiler fence) only if this process is already registered for the asymmetric
/// fence; `false` means "take the slow path", which registers if need be.
#[inline]
pub(crate) fn light_fence() -> bool {
    barrier::registered()
}

/// Asymmetric fences with `membarrier(2)` (see "The fence is asymmetric" above).
#[cfg(not(loom))]
mod barrier {
    use core::sync::atomic::{compiler_fence, AtomicU8, Ordering};

    const MEMBARRIER_CMD_QUERY: libc::c_int = 0;
    const MEMBARRIER_CMD_GLOBAL_EXPEDITED: libc::c_int = 1 << 1;
    const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_int = 1 << 2;

    const UNKNOWN: u8 = 0;
    const YES: u8 = 1;
    const NO: u8 = 2;

    /// Whether the kernel offers (and seccomp allows) the expedited global barrier.
    static SUPPORTED: AtomicU8 = AtomicU8::new(UNKNOWN);
    /// Whether this process is registered for it. A forked child keeps the answer: the
    /// kernel keeps the registration across `fork()` (it lives in the memory descriptor,
    /// which the child copies, and is cleared only by `exec`), which a test checks.
    static REGISTERED: AtomicU8 = AtomicU8::new(UNKNOWN);

    fn membarrier(cmd: libc::c_int) -> libc::c_long {
        // SAFETY: membarrier takes three integers and touches no memory of ours.
        unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                cmd,
                0 as libc::c_uint,
                0 as libc::c_int,
            )
        }
    }

    pub(super) fn supported() -> bool {
        match SUPPORTED.load(Ordering::Relaxed) {
            YES => true,
            NO => false,
            _ => {
                let mask = membarrier(MEMBARRIER_CMD_QUERY);
                let want =
                    MEMBARRIER_CMD_GLOBAL_EXPEDITED | MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED;
                let yes = mask >= 0 && (mask as libc::c_int) & want == want;
                SUPPORTED.store(if yes { YES } else { NO }, Ordering::Relaxed);
                yes
            }
        }
    }

    #[cold]
    fn register() -> bool {
        let yes = supported() && membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0;
        if yes {
            // Once per process: orders the publication that led here before every later
            // look at the waiting side, without relying on what the registration call
            // does inside the kernel.
            core::sync::atomic::fence(Ordering::SeqCst);
        }
        REGISTERED.store(if yes { YES } else { NO }, Ordering::Relaxed);
        yes
    }

    /// Whether this process can issue the heavy half (the waiter's barrier).
    pub(super) fn heavy_available() -> bool {
        supported()
    }

    /// Test hook: makes this process behave as one that cannot issue the heavy barrier.
    #[cfg(feature = "test-hooks")]
    pub(super) fn force_unavailable() {
        SUPPORTED.store(NO, Ordering::Relaxed);
    }

    /// `true` (after a compiler fence) if this process is registered; never registers.
    #[inline]
    pub(super) fn registered() -> bool {
        let yes = REGISTERED.load(Ordering::Relaxed) == YES;
        if yes {
            compiler_fence(Ordering::SeqCst);
        }
        yes
    }

    /// The publisher's half: `true` if this process is registered, and then a compiler fence
    /// stands in for `fence(SeqCst)`; `false` if the caller must use real fences.
    #[inline]
    pub(super) fn light() -> bool {
        let yes = match REGISTERED.load(Ordering::Relaxed) {
            YES => true,
            NO => false,
            _ => register(),
        };
        if yes {
            compiler_fence(Ordering::SeqCst);
        }
        yes
    }

    /// The waiter's half, after its own `fence(SeqCst)`: a barrier on every running thread
    /// of every registered process. If this process cannot issue it (no kernel support, a
    /// seccomp filter, or the call fails) while the publisher's process is registered, a
    /// publication racing this sleep can go unnoticed until the sleep slice ends: at most
    /// one slice of latency per such race, never a hang. (The readiness path does not
    /// depend on this: its publisher always fences, see `publish_fence`.)
    ///
    /// The call interrupts every CPU currently running a registered process, ours or not,
    /// once per sleep; a peer that keeps bumping the event word to cut our sleeps short
    /// can make that frequent, at the cost of burning its own CPU.
    pub(super) fn heavy() {
        if supported() && membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0 {
            // Failed at run time (the kernel could not allocate its CPU mask): treat the
            // kernel as lacking it from now on; our own publishers keep what they have.
            SUPPORTED.store(NO, Ordering::Relaxed);
        }
    }
}

/// Under loom both halves are plain `fence(SeqCst)`s, the protocol the asymmetric pair
/// implements.
#[cfg(loom)]
mod barrier {
    pub(super) fn light() -> bool {
        false
    }

    pub(super) fn heavy_available() -> bool {
        true
    }

    pub(super) fn registered() -> bool {
        false
    }

    pub(super) fn heavy() {}
}

/// The futex calls, and their loom stand-in.
#[cfg(not(loom))]
mod futex {
    use std::time::Duration;

    use crate::sync::AtomicU32;

    /// `FUTEX_WAIT` on a word shared between processes: sleeps while `*word == expected`, for
    /// at most `timeout`. Returns on a wake, a time-out, a signal, or at once if the word
    /// already differs; the caller re-checks its condition in every case.
    pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Duration) {
        if timeout.is_zero() {
            return;
        }
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: `word` is a live, aligned 32-bit atomic (in shared memory or ours) for the
        // duration of the call; FUTEX_WAIT only reads it; `ts` outlives the call. The result
        // (0, EAGAIN, ETIMEDOUT, EINTR) needs no handling: the caller re-checks.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT,
                expected,
                &ts as *const libc::timespec,
                std::ptr::null::<u32>(),
                0u32,
            );
        }
    }

    /// The kernel's `struct futex_waitv`.
    #[repr(C)]
    struct Waitv {
        val: u64,
        uaddr: u64,
        flags: u32,
        reserved: u32,
    }

    /// `FUTEX2_SIZE_U32`: the words are 32-bit (and shared: no `FUTEX2_PRIVATE`).
    const FUTEX2_SIZE_U32: u32 = 0x02;

    /// See [`super::wait_any`].
    pub(super) fn wait_any(
        waits: &[&super::AnnouncedWait],
        bell: &AtomicU32,
        bell_seen: u32,
        deadline: Option<std::time::Instant>,
    ) -> Result<(), crate::error::Error> {
        let fail = |errno| crate::error::Error::ReadinessFd {
            op: "futex_waitv",
            errno,
        };
        if waits.len() > super::MAX_WAIT_ANY {
            return Err(fail(libc::E2BIG));
        }
        let mut v: Vec<Waitv> = Vec::with_capacity(waits.len() + 1);
        v.push(Waitv {
            val: u64::from(bell_seen),
            uaddr: bell.as_ptr() as u64,
            flags: FUTEX2_SIZE_U32,
            reserved: 0,
        });
        for w in waits {
            v.push(Waitv {
                val: u64::from(w.seen),
                uaddr: w.event().as_ptr() as u64,
                flags: FUTEX2_SIZE_U32,
                reserved: 0,
            });
        }
        // An absolute CLOCK_MONOTONIC time, which `Instant` reads on Linux.
        let ts = deadline.map(|d| {
            let left = d.saturating_duration_since(std::time::Instant::now());
            let mut now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: writes the current time into `now`, a valid timespec.
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
            let total = now.tv_nsec as u64 + u64::from(left.subsec_nanos());
            libc::timespec {
                tv_sec: now
                    .tv_sec
                    .saturating_add(left.as_secs().min(i32::MAX as u64) as libc::time_t)
                    .saturating_add((total / 1_000_000_000) as libc::time_t),
                tv_nsec: (total % 1_000_000_000) as libc::c_long,
            }
        });
        let tsp = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `v` is an array of `v.len()` futex_waitv entries that outlives the call;
        // every address is a live, aligned 32-bit atomic (the bell is ours, the others are
        // kept mapped by their AnnouncedWait); the kernel only reads them; `tsp` is null or
        // a timespec that outlives the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex_waitv,
                v.as_ptr(),
                v.len() as libc::c_uint,
                0u32,
                tsp,
                libc::CLOCK_MONOTONIC,
            )
        };
        if r < 0 {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            if !matches!(errno, libc::EAGAIN | libc::ETIMEDOUT | libc::EINTR) {
                return Err(fail(errno));
            }
        }
        Ok(())
    }

    /// `FUTEX_WAKE` for every waiter on `word`, in any process.
    pub(super) fn wake(word: &AtomicU32) {
        // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAKE does not access it
        // beyond using its address as the key.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE,
                i32::MAX,
                std::ptr::null::<libc::timespec>(),
                std::ptr::null::<u32>(),
                0u32,
            );
        }
    }
}

#[cfg(loom)]
mod futex {
    use std::time::Duration;

    use crate::sync::{AtomicU32, Ordering};

    /// Sleeps until the word changes, without a time-out, so that a lost wake-up deadlocks
    /// the model and loom reports it.
    pub(super) fn wait(word: &AtomicU32, expected: u32, _timeout: Duration) {
        while word.load(Ordering::Acquire) == expected {
            loom::thread::yield_now();
        }
    }

    /// Nothing to do: the event bump before it is what `wait` watches.
    pub(super) fn wake(_word: &AtomicU32) {}
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Where the kernel offers the expedited global barrier, the first publication registers
    /// this process and every later one takes the free path; where it does not, publishers
    /// keep the real fence. Either way the waiter's half runs without error.
    #[test]
    fn a_publisher_registers_for_the_asymmetric_fence_where_the_kernel_allows() {
        let light = publish_fence(false);
        assert_eq!(light, barrier::supported());
        assert_eq!(light_fence(), barrier::supported());
        barrier::heavy();
    }

    /// A forked child keeps the registration (the code relies on it; there is no fork
    /// handler): where the kernel can report registrations (`GET_REGISTRATIONS`, Linux
    /// 6.3), the child's include the expedited global one.
    #[test]
    fn a_forked_child_keeps_the_registration() {
        let _ = publish_fence(false);
        if !barrier::supported() {
            return;
        }
        // SAFETY: the child only reads an atomic, makes raw system calls, and `_exit`s.
        match unsafe { libc::fork() } {
            0 => {
                const GET_REGISTRATIONS: libc::c_long = 1 << 9;
                const REGISTER_GLOBAL_EXPEDITED: libc::c_long = 1 << 2;
                // SAFETY: membarrier takes integers and touches no memory of ours.
                let regs = unsafe { libc::syscall(libc::SYS_membarrier, GET_REGISTRATIONS, 0, 0) };
                let kernel_says = regs < 0 || regs & REGISTER_GLOBAL_EXPEDITED != 0;
                let ok = light_fence() && kernel_says;
                // SAFETY: ends the child without running the parent's destructors.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            pid if pid > 0 => {
                let mut status = 0;
                // SAFETY: waits for our own child.
                unsafe { libc::waitpid(pid, &mut status, 0) };
                assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
            }
            _ => panic!("fork failed"),
        }
    }
}
