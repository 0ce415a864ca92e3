//! The one memory layer under every ring: a header and a byte area, in a shared mapping
//! normally and (under `cfg(loom)`) in heap memory that loom checks.
//!
//! Every ring reaches its memory only through [`Mem`]: the common [`Header`], 64-bit atomic
//! words at 8-aligned offsets (positions, sequence numbers, record headers, owner entries),
//! and payload copies between the area and process memory. The rings compute offsets from a
//! geometry that was validated against [`Mem::len`] once, when the ring was created or
//! attached; that check is what makes the `unsafe` accessors here sound, and each ring's
//! view states it where it builds its offsets.
//!
//! - Without `cfg(loom)`: a raw pointer to the first byte of a [`shm_region::Region`] and the
//!   region, kept alive by an `Arc`. [`Mem::in_region`] checks the length and that the
//!   mapping starts on a 128-byte boundary (the header's alignment), so nothing above relies
//!   on a promise in another crate's docs.
//! - Under `cfg(loom)` ([`model`]): the header is a boxed [`Header`] of loom atomics and the
//!   area after it is a table of 8-byte words, each a loom atomic (for when the word is a
//!   control word) and a `loom::cell::UnsafeCell` (for when it carries payload), so loom
//!   checks every payload access against the protocol's happens-before edges.
//!
//! # Payload copies, and racy access to `MAP_SHARED` memory
//!
//! Payload moves only through [`Mem::copy_in`] and [`Mem::copy_out`] (and the one-element
//! [`Mem::write`] and [`Mem::read`], which are the same copy): `ptr::copy_nonoverlapping`
//! between the mapping and process memory, inside the window the ring protocol grants the
//! caller. Another process may write the same bytes at the same time (a hostile or broken
//! peer). Rust's memory model has no notion of memory shared with another process; the
//! assumption this crate makes, as every shared-memory transport must, is that the compiler
//! cannot see that process and so treats the mapping as opaque memory: a copy produces some
//! bytes, which are a valid value because every payload type is `Pod`, and the copied value
//! is never re-read from the mapping. Control words are never read by these copies: they are
//! atomics, loaded once and validated before use. No `&`/`&mut` reference to payload bytes in
//! the mapping is ever created.

#[cfg(loom)]
mod model;

use bytemuck::Pod;

use crate::header::Header;
#[cfg(not(loom))]
use crate::sync::AtomicU64;

#[cfg(not(loom))]
use {
    crate::{error::Error, header::HEADER_SIZE, sync::Arc},
    core::ptr::NonNull,
    shm_region::Region,
};

/// Alignment the mapping must start on: the header's (`#[repr(align(128))]`).
#[cfg(not(loom))]
pub(crate) const REGION_ALIGN: usize = core::mem::align_of::<Header>();

/// A ring's memory; see the module documentation.
pub(crate) struct Mem {
    #[cfg(not(loom))]
    base: NonNull<u8>,
    #[cfg(not(loom))]
    region: Arc<Region>,
    #[cfg(loom)]
    header: Box<Header>,
    #[cfg(loom)]
    words: Box<[model::Word]>,
    len: usize,
    /// The region's SIGBUS-guard flag (a `Copy` pointer to a process-local word).
    #[cfg(not(loom))]
    watch: shm_region::Watch,
}

// SAFETY: the memory is shared by ring handles on any threads exactly as between processes:
// the header and control words are atomics, every payload access is ordered by the ring
// protocol (whose unsafe callers say why), and no method hands out a non-atomic reference.
unsafe impl Send for Mem {}
// SAFETY: as for `Send`.
unsafe impl Sync for Mem {}

/// A location in a [`Mem`]: an address in a mapping, an offset under loom. Hot paths keep
/// one (a block's start, say) and step from it with [`Loc::add`], which is one add.
///
/// Only meaningful with the memory that made it; the accessors that take one are `unsafe`
/// and their callers promise that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    #[cfg(not(loom))]
    ptr: NonNull<u8>,
    #[cfg(loom)]
    off: usize,
}

// SAFETY: a `Loc` is an address, not access: every use goes through an `unsafe` `Mem`
// method whose caller vouches that the memory (kept alive by the handle) made it.
unsafe impl Send for Loc {}
// SAFETY: as for `Send`.
unsafe impl Sync for Loc {}

impl Loc {
    /// `n` bytes further on.
    ///
    /// # Safety
    ///
    /// The result stays inside (or one past the end of) the memory that made `self`.
    #[inline(always)]
    pub(crate) unsafe fn add(self, n: usize) -> Loc {
        #[cfg(not(loom))]
        {
            // SAFETY: in bounds by the caller's contract, so not null.
            let ptr = unsafe { self.ptr.add(n) };
            Loc { ptr }
        }
        #[cfg(loom)]
        Loc { off: self.off + n }
    }
}

/// The header at the start of `region`.
///
/// # Errors
///
/// [`Error::RegionTooSmall`] if the region cannot hold a header; [`Error::Misaligned`] if it
/// does not start on a 128-byte boundary.
#[cfg(not(loom))]
pub(crate) fn header_of(region: &Region) -> Result<&Header, Error> {
    check_region(region, HEADER_SIZE)?;
    // SAFETY: check_region verified at least HEADER_SIZE bytes starting 128-aligned, alive
    // for the borrow; Header consists only of atomics, for which every bit pattern is valid
    // and concurrent access by other processes is sound.
    Ok(unsafe { region.as_ptr().cast::<Header>().as_ref() })
}

/// Checks `region` holds `need >= HEADER_SIZE` bytes and starts 128-aligned.
#[cfg(not(loom))]
fn check_region(region: &Region, need: usize) -> Result<(), Error> {
    let need = need.max(HEADER_SIZE);
    if region.len() < need {
        return Err(Error::RegionTooSmall {
            len: region.len() as u64,
            need: need as u64,
        });
    }
    let addr = region.as_ptr().as_ptr() as usize;
    if !addr.is_multiple_of(REGION_ALIGN) {
        return Err(Error::Misaligned {
            addr: addr as u64,
            align: REGION_ALIGN as u64,
        });
    }
    Ok(())
}

#[cfg(not(loom))]
impl Mem {
    /// The first `len` bytes of `region` (the ring's whole area, header included).
    ///
    /// # Errors
    ///
    /// As [`header_of`], with `len` as the size needed.
    pub(crate) fn in_region(region: Arc<Region>, len: usize) -> Result<Self, Error> {
        check_region(&region, len)?;
        Ok(Mem {
            base: region.as_ptr(),
            watch: region.watch(),
            region,
            len: len.max(HEADER_SIZE),
        })
    }

    /// The region the ring lives in.
    pub(crate) fn region(&self) -> &Arc<Region> {
        &self.region
    }

    /// The ring's header.
    #[inline(always)]
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: in_region checked the region holds at least HEADER_SIZE bytes from a
        // 128-aligned start, kept alive by self.region; see header_of.
        unsafe { self.base.cast::<Header>().as_ref() }
    }

    /// The location `off` bytes from the start.
    ///
    /// # Safety
    ///
    /// `off <= self.len()`.
    #[inline(always)]
    pub(crate) unsafe fn at(&self, off: usize) -> Loc {
        debug_assert!(off <= self.len);
        // SAFETY: off <= len <= the region's length (caller, in_region).
        let ptr = unsafe { self.base.add(off) };
        Loc { ptr }
    }

    /// The 64-bit atomic word at `at`.
    ///
    /// # Safety
    ///
    /// `at` was made by this memory, lies at or after `HEADER_SIZE`, is 8-aligned relative
    /// to the start, and `at + 8 <= len`; the word is only ever accessed atomically while
    /// the protocol uses it as a control word.
    #[inline(always)]
    pub(crate) unsafe fn word(&self, at: Loc) -> &AtomicU64 {
        // SAFETY: in bounds and 8-aligned (the start is 128-aligned) by the caller's
        // contract; AtomicU64 has the size and alignment of u64 and any bits are valid.
        unsafe { at.ptr.cast::<AtomicU64>().as_ref() }
    }

    /// Copies `dst.len()` elements starting at `at` into `dst`: the one primitive that
    /// moves payload out of the mapping.
    ///
    /// # Safety
    ///
    /// `at` was made by this memory, is aligned for `T`, the elements lie inside it, and the
    /// protocol grants the caller read access to them.
    #[inline(always)]
    pub(crate) unsafe fn copy_out<T: Pod>(&self, at: Loc, dst: &mut [T]) {
        // SAFETY: in bounds and aligned (caller); `dst` is process memory, so the ranges
        // cannot overlap; any bytes are a valid T (Pod). See the module docs on racy access.
        unsafe {
            core::ptr::copy_nonoverlapping(at.ptr.as_ptr().cast::<T>(), dst.as_mut_ptr(), dst.len())
        }
    }

    /// Copies `src` into the elements starting at `at`: the one primitive that moves
    /// payload into the mapping.
    ///
    /// # Safety
    ///
    /// As [`Mem::copy_out`], with write access granted.
    #[inline(always)]
    pub(crate) unsafe fn copy_in<T: Pod>(&self, at: Loc, src: &[T]) {
        // SAFETY: in bounds and aligned (caller); `src` is process memory, so the ranges
        // cannot overlap. A plain copy: a write has nothing to re-read, and it lets the
        // compiler merge consecutive writes into vector stores.
        unsafe {
            core::ptr::copy_nonoverlapping(src.as_ptr(), at.ptr.as_ptr().cast::<T>(), src.len())
        }
    }

    /// [`Mem::copy_out`] of payload that the writer may be overwriting at the same moment,
    /// by protocol (the broadcast ring's seqlock readers): in a mapping the same copy, since
    /// a racing write can only garble bytes the reader then discards after validating (see
    /// the module docs on racy access); the loom twin uses relaxed atomic words instead of
    /// cells, so the model checks the values a racing copy sees, not that it never races.
    ///
    /// # Safety
    ///
    /// As [`Mem::copy_out`], except that read access need not be exclusive of writes.
    #[inline(always)]
    pub(crate) unsafe fn copy_out_racy<T: Pod>(&self, at: Loc, dst: &mut [T]) {
        // SAFETY: forwarded from the caller; a racing write yields garbage bytes, which are
        // a valid `T` (Pod) and are validated before use.
        unsafe { self.copy_out(at, dst) }
    }

    /// [`Mem::copy_in`] of payload that readers may be copying at the same moment, by
    /// protocol (see [`Mem::copy_out_racy`]).
    ///
    /// # Safety
    ///
    /// As [`Mem::copy_in`]: the caller is the only writer of these bytes.
    #[inline(always)]
    pub(crate) unsafe fn copy_in_racy<T: Pod>(&self, at: Loc, src: &[T]) {
        // SAFETY: forwarded from the caller.
        unsafe { self.copy_in(at, src) }
    }

    /// Pointer to `at`, for a zero-copy view the caller bounds itself.
    #[inline(always)]
    pub(crate) fn ptr(at: Loc) -> *mut u8 {
        at.ptr.as_ptr()
    }
}

impl Mem {
    /// [`TryError::Truncated`](crate::TryError::Truncated) if another process truncated
    /// the object under the mapping (the region's SIGBUS guard replaced the missing pages
    /// with zeros): call it after touching the memory and before using what was read or
    /// publishing what was written.
    #[inline(always)]
    pub(crate) fn check_intact(&self) -> Result<(), crate::TryError> {
        #[cfg(not(loom))]
        if self.watch.is_truncated() {
            return Err(crate::TryError::Truncated);
        }
        Ok(())
    }

    /// Checks the memory holds `need` bytes (a ring's area, header included).
    ///
    /// # Errors
    ///
    /// [`Error::RegionTooSmall`] otherwise.
    pub(crate) fn check_holds(&self, need: usize) -> Result<(), crate::error::Error> {
        if self.len < need {
            return Err(crate::error::Error::RegionTooSmall {
                len: self.len as u64,
                need: need as u64,
            });
        }
        Ok(())
    }

    /// Bytes of memory the ring may use (header included).
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Reads one `T` at `at`: [`Mem::copy_out`] of one element.
    ///
    /// # Safety
    ///
    /// As [`Mem::copy_out`] for one element.
    #[inline(always)]
    pub(crate) unsafe fn read<T: Pod>(&self, at: Loc) -> T {
        let mut v = T::zeroed();
        // SAFETY: forwarded from the caller.
        unsafe { self.copy_out(at, core::slice::from_mut(&mut v)) };
        v
    }

    /// Writes one `T` at `at`: [`Mem::copy_in`] of one element.
    ///
    /// # Safety
    ///
    /// As [`Mem::copy_in`] for one element.
    #[inline(always)]
    pub(crate) unsafe fn write<T: Pod>(&self, at: Loc, value: T) {
        // SAFETY: forwarded from the caller.
        unsafe { self.copy_in(at, core::slice::from_ref(&value)) }
    }
}
