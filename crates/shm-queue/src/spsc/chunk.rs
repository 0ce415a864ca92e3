//! Zero-copy batches: [`WriteChunk`] (slots reserved by the producer, written in place, then
//! committed at once) and [`ReadChunk`] (ready elements read in place, then released at once).

use super::*;

/// Slots reserved by [`Producer::write_chunk`], written in place and then committed.
///
/// Slots are reached by index, never through a Rust reference, because the memory is
/// shared with another process. Indices count from the first reserved slot; the chunk may
/// span several blocks and wrap around the end of the ring.
#[must_use = "dropping a claim or chunk without committing abandons it"]
pub struct WriteChunk<'a, T: Pod> {
    pub(super) producer: &'a mut Producer<T>,
    pub(super) len: usize,
}

impl<T: Pod> fmt::Debug for WriteChunk<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteChunk")
            .field("start", &self.producer.tail)
            .field("len", &self.len)
            .finish()
    }
}

impl<T: Pod> WriteChunk<'_, T> {
    /// Number of reserved slots.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` if no slot was reserved.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes slot `i` of the chunk.
    ///
    /// # Errors
    ///
    /// [`TryError::OutOfRange`] if `i >= len()`.
    #[inline]
    pub fn set(&mut self, i: usize, value: T) -> Result<(), TryError> {
        if i >= self.len {
            return Err(TryError::OutOfRange {
                index: i,
                len: self.len,
            });
        }
        let p = &*self.producer;
        let c = p.cursor.offset(i, &p.geom);
        // SAFETY: c.index < elems_per_block (Cursor::offset), the block is the storage's
        // own; the slot is one of the chunk's reserved free slots.
        unsafe { p.storage.write_in(p.storage.block(c.block), c.index, value) };
        Ok(())
    }

    /// Copies `src` into slots `offset .. offset + src.len()`.
    ///
    /// # Errors
    ///
    /// [`TryError::OutOfRange`] if that range goes past the end of the chunk.
    #[inline]
    pub fn copy_from_slice(&mut self, offset: usize, src: &[T]) -> Result<(), TryError> {
        let end = offset.saturating_add(src.len());
        if end > self.len {
            return Err(TryError::OutOfRange {
                index: end,
                len: self.len,
            });
        }
        let p = &*self.producer;
        let storage = &*p.storage;
        runs(
            p.cursor.offset(offset, &p.geom),
            src.len(),
            &p.geom,
            |block, index, range| {
                // SAFETY: the run lies in one block (runs) and within the reserved slots.
                unsafe { storage.write_run_in(storage.block(block), index, &src[range]) }
            },
        );
        Ok(())
    }

    /// Writes items from `iter` into the slots in order until either runs out; returns how
    /// many were written.
    #[inline(always)]
    pub fn fill_from_iter(&mut self, iter: impl IntoIterator<Item = T>) -> usize {
        let p = &*self.producer;
        let storage = &*p.storage;
        let epb = p.geom.elems_per_block;
        let mask = p.geom.block_count - 1;
        let (mut block, mut blk, mut index) = (p.cursor.block, p.blk, p.cursor.index);
        // The chunk's run in this block ends at `run_end`; `after` slots follow it. One
        // bound test per slot, and no item is taken from `iter` without a slot for it.
        let run = epb.saturating_sub(index).min(self.len);
        let (mut run_end, mut after) = (index + run, self.len - run);
        let mut iter = iter.into_iter();
        let mut n = 0;
        loop {
            if index == run_end {
                if after == 0 {
                    break;
                }
                block = (block + 1) & mask;
                blk = storage.block(block);
                let run = epb.min(after);
                (index, run_end, after) = (0, run, after - run);
            }
            let Some(value) = iter.next() else {
                break;
            };
            // SAFETY: index < run_end <= elems_per_block, `blk` is the storage's block
            // `block`, and the slot is one of the chunk's reserved free slots (n < len).
            unsafe { storage.write_in(blk, index, value) };
            index += 1;
            n += 1;
        }
        n
    }

    /// Publishes the first `k` slots to the consumer; the rest stay free.
    ///
    /// # Errors
    ///
    /// [`TryError::OutOfRange`] if `k > len()`; nothing is published then.
    #[inline(always)]
    pub fn commit(self, k: usize) -> Result<(), TryError> {
        if k > self.len {
            return Err(TryError::OutOfRange {
                index: k,
                len: self.len,
            });
        }
        if k > 0 {
            self.producer.publish(k);
        }
        // Written into the zero pages of a truncated object: not delivered.
        self.producer.storage.check_intact()
    }

    /// Publishes every slot of the chunk.
    #[inline(always)]
    pub fn commit_all(self) {
        if self.len > 0 {
            self.producer.publish(self.len);
        }
    }
}

/// Ready elements given by [`Consumer::read_chunk`], read in place and then committed.
///
/// Elements are handed out as copies, never as references, because the memory is shared with
/// another process: once you hold a value it cannot change under you. Indices count from the
/// first ready element; the chunk may span several blocks and wrap around the end.
#[must_use = "the slots stay held until the guard is released or dropped"]
pub struct ReadChunk<'a, T: Pod> {
    pub(super) consumer: &'a mut Consumer<T>,
    pub(super) len: usize,
}

impl<T: Pod> fmt::Debug for ReadChunk<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadChunk")
            .field("start", &self.consumer.head)
            .field("len", &self.len)
            .finish()
    }
}

impl<T: Pod> ReadChunk<'_, T> {
    /// Number of elements in the chunk.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` if the chunk holds no element.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A copy of element `i`, or `None` if `i >= len()`.
    #[inline(always)]
    pub fn get(&self, i: usize) -> Option<T> {
        if i >= self.len {
            return None;
        }
        let c = &*self.consumer;
        let at = c.cursor.offset(i, &c.geom);
        // SAFETY: at.index < elems_per_block (Cursor::offset), the block is the storage's
        // own; the element is ready and not released (i < len <= ready).
        Some(unsafe { c.storage.read_in(c.storage.block(at.block), at.index) })
    }

    /// Copies elements `offset .. offset + dst.len()` into `dst`.
    ///
    /// # Errors
    ///
    /// [`TryError::OutOfRange`] if that range goes past the end of the chunk.
    #[inline]
    pub fn copy_to_slice(&self, offset: usize, dst: &mut [T]) -> Result<(), TryError> {
        let end = offset.saturating_add(dst.len());
        if end > self.len {
            return Err(TryError::OutOfRange {
                index: end,
                len: self.len,
            });
        }
        let c = &*self.consumer;
        let storage = &*c.storage;
        runs(
            c.cursor.offset(offset, &c.geom),
            dst.len(),
            &c.geom,
            |block, index, range| {
                // SAFETY: the run lies in one block (runs), within the chunk's ready elements.
                unsafe { storage.read_run_in(storage.block(block), index, &mut dst[range]) }
            },
        );
        Ok(())
    }

    /// The elements in order, as copies.
    #[inline(always)]
    pub fn iter(&self) -> ChunkIter<'_, T> {
        let c = &*self.consumer;
        let epb = c.geom.elems_per_block;
        let index = c.cursor.index;
        // cursor.index < elems_per_block always (Cursor's invariant).
        let run = epb.saturating_sub(index).min(self.len);
        ChunkIter {
            storage: &c.storage,
            blk: c.blk,
            block: c.cursor.block,
            index,
            run_end: index + run,
            after: self.len - run,
            epb,
            mask: c.geom.block_count - 1,
        }
    }

    /// Consumes the first `k` elements, freeing their slots; the rest stay in the ring.
    ///
    /// # Errors
    ///
    /// [`TryError::OutOfRange`] if `k > len()`; nothing is consumed then.
    #[inline(always)]
    pub fn commit(self, k: usize) -> Result<(), TryError> {
        if k > self.len {
            return Err(TryError::OutOfRange {
                index: k,
                len: self.len,
            });
        }
        if k > 0 {
            self.consumer.advance(k);
        }
        // The elements read from this chunk were zeros, not data, if the object was
        // truncated meanwhile.
        self.consumer.storage.check_intact()
    }

    /// Consumes every element of the chunk.
    #[inline(always)]
    pub fn commit_all(self) {
        if self.len > 0 {
            self.consumer.advance(self.len);
        }
    }
}

impl<'c, T: Pod> IntoIterator for &'c ReadChunk<'_, T> {
    type Item = T;
    type IntoIter = ChunkIter<'c, T>;

    #[inline(always)]
    fn into_iter(self) -> ChunkIter<'c, T> {
        self.iter()
    }
}

/// Iterator over copies of a [`ReadChunk`]'s elements.
///
/// It walks the chunk one block's run at a time, so each element costs one bound test.
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct ChunkIter<'c, T: Pod> {
    storage: &'c Storage<T>,
    /// The block `block`.
    blk: Block,
    block: usize,
    /// Next element of `blk` to yield.
    index: usize,
    /// Where the chunk's run in `blk` ends (at most elems_per_block).
    run_end: usize,
    /// Elements of the chunk after this run.
    after: usize,
    epb: usize,
    /// block_count - 1.
    mask: usize,
}

impl<T: Pod> fmt::Debug for ChunkIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkIter")
            .field("remaining", &self.len())
            .finish()
    }
}

impl<T: Pod> ChunkIter<'_, T> {
    /// Moves to the start of the next block's run (`after > 0`).
    #[inline]
    fn next_run(&mut self) {
        self.block = (self.block + 1) & self.mask;
        self.blk = self.storage.block(self.block);
        let run = self.epb.min(self.after);
        self.index = 0;
        self.run_end = run;
        self.after -= run;
    }
}

impl<T: Pod> Iterator for ChunkIter<'_, T> {
    type Item = T;

    #[inline(always)]
    fn next(&mut self) -> Option<T> {
        if self.index == self.run_end {
            if self.after == 0 {
                return None;
            }
            self.next_run();
        }
        // SAFETY: `blk` is the storage's block `block`, index < run_end <= elems_per_block;
        // the element is one of the chunk's ready elements.
        let value = unsafe { self.storage.read_in(self.blk, self.index) };
        self.index += 1;
        Some(value)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.run_end - self.index + self.after;
        (n, Some(n))
    }
}

impl<T: Pod> ExactSizeIterator for ChunkIter<'_, T> {}
