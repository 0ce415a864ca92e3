//! Typed, MPMC and broadcast channels of fixed-size elements that C describes at run time
//! ([`Element`], `shmlane_element`): one sender handle and one receiver handle type serve
//! all three kinds. Elements move as whole copies; the element's name, size and alignment must
//! match what the channel records (a Rust end names its `Pod` type the same way with
//! `ChannelOptions::type_name`), or connecting fails with `SHMLANE_STATUS_WRONG_TYPE`.

use super::*;
use shm_bridge::{
    BroadcastReceiver, BroadcastSender, ElementType, MpmcReceiver, MpmcSender, Raw, Receiver,
    Sender, SlowPolicy,
};

/// An element type (`shmlane_element`): a name both ends agree on, such as
/// `"myapp.Tick/1"`, and the C type's size and alignment (`sizeof`, `_Alignof`; the
/// `SHMLANE_ELEMENT(T, NAME)` macro fills them).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Element {
    /// NUL-terminated UTF-8, 1 to 128 bytes, no control characters.
    pub type_name: *const c_char,
    /// `sizeof` the element: 1 to 2^30 bytes, a multiple of `align`.
    pub size: usize,
    /// `_Alignof` the element: a power of two up to 64.
    pub align: usize,
}

/// The sending end of a typed or MPMC channel (`shmlane_typed_sender`).
pub struct TypedSenderHandle {
    tx: Tx,
}

/// The receiving end of a typed or MPMC channel (`shmlane_typed_receiver`).
pub struct TypedReceiverHandle {
    rx: Rx,
}

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

/// `$body` with `$v` bound to the end inside a [`Tx`] or [`Rx`], whichever kind it is.
macro_rules! either {
    ($e:expr, $enum:ident, $v:ident => $body:expr) => {
        match $e {
            $enum::Spsc($v) => $body,
            $enum::Mpmc($v) => $body,
            $enum::Broadcast($v) => $body,
        }
    };
}

/// The element type behind `elem`, checked.
///
/// # Safety
///
/// `elem` is null or points to a valid [`Element`] whose `type_name` is null or a
/// NUL-terminated string.
unsafe fn element_of(elem: *const Element) -> Result<ElementType, Status> {
    if elem.is_null() {
        return Err(invalid("the element description is a null pointer"));
    }
    // SAFETY: non-null and valid (the caller's contract); `Element` is `Copy`.
    let e = unsafe { *elem };
    if e.type_name.is_null() {
        return Err(invalid("the element's type_name is a null pointer"));
    }
    // SAFETY: non-null and NUL-terminated (the caller's contract).
    let name = unsafe { CStr::from_ptr(e.type_name) }
        .to_str()
        .map_err(|_| invalid("the element's type_name is not valid UTF-8"))?;
    ElementType::named(name.to_owned(), e.size, e.align).map_err(|err| invalid(&err.to_string()))
}

/// The common frame of the create and connect calls: checks `out`, the name, the options
/// and the element, runs `open`, and stores the handle it makes.
///
/// # Safety
///
/// As [`shmlane_typed_sender_create`].
unsafe fn open<H>(
    name: *const c_char,
    elem: *const Element,
    opts: *const Options,
    out: *mut *mut H,
    open: impl FnOnce(&str, &ElementType, ChannelOptions) -> Result<H, Error>,
) -> Status {
    guard(|| {
        if out.is_null() {
            return invalid("`out` is a null pointer");
        }
        // SAFETY: forwarded from the caller.
        let (name, elem, opts) =
            match unsafe { (name_of(name), element_of(elem), options_of(opts)) } {
                (Ok(n), Ok(e), Ok(o)) => (n, e, o),
                (Err(s), _, _) | (_, Err(s), _) | (_, _, Err(s)) => return s,
            };
        let opts = opts.type_name(elem.name());
        match open(name, &elem, opts) {
            Ok(h) => {
                // SAFETY: `out` is non-null and writable (the caller's contract).
                unsafe { put(out, Box::into_raw(Box::new(h))) };
                Status::Ok
            }
            Err(e) => fail(&e),
        }
    })
}

/// Creates typed (single-producer, single-consumer) channel `name` of elements `elem`, and
/// stores its sending end in `*out`. `opts->capacity` counts elements (0: 1024).
///
/// # Safety
///
/// `name` is a NUL-terminated string; `elem` points to a valid `shmlane_element` whose
/// `type_name` is NUL-terminated; `opts` is null or valid; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn shmlane_typed_sender_create(
    name: *const c_char,
    elem: *const Element,
    opts: *const Options,
    out: *mut *mut TypedSenderHandle,
) -> Status {
    // SAFETY: forwarded from the caller.
    unsafe {
        open(name, elem, opts, out, |n, e, o| {
            o.create_raw(n, e)
                .map(|tx| TypedSenderHandle { tx: Tx::Spsc(tx) })
        })
    }
}

/// Connects to typed channel `name` of elements `elem` as its consumer, waiting up to the
/// options' `connect_timeout_ms`, and stores the receiving end in `*out`.
///
/// # Safety
///
/// As [`shmlane_typed_sender_create`].
#[no_mangle]
pub unsafe extern "C" fn shmlane_typed_receiver_connect(
    name: *const c_char,
    elem: *const Element,
    opts: *const Options,
    out: *mut *mut TypedReceiverHandle,
) -> Status {
    // SAFETY: forwarded from the caller.
    unsafe {
        open(name, elem, opts, out, |n, e, o| {
            o.connect_raw(n, e)
                .map(|rx| TypedReceiverHandle { rx: Rx::Spsc(rx) })
        })
    }
}

/// Creates MPMC channel `name` of elements `elem` with `participants` slots (producers and
/// consumers together, 2 to 60; 0: 16), and stores a sending end in `*out`. More producers
/// join with [`shmlane_mpmc_sender_connect`], consumers with
/// [`shmlane_mpmc_receiver_connect`]; the ends are `shmlane_typed_sender` and
/// `shmlane_typed_receiver` handles.
///
/// # Safety
///
/// As [`shmlane_typed_sender_create`].
#[no_mangle]
pub unsafe extern "C" fn shmlane_mpmc_sender_create(
    name: *const c_char,
    elem: *const Element,
    opts: *const Options,
    participants: u32,
    out: *mut *mut TypedSenderHandle,
) -> Status {
    // SAFETY: forwarded from the caller.
    unsafe {
        open(name, elem, opts, out, |n, e, o| {
            let o = if participants == 0 {
                o
            } else {
                o.participants(participants as usize)
            };
            o.create_mpmc_raw(n, e)
                .map(|tx| TypedSenderHandle { tx: Tx::Mpmc(tx) })
        })
    }
}

/// Joins MPMC channel `name` of elements `elem` as another producer.
///
/// # Safety
///
/// As [`shmlane_typed_sender_create`].
#[no_mangle]
pub unsafe extern "C" fn shmlane_mpmc_sender_connect(
    name: *const c_char,
    elem: *const Element,
    opts: *const Options,
    out: *mut *mut TypedSenderHandle,
) -> Status {
    // SAFETY: forwarded from the caller.
    unsafe {
        open(name, elem, opts, out, |n, e, o| {
            o.connect_mpmc_producer_raw(n, e)
                .map(|tx| TypedSenderHandle { tx: Tx::Mpmc(tx) })
        })
    }
}

/// Joins MPMC channel `name` of elements `elem` as a consumer.
///
/// # Safety
///
/// As [`shmlane_typed_sender_create`].
#[no_mangle]
pub unsafe extern "C" fn shmlane_mpmc_receiver_connect(
    name: *const c_char,
    elem: *const Element,
    opts: *const Options,
    out: *mut *mut TypedReceiverHandle,
) -> Status {
    // SAFETY: forwarded from the caller.
    unsafe {
        open(name, elem, opts, out, |n, e, o| {
            o.connect_mpmc_consumer_raw(n, e)
                .map(|rx| TypedReceiverHandle { rx: Rx::Mpmc(rx) })
        })
    }
}

/// [`shmlane_broadcast_sender_create`]'s `flags`: a lossy channel (the sender never waits;
/// a receiver that falls a ring behind loses the oldest messages and learns how many).
pub const SHMLANE_BROADCAST_LOSSY: u32 = 1;

/// Creates broadcast channel `name` of elements `elem` for up to `subscribers` receivers
/// (1 to 59; 0: 8), and stores its sending end (a `shmlane_typed_sender`) in `*out`.
/// Every receiver ([`shmlane_broadcast_receiver_connect`]) gets every element sent after
/// it connected. `flags`: 0 (lossless: the slowest live receiver holds the sender up) or
/// [`SHMLANE_BROADCAST_LOSSY`]; a lossless channel with `evict_after_ms > 0` evicts a
/// receiver that holds it up that long.
///
/// # Safety
///
/// As [`shmlane_typed_sender_create`].
#[no_mangle]
pub unsafe extern "C" fn shmlane_broadcast_sender_create(
    name: *const c_char,
    elem: *const Element,
    opts: *const Options,
    subscribers: u32,
    flags: u32,
    evict_after_ms: u32,
    out: *mut *mut TypedSenderHandle,
) -> Status {
    let policy = match broadcast_policy(flags, evict_after_ms) {
        Ok(p) => p,
        Err(s) => return s,
    };
    // SAFETY: forwarded from the caller.
    unsafe {
        open(name, elem, opts, out, |n, e, o| {
            policy(o, subscribers)
                .create_broadcast_raw(n, e)
                .map(|tx| TypedSenderHandle {
                    tx: Tx::Broadcast(tx),
                })
        })
    }
}

/// What a broadcast create call's `subscribers`, `flags` and `evict_after_ms` make of the
/// options, once `flags` is checked.
pub(crate) fn broadcast_policy(
    flags: u32,
    evict_after_ms: u32,
) -> Result<impl FnOnce(ChannelOptions, u32) -> ChannelOptions, Status> {
    if flags & !SHMLANE_BROADCAST_LOSSY != 0 {
        return Err(invalid("unknown broadcast flags"));
    }
    Ok(move |o: ChannelOptions, subscribers: u32| {
        let o = if subscribers == 0 {
            o
        } else {
            o.subscribers(subscribers as usize)
        };
        if flags & SHMLANE_BROADCAST_LOSSY != 0 {
            o.lossy()
        } else if evict_after_ms > 0 {
            o.slow_policy(SlowPolicy::Evict {
                after: Duration::from_millis(evict_after_ms.into()),
            })
        } else {
            o
        }
    })
}

/// Connects to broadcast channel `name` of elements `elem` as a new receiver (a
/// `shmlane_typed_receiver`), starting with the next element sent, or with up to `history`
/// earlier ones still in the channel. Its receives return `SHMLANE_STATUS_LOST` once per
/// loss, then go on.
///
/// # Safety
///
/// As [`shmlane_typed_sender_create`].
#[no_mangle]
pub unsafe extern "C" fn shmlane_broadcast_receiver_connect(
    name: *const c_char,
    elem: *const Element,
    opts: *const Options,
    history: u64,
    out: *mut *mut TypedReceiverHandle,
) -> Status {
    // SAFETY: forwarded from the caller.
    unsafe {
        open(name, elem, opts, out, |n, e, o| {
            o.history(usize::try_from(history).unwrap_or(usize::MAX))
                .connect_subscriber_raw(n, e)
                .map(|rx| TypedReceiverHandle {
                    rx: Rx::Broadcast(rx),
                })
        })
    }
}

/// Elements a broadcast receiver lost since it connected (0 for other kinds and for a
/// null handle).
///
/// # Safety
///
/// `rx` is null or a live receiver handle.
#[no_mangle]
pub unsafe extern "C" fn shmlane_typed_receiver_missed(rx: *const TypedReceiverHandle) -> u64 {
    if rx.is_null() {
        return 0;
    }
    // SAFETY: a live handle (the caller's contract).
    match &unsafe { &*rx }.rx {
        Rx::Broadcast(r) => r.missed(),
        _ => 0,
    }
}

/// Waits up to `timeout_ms` milliseconds for a consumer to connect (negative: forever).
///
/// # Safety
///
/// `tx` is a live sender handle, used by this thread only.
#[no_mangle]
pub unsafe extern "C" fn shmlane_typed_sender_wait_for_peer(
    tx: *mut TypedSenderHandle,
    timeout_ms: i64,
) -> Status {
    guard(|| {
        // SAFETY: null or a live handle used by this thread only (the caller's contract).
        let h = match unsafe { handle(tx) } {
            Ok(h) => h,
            Err(s) => return s,
        };
        let limit = u64::try_from(timeout_ms).map_or(Duration::MAX, Duration::from_millis);
        match either!(&h.tx, Tx, t => t.wait_for_peer(limit)) {
            Ok(()) => Status::Ok,
            Err(e) => fail(&e),
        }
    })
}

/// `count` elements at `p`, as bytes, for elements of `size` bytes.
///
/// # Safety
///
/// `p` is null with `count == 0`, or valid for reads of `count * size` bytes.
unsafe fn elements<'a>(p: *const u8, count: usize, size: usize) -> Result<&'a [u8], Status> {
    let len = count
        .checked_mul(size)
        .ok_or_else(|| invalid("count times the element size overflows"))?;
    // SAFETY: forwarded from the caller.
    unsafe { bytes(p, len) }
}

/// Sends the `count` elements at `elems` in order, waiting for room up to `timeout_ms`
/// milliseconds (negative: forever). With `timeout_ms == 0` it sends what fits now, and
/// `SHMLANE_STATUS_WOULD_BLOCK` if nothing did. `*sent` (if not null) is how many elements
/// went, also when the call fails part-way: none of them is lost or sent twice by a retry
/// of the rest.
///
/// # Safety
///
/// `tx` is a live sender handle, used by this thread only; `elems` is valid for reads of
/// `count` elements (or null with `count == 0`); `sent` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn shmlane_typed_sender_send(
    tx: *mut TypedSenderHandle,
    elems: *const c_void,
    count: usize,
    sent: *mut usize,
    timeout_ms: i64,
) -> Status {
    guard(|| {
        // SAFETY: null or writable (the caller's contract).
        unsafe { put(sent, 0) };
        // SAFETY: null or a live handle used by this thread only (the caller's contract).
        let h = match unsafe { handle(tx) } {
            Ok(h) => h,
            Err(s) => return s,
        };
        let size = either!(&h.tx, Tx, t => t.element_size());
        // SAFETY: readable for `count` elements (the caller's contract).
        let src = match unsafe { elements(elems.cast(), count, size) } {
            Ok(s) => s,
            Err(s) => return s,
        };
        let (n, r) = if timeout_ms == 0 {
            match either!(&mut h.tx, Tx, t => t.try_send_bytes(src)) {
                Ok(n) => (n, Ok(())),
                Err(e) => (0, Err(e)),
            }
        } else {
            match either!(&mut h.tx, Tx, t => t.send_bytes_deadline(src, deadline(timeout_ms))) {
                Ok(()) => (count, Ok(())),
                Err((n, e)) => (n, Err(e)),
            }
        };
        // SAFETY: null or writable (the caller's contract).
        unsafe { put(sent, n) };
        match r {
            Ok(()) => Status::Ok,
            Err(e) => fail(&e),
        }
    })
}

/// Receives up to `max` elements into `buf`, waiting up to `timeout_ms` milliseconds for
/// the first (0: do not wait, `SHMLANE_STATUS_WOULD_BLOCK` if none; negative: forever),
/// then taking whatever else is ready; `*count` (if not null) is how many.
///
/// # Safety
///
/// `rx` is a live receiver handle, used by this thread only; `buf` is valid for writes of
/// `max` elements; `count` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn shmlane_typed_receiver_recv(
    rx: *mut TypedReceiverHandle,
    buf: *mut c_void,
    max: usize,
    count: *mut usize,
    timeout_ms: i64,
) -> Status {
    guard(|| {
        // SAFETY: null or writable (the caller's contract).
        unsafe { put(count, 0) };
        // SAFETY: null or a live handle used by this thread only (the caller's contract).
        let h = match unsafe { handle(rx) } {
            Ok(h) => h,
            Err(s) => return s,
        };
        let size = either!(&h.rx, Rx, r => r.element_size());
        let Some(len) = max.checked_mul(size) else {
            return invalid("max times the element size overflows");
        };
        if len == 0 {
            return invalid("the buffer holds no element (max is 0)");
        }
        if buf.is_null() {
            return invalid("the buffer is a null pointer");
        }
        // SAFETY: non-null and writable for `max` elements (the caller's contract).
        let dst = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), len) };
        let r = if timeout_ms == 0 {
            either!(&mut h.rx, Rx, r => r.try_recv_bytes_into(dst))
        } else {
            either!(&mut h.rx, Rx, r => r.recv_bytes_into_deadline(dst, deadline(timeout_ms)))
        };
        match r {
            Ok(n) => {
                // SAFETY: null or writable (the caller's contract).
                unsafe { put(count, n) };
                Status::Ok
            }
            Err(e) => fail(&e),
        }
    })
}

/// Closes the channel from the sending side (an MPMC channel for everyone): receivers get
/// what was sent, then `SHMLANE_STATUS_CLOSED`. The handle stays valid until freed.
///
/// # Safety
///
/// `tx` is a live sender handle, used by this thread only.
#[no_mangle]
pub unsafe extern "C" fn shmlane_typed_sender_close(tx: *mut TypedSenderHandle) -> Status {
    // SAFETY: forwarded from the caller.
    unsafe {
        with_handle(tx, |h| {
            either!(&mut h.tx, Tx, t => t.close());
            Status::Ok
        })
    }
}

/// Closes the channel from the receiving side (an MPMC channel for everyone): senders get
/// `SHMLANE_STATUS_CLOSED`; a broadcast receiver closes nothing (free it to leave). The
/// handle stays valid until freed.
///
/// # Safety
///
/// `rx` is a live receiver handle, used by this thread only.
#[no_mangle]
pub unsafe extern "C" fn shmlane_typed_receiver_close(rx: *mut TypedReceiverHandle) -> Status {
    // SAFETY: forwarded from the caller.
    unsafe {
        with_handle(rx, |h| {
            match &mut h.rx {
                Rx::Spsc(r) => r.close(),
                Rx::Mpmc(r) => r.close(),
                // A subscriber never closes a broadcast channel for the others; freeing it
                // leaves.
                Rx::Broadcast(_) => {}
            }
            Status::Ok
        })
    }
}

/// Frees the sending end (a typed channel is closed; an MPMC channel is closed when its
/// last producer leaves). Null is ignored.
///
/// # Safety
///
/// `tx` is null or a live sender handle not in use by another thread; it is invalid after.
#[no_mangle]
pub unsafe extern "C" fn shmlane_typed_sender_free(tx: *mut TypedSenderHandle) {
    // SAFETY: forwarded from the caller.
    unsafe { free_handle(tx) }
}

/// Frees the receiving end. Null is ignored.
///
/// # Safety
///
/// `rx` is null or a live receiver handle not in use by another thread; it is invalid
/// after.
#[no_mangle]
pub unsafe extern "C" fn shmlane_typed_receiver_free(rx: *mut TypedReceiverHandle) {
    // SAFETY: forwarded from the caller.
    unsafe { free_handle(rx) }
}

/// The element size of the sender's channel in bytes (0 for a null handle).
///
/// # Safety
///
/// `tx` is null or a live sender handle.
#[no_mangle]
pub unsafe extern "C" fn shmlane_typed_sender_element_size(tx: *const TypedSenderHandle) -> usize {
    if tx.is_null() {
        return 0;
    }
    // SAFETY: a live handle (the caller's contract).
    either!(&unsafe { &*tx }.tx, Tx, t => t.element_size())
}

/// The element size of the receiver's channel in bytes (0 for a null handle).
///
/// # Safety
///
/// `rx` is null or a live receiver handle.
#[no_mangle]
pub unsafe extern "C" fn shmlane_typed_receiver_element_size(
    rx: *const TypedReceiverHandle,
) -> usize {
    if rx.is_null() {
        return 0;
    }
    // SAFETY: a live handle (the caller's contract).
    either!(&unsafe { &*rx }.rx, Rx, r => r.element_size())
}
