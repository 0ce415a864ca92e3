//! Creating and attaching: every header field is checked, each mismatch has its own error.
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering;
use std::sync::Arc;

use shm_queue::header::{HEADER_SIZE, LAYOUT_VERSION, MAGIC};
use shm_queue::spsc::{self, Ring};
use shm_queue::Error;
use shm_region::Region;

// Byte offsets of header fields (docs/layout.md).
const VERSION: usize = 8;
const KIND: usize = 12;
const CAPACITY: usize = 16;
const BLOCK_COUNT: usize = 24;
const ELEMS_PER_BLOCK: usize = 36;
const ELEM_SIZE: usize = 44;
const TYPE_HASH: usize = 56;
const AREA_SIZE: usize = 72;
const READY: usize = 120;
const PRODUCER_CLAIM: usize = 128;
const TAIL: usize = 256;
const HEAD: usize = 384;

fn fresh(capacity: usize) -> (Arc<Region>, Ring<u64>) {
    let region = Arc::new(Region::anonymous(64 * 1024).unwrap());
    let ring = Ring::<u64>::create(region.clone(), capacity).unwrap();
    (region, ring)
}

fn put_u32(r: &Region, off: usize, v: u32) {
    r.atomic_u32(off).unwrap().store(v, Ordering::SeqCst);
}

fn put_u64(r: &Region, off: usize, v: u64) {
    r.atomic_u64(off).unwrap().store(v, Ordering::SeqCst);
}

#[test]
fn attach_sees_what_create_wrote() {
    let (region, ring) = fresh(100);
    let other = Ring::<u64>::attach(region.clone()).unwrap();
    assert_eq!(other.capacity(), ring.capacity());
    assert_eq!(ring.capacity(), 16 * 7);
    assert_eq!(ring.elements_per_block(), 7);
    assert_eq!(ring.block_count(), 16);
    assert_eq!(region.atomic_u64(0).unwrap().load(Ordering::SeqCst), MAGIC);
    let (mut tx, mut rx) = (ring.producer().unwrap(), other.consumer().unwrap());
    tx.try_push(5).unwrap();
    assert_eq!(rx.try_pop().unwrap(), 5);
}

#[test]
fn create_refuses_a_ready_ring_unless_asked() {
    let (region, ring) = fresh(10);
    let mut tx = ring.producer().unwrap();
    tx.try_push(1).unwrap();
    drop(tx);
    assert!(matches!(
        Ring::<u64>::create(region.clone(), 10),
        Err(Error::AlreadyInitialized { .. })
    ));
    // The refused create changed nothing.
    let mut rx = Ring::<u64>::attach(region.clone())
        .unwrap()
        .consumer()
        .unwrap();
    assert_eq!(rx.try_pop().unwrap(), 1);
    drop(rx);
    // SAFETY: the old ring's handles were dropped above and are not used again.
    let fresh = unsafe { spsc::Options::new(20).reinitialize(true) };
    let again = Ring::<u64>::create_with(region.clone(), fresh).unwrap();
    assert_eq!(again.capacity(), 28); // 20 / 7 -> 3 blocks -> 4 blocks
    assert!(again.consumer().unwrap().is_empty());
}

#[test]
fn create_refuses_a_half_built_ring() {
    let region = Arc::new(Region::anonymous(4096).unwrap());
    put_u64(&region, READY, shm_queue::header::INITIALIZING);
    assert!(matches!(
        Ring::<u64>::create(region.clone(), 10),
        Err(Error::AlreadyInitialized { .. })
    ));
    assert!(matches!(
        Ring::<u64>::attach(region.clone()),
        Err(Error::NotReady { .. })
    ));
    // SAFETY: no handle of the old ring is used after this.
    Ring::<u64>::create_with(region, unsafe { spsc::Options::new(10).reinitialize(true) }).unwrap();
}

#[test]
fn too_small_regions() {
    let region = Arc::new(Region::anonymous(100).unwrap());
    assert!(matches!(
        Ring::<u64>::attach(region.clone()),
        Err(Error::RegionTooSmall { need, .. }) if need == HEADER_SIZE as u64
    ));
    let region = Arc::new(Region::anonymous(4096).unwrap());
    let need = Ring::<u64>::required_bytes(10_000).unwrap() as u64;
    assert!(matches!(
        Ring::<u64>::create(region, 10_000),
        Err(Error::RegionTooSmall { need: n, len: 4096 }) if n == need
    ));
}

#[test]
fn zeroed_region_is_not_ready() {
    let region = Arc::new(Region::anonymous(4096).unwrap());
    assert!(matches!(
        Ring::<u64>::attach(region),
        Err(Error::NotReady { ready: 0 })
    ));
}

#[test]
fn garbage_has_bad_magic() {
    let region = Arc::new(Region::anonymous(4096).unwrap());
    region.fill(0, 4096, 0xab).unwrap();
    assert!(matches!(
        Ring::<u64>::attach(region),
        Err(Error::BadMagic { .. })
    ));
    let (region, _ring) = fresh(10);
    put_u64(&region, 0, 0x1234);
    assert!(matches!(
        Ring::<u64>::attach(region),
        Err(Error::BadMagic { found: 0x1234, .. })
    ));
}

#[test]
fn other_version_and_kind() {
    let (region, _ring) = fresh(10);
    put_u32(&region, VERSION, LAYOUT_VERSION + 1);
    assert!(matches!(
        Ring::<u64>::attach(region.clone()),
        Err(Error::VersionMismatch { found, expected }) if found == LAYOUT_VERSION + 1 && expected == LAYOUT_VERSION
    ));
    put_u32(&region, VERSION, LAYOUT_VERSION);
    put_u32(&region, KIND, 2);
    assert!(matches!(
        Ring::<u64>::attach(region),
        Err(Error::KindMismatch {
            found: 2,
            expected: 1
        })
    ));
}

#[test]
fn other_element_type() {
    let (region, _ring) = fresh(10);
    // Same size and alignment, other name.
    assert!(matches!(
        Ring::<i64>::attach(region.clone()),
        Err(Error::TypeMismatch {
            found_size: 8,
            expected_size: 8,
            ..
        })
    ));
    assert!(matches!(
        Ring::<u32>::attach(region.clone()),
        Err(Error::TypeMismatch {
            found_size: 8,
            expected_size: 4,
            ..
        })
    ));
    // A forged hash with the right size is still caught.
    put_u64(&region, TYPE_HASH, 1);
    assert!(matches!(
        Ring::<u64>::attach(region.clone()),
        Err(Error::TypeMismatch { found_hash: 1, .. })
    ));
    put_u64(
        &region,
        TYPE_HASH,
        shm_queue::header::type_fingerprint::<u64>(),
    );
    put_u32(&region, ELEM_SIZE, 16);
    assert!(matches!(
        Ring::<u64>::attach(region),
        Err(Error::TypeMismatch { found_size: 16, .. })
    ));
}

#[test]
fn unsupported_types() {
    #[derive(Clone, Copy, bytemuck::Zeroable, bytemuck::Pod)]
    #[repr(C, align(128))]
    struct Wide([u8; 128]);
    assert!(matches!(
        Ring::<Wide>::required_bytes(4),
        Err(Error::UnsupportedType { align: 128, .. })
    ));
    assert!(matches!(
        Ring::<()>::required_bytes(4),
        Err(Error::UnsupportedType { size: 0, .. })
    ));
    assert!(matches!(
        Ring::<u64>::required_bytes(0),
        Err(Error::BadCapacity { blocks: 0, .. })
    ));
    assert!(matches!(
        Ring::<u64>::required_bytes(usize::MAX),
        Err(Error::BadCapacity { .. })
    ));
}

#[test]
fn bad_block_counts() {
    let (region, _ring) = fresh(10);
    for (blocks, reason) in [
        (0u64, "zero"),
        (3, "not a power of two"),
        (1 << 40, "too large"),
    ] {
        put_u64(&region, BLOCK_COUNT, blocks);
        match Ring::<u64>::attach(region.clone()) {
            Err(Error::BadCapacity {
                blocks: b,
                reason: r,
                ..
            }) => {
                assert_eq!((b, r), (blocks, reason))
            }
            other => panic!("{blocks} blocks: {other:?}"),
        }
    }
}

#[test]
fn layout_fields_must_agree() {
    let (region, ring) = fresh(10);
    let blocks = ring.block_count() as u64;
    put_u32(&region, ELEMS_PER_BLOCK, 6);
    assert!(matches!(
        Ring::<u64>::attach(region.clone()),
        Err(Error::LayoutMismatch {
            field: "elems_per_block",
            found: 6,
            expected: 7
        })
    ));
    put_u32(&region, ELEMS_PER_BLOCK, 7);
    put_u64(&region, CAPACITY, 99);
    assert!(matches!(
        Ring::<u64>::attach(region.clone()),
        Err(Error::LayoutMismatch {
            field: "capacity",
            ..
        })
    ));
    // Consistently claim more blocks than the region holds.
    let big = blocks << 12;
    put_u64(&region, BLOCK_COUNT, big);
    put_u64(&region, CAPACITY, big * 7);
    put_u64(&region, AREA_SIZE, HEADER_SIZE as u64 + big * 64);
    assert!(matches!(
        Ring::<u64>::attach(region.clone()),
        Err(Error::RegionTooSmall { len: 65536, .. })
    ));
}

#[test]
fn impossible_positions_are_corruption() {
    let (region, ring) = fresh(10);
    let cap = ring.capacity() as u64;
    put_u64(&region, TAIL, 1000);
    put_u64(&region, HEAD, 1000 - cap - 1);
    assert!(matches!(
        Ring::<u64>::attach(region.clone()),
        Err(Error::Corrupted {
            what: "producer position (tail)",
            value: 1000,
            ..
        })
    ));
    assert!(matches!(ring.consumer(), Err(Error::Corrupted { .. })));
    assert!(matches!(ring.producer(), Err(Error::Corrupted { .. })));
    // The failed handle creations released their claims.
    assert_eq!(ring.producer_holder(), None);
    assert_eq!(ring.consumer_holder(), None);
    put_u64(&region, HEAD, u64::MAX);
    assert!(matches!(
        Ring::<u64>::attach(region.clone()),
        Err(Error::Corrupted {
            what: "consumer position (head)",
            ..
        })
    ));
}

#[test]
fn one_producer_and_one_consumer() {
    let (region, ring) = fresh(10);
    let other = Ring::<u64>::attach(region.clone()).unwrap();
    let tx = ring.producer().unwrap();
    let holder = ring.producer_holder().unwrap();
    assert_eq!(holder >> 32, u64::from(std::process::id()));
    assert!(matches!(other.producer(), Err(Error::ProducerClaimed { holder: h }) if h == holder));
    let rx = other.consumer().unwrap();
    assert!(matches!(
        ring.consumer(),
        Err(Error::ConsumerClaimed { .. })
    ));
    drop(tx);
    drop(rx);
    assert_eq!(ring.producer_holder(), None);
    let _tx = other.producer().unwrap();
    let _rx = ring.consumer().unwrap();
}

#[test]
fn force_release_of_a_dead_holder() {
    let (region, ring) = fresh(10);
    // A "dead process" left its claim behind.
    put_u64(&region, PRODUCER_CLAIM, (4242 << 32) | 1);
    assert!(matches!(
        ring.producer(),
        Err(Error::ProducerClaimed { .. })
    ));
    let holder = ring.producer_holder().unwrap();
    // SAFETY: the holder is not a live handle of this test.
    unsafe {
        assert!(!ring.force_release_producer(holder + 1));
        assert!(ring.force_release_producer(holder));
    }
    let mut tx = ring.producer().unwrap();
    tx.try_push(1).unwrap();
}

#[test]
fn producer_recovers_from_a_death_mid_publish() {
    // Simulate a producer that wrote 10 elements, stored P into the last block it touched
    // and died before the first block and the tail word.
    let (region, ring) = fresh(20); // 4 blocks of 7
    {
        let mut tx = ring.producer().unwrap();
        // Written but never committed: nothing published.
        let mut chunk = tx.write_chunk(10).unwrap();
        chunk
            .copy_from_slice(0, &(0..10).collect::<Vec<u64>>())
            .unwrap();
    }
    put_u64(&region, HEADER_SIZE + 64, 10); // P of block 1 only
    let mut rx = ring.consumer().unwrap();
    assert!(rx.try_pop().is_err(), "block 0 was never published");
    let mut tx = ring.producer().unwrap();
    assert_eq!(tx.position(), 10);
    tx.try_push(10).unwrap();
    let mut got = vec![0; 11];
    assert_eq!(rx.pop_partial_slice(&mut got).unwrap(), 11);
    assert_eq!(got, (0..11).collect::<Vec<u64>>());
}

#[test]
fn handles_resume_where_the_last_stopped() {
    let (_region, ring) = fresh(10);
    for round in 0..5u64 {
        let mut tx = ring.producer().unwrap();
        for i in 0..9 {
            tx.try_push(round * 100 + i).unwrap();
        }
        drop(tx);
        let mut rx = ring.consumer().unwrap();
        for i in 0..9 {
            assert_eq!(rx.try_pop().unwrap(), round * 100 + i);
        }
        assert_eq!(rx.position(), (round + 1) * 9);
    }
}

#[test]
fn tail_word_lags_single_pushes_by_less_than_a_block() {
    // 4 blocks of 7: single pushes store the tail word only when they leave a block.
    let (region, ring) = fresh(20);
    let tail_word = || region.atomic_u64(TAIL).unwrap().load(Ordering::SeqCst);
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    for i in 0..10 {
        tx.try_push(i).unwrap();
    }
    assert_eq!(tail_word(), 7, "stored once, on leaving block 0");
    // Every reader still sees all 10: they follow the block words from the tail word.
    assert_eq!(rx.len(), 10);
    assert_eq!(tx.len(), 10);
    let attached = Ring::<u64>::attach(region.clone()).unwrap();
    assert!(format!("{attached:?}").contains("tail: 7"));
    // The consumer drains past the lagging word; attach and a new producer still accept it.
    let mut got = vec![0; 10];
    assert_eq!(rx.pop_partial_slice(&mut got).unwrap(), 10);
    assert_eq!(got, (0..10).collect::<Vec<u64>>());
    assert_eq!(region.atomic_u64(HEAD).unwrap().load(Ordering::SeqCst), 10);
    drop(tx);
    let again = Ring::<u64>::attach(region.clone()).unwrap();
    let mut tx = again.producer().unwrap();
    assert_eq!(tx.position(), 10, "recovered from the block words");
    assert_eq!(tail_word(), 10, "and re-recorded");
    tx.try_push(10).unwrap();
    assert_eq!(rx.try_pop().unwrap(), 10);
    assert!(rx.is_empty() && tx.is_empty());
}
