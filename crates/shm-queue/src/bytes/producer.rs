//! [`Producer`]: sends byte messages, copied or written in place through a [`WriteClaim`].

use super::*;

/// The producer side of a [`Ring`]. One per ring; `Send`, not `Clone`.
pub struct Producer {
    pub(super) storage: Arc<ByteStorage>,
    /// Position after the last committed (or padding) record.
    pub(super) tail: u64,
    /// Last `head` loaded from shared memory.
    pub(super) head_cache: u64,
    pub(super) token: u64,
    pub(super) strategy: WaitStrategy,
    /// Whether this handle is counted in the header's `producer_sleepers`.
    pub(super) sleeper: crate::wait::Sleeper,
    /// The consumer's readiness descriptor, if installed.
    pub(super) readiness: ReadinessFd,
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("tail", &self.tail)
            .field("head_cache", &self.head_cache)
            .finish()
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let header = self.storage.header();
        header.space_signal().unregister(&mut self.sleeper);
        claim::release(&header.control.producer_claim, self.token);
    }
}

impl Producer {
    /// Free bytes as far as the cached `head` knows.
    #[inline]
    fn cached_free(&self) -> u64 {
        self.storage.cap as u64 - (self.tail - self.head_cache)
    }

    /// Makes sure `need` bytes are free, reloading the shared `head` if the cache says no.
    #[inline]
    fn ensure_free(&mut self, need: usize, requested: usize) -> Result<(), TryError> {
        if self.cached_free() >= need as u64 {
            return Ok(());
        }
        self.reload_free(need, requested)
    }

    /// [`Producer::ensure_free`] once the cache has run out: reloads `head`.
    #[cold]
    fn reload_free(&mut self, need: usize, requested: usize) -> Result<(), TryError> {
        let head = self.storage.header().consumer.pos.load(Ordering::Acquire);
        let cap = self.storage.cap as u64;
        if head < self.head_cache || head > self.tail {
            return Err(corrupted(Word::Head, head));
        }
        self.head_cache = head;
        let free = cap - (self.tail - head);
        if free >= need as u64 {
            Ok(())
        } else {
            Err(TryError::Full {
                requested,
                available: (free as usize).saturating_sub(RECORD_HEADER * 2),
            })
        }
    }

    /// Reserves room for a message of `len` bytes and returns a claim to write it in place.
    /// Nothing is visible to the consumer until [`WriteClaim::commit`]; dropping the claim
    /// (or [`WriteClaim::abort`]) sends nothing.
    ///
    /// # Errors
    ///
    /// [`TryError::MessageTooLarge`] above [`Ring::max_message`]; [`TryError::Full`] when the
    /// consumer has not freed enough space yet (retry later); [`TryError::Corrupted`] if the
    /// consumer's `head` is impossible.
    #[inline]
    pub fn claim(&mut self, len: usize) -> Result<WriteClaim<'_>, TryError> {
        let max = self.storage.max_message;
        if len > max {
            return Err(TryError::MessageTooLarge { len, max });
        }
        let size = record_size(len);
        let cap = self.storage.cap;
        let offset = (self.tail & (cap as u64 - 1)) as usize;
        let to_end = cap - offset;
        let pad = if size > to_end { to_end } else { 0 };
        self.ensure_free(pad + size + RECORD_HEADER, len)?;
        if pad > 0 {
            let s = &self.storage;
            // Terminator where the padding ends (offset 0), then the padding record itself.
            s.word(0).store(0, Ordering::Relaxed);
            s.word(offset)
                .store(encode(KIND_PADDING, pad - RECORD_HEADER), Ordering::Release);
            self.tail += pad as u64;
            s.header().producer.pos.store(self.tail, Ordering::Release);
        }
        let offset = (self.tail & (cap as u64 - 1)) as usize;
        Ok(WriteClaim {
            producer: self,
            offset,
            len,
        })
    }

    /// Copies `msg` into the ring as one message.
    ///
    /// # Errors
    ///
    /// As [`Producer::claim`].
    #[inline]
    pub fn try_push(&mut self, msg: &[u8]) -> Result<(), TryError> {
        self.try_push_parts(core::slice::from_ref(&msg))
    }

    /// Copies the concatenation of `parts` into the ring as one message (a gathering
    /// write: a message that arrives in pieces is copied once, not joined first).
    ///
    /// # Errors
    ///
    /// As [`Producer::claim`]; [`TryError::MessageTooLarge`] also if the lengths' sum
    /// overflows.
    #[inline]
    pub fn try_push_parts(&mut self, parts: &[&[u8]]) -> Result<(), TryError> {
        let mut c = self.claim(parts_len(parts, self.storage.max_message)?)?;
        c.write_parts(parts)?;
        c.commit();
        // The commit writes the record header and `tail`: reported if that faulted.
        self.storage.check_intact()
    }

    /// Publishes the record of `len` bytes at the current `tail`.
    #[inline]
    fn commit(&mut self, len: usize) {
        let s = &self.storage;
        let cap = s.cap as u64;
        let offset = (self.tail & (cap - 1)) as usize;
        let end = self.tail + record_size(len) as u64;
        // The terminator first: the next header slot reads zero before this record is
        // visible. The Release of the header store orders it (and the payload) first.
        s.word(((end & (cap - 1)) as usize) & !7)
            .store(0, Ordering::Relaxed);
        s.word(offset)
            .store(encode(KIND_MESSAGE, len), Ordering::Release);
        self.tail = end;
        s.header().producer.pos.store(end, Ordering::Release);
        self.readiness
            .fire(s.header().notify_data(self.readiness.is_some()));
    }

    /// Size of the data area in bytes.
    pub fn capacity(&self) -> usize {
        self.storage.cap
    }

    /// The largest message the ring accepts.
    pub fn max_message(&self) -> usize {
        self.storage.max_message
    }

    /// Like [`Producer::claim`], but waits for space as the handle's
    /// [`WaitStrategy`] says, until `deadline` (`None`: no limit).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] at the deadline, [`Error::Closed`] if the ring is closed while
    /// waiting; otherwise as [`Producer::claim`].
    pub fn claim_blocking(
        &mut self,
        len: usize,
        deadline: Option<Instant>,
    ) -> Result<WriteClaim<'_>, Error> {
        let max = self.storage.max_message;
        if len > max {
            return Err(TryError::MessageTooLarge { len, max }.into());
        }
        // Room for the record, a padding record before it and the terminator after it.
        let need = (record_size(len) * 2 + RECORD_HEADER).min(self.storage.cap);
        block_on(self, deadline, "space in the ring", |s| {
            pending(s.ensure_free(need, len))
        })?;
        Ok(self.claim(len)?)
    }

    /// Like [`Producer::try_push`], but waits for space; see
    /// [`Producer::claim_blocking`].
    ///
    /// # Errors
    ///
    /// As [`Producer::claim_blocking`].
    pub fn push_blocking(&mut self, msg: &[u8], deadline: Option<Instant>) -> Result<(), Error> {
        self.push_parts_blocking(core::slice::from_ref(&msg), deadline)
    }

    /// Like [`Producer::try_push_parts`], but waits for space; see
    /// [`Producer::claim_blocking`].
    ///
    /// # Errors
    ///
    /// As [`Producer::claim_blocking`].
    pub fn push_parts_blocking(
        &mut self,
        parts: &[&[u8]],
        deadline: Option<Instant>,
    ) -> Result<(), Error> {
        let mut c = self.claim_blocking(parts_len(parts, self.storage.max_message)?, deadline)?;
        c.write_parts(parts)?;
        c.commit();
        Ok(())
    }

    /// Installs (or removes) the consumer's readiness descriptor (see
    /// [`crate::wait::readiness_fd`]): after the consumer arms it, the next commit writes
    /// to it.
    pub fn set_readiness_fd(&mut self, fd: Option<std::os::fd::OwnedFd>) {
        self.readiness.set(fd);
    }

    /// How many times this handle has written to the readiness descriptor: once per arming
    /// it consumed (a consumer that arms and then finds no data waits for exactly that).
    pub fn readiness_signals(&self) -> u64 {
        self.readiness.signals()
    }

    /// Bytes the consumer has not released yet, as far as this side knows (records,
    /// headers and padding included).
    pub fn used_bytes(&self) -> usize {
        let head = self.storage.header().consumer.pos.load(Ordering::Relaxed);
        self.tail.saturating_sub(head).min(self.storage.cap as u64) as usize
    }

    /// The producer's position: bytes of records and padding written since creation.
    pub fn position(&self) -> u64 {
        self.tail
    }
}

/// The length of the message made of `parts`; a sum that overflows is too large.
#[inline]
fn parts_len(parts: &[&[u8]], max: usize) -> Result<usize, TryError> {
    parts
        .iter()
        .try_fold(0usize, |n, p| n.checked_add(p.len()))
        .ok_or(TryError::MessageTooLarge {
            len: usize::MAX,
            max,
        })
}

/// Room for one message, reserved by [`Producer::claim`]: write it in place, then
/// [`commit`](WriteClaim::commit). Dropping it without committing sends nothing.
#[must_use = "dropping a claim or chunk without committing abandons it"]
pub struct WriteClaim<'a> {
    producer: &'a mut Producer,
    /// Data offset of the record header.
    offset: usize,
    len: usize,
}

impl fmt::Debug for WriteClaim<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteClaim")
            .field("len", &self.len)
            .finish()
    }
}

impl WriteClaim<'_> {
    /// Length of the message being written.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` for a zero-length message.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `src` into the message at byte `offset`.
    ///
    /// # Errors
    ///
    /// [`TryError::OutOfRange`] if `offset + src.len()` exceeds the message length.
    #[inline]
    pub fn write_at(&mut self, offset: usize, src: &[u8]) -> Result<(), TryError> {
        let end = offset.saturating_add(src.len());
        if end > self.len {
            return Err(TryError::OutOfRange {
                index: end,
                len: self.len,
            });
        }
        // SAFETY: the claim reserved offset+8 .. offset+8+len of the area for us (the
        // consumer does not read it until commit), and end <= len keeps us inside it.
        unsafe {
            self.producer
                .storage
                .write(self.offset + RECORD_HEADER + offset, src)
        };
        // Written into zero pages of a truncated object: report it, and the claim (dropped
        // without a commit) publishes nothing.
        self.producer.storage.check_intact()
    }

    /// Copies `parts` one after the other from the message's start.
    ///
    /// # Errors
    ///
    /// [`TryError::OutOfRange`] if they are longer than the message.
    #[inline]
    pub fn write_parts(&mut self, parts: &[&[u8]]) -> Result<(), TryError> {
        let mut at = 0;
        for p in parts {
            self.write_at(at, p)?;
            at += p.len();
        }
        Ok(())
    }

    /// The message bytes as a mutable slice, for code that must write in place (for
    /// example a serializer).
    ///
    /// # Safety
    ///
    /// The consumer process must be honest: no process may read or write these bytes while
    /// the slice lives. The ring protocol guarantees that of a correct consumer, but a
    /// hostile process mapping the same memory could write them, which is undefined
    /// behaviour for a Rust slice. Prefer [`WriteClaim::write_at`].
    #[cfg(not(loom))]
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        let p = self.producer.storage.data(self.offset + RECORD_HEADER);
        // SAFETY: the bytes lie inside the area (claim checked len fits before the end) and
        // are reserved to us; the caller vouches that no one else touches them.
        unsafe { core::slice::from_raw_parts_mut(p, self.len) }
    }

    /// Publishes the message.
    #[inline]
    pub fn commit(self) {
        self.producer.commit(self.len);
    }

    /// Publishes the first `len` bytes only (at most the claimed length), for messages whose
    /// final size is known only after writing.
    ///
    /// # Errors
    ///
    /// [`TryError::OutOfRange`] if `len` exceeds the claimed length.
    pub fn commit_len(self, len: usize) -> Result<(), TryError> {
        if len > self.len {
            return Err(TryError::OutOfRange {
                index: len,
                len: self.len,
            });
        }
        self.producer.commit(len);
        Ok(())
    }

    /// Gives the space back without sending anything (the same as dropping the claim).
    pub fn abort(self) {}
}

handle_controls!([] Producer, ByteStorage, Space, storage, strategy, sleeper);
