//! The byte ring's view of its memory: the header and a data area of `cap` bytes.

use super::*;

/// The byte ring's view of its memory ([`crate::mem::Mem`]): the header and the data area
/// of `cap` bytes after it.
///
/// Invariant: the memory holds `HEADER_SIZE + cap` bytes (checked in [`ByteStorage::over`]),
/// so any data offset masked with `cap - 1` addresses a byte of the area.
pub(crate) struct ByteStorage {
    mem: Mem,
    /// Data area size in bytes, a power of two.
    pub(super) cap: usize,
    pub(super) max_message: usize,
}

impl ByteStorage {
    #[cfg(not(loom))]
    pub(super) fn in_region(
        region: Arc<Region>,
        cap: usize,
        max_message: usize,
    ) -> Result<Self, Error> {
        Self::over(Mem::in_region(region, HEADER_SIZE + cap)?, cap, max_message)
    }

    #[cfg(loom)]
    pub(super) fn on_heap(cap: usize, max_message: usize) -> Result<Self, Error> {
        Self::over(Mem::on_heap(HEADER_SIZE + cap), cap, max_message)
    }

    fn over(mem: Mem, cap: usize, max_message: usize) -> Result<Self, Error> {
        if !cap.is_power_of_two() || cap < 8 {
            return Err(Error::BadByteCapacity {
                capacity: cap as u64,
                reason: "the data area must be a power of two of at least 8 bytes",
            });
        }
        mem.check_holds(HEADER_SIZE + cap)?;
        Ok(ByteStorage {
            mem,
            cap,
            max_message,
        })
    }

    #[cfg(not(loom))]
    pub(super) fn region(&self) -> &Arc<Region> {
        self.mem.region()
    }

    /// See [`Mem::check_intact`](crate::mem::Mem::check_intact).
    #[inline(always)]
    pub(crate) fn check_intact(&self) -> Result<(), crate::TryError> {
        self.mem.check_intact()
    }

    #[inline]
    pub(super) fn header(&self) -> &Header {
        self.mem.header()
    }

    /// Data-area byte `offset & (cap - 1)` (callers pass offsets of at most `cap`; `cap`
    /// itself only for zero-length accesses at the very end).
    #[inline]
    fn at(&self, offset: usize) -> Loc {
        debug_assert!(offset <= self.cap);
        // SAFETY: the masked offset is below cap, and HEADER_SIZE + cap bytes exist (over).
        unsafe { self.mem.at(HEADER_SIZE + (offset & (self.cap - 1))) }
    }

    /// Pointer to data-area byte `offset & (cap - 1)`, for zero-copy views.
    #[cfg(not(loom))]
    #[inline]
    pub(super) fn data(&self, offset: usize) -> *mut u8 {
        Mem::ptr(self.at(offset))
    }

    /// The record header word at data offset `offset` (8-aligned, below `cap`).
    #[inline]
    pub(super) fn word(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: `at` keeps the address inside the area; `offset & !7` is 8-aligned and the
        // area starts HEADER_SIZE (a multiple of 8) bytes in; record header words are only
        // accessed atomically while they are headers.
        unsafe { self.mem.word(self.at(offset & !7)) }
    }

    /// Copies `src` to data offset `offset`.
    ///
    /// # Safety
    ///
    /// `offset + src.len() <= cap`, and the protocol grants the caller those bytes.
    #[inline]
    pub(super) unsafe fn write(&self, offset: usize, src: &[u8]) {
        debug_assert!(offset + src.len() <= self.cap);
        if src.is_empty() {
            return;
        }
        // SAFETY: in bounds by the caller's contract (the range does not wrap: offset + len
        // <= cap); write access granted (caller).
        unsafe { self.mem.copy_in(self.at(offset), src) }
    }

    /// Copies data bytes at `offset` into `dst`.
    ///
    /// # Safety
    ///
    /// `offset + dst.len() <= cap`, and the protocol grants the caller those bytes.
    #[inline]
    pub(super) unsafe fn read(&self, offset: usize, dst: &mut [u8]) {
        debug_assert!(offset + dst.len() <= self.cap);
        if dst.is_empty() {
            return;
        }
        // SAFETY: as in write, with read access granted.
        unsafe { self.mem.copy_out(self.at(offset), dst) }
    }
}
