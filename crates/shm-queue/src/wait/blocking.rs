//! The one blocking loop every ring handle uses: try the non-blocking operation; while it
//! says "not yet", wait on the header's signal for the handle's side, as its
//! [`WaitStrategy`] says, until the deadline.
//!
//! The first attempt runs before anything else (no `Arc` clone, no signal set-up), so a
//! blocking call on a ring that is ready costs what the non-blocking call costs.

use std::time::Instant;

use crate::error::Error;
use crate::header::Header;
use crate::wait::WaitStrategy;

/// Which signal a handle waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// A consumer, waiting for data.
    Data,
    /// A producer, waiting for space.
    Space,
}

/// A ring handle that can wait.
pub(crate) trait Waiter {
    /// A clone of what keeps the ring's memory alive (an `Arc`), taken only on the slow path
    /// so the handle itself can be borrowed mutably while it waits.
    type Keep;
    /// The signal this handle waits on.
    const SIDE: Side;
    /// Clones the keep-alive.
    fn keep(&self) -> Self::Keep;
    /// The header inside the kept memory.
    fn header_of(keep: &Self::Keep) -> &Header;
    /// The handle's wait strategy.
    fn strategy(&self) -> WaitStrategy;
}

/// Runs `attempt` until it returns `Some` (or an error), waiting between attempts on `h`'s
/// signal until `deadline`; `what` names what is awaited in a [`Error::Timeout`].
#[inline]
pub(crate) fn block_on<H: Waiter, R>(
    h: &mut H,
    deadline: Option<Instant>,
    what: &'static str,
    mut attempt: impl FnMut(&mut H) -> Result<Option<R>, Error>,
) -> Result<R, Error> {
    if let Some(r) = attempt(h)? {
        return Ok(r);
    }
    let keep = h.keep();
    let header = H::header_of(&keep);
    let signal = match H::SIDE {
        Side::Data => header.data_signal(),
        Side::Space => header.space_signal(),
    };
    signal.wait(h.strategy(), deadline, what, || attempt(h))
}

/// Implements [`Waiter`] for a ring handle type, and the controls every handle shares:
/// `wait_strategy`, `set_wait_strategy`, `close` and `is_closed`.
///
/// `handle_controls!([generics] Type, KeepType, Side, path.to.keep, path.to.strategy,
/// path.to.sleeper)`;
/// `Space` is a producer's side, `Data` a consumer's.
macro_rules! handle_controls {
    ([$($gen:tt)*] $ty:ty, $keep:ty, $side:ident, $($k:ident).+, $($s:ident).+, $($z:ident).+ $(; after = $($a:ident).+)?) => {
        impl<$($gen)*> crate::wait::blocking::Waiter for $ty {
            type Keep = crate::sync::Arc<$keep>;
            const SIDE: crate::wait::blocking::Side = crate::wait::blocking::Side::$side;
            #[inline]
            fn keep(&self) -> Self::Keep {
                self.$($k).+.clone()
            }
            #[inline]
            fn header_of(keep: &Self::Keep) -> &crate::header::Header {
                keep.header()
            }
            #[inline]
            fn strategy(&self) -> crate::wait::WaitStrategy {
                self.$($s).+
            }
        }

        impl<$($gen)*> $ty {
            /// How this handle waits in the blocking calls (default
            /// [`WaitStrategy::spin_then_yield`](crate::wait::WaitStrategy::spin_then_yield)).
            pub fn wait_strategy(&self) -> crate::wait::WaitStrategy {
                self.$($s).+
            }

            /// Sets how this handle waits in the blocking calls (an MPMC handle's clones made
            /// afterwards inherit it). A handle that may sleep in the kernel registers as a
            /// sleeper, so the other side knows to wake it.
            pub fn set_wait_strategy(&mut self, strategy: crate::wait::WaitStrategy) {
                let header = self.$($k).+.header();
                let signal = match crate::wait::blocking::Side::$side {
                    crate::wait::blocking::Side::Space => header.space_signal(),
                    crate::wait::blocking::Side::Data => header.data_signal(),
                };
                signal.set_strategy(&mut self.$($z).+, strategy);
                self.$($s).+ = strategy;
                $(self.$($a).+();)?
            }

            /// Closes the ring from this side. When a producer closes, consumers drain what
            /// was sent and then their blocking calls return
            /// [`Error::Closed`](crate::Error::Closed); when a consumer closes, producers
            /// blocked for space wake with it. Every sleeper on both sides is woken. Returns
            /// `false` if the ring was already closed.
            pub fn close(&self) -> bool {
                let by = match crate::wait::blocking::Side::$side {
                    crate::wait::blocking::Side::Space => 1,
                    crate::wait::blocking::Side::Data => 2,
                };
                self.$($k).+.header().close(by)
            }

            /// `true` once either side (or liveness code) has closed the ring.
            pub fn is_closed(&self) -> bool {
                self.$($k).+.header().data_signal().is_closed()
            }

            /// Announces this handle as a waiter on its side's signal (a consumer waits for
            /// data, a producer for space), for a caller that sleeps outside the blocking
            /// calls, such as an async runtime: call it after a `try_*` call found nothing,
            /// then try once more; if that finds nothing too, sleep until
            /// [`AnnouncedWait::is_signalled`](crate::wait::AnnouncedWait::is_signalled)
            /// (for example in [`wait_any`](crate::wait::wait_any)), drop it, and retry. The
            /// other side wakes it only if this handle is counted as a sleeper: set a wait
            /// strategy that may sleep ([`WaitStrategy::blocking`](crate::wait::WaitStrategy::blocking)) first.
            #[cfg(not(loom))]
            // The bound names the handle's private storage type: it holds for every element
            // type that is `Send`, which is what it says.
            #[allow(private_bounds)]
            pub fn announce_wait(&self) -> crate::wait::AnnouncedWait
            where
                $keep: Send + Sync + 'static,
            {
                let keep = self.$($k).+.clone();
                let header = keep.header();
                let signal = match crate::wait::blocking::Side::$side {
                    crate::wait::blocking::Side::Space => header.space_signal(),
                    crate::wait::blocking::Side::Data => header.data_signal(),
                };
                crate::wait::AnnouncedWait::new(keep.clone(), &signal)
            }
        }
    };
}
pub(crate) use handle_controls;

/// The blocking element calls of the typed rings (`spsc` and `mpmc`), written once over
/// their non-blocking calls: `typed_blocking!(producer spsc)` or
/// `typed_blocking!(consumer mpmc)`, inside the ring's module.
macro_rules! typed_blocking {
    (producer $m:ident) => {
        impl<T: bytemuck::Pod> Producer<T> {
            /// [`Producer::try_push`] until a slot is free, sleeping between attempts as this
            /// handle's [`WaitStrategy`](crate::wait::WaitStrategy) says, until `deadline`
            /// (`None`: no limit).
            ///
            /// # Errors
            ///
            /// [`Error::Timeout`](crate::Error::Timeout) at the deadline;
            /// [`Error::Closed`](crate::Error::Closed) once the ring is closed; what
            /// [`Producer::try_push`] returns otherwise.
            pub fn push_blocking(
                &mut self,
                value: T,
                deadline: Option<std::time::Instant>,
            ) -> Result<(), crate::Error> {
                crate::wait::blocking::block_on(self, deadline, "a free slot", |s| {
                    crate::wait::pending(s.try_push(value))
                })
            }

            /// Pushes all of `src`, in batches as room appears, waiting as
            /// [`Producer::push_blocking`] does, until `deadline`.
            ///
            /// # Errors
            ///
            /// `(pushed, error)`: how many were pushed before
            /// [`Error::Timeout`](crate::Error::Timeout),
            /// [`Error::Closed`](crate::Error::Closed) or an error of
            /// [`Producer::push_partial_slice`] stopped it.
            pub fn push_slice_blocking(
                &mut self,
                src: &[T],
                deadline: Option<std::time::Instant>,
            ) -> Result<(), (usize, crate::Error)> {
                let mut done = 0;
                crate::wait::blocking::block_on(self, deadline, "free slots", |s| {
                    while done < src.len() {
                        match s.push_partial_slice(&src[done..]) {
                            Ok(0) => return Ok(None),
                            Ok(k) => done += k,
                            Err(e) if e.is_retryable() => return Ok(None),
                            Err(e) => return Err(e.into()),
                        }
                    }
                    Ok(Some(()))
                })
                .map_err(|e| (done, e))
            }
        }
    };
    (consumer $m:ident) => {
        impl<T: bytemuck::Pod> Consumer<T> {
            /// [`Consumer::try_pop`] until an element is ready, sleeping between attempts as
            /// this handle's [`WaitStrategy`](crate::wait::WaitStrategy) says, until
            /// `deadline` (`None`: no limit).
            ///
            /// # Errors
            ///
            /// [`Error::Timeout`](crate::Error::Timeout) at the deadline;
            /// [`Error::Closed`](crate::Error::Closed) once the ring is closed and everything
            /// pushed before has been popped; what [`Consumer::try_pop`] returns otherwise.
            ///
            /// ```
            /// use std::time::{Duration, Instant};
            #[doc = concat!("use shm_queue::{", stringify!($m), "::Ring, wait::WaitStrategy, Error};")]
            ///
            /// let region = shm_region::Region::anonymous(Ring::<u64>::required_bytes(64)?)?;
            /// let ring = Ring::<u64>::create(region, 64)?;
            /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
            /// rx.set_wait_strategy(WaitStrategy::blocking()); // sleep on a futex when idle
            /// let soon = Some(Instant::now() + Duration::from_millis(10));
            /// assert!(matches!(rx.pop_blocking(soon), Err(Error::Timeout { .. })));
            /// tx.try_push(5)?;
            /// tx.close();
            /// assert_eq!(rx.pop_blocking(None)?, 5);
            /// assert!(matches!(rx.pop_blocking(None), Err(Error::Closed { .. })));
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            pub fn pop_blocking(
                &mut self,
                deadline: Option<std::time::Instant>,
            ) -> Result<T, crate::Error> {
                crate::wait::blocking::block_on(self, deadline, "an element", |s| {
                    crate::wait::pending(s.try_pop())
                })
            }

            /// Waits like [`Consumer::pop_blocking`] until at least one element is ready,
            /// then pops what is ready, up to `dst.len()`; returns how many.
            ///
            /// # Errors
            ///
            /// As [`Consumer::pop_blocking`] and [`Consumer::pop_partial_slice`].
            #[must_use = "the call may do only part of the work: check how many it did"]
            pub fn pop_partial_slice_blocking(
                &mut self,
                dst: &mut [T],
                deadline: Option<std::time::Instant>,
            ) -> Result<usize, crate::Error> {
                if dst.is_empty() {
                    return Ok(0);
                }
                crate::wait::blocking::block_on(self, deadline, "elements", |s| {
                    match s.pop_partial_slice(dst) {
                        Ok(0) => Ok(None),
                        Ok(n) => Ok(Some(n)),
                        Err(e) if e.is_retryable() => Ok(None),
                        Err(e) => Err(e.into()),
                    }
                })
            }
        }
    };
}
pub(crate) use typed_blocking;

/// The blocking calls of rings of [`Raw`](crate::Raw) elements (`spsc` and `mpmc`),
/// written once over their `push_partial_bytes` and `pop_partial_into`: `raw_blocking!()`
/// inside the ring's module.
macro_rules! raw_blocking {
    () => {
        impl Producer<crate::element::Raw> {
            /// Pushes every element of `src`, in batches as room appears, sleeping between
            /// attempts as this handle's [`WaitStrategy`](crate::wait::WaitStrategy) says,
            /// until `deadline` (`None`: no limit).
            ///
            /// # Errors
            ///
            /// `(pushed, error)`: how many elements were pushed before
            /// [`Error::Timeout`](crate::Error::Timeout),
            /// [`Error::Closed`](crate::Error::Closed) or an error of
            /// `push_partial_bytes` stopped it.
            pub fn push_bytes_blocking(
                &mut self,
                src: &[u8],
                deadline: Option<std::time::Instant>,
            ) -> Result<(), (usize, crate::Error)> {
                let size = self.element_size();
                let mut done = 0;
                crate::wait::blocking::block_on(self, deadline, "free slots", |s| {
                    while done * size < src.len() {
                        match s.push_partial_bytes(&src[done * size..]) {
                            Ok(0) => return Ok(None),
                            Ok(k) => done += k,
                            Err(e) if e.is_retryable() => return Ok(None),
                            Err(e) => return Err(e.into()),
                        }
                    }
                    Ok(Some(()))
                })
                .map_err(|e| (done, e))
            }
        }

        impl Consumer<crate::element::Raw> {
            /// Waits until at least one element is ready (as the typed `pop_blocking`,
            /// until `deadline`), then pops as many ready elements as fit whole in `dst`;
            /// returns how many.
            ///
            /// # Errors
            ///
            /// [`Error::Timeout`](crate::Error::Timeout) at the deadline,
            /// [`Error::Closed`](crate::Error::Closed) once the ring is closed and drained,
            /// and those of `pop_partial_into`.
            #[must_use = "the call may do only part of the work: check how many it did"]
            pub fn pop_into_blocking(
                &mut self,
                dst: &mut [u8],
                deadline: Option<std::time::Instant>,
            ) -> Result<usize, crate::Error> {
                crate::wait::blocking::block_on(self, deadline, "elements", |s| {
                    match s.pop_partial_into(dst) {
                        Ok(0) => Ok(None),
                        Ok(n) => Ok(Some(n)),
                        Err(e) if e.is_retryable() => Ok(None),
                        Err(e) => Err(e.into()),
                    }
                })
            }
        }
    };
}
pub(crate) use raw_blocking;
