//! Where an MPMC ring's words live: a shared mapping normally, heap memory under loom.
//!
//! The MPMC ring reaches memory only through [`Mem`]: the common [`Header`], the MPMC
//! counters line, the owner table, and the slots (a sequence word and one element each).
//! One implementation of each accessor per memory kind, one copy of the ring code above.
//!
//! Invariant: the layout (`capacity`, `owners`, slot stride) was computed by [`Layout`] and
//! checked against the memory's real length before a `Mem` is built, so any position masked
//! with `capacity - 1` and any owner index below `owners` address memory inside the ring.

use crate::header::{expect_field, RingKind};
use crate::sync::Ordering;
use core::marker::PhantomData;

use bytemuck::Pod;

use crate::error::Error;
use crate::header::{checked_area, round_up, Geometry, Header, HEADER_SIZE};
use crate::sync::AtomicU64;

use crate::mem::{Loc, Mem};
#[cfg(not(loom))]
use {crate::sync::Arc, shm_region::Region};

/// Offset of the MPMC counters line: right after the common header.
pub(crate) const COUNTERS_OFFSET: usize = HEADER_SIZE;
/// Offset of owner entry 0.
pub(crate) const OWNERS_OFFSET: usize = HEADER_SIZE + 128;
/// Bytes per owner entry: a 128-byte line of its own, because its holder writes it on every
/// claim and two holders are usually in two processes.
pub(crate) const OWNER_ENTRY_BYTES: usize = 128;

/// The MPMC counters line (bytes 512..640): what recovery did, for monitoring and tests.
/// A view of three words of the line (the rest is reserved).
pub(crate) struct Counters<'a> {
    /// Producer claims poisoned by a consumer after the owner was found dead: each is one
    /// position (one message at most) that consumers skipped.
    pub skipped: &'a AtomicU64,
    /// Consumer claims released by a producer after the owner was found dead: each is one
    /// message handed to a consumer that died before (or while) reading it.
    pub released: &'a AtomicU64,
    /// Publishes (or releases) that lost the race against a recovery: each is a message
    /// that a live handle had to report as [`TryError::ClaimRevoked`].
    pub revoked: &'a AtomicU64,
}

/// One owner-table entry (a 128-byte line): who holds it and what it is claiming. A view of
/// the line's first four words.
pub(crate) struct OwnerEntry<'a> {
    /// 0 when free, else the owner token of the handle that registered it.
    pub token: &'a AtomicU64,
    /// [`ROLE_PRODUCER`] or [`ROLE_CONSUMER`]; anything else covers nothing.
    pub role: &'a AtomicU64,
    /// First position of the claim being attempted or held.
    pub claim_start: &'a AtomicU64,
    /// Number of positions claimed from `claim_start`; 0 for none.
    pub claim_len: &'a AtomicU64,
    /// How the holder is counted among its side's sleepers ([`crate::wait::Sleeper::code`]),
    /// so that reclaiming a dead holder's entry can take its counts back.
    pub sleep: &'a AtomicU64,
}

/// [`OwnerEntry::role`] of a producer handle.
pub(crate) const ROLE_PRODUCER: u64 = 1;
/// [`OwnerEntry::role`] of a consumer handle.
pub(crate) const ROLE_CONSUMER: u64 = 2;

const _: () =
    assert!(OWNERS_OFFSET == COUNTERS_OFFSET + 128 && OWNER_ENTRY_BYTES.is_multiple_of(128));

/// Smallest capacity: Vyukov's sequence states need two slots (with one, "published `p`"
/// and "free for `p + 1`" would be the same number).
pub(crate) const MIN_CAPACITY: usize = 2;
/// Largest capacity in slots (2^36).
pub(crate) const MAX_CAPACITY: usize = 1 << 36;
/// Largest owner table.
pub(crate) const MAX_OWNERS: usize = 4096;

/// Where everything of an MPMC ring of `T` lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The common geometry: `block_count == capacity`, one element per block, and
    /// `block_size` the slot stride.
    pub geom: Geometry,
    /// Number of owner-table entries.
    pub owners: usize,
}

impl Layout {
    /// The layout for `capacity` slots (a power of two, checked) and `owners` entries.
    pub(crate) fn new<T>(capacity: usize, owners: usize) -> Result<Self, Error> {
        Self::from_shape(
            crate::header::BlockShape::for_type::<T>()?,
            capacity,
            owners,
        )
    }

    /// The layout for elements of `shape` (see [`Layout::new`]).
    pub(crate) fn from_shape(
        shape: crate::header::BlockShape,
        capacity: usize,
        owners: usize,
    ) -> Result<Self, Error> {
        check_capacity(capacity as u64)?;
        check_owners(owners as u64)?;
        // Reuse the common geometry for the element offset; the slot stride is the
        // element's own line(s), never shared with a neighbour slot.
        let mut geom = Geometry::from_shape(shape, 1)?;
        geom.elems_per_block = 1;
        geom.block_count = capacity;
        geom.block_size = round_up(geom.elem_offset + geom.elem_size, 64);
        let layout = Layout { geom, owners };
        // The owner table is at most MAX_OWNERS lines; the slots are what can overflow.
        checked_area(layout.slots_offset(), capacity, geom.block_size)?;
        Ok(layout)
    }

    /// Capacity in slots.
    pub(crate) fn capacity(&self) -> usize {
        self.geom.block_count
    }

    /// Offset of slot 0.
    pub(crate) fn slots_offset(&self) -> usize {
        OWNERS_OFFSET + self.owners * OWNER_ENTRY_BYTES
    }

    /// Bytes the ring occupies (cannot overflow: [`Layout::new`] checked it).
    pub(crate) fn area_size(&self) -> usize {
        self.slots_offset() + self.capacity() * self.geom.block_size
    }
}

/// Checks a capacity in slots.
pub(crate) fn check_capacity(cap: u64) -> Result<(), Error> {
    let reason = if cap < MIN_CAPACITY as u64 {
        "an MPMC ring needs at least 2 slots"
    } else if cap > MAX_CAPACITY as u64 {
        "too large"
    } else if !cap.is_power_of_two() {
        "not a power of two"
    } else {
        return Ok(());
    };
    Err(Error::BadCapacity {
        blocks: cap,
        max_blocks: MAX_CAPACITY as u64,
        reason,
    })
}

/// Checks an owner-table size.
pub(crate) fn check_owners(owners: u64) -> Result<(), Error> {
    if (1..=MAX_OWNERS as u64).contains(&owners) {
        Ok(())
    } else {
        Err(Error::BadOwnerCount {
            owners,
            max: MAX_OWNERS as u64,
        })
    }
}

/// An MPMC ring's view of its memory ([`crate::mem::Mem`]); see the module documentation.
pub(crate) struct Slots<T> {
    mem: Mem,
    /// Slot 0, located once (`layout.slots_offset()`).
    first: Loc,
    pub(crate) layout: Layout,
    pub(crate) mask: u64,
    _elements: PhantomData<T>,
}

// SAFETY: the view adds only geometry to `Mem` (which is Send and Sync); elements cross
// threads by value, hence `T: Send`, as they would between processes.
unsafe impl<T: Send> Send for Slots<T> {}
// SAFETY: as for `Send`: no method hands out a non-atomic reference into the memory.
unsafe impl<T: Send> Sync for Slots<T> {}

impl<T: Pod> Slots<T> {
    const ELEM_OFFSET: usize = round_up(8, core::mem::align_of::<T>());

    /// The slots of `layout` in `region`.
    ///
    /// # Errors
    ///
    /// [`Error::RegionTooSmall`] or [`Error::Misaligned`] for the region, and those of
    /// [`Slots::over`].
    #[cfg(not(loom))]
    pub(crate) fn in_region(region: Arc<Region>, layout: Layout) -> Result<Self, Error> {
        Self::over(Mem::in_region(region, layout.area_size())?, layout)
    }

    /// A zeroed ring in heap memory, for loom models.
    #[cfg(loom)]
    pub(crate) fn on_heap(layout: Layout) -> Result<Self, Error> {
        Self::over(Mem::on_heap(layout.area_size()), layout)
    }

    /// The slots of `layout` in `mem`, after checking they fit and hold a `T` each.
    fn over(mem: Mem, layout: Layout) -> Result<Self, Error> {
        mem.check_holds(layout.area_size())?;
        layout.geom.check_holds::<T>()?;
        // SAFETY: slots_offset < area_size <= len, checked above.
        let first = unsafe { mem.at(layout.slots_offset()) };
        Ok(Slots {
            mem,
            first,
            mask: layout.capacity() as u64 - 1,
            layout,
            _elements: PhantomData,
        })
    }

    /// The region the ring lives in.
    #[cfg(not(loom))]
    pub(crate) fn region(&self) -> &Arc<Region> {
        self.mem.region()
    }

    /// See [`Mem::check_intact`](crate::mem::Mem::check_intact).
    #[inline(always)]
    pub(crate) fn check_intact(&self) -> Result<(), crate::TryError> {
        self.mem.check_intact()
    }

    #[inline]
    pub(crate) fn header(&self) -> &Header {
        self.mem.header()
    }

    /// The word `k` of the 128-byte line at `line` (an offset inside the area).
    #[inline]
    fn line_word(&self, line: usize, k: usize) -> &AtomicU64 {
        debug_assert!(k < 16 && line + 128 <= self.layout.area_size());
        // SAFETY: callers pass the counters line or an owner entry, both inside the area
        // (`over` checked area_size <= len) and 128-aligned, so word k < 16 is in bounds and
        // 8-aligned; these words are only ever accessed atomically.
        unsafe { self.mem.word(self.mem.at(line + 8 * k)) }
    }

    #[inline]
    pub(crate) fn counters(&self) -> Counters<'_> {
        Counters {
            skipped: self.line_word(COUNTERS_OFFSET, 0),
            released: self.line_word(COUNTERS_OFFSET, 1),
            revoked: self.line_word(COUNTERS_OFFSET, 2),
        }
    }

    #[inline]
    pub(crate) fn owner(&self, i: usize) -> Option<OwnerEntry<'_>> {
        if i >= self.layout.owners {
            return None;
        }
        let line = OWNERS_OFFSET + i * OWNER_ENTRY_BYTES;
        Some(OwnerEntry {
            token: self.line_word(line, 0),
            role: self.line_word(line, 1),
            claim_start: self.line_word(line, 2),
            claim_len: self.line_word(line, 3),
            sleep: self.line_word(line, 4),
        })
    }

    #[inline]
    fn slot(&self, pos: u64) -> Loc {
        let i = (pos & self.mask) as usize;
        // SAFETY: i < capacity, so the slot lies inside the area that `over` checked.
        unsafe { self.first.add(i * self.layout.geom.block_size) }
    }

    #[inline]
    pub(crate) fn seq(&self, pos: u64) -> &AtomicU64 {
        // SAFETY: the slot is inside the area (slot), 64-aligned (slots_offset is a multiple
        // of 128 and the stride of 64), and its first 8 bytes are only accessed atomically.
        unsafe { self.mem.word(self.slot(pos)) }
    }

    /// # Safety
    ///
    /// The sequence protocol grants the caller read access to the slot of `pos`.
    #[inline]
    pub(crate) unsafe fn read(&self, pos: u64) -> T {
        // SAFETY: in bounds (`over` checked elem_offset + size <= stride) and aligned
        // (64-aligned slot, ELEM_OFFSET a multiple of align_of T); read access (caller).
        unsafe { self.mem.read(self.slot(pos).add(Self::ELEM_OFFSET)) }
    }

    /// # Safety
    ///
    /// The sequence protocol grants the caller write access to the slot of `pos`.
    #[inline]
    pub(crate) unsafe fn write(&self, pos: u64, value: T) {
        // SAFETY: in bounds and aligned, as in read; the caller owns the slot.
        unsafe { self.mem.write(self.slot(pos).add(Self::ELEM_OFFSET), value) }
    }
}

impl Header {
    /// Checks every configuration field of an MPMC ring against the caller's element type
    /// and the length of the memory the header sits in; returns its layout.
    ///
    /// For kind 3 the common fields mean: `capacity == block_count` slots (a power of two,
    /// at least 2), `elems_per_block == 1`, `block_size` the slot stride, and the first
    /// reserved word (offset 96) the number of owner-table entries; the other two reserved
    /// words are 0. See the MPMC section of `docs/layout.md`.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn validate_mpmc<T: Pod>(
        &self,
        region_len: u64,
    ) -> Result<crate::mpmc::layout::Layout, Error> {
        self.for_type::<T, _>(RingKind::Mpmc, |h, shape| {
            h.validate_mpmc_shape(shape, region_len)
        })
    }

    /// The checks of [`Header::validate_mpmc`] after the element type's.
    pub(crate) fn validate_mpmc_shape(
        &self,
        shape: crate::header::BlockShape,
        region_len: u64,
    ) -> Result<crate::mpmc::layout::Layout, Error> {
        use crate::mpmc::layout::{check_capacity, check_owners, Layout};
        let c = &self.config;
        let r = Ordering::Relaxed;
        let cap = c.capacity.load(r);
        check_capacity(cap)?;
        let owners = c.reserved1[0].load(r);
        check_owners(owners)?;
        let layout = Layout::from_shape(shape, cap as usize, owners as usize)?;
        self.expect_typed_geometry(&layout.geom, layout.area_size() as u64, region_len)?;
        expect_field("reserved1[1]", c.reserved1[1].load(r), 0)?;
        expect_field("reserved1[2]", c.reserved1[2].load(r), 0)?;
        Ok(layout)
    }
}
