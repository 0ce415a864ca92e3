//! Byte messages on a subscriber of a message ring ([`message_type`](super::super::message_type)):
//! each element is a slot holding a little-endian `u64` length, then the message. Reads are
//! the typed reads' seqlock: copy, `fence(Acquire)`, check the horizon; a zero-copy
//! [`MessageGuard`] does the check when it is released.

use std::time::Instant;

use super::*;
use crate::broadcast::MESSAGE_HEADER;

impl Subscriber<Raw> {
    /// The largest message the ring carries (its element size less the length word).
    pub fn max_message(&self) -> usize {
        self.mem.storage.elem_size().saturating_sub(MESSAGE_HEADER)
    }

    /// The validated length of the message at `head`, without consuming it.
    fn message_len(&mut self) -> Result<usize, TryError> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        if self.evictable {
            self.check_state()?;
        }
        let max = self.max_message();
        loop {
            if self.head == self.known {
                self.refresh()?;
            }
            let mut word = [0u8; MESSAGE_HEADER];
            // SAFETY: `blk` is the storage's block of `cursor`, index < elems_per_block, and
            // the length word lies inside the element (elem_size >= MESSAGE_HEADER: the ring's
            // elements are at least 8 bytes, `BlockShape`); racing writes are rejected below.
            unsafe {
                self.mem
                    .storage
                    .read_part_racy_in(self.blk, self.cursor.index, 0, &mut word)
            };
            fence(Ordering::Acquire);
            let horizon = self.mem.horizon().load(Ordering::Relaxed);
            if horizon > self.head + self.cap {
                self.overtaken(horizon)?;
                continue;
            }
            let len = u64::from_le_bytes(word);
            if len > max as u64 {
                return Err(corrupted(Word::RecordLength, len));
            }
            return Ok(len as usize);
        }
    }

    /// Receives the next message into the start of `dst`; returns its length.
    ///
    /// # Errors
    ///
    /// [`TryError::BufferTooSmall`] if `dst` is shorter than the message (which stays
    /// next); [`TryError::Corrupted`] naming [`Word::RecordLength`] for a length over the
    /// ring's maximum; as the typed `try_recv` otherwise (`Empty`, `Lagged`, `Evicted`).
    pub fn try_recv_message(&mut self, dst: &mut [u8]) -> Result<usize, TryError> {
        loop {
            let len = self.message_len()?;
            let Some(d) = dst.get_mut(..len) else {
                return Err(TryError::BufferTooSmall {
                    needed: len,
                    len: dst.len(),
                });
            };
            // SAFETY: as in `message_len`; MESSAGE_HEADER + len <= elem_size (len <= max).
            unsafe {
                self.mem
                    .storage
                    .read_part_racy_in(self.blk, self.cursor.index, MESSAGE_HEADER, d)
            };
            if self.validate_head()? {
                return Ok(len);
            }
        }
    }

    /// After copying (part of) the message at `head`: `fence(Acquire)` and the horizon
    /// check. `true`: the copy was intact and the subscriber moved past it; `false`: only
    /// history was lost meanwhile, read again; an error for a loss.
    fn validate_head(&mut self) -> Result<bool, TryError> {
        fence(Ordering::Acquire);
        let horizon = self.mem.horizon().load(Ordering::Relaxed);
        if horizon <= self.head + self.cap {
            self.advance(1);
            self.mem.storage.check_intact()?;
            return Ok(true);
        }
        self.overtaken(horizon)?;
        Ok(false)
    }

    /// Receives up to `lens.len()` ready messages at once, validated as one run: message
    /// `i` is copied to `dst` right after message `i - 1` and its length stored in
    /// `lens[i]`; returns how many (0 when none is ready). Takes at most
    /// `dst.len() / max_message` messages, so every one fits.
    ///
    /// # Errors
    ///
    /// [`TryError::BufferTooSmall`] if `dst` is shorter than [`Subscriber::max_message`];
    /// [`TryError::Corrupted`] naming [`Word::RecordLength`] if a validated slot holds a
    /// length over the maximum; as [`Subscriber::try_recv_message`] otherwise.
    #[must_use = "the call may do only part of the work: check how many it did"]
    pub fn try_recv_messages(
        &mut self,
        dst: &mut [u8],
        lens: &mut [usize],
    ) -> Result<usize, TryError> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        let max = self.max_message();
        if dst.len() < max.max(1) {
            return Err(TryError::BufferTooSmall {
                needed: max,
                len: dst.len(),
            });
        }
        let room = lens.len().min(dst.len() / max.max(1));
        let (mut off, mut bad) = (0usize, None);
        let n = self.recv_with(room, |storage, blk, index, range| {
            if range.start == 0 {
                // A new attempt (after an overtaking, the run is read again).
                (off, bad) = (0, None);
            }
            for (k, at) in range.clone().zip(index..) {
                let mut word = [0u8; MESSAGE_HEADER];
                // SAFETY: `at` indexes an element of `blk` (runs keeps a run inside one
                // block); the length word and `len <= max` bytes after it lie inside the
                // element. Racing writes are rejected by the run's validation.
                unsafe { storage.read_part_racy_in(blk, at, 0, &mut word) };
                let len = u64::from_le_bytes(word);
                let len = if len > max as u64 {
                    bad.get_or_insert(len);
                    0
                } else {
                    len as usize
                };
                // SAFETY: as above; `off + len <= room * max <= dst.len()`.
                unsafe {
                    storage.read_part_racy_in(blk, at, MESSAGE_HEADER, &mut dst[off..off + len])
                };
                lens[k] = len;
                off += len;
            }
        })?;
        if let Some(len) = bad.filter(|_| n > 0) {
            return Err(corrupted(Word::RecordLength, len));
        }
        Ok(n)
    }

    /// The next message, in place: read it through the guard, then
    /// [`MessageGuard::release`] it, which says whether what was read was intact. Until
    /// then the subscriber stays on it, so on a lossless ring the publisher cannot
    /// overwrite it (unless the ring evicts this subscriber).
    ///
    /// # Errors
    ///
    /// As [`Subscriber::try_recv_message`] (no `BufferTooSmall`); a loss found when an
    /// earlier guard was dropped without `release`.
    pub fn try_read_message(&mut self) -> Result<MessageGuard<'_>, TryError> {
        let len = self.message_len()?;
        Ok(MessageGuard {
            sub: self,
            len,
            released: false,
        })
    }

    /// [`Subscriber::try_recv_message`] once a message is ready, waiting as this handle's
    /// [`WaitStrategy`] says, until `deadline` (`None`: no limit).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] at the deadline; [`Error::Closed`] once the publisher closed the
    /// ring and everything before that was read; as `try_recv_message` otherwise.
    pub fn recv_message_blocking(
        &mut self,
        dst: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize, Error> {
        crate::wait::blocking::block_on(self, deadline, "a message", |s| {
            crate::wait::pending(s.try_recv_message(dst))
        })
    }

    /// Waits, as [`Subscriber::recv_message_blocking`] does, until a message is ready
    /// (then [`Subscriber::try_read_message`] returns it) or a loss is to be reported.
    ///
    /// # Errors
    ///
    /// As [`Subscriber::recv_message_blocking`].
    pub fn wait_for_message(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        crate::wait::blocking::block_on(self, deadline, "a message", |s| {
            crate::wait::pending(s.message_len().map(drop))
        })
    }

    /// [`Subscriber::try_read_message`] once a message is ready, waiting as
    /// [`Subscriber::recv_message_blocking`] does.
    ///
    /// # Errors
    ///
    /// As [`Subscriber::recv_message_blocking`].
    pub fn read_message_blocking(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<MessageGuard<'_>, Error> {
        self.wait_for_message(deadline)?;
        Ok(self.try_read_message()?)
    }
}

/// A broadcast message read in place ([`Subscriber::try_read_message`]). Its subscriber
/// stays on the message until [`MessageGuard::release`], which validates what was read.
///
/// On a lossy ring (or one that evicts) the publisher may overwrite the message while the
/// guard lives: [`MessageGuard::read_at`] then copies garbled bytes, and `release` reports
/// the loss, so discard what you read unless `release` returns `Ok`. Dropping the guard
/// without `release` releases it too, and a loss found then is returned by the
/// subscriber's next message call.
#[must_use = "release the guard to learn whether what was read was intact"]
pub struct MessageGuard<'a> {
    sub: &'a mut Subscriber<Raw>,
    len: usize,
    released: bool,
}

impl fmt::Debug for MessageGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageGuard")
            .field("len", &self.len)
            .field("position", &self.sub.head)
            .finish()
    }
}

impl MessageGuard<'_> {
    /// Length of the message.
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
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) -> Result<(), TryError> {
        let end = offset.saturating_add(dst.len());
        if end > self.len {
            return Err(TryError::OutOfRange {
                index: end,
                len: self.len,
            });
        }
        let s = &*self.sub;
        // SAFETY: the guard's message is at `cursor` of `blk`; MESSAGE_HEADER + end <=
        // MESSAGE_HEADER + len <= elem_size (message_len checked len <= max); racing writes
        // are reported by `release`.
        unsafe {
            s.mem
                .storage
                .read_part_racy_in(s.blk, s.cursor.index, MESSAGE_HEADER + offset, dst)
        };
        s.mem.storage.check_intact()
    }

    /// The message as a new `Vec` (check [`MessageGuard::release`] before trusting it).
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
    /// Nothing may write these bytes while the slice lives: the ring must be lossless
    /// without eviction ([`SlowPolicy::Wait`]), where the publisher cannot overwrite a
    /// message a live subscriber has not released, and every process mapping it honest
    /// (a hostile one could write them, which is undefined behaviour for a Rust slice).
    /// Otherwise use [`MessageGuard::read_at`] and check [`MessageGuard::release`].
    #[cfg(not(loom))]
    pub unsafe fn as_slice(&self) -> &[u8] {
        let s = &*self.sub;
        // SAFETY: the message lies inside its element (message_len checked len <= max), and
        // the caller vouches that nobody writes it while the slice lives.
        unsafe {
            core::slice::from_raw_parts(
                s.mem
                    .storage
                    .part_ptr(s.blk, s.cursor.index, MESSAGE_HEADER),
                self.len,
            )
        }
    }

    /// The address of the message's first byte in the mapping, for a binding that hands
    /// the message to another language as a read-only buffer. Reading through it races
    /// with a publisher that overwrites the message (a lossy or evicting ring): then
    /// [`MessageGuard::release`] says so, and what was read must be discarded. The address
    /// is valid while this subscriber's ring is mapped.
    #[cfg(not(loom))]
    pub fn as_ptr(&self) -> *const u8 {
        let s = &*self.sub;
        // SAFETY: the guard's message is element `cursor.index` of `blk`, and the offset
        // MESSAGE_HEADER lies inside the element (message elements are longer than it).
        unsafe {
            s.mem
                .storage
                .part_ptr(s.blk, s.cursor.index, MESSAGE_HEADER)
        }
    }

    /// Moves past the message and says whether what was read through the guard was
    /// intact.
    ///
    /// # Errors
    ///
    /// [`TryError::Lagged`] (or [`TryError::Evicted`]) if the publisher overwrote the
    /// message meanwhile: discard what was read; `missed` counts it among the losses.
    pub fn release(mut self) -> Result<(), TryError> {
        self.released = true;
        self.finish()
    }

    fn finish(&mut self) -> Result<(), TryError> {
        let s = &mut *self.sub;
        let (missed, history) = (s.missed, s.history_lost);
        match s.validate_head() {
            Ok(true) => Ok(()),
            Ok(false) => {
                // The overwritten message was history from before this subscriber joined:
                // it was read, so its loss is a loss like any other.
                let lost = s.history_lost - history;
                s.history_lost = history;
                s.missed += lost;
                if let Some(e) = s.entry() {
                    e.missed.store(s.missed, Ordering::Relaxed);
                }
                Err(TryError::Lagged {
                    missed: s.missed - missed,
                })
            }
            Err(e) => Err(e),
        }
    }
}

impl Drop for MessageGuard<'_> {
    fn drop(&mut self) {
        if !self.released {
            if let Err(e) = self.finish() {
                self.sub.pending = Some(e);
            }
        }
    }
}
