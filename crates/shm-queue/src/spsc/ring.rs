//! [`Ring`]: creating, attaching and validating an SPSC ring, and taking its two handles.

use super::*;
use crate::header::check_block_count;

/// Options for [`Ring::create_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "options do nothing until passed to a constructor"]
pub struct Options {
    capacity: usize,
    reinitialize: bool,
}

impl Options {
    /// A ring with room for at least `capacity` elements.
    ///
    /// The real capacity is rounded up to a power-of-two number of blocks times the elements
    /// per block (for example 7 `u64`s per 64-byte block); [`Ring::capacity`] reports it.
    pub fn new(capacity: usize) -> Self {
        Options {
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
pub struct Ring<T: Element> {
    storage: Arc<Storage<T>>,
}

impl<T: Element> Clone for Ring<T> {
    fn clone(&self) -> Self {
        Ring {
            storage: self.storage.clone(),
        }
    }
}

impl<T: Element> fmt::Debug for Ring<T> {
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
        Self::required_bytes_as(&ElementType::of::<T>(), capacity)
    }

    /// Creates a ring of at least `capacity` elements at the start of `region`.
    ///
    /// Refuses to touch a region whose header says a ring is already there (see
    /// [`Options::reinitialize`]). The creator stores the `ready` word last, so an
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
        Self::create_with(region, Options::new(capacity))
    }

    /// Creates a ring with explicit [`Options`].
    ///
    /// # Errors
    ///
    /// As [`Ring::create`]; with `reinitialize(true)` never [`Error::AlreadyInitialized`]
    /// unless another creator races with this one.
    pub fn create_with(region: impl Into<Arc<Region>>, options: Options) -> Result<Self, Error> {
        Self::create_as(region, &ElementType::of::<T>(), options)
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
        Self::attach_as(region, &ElementType::of::<T>())
    }
}

/// Rings of elements named at run time: the constructors every `Ring` has, for an explicit
/// [`ElementType`], which is how a [`Ring<Raw>`](crate::Raw) is made and how a Rust `Pod`
/// type shares a ring with a C or Python peer under an agreed name.
#[cfg(not(loom))]
impl<T: Element> Ring<T> {
    /// Bytes a region needs for a ring of at least `capacity` elements of `elem`.
    ///
    /// # Errors
    ///
    /// [`Error::BadCapacity`] for a zero or too large capacity.
    pub fn required_bytes_as(elem: &ElementType, capacity: usize) -> Result<usize, Error> {
        Ok(Geometry::for_capacity(BlockShape::of_element(elem)?, capacity)?.area_size())
    }

    /// Creates a ring of elements of type `elem` (its name's fingerprint is recorded), with
    /// `options`.
    ///
    /// # Errors
    ///
    /// [`Error::TypeMismatch`] if `T` is a `Pod` type of another size or alignment than
    /// `elem`; otherwise as [`Ring::create`].
    ///
    /// ```
    /// use shm_queue::{spsc::{Options, Ring}, ElementType, Raw};
    ///
    /// // A Rust `u64` ring and a raw ring of 8-byte elements agree on the name.
    /// let elem = ElementType::named("example.Count/1", 8, 8)?;
    /// let region = shm_region::Region::anonymous(Ring::<Raw>::required_bytes_as(&elem, 16)?)?;
    /// let ring = Ring::<u64>::create_as(region, &elem, Options::new(16))?;
    /// let raw = Ring::<Raw>::attach_as(ring.region().clone(), &elem)?;
    /// let (mut tx, mut rx) = (ring.producer()?, raw.consumer()?);
    /// tx.try_push(7)?;
    /// let mut out = [0u8; 8];
    /// assert_eq!(rx.pop_partial_into(&mut out)?, 1);
    /// assert_eq!(u64::from_ne_bytes(out), 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_as(
        region: impl Into<Arc<Region>>,
        elem: &ElementType,
        options: Options,
    ) -> Result<Self, Error> {
        elem.check_fits::<T>()?;
        let geom = Geometry::for_capacity(BlockShape::of_element(elem)?, options.capacity)?;
        let storage = Storage::in_region(region.into(), geom)?;
        Self::initialise(storage, options)
    }

    /// Attaches to the ring at the start of `region`, which must hold elements of type
    /// `elem` (size, alignment and the fingerprint of its name), checking every header field.
    ///
    /// # Errors
    ///
    /// As [`Ring::attach`]; [`Error::TypeMismatch`] also if `T` is a `Pod` type of another
    /// size or alignment than `elem`.
    pub fn attach_as(region: impl Into<Arc<Region>>, elem: &ElementType) -> Result<Self, Error> {
        elem.check_fits::<T>()?;
        let region = region.into();
        let geom = header_of(&region)?.validate_as(RingKind::Spsc, elem, region.len() as u64)?;
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
        let shape = BlockShape::of_element(&ElementType::of::<T>())?;
        let geom = Geometry::for_model(shape, block_count, elems_per_block)?;
        Self::initialise(Storage::on_heap(geom)?, Options::new(geom.capacity()))
    }
}

impl<T: Element> Ring<T> {
    fn initialise(storage: Storage<T>, options: Options) -> Result<Self, Error> {
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

    /// Bytes the ring occupies from the start of its region (header and blocks).
    pub fn area_size(&self) -> usize {
        self.storage.geom.area_size()
    }

    /// Bytes per element.
    pub fn element_size(&self) -> usize {
        self.storage.elem_size()
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
        claim::take_for(self.storage.header(), Role::Producer, |token| {
            let (head, tail) = self.recover_tail()?;
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
                sleeper: crate::wait::Sleeper::No,
                readiness: ReadinessFd::default(),
            })
        })
    }

    /// Takes the consumer side; it resumes at the last published `head`.
    ///
    /// # Errors
    ///
    /// [`Error::ConsumerClaimed`] while another consumer handle exists (in any process);
    /// [`Error::Corrupted`] if the shared positions are impossible.
    pub fn consumer(&self) -> Result<Consumer<T>, Error> {
        let header = self.storage.header();
        claim::take_for(header, Role::Consumer, |token| {
            let (head, _) = check_positions(header, &self.storage.geom)?;
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
                sleeper: crate::wait::Sleeper::No,
            })
        })
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
                return Err(corrupted(Word::BlockPosition, p).into());
            }
            tail = tail.max(p);
        }
        if tail < head {
            return Err(corrupted(Word::Tail, tail).into());
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

impl Header {
    /// Checks every configuration field against the caller's element type and the length of
    /// the memory the header sits in, and returns the geometry it describes.
    ///
    /// The `Acquire` load of `ready` comes first, so the `Relaxed` loads after it see what
    /// the creator stored before publishing.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn validate_as(
        &self,
        kind: RingKind,
        elem: &ElementType,
        region_len: u64,
    ) -> Result<Geometry, Error> {
        self.for_element(kind, elem, |h, shape| h.validate_shape(shape, region_len))
    }

    /// The checks of [`Header::validate`] after the element type's: the geometry `shape`
    /// gives with the recorded block count, against every field and `region_len`.
    pub(crate) fn validate_shape(
        &self,
        shape: crate::header::BlockShape,
        region_len: u64,
    ) -> Result<Geometry, Error> {
        let c = &self.config;
        let r = Ordering::Relaxed;
        let blocks = c.block_count.load(r);
        check_block_count(blocks)?;
        let g = Geometry::from_shape(shape, blocks as usize)?;
        self.expect_typed_geometry(&g, g.area_size() as u64, region_len)?;
        Ok(g)
    }
}

crate::sync::claim::claim_controls!([T: Element] Ring<T>, Producer<T>, Consumer<T>);
