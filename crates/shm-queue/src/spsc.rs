//! A single-producer single-consumer ring of fixed-size `Pod` elements in shared memory.
//!
//! # Algorithm
//!
//! Elements are counted by `u64` positions that start at 0 and never wrap. The producer owns
//! `tail` (everything before it is written), the consumer owns `head` (everything before it
//! is consumed). Position `p` lives in block `(p / E) mod B`, slot `p mod E`, where `B` (a
//! power of two) is the number of blocks and `E` the elements per block. The capacity is
//! `B * E`, which need not be a power of two.
//!
//! Each block is one 64-byte cache line (or several, for elements over 56 bytes) that starts
//! with an 8-byte *published position* word `P`, followed by as many elements as fit:
//!
//! ```text
//! block b:  | P (u64) | e0 | e1 | ... | e(E-1) | pad |     64 bytes for E * size <= 56
//! ```
//!
//! - **Push.** The producer writes one element, or a whole batch, into the slots after
//!   `tail`, then stores the new `tail` with `Release` into `P` of every block the batch
//!   touched (last block first). A batch also stores it into the `tail` word of the header;
//!   single pushes do that only when they leave a block, so the word lags the real `tail` by
//!   less than a block (it is informative: `len()`, attach and recovery take the block words
//!   into account). It checks space
//!   against its cached copy of `head` and reloads the shared `head` (with `Acquire`) only when
//!   that cache says the ring is full.
//! - **Pop.** The consumer at position `h` loads `P` of the block holding `h` with `Acquire`.
//!   Any value `P > h` proves every position below `P` has been written, so it caches `P` and
//!   reads up to it without touching shared state again. Then it stores its new `head` with
//!   `Release` on its own 128-byte line, which frees the slots.
//!
//! Invariant: every value ever stored in a `P` word or the `tail` word is a position `t` such
//! that all positions below `t` were written before the store, and `t <= head + capacity` at
//! the time of the store. So `P > h` means position `h` is ready and has not been overwritten
//! by the next lap (that would need `head > h`). And since every batch stores into every block
//! it touched, the block holding the first unread position always learns of it.
//!
//! # Why this layout
//!
//! A consumer that polls a shared `tail` index and then loads the slot moves two cache lines
//! per message in series; one that polls a word in the payload's own line moves one, which
//! halves latency. A per-slot sequence word costs a store per element and a word of space per
//! slot, which hurts batches; one word per 64-byte block costs one store per line, a line the
//! producer is writing anyway, and a batch of any size is still published by one position
//! value. `docs/layout.md` has the byte map and the measurements behind this.
//!
//! # A hostile peer
//!
//! Every position read from shared memory is checked before use: a `P` or `tail` beyond
//! `head + capacity`, or a `head` beyond `tail`, is reported as [`Error::Corrupted`]. Slot
//! addresses are always computed from positions this side owns, masked to the ring, so a
//! garbage word can only ever make us read garbage elements inside the ring. Elements are
//! copied out of shared memory and never exposed as references, so their bytes cannot change
//! after the caller has looked at them.
//!
//! # Example
//!
//! ```
//! use shm_queue::spsc::Ring;
//! use shm_region::Region;
//!
//! let region = Region::anonymous(Ring::<u64>::required_bytes(1000)?)?;
//! let ring = Ring::<u64>::create(region, 1000)?;
//! let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
//!
//! tx.try_push(1)?;
//! tx.push_partial_slice(&[2, 3, 4])?;
//! assert_eq!(rx.try_pop()?, 1);
//! let mut buf = [0u64; 8];
//! assert_eq!(rx.pop_partial_slice(&mut buf)?, 3);
//! assert_eq!(&buf[..3], &[2, 3, 4]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::fmt;
use core::ops::Range;

use bytemuck::Pod;

use crate::claim;
use crate::error::{corrupted, Error};
use crate::header::{Geometry, Header, RingKind, MAX_POSITION};
use crate::storage::{Block, Storage};
use crate::sync::{Arc, Ordering};
use crate::wait::{ReadinessFd, WaitStrategy};
use std::time::Instant;

#[cfg(not(loom))]
use {crate::mem::header_of, shm_region::Region};

/// Options for [`Ring::create_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "options do nothing until passed to a constructor"]
pub struct CreateOptions {
    capacity: usize,
    reinitialize: bool,
}

impl CreateOptions {
    /// A ring with room for at least `capacity` elements.
    ///
    /// The real capacity is rounded up to a power-of-two number of blocks times the elements
    /// per block (for example 7 `u64`s per 64-byte block); [`Ring::capacity`] reports it.
    pub fn new(capacity: usize) -> Self {
        CreateOptions {
            capacity,
            reinitialize: false,
        }
    }

    /// Initialise even if the region already holds a ready ring (or a creation that never
    /// finished). Off by default, because it resets a ring that other processes may be
    /// using.
    ///
    /// # Safety
    ///
    /// With `yes`, every previous user of the region must be gone (or never use its handles
    /// again): a producer or consumer still attached to the old ring would share slots with
    /// the new ring's handles, which is a data race on the payload.
    pub unsafe fn reinitialize(mut self, yes: bool) -> Self {
        self.reinitialize = yes;
        self
    }
}

/// A handle to an SPSC ring: makes the one [`Producer`] and the one [`Consumer`].
///
/// Cloning is cheap and shares the ring. The ring keeps its region mapped for as long as any
/// handle, producer or consumer exists.
///
/// # Example
///
/// A creator and an attacher (in real use, two processes mapping the same named region):
///
/// ```
/// use std::sync::Arc;
/// use shm_queue::spsc::Ring;
/// use shm_region::Region;
///
/// let region = Arc::new(Region::anonymous(Ring::<u32>::required_bytes(64)?)?);
/// let created = Ring::<u32>::create(region.clone(), 64)?;
/// let attached = Ring::<u32>::attach(region.clone())?;
/// assert_eq!(created.capacity(), attached.capacity());
///
/// // The element type is checked: the ring holds u32, not f32.
/// assert!(Ring::<f32>::attach(region).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Ring<T: Pod> {
    storage: Arc<Storage<T>>,
}

impl<T: Pod> Clone for Ring<T> {
    fn clone(&self) -> Self {
        Ring {
            storage: self.storage.clone(),
        }
    }
}

impl<T: Pod> fmt::Debug for Ring<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = self.storage.header();
        f.debug_struct("Ring")
            .field("element", &core::any::type_name::<T>())
            .field("capacity", &self.capacity())
            .field("blocks", &self.storage.geom.block_count)
            .field("elements_per_block", &self.storage.geom.elems_per_block)
            .field("head", &h.consumer.pos.load(Ordering::Relaxed))
            .field("tail", &h.producer.pos.load(Ordering::Relaxed))
            .finish()
    }
}

#[cfg(not(loom))]
impl<T: Pod> Ring<T> {
    /// Bytes a region needs for a ring of at least `capacity` elements of `T`.
    ///
    /// # Errors
    ///
    /// [`Error::BadCapacity`] for a zero or too large capacity, [`Error::UnsupportedType`]
    /// for a zero-sized `T` or one aligned to more than 64 bytes.
    ///
    /// ```
    /// use shm_queue::spsc::Ring;
    /// // 512 header bytes, then 2 blocks of 64 bytes holding 7 u64s each.
    /// assert_eq!(Ring::<u64>::required_bytes(10)?, 512 + 2 * 64);
    /// # Ok::<(), shm_queue::Error>(())
    /// ```
    pub fn required_bytes(capacity: usize) -> Result<usize, Error> {
        Ok(Geometry::for_capacity::<T>(capacity)?.area_size())
    }

    /// Creates a ring of at least `capacity` elements at the start of `region`.
    ///
    /// Refuses to touch a region whose header says a ring is already there (see
    /// [`CreateOptions::reinitialize`]). The creator stores the `ready` word last, so an
    /// attacher never sees a half-built ring.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyInitialized`] if the region already holds a ring, or another process
    /// is creating one; [`Error::RegionTooSmall`] if the region is shorter than
    /// [`Ring::required_bytes`]; those of [`Ring::required_bytes`].
    ///
    /// ```
    /// use shm_queue::{spsc::Ring, Error};
    /// use shm_region::Region;
    /// use std::sync::Arc;
    ///
    /// let region = Arc::new(Region::anonymous(4096)?);
    /// let ring = Ring::<u64>::create(region.clone(), 100)?;
    /// assert!(ring.capacity() >= 100);
    /// // A second create on the same region is refused.
    /// assert!(matches!(
    ///     Ring::<u64>::create(region, 100),
    ///     Err(Error::AlreadyInitialized { .. })
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(region: impl Into<Arc<Region>>, capacity: usize) -> Result<Self, Error> {
        Self::create_with(region, CreateOptions::new(capacity))
    }

    /// Creates a ring with explicit [`CreateOptions`].
    ///
    /// # Errors
    ///
    /// As [`Ring::create`]; with `reinitialize(true)` never [`Error::AlreadyInitialized`]
    /// unless another creator races with this one.
    pub fn create_with(
        region: impl Into<Arc<Region>>,
        options: CreateOptions,
    ) -> Result<Self, Error> {
        let geom = Geometry::for_capacity::<T>(options.capacity)?;
        let storage = Storage::in_region(region.into(), geom)?;
        Self::initialise(storage, options)
    }

    /// Attaches to the ring at the start of `region`, checking every header field.
    ///
    /// # Errors
    ///
    /// A distinct variant for each thing that can be wrong: [`Error::RegionTooSmall`],
    /// [`Error::NotReady`], [`Error::BadMagic`], [`Error::VersionMismatch`],
    /// [`Error::KindMismatch`], [`Error::TypeMismatch`], [`Error::UnsupportedType`],
    /// [`Error::BadCapacity`], [`Error::LayoutMismatch`], and [`Error::Corrupted`] when the
    /// recorded positions are impossible.
    pub fn attach(region: impl Into<Arc<Region>>) -> Result<Self, Error> {
        let region = region.into();
        let geom = header_of(&region)?.validate::<T>(RingKind::Spsc, region.len() as u64)?;
        let storage = Storage::in_region(region, geom)?;
        check_positions(storage.header(), &geom)?;
        Ok(Ring {
            storage: Arc::new(storage),
        })
    }

    /// The region the ring lives in.
    pub fn region(&self) -> &Arc<Region> {
        self.storage.region()
    }
}

#[cfg(loom)]
impl<T: Pod> Ring<T> {
    /// A ring of `block_count` blocks of `elems_per_block` elements in heap memory, for loom
    /// models (only with `cfg(loom)`).
    ///
    /// # Errors
    ///
    /// As [`Ring::create`].
    pub fn new_model(block_count: usize, elems_per_block: usize) -> Result<Self, Error> {
        let geom = Geometry::for_model::<T>(block_count, elems_per_block)?;
        Self::initialise(Storage::on_heap(geom)?, CreateOptions::new(geom.capacity()))
    }
}

impl<T: Pod> Ring<T> {
    fn initialise(storage: Storage<T>, options: CreateOptions) -> Result<Self, Error> {
        let header = storage.header();
        header.begin_init(options.reinitialize)?;
        header.write_config(&storage.geom, RingKind::Spsc, options.capacity as u64);
        for b in 0..storage.geom.block_count {
            storage.word(b).store(0, Ordering::Relaxed);
        }
        header.publish_ready();
        Ok(Ring {
            storage: Arc::new(storage),
        })
    }

    /// Capacity in elements: blocks times elements per block (not always a power of two).
    pub fn capacity(&self) -> usize {
        self.storage.geom.capacity()
    }

    /// Elements per block (per 64-byte line for elements of up to 56 bytes).
    pub fn elements_per_block(&self) -> usize {
        self.storage.geom.elems_per_block
    }

    /// Number of blocks (a power of two).
    pub fn block_count(&self) -> usize {
        self.storage.geom.block_count
    }

    /// Takes the producer side.
    ///
    /// The producer resumes where the last one stopped. If a previous producer died in the
    /// middle of publishing a batch, the elements it had fully written are kept and made
    /// visible to the consumer; an uncommitted chunk is dropped.
    ///
    /// # Errors
    ///
    /// [`Error::ProducerClaimed`] while another producer handle exists (in any process);
    /// [`Error::Corrupted`] if the shared positions are impossible.
    pub fn producer(&self) -> Result<Producer<T>, Error> {
        let header = self.storage.header();
        let token = claim::take(&header.control.producer_claim)
            .map_err(|holder| Error::ProducerClaimed { holder })?;
        match self.recover_tail() {
            Ok((head, tail)) => {
                let cursor = Cursor::of(tail, &self.storage.geom);
                Ok(Producer {
                    storage: self.storage.clone(),
                    geom: self.storage.geom,
                    tail,
                    cursor,
                    blk: self.storage.block(cursor.block),
                    head_cache: head,
                    capacity: self.capacity() as u64,
                    token,
                    strategy: WaitStrategy::default(),
                    sleeper: false,
                    readiness: ReadinessFd::default(),
                })
            }
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
    /// [`Error::ConsumerClaimed`] while another consumer handle exists (in any process);
    /// [`Error::Corrupted`] if the shared positions are impossible.
    pub fn consumer(&self) -> Result<Consumer<T>, Error> {
        let header = self.storage.header();
        let token = claim::take(&header.control.consumer_claim)
            .map_err(|holder| Error::ConsumerClaimed { holder })?;
        match check_positions(header, &self.storage.geom) {
            Ok((head, _)) => {
                let cursor = Cursor::of(head, &self.storage.geom);
                Ok(Consumer {
                    storage: self.storage.clone(),
                    geom: self.storage.geom,
                    head,
                    cursor,
                    blk: self.storage.block(cursor.block),
                    tail_cache: head,
                    capacity: self.capacity() as u64,
                    token,
                    strategy: WaitStrategy::default(),
                    sleeper: false,
                })
            }
            Err(e) => {
                claim::release(&header.control.consumer_claim, token);
                Err(e)
            }
        }
    }

    /// Both sides at once, for a ring used within one process or split across `fork()`.
    ///
    /// # Errors
    ///
    /// As [`Ring::producer`] and [`Ring::consumer`].
    pub fn split(&self) -> Result<(Producer<T>, Consumer<T>), Error> {
        Ok((self.producer()?, self.consumer()?))
    }

    /// The claim token of the current producer handle, if any: the holder's pid in the high
    /// 32 bits (informative only, pids are reused), a per-process counter in the low 32.
    pub fn producer_holder(&self) -> Option<u64> {
        claim::holder(&self.storage.header().control.producer_claim)
    }

    /// The claim token of the current consumer handle, if any; see
    /// [`Ring::producer_holder`].
    pub fn consumer_holder(&self) -> Option<u64> {
        claim::holder(&self.storage.header().control.consumer_claim)
    }

    /// Frees the producer claim held by `holder` (as read from [`Ring::producer_holder`]),
    /// so a new producer can be taken. Returns `false` if the claim was not held by
    /// `holder` any more (nothing is changed then).
    ///
    /// This is the hook for liveness code: the bridge calls it once it knows, from something
    /// the kernel releases when a process dies (an OFD lock, a socket EOF), that the holder's
    /// process is gone. The next producer resumes after the last element that was fully
    /// written.
    ///
    /// # Safety
    ///
    /// The handle that holds the claim must never be used again: it must belong to a process
    /// that has died. Two live producers on one ring write the same slots concurrently.
    pub unsafe fn force_release_producer(&self, holder: u64) -> bool {
        claim::force_release(&self.storage.header().control.producer_claim, holder)
    }

    /// Frees the consumer claim held by `holder`; see [`Ring::force_release_producer`]. The
    /// next consumer resumes at the last published `head`, so it may see again the elements
    /// the dead consumer was reading.
    ///
    /// # Safety
    ///
    /// The handle that holds the claim must never be used again (its process has died).
    pub unsafe fn force_release_consumer(&self, holder: u64) -> bool {
        claim::force_release(&self.storage.header().control.consumer_claim, holder)
    }

    /// The position a new producer resumes at, repairing what a producer that died
    /// mid-publish left behind. Returns `(head, tail)`.
    fn recover_tail(&self) -> Result<(u64, u64), Error> {
        let storage = &*self.storage;
        let g = &storage.geom;
        let header = storage.header();
        let (head, mut tail) = check_positions(header, g)?;
        let max = head + g.capacity() as u64;
        // Every P word holds a position below which everything was written; a producer that
        // died between its P stores leaves some of them ahead of the tail word.
        for b in 0..g.block_count {
            let p = storage.word(b).load(Ordering::Acquire);
            if p > max {
                return Err(corrupted("block published position", p, 0, max));
            }
            tail = tail.max(p);
        }
        if tail < head {
            return Err(corrupted("producer position (tail)", tail, head, max));
        }
        // Make sure the block of every unread position knows it is ready, in case the dead
        // producer stored only some of its P words. Storing `tail` is always sound: all
        // positions below it are written. P words only ever grow.
        runs(
            Cursor::of(head, g),
            (tail - head) as usize,
            g,
            |block, _, _| {
                let w = storage.word(block);
                if w.load(Ordering::Relaxed) < tail {
                    w.store(tail, Ordering::Release);
                }
            },
        );
        header.producer.pos.store(tail, Ordering::Release);
        Ok((head, tail))
    }
}

/// Checks the shared positions against each other and the capacity; returns `(head, tail)`.
fn check_positions(header: &Header, g: &Geometry) -> Result<(u64, u64), Error> {
    let cap = g.capacity() as u64;
    let head = header.consumer.pos.load(Ordering::Acquire);
    if head > MAX_POSITION {
        return Err(corrupted("consumer position (head)", head, 0, MAX_POSITION));
    }
    let tail = header.producer.pos.load(Ordering::Acquire);
    // The tail word may lag `head` by up to one batch if a producer died mid-publish.
    let (min, max) = (head.saturating_sub(cap), head + cap);
    if tail < min || tail > max {
        return Err(corrupted("producer position (tail)", tail, min, max));
    }
    Ok((head, tail))
}

/// A position as (block, index in block), advanced incrementally so the hot path never
/// divides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    /// Block number, always below `block_count`.
    block: usize,
    /// Index in the block, always below `elems_per_block`.
    index: usize,
}

impl Cursor {
    /// The cursor of absolute position `pos` (divides: not for the hot path).
    fn of(pos: u64, g: &Geometry) -> Cursor {
        let e = g.elems_per_block as u64;
        Cursor {
            block: ((pos / e) as usize) & (g.block_count - 1),
            index: (pos % e) as usize,
        }
    }

    /// Advances by `k <= elems_per_block - index`, i.e. never past the end of this block.
    #[inline]
    fn step(&mut self, k: usize, g: &Geometry) {
        self.index += k;
        if self.index >= g.elems_per_block {
            self.index = 0;
            self.block = (self.block + 1) & (g.block_count - 1);
        }
    }

    /// The cursor `n` positions further on (divides: used once per batch).
    #[inline]
    fn offset(self, n: usize, g: &Geometry) -> Cursor {
        if n == 0 {
            return self;
        }
        let t = self.index + n;
        Cursor {
            block: (self.block + t / g.elems_per_block) & (g.block_count - 1),
            index: t % g.elems_per_block,
        }
    }
}

/// Calls `f(block, index, range)` for each run of consecutive slots in one block that make
/// up the `n` positions starting at `c`; `range` is the run's place within those `n`.
#[inline]
fn runs(mut c: Cursor, n: usize, g: &Geometry, mut f: impl FnMut(usize, usize, Range<usize>)) {
    let mut done = 0;
    while done < n {
        let len = (n - done).min(g.elems_per_block - c.index);
        f(c.block, c.index, done..done + len);
        done += len;
        c.step(len, g);
    }
}

/// The writing side of a ring; exactly one exists per ring at a time.
///
/// Made by [`Ring::producer`]; frees its claim when dropped.
pub struct Producer<T: Pod> {
    storage: Arc<Storage<T>>,
    geom: Geometry,
    /// Our position: everything before it is written and published.
    tail: u64,
    /// Where `tail` lives.
    cursor: Cursor,
    /// The block of `cursor`, located once per block.
    blk: Block,
    /// The consumer's `head` as last read; only ever behind the real one.
    head_cache: u64,
    capacity: u64,
    token: u64,
    strategy: WaitStrategy,
    /// Whether this handle is counted in the header's `producer_sleepers`.
    sleeper: bool,
    /// The consumer's readiness descriptor, if installed.
    readiness: ReadinessFd,
}

impl<T: Pod> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("tail", &self.tail)
            .field("head_cache", &self.head_cache)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl<T: Pod> Drop for Producer<T> {
    fn drop(&mut self) {
        let header = self.storage.header();
        header.space_signal().unregister(&mut self.sleeper);
        claim::release(&header.control.producer_claim, self.token);
    }
}

impl<T: Pod> Producer<T> {
    /// Free slots according to the cached `head` (never more than the truth).
    #[inline]
    fn free_cached(&self) -> usize {
        (self.capacity - (self.tail - self.head_cache)) as usize
    }

    /// Loads the consumer's `head` and checks it.
    fn load_head(&self) -> Result<u64, Error> {
        let h = self.storage.header().consumer.pos.load(Ordering::Acquire);
        let min = self.tail.saturating_sub(self.capacity);
        if h < min || h > self.tail {
            return Err(corrupted("consumer position (head)", h, min, self.tail));
        }
        Ok(h)
    }

    /// Free slots, reloading `head` if the cache says fewer than `want`.
    #[inline]
    fn free(&mut self, want: usize) -> Result<usize, Error> {
        let free = self.free_cached();
        if free >= want {
            return Ok(free);
        }
        self.head_cache = self.load_head()?;
        Ok(self.free_cached())
    }

    /// Publishes the `n >= 1` elements written after `tail`: one `Release` store of the new
    /// tail into each block they touch, last block first, then into the `tail` word.
    fn publish(&mut self, n: usize) {
        let g = &self.geom;
        let end = self.tail + n as u64;
        let touched = (self.cursor.index + n - 1) / g.elems_per_block + 1;
        for j in (0..touched).rev() {
            self.storage
                .word(self.cursor.block + j)
                .store(end, Ordering::Release);
        }
        self.storage
            .header()
            .producer
            .pos
            .store(end, Ordering::Release);
        self.tail = end;
        self.cursor = self.cursor.offset(n, g);
        self.blk = self.storage.block(self.cursor.block);
        self.readiness
            .fire(self.storage.header().notify_data(self.readiness.is_some()));
    }

    /// Moves on to the next block after filling this one, and records `tail` in the header's
    /// `tail` word (which single pushes update only here, once per block).
    #[inline]
    fn next_block(&mut self) {
        self.cursor.index = 0;
        self.cursor.block = (self.cursor.block + 1) & (self.geom.block_count - 1);
        self.blk = self.storage.block(self.cursor.block);
        self.storage
            .header()
            .producer
            .pos
            .store(self.tail, Ordering::Release);
    }

    /// Pushes one element.
    ///
    /// `T` is `Copy`, so on [`Error::Full`] the caller still has `value` to retry with.
    ///
    /// # Errors
    ///
    /// [`Error::Full`] if no slot is free; [`Error::Corrupted`] if the consumer's `head`
    /// in shared memory is impossible.
    ///
    /// ```
    /// # use shm_queue::{spsc::Ring, Error};
    /// # let region = shm_region::Region::anonymous(4096)?;
    /// let ring = Ring::<u64>::create(region, 7)?;
    /// let mut tx = ring.producer()?;
    /// for i in 0..7 {
    ///     tx.try_push(i)?;
    /// }
    /// assert!(matches!(tx.try_push(7), Err(Error::Full { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_push(&mut self, value: T) -> Result<(), Error> {
        if self.tail - self.head_cache >= self.capacity && self.free(1)? == 0 {
            return Err(Error::Full {
                requested: 1,
                available: 0,
            });
        }
        let index = self.cursor.index;
        // SAFETY: `blk` is the storage's block of `cursor` and index < elems_per_block
        // (Cursor invariant); the slot is free: tail < head + capacity, so the consumer has
        // finished with whatever it held.
        unsafe { self.storage.write_in(self.blk, index, value) };
        self.tail += 1;
        // SAFETY: `blk` was made by this storage.
        unsafe { self.storage.word_in(self.blk) }.store(self.tail, Ordering::Release);
        self.cursor.index = index + 1;
        if self.cursor.index == self.geom.elems_per_block {
            self.next_block();
        }
        self.readiness
            .fire(self.storage.header().notify_data(self.readiness.is_some()));
        Ok(())
    }

    /// Pushes as many elements from the front of `src` as there is room for, published with
    /// one position, and returns how many that was (0 if the ring is full).
    ///
    /// # Errors
    ///
    /// [`Error::Corrupted`] if the consumer's `head` in shared memory is impossible.
    #[must_use = "the call may do only part of the work: check how many it did"]
    pub fn push_partial_slice(&mut self, src: &[T]) -> Result<usize, Error> {
        let n = self.free(src.len())?.min(src.len());
        if n == 0 {
            return Ok(0);
        }
        let storage = &*self.storage;
        runs(self.cursor, n, &self.geom, |block, index, range| {
            // SAFETY: the run lies in one block (runs); the n slots after tail are free.
            unsafe { storage.write_run_in(storage.block(block), index, &src[range]) }
        });
        self.publish(n);
        Ok(n)
    }

    /// Pushes all of `src`, published with one position, or nothing if fewer than
    /// `src.len()` slots are free.
    ///
    /// # Errors
    ///
    /// [`Error::Full`] with the number of free slots if `src` does not fit (nothing was
    /// pushed); [`Error::Corrupted`] if the consumer's `head` in shared memory is impossible.
    ///
    /// # Example
    ///
    /// ```
    /// use shm_queue::{spsc::Ring, Error};
    /// use shm_region::Region;
    ///
    /// let region = Region::anonymous(Ring::<u64>::required_bytes(7)?)?;
    /// let (mut tx, mut rx) = Ring::<u64>::create(region, 7)?.split()?;
    /// tx.push_entire_slice(&[1, 2, 3])?;
    /// // Five more do not fit in the seven slots: nothing is pushed.
    /// assert!(matches!(tx.push_entire_slice(&[0; 5]), Err(Error::Full { available: 4, .. })));
    /// let mut out = [0u64; 7];
    /// assert_eq!(rx.pop_partial_slice(&mut out)?, 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn push_entire_slice(&mut self, src: &[T]) -> Result<(), Error> {
        let free = self.free(src.len())?;
        if free < src.len() {
            return Err(Error::Full {
                requested: src.len(),
                available: free,
            });
        }
        let pushed = self.push_partial_slice(src)?;
        debug_assert_eq!(pushed, src.len());
        Ok(())
    }

    /// Reserves exactly `n` free slots to be written in place and then committed at once.
    ///
    /// Nothing is visible to the consumer until [`WriteChunk::commit`]; dropping the chunk
    /// instead abandons it.
    ///
    /// # Errors
    ///
    /// [`Error::Full`] with the number of free slots if fewer than `n` are free;
    /// [`Error::Corrupted`] if the consumer's `head` in shared memory is impossible.
    ///
    /// ```
    /// # let region = shm_region::Region::anonymous(4096)?;
    /// let ring = shm_queue::spsc::Ring::<u32>::create(region, 64)?;
    /// let (mut tx, mut rx) = ring.split()?;
    ///
    /// let mut chunk = tx.write_chunk(4)?;
    /// for i in 0..4 {
    ///     chunk.set(i, 10 * i as u32)?;
    /// }
    /// chunk.commit_all();
    ///
    /// let chunk = rx.read_chunk(4)?;
    /// assert_eq!(chunk.iter().collect::<Vec<_>>(), [0, 10, 20, 30]);
    /// chunk.commit_all();
    /// assert!(rx.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_chunk(&mut self, n: usize) -> Result<WriteChunk<'_, T>, Error> {
        let available = self.free(n)?;
        if available < n {
            return Err(Error::Full {
                requested: n,
                available,
            });
        }
        Ok(WriteChunk {
            producer: self,
            len: n,
        })
    }

    /// Reserves as many free slots as there are, up to `max` (possibly none).
    ///
    /// # Errors
    ///
    /// [`Error::Corrupted`] if the consumer's `head` in shared memory is impossible.
    pub fn write_chunk_up_to(&mut self, max: usize) -> Result<WriteChunk<'_, T>, Error> {
        let len = self.free(max)?.min(max);
        Ok(WriteChunk {
            producer: self,
            len,
        })
    }

    /// The current `head` if it is valid, else the cached one.
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

    /// Pushes one element, waiting for a free slot as the handle's [`WaitStrategy`] says,
    /// until `deadline` (`None`: no limit).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] at the deadline; [`Error::Closed`] if the ring is closed while
    /// waiting; [`Error::Corrupted`] as [`Producer::try_push`].
    pub fn push_blocking(&mut self, value: T, deadline: Option<Instant>) -> Result<(), Error> {
        match self.try_push(value) {
            Err(Error::Full { .. }) => {}
            done => return done,
        }
        let storage = self.storage.clone();
        storage
            .header()
            .space_signal()
            .wait(self.strategy, deadline, "a free slot", || {
                crate::wait::pending(self.try_push(value))
            })
    }

    /// Pushes all of `src`, in batches as room appears, waiting as the handle's
    /// [`WaitStrategy`] says, until `deadline`. Returns how many were pushed when it stops
    /// early with an error.
    ///
    /// # Errors
    ///
    /// `(pushed, error)` with [`Error::Timeout`], [`Error::Closed`] or [`Error::Corrupted`].
    pub fn push_slice_blocking(
        &mut self,
        src: &[T],
        deadline: Option<Instant>,
    ) -> Result<(), (usize, Error)> {
        let mut done = self.push_partial_slice(src).map_err(|e| (0, e))?;
        if done == src.len() {
            return Ok(());
        }
        let storage = self.storage.clone();
        storage
            .header()
            .space_signal()
            .wait(self.strategy, deadline, "free slots", || {
                done += self.push_partial_slice(&src[done..])?;
                Ok((done == src.len()).then_some(()))
            })
            .map_err(|e| (done, e))
    }

    /// Installs (or removes) the consumer's readiness descriptor (see
    /// [`crate::wait::readiness_fd`]): after the consumer arms it, the next publication
    /// writes to it.
    pub fn set_readiness_fd(&mut self, fd: Option<std::os::fd::OwnedFd>) {
        self.readiness.set(fd);
    }

    /// How many times this handle has written to the readiness descriptor: once per arming
    /// it consumed (a consumer that arms and then finds no data waits for exactly that).
    pub fn readiness_signals(&self) -> u64 {
        self.readiness.signals()
    }

    /// Closes the ring: the consumer drains what was pushed, then its blocking calls return
    /// [`Error::Closed`]; every sleeper on both sides is woken. Returns `false` if it was
    /// already closed.
    pub fn close(&self) -> bool {
        self.storage.header().close(1)
    }

    /// `true` once either side (or liveness code) has closed the ring.
    pub fn is_closed(&self) -> bool {
        self.storage.header().data_signal().is_closed()
    }

    fn head_now(&self) -> u64 {
        self.load_head().unwrap_or(self.head_cache)
    }

    /// Free slots now (reads the consumer's position).
    pub fn slots(&self) -> usize {
        (self.capacity - (self.tail - self.head_now())) as usize
    }

    /// Elements in the ring now, written but not yet consumed (reads the consumer's
    /// position).
    pub fn len(&self) -> usize {
        (self.tail - self.head_now()) as usize
    }

    /// `true` if the consumer has taken everything written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `true` if no slot is free.
    pub fn is_full(&self) -> bool {
        self.slots() == 0
    }

    /// Capacity in elements.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Elements published since the ring was created (the absolute `tail` position).
    pub fn position(&self) -> u64 {
        self.tail
    }
}

/// Slots reserved by [`Producer::write_chunk`], written in place and then committed.
///
/// Slots are reached by index, never through a Rust reference, because the memory is
/// shared with another process. Indices count from the first reserved slot; the chunk may
/// span several blocks and wrap around the end of the ring.
#[must_use = "dropping a claim or chunk without committing abandons it"]
pub struct WriteChunk<'a, T: Pod> {
    producer: &'a mut Producer<T>,
    len: usize,
}

impl<T: Pod> fmt::Debug for WriteChunk<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteChunk")
            .field("start", &self.producer.tail)
            .field("len", &self.len)
            .finish()
    }
}

impl<T: Pod> WriteChunk<'_, T> {
    /// Number of reserved slots.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` if no slot was reserved.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes slot `i` of the chunk.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] if `i >= len()`.
    pub fn set(&mut self, i: usize, value: T) -> Result<(), Error> {
        if i >= self.len {
            return Err(Error::OutOfRange {
                index: i,
                len: self.len,
            });
        }
        let p = &*self.producer;
        let c = p.cursor.offset(i, &p.geom);
        // SAFETY: c.index < elems_per_block (Cursor::offset), the block is the storage's
        // own; the slot is one of the chunk's reserved free slots.
        unsafe { p.storage.write_in(p.storage.block(c.block), c.index, value) };
        Ok(())
    }

    /// Copies `src` into slots `offset .. offset + src.len()`.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] if that range goes past the end of the chunk.
    pub fn copy_from_slice(&mut self, offset: usize, src: &[T]) -> Result<(), Error> {
        let end = offset.saturating_add(src.len());
        if end > self.len {
            return Err(Error::OutOfRange {
                index: end,
                len: self.len,
            });
        }
        let p = &*self.producer;
        let storage = &*p.storage;
        runs(
            p.cursor.offset(offset, &p.geom),
            src.len(),
            &p.geom,
            |block, index, range| {
                // SAFETY: the run lies in one block (runs) and within the reserved slots.
                unsafe { storage.write_run_in(storage.block(block), index, &src[range]) }
            },
        );
        Ok(())
    }

    /// Writes items from `iter` into the slots in order until either runs out; returns how
    /// many were written.
    pub fn fill_from_iter(&mut self, iter: impl IntoIterator<Item = T>) -> usize {
        let p = &*self.producer;
        let storage = &*p.storage;
        let epb = p.geom.elems_per_block;
        let (mut c, mut blk) = (p.cursor, p.blk);
        let mut n = 0;
        for value in iter.into_iter().take(self.len) {
            // SAFETY: c walks the reserved slots one by one (n < len), index < elems_per_block,
            // and `blk` is the storage's block of `c`.
            unsafe { storage.write_in(blk, c.index, value) };
            n += 1;
            c.index += 1;
            if c.index == epb {
                c.index = 0;
                c.block = (c.block + 1) & (p.geom.block_count - 1);
                blk = storage.block(c.block);
            }
        }
        n
    }

    /// Publishes the first `k` slots to the consumer; the rest stay free.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] if `k > len()`; nothing is published then.
    pub fn commit(self, k: usize) -> Result<(), Error> {
        if k > self.len {
            return Err(Error::OutOfRange {
                index: k,
                len: self.len,
            });
        }
        if k > 0 {
            self.producer.publish(k);
        }
        Ok(())
    }

    /// Publishes every slot of the chunk.
    pub fn commit_all(self) {
        if self.len > 0 {
            self.producer.publish(self.len);
        }
    }
}

/// The reading side of a ring; exactly one exists per ring at a time.
///
/// Made by [`Ring::consumer`]; frees its claim when dropped.
pub struct Consumer<T: Pod> {
    storage: Arc<Storage<T>>,
    geom: Geometry,
    /// Our position: everything before it is consumed.
    head: u64,
    /// Where `head` lives.
    cursor: Cursor,
    /// The block of `cursor`, located once per block.
    blk: Block,
    /// The highest published position seen; everything below it is ready to read.
    tail_cache: u64,
    capacity: u64,
    token: u64,
    strategy: WaitStrategy,
    /// Whether this handle is counted in the header's `consumer_sleepers`.
    sleeper: bool,
}

impl<T: Pod> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("head", &self.head)
            .field("tail_cache", &self.tail_cache)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl<T: Pod> Drop for Consumer<T> {
    fn drop(&mut self) {
        let header = self.storage.header();
        header.data_signal().unregister(&mut self.sleeper);
        claim::release(&header.control.consumer_claim, self.token);
    }
}

impl<T: Pod> Consumer<T> {
    /// Checks a published position read from shared memory: at most `head + capacity`.
    #[inline]
    fn check(&self, p: u64, what: &'static str) -> Result<u64, Error> {
        let max = self.head + self.capacity;
        if p > max {
            return Err(corrupted(what, p, 0, max));
        }
        Ok(p)
    }

    /// Ready elements, learning more from the block words if fewer than `want` are known.
    #[inline]
    fn refresh(&mut self, want: usize) -> Result<usize, Error> {
        let avail = (self.tail_cache - self.head) as usize;
        if avail >= want {
            return Ok(avail);
        }
        self.tail_cache = self.learn(self.tail_cache, want)?;
        Ok((self.tail_cache - self.head) as usize)
    }

    /// The highest published position known from `known` on: loads `P` of the block holding
    /// position `known` (the first not known to be ready) and follows on to the block of each
    /// new value until `want` elements after `head` are known or a word brings nothing new.
    /// Every line it touches is one the reader needs for the payload anyway.
    fn learn(&self, mut known: u64, want: usize) -> Result<u64, Error> {
        let mut at = self.cursor.offset((known - self.head) as usize, &self.geom);
        for _ in 0..=self.geom.block_count {
            let p = self.storage.word(at.block).load(Ordering::Acquire);
            if p <= known {
                break;
            }
            let p = self.check(p, "block published position")?;
            let gained = (p - known) as usize;
            known = p;
            if (known - self.head) as usize >= want {
                break;
            }
            at = at.offset(gained, &self.geom);
        }
        Ok(known)
    }

    /// Loads `P` of the current block: `true` if it shows elements beyond `head` (cached in
    /// `tail_cache`). Called only when `head == tail_cache`.
    #[inline]
    fn poll(&mut self) -> Result<bool, Error> {
        // SAFETY: `blk` is the storage's block of `cursor`.
        let p = unsafe { self.storage.word_in(self.blk) }.load(Ordering::Acquire);
        if p <= self.tail_cache {
            return Ok(false);
        }
        self.tail_cache = self.check(p, "block published position")?;
        Ok(true)
    }

    /// Consumes `n <= ready` elements: one `Release` store of the new `head`.
    fn advance(&mut self, n: usize) {
        self.head += n as u64;
        self.cursor = self.cursor.offset(n, &self.geom);
        self.blk = self.storage.block(self.cursor.block);
        self.publish_head();
    }

    /// Stores `head` with `Release`, handing the slots before it back to the producer, and
    /// wakes a producer sleeping for space.
    #[inline]
    fn publish_head(&self) {
        let header = self.storage.header();
        header.consumer.pos.store(self.head, Ordering::Release);
        header.notify_space();
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

    /// Pops one element, waiting as the handle's [`WaitStrategy`] says until one is ready
    /// or `deadline` passes (`None`: no limit).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] at the deadline; [`Error::Closed`] once the ring is closed and
    /// everything pushed before has been popped; [`Error::Corrupted`] as
    /// [`Consumer::try_pop`].
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use shm_queue::{spsc::Ring, wait::WaitStrategy, Error};
    ///
    /// let region = shm_region::Region::anonymous(4096)?;
    /// let (mut tx, mut rx) = Ring::<u64>::create(region, 64)?.split()?;
    /// rx.set_wait_strategy(WaitStrategy::blocking()); // sleep on a futex when idle
    /// let soon = Some(Instant::now() + Duration::from_millis(10));
    /// assert!(matches!(rx.pop_blocking(soon), Err(Error::Timeout { .. })));
    /// tx.try_push(5)?;
    /// tx.close();
    /// assert_eq!(rx.pop_blocking(None)?, 5);
    /// assert!(matches!(rx.pop_blocking(None), Err(Error::Closed { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pop_blocking(&mut self, deadline: Option<Instant>) -> Result<T, Error> {
        match self.try_pop() {
            Err(Error::Empty { .. }) => {}
            done => return done,
        }
        let storage = self.storage.clone();
        storage
            .header()
            .data_signal()
            .wait(self.strategy, deadline, "an element", || {
                crate::wait::pending(self.try_pop())
            })
    }

    /// Waits like [`Consumer::pop_blocking`] until at least one element is ready, then pops
    /// as many as are ready, up to `dst.len()`; returns how many.
    ///
    /// # Errors
    ///
    /// As [`Consumer::pop_blocking`].
    #[must_use = "the call may do only part of the work: check how many it did"]
    pub fn pop_partial_slice_blocking(
        &mut self,
        dst: &mut [T],
        deadline: Option<Instant>,
    ) -> Result<usize, Error> {
        if dst.is_empty() {
            return Ok(0);
        }
        match self.pop_partial_slice(dst)? {
            0 => {}
            n => return Ok(n),
        }
        let storage = self.storage.clone();
        storage
            .header()
            .data_signal()
            .wait(self.strategy, deadline, "elements", || {
                Ok(match self.pop_partial_slice(dst)? {
                    0 => None,
                    n => Some(n),
                })
            })
    }

    /// Arms the readiness descriptor the producer holds (see
    /// [`crate::wait::readiness_fd`]). Returns `true` if elements are already ready: then
    /// do not wait for the descriptor, pop them now. Otherwise the next push signals it.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupted`] if a published position in shared memory is impossible.
    pub fn arm_readiness(&mut self) -> Result<bool, Error> {
        self.storage.header().data_signal().arm();
        Ok(self.refresh(1)? > 0)
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

    /// Pops one element.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] if nothing is ready; [`Error::Corrupted`] if a published position in
    /// shared memory is impossible.
    ///
    /// ```
    /// # use shm_queue::{spsc::Ring, Error};
    /// # let region = shm_region::Region::anonymous(4096)?;
    /// let (mut tx, mut rx) = Ring::<u64>::create(region, 16)?.split()?;
    /// assert!(matches!(rx.try_pop(), Err(Error::Empty { .. })));
    /// tx.try_push(42)?;
    /// assert_eq!(rx.peek()?, 42);
    /// assert_eq!(rx.try_pop()?, 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_pop(&mut self) -> Result<T, Error> {
        if self.head == self.tail_cache && !self.poll()? {
            return Err(Error::Empty {
                requested: 1,
                available: 0,
            });
        }
        let index = self.cursor.index;
        // SAFETY: `blk` is the storage's block of `cursor`, index < elems_per_block (Cursor
        // invariant); head < tail_cache, a published position we acquired, so the slot was
        // written and the producer cannot reuse it until we store a head beyond it.
        let value = unsafe { self.storage.read_in(self.blk, index) };
        self.head += 1;
        self.publish_head();
        self.cursor.index = index + 1;
        if self.cursor.index == self.geom.elems_per_block {
            self.cursor.index = 0;
            self.cursor.block = (self.cursor.block + 1) & (self.geom.block_count - 1);
            self.blk = self.storage.block(self.cursor.block);
        }
        Ok(value)
    }

    /// The next element, copied, without consuming it.
    ///
    /// # Errors
    ///
    /// As [`Consumer::try_pop`].
    pub fn peek(&mut self) -> Result<T, Error> {
        if self.refresh(1)? == 0 {
            return Err(Error::Empty {
                requested: 1,
                available: 0,
            });
        }
        // SAFETY: as in try_pop.
        Ok(unsafe { self.storage.read_in(self.blk, self.cursor.index) })
    }

    /// Pops as many elements as are ready, up to `dst.len()`, into `dst`; returns how many.
    /// The slots are freed with one position store.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupted`] if a published position in shared memory is impossible.
    #[must_use = "the call may do only part of the work: check how many it did"]
    pub fn pop_partial_slice(&mut self, dst: &mut [T]) -> Result<usize, Error> {
        let n = self.refresh(dst.len())?.min(dst.len());
        if n == 0 {
            return Ok(0);
        }
        let storage = &*self.storage;
        runs(self.cursor, n, &self.geom, |block, index, range| {
            // SAFETY: the run lies in one block (runs), below tail_cache (ready) and not yet
            // released to the producer.
            unsafe { storage.read_run_in(storage.block(block), index, &mut dst[range]) }
        });
        self.advance(n);
        Ok(n)
    }

    /// Gives in-place access to exactly `n` ready elements, consumed on
    /// [`ReadChunk::commit`]. Dropping the chunk instead leaves them in the ring.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] with the number ready if fewer than `n` are; [`Error::Corrupted`] if a
    /// published position in shared memory is impossible.
    pub fn read_chunk(&mut self, n: usize) -> Result<ReadChunk<'_, T>, Error> {
        let available = self.refresh(n)?;
        if available < n {
            return Err(Error::Empty {
                requested: n,
                available,
            });
        }
        Ok(ReadChunk {
            consumer: self,
            len: n,
        })
    }

    /// Gives in-place access to the ready elements, at most `max` (possibly none).
    ///
    /// # Errors
    ///
    /// [`Error::Corrupted`] if a published position in shared memory is impossible.
    pub fn read_chunk_up_to(&mut self, max: usize) -> Result<ReadChunk<'_, T>, Error> {
        let len = self.refresh(max)?.min(max);
        Ok(ReadChunk {
            consumer: self,
            len,
        })
    }

    /// Elements ready to read now: reads the producer's `tail` word, then follows the block
    /// words from there.
    pub fn slots(&self) -> usize {
        let mut tail = self.tail_cache;
        let word = self.storage.header().producer.pos.load(Ordering::Acquire);
        if let Ok(p) = self.check(word, "") {
            tail = tail.max(p);
        }
        // The `tail` word lags single pushes by up to a block; the block words have the rest.
        let tail = self.learn(tail, usize::MAX).unwrap_or(tail);
        (tail - self.head) as usize
    }

    /// Elements in the ring, as [`Consumer::slots`].
    pub fn len(&self) -> usize {
        self.slots()
    }

    /// `true` if nothing is ready to read.
    pub fn is_empty(&self) -> bool {
        self.slots() == 0
    }

    /// Capacity in elements.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Elements consumed since the ring was created (the absolute `head` position).
    pub fn position(&self) -> u64 {
        self.head
    }
}

/// Ready elements given by [`Consumer::read_chunk`], read in place and then committed.
///
/// Elements are handed out as copies, never as references, because the memory is shared with
/// another process: once you hold a value it cannot change under you. Indices count from the
/// first ready element; the chunk may span several blocks and wrap around the end.
#[must_use = "the slots stay held until the guard is released or dropped"]
pub struct ReadChunk<'a, T: Pod> {
    consumer: &'a mut Consumer<T>,
    len: usize,
}

impl<T: Pod> fmt::Debug for ReadChunk<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadChunk")
            .field("start", &self.consumer.head)
            .field("len", &self.len)
            .finish()
    }
}

impl<T: Pod> ReadChunk<'_, T> {
    /// Number of elements in the chunk.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` if the chunk holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A copy of element `i`, or `None` if `i >= len()`.
    pub fn get(&self, i: usize) -> Option<T> {
        if i >= self.len {
            return None;
        }
        let c = &*self.consumer;
        let at = c.cursor.offset(i, &c.geom);
        // SAFETY: at.index < elems_per_block (Cursor::offset), the block is the storage's
        // own; the element is ready and not released (i < len <= ready).
        Some(unsafe { c.storage.read_in(c.storage.block(at.block), at.index) })
    }

    /// Copies elements `offset .. offset + dst.len()` into `dst`.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] if that range goes past the end of the chunk.
    pub fn copy_to_slice(&self, offset: usize, dst: &mut [T]) -> Result<(), Error> {
        let end = offset.saturating_add(dst.len());
        if end > self.len {
            return Err(Error::OutOfRange {
                index: end,
                len: self.len,
            });
        }
        let c = &*self.consumer;
        let storage = &*c.storage;
        runs(
            c.cursor.offset(offset, &c.geom),
            dst.len(),
            &c.geom,
            |block, index, range| {
                // SAFETY: the run lies in one block (runs), within the chunk's ready elements.
                unsafe { storage.read_run_in(storage.block(block), index, &mut dst[range]) }
            },
        );
        Ok(())
    }

    /// The elements in order, as copies.
    pub fn iter(&self) -> ChunkIter<'_, T> {
        ChunkIter {
            storage: &self.consumer.storage,
            geom: &self.consumer.geom,
            cursor: self.consumer.cursor,
            blk: self.consumer.blk,
            remaining: self.len,
        }
    }

    /// Consumes the first `k` elements, freeing their slots; the rest stay in the ring.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfRange`] if `k > len()`; nothing is consumed then.
    pub fn commit(self, k: usize) -> Result<(), Error> {
        if k > self.len {
            return Err(Error::OutOfRange {
                index: k,
                len: self.len,
            });
        }
        if k > 0 {
            self.consumer.advance(k);
        }
        Ok(())
    }

    /// Consumes every element of the chunk.
    pub fn commit_all(self) {
        if self.len > 0 {
            self.consumer.advance(self.len);
        }
    }
}

impl<'c, T: Pod> IntoIterator for &'c ReadChunk<'_, T> {
    type Item = T;
    type IntoIter = ChunkIter<'c, T>;

    fn into_iter(self) -> ChunkIter<'c, T> {
        self.iter()
    }
}

/// Iterator over copies of a [`ReadChunk`]'s elements.
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct ChunkIter<'c, T: Pod> {
    storage: &'c Storage<T>,
    geom: &'c Geometry,
    cursor: Cursor,
    /// The block of `cursor`.
    blk: Block,
    remaining: usize,
}

impl<T: Pod> fmt::Debug for ChunkIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkIter")
            .field("remaining", &self.remaining)
            .finish()
    }
}

impl<T: Pod> Iterator for ChunkIter<'_, T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        if self.remaining == 0 {
            return None;
        }
        // SAFETY: `blk` is the storage's block of `cursor`, index < elems_per_block; the
        // element is one of the chunk's ready elements.
        let value = unsafe { self.storage.read_in(self.blk, self.cursor.index) };
        self.remaining -= 1;
        self.cursor.index += 1;
        if self.cursor.index == self.geom.elems_per_block {
            self.cursor.index = 0;
            self.cursor.block = (self.cursor.block + 1) & (self.geom.block_count - 1);
            self.blk = self.storage.block(self.cursor.block);
        }
        Some(value)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<T: Pod> ExactSizeIterator for ChunkIter<'_, T> {}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn geom(blocks: usize, epb: usize) -> Geometry {
        let mut g = Geometry::for_capacity::<u64>(1).unwrap();
        g.block_count = blocks;
        g.elems_per_block = epb;
        g
    }

    #[test]
    fn cursor_arithmetic_matches_division() {
        for (blocks, epb) in [(1, 1), (1, 7), (2, 1), (4, 3), (8, 7), (16, 56)] {
            let g = geom(blocks, epb);
            let mut c = Cursor::of(0, &g);
            for pos in 0..(3 * blocks * epb) as u64 + 5 {
                assert_eq!(
                    c,
                    Cursor::of(pos, &g),
                    "pos {pos} blocks {blocks} epb {epb}"
                );
                for n in [
                    0usize,
                    1,
                    2,
                    epb,
                    epb + 1,
                    blocks * epb,
                    2 * blocks * epb + 3,
                ] {
                    assert_eq!(c.offset(n, &g), Cursor::of(pos + n as u64, &g));
                }
                c.step(1, &g);
            }
        }
    }

    #[test]
    fn runs_cover_exactly_and_stay_in_blocks() {
        let g = geom(4, 3);
        for start in 0..15u64 {
            for n in 0..20usize {
                let mut seen = Vec::new();
                runs(Cursor::of(start, &g), n, &g, |block, index, range| {
                    assert!(index + range.len() <= 3 && block < 4 && !range.is_empty());
                    for (k, r) in range.enumerate() {
                        seen.push((
                            r,
                            Cursor {
                                block,
                                index: index + k,
                            },
                        ));
                    }
                });
                let want: Vec<_> = (0..n)
                    .map(|r| (r, Cursor::of(start + r as u64, &g)))
                    .collect();
                assert_eq!(seen, want);
            }
        }
    }
}
