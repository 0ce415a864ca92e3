//! [`Snapshot`]: every header field read once, unvalidated, for tools such as
//! `shmlane inspect`.

use super::*;

/// Every header field of a ring, read once with relaxed loads and not validated: what a
/// tool such as `shmlane inspect` shows. A peer may be changing the fields while they are
/// read, so the values need not be consistent with each other; [`check`](super::check)
/// says whether they describe a usable ring at all (the one validation attach also runs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Magic number ([`MAGIC`] for a ring).
    pub magic: u64,
    /// Layout version ([`LAYOUT_VERSION`]).
    pub version: u32,
    /// Ring kind as stored (see [`RingKind`]).
    pub kind: u32,
    /// Capacity in elements (typed and MPMC rings) or data bytes (byte rings).
    pub capacity: u64,
    /// Number of 64-byte blocks (SPSC) or slots (MPMC).
    pub block_count: u64,
    /// Bytes per block.
    pub block_size: u32,
    /// Elements per block.
    pub elems_per_block: u32,
    /// Element size in bytes.
    pub elem_size: u32,
    /// Element alignment in bytes.
    pub elem_align: u32,
    /// Element type fingerprint ([`type_fingerprint`]).
    pub type_hash: u64,
    /// Bytes from the header's start to the end of the ring's data.
    pub area_size: u64,
    /// Capacity the creator asked for.
    pub requested_capacity: u64,
    /// Pid of the creating process (informative: pids are reused).
    pub creator_pid: u32,
    /// Largest message of a byte ring (0 for the other kinds).
    pub max_message: u32,
    /// Owner-table entries of an MPMC ring (0 for the other kinds).
    pub owners: u64,
    /// Slot layout code of an MPMC ring: 0 line, 1 packed
    /// ([`SlotLayout`](crate::mpmc::SlotLayout)); 0 for the other kinds.
    pub slot_layout: u64,
    /// The `ready` word ([`READY`] once initialised).
    pub ready: u64,
    /// Producer claim token (0 when free); an MPMC ring keeps its handles in the owner table.
    pub producer_claim: u64,
    /// Consumer claim token (0 when free).
    pub consumer_claim: u64,
    /// Non-zero once a side closed the ring.
    pub closed: u32,
    /// Consumers registered as waiting for data.
    pub consumer_waiters: u32,
    /// Producers registered as waiting for space.
    pub producer_waiters: u32,
    /// Consumers asleep in the kernel.
    pub consumer_sleepers: u32,
    /// Producers asleep in the kernel.
    pub producer_sleepers: u32,
    /// Producer position (`tail`): elements (or bytes) published so far.
    pub tail: u64,
    /// Consumer position (`head`): elements (or bytes) consumed so far.
    pub head: u64,
}

impl Snapshot {
    /// The ring kind, if the stored value names one.
    pub fn ring_kind(&self) -> Option<RingKind> {
        match self.kind {
            1 => Some(RingKind::Spsc),
            2 => Some(RingKind::Bytes),
            3 => Some(RingKind::Mpmc),
            4 => Some(RingKind::Broadcast),
            _ => None,
        }
    }

    /// `tail - head` when that is a plausible fill level (at most the capacity), else `None`.
    pub fn fill(&self) -> Option<u64> {
        self.tail
            .checked_sub(self.head)
            .filter(|&n| n <= self.capacity)
    }
}

/// Reads every header field of the ring at the start of `region` (see [`Snapshot`]).
///
/// # Errors
///
/// [`Error::RegionTooSmall`] if the region cannot hold a header.
///
/// ```
/// use shm_queue::{header, spsc::Ring};
/// use shm_region::Options;
///
/// let region = Options::new().create_anonymous(Ring::<u64>::required_bytes(64)?)?;
/// let ring = Ring::<u64>::create(region, 64)?;
/// let (mut tx, _rx) = ring.split()?;
/// tx.try_push(7)?;
/// let s = header::snapshot(ring.region())?;
/// assert_eq!(s.ring_kind(), Some(header::RingKind::Spsc));
/// assert_eq!(s.capacity, ring.capacity() as u64); // 64 rounded up to whole blocks
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(not(loom))]
pub fn snapshot(region: &shm_region::Region) -> Result<Snapshot, Error> {
    let h = crate::mem::header_of(region)?;
    let (c, k, r) = (&h.config, &h.control, Ordering::Relaxed);
    // `head` first: it never passes `tail`, so a `tail` read after it is at least as new and
    // `tail - head` is a plausible fill even while both move.
    let head = h.consumer.pos.load(Ordering::Acquire);
    let tail = h.producer.pos.load(Ordering::Acquire);
    Ok(Snapshot {
        magic: c.magic.load(r),
        version: c.version.load(r),
        kind: c.kind.load(r),
        capacity: c.capacity.load(r),
        block_count: c.block_count.load(r),
        block_size: c.block_size.load(r),
        elems_per_block: c.elems_per_block.load(r),
        elem_size: c.elem_size.load(r),
        elem_align: c.elem_align.load(r),
        type_hash: c.type_hash.load(r),
        area_size: c.area_size.load(r),
        requested_capacity: c.requested_capacity.load(r),
        creator_pid: c.creator_pid.load(r),
        max_message: c.max_message.load(r),
        owners: c.reserved1[0].load(r),
        slot_layout: c.reserved1[1].load(r),
        ready: c.ready.load(r),
        producer_claim: k.producer_claim.load(r),
        consumer_claim: k.consumer_claim.load(r),
        closed: k.closed.load(r),
        consumer_waiters: k.consumer_waiters.load(r),
        producer_waiters: k.producer_waiters.load(r),
        consumer_sleepers: k.consumer_sleepers.load(r),
        producer_sleepers: k.producer_sleepers.load(r),
        tail,
        head,
    })
}
