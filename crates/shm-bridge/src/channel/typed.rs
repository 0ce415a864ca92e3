//! Typed SPSC channels: [`Sender`] and [`Receiver`] of `T: Pod`.

use super::*;

channel_end! {
    /// The sending end of a typed channel. Dropping it closes the channel.
    typed Sender, tx: spsc::Producer<T>
}

impl<T: Element> Sender<T> {
    /// If creating replaced a stale channel under the same name, what it replaced.
    pub fn reclaimed(&self) -> Option<&Reclaimed> {
        self.ep.reclaimed.as_ref()
    }

    /// Sends `value` if there is room.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when full; [`Error::PeerGone`] once the consumer died;
    /// [`Error::Closed`] if it left.
    #[inline]
    pub fn try_send(&mut self, value: T) -> Result<()>
    where
        T: Pod,
    {
        send_now(&mut self.tx, &mut self.ep, value)
    }

    /// Sends `value`, waiting for room as long as it takes.
    ///
    /// # Errors
    ///
    /// [`Error::PeerGone`], [`Error::Closed`], [`Error::PeerHung`] (retryable).
    pub fn send(&mut self, value: T) -> Result<()>
    where
        T: Pod,
    {
        self.send_deadline(value, None)
    }

    /// Sends `value`, waiting for room until `deadline` (`None`: no limit).
    ///
    /// # Errors
    ///
    /// As [`Sender::send`], and [`Error::Timeout`].
    pub fn send_deadline(&mut self, value: T, deadline: Option<Instant>) -> Result<()>
    where
        T: Pod,
    {
        let first = self.try_send(value);
        let tx = &mut self.tx;
        send_or_wait(first, &mut self.ep, deadline, 0, |d| {
            tx.push_blocking(value, Some(d))
        })
    }

    /// Sends as many of `values` as there is room for (one publication); returns how many.
    ///
    /// # Errors
    ///
    /// As [`Sender::try_send`].
    #[must_use = "the call may do only part of the work: check how many it did"]
    pub fn send_partial_slice(&mut self, values: &[T]) -> Result<usize>
    where
        T: Pod,
    {
        if self.ep.tick() {
            self.check_peer()?;
        }
        match self.tx.push_partial_slice(values) {
            Ok(0) if !values.is_empty() => Err(self.full(shm_queue::Error::Full {
                requested: 1,
                available: 0,
            })),
            Ok(n) => {
                self.ep.messages += n as u64;
                Ok(n)
            }
            Err(e) => Err(self.full(e.into())),
        }
    }

    /// The ring's producer, for the zero-copy chunk API ([`spsc::Producer::write_chunk`]).
    /// Calls made through it skip the liveness checks and message counters.
    pub fn ring(&mut self) -> &mut spsc::Producer<T> {
        &mut self.tx
    }

    /// Marks the channel closed: the consumer drains it, then gets [`Error::Closed`].
    pub fn close(&mut self) {
        self.tx.close();
    }

    /// Messages in the ring.
    pub fn len(&self) -> usize {
        self.tx.len()
    }

    /// `true` if the ring is empty.
    pub fn is_empty(&self) -> bool {
        self.tx.is_empty()
    }

    /// The ring's capacity in elements.
    pub fn capacity(&self) -> usize {
        self.tx.capacity()
    }

    fn check_peer(&mut self) -> Result<()> {
        sender_check(&self.ep, self.tx.is_closed())
    }

    fn full(&mut self, e: shm_queue::Error) -> Error {
        let closed_now = self.tx.is_closed();
        sender_error(&mut self.ep, e, closed_now)
    }
}

impl<T: Element> Drop for Sender<T> {
    fn drop(&mut self) {
        self.tx.close();
    }
}

channel_end! {
    /// The receiving end of a typed channel.
    typed Receiver, rx: spsc::Consumer<T>
}

impl<T: Element> Receiver<T> {
    /// Receives a message if one is there.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when empty; once empty for good, [`Error::Closed`] (the
    /// producer closed) or [`Error::PeerGone`] (it died).
    #[inline]
    pub fn try_recv(&mut self) -> Result<T>
    where
        T: Pod,
    {
        recv_now(&mut self.rx, &mut self.ep)
    }

    /// Receives a message, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`], [`Error::PeerGone`], [`Error::PeerHung`] (retryable).
    pub fn recv(&mut self) -> Result<T>
    where
        T: Pod,
    {
        self.recv_deadline(None)
    }

    /// Receives a message, waiting until `deadline` (`None`: no limit).
    ///
    /// # Errors
    ///
    /// As [`Receiver::recv`], and [`Error::Timeout`].
    pub fn recv_deadline(&mut self, deadline: Option<Instant>) -> Result<T>
    where
        T: Pod,
    {
        if let Some(v) = pop_ready(&mut self.rx, &mut self.ep) {
            return Ok(v);
        }
        let rx = &mut self.rx;
        let v = wait_loop(&mut self.ep, deadline, |d| rx.pop_blocking(Some(d)))?;
        self.ep.messages += 1;
        Ok(v)
    }

    /// Receives up to `dst.len()` messages; returns how many.
    ///
    /// # Errors
    ///
    /// As [`Receiver::try_recv`].
    pub fn recv_into(&mut self, dst: &mut [T]) -> Result<usize>
    where
        T: Pod,
    {
        match self.rx.pop_partial_slice(dst) {
            Ok(0) if !dst.is_empty() => {
                let rx = &self.rx;
                let empty = shm_queue::Error::Empty {
                    requested: 1,
                    available: 0,
                };
                Err(recv_error(&mut self.ep, empty, rx.is_closed(), || {
                    !rx.is_empty()
                }))
            }
            Ok(n) => {
                self.ep.messages += n as u64;
                Ok(n)
            }
            Err(e) => {
                let rx = &self.rx;
                Err(recv_error(&mut self.ep, e.into(), rx.is_closed(), || {
                    !rx.is_empty()
                }))
            }
        }
    }

    /// The ring's consumer, for the zero-copy chunk API ([`spsc::Consumer::read_chunk`]).
    pub fn ring(&mut self) -> &mut spsc::Consumer<T> {
        &mut self.rx
    }

    /// Closes the channel from the receiving side: the sender's next send gets
    /// [`Error::Closed`]. Dropping the end does the same.
    pub fn close(&mut self) {
        self.rx.close();
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// `true` if nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

impl<T: Element> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.rx.close();
    }
}
