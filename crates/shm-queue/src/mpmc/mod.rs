//! A bounded multi-producer multi-consumer ring of `Pod` elements in shared memory, for any
//! number of producer and consumer handles in any number of processes, that survives a
//! process dying in the middle of a claim.
//!
//! # Algorithm
//!
//! Dmitry Vyukov's bounded MPMC queue. Positions are `u64` counts since creation that never
//! wrap; the capacity `C` is a power of two (at least 2) and position `p` lives in slot
//! `p mod C`. Every slot has a *sequence* word next to its element:
//!
//! | sequence of the slot of `p` | meaning |
//! |---|---|
//! | `p` | free for the producer of `p` (or claimed by it and not yet published) |
//! | `p + 1` | element `p` is published; free for the consumer of `p` |
//! | `POISON \| p` | position `p` was skipped (its producer died holding it) |
//! | `p + C` | consumed; free for the producer of `p + C` (the next lap) |
//!
//! - **Push.** A producer reads `tail` = `t` and the sequence of `t`'s slot with `Acquire`.
//!   If it is `t`, it records `t` in its owner entry (below) and claims `t` with a
//!   compare-and-swap of `tail` from `t` to `t + 1`, writes the element, and publishes it
//!   with a compare-and-swap of the sequence from `t` to `t + 1` (`Release`).
//! - **Pop.** A consumer mirrors it on `head`: a sequence of `h + 1` means ready; it records
//!   `h`, claims it by moving `head`, reads the element, and releases the slot with a
//!   compare-and-swap from `h + 1` to `h + C`.
//! - **Batches.** [`Producer::push_partial_slice`] and [`Consumer::pop_partial_slice`] claim a run of `k`
//!   positions with one compare-and-swap once all `k` slots show the right sequence
//!   (sequences only move forward, and nobody else can claim positions past the `tail` we
//!   read until our swap, so the check cannot go stale). One swap on the contended word
//!   per batch instead of one per element; the per-slot sequence stores remain.
//!
//! `tail` and `head` are the header's producer and consumer position words, each alone on a
//! 128-byte line. How the slots are spaced is chosen at creation ([`SlotLayout`]): each on
//! a cache line of its own (a line never bounces between handles working on neighbouring
//! positions), or packed two to four to a line (a quarter of the memory and of the line
//! transfers for a producer running ahead). `docs/layout.md` has the byte map.
//!
//! # A dead producer or consumer does not wedge the ring
//!
//! Plain Vyukov stops every consumer forever at a slot whose producer died between claiming
//! and publishing, and every producer a lap later at a slot whose consumer died between
//! claiming and releasing. This ring recovers both, without knowing anything of processes:
//!
//! - Every handle registers in an *owner table* in the shared memory (a fixed number of
//!   entries, chosen at creation) under an *owner token*, and stores the position(s) it is
//!   about to claim in its entry *before* the compare-and-swap that claims them. So whoever
//!   sees a position claimed (`tail > p`, or `head > p`) also sees who might hold it.
//! - A consumer created with [`Consumer::with_recovery`] that finds the slot at `head` still
//!   claimed but unpublished for longer than its *patience* asks the caller's [`Liveness`]
//!   check about every producer entry whose claim covers that position. If all of them are
//!   dead, it swaps the sequence from `p` to `POISON | p`, counts it in the shared
//!   [`Stats::skipped`], and consumers step over the position.
//! - A producer created with [`Producer::with_recovery`] that finds the slot at `tail` still
//!   held by a consumer (`head` has passed the previous lap's position but the slot was not
//!   released) for longer than its patience does the same with the consumer entries, and
//!   releases the slot for the next lap, counted in [`Stats::released`].
//! - Publishing and releasing are compare-and-swaps from the claimed sequence, so a late
//!   publish racing a poison (or a late release racing a recovery) has exactly one winner.
//!   A loser learns it: its call returns [`TryError::ClaimRevoked`] and the shared
//!   [`Stats::revoked`] counts it. Its element is not delivered (a push) or is dropped
//!   as possibly torn (a pop).
//!
//! **The guarantee**, given a `Liveness` check that never calls a live owner dead:
//!
//! - Never lost: any element whose push returned `Ok`. Never delivered twice, never
//!   invented: each position is consumed by at most one consumer, and a poisoned position
//!   is skipped, never read.
//! - What can be lost: at most the in-flight claims of a dead process: the positions its
//!   producers had claimed and not yet published (each counted once in `skipped`), and the
//!   elements its consumers had claimed and not yet released (each counted once in
//!   `released`; such an element may or may not have been processed before the death).
//! - When: a consumer (producer) that keeps polling with recovery on gets past a dead
//!   claim within `patience` of first seeing it stuck, plus one poll, plus the liveness
//!   check's own time. Without recovery configured the ring behaves as plain Vyukov.
//!
//! If the liveness check wrongly calls a live owner dead, that owner's claim is revoked and
//! its call reports it; nothing is duplicated or invented as long as that owner writes its
//! slot before the ring has gone a full lap past the position. A producer wrongly judged
//! dead and delayed a full lap between its claim and its write can overwrite the next
//! lap's element (nothing in a shared ring can stop a late write): the check must never be
//! wrong. If no owner
//! entry covers a stuck position (only a hostile peer can cause that) nothing is poisoned:
//! the ring stays stuck there, but every call still returns.
//!
//! Owner entries are freed when their handle drops. The entries of dead processes stay
//! taken until [`Ring::reclaim_dead_owners`] frees those whose claims are resolved.
//! A handle inherited across `fork()` must not be used by both processes (take new handles
//! in the child): two processes recording claims in one entry would confuse recovery.
//!
//! # A hostile peer
//!
//! Every word read from shared memory is classified before use: positions above 2^62, a
//! sequence that is ahead of a position that does not move, owner entries with impossible
//! claims are reported as [`Error::Corrupted`] or ignored. Slot and entry addresses are
//! always masked to the ring or bounded by the table size fixed at attach time, every retry
//! loop has a fixed bound, and elements are copied out, so garbage can garble messages or
//! stall the ring, but never make a call touch memory outside the region, panic or hang.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use shm_queue::mpmc::Ring;
//! use shm_region::Region;
//!
//! let region = Region::anonymous(Ring::<u64>::required_bytes(1024)?)?;
//! let ring = Ring::<u64>::create(region, 1024)?;
//! let mut tx = ring.producer()?;
//! let mut tx2 = tx.clone(); // any number of producers, in any number of processes
//! // A consumer that skips the claims of dead producers after 100 ms (here: nobody dies).
//! let mut rx = ring
//!     .consumer()?
//!     .with_recovery(|_token: u64| false, Duration::from_millis(100));
//!
//! tx.try_push(1)?;
//! assert_eq!(tx2.push_partial_slice(&[2, 3])?, 2);
//! assert_eq!(rx.try_pop()?, 1);
//! let mut buf = [0u64; 4];
//! assert_eq!(rx.pop_partial_slice(&mut buf)?, 2);
//! assert_eq!(&buf[..2], &[2, 3]);
//! assert_eq!(ring.stats().skipped, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub(crate) mod layout;

use core::cell::Cell;
use core::fmt;
use std::time::{Duration, Instant};

use bytemuck::Pod;

use crate::element::{Element, ElementType};

use crate::error::{corrupted, Error, TryError, Word};
use crate::header::{RingKind, MAX_POSITION};
use crate::sync::{Arc, Ordering};
use crate::wait::blocking::handle_controls;
use crate::wait::{ReadinessFd, Signal, WaitStrategy};
use layout::{Layout, Slots, ROLE_CONSUMER, ROLE_PRODUCER};

#[cfg(not(loom))]
use shm_region::Region;

mod claims;
mod consumer;
mod producer;
mod raw;
mod ring;
mod seq;

use crate::sync::claim::new_token;
use claims::{Handle, Recovery};
pub use consumer::Consumer;
pub use layout::SlotLayout;
pub use producer::Producer;
pub use ring::{Options, Ring};
use seq::{check_pos, consumer_view, producer_view, Seq, POISON, RETRIES};

/// Owner-table entries a ring gets unless [`Options::owners`] says otherwise.
pub const DEFAULT_OWNERS: usize = 64;

/// Decides whether the owner of a claim is dead. Supplied by the caller: this crate knows
/// nothing of processes (the bridge answers with OFD locks; a test may answer with the pid
/// it killed).
///
/// It must never call a live owner dead (see [`TryError::ClaimRevoked`] for what happens if it
/// does). It is called only for claims stuck longer than the handle's patience.
///
/// It must also learn of a death through something that orders the dead owner's last
/// writes before its answer: a lock or a system call (the bridge's OFD-lock query, a
/// `waitpid`), or an `Acquire` load of a word the dying side or its reaper stored with
/// `Release`. Recovery relies on it to read the dead owner's last claim.
///
/// Closures `Fn(u64) -> bool` implement it:
///
/// ```
/// use shm_queue::mpmc::Liveness;
/// let killed_pid = 4242u64;
/// let check = move |token: u64| token >> 32 == killed_pid;
/// assert!(check.is_dead(4242 << 32 | 1));
/// ```
pub trait Liveness {
    /// `true` if the process behind `owner_token` is known to be dead.
    fn is_dead(&self, owner_token: u64) -> bool;
}

impl<F: Fn(u64) -> bool> Liveness for F {
    fn is_dead(&self, owner_token: u64) -> bool {
        self(owner_token)
    }
}

/// What recovery did on a ring, counted in its shared memory since creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Positions poisoned because their producer was found dead after claiming them: each
    /// is at most one lost message.
    pub skipped: u64,
    /// Slots released because the consumer that claimed them was found dead: each is one
    /// message handed to a dead consumer.
    pub released: u64,
    /// Publishes or releases by live handles that lost the race against a recovery (the
    /// liveness check called a live owner dead).
    pub revoked: u64,
}

/// `tail - head`, clamped to `0..=capacity`.
fn approx_len<T: Element>(m: &Slots<T>) -> usize {
    let head = m.header().consumer.pos.load(Ordering::Acquire);
    let tail = m.header().producer.pos.load(Ordering::Acquire);
    tail.saturating_sub(head).min(m.layout.capacity() as u64) as usize
}

#[allow(dead_code)]
fn _assert_send<T: Element + Send>() {
    fn send<X: Send>() {}
    send::<Producer<T>>();
    send::<Consumer<T>>();
    send::<Ring<T>>();
}

/// Checks the shared positions an attach reads: `head` possible, `tail` at most a capacity
/// ahead of it.
pub(crate) fn check_positions(h: &crate::header::Header, capacity: u64) -> Result<(), TryError> {
    let tail = h.producer.pos.load(Ordering::Acquire);
    let head = h.consumer.pos.load(Ordering::Acquire);
    check_pos(head, Word::Head)?;
    if tail > head + capacity {
        return Err(corrupted(Word::Tail, tail));
    }
    Ok(())
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use claims::Stuck;

    #[test]
    fn views() {
        let cap = 4;
        // Producer at t = 8: its slot held 4 (published 4 = 5, poisoned 4, claimed 4 = 4).
        assert_eq!(producer_view(8, 8), Seq::Mine);
        assert_eq!(producer_view(5, 8), Seq::Behind);
        assert_eq!(producer_view(POISON | 4, 8), Seq::Behind);
        assert_eq!(producer_view(4, 8), Seq::Behind);
        assert_eq!(producer_view(9, 8), Seq::Ahead);
        assert_eq!(producer_view(POISON | 8, 8), Seq::Ahead);
        assert_eq!(producer_view(8 + cap, 8), Seq::Ahead);
        assert_eq!(producer_view(u64::MAX, 8), Seq::Ahead);
        // Consumer at h = 8.
        assert_eq!(consumer_view(9, 8), Seq::Mine);
        assert_eq!(consumer_view(POISON | 8, 8), Seq::Poisoned);
        assert_eq!(consumer_view(8, 8), Seq::Behind);
        assert_eq!(consumer_view(5, 8), Seq::Behind);
        assert_eq!(consumer_view(POISON | 4, 8), Seq::Behind);
        assert_eq!(consumer_view(12, 8), Seq::Ahead);
        assert_eq!(consumer_view(u64::MAX, 8), Seq::Ahead);
    }

    #[test]
    fn stuck_timer() {
        let s = Cell::new(Stuck::default());
        assert!(Stuck::due(&s, 3, Duration::ZERO));
        assert!(!Stuck::due(&s, 4, Duration::from_secs(60)));
        assert!(!Stuck::due(&s, 4, Duration::from_secs(60)));
        assert!(Stuck::due(&s, 4, Duration::ZERO));
        Stuck::rearm(&s);
        assert!(!Stuck::due(&s, 4, Duration::from_secs(60)));
    }
}
