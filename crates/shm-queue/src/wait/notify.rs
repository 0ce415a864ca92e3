//! The notify protocol on the header's wait words: which words a waiter on each side sleeps
//! on, and what a publisher checks (without a syscall when nobody sleeps) before it wakes.

use crate::header::Header;
use crate::sync::Ordering;

impl Header {
    /// The words a consumer waits on for data, and the producer signals.
    pub(crate) fn data_signal(&self) -> crate::wait::Signal<'_> {
        let k = &self.control;
        crate::wait::Signal {
            event: &k.data_futex,
            waiters: &k.consumer_waiters,
            sleepers: &k.consumer_sleepers,
            weak: &k.consumer_weak,
            closed: &k.closed,
            armed: Some(&k.data_armed),
        }
    }

    /// The words a producer waits on for space, and the consumer signals.
    pub(crate) fn space_signal(&self) -> crate::wait::Signal<'_> {
        let k = &self.control;
        crate::wait::Signal {
            event: &k.space_futex,
            waiters: &k.producer_waiters,
            sleepers: &k.producer_sleepers,
            weak: &k.producer_weak,
            closed: &k.closed,
            armed: None,
        }
    }

    /// After a publish: wakes a consumer that may sleep, or consumes an armed readiness
    /// descriptor (returned, for the producer's readiness descriptor; `has_fd`: the producer holds one).
    /// The handshake of [`crate::wait`] made on the words directly, so the hot path (no
    /// descriptor, nobody may sleep) is one relaxed load and no `Signal`.
    #[inline]
    pub(crate) fn notify_data(&self, has_fd: bool) -> bool {
        let k = &self.control;
        if !has_fd
            && quiet(
                k.consumer_sleepers.load(Ordering::Relaxed),
                crate::wait::light_fence,
                &k.consumer_weak,
                &k.consumer_waiters,
            )
        {
            return false;
        }
        self.notify_data_slow(has_fd)
    }

    /// [`Header::notify_data`] when a consumer may sleep or a descriptor is held: out of
    /// line, so the publish path inlines into the caller's loop.
    #[inline(never)]
    fn notify_data_slow(&self, has_fd: bool) -> bool {
        let k = &self.control;
        // The light fence counts only if every sleeper can issue the heavy one.
        let light =
            crate::wait::publish_fence(has_fd) && k.consumer_weak.load(Ordering::Relaxed) == 0;
        let armed = has_fd && k.data_armed.load(Ordering::Relaxed) != 0;
        if !armed
            && quiet(
                k.consumer_sleepers.load(Ordering::Relaxed),
                || light,
                &k.consumer_weak,
                &k.consumer_waiters,
            )
        {
            return false;
        }
        self.data_signal().wake(light, armed)
    }

    /// After freeing space: wakes a producer that may sleep (see [`Header::notify_data`]).
    #[inline]
    pub(crate) fn notify_space(&self) {
        let k = &self.control;
        if quiet(
            k.producer_sleepers.load(Ordering::Relaxed),
            crate::wait::light_fence,
            &k.producer_weak,
            &k.producer_waiters,
        ) {
            return;
        }
        self.notify_space_slow();
    }

    /// [`Header::notify_space`] when a producer may sleep: out of line, as in
    /// [`Header::notify_data_slow`].
    #[inline(never)]
    fn notify_space_slow(&self) {
        let k = &self.control;
        let light =
            crate::wait::publish_fence(false) && k.producer_weak.load(Ordering::Relaxed) == 0;
        if !(light && k.producer_waiters.load(Ordering::Relaxed) == 0) {
            self.space_signal().wake(light, false);
        }
    }

    /// Closes the ring and wakes every sleeper on both sides. `by`: 1 producer, 2 consumer,
    /// 3 anyone else. Returns `false` if it was already closed.
    pub(crate) fn close(&self, by: u32) -> bool {
        let first = self
            .control
            .closed
            .compare_exchange(0, by.max(1), Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        self.data_signal().wake_all();
        self.space_signal().wake_all();
        first
    }
}

/// Whether a publisher may skip the wake path: nobody may sleep, or the light fence was
/// used (`light`, asked only when someone may sleep), no sleeper is weak (every sleeper can issue the heavy barrier, which is
/// what makes the light fence sound) and nobody is asleep now. `weak` and `waiters` are read
/// only when needed, so the busy path (no sleeper) is one load.
#[inline(always)]
fn quiet(
    sleepers: u32,
    light: impl FnOnce() -> bool,
    weak: &crate::sync::AtomicU32,
    waiters: &crate::sync::AtomicU32,
) -> bool {
    sleepers == 0
        || (light() && weak.load(Ordering::Relaxed) == 0 && waiters.load(Ordering::Relaxed) == 0)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::quiet;
    use crate::sync::AtomicU32;

    #[test]
    fn a_weak_sleeper_keeps_the_wake_path() {
        let (zero, one) = (AtomicU32::new(0), AtomicU32::new(1));
        // Nobody may sleep: quiet whatever the fence.
        assert!(quiet(0, || false, &one, &one));
        // A strong sleeper that is awake, after a light fence: quiet.
        assert!(quiet(1, || true, &zero, &zero));
        // The same with a weak sleeper: the wake path (and its real fence) is taken.
        assert!(!quiet(1, || true, &one, &zero));
        // No light fence: the wake path.
        assert!(!quiet(1, || false, &zero, &zero));
        // Someone asleep: the wake path.
        assert!(!quiet(1, || true, &zero, &one));
    }
}
