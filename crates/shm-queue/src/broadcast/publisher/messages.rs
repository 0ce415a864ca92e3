//! Byte messages on the publisher of a message ring
//! ([`message_type`](super::super::message_type)): each is written once, in place, into
//! one slot (its length word, then its bytes).

use std::time::Instant;

use super::*;
use crate::broadcast::MESSAGE_HEADER;

impl Publisher<Raw> {
    /// The largest message the ring carries (its element size less the length word).
    pub fn max_message(&self) -> usize {
        self.mem.storage.elem_size().saturating_sub(MESSAGE_HEADER)
    }

    /// Publishes `msg` as one message (always, on a lossy ring).
    ///
    /// # Errors
    ///
    /// [`TryError::MessageTooLarge`] over [`Publisher::max_message`] (nothing is sent);
    /// [`TryError::Full`] (lossless only) while the slowest live subscriber is a whole ring
    /// behind; [`TryError::Truncated`] if the shared object was truncated.
    pub fn try_send_message(&mut self, msg: &[u8]) -> Result<(), TryError> {
        let max = self.max_message();
        if msg.len() > max {
            return Err(TryError::MessageTooLarge {
                len: msg.len(),
                max,
            });
        }
        let word = (msg.len() as u64).to_le_bytes();
        let n = self.push_with(1, |storage, blk, index, _| {
            // SAFETY: one element at `index` of `blk` (runs), below the horizon just raised;
            // the word and the message fit in it (len <= max = elem_size - MESSAGE_HEADER).
            unsafe {
                storage.write_part_racy_in(blk, index, 0, &word);
                storage.write_part_racy_in(blk, index, MESSAGE_HEADER, msg);
            }
        })?;
        if n == 0 {
            return Err(TryError::Full {
                requested: 1,
                available: 0,
            });
        }
        Ok(())
    }

    /// [`Publisher::try_send_message`] once there is room, waiting as this handle's
    /// [`WaitStrategy`] says, until `deadline` (`None`: no limit). A lossy publisher never
    /// waits.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] at the deadline; [`Error::Closed`] once the ring is closed; as
    /// [`Publisher::try_send_message`] otherwise.
    pub fn send_message_blocking(
        &mut self,
        msg: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), Error> {
        crate::wait::blocking::block_on(self, deadline, "room in the broadcast ring", |s| {
            crate::wait::pending(s.try_send_message(msg))
        })
    }
}
