//! MPMC channels: [`MpmcSender`] and [`MpmcReceiver`], any number per side, in any number
//! of processes.

use super::*;
use shm_queue::mpmc;

channel_end! {
    /// A sending end of an MPMC channel. The channel is closed by [`MpmcSender::close`], or
    /// when the last live producer drops its end.
    typed MpmcSender, tx: mpmc::Producer<T>
}

impl<T: Element> MpmcSender<T> {
    /// If creating replaced a stale channel under the same name, what it replaced.
    pub fn reclaimed(&self) -> Option<&Reclaimed> {
        self.ep.reclaimed.as_ref()
    }

    /// Sends `value` if there is room.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when full; [`Error::PeerGone`] when every consumer that
    /// attached has died; [`Error::Closed`].
    pub fn try_send(&mut self, value: T) -> Result<()>
    where
        T: Pod,
    {
        send_now(&mut self.tx, &mut self.ep, value)
    }

    /// Sends `value`, waiting for room until `deadline` (`None`: no limit).
    ///
    /// # Errors
    ///
    /// As [`MpmcSender::try_send`], [`Error::PeerHung`], [`Error::Timeout`].
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

    /// Closes the channel for everyone: consumers drain it, then get [`Error::Closed`].
    pub fn close(&mut self) {
        self.tx.close();
    }
}

impl<T: Element> Drop for MpmcSender<T> {
    fn drop(&mut self) {
        // The last live producer out closes, so receivers drain and then get `Closed`.
        if self.ep.leave_and_check_last() {
            self.tx.close();
        }
    }
}

channel_end! {
    /// A receiving end of an MPMC channel.
    typed MpmcReceiver, rx: mpmc::Consumer<T>
}

impl<T: Element> MpmcReceiver<T> {
    /// Receives a message if one is there.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when empty; once empty for good, [`Error::Closed`] or
    /// [`Error::PeerGone`] (every producer that attached died).
    pub fn try_recv(&mut self) -> Result<T>
    where
        T: Pod,
    {
        recv_now(&mut self.rx, &mut self.ep)
    }

    /// Receives a message, waiting until `deadline` (`None`: no limit).
    ///
    /// # Errors
    ///
    /// As [`MpmcReceiver::try_recv`], [`Error::PeerHung`], [`Error::Timeout`].
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
}

impl<T: Element> MpmcReceiver<T> {
    /// Closes the channel for everyone, as [`MpmcSender::close`] does: producers get
    /// [`Error::Closed`], consumers drain what is there first.
    pub fn close(&mut self) {
        self.rx.close();
    }
}

impl<T: Element> Drop for MpmcReceiver<T> {
    fn drop(&mut self) {
        // The last live consumer out closes, so a sender blocked for space gets `Closed`
        // (as the typed channel's sender does) instead of waiting for nobody.
        if self.ep.leave_and_check_last() {
            self.rx.close();
        }
    }
}
