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
        let (mut c, mut blk) = (p.cursor, p.blk);
        let mut n = 0;
        for value in iter.into_iter().take(self.len) {
            // SAFETY: c walks the reserved slots one by one (n < len), index < elems_per_block,
            // and `blk` is the storage's block of `c`.
            unsafe { storage.write_in(blk, c.index, value) };
            n += 1;
            c.index += 1;
            if c.index == epb {
                c.index = 0;
                c.block = (c.block + 1) & (p.geom.block_count - 1);
                blk = storage.block(c.block);
            }
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
        ChunkIter {
            storage: &self.consumer.storage,
            geom: &self.consumer.geom,
            cursor: self.consumer.cursor,
            blk: self.consumer.blk,
            remaining: self.len,
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
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct ChunkIter<'c, T: Pod> {
    storage: &'c Storage<T>,
    geom: &'c Geometry,
    cursor: Cursor,
    /// The block of `cursor`.
    blk: Block,
    remaining: usize,
}

impl<T: Pod> fmt::Debug for ChunkIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkIter")
            .field("remaining", &self.remaining)
            .finish()
    }
}

impl<T: Pod> Iterator for ChunkIter<'_, T> {
    type Item = T;

    #[inline(always)]
    fn next(&mut self) -> Option<T> {
        if self.remaining == 0 {
            return None;
        }
        // SAFETY: `blk` is the storage's block of `cursor`, index < elems_per_block; the
        // element is one of the chunk's ready elements.
        let value = unsafe { self.storage.read_in(self.blk, self.cursor.index) };
        self.remaining -= 1;
        self.cursor.index += 1;
        if self.cursor.index == self.geom.elems_per_block {
            self.cursor.index = 0;
            self.cursor.block = (self.cursor.block + 1) & (self.geom.block_count - 1);
            self.blk = self.storage.block(self.cursor.block);
        }
        Some(value)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<T: Pod> ExactSizeIterator for ChunkIter<'_, T> {}
