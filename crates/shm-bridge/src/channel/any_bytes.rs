//! [`AnyByteSender`] and [`AnyByteReceiver`]: one handle type for either channel of byte
//! messages, a byte channel (one receiver) or a byte-message broadcast channel (many), for
//! code that serves both through one interface: the C and Python bindings.
//!
//! A receiver can also *hold* the next message in place ([`AnyByteReceiver::hold`]) across
//! calls, as a binding that lends the bytes to another language needs: then copy it with
//! [`AnyByteReceiver::copy_held`] and let it go with [`AnyByteReceiver::release_held`].

use super::*;

/// The sending end of a byte channel or of a byte-message broadcast channel.
#[derive(Debug)]
// One per channel end, made once and kept: unboxed, a call reaches the end directly.
#[allow(clippy::large_enum_variant)]
pub enum AnyByteSender {
    /// A byte channel's sender.
    Bytes(ByteSender),
    /// A byte-message broadcast channel's sender.
    Broadcast(BroadcastSender<Raw>),
}

impl AnyByteSender {
    /// Sends `msg` if there is room now; see [`ByteSender::try_send`] and
    /// [`BroadcastSender::try_send_message`].
    ///
    /// # Errors
    ///
    /// As those calls.
    pub fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        match self {
            AnyByteSender::Bytes(t) => t.try_send(msg),
            AnyByteSender::Broadcast(t) => t.try_send_message(msg),
        }
    }

    /// Sends `msg`, waiting for room until `deadline` (`None`: no limit).
    ///
    /// # Errors
    ///
    /// As [`ByteSender::send_deadline`] and [`BroadcastSender::send_message_deadline`].
    pub fn send_deadline(&mut self, msg: &[u8], deadline: Option<Instant>) -> Result<()> {
        match self {
            AnyByteSender::Bytes(t) => t.send_deadline(msg, deadline),
            AnyByteSender::Broadcast(t) => t.send_message_deadline(msg, deadline),
        }
    }

    /// Waits up to `timeout` for a receiver.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], or [`Error::PeerGone`] if it attached and died.
    pub fn wait_for_peer(&self, timeout: Duration) -> Result<()> {
        match self {
            AnyByteSender::Bytes(t) => t.wait_for_peer(timeout),
            AnyByteSender::Broadcast(t) => t.wait_for_peer(timeout),
        }
    }

    /// Closes the channel: receivers drain it, then get [`Error::Closed`].
    pub fn close(&mut self) {
        match self {
            AnyByteSender::Bytes(t) => t.close(),
            AnyByteSender::Broadcast(t) => t.close(),
        }
    }

    /// The largest message the channel carries.
    pub fn max_message(&self) -> usize {
        match self {
            AnyByteSender::Bytes(t) => t.max_message(),
            AnyByteSender::Broadcast(t) => t.max_message(),
        }
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        match self {
            AnyByteSender::Bytes(t) => t.name(),
            AnyByteSender::Broadcast(t) => t.name(),
        }
    }
}

/// The receiving end of a byte channel or of a byte-message broadcast channel.
#[derive(Debug)]
// One per channel end, made once and kept: unboxed, a call reaches the end directly.
#[allow(clippy::large_enum_variant)]
pub enum AnyByteReceiver {
    /// A byte channel's receiver.
    Bytes(ByteReceiver),
    /// A receiver of a byte-message broadcast channel.
    Broadcast(BroadcastReceiver<Raw>),
}

impl AnyByteReceiver {
    /// Receives the next message into `buf` if one is ready; see
    /// [`ByteReceiver::try_recv`] and [`BroadcastReceiver::try_recv_message`].
    ///
    /// # Errors
    ///
    /// As those calls.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        match self {
            AnyByteReceiver::Bytes(r) => r.try_recv(buf),
            AnyByteReceiver::Broadcast(r) => r.try_recv_message(buf),
        }
    }

    /// Receives the next message into `buf`, waiting until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`ByteReceiver::recv_deadline`] and
    /// [`BroadcastReceiver::recv_message_deadline`].
    pub fn recv_deadline(&mut self, buf: &mut [u8], deadline: Option<Instant>) -> Result<usize> {
        match self {
            AnyByteReceiver::Bytes(r) => r.recv_deadline(buf, deadline),
            AnyByteReceiver::Broadcast(r) => r.recv_message_deadline(buf, deadline),
        }
    }

    /// Waits until `deadline` for the next message and leaves it *held*: in place, at the
    /// head of this receiver, not released. Returns its address in the mapping and its
    /// length. Until [`AnyByteReceiver::release_held`], the next `hold` or receive returns
    /// the same message again (a byte channel's sender cannot reuse its room; a lossless
    /// broadcast sender cannot overwrite it).
    ///
    /// The address is valid while this receiver lives. Reading through it is a read of
    /// shared memory: a hostile process could change the bytes, and on a lossy or evicting
    /// broadcast channel the sender may overwrite them, which `release_held` then reports.
    ///
    /// ```
    /// # use shm_bridge::{AnyByteReceiver, ChannelOptions};
    /// # let name = format!("doc-any-hold-{}", std::process::id());
    /// let opts = ChannelOptions::new().capacity(16).max_message(64);
    /// let mut tx = opts.create_broadcast_bytes(&name)?;
    /// let mut rx = AnyByteReceiver::Broadcast(opts.connect_subscriber_bytes(&name)?);
    /// tx.send_message(b"held")?;
    /// let (_addr, len) = rx.hold(None)?;
    /// let mut copy = vec![0; len];
    /// rx.copy_held(&mut copy)?;
    /// rx.release_held()?; // Ok: nothing overwrote it
    /// assert_eq!(copy, b"held");
    /// # Ok::<(), shm_bridge::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`AnyByteReceiver::recv_deadline`].
    pub fn hold(&mut self, deadline: Option<Instant>) -> Result<(*const u8, usize)> {
        match self {
            AnyByteReceiver::Bytes(r) => r.read_deadline(deadline).map(|g| {
                let at = (g.as_ptr(), g.len());
                // Dropping the guard would release the record; forgetting it leaves the
                // head where it is (the guard owns nothing else).
                std::mem::forget(g);
                at
            }),
            AnyByteReceiver::Broadcast(r) => r.read_message_deadline(deadline).map(|g| {
                let at = (g.as_ptr(), g.len());
                // As above: the subscriber stays on the message until it is read again
                // and released.
                std::mem::forget(g);
                at
            }),
        }
    }

    /// Copies the held message (see [`AnyByteReceiver::hold`]) into the start of `dst`,
    /// keeping it held; with no message held, the next one if it is ready.
    ///
    /// # Errors
    ///
    /// [`Error::Queue`] with `BufferTooSmall` if `dst` is shorter than the message, or
    /// `Truncated`; [`Error::WouldBlock`] with nothing ready; [`Error::Lost`] if a broadcast
    /// sender overwrote it.
    pub fn copy_held(&mut self, dst: &mut [u8]) -> Result<()> {
        let copied = match self {
            AnyByteReceiver::Bytes(r) => r.ring().read().and_then(|g| {
                let c = g.copy_to(dst);
                std::mem::forget(g);
                c
            }),
            AnyByteReceiver::Broadcast(r) => r.ring().try_read_message().and_then(|g| {
                let c = match dst.get_mut(..g.len()) {
                    Some(d) => g.read_at(0, d),
                    None => Err(shm_queue::TryError::BufferTooSmall {
                        needed: g.len(),
                        len: dst.len(),
                    }),
                };
                std::mem::forget(g);
                c
            }),
        };
        copied.map_err(|e| self.held_error(e))
    }

    /// Releases the held message (see [`AnyByteReceiver::hold`]), giving its room back.
    ///
    /// # Errors
    ///
    /// [`Error::Lost`] if a broadcast sender overwrote the message while it was held: what
    /// was read of it is not the message (the receiver goes on after it);
    /// [`Error::WouldBlock`] if nothing is held; [`Error::Queue`] if the ring is corrupt.
    pub fn release_held(&mut self) -> Result<()> {
        let released = match self {
            AnyByteReceiver::Bytes(r) => r.ring().read().map(ReadGuard::release),
            AnyByteReceiver::Broadcast(r) => r
                .ring()
                .try_read_message()
                .and_then(shm_queue::broadcast::MessageGuard::release),
        };
        released.map_err(|e| self.held_error(e))
    }

    fn held_error(&self, e: shm_queue::TryError) -> Error {
        Error::queue(self.name(), e.into(), Duration::ZERO)
    }

    /// Closes a byte channel (its sender's next send gets [`Error::Closed`]); a broadcast
    /// receiver closes nothing for the others (drop it to leave the channel).
    pub fn close(&mut self) {
        if let AnyByteReceiver::Bytes(r) = self {
            r.ring().close();
        }
    }

    /// Messages a broadcast receiver lost since it connected (0 for a byte channel).
    pub fn missed(&self) -> u64 {
        match self {
            AnyByteReceiver::Bytes(_) => 0,
            AnyByteReceiver::Broadcast(r) => r.missed(),
        }
    }

    /// The largest message the channel carries (a buffer this long always suffices).
    pub fn max_message(&self) -> usize {
        match self {
            AnyByteReceiver::Bytes(r) => r.max_message(),
            AnyByteReceiver::Broadcast(r) => r.max_message(),
        }
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        match self {
            AnyByteReceiver::Bytes(r) => r.name(),
            AnyByteReceiver::Broadcast(r) => r.name(),
        }
    }
}
