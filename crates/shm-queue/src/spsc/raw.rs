//! Whole elements as bytes, for rings of [`Raw`] elements (whose size is known only at run
//! time): the producer writes and the consumer reads runs of slots exactly as the typed
//! slice calls do, through the same position protocol (`free`/`publish`, `refresh`/
//! `advance`); only the copy differs.

use super::*;
use crate::element::Raw;

/// Elements in `len` bytes of `size`-byte elements, if `len` is a whole number of them.
#[inline]
pub(crate) fn whole_elements(len: usize, size: usize) -> Result<usize, TryError> {
    if size == 0 || !len.is_multiple_of(size) {
        return Err(TryError::NotWholeElements {
            len,
            elem_size: size,
        });
    }
    Ok(len / size)
}

/// How many `size`-byte elements fit in a receive buffer of `len` bytes (at least one).
#[inline]
pub(crate) fn room_for(len: usize, size: usize) -> Result<usize, TryError> {
    match len.checked_div(size) {
        Some(n) if n > 0 => Ok(n),
        _ => Err(TryError::NotWholeElements {
            len,
            elem_size: size,
        }),
    }
}

impl Producer<Raw> {
    /// Bytes per element.
    pub fn element_size(&self) -> usize {
        self.storage.elem_size()
    }

    /// Pushes as many whole elements from the front of `src` as there is room for,
    /// published with one position; returns how many elements that was (0 if full).
    ///
    /// # Errors
    ///
    /// [`TryError::NotWholeElements`] if `src.len()` is not a multiple of the element size
    /// (nothing pushed); [`TryError::Corrupted`] if the consumer's `head` is impossible.
    #[must_use = "the call may do only part of the work: check how many it did"]
    pub fn push_partial_bytes(&mut self, src: &[u8]) -> Result<usize, TryError> {
        let size = self.storage.elem_size();
        let want = whole_elements(src.len(), size)?;
        let n = self.free(want)?.min(want);
        if n == 0 {
            return Ok(0);
        }
        let storage = &*self.storage;
        runs(self.cursor, n, &self.geom, |block, index, range| {
            let bytes = &src[range.start * size..range.end * size];
            // SAFETY: the run lies in one block (runs) and is whole elements; the n slots
            // after tail are free.
            unsafe { storage.write_bytes_in(storage.block(block), index, bytes) }
        });
        self.publish(n);
        self.storage.check_intact()?;
        Ok(n)
    }

    /// Pushes every element of `src`, published with one position, or nothing.
    ///
    /// # Errors
    ///
    /// [`TryError::Full`] (in elements) if they do not all fit; otherwise as
    /// [`Producer::push_partial_bytes`].
    pub fn push_entire_bytes(&mut self, src: &[u8]) -> Result<(), TryError> {
        let want = whole_elements(src.len(), self.storage.elem_size())?;
        let free = self.free(want)?;
        if free < want {
            return Err(TryError::Full {
                requested: want,
                available: free,
            });
        }
        let pushed = self.push_partial_bytes(src)?;
        debug_assert_eq!(pushed, want);
        Ok(())
    }
}

impl Consumer<Raw> {
    /// Bytes per element.
    pub fn element_size(&self) -> usize {
        self.storage.elem_size()
    }

    /// Pops as many ready elements as fit whole in `dst` into its front; returns how many
    /// elements (0 if none is ready). Bytes of `dst` past them are left as they were.
    ///
    /// # Errors
    ///
    /// [`TryError::NotWholeElements`] if `dst` is shorter than one element;
    /// [`TryError::Corrupted`] if a published position is impossible.
    #[must_use = "the call may do only part of the work: check how many it did"]
    pub fn pop_partial_into(&mut self, dst: &mut [u8]) -> Result<usize, TryError> {
        let size = self.storage.elem_size();
        let max = room_for(dst.len(), size)?;
        let n = self.refresh(max)?.min(max);
        if n == 0 {
            return Ok(0);
        }
        let storage = &*self.storage;
        runs(self.cursor, n, &self.geom, |block, index, range| {
            let bytes = &mut dst[range.start * size..range.end * size];
            // SAFETY: the run lies in one block (runs), below tail_cache (ready) and not yet
            // released to the producer.
            unsafe { storage.read_bytes_in(storage.block(block), index, bytes) }
        });
        self.advance(n);
        self.storage.check_intact()?;
        Ok(n)
    }
}

crate::wait::blocking::raw_blocking!();
