//! The C ABI of shmlane's channels: what a C or C++ process links to exchange messages with
//! Rust, Python or other C processes over a named channel. Byte channels carry messages of
//! any length (`shmlane_byte_*`), to one receiver or, made by
//! [`shmlane_broadcast_byte_sender_create`], to many; typed, MPMC and broadcast channels
//! carry fixed-size elements described by a [`shmlane_element`](Element)
//! (`shmlane_typed_*`, `shmlane_mpmc_*`, `shmlane_broadcast_*`).
//!
//! Every function returns a [`Status`] (`shmlane_status`): `SHMLANE_STATUS_OK`, or what
//! went wrong; the message of the last failure on the calling thread, with the same context
//! as the Rust error (the channel's name, the sizes, the errno, what to do), is
//! [`shmlane_last_error`]. Handles are opaque pointers made by `shmlane_*_create` or
//! `shmlane_*_connect` and destroyed by `shmlane_*_free`; a handle may move between threads
//! but must not be used by two threads at once. No panic crosses the boundary: a bug inside
//! the library comes back as `SHMLANE_STATUS_PANIC`.
//!
//! The header is `include/shmlane.h`, generated from this file by cbindgen; the test
//! `tests/header.rs` fails when the checked-in header no longer matches.
//!
//! ```c
//! shmlane_byte_sender *tx;
//! if (shmlane_byte_sender_create("demo", NULL, &tx) != SHMLANE_STATUS_OK) {
//!     fprintf(stderr, "%s\n", shmlane_last_error());
//!     return 1;
//! }
//! shmlane_byte_sender_send(tx, (const uint8_t *)"hello", 5, -1);
//! shmlane_byte_sender_free(tx); /* closes the channel */
//! ```
//!
//! A typed channel of a C struct, shared with a Rust `Sender<Tick>` or a Python
//! `TypedReceiver` that name the element the same way:
//!
//! ```c
//! typedef struct { uint64_t seq; double value; } tick;
//! shmlane_element elem = SHMLANE_ELEMENT(tick, "myapp.Tick/1");
//! shmlane_typed_sender *tx;
//! shmlane_typed_sender_create("ticks", &elem, NULL, &tx);
//! tick t = {1, 0.5};
//! shmlane_typed_sender_send(tx, &t, 1, NULL, -1);
//! shmlane_typed_sender_free(tx);
//! ```

#![deny(unsafe_op_in_unsafe_fn)]

use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use shm_bridge::{AnyByteReceiver, AnyByteSender, ChannelOptions, Error};
use shm_queue::wait::WaitStrategy;

/// What a call did. Every function of the ABI returns one.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Done.
    Ok = 0,
    /// A `try` call found the ring full (send) or empty (receive): retry later.
    WouldBlock = 1,
    /// The timeout passed first.
    Timeout = 2,
    /// The other side closed the channel (a receiver sees this once every message sent
    /// before the close was received).
    Closed = 3,
    /// The other side's process died.
    PeerGone = 4,
    /// The other side's process is alive but its heartbeat has stopped (stopped or hung);
    /// retrying is allowed.
    PeerHung = 5,
    /// The message is larger than the channel's largest message.
    TooLarge = 6,
    /// The buffer is shorter than the message; the message stays in the channel.
    BufferTooSmall = 7,
    /// A null pointer, a name that is not UTF-8, a bad option, or a call out of order
    /// (commit without a claim, release without a read).
    InvalidArgument = 8,
    /// The shared memory holds impossible values (a corrupt or hostile peer).
    Corrupt = 9,
    /// Another process truncated the channel's file under the mapping.
    Truncated = 10,
    /// Any other failure (no such channel, permission, wrong kind, in use...): see
    /// [`shmlane_last_error`].
    Error = 11,
    /// A bug inside the library (a Rust panic, caught before it crossed the boundary).
    Panic = 12,
    /// The channel is of another kind, or carries another element type (name, size or
    /// alignment) than the caller's.
    WrongType = 13,
    /// A broadcast receiver lost messages (it fell a ring behind a lossy channel, or was
    /// evicted from a lossless one); the next call goes on. How many:
    /// [`shmlane_last_error`] says, and `shmlane_typed_receiver_missed` counts them all.
    Lost = 14,
}

/// [`Options::wait`]: spin briefly, then yield the CPU (the default).
pub const SHMLANE_WAIT_SPIN_THEN_YIELD: u32 = 0;
/// [`Options::wait`]: spin without ever giving the CPU away (lowest latency, a whole core).
pub const SHMLANE_WAIT_BUSY_SPIN: u32 = 1;
/// [`Options::wait`]: spin, yield, then sleep in the kernel until woken (no CPU while idle).
pub const SHMLANE_WAIT_BLOCKING: u32 = 2;

/// Options for creating or connecting; get the defaults from [`shmlane_options_default`]
/// and change what you need.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Byte channels: bytes of message data the ring holds (rounded up to a power of two);
    /// 0 for the default, 1 MiB. Typed and MPMC channels: elements (0 for the default,
    /// 1024). Only the creator's counts.
    pub capacity: usize,
    /// Largest message in bytes; 0 for the default, a quarter of the capacity. Only the
    /// creator's counts.
    pub max_message: usize,
    /// How to wait: one of the `SHMLANE_WAIT_*` values (a plain integer, so a value this
    /// library does not know is an error, not undefined behaviour).
    pub wait: u32,
    /// How long connecting waits for the channel to appear, in milliseconds.
    pub connect_timeout_ms: u64,
    /// File mode of a created channel (default `0600`).
    pub mode: u32,
    /// Accept a channel owned by another user.
    pub allow_foreign_owner: bool,
    /// Accept a channel that users other than its owner may write.
    pub allow_shared_write: bool,
}

/// A sending end of a byte channel or of a byte-message broadcast channel
/// (`shmlane_byte_sender`).
pub struct ByteSenderHandle {
    tx: AnyByteSender,
    /// Length of the message claimed by [`shmlane_byte_sender_claim`], until committed.
    claimed: Option<usize>,
}

/// A receiving end of a byte channel or of a byte-message broadcast channel
/// (`shmlane_byte_receiver`).
pub struct ByteReceiverHandle {
    rx: AnyByteReceiver,
    /// Whether a message is held by [`shmlane_byte_receiver_read`], until released.
    reading: bool,
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `msg` as this thread's last error.
fn set_error(msg: &str) {
    // A message with an interior NUL keeps what precedes it.
    let text = CString::new(msg.split('\0').next().unwrap_or_default()).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = text);
}

/// The status for `e`, after recording its message.
fn fail(e: &Error) -> Status {
    set_error(&e.to_string());
    use shm_queue::Error as Q;
    match e {
        Error::WouldBlock { .. } => Status::WouldBlock,
        Error::Timeout { .. } | Error::ConnectTimeout { .. } => Status::Timeout,
        Error::Closed { .. } => Status::Closed,
        Error::PeerGone { .. } => Status::PeerGone,
        Error::PeerHung { .. } => Status::PeerHung,
        Error::Region(shm_region::Error::Truncated { .. }) => Status::Truncated,
        Error::Queue { source, .. } => match source {
            Q::MessageTooLarge { .. } => Status::TooLarge,
            Q::BufferTooSmall { .. } => Status::BufferTooSmall,
            Q::Truncated => Status::Truncated,
            Q::Corrupted { .. } => Status::Corrupt,
            Q::TypeMismatch { .. } | Q::KindMismatch { .. } => Status::WrongType,
            Q::NotWholeElements { .. } | Q::UnsupportedType { .. } => Status::InvalidArgument,
            _ => Status::Error,
        },
        Error::WrongKind { .. } => Status::WrongType,
        Error::Lost { .. } => Status::Lost,
        Error::Corrupt { .. } => Status::Corrupt,
        Error::BadName { .. } | Error::BadConfig { .. } => Status::InvalidArgument,
        _ => Status::Error,
    }
}

/// [`Status::InvalidArgument`], recording `why`.
fn invalid(why: &str) -> Status {
    set_error(why);
    Status::InvalidArgument
}

/// Runs `f`, turning a panic into [`Status::Panic`].
fn guard(f: impl FnOnce() -> Status) -> Status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(s) => s,
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            set_error(&format!(
                "internal error (a bug in shmlane, please report it): {what}"
            ));
            Status::Panic
        }
    }
}

/// The deadline for a timeout in milliseconds: negative waits forever.
fn deadline(timeout_ms: i64) -> Option<Instant> {
    u64::try_from(timeout_ms)
        .ok()
        .map(|ms| Instant::now() + Duration::from_millis(ms))
}

/// The channel name behind `name`.
///
/// # Safety
///
/// `name` is null or a NUL-terminated string valid for reads.
unsafe fn name_of<'a>(name: *const c_char) -> Result<&'a str, Status> {
    if name.is_null() {
        return Err(invalid("the channel name is a null pointer"));
    }
    // SAFETY: non-null and NUL-terminated (the caller's contract).
    let c = unsafe { CStr::from_ptr(name) };
    c.to_str()
        .map_err(|_| invalid("the channel name is not valid UTF-8"))
}

/// The bridge options for `opts` (null: the defaults).
///
/// # Safety
///
/// `opts` is null or points to a valid [`Options`].
unsafe fn options_of(opts: *const Options) -> Result<ChannelOptions, Status> {
    let o = if opts.is_null() {
        shmlane_options_default()
    } else {
        // SAFETY: non-null and valid (the caller's contract); `Options` is `Copy` and any
        // bits are valid for its fields.
        unsafe { *opts }
    };
    let wait = match o.wait {
        SHMLANE_WAIT_SPIN_THEN_YIELD => WaitStrategy::spin_then_yield(),
        SHMLANE_WAIT_BUSY_SPIN => WaitStrategy::BusySpin,
        SHMLANE_WAIT_BLOCKING => WaitStrategy::blocking(),
        other => {
            return Err(invalid(&format!(
                "wait {other} is not one of SHMLANE_WAIT_SPIN_THEN_YIELD (0), \
                 SHMLANE_WAIT_BUSY_SPIN (1) or SHMLANE_WAIT_BLOCKING (2)"
            )))
        }
    };
    let mut c = ChannelOptions::new()
        .wait_strategy(wait)
        .timeout(Duration::from_millis(o.connect_timeout_ms))
        .mode(o.mode)
        .allow_foreign_owner(o.allow_foreign_owner)
        .allow_shared_write(o.allow_shared_write);
    if o.capacity != 0 {
        c = c.capacity(o.capacity);
    }
    if o.max_message != 0 {
        c = c.max_message(o.max_message);
    }
    Ok(c)
}

/// Writes `value` to `out` if it is not null.
///
/// # Safety
///
/// `out` is null or valid for a write of `T`.
unsafe fn put<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: non-null and writable (the caller's contract).
        unsafe { out.write(value) };
    }
}

/// The message of the last failed call on this thread (an empty string if none failed).
/// Valid until the next shmlane call on this thread; copy it to keep it.
#[no_mangle]
pub extern "C" fn shmlane_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// The default options: 1 MiB of data, largest message 256 KiB, spin then yield, a 10 s
/// connect timeout, mode `0600`, no foreign owner, no shared write.
#[no_mangle]
pub extern "C" fn shmlane_options_default() -> Options {
    Options {
        capacity: 0,
        max_message: 0,
        wait: SHMLANE_WAIT_SPIN_THEN_YIELD,
        connect_timeout_ms: 10_000,
        mode: 0o600,
        allow_foreign_owner: false,
        allow_shared_write: false,
    }
}

/// The common frame of the byte channels' create and connect calls: checks `out`, the
/// name and the options, runs `open`, and stores the handle it makes.
///
/// # Safety
///
/// As [`shmlane_byte_sender_create`].
pub(crate) unsafe fn open_bytes<H>(
    name: *const c_char,
    opts: *const Options,
    out: *mut *mut H,
    open: impl FnOnce(&str, ChannelOptions) -> Result<H, Error>,
) -> Status {
    guard(|| {
        if out.is_null() {
            return invalid("`out` is a null pointer");
        }
        // SAFETY: forwarded from the caller.
        let (name, opts) = match unsafe { (name_of(name), options_of(opts)) } {
            (Ok(n), Ok(o)) => (n, o),
            (Err(s), _) | (_, Err(s)) => return s,
        };
        match open(name, opts) {
            Ok(h) => {
                // SAFETY: `out` is non-null and writable (the caller's contract).
                unsafe { put(out, Box::into_raw(Box::new(h))) };
                Status::Ok
            }
            Err(e) => fail(&e),
        }
    })
}

/// Creates byte channel `name` (`/dev/shm/shmlane.NAME`, replacing one left behind by dead
/// processes) and stores its sending end in `*out`.
///
/// # Safety
///
/// `name` is a NUL-terminated string; `opts` is null or valid; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn shmlane_byte_sender_create(
    name: *const c_char,
    opts: *const Options,
    out: *mut *mut ByteSenderHandle,
) -> Status {
    // SAFETY: forwarded from the caller.
    unsafe {
        open_bytes(name, opts, out, |n, o| {
            o.create_bytes(n).map(|tx| ByteSenderHandle {
                tx: AnyByteSender::Bytes(tx),
                claimed: None,
            })
        })
    }
}

/// Connects to byte channel `name` as its consumer, waiting up to the options'
/// `connect_timeout_ms` for it to appear, and stores the receiving end in `*out`.
///
/// # Safety
///
/// As [`shmlane_byte_sender_create`].
#[no_mangle]
pub unsafe extern "C" fn shmlane_byte_receiver_connect(
    name: *const c_char,
    opts: *const Options,
    out: *mut *mut ByteReceiverHandle,
) -> Status {
    // SAFETY: forwarded from the caller.
    unsafe {
        open_bytes(name, opts, out, |n, o| {
            o.connect_bytes(n).map(|rx| ByteReceiverHandle {
                rx: AnyByteReceiver::Bytes(rx),
                reading: false,
            })
        })
    }
}

/// The handle behind `h`.
///
/// # Safety
///
/// `h` is null or a live handle made by this library, not in use by another thread.
unsafe fn handle<'a, H>(h: *mut H) -> Result<&'a mut H, Status> {
    if h.is_null() {
        return Err(invalid("the handle is a null pointer"));
    }
    // SAFETY: a live handle used by this thread only (the caller's contract).
    Ok(unsafe { &mut *h })
}

/// Runs `f` on the handle behind `h` inside [`guard`]; a null handle is
/// `SHMLANE_STATUS_INVALID_ARGUMENT`.
///
/// # Safety
///
/// As [`handle`].
unsafe fn with_handle<H>(h: *mut H, f: impl FnOnce(&mut H) -> Status) -> Status {
    guard(|| {
        // SAFETY: forwarded from the caller.
        match unsafe { handle(h) } {
            Ok(h) => f(h),
            Err(s) => s,
        }
    })
}

/// Frees a handle made by `Box::into_raw` (dropping it closes or leaves its channel); null
/// is ignored, and a panic in a destructor stays inside.
///
/// # Safety
///
/// `h` is null or a live handle made by this library, not in use by another thread, and
/// not used after.
unsafe fn free_handle<H>(h: *mut H) {
    if !h.is_null() {
        let _ = guard(|| {
            // SAFETY: made by Box::into_raw and not freed yet (the caller's contract).
            drop(unsafe { Box::from_raw(h) });
            Status::Ok
        });
    }
}

/// The bytes `msg[..len]`, or an error for a null pointer with a non-zero length.
///
/// # Safety
///
/// `msg` is null with `len == 0`, or valid for reads of `len` bytes.
unsafe fn bytes<'a>(msg: *const u8, len: usize) -> Result<&'a [u8], Status> {
    if len == 0 {
        return Ok(&[]);
    }
    if msg.is_null() {
        return Err(invalid(
            "the message is a null pointer with a non-zero length",
        ));
    }
    // SAFETY: non-null and readable for `len` bytes (the caller's contract).
    Ok(unsafe { core::slice::from_raw_parts(msg, len) })
}

/// Waits up to `timeout_ms` milliseconds for a consumer to connect (negative: forever).
///
/// # Safety
///
/// `tx` is a live sender handle, used by this thread only.
#[no_mangle]
pub unsafe extern "C" fn shmlane_byte_sender_wait_for_peer(
    tx: *mut ByteSenderHandle,
    timeout_ms: i64,
) -> Status {
    guard(|| {
        // SAFETY: `tx` is null or a live handle used by this thread only (the
        // caller's contract).
        let h = match unsafe { handle(tx) } {
            Ok(h) => h,
            Err(s) => return s,
        };
        let limit = u64::try_from(timeout_ms).map_or(Duration::MAX, Duration::from_millis);
        match h.tx.wait_for_peer(limit) {
            Ok(()) => Status::Ok,
            Err(e) => fail(&e),
        }
    })
}

/// Sends `msg[..len]` as one message, waiting for room up to `timeout_ms` milliseconds
/// (0: do not wait, `SHMLANE_STATUS_WOULD_BLOCK` if full; negative: wait forever).
///
/// # Safety
///
/// `tx` is a live sender handle, used by this thread only; `msg` is valid for reads of
/// `len` bytes (or null with `len == 0`).
#[no_mangle]
pub unsafe extern "C" fn shmlane_byte_sender_send(
    tx: *mut ByteSenderHandle,
    msg: *const u8,
    len: usize,
    timeout_ms: i64,
) -> Status {
    guard(|| {
        // SAFETY: `tx` is null or a live handle used by this thread only (the
        // caller's contract).
        let h = match unsafe { handle(tx) } {
            Ok(h) => h,
            Err(s) => return s,
        };
        // SAFETY: `msg` is readable for `len` bytes (the caller's contract).
        let msg = match unsafe { bytes(msg, len) } {
            Ok(m) => m,
            Err(s) => return s,
        };
        // A send abandons an uncommitted claim: it writes where the claim was.
        h.claimed = None;
        let r = if timeout_ms == 0 {
            h.tx.try_send(msg)
        } else {
            h.tx.send_deadline(msg, deadline(timeout_ms))
        };
        match r {
            Ok(()) => Status::Ok,
            Err(e) => fail(&e),
        }
    })
}

/// Reserves room for a message of `len` bytes and stores a pointer to it in `*out`: write
/// the message there, then [`shmlane_byte_sender_commit`]. Nothing is visible to the
/// consumer before the commit; another claim (or a send) abandons an uncommitted one. Does
/// not wait: `SHMLANE_STATUS_WOULD_BLOCK` when full.
///
/// # Safety
///
/// `tx` is a live sender handle, used by this thread only; `out` is valid for a write. The
/// pointer is valid for writes of `len` bytes until the commit, the next claim or send, or
/// the free.
#[no_mangle]
pub unsafe extern "C" fn shmlane_byte_sender_claim(
    tx: *mut ByteSenderHandle,
    len: usize,
    out: *mut *mut u8,
) -> Status {
    guard(|| {
        // SAFETY: `tx` is null or a live handle used by this thread only (the
        // caller's contract).
        let h = match unsafe { handle(tx) } {
            Ok(h) => h,
            Err(s) => return s,
        };
        if out.is_null() {
            return invalid("`out` is a null pointer");
        }
        h.claimed = None;
        let AnyByteSender::Bytes(tx) = &mut h.tx else {
            return not_in_place();
        };
        match tx.claim(len) {
            Ok(mut c) => {
                // SAFETY: the claimed bytes are reserved to this producer until it
                // commits; the C caller writes them, as a Rust caller would through
                // `write_at`. Dropping the claim publishes nothing and keeps the tail
                // where it is, so the commit finds the same bytes.
                let p = unsafe { c.as_mut_slice() }.as_mut_ptr();
                drop(c);
                h.claimed = Some(len);
                // SAFETY: `out` is non-null and writable (the caller's contract).
                unsafe { put(out, p) };
                Status::Ok
            }
            Err(e) => fail(&e),
        }
    })
}

/// The refusal of a claim or commit on a broadcast channel's sender.
fn not_in_place() -> Status {
    invalid(
        "claim-commit writes in place on byte channels only; send on a broadcast channel \
         with shmlane_byte_sender_send",
    )
}

/// Publishes the first `len` bytes (at most the claimed length) of the message claimed by
/// [`shmlane_byte_sender_claim`].
///
/// # Safety
///
/// `tx` is a live sender handle, used by this thread only.
#[no_mangle]
pub unsafe extern "C" fn shmlane_byte_sender_commit(
    tx: *mut ByteSenderHandle,
    len: usize,
) -> Status {
    guard(|| {
        // SAFETY: `tx` is null or a live handle used by this thread only (the
        // caller's contract).
        let h = match unsafe { handle(tx) } {
            Ok(h) => h,
            Err(s) => return s,
        };
        let Some(claimed) = h.claimed.take() else {
            return invalid("commit without a claim (call shmlane_byte_sender_claim first)");
        };
        if len > claimed {
            h.claimed = Some(claimed);
            return invalid(&format!(
                "commit of {len} bytes, more than the {claimed} claimed"
            ));
        }
        let AnyByteSender::Bytes(tx) = &mut h.tx else {
            return not_in_place();
        };
        let name = tx.name().to_owned();
        // The tail has not moved since the claim and the consumer only frees room, so
        // this claim covers the same bytes the caller wrote.
        match tx.claim(claimed) {
            Ok(c) => match c.commit_len(len) {
                Ok(()) => Status::Ok,
                Err(e) => fail(&Error::Queue {
                    name,
                    source: e.into(),
                }),
            },
            Err(e) => fail(&e),
        }
    })
}

/// Closes the channel from the sending side: the consumer receives what was sent, then
/// `SHMLANE_STATUS_CLOSED`. The handle stays valid until freed.
///
/// # Safety
///
/// `tx` is a live sender handle, used by this thread only.
#[no_mangle]
pub unsafe extern "C" fn shmlane_byte_sender_close(tx: *mut ByteSenderHandle) -> Status {
    // SAFETY: forwarded from the caller.
    unsafe {
        with_handle(tx, |h| {
            h.tx.close();
            Status::Ok
        })
    }
}

/// Closes the channel (if still open) and frees the handle. Null is ignored.
///
/// # Safety
///
/// `tx` is null or a live sender handle not in use by another thread; it is invalid after.
#[no_mangle]
pub unsafe extern "C" fn shmlane_byte_sender_free(tx: *mut ByteSenderHandle) {
    // SAFETY: forwarded from the caller.
    unsafe { free_handle(tx) }
}

/// Receives the next message into `buf[..cap]` and stores its length in `*len`, waiting up
/// to `timeout_ms` milliseconds (0: do not wait, `SHMLANE_STATUS_WOULD_BLOCK` if empty;
/// negative: wait forever). A message longer than `cap` stays in the channel
/// (`SHMLANE_STATUS_BUFFER_TOO_SMALL`).
///
/// # Safety
///
/// `rx` is a live receiver handle, used by this thread only; `buf` is valid for writes of
/// `cap` bytes (or null with `cap == 0`); `len` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn shmlane_byte_receiver_recv(
    rx: *mut ByteReceiverHandle,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
    timeout_ms: i64,
) -> Status {
    guard(|| {
        // SAFETY: `rx` is null or a live handle used by this thread only (the
        // caller's contract).
        let h = match unsafe { handle(rx) } {
            Ok(h) => h,
            Err(s) => return s,
        };
        if h.reading {
            return invalid("a message is held by shmlane_byte_receiver_read: release it first");
        }
        let buf: &mut [u8] = if cap == 0 {
            &mut []
        } else if buf.is_null() {
            return invalid("the buffer is a null pointer with a non-zero length");
        } else {
            // SAFETY: non-null and writable for `cap` bytes (the caller's contract).
            unsafe { core::slice::from_raw_parts_mut(buf, cap) }
        };
        let r = if timeout_ms == 0 {
            h.rx.try_recv(buf)
        } else {
            h.rx.recv_deadline(buf, deadline(timeout_ms))
        };
        match r {
            Ok(n) => {
                // SAFETY: null or writable (the caller's contract).
                unsafe { put(len, n) };
                Status::Ok
            }
            Err(e) => fail(&e),
        }
    })
}

/// Waits up to `timeout_ms` milliseconds (as [`shmlane_byte_receiver_recv`]) for the next
/// message and gives it in place, without a copy: `*data` and `*len`. The message stays
/// held (valid, and not freed for the producer) until [`shmlane_byte_receiver_release`].
///
/// The bytes are in memory another process maps: read them once (copy what you check
/// before you use it), as a hostile producer could change them under you. On a lossy or
/// evicting broadcast channel the sender may overwrite them while held: then the release
/// returns `SHMLANE_STATUS_LOST`, and what was read must be discarded.
///
/// # Safety
///
/// `rx` is a live receiver handle, used by this thread only; `data` and `len` are valid for
/// writes.
#[no_mangle]
pub unsafe extern "C" fn shmlane_byte_receiver_read(
    rx: *mut ByteReceiverHandle,
    data: *mut *const u8,
    len: *mut usize,
    timeout_ms: i64,
) -> Status {
    guard(|| {
        // SAFETY: `rx` is null or a live handle used by this thread only (the
        // caller's contract).
        let h = match unsafe { handle(rx) } {
            Ok(h) => h,
            Err(s) => return s,
        };
        if data.is_null() || len.is_null() {
            return invalid("`data` or `len` is a null pointer");
        }
        if h.reading {
            return invalid("a message is already held: release it first");
        }
        match h.rx.hold(deadline(timeout_ms)) {
            Ok((p, n)) => {
                h.reading = true;
                // SAFETY: non-null and writable (checked, the caller's contract).
                unsafe { put(data, p) };
                // SAFETY: as above.
                unsafe { put(len, n) };
                Status::Ok
            }
            Err(Error::Timeout { .. }) if timeout_ms == 0 => {
                set_error("no message is ready");
                Status::WouldBlock
            }
            Err(e) => fail(&e),
        }
    })
}

/// Releases the message held by [`shmlane_byte_receiver_read`], freeing its room for the
/// producer; its pointer is invalid after. `SHMLANE_STATUS_LOST` if a broadcast sender
/// overwrote it meanwhile (discard what was read of it; the receiver goes on after it).
///
/// # Safety
///
/// `rx` is a live receiver handle, used by this thread only.
#[no_mangle]
pub unsafe extern "C" fn shmlane_byte_receiver_release(rx: *mut ByteReceiverHandle) -> Status {
    guard(|| {
        // SAFETY: `rx` is null or a live handle used by this thread only (the
        // caller's contract).
        let h = match unsafe { handle(rx) } {
            Ok(h) => h,
            Err(s) => return s,
        };
        if !h.reading {
            return invalid("release without a read (call shmlane_byte_receiver_read first)");
        }
        h.reading = false;
        match h.rx.release_held() {
            Ok(()) => Status::Ok,
            Err(e) => fail(&e),
        }
    })
}

/// Closes the channel from the receiving side: the producer's next send returns
/// `SHMLANE_STATUS_CLOSED` (a broadcast receiver closes nothing for the others; free it to
/// leave the channel). The handle stays valid until freed.
///
/// # Safety
///
/// `rx` is a live receiver handle, used by this thread only.
#[no_mangle]
pub unsafe extern "C" fn shmlane_byte_receiver_close(rx: *mut ByteReceiverHandle) -> Status {
    // SAFETY: forwarded from the caller.
    unsafe {
        with_handle(rx, |h| {
            h.rx.close();
            Status::Ok
        })
    }
}

/// Closes the channel (if still open) and frees the handle. Null is ignored.
///
/// # Safety
///
/// `rx` is null or a live receiver handle not in use by another thread; it is invalid
/// after.
#[no_mangle]
pub unsafe extern "C" fn shmlane_byte_receiver_free(rx: *mut ByteReceiverHandle) {
    // SAFETY: forwarded from the caller.
    unsafe { free_handle(rx) }
}

/// The largest message the channel accepts, in bytes (0 for a null handle).
///
/// # Safety
///
/// `tx` is null or a live sender handle.
#[no_mangle]
pub unsafe extern "C" fn shmlane_byte_sender_max_message(tx: *const ByteSenderHandle) -> usize {
    if tx.is_null() {
        return 0;
    }
    // SAFETY: a live handle (the caller's contract).
    unsafe { &*tx }.tx.max_message()
}

/// The largest message the channel carries, in bytes (0 for a null handle).
///
/// # Safety
///
/// `rx` is null or a live receiver handle.
#[no_mangle]
pub unsafe extern "C" fn shmlane_byte_receiver_max_message(rx: *const ByteReceiverHandle) -> usize {
    if rx.is_null() {
        return 0;
    }
    // SAFETY: a live handle (the caller's contract).
    unsafe { &*rx }.rx.max_message()
}

mod broadcast_bytes;
mod element;
pub use broadcast_bytes::*;
pub use element::*;
