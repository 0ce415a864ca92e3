//! A single-producer single-consumer ring of variable-length byte messages in shared memory.
//!
//! # Algorithm
//!
//! The data area is `C` bytes (a power of two) addressed by `u64` byte positions that never
//! wrap; position `p` lives at offset `p mod C`. Each message is a *record*: an 8-byte header
//! word followed by the payload, padded to a multiple of 8 so the next header is aligned:
//!
//! ```text
//! | header: len (u32) | kind (u16) | 0x5a1e (u16) | payload ... | pad to 8 | next header ...
//! ```
//!
//! A record never wraps around the end of the area: when the next one does not fit, the
//! producer first writes a *padding* record that covers the rest of the area, and the
//! message starts again at offset 0. So every message is contiguous and can be read or
//! written in place.
//!
//! - **Send.** The producer owns `tail`. To append a record of `n` bytes it needs `n + 8`
//!   free bytes (`tail + n + 8 <= head + C`): the extra 8 are for a zero *terminator* it
//!   stores at the record's end, where the next header will go. It writes the terminator,
//!   then the payload, then the header word with `Release`. The header is the record's
//!   commit: the consumer acts on nothing else.
//! - **Receive.** The consumer owns `head` and polls the header word at `head` with
//!   `Acquire`. Zero means nothing yet; anything else is a record whose payload is complete.
//!   After reading it stores its new `head` with `Release` on its own 128-byte line, which
//!   frees the space; the producer reloads `head` only when its cached copy says the ring is
//!   full.
//!
//! Invariant: the header word at `head` is either zero or the header of a record committed
//! after the consumer consumed everything before `head`. The terminator keeps it so: the
//! bytes at a record's end are zeroed before the record is published, so the word the
//! consumer moves to next is never a stale header or stale payload from an earlier lap. One
//! cache line carries both the readiness and (for small messages) the payload, so a message
//! costs one line transfer, as in the [`crate::spsc`] ring.
//!
//! # A hostile peer
//!
//! Every header word is validated: an unknown kind or tag, a length above the ring's maximum
//! message size or running past the end of the area, or a padding record of the wrong size is
//! [`Error::Corrupted`]. The producer checks the consumer's `head` against its own `tail`.
//! Offsets are always computed from positions this side owns, masked to the area, so a
//! garbage word can only make us read garbage bytes inside the ring. Payload bytes are copied
//! out of shared memory; a zero-copy [`ReadGuard`] offers copies and an `unsafe` slice view.
//!
//! # Example
//!
//! ```
//! use shm_queue::bytes::ByteRing;
//! use shm_region::Region;
//!
//! let region = Region::anonymous(ByteRing::required_bytes(4096)?)?;
//! let ring = ByteRing::create(region, 4096, 1024)?;
//! let (mut tx, mut rx) = ring.split()?;
//!
//! tx.try_send(b"hello")?;
//! let mut claim = tx.claim(5)?; // zero-copy: write in place, then commit
//! claim.write_at(0, b"world")?;
//! claim.commit();
//!
//! let mut buf = [0u8; 1024];
//! let n = rx.try_recv(&mut buf)?;
//! assert_eq!(&buf[..n], b"hello");
//! let msg = rx.read()?; // zero-copy read; the space is released when `msg` drops
//! assert_eq!(msg.to_vec(), b"world");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::fmt;

use crate::claim;
use crate::error::{corrupted, Error};
use crate::header::{bytes_max_message_for, Geometry, Header, RingKind, MAX_POSITION};
use crate::sync::{Arc, AtomicU64, Ordering};
use crate::wait::{ReadinessFd, WaitStrategy};
use std::time::Instant;

use crate::header::HEADER_SIZE;
use crate::mem::{Loc, Mem};
#[cfg(not(loom))]
use {crate::mem::header_of, shm_region::Region};

/// The tag in the top 16 bits of every record header word.
const TAG: u64 = 0x5a1e;
/// Record kind: a message.
const KIND_MESSAGE: u64 = 1;
/// Record kind: padding up to the end of the area.
const KIND_PADDING: u64 = 2;
/// Size of a record header.
const RECORD_HEADER: usize = 8;
pub use crate::header::{BYTES_MAX_CAPACITY as MAX_CAPACITY, BYTES_MIN_CAPACITY as MIN_CAPACITY};

#[inline]
fn encode(kind: u64, len: usize) -> u64 {
    (TAG << 48) | (kind << 32) | (len as u64 & 0xffff_ffff)
}

/// Bytes a record of `len` payload bytes takes: header plus payload, rounded up to 8.
#[inline]
fn record_size(len: usize) -> usize {
    (RECORD_HEADER + len + 7) & !7
}

pub use crate::header::bytes_max_message_for as max_message_for;

/// Options for [`ByteRing::create_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "options do nothing until passed to a constructor"]
pub struct ByteOptions {
    capacity: usize,
    max_message: Option<usize>,
    reinitialize: bool,
}

impl ByteOptions {
    /// A data area of at least `capacity` bytes (rounded up to a power of two, at least
    /// [`MIN_CAPACITY`]); the maximum message size defaults to [`max_message_for`] it.
    pub fn new(capacity: usize) -> Self {
        ByteOptions {
            capacity,
            max_message: None,
            reinitialize: false,
        }
    }

    /// The largest message the ring accepts (at most [`max_message_for`] the capacity).
    pub fn max_message(mut self, max: usize) -> Self {
        self.max_message = Some(max);
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

    /// The real capacity and maximum message size these options give.
    fn resolve(&self) -> Result<(usize, usize), Error> {
        let cap = self
            .capacity
            .max(MIN_CAPACITY as usize)
            .checked_next_power_of_two()
            .filter(|c| *c as u64 <= MAX_CAPACITY)
            .ok_or(Error::BadByteCapacity {
                capacity: self.capacity as u64,
                reason: "larger than 1 TiB",
            })?;
        let limit = bytes_max_message_for(cap);
        let max = self.max_message.unwrap_or(limit);
        if max == 0 || max > limit {
            return Err(Error::BadMaxMessage {
                max: max as u64,
                limit: limit as u64,
                capacity: cap as u64,
            });
        }
        Ok((cap, max))
    }
}

/// The byte ring's view of its memory ([`crate::mem::Mem`]): the header and the data area
/// of `cap` bytes after it.
///
/// Invariant: the memory holds `HEADER_SIZE + cap` bytes (checked in [`ByteStorage::over`]),
/// so any data offset masked with `cap - 1` addresses a byte of the area.
struct ByteStorage {
    mem: Mem,
    /// Data area size in bytes, a power of two.
    cap: usize,
    max_message: usize,
}

impl ByteStorage {
    #[cfg(not(loom))]
    fn in_region(region: Arc<Region>, cap: usize, max_message: usize) -> Result<Self, Error> {
        Self::over(Mem::in_region(region, HEADER_SIZE + cap)?, cap, max_message)
    }

    #[cfg(loom)]
    fn on_heap(cap: usize, max_message: usize) -> Result<Self, Error> {
        Self::over(Mem::on_heap(HEADER_SIZE + cap), cap, max_message)
    }

    fn over(mem: Mem, cap: usize, max_message: usize) -> Result<Self, Error> {
        let need = HEADER_SIZE + cap;
        if mem.len() < need || !cap.is_power_of_two() || cap < 8 {
            return Err(Error::RegionTooSmall {
                len: mem.len() as u64,
                need: need as u64,
            });
        }
        Ok(ByteStorage {
            mem,
            cap,
            max_message,
        })
    }

    #[cfg(not(loom))]
    fn region(&self) -> &Arc<Region> {
        self.mem.region()
    }

    #[inline]
    fn header(&self) -> &Header {
        self.mem.header()
    }

    /// Data-area byte `offset & (cap - 1)` (callers pass offsets of at most `cap`; `cap`
    /// itself only for zero-length accesses at the very end).
    #[inline]
    fn at(&self, offset: usize) -> Loc {
        debug_assert!(offset <= self.cap);
        // SAFETY: the masked offset is below cap, and HEADER_SIZE + cap bytes exist (over).
        unsafe { self.mem.at(HEADER_SIZE + (offset & (self.cap - 1))) }
    }

    /// Pointer to data-area byte `offset & (cap - 1)`, for zero-copy views.
    #[cfg(not(loom))]
    #[inline]
    fn data(&self, offset: usize) -> *mut u8 {
        Mem::ptr(self.at(offset))
    }

    /// The record header word at data offset `offset` (8-aligned, below `cap`).
    #[inline]
    fn word(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: `at` keeps the address inside the area; `offset & !7` is 8-aligned and the
        // area starts HEADER_SIZE (a multiple of 8) bytes in; record header words are only
        // accessed atomically while they are headers.
        unsafe { self.mem.word(self.at(offset & !7)) }
    }

    /// Copies `src` to data offset `offset`.
    ///
    /// # Safety
    ///
    /// `offset + src.len() <= cap`, and the protocol grants the caller those bytes.
    #[inline]
    unsafe fn write(&self, offset: usize, src: &[u8]) {
        debug_assert!(offset + src.len() <= self.cap);
        if src.is_empty() {
            return;
        }
        // SAFETY: in bounds by the caller's contract (the range does not wrap: offset + len
        // <= cap); write access granted (caller).
        unsafe { self.mem.copy_in(self.at(offset), src) }
    }

    /// Copies data bytes at `offset` into `dst`.
    ///
    /// # Safety
    ///
    /// `offset + dst.len() <= cap`, and the protocol grants the caller those bytes.
    #[inline]
    unsafe fn read(&self, offset: usize, dst: &mut [u8]) {
        debug_assert!(offset + dst.len() <= self.cap);
        if dst.is_empty() {
            return;
        }
        // SAFETY: as in write, with read access granted.
        unsafe { self.mem.copy_out(self.at(offset), dst) }
    }
}

/// A handle to a byte-message ring: makes the one [`ByteProducer`] and the one
/// [`ByteConsumer`]. Cheap to clone.
#[derive(Clone)]
pub struct ByteRing {
    storage: Arc<ByteStorage>,
}

impl fmt::Debug for ByteRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteRing")
            .field("capacity", &self.storage.cap)
            .field("max_message", &self.storage.max_message)
            .finish()
    }
}

#[cfg(not(loom))]
impl ByteRing {
    /// Bytes a region needs for a ring with a data area of at least `capacity` bytes.
    ///
    /// # Errors
    ///
    /// [`Error::BadByteCapacity`] above [`MAX_CAPACITY`].
    ///
    /// ```
    /// use shm_queue::bytes::ByteRing;
    /// assert_eq!(ByteRing::required_bytes(1000)?, 512 + 1024);
    /// # Ok::<(), shm_queue::Error>(())
    /// ```
    pub fn required_bytes(capacity: usize) -> Result<usize, Error> {
        let (cap, _) = ByteOptions::new(capacity).resolve()?;
        Ok(HEADER_SIZE + cap)
    }

    /// Creates a ring with a data area of at least `capacity` bytes that carries messages
    /// of up to `max_message` bytes.
    ///
    /// # Errors
    ///
    /// [`Error::BadByteCapacity`], [`Error::BadMaxMessage`] (zero, or more than
    /// [`max_message_for`] the capacity), [`Error::RegionTooSmall`],
    /// [`Error::AlreadyInitialized`].
    pub fn create(
        region: impl Into<Arc<Region>>,
        capacity: usize,
        max_message: usize,
    ) -> Result<Self, Error> {
        Self::create_with(region, ByteOptions::new(capacity).max_message(max_message))
    }

    /// Creates a ring with explicit [`ByteOptions`].
    ///
    /// # Errors
    ///
    /// As [`ByteRing::create`].
    pub fn create_with(
        region: impl Into<Arc<Region>>,
        options: ByteOptions,
    ) -> Result<Self, Error> {
        let (cap, max) = options.resolve()?;
        let storage = ByteStorage::in_region(region.into(), cap, max)?;
        Self::initialise(storage, options)
    }

    /// Attaches to the byte ring at the start of `region`, checking every header field.
    ///
    /// # Errors
    ///
    /// [`Error::RegionTooSmall`], [`Error::NotReady`], [`Error::BadMagic`],
    /// [`Error::VersionMismatch`], [`Error::KindMismatch`], [`Error::LayoutMismatch`],
    /// [`Error::BadByteCapacity`], [`Error::BadMaxMessage`], [`Error::Corrupted`].
    pub fn attach(region: impl Into<Arc<Region>>) -> Result<Self, Error> {
        let region = region.into();
        let header = header_of(&region)?;
        let (cap, max) = header.validate_bytes(region.len() as u64)?;
        let storage = ByteStorage::in_region(region, cap, max)?;
        check_positions(storage.header(), cap)?;
        Ok(ByteRing {
            storage: Arc::new(storage),
        })
    }

    /// The region the ring lives in.
    pub fn region(&self) -> &Arc<Region> {
        self.storage.region()
    }
}

#[cfg(loom)]
impl ByteRing {
    /// A ring with a data area of `capacity` bytes in heap memory, for loom models.
    ///
    /// # Errors
    ///
    /// As [`ByteRing::create`].
    pub fn new_model(capacity: usize, max_message: usize) -> Result<Self, Error> {
        let options = ByteOptions::new(capacity).max_message(max_message);
        let (cap, max) = options.resolve()?;
        Self::initialise(ByteStorage::on_heap(cap, max)?, options)
    }
}

impl ByteRing {
    fn initialise(storage: ByteStorage, options: ByteOptions) -> Result<Self, Error> {
        let header = storage.header();
        header.begin_init(options.reinitialize)?;
        header.write_config(
            &Geometry::for_bytes(storage.cap)?,
            RingKind::Bytes,
            options.capacity as u64,
        );
        header
            .config
            .max_message
            .store(storage.max_message as u32, Ordering::Relaxed);
        // The first record header goes at offset 0: it must read as "nothing yet".
        storage.word(0).store(0, Ordering::Relaxed);
        header.publish_ready();
        Ok(ByteRing {
            storage: Arc::new(storage),
        })
    }

    /// Size of the data area in bytes.
    pub fn capacity(&self) -> usize {
        self.storage.cap
    }

    /// The largest message the ring accepts.
    pub fn max_message(&self) -> usize {
        self.storage.max_message
    }

    /// Takes the producer side. It resumes after the last committed record, also when a
    /// previous producer died between committing a record and updating the shared `tail`.
    ///
    /// # Errors
    ///
    /// [`Error::ProducerClaimed`] while another producer exists (in any process);
    /// [`Error::Corrupted`] if the shared positions or records are impossible.
    pub fn producer(&self) -> Result<ByteProducer, Error> {
        let header = self.storage.header();
        let token = claim::take(&header.control.producer_claim)
            .map_err(|holder| Error::ProducerClaimed { holder })?;
        match self.recover_tail() {
            Ok((head, tail)) => Ok(ByteProducer {
                storage: self.storage.clone(),
                tail,
                head_cache: head,
                token,
                strategy: WaitStrategy::default(),
                sleeper: false,
                readiness: ReadinessFd::default(),
            }),
            Err(e) => {
                claim::release(&header.control.producer_claim, token);
                Err(e)
            }
        }
    }

    /// Takes the consumer side; it resumes at the last published `head`.
    ///
    /// # Errors
    ///
    /// [`Error::ConsumerClaimed`] while another consumer exists; [`Error::Corrupted`] if
    /// the shared positions are impossible.
    pub fn consumer(&self) -> Result<ByteConsumer, Error> {
        let header = self.storage.header();
        let token = claim::take(&header.control.consumer_claim)
            .map_err(|holder| Error::ConsumerClaimed { holder })?;
        match check_positions(header, self.storage.cap) {
            Ok((head, _)) => Ok(ByteConsumer {
                storage: self.storage.clone(),
                head,
                token,
                strategy: WaitStrategy::default(),
                sleeper: false,
            }),
            Err(e) => {
                claim::release(&header.control.consumer_claim, token);
                Err(e)
            }
        }
    }

    /// Both sides at once, for one process or a ring split across `fork()`.
    ///
    /// # Errors
    ///
    /// As [`ByteRing::producer`] and [`ByteRing::consumer`].
    pub fn split(&self) -> Result<(ByteProducer, ByteConsumer), Error> {
        Ok((self.producer()?, self.consumer()?))
    }

    /// The claim token of the current producer, if any (pid in the high 32 bits).
    pub fn producer_holder(&self) -> Option<u64> {
        claim::holder(&self.storage.header().control.producer_claim)
    }

    /// The claim token of the current consumer, if any (pid in the high 32 bits).
    pub fn consumer_holder(&self) -> Option<u64> {
        claim::holder(&self.storage.header().control.consumer_claim)
    }

    /// Frees the producer claim held by `holder`, for liveness code that knows the holder's
    /// process died. Returns `false` if `holder` no longer held it.
    ///
    /// # Safety
    ///
    /// The handle holding the claim must never be used again (its process is dead): two live
    /// producers would write the same bytes.
    pub unsafe fn force_release_producer(&self, holder: u64) -> bool {
        claim::force_release(&self.storage.header().control.producer_claim, holder)
    }

    /// Frees the consumer claim held by `holder`; see [`ByteRing::force_release_producer`].
    ///
    /// # Safety
    ///
    /// The handle holding the claim must never be used again (its process is dead).
    pub unsafe fn force_release_consumer(&self, holder: u64) -> bool {
        claim::force_release(&self.storage.header().control.consumer_claim, holder)
    }

    /// Where a new producer resumes: after the last committed record. Walks the committed
    /// records from the shared `tail` (a producer may have died after committing a record
    /// and before storing `tail`), validating each. Returns `(head, tail)`.
    fn recover_tail(&self) -> Result<(u64, u64), Error> {
        let s = &*self.storage;
        let (head, tail) = check_positions(s.header(), s.cap)?;
        // Everything before `head` was committed and consumed; resume the walk there if the
        // `tail` word lags behind it.
        let mut tail = tail.max(head);
        let limit = head + s.cap as u64;
        while tail + RECORD_HEADER as u64 <= limit {
            let offset = (tail & (s.cap as u64 - 1)) as usize;
            let word = s.word(offset).load(Ordering::Acquire);
            if word == 0 {
                break;
            }
            let size = decode(word, offset, s)?.size();
            if tail + size as u64 > limit {
                return Err(corrupted(
                    "committed record beyond the free space",
                    tail + size as u64,
                    head,
                    limit,
                ));
            }
            tail += size as u64;
        }
        s.header().producer.pos.store(tail, Ordering::Release);
        Ok((head, tail))
    }
}

/// A record header word, checked.
#[derive(Debug, Clone, Copy)]
enum Record {
    /// A message of `len` bytes.
    Message { len: usize },
    /// Padding to the end of the area, `size` bytes in all.
    Padding { size: usize },
}

impl Record {
    /// Bytes the record occupies.
    fn size(self) -> usize {
        match self {
            Record::Message { len } => record_size(len),
            Record::Padding { size } => size,
        }
    }
}

/// Validates the (non-zero) header word found at data offset `offset`.
#[inline]
fn decode(word: u64, offset: usize, s: &ByteStorage) -> Result<Record, Error> {
    let len = (word & 0xffff_ffff) as usize;
    let kind = (word >> 32) & 0xffff;
    if word >> 48 != TAG {
        return Err(corrupted("record header tag", word >> 48, TAG, TAG));
    }
    let to_end = s.cap - offset;
    match kind {
        KIND_MESSAGE => {
            let max = s.max_message.min(to_end - RECORD_HEADER);
            if len > max {
                return Err(corrupted("record length", len as u64, 0, max as u64));
            }
            Ok(Record::Message { len })
        }
        KIND_PADDING => {
            let want = (to_end - RECORD_HEADER) as u64;
            // A padding record at offset 0 would cover the whole area: never written, and a
            // loop hazard if accepted.
            if len as u64 != want || offset == 0 {
                return Err(corrupted("padding record length", len as u64, want, want));
            }
            Ok(Record::Padding { size: to_end })
        }
        _ => Err(corrupted("record kind", kind, KIND_MESSAGE, KIND_PADDING)),
    }
}

/// Checks the shared positions; returns `(head, tail)` as recorded.
///
/// The `tail` word is stored after each record is committed, so it may lag `head` by one
/// record if the consumer is quick or the producer died in between; anything beyond one
/// lap either way is impossible.
fn check_positions(header: &Header, cap: usize) -> Result<(u64, u64), Error> {
    let head = header.consumer.pos.load(Ordering::Acquire);
    if head > MAX_POSITION {
        return Err(corrupted("consumer position (head)", head, 0, MAX_POSITION));
    }
    let tail = header.producer.pos.load(Ordering::Acquire);
    let (min, max) = (head.saturating_sub(cap as u64), head + cap as u64);
    if tail < min || tail > max {
        return Err(corrupted("producer position (tail)", tail, min, max));
    }
    // Records are 8-byte aligned, so both positions are too; an unaligned one would leave
    // less than a record header before the end of the area (found by fuzzing).
    let align = RECORD_HEADER as u64;
    if !head.is_multiple_of(align) {
        return Err(corrupted(
            "consumer position (head), not 8-aligned",
            head,
            0,
            MAX_POSITION,
        ));
    }
    if !tail.is_multiple_of(align) {
        return Err(corrupted(
            "producer position (tail), not 8-aligned",
            tail,
            min,
            max,
        ));
    }
    Ok((head, tail))
}

/// The producer side of a [`ByteRing`]. One per ring; `Send`, not `Clone`.
pub struct ByteProducer {
    storage: Arc<ByteStorage>,
    /// Position after the last committed (or padding) record.
    tail: u64,
    /// Last `head` loaded from shared memory.
    head_cache: u64,
    token: u64,
    strategy: WaitStrategy,
    /// Whether this handle is counted in the header's `producer_sleepers`.
    sleeper: bool,
    /// The consumer's readiness descriptor, if installed.
    readiness: ReadinessFd,
}

impl fmt::Debug for ByteProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteProducer")
            .field("tail", &self.tail)
            .field("head_cache", &self.head_cache)
            .finish()
    }
}

impl Drop for ByteProducer {
    fn drop(&mut self) {
        let header = self.storage.header();
        header.space_signal().unregister(&mut self.sleeper);
        claim::release(&header.control.producer_claim, self.token);
    }
}

impl ByteProducer {
    /// Free bytes as far as the cached `head` knows.
    #[inline]
    fn cached_free(&self) -> u64 {
        self.storage.cap as u64 - (self.tail - self.head_cache)
    }

    /// Makes sure `need` bytes are free, reloading the shared `head` if the cache says no.
    #[inline]
    fn ensure_free(&mut self, need: usize, requested: usize) -> Result<(), Error> {
        if self.cached_free() >= need as u64 {
            return Ok(());
        }
        self.reload_free(need, requested)
    }

    /// [`ByteProducer::ensure_free`] once the cache has run out: reloads `head`.
    #[cold]
    fn reload_free(&mut self, need: usize, requested: usize) -> Result<(), Error> {
        let head = self.storage.header().consumer.pos.load(Ordering::Acquire);
        let cap = self.storage.cap as u64;
        if head < self.head_cache || head > self.tail {
            return Err(corrupted(
                "consumer position (head)",
                head,
                self.head_cache,
                self.tail,
            ));
        }
        self.head_cache = head;
        let free = cap - (self.tail - head);
        if free >= need as u64 {
            Ok(())
        } else {
            Err(Error::Full {
                requested,
                available: (free as usize).saturating_sub(RECORD_HEADER * 2),
            })
        }
    }

    /// Reserves room for a message of `len` bytes and returns a claim to write it in place.
    /// Nothing is visible to the consumer until [`WriteClaim::commit`]; dropping the claim
    /// (or [`WriteClaim::abort`]) sends nothing.
    ///
    /// # Errors
    ///
    /// [`Error::MessageTooLarge`] above [`ByteRing::max_message`]; [`Error::Full`] when the
    /// consumer has not freed enough space yet (retry later); [`Error::Corrupted`] if the
    /// consumer's `head` is impossible.
    #[inline]
    pub fn claim(&mut self, len: usize) -> Result<WriteClaim<'_>, Error> {
        let max = self.storage.max_message;
        if len > max {
            return Err(Error::MessageTooLarge { len, max });
        }
        let size = record_size(len);
        let cap = self.storage.cap;
        let offset = (self.tail & (cap as u64 - 1)) as usize;
        let to_end = cap - offset;
        let pad = if size > to_end { to_end } else { 0 };
        self.ensure_free(pad + size + RECORD_HEADER, len)?;
        if pad > 0 {
            let s = &self.storage;
            // Terminator where the padding ends (offset 0), then the padding record itself.
            s.word(0).store(0, Ordering::Relaxed);
            s.word(offset)
                .store(encode(KIND_PADDING, pad - RECORD_HEADER), Ordering::Release);
            self.tail += pad as u64;
            s.header().producer.pos.store(self.tail, Ordering::Release);
        }
        let offset = (self.tail & (cap as u64 - 1)) as usize;
        Ok(WriteClaim {
            producer: self,
            offset,
            len,
        })
    }

    /// Copies `msg` into the ring as one message.
    ///
    /// # Errors
    ///
    /// As [`ByteProducer::claim`].
    #[inline]
    pub fn try_send(&mut self, msg: &[u8]) -> Result<(), Error> {
        let mut c = self.claim(msg.len())?;
        c.write_at(0, msg)?;
        c.commit();
        Ok(())
    }

    /// Publishes the record of `len` bytes at the current `tail`.
    #[inline]
    fn commit(&mut self, len: usize) {
        let s = &self.storage;
        let cap = s.cap as u64;
        let offset = (self.tail & (cap - 1)) as usize;
        let end = self.tail + record_size(len) as u64;
        // The terminator first: the next header slot reads zero before this record is
        // visible. The Release of the header store orders it (and the payload) first.
        s.word(((end & (cap - 1)) as usize) & !7)
            .store(0, Ordering::Relaxed);
        s.word(offset)
            .store(encode(KIND_MESSAGE, len), Ordering::Release);
        self.tail = end;
        s.header().producer.pos.store(end, Ordering::Release);
        self.readiness
            .fire(s.header().notify_data(self.readiness.is_some()));
    }

    /// Size of the data area in bytes.
    pub fn capacity(&self) -> usize {
        self.storage.cap
    }

    /// The largest message the ring accepts.
    pub fn max_message(&self) -> usize {
        self.storage.max_message
    }

    /// How this handle waits in the blocking calls (default [`WaitStrategy::spin_then_yield`]).
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.strategy
    }

    /// Sets how this handle waits in the blocking calls.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.storage
            .header()
            .space_signal()
            .set_strategy(&mut self.sleeper, strategy);
        self.strategy = strategy;
    }

    /// Like [`ByteProducer::claim`], but waits for space as the handle's
    /// [`WaitStrategy`] says, until `deadline` (`None`: no limit).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] at the deadline, [`Error::Closed`] if the ring is closed while
    /// waiting; otherwise as [`ByteProducer::claim`].
    pub fn claim_blocking(
        &mut self,
        len: usize,
        deadline: Option<Instant>,
    ) -> Result<WriteClaim<'_>, Error> {
        let max = self.storage.max_message;
        if len > max {
            return Err(Error::MessageTooLarge { len, max });
        }
        // Room for the record, a padding record before it and the terminator after it.
        let need = (record_size(len) * 2 + RECORD_HEADER).min(self.storage.cap);
        let storage = self.storage.clone();
        let waited = storage.header().space_signal().wait(
            self.strategy,
            deadline,
            "space in the ring",
            || crate::wait::pending(self.ensure_free(need, len)),
        );
        waited?;
        self.claim(len)
    }

    /// Like [`ByteProducer::try_send`], but waits for space; see
    /// [`ByteProducer::claim_blocking`].
    ///
    /// # Errors
    ///
    /// As [`ByteProducer::claim_blocking`].
    pub fn send_blocking(&mut self, msg: &[u8], deadline: Option<Instant>) -> Result<(), Error> {
        let mut c = self.claim_blocking(msg.len(), deadline)?;
        c.write_at(0, msg)?;
        c.commit();
        Ok(())
    }

    /// Installs (or removes) the consumer's readiness descriptor (see
    /// [`crate::wait::readiness_fd`]): after the consumer arms it, the next commit writes
    /// to it.
    pub fn set_readiness_fd(&mut self, fd: Option<std::os::fd::OwnedFd>) {
        self.readiness.set(fd);
    }

    /// How many times this handle has written to the readiness descriptor: once per arming
    /// it consumed (a consumer that arms and then finds no data waits for exactly that).
    pub fn readiness_signals(&self) -> u64 {
        self.readiness.signals()
    }

    /// Closes the ring: the consumer drains what was sent, then its blocking calls return
    /// [`Error::Closed`]; every sleeper on both sides is woken. Returns `false` if the ring
    /// was already closed.
    pub fn close(&self) -> bool {
        self.storage.header().close(1)
    }

    /// `true` once either side (or liveness code) has closed the ring.
    pub fn is_closed(&self) -> bool {
        self.storage.header().data_signal().is_closed()
    }

    /// Bytes the consumer has not released yet, as far as this side knows (records,
    /// headers and padding included).
    pub fn used_bytes(&self) -> usize {
        let head = self.storage.header().consumer.pos.load(Ordering::Relaxed);
        self.tail.saturating_sub(head).min(self.storage.cap as u64) as usize
    }

    /// The producer's position: bytes of records and padding written since creation.
    pub fn position(&self) -> u64 {
        self.tail
    }
}

/// Room for one message, reserved by [`ByteProducer::claim`]: write it in place, then
/// [`commit`](WriteClaim::commit). Dropping it without committing sends nothing.
#[must_use = "dropping a claim or chunk without committing abandons it"]
pub struct WriteClaim<'a> {
    producer: &'a mut ByteProducer,
    /// Data offset of the record header.
    offset: usize,
    len: usize,
}

impl fmt::Debug for WriteClaim<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteClaim")
            .field("len", &self.len)
            .finish()
    }
}

impl WriteClaim<'_> {
    /// Length of the message being written.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` for a zero-length message.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `src` into the message at byte `offset`.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] if `offset + src.len()` exceeds the message length.
    #[inline]
    pub fn write_at(&mut self, offset: usize, src: &[u8]) -> Result<(), Error> {
        let end = offset.saturating_add(src.len());
        if end > self.len {
            return Err(Error::OutOfRange {
                index: end,
                len: self.len,
            });
        }
        // SAFETY: the claim reserved offset+8 .. offset+8+len of the area for us (the
        // consumer does not read it until commit), and end <= len keeps us inside it.
        unsafe {
            self.producer
                .storage
                .write(self.offset + RECORD_HEADER + offset, src)
        };
        Ok(())
    }

    /// The message bytes as a mutable slice, for code that must write in place (for
    /// example a serializer).
    ///
    /// # Safety
    ///
    /// The consumer process must be honest: no process may read or write these bytes while
    /// the slice lives. The ring protocol guarantees that of a correct consumer, but a
    /// hostile process mapping the same memory could write them, which is undefined
    /// behaviour for a Rust slice. Prefer [`WriteClaim::write_at`].
    #[cfg(not(loom))]
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        let p = self.producer.storage.data(self.offset + RECORD_HEADER);
        // SAFETY: the bytes lie inside the area (claim checked len fits before the end) and
        // are reserved to us; the caller vouches that no one else touches them.
        unsafe { core::slice::from_raw_parts_mut(p, self.len) }
    }

    /// Publishes the message.
    #[inline]
    pub fn commit(self) {
        self.producer.commit(self.len);
    }

    /// Publishes the first `len` bytes only (at most the claimed length), for messages whose
    /// final size is known only after writing.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] if `len` exceeds the claimed length.
    pub fn commit_len(self, len: usize) -> Result<(), Error> {
        if len > self.len {
            return Err(Error::OutOfRange {
                index: len,
                len: self.len,
            });
        }
        self.producer.commit(len);
        Ok(())
    }

    /// Gives the space back without sending anything (the same as dropping the claim).
    pub fn abort(self) {}
}

/// The consumer side of a [`ByteRing`]. One per ring; `Send`, not `Clone`.
pub struct ByteConsumer {
    storage: Arc<ByteStorage>,
    head: u64,
    token: u64,
    strategy: WaitStrategy,
    /// Whether this handle is counted in the header's `consumer_sleepers`.
    sleeper: bool,
}

impl fmt::Debug for ByteConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteConsumer")
            .field("head", &self.head)
            .finish()
    }
}

impl Drop for ByteConsumer {
    fn drop(&mut self) {
        let header = self.storage.header();
        header.data_signal().unregister(&mut self.sleeper);
        claim::release(&header.control.consumer_claim, self.token);
    }
}

impl ByteConsumer {
    /// The next message's data offset and length, skipping a padding record; `None` if
    /// nothing is committed yet.
    #[inline]
    fn next(&mut self) -> Result<Option<(usize, usize)>, Error> {
        let s = &*self.storage;
        let mask = s.cap as u64 - 1;
        // At most one padding record precedes a message.
        for _ in 0..2 {
            let offset = (self.head & mask) as usize;
            let word = s.word(offset).load(Ordering::Acquire);
            if word == 0 {
                return Ok(None);
            }
            match decode(word, offset, s)? {
                Record::Message { len } => return Ok(Some((offset, len))),
                Record::Padding { size } => {
                    self.head += size as u64;
                    s.header().consumer.pos.store(self.head, Ordering::Release);
                    s.header().notify_space();
                }
            }
        }
        Err(corrupted("padding record at offset 0", 0, 1, s.cap as u64))
    }

    /// Frees `size` bytes at `head`.
    #[inline]
    fn release(&mut self, size: usize) {
        self.head += size as u64;
        let header = self.storage.header();
        header.consumer.pos.store(self.head, Ordering::Release);
        header.notify_space();
    }

    /// Copies the next message into `buf` and returns its length.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] if no message is ready (retry later); [`Error::BufferTooSmall`] if
    /// `buf` is shorter than the message, which then stays in the ring;
    /// [`Error::Corrupted`] if the record header is impossible.
    #[inline]
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let Some((offset, len)) = self.next()? else {
            return Err(Error::Empty {
                requested: 1,
                available: 0,
            });
        };
        if buf.len() < len {
            return Err(Error::BufferTooSmall {
                needed: len,
                len: buf.len(),
            });
        }
        // SAFETY: decode checked offset + 8 + len <= cap, and the committed record is ours
        // to read until we release it.
        unsafe { self.storage.read(offset + RECORD_HEADER, &mut buf[..len]) };
        self.release(record_size(len));
        Ok(len)
    }

    /// Receives the next message into `buf` (cleared first), growing it as needed.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] or [`Error::Corrupted`], as [`ByteConsumer::try_recv`].
    pub fn try_recv_vec(&mut self, buf: &mut Vec<u8>) -> Result<usize, Error> {
        let msg = self.read()?;
        buf.clear();
        buf.resize(msg.len(), 0);
        msg.copy_to(buf)?;
        Ok(buf.len())
    }

    /// The next message, read in place; its space is released when the guard drops.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] if no message is ready; [`Error::Corrupted`].
    #[inline]
    pub fn read(&mut self) -> Result<ReadGuard<'_>, Error> {
        match self.next()? {
            Some((offset, len)) => Ok(ReadGuard {
                consumer: self,
                offset,
                len,
            }),
            None => Err(Error::Empty {
                requested: 1,
                available: 0,
            }),
        }
    }

    /// How this handle waits in the blocking calls (default [`WaitStrategy::spin_then_yield`]).
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.strategy
    }

    /// Sets how this handle waits in the blocking calls.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.storage
            .header()
            .data_signal()
            .set_strategy(&mut self.sleeper, strategy);
        self.strategy = strategy;
    }

    /// Waits as the handle's [`WaitStrategy`] says until a message is ready; returns its
    /// offset and length.
    fn wait_message(&mut self, deadline: Option<Instant>) -> Result<(usize, usize), Error> {
        let storage = self.storage.clone();
        storage
            .header()
            .data_signal()
            .wait(self.strategy, deadline, "a message", || self.next())
    }

    /// Like [`ByteConsumer::try_recv`], but waits for a message until `deadline` (`None`: no
    /// limit).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] at the deadline; [`Error::Closed`] once the ring is closed and
    /// every message sent before has been received; otherwise as [`ByteConsumer::try_recv`].
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use shm_queue::{bytes::ByteRing, Error};
    ///
    /// let region = shm_region::Region::anonymous(ByteRing::required_bytes(1024)?)?;
    /// let (mut tx, mut rx) = ByteRing::create(region, 1024, 100)?.split()?;
    /// let mut buf = [0u8; 100];
    /// let soon = Some(Instant::now() + Duration::from_millis(10));
    /// assert!(matches!(rx.recv_blocking(&mut buf, soon), Err(Error::Timeout { .. })));
    /// tx.try_send(b"last words")?;
    /// tx.close();
    /// assert_eq!(rx.recv_blocking(&mut buf, None)?, 10); // drained first
    /// assert!(matches!(rx.recv_blocking(&mut buf, None), Err(Error::Closed { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_blocking(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize, Error> {
        let (offset, len) = self.wait_message(deadline)?;
        if buf.len() < len {
            return Err(Error::BufferTooSmall {
                needed: len,
                len: buf.len(),
            });
        }
        // SAFETY: as in try_recv: decode checked the record lies inside the area, and it is
        // committed and ours until released.
        unsafe { self.storage.read(offset + RECORD_HEADER, &mut buf[..len]) };
        self.release(record_size(len));
        Ok(len)
    }

    /// Like [`ByteConsumer::read`], but waits for a message; see
    /// [`ByteConsumer::recv_blocking`].
    ///
    /// # Errors
    ///
    /// As [`ByteConsumer::recv_blocking`].
    pub fn read_blocking(&mut self, deadline: Option<Instant>) -> Result<ReadGuard<'_>, Error> {
        let (offset, len) = self.wait_message(deadline)?;
        Ok(ReadGuard {
            consumer: self,
            offset,
            len,
        })
    }

    /// Waits until a message can be received, without receiving it: after `Ok`, the next
    /// [`ByteConsumer::read`] or [`ByteConsumer::try_recv`] returns it. Lets a caller wait in
    /// slices (to check something between them) and still read in place.
    ///
    /// # Errors
    ///
    /// As [`ByteConsumer::recv_blocking`].
    pub fn wait_for_message(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        self.wait_message(deadline).map(drop)
    }

    /// Arms the readiness descriptor the producer holds (see
    /// [`crate::wait::readiness_fd`]). Returns `true` if a record is already committed:
    /// then do not wait for the descriptor, receive now. Otherwise the next commit signals
    /// it.
    pub fn arm_readiness(&mut self) -> bool {
        self.storage.header().data_signal().arm();
        self.has_message()
    }

    /// Closes the ring from the consumer side: a producer blocked for space wakes with
    /// [`Error::Closed`]. Returns `false` if it was already closed.
    pub fn close(&self) -> bool {
        self.storage.header().close(2)
    }

    /// `true` once either side (or liveness code) has closed the ring.
    pub fn is_closed(&self) -> bool {
        self.storage.header().data_signal().is_closed()
    }

    /// `true` if a message (or padding) is committed at `head`.
    pub fn has_message(&self) -> bool {
        let s = &*self.storage;
        s.word((self.head & (s.cap as u64 - 1)) as usize)
            .load(Ordering::Acquire)
            != 0
    }

    /// Size of the data area in bytes.
    pub fn capacity(&self) -> usize {
        self.storage.cap
    }

    /// The largest message the ring accepts.
    pub fn max_message(&self) -> usize {
        self.storage.max_message
    }

    /// The consumer's position: bytes released since creation.
    pub fn position(&self) -> u64 {
        self.head
    }
}

/// A message read in place by [`ByteConsumer::read`]. Its bytes stay reserved until the
/// guard drops, then the space goes back to the producer.
#[must_use = "the slots stay held until the guard is released or dropped"]
pub struct ReadGuard<'a> {
    consumer: &'a mut ByteConsumer,
    offset: usize,
    len: usize,
}

impl fmt::Debug for ReadGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadGuard").field("len", &self.len).finish()
    }
}

impl ReadGuard<'_> {
    /// Length of the message.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` for a zero-length message.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies message bytes from `offset` into `dst`.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] if `offset + dst.len()` exceeds the message.
    #[inline]
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) -> Result<(), Error> {
        let end = offset.saturating_add(dst.len());
        if end > self.len {
            return Err(Error::OutOfRange {
                index: end,
                len: self.len,
            });
        }
        // SAFETY: decode checked the record lies inside the area; end <= len.
        unsafe {
            self.consumer
                .storage
                .read(self.offset + RECORD_HEADER + offset, dst)
        };
        Ok(())
    }

    /// Copies the whole message into the start of `dst`.
    ///
    /// # Errors
    ///
    /// [`Error::BufferTooSmall`] if `dst` is shorter than the message.
    pub fn copy_to(&self, dst: &mut [u8]) -> Result<(), Error> {
        let Some(d) = dst.get_mut(..self.len) else {
            return Err(Error::BufferTooSmall {
                needed: self.len,
                len: dst.len(),
            });
        };
        self.read_at(0, d)
    }

    /// The message as a new `Vec`.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.len];
        // Cannot fail: v has exactly len bytes.
        let _ = self.read_at(0, &mut v);
        v
    }

    /// The message bytes as a slice, with no copy.
    ///
    /// # Safety
    ///
    /// The producer process must be honest: no process may write these bytes while the
    /// slice lives. A correct producer never does (the record is committed and ours until
    /// the guard drops), but a hostile process mapping the same memory could, which is
    /// undefined behaviour for a Rust slice. Prefer [`ReadGuard::read_at`].
    #[cfg(not(loom))]
    pub unsafe fn as_slice(&self) -> &[u8] {
        let p = self.consumer.storage.data(self.offset + RECORD_HEADER);
        // SAFETY: inside the area (decode), reserved to us, and the caller vouches no one
        // writes it meanwhile.
        unsafe { core::slice::from_raw_parts(p, self.len) }
    }

    /// Releases the message now (the same as dropping the guard).
    pub fn release(self) {}
}

impl Drop for ReadGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.consumer.release(record_size(self.len));
    }
}
