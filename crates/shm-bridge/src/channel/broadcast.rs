//! Broadcast channels: one [`BroadcastSender`], any number of [`BroadcastReceiver`]s (up to
//! the channel's `subscribers`), in any processes; every receiver gets every message sent
//! after it connected, at its own pace.

use super::*;
use shm_queue::broadcast::{self, Start, SubscriberInfo};

/// The sending end of a broadcast channel (made by [`ChannelOptions::create_broadcast`]).
///
/// A subscriber that dies never blocks it: its entry is freed once it holds the sender up
/// (the kernel's lock on its participant slot says it died). A live subscriber that stops
/// reading holds a lossless channel up until it reads, or until the channel's eviction time
/// if it has one; a lossy channel never waits. Dropping the sender closes the channel:
/// receivers drain it, then get [`Error::Closed`].
#[derive(Debug)]
pub struct BroadcastSender<T: Element> {
    pub(super) tx: broadcast::Publisher<T>,
    pub(super) ring: broadcast::Ring<T>,
    pub(super) ep: Endpoint,
}

impl<T: Element> BroadcastSender<T> {
    endpoint_methods!(own wait_for_peer);

    /// Waits until a receiver has joined the ring, up to `timeout`: what is sent after
    /// `Ok` reaches it. (A receiver's process attaches to the channel a moment before it
    /// joins the ring; waiting for the attachment alone could send messages it never
    /// sees.) The ring shows a receiver as joined only once the position it starts at is
    /// fixed, so the first message sent after `Ok` is at or after it. An evicted receiver
    /// does not count: it re-joins at the newest message.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], or [`Error::PeerGone`] if every receiver that attached died.
    pub fn wait_for_peer(&self, timeout: Duration) -> Result<()> {
        self.ep.wait_for_peer(timeout, || {
            self.ring
                .subscribers()
                .iter()
                .any(|s| s.state == broadcast::SubscriberState::Live)
        })
    }

    /// If creating replaced a stale channel under the same name, what it replaced.
    pub fn reclaimed(&self) -> Option<&Reclaimed> {
        self.ep.reclaimed.as_ref()
    }

    #[cold]
    pub(super) fn error(&mut self, e: shm_queue::Error) -> Error {
        if self.tx.is_closed() {
            return closed(&self.ep);
        }
        ring_error(&self.ep, e, Duration::ZERO)
    }

    /// The subscribers now connected: their positions, losses and states.
    pub fn subscribers(&self) -> Vec<SubscriberInfo> {
        self.ring.subscribers()
    }

    /// What the channel has done: messages published, evictions, dead subscribers freed.
    pub fn stats(&self) -> broadcast::Stats {
        self.ring.stats()
    }

    /// The subscriber holding a lossless channel up, as of the sender's last look:
    /// `(entry, token, position)`.
    pub fn gated_by(&self) -> Option<(usize, u64, u64)> {
        self.tx.gated_by()
    }

    /// Closes the channel: receivers drain it, then get [`Error::Closed`].
    pub fn close(&mut self) {
        self.tx.close();
    }
}

impl<T: Pod> BroadcastSender<T> {
    /// Sends `value` if there is room (always, on a lossy channel).
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] while the slowest live subscriber is a whole ring behind (a
    /// lossless channel); [`Error::Closed`] once closed.
    #[inline]
    pub fn try_send(&mut self, value: T) -> Result<()> {
        match self.tx.try_push(value) {
            Ok(()) => {
                self.ep.messages += 1;
                self.ep.tick();
                Ok(())
            }
            Err(e) => Err(self.error(e.into())),
        }
    }

    /// Sends `value`, waiting for room (see [`BroadcastSender::send_deadline`]).
    ///
    /// # Errors
    ///
    /// As [`BroadcastSender::send_deadline`].
    pub fn send(&mut self, value: T) -> Result<()> {
        self.send_deadline(value, None)
    }

    /// Sends `value`, waiting until `deadline` (`None`: no limit) while a live subscriber
    /// holds a lossless channel up.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] at the deadline, [`Error::Closed`].
    pub fn send_deadline(&mut self, value: T, deadline: Option<Instant>) -> Result<()> {
        match self.try_send(value) {
            Err(Error::WouldBlock { .. }) => {}
            other => return other,
        }
        let tx = &mut self.tx;
        wait_slices(&mut self.ep, deadline, false, |d| {
            tx.push_blocking(value, Some(d))
        })?;
        self.ep.messages += 1;
        Ok(())
    }

    /// Sends as many of `values` as there is room for, published together; returns how
    /// many (0 when the channel is full).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`], or a broken ring.
    pub fn send_partial_slice(&mut self, values: &[T]) -> Result<usize> {
        match self.tx.push_partial_slice(values) {
            Ok(n) => {
                self.ep.messages += n as u64;
                self.ep.tick();
                if n == 0 && self.tx.is_closed() {
                    return Err(closed(&self.ep));
                }
                Ok(n)
            }
            Err(e) => Err(self.error(e.into())),
        }
    }
}

impl BroadcastSender<Raw> {
    /// Bytes per element.
    pub fn element_size(&self) -> usize {
        self.ring.element_size()
    }

    /// Sends as many whole elements of `bytes` as there is room for, published together;
    /// returns how many elements.
    ///
    /// # Errors
    ///
    /// [`Error::Queue`] with `NotWholeElements` for a partial element; [`Error::Closed`].
    pub fn try_send_bytes(&mut self, bytes: &[u8]) -> Result<usize> {
        match self.tx.push_partial_bytes(bytes) {
            Ok(n) => {
                self.ep.messages += n as u64;
                self.ep.tick();
                if n == 0 && self.tx.is_closed() {
                    return Err(closed(&self.ep));
                }
                Ok(n)
            }
            Err(e) => Err(self.error(e.into())),
        }
    }

    /// Sends every element of `bytes`, waiting for room until `deadline` (`None`: no
    /// limit).
    ///
    /// # Errors
    ///
    /// `(sent, error)`: how many elements went before [`Error::Timeout`],
    /// [`Error::Closed`] or a bad length stopped it.
    pub fn send_bytes_deadline(
        &mut self,
        bytes: &[u8],
        deadline: Option<Instant>,
    ) -> std::result::Result<(), (usize, Error)> {
        let size = self.element_size();
        let mut done = 0;
        let tx = &mut self.tx;
        let r = wait_slices(&mut self.ep, deadline, false, |d| {
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
        self.ep.messages += done as u64;
        r.map_err(|e| (done, e))
    }
}

impl<T: Element> Drop for BroadcastSender<T> {
    fn drop(&mut self) {
        self.tx.close();
    }
}

/// A receiving end of a broadcast channel (made by
/// [`ChannelOptions::connect_subscriber`]): every message sent after it connected (or some
/// before, with [`ChannelOptions::history`]), in order, unless it falls behind: then
/// [`Error::Lost`] says how many it lost, once, and it carries on.
#[derive(Debug)]
pub struct BroadcastReceiver<T: Element> {
    pub(super) rx: broadcast::Subscriber<T>,
    pub(super) ep: Endpoint,
}

impl<T: Pod> PopRing for broadcast::Subscriber<T> {
    type Item = T;
    #[inline]
    fn try_pop(&mut self) -> std::result::Result<T, shm_queue::TryError> {
        self.try_recv()
    }
    fn is_closed(&self) -> bool {
        broadcast::Subscriber::is_closed(self)
    }
    fn is_empty(&self) -> bool {
        broadcast::Subscriber::is_empty(self)
    }
}

impl<T: Element> BroadcastReceiver<T> {
    endpoint_methods!();

    /// Messages this receiver lost (overtaken or evicted) since it connected.
    pub fn missed(&self) -> u64 {
        self.rx.missed()
    }

    /// Messages of the requested history overwritten before it could read them.
    pub fn history_lost(&self) -> u64 {
        self.rx.history_lost()
    }

    /// Messages published that it has not read yet.
    pub fn lag(&self) -> u64 {
        self.rx.lag()
    }

    /// The next message it reads, counted from the channel's first.
    pub fn position(&self) -> u64 {
        self.rx.position()
    }

    /// The ring's subscriber, for calls this wrapper does not offer.
    pub fn ring(&mut self) -> &mut broadcast::Subscriber<T> {
        &mut self.rx
    }
}

impl<T: Pod> BroadcastReceiver<T> {
    /// Receives a message if one is there.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when it has read everything; once the sender is gone and
    /// everything is read, [`Error::Closed`] or [`Error::PeerGone`]; [`Error::Lost`] when
    /// it fell behind (the next call goes on).
    #[inline]
    pub fn try_recv(&mut self) -> Result<T> {
        recv_now(&mut self.rx, &mut self.ep)
    }

    /// Receives a message, waiting as long as needed.
    ///
    /// # Errors
    ///
    /// As [`BroadcastReceiver::recv_deadline`].
    pub fn recv(&mut self) -> Result<T> {
        self.recv_deadline(None)
    }

    /// Receives a message, waiting until `deadline` (`None`: no limit).
    ///
    /// # Errors
    ///
    /// As [`BroadcastReceiver::try_recv`], [`Error::PeerHung`], [`Error::Timeout`].
    pub fn recv_deadline(&mut self, deadline: Option<Instant>) -> Result<T> {
        // The fast path, without the wait loop's set-up; a loss is reported, not skipped.
        match self.rx.try_recv() {
            Ok(v) => {
                self.ep.messages += 1;
                self.ep.tick();
                return Ok(v);
            }
            Err(e) if e.is_retryable() => {}
            Err(e) => return Err(ring_error(&self.ep, e.into(), Duration::ZERO)),
        }
        let rx = &mut self.rx;
        let v = wait_loop(&mut self.ep, deadline, |d| rx.recv_blocking(Some(d)))?;
        self.ep.messages += 1;
        Ok(v)
    }

    /// Receives what is there, up to `out.len()`, waiting until `deadline` for at least
    /// one message; returns how many.
    ///
    /// # Errors
    ///
    /// As [`BroadcastReceiver::recv_deadline`].
    pub fn recv_slice_deadline(
        &mut self,
        out: &mut [T],
        deadline: Option<Instant>,
    ) -> Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let rx = &mut self.rx;
        let n = wait_loop(&mut self.ep, deadline, |d| {
            rx.recv_partial_slice_blocking(out, Some(d))
        })?;
        self.ep.messages += n as u64;
        Ok(n)
    }
}

impl BroadcastReceiver<Raw> {
    /// Bytes per element.
    pub fn element_size(&self) -> usize {
        self.rx.element_size()
    }

    /// Receives as many ready elements as fit whole in `out`; returns how many elements.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when it has read everything, [`Error::Lost`], and as
    /// [`BroadcastReceiver::try_recv`].
    pub fn try_recv_bytes_into(&mut self, out: &mut [u8]) -> Result<usize> {
        match self.rx.recv_partial_into(out) {
            Ok(0) => {
                let closed_now = self.rx.is_closed();
                let empty = shm_queue::TryError::Empty {
                    requested: 1,
                    available: 0,
                };
                let rx = &self.rx;
                Err(recv_error(&mut self.ep, empty.into(), closed_now, || {
                    !rx.is_empty()
                }))
            }
            Ok(n) => {
                self.ep.messages += n as u64;
                self.ep.tick();
                Ok(n)
            }
            Err(e) => Err(ring_error(&self.ep, e.into(), Duration::ZERO)),
        }
    }

    /// Waits until `deadline` for at least one element, then receives what is ready and
    /// fits whole in `out`; returns how many elements.
    ///
    /// # Errors
    ///
    /// As [`BroadcastReceiver::recv_deadline`].
    pub fn recv_bytes_into_deadline(
        &mut self,
        out: &mut [u8],
        deadline: Option<Instant>,
    ) -> Result<usize> {
        let rx = &mut self.rx;
        let n = wait_loop(&mut self.ep, deadline, |d| {
            rx.recv_into_blocking(out, Some(d))
        })?;
        self.ep.messages += n as u64;
        Ok(n)
    }
}

impl ChannelOptions {
    fn broadcast_options(&self, name: &str) -> Result<broadcast::Options> {
        if !(1..MAX_SLOTS).contains(&self.subscribers) {
            return Err(self.bad(
                name,
                format!(
                    "{} subscribers is not between 1 and {}",
                    self.subscribers,
                    MAX_SLOTS - 1
                ),
            ));
        }
        Ok(broadcast::Options::new(self.capacity.unwrap_or(1024))
            .subscribers(self.subscribers)
            .mode(self.broadcast_mode))
    }

    /// Creates broadcast channel `name` and returns its sending end; receivers connect with
    /// [`ChannelOptions::connect_subscriber`]. The builder's [`ChannelOptions::subscribers`],
    /// [`ChannelOptions::lossy`] and [`ChannelOptions::slow_policy`] shape it.
    ///
    /// # Errors
    ///
    /// As [`ChannelOptions::create`]; [`Error::BadConfig`] for a subscriber count out of
    /// range.
    ///
    /// ```
    /// use shm_bridge::ChannelOptions;
    /// # let name = format!("doc-broadcast-{}", std::process::id());
    /// let opts = ChannelOptions::new().capacity(256).subscribers(4);
    /// let mut tx = opts.create_broadcast::<u64>(&name)?;
    /// // In other processes (here the same one, for the example):
    /// let mut a = opts.connect_subscriber::<u64>(&name)?;
    /// let mut b = opts.connect_subscriber::<u64>(&name)?;
    /// tx.send(7)?;
    /// assert_eq!((a.recv()?, b.recv()?), (7, 7));
    /// drop(tx); // closes: receivers drain, then see Closed
    /// assert!(a.recv().unwrap_err().is_disconnected());
    /// # Ok::<(), shm_bridge::Error>(())
    /// ```
    pub fn create_broadcast<T: Pod>(&self, name: &str) -> Result<BroadcastSender<T>> {
        self.create_broadcast_elem(name, &self.element_of::<T>(name)?)
    }

    /// Creates broadcast channel `name` of elements of type `elem` given at run time; the
    /// sending end sends whole elements as bytes (see [`ChannelOptions::create_raw`]).
    ///
    /// # Errors
    ///
    /// As [`ChannelOptions::create_broadcast`].
    pub fn create_broadcast_raw(
        &self,
        name: &str,
        elem: &ElementType,
    ) -> Result<BroadcastSender<Raw>> {
        self.create_broadcast_elem(name, elem)
    }

    pub(super) fn create_broadcast_elem<T: Element>(
        &self,
        name: &str,
        elem: &ElementType,
    ) -> Result<BroadcastSender<T>> {
        let opts = self.broadcast_options(name)?;
        let bytes = broadcast::Ring::<T>::required_bytes_as(elem, &opts)
            .map_err(|e| Error::queue(name, e, Duration::ZERO))?;
        let layout = self.element_layout(
            elem,
            ChannelKind::Broadcast,
            bytes,
            self.subscribers as u32 + 1,
        );
        let (ep, ring) = Endpoint::create(name, layout, &self.common, |r| {
            broadcast::Ring::<T>::create_as(r, elem, opts)
        })?;
        let tx = ring
            .publisher()
            .map_err(|e| Error::queue(name, e, Duration::ZERO))?;
        let mut tx = tx.with_recovery(SlotLiveness::new(&ep), Duration::ZERO);
        tx.set_wait_strategy(self.wait);
        Ok(BroadcastSender { tx, ring, ep })
    }

    /// Connects to broadcast channel `name` as a new subscriber, starting with the next
    /// message sent (or with up to [`ChannelOptions::history`] earlier ones still in the
    /// ring).
    ///
    /// # Errors
    ///
    /// As [`ChannelOptions::connect`]; [`Error::InUse`] when every subscriber slot is taken.
    pub fn connect_subscriber<T: Pod>(&self, name: &str) -> Result<BroadcastReceiver<T>> {
        self.connect_subscriber_elem(name, &self.element_of::<T>(name)?)
    }

    /// Connects to broadcast channel `name`, whose elements must be of type `elem`, as a new
    /// subscriber receiving whole elements as bytes.
    ///
    /// # Errors
    ///
    /// As [`ChannelOptions::connect_subscriber`].
    pub fn connect_subscriber_raw(
        &self,
        name: &str,
        elem: &ElementType,
    ) -> Result<BroadcastReceiver<Raw>> {
        self.connect_subscriber_elem(name, elem)
    }

    fn connect_subscriber_elem<T: Element>(
        &self,
        name: &str,
        elem: &ElementType,
    ) -> Result<BroadcastReceiver<T>> {
        self.connect_subscriber_with(
            name,
            |layout| check_element(name, layout, elem),
            |_| Ok(elem.clone()),
        )
    }

    /// Connects a subscriber to a channel whose layout `expect` accepts, attaching its
    /// ring with the element type `elem_of` gives for that layout.
    pub(super) fn connect_subscriber_with<T: Element>(
        &self,
        name: &str,
        expect: impl Fn(&Layout) -> Result<()>,
        elem_of: impl Fn(&Layout) -> Result<ElementType>,
    ) -> Result<BroadcastReceiver<T>> {
        let (ep, ring) = Endpoint::connect(
            name,
            ChannelKind::Broadcast,
            Role::Consumer,
            &self.common,
            self.timeout,
            expect,
            |region, layout| {
                let ring = broadcast::Ring::<T>::attach_as(region.clone(), &elem_of(layout)?)
                    .map_err(|e| Error::queue(name, e, Duration::ZERO))?;
                fits(name, ring.region(), Ok(ring.area_size()))?;
                Ok(ring)
            },
        )?;
        // Entries of subscribers that died free up (and give back their sleeper counts).
        ring.reclaim_dead_subscribers(&SlotLiveness::new(&ep));
        let start = match self.history {
            0 => Start::Newest,
            n => Start::History(n),
        };
        let mut rx = ring
            .subscriber_with_token(start, token(&ep))
            .map_err(|e| Error::queue(name, e, Duration::ZERO))?;
        rx.set_wait_strategy(self.wait);
        Ok(BroadcastReceiver { rx, ep })
    }
}
