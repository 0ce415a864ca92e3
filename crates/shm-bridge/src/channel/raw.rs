//! The ends of typed and MPMC channels whose element type is given at run time
//! ([`Raw`]): they move whole elements as bytes, for the C and Python bindings and any
//! program that shares a channel with one. One implementation serves both kinds (their
//! ring handles have the same raw calls); the waiting, the peer checks and the errors are
//! the typed ends' own.

use super::*;

/// The raw calls of a sending end (`Sender<Raw>`, `MpmcSender<Raw>`) and a receiving end
/// (`Receiver<Raw>`, `MpmcReceiver<Raw>`).
macro_rules! raw_ends {
    ($sender:ident, $receiver:ident) => {
        impl $sender<Raw> {
            /// Bytes per element.
            pub fn element_size(&self) -> usize {
                self.tx.element_size()
            }

            /// Sends as many whole elements from the front of `bytes` as there is room for
            /// (one publication); returns how many elements.
            ///
            /// # Errors
            ///
            /// [`Error::WouldBlock`] when not even one fits; [`Error::Queue`] wrapping
            /// `NotWholeElements` when `bytes` is not a whole number of elements (nothing
            /// sent); [`Error::PeerGone`] once the consumer died; [`Error::Closed`].
            #[must_use = "the call may do only part of the work: check how many it did"]
            pub fn try_send_bytes(&mut self, bytes: &[u8]) -> Result<usize> {
                if self.ep.tick() {
                    sender_check(&self.ep, self.tx.is_closed())?;
                }
                let r = self.tx.push_partial_bytes(bytes);
                match r {
                    Ok(0) if !bytes.is_empty() => {
                        let full = shm_queue::Error::Full {
                            requested: 1,
                            available: 0,
                        };
                        let closed = self.tx.is_closed();
                        Err(sender_error(&mut self.ep, full, closed))
                    }
                    Ok(n) => {
                        self.ep.messages += n as u64;
                        Ok(n)
                    }
                    Err(e) => {
                        let closed = self.tx.is_closed();
                        Err(sender_error(&mut self.ep, e.into(), closed))
                    }
                }
            }

            /// Sends every element of `bytes`, waiting for room as long as it takes.
            ///
            /// # Errors
            ///
            /// As [`Self::send_bytes_deadline`], without the count.
            pub fn send_bytes(&mut self, bytes: &[u8]) -> Result<()> {
                self.send_bytes_deadline(bytes, None).map_err(|(_, e)| e)
            }

            /// Sends every element of `bytes`, in batches as room appears, waiting until
            /// `deadline` (`None`: no limit).
            ///
            /// # Errors
            ///
            /// `(sent, error)`: how many elements went before [`Error::Timeout`],
            /// [`Error::PeerGone`], [`Error::Closed`], [`Error::PeerHung`] or a bad length
            /// stopped it.
            pub fn send_bytes_deadline(
                &mut self,
                bytes: &[u8],
                deadline: Option<Instant>,
            ) -> std::result::Result<(), (usize, Error)> {
                let size = self.element_size();
                let mut done = match self.try_send_bytes(bytes) {
                    Ok(n) => n,
                    Err(Error::WouldBlock { .. }) => 0,
                    Err(e) => return Err((0, e)),
                };
                let first = done;
                if done * size == bytes.len() {
                    return Ok(());
                }
                let tx = &mut self.tx;
                let r = wait_loop(&mut self.ep, deadline, |d| {
                    match tx.push_bytes_blocking(&bytes[done * size..], Some(d)) {
                        Ok(()) => {
                            done = bytes.len() / size;
                            Ok(())
                        }
                        Err((k, e)) => {
                            done += k;
                            Err(e)
                        }
                    }
                });
                self.ep.messages += (done - first) as u64;
                r.map_err(|e| (done, e))
            }
        }

        impl $receiver<Raw> {
            /// Bytes per element.
            pub fn element_size(&self) -> usize {
                self.rx.element_size()
            }

            /// Receives as many waiting elements as fit whole in `dst`, into its front;
            /// returns how many elements.
            ///
            /// # Errors
            ///
            /// [`Error::WouldBlock`] when none is waiting; once empty for good,
            /// [`Error::Closed`] or [`Error::PeerGone`]; [`Error::Queue`] wrapping
            /// `NotWholeElements` for a `dst` shorter than one element.
            #[must_use = "the call may do only part of the work: check how many it did"]
            pub fn try_recv_bytes_into(&mut self, dst: &mut [u8]) -> Result<usize> {
                let r = self.rx.pop_partial_into(dst);
                let e = match r {
                    Ok(0) => shm_queue::Error::Empty {
                        requested: 1,
                        available: 0,
                    },
                    Ok(n) => {
                        self.ep.messages += n as u64;
                        self.ep.tick();
                        return Ok(n);
                    }
                    Err(shm_queue::TryError::Empty { .. }) => shm_queue::Error::Empty {
                        requested: 1,
                        available: 0,
                    },
                    Err(e) => e.into(),
                };
                let rx = &self.rx;
                Err(recv_error(&mut self.ep, e, rx.is_closed(), || {
                    !rx.is_empty()
                }))
            }

            /// Receives at least one element, waiting as long as it takes, then as many
            /// more as are waiting and fit whole in `dst`; returns how many elements.
            ///
            /// # Errors
            ///
            /// As [`Self::recv_bytes_into_deadline`].
            pub fn recv_bytes_into(&mut self, dst: &mut [u8]) -> Result<usize> {
                self.recv_bytes_into_deadline(dst, None)
            }

            /// As [`Self::recv_bytes_into`], waiting until `deadline` (`None`: no limit).
            ///
            /// # Errors
            ///
            /// [`Error::Closed`], [`Error::PeerGone`], [`Error::PeerHung`] (retryable),
            /// [`Error::Timeout`], and those of [`Self::try_recv_bytes_into`].
            pub fn recv_bytes_into_deadline(
                &mut self,
                dst: &mut [u8],
                deadline: Option<Instant>,
            ) -> Result<usize> {
                match self.try_recv_bytes_into(dst) {
                    Err(Error::WouldBlock { .. }) => {}
                    other => return other,
                }
                let rx = &mut self.rx;
                let n = wait_loop(&mut self.ep, deadline, |d| {
                    rx.pop_into_blocking(dst, Some(d))
                })?;
                self.ep.messages += n as u64;
                Ok(n)
            }
        }
    };
}

raw_ends!(Sender, Receiver);
raw_ends!(MpmcSender, MpmcReceiver);
