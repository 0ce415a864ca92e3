//! The loom twin of [`Mem`](super::Mem): the same accessors over heap memory, so the ring
//! code above runs unchanged under loom.
//!
//! The header is a boxed [`Header`]; the area after it is a table of 8-byte [`Word`]s. A
//! word is used either as a control word (its loom atomic) or as payload (its loom cell); the
//! ring protocol decides which, as it does for the bytes of a mapping. Payload copies walk
//! the cells they cover, so loom reports any payload access the protocol did not order.
//! Granularity is the word: two elements smaller than 8 bytes in one word would look like a
//! race, so the models use 8-byte elements (every loom test does).

use bytemuck::Pod;

use super::{Loc, Mem};
use crate::header::{Header, HEADER_SIZE};
use crate::sync::{AtomicU64, PayloadCell};

/// One 8-byte word of the modelled area.
pub(super) struct Word {
    atom: AtomicU64,
    cell: PayloadCell<[u8; 8]>,
}

impl Mem {
    /// A zeroed area of `len` bytes (header included) in heap memory, for loom models.
    pub(crate) fn on_heap(len: usize) -> Self {
        let len = len.max(HEADER_SIZE);
        let words = (HEADER_SIZE..len)
            .step_by(8)
            .map(|_| Word {
                atom: AtomicU64::new(0),
                cell: PayloadCell::new([0; 8]),
            })
            .collect();
        Mem {
            header: Box::new(Header::new_zeroed()),
            words,
            len,
        }
    }

    /// The ring's header.
    #[inline]
    pub(crate) fn header(&self) -> &Header {
        &self.header
    }

    /// As the mapped `at`.
    ///
    /// # Safety
    ///
    /// `off <= self.len()`.
    #[inline]
    pub(crate) unsafe fn at(&self, off: usize) -> Loc {
        assert!(off <= self.len);
        Loc { off }
    }

    fn slot(&self, off: usize) -> &Word {
        &self.words[(off - HEADER_SIZE) / 8]
    }

    /// As the mapped `word`.
    ///
    /// # Safety
    ///
    /// As the mapped `word` (checked here with assertions).
    #[inline]
    pub(crate) unsafe fn word(&self, at: Loc) -> &AtomicU64 {
        assert_eq!(at.off % 8, 0, "control words are 8-aligned");
        &self.slot(at.off).atom
    }

    /// As the mapped `copy_out`.
    ///
    /// # Safety
    ///
    /// As the mapped `copy_out`; loom checks the protocol ordered the access.
    pub(crate) unsafe fn copy_out<T: Pod>(&self, at: Loc, dst: &mut [T]) {
        let dst: &mut [u8] = bytemuck::cast_slice_mut(dst);
        let mut done = 0;
        while done < dst.len() {
            let off = at.off + done;
            let (start, n) = (off % 8, (8 - off % 8).min(dst.len() - done));
            let out = &mut dst[done..done + n];
            // SAFETY: loom checks that the protocol ordered this read after the last write.
            self.slot(off)
                .cell
                .with(|p| out.copy_from_slice(unsafe { &(&*p)[start..start + n] }));
            done += n;
        }
    }

    /// As the mapped `copy_in`.
    ///
    /// # Safety
    ///
    /// As the mapped `copy_in`; loom checks no other access races with it.
    pub(crate) unsafe fn copy_in<T: Pod>(&self, at: Loc, src: &[T]) {
        let src: &[u8] = bytemuck::cast_slice(src);
        let mut done = 0;
        while done < src.len() {
            let off = at.off + done;
            let (start, n) = (off % 8, (8 - off % 8).min(src.len() - done));
            let chunk = &src[done..done + n];
            // SAFETY: loom checks that no other access to the word races with this one.
            self.slot(off)
                .cell
                .with_mut(|p| unsafe { (&mut *p)[start..start + n].copy_from_slice(chunk) });
            done += n;
        }
    }

    /// As the mapped `copy_out_racy`: word by word through the words' relaxed atomics, so a
    /// racing copy is allowed and the model checks what it reads (a partial word is taken
    /// from one load of the whole word).
    ///
    /// # Safety
    ///
    /// As the mapped `copy_out_racy`.
    pub(crate) unsafe fn copy_out_racy<T: Pod>(&self, at: Loc, dst: &mut [T]) {
        let dst: &mut [u8] = bytemuck::cast_slice_mut(dst);
        let mut done = 0;
        while done < dst.len() {
            let off = at.off + done;
            let (start, n) = (off % 8, (8 - off % 8).min(dst.len() - done));
            let w = self
                .slot(off)
                .atom
                .load(crate::sync::Ordering::Relaxed)
                .to_ne_bytes();
            dst[done..done + n].copy_from_slice(&w[start..start + n]);
            done += n;
        }
    }

    /// As the mapped `copy_in_racy` (see [`Mem::copy_out_racy`]); a partial word is a load
    /// and a store of the whole word (the caller is the slot's only writer).
    ///
    /// # Safety
    ///
    /// As the mapped `copy_in_racy`.
    pub(crate) unsafe fn copy_in_racy<T: Pod>(&self, at: Loc, src: &[T]) {
        let src: &[u8] = bytemuck::cast_slice(src);
        let mut done = 0;
        while done < src.len() {
            let off = at.off + done;
            let (start, n) = (off % 8, (8 - off % 8).min(src.len() - done));
            let atom = &self.slot(off).atom;
            let mut w = if n == 8 {
                [0u8; 8]
            } else {
                atom.load(crate::sync::Ordering::Relaxed).to_ne_bytes()
            };
            w[start..start + n].copy_from_slice(&src[done..done + n]);
            atom.store(u64::from_ne_bytes(w), crate::sync::Ordering::Relaxed);
            done += n;
        }
    }
}
