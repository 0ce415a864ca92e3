//! [`Producer`]: the writing side of an SPSC ring, one element, a slice or a chunk at a time.

use super::*;

/// The writing side of a ring; exactly one exists per ring at a time.
///
/// Made by [`Ring::producer`]; frees its claim when dropped.
pub struct Producer<T: Element> {
    pub(super) storage: Arc<Storage<T>>,
    pub(super) geom: Geometry,
    /// Our position: everything before it is written and published.
    pub(super) tail: u64,
    /// Where `tail` lives.
    pub(super) cursor: Cursor,
    /// The block of `cursor`, located once per block.
    pub(super) blk: Block,
    /// The consumer's `head` as last read; only ever behind the real one.
    pub(super) head_cache: u64,
    pub(super) capacity: u64,
    pub(super) token: u64,
    pub(super) strategy: WaitStrategy,
    /// Whether this handle is counted in the header's `producer_sleepers`.
    pub(super) sleeper: crate::wait::Sleeper,
    /// The consumer's readiness descriptor, if installed.
    pub(super) readiness: ReadinessFd,
}

impl<T: Element> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("tail", &self.tail)
            .field("head_cache", &self.head_cache)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl<T: Element> Drop for Producer<T> {
    fn drop(&mut self) {
        let header = self.storage.header();
        header.space_signal().unregister(&mut self.sleeper);
        claim::release(&header.control.producer_claim, self.token);
    }
}

impl<T: Element> Producer<T> {
    /// Free slots according to the cached `head` (never more than the truth).
    #[inline]
    fn free_cached(&self) -> usize {
        (self.capacity - (self.tail - self.head_cache)) as usize
    }

    /// Loads the consumer's `head` and checks it.
    #[inline]
    fn load_head(&self) -> Result<u64, TryError> {
        let h = self.storage.header().consumer.pos.load(Ordering::Acquire);
        let min = self.tail.saturating_sub(self.capacity);
        if h < min || h > self.tail {
            return Err(corrupted(Word::Head, h));
        }
        Ok(h)
    }

    /// Free slots, reloading `head` if the cache says fewer than `want`.
    #[inline]
    pub(super) fn free(&mut self, want: usize) -> Result<usize, TryError> {
        let free = self.free_cached();
        if free >= want {
            return Ok(free);
        }
        self.head_cache = self.load_head()?;
        Ok(self.free_cached())
    }

    /// Publishes the `n >= 1` elements written after `tail`: one `Release` store of the new
    /// tail into each block they touch, last block first, then into the `tail` word.
    #[inline(always)]
    pub(super) fn publish(&mut self, n: usize) {
        let g = &self.geom;
        let end = self.tail + n as u64;
        let touched = (self.cursor.index + n - 1) / g.elems_per_block + 1;
        for j in (0..touched).rev() {
            self.storage
                .word(self.cursor.block + j)
                .store(end, Ordering::Release);
        }
        self.storage
            .header()
            .producer
            .pos
            .store(end, Ordering::Release);
        self.tail = end;
        self.cursor = self.cursor.offset(n, g);
        self.blk = self.storage.block(self.cursor.block);
        self.readiness
            .fire(self.storage.header().notify_data(self.readiness.is_some()));
    }

    /// Moves on to the next block after filling this one, and records `tail` in the header's
    /// `tail` word (which single pushes update only here, once per block).
    #[inline]
    fn next_block(&mut self) {
        self.cursor.index = 0;
        self.cursor.block = (self.cursor.block + 1) & (self.geom.block_count - 1);
        self.blk = self.storage.block(self.cursor.block);
        self.storage
            .header()
            .producer
            .pos
            .store(self.tail, Ordering::Release);
    }

    /// Pushes one element.
    ///
    /// `T` is `Copy`, so on [`TryError::Full`] the caller still has `value` to retry with.
    ///
    /// # Errors
    ///
    /// [`TryError::Full`] if no slot is free; [`TryError::Corrupted`] if the consumer's `head`
    /// in shared memory is impossible.
    ///
    /// ```
    /// # use shm_queue::{spsc::Ring, TryError};
    /// # let region = shm_region::Region::anonymous(4096)?;
    /// let ring = Ring::<u64>::create(region, 7)?;
    /// let mut tx = ring.producer()?;
    /// for i in 0..7 {
    ///     tx.try_push(i)?;
    /// }
    /// assert!(matches!(tx.try_push(7), Err(TryError::Full { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline(always)]
    pub fn try_push(&mut self, value: T) -> Result<(), TryError>
    where
        T: Pod,
    {
        if self.tail - self.head_cache >= self.capacity && self.free(1)? == 0 {
            return Err(TryError::Full {
                requested: 1,
                available: 0,
            });
        }
        let index = self.cursor.index;
        // SAFETY: `blk` is the storage's block of `cursor` and index < elems_per_block
        // (Cursor invariant); the slot is free: tail < head + capacity, so the consumer has
        // finished with whatever it held.
        unsafe { self.storage.write_in(self.blk, index, value) };
        self.tail += 1;
        // SAFETY: `blk` was made by this storage.
        unsafe { self.storage.word_in(self.blk) }.store(self.tail, Ordering::Release);
        self.cursor.index = index + 1;
        if self.cursor.index == self.geom.elems_per_block {
            self.next_block();
        }
        self.readiness
            .fire(self.storage.header().notify_data(self.readiness.is_some()));
        // Last (no reload of the handle's fields after it): written into the zero pages of
        // a truncated object, the element was not delivered.
        self.storage.check_intact()
    }

    /// Pushes as many elements from the front of `src` as there is room for, published with
    /// one position, and returns how many that was (0 if the ring is full).
    ///
    /// # Errors
    ///
    /// [`TryError::Corrupted`] if the consumer's `head` in shared memory is impossible.
    #[must_use = "the call may do only part of the work: check how many it did"]
    #[inline]
    pub fn push_partial_slice(&mut self, src: &[T]) -> Result<usize, TryError>
    where
        T: Pod,
    {
        let n = self.free(src.len())?.min(src.len());
        if n == 0 {
            return Ok(0);
        }
        let storage = &*self.storage;
        runs(self.cursor, n, &self.geom, |block, index, range| {
            // SAFETY: the run lies in one block (runs); the n slots after tail are free.
            unsafe { storage.write_run_in(storage.block(block), index, &src[range]) }
        });
        self.publish(n);
        self.storage.check_intact()?;
        Ok(n)
    }

    /// Pushes all of `src`, published with one position, or nothing if fewer than
    /// `src.len()` slots are free.
    ///
    /// # Errors
    ///
    /// [`TryError::Full`] with the number of free slots if `src` does not fit (nothing was
    /// pushed); [`TryError::Corrupted`] if the consumer's `head` in shared memory is impossible.
    ///
    /// # Example
    ///
    /// ```
    /// use shm_queue::{spsc::Ring, TryError};
    /// use shm_region::Region;
    ///
    /// let region = Region::anonymous(Ring::<u64>::required_bytes(7)?)?;
    /// let (mut tx, mut rx) = Ring::<u64>::create(region, 7)?.split()?;
    /// tx.push_entire_slice(&[1, 2, 3])?;
    /// // Five more do not fit in the seven slots: nothing is pushed.
    /// assert!(matches!(tx.push_entire_slice(&[0; 5]), Err(TryError::Full { available: 4, .. })));
    /// let mut out = [0u64; 7];
    /// assert_eq!(rx.pop_partial_slice(&mut out)?, 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn push_entire_slice(&mut self, src: &[T]) -> Result<(), TryError>
    where
        T: Pod,
    {
        let free = self.free(src.len())?;
        if free < src.len() {
            return Err(TryError::Full {
                requested: src.len(),
                available: free,
            });
        }
        let pushed = self.push_partial_slice(src)?;
        debug_assert_eq!(pushed, src.len());
        Ok(())
    }

    /// Reserves exactly `n` free slots to be written in place and then committed at once.
    ///
    /// Nothing is visible to the consumer until [`WriteChunk::commit`]; dropping the chunk
    /// instead abandons it.
    ///
    /// # Errors
    ///
    /// [`TryError::Full`] with the number of free slots if fewer than `n` are free;
    /// [`TryError::Corrupted`] if the consumer's `head` in shared memory is impossible.
    ///
    /// ```
    /// # let region = shm_region::Region::anonymous(4096)?;
    /// let ring = shm_queue::spsc::Ring::<u32>::create(region, 64)?;
    /// let (mut tx, mut rx) = ring.split()?;
    ///
    /// let mut chunk = tx.write_chunk(4)?;
    /// for i in 0..4 {
    ///     chunk.set(i, 10 * i as u32)?;
    /// }
    /// chunk.commit_all();
    ///
    /// let chunk = rx.read_chunk(4)?;
    /// assert_eq!(chunk.iter().collect::<Vec<_>>(), [0, 10, 20, 30]);
    /// chunk.commit_all();
    /// assert!(rx.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline(always)]
    pub fn write_chunk(&mut self, n: usize) -> Result<WriteChunk<'_, T>, TryError>
    where
        T: Pod,
    {
        let available = self.free(n)?;
        if available < n {
            return Err(TryError::Full {
                requested: n,
                available,
            });
        }
        Ok(WriteChunk {
            producer: self,
            len: n,
        })
    }

    /// Reserves as many free slots as there are, up to `max` (possibly none).
    ///
    /// # Errors
    ///
    /// [`TryError::Corrupted`] if the consumer's `head` in shared memory is impossible.
    #[inline(always)]
    pub fn write_chunk_up_to(&mut self, max: usize) -> Result<WriteChunk<'_, T>, TryError>
    where
        T: Pod,
    {
        let len = self.free(max)?.min(max);
        Ok(WriteChunk {
            producer: self,
            len,
        })
    }

    /// Installs (or removes) the consumer's readiness descriptor (see
    /// [`crate::wait::readiness_fd`]): after the consumer arms it, the next publication
    /// writes to it.
    pub fn set_readiness_fd(&mut self, fd: Option<std::os::fd::OwnedFd>) {
        self.readiness.set(fd);
    }

    /// How many times this handle has written to the readiness descriptor: once per arming
    /// it consumed (a consumer that arms and then finds no data waits for exactly that).
    pub fn readiness_signals(&self) -> u64 {
        self.readiness.signals()
    }

    fn head_now(&self) -> u64 {
        self.load_head().unwrap_or(self.head_cache)
    }

    /// Free slots now (reads the consumer's position).
    pub fn slots(&self) -> usize {
        (self.capacity - (self.tail - self.head_now())) as usize
    }

    /// Elements in the ring now, written but not yet consumed (reads the consumer's
    /// position).
    pub fn len(&self) -> usize {
        (self.tail - self.head_now()) as usize
    }

    /// `true` if the consumer has taken everything written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `true` if no slot is free.
    pub fn is_full(&self) -> bool {
        self.slots() == 0
    }

    /// Capacity in elements.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Elements published since the ring was created (the absolute `tail` position).
    pub fn position(&self) -> u64 {
        self.tail
    }
}

handle_controls!([T: Element] Producer<T>, Storage<T>, Space, storage, strategy, sleeper);

crate::wait::blocking::typed_blocking!(producer spsc);
