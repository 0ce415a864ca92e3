//! [`Consumer`]: receives byte messages, copied out or read in place through a
//! [`ReadGuard`].

use super::*;

/// The consumer side of a [`Ring`]. One per ring; `Send`, not `Clone`.
pub struct Consumer {
    pub(super) storage: Arc<ByteStorage>,
    pub(super) head: u64,
    pub(super) token: u64,
    pub(super) strategy: WaitStrategy,
    /// Whether this handle is counted in the header's `consumer_sleepers`.
    pub(super) sleeper: crate::wait::Sleeper,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("head", &self.head)
            .finish()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let header = self.storage.header();
        header.data_signal().unregister(&mut self.sleeper);
        claim::release(&header.control.consumer_claim, self.token);
    }
}

impl Consumer {
    /// The next message's data offset and length, skipping a padding record; `None` if
    /// nothing is committed yet. The common case (a message or nothing at `head`) stays
    /// inline; a padding record goes through [`Consumer::after_padding`].
    #[inline(always)]
    fn next(&mut self) -> Result<Option<(usize, usize)>, TryError> {
        let s = &*self.storage;
        let offset = (self.head & (s.cap as u64 - 1)) as usize;
        let word = s.word(offset).load(Ordering::Acquire);
        if word == 0 {
            return Ok(None);
        }
        match decode(word, offset, s)? {
            Record::Message { len } => Ok(Some((offset, len))),
            Record::Padding { size } => self.after_padding(size),
        }
    }

    /// Skips the padding record of `size` bytes at `head` (it runs to the end of the data
    /// area) and looks at the record after it, at offset 0: a message, nothing yet, or a
    /// second padding record, which no producer writes.
    #[cold]
    #[inline(never)]
    fn after_padding(&mut self, size: usize) -> Result<Option<(usize, usize)>, TryError> {
        self.head += size as u64;
        let s = &*self.storage;
        s.header().consumer.pos.store(self.head, Ordering::Release);
        s.header().notify_space();
        let offset = (self.head & (s.cap as u64 - 1)) as usize;
        let word = s.word(offset).load(Ordering::Acquire);
        if word == 0 {
            return Ok(None);
        }
        match decode(word, offset, s)? {
            Record::Message { len } => Ok(Some((offset, len))),
            Record::Padding { .. } => Err(corrupted(Word::PaddingAtZero, 0)),
        }
    }

    /// Frees `size` bytes at `head`.
    #[inline]
    fn release(&mut self, size: usize) {
        self.head += size as u64;
        let header = self.storage.header();
        header.consumer.pos.store(self.head, Ordering::Release);
        header.notify_space();
    }

    /// Copies the next message into `buf` and returns its length.
    ///
    /// # Errors
    ///
    /// [`TryError::Empty`] if no message is ready (retry later); [`TryError::BufferTooSmall`] if
    /// `buf` is shorter than the message, which then stays in the ring;
    /// [`TryError::Corrupted`] if the record header is impossible.
    #[inline]
    pub fn try_pop(&mut self, buf: &mut [u8]) -> Result<usize, TryError> {
        let Some((offset, len)) = self.next()? else {
            return Err(TryError::Empty {
                requested: 1,
                available: 0,
            });
        };
        if buf.len() < len {
            return Err(TryError::BufferTooSmall {
                needed: len,
                len: buf.len(),
            });
        }
        // SAFETY: decode checked offset + 8 + len <= cap, and the committed record is ours
        // to read until we release it.
        unsafe { self.storage.read(offset + RECORD_HEADER, &mut buf[..len]) };
        self.release(record_size(len));
        self.storage.check_intact()?;
        Ok(len)
    }

    /// Receives the next message into `buf` (cleared first), growing it as needed.
    ///
    /// # Errors
    ///
    /// [`TryError::Empty`] or [`TryError::Corrupted`], as [`Consumer::try_pop`].
    pub fn try_pop_vec(&mut self, buf: &mut Vec<u8>) -> Result<usize, TryError> {
        let msg = self.read()?;
        buf.clear();
        buf.resize(msg.len(), 0);
        msg.copy_to(buf)?;
        Ok(buf.len())
    }

    /// The next message, read in place; its space is released when the guard drops.
    ///
    /// # Errors
    ///
    /// [`TryError::Empty`] if no message is ready; [`TryError::Corrupted`].
    #[inline]
    pub fn read(&mut self) -> Result<ReadGuard<'_>, TryError> {
        match self.next()? {
            Some((offset, len)) => Ok(ReadGuard {
                consumer: self,
                offset,
                len,
            }),
            None => Err(TryError::Empty {
                requested: 1,
                available: 0,
            }),
        }
    }

    /// Waits as the handle's [`WaitStrategy`] says until a message is ready; returns its
    /// offset and length.
    fn wait_message(&mut self, deadline: Option<Instant>) -> Result<(usize, usize), Error> {
        block_on(self, deadline, "a message", |s| Ok(s.next()?))
    }

    /// Like [`Consumer::try_pop`], but waits for a message until `deadline` (`None`: no
    /// limit).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] at the deadline; [`Error::Closed`] once the ring is closed and
    /// every message sent before has been received; otherwise as [`Consumer::try_pop`].
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use shm_queue::{bytes::Ring, Error};
    ///
    /// let region = shm_region::Region::anonymous(Ring::required_bytes(1024)?)?;
    /// let (mut tx, mut rx) = Ring::create(region, 1024, 100)?.split()?;
    /// let mut buf = [0u8; 100];
    /// let soon = Some(Instant::now() + Duration::from_millis(10));
    /// assert!(matches!(rx.pop_blocking(&mut buf, soon), Err(Error::Timeout { .. })));
    /// tx.try_push(b"last words")?;
    /// tx.close();
    /// assert_eq!(rx.pop_blocking(&mut buf, None)?, 10); // drained first
    /// assert!(matches!(rx.pop_blocking(&mut buf, None), Err(Error::Closed { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pop_blocking(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize, Error> {
        let (offset, len) = self.wait_message(deadline)?;
        if buf.len() < len {
            return Err(TryError::BufferTooSmall {
                needed: len,
                len: buf.len(),
            }
            .into());
        }
        // SAFETY: as in try_pop: decode checked the record lies inside the area, and it is
        // committed and ours until released.
        unsafe { self.storage.read(offset + RECORD_HEADER, &mut buf[..len]) };
        self.release(record_size(len));
        Ok(len)
    }

    /// Like [`Consumer::read`], but waits for a message; see
    /// [`Consumer::pop_blocking`].
    ///
    /// # Errors
    ///
    /// As [`Consumer::pop_blocking`].
    pub fn read_blocking(&mut self, deadline: Option<Instant>) -> Result<ReadGuard<'_>, Error> {
        let (offset, len) = self.wait_message(deadline)?;
        Ok(ReadGuard {
            consumer: self,
            offset,
            len,
        })
    }

    /// Waits until a message can be received, without receiving it: after `Ok`, the next
    /// [`Consumer::read`] or [`Consumer::try_pop`] returns it. Lets a caller wait in
    /// slices (to check something between them) and still read in place.
    ///
    /// # Errors
    ///
    /// As [`Consumer::pop_blocking`].
    pub fn wait_for_message(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        self.wait_message(deadline).map(drop)
    }

    /// Arms the readiness descriptor the producer holds (see
    /// [`crate::wait::readiness_fd`]). Returns `true` if a record is already committed:
    /// then do not wait for the descriptor, receive now. Otherwise the next commit signals
    /// it.
    pub fn arm_readiness(&mut self) -> bool {
        self.storage.header().data_signal().arm();
        self.has_message()
    }

    /// `true` if a message (or padding) is committed at `head`.
    pub fn has_message(&self) -> bool {
        let s = &*self.storage;
        s.word((self.head & (s.cap as u64 - 1)) as usize)
            .load(Ordering::Acquire)
            != 0
    }

    /// Size of the data area in bytes.
    pub fn capacity(&self) -> usize {
        self.storage.cap
    }

    /// The largest message the ring accepts.
    pub fn max_message(&self) -> usize {
        self.storage.max_message
    }

    /// The consumer's position: bytes released since creation.
    pub fn position(&self) -> u64 {
        self.head
    }
}

/// A message read in place by [`Consumer::read`]. Its bytes stay reserved until the
/// guard drops, then the space goes back to the producer.
#[must_use = "the slots stay held until the guard is released or dropped"]
pub struct ReadGuard<'a> {
    consumer: &'a mut Consumer,
    offset: usize,
    len: usize,
}

impl fmt::Debug for ReadGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadGuard").field("len", &self.len).finish()
    }
}

impl ReadGuard<'_> {
    /// Length of the message.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` for a zero-length message.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies message bytes from `offset` into `dst`.
    ///
    /// # Errors
    ///
    /// [`TryError::OutOfRange`] if `offset + dst.len()` exceeds the message.
    #[inline]
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) -> Result<(), TryError> {
        let end = offset.saturating_add(dst.len());
        if end > self.len {
            return Err(TryError::OutOfRange {
                index: end,
                len: self.len,
            });
        }
        // SAFETY: decode checked the record lies inside the area; end <= len.
        unsafe {
            self.consumer
                .storage
                .read(self.offset + RECORD_HEADER + offset, dst)
        };
        // Zeros from a truncated object are not the message.
        self.consumer.storage.check_intact()
    }

    /// Copies the whole message into the start of `dst`.
    ///
    /// # Errors
    ///
    /// [`TryError::BufferTooSmall`] if `dst` is shorter than the message.
    pub fn copy_to(&self, dst: &mut [u8]) -> Result<(), TryError> {
        let Some(d) = dst.get_mut(..self.len) else {
            return Err(TryError::BufferTooSmall {
                needed: self.len,
                len: dst.len(),
            });
        };
        self.read_at(0, d)
    }

    /// The message as a new `Vec`. Empty if the ring's object was found truncated (see
    /// [`TryError::Truncated`]); [`ReadGuard::copy_to`] says so as an error.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.len];
        if self.read_at(0, &mut v).is_err() {
            v.clear();
        }
        v
    }

    /// The message bytes as a slice, with no copy.
    ///
    /// # Safety
    ///
    /// The producer process must be honest: no process may write these bytes while the
    /// slice lives. A correct producer never does (the record is committed and ours until
    /// the guard drops), but a hostile process mapping the same memory could, which is
    /// undefined behaviour for a Rust slice. Prefer [`ReadGuard::read_at`].
    #[cfg(not(loom))]
    pub unsafe fn as_slice(&self) -> &[u8] {
        let p = self.consumer.storage.data(self.offset + RECORD_HEADER);
        // SAFETY: inside the area (decode), reserved to us, and the caller vouches no one
        // writes it meanwhile.
        unsafe { core::slice::from_raw_parts(p, self.len) }
    }

    /// The address of the message's first byte in the mapping, for a binding that lends
    /// the message to another language as a read-only buffer. Reading through it is a read
    /// of shared memory that a hostile process could change meanwhile (see
    /// [`ReadGuard::as_slice`]); the address is valid while the ring is mapped.
    #[cfg(not(loom))]
    pub fn as_ptr(&self) -> *const u8 {
        self.consumer.storage.data(self.offset + RECORD_HEADER)
    }

    /// Releases the message now (the same as dropping the guard).
    pub fn release(self) {}
}

impl Drop for ReadGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.consumer.release(record_size(self.len));
    }
}

handle_controls!([] Consumer, ByteStorage, Data, storage, strategy, sleeper);
