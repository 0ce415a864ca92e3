//! Python bindings for shmlane's channels: `import shmlane`.
//!
//! [`ByteSender`] and [`ByteReceiver`] wrap the Rust channel ends. Blocking calls release the
//! GIL and wait in slices of [`SLICE`], checking for signals between slices, so Ctrl-C
//! raises `KeyboardInterrupt` promptly. Errors are a small exception hierarchy under
//! `shmlane.Error`, carrying the Rust error's message. A zero-copy read is a [`Message`]:
//! a buffer over the shared bytes, valid only inside its `with` block.
//!
//! Typed and MPMC channels carry fixed-size elements described by a numpy dtype
//! ([`typed::TypedSender`], [`typed::TypedReceiver`]); see the `typed` module.

#![deny(unsafe_op_in_unsafe_fn)]

use std::ffi::c_int;
use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

use pyo3::create_exception;
use pyo3::exceptions::{PyBufferError, PyException, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use shm_bridge::{AnyByteReceiver, AnyByteSender, ChannelOptions, Error};
use shm_queue::wait::WaitStrategy;

mod message;
mod typed;

use message::Message;

/// The longest a blocking call waits with the GIL released before it checks for signals.
const SLICE: Duration = Duration::from_millis(50);

create_exception!(
    shmlane,
    ShmlaneError,
    PyException,
    "Base class of every shmlane error."
);
create_exception!(
    shmlane,
    Closed,
    ShmlaneError,
    "The other side closed the channel (a receiver sees this after the last message)."
);
create_exception!(
    shmlane,
    PeerGone,
    ShmlaneError,
    "The other side's process died."
);
create_exception!(
    shmlane,
    PeerHung,
    ShmlaneError,
    "The other side's process is alive but its heartbeat stopped (stopped or hung)."
);
create_exception!(shmlane, Timeout, ShmlaneError, "The timeout passed first.");
create_exception!(
    shmlane,
    WouldBlock,
    ShmlaneError,
    "A non-blocking call (timeout=0) found the channel full or empty."
);
create_exception!(
    shmlane,
    MessageTooLarge,
    ShmlaneError,
    "The message is larger than the channel's largest message."
);
create_exception!(
    shmlane,
    BufferTooSmall,
    ShmlaneError,
    "The buffer is shorter than the message (which stays in the channel)."
);
create_exception!(
    shmlane,
    Corrupt,
    ShmlaneError,
    "The shared memory holds impossible values, or is not a shmlane channel of this kind."
);
create_exception!(
    shmlane,
    WrongType,
    Corrupt,
    "The channel is of another kind, or carries another element type (name, size or \
     alignment) than asked for."
);
create_exception!(
    shmlane,
    Truncated,
    ShmlaneError,
    "Another process truncated the channel's file."
);

create_exception!(
    shmlane,
    Lost,
    ShmlaneError,
    "A broadcast receiver lost messages (overtaken on a lossy channel, or evicted from a \
     lossless one); the message says how many, and the next call goes on."
);

/// The Python exception for `e`, with its message.
fn py_err(e: &Error) -> PyErr {
    use shm_queue::Error as Q;
    let msg = e.to_string();
    match e {
        Error::WouldBlock { .. } => WouldBlock::new_err(msg),
        Error::Timeout { .. } | Error::ConnectTimeout { .. } => Timeout::new_err(msg),
        Error::Closed { .. } => Closed::new_err(msg),
        Error::PeerGone { .. } => PeerGone::new_err(msg),
        Error::PeerHung { .. } => PeerHung::new_err(msg),
        Error::Region(shm_region::Error::Truncated { .. }) => Truncated::new_err(msg),
        Error::Queue { source, .. } => match source {
            Q::MessageTooLarge { .. } => MessageTooLarge::new_err(msg),
            Q::BufferTooSmall { .. } => BufferTooSmall::new_err(msg),
            Q::Truncated => Truncated::new_err(msg),
            Q::TypeMismatch { .. } | Q::KindMismatch { .. } => WrongType::new_err(msg),
            Q::NotWholeElements { .. } | Q::UnsupportedType { .. } => PyValueError::new_err(msg),
            _ => Corrupt::new_err(msg),
        },
        Error::WrongKind { .. } => WrongType::new_err(msg),
        Error::Lost { .. } => Lost::new_err(msg),
        Error::Corrupt { .. } => Corrupt::new_err(msg),
        Error::BadName { .. } | Error::BadConfig { .. } => PyValueError::new_err(msg),
        _ => ShmlaneError::new_err(msg),
    }
}

/// The wait strategy a `wait=` argument names.
fn strategy(wait: &str) -> PyResult<WaitStrategy> {
    match wait {
        "yield" => Ok(WaitStrategy::spin_then_yield()),
        "spin" => Ok(WaitStrategy::BusySpin),
        "block" => Ok(WaitStrategy::blocking()),
        other => Err(PyValueError::new_err(format!(
            "wait={other:?}: use \"yield\" (the default), \"spin\" or \"block\""
        ))),
    }
}

/// The deadline for a `timeout=` in seconds (`None`: no limit).
fn deadline(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_finite() && t >= 0.0 => {
            Ok(Some(Instant::now() + Duration::from_secs_f64(t)))
        }
        Some(t) => Err(PyValueError::new_err(format!(
            "timeout={t}: use a number of seconds >= 0, or None to wait without limit"
        ))),
    }
}

/// A broadcast channel's delivery mode from a create call's `lossy` and `evict_after`
/// (seconds), checked: applied to the options by [`BroadcastMode::apply`].
#[derive(Clone, Copy)]
enum BroadcastMode {
    Lossless,
    Lossy,
    Evict(Duration),
}

impl BroadcastMode {
    fn new(lossy: bool, evict_after: Option<f64>) -> PyResult<Self> {
        match evict_after {
            None if lossy => Ok(BroadcastMode::Lossy),
            None => Ok(BroadcastMode::Lossless),
            Some(t) if t.is_finite() && t >= 0.0 && !lossy => {
                Ok(BroadcastMode::Evict(Duration::from_secs_f64(t)))
            }
            Some(t) => Err(PyValueError::new_err(format!(
                "evict_after={t}: use a number of seconds >= 0, on a lossless channel"
            ))),
        }
    }

    fn apply(self, o: ChannelOptions) -> ChannelOptions {
        match self {
            BroadcastMode::Lossless => o,
            BroadcastMode::Lossy => o.lossy(),
            BroadcastMode::Evict(after) => o.slow_policy(shm_bridge::SlowPolicy::Evict { after }),
        }
    }
}

/// The options of a call that connects to an existing channel.
fn joining(
    timeout: f64,
    wait: &str,
    allow_foreign_owner: bool,
    allow_shared_write: bool,
) -> PyResult<ChannelOptions> {
    if !(timeout.is_finite() && timeout >= 0.0) {
        return Err(PyValueError::new_err(format!(
            "timeout={timeout}: use a number of seconds >= 0"
        )));
    }
    Ok(ChannelOptions::new()
        .wait_strategy(strategy(wait)?)
        .timeout(Duration::from_secs_f64(timeout))
        .allow_foreign_owner(allow_foreign_owner)
        .allow_shared_write(allow_shared_write))
}

/// Runs `op` with the GIL released in slices of at most [`SLICE`] until it stops timing out
/// or `deadline` passes, checking for signals between slices (so Ctrl-C raises
/// `KeyboardInterrupt`). `op` gets the slice's deadline.
fn blocking<T: Send>(
    py: Python<'_>,
    deadline: Option<Instant>,
    mut op: impl FnMut(Instant) -> Result<T, Error> + Send,
) -> PyResult<T> {
    loop {
        let now = Instant::now();
        let slice_end = match deadline {
            Some(d) => d.min(now + SLICE),
            None => now + SLICE,
        };
        match py.detach(|| op(slice_end)) {
            Err(Error::Timeout { .. }) if deadline.is_none_or(|d| Instant::now() < d) => {
                py.check_signals()?;
            }
            Err(e) => return Err(py_err(&e)),
            Ok(v) => return Ok(v),
        }
    }
}

/// A contiguous read-only view of any object with the buffer protocol (bytes, bytearray,
/// memoryview, a C-contiguous numpy array, ...), released on drop.
struct InBuf(ffi::Py_buffer);

impl InBuf {
    fn new(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let mut view = MaybeUninit::<ffi::Py_buffer>::uninit();
        // SAFETY: `obj` is a live object and `view` room for a Py_buffer; PyBUF_SIMPLE asks
        // for a contiguous run of bytes, and on failure nothing needs releasing.
        let rc =
            unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), view.as_mut_ptr(), ffi::PyBUF_SIMPLE) };
        if rc != 0 {
            return Err(PyErr::fetch(obj.py()));
        }
        // SAFETY: PyObject_GetBuffer succeeded, so it filled the view.
        Ok(InBuf(unsafe { view.assume_init() }))
    }

    /// The bytes. Only while the GIL is held: another Python thread may write them
    /// otherwise.
    fn bytes(&self, _py: Python<'_>) -> &[u8] {
        if self.0.len <= 0 || self.0.buf.is_null() {
            return &[];
        }
        // SAFETY: the exporter guarantees `len` contiguous readable bytes at `buf` while the
        // view is held (until drop), and the GIL (`_py`) keeps Python writers out.
        unsafe { std::slice::from_raw_parts(self.0.buf.cast::<u8>(), self.0.len as usize) }
    }
}

impl Drop for InBuf {
    fn drop(&mut self) {
        // SAFETY: the view was filled by PyObject_GetBuffer and is released once; buffers
        // are only dropped with the GIL held (they never leave the calling method).
        unsafe { ffi::PyBuffer_Release(&mut self.0) };
    }
}

/// The sending end of a byte channel.
///
/// ```python
/// with shmlane.ByteSender.create("orders", capacity=1 << 20) as tx:
///     tx.wait_for_peer(timeout=10)
///     tx.send(b"hello")
/// ```
#[pyclass(module = "shmlane")]
struct ByteSender {
    tx: AnyByteSender,
}

#[pymethods]
impl ByteSender {
    /// Creates byte channel `name` (`/dev/shm/shmlane.NAME`, replacing one left behind by
    /// dead processes) and returns its sending end.
    #[staticmethod]
    #[pyo3(signature = (name, *, capacity=None, max_message=None, wait="yield", mode=0o600, allow_foreign_owner=false, allow_shared_write=false))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        name: &str,
        capacity: Option<usize>,
        max_message: Option<usize>,
        wait: &str,
        mode: u32,
        allow_foreign_owner: bool,
        allow_shared_write: bool,
    ) -> PyResult<Self> {
        let mut o = ChannelOptions::new()
            .wait_strategy(strategy(wait)?)
            .mode(mode)
            .allow_foreign_owner(allow_foreign_owner)
            .allow_shared_write(allow_shared_write);
        if let Some(c) = capacity {
            o = o.capacity(c);
        }
        if let Some(m) = max_message {
            o = o.max_message(m);
        }
        let tx = py.detach(|| o.create_bytes(name)).map_err(|e| py_err(&e))?;
        Ok(ByteSender {
            tx: AnyByteSender::Bytes(tx),
        })
    }

    /// Creates byte-message broadcast channel `name` for up to `subscribers` receivers (1
    /// to 59) and returns its sending end: each message is written once, and every
    /// receiver (`ByteReceiver.connect_broadcast`) gets every message sent after it
    /// connected. `capacity` counts messages (default 1024), each of up to `max_message`
    /// bytes (default 1024). Lossless by default (the slowest live receiver holds the
    /// sender up; `evict_after` seconds evicts it instead); `lossy=True` never waits, and
    /// a receiver that falls a ring behind raises `Lost` once.
    ///
    /// ```python
    /// with shmlane.ByteSender.create_broadcast("ticks", max_message=256) as tx:
    ///     tx.wait_for_peer(timeout=10)
    ///     tx.send(b"tick 1")
    /// ```
    #[staticmethod]
    #[pyo3(signature = (name, *, capacity=None, max_message=None, subscribers=8, lossy=false, evict_after=None, wait="yield", mode=0o600, allow_foreign_owner=false, allow_shared_write=false))]
    #[allow(clippy::too_many_arguments)]
    fn create_broadcast(
        py: Python<'_>,
        name: &str,
        capacity: Option<usize>,
        max_message: Option<usize>,
        subscribers: usize,
        lossy: bool,
        evict_after: Option<f64>,
        wait: &str,
        mode: u32,
        allow_foreign_owner: bool,
        allow_shared_write: bool,
    ) -> PyResult<Self> {
        let o = BroadcastMode::new(lossy, evict_after)?.apply(
            ChannelOptions::new()
                .wait_strategy(strategy(wait)?)
                .mode(mode)
                .allow_foreign_owner(allow_foreign_owner)
                .allow_shared_write(allow_shared_write)
                .subscribers(subscribers)
                .capacity(capacity.unwrap_or(1024))
                .max_message(max_message.unwrap_or(1024)),
        );
        let tx = py
            .detach(|| o.create_broadcast_bytes(name))
            .map_err(|e| py_err(&e))?;
        Ok(ByteSender {
            tx: AnyByteSender::Broadcast(tx),
        })
    }

    /// Waits up to `timeout` seconds (None: no limit) for a receiver to connect.
    #[pyo3(signature = (timeout=None))]
    fn wait_for_peer(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let end = deadline(timeout)?;
        let tx = &self.tx;
        loop {
            let slice = end.map_or(SLICE, |d| {
                d.saturating_duration_since(Instant::now()).min(SLICE)
            });
            match py.detach(|| tx.wait_for_peer(slice)) {
                Ok(()) => return Ok(()),
                Err(Error::Timeout { .. }) if end.is_none_or(|d| Instant::now() < d) => {
                    py.check_signals()?;
                }
                Err(e) => return Err(py_err(&e)),
            }
        }
    }

    /// Sends `data` (any object with the buffer protocol: bytes, bytearray, memoryview, a
    /// contiguous numpy array) as one message, waiting for room up to `timeout` seconds
    /// (None: no limit; 0: raise `WouldBlock` if full). Raises `Closed` if the receiver
    /// closed the channel, `PeerGone` if it died.
    #[pyo3(signature = (data, *, timeout=None))]
    fn send(
        &mut self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let end = deadline(timeout)?;
        // `bytes` (immutable) needs no buffer export.
        if let Ok(b) = data.cast::<PyBytes>() {
            match self.tx.try_send(b.as_bytes()) {
                Ok(()) => return Ok(()),
                Err(Error::WouldBlock { .. }) if timeout != Some(0.0) => {}
                Err(e) => return Err(py_err(&e)),
            }
        }
        let buf = InBuf::new(data)?;
        // The fast path, with the GIL held: no copy.
        match self.tx.try_send(buf.bytes(py)) {
            Ok(()) => return Ok(()),
            Err(Error::WouldBlock { .. }) if timeout != Some(0.0) => {}
            Err(e) => return Err(py_err(&e)),
        }
        // Waiting for room without the GIL: send a copy, since Python may write the
        // caller's buffer meanwhile.
        let msg = buf.bytes(py).to_vec();
        drop(buf);
        let tx = &mut self.tx;
        blocking(py, end, |d| tx.send_deadline(&msg, Some(d)))
    }

    /// Sends every item of `messages` (each any buffer) in order, one message each, waiting
    /// for room as `send` does; returns how many were sent. One call for many messages:
    /// the per-call cost of Python is paid once. On an error, the messages before the
    /// failing one were sent (the exception's `args` say which).
    #[pyo3(signature = (messages, *, timeout=None))]
    fn send_many(
        &mut self,
        py: Python<'_>,
        messages: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        let mut sent = 0;
        for item in messages.try_iter()? {
            let item = item?;
            if let Err(e) = self.send(py, &item, timeout) {
                let msg = format!("{} (after {sent} messages of send_many)", e.value(py));
                return Err(PyErr::from_type(e.get_type(py), msg));
            }
            sent += 1;
        }
        Ok(sent)
    }

    /// Closes the channel: the receiver gets what was sent, then `Closed`.
    fn close(&mut self) {
        self.tx.close();
    }

    /// The largest message the channel accepts, in bytes.
    #[getter]
    fn max_message(&self) -> usize {
        self.tx.max_message()
    }

    /// The channel's name.
    #[getter]
    fn name(&self) -> String {
        self.tx.name().to_owned()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&mut self, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.tx.close();
        false
    }

    fn __repr__(&self) -> String {
        format!("shmlane.ByteSender(name={:?})", self.tx.name())
    }
}

/// The receiving end of a byte channel, or a receiver of a byte-message broadcast channel.
/// Iterating yields each message as `bytes` until the sender closes the channel.
///
/// ```python
/// with shmlane.ByteReceiver.connect("orders") as rx:
///     for msg in rx:
///         handle(msg)
/// ```
#[pyclass(module = "shmlane")]
struct ByteReceiver {
    rx: RxEnd,
    /// Where `recv` and `recv_into` receive to with the GIL released (max_message bytes).
    buf: Vec<u8>,
    /// Whether a [`Message`] from `read` still holds the next message.
    held: bool,
    /// A broadcast receiver's `with` block ended while a message was held: it leaves the
    /// channel when the message is released.
    leave_after_release: bool,
    /// A loss `recv_many` found after it had taken messages: raised by the next call.
    pending: Option<Error>,
}

/// The end behind a [`ByteReceiver`]: open, or left (a broadcast receiver whose `with`
/// block ended, which dropped it).
// One per receiver, kept for its life: the open end stays unboxed.
#[allow(clippy::large_enum_variant)]
enum RxEnd {
    Open(AnyByteReceiver),
    /// The channel's name, and the messages it had lost.
    Left(String, u64),
}

impl RxEnd {
    fn end(&mut self) -> Result<&mut AnyByteReceiver, Error> {
        match self {
            RxEnd::Open(r) => Ok(r),
            RxEnd::Left(name, _) => Err(Error::Closed {
                name: name.clone(),
                by: "this receiver, which left the broadcast channel when its `with` block \
                     ended"
                    .to_owned(),
            }),
        }
    }

    fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.end()?.try_recv(buf)
    }

    fn recv_deadline(&mut self, buf: &mut [u8], deadline: Option<Instant>) -> Result<usize, Error> {
        self.end()?.recv_deadline(buf, deadline)
    }

    /// [`AnyByteReceiver::hold`], the address as a number (it leaves the GIL-free closure).
    fn hold(&mut self, deadline: Option<Instant>) -> Result<(usize, usize), Error> {
        let (p, n) = self.end()?.hold(deadline)?;
        Ok((p as usize, n))
    }

    fn copy_held(&mut self, dst: &mut [u8]) -> Result<(), Error> {
        self.end()?.copy_held(dst)
    }

    fn release_held(&mut self) -> Result<(), Error> {
        self.end()?.release_held()
    }

    fn close(&mut self) {
        if let RxEnd::Open(r) = self {
            r.close();
        }
    }

    /// What leaving a `with` block does: closes a byte channel, leaves a broadcast one.
    fn leave(&mut self) {
        match self {
            RxEnd::Open(AnyByteReceiver::Broadcast(r)) => {
                *self = RxEnd::Left(r.name().to_owned(), r.missed());
            }
            RxEnd::Open(r) => r.close(),
            RxEnd::Left(..) => {}
        }
    }

    fn max_message(&self) -> usize {
        match self {
            RxEnd::Open(r) => r.max_message(),
            RxEnd::Left(..) => 0,
        }
    }

    fn name(&self) -> &str {
        match self {
            RxEnd::Open(r) => r.name(),
            RxEnd::Left(n, _) => n,
        }
    }
}

impl ByteReceiver {
    fn new(rx: RxEnd) -> Self {
        let buf = vec![0; rx.max_message()];
        ByteReceiver {
            rx,
            buf,
            held: false,
            leave_after_release: false,
            pending: None,
        }
    }

    /// Refuses a receive while a zero-copy message is held, and raises a loss that
    /// `recv_many` found after it had taken messages.
    fn check_not_held(&mut self) -> PyResult<()> {
        if let Some(e) = self.pending.take() {
            return Err(py_err(&e));
        }
        if self.held {
            return Err(PyBufferError::new_err(
                "a message from read() is still held: leave its `with` block (or call its \
                 release()) first",
            ));
        }
        Ok(())
    }

    /// Waits (GIL released, with the bridge's peer checks) up to `timeout` for the next
    /// message and leaves it held at the head of the ring, unreleased: its address in the
    /// mapping and its length. `timeout=0` raises `WouldBlock` when nothing is ready.
    fn hold_next(&mut self, py: Python<'_>, timeout: Option<f64>) -> PyResult<(usize, usize)> {
        self.check_not_held()?;
        let end = deadline(timeout)?;
        let rx = &mut self.rx;
        if timeout == Some(0.0) {
            return rx.hold(Some(Instant::now())).map_err(|e| match e {
                Error::Timeout { .. } => WouldBlock::new_err("no message is ready"),
                e => py_err(&e),
            });
        }
        blocking(py, end, |d| rx.hold(Some(d)))
    }

    /// Receives the next message into `self.buf`; its length.
    fn recv_buf(&mut self, py: Python<'_>, timeout: Option<f64>) -> PyResult<usize> {
        self.check_not_held()?;
        let end = deadline(timeout)?;
        let (rx, buf) = (&mut self.rx, &mut self.buf);
        // The fast path, with the GIL held: a message is ready.
        match rx.try_recv(buf) {
            Err(Error::WouldBlock { .. }) if timeout != Some(0.0) => {}
            other => return other.map_err(|e| py_err(&e)),
        }
        blocking(py, end, |d| rx.recv_deadline(buf, Some(d)))
    }
}

#[pymethods]
impl ByteReceiver {
    /// Connects to byte channel `name` as its receiver, waiting up to `timeout` seconds for
    /// it to appear.
    #[staticmethod]
    #[pyo3(signature = (name, *, timeout=10.0, wait="yield", allow_foreign_owner=false, allow_shared_write=false))]
    fn connect(
        py: Python<'_>,
        name: &str,
        timeout: f64,
        wait: &str,
        allow_foreign_owner: bool,
        allow_shared_write: bool,
    ) -> PyResult<Self> {
        let o = joining(timeout, wait, allow_foreign_owner, allow_shared_write)?;
        let rx = py
            .detach(|| o.connect_bytes(name))
            .map_err(|e| py_err(&e))?;
        Ok(ByteReceiver::new(RxEnd::Open(AnyByteReceiver::Bytes(rx))))
    }

    /// Connects to byte-message broadcast channel `name` as a new receiver, starting with
    /// the next message sent, or with up to `history` earlier ones still in the channel.
    /// A receive raises `Lost` once per loss (the message says how many), then goes on.
    /// Leaving the `with` block leaves the channel (it stays open for the others).
    ///
    /// ```python
    /// with shmlane.ByteReceiver.connect_broadcast("ticks", history=16) as rx:
    ///     for msg in rx:
    ///         handle(msg)
    /// ```
    #[staticmethod]
    #[pyo3(signature = (name, *, history=0, timeout=10.0, wait="yield", allow_foreign_owner=false, allow_shared_write=false))]
    fn connect_broadcast(
        py: Python<'_>,
        name: &str,
        history: usize,
        timeout: f64,
        wait: &str,
        allow_foreign_owner: bool,
        allow_shared_write: bool,
    ) -> PyResult<Self> {
        let o = joining(timeout, wait, allow_foreign_owner, allow_shared_write)?.history(history);
        let rx = py
            .detach(|| o.connect_subscriber_bytes(name))
            .map_err(|e| py_err(&e))?;
        Ok(ByteReceiver::new(RxEnd::Open(AnyByteReceiver::Broadcast(
            rx,
        ))))
    }

    /// Messages a broadcast receiver lost since it connected (0 for a byte channel).
    #[getter]
    fn missed(&self) -> u64 {
        match &self.rx {
            RxEnd::Open(r) => r.missed(),
            RxEnd::Left(_, missed) => *missed,
        }
    }

    /// Receives the next message as `bytes`, waiting up to `timeout` seconds (None: no
    /// limit; 0: raise `WouldBlock` if empty). Raises `Closed` once the sender closed the
    /// channel and every message sent before was received.
    #[pyo3(signature = (*, timeout=None))]
    fn recv<'py>(
        &mut self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let n = self.recv_buf(py, timeout)?;
        Ok(PyBytes::new(py, &self.buf[..n]))
    }

    /// Receives up to `max` messages as a list of `bytes`: waits up to `timeout` seconds
    /// for the first (as `recv`), then takes the ones already there without waiting. One
    /// call for many messages: the per-call cost of Python is paid once. Raises `Closed`
    /// only when the channel is closed and nothing was received.
    #[pyo3(signature = (max, *, timeout=None))]
    fn recv_many<'py>(
        &mut self,
        py: Python<'py>,
        max: usize,
        timeout: Option<f64>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let mut out = Vec::with_capacity(max.min(4096));
        if max == 0 {
            return Ok(out);
        }
        let n = self.recv_buf(py, timeout)?;
        out.push(PyBytes::new(py, &self.buf[..n]));
        while out.len() < max {
            match self.rx.try_recv(&mut self.buf) {
                Ok(n) => out.push(PyBytes::new(py, &self.buf[..n])),
                // A broadcast loss is found once: the next call raises it.
                Err(e @ Error::Lost { .. }) => {
                    self.pending = Some(e);
                    break;
                }
                // Empty, closed, or gone: what was taken is returned; the next call says.
                Err(_) => break,
            }
        }
        Ok(out)
    }

    /// Receives the next message into `buffer` (any writable object with the buffer
    /// protocol) and returns its length. Raises `BufferTooSmall` (the message stays in the
    /// channel) if it does not fit.
    #[pyo3(signature = (buffer, *, timeout=None))]
    fn recv_into(
        &mut self,
        py: Python<'_>,
        buffer: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        self.check_not_held()?;
        let mut view = MaybeUninit::<ffi::Py_buffer>::uninit();
        // SAFETY: as in InBuf::new, asking for a writable contiguous buffer.
        let rc = unsafe {
            ffi::PyObject_GetBuffer(buffer.as_ptr(), view.as_mut_ptr(), ffi::PyBUF_WRITABLE)
        };
        if rc != 0 {
            return Err(PyErr::fetch(py));
        }
        // SAFETY: filled by the successful call above; released by InBuf's drop.
        let out = InBuf(unsafe { view.assume_init() });
        let cap = usize::try_from(out.0.len).unwrap_or(0);
        // Wait with the GIL released, then copy with the GIL held (a Python thread could
        // write the caller's buffer otherwise), straight into the caller's buffer.
        let (_, len) = self.hold_next(py, timeout)?;
        if len > cap {
            // It stays held, at the head of the channel, for a larger buffer.
            return Err(BufferTooSmall::new_err(format!(
                "channel `{}`: the message has {len} bytes, the buffer {cap}; it stays in the \
                 channel",
                self.rx.name()
            )));
        }
        if len > 0 {
            // SAFETY: a writable buffer of `cap >= len` bytes, held until `out` drops, written
            // with the GIL held so no Python thread writes it meanwhile.
            let dst = unsafe { std::slice::from_raw_parts_mut(out.0.buf.cast::<u8>(), len) };
            if let Err(e) = self.rx.copy_held(dst) {
                // Whatever failed, the message is let go (a truncated or corrupt channel).
                let _ = self.rx.release_held();
                return Err(py_err(&e));
            }
        }
        self.rx.release_held().map_err(|e| py_err(&e))?;
        Ok(len)
    }

    /// The next message in place, without a copy: use it as a context manager, whose
    /// `as` target is a read-only `memoryview` of the message. The message stays in the
    /// channel until the block ends; the view cannot be used after it.
    ///
    /// ```python
    /// with rx.read() as view:
    ///     header = bytes(view[:16])
    /// ```
    #[pyo3(signature = (*, timeout=None))]
    fn read(slf: Bound<'_, Self>, timeout: Option<f64>) -> PyResult<Message> {
        let py = slf.py();
        let (ptr, len) = {
            let mut me = slf.borrow_mut();
            let at = me.hold_next(py, timeout)?;
            me.held = true;
            at
        };
        Ok(Message {
            owner: slf.unbind(),
            ptr,
            len,
            exports: 0,
            view: None,
            released: false,
        })
    }

    /// Closes the channel: the sender's next send raises `Closed`. A broadcast receiver
    /// closes nothing for the others (leave its `with` block to leave the channel).
    fn close(&mut self) {
        self.rx.close();
    }

    /// The largest message the channel carries, in bytes.
    #[getter]
    fn max_message(&self) -> usize {
        self.rx.max_message()
    }

    /// The channel's name.
    #[getter]
    fn name(&self) -> String {
        self.rx.name().to_owned()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&mut self, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        if self.held {
            // The held message's memory stays mapped until it is released.
            self.leave_after_release = true;
        } else {
            self.rx.leave();
        }
        false
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        match self.recv_buf(py, None) {
            Ok(n) => Ok(Some(PyBytes::new(py, &self.buf[..n]))),
            Err(e) if e.is_instance_of::<Closed>(py) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn __repr__(&self) -> String {
        format!("shmlane.ByteReceiver(name={:?})", self.rx.name())
    }
}

/// Shared-memory message channels between processes on one Linux host.
#[pymodule]
#[pyo3(name = "shmlane")]
fn shmlane_py(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<ByteSender>()?;
    m.add_class::<ByteReceiver>()?;
    m.add_class::<Message>()?;
    m.add_class::<typed::TypedSender>()?;
    m.add_class::<typed::TypedReceiver>()?;
    m.add("Error", py.get_type::<ShmlaneError>())?;
    m.add("Closed", py.get_type::<Closed>())?;
    m.add("PeerGone", py.get_type::<PeerGone>())?;
    m.add("PeerHung", py.get_type::<PeerHung>())?;
    m.add("Timeout", py.get_type::<Timeout>())?;
    m.add("WouldBlock", py.get_type::<WouldBlock>())?;
    m.add("MessageTooLarge", py.get_type::<MessageTooLarge>())?;
    m.add("BufferTooSmall", py.get_type::<BufferTooSmall>())?;
    m.add("Corrupt", py.get_type::<Corrupt>())?;
    m.add("Truncated", py.get_type::<Truncated>())?;
    m.add("WrongType", py.get_type::<WrongType>())?;
    m.add("Lost", py.get_type::<Lost>())?;
    Ok(())
}
