//! Whole elements as bytes, for MPMC rings of [`Raw`] elements (whose size is known only at
//! run time): the same claim, publish and release protocol as the typed calls
//! (`push_run_with`, `pop_run_with`); only the copy differs.

use super::*;
use crate::element::Raw;
use crate::spsc::{room_for, whole_elements};

impl Producer<Raw> {
    /// Bytes per element.
    pub fn element_size(&self) -> usize {
        self.h.mem.elem_size()
    }

    /// Pushes whole elements from the front of `src`, as many as the run of free slots at
    /// the tail holds (claimed with one compare-and-swap); returns how many elements.
    ///
    /// # Errors
    ///
    /// [`TryError::NotWholeElements`] if `src.len()` is not a multiple of the element size
    /// (nothing pushed); otherwise as [`Producer::push_partial_slice`].
    #[must_use = "the call may do only part of the work: check how many it did"]
    pub fn push_partial_bytes(&mut self, src: &[u8]) -> Result<usize, TryError> {
        let size = self.element_size();
        let len = whole_elements(src.len(), size)?;
        self.push_run_with(len, |m, p, j| {
            // SAFETY: push_run_with claimed `p` after seeing its slot free with Acquire, and
            // j < len, so the bytes are one whole element of `src`.
            unsafe { m.write_bytes(p, &src[j * size..(j + 1) * size]) }
        })
    }
}

impl Consumer<Raw> {
    /// Bytes per element.
    pub fn element_size(&self) -> usize {
        self.h.mem.elem_size()
    }

    /// Pops as many published elements as fit whole in `dst` (the run at the head, claimed
    /// with one compare-and-swap) into its front; returns how many elements. Bytes of `dst`
    /// past them may have been written.
    ///
    /// # Errors
    ///
    /// [`TryError::NotWholeElements`] if `dst` is shorter than one element; otherwise as
    /// [`Consumer::pop_partial_slice`].
    #[must_use = "the call may do only part of the work: check how many it did"]
    pub fn pop_partial_into(&mut self, dst: &mut [u8]) -> Result<usize, TryError> {
        let size = self.element_size();
        let max = room_for(dst.len(), size)?;
        self.pop_run_with(max, |m, p, n| {
            // SAFETY: pop_run_with claimed `p` after seeing it published with Acquire; n <
            // max, so the bytes are one whole element of `dst`.
            unsafe { m.read_bytes(p, &mut dst[n * size..(n + 1) * size]) }
        })
    }
}

crate::wait::blocking::raw_blocking!();
