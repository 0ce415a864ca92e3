//! Typed and MPMC channels of fixed-size elements described by a numpy dtype:
//! [`TypedSender`] and [`TypedReceiver`] (one class per side serves both kinds).
//!
//! numpy is imported when a typed channel is made, not when `shmlane` is: byte channels
//! need no numpy. The element's size and alignment are the dtype's `itemsize` and
//! `alignment`; its name is `type_name=` (to pair with Rust, C or another Python program,
//! all ends give the same name, such as `"myapp.Tick/1"`), by default `"numpy:"` and the
//! dtype's `descr`. A structured dtype that mirrors a C or `#[repr(C)]` struct needs
//! `align=True`.
//!
//! Sends copy from any object numpy can turn into an array of the dtype (or from a bytes
//! object of whole elements); receives fill a numpy array straight from the ring, with the
//! GIL released while they wait.

use super::*;
use pyo3::exceptions::PyTypeError;
use pyo3::types::{PyByteArray, PyMemoryView};
use std::sync::{Mutex, PoisonError};

use shm_bridge::{
    BroadcastReceiver, BroadcastSender, ElementType, MpmcReceiver, MpmcSender, Raw, Receiver,
    Sender,
};

/// The ends live in a `Mutex` so the classes are `Sync`, as PyO3 requires (an MPMC handle
/// keeps per-handle `Cell`s). Methods that take `&mut self` reach them with `get_mut`, with
/// no locking; the few `&self` methods lock.
enum Tx {
    Spsc(Sender<Raw>),
    Mpmc(MpmcSender<Raw>),
    Broadcast(BroadcastSender<Raw>),
}

enum Rx {
    Spsc(Receiver<Raw>),
    Mpmc(MpmcReceiver<Raw>),
    Broadcast(BroadcastReceiver<Raw>),
}

/// The end, or `Closed` once its `with` block ended (which drops it).
fn end_mut<T>(m: &mut Mutex<Option<T>>) -> PyResult<&mut T> {
    m.get_mut()
        .unwrap_or_else(PoisonError::into_inner)
        .as_mut()
        .ok_or_else(|| Closed::new_err("this end left the channel when its `with` block ended"))
}

/// Drops the end: a typed channel's end closes the channel; an MPMC end leaves it (the
/// last sender, or receiver, out closes it).
fn leave<T>(m: &mut Mutex<Option<T>>) {
    drop(m.get_mut().unwrap_or_else(PoisonError::into_inner).take());
}

/// `$body` with `$v` bound to the end inside a [`Tx`] or [`Rx`].
macro_rules! either {
    ($e:expr, $enum:ident, $v:ident => $body:expr) => {
        match $e {
            $enum::Spsc($v) => $body,
            $enum::Mpmc($v) => $body,
            $enum::Broadcast($v) => $body,
        }
    };
}

/// A numpy dtype, checked, and the element type it makes under `type_name`.
struct Dtype {
    dtype: Py<PyAny>,
    elem: ElementType,
}

impl Dtype {
    fn new(py: Python<'_>, dtype: &Bound<'_, PyAny>, type_name: Option<String>) -> PyResult<Self> {
        let np = py.import("numpy")?;
        let dt = np.getattr("dtype")?.call1((dtype,))?;
        if dt.getattr("hasobject")?.extract::<bool>()? {
            return Err(PyTypeError::new_err(format!(
                "dtype {} holds Python objects, which cannot live in shared memory; use \
                 plain numbers and fixed-size fields",
                dt.repr()?
            )));
        }
        if !dt.getattr("subdtype")?.is_none() {
            return Err(PyTypeError::new_err(format!(
                "dtype {} is a sub-array; wrap it in a structured dtype, such as \
                 [('v', '<f8', (3,))]",
                dt.repr()?
            )));
        }
        let size: usize = dt.getattr("itemsize")?.extract()?;
        let align: usize = dt.getattr("alignment")?.extract()?;
        let name = match type_name {
            Some(n) => n,
            None => format!("numpy:{}", dt.getattr("descr")?.repr()?),
        };
        let elem = ElementType::named(name, size, align)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(Dtype {
            dtype: dt.unbind(),
            elem,
        })
    }

    fn size(&self) -> usize {
        self.elem.size()
    }

    /// The bytes of `items` as elements of this dtype: a bytes-like object of whole
    /// elements as it is, anything else through `numpy.ascontiguousarray` (an array or
    /// scalar of another dtype is refused rather than cast).
    fn source<'py>(&self, py: Python<'py>, items: &Bound<'py, PyAny>) -> PyResult<InBuf> {
        let is_raw = items.is_instance_of::<PyBytes>()
            || items.is_instance_of::<PyByteArray>()
            || items.is_instance_of::<PyMemoryView>();
        let obj = if is_raw {
            items.clone()
        } else {
            let dt = self.dtype.bind(py);
            if let Ok(other) = items.getattr("dtype") {
                if !other.eq(dt)? {
                    return Err(PyTypeError::new_err(format!(
                        "the items have dtype {}, the channel carries {}; convert them \
                         explicitly (numpy would cast silently)",
                        other.repr()?,
                        dt.repr()?
                    )));
                }
            }
            let np = py.import("numpy")?;
            np.getattr("ascontiguousarray")?.call1((items, dt))?
        };
        let buf = InBuf::new(&obj)?;
        let len = buf.bytes(py).len();
        if len % self.size() != 0 {
            return Err(PyValueError::new_err(format!(
                "{len} bytes are not a whole number of {}-byte elements",
                self.size()
            )));
        }
        Ok(buf)
    }

    /// An empty array of `n` elements and a writable view of its bytes.
    fn empty<'py>(&self, py: Python<'py>, n: usize) -> PyResult<(Bound<'py, PyAny>, OutBuf)> {
        let np = py.import("numpy")?;
        let arr = np.getattr("empty")?.call1((n, self.dtype.bind(py)))?;
        let out = OutBuf::new(&arr)?;
        Ok((arr, out))
    }
}

/// A writable contiguous view of a buffer-protocol object, released on drop.
pub(crate) struct OutBuf(InBuf);

impl OutBuf {
    pub(crate) fn new(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let mut view = MaybeUninit::<ffi::Py_buffer>::uninit();
        // SAFETY: `obj` is live and `view` room for a Py_buffer; PyBUF_WRITABLE asks for a
        // writable contiguous run of bytes; on failure nothing needs releasing.
        let rc = unsafe {
            ffi::PyObject_GetBuffer(obj.as_ptr(), view.as_mut_ptr(), ffi::PyBUF_WRITABLE)
        };
        if rc != 0 {
            return Err(PyErr::fetch(obj.py()));
        }
        // SAFETY: filled by the successful call; InBuf's drop releases it.
        Ok(OutBuf(InBuf(unsafe { view.assume_init() })))
    }

    /// The bytes, for writing. The caller makes sure no Python code reads or writes them
    /// meanwhile (the GIL, or an object no other thread can reach yet).
    fn bytes_mut(&mut self) -> &mut [u8] {
        let v = &self.0 .0;
        if v.len <= 0 || v.buf.is_null() {
            return &mut [];
        }
        // SAFETY: the exporter guarantees `len` contiguous writable bytes at `buf` while
        // the view is held (until drop); exclusive use is the caller's promise above.
        unsafe { std::slice::from_raw_parts_mut(v.buf.cast::<u8>(), v.len as usize) }
    }
}

/// The keyword arguments the typed constructors share.
struct Opts<'a> {
    type_name: Option<String>,
    capacity: Option<usize>,
    participants: Option<usize>,
    kind: &'static str,
    timeout: f64,
    wait: &'a str,
    mode: u32,
    allow_foreign_owner: bool,
    allow_shared_write: bool,
}

impl<'a> Opts<'a> {
    /// The options of a call that joins an MPMC channel (connecting to a typed or broadcast
    /// one sets `kind` to its own).
    fn joining(
        type_name: Option<String>,
        timeout: f64,
        wait: &'a str,
        allow_foreign_owner: bool,
        allow_shared_write: bool,
    ) -> Self {
        Opts {
            type_name,
            capacity: None,
            participants: None,
            kind: "mpmc",
            timeout,
            wait,
            mode: 0o600,
            allow_foreign_owner,
            allow_shared_write,
        }
    }
}

/// What every typed constructor does: checks the dtype, builds the channel options under
/// the element's name, and runs `open` (create or connect) with the GIL released.
fn open<E: Send>(
    py: Python<'_>,
    name: &str,
    dtype: &Bound<'_, PyAny>,
    o: Opts<'_>,
    open: impl FnOnce(&ChannelOptions, &str, &ElementType) -> Result<E, Error> + Send,
) -> PyResult<(E, Common)> {
    let dtype = Dtype::new(py, dtype, o.type_name)?;
    if !(o.timeout.is_finite() && o.timeout >= 0.0) {
        return Err(PyValueError::new_err(format!(
            "timeout={}: use a number of seconds >= 0",
            o.timeout
        )));
    }
    let mut c = ChannelOptions::new()
        .wait_strategy(strategy(o.wait)?)
        .timeout(Duration::from_secs_f64(o.timeout))
        .mode(o.mode)
        .allow_foreign_owner(o.allow_foreign_owner)
        .allow_shared_write(o.allow_shared_write)
        .type_name(dtype.elem.name());
    if let Some(n) = o.capacity {
        c = c.capacity(n);
    }
    if let Some(n) = o.participants {
        c = c.participants(n);
    }
    let elem = &dtype.elem;
    let end = py.detach(|| open(&c, name, elem)).map_err(|e| py_err(&e))?;
    let common = Common {
        name: name.to_owned(),
        dtype,
        kind: o.kind,
    };
    Ok((end, common))
}

/// What both typed classes keep besides their end.
struct Common {
    name: String,
    dtype: Dtype,
    /// `spsc`, `mpmc` or `broadcast`.
    kind: &'static str,
}

impl Common {
    fn repr(&self, class: &str) -> String {
        format!(
            "shmlane.{class}(name={:?}, type_name={:?}, {})",
            self.name,
            self.dtype.elem.name(),
            self.kind
        )
    }
}

/// The sending end of a typed (single-producer) or MPMC channel of numpy elements.
///
/// ```python
/// tick = numpy.dtype([("seq", "<u8"), ("value", "<f8")], align=True)
/// with shmlane.TypedSender.create("ticks", tick, type_name="myapp.Tick/1") as tx:
///     tx.send([(1, 0.5), (2, 1.0)])
/// ```
#[pyclass(module = "shmlane")]
pub(crate) struct TypedSender {
    tx: Mutex<Option<Tx>>,
    c: Common,
}

impl TypedSender {
    fn new(tx: Tx, c: Common) -> Self {
        TypedSender {
            tx: Mutex::new(Some(tx)),
            c,
        }
    }
}

#[pymethods]
impl TypedSender {
    /// Creates typed channel `name` of elements of `dtype` and returns its sending end.
    /// `capacity` counts elements (default 1024).
    #[staticmethod]
    #[pyo3(signature = (name, dtype, *, type_name=None, capacity=None, wait="yield", mode=0o600, allow_foreign_owner=false, allow_shared_write=false))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        name: &str,
        dtype: &Bound<'_, PyAny>,
        type_name: Option<String>,
        capacity: Option<usize>,
        wait: &str,
        mode: u32,
        allow_foreign_owner: bool,
        allow_shared_write: bool,
    ) -> PyResult<Self> {
        let o = Opts {
            type_name,
            capacity,
            participants: None,
            kind: "spsc",
            timeout: 10.0,
            wait,
            mode,
            allow_foreign_owner,
            allow_shared_write,
        };
        let (tx, c) = open(py, name, dtype, o, |o, n, e| o.create_raw(n, e))?;
        Ok(TypedSender::new(Tx::Spsc(tx), c))
    }

    /// Creates MPMC channel `name` of elements of `dtype` with `participants` slots
    /// (senders and receivers together, 2 to 60) and returns a sending end; others join with
    /// `TypedSender.join_mpmc` and `TypedReceiver.connect_mpmc`.
    #[staticmethod]
    #[pyo3(signature = (name, dtype, *, type_name=None, capacity=None, participants=16, wait="yield", mode=0o600, allow_foreign_owner=false, allow_shared_write=false))]
    #[allow(clippy::too_many_arguments)]
    fn create_mpmc(
        py: Python<'_>,
        name: &str,
        dtype: &Bound<'_, PyAny>,
        type_name: Option<String>,
        capacity: Option<usize>,
        participants: usize,
        wait: &str,
        mode: u32,
        allow_foreign_owner: bool,
        allow_shared_write: bool,
    ) -> PyResult<Self> {
        let o = Opts {
            type_name,
            capacity,
            participants: Some(participants),
            kind: "mpmc",
            timeout: 10.0,
            wait,
            mode,
            allow_foreign_owner,
            allow_shared_write,
        };
        let (tx, c) = open(py, name, dtype, o, |o, n, e| o.create_mpmc_raw(n, e))?;
        Ok(TypedSender::new(Tx::Mpmc(tx), c))
    }

    /// Joins MPMC channel `name` of elements of `dtype` as another sender, waiting up to
    /// `timeout` seconds for it to appear.
    #[staticmethod]
    #[pyo3(signature = (name, dtype, *, type_name=None, timeout=10.0, wait="yield", allow_foreign_owner=false, allow_shared_write=false))]
    #[allow(clippy::too_many_arguments)]
    fn join_mpmc(
        py: Python<'_>,
        name: &str,
        dtype: &Bound<'_, PyAny>,
        type_name: Option<String>,
        timeout: f64,
        wait: &str,
        allow_foreign_owner: bool,
        allow_shared_write: bool,
    ) -> PyResult<Self> {
        let o = Opts::joining(
            type_name,
            timeout,
            wait,
            allow_foreign_owner,
            allow_shared_write,
        );
        let (tx, c) = open(py, name, dtype, o, |o, n, e| {
            o.connect_mpmc_producer_raw(n, e)
        })?;
        Ok(TypedSender::new(Tx::Mpmc(tx), c))
    }

    /// Creates broadcast channel `name` of elements of `dtype` for up to `subscribers`
    /// receivers (1 to 59) and returns its sending end; receivers connect with
    /// `TypedReceiver.connect_broadcast` and each gets every element sent after it
    /// connected. Lossless by default (the slowest live receiver holds the sender up;
    /// `evict_after` seconds evicts it instead); `lossy=True` never waits, and a receiver
    /// that falls a ring behind raises `Lost` once.
    #[staticmethod]
    #[pyo3(signature = (name, dtype, *, type_name=None, capacity=None, subscribers=8, lossy=false, evict_after=None, wait="yield", mode=0o600, allow_foreign_owner=false, allow_shared_write=false))]
    #[allow(clippy::too_many_arguments)]
    fn create_broadcast(
        py: Python<'_>,
        name: &str,
        dtype: &Bound<'_, PyAny>,
        type_name: Option<String>,
        capacity: Option<usize>,
        subscribers: usize,
        lossy: bool,
        evict_after: Option<f64>,
        wait: &str,
        mode: u32,
        allow_foreign_owner: bool,
        allow_shared_write: bool,
    ) -> PyResult<Self> {
        let delivery = BroadcastMode::new(lossy, evict_after)?;
        let o = Opts {
            type_name,
            capacity,
            participants: None,
            kind: "broadcast",
            timeout: 10.0,
            wait,
            mode,
            allow_foreign_owner,
            allow_shared_write,
        };
        let (tx, c) = open(py, name, dtype, o, |o, n, e| {
            delivery
                .apply(o.clone().subscribers(subscribers))
                .create_broadcast_raw(n, e)
        })?;
        Ok(TypedSender::new(Tx::Broadcast(tx), c))
    }

    /// Waits up to `timeout` seconds (None: no limit) for a receiver to connect.
    #[pyo3(signature = (timeout=None))]
    fn wait_for_peer(&mut self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let end = deadline(timeout)?;
        let tx = end_mut(&mut self.tx)?;
        loop {
            let slice = end.map_or(SLICE, |d| {
                d.saturating_duration_since(Instant::now()).min(SLICE)
            });
            let t = &mut *tx;
            match py.detach(move || either!(&*t, Tx, t => t.wait_for_peer(slice))) {
                Ok(()) => return Ok(()),
                Err(Error::Timeout { .. }) if end.is_none_or(|d| Instant::now() < d) => {
                    py.check_signals()?;
                }
                Err(e) => return Err(py_err(&e)),
            }
        }
    }

    /// Sends `items` in order: one element (a tuple, a numpy scalar of the dtype), a
    /// sequence or numpy array of them, or a bytes-like object of whole elements. Waits for
    /// room up to `timeout` seconds (None: no limit; 0: send what fits now, and raise
    /// `WouldBlock` if nothing did). Returns how many elements were sent. On an error
    /// part-way, the elements before were sent (the message says how many).
    #[pyo3(signature = (items, *, timeout=None))]
    fn send(
        &mut self,
        py: Python<'_>,
        items: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        let end = deadline(timeout)?;
        let size = self.c.dtype.size();
        let buf = self.c.dtype.source(py, items)?;
        let total = buf.bytes(py).len() / size;
        if total == 0 {
            return Ok(0);
        }
        // The fast path, with the GIL held: straight from the caller's buffer.
        let first = either!(end_mut(&mut self.tx)?, Tx, t => t.try_send_bytes(buf.bytes(py)));
        let done = match first {
            Ok(n) => n,
            Err(Error::WouldBlock { .. }) => 0,
            Err(e) => return Err(py_err(&e)),
        };
        if done == total || timeout == Some(0.0) {
            if done == 0 {
                return Err(WouldBlock::new_err("the channel is full"));
            }
            return Ok(done);
        }
        // Wait for room without the GIL: send a copy of the rest, since Python may write
        // the caller's buffer meanwhile.
        let rest = buf.bytes(py)[done * size..].to_vec();
        drop(buf);
        let tx = end_mut(&mut self.tx)?;
        let mut sent = 0;
        let r = blocking(py, end, |d| {
            let r =
                either!(&mut *tx, Tx, t => t.send_bytes_deadline(&rest[sent * size..], Some(d)));
            match r {
                Ok(()) => {
                    sent = rest.len() / size;
                    Ok(())
                }
                Err((k, e)) => {
                    sent += k;
                    Err(e)
                }
            }
        });
        match r {
            Ok(()) => Ok(total),
            Err(e) => {
                let msg = format!(
                    "{} (after {} of {total} elements)",
                    e.value(py),
                    done + sent
                );
                Err(PyErr::from_type(e.get_type(py), msg))
            }
        }
    }

    /// Closes the channel (an MPMC channel for everyone): receivers get what was sent,
    /// then `Closed`. Leaving a `with` block instead drops this end, which closes a typed
    /// channel and leaves an MPMC one (its last sender out closes it).
    fn close(&mut self) -> PyResult<()> {
        either!(end_mut(&mut self.tx)?, Tx, t => t.close());
        Ok(())
    }

    /// The channel's numpy dtype.
    #[getter]
    fn dtype(&self, py: Python<'_>) -> Py<PyAny> {
        self.c.dtype.dtype.clone_ref(py)
    }

    /// The element name both ends agree on.
    #[getter]
    fn type_name(&self) -> String {
        self.c.dtype.elem.name().to_owned()
    }

    /// The channel's name.
    #[getter]
    fn name(&self) -> String {
        self.c.name.clone()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&mut self, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        leave(&mut self.tx);
        false
    }

    fn __repr__(&self) -> String {
        self.c.repr("TypedSender")
    }
}

/// The receiving end of a typed or MPMC channel of numpy elements. Iterating yields
/// elements (numpy scalars) until the channel is closed.
///
/// ```python
/// with shmlane.TypedReceiver.connect("ticks", tick, type_name="myapp.Tick/1") as rx:
///     batch = rx.recv_batch(1024)   # a numpy array of 1 to 1024 ticks
/// ```
#[pyclass(module = "shmlane")]
pub(crate) struct TypedReceiver {
    rx: Mutex<Option<Rx>>,
    c: Common,
}

impl TypedReceiver {
    fn new(rx: Rx, c: Common) -> Self {
        TypedReceiver {
            rx: Mutex::new(Some(rx)),
            c,
        }
    }

    /// Receives into `out`: waits (GIL released) up to `timeout` for the first element,
    /// then takes what is ready and fits. The caller promises `out` is reachable by no
    /// other Python thread during the call, or passes `shared = true` to keep the GIL
    /// while copying (then it waits for data first, without the GIL, and copies after).
    fn fill(
        &mut self,
        py: Python<'_>,
        out: &mut OutBuf,
        timeout: Option<f64>,
        shared: bool,
    ) -> PyResult<usize> {
        let end = deadline(timeout)?;
        let dst = out.bytes_mut();
        let rx = end_mut(&mut self.rx)?;
        // The fast path, with the GIL held.
        match either!(&mut *rx, Rx, r => r.try_recv_bytes_into(dst)) {
            Err(Error::WouldBlock { .. }) if timeout != Some(0.0) => {}
            other => return other.map_err(|e| py_err(&e)),
        }
        if !shared {
            return blocking(
                py,
                end,
                |d| either!(&mut *rx, Rx, r => r.recv_bytes_into_deadline(dst, Some(d))),
            );
        }
        // A buffer Python can see: wait without the GIL into a private buffer of one
        // element, then take the rest with the GIL held.
        let size = self.c.dtype.size();
        let mut first = vec![0u8; size];
        let n = blocking(
            py,
            end,
            |d| either!(&mut *rx, Rx, r => r.recv_bytes_into_deadline(&mut first, Some(d))),
        )?;
        dst[..size].copy_from_slice(&first);
        // What else is ready; an error (empty, closed) is for the next call to report.
        let more =
            either!(&mut *rx, Rx, r => r.try_recv_bytes_into(&mut dst[size..])).unwrap_or_default();
        Ok(n + more)
    }
}

#[pymethods]
impl TypedReceiver {
    /// Connects to typed channel `name` of elements of `dtype` as its receiver, waiting up
    /// to `timeout` seconds for it to appear.
    #[staticmethod]
    #[pyo3(signature = (name, dtype, *, type_name=None, timeout=10.0, wait="yield", allow_foreign_owner=false, allow_shared_write=false))]
    #[allow(clippy::too_many_arguments)]
    fn connect(
        py: Python<'_>,
        name: &str,
        dtype: &Bound<'_, PyAny>,
        type_name: Option<String>,
        timeout: f64,
        wait: &str,
        allow_foreign_owner: bool,
        allow_shared_write: bool,
    ) -> PyResult<Self> {
        let o = Opts::joining(
            type_name,
            timeout,
            wait,
            allow_foreign_owner,
            allow_shared_write,
        );
        let o = Opts { kind: "spsc", ..o };
        let (rx, c) = open(py, name, dtype, o, |o, n, e| o.connect_raw(n, e))?;
        Ok(TypedReceiver::new(Rx::Spsc(rx), c))
    }

    /// Joins MPMC channel `name` of elements of `dtype` as a receiver.
    #[staticmethod]
    #[pyo3(signature = (name, dtype, *, type_name=None, timeout=10.0, wait="yield", allow_foreign_owner=false, allow_shared_write=false))]
    #[allow(clippy::too_many_arguments)]
    fn connect_mpmc(
        py: Python<'_>,
        name: &str,
        dtype: &Bound<'_, PyAny>,
        type_name: Option<String>,
        timeout: f64,
        wait: &str,
        allow_foreign_owner: bool,
        allow_shared_write: bool,
    ) -> PyResult<Self> {
        let o = Opts::joining(
            type_name,
            timeout,
            wait,
            allow_foreign_owner,
            allow_shared_write,
        );
        let (rx, c) = open(py, name, dtype, o, |o, n, e| {
            o.connect_mpmc_consumer_raw(n, e)
        })?;
        Ok(TypedReceiver::new(Rx::Mpmc(rx), c))
    }

    /// Connects to broadcast channel `name` of elements of `dtype` as a new receiver,
    /// starting with the next element sent, or with up to `history` earlier ones still in
    /// the channel. A receive raises `Lost` once per loss (the message says how many), then
    /// goes on.
    #[staticmethod]
    #[pyo3(signature = (name, dtype, *, type_name=None, history=0, timeout=10.0, wait="yield", allow_foreign_owner=false, allow_shared_write=false))]
    #[allow(clippy::too_many_arguments)]
    fn connect_broadcast(
        py: Python<'_>,
        name: &str,
        dtype: &Bound<'_, PyAny>,
        type_name: Option<String>,
        history: usize,
        timeout: f64,
        wait: &str,
        allow_foreign_owner: bool,
        allow_shared_write: bool,
    ) -> PyResult<Self> {
        let o = Opts::joining(
            type_name,
            timeout,
            wait,
            allow_foreign_owner,
            allow_shared_write,
        );
        let o = Opts {
            kind: "broadcast",
            ..o
        };
        let (rx, c) = open(py, name, dtype, o, |o, n, e| {
            o.clone().history(history).connect_subscriber_raw(n, e)
        })?;
        Ok(TypedReceiver::new(Rx::Broadcast(rx), c))
    }

    /// Receives up to `max` elements as a numpy array of the channel's dtype: waits up to
    /// `timeout` seconds for the first (None: no limit; 0: raise `WouldBlock` if none),
    /// then takes what is ready. Raises `Closed` once the channel is closed and drained.
    #[pyo3(signature = (max, *, timeout=None))]
    fn recv_batch<'py>(
        &mut self,
        py: Python<'py>,
        max: usize,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if max == 0 {
            return Err(PyValueError::new_err("max must be at least 1"));
        }
        let (arr, mut out) = self.c.dtype.empty(py, max)?;
        // `arr` is not reachable from Python until returned: filling it without the GIL
        // is safe.
        let n = self.fill(py, &mut out, timeout, false)?;
        drop(out);
        if n == max {
            return Ok(arr);
        }
        let part = arr.get_item(pyo3::types::PySlice::new(py, 0, n as isize, 1))?;
        if n < max / 4 {
            // Do not keep a large array alive for a few elements.
            return part.call_method0("copy");
        }
        Ok(part)
    }

    /// Receives one element (a numpy scalar of the dtype), waiting as `recv_batch`.
    #[pyo3(signature = (*, timeout=None))]
    fn recv<'py>(&mut self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        self.recv_batch(py, 1, timeout)?.get_item(0)
    }

    /// Receives into `array` (a writable, C-contiguous numpy array of the channel's dtype,
    /// or any writable buffer of whole elements) as many elements as are ready and fit,
    /// after waiting up to `timeout` for the first; returns how many.
    #[pyo3(signature = (array, *, timeout=None))]
    fn recv_into(
        &mut self,
        py: Python<'_>,
        array: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        if let Ok(other) = array.getattr("dtype") {
            let dt = self.c.dtype.dtype.bind(py);
            if !other.eq(dt)? {
                return Err(PyTypeError::new_err(format!(
                    "the array has dtype {}, the channel carries {}",
                    other.repr()?,
                    dt.repr()?
                )));
            }
        }
        let mut out = OutBuf::new(array)?;
        if out.bytes_mut().len() < self.c.dtype.size() {
            return Err(PyValueError::new_err(format!(
                "the buffer holds {} bytes, less than one {}-byte element",
                out.bytes_mut().len(),
                self.c.dtype.size()
            )));
        }
        // The caller's array is visible to other Python threads: copy with the GIL held.
        self.fill(py, &mut out, timeout, true)
    }

    /// Closes the channel (an MPMC channel for everyone): senders get `Closed`. Leaving a
    /// `with` block instead drops this end, which closes a typed channel and leaves an MPMC
    /// one (its last receiver out closes it).
    fn close(&mut self) -> PyResult<()> {
        match end_mut(&mut self.rx)? {
            Rx::Spsc(r) => r.close(),
            Rx::Mpmc(r) => r.close(),
            // A subscriber never closes a broadcast channel for the others.
            Rx::Broadcast(_) => {}
        }
        Ok(())
    }

    /// Messages a broadcast receiver lost since it connected (0 for other kinds).
    #[getter]
    fn missed(&mut self) -> PyResult<u64> {
        Ok(match end_mut(&mut self.rx)? {
            Rx::Broadcast(r) => r.missed(),
            _ => 0,
        })
    }

    /// The channel's numpy dtype.
    #[getter]
    fn dtype(&self, py: Python<'_>) -> Py<PyAny> {
        self.c.dtype.dtype.clone_ref(py)
    }

    /// The element name both ends agree on.
    #[getter]
    fn type_name(&self) -> String {
        self.c.dtype.elem.name().to_owned()
    }

    /// The channel's name.
    #[getter]
    fn name(&self) -> String {
        self.c.name.clone()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&mut self, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        leave(&mut self.rx);
        false
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        match self.recv(py, None) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_instance_of::<Closed>(py) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn __repr__(&self) -> String {
        self.c.repr("TypedReceiver")
    }
}
