//! Where a ring's header and slots live: a shared mapping normally, heap memory under loom.
//!
//! The ring algorithms in [`crate::spsc`] reach memory only through [`Storage`]: the header,
//! the published-position word at the start of each block, and element reads and writes by
//! `(block, index)`. There is one implementation of each method per memory kind and one copy
//! of the ring code above them.
//!
//! - Without `cfg(loom)`: a raw pointer to the first byte of a [`shm_region::Region`] and the
//!   region itself, kept alive by an `Arc`. The header and block words are `core` atomics
//!   at aligned offsets; elements are moved with raw-pointer copies, never through Rust
//!   references, because a peer process may write them at any time.
//! - Under `cfg(loom)`: the header is a boxed [`Header`] of loom atomics and each block is a
//!   loom atomic plus one `loom::cell::UnsafeCell` per element, so loom checks every slot
//!   access against the protocol's happens-before edges.
//!
//! Invariant: `geom` was validated against the memory (`geom.area_size()` bytes exist), so
//! any block number masked with `block_count - 1` and any index below `elems_per_block`
//! addresses memory inside the ring.
//!
//! The hot paths locate a block once, as a [`Block`], and keep it in the handle until their
//! cursor leaves the block: an element access is then one add from the block's address,
//! with the element offset and size known at compile time (`size_of::<T>()`), and no
//! reload of the storage or the geometry.

use core::marker::PhantomData;

use bytemuck::Pod;

use crate::header::{Geometry, Header};
use crate::sync::AtomicU64;

#[cfg(not(loom))]
use {
    crate::{
        error::Error,
        header::{round_up, HEADER_SIZE},
        sync::Arc,
    },
    core::ptr::NonNull,
    shm_region::Region,
};

/// A ring's memory; see the module documentation.
pub(crate) struct Storage<T> {
    #[cfg(not(loom))]
    base: NonNull<u8>,
    #[cfg(not(loom))]
    region: Arc<Region>,
    #[cfg(loom)]
    header: Box<Header>,
    #[cfg(loom)]
    blocks: Box<[ModelBlock<T>]>,
    pub(crate) geom: Geometry,
    mask: usize,
    _elements: PhantomData<T>,
}

/// One block of a loom model: the published-position word and the element cells.
#[cfg(loom)]
struct ModelBlock<T> {
    word: AtomicU64,
    cells: Box<[crate::sync::PayloadCell<T>]>,
}

/// A block located by [`Storage::block`]: its address in a mapping, its number under loom.
///
/// Only meaningful with the storage that made it; the accessors that take one are `unsafe`
/// and their callers promise that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Block {
    #[cfg(not(loom))]
    base: NonNull<u8>,
    #[cfg(loom)]
    number: usize,
}

// SAFETY: a `Block` is an address, not access: every use goes through an `unsafe` storage
// method whose caller vouches that the storage (kept alive by the handle) made it.
unsafe impl Send for Block {}
// SAFETY: as for `Send`; a shared `Block` gives no access by itself.
unsafe impl Sync for Block {}

// SAFETY: the storage is shared between one producer and one consumer handle, possibly on
// different threads; the header and block words are atomics and every element access is
// ordered by the ring protocol (whose unsafe callers state why), exactly as it is between
// processes.
unsafe impl<T: Send> Send for Storage<T> {}
// SAFETY: as for `Send`: no method hands out a non-atomic reference into the memory.
unsafe impl<T: Send> Sync for Storage<T> {}

/// The header at the start of `region`, if the region is long enough to hold one.
#[cfg(not(loom))]
pub(crate) fn header_of(region: &Region) -> Result<&Header, Error> {
    if region.len() < HEADER_SIZE {
        return Err(Error::RegionTooSmall {
            len: region.len() as u64,
            need: HEADER_SIZE as u64,
        });
    }
    // SAFETY: the region is page aligned (so 128-aligned) and at least HEADER_SIZE bytes,
    // and lives as long as the borrow; Header consists only of atomics, for which every bit
    // pattern is valid and concurrent access by other processes is sound.
    Ok(unsafe { region.as_ptr().cast::<Header>().as_ref() })
}

#[cfg(not(loom))]
impl<T: Pod> Storage<T> {
    /// Storage over `region`, laid out as `geom`.
    ///
    /// # Errors
    ///
    /// [`Error::RegionTooSmall`] if the region is shorter than `geom.area_size()`.
    pub(crate) fn in_region(region: Arc<Region>, geom: Geometry) -> Result<Self, Error> {
        if region.len() < geom.area_size() {
            return Err(Error::RegionTooSmall {
                len: region.len() as u64,
                need: geom.area_size() as u64,
            });
        }
        if geom.elem_offset != Self::ELEM_OFFSET || geom.elem_size != core::mem::size_of::<T>() {
            return Err(Error::LayoutMismatch {
                field: "elem_offset",
                found: geom.elem_offset as u64,
                expected: Self::ELEM_OFFSET as u64,
            });
        }
        Ok(Storage {
            base: region.as_ptr(),
            region,
            mask: geom.block_count - 1,
            geom,
            _elements: PhantomData,
        })
    }

    /// The region the ring lives in.
    pub(crate) fn region(&self) -> &Arc<Region> {
        &self.region
    }

    /// The ring's header.
    #[inline]
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: `in_region` checked the region holds at least `area_size() >= HEADER_SIZE`
        // bytes; it is page aligned and kept alive by `self.region`; see `header_of`.
        unsafe { self.base.cast::<Header>().as_ref() }
    }

    /// Offset of element 0 in a block: `round_up(8, align_of::<T>())`, as `BlockShape`
    /// computes it (`in_region` checks the geometry agrees).
    const ELEM_OFFSET: usize = round_up(8, core::mem::align_of::<T>());

    /// Block `b & mask`.
    #[inline]
    pub(crate) fn block(&self, b: usize) -> Block {
        let offset = HEADER_SIZE + (b & self.mask) * self.geom.block_size;
        // SAFETY: (b & mask) < block_count, so offset + block_size <= area_size <= the
        // region's length, which `in_region` checked; the result is inside the mapping and
        // so not null.
        let base = unsafe { self.base.add(offset) };
        Block { base }
    }

    /// The published-position word of `blk`.
    ///
    /// # Safety
    ///
    /// `blk` was made by `self.block`.
    #[inline]
    pub(crate) unsafe fn word_in(&self, blk: Block) -> &AtomicU64 {
        // SAFETY: the block lies inside the region (caller), starts 64-byte aligned (the
        // region is page aligned, HEADER_SIZE and block_size are multiples of 64), and its
        // first 8 bytes are only ever accessed atomically.
        unsafe { blk.base.cast::<AtomicU64>().as_ref() }
    }

    /// The published-position word of block `b & mask`.
    #[inline]
    pub(crate) fn word(&self, b: usize) -> &AtomicU64 {
        // SAFETY: the block comes from `self.block`.
        unsafe { self.word_in(self.block(b)) }
    }

    /// Pointer to element `index` of `blk`.
    ///
    /// # Safety
    ///
    /// `blk` was made by `self.block` and `index < elems_per_block`.
    #[inline]
    unsafe fn elem_ptr(blk: Block, index: usize) -> *mut T {
        // SAFETY: index < elems_per_block (caller), so the element lies inside the block
        // (BlockShape guarantees elem_offset + elems_per_block * size <= block_size); the
        // address is aligned because the block is 64-aligned and ELEM_OFFSET and size are
        // multiples of align_of::<T>() <= 64.
        unsafe {
            blk.base
                .as_ptr()
                .add(Self::ELEM_OFFSET + index * core::mem::size_of::<T>())
                .cast::<T>()
        }
    }

    /// Reads element `index` of `blk`.
    ///
    /// # Safety
    ///
    /// `blk` was made by `self.block`, `index < elems_per_block`, and the protocol gives the
    /// caller read access to the slot (an honest peer does not write it meanwhile).
    #[inline]
    pub(crate) unsafe fn read_in(&self, blk: Block, index: usize) -> T {
        debug_assert!(index < self.geom.elems_per_block);
        // SAFETY: the pointer is in bounds and aligned (elem_ptr, caller); any bytes are a
        // valid T (Pod); the volatile read copies the slot once, so the value cannot change
        // after we return even if a hostile peer writes the slot.
        unsafe { Self::elem_ptr(blk, index).read_volatile() }
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
        // SAFETY: in bounds and aligned (elem_ptr, caller); the caller owns the slot. A plain
        // write, as `write_run_in`'s copy is: a write has nothing to re-read, and a plain one
        // lets the compiler merge a chunk's consecutive writes into vector stores.
        unsafe { Self::elem_ptr(blk, index).write(value) }
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
        // SAFETY: the run lies inside one block (caller's bound), `dst` is process memory
        // that cannot overlap the mapping's slots, and any bytes are a valid T.
        unsafe {
            core::ptr::copy_nonoverlapping(Self::elem_ptr(blk, index), dst.as_mut_ptr(), dst.len())
        }
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
        // SAFETY: the run lies inside one block (caller's bound), the caller owns the slots,
        // and `src` is a Rust slice, which cannot alias slots nobody holds references to.
        unsafe {
            core::ptr::copy_nonoverlapping(src.as_ptr(), Self::elem_ptr(blk, index), src.len())
        }
    }
}

#[cfg(loom)]
impl<T: Pod> Storage<T> {
    /// A zeroed ring in heap memory, for loom models.
    pub(crate) fn on_heap(geom: Geometry) -> Self {
        let blocks = (0..geom.block_count)
            .map(|_| ModelBlock {
                word: AtomicU64::new(0),
                cells: (0..geom.elems_per_block)
                    .map(|_| crate::sync::PayloadCell::new(T::zeroed()))
                    .collect(),
            })
            .collect();
        Storage {
            header: Box::new(Header::new_zeroed()),
            blocks,
            mask: geom.block_count - 1,
            geom,
            _elements: PhantomData,
        }
    }

    #[inline]
    pub(crate) fn header(&self) -> &Header {
        &self.header
    }

    #[inline]
    pub(crate) fn block(&self, b: usize) -> Block {
        Block {
            number: b & self.mask,
        }
    }

    /// # Safety
    ///
    /// As in the mapped implementation.
    #[inline]
    pub(crate) unsafe fn word_in(&self, blk: Block) -> &AtomicU64 {
        &self.blocks[blk.number].word
    }

    #[inline]
    pub(crate) fn word(&self, b: usize) -> &AtomicU64 {
        &self.blocks[b & self.mask].word
    }

    #[inline]
    fn cell(&self, blk: Block, index: usize) -> &crate::sync::PayloadCell<T> {
        &self.blocks[blk.number].cells[index]
    }

    /// # Safety
    ///
    /// As in the mapped implementation.
    pub(crate) unsafe fn read_in(&self, blk: Block, index: usize) -> T {
        // SAFETY: loom checks that the protocol ordered this read after the slot's write.
        self.cell(blk, index).with(|p| unsafe { *p })
    }

    /// # Safety
    ///
    /// As in the mapped implementation.
    pub(crate) unsafe fn write_in(&self, blk: Block, index: usize, value: T) {
        // SAFETY: loom checks that no read or write of the slot races with this one.
        self.cell(blk, index).with_mut(|p| unsafe { *p = value })
    }

    /// # Safety
    ///
    /// As in the mapped implementation.
    pub(crate) unsafe fn read_run_in(&self, blk: Block, index: usize, dst: &mut [T]) {
        for (k, d) in dst.iter_mut().enumerate() {
            // SAFETY: forwarded from the caller.
            *d = unsafe { self.read_in(blk, index + k) };
        }
    }

    /// # Safety
    ///
    /// As in the mapped implementation.
    pub(crate) unsafe fn write_run_in(&self, blk: Block, index: usize, src: &[T]) {
        for (k, s) in src.iter().enumerate() {
            // SAFETY: forwarded from the caller.
            unsafe { self.write_in(blk, index + k, *s) };
        }
    }
}
