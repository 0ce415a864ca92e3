//! Where an MPMC ring's words live: a shared mapping normally, heap memory under loom.
//!
//! The MPMC ring reaches memory only through [`Mem`]: the common [`Header`], the MPMC
//! counters line, the owner table, and the slots (a sequence word and one element each).
//! One implementation of each accessor per memory kind, one copy of the ring code above.
//!
//! Invariant: the layout (`capacity`, `owners`, slot stride) was computed by [`Layout`] and
//! checked against the memory's real length before a `Mem` is built, so any position masked
//! with `capacity - 1` and any owner index below `owners` address memory inside the ring.

use core::marker::PhantomData;

use bytemuck::Pod;

use crate::error::Error;
use crate::header::{round_up, Geometry, Header, HEADER_SIZE};
use crate::sync::AtomicU64;

#[cfg(not(loom))]
use {crate::sync::Arc, core::ptr::NonNull, shm_region::Region};

/// Offset of the MPMC counters line: right after the common header.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) const COUNTERS_OFFSET: usize = HEADER_SIZE;
/// Offset of owner entry 0.
pub(crate) const OWNERS_OFFSET: usize = HEADER_SIZE + 128;
/// Bytes per owner entry: a 128-byte line of its own, because its holder writes it on every
/// claim and two holders are usually in two processes.
pub(crate) const OWNER_ENTRY_BYTES: usize = 128;

/// The MPMC counters line (bytes 512..640): what recovery did, for monitoring and tests.
#[repr(C, align(128))]
pub(crate) struct Counters {
    /// Producer claims poisoned by a consumer after the owner was found dead: each is one
    /// position (one message at most) that consumers skipped.
    pub skipped: AtomicU64,
    /// Consumer claims released by a producer after the owner was found dead: each is one
    /// message handed to a consumer that died before (or while) reading it.
    pub released: AtomicU64,
    /// Publishes (or releases) that lost the race against a recovery: each is a message
    /// that a live handle had to report as [`Error::ClaimRevoked`].
    pub revoked: AtomicU64,
}

/// One owner-table entry (128 bytes): who holds it and what it is claiming.
#[repr(C, align(128))]
pub(crate) struct OwnerEntry {
    /// 0 when free, else the owner token of the handle that registered it.
    pub token: AtomicU64,
    /// [`ROLE_PRODUCER`] or [`ROLE_CONSUMER`]; anything else covers nothing.
    pub role: AtomicU64,
    /// First position of the claim being attempted or held.
    pub claim_start: AtomicU64,
    /// Number of positions claimed from `claim_start`; 0 for none.
    pub claim_len: AtomicU64,
}

/// [`OwnerEntry::role`] of a producer handle.
pub(crate) const ROLE_PRODUCER: u64 = 1;
/// [`OwnerEntry::role`] of a consumer handle.
pub(crate) const ROLE_CONSUMER: u64 = 2;

#[cfg(not(loom))]
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<Counters>() == 128);
    assert!(offset_of!(Counters, skipped) == 0);
    assert!(offset_of!(Counters, released) == 8);
    assert!(offset_of!(Counters, revoked) == 16);
    assert!(size_of::<OwnerEntry>() == OWNER_ENTRY_BYTES);
    assert!(offset_of!(OwnerEntry, token) == 0);
    assert!(offset_of!(OwnerEntry, role) == 8);
    assert!(offset_of!(OwnerEntry, claim_start) == 16);
    assert!(offset_of!(OwnerEntry, claim_len) == 24);
    assert!(OWNERS_OFFSET == COUNTERS_OFFSET + 128);
};

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
        check_capacity(capacity as u64)?;
        check_owners(owners as u64)?;
        // Reuse the common geometry for the type checks and the element offset; the slot
        // stride is the element's own line(s), never shared with a neighbour slot.
        let mut geom = Geometry::for_capacity::<T>(1)?;
        geom.elems_per_block = 1;
        geom.block_count = capacity;
        geom.block_size = round_up(geom.elem_offset + geom.elem_size, 64);
        Ok(Layout { geom, owners })
    }

    /// Capacity in slots.
    pub(crate) fn capacity(&self) -> usize {
        self.geom.block_count
    }

    /// Offset of slot 0.
    pub(crate) fn slots_offset(&self) -> usize {
        OWNERS_OFFSET + self.owners * OWNER_ENTRY_BYTES
    }

    /// Bytes the ring occupies.
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

/// An MPMC ring's memory; see the module documentation.
pub(crate) struct Mem<T> {
    #[cfg(not(loom))]
    base: NonNull<u8>,
    #[cfg(not(loom))]
    pub(crate) region: Arc<Region>,
    #[cfg(loom)]
    header: Box<Header>,
    #[cfg(loom)]
    counters: Box<Counters>,
    #[cfg(loom)]
    owners: Box<[OwnerEntry]>,
    #[cfg(loom)]
    slots: Box<[ModelSlot<T>]>,
    pub(crate) layout: Layout,
    /// `capacity - 1`.
    pub(crate) mask: u64,
    _elements: PhantomData<T>,
}

/// One slot of a loom model: the sequence word and the element cell.
#[cfg(loom)]
struct ModelSlot<T> {
    seq: AtomicU64,
    cell: crate::sync::PayloadCell<T>,
}

// SAFETY: the memory is shared by any number of handles on any threads, exactly as between
// processes: every control word is an atomic, and every element access is ordered by the
// sequence protocol (whose unsafe callers say why).
unsafe impl<T: Send> Send for Mem<T> {}
// SAFETY: as for `Send`: no method hands out a non-atomic reference into the memory.
unsafe impl<T: Send> Sync for Mem<T> {}

#[cfg(not(loom))]
impl<T: Pod> Mem<T> {
    /// Offset of the element in its slot: `round_up(8, align_of::<T>())`, as the geometry
    /// computes it (`in_region` checks they agree).
    const ELEM_OFFSET: usize = round_up(8, core::mem::align_of::<T>());

    /// Memory over `region` laid out as `layout`.
    ///
    /// # Errors
    ///
    /// [`Error::RegionTooSmall`] if the region is shorter than the layout's area.
    pub(crate) fn in_region(region: Arc<Region>, layout: Layout) -> Result<Self, Error> {
        if region.len() < layout.area_size() {
            return Err(Error::RegionTooSmall {
                len: region.len() as u64,
                need: layout.area_size() as u64,
            });
        }
        let g = &layout.geom;
        if g.elem_offset != Self::ELEM_OFFSET
            || g.elem_size != core::mem::size_of::<T>()
            || g.elem_offset + g.elem_size > g.block_size
        {
            return Err(Error::LayoutMismatch {
                field: "elem_offset",
                found: g.elem_offset as u64,
                expected: Self::ELEM_OFFSET as u64,
            });
        }
        Ok(Mem {
            base: region.as_ptr(),
            region,
            mask: layout.capacity() as u64 - 1,
            layout,
            _elements: PhantomData,
        })
    }

    /// The common header.
    #[inline]
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: in_region checked the region holds the whole area (> HEADER_SIZE bytes);
        // it is page aligned and kept alive by self.region; Header is only atomics.
        unsafe { self.base.cast::<Header>().as_ref() }
    }

    /// The MPMC counters line.
    #[inline]
    pub(crate) fn counters(&self) -> &Counters {
        // SAFETY: bytes 512..640 lie inside the area (in_region), 128-aligned in a
        // page-aligned region; Counters is only atomics.
        unsafe { self.base.add(COUNTERS_OFFSET).cast::<Counters>().as_ref() }
    }

    /// Owner entry `i`; `None` at or past the table's end.
    #[inline]
    pub(crate) fn owner(&self, i: usize) -> Option<&OwnerEntry> {
        if i >= self.layout.owners {
            return None;
        }
        // SAFETY: i < owners, so the entry lies inside the owner table, inside the area
        // (in_region); 128-aligned; OwnerEntry is only atomics.
        Some(unsafe {
            self.base
                .add(OWNERS_OFFSET + i * OWNER_ENTRY_BYTES)
                .cast::<OwnerEntry>()
                .as_ref()
        })
    }

    /// Address of the slot holding position `pos`.
    #[inline]
    fn slot(&self, pos: u64) -> NonNull<u8> {
        let i = (pos & self.mask) as usize;
        // SAFETY: i < capacity, so the slot lies inside the area that in_region checked.
        unsafe {
            self.base
                .add(self.layout.slots_offset() + i * self.layout.geom.block_size)
        }
    }

    /// The sequence word of the slot holding `pos`.
    #[inline]
    pub(crate) fn seq(&self, pos: u64) -> &AtomicU64 {
        // SAFETY: the slot is inside the area (slot), 64-aligned (slots_offset is a multiple
        // of 128 and the stride of 64), and its first 8 bytes are only accessed atomically.
        unsafe { self.slot(pos).cast::<AtomicU64>().as_ref() }
    }

    /// Reads the element of the slot holding `pos`.
    ///
    /// # Safety
    ///
    /// The protocol gives the caller read access to the slot (an honest peer does not write
    /// it meanwhile).
    #[inline]
    pub(crate) unsafe fn read(&self, pos: u64) -> T {
        // SAFETY: in bounds (in_region checked elem_offset + size <= stride) and aligned
        // (64-aligned slot, ELEM_OFFSET a multiple of align_of T); any bytes are a valid T
        // (Pod); the volatile read copies the slot once.
        unsafe {
            self.slot(pos)
                .as_ptr()
                .add(Self::ELEM_OFFSET)
                .cast::<T>()
                .read_volatile()
        }
    }

    /// Writes the element of the slot holding `pos`.
    ///
    /// # Safety
    ///
    /// The protocol gives the caller write access to the slot.
    #[inline]
    pub(crate) unsafe fn write(&self, pos: u64, value: T) {
        // SAFETY: in bounds and aligned, as in read; the caller owns the slot.
        unsafe {
            self.slot(pos)
                .as_ptr()
                .add(Self::ELEM_OFFSET)
                .cast::<T>()
                .write_volatile(value)
        }
    }
}

#[cfg(loom)]
impl<T: Pod> Mem<T> {
    /// A zeroed ring in heap memory, for loom models.
    pub(crate) fn on_heap(layout: Layout) -> Self {
        let z = || AtomicU64::new(0);
        Mem {
            header: Box::new(Header::new_zeroed()),
            counters: Box::new(Counters {
                skipped: z(),
                released: z(),
                revoked: z(),
            }),
            owners: (0..layout.owners)
                .map(|_| OwnerEntry {
                    token: z(),
                    role: z(),
                    claim_start: z(),
                    claim_len: z(),
                })
                .collect(),
            slots: (0..layout.capacity())
                .map(|_| ModelSlot {
                    seq: z(),
                    cell: crate::sync::PayloadCell::new(T::zeroed()),
                })
                .collect(),
            mask: layout.capacity() as u64 - 1,
            layout,
            _elements: PhantomData,
        }
    }

    #[inline]
    pub(crate) fn header(&self) -> &Header {
        &self.header
    }

    #[inline]
    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    #[inline]
    pub(crate) fn owner(&self, i: usize) -> Option<&OwnerEntry> {
        self.owners.get(i)
    }

    #[inline]
    pub(crate) fn seq(&self, pos: u64) -> &AtomicU64 {
        &self.slots[(pos & self.mask) as usize].seq
    }

    /// # Safety
    ///
    /// As in the mapped implementation.
    pub(crate) unsafe fn read(&self, pos: u64) -> T {
        // SAFETY: loom checks that the protocol ordered this read after the slot's write.
        self.slots[(pos & self.mask) as usize]
            .cell
            .with(|p| unsafe { *p })
    }

    /// # Safety
    ///
    /// As in the mapped implementation.
    pub(crate) unsafe fn write(&self, pos: u64, value: T) {
        // SAFETY: loom checks that no other access to the slot races with this one.
        self.slots[(pos & self.mask) as usize]
            .cell
            .with_mut(|p| unsafe { *p = value })
    }
}

/// The header at the start of `region`, if the region is long enough to hold one.
#[cfg(not(loom))]
pub(crate) fn header_in(region: &Region) -> Result<&Header, Error> {
    if region.len() < HEADER_SIZE {
        return Err(Error::RegionTooSmall {
            len: region.len() as u64,
            need: HEADER_SIZE as u64,
        });
    }
    // SAFETY: the region is page aligned (so 128-aligned) and at least HEADER_SIZE bytes,
    // and lives as long as the borrow; Header is only atomics, valid for any bits and for
    // concurrent access by other processes.
    Ok(unsafe { region.as_ptr().cast::<Header>().as_ref() })
}
