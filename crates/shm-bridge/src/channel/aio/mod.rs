//! Async ends of every channel kind (feature `async`, or its alias `tokio`): futures,
//! [`Stream`]s and [`Sink`]s over the same rings
//! and the same liveness as the blocking ends, for any executor (tokio, async-std, smol,
//! a hand-written one).
//!
//! # How an await waits
//!
//! 1. **The fast path.** Every poll first makes the non-blocking call (`try_recv`,
//!    `try_send`): on a ring that is ready, an await costs what that call costs, with no
//!    system call and no trip through the executor's reactor. Once every
//!    [`AsyncWait::budget`] ready results in a row it yields to the executor, so a busy end
//!    does not starve its thread's other tasks.
//! 2. **Spin, then yield.** When the ring is not ready, the poll retries a few times
//!    ([`AsyncWait::spins`]), then returns `Pending` after waking itself, a few times
//!    ([`AsyncWait::yields`]), so sibling branches of a `select!` and other tasks run.
//! 3. **Park.** Then it announces itself as a waiter on the ring's futex word, exactly as a
//!    blocking call does before it sleeps, tries once more, and hands the announced wait
//!    and the task's waker to a waiting thread of this process. That thread sleeps in one
//!    `futex_waitv` on up to 127 rings at once, and wakes the task when its ring is
//!    signalled. The other side pays the wake only while someone waits (one load of the
//!    sleeper count otherwise), as with the blocking calls.
//! 4. **Liveness.** A parked wait also fires after the liveness period (40 ms, the blocking
//!    calls' slice): the task then looks at the peer and returns `PeerGone`, `PeerHung` or
//!    `Closed` as the blocking calls would.
//!
//! # Cancellation
//!
//! Every call is cancellation safe. A message leaves or enters the ring only inside the
//! poll that returns it: a `recv()` future dropped before it completed took nothing, and a
//! `send()` future dropped before it completed sent nothing. The waiting state belongs to
//! the end, not the future, so the next call picks it up.
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "async")] {
//! use shm_bridge::ChannelOptions;
//! # let name = format!("doc-aio-{}", std::process::id());
//! let opts = ChannelOptions::new().capacity(64);
//! let mut tx = opts.create::<u64>(&name)?.into_async();
//! let mut rx = opts.connect::<u64>(&name)?.into_async();
//! let got = futures_executor_lite(async move {
//!     tx.send(7).await?;
//!     rx.recv().await
//! })?;
//! assert_eq!(got, 7);
//! # fn futures_executor_lite<F: std::future::Future>(f: F) -> F::Output {
//! #     // A minimal executor for the doctest (the crate works with any).
//! #     use std::task::{Context, Poll, Wake, Waker};
//! #     use std::sync::Arc;
//! #     struct T(std::thread::Thread);
//! #     impl Wake for T { fn wake(self: Arc<Self>) { self.0.unpark() } }
//! #     let waker = Waker::from(Arc::new(T(std::thread::current())));
//! #     let mut cx = Context::from_waker(&waker);
//! #     let mut f = std::pin::pin!(f);
//! #     loop {
//! #         if let Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
//! #         std::thread::park();
//! #     }
//! # }
//! # }
//! # Ok::<(), shm_bridge::Error>(())
//! ```

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedStream, Stream};
use futures_sink::Sink;

use super::*;
use shm_queue::wait::AnnouncedWait;

mod park;

/// How an async end waits before it parks (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsyncWait {
    /// Retries of the ring inside one poll before the first yield (each a few tens of
    /// nanoseconds).
    pub spins: u32,
    /// `Pending` returns with an immediate self-wake before parking.
    pub yields: u32,
    /// Ready results in a row after which a poll yields once to the executor, so an end
    /// that is always ready does not starve the other tasks of its thread (0: never). A
    /// yield costs the executor a look at its I/O driver (a system call on tokio's
    /// current-thread runtime), hence a budget larger than tokio's own 128.
    pub budget: u32,
}

impl Default for AsyncWait {
    /// 256 spins and 4 yields (a peer that answers within a few microseconds is caught
    /// without parking), and a yield every 1024 ready results.
    fn default() -> Self {
        AsyncWait {
            spins: 256,
            yields: 4,
            budget: 1024,
        }
    }
}

impl AsyncWait {
    /// Park at once: no spinning, no yields (the lowest CPU use).
    pub fn park_at_once() -> Self {
        AsyncWait {
            spins: 0,
            yields: 0,
            ..Self::default()
        }
    }
}

/// Counters of an async end's waiting, for tests and tuning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AsyncStats {
    /// Waits handed to a waiting thread.
    pub parks: u64,
    /// Parked waits that fired because the ring was signalled or its period passed.
    pub wakes: u64,
    /// Yields made to the executor (in step 2, and one per [`AsyncWait::budget`] ready
    /// results in a row).
    pub yields: u64,
}

/// Where an end is in its wait.
#[derive(Debug, Default)]
enum Phase {
    /// Not waiting.
    #[default]
    Idle,
    /// Spun; `n` yields made.
    Yielded(u32),
    /// Parked with a waiting thread.
    Parked(park::Parked),
}

/// An end's waiting state (kept in the end, so a dropped future loses nothing).
#[derive(Debug, Default)]
struct Waiting {
    wait: AsyncWait,
    phase: Phase,
    /// Ready results in a row, for the self-imposed yield that keeps a busy end from
    /// starving the other tasks of its thread.
    streak: u32,
    stats: AsyncStats,
}

/// What the waiting engine needs from a channel end.
trait End {
    /// Announces a waiter on the end's side of the ring.
    fn announce(&self) -> AnnouncedWait;
    /// The peer's state, as blocking calls look at it between slices.
    fn peer_error(&mut self) -> Option<Error>;
}

macro_rules! end_impl {
    ([$($gen:tt)*] $ty:ty, $field:ident) => {
        impl<$($gen)*> End for $ty {
            fn announce(&self) -> AnnouncedWait {
                self.$field.announce_wait()
            }
            fn peer_error(&mut self) -> Option<Error> {
                self.ep.publish_counts();
                self.ep.peer_error()
            }
        }
    };
}
end_impl!([T: Element + Send] Receiver<T>, rx);
end_impl!([T: Element + Send] Sender<T>, tx);
end_impl!([T: Element + Send] MpmcReceiver<T>, rx);
end_impl!([T: Element + Send] MpmcSender<T>, tx);
end_impl!([] ByteReceiver, rx);
end_impl!([] ByteSender, tx);
end_impl!([T: Element + Send + Sync] BroadcastReceiver<T>, rx);

impl<T: Element + Send + Sync> End for BroadcastSender<T> {
    fn announce(&self) -> AnnouncedWait {
        self.tx.announce_wait()
    }
    /// A subscriber's death or hang is never the sender's error (a dead one's entry is
    /// freed, a hung one holds a lossless channel up as the channel's policy says); only a
    /// truncated file is.
    fn peer_error(&mut self) -> Option<Error> {
        self.ep.publish_counts();
        truncated(&self.ep)
    }
}

impl Waiting {
    /// Polls `attempt` (a non-blocking call whose `WouldBlock` means "not yet") on `end`
    /// through the steps of the module docs.
    fn poll<E: End, R>(
        &mut self,
        cx: &mut Context<'_>,
        end: &mut E,
        mut attempt: impl FnMut(&mut E) -> Result<R>,
    ) -> Poll<Result<R>> {
        let mut woken = false;
        if let Phase::Parked(p) = &self.phase {
            if !p.fired(cx.waker()) {
                return Poll::Pending;
            }
            self.stats.wakes += 1;
            self.phase = Phase::Idle;
            woken = true;
        } else if self.wait.budget != 0 && self.streak >= self.wait.budget {
            self.streak = 0;
            self.stats.yields += 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match attempt(end) {
            Err(Error::WouldBlock { .. }) => {}
            other => return self.done(other),
        }
        if woken {
            // Woken with nothing to take: a spurious wake, or the liveness period passed.
            if let Some(e) = end.peer_error() {
                // One more look: anything sent before the death is still delivered.
                return self.done(match attempt(end) {
                    Err(Error::WouldBlock { .. }) => Err(e),
                    other => other,
                });
            }
        }
        if let Phase::Idle = self.phase {
            if !woken {
                for _ in 0..self.wait.spins {
                    std::hint::spin_loop();
                    match attempt(end) {
                        Err(Error::WouldBlock { .. }) => {}
                        other => return self.done(other),
                    }
                }
            }
            self.phase = Phase::Yielded(0);
        }
        if let Phase::Yielded(n) = self.phase {
            if n < self.wait.yields && !woken {
                self.phase = Phase::Yielded(n + 1);
                self.stats.yields += 1;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        // Park: announce, look once more, and sleep only if that found nothing too.
        let announced = end.announce();
        match attempt(end) {
            Err(Error::WouldBlock { .. }) => {}
            other => return self.done(other),
        }
        let deadline = Instant::now() + WAIT_SLICE;
        self.phase = Phase::Parked(park::park(announced, cx.waker().clone(), deadline));
        self.stats.parks += 1;
        Poll::Pending
    }

    /// Ends a wait with `r`.
    fn done<R>(&mut self, r: Result<R>) -> Poll<Result<R>> {
        if !matches!(self.phase, Phase::Idle) {
            self.phase = Phase::Idle;
        }
        if r.is_ok() {
            self.streak += 1;
        } else {
            self.streak = 0;
        }
        Poll::Ready(r)
    }
}

/// The methods every async end has.
macro_rules! async_common {
    ($inner:ty) => {
        /// How this end waits before it parks.
        pub fn set_wait(&mut self, wait: AsyncWait) {
            self.w.wait = wait;
        }

        /// Counters of this end's waiting.
        pub fn stats(&self) -> AsyncStats {
            self.w.stats
        }

        /// The blocking end back (its wait strategy stays [`WaitStrategy::blocking`]).
        pub fn into_inner(self) -> $inner {
            self.inner
        }

        /// The blocking end, for its other calls (`peer_state`, `name`, ...).
        pub fn get_ref(&self) -> &$inner {
            &self.inner
        }
    };
}

macro_rules! into_async {
    ([$($gen:tt)*] $blocking:ty, $field:ident => $async:ident $(<$t:ident>)?) => {
        impl<$($gen)*> $blocking {
            /// This end as an async end ([`crate::aio`]). It now counts as a sleeper (its wait
            /// strategy becomes [`WaitStrategy::blocking`]), so the other side wakes it.
            pub fn into_async(mut self) -> $async $(<$t>)? {
                self.$field.set_wait_strategy(WaitStrategy::blocking());
                $async {
                    inner: self,
                    w: Waiting::default(),
                    ended: false,
                }
            }
        }
    };
}

/// The async receiving end of a typed channel: [`Receiver::into_async`].
#[derive(Debug)]
pub struct AsyncReceiver<T: Element> {
    inner: Receiver<T>,
    w: Waiting,
    /// The `Stream` has ended (closed, or a peer death or corruption reported once).
    ended: bool,
}

/// The async sending end of a typed channel: [`Sender::into_async`].
#[derive(Debug)]
pub struct AsyncSender<T: Element> {
    inner: Sender<T>,
    w: Waiting,
    /// An item accepted by the `Sink` and not sent yet.
    pending: Option<T>,
}

/// The async receiving end of an MPMC channel: [`MpmcReceiver::into_async`].
#[derive(Debug)]
pub struct AsyncMpmcReceiver<T: Element> {
    inner: MpmcReceiver<T>,
    w: Waiting,
    /// The `Stream` has ended (closed, or a peer death or corruption reported once).
    ended: bool,
}

/// The async sending end of an MPMC channel: [`MpmcSender::into_async`].
#[derive(Debug)]
pub struct AsyncMpmcSender<T: Element> {
    inner: MpmcSender<T>,
    w: Waiting,
    /// An item accepted by the `Sink` and not sent yet.
    pending: Option<T>,
}

/// The async receiving end of a byte channel: [`ByteReceiver::into_async`].
#[derive(Debug)]
pub struct AsyncByteReceiver {
    inner: ByteReceiver,
    w: Waiting,
    /// The `Stream` has ended (closed, or a peer death or corruption reported once).
    ended: bool,
}

/// The async sending end of a byte channel: [`ByteSender::into_async`].
#[derive(Debug)]
pub struct AsyncByteSender {
    inner: ByteSender,
    w: Waiting,
    /// A message accepted by the `Sink` and not sent yet.
    pending: Option<Vec<u8>>,
}

/// The async receiving end of a broadcast channel: [`BroadcastReceiver::into_async`]. A
/// loss ([`Error::Lost`]) is an item and the stream goes on.
#[derive(Debug)]
pub struct AsyncBroadcastReceiver<T: Pod> {
    inner: BroadcastReceiver<T>,
    w: Waiting,
    /// The `Stream` has ended (closed, or a publisher death or corruption reported once).
    ended: bool,
}

/// The async sending end of a broadcast channel: [`BroadcastSender::into_async`]; it waits
/// only while a live subscriber holds a lossless channel up.
#[derive(Debug)]
pub struct AsyncBroadcastSender<T: Pod> {
    inner: BroadcastSender<T>,
    w: Waiting,
    /// An item accepted by the `Sink` and not sent yet.
    pending: Option<T>,
}

impl<T: Pod> Unpin for AsyncBroadcastReceiver<T> {}
impl<T: Pod> Unpin for AsyncBroadcastSender<T> {}

into_async!([T: Pod + Send + Sync] BroadcastReceiver<T>, rx => AsyncBroadcastReceiver<T>);

impl<T: Pod + Send + Sync> BroadcastSender<T> {
    /// This end as an async end ([`crate::aio`]); see [`Sender::into_async`].
    pub fn into_async(mut self) -> AsyncBroadcastSender<T> {
        self.tx.set_wait_strategy(WaitStrategy::blocking());
        AsyncBroadcastSender {
            inner: self,
            w: Waiting::default(),
            pending: None,
        }
    }
}

into_async!([T: Pod + Send] Receiver<T>, rx => AsyncReceiver<T>);
into_async!([T: Pod + Send] MpmcReceiver<T>, rx => AsyncMpmcReceiver<T>);
into_async!([] ByteReceiver, rx => AsyncByteReceiver);

// The ends never pin what they hold (elements are copied in and out), so they are `Unpin`
// whatever the element type.
impl<T: Element> Unpin for AsyncReceiver<T> {}
impl<T: Element> Unpin for AsyncSender<T> {}
impl<T: Element> Unpin for AsyncMpmcReceiver<T> {}
impl<T: Element> Unpin for AsyncMpmcSender<T> {}

impl<T: Pod + Send> Sender<T> {
    /// This end as an async end ([`crate::aio`]). It now counts as a sleeper (its wait
    /// strategy becomes [`WaitStrategy::blocking`]), so the consumer wakes it when room
    /// appears.
    pub fn into_async(mut self) -> AsyncSender<T> {
        self.tx.set_wait_strategy(WaitStrategy::blocking());
        AsyncSender {
            inner: self,
            w: Waiting::default(),
            pending: None,
        }
    }
}

impl<T: Pod + Send> MpmcSender<T> {
    /// This end as an async end ([`crate::aio`]); see [`Sender::into_async`].
    pub fn into_async(mut self) -> AsyncMpmcSender<T> {
        self.tx.set_wait_strategy(WaitStrategy::blocking());
        AsyncMpmcSender {
            inner: self,
            w: Waiting::default(),
            pending: None,
        }
    }
}

impl ByteSender {
    /// This end as an async end ([`crate::aio`]); see [`Sender::into_async`].
    pub fn into_async(mut self) -> AsyncByteSender {
        self.tx.set_wait_strategy(WaitStrategy::blocking());
        AsyncByteSender {
            inner: self,
            w: Waiting::default(),
            pending: None,
        }
    }
}

/// `recv`, `poll_recv`, `try_recv` and the `Stream` of a typed or MPMC async receiver.
macro_rules! typed_receiver {
    ($ty:ident, $inner:ident $(; $extra:ident)?) => {
        impl<T: Pod + Send $(+ $extra)?> $ty<T> {
            /// Receives the next element, waiting as the module docs say.
            ///
            /// Cancellation safe: a future dropped before it completed took nothing.
            ///
            /// # Errors
            ///
            /// [`Error::Closed`] once the channel is closed and drained, [`Error::PeerGone`],
            /// [`Error::PeerHung`] (retryable), and the errors of the blocking `try_recv`.
            pub async fn recv(&mut self) -> Result<T> {
                poll_fn(|cx| self.poll_recv(cx)).await
            }

            /// Polls for the next element (the poll behind [`Self::recv`]).
            pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<T>> {
                self.w.poll(cx, &mut self.inner, |r| r.try_recv())
            }

            /// Receives an element if one is there, without waiting.
            ///
            /// # Errors
            ///
            /// As the blocking end's `try_recv`.
            pub fn try_recv(&mut self) -> Result<T> {
                self.inner.try_recv()
            }

            async_common!($inner<T>);
        }

        impl<T: Pod + Send $(+ $extra)?> Stream for $ty<T> {
            type Item = Result<T>;

            /// The next element; `None` once the channel is closed and drained. Errors are
            /// items: `PeerHung` (the stream goes on), or a final one (`PeerGone`,
            /// `Truncated`, ...) after which the stream ends.
            fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
                let me = self.get_mut();
                if me.ended {
                    return Poll::Ready(None);
                }
                let r = me.poll_recv(cx);
                stream_item(&mut me.ended, r)
            }
        }

        impl<T: Pod + Send $(+ $extra)?> FusedStream for $ty<T> {
            fn is_terminated(&self) -> bool {
                self.ended
            }
        }
    };
}
typed_receiver!(AsyncReceiver, Receiver);
typed_receiver!(AsyncMpmcReceiver, MpmcReceiver);
typed_receiver!(AsyncBroadcastReceiver, BroadcastReceiver; Sync);

/// `send`, `poll_send`, `try_send` and the `Sink` of a typed or MPMC async sender.
macro_rules! typed_sender {
    ($ty:ident, $inner:ident $(; $extra:ident)?) => {
        impl<T: Pod + Send $(+ $extra)?> $ty<T> {
            /// Sends `value`, waiting for room as the module docs say.
            ///
            /// Cancellation safe: a future dropped before it completed sent nothing.
            ///
            /// # Errors
            ///
            /// [`Error::Closed`], [`Error::PeerGone`], [`Error::PeerHung`] (retryable), and
            /// the errors of the blocking `try_send`.
            pub async fn send(&mut self, value: T) -> Result<()> {
                poll_fn(|cx| self.poll_send(cx, value)).await
            }

            /// Polls to send `value` (the poll behind [`Self::send`]).
            pub fn poll_send(&mut self, cx: &mut Context<'_>, value: T) -> Poll<Result<()>> {
                self.w.poll(cx, &mut self.inner, |t| t.try_send(value))
            }

            /// Sends `value` if there is room, without waiting.
            ///
            /// # Errors
            ///
            /// As the blocking end's `try_send`.
            pub fn try_send(&mut self, value: T) -> Result<()> {
                self.inner.try_send(value)
            }

            async_common!($inner<T>);
        }

        /// Items accepted by `start_send` are sent by `poll_flush` (or the next
        /// `poll_ready`); `poll_close` flushes, then closes the channel. An item still
        /// pending when the sink is dropped is lost: flush or close it first.
        impl<T: Pod + Send $(+ $extra)?> Sink<T> for $ty<T> {
            type Error = Error;

            fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
                self.poll_flush(cx)
            }

            fn start_send(self: Pin<&mut Self>, item: T) -> Result<()> {
                let me = self.get_mut();
                match me.inner.try_send(item) {
                    Err(Error::WouldBlock { .. }) => {
                        me.pending = Some(item);
                        Ok(())
                    }
                    other => other,
                }
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
                let me = self.get_mut();
                if let Some(v) = me.pending {
                    match me.poll_send(cx, v) {
                        Poll::Ready(r) => {
                            me.pending = None;
                            return Poll::Ready(r);
                        }
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Poll::Ready(Ok(()))
            }

            fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
                let me = self.get_mut();
                match Pin::new(&mut *me).poll_flush(cx) {
                    Poll::Ready(r) => {
                        me.inner.close();
                        Poll::Ready(r)
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    };
}
typed_sender!(AsyncSender, Sender);
typed_sender!(AsyncMpmcSender, MpmcSender);
typed_sender!(AsyncBroadcastSender, BroadcastSender; Sync);

impl AsyncByteReceiver {
    /// Receives the next message into `buf`, waiting as the module docs say; returns its
    /// length. A message longer than `buf` stays in the channel
    /// ([`Error::Queue`] wrapping `BufferTooSmall`).
    ///
    /// Cancellation safe: a future dropped before it completed took nothing.
    ///
    /// # Errors
    ///
    /// As [`AsyncReceiver::recv`].
    pub async fn recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        poll_fn(|cx| self.w.poll(cx, &mut self.inner, |r| r.try_recv(buf))).await
    }

    /// Receives the next message into `buf`, resized to it.
    ///
    /// # Errors
    ///
    /// As [`AsyncByteReceiver::recv`].
    pub async fn recv_vec(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        poll_fn(|cx| self.poll_recv_vec(cx, buf)).await
    }

    fn poll_recv_vec(&mut self, cx: &mut Context<'_>, buf: &mut Vec<u8>) -> Poll<Result<usize>> {
        self.w.poll(cx, &mut self.inner, |r| {
            if r.rx.has_message() {
                let n =
                    r.rx.try_pop_vec(buf)
                        .map_err(|e| ring_error(&r.ep, e.into(), Duration::ZERO))?;
                r.count(n);
                Ok(n)
            } else {
                empty(r)
            }
        })
    }

    /// Waits for the next message and gives it in place, without a copy; it is released
    /// (and counts as received) when the guard drops.
    ///
    /// Cancellation safe: a future dropped before it completed took nothing.
    ///
    /// # Errors
    ///
    /// As [`AsyncByteReceiver::recv`].
    pub async fn read(&mut self) -> Result<ReadGuard<'_>> {
        poll_fn(|cx| {
            self.w.poll(cx, &mut self.inner, |r| {
                // Ready only if a message (not just padding) is committed: the ring's own
                // wait, with a deadline of now, steps over padding and takes nothing.
                match r.rx.wait_for_message(Some(Instant::now())) {
                    Ok(()) => Ok(()),
                    Err(_) => empty(r).map(drop),
                }
            })
        })
        .await?;
        self.inner.read_deadline(Some(Instant::now()))
    }

    /// Receives a message into `buf` if one is there, without waiting.
    ///
    /// # Errors
    ///
    /// As [`ByteReceiver::try_recv`].
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.inner.try_recv(buf)
    }

    async_common!(ByteReceiver);
}

/// What an empty byte ring means now: `WouldBlock`, or the peer checks' and `Closed` of the
/// copying receive. A message that arrived since the caller looked is `WouldBlock` too (the
/// caller's next attempt takes it).
fn empty(r: &mut ByteReceiver) -> Result<usize> {
    match r.try_recv(&mut []) {
        Err(Error::Queue {
            source: shm_queue::Error::BufferTooSmall { .. },
            ..
        }) => Err(Error::WouldBlock {
            name: r.ep.name.clone(),
            what: "empty",
        }),
        other => other,
    }
}

/// The `Stream` (messages as `Vec`s, through its `poll_recv_vec`) and `FusedStream` of a
/// byte-message async receiver.
macro_rules! vec_stream {
    ($ty:ident) => {
        impl Stream for $ty {
            type Item = Result<Vec<u8>>;

            /// The next message as a `Vec`; `None` once the channel is closed and drained.
            fn poll_next(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<Option<Result<Vec<u8>>>> {
                let me = self.get_mut();
                if me.ended {
                    return Poll::Ready(None);
                }
                let mut v = Vec::new();
                let r = me.poll_recv_vec(cx, &mut v).map(|r| r.map(|_| v));
                stream_item(&mut me.ended, r)
            }
        }

        impl FusedStream for $ty {
            fn is_terminated(&self) -> bool {
                self.ended
            }
        }
    };
}
vec_stream!(AsyncByteReceiver);

/// A receive's result as a stream item: `Closed` ends the stream; `PeerHung` is an item and
/// the stream goes on; any other error is the last item.
fn stream_item<R>(ended: &mut bool, r: Poll<Result<R>>) -> Poll<Option<Result<R>>> {
    match r {
        Poll::Pending => Poll::Pending,
        Poll::Ready(Ok(v)) => Poll::Ready(Some(Ok(v))),
        Poll::Ready(Err(Error::Closed { .. })) => {
            *ended = true;
            Poll::Ready(None)
        }
        Poll::Ready(Err(e)) => {
            // A hung peer may recover, and a broadcast subscriber's loss is reported once
            // before it reads on: the stream goes on after either.
            *ended = !matches!(e, Error::PeerHung { .. } | Error::Lost { .. });
            Poll::Ready(Some(Err(e)))
        }
    }
}

impl AsyncByteSender {
    /// Sends `msg` as one message, waiting for room as the module docs say.
    ///
    /// Cancellation safe: a future dropped before it completed sent nothing.
    ///
    /// # Errors
    ///
    /// As [`AsyncSender::send`], and [`Error::Queue`] wrapping `MessageTooLarge`.
    pub async fn send(&mut self, msg: &[u8]) -> Result<()> {
        poll_fn(|cx| self.w.poll(cx, &mut self.inner, |t| t.try_send(msg))).await
    }

    /// Sends `msg` if there is room, without waiting.
    ///
    /// # Errors
    ///
    /// As [`ByteSender::try_send`].
    pub fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.inner.try_send(msg)
    }

    /// The largest message the channel accepts.
    pub fn max_message(&self) -> usize {
        self.inner.max_message()
    }

    async_common!(ByteSender);
}

/// The `Sink` of a byte-message async sender, sending with its `$try_send`: as the typed
/// senders' `Sink`, except that the message is copied when it has to wait.
macro_rules! message_sink {
    ($ty:ident, $try_send:ident) => {
        impl<B: AsRef<[u8]>> Sink<B> for $ty {
            type Error = Error;

            fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
                <Self as Sink<B>>::poll_flush(self, cx)
            }

            fn start_send(self: Pin<&mut Self>, item: B) -> Result<()> {
                let me = self.get_mut();
                match me.inner.$try_send(item.as_ref()) {
                    Err(Error::WouldBlock { .. }) => {
                        me.pending = Some(item.as_ref().to_vec());
                        Ok(())
                    }
                    other => other,
                }
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
                let me = self.get_mut();
                if let Some(msg) = me.pending.take() {
                    let r = me.w.poll(cx, &mut me.inner, |t| t.$try_send(&msg));
                    if r.is_pending() {
                        me.pending = Some(msg);
                    }
                    return r;
                }
                Poll::Ready(Ok(()))
            }

            fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
                let me = self.get_mut();
                match <Self as Sink<B>>::poll_flush(Pin::new(&mut *me), cx) {
                    Poll::Ready(r) => {
                        me.inner.close();
                        Poll::Ready(r)
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    };
}
message_sink!(AsyncByteSender, try_send);

fn _assert_send() {
    fn is_send<X: Send>() {}
    is_send::<AsyncReceiver<u64>>();
    is_send::<AsyncSender<u64>>();
    is_send::<AsyncMpmcReceiver<u64>>();
    is_send::<AsyncMpmcSender<u64>>();
    is_send::<AsyncByteReceiver>();
    is_send::<AsyncByteSender>();
}

mod messages;
pub use messages::{AsyncMessageReceiver, AsyncMessageSender};
