//! Byte-message broadcast channels through the byte handles: one sender
//! ([`shmlane_broadcast_byte_sender_create`]), up to 59 receivers
//! ([`shmlane_broadcast_byte_receiver_connect`]), each getting every message; the byte
//! calls (send, recv, read/release) serve them as they serve byte channels.

use super::*;

/// Creates byte-message broadcast channel `name` for up to `subscribers` receivers (1 to
/// 59; 0: 8) and stores its sending end (a `shmlane_byte_sender`) in `*out`: each message
/// is written once, and every receiver ([`shmlane_broadcast_byte_receiver_connect`]) gets
/// every message sent after it connected. `opts->capacity` counts messages (0: 1024), each
/// of up to `opts->max_message` bytes (0: 1024; rounded up to a multiple of 8). `flags`
/// and `evict_after_ms` as for [`shmlane_broadcast_sender_create`]. Send with
/// [`shmlane_byte_sender_send`] (claim-commit is for byte channels).
///
/// # Safety
///
/// As [`shmlane_byte_sender_create`].
#[no_mangle]
pub unsafe extern "C" fn shmlane_broadcast_byte_sender_create(
    name: *const c_char,
    opts: *const Options,
    subscribers: u32,
    flags: u32,
    evict_after_ms: u32,
    out: *mut *mut ByteSenderHandle,
) -> Status {
    let policy = match element::broadcast_policy(flags, evict_after_ms) {
        Ok(p) => p,
        Err(s) => return s,
    };
    // SAFETY: forwarded from the caller.
    unsafe {
        open_bytes(name, opts, out, |n, o| {
            policy(o, subscribers)
                .create_broadcast_bytes(n)
                .map(|tx| ByteSenderHandle {
                    tx: AnyByteSender::Broadcast(tx),
                    claimed: None,
                })
        })
    }
}

/// Connects to byte-message broadcast channel `name` as a new receiver (a
/// `shmlane_byte_receiver`), starting with the next message sent, or with up to `history`
/// earlier ones still in the channel. Its receives return `SHMLANE_STATUS_LOST` once per
/// loss, then go on; [`shmlane_byte_receiver_missed`] counts them all.
///
/// # Safety
///
/// As [`shmlane_byte_sender_create`].
#[no_mangle]
pub unsafe extern "C" fn shmlane_broadcast_byte_receiver_connect(
    name: *const c_char,
    opts: *const Options,
    history: u64,
    out: *mut *mut ByteReceiverHandle,
) -> Status {
    // SAFETY: forwarded from the caller.
    unsafe {
        open_bytes(name, opts, out, |n, o| {
            o.history(usize::try_from(history).unwrap_or(usize::MAX))
                .connect_subscriber_bytes(n)
                .map(|rx| ByteReceiverHandle {
                    rx: AnyByteReceiver::Broadcast(rx),
                    reading: false,
                })
        })
    }
}

/// Messages a broadcast receiver lost since it connected (0 for a byte channel's receiver
/// and for a null handle).
///
/// # Safety
///
/// `rx` is null or a live receiver handle.
#[no_mangle]
pub unsafe extern "C" fn shmlane_byte_receiver_missed(rx: *const ByteReceiverHandle) -> u64 {
    if rx.is_null() {
        return 0;
    }
    // SAFETY: a live handle (the caller's contract).
    unsafe { &*rx }.rx.missed()
}
