//! The per-slot sequence word (Vyukov's scheme): what each side reads in it, and the
//! position checks every claim makes.

use super::*;

/// The bit that marks a skipped position in a slot's sequence word.
pub(super) const POISON: u64 = 1 << 63;

/// Bound on the retries of one call (lost compare-and-swaps, stale positions, skipped
/// poisoned slots). Only reached under extreme contention or with a hostile peer; the call
/// then returns as if the ring were full or empty.
pub(super) const RETRIES: usize = 1 << 12;

/// Position check: at most [`MAX_POSITION`], so `pos + capacity` and `POISON | pos` are exact.
#[inline]
pub(super) fn check_pos(pos: u64, what: Word) -> Result<(), TryError> {
    if pos > MAX_POSITION {
        Err(corrupted(what, pos))
    } else {
        Ok(())
    }
}

/// Where the sequence word of `pos`'s slot says the slot is, for the side at `pos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seq {
    /// What this side waits for: free for the producer of `pos` / published for its
    /// consumer.
    Mine,
    /// Consumer side only: `pos` was poisoned; consume it as a skip.
    Poisoned,
    /// Not there yet: the other side (or a previous lap) still holds the slot.
    Behind,
    /// Past `pos`: the caller's position is stale.
    Ahead,
}

/// The sequence state as a number that grows monotonically through a slot's life:
/// `POISON | p` counts as `p + 1` (like a publish of `p`).
#[inline]
pub(super) fn level(seq: u64) -> u64 {
    if seq & POISON != 0 {
        (seq & !POISON) + 1
    } else {
        seq
    }
}

/// For a producer at `t` (which expects `t`).
#[inline]
pub(super) fn producer_view(seq: u64, t: u64) -> Seq {
    if seq == t {
        Seq::Mine
    } else if level(seq) < t {
        Seq::Behind
    } else {
        Seq::Ahead
    }
}

/// For a consumer at `h` (which expects `h + 1` or `POISON | h`).
#[inline]
pub(super) fn consumer_view(seq: u64, h: u64) -> Seq {
    if seq == h + 1 {
        Seq::Mine
    } else if seq == POISON | h {
        Seq::Poisoned
    } else if level(seq) <= h {
        Seq::Behind
    } else {
        Seq::Ahead
    }
}
