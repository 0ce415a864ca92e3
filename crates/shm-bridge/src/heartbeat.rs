//! One liveness thread per process, whatever the number of endpoints.
//!
//! Every endpoint with a heartbeat period registers its slot here. A single background
//! thread (`shmlane-liveness`) stores the time into each registered slot's heartbeat word
//! when that slot is due, then sleeps until the next one is. Due times are rounded up to a
//! multiple of the period, so all endpoints with the same period are refreshed on one
//! wake-up: a thousand idle channels with the default 100 ms cost ten wake-ups a second and
//! a thousand stores, not a thousand threads.
//!
//! Life cycle. The thread starts with the first registration and is joined by the drop of
//! the last one (the process is single-threaded again once every channel is closed, which
//! the checked [`crate::fork::fork_child`] relies on). Beats happen under the registry lock,
//! so once [`Registration`] has been dropped no beat on its slot is in flight: nothing
//! refreshes a slot after its endpoint marked it left.
//!
//! Fork safety. The registry records the pid that built it and is looked up through a
//! static pointer. A forked child (which has no liveness thread, and may have inherited the
//! registry's lock held) never touches its parent's registry: its first registration builds
//! a fresh one for its own pid, and a registration inherited from the parent does nothing
//! when the child drops it. No `pthread_atfork` handler is needed.
//!
//! Peer checks do not run here: a blocked or polling call checks its peer on its own thread
//! (`endpoint::Endpoint::peer_error`), so their promptness does not depend on this thread.

use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use shm_region::Region;

use crate::control::{monotonic_ms, Control};
use crate::{Error, Result};

/// One registered slot.
struct Entry {
    id: u64,
    region: Arc<Region>,
    ctl: Control,
    slot: usize,
    every_ms: u64,
    next_ms: u64,
}

#[derive(Default)]
struct State {
    entries: Vec<Entry>,
    next_id: u64,
    /// The running thread, if any.
    thread: Option<JoinHandle<()>>,
    /// Bumped when the thread is told to stop; a thread exits once it differs from the
    /// value it was started with (so a thread started right after still runs).
    epoch: u64,
}

/// The liveness registry of one process.
struct Registry {
    pid: u32,
    state: Mutex<State>,
    wake: Condvar,
}

/// The registry of the pid that last built one (leaked: one small struct per process, and
/// per forked child that opens channels).
static CURRENT: AtomicPtr<Registry> = AtomicPtr::new(std::ptr::null_mut());

/// This process's registry, built on first use (and again in a forked child).
fn registry() -> &'static Registry {
    let pid = std::process::id();
    loop {
        let p = CURRENT.load(Ordering::Acquire);
        // SAFETY: a non-null `CURRENT` always comes from `Box::leak` below and is never
        // freed, so it points to a live `Registry` for the rest of the process (a forked
        // child inherits the same leaked memory).
        if let Some(r) = unsafe { p.as_ref() } {
            if r.pid == pid {
                return r;
            }
        }
        let fresh: &'static mut Registry = Box::leak(Box::new(Registry {
            pid,
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        }));
        if CURRENT
            .compare_exchange(p, fresh, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return fresh;
        }
        // Another thread of this process installed one first; ours stays unused (leaked,
        // a few dozen bytes, only on this race).
    }
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` inconsistent in a way that
        // matters (at worst an entry is beaten once more or once less), so go on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The thread's loop: beat every due entry, then sleep until the next one is due.
    fn run(&self, epoch: u64) {
        let mut st = self.lock();
        while st.epoch == epoch {
            let now = monotonic_ms();
            let mut next = u64::MAX;
            for e in &mut st.entries {
                if e.next_ms <= now {
                    e.ctl.beat(&e.region, e.slot);
                    e.next_ms = due_after(now, e.every_ms);
                }
                next = next.min(e.next_ms);
            }
            let wait = Duration::from_millis(next.saturating_sub(now).clamp(1, 60_000));
            st = match self.wake.wait_timeout(st, wait) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }
}

/// The first multiple of `every` strictly after `now` (so equal periods share wake-ups).
fn due_after(now: u64, every: u64) -> u64 {
    let every = every.max(1);
    (now / every).saturating_add(1).saturating_mul(every)
}

/// An endpoint's place in the registry; dropping it stops its heartbeat (and, for the last
/// one of the process, joins the thread).
#[derive(Debug)]
pub(crate) struct Registration {
    reg: &'static Registry,
    id: u64,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("pid", &self.pid).finish()
    }
}

/// Refreshes `slot`'s heartbeat every `every` from the process's liveness thread (started
/// here if it is not running) until the returned registration is dropped. The slot is
/// beaten once right away.
pub(crate) fn register(
    region: Arc<Region>,
    ctl: Control,
    slot: usize,
    every: Duration,
) -> Result<Registration> {
    let reg = registry();
    let every_ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX).max(1);
    ctl.beat(&region, slot);
    let now = monotonic_ms();
    let mut st = reg.lock();
    if st.thread.is_none() {
        let epoch = st.epoch;
        let thread = std::thread::Builder::new()
            .name("shmlane-liveness".into())
            .spawn(move || reg.run(epoch))
            .map_err(|e| {
                Error::sys(
                    "spawning the liveness thread",
                    nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EAGAIN)),
                )
            })?;
        st.thread = Some(thread);
    }
    let id = st.next_id;
    st.next_id += 1;
    let next_ms = due_after(now, every_ms);
    let sooner = st.entries.iter().all(|e| e.next_ms > next_ms);
    st.entries.push(Entry {
        id,
        region,
        ctl,
        slot,
        every_ms,
        next_ms,
    });
    drop(st);
    if sooner {
        reg.wake.notify_all();
    }
    Ok(Registration { reg, id })
}

impl Drop for Registration {
    fn drop(&mut self) {
        if self.reg.pid != std::process::id() {
            return; // inherited through fork: the parent's registry is not ours to touch
        }
        let mut st = self.reg.lock();
        if let Some(i) = st.entries.iter().position(|e| e.id == self.id) {
            st.entries.swap_remove(i);
        }
        let thread = if st.entries.is_empty() {
            st.epoch += 1;
            st.thread.take()
        } else {
            None
        };
        drop(st);
        if let Some(t) = thread {
            self.reg.wake.notify_all();
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::due_after;

    #[test]
    fn equal_periods_share_due_times() {
        assert_eq!(due_after(1_234, 100), 1_300);
        assert_eq!(due_after(1_300, 100), 1_400);
        assert_eq!(due_after(1_299, 100), 1_300);
        assert_eq!(due_after(5, 0), 6);
        assert_eq!(due_after(u64::MAX - 1, 100), u64::MAX);
    }
}
