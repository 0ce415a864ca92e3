//! Byte-message broadcast channels: a [`BroadcastSender<Raw>`] and
//! [`BroadcastReceiver<Raw>`]s whose elements are message slots
//! ([`shm_queue::broadcast::message_type`]): each message of up to the channel's maximum
//! is written once, and each receiver copies it out or reads it in place.

use super::*;
use shm_queue::broadcast::{message_type, MessageGuard, MESSAGE_HEADER, MESSAGE_TYPE_NAME};

impl BroadcastSender<Raw> {
    /// The largest message a byte-message channel carries.
    pub fn max_message(&self) -> usize {
        self.tx.max_message()
    }

    /// Sends `msg` as one message if there is room (always, on a lossy channel).
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] while the slowest live subscriber is a whole ring behind (a
    /// lossless channel); [`Error::Queue`] with `MessageTooLarge`; [`Error::Closed`].
    pub fn try_send_message(&mut self, msg: &[u8]) -> Result<()> {
        match self.tx.try_send_message(msg) {
            Ok(()) => {
                self.ep.messages += 1;
                self.ep.bytes += msg.len() as u64;
                self.ep.tick();
                Ok(())
            }
            Err(e) => Err(self.error(e.into())),
        }
    }

    /// Sends `msg`, waiting for room as long as it takes.
    ///
    /// # Errors
    ///
    /// As [`BroadcastSender::send_message_deadline`].
    pub fn send_message(&mut self, msg: &[u8]) -> Result<()> {
        self.send_message_deadline(msg, None)
    }

    /// Sends `msg`, waiting until `deadline` (`None`: no limit) while a live subscriber
    /// holds a lossless channel up.
    ///
    /// # Errors
    ///
    /// As [`BroadcastSender::try_send_message`], and [`Error::Timeout`].
    pub fn send_message_deadline(&mut self, msg: &[u8], deadline: Option<Instant>) -> Result<()> {
        match self.try_send_message(msg) {
            Err(Error::WouldBlock { .. }) => {}
            other => return other,
        }
        let tx = &mut self.tx;
        wait_slices(&mut self.ep, deadline, false, |d| {
            tx.send_message_blocking(msg, Some(d))
        })?;
        self.ep.messages += 1;
        self.ep.bytes += msg.len() as u64;
        Ok(())
    }
}

impl BroadcastReceiver<Raw> {
    /// The largest message a byte-message channel carries (a buffer this long always
    /// suffices).
    pub fn max_message(&self) -> usize {
        self.rx.max_message()
    }

    /// Receives the next message into `buf` if one is there; returns its length.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when it has read everything; [`Error::Queue`] with
    /// `BufferTooSmall` (the message stays); [`Error::Lost`] when it fell behind (the next
    /// call goes on); once the sender is gone and everything is read, [`Error::Closed`] or
    /// [`Error::PeerGone`].
    pub fn try_recv_message(&mut self, buf: &mut [u8]) -> Result<usize> {
        match self.rx.try_recv_message(buf) {
            Ok(n) => {
                self.ep.messages += 1;
                self.ep.bytes += n as u64;
                self.ep.tick();
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

    /// Receives the ready messages at once (up to `lens.len()`, and `buf.len() /
    /// max_message`), packed one after another into `buf` with their lengths in `lens`;
    /// returns how many (0 when none is ready).
    ///
    /// # Errors
    ///
    /// As [`BroadcastReceiver::try_recv_message`], except that nothing ready is `Ok(0)`;
    /// [`Error::Queue`] with `BufferTooSmall` if `buf` cannot hold one message of the
    /// channel's maximum.
    pub fn try_recv_messages(&mut self, buf: &mut [u8], lens: &mut [usize]) -> Result<usize> {
        match self.rx.try_recv_messages(buf, lens) {
            Ok(0) => {
                // Nothing ready: as an empty `try_recv_message`, but "would block" is Ok(0).
                let empty = shm_queue::TryError::Empty {
                    requested: 1,
                    available: 0,
                };
                let rx = &self.rx;
                match recv_error(&mut self.ep, empty.into(), rx.is_closed(), || {
                    !rx.is_empty()
                }) {
                    Error::WouldBlock { .. } => Ok(0),
                    e => Err(e),
                }
            }
            Ok(n) => {
                self.ep.messages += n as u64;
                self.ep.bytes += lens[..n].iter().sum::<usize>() as u64;
                self.ep.tick();
                Ok(n)
            }
            Err(e) => Err(ring_error(&self.ep, e.into(), Duration::ZERO)),
        }
    }

    /// Receives the next message into `buf`, waiting until `deadline` (`None`: no limit);
    /// returns its length.
    ///
    /// # Errors
    ///
    /// As [`BroadcastReceiver::try_recv_message`], [`Error::PeerHung`], [`Error::Timeout`].
    pub fn recv_message_deadline(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize> {
        match self.try_recv_message(buf) {
            Err(Error::WouldBlock { .. }) => {}
            other => return other,
        }
        let rx = &mut self.rx;
        let n = wait_loop(&mut self.ep, deadline, |d| {
            rx.recv_message_blocking(buf, Some(d))
        })?;
        self.ep.messages += 1;
        self.ep.bytes += n as u64;
        Ok(n)
    }

    /// Receives the next message into `buf` (resized to it), waiting until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`BroadcastReceiver::recv_message_deadline`].
    pub fn recv_message_vec(
        &mut self,
        buf: &mut Vec<u8>,
        deadline: Option<Instant>,
    ) -> Result<usize> {
        buf.resize(self.max_message(), 0);
        let r = self.recv_message_deadline(buf, deadline);
        buf.truncate(*r.as_ref().unwrap_or(&0));
        r
    }

    /// Waits until `deadline` for the next message and returns a guard over it in place.
    /// Release it with [`MessageGuard::release`], which says whether what was read was
    /// intact (a lossy or evicting channel may overwrite it meanwhile); until then this
    /// receiver holds a lossless channel's sender at that message.
    ///
    /// # Errors
    ///
    /// As [`BroadcastReceiver::recv_message_deadline`].
    pub fn read_message_deadline(&mut self, deadline: Option<Instant>) -> Result<MessageGuard<'_>> {
        let rx = &mut self.rx;
        wait_loop(&mut self.ep, deadline, |d| rx.wait_for_message(Some(d)))?;
        match self.rx.try_read_message() {
            Ok(guard) => {
                self.ep.messages += 1;
                self.ep.bytes += guard.len() as u64;
                Ok(guard)
            }
            Err(e) => Err(ring_error(&self.ep, e.into(), Duration::ZERO)),
        }
    }
}

impl ChannelOptions {
    /// Creates byte-message broadcast channel `name` (messages of up to
    /// [`ChannelOptions::max_message`] bytes, default 1024, rounded up to a multiple of 8)
    /// and returns its sending end; receivers connect with
    /// [`ChannelOptions::connect_subscriber_bytes`]. Each message takes one slot of the
    /// maximum's size in the ring, whatever its length.
    ///
    /// # Errors
    ///
    /// As [`ChannelOptions::create_broadcast`]; [`Error::BadConfig`] for a maximum over
    /// 2^30 - 8 bytes.
    ///
    /// ```
    /// use shm_bridge::ChannelOptions;
    /// # let name = format!("doc-broadcast-bytes-{}", std::process::id());
    /// let opts = ChannelOptions::new().capacity(64).max_message(256);
    /// let mut tx = opts.create_broadcast_bytes(&name)?;
    /// let mut rx = opts.connect_subscriber_bytes(&name)?;
    /// tx.send_message(b"tick 1")?;
    /// tx.send_message(b"tick 2")?;
    /// let mut buf = vec![0; rx.max_message()];
    /// let n = rx.recv_message_deadline(&mut buf, None)?;
    /// assert_eq!(&buf[..n], b"tick 1");
    /// let guard = rx.read_message_deadline(None)?; // in place
    /// let copy = guard.to_vec();
    /// guard.release().expect("intact");
    /// assert_eq!(copy, b"tick 2");
    /// # Ok::<(), shm_bridge::Error>(())
    /// ```
    pub fn create_broadcast_bytes(&self, name: &str) -> Result<BroadcastSender<Raw>> {
        let max = self.max_message.unwrap_or(1024);
        let elem = message_type(max).map_err(|_| {
            self.bad(
                name,
                format!("a maximum message of {max} bytes is over the limit of 2^30 - 8"),
            )
        })?;
        self.create_broadcast_elem(name, &elem)
    }

    /// Connects to byte-message broadcast channel `name` as a new subscriber (the maximum
    /// message size is the channel's, whatever this builder says).
    ///
    /// # Errors
    ///
    /// As [`ChannelOptions::connect_subscriber`]; [`Error::WrongKind`] for a broadcast
    /// channel of typed elements.
    pub fn connect_subscriber_bytes(&self, name: &str) -> Result<BroadcastReceiver<Raw>> {
        let elem_of = |layout: &Layout| {
            let max = (layout.elem_size as usize).saturating_sub(MESSAGE_HEADER);
            message_type(max).map_err(|e| Error::queue(name, e, Duration::ZERO))
        };
        self.connect_subscriber_with(
            name,
            |layout| {
                let ok = layout.type_name == MESSAGE_TYPE_NAME
                    && elem_of(layout).is_ok_and(|t| {
                        t.size() == layout.elem_size as usize
                            && t.align() == layout.elem_align as usize
                    });
                if ok {
                    return Ok(());
                }
                Err(Error::WrongKind {
                    name: name.to_owned(),
                    expected: "a broadcast channel of byte messages".into(),
                    found: format!(
                        "a {} channel of {:?} ({} bytes, align {}); connect with \
                         connect_subscriber::<T> (or the raw form) instead",
                        layout.kind, layout.type_name, layout.elem_size, layout.elem_align
                    ),
                })
            },
            elem_of,
        )
    }
}
