//! The byte-message ring through its public API: creation and attach checks, sending and
//! receiving across the wrap, zero-copy claims and read guards, errors for bad input, and a
//! new producer resuming after a dead one.
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

mod common;

use shm_queue::TryError;
use std::sync::Arc;

use shm_queue::bytes;
use shm_queue::spsc::Ring;
use shm_queue::Error;
use shm_region::Region;

fn ring(capacity: usize, max: usize) -> bytes::Ring {
    let region = Region::anonymous(bytes::Ring::required_bytes(capacity).unwrap()).unwrap();
    bytes::Ring::create(region, capacity, max).unwrap()
}

#[test]
fn sizes_and_limits() {
    assert_eq!(bytes::Ring::required_bytes(1).unwrap(), 512 + 64);
    assert_eq!(bytes::Ring::required_bytes(1000).unwrap(), 512 + 1024);
    assert_eq!(bytes::Ring::required_bytes(4096).unwrap(), 512 + 4096);
    assert!(matches!(
        bytes::Ring::required_bytes(usize::MAX),
        Err(Error::BadByteCapacity { .. })
    ));
    let r = ring(1000, 100);
    assert_eq!((r.capacity(), r.max_message()), (1024, 100));
    let region = Arc::new(Region::anonymous(8192).unwrap());
    for max in [0, 2041, 1 << 20] {
        let e = bytes::Ring::create(region.clone(), 4096, max).unwrap_err();
        assert!(
            matches!(e, Error::BadMaxMessage { limit: 2040, .. }),
            "{max}: {e}"
        );
    }
    let r = bytes::Ring::create_with(region, bytes::Options::new(4096)).unwrap();
    assert_eq!(r.max_message(), 2040);
    let small = Region::anonymous(4096).unwrap();
    let e = bytes::Ring::create(small, 8192, 64).unwrap_err();
    assert!(matches!(e, Error::RegionTooSmall { need: 8704, .. }), "{e}");
}

#[test]
fn attach_checks_kind_readiness_and_fields() {
    let region = Arc::new(Region::anonymous(8192).unwrap());
    assert!(matches!(
        bytes::Ring::attach(region.clone()),
        Err(Error::NotReady { .. })
    ));
    let created = bytes::Ring::create(region.clone(), 4096, 512).unwrap();
    let attached = bytes::Ring::attach(region.clone()).unwrap();
    assert_eq!((attached.capacity(), attached.max_message()), (4096, 512));
    // Not an SPSC ring, and an SPSC ring is not a byte ring.
    assert!(matches!(
        Ring::<u64>::attach(region.clone()),
        Err(Error::KindMismatch {
            found: 2,
            expected: 1
        })
    ));
    let other = Arc::new(Region::anonymous(8192).unwrap());
    Ring::<u64>::create(other.clone(), 100).unwrap();
    assert!(matches!(
        bytes::Ring::attach(other),
        Err(Error::KindMismatch {
            found: 1,
            expected: 2
        })
    ));
    // A second create is refused.
    assert!(matches!(
        bytes::Ring::create(region.clone(), 4096, 512),
        Err(Error::AlreadyInitialized { .. })
    ));
    // Damaged fields are named.
    let put32 = |off: usize, v: u32| region.write_at(off, &v.to_le_bytes()).unwrap();
    put32(92, 4000); // max_message above the limit
    assert!(matches!(
        bytes::Ring::attach(region.clone()),
        Err(Error::BadMaxMessage { max: 4000, .. })
    ));
    put32(92, 512);
    region.write_at(16, &1000u64.to_le_bytes()).unwrap(); // capacity not a power of two
    assert!(matches!(
        bytes::Ring::attach(region.clone()),
        Err(Error::BadByteCapacity { capacity: 1000, .. })
    ));
    region.write_at(16, &4096u64.to_le_bytes()).unwrap();
    region.write_at(24, &3u64.to_le_bytes()).unwrap(); // block count
    assert!(matches!(
        bytes::Ring::attach(region.clone()),
        Err(Error::LayoutMismatch {
            field: "block_count",
            ..
        })
    ));
    region.write_at(24, &64u64.to_le_bytes()).unwrap();
    region.write_at(0, b"garbage!").unwrap();
    assert!(matches!(
        bytes::Ring::attach(region.clone()),
        Err(Error::BadMagic { .. })
    ));
    drop(created);
    // A region too short for the recorded capacity.
    let short = Arc::new(Region::anonymous(4096).unwrap());
    bytes::Ring::create(short.clone(), 2048, 64).unwrap();
    short.write_at(16, &4096u64.to_le_bytes()).unwrap();
    short.write_at(24, &64u64.to_le_bytes()).unwrap();
    short.write_at(72, &(512u64 + 4096).to_le_bytes()).unwrap();
    assert!(matches!(
        bytes::Ring::attach(short),
        Err(Error::RegionTooSmall { .. })
    ));
}

#[test]
fn one_producer_and_one_consumer() {
    let r = ring(4096, 256);
    let tx = r.producer().unwrap();
    assert!(matches!(r.producer(), Err(Error::ProducerClaimed { .. })));
    let rx = r.consumer().unwrap();
    assert!(matches!(r.consumer(), Err(Error::ConsumerClaimed { .. })));
    assert_eq!(
        r.producer_holder().unwrap() >> 32,
        u64::from(std::process::id())
    );
    drop((tx, rx));
    assert!(r.producer_holder().is_none() && r.consumer_holder().is_none());
    r.split().unwrap();
}

#[test]
fn send_and_receive_across_many_wraps() {
    let r = ring(256, 100);
    let (mut tx, mut rx) = r.split().unwrap();
    let mut buf = [0u8; 100];
    let mut expect = [0u8; 100];
    for seq in 0..5000u64 {
        let len = common::length(seq, 100);
        common::payload(seq, len, &mut buf);
        tx.try_push(&buf[..len]).unwrap();
        let mut got = [0u8; 100];
        let n = rx.try_pop(&mut got).unwrap();
        common::payload(seq, len, &mut expect);
        assert_eq!(&got[..n], &expect[..len], "message {seq}");
    }
    assert!(matches!(rx.try_pop(&mut buf), Err(TryError::Empty { .. })));
    assert!(tx.position() > 10 * 256, "the test must wrap many times");
}

#[test]
fn fills_up_then_drains_in_order() {
    let r = ring(256, 64);
    let (mut tx, mut rx) = r.split().unwrap();
    let mut sent = 0u64;
    loop {
        match tx.try_push(&sent.to_le_bytes()) {
            Ok(()) => sent += 1,
            Err(TryError::Full { .. }) => break,
            Err(e) => panic!("{e}"),
        }
    }
    // 16-byte records and an 8-byte terminator in 256 bytes.
    assert_eq!(sent, 15);
    assert!(tx.used_bytes() >= 240);
    for i in 0..sent {
        let m = rx.read().unwrap();
        assert_eq!(m.to_vec(), i.to_le_bytes());
    }
    assert!(matches!(rx.read(), Err(TryError::Empty { .. })));
    // The space is back.
    tx.try_push(b"again").unwrap();
}

#[test]
fn claims_commit_shorter_or_abort() {
    let r = ring(512, 200);
    let (mut tx, mut rx) = r.split().unwrap();
    let mut c = tx.claim(10).unwrap();
    assert_eq!(c.len(), 10);
    c.write_at(0, b"0123456789").unwrap();
    assert!(matches!(
        c.write_at(5, b"123456"),
        Err(TryError::OutOfRange { .. })
    ));
    c.commit();
    let c = tx.claim(50).unwrap();
    c.abort();
    {
        // Never committed: going out of scope sends nothing, like abort.
        let _uncommitted = tx.claim(50).unwrap();
    }
    let mut c = tx.claim(100).unwrap();
    c.write_at(0, b"short").unwrap();
    assert!(c.commit_len(101).is_err());
    let mut c = tx.claim(100).unwrap();
    c.write_at(0, b"short").unwrap();
    c.commit_len(5).unwrap();
    let mut c = tx.claim(3).unwrap();
    // SAFETY: the consumer is this test, which does not touch the claimed bytes meanwhile.
    unsafe { c.as_mut_slice() }.copy_from_slice(b"abc");
    c.commit();
    tx.try_push(b"").unwrap();

    let mut v = Vec::new();
    assert_eq!(rx.try_pop_vec(&mut v).unwrap(), 10);
    assert_eq!(v, b"0123456789");
    assert_eq!(rx.try_pop_vec(&mut v).unwrap(), 5);
    assert_eq!(v, b"short");
    let g = rx.read().unwrap();
    // SAFETY: the producer is this test, which does not write the record meanwhile.
    assert_eq!(unsafe { g.as_slice() }, b"abc");
    let mut two = [0u8; 2];
    g.read_at(1, &mut two).unwrap();
    assert_eq!(&two, b"bc");
    assert!(g.read_at(2, &mut two).is_err());
    let mut small = [0u8; 2];
    assert!(matches!(
        g.copy_to(&mut small),
        Err(TryError::BufferTooSmall { needed: 3, len: 2 })
    ));
    g.release();
    assert_eq!(rx.try_pop(&mut [0u8; 0]).unwrap(), 0);
    assert!(!rx.has_message());
}

#[test]
fn a_message_in_parts_arrives_whole_across_the_wrap() {
    let r = ring(256, 100);
    let (mut tx, mut rx) = r.split().unwrap();
    let mut buf = [0u8; 100];
    for seq in 0..3000u64 {
        let len = common::length(seq, 100);
        common::payload(seq, len, &mut buf);
        // Cut it in up to three parts, empty ones included.
        let (a, b) = (
            (seq as usize * 7) % (len + 1),
            (seq as usize * 13) % (len + 1),
        );
        let (a, b) = (a.min(b), a.max(b));
        let parts = [&buf[..a], &buf[a..b], &[][..], &buf[b..len]];
        if seq % 2 == 0 {
            tx.try_push_parts(&parts).unwrap();
        } else {
            tx.push_parts_blocking(&parts, None).unwrap();
        }
        let mut got = [0u8; 100];
        let n = rx.try_pop(&mut got).unwrap();
        assert_eq!(&got[..n], &buf[..len], "message {seq}");
    }
    tx.try_push_parts(&[]).unwrap();
    assert_eq!(rx.try_pop(&mut buf).unwrap(), 0);
    // Too long in total: refused whole, nothing sent.
    assert!(matches!(
        tx.try_push_parts(&[&[1u8; 60], &[2u8; 41]]),
        Err(TryError::MessageTooLarge { len: 101, max: 100 })
    ));
    assert!(matches!(
        tx.push_parts_blocking(&[&[1u8; 60], &[2u8; 41]], None),
        Err(Error::MessageTooLarge { len: 101, max: 100 })
    ));
    assert!(!rx.has_message());
}

#[test]
fn bad_input_is_an_error_and_loses_nothing() {
    let r = ring(1024, 100);
    let (mut tx, mut rx) = r.split().unwrap();
    assert!(matches!(
        tx.try_push(&[0u8; 101]),
        Err(TryError::MessageTooLarge { len: 101, max: 100 })
    ));
    assert!(matches!(
        tx.claim(1 << 40),
        Err(TryError::MessageTooLarge { .. })
    ));
    tx.try_push(&[7u8; 50]).unwrap();
    let mut small = [0u8; 49];
    assert!(matches!(
        rx.try_pop(&mut small),
        Err(TryError::BufferTooSmall {
            needed: 50,
            len: 49
        })
    ));
    // The message is still there.
    let mut big = [0u8; 100];
    assert_eq!(rx.try_pop(&mut big).unwrap(), 50);
    assert_eq!(&big[..50], &[7u8; 50]);
}

#[test]
fn a_new_producer_resumes_after_a_dead_one() {
    let region = Arc::new(Region::anonymous(4096).unwrap());
    let r = bytes::Ring::create(region.clone(), 1024, 100).unwrap();
    let mut tx = r.producer().unwrap();
    let mut rx = r.consumer().unwrap();
    for i in 0..5u8 {
        tx.try_push(&[i; 30]).unwrap();
    }
    // Simulate a producer that committed two more records and died before storing `tail`:
    // commit them, then roll the shared tail word back.
    let tail_before = u64::from_le_bytes({
        let mut b = [0u8; 8];
        region.read_at(256, &mut b).unwrap();
        b
    });
    tx.try_push(&[5; 30]).unwrap();
    tx.try_push(&[6; 30]).unwrap();
    region.write_at(256, &tail_before.to_le_bytes()).unwrap();
    let holder = r.producer_holder().unwrap();
    std::mem::forget(tx); // the dead process never drops its handle
    assert!(matches!(r.producer(), Err(Error::ProducerClaimed { .. })));
    // SAFETY: the "dead" producer handle was forgotten and is never used again.
    assert!(unsafe { r.force_release_producer(holder) });
    let mut tx = bytes::Ring::attach(region).unwrap().producer().unwrap();
    tx.try_push(&[7; 30]).unwrap();
    let mut buf = [0u8; 100];
    for i in 0..8u8 {
        let n = rx.try_pop(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[i; 30], "message {i}");
    }
    assert!(matches!(rx.try_pop(&mut buf), Err(TryError::Empty { .. })));
}

#[test]
fn consumer_resumes_where_the_last_one_stopped() {
    let r = ring(1024, 100);
    let mut tx = r.producer().unwrap();
    for i in 0..4u8 {
        tx.try_push(&[i; 20]).unwrap();
    }
    let mut buf = [0u8; 100];
    {
        let mut rx = r.consumer().unwrap();
        rx.try_pop(&mut buf).unwrap();
        let g = rx.read().unwrap();
        assert_eq!(g.to_vec(), [1u8; 20]);
        // dropped: released
    }
    let mut rx = r.consumer().unwrap();
    let n = rx.try_pop(&mut buf).unwrap();
    assert_eq!(&buf[..n], &[2u8; 20]);
}
