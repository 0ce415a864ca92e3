//! Channels whose element type is given at run time (the C and Python bindings' ends):
//! raw and typed ends of the same named element pair up both ways, for SPSC and MPMC;
//! names, sizes, alignments and kinds that differ are refused with both sides named.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytemuck::{Pod, Zeroable};
use shm_bridge::{ChannelOptions, ElementType, Error};

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
struct Tick {
    seq: u64,
    value: f64,
    check: u32,
    producer: u32,
}

const TICK: &str = "test.Tick/1";

fn tick(producer: u32, seq: u64) -> Tick {
    Tick {
        seq,
        value: seq as f64 * 0.5,
        check: (seq as u32).wrapping_mul(0x9e37_79b9) ^ producer,
        producer,
    }
}

fn name(tag: &str) -> String {
    format!("test-{}-raw-{tag}", std::process::id())
}

fn opts() -> ChannelOptions {
    ChannelOptions::new()
        .capacity(32)
        .type_name(TICK)
        .timeout(Duration::from_secs(5))
}

fn elem() -> ElementType {
    ElementType::named(TICK, 24, 8).unwrap()
}

fn ticks(producer: u32, from: u64, n: u64) -> Vec<u8> {
    (from..from + n)
        .flat_map(|s| bytemuck::bytes_of(&tick(producer, s)).to_vec())
        .collect()
}

#[test]
fn raw_sender_to_typed_receiver_and_back() {
    let n = name("spsc");
    let mut tx = opts().create_raw(&n, &elem()).unwrap();
    assert_eq!(tx.element_size(), 24);
    let mut rx = opts().connect::<Tick>(&n).unwrap();
    let total = 5000;
    let mut sent = 0;
    let mut got = 0;
    while got < total {
        if sent < total {
            let k = (1 + sent % 5).min(total - sent);
            match tx.try_send_bytes(&ticks(1, sent, k)) {
                Ok(m) => sent += m as u64,
                Err(Error::WouldBlock { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        while let Ok(t) = rx.try_recv() {
            assert_eq!(t, tick(1, got));
            got += 1;
        }
    }
    // The blocking send of more than the capacity, drained by the typed end meanwhile.
    let bytes = ticks(1, total, 100);
    let reader =
        std::thread::spawn(move || (0..100).map(|_| rx.recv().unwrap()).collect::<Vec<_>>());
    tx.send_bytes(&bytes).unwrap();
    let back = reader.join().unwrap();
    assert_eq!(
        back,
        (total..total + 100).map(|s| tick(1, s)).collect::<Vec<_>>()
    );
    drop(tx);

    // Typed sender, raw receiver.
    let n = name("spsc-back");
    let mut tx = opts().create::<Tick>(&n).unwrap();
    let mut rx = opts().connect_raw(&n, &elem()).unwrap();
    for s in 0..20 {
        tx.send(tick(2, s)).unwrap();
    }
    tx.close();
    let mut buf = vec![0u8; 24 * 6 + 5];
    let mut got = 0;
    loop {
        match rx.recv_bytes_into_deadline(&mut buf, Some(Instant::now() + Duration::from_secs(5))) {
            Ok(k) => {
                assert!(k <= 6);
                for j in 0..k {
                    let t: Tick = bytemuck::pod_read_unaligned(&buf[24 * j..24 * (j + 1)]);
                    assert_eq!(t, tick(2, got));
                    got += 1;
                }
            }
            Err(Error::Closed { .. }) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got, 20);
    assert!(matches!(
        rx.try_recv_bytes_into(&mut buf),
        Err(Error::Closed { .. })
    ));
}

#[test]
fn partial_elements_and_short_buffers_are_refused() {
    let n = name("whole");
    let mut tx = opts().create_raw(&n, &elem()).unwrap();
    let mut rx = opts().connect_raw(&n, &elem()).unwrap();
    for bad in [1, 23, 25, 47] {
        let e = tx.try_send_bytes(&vec![0; bad]).unwrap_err();
        assert!(e.to_string().contains("whole number"), "{e}");
        let (sent, e) = tx.send_bytes_deadline(&vec![0; bad], None).unwrap_err();
        assert_eq!(sent, 0);
        assert!(e.to_string().contains("whole number"), "{e}");
    }
    assert!(matches!(
        rx.try_recv_bytes_into(&mut [0; 24]),
        Err(Error::WouldBlock { .. })
    ));
    tx.send_bytes(&ticks(0, 0, 1)).unwrap();
    let e = rx.try_recv_bytes_into(&mut [0; 23]).unwrap_err();
    assert!(e.to_string().contains("whole number"), "{e}");
    assert_eq!(
        rx.try_recv_bytes_into(&mut [0; 24]).unwrap(),
        1,
        "still there"
    );
    // The sender's deadline: a full ring times out, reporting what went.
    let (sent, e) = tx
        .send_bytes_deadline(
            &ticks(0, 0, 40),
            Some(Instant::now() + Duration::from_millis(50)),
        )
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert_eq!(sent, tx.capacity());
}

#[test]
fn names_sizes_alignments_and_kinds_must_agree() {
    let n = name("mismatch");
    let _tx = opts().create_raw(&n, &elem()).unwrap();
    let quick = || opts().timeout(Duration::from_millis(200));
    let refused = |r: Result<(), Error>, what: &str| match r {
        Err(Error::WrongKind {
            expected, found, ..
        }) => {
            assert!(found.contains("test.Tick/1"), "{what}: {found}");
            assert!(expected.contains("bytes"), "{what}: {expected}");
        }
        other => panic!("{what}: {other:?}"),
    };
    refused(
        quick()
            .connect_raw(&n, &ElementType::named("test.Tick/2", 24, 8).unwrap())
            .map(drop),
        "name",
    );
    refused(
        quick()
            .connect_raw(&n, &ElementType::named(TICK, 32, 8).unwrap())
            .map(drop),
        "size",
    );
    refused(
        quick()
            .connect_raw(&n, &ElementType::named(TICK, 24, 4).unwrap())
            .map(drop),
        "align",
    );
    // A Rust type of the same shape, without the agreed name.
    refused(
        ChannelOptions::new()
            .timeout(Duration::from_millis(200))
            .connect::<[u64; 3]>(&n)
            .map(drop),
        "rust name",
    );
    // Another kind.
    assert!(matches!(
        quick().connect_bytes(&n),
        Err(Error::WrongKind { .. })
    ));
    assert!(matches!(
        quick().connect_mpmc_consumer_raw(&n, &elem()),
        Err(Error::WrongKind { .. })
    ));
    // The right one still connects.
    assert!(quick().connect_raw(&n, &elem()).is_ok());
}

#[test]
fn mpmc_raw_and_typed_ends_share_a_channel() {
    let n = name("mpmc");
    let o = opts().participants(6);
    let mut raw_tx = o.create_mpmc_raw(&n, &elem()).unwrap();
    let mut typed_tx = o.connect_mpmc_producer::<Tick>(&n).unwrap();
    let mut raw_rx = o.connect_mpmc_consumer_raw(&n, &elem()).unwrap();
    let mut typed_rx = o.connect_mpmc_consumer::<Tick>(&n).unwrap();
    let _raw_tx2 = o.connect_mpmc_producer_raw(&n, &elem()).unwrap();
    let per = 3000u64;
    let (mut next_raw, mut next_typed) = (0u64, 0u64);
    let mut seen = [0u64; 2];
    let mut buf = vec![0u8; 24 * 4];
    let check = |t: Tick, seen: &mut [u64; 2]| {
        let p = t.producer as usize;
        assert_eq!(t, tick(t.producer, seen[p]), "in order per producer");
        seen[p] += 1;
    };
    while seen != [per, per] {
        if next_raw < per {
            let k = (per - next_raw).min(3);
            if let Ok(m) = raw_tx.try_send_bytes(&ticks(0, next_raw, k)) {
                next_raw += m as u64;
            }
        }
        if next_typed < per && typed_tx.try_send(tick(1, next_typed)).is_ok() {
            next_typed += 1;
        }
        // One consumer at a time keeps each producer's order visible.
        if let Ok(k) = raw_rx.try_recv_bytes_into(&mut buf) {
            for j in 0..k {
                check(
                    bytemuck::pod_read_unaligned(&buf[24 * j..24 * (j + 1)]),
                    &mut seen,
                );
            }
        } else if let Ok(t) = typed_rx.try_recv() {
            check(t, &mut seen);
        }
    }
    assert_eq!(raw_rx.element_size(), 24);
}
