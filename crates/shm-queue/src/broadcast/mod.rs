//! A broadcast ring: one publisher, many subscribers, each reading every element at its own
//! pace. The publisher writes each element once; a subscriber copies it out without the
//! publisher doing anything per subscriber.
//!
//! # Delivery modes, chosen at creation ([`Mode`])
//!
//! - **Lossless** ([`Mode::Lossless`]): the publisher never overwrites an element a live
//!   subscriber has not read. When the slowest subscriber is a whole ring behind, the
//!   publisher gets [`TryError::Full`] (its blocking calls wait), or, with
//!   [`SlowPolicy::Evict`], after that subscriber has not moved for the eviction time, the
//!   publisher evicts it and goes on; the evicted subscriber learns it on its next call as
//!   [`TryError::Evicted`] with the exact number of elements it lost, and carries on with the
//!   newest element (resuming at the oldest would put it a ring behind again at once).
//! - **Lossy** ([`Mode::Lossy`]): the publisher never waits. A subscriber that was overtaken
//!   gets [`TryError::Lagged`] with the exact number of elements it lost, then the oldest
//!   element still intact. It never returns a torn element.
//!
//! A new subscriber starts with the newest element, or with up to `n` earlier elements still
//! in the ring ([`Start::History`]). A subscriber's elements are guaranteed (in lossless mode)
//! from the position the publisher had reached when it joined; history older than that is
//! best effort and what the publisher overwrote before it saw the new subscriber is counted in
//! [`Subscriber::history_lost`], not reported as an error.
//!
//! # Algorithm
//!
//! The element area is the SPSC ring's (see [`crate::spsc`]): positions count elements since
//! creation, position `p` lives in block `(p / E) mod B`, and every block starts with a word
//! `P` holding a published position: `P > h` proves position `h` was written. A subscriber
//! at `h` loads `P` of `h`'s block only when its cached bound is used up, exactly as the
//! SPSC consumer does.
//!
//! What the SPSC ring's `head` does for one consumer, a *horizon* does for any number of
//! readers, in the manner of a seqlock: the publisher never writes position `q` unless the
//! shared `horizon` word is above `q`. It raises the horizon once per block (to the block's
//! end), with a `Release` fence after the store and before it writes the block. A subscriber
//! copies the element at `h` out of the ring, then `fence(Acquire)` and loads `horizon`: if
//! the copy saw any byte of a write to position `h + cap` or later (the writes that reuse
//! `h`'s slot), the fences order that write's horizon store before the load, so
//! `horizon > h + cap`. Hence a copy with `horizon <= h + cap` is exactly element `h`, never
//! torn, never a later lap's. A copy that fails the check is discarded: the subscriber was
//! overtaken and every position below `horizon - cap` is lost, every position at or above it
//! intact (writing `x` needs `horizon > x` and destroys only `x - cap`), so it resumes there
//! and reports the exact count, since positions are element numbers.
//!
//! The horizon moves in steps of a sixteenth of the ring (whole blocks, at least one): its
//! line changes once per step, so the load after each copy almost always hits the reader's
//! cache. A lossy reader is therefore counted as overtaken up to a step before its position
//! is actually overwritten, which is what "the oldest intact element" means here.
//!
//! **Lossless is lossy plus gating**: the publisher also keeps `horizon <= gate + cap`, where
//! `gate` is the smallest cursor of the live subscribers. Each subscriber stores its cursor
//! (the next position it will read) with `Release` after each read, in its own entry of a
//! subscriber table; the publisher rescans the table (loads with `Acquire`) only when the
//! horizon it needs would pass its cached `gate + cap`: at most one scan per ring of
//! elements while the subscribers keep up. So one read path, one validation, one proof.
//!
//! **Joining.** A subscriber takes a free entry, stores its cursor and state, then
//! `fence(SeqCst)`, then reads the publisher's `tail` (which the publisher stores after every
//! element); the publisher's rescan starts with `fence(SeqCst)`. Either the rescan sees the
//! new entry, or the new subscriber's `tail` is at least the `tail` the rescan ran at, which
//! bounds everything that rescan let the publisher overwrite. So nothing at or after the
//! `tail` a subscriber joined at is ever overwritten under it, with no fence on the
//! publisher's hot path. The entry's state is *joining* (it gates, but is not listed) until
//! its start is stored; only then does it turn *live*, so a publisher that sees a
//! subscriber live and then publishes writes something that subscriber will read.
//!
//! **Eviction and dead subscribers.** A lossless publisher that finds itself gated notes the
//! gating entry and its cursor; if the same cursor still gates it after the eviction time, it
//! moves the entry from joining or live to evicted with a compare-and-swap, then rescans. The horizon
//! store and `Release` fence that follow come before any overwrite, so a subscriber that read
//! an overwritten element also sees "evicted" (it checks its state on every call anyway). A
//! publisher given a [`Liveness`](crate::mpmc::Liveness) check with
//! [`Publisher::with_recovery`] asks it about the gating entry's token and frees the entry of
//! a dead process; [`Ring::reclaim_dead_subscribers`] does the same for every entry.
//!
//! # Waiting
//!
//! Subscribers wait with the usual strategies ([`crate::wait`]) on the header's data signal:
//! one futex word for all of them, so one publish wakes every sleeper with one `FUTEX_WAKE`,
//! and costs one relaxed load when no subscriber may sleep. A lossless publisher waits for
//! space on the space signal, which subscribers notify after they move their cursor.
//!
//! # A hostile peer
//!
//! Every word read from the mapping is checked before use: positions against
//! [`MAX_POSITION`], the horizon against what this side saw
//! before, cursors clamped to what the publisher wrote, states and table sizes against their
//! ranges. Slot addresses come from positions this side owns, masked to the ring. A hostile
//! peer can garble elements, or make a subscriber report losses or wait until its deadline;
//! never make this process read or write outside the ring, panic or hang.
//!
//! # Example
//!
//! ```
//! use shm_queue::broadcast::{Mode, Options, Ring, SlowPolicy, Start};
//! use shm_region::Region;
//!
//! let options = Options::new(64).subscribers(4).mode(Mode::Lossless(SlowPolicy::Wait));
//! let region = Region::anonymous(Ring::<u64>::required_bytes_with(&options)?)?;
//! let ring = Ring::<u64>::create_with(region, options)?;
//! let mut publisher = ring.publisher()?;
//! let (mut a, mut b) = (ring.subscriber(Start::Newest)?, ring.subscriber(Start::Newest)?);
//!
//! publisher.try_push(7)?;
//! publisher.push_partial_slice(&[8, 9])?;
//! assert_eq!(a.try_recv()?, 7);
//! assert_eq!(b.try_recv()?, 7);
//! let mut buf = [0u64; 4];
//! assert_eq!(a.recv_partial_slice(&mut buf)?, 2);
//! assert_eq!(&buf[..2], &[8, 9]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::fmt;
use std::time::Duration;

use bytemuck::Pod;

use crate::element::{Element, ElementType};
use crate::error::{corrupted, Error, TryError, Word};
use crate::header::{expect_field, round_up, Geometry, Header, RingKind, MAX_POSITION};
use crate::spsc::storage::Storage;
use crate::sync::{AtomicU64, Ordering};

#[cfg(not(loom))]
use shm_region::Region;

mod publisher;
mod ring;
mod subscriber;

pub use publisher::Publisher;
pub use ring::{Options, Ring};
pub use subscriber::{MessageGuard, Subscriber};

/// Bytes of a message slot's length word, before the message.
pub const MESSAGE_HEADER: usize = 8;

/// The element name of [`message_type`]: what a channel of byte messages records, so a
/// tool or a bridge can tell it from a channel of elements.
pub const MESSAGE_TYPE_NAME: &str = "shmlane.broadcast.message";

/// The element type of a broadcast ring of byte messages of up to `max_message` bytes
/// (rounded up to a multiple of 8, which is what the handles' `max_message()` report):
/// each element is a slot holding the message's length (a little-endian `u64`) and then
/// the message, padded to 8 bytes. Create the ring with
/// [`Ring::create_as`](Ring::create_as) and this type, attach with
/// [`Ring::attach_as`](Ring::attach_as) and the same type (the fingerprint covers the
/// maximum), then use [`Publisher::try_send_message`] and
/// [`Subscriber::try_recv_message`] or [`Subscriber::try_read_message`]. Every slot is
/// the maximum's size, whatever each message's length, as in iceoryx2's fixed-size chunks.
///
/// ```
/// use std::sync::Arc;
/// use shm_queue::broadcast::{self, Options, Ring, Start};
/// use shm_queue::Raw;
/// use shm_region::Region;
///
/// let ty = broadcast::message_type(100)?;
/// let opts = Options::new(64);
/// let region = Arc::new(Region::anonymous(Ring::<Raw>::required_bytes_as(&ty, &opts)?)?);
/// let ring = Ring::<Raw>::create_as(region, &ty, opts)?;
/// let (mut publisher, mut sub) = (ring.publisher()?, ring.subscriber(Start::Newest)?);
/// publisher.try_send_message(b"hello")?;
/// let mut buf = [0u8; 100];
/// let n = sub.try_recv_message(&mut buf)?;
/// assert_eq!(&buf[..n], b"hello");
/// publisher.try_send_message(b"in place")?;
/// let guard = sub.try_read_message()?;
/// let copy = guard.to_vec();
/// guard.release()?; // Ok: what was read is intact
/// assert_eq!(copy, b"in place");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`Error::UnsupportedType`] for a maximum over 2^30 - 8 bytes.
pub fn message_type(max_message: usize) -> Result<ElementType, Error> {
    let size = max_message
        .checked_add(MESSAGE_HEADER + 7)
        .map_or(usize::MAX, |n| n & !7);
    ElementType::named(MESSAGE_TYPE_NAME, size, 8)
}

/// The most subscribers a ring may be created for.
pub const MAX_SUBSCRIBERS: usize = 4096;

/// Subscribers a ring is created for unless [`Options::subscribers`] says otherwise.
pub const DEFAULT_SUBSCRIBERS: usize = 8;

/// Longest eviction time a ring records ([`SlowPolicy::Evict`]): about 49 days, in
/// milliseconds in 32 bits.
pub const MAX_EVICT_AFTER: Duration = Duration::from_millis(u32::MAX as u64);

/// How a broadcast ring treats a subscriber that falls behind; chosen at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The publisher never overwrites what a live subscriber has not read; `SlowPolicy`
    /// says what happens when the slowest is a whole ring behind.
    Lossless(SlowPolicy),
    /// The publisher never waits; an overtaken subscriber is told how many elements it
    /// lost ([`TryError::Lagged`]) and carries on with the oldest intact one.
    Lossy,
}

impl Default for Mode {
    /// Lossless, waiting for the slowest subscriber.
    fn default() -> Self {
        Mode::Lossless(SlowPolicy::Wait)
    }
}

/// What a lossless publisher does when the slowest live subscriber is a whole ring behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowPolicy {
    /// Wait for it: `try_push` reports [`TryError::Full`], blocking pushes wait (until their
    /// deadline).
    Wait,
    /// Wait at most `after` for it to move, then evict it (it learns with
    /// [`TryError::Evicted`] on its next call) and go on. At most [`MAX_EVICT_AFTER`];
    /// recorded in whole milliseconds.
    Evict {
        /// How long the same subscriber may hold the publisher up without reading.
        after: Duration,
    },
}

impl Mode {
    /// The header's code for this mode (`reserved1[1]`): bits 0-7 the mode (1 lossless,
    /// 2 lossy), bits 8-15 the slow policy (0 wait, 1 evict), bits 32-63 the eviction time in
    /// milliseconds; every other bit 0.
    pub(crate) fn code(self) -> Result<u64, Error> {
        match self {
            Mode::Lossy => Ok(2),
            Mode::Lossless(SlowPolicy::Wait) => Ok(1),
            Mode::Lossless(SlowPolicy::Evict { after }) => {
                let ms = u32::try_from(after.as_millis()).map_err(|_| Error::BadPolicy {
                    reason: "the eviction time is longer than 2^32 milliseconds",
                    hint: "give a shorter time (broadcast::MAX_EVICT_AFTER at most)",
                })?;
                Ok(1 | 1 << 8 | u64::from(ms) << 32)
            }
        }
    }

    /// The mode a header code names, if it is one [`Mode::code`] makes.
    pub(crate) fn from_code(code: u64) -> Option<Mode> {
        let (mode, slow, ms) = (code & 0xff, (code >> 8) & 0xff, code >> 32);
        if code & 0xffff_0000 != 0 {
            return None;
        }
        match (mode, slow, ms) {
            (2, 0, 0) => Some(Mode::Lossy),
            (1, 0, 0) => Some(Mode::Lossless(SlowPolicy::Wait)),
            (1, 1, ms) => Some(Mode::Lossless(SlowPolicy::Evict {
                after: Duration::from_millis(ms),
            })),
            _ => None,
        }
    }

    /// `true` for [`Mode::Lossless`].
    pub fn is_lossless(self) -> bool {
        matches!(self, Mode::Lossless(_))
    }
}

/// Where a new subscriber starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Start {
    /// With the next element published: nothing from before it joined.
    #[default]
    Newest,
    /// With up to this many elements published before it joined, if still in the ring
    /// (best effort: the publisher may overwrite them before it learns of the subscriber;
    /// what it overwrote is counted in [`Subscriber::history_lost`]).
    History(usize),
}

/// A subscriber entry's state, as [`Ring::subscribers`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriberState {
    /// Reading; in lossless mode it gates the publisher.
    Live,
    /// Evicted by the publisher; it re-joins at the newest element on its next call.
    Evicted,
    /// A value no subscriber writes (a broken or hostile peer's).
    Unknown(u64),
}

/// One taken entry of the subscriber table ([`Ring::subscribers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriberInfo {
    /// The entry's index in the table.
    pub index: usize,
    /// The token the subscriber registered under (what a liveness check is asked about).
    pub token: u64,
    /// Its state.
    pub state: SubscriberState,
    /// The next position it will read.
    pub cursor: u64,
    /// Elements it lost to overtaking or eviction, since it joined.
    pub missed: u64,
    /// The publisher's position when it joined.
    pub joined_at: u64,
}

/// What a broadcast ring has done, counted in its shared memory since creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Elements published (the publisher's position).
    pub tail: u64,
    /// The horizon: the publisher may be writing any position below it.
    pub horizon: u64,
    /// Subscribers evicted for holding the publisher up.
    pub evictions: u64,
    /// Entries of dead subscribers freed.
    pub reclaimed: u64,
}

/// Entry state: free.
const FREE: u64 = 0;
/// Entry state: joining. Gates a lossless publisher like [`LIVE`] (its cursor is at most
/// where it starts), but is not reported as a subscriber yet: where it starts is not fixed
/// until it turns [`LIVE`].
const JOINING: u64 = 1;
/// Entry state: reading.
const LIVE: u64 = 2;
/// Entry state: evicted by the publisher.
const EVICTED: u64 = 3;
/// `true` for the states a lossless publisher must not overwrite unread elements of.
fn gates(state: u64) -> bool {
    state == LIVE || state == JOINING
}

/// Token of an entry being freed (by its holder or a reclaimer): not free, never a real
/// token (tokens carry a pid in their high half), skipped by scans and reclaimers.
const LEAVING: u64 = u64::MAX;

/// Bytes of one subscriber entry: a line of its own, written by its subscriber per read.
const ENTRY_BYTES: usize = 128;

/// Where a broadcast ring's parts are: the SPSC block area after the header, then (from the
/// next 128-byte boundary) the horizon line, the shared line and the subscriber table.
///
/// Invariant (checked by [`Layout::new`]): the whole area fits in an address space, so no
/// offset below overflows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub geom: Geometry,
    pub subscribers: usize,
    pub mode: Mode,
}

impl Layout {
    /// The layout of `subscribers` entries after the blocks of `geom`.
    pub(crate) fn new(geom: Geometry, subscribers: usize, mode: Mode) -> Result<Self, Error> {
        check_subscribers(subscribers as u64)?;
        mode.code()?;
        let l = Layout {
            geom,
            subscribers,
            mode,
        };
        crate::header::checked_area(l.entries_offset(), subscribers, ENTRY_BYTES)?;
        Ok(l)
    }

    /// Offset of the horizon line.
    fn horizon_offset(&self) -> usize {
        round_up(self.geom.area_size(), 128)
    }

    /// Offset of the shared line (`high_water`, `evictions`, `reclaimed`).
    fn shared_offset(&self) -> usize {
        self.horizon_offset() + 128
    }

    /// Offset of entry 0.
    fn entries_offset(&self) -> usize {
        self.horizon_offset() + 256
    }

    /// Bytes of the whole ring, header included.
    pub(crate) fn area_size(&self) -> usize {
        self.entries_offset() + self.subscribers * ENTRY_BYTES
    }

    /// Capacity in elements.
    pub(crate) fn capacity(&self) -> u64 {
        self.geom.capacity() as u64
    }

    /// How far the publisher raises the horizon at a time: a sixteenth of the ring, in
    /// whole blocks (at least one), so subscribers, which load the horizon after every
    /// copy, find its line in their cache almost always, and the publisher writes it once per
    /// step rather than per block. The cost: a lossy subscriber counts as overtaken (and
    /// resumes) up to a step before the publisher actually overwrites its position.
    pub(crate) fn step(&self) -> u64 {
        let e = self.geom.elems_per_block as u64;
        (self.capacity() / 16 / e * e).max(e)
    }
}

fn check_subscribers(n: u64) -> Result<(), Error> {
    if n == 0 || n > MAX_SUBSCRIBERS as u64 {
        return Err(Error::BadSubscriberCount {
            subscribers: n,
            max: MAX_SUBSCRIBERS as u64,
        });
    }
    Ok(())
}

/// One subscriber entry: views of the line's words.
pub(crate) struct Entry<'a> {
    /// 0 when free, [`LEAVING`] while being freed, else the holder's token.
    pub token: &'a AtomicU64,
    /// [`FREE`], [`JOINING`], [`LIVE`] or [`EVICTED`].
    pub state: &'a AtomicU64,
    /// The next position the holder will read; stored `Release` after each read.
    pub cursor: &'a AtomicU64,
    /// Elements the holder lost since it joined (informative).
    pub missed: &'a AtomicU64,
    /// How the holder counts among the data signal's sleepers
    /// ([`crate::wait::Sleeper::code`]), so a reclaimer can take the counts back.
    pub sleep: &'a AtomicU64,
    /// The publisher's position when the holder joined (informative).
    pub joined_at: &'a AtomicU64,
    /// Non-zero while the holder's readiness descriptor is armed
    /// ([`Subscriber::arm_readiness`]); the publisher swaps it to 0 when it signals.
    pub armed: &'a AtomicU64,
}

/// A broadcast ring's memory: the SPSC storage of its elements plus the broadcast words.
pub(crate) struct Bcast<T> {
    pub storage: Storage<T>,
    pub layout: Layout,
}

impl<T: Element> Bcast<T> {
    /// The view of `storage` as laid out by `layout`, after checking the memory holds it.
    fn new(storage: Storage<T>, layout: Layout) -> Result<Self, Error> {
        if storage.mem_len() < layout.area_size() || storage.geom != layout.geom {
            return Err(Error::RegionTooSmall {
                len: storage.mem_len() as u64,
                need: layout.area_size() as u64,
            });
        }
        Ok(Bcast { storage, layout })
    }

    #[inline(always)]
    pub(crate) fn header(&self) -> &Header {
        self.storage.header()
    }

    /// The word at `off`, which [`Layout`] computed and [`Bcast::new`] checked.
    #[inline(always)]
    fn word(&self, off: usize) -> &AtomicU64 {
        // SAFETY: every offset passed here is one of Layout's, 8-aligned, past the blocks
        // (horizon_offset >= area_size) and below layout.area_size() <= mem_len (new).
        unsafe { self.storage.word_at(off) }
    }

    /// The horizon: the publisher may be writing any position below it.
    #[inline(always)]
    pub(crate) fn horizon(&self) -> &AtomicU64 {
        self.word(self.layout.horizon_offset())
    }

    /// One more than the highest entry index ever taken (bounds scans).
    pub(crate) fn high_water(&self) -> &AtomicU64 {
        self.word(self.layout.shared_offset())
    }

    /// Subscribers evicted since creation.
    pub(crate) fn evictions(&self) -> &AtomicU64 {
        self.word(self.layout.shared_offset() + 8)
    }

    /// Dead subscribers' entries freed since creation.
    pub(crate) fn reclaimed(&self) -> &AtomicU64 {
        self.word(self.layout.shared_offset() + 16)
    }

    /// Entry `i`, if the table has one.
    #[inline]
    pub(crate) fn entry(&self, i: usize) -> Option<Entry<'_>> {
        if i >= self.layout.subscribers {
            return None;
        }
        let at = self.layout.entries_offset() + i * ENTRY_BYTES;
        Some(Entry {
            token: self.word(at),
            state: self.word(at + 8),
            cursor: self.word(at + 16),
            missed: self.word(at + 24),
            sleep: self.word(at + 32),
            joined_at: self.word(at + 40),
            armed: self.word(at + 48),
        })
    }

    /// The number of entries a scan must visit: `high_water`, clamped to the table.
    pub(crate) fn scan_len(&self) -> usize {
        (self.high_water().load(Ordering::Acquire) as usize).min(self.layout.subscribers)
    }

    /// Frees entry `i` if it still holds `token` and marks it free; a reclaimer
    /// (`reclaim`, the holder is dead) also takes back the sleeper counts the entry
    /// records, while a holder leaving takes its own back. Returns whether it freed it.
    pub(crate) fn free_entry(&self, i: usize, token: u64, reclaim: bool) -> bool {
        let Some(e) = self.entry(i) else {
            return false;
        };
        if token == 0
            || token == LEAVING
            || e.token
                .compare_exchange(token, LEAVING, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        e.state.store(FREE, Ordering::Release);
        e.armed.store(0, Ordering::Relaxed);
        let code = e.sleep.swap(0, Ordering::SeqCst);
        if code != 0 && reclaim {
            self.header().data_signal().forget_sleeper(code & 3);
        }
        e.token.store(0, Ordering::Release);
        true
    }

    /// Checks the publisher's shared positions and returns `(tail, horizon)`: `tail`
    /// possible, `horizon` at most a ring and a block past it. The horizon is loaded first:
    /// its `Release` store comes after the `tail` stores before it, so the `tail` loaded
    /// next is at least the one the horizon was raised at (the other order would race a
    /// running publisher).
    pub(crate) fn positions(&self) -> Result<(u64, u64), TryError> {
        let horizon = self.horizon().load(Ordering::Acquire);
        let tail = self.header().producer.pos.load(Ordering::Acquire);
        if tail > MAX_POSITION {
            return Err(corrupted(Word::Tail, tail));
        }
        let slack = self.layout.capacity() + self.layout.step();
        if horizon > tail + slack {
            return Err(corrupted(Word::Horizon, horizon));
        }
        Ok((tail, horizon))
    }
}

impl Header {
    /// Checks every configuration field of a broadcast ring (the element type's too when
    /// `elem` is given, else the recorded one's shape) against `region_len`, and returns its
    /// layout.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn validate_broadcast(
        &self,
        elem: Option<&ElementType>,
        region_len: u64,
    ) -> Result<Layout, Error> {
        self.check_identity(RingKind::Broadcast)?;
        let shape = match elem {
            Some(elem) => self.check_element(elem)?,
            #[cfg(not(loom))]
            None => self.recorded_shape()?,
            #[cfg(loom)]
            None => return Err(Error::NotReady { ready: 0 }),
        };
        let c = &self.config;
        let r = Ordering::Relaxed;
        let subscribers = c.reserved1[0].load(r);
        check_subscribers(subscribers)?;
        let code = c.reserved1[1].load(r);
        let mode = Mode::from_code(code).ok_or(Error::LayoutMismatch {
            field: "reserved1[1] (broadcast policy)",
            found: code,
            expected: Mode::default().code()?,
        })?;
        expect_field("reserved1[2]", c.reserved1[2].load(r), 0)?;
        let blocks = c.block_count.load(r);
        crate::header::check_block_count(blocks)?;
        let geom = Geometry::from_shape(shape, blocks as usize)?;
        let layout = Layout::new(geom, subscribers as usize, mode)?;
        self.expect_typed_geometry(&geom, layout.area_size() as u64, region_len)?;
        Ok(layout)
    }
}

/// [`crate::header::check`] for a broadcast ring: every configuration field, then the
/// publisher's position (the horizon, past the blocks, is checked by attaching).
#[cfg(not(loom))]
pub(crate) fn check_recorded(region: &Region, ring_len: u64) -> Result<(), Error> {
    let h = crate::mem::header_of(region)?;
    h.validate_broadcast(None, ring_len)?;
    let tail = h.producer.pos.load(Ordering::Acquire);
    if tail > MAX_POSITION {
        return Err(corrupted(Word::Tail, tail).into());
    }
    Ok(())
}

/// What a broadcast ring's shared words say, read without attaching (no element type
/// needed): for tools such as `shmlane inspect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The delivery mode recorded.
    pub mode: Mode,
    /// Capacity in elements.
    pub capacity: u64,
    /// Entries in the subscriber table.
    pub max_subscribers: usize,
    /// The ring's counters and positions.
    pub stats: Stats,
    /// The taken entries.
    pub subscribers: Vec<SubscriberInfo>,
}

impl Inspection {
    /// The publisher's position less the smallest live cursor (what the slowest live
    /// subscriber has not read), if any subscriber is live.
    pub fn slowest_lag(&self) -> Option<u64> {
        self.subscribers
            .iter()
            .filter(|s| s.state == SubscriberState::Live)
            .map(|s| self.stats.tail.saturating_sub(s.cursor))
            .max()
    }
}

/// Reads the broadcast ring at the start of `region` (which may use `ring_len` bytes)
/// without attaching: checks the configuration as an attach would (the element type
/// aside), then reads its counters and subscriber table. Values written by peers are shown
/// as read (an unknown state as [`SubscriberState::Unknown`]).
///
/// # Errors
///
/// What [`crate::header::check`] returns for a header that is not a broadcast ring's.
#[cfg(not(loom))]
pub fn inspect(region: &Region, ring_len: u64) -> Result<Inspection, Error> {
    let h = crate::mem::header_of(region)?;
    let layout = h.validate_broadcast(None, ring_len.min(region.len() as u64))?;
    let r = Ordering::Relaxed;
    let word = |off: usize| -> Result<u64, Error> {
        region
            .atomic_u64(off)
            .map(|w| w.load(r))
            .map_err(|_| Error::RegionTooSmall {
                len: region.len() as u64,
                need: layout.area_size() as u64,
            })
    };
    let stats = Stats {
        tail: h.producer.pos.load(r),
        horizon: word(layout.horizon_offset())?,
        evictions: word(layout.shared_offset() + 8)?,
        reclaimed: word(layout.shared_offset() + 16)?,
    };
    let scan = (word(layout.shared_offset())? as usize).min(layout.subscribers);
    let mut subscribers = Vec::new();
    for index in 0..scan {
        let at = layout.entries_offset() + index * ENTRY_BYTES;
        let token = word(at)?;
        let state = match word(at + 8)? {
            FREE | JOINING => continue,
            LIVE => SubscriberState::Live,
            EVICTED => SubscriberState::Evicted,
            x => SubscriberState::Unknown(x),
        };
        if token == 0 || token == LEAVING {
            continue;
        }
        subscribers.push(SubscriberInfo {
            index,
            token,
            state,
            cursor: word(at + 16)?,
            missed: word(at + 24)?,
            joined_at: word(at + 40)?,
        });
    }
    Ok(Inspection {
        mode: layout.mode,
        capacity: layout.capacity(),
        max_subscribers: layout.subscribers,
        stats,
        subscribers,
    })
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Lossy => f.write_str("lossy"),
            Mode::Lossless(SlowPolicy::Wait) => f.write_str("lossless, wait"),
            Mode::Lossless(SlowPolicy::Evict { after }) => {
                write!(f, "lossless, evict after {} ms", after.as_millis())
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn policy_codes_round_trip() {
        for m in [
            Mode::Lossy,
            Mode::Lossless(SlowPolicy::Wait),
            Mode::Lossless(SlowPolicy::Evict {
                after: Duration::from_millis(0),
            }),
            Mode::Lossless(SlowPolicy::Evict {
                after: Duration::from_millis(250),
            }),
            Mode::Lossless(SlowPolicy::Evict {
                after: MAX_EVICT_AFTER,
            }),
        ] {
            assert_eq!(Mode::from_code(m.code().unwrap()), Some(m));
        }
        assert!(Mode::Lossless(SlowPolicy::Evict {
            after: MAX_EVICT_AFTER + Duration::from_millis(1)
        })
        .code()
        .is_err());
        for bad in [
            0,
            3,
            2 | 1 << 8,
            1 | 2 << 8,
            1 | 1 << 16,
            2 | 5 << 32,
            u64::MAX,
        ] {
            assert_eq!(Mode::from_code(bad), None, "{bad:#x}");
        }
    }
}
