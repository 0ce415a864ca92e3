//! The C ABI called as C calls it: statuses, the last error, claims and reads held across
//! calls, and bad input (null pointers, a name that is not UTF-8, an unknown wait value,
//! calls out of order) refused without a crash.
#![allow(clippy::unwrap_used)]

use std::ffi::{CStr, CString};
use std::ptr;

use shmlane::*;

fn name(tag: &str) -> CString {
    CString::new(format!("cabi-{tag}-{}", std::process::id())).unwrap()
}

fn last_error() -> String {
    // SAFETY: the library returns a NUL-terminated string valid until the next call.
    unsafe { CStr::from_ptr(shmlane_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// A connected pair on channel `tag` with `opts`.
fn pair(tag: &str, opts: &Options) -> (*mut ByteSenderHandle, *mut ByteReceiverHandle) {
    let n = name(tag);
    let mut tx = ptr::null_mut();
    let mut rx = ptr::null_mut();
    // SAFETY: valid name, options and out pointers.
    unsafe {
        assert_eq!(
            shmlane_byte_sender_create(n.as_ptr(), opts, &mut tx),
            Status::Ok,
            "{}",
            last_error()
        );
        assert_eq!(
            shmlane_byte_receiver_connect(n.as_ptr(), opts, &mut rx),
            Status::Ok,
            "{}",
            last_error()
        );
        assert_eq!(shmlane_byte_sender_wait_for_peer(tx, 1000), Status::Ok);
    }
    (tx, rx)
}

#[test]
fn messages_go_through_with_copies_claims_and_reads() {
    let mut opts = shmlane_options_default();
    opts.capacity = 4096;
    opts.max_message = 100;
    let (tx, rx) = pair("basic", &opts);
    let mut buf = [0u8; 100];
    let mut len = 0usize;
    // SAFETY: live handles, valid buffers.
    unsafe {
        assert_eq!(shmlane_byte_sender_max_message(tx), 100);
        assert_eq!(shmlane_byte_receiver_max_message(rx), 100);
        // Nothing yet: a try finds the ring empty, a short timeout times out.
        assert_eq!(
            shmlane_byte_receiver_recv(rx, buf.as_mut_ptr(), 100, &mut len, 0),
            Status::WouldBlock
        );
        assert_eq!(
            shmlane_byte_receiver_recv(rx, buf.as_mut_ptr(), 100, &mut len, 5),
            Status::Timeout
        );
        assert!(last_error().contains("cabi-basic"), "{}", last_error());
        // A copy.
        assert_eq!(
            shmlane_byte_sender_send(tx, b"hello".as_ptr(), 5, -1),
            Status::Ok
        );
        assert_eq!(
            shmlane_byte_receiver_recv(rx, buf.as_mut_ptr(), 100, &mut len, -1),
            Status::Ok
        );
        assert_eq!(&buf[..len], b"hello");
        // A claim written in place, committed shorter than claimed.
        let mut p = ptr::null_mut();
        assert_eq!(shmlane_byte_sender_claim(tx, 10, &mut p), Status::Ok);
        ptr::copy_nonoverlapping(b"in place!!".as_ptr(), p, 10);
        assert_eq!(shmlane_byte_sender_commit(tx, 11), Status::InvalidArgument);
        assert_eq!(shmlane_byte_sender_commit(tx, 8), Status::Ok);
        assert_eq!(shmlane_byte_sender_commit(tx, 8), Status::InvalidArgument);
        assert!(last_error().contains("without a claim"), "{}", last_error());
        // A zero-copy read, held across calls, then released.
        let mut data = ptr::null();
        assert_eq!(
            shmlane_byte_receiver_read(rx, &mut data, &mut len, -1),
            Status::Ok
        );
        assert_eq!(std::slice::from_raw_parts(data, len), b"in place");
        assert_eq!(
            shmlane_byte_receiver_read(rx, &mut data, &mut len, 0),
            Status::InvalidArgument
        );
        assert_eq!(
            shmlane_byte_receiver_recv(rx, buf.as_mut_ptr(), 100, &mut len, 0),
            Status::InvalidArgument
        );
        assert_eq!(shmlane_byte_receiver_release(rx), Status::Ok);
        assert_eq!(shmlane_byte_receiver_release(rx), Status::InvalidArgument);
        assert_eq!(
            shmlane_byte_receiver_read(rx, &mut data, &mut len, 0),
            Status::WouldBlock
        );
        // Too large for the channel; too large for the buffer (it stays in the channel).
        assert_eq!(
            shmlane_byte_sender_send(tx, buf.as_ptr(), 101, 0),
            Status::TooLarge
        );
        assert_eq!(
            shmlane_byte_sender_send(tx, b"0123456789".as_ptr(), 10, 0),
            Status::Ok
        );
        assert_eq!(
            shmlane_byte_receiver_recv(rx, buf.as_mut_ptr(), 4, &mut len, 0),
            Status::BufferTooSmall
        );
        assert_eq!(
            shmlane_byte_receiver_recv(rx, buf.as_mut_ptr(), 100, &mut len, 0),
            Status::Ok
        );
        assert_eq!(&buf[..len], b"0123456789");
        // An empty message.
        assert_eq!(shmlane_byte_sender_send(tx, ptr::null(), 0, 0), Status::Ok);
        assert_eq!(
            shmlane_byte_receiver_recv(rx, ptr::null_mut(), 0, &mut len, 0),
            Status::Ok
        );
        assert_eq!(len, 0);
        // A claim abandoned by a send publishes nothing.
        assert_eq!(shmlane_byte_sender_claim(tx, 3, &mut p), Status::Ok);
        assert_eq!(
            shmlane_byte_sender_send(tx, b"x".as_ptr(), 1, 0),
            Status::Ok
        );
        assert_eq!(shmlane_byte_sender_commit(tx, 3), Status::InvalidArgument);
        // Close: what was sent arrives first, then Closed.
        assert_eq!(shmlane_byte_sender_close(tx), Status::Ok);
        assert_eq!(
            shmlane_byte_receiver_recv(rx, buf.as_mut_ptr(), 100, &mut len, -1),
            Status::Ok
        );
        assert_eq!(&buf[..len], b"x");
        assert_eq!(
            shmlane_byte_receiver_recv(rx, buf.as_mut_ptr(), 100, &mut len, -1),
            Status::Closed
        );
        shmlane_byte_sender_free(tx);
        shmlane_byte_receiver_free(rx);
    }
}

#[test]
fn a_full_ring_blocks_until_read_and_a_closed_receiver_stops_the_sender() {
    let mut opts = shmlane_options_default();
    opts.capacity = 4096;
    opts.max_message = 64;
    opts.wait = SHMLANE_WAIT_BLOCKING;
    let (tx, rx) = pair("full", &opts);
    let msg = [7u8; 64];
    // SAFETY: live handles, valid buffers.
    unsafe {
        let mut sent = 0;
        while shmlane_byte_sender_send(tx, msg.as_ptr(), 64, 0) == Status::Ok {
            sent += 1;
        }
        assert!(sent > 10);
        assert_eq!(
            shmlane_byte_sender_send(tx, msg.as_ptr(), 64, 0),
            Status::WouldBlock
        );
        assert_eq!(
            shmlane_byte_sender_send(tx, msg.as_ptr(), 64, 5),
            Status::Timeout
        );
        assert_eq!(shmlane_byte_receiver_close(rx), Status::Ok);
        assert_eq!(
            shmlane_byte_sender_send(tx, msg.as_ptr(), 64, -1),
            Status::Closed
        );
        shmlane_byte_receiver_free(rx);
        shmlane_byte_sender_free(tx);
    }
}

#[test]
fn bad_input_is_refused_with_a_status_and_a_message() {
    let n = name("bad");
    let mut tx = ptr::null_mut();
    let mut rx = ptr::null_mut();
    let mut buf = [0u8; 8];
    let mut len = 0usize;
    // SAFETY: every pointer is valid or deliberately null.
    unsafe {
        assert_eq!(
            shmlane_byte_sender_create(ptr::null(), ptr::null(), &mut tx),
            Status::InvalidArgument
        );
        assert!(last_error().contains("null"), "{}", last_error());
        assert_eq!(
            shmlane_byte_sender_create(n.as_ptr(), ptr::null(), ptr::null_mut()),
            Status::InvalidArgument
        );
        let not_utf8 = [0xffu8, 0xfe, 0];
        assert_eq!(
            shmlane_byte_sender_create(not_utf8.as_ptr().cast(), ptr::null(), &mut tx),
            Status::InvalidArgument
        );
        assert!(last_error().contains("UTF-8"), "{}", last_error());
        let bad_name = CString::new("has/slash").unwrap();
        assert_eq!(
            shmlane_byte_sender_create(bad_name.as_ptr(), ptr::null(), &mut tx),
            Status::InvalidArgument
        );
        assert!(last_error().contains("has/slash"), "{}", last_error());
        let mut opts = shmlane_options_default();
        opts.wait = 7;
        assert_eq!(
            shmlane_byte_sender_create(n.as_ptr(), &opts, &mut tx),
            Status::InvalidArgument
        );
        assert!(last_error().contains("wait 7"), "{}", last_error());
        // No such channel: connecting times out with the name in the message.
        let mut opts = shmlane_options_default();
        opts.connect_timeout_ms = 20;
        assert_eq!(
            shmlane_byte_receiver_connect(n.as_ptr(), &opts, &mut rx),
            Status::Timeout
        );
        assert!(last_error().contains("cabi-bad"), "{}", last_error());
        // Null handles.
        assert_eq!(
            shmlane_byte_sender_send(ptr::null_mut(), buf.as_ptr(), 1, 0),
            Status::InvalidArgument
        );
        assert_eq!(
            shmlane_byte_receiver_recv(ptr::null_mut(), buf.as_mut_ptr(), 8, &mut len, 0),
            Status::InvalidArgument
        );
        assert_eq!(
            shmlane_byte_sender_commit(ptr::null_mut(), 0),
            Status::InvalidArgument
        );
        assert_eq!(
            shmlane_byte_receiver_release(ptr::null_mut()),
            Status::InvalidArgument
        );
        assert_eq!(shmlane_byte_sender_max_message(ptr::null()), 0);
        shmlane_byte_sender_free(ptr::null_mut());
        shmlane_byte_receiver_free(ptr::null_mut());
        // A null message with a length, a null buffer with a capacity.
        let (tx, rx) = pair("badbuf", &shmlane_options_default());
        assert_eq!(
            shmlane_byte_sender_send(tx, ptr::null(), 4, 0),
            Status::InvalidArgument
        );
        assert_eq!(shmlane_byte_sender_send(tx, buf.as_ptr(), 4, 0), Status::Ok);
        assert_eq!(
            shmlane_byte_receiver_recv(rx, ptr::null_mut(), 8, &mut len, 0),
            Status::InvalidArgument
        );
        assert_eq!(
            shmlane_byte_receiver_read(rx, ptr::null_mut(), &mut len, 0),
            Status::InvalidArgument
        );
        let mut p = ptr::null_mut();
        assert_eq!(
            shmlane_byte_sender_claim(tx, 1 << 30, &mut p),
            Status::TooLarge
        );
        shmlane_byte_sender_free(tx);
        shmlane_byte_receiver_free(rx);
    }
    // The last error is per thread.
    let other = std::thread::spawn(last_error).join().unwrap();
    assert_eq!(other, "");
}

#[test]
fn a_second_producer_is_refused_while_the_first_lives() {
    let n = name("twice");
    let mut a = ptr::null_mut();
    let mut b = ptr::null_mut();
    // SAFETY: valid pointers.
    unsafe {
        assert_eq!(
            shmlane_byte_sender_create(n.as_ptr(), ptr::null(), &mut a),
            Status::Ok
        );
        assert_eq!(
            shmlane_byte_sender_create(n.as_ptr(), ptr::null(), &mut b),
            Status::Error
        );
        assert!(!last_error().is_empty());
        shmlane_byte_sender_free(a);
    }
}

/// A byte-message broadcast channel's sender and receivers through the byte handles.
fn broadcast(
    tag: &str,
    opts: &Options,
    flags: u32,
) -> (CString, *mut ByteSenderHandle, [*mut ByteReceiverHandle; 2]) {
    let n = name(tag);
    let mut tx = ptr::null_mut();
    let mut rx = [ptr::null_mut(); 2];
    // SAFETY: valid name, options and out pointers.
    unsafe {
        assert_eq!(
            shmlane_broadcast_byte_sender_create(n.as_ptr(), opts, 4, flags, 0, &mut tx),
            Status::Ok,
            "{}",
            last_error()
        );
        for r in &mut rx {
            assert_eq!(
                shmlane_broadcast_byte_receiver_connect(n.as_ptr(), opts, 0, r),
                Status::Ok,
                "{}",
                last_error()
            );
        }
    }
    (n, tx, rx)
}

#[test]
fn broadcast_byte_messages_reach_every_receiver_copied_or_in_place() {
    let mut opts = shmlane_options_default();
    opts.capacity = 8;
    opts.max_message = 64;
    let (n, tx, rx) = broadcast("bcast", &opts, 0);
    let mut buf = [0u8; 64];
    let mut len = 0usize;
    let mut data = ptr::null();
    // SAFETY: live handles, valid buffers.
    unsafe {
        assert_eq!(shmlane_byte_sender_max_message(tx), 64);
        assert_eq!(shmlane_byte_receiver_max_message(rx[0]), 64);
        for m in [&b"one"[..], b"two", b""] {
            assert_eq!(
                shmlane_byte_sender_send(tx, m.as_ptr(), m.len(), 0),
                Status::Ok
            );
        }
        // Receiver 0 copies, receiver 1 reads in place: both get all three.
        for want in [&b"one"[..], b"two", b""] {
            assert_eq!(
                shmlane_byte_receiver_recv(rx[0], buf.as_mut_ptr(), 64, &mut len, 0),
                Status::Ok
            );
            assert_eq!(&buf[..len], want);
            assert_eq!(
                shmlane_byte_receiver_read(rx[1], &mut data, &mut len, 0),
                Status::Ok
            );
            assert_eq!(std::slice::from_raw_parts(data, len), want);
            assert_eq!(shmlane_byte_receiver_release(rx[1]), Status::Ok);
        }
        assert_eq!(
            shmlane_byte_receiver_recv(rx[0], buf.as_mut_ptr(), 64, &mut len, 0),
            Status::WouldBlock
        );
        // Lossless: a full ring (receiver 1 read nothing more) holds the sender up.
        for i in 0..8u8 {
            assert_eq!(shmlane_byte_sender_send(tx, &i, 1, 0), Status::Ok);
        }
        assert_eq!(
            shmlane_byte_sender_send(tx, b"9".as_ptr(), 1, 0),
            Status::WouldBlock
        );
        // Too large, too short a buffer (the message stays), and no claim on broadcast.
        assert_eq!(
            shmlane_byte_sender_send(tx, buf.as_ptr(), 65, 0),
            Status::TooLarge
        );
        assert_eq!(
            shmlane_byte_receiver_recv(rx[1], buf.as_mut_ptr(), 0, &mut len, 0),
            Status::BufferTooSmall
        );
        assert_eq!(
            shmlane_byte_receiver_recv(rx[1], buf.as_mut_ptr(), 64, &mut len, 0),
            Status::Ok
        );
        assert_eq!(&buf[..len], [0u8]);
        let mut p = ptr::null_mut();
        assert_eq!(
            shmlane_byte_sender_claim(tx, 3, &mut p),
            Status::InvalidArgument
        );
        assert!(
            last_error().contains("byte channels only"),
            "{}",
            last_error()
        );
        // Wrong kinds: a byte-channel receiver on a broadcast channel, and the reverse.
        let mut other = ptr::null_mut();
        assert_eq!(
            shmlane_byte_receiver_connect(n.as_ptr(), &opts, &mut other),
            Status::WrongType
        );
        assert_eq!(shmlane_byte_receiver_missed(rx[0]), 0);
        // Leaving: a freed receiver no longer holds the sender up; the other drains, and
        // the sender's close ends it.
        shmlane_byte_receiver_free(rx[1]);
        assert_eq!(
            shmlane_byte_receiver_close(rx[0]),
            Status::Ok,
            "a broadcast receiver's close closes nothing"
        );
        for _ in 0..8 {
            assert_eq!(
                shmlane_byte_receiver_recv(rx[0], buf.as_mut_ptr(), 64, &mut len, 0),
                Status::Ok
            );
        }
        assert_eq!(
            shmlane_byte_sender_send(tx, b"9".as_ptr(), 1, 0),
            Status::Ok
        );
        assert_eq!(shmlane_byte_sender_close(tx), Status::Ok);
        assert_eq!(
            shmlane_byte_receiver_recv(rx[0], buf.as_mut_ptr(), 64, &mut len, -1),
            Status::Ok
        );
        assert_eq!(
            shmlane_byte_receiver_recv(rx[0], buf.as_mut_ptr(), 64, &mut len, -1),
            Status::Closed
        );
        shmlane_byte_receiver_free(rx[0]);
        shmlane_byte_sender_free(tx);
        assert_eq!(
            shmlane_broadcast_byte_sender_create(n.as_ptr(), &opts, 4, 2, 0, &mut other.cast()),
            Status::InvalidArgument
        );
    }
}

#[test]
fn a_lossy_broadcast_reports_losses_and_overwritten_in_place_reads() {
    let mut opts = shmlane_options_default();
    opts.capacity = 8;
    opts.max_message = 16;
    let (_n, tx, rx) = broadcast("bcast-lossy", &opts, SHMLANE_BROADCAST_LOSSY);
    let mut buf = [0u8; 16];
    let mut len = 0usize;
    let mut data = ptr::null();
    // SAFETY: live handles, valid buffers.
    unsafe {
        for i in 0..20u8 {
            assert_eq!(shmlane_byte_sender_send(tx, &i, 1, 0), Status::Ok);
        }
        // Lapped: LOST once, with the count, then the oldest message still there.
        assert_eq!(
            shmlane_byte_receiver_recv(rx[0], buf.as_mut_ptr(), 16, &mut len, 0),
            Status::Lost
        );
        let missed = shmlane_byte_receiver_missed(rx[0]);
        assert!((1..20).contains(&missed), "{missed}");
        assert_eq!(
            shmlane_byte_receiver_recv(rx[0], buf.as_mut_ptr(), 16, &mut len, 0),
            Status::Ok
        );
        assert_eq!(u64::from(buf[0]), missed);
        // Receiver 1 holds a message in place while the sender laps it: the release says
        // LOST, and the receiver goes on.
        assert_eq!(
            shmlane_byte_receiver_read(rx[1], &mut data, &mut len, 0),
            Status::Lost
        );
        assert_eq!(
            shmlane_byte_receiver_read(rx[1], &mut data, &mut len, 0),
            Status::Ok
        );
        for i in 20..40u8 {
            assert_eq!(shmlane_byte_sender_send(tx, &i, 1, 0), Status::Ok);
        }
        assert_eq!(shmlane_byte_receiver_release(rx[1]), Status::Lost);
        assert!(last_error().contains("lost"), "{}", last_error());
        assert_eq!(
            shmlane_byte_receiver_recv(rx[1], buf.as_mut_ptr(), 16, &mut len, 0),
            Status::Ok
        );
        assert!(buf[0] >= 32, "{}", buf[0]);
        shmlane_byte_receiver_free(rx[0]);
        shmlane_byte_receiver_free(rx[1]);
        shmlane_byte_sender_free(tx);
    }
}
