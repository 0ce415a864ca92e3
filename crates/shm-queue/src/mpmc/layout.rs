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

use crate::element::Element;
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

/// How an MPMC ring spaces its slots (a sequence word and one element each), chosen at
/// creation with [`Options::slot_layout`](crate::mpmc::Options::slot_layout) and recorded
/// in the header, so every process that attaches uses the creator's choice.
///
/// The choice does not change the algorithm, the recovery or any guarantee; only how many
/// slots share a cache line. [`SlotLayout::Packed`] is the default because it measured
/// faster in every configuration we ran (`docs/BENCHMARKS.md`, "MPMC slot layout": 1.16x
/// to 1.34x with one producer and one consumer process, 1.47x to 1.60x with two of each).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlotLayout {
    /// Every slot on a cache line (or several) of its own: a 64-byte stride for elements of
    /// up to 56 bytes. Handles working on neighbouring positions never share a line. The
    /// layout of rings made before the choice existed.
    Line,
    /// Slots of up to 32 bytes (sequence word included) packed two to four to a line: a
    /// 16-byte stride for elements of up to 8 bytes, 32 for up to 24; larger elements keep
    /// [`SlotLayout::Line`]'s stride. A quarter of the memory for `u64`s, and a producer
    /// running ahead of its consumer fills four slots per line transfer; handles working
    /// on neighbouring positions at the same moment share a line. The default.
    #[default]
    Packed,
}

impl SlotLayout {
    /// The header's code for this layout (`reserved1[1]`).
    pub(crate) fn code(self) -> u64 {
        match self {
            SlotLayout::Line => 0,
            SlotLayout::Packed => 1,
        }
    }

    /// The layout a header code names, if any.
    pub(crate) fn from_code(code: u64) -> Option<Self> {
        match code {
            0 => Some(SlotLayout::Line),
            1 => Some(SlotLayout::Packed),
            _ => None,
        }
    }

    /// The slot stride for a sequence word and an element that together need `need`
    /// bytes (`need` is a multiple of 8 plus at most an element's size). Always either a
    /// multiple of 64 or a power of two of at most 32 (which divides 64), so no slot
    /// straddles a line boundary that a neighbour's slot does not also respect.
    pub(crate) fn stride(self, need: usize) -> usize {
        match self {
            SlotLayout::Packed if need <= 32 => need.next_power_of_two().max(16),
            _ => round_up(need, 64),
        }
    }
}

/// Where everything of an MPMC ring of `T` lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The common geometry: `block_count == capacity`, one element per block, and
    /// `block_size` the slot stride.
    pub geom: Geometry,
    /// Number of owner-table entries.
    pub owners: usize,
    /// How the slots are spaced (what `geom.block_size` was computed from).
    pub slots: SlotLayout,
}

impl Layout {
    /// The layout for `capacity` slots (a power of two, checked) and `owners` entries.
    pub(crate) fn new(
        elem: &crate::ElementType,
        capacity: usize,
        owners: usize,
        slots: SlotLayout,
    ) -> Result<Self, Error> {
        Self::from_shape(
            crate::header::BlockShape::of_element(elem)?,
            capacity,
            owners,
            slots,
        )
    }

    /// The layout for elements of `shape` (see [`Layout::new`]).
    pub(crate) fn from_shape(
        shape: crate::header::BlockShape,
        capacity: usize,
        owners: usize,
        slots: SlotLayout,
    ) -> Result<Self, Error> {
        check_capacity(capacity as u64)?;
        check_owners(owners as u64)?;
        // Reuse the common geometry for the element offset; the slot stride is what the
        // slot layout makes of the sequence word plus the element.
        let mut geom = Geometry::from_shape(shape, 1)?;
        geom.elems_per_block = 1;
        geom.block_count = capacity;
        geom.block_size = slots.stride(geom.elem_offset + geom.elem_size);
        let layout = Layout {
            geom,
            owners,
            slots,
        };
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

    /// Checks that this layout puts elements of `size` bytes aligned to `align` where
    /// [`Slots`] reads them: the element at `round_up(8, align)` inside its slot, the slot
    /// stride a multiple of 8 and of `align`, holding the sequence word and the element, and either a multiple
    /// of 64 or a divisor of 64 (so that `slots_offset`, a multiple of 128, keeps every
    /// slot and every sequence word aligned and inside its own stride).
    ///
    /// # Errors
    ///
    /// [`Error::LayoutMismatch`] naming the field that disagrees.
    pub(crate) fn check_holds(&self, size: usize, align: usize) -> Result<(), Error> {
        let g = &self.geom;
        let offset = round_up(8, align);
        if g.elem_offset != offset || g.elem_size != size || g.elem_align != align {
            return Err(Error::LayoutMismatch {
                field: "elem_offset",
                found: g.elem_offset as u64,
                expected: offset as u64,
            });
        }
        let stride = g.block_size;
        let spaced = stride.is_multiple_of(64) || (stride > 0 && 64 % stride == 0);
        if !stride.is_multiple_of(8)
            || !stride.is_multiple_of(align)
            || offset + size > stride
            || !spaced
            || stride != self.slots.stride(offset + size)
        {
            return Err(Error::LayoutMismatch {
                field: "block_size",
                found: stride as u64,
                expected: self.slots.stride(offset + size) as u64,
            });
        }
        Ok(())
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

impl<T: Element> Slots<T> {
    /// Offset of the element in its slot: a constant for a `Pod` `T`, the validated
    /// geometry's for [`Raw`](crate::Raw).
    #[inline(always)]
    fn elem_offset(&self) -> usize {
        match T::FIXED {
            Some((_, align)) => round_up(8, align),
            None => self.layout.geom.elem_offset,
        }
    }

    /// Bytes per element: a constant for a `Pod` `T`.
    #[inline(always)]
    pub(crate) fn elem_size(&self) -> usize {
        match T::FIXED {
            Some((size, _)) => size,
            None => self.layout.geom.elem_size,
        }
    }

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
        let g = &layout.geom;
        let (size, align) = T::FIXED.unwrap_or((g.elem_size, g.elem_align));
        layout.check_holds(size, align)?;
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
        // SAFETY: the slot is inside the area (slot), 8-aligned (slots_offset is a multiple
        // of 128 and the stride of 8, `check_holds`), and its first 8 bytes are only
        // accessed atomically: the element starts at elem_offset >= 8 and ends within the
        // stride, so it never overlaps this or the next slot's sequence word.
        unsafe { self.mem.word(self.slot(pos)) }
    }

    /// Where the element of `pos` starts.
    #[inline(always)]
    fn elem(&self, pos: u64) -> Loc {
        // SAFETY: in bounds (`over` checked elem_offset + size <= stride).
        unsafe { self.slot(pos).add(self.elem_offset()) }
    }
}

impl<T: Pod> Slots<T> {
    /// # Safety
    ///
    /// The sequence protocol grants the caller read access to the slot of `pos`.
    #[inline]
    pub(crate) unsafe fn read(&self, pos: u64) -> T {
        // SAFETY: in bounds (`over` checked elem_offset + size <= stride) and aligned (the
        // slot is aligned to align_of T, as slots_offset and the stride are multiples of
        // it, and so is the element offset); read access (caller).
        unsafe { self.mem.read(self.elem(pos)) }
    }

    /// # Safety
    ///
    /// The sequence protocol grants the caller write access to the slot of `pos`.
    #[inline]
    pub(crate) unsafe fn write(&self, pos: u64, value: T) {
        // SAFETY: in bounds and aligned, as in read; the caller owns the slot.
        unsafe { self.mem.write(self.elem(pos), value) }
    }
}

impl Slots<crate::Raw> {
    /// Copies the element of `pos` into `dst` (exactly one element's bytes).
    ///
    /// # Safety
    ///
    /// The sequence protocol grants the caller read access to the slot of `pos`, and
    /// `dst.len() == elem_size`.
    #[inline]
    pub(crate) unsafe fn read_bytes(&self, pos: u64, dst: &mut [u8]) {
        debug_assert_eq!(dst.len(), self.elem_size());
        // SAFETY: in bounds (as in `read`, dst is one element); bytes need no alignment.
        unsafe { self.mem.copy_out(self.elem(pos), dst) }
    }

    /// Copies `src` (exactly one element's bytes) into the element of `pos`.
    ///
    /// # Safety
    ///
    /// The sequence protocol grants the caller write access to the slot of `pos`, and
    /// `src.len() == elem_size`.
    #[inline]
    pub(crate) unsafe fn write_bytes(&self, pos: u64, src: &[u8]) {
        debug_assert_eq!(src.len(), self.elem_size());
        // SAFETY: in bounds as in `read_bytes`; the caller owns the slot.
        unsafe { self.mem.copy_in(self.elem(pos), src) }
    }
}

impl Header {
    /// Checks every configuration field of an MPMC ring against the caller's element type
    /// and the length of the memory the header sits in; returns its layout.
    ///
    /// For kind 3 the common fields mean: `capacity == block_count` slots (a power of two,
    /// at least 2), `elems_per_block == 1`, `block_size` the slot stride, the first
    /// reserved word (offset 96) the number of owner-table entries, the second (offset 104)
    /// the [`SlotLayout`] code (0 line, 1 packed); the third is 0. See the MPMC section of
    /// `docs/layout.md`.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn validate_mpmc(
        &self,
        elem: &crate::ElementType,
        region_len: u64,
    ) -> Result<crate::mpmc::layout::Layout, Error> {
        self.for_element(RingKind::Mpmc, elem, |h, shape| {
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
        let code = c.reserved1[1].load(r);
        let slots = SlotLayout::from_code(code).ok_or(Error::LayoutMismatch {
            field: "reserved1[1]",
            found: code,
            expected: SlotLayout::Line.code(),
        })?;
        let layout = Layout::from_shape(shape, cap as usize, owners as usize, slots)?;
        self.expect_typed_geometry(&layout.geom, layout.area_size() as u64, region_len)?;
        expect_field("reserved1[2]", c.reserved1[2].load(r), 0)?;
        Ok(layout)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// The stride invariants `Slots` relies on, for `T` in both layouts; returns the
    /// strides (line, packed).
    fn strides<T>() -> (usize, usize) {
        let (size, align) = (core::mem::size_of::<T>(), core::mem::align_of::<T>());
        let mut out = [0; 2];
        for (i, slots) in [SlotLayout::Line, SlotLayout::Packed]
            .into_iter()
            .enumerate()
        {
            let elem = crate::ElementType::named("t", size, align).unwrap();
            let layout = Layout::new(&elem, 4, 1, slots).unwrap();
            layout.check_holds(size, align).unwrap();
            let stride = layout.geom.block_size;
            let offset = layout.geom.elem_offset;
            assert_eq!(offset, round_up(8, align));
            assert!(stride.is_multiple_of(8) && stride.is_multiple_of(align));
            assert!(stride.is_multiple_of(64) || 64 % stride == 0, "{stride}");
            // The element ends before the next slot's sequence word begins.
            assert!(offset + size <= stride);
            assert!(layout.slots_offset().is_multiple_of(128));
            assert_eq!(
                layout.area_size(),
                layout.slots_offset() + 4 * stride,
                "{slots:?}"
            );
            // The other layout's record of the same ring is refused when it differs.
            let other = match slots {
                SlotLayout::Line => SlotLayout::Packed,
                SlotLayout::Packed => SlotLayout::Line,
            };
            let lie = Layout {
                slots: other,
                ..layout
            };
            assert_eq!(
                lie.check_holds(size, align).is_ok(),
                other.stride(offset + size) == stride
            );
            out[i] = stride;
        }
        assert!(out[1] <= out[0]);
        (out[0], out[1])
    }

    #[test]
    fn strides_hold_their_elements_and_never_straddle() {
        assert_eq!(strides::<u8>(), (64, 16));
        assert_eq!(strides::<u16>(), (64, 16));
        assert_eq!(strides::<u32>(), (64, 16));
        assert_eq!(strides::<u64>(), (64, 16));
        assert_eq!(strides::<[u8; 3]>(), (64, 16));
        assert_eq!(strides::<[u32; 3]>(), (64, 32));
        assert_eq!(strides::<[u64; 2]>(), (64, 32));
        assert_eq!(strides::<u128>(), (64, 32));
        assert_eq!(strides::<[u64; 3]>(), (64, 32));
        assert_eq!(strides::<[u32; 5]>(), (64, 32));
        assert_eq!(strides::<[u8; 25]>(), (64, 64));
        assert_eq!(strides::<[u64; 4]>(), (64, 64));
        assert_eq!(strides::<[u64; 7]>(), (64, 64));
        assert_eq!(strides::<[u64; 8]>(), (128, 128));
        assert_eq!(strides::<[u16; 61]>(), (192, 192));
    }

    #[test]
    fn codes_round_trip_and_unknown_codes_are_refused() {
        for slots in [SlotLayout::Line, SlotLayout::Packed] {
            assert_eq!(SlotLayout::from_code(slots.code()), Some(slots));
        }
        assert_eq!(SlotLayout::from_code(2), None);
        assert_eq!(SlotLayout::from_code(u64::MAX), None);
        assert_eq!(SlotLayout::default(), SlotLayout::Packed);
    }

    #[test]
    fn a_stride_that_is_not_the_layouts_is_refused() {
        let mut layout =
            Layout::new(&crate::ElementType::of::<u64>(), 4, 1, SlotLayout::Packed).unwrap();
        for bad in [0, 8, 24, 48, 64, 80] {
            layout.geom.block_size = bad;
            assert!(
                matches!(layout.check_holds(8, 8), Err(Error::LayoutMismatch { .. })),
                "{bad}"
            );
        }
    }
}
