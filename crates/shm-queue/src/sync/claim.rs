//! Claim words: at most one producer and one consumer handle per ring, in any process.
//!
//! A claim word in the header is 0 when the side is free, or the token of the handle that
//! holds it: the holder's pid in the high 32 bits (informative only, pids are reused) and a
//! per-process counter in the low 32. Taking is a compare-and-swap from 0; releasing is a
//! compare-and-swap back from our own token, so a handle whose claim was force-released (its
//! process was declared dead) cannot free a claim that has since been handed on.

use crate::sync::{AtomicU64, Ordering};

/// A fresh claim token: our pid in the high half, a per-process counter in the low half.
/// The byte rings' claim words and MPMC's owner entries use the same tokens.
pub(crate) fn new_token() -> u64 {
    static NEXT: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(1);
    let n = NEXT
        .fetch_add(1, core::sync::atomic::Ordering::Relaxed)
        .max(1);
    (u64::from(std::process::id()) << 32) | u64::from(n)
}

/// Takes a free claim word; on failure returns the holder's token.
pub(crate) fn take(word: &AtomicU64) -> Result<u64, u64> {
    let token = new_token();
    word.compare_exchange(0, token, Ordering::AcqRel, Ordering::Acquire)
        .map(|_| token)
}

/// Frees the claim word if we still hold it (a force-release may have handed it on).
pub(crate) fn release(word: &AtomicU64, token: u64) {
    let _ = word.compare_exchange(token, 0, Ordering::AcqRel, Ordering::Relaxed);
}

/// Frees the claim word if `holder` holds it; returns whether it did.
pub(crate) fn force_release(word: &AtomicU64, holder: u64) -> bool {
    holder != 0
        && word
            .compare_exchange(holder, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
}

/// The side of an SPSC ring a claim word belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// `control.producer_claim`.
    Producer,
    /// `control.consumer_claim`.
    Consumer,
}

impl Role {
    /// This side's claim word in `header`.
    pub(crate) fn word(self, header: &crate::header::Header) -> &AtomicU64 {
        match self {
            Role::Producer => &header.control.producer_claim,
            Role::Consumer => &header.control.consumer_claim,
        }
    }
}

/// Takes `role`'s claim in `header`, builds the handle with the token, and gives the claim
/// back if building fails, so a refused handle never leaves its side taken.
///
/// # Errors
///
/// [`Error::ProducerClaimed`] or [`Error::ConsumerClaimed`] while another handle holds the
/// side; what `build` returns.
pub(crate) fn take_for<R>(
    header: &crate::header::Header,
    role: Role,
    build: impl FnOnce(u64) -> Result<R, crate::error::Error>,
) -> Result<R, crate::error::Error> {
    use crate::error::Error;
    let word = role.word(header);
    let token = take(word).map_err(|holder| match role {
        Role::Producer => Error::ProducerClaimed { holder },
        Role::Consumer => Error::ConsumerClaimed { holder },
    })?;
    build(token).inspect_err(|_| release(word, token))
}

/// Frees `role`'s claim held by `holder` (a dead handle's), first clearing that side's wait
/// registrations, which only the dead handle can have made (an SPSC side has one handle):
/// a sleeper count, a waiter inside its futex wait, an armed readiness descriptor. Cleared
/// while the claim still keeps new handles out; without this every later publish would pay
/// the wake path (a fence and a `FUTEX_WAKE` system call) for nobody. Returns `false` if
/// `holder` does not hold the side (nothing is changed then).
pub(crate) fn force_release_side(header: &crate::header::Header, role: Role, holder: u64) -> bool {
    let word = role.word(header);
    if self::holder(word) != Some(holder) {
        return false;
    }
    match role {
        Role::Producer => header.space_signal(),
        Role::Consumer => header.data_signal(),
    }
    .forget_dead_waiters();
    force_release(word, holder)
}

/// The current holder's token, if the side is taken.
pub(crate) fn holder(word: &AtomicU64) -> Option<u64> {
    let x = word.load(Ordering::Acquire);
    (x != 0).then_some(x)
}

/// The claim controls of an SPSC ring type (typed or bytes) whose memory is `self.storage`:
/// `split`, `producer_holder`, `consumer_holder`, `force_release_producer`,
/// `force_release_consumer`. `claim_controls!([generics] Ring, Producer, Consumer)`.
macro_rules! claim_controls {
    ([$($gen:tt)*] $ring:ty, $producer:ty, $consumer:ty) => {
        impl<$($gen)*> $ring {
            /// Both sides at once, for a ring used within one process or split across
            /// `fork()`.
            ///
            /// # Errors
            ///
            /// As [`Self::producer`] and [`Self::consumer`].
            pub fn split(&self) -> Result<($producer, $consumer), crate::Error> {
                Ok((self.producer()?, self.consumer()?))
            }

            /// The claim token of the current producer handle, if any: the holder's pid in
            /// the high 32 bits (informative only, pids are reused), a per-process counter in
            /// the low 32.
            pub fn producer_holder(&self) -> Option<u64> {
                crate::sync::claim::holder(Role::Producer.word(self.storage.header()))
            }

            /// The claim token of the current consumer handle, if any; see
            /// [`Self::producer_holder`].
            pub fn consumer_holder(&self) -> Option<u64> {
                crate::sync::claim::holder(Role::Consumer.word(self.storage.header()))
            }

            /// Frees the producer claim held by `holder` (as read from
            /// [`Self::producer_holder`]), so a new producer can be taken. Returns `false` if
            /// the claim was not held by `holder` any more (nothing is changed then).
            ///
            /// This is the hook for liveness code: the bridge calls it once it knows, from
            /// something the kernel releases when a process dies (an OFD lock, a socket EOF),
            /// that the holder's process is gone. The next producer resumes after the last
            /// element (or record) that was fully written.
            ///
            /// # Safety
            ///
            /// The handle that holds the claim must never be used again: it must belong to a
            /// process that has died. Two live producers on one ring write the same slots.
            pub unsafe fn force_release_producer(&self, holder: u64) -> bool {
                crate::sync::claim::force_release_side(self.storage.header(), Role::Producer, holder)
            }

            /// Frees the consumer claim held by `holder`; see
            /// [`Self::force_release_producer`]. The next consumer resumes at the last
            /// published `head`, so it may see again what the dead consumer was reading.
            ///
            /// # Safety
            ///
            /// The handle that holds the claim must never be used again (its process has
            /// died).
            pub unsafe fn force_release_consumer(&self, holder: u64) -> bool {
                crate::sync::claim::force_release_side(self.storage.header(), Role::Consumer, holder)
            }
        }
    };
}
pub(crate) use claim_controls;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_nonzero() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_ne!(a, 0);
        assert_eq!(a >> 32, u64::from(std::process::id()));
    }

    #[test]
    fn take_release_force() {
        let w = AtomicU64::new(0);
        let t = take(&w).unwrap();
        assert_eq!(take(&w), Err(t));
        assert_eq!(holder(&w), Some(t));
        assert!(!force_release(&w, t ^ 1));
        assert!(force_release(&w, t));
        let t2 = take(&w).unwrap();
        release(&w, t); // a stale token must not free the new holder's claim
        assert_eq!(holder(&w), Some(t2));
        release(&w, t2);
        assert_eq!(holder(&w), None);
    }
}
