//! Waiting outside the blocking calls: an [`AnnouncedWait`] is the first half of a
//! blocking sleep's handshake ([`Signal::announce`]) handed to a caller that sleeps
//! elsewhere (an async runtime's waiting thread), and [`wait_any`] sleeps on many of them at
//! once. The futex system call itself is in the parent module's `futex`.

use std::time::Instant;

use super::{futex, Signal};
use crate::error::Error;
use crate::sync::{AtomicU32, Ordering};

/// A waiter announced on one side of a ring for a caller that sleeps somewhere else than
/// the ring's blocking calls: an async runtime, whose helper thread sleeps on many rings at
/// once with [`wait_any`]. Made by a handle's `announce_wait()`, after a `try_*` call found
/// nothing; the caller then tries once more (the re-check of the handshake), and if that
/// finds nothing too, sleeps until [`AnnouncedWait::is_signalled`]. Dropping it takes the
/// waiter back. It keeps the ring's memory mapped while it lives.
pub struct AnnouncedWait {
    /// Keeps the memory holding `event` and `waiters` mapped.
    _keep: std::sync::Arc<dyn Send + Sync>,
    event: std::ptr::NonNull<AtomicU32>,
    waiters: std::ptr::NonNull<AtomicU32>,
    pub(super) seen: u32,
}

// SAFETY: the pointers are to atomics in memory that `_keep` (Send + Sync) keeps mapped;
// only atomic operations and futex calls go through them.
unsafe impl Send for AnnouncedWait {}
// SAFETY: as for Send: shared access is atomic.
unsafe impl Sync for AnnouncedWait {}

impl AnnouncedWait {
    /// Announces a waiter on `signal`, whose words live in the memory `keep` maps.
    pub(crate) fn new(keep: std::sync::Arc<dyn Send + Sync>, signal: &Signal<'_>) -> Self {
        let seen = signal.announce();
        AnnouncedWait {
            _keep: keep,
            event: std::ptr::NonNull::from(signal.event),
            waiters: std::ptr::NonNull::from(signal.waiters),
            seen,
        }
    }

    pub(super) fn event(&self) -> &AtomicU32 {
        // SAFETY: points into memory `_keep` keeps mapped; an AtomicU32 is valid for any bits.
        unsafe { self.event.as_ref() }
    }

    /// `true` once the other side has signalled (or the word changed for another reason:
    /// a hostile peer can only cause a spurious wake). Then drop this and retry.
    pub fn is_signalled(&self) -> bool {
        self.event().load(Ordering::Acquire) != self.seen
    }
}

impl Drop for AnnouncedWait {
    fn drop(&mut self) {
        // SAFETY: as in `event`.
        unsafe { self.waiters.as_ref() }.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for AnnouncedWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnnouncedWait")
            .field("seen", &self.seen)
            .field("signalled", &self.is_signalled())
            .finish()
    }
}

/// Rings `bell`, a word of this process that a thread sleeps on in [`wait_any`]: bumps it
/// and wakes the sleeper, which then looks at what was handed over.
pub fn ring_bell(bell: &AtomicU32) {
    bell.fetch_add(1, Ordering::Release);
    futex::wake(bell);
}

/// The most waits [`wait_any`] sleeps on at once (the kernel's limit is 128, one of which
/// is the bell).
pub const MAX_WAIT_ANY: usize = 127;

/// Sleeps until one of `waits` is signalled, `bell` no longer holds `bell_seen` (another
/// thread of this process rings it, to hand over a new wait), `deadline` passes, or a
/// signal interrupts: one `futex_waitv` system call (Linux 5.16 or later). Returns at once
/// if any of them already holds. The caller looks at what changed.
///
/// # Errors
///
/// [`Error::ReadinessFd`] naming `futex_waitv` and its errno when the kernel refuses it
/// (`ENOSYS` before 5.16) or `waits` holds more than [`MAX_WAIT_ANY`]; time-outs, wakes and
/// interruptions are not errors.
pub fn wait_any(
    waits: &[&AnnouncedWait],
    bell: &AtomicU32,
    bell_seen: u32,
    deadline: Option<Instant>,
) -> Result<(), Error> {
    futex::wait_any(waits, bell, bell_seen, deadline)
}
