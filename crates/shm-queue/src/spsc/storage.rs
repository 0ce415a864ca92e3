//! The SPSC ring's view of its memory ([`crate::mem::Mem`]): the header, the
//! published-position word at the start of each block, and element reads and writes by
//! `(block, index)`, all through the one memory layer (and so the one loom twin).
//!
//! Invariant: `geom` was validated against the memory (`geom.area_size()` bytes exist), so
//! any block number masked with `block_count - 1` and any index below `elems_per_block`
//! addresses memory inside the ring.
//!
//! The hot paths locate a block once, as a [`Block`], and keep it in the handle until their
//! cursor leaves the block: an element access is then one add from the block's address,
//! with the element offset and size known at compile time (`size_of::<T>()`), and no
//! reload of the storage or the geometry. For [`Raw`] elements, whose shape is known only at
//! run time, the offset and size come from the validated geometry instead, and elements move
//! as byte runs.

use core::marker::PhantomData;

use bytemuck::Pod;

use crate::element::{Element, Raw};

use crate::header::{round_up, Geometry, Header, HEADER_SIZE};
use crate::mem::{Loc, Mem};
use crate::sync::AtomicU64;

use crate::error::Error;
#[cfg(not(loom))]
use {crate::sync::Arc, shm_region::Region};

/// A ring's memory; see the module documentation.
pub(crate) struct Storage<T> {
    mem: Mem,
    pub(crate) geom: Geometry,
    mask: usize,
    _elements: PhantomData<T>,
}

/// A block located by [`Storage::block`]: where its word is.
///
/// Only meaningful with the storage that made it; the accessors that take one are `unsafe`
/// and their callers promise that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Block(Loc);

// SAFETY: the view adds only geometry to `Mem` (which is Send and Sync); elements cross
// threads by value, hence `T: Send`, as they would between processes.
unsafe impl<T: Send> Send for Storage<T> {}
// SAFETY: as for `Send`: no method hands out a non-atomic reference into the memory.
unsafe impl<T: Send> Sync for Storage<T> {}

impl<T: Element> Storage<T> {
    /// Storage over `region`, laid out as `geom`.
    ///
    /// # Errors
    ///
    /// [`Error::RegionTooSmall`] if the region is shorter than `geom.area_size()`, and those
    /// of [`Storage::over`].
    #[cfg(not(loom))]
    pub(crate) fn in_region(region: Arc<Region>, geom: Geometry) -> Result<Self, Error> {
        Self::over(Mem::in_region(region, geom.area_size())?, geom)
    }

    /// A zeroed ring in heap memory, for loom models.
    #[cfg(loom)]
    pub(crate) fn on_heap(geom: Geometry) -> Result<Self, Error> {
        Self::over(Mem::on_heap(geom.area_size()), geom)
    }

    /// Storage over the first `len >= geom.area_size()` bytes of `region`: the blocks of
    /// `geom` followed by words of the ring's own (the broadcast ring's control area), reached
    /// with [`Storage::word_at`].
    ///
    /// # Errors
    ///
    /// As [`Storage::in_region`], with `len` as the size needed.
    #[cfg(not(loom))]
    pub(crate) fn in_region_len(
        region: Arc<Region>,
        geom: Geometry,
        len: usize,
    ) -> Result<Self, Error> {
        Self::over(Mem::in_region(region, len.max(geom.area_size()))?, geom)
    }

    /// [`Storage::in_region_len`] in zeroed heap memory, for loom models.
    #[cfg(loom)]
    pub(crate) fn on_heap_len(geom: Geometry, len: usize) -> Result<Self, Error> {
        Self::over(Mem::on_heap(len.max(geom.area_size())), geom)
    }

    /// Bytes of memory the storage covers (at least the geometry's area).
    pub(crate) fn mem_len(&self) -> usize {
        self.mem.len()
    }

    /// The 64-bit atomic word at byte `off` of the memory.
    ///
    /// # Safety
    ///
    /// `off` is a multiple of 8, at least `geom.area_size()` (past the blocks), and
    /// `off + 8 <= self.mem_len()`; the word is only ever accessed atomically.
    #[inline(always)]
    pub(crate) unsafe fn word_at(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off.is_multiple_of(8) && off >= self.geom.area_size());
        debug_assert!(off + 8 <= self.mem.len());
        // SAFETY: in bounds and 8-aligned from a 128-aligned start (caller), atomic only.
        unsafe { self.mem.word(self.mem.at(off)) }
    }

    /// The blocks of `geom` in `mem`, after checking they fit and hold `T`s where the
    /// accessors below put them.
    fn over(mem: Mem, geom: Geometry) -> Result<Self, Error> {
        mem.check_holds(geom.area_size())?;
        let (size, align) = T::FIXED.unwrap_or((geom.elem_size, geom.elem_align));
        geom.check_holds(size, align)?;
        Ok(Storage {
            mem,
            mask: geom.block_count - 1,
            geom,
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

    /// The ring's header.
    #[inline]
    pub(crate) fn header(&self) -> &Header {
        self.mem.header()
    }

    /// Offset of element 0 in a block: `round_up(8, align)`, as `BlockShape` computes it
    /// (`over` checks the geometry agrees, with `Geometry::check_holds`). A constant for a
    /// `Pod` `T`.
    #[inline(always)]
    fn elem_offset(&self) -> usize {
        match T::FIXED {
            Some((_, align)) => round_up(8, align),
            None => self.geom.elem_offset,
        }
    }

    /// Bytes per element: a constant for a `Pod` `T`.
    #[inline(always)]
    pub(crate) fn elem_size(&self) -> usize {
        match T::FIXED {
            Some((size, _)) => size,
            None => self.geom.elem_size,
        }
    }

    /// Block `b & mask`.
    #[inline]
    pub(crate) fn block(&self, b: usize) -> Block {
        let offset = HEADER_SIZE + (b & self.mask) * self.geom.block_size;
        // SAFETY: (b & mask) < block_count, so offset + block_size <= area_size <= the
        // memory's length, which `over` checked.
        Block(unsafe { self.mem.at(offset) })
    }

    /// The published-position word of `blk`.
    ///
    /// # Safety
    ///
    /// `blk` was made by `self.block`.
    #[inline]
    pub(crate) unsafe fn word_in(&self, blk: Block) -> &AtomicU64 {
        // SAFETY: the block lies inside the area (caller), starts 64-byte aligned
        // (HEADER_SIZE and block_size are multiples of 64, checked in `over`), and its first
        // 8 bytes are only ever accessed atomically.
        unsafe { self.mem.word(blk.0) }
    }

    /// The published-position word of block `b & mask`.
    #[inline]
    pub(crate) fn word(&self, b: usize) -> &AtomicU64 {
        // SAFETY: the block comes from `self.block`.
        unsafe { self.word_in(self.block(b)) }
    }

    /// Location of element `index` of `blk`.
    ///
    /// # Safety
    ///
    /// `blk` was made by `self.block` and `index < elems_per_block`.
    #[inline(always)]
    unsafe fn elem(&self, blk: Block, index: usize) -> Loc {
        // SAFETY: index < elems_per_block (caller), so the element lies inside the block
        // (`over` checked elem_offset + elems_per_block * size <= block_size); it is aligned
        // because the block is 64-aligned and the offset and size are multiples of the
        // element's alignment <= 64 (`ElementType::named` and `Pod` sizes).
        unsafe { blk.0.add(self.elem_offset() + index * self.elem_size()) }
    }
}

impl<T: Pod> Storage<T> {
    /// Reads element `index` of `blk`.
    ///
    /// # Safety
    ///
    /// `blk` was made by `self.block`, `index < elems_per_block`, and the protocol gives the
    /// caller read access to the slot (an honest peer does not write it meanwhile).
    #[inline]
    pub(crate) unsafe fn read_in(&self, blk: Block, index: usize) -> T {
        debug_assert!(index < self.geom.elems_per_block);
        // SAFETY: in bounds and aligned (elem, caller); read access granted (caller).
        unsafe { self.mem.read(self.elem(blk, index)) }
    }

    /// Writes element `index` of `blk`.
    ///
    /// # Safety
    ///
    /// `blk` was made by `self.block`, `index < elems_per_block`, and the protocol gives the
    /// caller write access to the slot.
    #[inline]
    pub(crate) unsafe fn write_in(&self, blk: Block, index: usize, value: T) {
        debug_assert!(index < self.geom.elems_per_block);
        // SAFETY: in bounds and aligned (elem, caller); the caller owns the slot.
        unsafe { self.mem.write(self.elem(blk, index), value) }
    }

    /// Copies elements `index .. index + dst.len()` of `blk` into `dst`.
    ///
    /// # Safety
    ///
    /// `blk` was made by `self.block`, `index + dst.len() <= elems_per_block`, and the
    /// caller has read access to the slots.
    #[inline]
    pub(crate) unsafe fn read_run_in(&self, blk: Block, index: usize, dst: &mut [T]) {
        if dst.is_empty() {
            return;
        }
        debug_assert!(index + dst.len() <= self.geom.elems_per_block);
        // SAFETY: the run lies inside one block (caller's bound); read access granted.
        unsafe { self.mem.copy_out(self.elem(blk, index), dst) }
    }

    /// Copies `src` into elements `index .. index + src.len()` of `blk`.
    ///
    /// # Safety
    ///
    /// `blk` was made by `self.block`, `index + src.len() <= elems_per_block`, and the
    /// caller has write access to the slots.
    #[inline]
    pub(crate) unsafe fn write_run_in(&self, blk: Block, index: usize, src: &[T]) {
        if src.is_empty() {
            return;
        }
        debug_assert!(index + src.len() <= self.geom.elems_per_block);
        // SAFETY: the run lies inside one block (caller's bound); the caller owns the slots.
        unsafe { self.mem.copy_in(self.elem(blk, index), src) }
    }
}

impl<T: Pod> Storage<T> {
    /// Reads element `index` of `blk` while the writer may be overwriting it (the broadcast
    /// ring's seqlock read: the caller validates the value afterwards).
    ///
    /// # Safety
    ///
    /// `blk` was made by `self.block` and `index < elems_per_block`.
    #[inline]
    pub(crate) unsafe fn read_racy_in(&self, blk: Block, index: usize) -> T {
        debug_assert!(index < self.geom.elems_per_block);
        let mut v = T::zeroed();
        // SAFETY: in bounds and aligned (elem, caller); racing writes are allowed by
        // `copy_out_racy`'s contract and the caller discards what it cannot validate.
        unsafe {
            self.mem
                .copy_out_racy(self.elem(blk, index), core::slice::from_mut(&mut v))
        };
        v
    }

    /// Copies elements `index .. index + dst.len()` of `blk` into `dst` while the writer may
    /// be overwriting them (see [`Storage::read_racy_in`]).
    ///
    /// # Safety
    ///
    /// `blk` was made by `self.block` and `index + dst.len() <= elems_per_block`.
    #[inline]
    pub(crate) unsafe fn read_run_racy_in(&self, blk: Block, index: usize, dst: &mut [T]) {
        if dst.is_empty() {
            return;
        }
        debug_assert!(index + dst.len() <= self.geom.elems_per_block);
        // SAFETY: the run lies inside one block (caller's bound); races are allowed.
        unsafe { self.mem.copy_out_racy(self.elem(blk, index), dst) }
    }

    /// Copies `src` into elements `index .. index + src.len()` of `blk` while readers may be
    /// copying them (see [`Storage::read_racy_in`]).
    ///
    /// # Safety
    ///
    /// `blk` was made by `self.block`, `index + src.len() <= elems_per_block`, and the
    /// caller is the only writer of the slots.
    #[inline]
    pub(crate) unsafe fn write_run_racy_in(&self, blk: Block, index: usize, src: &[T]) {
        if src.is_empty() {
            return;
        }
        debug_assert!(index + src.len() <= self.geom.elems_per_block);
        // SAFETY: the run lies inside one block (caller's bound); the caller is the writer.
        unsafe { self.mem.copy_in_racy(self.elem(blk, index), src) }
    }
}

impl Storage<Raw> {
    /// [`Storage::read_bytes_in`] while the writer may be overwriting the slots (the
    /// broadcast ring's seqlock read: the caller validates afterwards).
    ///
    /// # Safety
    ///
    /// As [`Storage::read_bytes_in`], without the exclusive read access.
    #[inline]
    pub(crate) unsafe fn read_bytes_racy_in(&self, blk: Block, index: usize, dst: &mut [u8]) {
        if dst.is_empty() {
            return;
        }
        debug_assert!(index + dst.len() / self.elem_size() <= self.geom.elems_per_block);
        // SAFETY: the run lies inside one block (caller's bound); races are allowed.
        unsafe { self.mem.copy_out_racy(self.elem(blk, index), dst) }
    }

    /// [`Storage::write_bytes_in`] while readers may be copying the slots.
    ///
    /// # Safety
    ///
    /// As [`Storage::write_bytes_in`]; the caller is the only writer.
    #[inline]
    pub(crate) unsafe fn write_bytes_racy_in(&self, blk: Block, index: usize, src: &[u8]) {
        if src.is_empty() {
            return;
        }
        debug_assert!(index + src.len() / self.elem_size() <= self.geom.elems_per_block);
        // SAFETY: the run lies inside one block (caller's bound); the caller is the writer.
        unsafe { self.mem.copy_in_racy(self.elem(blk, index), src) }
    }

    /// Copies bytes `offset .. offset + dst.len()` of element `index` of `blk` into `dst`
    /// while the writer may be overwriting them (a broadcast message slot's seqlock read:
    /// the caller validates afterwards).
    ///
    /// # Safety
    ///
    /// `blk` was made by `self.block`, `index < elems_per_block` and
    /// `offset + dst.len() <= elem_size`.
    #[inline]
    pub(crate) unsafe fn read_part_racy_in(
        &self,
        blk: Block,
        index: usize,
        offset: usize,
        dst: &mut [u8],
    ) {
        if dst.is_empty() {
            return;
        }
        debug_assert!(index < self.geom.elems_per_block);
        debug_assert!(offset + dst.len() <= self.elem_size());
        // SAFETY: the bytes lie inside element `index` (caller's bounds), which lies inside
        // the block; bytes need no alignment; races are allowed.
        unsafe {
            self.mem
                .copy_out_racy(self.elem(blk, index).add(offset), dst)
        }
    }

    /// Copies `src` into bytes `offset .. offset + src.len()` of element `index` of `blk`
    /// while readers may be copying them.
    ///
    /// # Safety
    ///
    /// As [`Storage::read_part_racy_in`]; the caller is the only writer of the slot.
    #[inline]
    pub(crate) unsafe fn write_part_racy_in(
        &self,
        blk: Block,
        index: usize,
        offset: usize,
        src: &[u8],
    ) {
        if src.is_empty() {
            return;
        }
        debug_assert!(index < self.geom.elems_per_block);
        debug_assert!(offset + src.len() <= self.elem_size());
        // SAFETY: inside element `index` (caller's bounds); the caller is the writer.
        unsafe {
            self.mem
                .copy_in_racy(self.elem(blk, index).add(offset), src)
        }
    }

    /// Address of byte `offset` of element `index` of `blk`, for a zero-copy view.
    ///
    /// # Safety
    ///
    /// `blk` was made by `self.block`, `index < elems_per_block`, `offset <= elem_size`.
    #[cfg(not(loom))]
    #[inline]
    pub(crate) unsafe fn part_ptr(&self, blk: Block, index: usize, offset: usize) -> *const u8 {
        // SAFETY: inside (or one past) element `index` (caller's bounds).
        crate::mem::Mem::ptr(unsafe { self.elem(blk, index).add(offset) })
    }

    /// Copies the `dst.len() / elem_size` elements starting at element `index` of `blk` into
    /// `dst`, as bytes.
    ///
    /// # Safety
    ///
    /// `blk` was made by `self.block`, `dst.len()` is a multiple of the element size, the
    /// run ends at or before the block's last element, and the caller has read access to the
    /// slots.
    #[inline]
    pub(crate) unsafe fn read_bytes_in(&self, blk: Block, index: usize, dst: &mut [u8]) {
        if dst.is_empty() {
            return;
        }
        debug_assert!(index + dst.len() / self.elem_size() <= self.geom.elems_per_block);
        // SAFETY: the run lies inside one block (caller's bound); bytes need no alignment;
        // read access granted.
        unsafe { self.mem.copy_out(self.elem(blk, index), dst) }
    }

    /// Copies `src` (whole elements) into the slots from element `index` of `blk` on.
    ///
    /// # Safety
    ///
    /// As [`Storage::read_bytes_in`], with write access to the slots.
    #[inline]
    pub(crate) unsafe fn write_bytes_in(&self, blk: Block, index: usize, src: &[u8]) {
        if src.is_empty() {
            return;
        }
        debug_assert!(index + src.len() / self.elem_size() <= self.geom.elems_per_block);
        // SAFETY: the run lies inside one block (caller's bound); the caller owns the slots.
        unsafe { self.mem.copy_in(self.elem(blk, index), src) }
    }
}
