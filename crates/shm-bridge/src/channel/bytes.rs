//! Byte-message SPSC channels: [`ByteSender`] and [`ByteReceiver`], with zero-copy claims
//! and reads.

use super::*;
use shm_queue::bytes;

channel_end! {
    /// The sending end of a byte-message channel. Dropping it closes the channel.
    plain ByteSender, tx: bytes::Producer
}

impl ByteSender {
    /// If creating replaced a stale channel under the same name, what it replaced.
    pub fn reclaimed(&self) -> Option<&Reclaimed> {
        self.ep.reclaimed.as_ref()
    }

    /// Largest message this channel carries.
    pub fn max_message(&self) -> usize {
        self.tx.max_message()
    }

    /// Sends `msg` if there is room.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when full, [`Error::Queue`] with `MessageTooLarge`,
    /// [`Error::PeerGone`], [`Error::Closed`].
    pub fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.try_send_parts(std::slice::from_ref(&msg))
    }

    /// Sends the concatenation of `parts` as one message if there is room: a message that
    /// arrives in pieces (a network payload in fragments, a header and a body) is copied
    /// into the ring once, not joined first.
    ///
    /// # Errors
    ///
    /// As [`ByteSender::try_send`].
    ///
    /// # Example
    ///
    /// ```
    /// # fn main() -> Result<(), shm_bridge::Error> {
    /// let name = format!("doc-parts-{}", std::process::id());
    /// let opts = shm_bridge::ChannelOptions::new();
    /// let mut tx = opts.create_bytes(&name)?;
    /// let mut rx = opts.connect_bytes(&name)?;
    /// tx.try_send_parts(&[b"head:", b"body"])?;
    /// let mut buf = [0u8; 16];
    /// let n = rx.try_recv(&mut buf)?;
    /// assert_eq!(&buf[..n], b"head:body");
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_send_parts(&mut self, parts: &[&[u8]]) -> Result<()> {
        if self.ep.tick() {
            self.check_peer()?;
        }
        match self.tx.try_push_parts(parts) {
            Ok(()) => {
                self.ep.messages += 1;
                self.ep.bytes += parts.iter().map(|p| p.len() as u64).sum::<u64>();
                Ok(())
            }
            Err(e) => Err(self.full(e.into())),
        }
    }

    /// Sends `msg`, waiting for room as long as it takes.
    ///
    /// # Errors
    ///
    /// As [`ByteSender::try_send`], and [`Error::PeerHung`] (retryable).
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_deadline(msg, None)
    }

    /// Sends `msg`, waiting for room until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`ByteSender::send`], and [`Error::Timeout`].
    pub fn send_deadline(&mut self, msg: &[u8], deadline: Option<Instant>) -> Result<()> {
        self.send_parts_deadline(std::slice::from_ref(&msg), deadline)
    }

    /// Sends the concatenation of `parts` as one message, waiting for room until
    /// `deadline` (`None`: no limit); see [`ByteSender::try_send_parts`].
    ///
    /// # Errors
    ///
    /// As [`ByteSender::send_deadline`].
    pub fn send_parts_deadline(
        &mut self,
        parts: &[&[u8]],
        deadline: Option<Instant>,
    ) -> Result<()> {
        let first = self.try_send_parts(parts);
        let len = parts.iter().map(|p| p.len() as u64).sum::<u64>();
        let tx = &mut self.tx;
        send_or_wait(first, &mut self.ep, deadline, len, |d| {
            tx.push_parts_blocking(parts, Some(d))
        })
    }

    /// Reserves `len` bytes in the ring to write in place; commit the claim to send it.
    /// Not counted in the channel's message counters.
    ///
    /// # Errors
    ///
    /// As [`ByteSender::try_send`].
    pub fn claim(&mut self, len: usize) -> Result<WriteClaim<'_>> {
        if self.ep.tick() {
            self.check_peer()?;
        }
        let ep = &self.ep;
        self.tx
            .claim(len)
            .map_err(|e| ring_error(ep, e.into(), Duration::ZERO))
    }

    /// The ring's producer, for calls this wrapper does not offer.
    pub fn ring(&mut self) -> &mut bytes::Producer {
        &mut self.tx
    }

    /// Marks the channel closed: the consumer drains it, then gets [`Error::Closed`].
    pub fn close(&mut self) {
        self.tx.close();
    }

    fn check_peer(&mut self) -> Result<()> {
        sender_check(&self.ep, self.tx.is_closed())
    }

    fn full(&mut self, e: shm_queue::Error) -> Error {
        let closed_now = self.tx.is_closed();
        sender_error(&mut self.ep, e, closed_now)
    }
}

impl Drop for ByteSender {
    fn drop(&mut self) {
        self.tx.close();
    }
}

channel_end! {
    /// The receiving end of a byte-message channel.
    plain ByteReceiver, rx: bytes::Consumer
}

impl ByteReceiver {
    /// Largest message this channel carries (a buffer this long always suffices).
    pub fn max_message(&self) -> usize {
        self.rx.max_message()
    }

    /// Receives a message into `buf`, returning its length.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when empty, [`Error::Queue`] with `BufferTooSmall` (the
    /// message stays), [`Error::Closed`], [`Error::PeerGone`].
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        match self.rx.try_pop(buf) {
            Ok(n) => {
                self.count(n);
                Ok(n)
            }
            Err(e) => {
                let rx = &self.rx;
                Err(recv_error(&mut self.ep, e.into(), rx.is_closed(), || {
                    rx.has_message()
                }))
            }
        }
    }

    /// Receives a message into `buf`, waiting until `deadline` (`None`: no limit).
    ///
    /// # Errors
    ///
    /// As [`ByteReceiver::try_recv`], [`Error::PeerHung`] (retryable), [`Error::Timeout`].
    pub fn recv_deadline(&mut self, buf: &mut [u8], deadline: Option<Instant>) -> Result<usize> {
        // A ready message costs what `try_recv` costs: no clock read, no slice set-up.
        // (`has_message` is a hint: a record being written can show before it is ready.)
        if self.rx.has_message() {
            match self.try_recv(buf) {
                Err(Error::WouldBlock { .. }) => {}
                other => return other,
            }
        }
        self.wait_deadline(deadline)?;
        self.try_recv(buf)
    }

    /// Returns a guard over the next message in place if there is one; the space is
    /// released when the guard drops.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when empty; [`Error::Queue`] for a record the producer could
    /// not have written. Use [`ByteReceiver::try_recv`] or a waiting call to learn that
    /// the channel closed or the peer died.
    pub fn try_read(&mut self) -> Result<ReadGuard<'_>> {
        let guard = self
            .rx
            .read()
            .map_err(|e| ring_error(&self.ep, e.into(), Duration::ZERO))?;
        self.ep.messages += 1;
        self.ep.bytes += guard.len() as u64;
        Ok(guard)
    }

    /// Waits for a message until `deadline` and returns a guard over it in place; the space
    /// is released when the guard drops.
    ///
    /// # Errors
    ///
    /// As [`ByteReceiver::recv_deadline`].
    pub fn read_deadline(&mut self, deadline: Option<Instant>) -> Result<ReadGuard<'_>> {
        self.wait_deadline(deadline)?;
        let guard = self
            .rx
            .read()
            .map_err(|e| ring_error(&self.ep, e.into(), Duration::ZERO))?;
        self.ep.messages += 1;
        self.ep.bytes += guard.len() as u64;
        Ok(guard)
    }

    /// Receives into a vector (resized to the message), waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// As [`ByteReceiver::recv_deadline`].
    pub fn recv_vec(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        self.wait_deadline(None)?;
        let n = self
            .rx
            .try_pop_vec(buf)
            .map_err(|e| ring_error(&self.ep, e.into(), Duration::ZERO))?;
        self.count(n);
        Ok(n)
    }

    fn wait_deadline(&mut self, deadline: Option<Instant>) -> Result<()> {
        let rx = &mut self.rx;
        wait_loop(&mut self.ep, deadline, |d| rx.wait_for_message(Some(d)))
    }

    pub(super) fn count(&mut self, n: usize) {
        self.ep.messages += 1;
        self.ep.bytes += n as u64;
        self.ep.tick();
    }

    /// The ring's consumer, for calls this wrapper does not offer.
    pub fn ring(&mut self) -> &mut bytes::Consumer {
        &mut self.rx
    }
}

impl Drop for ByteReceiver {
    fn drop(&mut self) {
        self.rx.close();
    }
}
