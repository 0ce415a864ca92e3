//! Byte messages over a broadcast ring (`broadcast::message_type`): lengths kept exactly,
//! in-place reads validated when released, losses under a held guard reported with their
//! count, hostile length words refused, and two subscriber processes checking every byte.
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{exit_code, in_child};
use shm_queue::broadcast::{message_type, Mode, Options, Ring, SlowPolicy, Start, Subscriber};
use shm_queue::wait::WaitStrategy;
use shm_queue::{Error, Raw, TryError, Word};
use shm_region::Region;

const MAX: usize = 104;

fn ring(capacity: usize, mode: Mode) -> Ring<Raw> {
    let ty = message_type(MAX).unwrap();
    let opts = Options::new(capacity).subscribers(4).mode(mode);
    let region = Region::anonymous(Ring::<Raw>::required_bytes_as(&ty, &opts).unwrap()).unwrap();
    Ring::<Raw>::create_as(Arc::new(region), &ty, opts).unwrap()
}

/// Message `p`: a length from 0 to MAX that varies with `p`, bytes derived from `p` and
/// their index (so a torn, stale or shifted copy shows).
fn message(p: u64) -> Vec<u8> {
    let len = (p.wrapping_mul(37) % (MAX as u64 + 1)) as usize;
    (0..len)
        .map(|i| (p.wrapping_mul(31) as usize ^ i.wrapping_mul(7)) as u8)
        .collect()
}

fn recv(rx: &mut Subscriber<Raw>) -> Result<Vec<u8>, TryError> {
    let mut buf = [0u8; MAX];
    let n = rx.try_recv_message(&mut buf)?;
    Ok(buf[..n].to_vec())
}

#[test]
fn messages_keep_their_lengths_and_bytes() {
    let r = ring(64, Mode::Lossless(SlowPolicy::Wait));
    let mut tx = r.publisher().unwrap();
    let (mut a, mut b) = (
        r.subscriber(Start::Newest).unwrap(),
        r.subscriber(Start::Newest).unwrap(),
    );
    assert_eq!((tx.max_message(), a.max_message()), (MAX, MAX));
    for p in 0..40 {
        tx.try_send_message(&message(p)).unwrap();
    }
    for p in 0..40 {
        assert_eq!(recv(&mut a).unwrap(), message(p), "a, message {p}");
        let g = b.try_read_message().unwrap();
        assert_eq!(g.len(), message(p).len());
        // SAFETY: lossless without eviction, honest peers: nothing writes the slot while
        // the guard lives.
        assert_eq!(unsafe { g.as_slice() }, &message(p)[..]);
        g.release().unwrap();
    }
    assert!(matches!(recv(&mut a), Err(TryError::Empty { .. })));
    assert!(matches!(b.try_read_message(), Err(TryError::Empty { .. })));
}

#[test]
fn bad_sizes_are_refused_and_nothing_is_consumed() {
    let r = ring(64, Mode::Lossy);
    let mut tx = r.publisher().unwrap();
    let mut rx = r.subscriber(Start::Newest).unwrap();
    assert!(matches!(
        tx.try_send_message(&[0; MAX + 1]),
        Err(TryError::MessageTooLarge { len: 105, max: MAX })
    ));
    tx.try_send_message(&[7; 50]).unwrap();
    let mut small = [0u8; 49];
    assert!(matches!(
        rx.try_recv_message(&mut small),
        Err(TryError::BufferTooSmall {
            needed: 50,
            len: 49
        })
    ));
    assert_eq!(recv(&mut rx).unwrap(), vec![7; 50]);
    let g = {
        tx.try_send_message(b"abc").unwrap();
        rx.try_read_message().unwrap()
    };
    let mut d = [0u8; 2];
    g.read_at(1, &mut d).unwrap();
    assert_eq!(&d, b"bc");
    assert!(matches!(
        g.read_at(2, &mut d),
        Err(TryError::OutOfRange { index: 4, len: 3 })
    ));
    g.release().unwrap();
    assert!(message_type(usize::MAX).is_err());
    assert!(message_type(1 << 30).is_err());
}

#[test]
fn a_held_guard_holds_a_lossless_publisher() {
    let r = ring(16, Mode::Lossless(SlowPolicy::Wait));
    let mut tx = r.publisher().unwrap();
    let mut rx = r.subscriber(Start::Newest).unwrap();
    let mut sent = 0;
    while tx.try_send_message(&message(sent)).is_ok() {
        sent += 1;
    }
    assert_eq!(sent, 16);
    let g = rx.try_read_message().unwrap();
    assert!(matches!(
        tx.try_send_message(&message(sent)),
        Err(TryError::Full { .. })
    ));
    assert_eq!(g.to_vec(), message(0));
    g.release().unwrap();
    // Every further message gets through once the subscriber reads on.
    for p in 1..200 {
        while tx.try_send_message(&message(sent)).is_ok() {
            sent += 1;
        }
        assert_eq!(recv(&mut rx).unwrap(), message(p));
    }
}

#[test]
fn a_message_overwritten_under_a_guard_is_reported_at_release() {
    let r = ring(16, Mode::Lossy);
    let mut tx = r.publisher().unwrap();
    let mut rx = r.subscriber(Start::Newest).unwrap();
    tx.try_send_message(&message(0)).unwrap();
    let g = rx.try_read_message().unwrap();
    for p in 1..50 {
        tx.try_send_message(&message(p)).unwrap();
    }
    let lost = match g.release() {
        Err(TryError::Lagged { missed }) => missed,
        other => panic!("release after being lapped: {other:?}"),
    };
    assert!(lost >= 1);
    assert_eq!(rx.position(), lost);
    assert_eq!(rx.missed(), lost);
    // From there on: intact messages, in order.
    let mut p = lost;
    while let Ok(m) = recv(&mut rx) {
        assert_eq!(m, message(p));
        p += 1;
    }
    assert_eq!(p, 50);
}

#[test]
fn a_loss_found_when_a_guard_is_dropped_comes_with_the_next_call() {
    let r = ring(16, Mode::Lossy);
    let mut tx = r.publisher().unwrap();
    let mut rx = r.subscriber(Start::Newest).unwrap();
    tx.try_send_message(&message(0)).unwrap();
    let g = rx.try_read_message().unwrap();
    for p in 1..50 {
        tx.try_send_message(&message(p)).unwrap();
    }
    drop(g);
    let lost = rx.position();
    assert!(lost >= 1);
    match recv(&mut rx) {
        Err(TryError::Lagged { missed }) => assert_eq!(missed, lost),
        other => panic!("the next call after a dropped guard: {other:?}"),
    }
    assert_eq!(recv(&mut rx).unwrap(), message(lost));
}

#[test]
fn a_hostile_length_word_is_refused() {
    let r = ring(16, Mode::Lossy);
    let mut tx = r.publisher().unwrap();
    let mut rx = r.subscriber(Start::Newest).unwrap();
    tx.try_send_message(b"hello").unwrap();
    // The first slot's length word: in block 0, after the block word and its padding.
    let region = r.region().clone();
    let bytes = region.len();
    let found = (0..bytes - 8).step_by(8).find(|&off| {
        region
            .atomic_u64(off)
            .unwrap()
            .load(std::sync::atomic::Ordering::Relaxed)
            == 5
            && region
                .atomic_u64(off + 8)
                .unwrap()
                .load(std::sync::atomic::Ordering::Relaxed)
                .to_le_bytes()[..5]
                == *b"hello"
    });
    let off = found.expect("the slot of the message");
    region
        .atomic_u64(off)
        .unwrap()
        .store(u64::MAX, std::sync::atomic::Ordering::Relaxed);
    assert!(matches!(
        recv(&mut rx),
        Err(TryError::Corrupted {
            what: Word::RecordLength,
            ..
        })
    ));
    assert!(matches!(
        rx.try_read_message(),
        Err(TryError::Corrupted { .. })
    ));
}

#[test]
fn attach_needs_the_same_maximum() {
    let r = ring(16, Mode::Lossy);
    let region = r.region().clone();
    assert!(matches!(
        Ring::<Raw>::attach_as(region.clone(), &message_type(MAX + 8).unwrap()),
        Err(Error::TypeMismatch { .. })
    ));
    let again = Ring::<Raw>::attach_as(region, &message_type(MAX).unwrap()).unwrap();
    let mut rx = again.subscriber(Start::Newest).unwrap();
    r.publisher().unwrap().try_send_message(b"x").unwrap();
    assert_eq!(recv(&mut rx).unwrap(), b"x");
}

#[test]
fn blocking_calls_wait_for_a_message_and_see_close() {
    let r = ring(16, Mode::Lossless(SlowPolicy::Wait));
    let mut tx = r.publisher().unwrap();
    let mut rx = r.subscriber(Start::Newest).unwrap();
    rx.set_wait_strategy(WaitStrategy::blocking());
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        tx.send_message_blocking(b"one", None).unwrap();
        tx.send_message_blocking(b"two", None).unwrap();
        tx.close();
    });
    let deadline = Some(Instant::now() + Duration::from_secs(10));
    let mut buf = [0u8; MAX];
    let n = rx.recv_message_blocking(&mut buf, deadline).unwrap();
    assert_eq!(&buf[..n], b"one");
    let g = rx.read_message_blocking(deadline).unwrap();
    assert_eq!(g.to_vec(), b"two");
    g.release().unwrap();
    assert!(matches!(
        rx.recv_message_blocking(&mut buf, deadline),
        Err(Error::Closed { .. })
    ));
    t.join().unwrap();
}

/// Two subscriber processes read every message of a lossless ring, alternating copies and
/// in-place reads, and check each byte.
#[test]
fn two_subscriber_processes_get_every_message() {
    const N: u64 = if cfg!(debug_assertions) {
        50_000
    } else {
        500_000
    };
    let r = ring(256, Mode::Lossless(SlowPolicy::Wait));
    let mut tx = r.publisher().unwrap();
    tx.set_wait_strategy(WaitStrategy::SpinThenYield { spins: 64 });
    let children: Vec<_> = (0..2)
        .map(|_| {
            let mut rx = r.subscriber(Start::Newest).unwrap();
            rx.set_wait_strategy(WaitStrategy::SpinThenYield { spins: 64 });
            in_child(move || {
                let deadline = Some(Instant::now() + Duration::from_secs(120));
                let mut buf = [0u8; MAX];
                for p in 0..N {
                    let ok = if p % 2 == 0 {
                        match rx.recv_message_blocking(&mut buf, deadline) {
                            Ok(n) => buf[..n] == message(p)[..],
                            Err(_) => return 2,
                        }
                    } else {
                        match rx.read_message_blocking(deadline) {
                            Ok(g) => {
                                let v = g.to_vec();
                                g.release().is_ok() && v == message(p)
                            }
                            Err(_) => return 2,
                        }
                    };
                    if !ok {
                        return 1;
                    }
                }
                match rx.recv_message_blocking(&mut buf, deadline) {
                    Err(Error::Closed { .. }) => 0,
                    _ => 3,
                }
            })
        })
        .collect();
    let deadline = Some(Instant::now() + Duration::from_secs(120));
    for p in 0..N {
        tx.send_message_blocking(&message(p), deadline).unwrap();
    }
    tx.close();
    for c in children {
        assert_eq!(exit_code(c, Duration::from_secs(120)), 0);
    }
}

#[test]
fn batch_reads_pack_messages_and_report_losses() {
    let r = ring(16, Mode::Lossy);
    let mut tx = r.publisher().unwrap();
    let mut rx = r.subscriber(Start::Newest).unwrap();
    for p in 0..10 {
        tx.try_send_message(&message(p)).unwrap();
    }
    let mut buf = vec![0u8; MAX * 4];
    let mut lens = [0usize; 8];
    assert!(matches!(
        rx.try_recv_messages(&mut buf[..MAX - 1], &mut lens),
        Err(TryError::BufferTooSmall { .. })
    ));
    let mut p = 0;
    while p < 10 {
        let n = rx.try_recv_messages(&mut buf, &mut lens).unwrap();
        assert!((1..=4).contains(&n), "at most dst / max messages: {n}");
        let mut off = 0;
        for &len in &lens[..n] {
            assert_eq!(&buf[off..off + len], &message(p)[..], "message {p}");
            off += len;
            p += 1;
        }
    }
    assert_eq!(rx.try_recv_messages(&mut buf, &mut lens).unwrap(), 0);
    // Lapped: the loss first, exactly, then intact messages.
    for q in 10..60 {
        tx.try_send_message(&message(q)).unwrap();
    }
    let at = rx.position();
    let missed = match rx.try_recv_messages(&mut buf, &mut lens) {
        Err(TryError::Lagged { missed }) => missed,
        other => panic!("expected a loss: {other:?}"),
    };
    assert_eq!(rx.position(), at + missed);
    let mut p = at + missed;
    loop {
        let n = rx.try_recv_messages(&mut buf, &mut lens).unwrap();
        if n == 0 {
            break;
        }
        let mut off = 0;
        for &len in &lens[..n] {
            assert_eq!(&buf[off..off + len], &message(p)[..], "message {p}");
            off += len;
            p += 1;
        }
    }
    assert_eq!(p, 60);
}
