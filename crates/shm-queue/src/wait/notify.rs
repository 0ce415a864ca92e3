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
            && (k.consumer_sleepers.load(Ordering::Relaxed) == 0
                || (crate::wait::light_fence() && k.consumer_waiters.load(Ordering::Relaxed) == 0))
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
        let light = crate::wait::publish_fence(has_fd);
        let armed = has_fd && k.data_armed.load(Ordering::Relaxed) != 0;
        if !armed
            && (k.consumer_sleepers.load(Ordering::Relaxed) == 0
                || (light && k.consumer_waiters.load(Ordering::Relaxed) == 0))
        {
            return false;
        }
        self.data_signal().wake(light, armed)
    }

    /// After freeing space: wakes a producer that may sleep (see [`Header::notify_data`]).
    #[inline]
    pub(crate) fn notify_space(&self) {
        let k = &self.control;
        if k.producer_sleepers.load(Ordering::Relaxed) == 0
            || (crate::wait::light_fence() && k.producer_waiters.load(Ordering::Relaxed) == 0)
        {
            return;
        }
        self.notify_space_slow();
    }

    /// [`Header::notify_space`] when a producer may sleep: out of line, as in
    /// [`Header::notify_data_slow`].
    #[inline(never)]
    fn notify_space_slow(&self) {
        let k = &self.control;
        let light = crate::wait::publish_fence(false);
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
