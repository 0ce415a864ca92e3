//! [`Ring`]: creating, attaching and validating a byte ring, and taking its two handles.

use super::*;
use crate::header::{type_fingerprint, BLOCK_BYTES};

/// Options for [`Ring::create_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "options do nothing until passed to a constructor"]
pub struct Options {
    capacity: usize,
    max_message: Option<usize>,
    reinitialize: bool,
}

impl Options {
    /// A data area of at least `capacity` bytes (rounded up to a power of two, at least
    /// [`MIN_CAPACITY`]); the maximum message size defaults to [`max_message_for`] it.
    pub fn new(capacity: usize) -> Self {
        Options {
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
        let limit = max_message_for(cap);
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

/// A handle to a byte-message ring: makes the one [`Producer`] and the one
/// [`Consumer`]. Cheap to clone.
#[derive(Clone)]
pub struct Ring {
    storage: Arc<ByteStorage>,
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.storage.cap)
            .field("max_message", &self.storage.max_message)
            .finish()
    }
}

#[cfg(not(loom))]
impl Ring {
    /// Bytes a region needs for a ring with a data area of at least `capacity` bytes.
    ///
    /// # Errors
    ///
    /// [`Error::BadByteCapacity`] above [`MAX_CAPACITY`].
    ///
    /// ```
    /// use shm_queue::bytes::Ring;
    /// assert_eq!(Ring::required_bytes(1000)?, 512 + 1024);
    /// # Ok::<(), shm_queue::Error>(())
    /// ```
    pub fn required_bytes(capacity: usize) -> Result<usize, Error> {
        let (cap, _) = Options::new(capacity).resolve()?;
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
        Self::create_with(region, Options::new(capacity).max_message(max_message))
    }

    /// Creates a ring with explicit [`Options`].
    ///
    /// # Errors
    ///
    /// As [`Ring::create`].
    pub fn create_with(region: impl Into<Arc<Region>>, options: Options) -> Result<Self, Error> {
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
impl Ring {
    /// A ring with a data area of `capacity` bytes in heap memory, for loom models.
    ///
    /// # Errors
    ///
    /// As [`Ring::create`].
    pub fn new_model(capacity: usize, max_message: usize) -> Result<Self, Error> {
        let options = Options::new(capacity).max_message(max_message);
        let (cap, max) = options.resolve()?;
        Self::initialise(ByteStorage::on_heap(cap, max)?, options)
    }
}

#[cfg(loom)]
impl Ring {
    /// A ring whose creator has not run yet (its header all zero), so that a loom model
    /// can run the creator ([`Ring::init_model`]) and an attacher
    /// ([`Ring::attach_model`]) on two threads. Only with `cfg(loom)`.
    ///
    /// # Errors
    ///
    /// As [`Ring::create`].
    pub fn uninit_model(capacity: usize, max_message: usize) -> Result<Self, Error> {
        let (cap, max) = Options::new(capacity).max_message(max_message).resolve()?;
        Ok(Ring {
            storage: Arc::new(ByteStorage::on_heap(cap, max)?),
        })
    }

    /// What [`Ring::create`] writes, on this ring's memory. Only with `cfg(loom)`.
    ///
    /// # Errors
    ///
    /// As [`Ring::create`].
    pub fn init_model(&self) -> Result<(), Error> {
        let s = &*self.storage;
        Self::init_memory(s, &Options::new(s.cap).max_message(s.max_message))
    }

    /// What [`Ring::attach`] checks, on this ring's memory: the data area size and the
    /// largest message. Only with `cfg(loom)`.
    ///
    /// # Errors
    ///
    /// As [`Ring::attach`].
    pub fn attach_model(&self) -> Result<(usize, usize), Error> {
        let h = self.storage.header();
        let len = Geometry::for_bytes(self.storage.cap)?.area_size() as u64;
        let (cap, max) = h.validate_bytes(len)?;
        check_positions(h, cap)?;
        Ok((cap, max))
    }
}

impl Ring {
    fn initialise(storage: ByteStorage, options: Options) -> Result<Self, Error> {
        Self::init_memory(&storage, &options)?;
        Ok(Ring {
            storage: Arc::new(storage),
        })
    }

    /// Writes a fresh ring's header and first record word, then publishes it ready.
    fn init_memory(storage: &ByteStorage, options: &Options) -> Result<(), Error> {
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
        Ok(())
    }

    /// Size of the data area in bytes.
    pub fn capacity(&self) -> usize {
        self.storage.cap
    }

    /// Bytes the ring occupies from the start of its region (header and data area).
    pub fn area_size(&self) -> usize {
        HEADER_SIZE + self.storage.cap
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
    pub fn producer(&self) -> Result<Producer, Error> {
        claim::take_for(self.storage.header(), Role::Producer, |token| {
            let (head, tail) = self.recover_tail()?;
            Ok(Producer {
                storage: self.storage.clone(),
                tail,
                head_cache: head,
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
    /// [`Error::ConsumerClaimed`] while another consumer exists; [`Error::Corrupted`] if
    /// the shared positions are impossible.
    pub fn consumer(&self) -> Result<Consumer, Error> {
        let header = self.storage.header();
        claim::take_for(header, Role::Consumer, |token| {
            let (head, _) = check_positions(header, self.storage.cap)?;
            Ok(Consumer {
                storage: self.storage.clone(),
                head,
                token,
                strategy: WaitStrategy::default(),
                sleeper: crate::wait::Sleeper::No,
            })
        })
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
                return Err(corrupted(Word::CommittedRecord, tail + size as u64).into());
            }
            tail += size as u64;
        }
        s.header().producer.pos.store(tail, Ordering::Release);
        Ok((head, tail))
    }
}

/// Smallest data area of a byte-message ring, in bytes.
pub const MIN_CAPACITY: u64 = 64;

/// Largest data area of a byte-message ring, in bytes (1 TiB).
pub const MAX_CAPACITY: u64 = 1 << 40;

/// The largest message a byte ring with a data area of `capacity` bytes can carry: its
/// record (8-byte header plus payload, padded to 8) takes at most half the area, so one
/// always fits after a padding record at the wrap.
///
/// ```
/// assert_eq!(shm_queue::bytes::max_message_for(4096), 2040);
/// ```
pub fn max_message_for(capacity: usize) -> usize {
    (capacity / 2).saturating_sub(8).min(u32::MAX as usize)
}

impl Header {
    /// Checks every configuration field of a byte-message ring against the length of the
    /// memory the header sits in; returns the data area size and the largest message.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn validate_bytes(&self, region_len: u64) -> Result<(usize, usize), Error> {
        self.check_identity(RingKind::Bytes)?;
        let c = &self.config;
        let r = Ordering::Relaxed;
        let cap = c.capacity.load(r);
        if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&cap) || !cap.is_power_of_two() {
            return Err(Error::BadByteCapacity {
                capacity: cap,
                reason: "not a power of two between 64 bytes and 1 TiB",
            });
        }
        let g = Geometry::for_bytes(cap as usize)?;
        self.expect_geometry(&g, g.area_size() as u64, region_len)?;
        let max = u64::from(c.max_message.load(r));
        let limit = max_message_for(cap as usize) as u64;
        if max == 0 || max > limit {
            return Err(Error::BadMaxMessage {
                max,
                limit,
                capacity: cap,
            });
        }
        Ok((cap as usize, max as usize))
    }
}

impl Geometry {
    /// The geometry a byte-message ring records: `cap` one-byte "elements" in 64-byte
    /// blocks, so every shared header field keeps a meaning and the same checks apply.
    /// `cap` must be a power of two between [`MIN_CAPACITY`] and
    /// [`MAX_CAPACITY`].
    pub(crate) fn for_bytes(cap: usize) -> Result<Self, Error> {
        if !(MIN_CAPACITY as usize..=MAX_CAPACITY as usize).contains(&cap) || !cap.is_power_of_two()
        {
            return Err(Error::BadByteCapacity {
                capacity: cap as u64,
                reason: "not a power of two between 64 bytes and 1 TiB",
            });
        }
        Ok(Geometry {
            elem_size: 1,
            elem_align: 8,
            type_hash: type_fingerprint::<u8>(),
            elem_offset: 0,
            block_size: BLOCK_BYTES,
            elems_per_block: BLOCK_BYTES,
            block_count: cap / BLOCK_BYTES,
        })
    }
}

crate::sync::claim::claim_controls!([] Ring, Producer, Consumer);
