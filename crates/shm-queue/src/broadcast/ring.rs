//! [`Ring`]: creating, attaching and validating a broadcast ring, its subscriber table, and
//! taking its handles.

use super::*;
use crate::mpmc::Liveness;
use crate::spsc::Cursor;
use crate::sync::claim::{self, Role};
use crate::sync::{fence, Arc};

#[cfg(not(loom))]
use crate::header::BlockShape;

/// Options for [`Ring::create_with`] and [`Ring::required_bytes_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "options do nothing until passed to a constructor"]
pub struct Options {
    pub(super) capacity: usize,
    pub(super) subscribers: usize,
    pub(super) mode: Mode,
    reinitialize: bool,
}

impl Options {
    /// A lossless ring ([`Mode::default`]) with room for at least `capacity` elements and
    /// [`DEFAULT_SUBSCRIBERS`] subscribers. The capacity is rounded up as the SPSC ring's
    /// is (a power-of-two number of 64-byte blocks); [`Ring::capacity`] reports it.
    pub fn new(capacity: usize) -> Self {
        Options {
            capacity,
            subscribers: DEFAULT_SUBSCRIBERS,
            mode: Mode::default(),
            reinitialize: false,
        }
    }

    /// The most subscribers that may exist at once (1 to [`MAX_SUBSCRIBERS`]); each takes a
    /// 128-byte entry.
    pub fn subscribers(mut self, n: usize) -> Self {
        self.subscribers = n;
        self
    }

    /// The delivery mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Initialise even if the region already holds a ready ring.
    ///
    /// # Safety
    ///
    /// With `yes`, every previous user of the region must be gone (as for
    /// [`crate::spsc::Options::reinitialize`]).
    pub unsafe fn reinitialize(mut self, yes: bool) -> Self {
        self.reinitialize = yes;
        self
    }
}

/// A handle to a broadcast ring: makes its one [`Publisher`] and its [`Subscriber`]s.
///
/// Cloning is cheap and shares the ring, which stays mapped while any handle exists.
///
/// ```
/// use shm_queue::broadcast::{Mode, Options, Ring, Start};
/// use shm_queue::TryError;
///
/// let options = Options::new(14).mode(Mode::Lossy);
/// let region = shm_region::Region::anonymous(Ring::<u64>::required_bytes_with(&options)?)?;
/// let ring = Ring::<u64>::create_with(region, options)?;
/// let (mut tx, mut rx) = (ring.publisher()?, ring.subscriber(Start::Newest)?);
/// for i in 0..100 {
///     tx.try_push(i)?; // lossy: never full
/// }
/// // The subscriber was overtaken: it learns how many it lost, then reads the oldest left.
/// let TryError::Lagged { missed } = rx.try_recv().unwrap_err() else { panic!() };
/// assert_eq!(rx.try_recv()?, missed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Ring<T: Element> {
    pub(super) mem: Arc<Bcast<T>>,
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
        f.debug_struct("broadcast::Ring")
            .field("element", &core::any::type_name::<T>())
            .field("capacity", &self.capacity())
            .field("mode", &self.mode())
            .field("subscribers", &self.max_subscribers())
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(not(loom))]
impl<T: Pod> Ring<T> {
    /// Bytes a region needs for a ring of at least `capacity` elements of `T` and
    /// [`DEFAULT_SUBSCRIBERS`] subscribers.
    ///
    /// # Errors
    ///
    /// As [`Ring::required_bytes_with`].
    pub fn required_bytes(capacity: usize) -> Result<usize, Error> {
        Self::required_bytes_with(&Options::new(capacity))
    }

    /// Bytes a region needs for a ring made with `options`.
    ///
    /// # Errors
    ///
    /// [`Error::BadCapacity`], [`Error::UnsupportedType`], [`Error::BadSubscriberCount`],
    /// [`Error::BadPolicy`].
    pub fn required_bytes_with(options: &Options) -> Result<usize, Error> {
        Ok(Self::layout_for(options)?.area_size())
    }

    fn layout_for(options: &Options) -> Result<Layout, Error> {
        layout_as(&ElementType::of::<T>(), options)
    }

    /// Creates a lossless ring of at least `capacity` elements at the start of `region`.
    ///
    /// # Errors
    ///
    /// As [`Ring::create_with`].
    pub fn create(region: impl Into<Arc<Region>>, capacity: usize) -> Result<Self, Error> {
        Self::create_with(region, Options::new(capacity))
    }

    /// Creates a ring with explicit [`Options`].
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyInitialized`] if the region already holds a ring (see
    /// [`Options::reinitialize`]); [`Error::RegionTooSmall`] if it is shorter than
    /// [`Ring::required_bytes_with`]; those of [`Ring::required_bytes_with`].
    pub fn create_with(region: impl Into<Arc<Region>>, options: Options) -> Result<Self, Error> {
        Self::create_as(region, &ElementType::of::<T>(), options)
    }

    /// Attaches to the broadcast ring at the start of `region`, checking every header field
    /// and the publisher's positions.
    ///
    /// # Errors
    ///
    /// As the other rings' `attach` ([`Error::KindMismatch`], [`Error::TypeMismatch`],
    /// [`Error::LayoutMismatch`], ...), [`Error::BadSubscriberCount`] for an impossible
    /// table, and [`Error::Corrupted`] for impossible positions.
    pub fn attach(region: impl Into<Arc<Region>>) -> Result<Self, Error> {
        Self::attach_as(region, &ElementType::of::<T>())
    }
}

/// The layout of a ring of `elem` made with `options`.
#[cfg(not(loom))]
fn layout_as(elem: &ElementType, options: &Options) -> Result<Layout, Error> {
    let geom = Geometry::for_capacity(BlockShape::of_element(elem)?, options.capacity)?;
    Layout::new(geom, options.subscribers, options.mode)
}

/// Rings of elements named at run time (see [`crate::element`]): how a
/// [`Ring<Raw>`](crate::Raw) is made, and how a Rust `Pod` type shares a ring with a C or
/// Python peer under an agreed name.
#[cfg(not(loom))]
impl<T: Element> Ring<T> {
    /// The region the ring lives in.
    pub fn region(&self) -> &Arc<Region> {
        self.mem.storage.region()
    }

    /// Bytes a region needs for a ring of `elem` made with `options`.
    ///
    /// # Errors
    ///
    /// As [`Ring::required_bytes_with`].
    pub fn required_bytes_as(elem: &ElementType, options: &Options) -> Result<usize, Error> {
        Ok(layout_as(elem, options)?.area_size())
    }

    /// Creates a ring of elements of type `elem` (its name's fingerprint is recorded).
    ///
    /// # Errors
    ///
    /// [`Error::TypeMismatch`] if `T` is a `Pod` type of another size or alignment than
    /// `elem`; otherwise as [`Ring::create_with`].
    pub fn create_as(
        region: impl Into<Arc<Region>>,
        elem: &ElementType,
        options: Options,
    ) -> Result<Self, Error> {
        elem.check_fits::<T>()?;
        let layout = layout_as(elem, &options)?;
        let storage = Storage::in_region_len(region.into(), layout.geom, layout.area_size())?;
        Self::initialise(Bcast::new(storage, layout)?, options)
    }

    /// Attaches to the broadcast ring at the start of `region`, which must hold elements of
    /// type `elem`.
    ///
    /// # Errors
    ///
    /// As [`Ring::attach`].
    pub fn attach_as(region: impl Into<Arc<Region>>, elem: &ElementType) -> Result<Self, Error> {
        elem.check_fits::<T>()?;
        let region = region.into();
        let layout =
            crate::mem::header_of(&region)?.validate_broadcast(Some(elem), region.len() as u64)?;
        let storage = Storage::in_region_len(region, layout.geom, layout.area_size())?;
        let mem = Bcast::new(storage, layout)?;
        mem.positions()?;
        Ok(Ring { mem: Arc::new(mem) })
    }
}

#[cfg(loom)]
impl<T: Pod> Ring<T> {
    /// A ring of `block_count` blocks of `elems_per_block` elements and `subscribers`
    /// entries in heap memory, for loom models (only with `cfg(loom)`).
    ///
    /// # Errors
    ///
    /// As [`Ring::create_with`].
    pub fn new_model(
        block_count: usize,
        elems_per_block: usize,
        subscribers: usize,
        mode: Mode,
    ) -> Result<Self, Error> {
        Self::new_model_as(
            &ElementType::of::<T>(),
            block_count,
            elems_per_block,
            subscribers,
            mode,
        )
    }
}

#[cfg(loom)]
impl<T: Element> Ring<T> {
    /// [`Ring::new_model`] with elements of type `elem` (for a `Ring<Raw>`).
    ///
    /// # Errors
    ///
    /// As [`Ring::create_as`].
    pub fn new_model_as(
        elem: &ElementType,
        block_count: usize,
        elems_per_block: usize,
        subscribers: usize,
        mode: Mode,
    ) -> Result<Self, Error> {
        elem.check_fits::<T>()?;
        let shape = crate::header::BlockShape::of_element(elem)?;
        let geom = Geometry::for_model(shape, block_count, elems_per_block)?;
        let layout = Layout::new(geom, subscribers, mode)?;
        let storage = Storage::on_heap_len(geom, layout.area_size())?;
        let options = Options::new(geom.capacity())
            .subscribers(subscribers)
            .mode(mode);
        Self::initialise(Bcast::new(storage, layout)?, options)
    }
}

impl<T: Element> Ring<T> {
    fn initialise(mem: Bcast<T>, options: Options) -> Result<Self, Error> {
        let header = mem.header();
        let layout = mem.layout;
        header.begin_init(options.reinitialize)?;
        header.write_config(&layout.geom, RingKind::Broadcast, options.capacity as u64);
        let r = Ordering::Relaxed;
        let c = &header.config;
        c.area_size.store(layout.area_size() as u64, r);
        c.reserved1[0].store(layout.subscribers as u64, r);
        c.reserved1[1].store(layout.mode.code()?, r);
        for b in 0..layout.geom.block_count {
            mem.storage.word(b).store(0, r);
        }
        for w in [
            mem.horizon(),
            mem.high_water(),
            mem.evictions(),
            mem.reclaimed(),
        ] {
            w.store(0, r);
        }
        for e in (0..layout.subscribers).filter_map(|i| mem.entry(i)) {
            for w in [
                e.token,
                e.state,
                e.cursor,
                e.missed,
                e.sleep,
                e.joined_at,
                e.armed,
            ] {
                w.store(0, r);
            }
        }
        header.publish_ready();
        Ok(Ring { mem: Arc::new(mem) })
    }

    /// Capacity in elements.
    pub fn capacity(&self) -> usize {
        self.mem.layout.geom.capacity()
    }

    /// The delivery mode the ring was created with.
    pub fn mode(&self) -> Mode {
        self.mem.layout.mode
    }

    /// The most subscribers that may exist at once (entries in the table).
    pub fn max_subscribers(&self) -> usize {
        self.mem.layout.subscribers
    }

    /// Bytes per element.
    pub fn element_size(&self) -> usize {
        self.mem.storage.elem_size()
    }

    /// Elements per block (per 64-byte line for elements of up to 56 bytes).
    pub fn elements_per_block(&self) -> usize {
        self.mem.layout.geom.elems_per_block
    }

    /// How far the publisher raises the horizon at a time, in elements (a sixteenth of the
    /// ring in whole blocks, at least one block): a lossy subscriber counts as overtaken up
    /// to this much before its position is overwritten.
    pub fn horizon_step(&self) -> usize {
        self.mem.layout.step() as usize
    }

    /// Bytes the ring occupies from the start of its region.
    pub fn area_size(&self) -> usize {
        self.mem.layout.area_size()
    }

    /// What the ring has done since creation (shared by all processes).
    pub fn stats(&self) -> Stats {
        let r = Ordering::Relaxed;
        Stats {
            tail: self.mem.header().producer.pos.load(r),
            horizon: self.mem.horizon().load(r),
            evictions: self.mem.evictions().load(r),
            reclaimed: self.mem.reclaimed().load(r),
        }
    }

    /// The taken entries of the subscriber table, for monitoring.
    pub fn subscribers(&self) -> Vec<SubscriberInfo> {
        let m = &*self.mem;
        let r = Ordering::Relaxed;
        (0..m.scan_len())
            .filter_map(|i| Some((i, m.entry(i)?)))
            .filter_map(|(index, e)| {
                let token = e.token.load(Ordering::Acquire);
                if token == 0 || token == LEAVING {
                    return None;
                }
                let state = match e.state.load(Ordering::Acquire) {
                    FREE | JOINING => return None,
                    LIVE => SubscriberState::Live,
                    EVICTED => SubscriberState::Evicted,
                    x => SubscriberState::Unknown(x),
                };
                Some(SubscriberInfo {
                    index,
                    token,
                    state,
                    cursor: e.cursor.load(r),
                    missed: e.missed.load(r),
                    joined_at: e.joined_at.load(r),
                })
            })
            .collect()
    }

    /// Frees the entry of every subscriber whose process `liveness` says is dead (taking
    /// back its sleeper counts), so it neither gates a lossless publisher nor holds a table
    /// entry. Returns how many were freed.
    pub fn reclaim_dead_subscribers(&self, liveness: &dyn Liveness) -> usize {
        let m = &*self.mem;
        let mut freed = 0;
        for i in 0..m.scan_len() {
            let Some(e) = m.entry(i) else { break };
            let token = e.token.load(Ordering::Acquire);
            if token != 0
                && token != LEAVING
                && liveness.is_dead(token)
                && m.free_entry(i, token, true)
            {
                m.reclaimed().fetch_add(1, Ordering::Relaxed);
                freed += 1;
            }
        }
        if freed > 0 {
            // A publisher waiting for space rescans.
            m.header().notify_space();
        }
        freed
    }

    /// Takes the publisher side; it resumes where the last publisher stopped.
    ///
    /// # Errors
    ///
    /// [`Error::ProducerClaimed`] while another publisher exists (in any process);
    /// [`Error::Corrupted`] if the shared positions are impossible.
    pub fn publisher(&self) -> Result<Publisher<T>, Error> {
        claim::take_for(self.mem.header(), Role::Producer, |token| {
            let tail = self.recover_tail()?;
            Publisher::new(self.mem.clone(), tail, token)
        })
    }

    /// The current publisher's claim token, if one exists.
    pub fn publisher_holder(&self) -> Option<u64> {
        claim::holder(&self.mem.header().control.producer_claim)
    }

    /// Frees the publisher side held by `holder`, a handle whose process died, so a new
    /// publisher can be taken. Returns `false` if `holder` does not hold it.
    ///
    /// # Safety
    ///
    /// `holder`'s handle must never be used again (its process is dead): two publishers
    /// would write the same slots.
    pub unsafe fn force_release_publisher(&self, holder: u64) -> bool {
        claim::force_release_side(self.mem.header(), Role::Producer, holder)
    }

    /// The position a new publisher resumes at: the `tail` word, or further if a publisher
    /// died between publishing a block word and the `tail` word.
    fn recover_tail(&self) -> Result<u64, Error> {
        let m = &*self.mem;
        let (mut tail, horizon) = m.positions()?;
        for b in 0..m.layout.geom.block_count {
            let p = m.storage.word(b).load(Ordering::Acquire);
            if p > horizon {
                return Err(corrupted(Word::BlockPosition, p).into());
            }
            tail = tail.max(p);
        }
        // A publisher that died between its block-word stores (last block first) left
        // earlier blocks of its batch unannounced: a subscriber there would wait for ever.
        // Storing `tail` into every lower word is sound: everything below it was written,
        // and a position the slot no longer holds fails the horizon check as overtaken.
        for b in 0..m.layout.geom.block_count {
            let w = m.storage.word(b);
            if w.load(Ordering::Relaxed) < tail {
                w.store(tail, Ordering::Release);
            }
        }
        m.header().producer.pos.store(tail, Ordering::Release);
        Ok(tail)
    }

    /// A subscriber under a fresh token (this process's pid in the high half), starting
    /// where `start` says.
    ///
    /// # Errors
    ///
    /// As [`Ring::subscriber_with_token`].
    pub fn subscriber(&self, start: Start) -> Result<Subscriber<T>, Error> {
        self.subscriber_with_token(start, claim::new_token())
    }

    /// A subscriber registered under `token`, the value a [`Liveness`] check is asked
    /// about (one token per process, or per liveness unit).
    ///
    /// # Errors
    ///
    /// [`Error::SubscribersFull`] when every entry is taken; [`Error::InvalidOwnerToken`]
    /// for token 0 (or `u64::MAX`); [`Error::Corrupted`] if the publisher's positions are
    /// impossible.
    pub fn subscriber_with_token(&self, start: Start, token: u64) -> Result<Subscriber<T>, Error> {
        if token == 0 || token == LEAVING {
            return Err(Error::InvalidOwnerToken);
        }
        let m = &*self.mem;
        let index = (0..m.layout.subscribers)
            .find(|&i| {
                m.entry(i).is_some_and(|e| {
                    e.token.load(Ordering::Relaxed) == 0
                        && e.token
                            .compare_exchange(0, token, Ordering::AcqRel, Ordering::Relaxed)
                            .is_ok()
                })
            })
            .ok_or(Error::SubscribersFull {
                entries: m.layout.subscribers as u64,
            })?;
        m.high_water().fetch_max(index as u64 + 1, Ordering::SeqCst);
        if let Some(e) = m.entry(index) {
            e.missed.store(0, Ordering::Relaxed);
            e.sleep.store(0, Ordering::Relaxed);
        }
        let joined = register(m, index, start).inspect_err(|_| {
            m.free_entry(index, token, false);
        })?;
        Ok(Subscriber::new(self.mem.clone(), index, token, joined))
    }
}

/// Where a (re-)registered subscriber starts.
#[derive(Debug, Clone, Copy)]
pub(super) struct Joined {
    /// Its first position.
    pub start: u64,
    /// The publisher's `tail` it joined at: positions from here on are guaranteed (lossless).
    pub joined_at: u64,
}

/// Marks entry `index` (held by the caller) joining from the publisher's position now,
/// computes where it starts, then marks it live; see "Joining" in the module docs.
pub(super) fn register<T: Element>(
    m: &Bcast<T>,
    index: usize,
    start: Start,
) -> Result<Joined, TryError> {
    let Some(e) = m.entry(index) else {
        return Err(corrupted(Word::Tail, index as u64));
    };
    let (t0, _) = m.positions()?;
    e.cursor.store(t0, Ordering::Relaxed);
    e.joined_at.store(t0, Ordering::Relaxed);
    // Joining: gating from now on, but not reported as joined until the start is fixed.
    e.state.store(JOINING, Ordering::Release);
    // Pairs with the fence that starts the publisher's rescan: either it sees this entry,
    // or the tail read below is at least the one it scanned at.
    fence(Ordering::SeqCst);
    let (t1, horizon) = m.positions()?;
    let cap = m.layout.capacity();
    let first = match start {
        Start::Newest => t1,
        Start::History(n) => t1
            .saturating_sub((n as u64).min(cap))
            .max(horizon.saturating_sub(cap))
            // Never past the join: what a batch in flight overwrites from there on is
            // counted by the reads, as a loss.
            .min(t1),
    };
    e.joined_at.store(t1, Ordering::Relaxed);
    e.cursor.store(first, Ordering::Release);
    // Joined. Release: whoever reads LIVE with Acquire and then publishes, publishes at or
    // after `t1`, so that element is delivered (or counted lost, if lapped). A CAS, not a
    // store: a publisher may have evicted the entry meanwhile (the next call re-joins), or
    // a reclaimer freed it; neither is undone.
    let _ = e
        .state
        .compare_exchange(JOINING, LIVE, Ordering::AcqRel, Ordering::Relaxed);
    Ok(Joined {
        start: first,
        joined_at: t1,
    })
}

impl Joined {
    /// Its first position as a cursor.
    pub(super) fn cursor(&self, g: &Geometry) -> Cursor {
        Cursor::of(self.start, g)
    }
}
