//! [`Consumer`]: the reading side of an SPSC ring, one element, a slice or a chunk at a time.

use super::*;

/// The reading side of a ring; exactly one exists per ring at a time.
///
/// Made by [`Ring::consumer`]; frees its claim when dropped.
pub struct Consumer<T: Element> {
    pub(super) storage: Arc<Storage<T>>,
    pub(super) geom: Geometry,
    /// Our position: everything before it is consumed.
    pub(super) head: u64,
    /// Where `head` lives.
    pub(super) cursor: Cursor,
    /// The block of `cursor`, located once per block.
    pub(super) blk: Block,
    /// The highest published position seen; everything below it is ready to read.
    pub(super) tail_cache: u64,
    pub(super) capacity: u64,
    pub(super) token: u64,
    pub(super) strategy: WaitStrategy,
    /// Whether this handle is counted in the header's `consumer_sleepers`.
    pub(super) sleeper: crate::wait::Sleeper,
}

impl<T: Element> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("head", &self.head)
            .field("tail_cache", &self.tail_cache)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl<T: Element> Drop for Consumer<T> {
    fn drop(&mut self) {
        let header = self.storage.header();
        header.data_signal().unregister(&mut self.sleeper);
        claim::release(&header.control.consumer_claim, self.token);
    }
}

impl<T: Element> Consumer<T> {
    /// Checks a published position read from shared memory: at most `head + capacity`.
    #[inline]
    fn check(&self, p: u64, what: Word) -> Result<u64, TryError> {
        let max = self.head + self.capacity;
        if p > max {
            return Err(corrupted(what, p));
        }
        Ok(p)
    }

    /// Ready elements, learning more from the block words if fewer than `want` are known.
    #[inline(always)]
    pub(super) fn refresh(&mut self, want: usize) -> Result<usize, TryError> {
        let avail = (self.tail_cache - self.head) as usize;
        if avail >= want {
            return Ok(avail);
        }
        self.tail_cache = self.learn(self.tail_cache, want)?;
        Ok((self.tail_cache - self.head) as usize)
    }

    /// The highest published position known from `known` on: loads `P` of the block holding
    /// position `known` (the first not known to be ready) and follows on to the block of each
    /// new value until `want` elements after `head` are known or a word brings nothing new.
    /// Every line it touches is one the reader needs for the payload anyway.
    #[inline(always)]
    fn learn(&self, mut known: u64, want: usize) -> Result<u64, TryError> {
        let mut at = self.cursor.offset((known - self.head) as usize, &self.geom);
        for _ in 0..=self.geom.block_count {
            let p = self.storage.word(at.block).load(Ordering::Acquire);
            if p <= known {
                break;
            }
            let p = self.check(p, Word::BlockPosition)?;
            let gained = (p - known) as usize;
            known = p;
            if (known - self.head) as usize >= want {
                break;
            }
            at = at.offset(gained, &self.geom);
        }
        Ok(known)
    }

    /// Loads `P` of the current block: `true` if it shows elements beyond `head` (cached in
    /// `tail_cache`). Called only when `head == tail_cache`.
    #[inline]
    fn poll(&mut self) -> Result<bool, TryError> {
        // SAFETY: `blk` is the storage's block of `cursor`.
        let p = unsafe { self.storage.word_in(self.blk) }.load(Ordering::Acquire);
        if p <= self.tail_cache {
            return Ok(false);
        }
        self.tail_cache = self.check(p, Word::BlockPosition)?;
        Ok(true)
    }

    /// Consumes `n <= ready` elements: one `Release` store of the new `head`.
    #[inline(always)]
    pub(super) fn advance(&mut self, n: usize) {
        self.head += n as u64;
        self.cursor = self.cursor.offset(n, &self.geom);
        self.blk = self.storage.block(self.cursor.block);
        self.publish_head();
    }

    /// Stores `head` with `Release`, handing the slots before it back to the producer, and
    /// wakes a producer sleeping for space.
    #[inline(always)]
    fn publish_head(&self) {
        let header = self.storage.header();
        header.consumer.pos.store(self.head, Ordering::Release);
        header.notify_space();
    }

    /// Arms the readiness descriptor the producer holds (see
    /// [`crate::wait::readiness_fd`]). Returns `true` if elements are already ready: then
    /// do not wait for the descriptor, pop them now. Otherwise the next push signals it.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupted`] if a published position in shared memory is impossible.
    pub fn arm_readiness(&mut self) -> Result<bool, Error> {
        self.storage.header().data_signal().arm();
        Ok(self.refresh(1)? > 0)
    }

    /// Pops one element.
    ///
    /// # Errors
    ///
    /// [`TryError::Empty`] if nothing is ready; [`TryError::Corrupted`] if a published position in
    /// shared memory is impossible.
    ///
    /// ```
    /// # use shm_queue::{spsc::Ring, TryError};
    /// # let region = shm_region::Region::anonymous(4096)?;
    /// let (mut tx, mut rx) = Ring::<u64>::create(region, 16)?.split()?;
    /// assert!(matches!(rx.try_pop(), Err(TryError::Empty { .. })));
    /// tx.try_push(42)?;
    /// assert_eq!(rx.peek()?, 42);
    /// assert_eq!(rx.try_pop()?, 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline(always)]
    pub fn try_pop(&mut self) -> Result<T, TryError>
    where
        T: Pod,
    {
        if self.head == self.tail_cache && !self.poll()? {
            return Err(TryError::Empty {
                requested: 1,
                available: 0,
            });
        }
        let index = self.cursor.index;
        // SAFETY: `blk` is the storage's block of `cursor`, index < elems_per_block (Cursor
        // invariant); head < tail_cache, a published position we acquired, so the slot was
        // written and the producer cannot reuse it until we store a head beyond it.
        let value = unsafe { self.storage.read_in(self.blk, index) };
        self.head += 1;
        self.publish_head();
        self.cursor.index = index + 1;
        if self.cursor.index == self.geom.elems_per_block {
            self.cursor.index = 0;
            self.cursor.block = (self.cursor.block + 1) & (self.geom.block_count - 1);
            self.blk = self.storage.block(self.cursor.block);
        }
        // Last, so the check costs no reload of the handle's fields: a value read from the
        // zero pages of a truncated object is dropped here, never returned.
        self.storage.check_intact()?;
        Ok(value)
    }

    /// The next element, copied, without consuming it.
    ///
    /// # Errors
    ///
    /// As [`Consumer::try_pop`].
    #[inline]
    pub fn peek(&mut self) -> Result<T, TryError>
    where
        T: Pod,
    {
        if self.refresh(1)? == 0 {
            return Err(TryError::Empty {
                requested: 1,
                available: 0,
            });
        }
        // SAFETY: as in try_pop.
        let value = unsafe { self.storage.read_in(self.blk, self.cursor.index) };
        self.storage.check_intact()?;
        Ok(value)
    }

    /// Pops as many elements as are ready, up to `dst.len()`, into `dst`; returns how many.
    /// The slots are freed with one position store.
    ///
    /// # Errors
    ///
    /// [`TryError::Corrupted`] if a published position in shared memory is impossible.
    #[must_use = "the call may do only part of the work: check how many it did"]
    #[inline]
    pub fn pop_partial_slice(&mut self, dst: &mut [T]) -> Result<usize, TryError>
    where
        T: Pod,
    {
        let n = self.refresh(dst.len())?.min(dst.len());
        if n == 0 {
            return Ok(0);
        }
        let storage = &*self.storage;
        runs(self.cursor, n, &self.geom, |block, index, range| {
            // SAFETY: the run lies in one block (runs), below tail_cache (ready) and not yet
            // released to the producer.
            unsafe { storage.read_run_in(storage.block(block), index, &mut dst[range]) }
        });
        self.advance(n);
        self.storage.check_intact()?;
        Ok(n)
    }

    /// Gives in-place access to exactly `n` ready elements, consumed on
    /// [`ReadChunk::commit`]. Dropping the chunk instead leaves them in the ring.
    ///
    /// # Errors
    ///
    /// [`TryError::Empty`] with the number ready if fewer than `n` are; [`TryError::Corrupted`] if a
    /// published position in shared memory is impossible.
    #[inline(always)]
    pub fn read_chunk(&mut self, n: usize) -> Result<ReadChunk<'_, T>, TryError>
    where
        T: Pod,
    {
        let available = self.refresh(n)?;
        if available < n {
            return Err(TryError::Empty {
                requested: n,
                available,
            });
        }
        Ok(ReadChunk {
            consumer: self,
            len: n,
        })
    }

    /// Gives in-place access to the ready elements, at most `max` (possibly none).
    ///
    /// # Errors
    ///
    /// [`TryError::Corrupted`] if a published position in shared memory is impossible.
    #[inline(always)]
    pub fn read_chunk_up_to(&mut self, max: usize) -> Result<ReadChunk<'_, T>, TryError>
    where
        T: Pod,
    {
        let len = self.refresh(max)?.min(max);
        Ok(ReadChunk {
            consumer: self,
            len,
        })
    }

    /// Elements ready to read now: reads the producer's `tail` word, then follows the block
    /// words from there.
    pub fn slots(&self) -> usize {
        let mut tail = self.tail_cache;
        let word = self.storage.header().producer.pos.load(Ordering::Acquire);
        if let Ok(p) = self.check(word, Word::Tail) {
            tail = tail.max(p);
        }
        // The `tail` word lags single pushes by up to a block; the block words have the rest.
        let tail = self.learn(tail, usize::MAX).unwrap_or(tail);
        (tail - self.head) as usize
    }

    /// Elements in the ring, as [`Consumer::slots`].
    pub fn len(&self) -> usize {
        self.slots()
    }

    /// `true` if nothing is ready to read.
    pub fn is_empty(&self) -> bool {
        self.slots() == 0
    }

    /// Capacity in elements.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Elements consumed since the ring was created (the absolute `head` position).
    pub fn position(&self) -> u64 {
        self.head
    }
}

handle_controls!([T: Element] Consumer<T>, Storage<T>, Data, storage, strategy, sleeper);

crate::wait::blocking::typed_blocking!(consumer spsc);
