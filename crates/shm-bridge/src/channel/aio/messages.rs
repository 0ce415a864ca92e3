//! Async ends of byte-message broadcast channels: [`AsyncMessageReceiver`] and
//! [`AsyncMessageSender`], made by `into_async_messages()` on a
//! [`BroadcastReceiver<Raw>`] or [`BroadcastSender<Raw>`] from
//! [`ChannelOptions::connect_subscriber_bytes`](crate::ChannelOptions::connect_subscriber_bytes)
//! and [`create_broadcast_bytes`](crate::ChannelOptions::create_broadcast_bytes). They wait
//! as every async end does (the module docs of [`crate::aio`]).

use super::*;
use shm_queue::broadcast::MessageGuard;

/// The async receiving end of a byte-message broadcast channel:
/// [`BroadcastReceiver::into_async_messages`]. A loss ([`Error::Lost`]) is an item of its
/// `Stream`, which goes on after it.
#[derive(Debug)]
pub struct AsyncMessageReceiver {
    inner: BroadcastReceiver<Raw>,
    w: Waiting,
    /// The `Stream` has ended (closed, or a publisher death or corruption reported once).
    ended: bool,
}

/// The async sending end of a byte-message broadcast channel:
/// [`BroadcastSender::into_async_messages`]; it waits only while a live subscriber holds a
/// lossless channel up.
#[derive(Debug)]
pub struct AsyncMessageSender {
    inner: BroadcastSender<Raw>,
    w: Waiting,
    /// A message accepted by the `Sink` and not sent yet.
    pending: Option<Vec<u8>>,
}

impl BroadcastReceiver<Raw> {
    /// This byte-message subscriber as an async end ([`crate::aio`]). It now counts as a
    /// sleeper (its wait strategy becomes [`WaitStrategy::blocking`]), so the publisher
    /// wakes it.
    ///
    /// ```
    /// # use shm_bridge::ChannelOptions;
    /// # let name = format!("doc-aio-messages-{}", std::process::id());
    /// let opts = ChannelOptions::new().capacity(64).max_message(128);
    /// let mut tx = opts.create_broadcast_bytes(&name)?.into_async_messages();
    /// let mut rx = opts.connect_subscriber_bytes(&name)?.into_async_messages();
    /// tx.try_send_message(b"tick")?; // or tx.send_message(b"tick").await
    /// let mut buf = [0u8; 128];
    /// // In an async fn: let got = rx.recv_message(&mut buf).await?;
    /// // here, polled once by hand (the message is there, so the first poll takes it):
    /// use std::future::Future;
    /// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// let std::task::Poll::Ready(got) = std::pin::pin!(rx.recv_message(&mut buf)).poll(&mut cx)
    /// else {
    ///     unreachable!("a ready message is taken on the first poll")
    /// };
    /// assert_eq!(&buf[..got?], b"tick");
    /// # Ok::<(), shm_bridge::Error>(())
    /// ```
    pub fn into_async_messages(mut self) -> AsyncMessageReceiver {
        self.rx.set_wait_strategy(WaitStrategy::blocking());
        AsyncMessageReceiver {
            inner: self,
            w: Waiting::default(),
            ended: false,
        }
    }
}

impl BroadcastSender<Raw> {
    /// This byte-message publisher as an async end ([`crate::aio`]); see
    /// [`BroadcastReceiver::into_async_messages`].
    pub fn into_async_messages(mut self) -> AsyncMessageSender {
        self.tx.set_wait_strategy(WaitStrategy::blocking());
        AsyncMessageSender {
            inner: self,
            w: Waiting::default(),
            pending: None,
        }
    }
}

impl Unpin for AsyncMessageReceiver {}
impl Unpin for AsyncMessageSender {}

impl AsyncMessageReceiver {
    /// Receives the next message into `buf`, waiting as the module docs say; returns its
    /// length. A message longer than `buf` stays in the channel ([`Error::Queue`] wrapping
    /// `BufferTooSmall`).
    ///
    /// Cancellation safe: a future dropped before it completed took nothing.
    ///
    /// # Errors
    ///
    /// As [`BroadcastReceiver::recv_message_deadline`], without `Timeout`.
    pub async fn recv_message(&mut self, buf: &mut [u8]) -> Result<usize> {
        poll_fn(|cx| {
            self.w
                .poll(cx, &mut self.inner, |r| r.try_recv_message(buf))
        })
        .await
    }

    /// Receives the next message into `buf`, resized to it.
    ///
    /// # Errors
    ///
    /// As [`AsyncMessageReceiver::recv_message`].
    pub async fn recv_message_vec(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        poll_fn(|cx| self.poll_recv_vec(cx, buf)).await
    }

    fn poll_recv_vec(&mut self, cx: &mut Context<'_>, buf: &mut Vec<u8>) -> Poll<Result<usize>> {
        buf.resize(self.inner.max_message(), 0);
        let r = self
            .w
            .poll(cx, &mut self.inner, |r| r.try_recv_message(buf));
        buf.truncate(match &r {
            Poll::Ready(Ok(n)) => *n,
            _ => 0,
        });
        r
    }

    /// Waits for the next message and gives it in place; release the guard with
    /// [`MessageGuard::release`], which says whether what was read was intact (a lossy or
    /// evicting channel may overwrite it meanwhile).
    ///
    /// Cancellation safe: a future dropped before it completed took nothing.
    ///
    /// # Errors
    ///
    /// As [`AsyncMessageReceiver::recv_message`].
    pub async fn read_message(&mut self) -> Result<MessageGuard<'_>> {
        poll_fn(|cx| {
            self.w.poll(cx, &mut self.inner, |r| {
                // Ready, or a loss to report: the ring's own wait with a deadline of now
                // takes nothing.
                match r.ring().wait_for_message(Some(Instant::now())) {
                    Ok(()) => Ok(()),
                    Err(shm_queue::Error::Timeout { .. }) => Err(Error::WouldBlock {
                        name: r.ep.name.clone(),
                        what: "empty",
                    }),
                    // A loss (reported once: this is the report), closed and drained, or
                    // corrupt.
                    Err(e) => Err(ring_error(&r.ep, e, Duration::ZERO)),
                }
            })
        })
        .await?;
        self.inner.read_message_deadline(Some(Instant::now()))
    }

    /// Receives a message into `buf` if one is there, without waiting.
    ///
    /// # Errors
    ///
    /// As [`BroadcastReceiver::try_recv_message`].
    pub fn try_recv_message(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.inner.try_recv_message(buf)
    }

    async_common!(BroadcastReceiver<Raw>);
}

vec_stream!(AsyncMessageReceiver);

impl AsyncMessageSender {
    /// Sends `msg` as one message, waiting (on a lossless channel) while a live subscriber
    /// holds the channel up.
    ///
    /// Cancellation safe: a future dropped before it completed sent nothing.
    ///
    /// # Errors
    ///
    /// As [`BroadcastSender::send_message_deadline`], without `Timeout`.
    pub async fn send_message(&mut self, msg: &[u8]) -> Result<()> {
        poll_fn(|cx| {
            self.w
                .poll(cx, &mut self.inner, |t| t.try_send_message(msg))
        })
        .await
    }

    /// Sends `msg` if there is room, without waiting.
    ///
    /// # Errors
    ///
    /// As [`BroadcastSender::try_send_message`].
    pub fn try_send_message(&mut self, msg: &[u8]) -> Result<()> {
        self.inner.try_send_message(msg)
    }

    /// The largest message the channel carries.
    pub fn max_message(&self) -> usize {
        self.inner.max_message()
    }

    async_common!(BroadcastSender<Raw>);
}

message_sink!(AsyncMessageSender, try_send_message);

fn _assert_send() {
    fn is_send<X: Send>() {}
    is_send::<AsyncMessageReceiver>();
    is_send::<AsyncMessageSender>();
}
