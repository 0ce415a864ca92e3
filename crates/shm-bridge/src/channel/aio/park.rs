//! Where async waits sleep: a few threads per process, each asleep in one `futex_waitv` on
//! up to [`MAX_WAIT_ANY`] announced waits at once (the rings' own futex words, so a
//! publisher wakes them exactly as it wakes a blocking call), which wake the task of a wait
//! once its ring signals, or once its liveness period passes (the task then looks at the
//! peer, as a blocking call does between its slices).
//!
//! A task parks by handing over its [`AnnouncedWait`] and its waker ([`park`]); the thread
//! is woken through its bell to take it in. The task's [`Parked`] says whether it fired;
//! dropping it (a cancelled future, a dropped end) takes the wait back at once.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::Waker;
use std::time::Instant;

use shm_queue::wait::{ring_bell, wait_any, AnnouncedWait, MAX_WAIT_ANY};

/// One parked wait, shared by its task and its thread.
#[derive(Debug)]
struct Slot {
    fired: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

/// A wait as its thread holds it.
struct Entry {
    slot: Arc<Slot>,
    wait: Arc<AnnouncedWait>,
    deadline: Instant,
}

/// One waiting thread and the waits it sleeps on.
struct Sleeper {
    bell: AtomicU32,
    entries: Mutex<Vec<Entry>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The process's waiting threads (more are started as waits outgrow them).
fn sleepers() -> &'static Mutex<Vec<Arc<Sleeper>>> {
    static S: OnceLock<Mutex<Vec<Arc<Sleeper>>>> = OnceLock::new();
    S.get_or_init(|| Mutex::new(Vec::new()))
}

impl Sleeper {
    /// The thread's loop: sleep on every wait (and the bell) until the earliest deadline,
    /// then fire the waits that were signalled or whose deadline passed.
    fn run(self: Arc<Self>) {
        loop {
            let seen = self.bell.load(Ordering::Acquire);
            let (waits, deadline) = {
                let e = lock(&self.entries);
                let deadline = e.iter().map(|x| x.deadline).min();
                (
                    e.iter().map(|x| x.wait.clone()).collect::<Vec<_>>(),
                    deadline,
                )
            };
            let refs: Vec<&AnnouncedWait> = waits.iter().map(|w| &**w).collect();
            if wait_any(&refs, &self.bell, seen, deadline).is_err() {
                // The kernel refused (too old for futex_waitv): fall back to polling in
                // short naps, which still wakes every wait within a millisecond.
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            drop(refs);
            drop(waits);
            let now = Instant::now();
            let mut fired = Vec::new();
            lock(&self.entries).retain(|x| {
                let due = x.wait.is_signalled() || now >= x.deadline;
                if due {
                    fired.push(x.slot.clone());
                }
                !due
            });
            for slot in fired {
                slot.fired.store(true, Ordering::Release);
                if let Some(w) = lock(&slot.waker).take() {
                    w.wake();
                }
            }
        }
    }
}

/// A wait handed to a waiting thread; see the module docs.
#[derive(Debug)]
pub(super) struct Parked {
    slot: Arc<Slot>,
    sleeper: Arc<Sleeper>,
}

impl std::fmt::Debug for Sleeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sleeper").finish_non_exhaustive()
    }
}

impl Parked {
    /// `true` once the wait fired; otherwise records `waker` to be woken when it does.
    pub(super) fn fired(&self, waker: &Waker) -> bool {
        if self.slot.fired.load(Ordering::Acquire) {
            return true;
        }
        {
            let mut w = lock(&self.slot.waker);
            match &*w {
                Some(old) if old.will_wake(waker) => {}
                _ => *w = Some(waker.clone()),
            }
        }
        // It may have fired between the first look and the waker's update.
        self.slot.fired.load(Ordering::Acquire)
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        // Take the wait back now (if it has not fired), so its waiter count does not make
        // publishers wake nobody until its deadline.
        lock(&self.sleeper.entries).retain(|x| !Arc::ptr_eq(&x.slot, &self.slot));
    }
}

/// Parks `wait` until it is signalled or `deadline` passes; wakes `waker` then.
pub(super) fn park(wait: AnnouncedWait, waker: Waker, deadline: Instant) -> Parked {
    let slot = Arc::new(Slot {
        fired: AtomicBool::new(false),
        waker: Mutex::new(Some(waker)),
    });
    let entry = Entry {
        slot: slot.clone(),
        wait: Arc::new(wait),
        deadline,
    };
    let sleeper = {
        let mut all = lock(sleepers());
        let found = all
            .iter()
            .find(|s| lock(&s.entries).len() < MAX_WAIT_ANY)
            .cloned();
        match found {
            Some(s) => s,
            None => {
                let s = Arc::new(Sleeper {
                    bell: AtomicU32::new(0),
                    entries: Mutex::new(Vec::new()),
                });
                let t = s.clone();
                let started = std::thread::Builder::new()
                    .name("shmlane-async".into())
                    .spawn(move || t.run());
                if started.is_err() {
                    // No thread to sleep in: fire at once, so the task polls again rather
                    // than waiting for a wake that never comes (it spins, but never hangs).
                    slot.fired.store(true, Ordering::Release);
                    return Parked { slot, sleeper: s };
                }
                all.push(s.clone());
                s
            }
        }
    };
    lock(&sleeper.entries).push(entry);
    ring_bell(&sleeper.bell);
    Parked { slot, sleeper }
}
