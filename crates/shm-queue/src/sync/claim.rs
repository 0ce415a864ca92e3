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

/// The current holder's token, if the side is taken.
pub(crate) fn holder(word: &AtomicU64) -> Option<u64> {
    let x = word.load(Ordering::Acquire);
    (x != 0).then_some(x)
}

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
