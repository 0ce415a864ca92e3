//! [`Ring`]: creating, attaching and validating an MPMC ring, and making its handles.

use super::*;

/// Options for [`Ring::create_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "options do nothing until passed to a constructor"]
pub struct Options {
    capacity: usize,
    owners: usize,
    slots: SlotLayout,
    reinitialize: bool,
}

impl Options {
    /// A ring of at least `capacity` slots (rounded up to a power of two, at least 2) with
    /// [`DEFAULT_OWNERS`] owner entries.
    pub fn new(capacity: usize) -> Self {
        Options {
            capacity,
            owners: DEFAULT_OWNERS,
            slots: SlotLayout::default(),
            reinitialize: false,
        }
    }

    /// How the slots are spaced: [`SlotLayout::Packed`] (the default) or
    /// [`SlotLayout::Line`]. Recorded in the header; attachers follow it.
    ///
    /// ```
    /// use shm_queue::mpmc::{Options, Ring, SlotLayout};
    /// let packed = Ring::<u64>::required_bytes_with(Options::new(1024))?;
    /// let line =
    ///     Ring::<u64>::required_bytes_with(Options::new(1024).slot_layout(SlotLayout::Line))?;
    /// assert_eq!(line - packed, 1024 * (64 - 16)); // 16-byte slots instead of 64
    /// # Ok::<(), shm_queue::Error>(())
    /// ```
    pub fn slot_layout(mut self, slots: SlotLayout) -> Self {
        self.slots = slots;
        self
    }

    /// The number of owner-table entries: how many producer and consumer handles may exist
    /// at once, all processes together (1 to 4096; each costs 128 bytes).
    pub fn owners(mut self, owners: usize) -> Self {
        self.owners = owners;
        self
    }

    /// Initialise even if the region already holds a ring; see
    /// [`crate::spsc::Options::reinitialize`].
    ///
    /// # Safety
    ///
    /// As [`crate::spsc::Options::reinitialize`]: with `yes`, no previous user of the
    /// region may use its handles again.
    pub unsafe fn reinitialize(mut self, yes: bool) -> Self {
        self.reinitialize = yes;
        self
    }

    fn layout(&self, elem: &ElementType) -> Result<Layout, Error> {
        let cap = self
            .capacity
            .max(layout::MIN_CAPACITY)
            .checked_next_power_of_two()
            .ok_or(Error::BadCapacity {
                blocks: self.capacity as u64,
                max_blocks: layout::MAX_CAPACITY as u64,
                reason: "too large",
            })?;
        Layout::new(elem, cap, self.owners, self.slots)
    }
}

/// A handle to an MPMC ring: makes [`Producer`]s and [`Consumer`]s. Cheap to clone; keeps
/// the region mapped while it or any handle lives.
pub struct Ring<T: Element> {
    mem: Arc<Slots<T>>,
}

impl<T: Element> Clone for Ring<T> {
    fn clone(&self) -> Self {
        Ring {
            mem: self.mem.clone(),
        }
    }
}

impl<T: Element> fmt::Debug for Ring<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.capacity())
            .field("owners", &self.mem.layout.owners)
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(not(loom))]
impl<T: Pod> Ring<T> {
    /// Bytes a region needs for a ring of at least `capacity` elements of `T` with
    /// [`DEFAULT_OWNERS`] owner entries.
    ///
    /// # Errors
    ///
    /// [`Error::BadCapacity`] above 2^36 slots, [`Error::UnsupportedType`] for a zero-sized
    /// `T` or one aligned to more than 64 bytes.
    ///
    /// ```
    /// use shm_queue::mpmc::Ring;
    /// // Header, counters line, 64 owner entries of 128 bytes, 1024 packed slots of 16 bytes.
    /// assert_eq!(Ring::<u64>::required_bytes(1000)?, 512 + 128 + 64 * 128 + 1024 * 16);
    /// # Ok::<(), shm_queue::Error>(())
    /// ```
    pub fn required_bytes(capacity: usize) -> Result<usize, Error> {
        Self::required_bytes_with(Options::new(capacity))
    }

    /// Bytes a region needs for a ring made with `options`.
    ///
    /// # Errors
    ///
    /// As [`Ring::required_bytes`], and [`Error::BadOwnerCount`].
    pub fn required_bytes_with(options: Options) -> Result<usize, Error> {
        Self::required_bytes_as(&ElementType::of::<T>(), options)
    }

    /// Creates a ring of at least `capacity` elements at the start of `region`.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyInitialized`] if the region already holds a ring (see
    /// [`Options::reinitialize`]); [`Error::RegionTooSmall`]; those of
    /// [`Ring::required_bytes`].
    ///
    /// ```
    /// use shm_queue::{mpmc::Ring, Error};
    /// use shm_region::Region;
    /// use std::sync::Arc;
    ///
    /// let region = Arc::new(Region::anonymous(Ring::<u32>::required_bytes(100)?)?);
    /// let ring = Ring::<u32>::create(region.clone(), 100)?;
    /// assert_eq!(ring.capacity(), 128);
    /// assert!(matches!(
    ///     Ring::<u32>::create(region, 100),
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
    /// As [`Ring::create`], and [`Error::BadOwnerCount`].
    pub fn create_with(region: impl Into<Arc<Region>>, options: Options) -> Result<Self, Error> {
        Self::create_as(region, &ElementType::of::<T>(), options)
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
    /// use shm_queue::mpmc::Ring;
    /// use shm_region::Region;
    /// use std::sync::Arc;
    ///
    /// let region = Arc::new(Region::anonymous(Ring::<u64>::required_bytes(64)?)?);
    /// let mut tx = Ring::<u64>::create(region.clone(), 64)?.producer()?;
    /// let ring = Ring::<u64>::attach(region.clone())?;
    /// tx.try_push(5)?;
    /// assert_eq!(ring.consumer()?.try_pop()?, 5);
    /// assert!(Ring::<f64>::attach(region).is_err()); // the element type is checked
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn attach(region: impl Into<Arc<Region>>) -> Result<Self, Error> {
        Self::attach_as(region, &ElementType::of::<T>())
    }
}

/// Rings of elements named at run time (see [`crate::spsc::Ring::create_as`]): how a
/// [`Ring<Raw>`](crate::Raw) is made, and how a `Pod` type shares a ring with a C or
/// Python peer under an agreed name.
#[cfg(not(loom))]
impl<T: Element> Ring<T> {
    /// Bytes a region needs for a ring of elements of type `elem` made with `options`.
    ///
    /// # Errors
    ///
    /// As [`Ring::required_bytes_with`].
    pub fn required_bytes_as(elem: &ElementType, options: Options) -> Result<usize, Error> {
        Ok(options.layout(elem)?.area_size())
    }

    /// Creates a ring of elements of type `elem` (its name's fingerprint is recorded).
    ///
    /// # Errors
    ///
    /// [`Error::TypeMismatch`] if `T` is a `Pod` type of another size or alignment than
    /// `elem`; otherwise as [`Ring::create_with`].
    ///
    /// ```
    /// use shm_queue::{mpmc::{Options, Ring}, ElementType, Raw};
    ///
    /// let elem = ElementType::named("example.Pair/1", 8, 4)?;
    /// let opts = Options::new(8);
    /// let region = shm_region::Region::anonymous(Ring::<Raw>::required_bytes_as(&elem, opts)?)?;
    /// let raw = Ring::<Raw>::create_as(region, &elem, opts)?;
    /// let typed = Ring::<[u32; 2]>::attach_as(raw.region().clone(), &elem)?;
    /// let mut tx = raw.producer()?;
    /// let bytes: Vec<u8> = [1u32, 2, 3, 4].iter().flat_map(|v| v.to_ne_bytes()).collect();
    /// assert_eq!(tx.push_partial_bytes(&bytes)?, 2);
    /// assert_eq!(typed.consumer()?.try_pop()?, [1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_as(
        region: impl Into<Arc<Region>>,
        elem: &ElementType,
        options: Options,
    ) -> Result<Self, Error> {
        elem.check_fits::<T>()?;
        let layout = options.layout(elem)?;
        Self::initialise(Slots::in_region(region.into(), layout)?, options)
    }

    /// Attaches to the MPMC ring at the start of `region`, which must hold elements of type
    /// `elem`, checking every header field.
    ///
    /// # Errors
    ///
    /// As [`Ring::attach`]; [`Error::TypeMismatch`] also if `T` is a `Pod` type of another
    /// size or alignment than `elem`.
    pub fn attach_as(region: impl Into<Arc<Region>>, elem: &ElementType) -> Result<Self, Error> {
        elem.check_fits::<T>()?;
        let region = region.into();
        let layout = crate::mem::header_of(&region)?.validate_mpmc(elem, region.len() as u64)?;
        let mem = Slots::in_region(region, layout)?;
        super::check_positions(mem.header(), layout.capacity() as u64)?;
        Ok(Ring { mem: Arc::new(mem) })
    }

    /// The region the ring lives in.
    pub fn region(&self) -> &Arc<Region> {
        self.mem.region()
    }
}

#[cfg(loom)]
impl<T: Pod> Ring<T> {
    /// A ring of `capacity` slots and `owners` owner entries in heap memory, for loom
    /// models (only with `cfg(loom)`).
    ///
    /// # Errors
    ///
    /// As [`Ring::create`].
    pub fn new_model(capacity: usize, owners: usize) -> Result<Self, Error> {
        Self::new_model_with(Options::new(capacity).owners(owners))
    }

    /// [`Ring::new_model`] with explicit [`Options`] (the slot layout, say).
    ///
    /// # Errors
    ///
    /// As [`Ring::create`].
    pub fn new_model_with(options: Options) -> Result<Self, Error> {
        Self::initialise(
            Slots::on_heap(options.layout(&ElementType::of::<T>())?)?,
            options,
        )
    }

    /// The position check an attach makes, over this ring, for loom models (only with
    /// `cfg(loom)`).
    ///
    /// # Errors
    ///
    /// [`TryError::Corrupted`] if the positions are impossible.
    pub fn check_positions_for_model(&self) -> Result<(), TryError> {
        super::check_positions(self.mem.header(), self.mem.layout.capacity() as u64)
    }
}

impl<T: Element> Ring<T> {
    fn initialise(mem: Slots<T>, options: Options) -> Result<Self, Error> {
        let layout = mem.layout;
        let header = mem.header();
        header.begin_init(options.reinitialize)?;
        header.write_config(&layout.geom, RingKind::Mpmc, options.capacity as u64);
        let r = Ordering::Relaxed;
        let c = &header.config;
        c.area_size.store(layout.area_size() as u64, r);
        c.reserved1[0].store(layout.owners as u64, r);
        c.reserved1[1].store(layout.slots.code(), r);
        let k = mem.counters();
        for w in [&k.skipped, &k.released, &k.revoked] {
            w.store(0, r);
        }
        for e in (0..layout.owners).filter_map(|i| mem.owner(i)) {
            for w in [&e.token, &e.role, &e.claim_start, &e.claim_len, &e.sleep] {
                w.store(0, r);
            }
        }
        for p in 0..layout.capacity() as u64 {
            mem.seq(p).store(p, r);
        }
        header.publish_ready();
        Ok(Ring { mem: Arc::new(mem) })
    }

    /// Capacity in elements (a power of two).
    pub fn capacity(&self) -> usize {
        self.mem.layout.capacity()
    }

    /// Number of owner-table entries: the most handles that can exist at once.
    pub fn owner_entries(&self) -> usize {
        self.mem.layout.owners
    }

    /// How the slots are spaced (the creator's [`Options::slot_layout`]).
    pub fn slot_layout(&self) -> SlotLayout {
        self.mem.layout.slots
    }

    /// Elements claimed by producers and not yet claimed by consumers: approximate, see
    /// [`Producer::len`].
    pub fn len(&self) -> usize {
        approx_len(&self.mem)
    }

    /// `true` if [`Ring::len`] is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What recovery has done on this ring since it was created (shared by all processes).
    ///
    /// ```
    /// # use shm_queue::mpmc::Ring;
    /// # let region = shm_region::Region::anonymous(Ring::<u8>::required_bytes(4)?)?;
    /// let ring = Ring::<u8>::create(region, 4)?;
    /// assert_eq!(ring.stats().skipped, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> Stats {
        let k = self.mem.counters();
        let r = Ordering::Relaxed;
        Stats {
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
    /// [`TryError::OwnerTableFull`] when every owner entry is taken.
    pub fn producer(&self) -> Result<Producer<T>, Error> {
        self.producer_with_token(new_token())
    }

    /// A producer handle that registers under `token`: the value the [`Liveness`] check
    /// will be asked about. Use one token per process (or per liveness unit).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOwnerToken`] for 0; [`TryError::OwnerTableFull`].
    pub fn producer_with_token(&self, token: u64) -> Result<Producer<T>, Error> {
        Ok(Producer {
            h: Handle::new(self.mem.clone(), token, ROLE_PRODUCER)?,
        })
    }

    /// A consumer handle with a fresh owner token; see [`Ring::producer`].
    ///
    /// # Errors
    ///
    /// [`TryError::OwnerTableFull`] when every owner entry is taken.
    pub fn consumer(&self) -> Result<Consumer<T>, Error> {
        self.consumer_with_token(new_token())
    }

    /// A consumer handle that registers under `token`; see
    /// [`Ring::producer_with_token`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOwnerToken`] for 0; [`TryError::OwnerTableFull`].
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
            if token == 0 || token == super::claims::LEAVING {
                continue;
            }
            // Whether the entry's claim is over (consumed, or released after reading).
            // `head` and `tail` only grow, so values read earlier are conservative.
            let resolved = || {
                let start = e.claim_start.load(Ordering::Relaxed);
                let len = e.claim_len.load(Ordering::Relaxed).min(cap);
                let end = start.saturating_add(len);
                len == 0
                    || match e.role.load(Ordering::Relaxed) {
                        ROLE_PRODUCER => end <= head,
                        ROLE_CONSUMER => end.saturating_add(cap) <= tail,
                        _ => true,
                    }
            };
            // The first look is only a cheap filter: the holder may claim again and die
            // between it and the liveness check. Once the check has seen the death, the
            // holder's last claim is ordered before us (`Liveness` requires the check to
            // synchronise with the death), so the second look is the one that counts.
            // LEAVING while we take the dead holder's counts back, so no new holder takes
            // the entry (and writes its own role and counts) before we read them.
            if resolved()
                && liveness.is_dead(token)
                && resolved()
                && e.token
                    .compare_exchange(
                        token,
                        super::claims::LEAVING,
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                // The dead holder's sleeper counts die with it (a killed sleeper would
                // otherwise cost every later publish the wake path).
                let counts = e.sleep.swap(0, Ordering::SeqCst);
                let h = m.header();
                match e.role.load(Ordering::Relaxed) {
                    ROLE_PRODUCER => h.space_signal().forget_sleeper(counts),
                    ROLE_CONSUMER => h.data_signal().forget_sleeper(counts),
                    _ => {}
                }
                e.token.store(0, Ordering::Release);
                freed += 1;
            }
        }
        freed
    }
}
