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
//! 128-byte line. Each slot is a whole cache line (or several, for elements over 56 bytes):
//! neighbouring positions are handled by different handles at the same moment, and a
//! shared line would bounce between them on every claim. `docs/layout.md` has the byte map.
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
//!   [`MpmcStats::skipped`], and consumers step over the position.
//! - A producer created with [`Producer::with_recovery`] that finds the slot at `tail` still
//!   held by a consumer (`head` has passed the previous lap's position but the slot was not
//!   released) for longer than its patience does the same with the consumer entries, and
//!   releases the slot for the next lap, counted in [`MpmcStats::released`].
//! - Publishing and releasing are compare-and-swaps from the claimed sequence, so a late
//!   publish racing a poison (or a late release racing a recovery) has exactly one winner.
//!   A loser learns it: its call returns [`Error::ClaimRevoked`] and the shared
//!   [`MpmcStats::revoked`] counts it. Its element is not delivered (a push) or is dropped
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
//! If the liveness check wrongly calls a live owner dead, nothing is duplicated or
//! invented either: that owner's claim is revoked and its call reports it. If no owner
//! entry covers a stuck position (only a hostile peer can cause that) nothing is poisoned:
//! the ring stays stuck there, but every call still returns.
//!
//! Owner entries are freed when their handle drops. The entries of dead processes stay
//! taken until [`MpmcRing::reclaim_dead_owners`] frees those whose claims are resolved.
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
//! use shm_queue::mpmc::MpmcRing;
//! use shm_region::Region;
//!
//! let region = Region::anonymous(MpmcRing::<u64>::required_bytes(1024)?)?;
//! let ring = MpmcRing::<u64>::create(region, 1024)?;
//! let mut tx = ring.producer()?;
//! let mut tx2 = tx.clone(); // any number of producers, in any number of processes
//! // A consumer that skips the claims of dead producers after 100 ms (here: nobody dies).
//! let mut rx = ring
//!     .consumer()?
//!     .with_recovery(|_token: u64| false, Duration::from_millis(100));
//!
//! tx.try_push(1)?;
//! tx2.push_partial_slice(&[2, 3])?;
//! assert_eq!(rx.try_pop()?, 1);
//! let mut buf = [0u64; 4];
//! assert_eq!(rx.pop_partial_slice(&mut buf)?, 2);
//! assert_eq!(&buf[..2], &[2, 3]);
//! assert_eq!(ring.stats().skipped, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub(crate) mod mem;

use core::cell::Cell;
use core::fmt;
use std::time::{Duration, Instant};

use bytemuck::Pod;

use crate::error::{corrupted, Error};
use crate::header::{RingKind, MAX_POSITION};
use crate::sync::{Arc, Ordering};
use crate::wait::{ReadinessFd, Signal, WaitStrategy};
use mem::{Layout, Slots, ROLE_CONSUMER, ROLE_PRODUCER};

#[cfg(not(loom))]
use shm_region::Region;

/// The bit that marks a skipped position in a slot's sequence word.
const POISON: u64 = 1 << 63;

/// Bound on the retries of one call (lost compare-and-swaps, stale positions, skipped
/// poisoned slots). Only reached under extreme contention or with a hostile peer; the call
/// then returns as if the ring were full or empty.
const RETRIES: usize = 1 << 12;

/// Owner-table entries a ring gets unless [`MpmcOptions::owners`] says otherwise.
pub const DEFAULT_OWNERS: usize = 64;

/// Decides whether the owner of a claim is dead. Supplied by the caller: this crate knows
/// nothing of processes (the bridge answers with OFD locks; a test may answer with the pid
/// it killed).
///
/// It must never call a live owner dead (see [`Error::ClaimRevoked`] for what happens if it
/// does). It is called only for claims stuck longer than the handle's patience.
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
pub struct MpmcStats {
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

/// Options for [`MpmcRing::create_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "options do nothing until passed to a constructor"]
pub struct MpmcOptions {
    capacity: usize,
    owners: usize,
    reinitialize: bool,
}

impl MpmcOptions {
    /// A ring of at least `capacity` slots (rounded up to a power of two, at least 2) with
    /// [`DEFAULT_OWNERS`] owner entries.
    pub fn new(capacity: usize) -> Self {
        MpmcOptions {
            capacity,
            owners: DEFAULT_OWNERS,
            reinitialize: false,
        }
    }

    /// The number of owner-table entries: how many producer and consumer handles may exist
    /// at once, all processes together (1 to 4096; each costs 128 bytes).
    pub fn owners(mut self, owners: usize) -> Self {
        self.owners = owners;
        self
    }

    /// Initialise even if the region already holds a ring; see
    /// [`crate::spsc::CreateOptions::reinitialize`].
    ///
    /// # Safety
    ///
    /// As [`crate::spsc::CreateOptions::reinitialize`]: with `yes`, no previous user of the
    /// region may use its handles again.
    pub unsafe fn reinitialize(mut self, yes: bool) -> Self {
        self.reinitialize = yes;
        self
    }

    fn layout<T>(&self) -> Result<Layout, Error> {
        let cap = self
            .capacity
            .max(mem::MIN_CAPACITY)
            .checked_next_power_of_two()
            .ok_or(Error::BadCapacity {
                blocks: self.capacity as u64,
                max_blocks: mem::MAX_CAPACITY as u64,
                reason: "too large",
            })?;
        Layout::new::<T>(cap, self.owners)
    }
}

/// A handle to an MPMC ring: makes [`Producer`]s and [`Consumer`]s. Cheap to clone; keeps
/// the region mapped while it or any handle lives.
pub struct MpmcRing<T: Pod> {
    mem: Arc<Slots<T>>,
}

impl<T: Pod> Clone for MpmcRing<T> {
    fn clone(&self) -> Self {
        MpmcRing {
            mem: self.mem.clone(),
        }
    }
}

impl<T: Pod> fmt::Debug for MpmcRing<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpmcRing")
            .field("capacity", &self.capacity())
            .field("owners", &self.mem.layout.owners)
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(not(loom))]
impl<T: Pod> MpmcRing<T> {
    /// Bytes a region needs for a ring of at least `capacity` elements of `T` with
    /// [`DEFAULT_OWNERS`] owner entries.
    ///
    /// # Errors
    ///
    /// [`Error::BadCapacity`] above 2^36 slots, [`Error::UnsupportedType`] for a zero-sized
    /// `T` or one aligned to more than 64 bytes.
    ///
    /// ```
    /// use shm_queue::mpmc::MpmcRing;
    /// // Header, counters line, 64 owner entries of 128 bytes, 1024 slots of 64 bytes.
    /// assert_eq!(MpmcRing::<u64>::required_bytes(1000)?, 512 + 128 + 64 * 128 + 1024 * 64);
    /// # Ok::<(), shm_queue::Error>(())
    /// ```
    pub fn required_bytes(capacity: usize) -> Result<usize, Error> {
        Self::required_bytes_with(MpmcOptions::new(capacity))
    }

    /// Bytes a region needs for a ring made with `options`.
    ///
    /// # Errors
    ///
    /// As [`MpmcRing::required_bytes`], and [`Error::BadOwnerCount`].
    pub fn required_bytes_with(options: MpmcOptions) -> Result<usize, Error> {
        Ok(options.layout::<T>()?.area_size())
    }

    /// Creates a ring of at least `capacity` elements at the start of `region`.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyInitialized`] if the region already holds a ring (see
    /// [`MpmcOptions::reinitialize`]); [`Error::RegionTooSmall`]; those of
    /// [`MpmcRing::required_bytes`].
    ///
    /// ```
    /// use shm_queue::{mpmc::MpmcRing, Error};
    /// use shm_region::Region;
    /// use std::sync::Arc;
    ///
    /// let region = Arc::new(Region::anonymous(MpmcRing::<u32>::required_bytes(100)?)?);
    /// let ring = MpmcRing::<u32>::create(region.clone(), 100)?;
    /// assert_eq!(ring.capacity(), 128);
    /// assert!(matches!(
    ///     MpmcRing::<u32>::create(region, 100),
    ///     Err(Error::AlreadyInitialized { .. })
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(region: impl Into<Arc<Region>>, capacity: usize) -> Result<Self, Error> {
        Self::create_with(region, MpmcOptions::new(capacity))
    }

    /// Creates a ring with explicit [`MpmcOptions`].
    ///
    /// # Errors
    ///
    /// As [`MpmcRing::create`], and [`Error::BadOwnerCount`].
    pub fn create_with(
        region: impl Into<Arc<Region>>,
        options: MpmcOptions,
    ) -> Result<Self, Error> {
        let layout = options.layout::<T>()?;
        Self::initialise(Slots::in_region(region.into(), layout)?, options)
    }

    /// Attaches to the MPMC ring at the start of `region`, checking every header field
    /// against the region's length and `T`.
    ///
    /// # Errors
    ///
    /// A distinct variant for each thing that can be wrong: [`Error::RegionTooSmall`],
    /// [`Error::NotReady`], [`Error::BadMagic`], [`Error::VersionMismatch`],
    /// [`Error::KindMismatch`], [`Error::TypeMismatch`], [`Error::UnsupportedType`],
    /// [`Error::BadCapacity`], [`Error::BadOwnerCount`], [`Error::LayoutMismatch`], and
    /// [`Error::Corrupted`] when the recorded positions are impossible.
    ///
    /// ```
    /// use shm_queue::mpmc::MpmcRing;
    /// use shm_region::Region;
    /// use std::sync::Arc;
    ///
    /// let region = Arc::new(Region::anonymous(MpmcRing::<u64>::required_bytes(64)?)?);
    /// let mut tx = MpmcRing::<u64>::create(region.clone(), 64)?.producer()?;
    /// let ring = MpmcRing::<u64>::attach(region.clone())?;
    /// tx.try_push(5)?;
    /// assert_eq!(ring.consumer()?.try_pop()?, 5);
    /// assert!(MpmcRing::<f64>::attach(region).is_err()); // the element type is checked
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn attach(region: impl Into<Arc<Region>>) -> Result<Self, Error> {
        let region = region.into();
        let layout = crate::mem::header_of(&region)?.validate_mpmc::<T>(region.len() as u64)?;
        let mem = Slots::in_region(region, layout)?;
        let h = mem.header();
        let tail = h.producer.pos.load(Ordering::Acquire);
        let head = h.consumer.pos.load(Ordering::Acquire);
        check_pos(head, "consumer position (head)")?;
        let max = head + layout.capacity() as u64;
        if tail > max {
            return Err(corrupted("producer position (tail)", tail, 0, max));
        }
        Ok(MpmcRing { mem: Arc::new(mem) })
    }

    /// The region the ring lives in.
    pub fn region(&self) -> &Arc<Region> {
        self.mem.region()
    }
}

#[cfg(loom)]
impl<T: Pod> MpmcRing<T> {
    /// A ring of `capacity` slots and `owners` owner entries in heap memory, for loom
    /// models (only with `cfg(loom)`).
    ///
    /// # Errors
    ///
    /// As [`MpmcRing::create`].
    pub fn new_model(capacity: usize, owners: usize) -> Result<Self, Error> {
        let options = MpmcOptions::new(capacity).owners(owners);
        Self::initialise(Slots::on_heap(options.layout::<T>()?)?, options)
    }
}

impl<T: Pod> MpmcRing<T> {
    fn initialise(mem: Slots<T>, options: MpmcOptions) -> Result<Self, Error> {
        let layout = mem.layout;
        let header = mem.header();
        header.begin_init(options.reinitialize)?;
        header.write_config(&layout.geom, RingKind::Mpmc, options.capacity as u64);
        let r = Ordering::Relaxed;
        let c = &header.config;
        c.area_size.store(layout.area_size() as u64, r);
        c.reserved1[0].store(layout.owners as u64, r);
        let k = mem.counters();
        for w in [&k.skipped, &k.released, &k.revoked] {
            w.store(0, r);
        }
        for e in (0..layout.owners).filter_map(|i| mem.owner(i)) {
            for w in [&e.token, &e.role, &e.claim_start, &e.claim_len] {
                w.store(0, r);
            }
        }
        for p in 0..layout.capacity() as u64 {
            mem.seq(p).store(p, r);
        }
        header.publish_ready();
        Ok(MpmcRing { mem: Arc::new(mem) })
    }

    /// Capacity in elements (a power of two).
    pub fn capacity(&self) -> usize {
        self.mem.layout.capacity()
    }

    /// Number of owner-table entries: the most handles that can exist at once.
    pub fn owner_entries(&self) -> usize {
        self.mem.layout.owners
    }

    /// Elements claimed by producers and not yet claimed by consumers: approximate, see
    /// [`Producer::len`].
    pub fn len(&self) -> usize {
        approx_len(&self.mem)
    }

    /// `true` if [`MpmcRing::len`] is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What recovery has done on this ring since it was created (shared by all processes).
    ///
    /// ```
    /// # use shm_queue::mpmc::MpmcRing;
    /// # let region = shm_region::Region::anonymous(MpmcRing::<u8>::required_bytes(4)?)?;
    /// let ring = MpmcRing::<u8>::create(region, 4)?;
    /// assert_eq!(ring.stats().skipped, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> MpmcStats {
        let k = self.mem.counters();
        let r = Ordering::Relaxed;
        MpmcStats {
            skipped: k.skipped.load(r),
            released: k.released.load(r),
            revoked: k.revoked.load(r),
        }
    }

    /// A producer handle with a fresh owner token (this process's pid in the high 32 bits,
    /// a per-process counter in the low 32), registered in the owner table now.
    ///
    /// # Errors
    ///
    /// [`Error::OwnerTableFull`] when every owner entry is taken.
    pub fn producer(&self) -> Result<Producer<T>, Error> {
        self.producer_with_token(new_token())
    }

    /// A producer handle that registers under `token`: the value the [`Liveness`] check
    /// will be asked about. Use one token per process (or per liveness unit).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOwnerToken`] for 0; [`Error::OwnerTableFull`].
    pub fn producer_with_token(&self, token: u64) -> Result<Producer<T>, Error> {
        Ok(Producer {
            h: Handle::new(self.mem.clone(), token, ROLE_PRODUCER)?,
        })
    }

    /// A consumer handle with a fresh owner token; see [`MpmcRing::producer`].
    ///
    /// # Errors
    ///
    /// [`Error::OwnerTableFull`] when every owner entry is taken.
    pub fn consumer(&self) -> Result<Consumer<T>, Error> {
        self.consumer_with_token(new_token())
    }

    /// A consumer handle that registers under `token`; see
    /// [`MpmcRing::producer_with_token`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOwnerToken`] for 0; [`Error::OwnerTableFull`].
    pub fn consumer_with_token(&self, token: u64) -> Result<Consumer<T>, Error> {
        Ok(Consumer {
            h: Handle::new(self.mem.clone(), token, ROLE_CONSUMER)?,
        })
    }

    /// Frees the owner entries of dead processes whose claims are resolved (every position
    /// they claimed has since been consumed or skipped, or released and reused). Returns how
    /// many it freed. Entries whose claim is still stuck are kept: the recovery of that
    /// claim needs them.
    pub fn reclaim_dead_owners(&self, liveness: &dyn Liveness) -> usize {
        let m = &*self.mem;
        let cap = m.layout.capacity() as u64;
        let head = m.header().consumer.pos.load(Ordering::Acquire);
        let tail = m.header().producer.pos.load(Ordering::Acquire);
        let mut freed = 0;
        for e in (0..m.layout.owners).filter_map(|i| m.owner(i)) {
            let token = e.token.load(Ordering::Acquire);
            if token == 0 {
                continue;
            }
            let start = e.claim_start.load(Ordering::Relaxed);
            let len = e.claim_len.load(Ordering::Relaxed).min(cap);
            let end = start.saturating_add(len);
            let resolved = len == 0
                || match e.role.load(Ordering::Relaxed) {
                    ROLE_PRODUCER => end <= head,
                    ROLE_CONSUMER => end.saturating_add(cap) <= tail,
                    _ => true,
                };
            if resolved
                && liveness.is_dead(token)
                && e.token
                    .compare_exchange(token, 0, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                freed += 1;
            }
        }
        freed
    }
}

/// Position check: at most [`MAX_POSITION`], so `pos + capacity` and `POISON | pos` are exact.
#[inline]
fn check_pos(pos: u64, what: &'static str) -> Result<(), Error> {
    if pos > MAX_POSITION {
        Err(corrupted(what, pos, 0, MAX_POSITION))
    } else {
        Ok(())
    }
}

/// `tail - head`, clamped to `0..=capacity`.
fn approx_len<T: Pod>(m: &Slots<T>) -> usize {
    let head = m.header().consumer.pos.load(Ordering::Acquire);
    let tail = m.header().producer.pos.load(Ordering::Acquire);
    tail.saturating_sub(head).min(m.layout.capacity() as u64) as usize
}

/// A fresh owner token: our pid in the high half, a per-process counter in the low half.
fn new_token() -> u64 {
    static NEXT: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(1);
    let n = NEXT
        .fetch_add(1, core::sync::atomic::Ordering::Relaxed)
        .max(1);
    (u64::from(std::process::id()) << 32) | u64::from(n)
}

/// Where the sequence word of `pos`'s slot says the slot is, for the side at `pos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seq {
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
fn level(seq: u64) -> u64 {
    if seq & POISON != 0 {
        (seq & !POISON) + 1
    } else {
        seq
    }
}

/// For a producer at `t` (which expects `t`).
#[inline]
fn producer_view(seq: u64, t: u64) -> Seq {
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
fn consumer_view(seq: u64, h: u64) -> Seq {
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

/// A recovery configuration: the liveness check and the patience.
#[derive(Clone)]
struct Recovery {
    liveness: std::sync::Arc<dyn Liveness + Send + Sync>,
    patience: Duration,
}

/// Since when this handle has seen one position stuck.
#[derive(Debug, Clone, Copy, Default)]
struct Stuck {
    pos: u64,
    since: Option<Instant>,
}

impl Stuck {
    /// Notes that `pos` is stuck; `true` once it has been for `patience`.
    fn due(cell: &Cell<Self>, pos: u64, patience: Duration) -> bool {
        let s = cell.get();
        match s.since {
            Some(t) if s.pos == pos => t.elapsed() >= patience,
            _ => {
                cell.set(Stuck {
                    pos,
                    since: Some(Instant::now()),
                });
                patience.is_zero()
            }
        }
    }

    /// Starts a new patience period for the same position (after a check found the owner
    /// alive).
    fn rearm(cell: &Cell<Self>) {
        let s = cell.get();
        cell.set(Stuck {
            pos: s.pos,
            since: Some(Instant::now()),
        });
    }
}

/// What producer and consumer handles share: the memory, the owner entry, recovery.
struct Handle<T: Pod> {
    mem: Arc<Slots<T>>,
    token: u64,
    role: u64,
    /// Our owner entry, once registered (clones register on first use).
    entry: Option<usize>,
    recovery: Option<Recovery>,
    stuck: Cell<Stuck>,
    /// The `claim_len` last stored in our entry, to skip storing it again (single-element
    /// claims store only `claim_start`).
    recorded_len: Cell<u64>,
    /// How the blocking calls wait.
    strategy: WaitStrategy,
    /// Whether this handle is counted among its side's sleepers.
    sleeper: bool,
    /// Producers: the consumers' readiness descriptor, if installed (shared by clones).
    readiness: ReadinessFd,
}

impl<T: Pod> Handle<T> {
    fn new(mem: Arc<Slots<T>>, token: u64, role: u64) -> Result<Self, Error> {
        if token == 0 {
            return Err(Error::InvalidOwnerToken);
        }
        let mut h = Handle {
            mem,
            token,
            role,
            entry: None,
            recovery: None,
            stuck: Cell::default(),
            recorded_len: Cell::new(0),
            strategy: WaitStrategy::default(),
            sleeper: false,
            readiness: ReadinessFd::default(),
        };
        h.entry()?;
        Ok(h)
    }

    /// The words this handle waits on: space for a producer, data for a consumer.
    fn own_signal(&self) -> Signal<'_> {
        let header = self.mem.header();
        if self.role == ROLE_PRODUCER {
            header.space_signal()
        } else {
            header.data_signal()
        }
    }

    fn set_strategy(&mut self, strategy: WaitStrategy) {
        let mut sleeper = self.sleeper;
        self.own_signal().set_strategy(&mut sleeper, strategy);
        self.sleeper = sleeper;
        self.strategy = strategy;
    }

    /// Our owner entry's index, registering first if needed.
    #[inline]
    fn entry(&mut self) -> Result<usize, Error> {
        if let Some(i) = self.entry {
            return Ok(i);
        }
        let m = &*self.mem;
        for i in 0..m.layout.owners {
            let Some(e) = m.owner(i) else { break };
            if e.token.load(Ordering::Relaxed) == 0
                && e.token
                    .compare_exchange(0, self.token, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                // The previous holder's claim (if any) is resolved, so a peer reading it
                // together with our token in the meantime learns nothing wrong.
                e.claim_len.store(0, Ordering::Relaxed);
                e.role.store(self.role, Ordering::Relaxed);
                self.recorded_len.set(0);
                self.entry = Some(i);
                return Ok(i);
            }
        }
        Err(Error::OwnerTableFull {
            entries: m.layout.owners as u64,
        })
    }

    /// Records in entry `i` that we are about to claim `len` positions from `start`. The
    /// `Release` of the claiming compare-and-swap publishes it.
    #[inline]
    fn record(&self, i: usize, start: u64, len: u64) {
        if let Some(e) = self.mem.owner(i) {
            // Start first: while len is still the previous claim's, the entry may cover a
            // position we never held, which can only delay a recovery, never allow a wrong
            // one (see `owners_dead`).
            e.claim_start.store(start, Ordering::Relaxed);
            if self.recorded_len.get() != len {
                e.claim_len.store(len, Ordering::Relaxed);
                self.recorded_len.set(len);
            }
        }
    }

    /// Clears the record after a claim attempt failed, so a stale record of ours never
    /// covers a position another handle holds (it would veto that handle's recovery).
    #[inline]
    fn clear(&self, i: usize) {
        if let Some(e) = self.mem.owner(i) {
            e.claim_len.store(0, Ordering::Relaxed);
            self.recorded_len.set(0);
        }
    }

    /// Whether every registered entry of `role` whose claim covers `pos` belongs to a dead
    /// owner (and there is at least one).
    fn owners_dead(&self, role: u64, pos: u64, liveness: &dyn Liveness) -> bool {
        let m = &*self.mem;
        let cap = m.layout.capacity() as u64;
        let mut found = false;
        for e in (0..m.layout.owners).filter_map(|i| m.owner(i)) {
            let token = e.token.load(Ordering::Acquire);
            if token == 0 || e.role.load(Ordering::Relaxed) != role {
                continue;
            }
            let start = e.claim_start.load(Ordering::Relaxed);
            let len = e.claim_len.load(Ordering::Relaxed).min(cap);
            if pos < start || pos - start >= len {
                continue;
            }
            if !liveness.is_dead(token) {
                return false;
            }
            found = true;
        }
        found
    }

    /// Consumer side: `pos` at `head` is claimed (`tail > pos`) but unpublished. If it has
    /// been for the patience and its owners are dead, poisons it. `true` if the slot
    /// changed (poisoned by us, or published meanwhile): look again.
    fn recover_producer_claim(&self, pos: u64) -> bool {
        let Some(rec) = &self.recovery else {
            return false;
        };
        if !Stuck::due(&self.stuck, pos, rec.patience) {
            return false;
        }
        if !self.owners_dead(ROLE_PRODUCER, pos, &*rec.liveness) {
            Stuck::rearm(&self.stuck);
            return false;
        }
        let m = &*self.mem;
        if m.seq(pos)
            .compare_exchange(pos, POISON | pos, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            m.counters().skipped.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    /// Producer side: the slot of `t` still holds `q = t - capacity`, which a consumer has
    /// claimed (`head > q`) and not released (`seq` is `q + 1` or `POISON | q`). If that has
    /// lasted the patience and its owners are dead, releases the slot for `t`. `true` if the
    /// slot changed: look again.
    fn recover_consumer_claim(&self, t: u64, seq: u64) -> bool {
        let Some(rec) = &self.recovery else {
            return false;
        };
        let m = &*self.mem;
        let cap = m.layout.capacity() as u64;
        let Some(q) = t.checked_sub(cap) else {
            return false;
        };
        if (seq != q + 1 && seq != POISON | q)
            || m.header().consumer.pos.load(Ordering::Acquire) <= q
        {
            return false;
        }
        if !Stuck::due(&self.stuck, q, rec.patience) {
            return false;
        }
        if !self.owners_dead(ROLE_CONSUMER, q, &*rec.liveness) {
            Stuck::rearm(&self.stuck);
            return false;
        }
        if m.seq(q)
            .compare_exchange(seq, t, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            && seq == q + 1
        {
            m.counters().released.fetch_add(1, Ordering::Relaxed);
        }
        true
    }
}

impl<T: Pod> Clone for Handle<T> {
    fn clone(&self) -> Self {
        let mut h = Handle {
            mem: self.mem.clone(),
            token: self.token,
            role: self.role,
            entry: None,
            recovery: self.recovery.clone(),
            stuck: Cell::default(),
            recorded_len: Cell::new(0),
            strategy: self.strategy,
            sleeper: false,
            readiness: self.readiness.clone(),
        };
        // A clone that may sleep counts itself, so publishers keep waking it.
        let strategy = h.strategy;
        h.set_strategy(strategy);
        h
    }
}

impl<T: Pod> Drop for Handle<T> {
    fn drop(&mut self) {
        let mut sleeper = self.sleeper;
        self.own_signal().unregister(&mut sleeper);
        if let Some(e) = self.entry.and_then(|i| self.mem.owner(i)) {
            e.claim_len.store(0, Ordering::Relaxed);
            // Only if still ours: a peer may have reclaimed it (judging us dead) and handed
            // it on.
            let _ = e
                .token
                .compare_exchange(self.token, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }
}

/// A producer handle of an [`MpmcRing`]. `Send` and `Clone`: make as many as you like, in
/// any process (each live handle takes one owner entry; a clone takes its own on first use).
pub struct Producer<T: Pod> {
    h: Handle<T>,
}

impl<T: Pod> Clone for Producer<T> {
    fn clone(&self) -> Self {
        Producer { h: self.h.clone() }
    }
}

impl<T: Pod> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("token", &self.h.token)
            .field("entry", &self.h.entry)
            .field("recovery", &self.h.recovery.as_ref().map(|r| r.patience))
            .finish()
    }
}

impl<T: Pod> Producer<T> {
    /// Turns on recovery of slots held by dead consumers: when the slot this producer needs
    /// is still held by a consumer after `patience`, it asks `liveness` about the owners
    /// and, if they are all dead, releases the slot (see the module documentation). Clones
    /// share the setting.
    pub fn with_recovery(
        mut self,
        liveness: impl Liveness + Send + Sync + 'static,
        patience: Duration,
    ) -> Self {
        self.h.recovery = Some(Recovery {
            liveness: std::sync::Arc::new(liveness),
            patience,
        });
        self
    }

    /// The owner token this handle registers under.
    pub fn token(&self) -> u64 {
        self.h.token
    }

    /// Claims one position (recording it first) and returns it; the element is not written.
    #[inline]
    fn claim(&mut self) -> Result<u64, Error> {
        let i = self.h.entry()?;
        let tail = &self.h.mem.header().producer.pos;
        let mut t = tail.load(Ordering::Relaxed);
        for _ in 0..RETRIES {
            check_pos(t, "producer position (tail)")?;
            let seq = self.h.mem.seq(t).load(Ordering::Acquire);
            match producer_view(seq, t) {
                Seq::Mine => {
                    self.h.record(i, t, 1);
                    match tail.compare_exchange(t, t + 1, Ordering::Release, Ordering::Relaxed) {
                        Ok(_) => return Ok(t),
                        Err(now) => {
                            self.h.clear(i);
                            t = now;
                        }
                    }
                }
                Seq::Behind => {
                    if self.h.recover_consumer_claim(t, seq) {
                        continue;
                    }
                    return Err(Error::Full {
                        requested: 1,
                        available: 0,
                    });
                }
                Seq::Ahead | Seq::Poisoned => {
                    let now = tail.load(Ordering::Relaxed);
                    if now == t {
                        // Honest peers never leave a sequence ahead of an unmoved tail.
                        return Err(corrupted("slot sequence", seq, t - t.min(1), t));
                    }
                    t = now;
                }
            }
        }
        Err(Error::Full {
            requested: 1,
            available: 0,
        })
    }

    /// Publishes the element at claimed position `t`; `false` if a consumer poisoned it
    /// first (it was judged dead).
    #[inline]
    fn publish(&self, t: u64) -> bool {
        let m = &*self.h.mem;
        let ok = m
            .seq(t)
            .compare_exchange(t, t + 1, Ordering::Release, Ordering::Relaxed)
            .is_ok();
        if !ok {
            m.counters().revoked.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Pushes one element.
    ///
    /// # Errors
    ///
    /// [`Error::Full`] if the slot at the tail is not free yet (retry later; also after
    /// 4096 lost races in one call); [`Error::OwnerTableFull`] for a clone that finds no
    /// owner entry; [`Error::ClaimRevoked`] if a consumer's liveness check declared this
    /// process dead and skipped the element; [`Error::Corrupted`] for impossible shared
    /// words.
    ///
    /// ```
    /// # use shm_queue::{mpmc::MpmcRing, Error};
    /// # let region = shm_region::Region::anonymous(MpmcRing::<u32>::required_bytes(2)?)?;
    /// let ring = MpmcRing::<u32>::create(region, 2)?;
    /// let mut tx = ring.producer()?;
    /// tx.try_push(1)?;
    /// tx.try_push(2)?;
    /// assert!(matches!(tx.try_push(3), Err(Error::Full { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_push(&mut self, value: T) -> Result<(), Error> {
        let t = self.claim()?;
        // SAFETY: we claimed `t` (tail moved past it by our swap) after seeing its slot free
        // for `t` with Acquire, so no consumer reads it until we publish.
        unsafe { self.h.mem.write(t, value) };
        let published = self.publish(t);
        self.h
            .readiness
            .fire(self.h.mem.header().notify_data(self.h.readiness.is_some()));
        if published {
            Ok(())
        } else {
            Err(Error::ClaimRevoked {
                revoked: 1,
                completed: 0,
            })
        }
    }

    /// Pushes as many elements from the front of `src` as there are free slots in one run
    /// at the tail (at most the capacity), claiming them with one compare-and-swap; returns
    /// how many.
    ///
    /// # Errors
    ///
    /// As [`Producer::try_push`] when not even one slot is free;
    /// [`Error::ClaimRevoked`] if some of the batch was skipped by consumers that judged
    /// this process dead (the others were delivered; which ones is not reported).
    ///
    /// ```
    /// # use shm_queue::mpmc::MpmcRing;
    /// # let region = shm_region::Region::anonymous(MpmcRing::<u32>::required_bytes(4)?)?;
    /// let ring = MpmcRing::<u32>::create(region, 4)?;
    /// let mut tx = ring.producer()?;
    /// assert_eq!(tx.push_partial_slice(&[1, 2, 3, 4, 5, 6])?, 4);
    /// assert_eq!(ring.len(), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use = "the call may do only part of the work: check how many it did"]
    pub fn push_partial_slice(&mut self, src: &[T]) -> Result<usize, Error> {
        match src {
            [] => return Ok(0),
            [one] => return self.try_push(*one).map(|()| 1),
            _ => {}
        }
        let i = self.h.entry()?;
        let m = &*self.h.mem;
        let tail = &m.header().producer.pos;
        let want = src.len().min(m.layout.capacity()) as u64;
        let mut t = tail.load(Ordering::Relaxed);
        for _ in 0..RETRIES {
            check_pos(t, "producer position (tail)")?;
            let mut k = 0;
            while k < want && m.seq(t + k).load(Ordering::Acquire) == t + k {
                k += 1;
            }
            if k == 0 {
                break;
            }
            self.h.record(i, t, k);
            match tail.compare_exchange(t, t + k, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => {
                    let mut revoked = 0;
                    for (j, v) in src[..k as usize].iter().enumerate() {
                        let p = t + j as u64;
                        // SAFETY: as in try_push: positions t..t+k are ours, each seen free
                        // with Acquire before the claiming swap.
                        unsafe { m.write(p, *v) };
                        revoked += usize::from(!self.publish(p));
                    }
                    self.h
                        .readiness
                        .fire(self.h.mem.header().notify_data(self.h.readiness.is_some()));
                    return if revoked == 0 {
                        Ok(k as usize)
                    } else {
                        Err(Error::ClaimRevoked {
                            revoked,
                            completed: k as usize - revoked,
                        })
                    };
                }
                Err(now) => {
                    self.h.clear(i);
                    t = now;
                }
            }
        }
        // Nothing free at the tail (or a stale tail): the single path sorts it out.
        self.try_push(src[0]).map(|()| 1)
    }

    /// How this handle waits in the blocking calls (default [`WaitStrategy::spin_then_yield`]).
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.h.strategy
    }

    /// Sets how this handle waits in the blocking calls. Clones made afterwards inherit it.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.h.set_strategy(strategy);
    }

    /// Pushes one element, waiting for a free slot as the handle's [`WaitStrategy`] says,
    /// until `deadline` (`None`: no limit).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] at the deadline; [`Error::Closed`] if the ring is closed while
    /// waiting; the other errors of [`Producer::try_push`].
    pub fn push_blocking(&mut self, value: T, deadline: Option<Instant>) -> Result<(), Error> {
        match self.try_push(value) {
            Err(Error::Full { .. }) => {}
            done => return done,
        }
        let mem = self.h.mem.clone();
        let strategy = self.h.strategy;
        mem.header()
            .space_signal()
            .wait(strategy, deadline, "a free slot", || {
                crate::wait::pending(self.try_push(value))
            })
    }

    /// Pushes all of `src`, in batches as slots free up, waiting as the handle's
    /// [`WaitStrategy`] says, until `deadline`.
    ///
    /// # Errors
    ///
    /// `(pushed, error)`: how many were pushed before [`Error::Timeout`], [`Error::Closed`]
    /// or another error of [`Producer::push_partial_slice`] stopped it.
    pub fn push_slice_blocking(
        &mut self,
        src: &[T],
        deadline: Option<Instant>,
    ) -> Result<(), (usize, Error)> {
        let mut done = 0;
        let mut step = |this: &mut Self| -> Result<Option<()>, Error> {
            while done < src.len() {
                match this.push_partial_slice(&src[done..]) {
                    Ok(k) => done += k,
                    Err(Error::Full { .. }) => return Ok(None),
                    Err(e) => return Err(e),
                }
            }
            Ok(Some(()))
        };
        let first = step(self);
        match first {
            Ok(Some(())) => return Ok(()),
            Ok(None) => {}
            Err(e) => return Err((done, e)),
        }
        let mem = self.h.mem.clone();
        let strategy = self.h.strategy;
        mem.header()
            .space_signal()
            .wait(strategy, deadline, "free slots", || step(self))
            .map_err(|e| (done, e))
    }

    /// Installs (or removes) the consumers' readiness descriptor (see
    /// [`crate::wait::readiness_fd`]); clones made afterwards share it.
    pub fn set_readiness_fd(&mut self, fd: Option<std::os::fd::OwnedFd>) {
        self.h.readiness.set(fd);
    }

    /// How many times this handle has written to the readiness descriptor: once per arming
    /// it consumed (a consumer that arms and then finds no data waits for exactly that).
    pub fn readiness_signals(&self) -> u64 {
        self.h.readiness.signals()
    }

    /// Closes the ring: consumers drain what was pushed, then their blocking calls return
    /// [`Error::Closed`]; every sleeper is woken. Returns `false` if it was already closed.
    pub fn close(&self) -> bool {
        self.h.mem.header().close(1)
    }

    /// `true` once the ring has been closed.
    pub fn is_closed(&self) -> bool {
        self.h.mem.header().data_signal().is_closed()
    }

    /// Approximate number of elements in the ring: `tail - head` from two loads that other
    /// handles may move in between, clamped to `0..=capacity`. It counts claimed positions,
    /// so it includes elements still being written and excludes those being read.
    pub fn len(&self) -> usize {
        approx_len(&self.h.mem)
    }

    /// `true` if [`Producer::len`] is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Capacity in elements.
    pub fn capacity(&self) -> usize {
        self.h.mem.layout.capacity()
    }

    /// Test hook: claims a position and writes `value` without publishing it, as a producer
    /// killed at that moment would leave it. Returns the position.
    #[cfg(feature = "test-hooks")]
    pub fn claim_and_hold(&mut self, value: T) -> Result<u64, Error> {
        let t = self.claim()?;
        // SAFETY: as in try_push.
        unsafe { self.h.mem.write(t, value) };
        Ok(t)
    }

    /// Test hook: publishes a position returned by [`Producer::claim_and_hold`].
    ///
    /// # Safety
    ///
    /// `pos` came from `claim_and_hold` on this handle and was not published since; any
    /// other position could publish a slot another producer is still writing.
    #[cfg(feature = "test-hooks")]
    pub unsafe fn publish_held(&mut self, pos: u64) -> Result<(), Error> {
        if self.publish(pos) {
            Ok(())
        } else {
            Err(Error::ClaimRevoked {
                revoked: 1,
                completed: 0,
            })
        }
    }
}

/// A consumer handle of an [`MpmcRing`]. `Send` and `Clone`, like [`Producer`].
pub struct Consumer<T: Pod> {
    h: Handle<T>,
}

impl<T: Pod> Clone for Consumer<T> {
    fn clone(&self) -> Self {
        Consumer { h: self.h.clone() }
    }
}

impl<T: Pod> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("token", &self.h.token)
            .field("entry", &self.h.entry)
            .field("recovery", &self.h.recovery.as_ref().map(|r| r.patience))
            .finish()
    }
}

const EMPTY: Error = Error::Empty {
    requested: 1,
    available: 0,
};

impl<T: Pod> Consumer<T> {
    /// Turns on recovery of positions claimed by dead producers: when the element at the
    /// head is still unpublished after `patience`, asks `liveness` about the producers
    /// whose recorded claims cover it and, if all are dead, skips it (see the module
    /// documentation). Clones share the setting.
    ///
    /// ```
    /// use std::time::Duration;
    /// # use shm_queue::mpmc::MpmcRing;
    /// # let region = shm_region::Region::anonymous(MpmcRing::<u32>::required_bytes(4)?)?;
    /// let ring = MpmcRing::<u32>::create(region, 4)?;
    /// let mut dying = ring.producer()?;
    /// let dead_token = dying.token();
    /// dying.claim_and_hold(7)?; // as if killed between claim and publish
    /// ring.producer()?.try_push(8)?;
    ///
    /// let mut rx = ring
    ///     .consumer()?
    ///     .with_recovery(move |t: u64| t == dead_token, Duration::ZERO);
    /// assert_eq!(rx.try_pop()?, 8);
    /// assert_eq!(ring.stats().skipped, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_recovery(
        mut self,
        liveness: impl Liveness + Send + Sync + 'static,
        patience: Duration,
    ) -> Self {
        self.h.recovery = Some(Recovery {
            liveness: std::sync::Arc::new(liveness),
            patience,
        });
        self
    }

    /// The owner token this handle registers under.
    pub fn token(&self) -> u64 {
        self.h.token
    }

    /// Claims the next published position (recording it first), consuming any poisoned
    /// ones on the way, and returns it; the element is not read.
    #[inline]
    fn claim(&mut self) -> Result<u64, Error> {
        let i = self.h.entry()?;
        let cap = self.h.mem.layout.capacity() as u64;
        let head = &self.h.mem.header().consumer.pos;
        let mut h = head.load(Ordering::Relaxed);
        for _ in 0..RETRIES {
            check_pos(h, "consumer position (head)")?;
            let seq = self.h.mem.seq(h).load(Ordering::Acquire);
            match consumer_view(seq, h) {
                view @ (Seq::Mine | Seq::Poisoned) => {
                    self.h.record(i, h, 1);
                    match head.compare_exchange(h, h + 1, Ordering::Release, Ordering::Relaxed) {
                        Ok(_) if view == Seq::Mine => return Ok(h),
                        Ok(_) => {
                            // A skipped position: release its slot for the next lap.
                            let _ = self.h.mem.seq(h).compare_exchange(
                                seq,
                                h + cap,
                                Ordering::Release,
                                Ordering::Relaxed,
                            );
                            h += 1;
                        }
                        Err(now) => {
                            self.h.clear(i);
                            h = now;
                        }
                    }
                }
                Seq::Behind => {
                    let tail = self.h.mem.header().producer.pos.load(Ordering::Acquire);
                    if seq == h && tail > h && self.h.recover_producer_claim(h) {
                        continue;
                    }
                    return Err(EMPTY);
                }
                Seq::Ahead => {
                    let now = head.load(Ordering::Relaxed);
                    if now == h {
                        return Err(corrupted("slot sequence", seq, h, h + 1));
                    }
                    h = now;
                }
            }
        }
        Err(EMPTY)
    }

    /// Releases the slot of claimed position `h` for the next lap; `false` if a producer
    /// released it first (it judged us dead), in which case what we read may be torn.
    #[inline]
    fn release(&self, h: u64) -> bool {
        let m = &*self.h.mem;
        let cap = m.layout.capacity() as u64;
        let ok = m
            .seq(h)
            .compare_exchange(h + 1, h + cap, Ordering::Release, Ordering::Relaxed)
            .is_ok();
        if !ok {
            m.counters().revoked.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Pops one element.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] if no element is published at the head (retry later): nothing
    /// pushed, or the next element is still being written (or its producer died and
    /// recovery has not skipped it yet); [`Error::OwnerTableFull`] for a clone that finds
    /// no owner entry; [`Error::ClaimRevoked`] if a producer's liveness check declared this
    /// process dead and reused the slot while we read it; [`Error::Corrupted`].
    ///
    /// ```
    /// # use shm_queue::{mpmc::MpmcRing, Error};
    /// # let region = shm_region::Region::anonymous(MpmcRing::<u32>::required_bytes(4)?)?;
    /// let ring = MpmcRing::<u32>::create(region, 4)?;
    /// let mut rx = ring.consumer()?;
    /// assert!(matches!(rx.try_pop(), Err(Error::Empty { .. })));
    /// ring.producer()?.try_push(9)?;
    /// assert_eq!(rx.try_pop()?, 9);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_pop(&mut self) -> Result<T, Error> {
        let h = self.claim()?;
        // SAFETY: we claimed `h` (head moved past it by our swap) after seeing it published
        // with Acquire; no producer writes the slot until we release it.
        let v = unsafe { self.h.mem.read(h) };
        let released = self.release(h);
        self.h.mem.header().notify_space();
        if released {
            Ok(v)
        } else {
            Err(Error::ClaimRevoked {
                revoked: 1,
                completed: 0,
            })
        }
    }

    /// Pops up to `dst.len()` elements into the front of `dst`: the run published at the
    /// head, claimed with one compare-and-swap; returns how many.
    ///
    /// # Errors
    ///
    /// As [`Consumer::try_pop`] when not even one is ready; [`Error::ClaimRevoked`] if some
    /// slots of the batch were reused by producers that judged this process dead (the
    /// others are at the front of `dst`, counted in `completed`).
    ///
    /// ```
    /// # use shm_queue::mpmc::MpmcRing;
    /// # let region = shm_region::Region::anonymous(MpmcRing::<u32>::required_bytes(8)?)?;
    /// let ring = MpmcRing::<u32>::create(region, 8)?;
    /// ring.producer()?.push_partial_slice(&[1, 2, 3])?;
    /// let mut buf = [0; 8];
    /// assert_eq!(ring.consumer()?.pop_partial_slice(&mut buf)?, 3);
    /// assert_eq!(&buf[..3], &[1, 2, 3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use = "the call may do only part of the work: check how many it did"]
    pub fn pop_partial_slice(&mut self, dst: &mut [T]) -> Result<usize, Error> {
        if dst.len() <= 1 {
            let Some(d) = dst.first_mut() else {
                return Ok(0);
            };
            *d = self.try_pop()?;
            return Ok(1);
        }
        let i = self.h.entry()?;
        let m = &*self.h.mem;
        let head = &m.header().consumer.pos;
        let want = dst.len().min(m.layout.capacity()) as u64;
        let mut h = head.load(Ordering::Relaxed);
        for _ in 0..RETRIES {
            check_pos(h, "consumer position (head)")?;
            let mut k = 0;
            while k < want && m.seq(h + k).load(Ordering::Acquire) == h + k + 1 {
                k += 1;
            }
            if k == 0 {
                break;
            }
            self.h.record(i, h, k);
            match head.compare_exchange(h, h + k, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => {
                    let mut n = 0;
                    for p in h..h + k {
                        // SAFETY: as in try_pop: positions h..h+k are ours, each seen
                        // published with Acquire before the claiming swap.
                        let v = unsafe { m.read(p) };
                        if self.release(p) {
                            dst[n] = v;
                            n += 1;
                        }
                    }
                    self.h.mem.header().notify_space();
                    return if n as u64 == k {
                        Ok(n)
                    } else {
                        Err(Error::ClaimRevoked {
                            revoked: k as usize - n,
                            completed: n,
                        })
                    };
                }
                Err(now) => {
                    self.h.clear(i);
                    h = now;
                }
            }
        }
        dst[0] = self.try_pop()?;
        Ok(1)
    }

    /// How this handle waits in the blocking calls (default [`WaitStrategy::spin_then_yield`]).
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.h.strategy
    }

    /// Sets how this handle waits in the blocking calls. Clones made afterwards inherit it.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.h.set_strategy(strategy);
    }

    /// Pops one element, waiting as the handle's [`WaitStrategy`] says until one is ready
    /// or `deadline` passes (`None`: no limit).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] at the deadline; [`Error::Closed`] once the ring is closed and
    /// empty; the other errors of [`Consumer::try_pop`].
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use shm_queue::{mpmc::MpmcRing, wait::WaitStrategy, Error};
    ///
    /// let region = shm_region::Region::anonymous(MpmcRing::<u32>::required_bytes(8)?)?;
    /// let ring = MpmcRing::<u32>::create(region, 8)?;
    /// let mut rx = ring.consumer()?;
    /// rx.set_wait_strategy(WaitStrategy::blocking());
    /// let soon = Some(Instant::now() + Duration::from_millis(10));
    /// assert!(matches!(rx.pop_blocking(soon), Err(Error::Timeout { .. })));
    /// let tx = ring.producer()?;
    /// tx.close();
    /// assert!(matches!(rx.pop_blocking(None), Err(Error::Closed { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pop_blocking(&mut self, deadline: Option<Instant>) -> Result<T, Error> {
        match self.try_pop() {
            Err(Error::Empty { .. }) => {}
            done => return done,
        }
        let mem = self.h.mem.clone();
        let strategy = self.h.strategy;
        mem.header()
            .data_signal()
            .wait(strategy, deadline, "an element", || {
                crate::wait::pending(self.try_pop())
            })
    }

    /// Waits like [`Consumer::pop_blocking`] until at least one element is ready, then pops
    /// the run ready at the head, up to `dst.len()`; returns how many.
    ///
    /// # Errors
    ///
    /// As [`Consumer::pop_blocking`] and [`Consumer::pop_partial_slice`].
    #[must_use = "the call may do only part of the work: check how many it did"]
    pub fn pop_partial_slice_blocking(
        &mut self,
        dst: &mut [T],
        deadline: Option<Instant>,
    ) -> Result<usize, Error> {
        if dst.is_empty() {
            return Ok(0);
        }
        match self.pop_partial_slice(dst) {
            Err(Error::Empty { .. }) => {}
            done => return done,
        }
        let mem = self.h.mem.clone();
        let strategy = self.h.strategy;
        mem.header()
            .data_signal()
            .wait(strategy, deadline, "elements", || {
                crate::wait::pending(self.pop_partial_slice(dst))
            })
    }

    /// Arms the readiness descriptor the producers hold (see
    /// [`crate::wait::readiness_fd`]). Returns `true` if the element at the head is already
    /// published: then do not wait for the descriptor, pop now.
    pub fn arm_readiness(&mut self) -> bool {
        let m = &*self.h.mem;
        m.header().data_signal().arm();
        let h = m.header().consumer.pos.load(Ordering::Acquire);
        h <= MAX_POSITION && m.seq(h).load(Ordering::Acquire) == h + 1
    }

    /// Closes the ring from a consumer: producers blocked for space wake with
    /// [`Error::Closed`]. Returns `false` if it was already closed.
    pub fn close(&self) -> bool {
        self.h.mem.header().close(2)
    }

    /// `true` once the ring has been closed.
    pub fn is_closed(&self) -> bool {
        self.h.mem.header().data_signal().is_closed()
    }

    /// Approximate number of elements in the ring; see [`Producer::len`].
    pub fn len(&self) -> usize {
        approx_len(&self.h.mem)
    }

    /// `true` if [`Consumer::len`] is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Capacity in elements.
    pub fn capacity(&self) -> usize {
        self.h.mem.layout.capacity()
    }

    /// Test hook: claims the next element and returns it without releasing its slot, as a
    /// consumer killed at that moment would leave it. Returns the position and the value.
    #[cfg(feature = "test-hooks")]
    pub fn claim_and_hold(&mut self) -> Result<(u64, T), Error> {
        let h = self.claim()?;
        // SAFETY: as in try_pop.
        Ok((h, unsafe { self.h.mem.read(h) }))
    }
}

#[allow(dead_code)]
fn _assert_send<T: Pod + Send>() {
    fn send<X: Send>() {}
    send::<Producer<T>>();
    send::<Consumer<T>>();
    send::<MpmcRing<T>>();
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

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
