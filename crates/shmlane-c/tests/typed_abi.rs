//! Typed and MPMC channels through the C ABI, called as C calls it: C ends paired with
//! Rust `Pod` ends under an agreed element name, both ways; counts reported part-way;
//! another element type or kind refused with `WRONG_TYPE`; bad descriptions refused.
#![allow(clippy::unwrap_used)]

use std::ffi::{c_void, CStr, CString};
use std::ptr;
use std::time::Duration;

use bytemuck::{Pod, Zeroable};
use shm_bridge::ChannelOptions;
use shmlane::*;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
struct Tick {
    seq: u64,
    value: f64,
}

const TICK: &CStr = c"abi.Tick/1";

fn name(tag: &str) -> CString {
    CString::new(format!("ctyped-{tag}-{}", std::process::id())).unwrap()
}

fn last_error() -> String {
    // SAFETY: the library returns a NUL-terminated string valid until the next call.
    unsafe { CStr::from_ptr(shmlane_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn elem() -> Element {
    Element {
        type_name: TICK.as_ptr(),
        size: 16,
        align: 8,
    }
}

fn rust_opts() -> ChannelOptions {
    ChannelOptions::new()
        .type_name("abi.Tick/1")
        .timeout(Duration::from_secs(5))
}

fn opts(capacity: usize) -> Options {
    let mut o = shmlane_options_default();
    o.capacity = capacity;
    o.connect_timeout_ms = 5000;
    o
}

fn t(seq: u64) -> Tick {
    Tick {
        seq,
        value: seq as f64 * 0.5,
    }
}

#[test]
fn c_sender_to_rust_receiver_and_rust_sender_to_c_receiver() {
    let n = name("spsc");
    let mut tx = ptr::null_mut();
    // SAFETY: valid name, element, options and out pointer.
    let s = unsafe { shmlane_typed_sender_create(n.as_ptr(), &elem(), &opts(64), &mut tx) };
    assert_eq!(s, Status::Ok, "{}", last_error());
    let mut rx = rust_opts().connect::<Tick>(n.to_str().unwrap()).unwrap();
    // SAFETY: a live handle.
    assert_eq!(unsafe { shmlane_typed_sender_element_size(tx) }, 16);
    let batch: Vec<Tick> = (0..200).map(t).collect();
    // The reader hands its end back: dropping it would close the channel.
    let reader = std::thread::spawn(move || {
        let got: Vec<Tick> = (0..200).map(|_| rx.recv().unwrap()).collect();
        (rx, got)
    });
    let mut sent = 0;
    // SAFETY: a live handle; 200 elements readable at `batch`.
    let s =
        unsafe { shmlane_typed_sender_send(tx, batch.as_ptr().cast(), batch.len(), &mut sent, -1) };
    assert_eq!((s, sent), (Status::Ok, 200), "{}", last_error());
    let (_rx, got) = reader.join().unwrap();
    assert_eq!(got, batch);
    // A try on a full ring sends what fits, then WOULD_BLOCK.
    // SAFETY: as above.
    unsafe {
        let s = shmlane_typed_sender_send(tx, batch.as_ptr().cast(), 200, &mut sent, 0);
        assert_eq!(s, Status::Ok);
        assert!(sent > 0 && sent < 200, "{sent}");
        let s = shmlane_typed_sender_send(tx, batch.as_ptr().cast(), 1, &mut sent, 0);
        assert_eq!((s, sent), (Status::WouldBlock, 0));
        // A deadline reports how many went before it.
        let s = shmlane_typed_sender_send(tx, batch.as_ptr().cast(), 1, &mut sent, 30);
        assert_eq!((s, sent), (Status::Timeout, 0));
        shmlane_typed_sender_free(tx);
    }

    // Rust sender, C receiver.
    let n = name("back");
    let mut rtx = rust_opts()
        .capacity(64)
        .create::<Tick>(n.to_str().unwrap())
        .unwrap();
    let mut rx = ptr::null_mut();
    // SAFETY: valid arguments.
    let s = unsafe { shmlane_typed_receiver_connect(n.as_ptr(), &elem(), &opts(0), &mut rx) };
    assert_eq!(s, Status::Ok, "{}", last_error());
    for i in 0..10 {
        rtx.send(t(i)).unwrap();
    }
    rtx.close();
    let mut buf = [Tick::zeroed(); 4];
    let mut got = Vec::new();
    loop {
        let mut count = 0;
        // SAFETY: a live handle; room for 4 elements.
        let s = unsafe {
            shmlane_typed_receiver_recv(rx, buf.as_mut_ptr().cast::<c_void>(), 4, &mut count, 1000)
        };
        match s {
            Status::Ok => got.extend_from_slice(&buf[..count]),
            Status::Closed => break,
            other => panic!("{other:?}: {}", last_error()),
        }
    }
    assert_eq!(got, (0..10).map(t).collect::<Vec<_>>());
    // SAFETY: a live handle, freed once.
    unsafe { shmlane_typed_receiver_free(rx) };
}

#[test]
fn mpmc_c_and_rust_producers_and_consumers() {
    let n = name("mpmc");
    let (mut a, mut b, mut rx) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
    // SAFETY: valid arguments.
    unsafe {
        let s = shmlane_mpmc_sender_create(n.as_ptr(), &elem(), &opts(128), 6, &mut a);
        assert_eq!(s, Status::Ok, "{}", last_error());
        let s = shmlane_mpmc_sender_connect(n.as_ptr(), &elem(), &opts(0), &mut b);
        assert_eq!(s, Status::Ok, "{}", last_error());
        let s = shmlane_mpmc_receiver_connect(n.as_ptr(), &elem(), &opts(0), &mut rx);
        assert_eq!(s, Status::Ok, "{}", last_error());
    }
    let name = n.to_str().unwrap();
    let mut rust_tx = rust_opts().connect_mpmc_producer::<Tick>(name).unwrap();
    let mut rust_rx = rust_opts().connect_mpmc_consumer::<Tick>(name).unwrap();
    let mut sent = 0;
    // SAFETY: live handles; the elements are readable.
    unsafe {
        assert_eq!(
            shmlane_typed_sender_send(a, &t(1) as *const Tick as *const c_void, 1, &mut sent, -1),
            Status::Ok
        );
        assert_eq!(
            shmlane_typed_sender_send(b, &t(2) as *const Tick as *const c_void, 1, &mut sent, -1),
            Status::Ok
        );
    }
    rust_tx.send_deadline(t(3), None).unwrap();
    let mut buf = [Tick::zeroed(); 2];
    let mut count = 0;
    // SAFETY: a live handle; room for 2 elements.
    let s =
        unsafe { shmlane_typed_receiver_recv(rx, buf.as_mut_ptr().cast(), 2, &mut count, 1000) };
    assert_eq!((s, count), (Status::Ok, 2), "{}", last_error());
    assert_eq!(&buf, &[t(1), t(2)]);
    assert_eq!(rust_rx.recv_deadline(None).unwrap(), t(3));
    // SAFETY: live handles, each freed once.
    unsafe {
        assert_eq!(shmlane_typed_receiver_close(rx), Status::Ok);
        // A sender looks at the channel's state every few calls and milliseconds (the
        // fast path stays free of it), so a few sends may still go in.
        let start = std::time::Instant::now();
        loop {
            let one = &t(4) as *const Tick as *const c_void;
            let s = shmlane_typed_sender_send(a, one, 1, &mut sent, 0);
            if s == Status::Closed {
                break;
            }
            assert!(
                matches!(s, Status::Ok | Status::WouldBlock),
                "{s:?}: {}",
                last_error()
            );
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the close was never seen"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        shmlane_typed_sender_free(a);
        shmlane_typed_sender_free(b);
        shmlane_typed_receiver_free(rx);
    }
}

#[test]
fn other_types_and_kinds_are_wrong_type_and_bad_descriptions_invalid() {
    let n = name("wrong");
    let mut tx = ptr::null_mut();
    // SAFETY: valid arguments.
    let s = unsafe { shmlane_typed_sender_create(n.as_ptr(), &elem(), &opts(16), &mut tx) };
    assert_eq!(s, Status::Ok, "{}", last_error());
    let mut quick = opts(0);
    quick.connect_timeout_ms = 200;
    let other = c"abi.Tick/2";
    for (e, what) in [
        (
            Element {
                type_name: other.as_ptr(),
                ..elem()
            },
            "name",
        ),
        (Element { size: 32, ..elem() }, "size"),
        (Element { align: 4, ..elem() }, "align"),
    ] {
        let mut rx = ptr::null_mut();
        // SAFETY: valid arguments.
        let s = unsafe { shmlane_typed_receiver_connect(n.as_ptr(), &e, &quick, &mut rx) };
        assert_eq!(s, Status::WrongType, "{what}: {}", last_error());
        assert!(
            last_error().contains("abi.Tick/1"),
            "{what}: {}",
            last_error()
        );
        assert!(rx.is_null());
    }
    // Another kind: a byte receiver on a typed channel, a typed receiver on MPMC.
    let mut brx = ptr::null_mut();
    let mut mrx = ptr::null_mut();
    // SAFETY: valid arguments.
    unsafe {
        assert_eq!(
            shmlane_byte_receiver_connect(n.as_ptr(), &quick, &mut brx),
            Status::WrongType
        );
        assert_eq!(
            shmlane_mpmc_receiver_connect(n.as_ptr(), &elem(), &quick, &mut mrx),
            Status::WrongType
        );
    }
    // Bad descriptions never reach the channel.
    let bad = [
        Element {
            type_name: ptr::null(),
            ..elem()
        },
        Element { size: 0, ..elem() },
        Element { size: 12, ..elem() },
        Element { align: 3, ..elem() },
        Element {
            align: 128,
            size: 128,
            ..elem()
        },
        Element {
            type_name: c"".as_ptr(),
            ..elem()
        },
        Element {
            type_name: c"tab\there".as_ptr(),
            ..elem()
        },
    ];
    for e in bad {
        let mut rx = ptr::null_mut();
        // SAFETY: valid pointers (the description is what is wrong).
        let s = unsafe { shmlane_typed_receiver_connect(n.as_ptr(), &e, &quick, &mut rx) };
        assert_eq!(s, Status::InvalidArgument, "{e:?}: {}", last_error());
    }
    let mut rx = ptr::null_mut();
    // SAFETY: null element pointer, checked by the call.
    unsafe {
        assert_eq!(
            shmlane_typed_receiver_connect(n.as_ptr(), ptr::null(), &quick, &mut rx),
            Status::InvalidArgument
        );
        let mut sent = 7;
        // A null buffer with a count, and a null handle.
        assert_eq!(
            shmlane_typed_sender_send(tx, ptr::null(), 1, &mut sent, 0),
            Status::InvalidArgument
        );
        assert_eq!(sent, 0);
        assert_eq!(
            shmlane_typed_sender_send(ptr::null_mut(), ptr::null(), 0, &mut sent, 0),
            Status::InvalidArgument
        );
        let mut count = 0;
        assert_eq!(
            shmlane_typed_receiver_recv(ptr::null_mut(), ptr::null_mut(), 1, &mut count, 0),
            Status::InvalidArgument
        );
        assert_eq!(shmlane_typed_sender_element_size(ptr::null()), 0);
        shmlane_typed_sender_free(tx);
        shmlane_typed_sender_free(ptr::null_mut());
    }
}

#[test]
fn broadcast_through_the_c_abi_with_rust_ends_and_a_reported_loss() {
    // A C sender, a Rust subscriber and a C subscriber; lossless.
    let n = name("bcast");
    let mut tx = ptr::null_mut();
    // SAFETY: valid name, element, options and out pointer.
    let s = unsafe {
        shmlane_broadcast_sender_create(n.as_ptr(), &elem(), &opts(64), 4, 0, 0, &mut tx)
    };
    assert_eq!(s, Status::Ok, "{}", last_error());
    let mut rust_rx = rust_opts()
        .connect_subscriber::<Tick>(n.to_str().unwrap())
        .unwrap();
    let mut c_rx = ptr::null_mut();
    // SAFETY: as above.
    let s =
        unsafe { shmlane_broadcast_receiver_connect(n.as_ptr(), &elem(), &opts(0), 0, &mut c_rx) };
    assert_eq!(s, Status::Ok, "{}", last_error());
    let batch: Vec<Tick> = (0..10).map(t).collect();
    let mut sent = 0;
    // SAFETY: a live handle; 10 elements readable at `batch`.
    let s = unsafe { shmlane_typed_sender_send(tx, batch.as_ptr().cast(), 10, &mut sent, -1) };
    assert_eq!((s, sent), (Status::Ok, 10), "{}", last_error());
    assert_eq!(
        (0..10).map(|_| rust_rx.recv().unwrap()).collect::<Vec<_>>(),
        batch
    );
    let mut got = vec![Tick::zeroed(); 16];
    let mut count = 0;
    // SAFETY: a live handle; room for 16 elements.
    let s = unsafe {
        shmlane_typed_receiver_recv(
            c_rx,
            got.as_mut_ptr().cast::<c_void>(),
            16,
            &mut count,
            1000,
        )
    };
    assert_eq!((s, count), (Status::Ok, 10), "{}", last_error());
    assert_eq!(&got[..10], &batch[..]);
    // Closing a broadcast receiver closes nothing for the others.
    // SAFETY: a live handle.
    assert_eq!(unsafe { shmlane_typed_receiver_close(c_rx) }, Status::Ok);
    // SAFETY: live handles, freed once.
    unsafe {
        shmlane_typed_receiver_free(c_rx);
        shmlane_typed_sender_free(tx);
    }
    assert!(rust_rx.recv().unwrap_err().is_disconnected());

    // Lossy: a C receiver that falls behind gets LOST once, then the oldest still there.
    let n = name("bcast-lossy");
    let mut tx = ptr::null_mut();
    // SAFETY: as above.
    let s = unsafe {
        shmlane_broadcast_sender_create(
            n.as_ptr(),
            &elem(),
            &opts(16),
            2,
            SHMLANE_BROADCAST_LOSSY,
            0,
            &mut tx,
        )
    };
    assert_eq!(s, Status::Ok, "{}", last_error());
    let mut c_rx = ptr::null_mut();
    // SAFETY: as above.
    let s =
        unsafe { shmlane_broadcast_receiver_connect(n.as_ptr(), &elem(), &opts(0), 0, &mut c_rx) };
    assert_eq!(s, Status::Ok, "{}", last_error());
    let batch: Vec<Tick> = (0..200).map(t).collect();
    for chunk in batch.chunks(8) {
        // SAFETY: a live handle; the chunk is readable.
        let s = unsafe {
            shmlane_typed_sender_send(tx, chunk.as_ptr().cast(), chunk.len(), &mut sent, -1)
        };
        assert_eq!(s, Status::Ok, "{}", last_error());
    }
    // SAFETY: a live handle; room for 16 elements.
    let s = unsafe {
        shmlane_typed_receiver_recv(c_rx, got.as_mut_ptr().cast::<c_void>(), 16, &mut count, 0)
    };
    assert_eq!(s, Status::Lost, "{}", last_error());
    assert!(last_error().contains("lost"), "{}", last_error());
    // SAFETY: a live handle.
    let missed = unsafe { shmlane_typed_receiver_missed(c_rx) };
    assert!(missed > 0);
    // SAFETY: as above.
    let s = unsafe {
        shmlane_typed_receiver_recv(c_rx, got.as_mut_ptr().cast::<c_void>(), 1, &mut count, 0)
    };
    assert_eq!((s, count), (Status::Ok, 1), "{}", last_error());
    assert_eq!(got[0], t(missed));
    // SAFETY: an unknown flag is refused before anything is created.
    let s = unsafe {
        shmlane_broadcast_sender_create(n.as_ptr(), &elem(), &opts(16), 2, 8, 0, &mut tx)
    };
    assert_eq!(s, Status::InvalidArgument);
    // SAFETY: live handles, freed once.
    unsafe {
        shmlane_typed_receiver_free(c_rx);
        shmlane_typed_sender_free(tx);
    }
}
