//! A hostile peer: random bytes scribbled over the header and the block words of an attached
//! ring, then every producer and consumer method called. Each must return an error or data,
//! never panic (overflow checks are on in the debug builds this runs in), hang, or touch
//! memory outside the region (a `PROT_NONE` guard page sits right after it where possible).
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use common::Rng;
use shm_queue::header::HEADER_SIZE;
use shm_queue::spsc::{self, Consumer, Producer, Ring};
use shm_region::Region;

/// 440 bytes: a block is 448 bytes, so 8 blocks and the header fill exactly one 4 KiB page.
#[derive(Clone, Copy, Zeroable, Pod, Debug, PartialEq)]
#[repr(C)]
struct Page {
    a: [u64; 32],
    b: [u64; 16],
    c: [u64; 4],
    d: [u64; 3],
}

/// Offsets of every word a peer can reach that the ring reads at run time or on attach.
fn targets(blocks: usize, block_size: usize) -> Vec<usize> {
    let mut t: Vec<usize> = (0..HEADER_SIZE).step_by(8).collect();
    t.extend((0..blocks).map(|b| HEADER_SIZE + b * block_size));
    t
}

/// Calls every method; all results are accepted, only panics and faults fail the test.
/// Returns how many calls succeeded.
fn exercise<T: Pod>(
    ring: &Ring<T>,
    tx: &mut Option<Producer<T>>,
    rx: &mut Option<Consumer<T>>,
    rng: &mut Rng,
) -> usize {
    let mut ok = 0;
    let mut buf = [T::zeroed(); 40];
    if let Some(tx) = tx.as_mut() {
        ok += usize::from(tx.try_push(T::zeroed()).is_ok());
        let _ = tx.push_partial_slice(&buf[..(rng.below(20) as usize)]);
        if let Ok(mut c) = tx.write_chunk(rng.below(10) as usize) {
            let _ = c.set(0, T::zeroed());
            let _ = c.copy_from_slice(1, &buf[..2]);
            let _ = c.fill_from_iter(std::iter::repeat(T::zeroed()));
            let _ = c.commit(rng.below(12) as usize);
        }
        if let Ok(c) = tx.write_chunk_up_to(rng.below(50) as usize) {
            c.commit_all();
        }
        let _ = (
            tx.len(),
            tx.slots(),
            tx.is_empty(),
            tx.is_full(),
            tx.position(),
            tx.capacity(),
        );
    }
    if let Some(rx) = rx.as_mut() {
        ok += usize::from(rx.try_pop().is_ok());
        let _ = rx.peek();
        let n = rng.below(40) as usize;
        let _ = rx.pop_partial_slice(&mut buf[..n]);
        if let Ok(c) = rx.read_chunk(rng.below(10) as usize) {
            let _ = c.get(0);
            let _ = c.iter().count();
            let mut two = [T::zeroed(); 2];
            let _ = c.copy_to_slice(1, &mut two);
            let _ = c.commit(rng.below(12) as usize);
        }
        if let Ok(c) = rx.read_chunk_up_to(rng.below(50) as usize) {
            let _ = c.iter().count();
            c.commit_all();
        }
        let _ = (
            rx.len(),
            rx.slots(),
            rx.is_empty(),
            rx.position(),
            rx.capacity(),
        );
    }
    // Retake the handles now and then, through a fresh attach, as a restarted peer would.
    if rng.below(8) == 0 {
        common::restart_peers!(Ring<T>, ring, tx, rx);
    }
    ok
}

fn scribble<T: Pod>(region: Arc<Region>, capacity: usize, seed: u64, rounds: usize) {
    let ring = Ring::<T>::create(region.clone(), capacity).unwrap();
    let (blocks, cap) = (ring.block_count(), ring.capacity() as u64);
    let block_size = (Ring::<T>::required_bytes(capacity).unwrap() - HEADER_SIZE) / blocks;
    let attached = Ring::<T>::attach(region.clone()).unwrap();
    let (mut tx, mut rx) = (
        Some(ring.producer().unwrap()),
        Some(attached.consumer().unwrap()),
    );
    let targets = targets(blocks, block_size);
    let area = ring.block_count() * block_size + HEADER_SIZE;
    let mut rng = Rng(seed);
    let (mut ok, mut restarts) = (0, 0);
    for _ in 0..rounds {
        for _ in 0..=rng.below(3) {
            if rng.below(4) == 0 {
                // Any byte of the ring, payload included.
                let off = rng.below(area as u64) as usize;
                region.write_at(off, &[rng.next() as u8]).unwrap();
            } else {
                let off = targets[rng.below(targets.len() as u64) as usize];
                let near = tx.as_ref().map_or(0, |t| t.position());
                let value = common::nasty(&mut rng, near, cap, &[]);
                region.write_at(off, &value.to_le_bytes()).unwrap();
            }
        }
        ok += exercise(&ring, &mut tx, &mut rx, &mut rng);
        if tx.is_none() && rx.is_none() {
            // Both sides refuse the damaged ring: start over, as the peers would.
            // SAFETY: the hostile handles are dropped before the fresh ring is used.
            let fresh = unsafe { spsc::Options::new(capacity).reinitialize(true) };
            let r = Ring::<T>::create_with(region.clone(), fresh).unwrap();
            (tx, rx) = (Some(r.producer().unwrap()), Some(r.consumer().unwrap()));
            restarts += 1;
        }
    }
    eprintln!("{rounds} rounds: {ok} successful push/pop, {restarts} restarts");
    assert!(
        ok > rounds / 10,
        "the test exercised too little: {ok} successes"
    );
}

#[test]
fn scribbled_page_ring_with_guard_page() {
    let len = Ring::<Page>::required_bytes(8).unwrap();
    assert_eq!(len, 4096);
    let (region, guarded) = common::guarded_region(1);
    if !guarded {
        eprintln!("note: could not place a guard page after the region; running without one");
    }
    for seed in 1..=8u64 {
        // A fresh ring each time: reinitialise over the scribbled one.
        region.fill(0, len, 0).unwrap();
        scribble::<Page>(
            region.clone(),
            8,
            seed.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            400,
        );
    }
}

#[test]
fn scribbled_u64_ring() {
    for seed in 1..=8u64 {
        let region = Arc::new(Region::anonymous(Ring::<u64>::required_bytes(30).unwrap()).unwrap());
        scribble::<u64>(region, 30, seed.wrapping_mul(0xd1b5_4a32_d192_ed03), 2000);
    }
}

#[test]
fn absurd_block_word_reads_inside_the_block_only() {
    let region = Arc::new(Region::anonymous(Ring::<u64>::required_bytes(14).unwrap()).unwrap());
    let ring = Ring::<u64>::create(region.clone(), 14).unwrap();
    let (mut tx, mut rx) = ring.split().unwrap();
    tx.try_push(1).unwrap();
    // The peer claims far more than can exist: an error, not a read of it.
    region
        .write_at(HEADER_SIZE, &u64::MAX.to_le_bytes())
        .unwrap();
    assert!(matches!(
        rx.try_pop(),
        Err(shm_queue::TryError::Corrupted { .. })
    ));
    // The peer claims a full ring when one element was written: garbage, but inside the ring.
    region.write_at(HEADER_SIZE, &14u64.to_le_bytes()).unwrap();
    let mut buf = [0u64; 20];
    assert_eq!(rx.pop_partial_slice(&mut buf).unwrap(), 14);
    assert_eq!(buf[0], 1);
    // The consumer is now at 14 while the producer is at 1: the producer keeps pushing on
    // its cached head, and when it reloads, 14 is a possible head again. No panic anywhere.
    for i in 0..20 {
        let _ = tx.try_push(i);
    }
    // A head word beyond the producer's tail is reported once the cache runs out.
    region.write_at(384, &u64::MAX.to_le_bytes()).unwrap();
    let first_err = (0..20).map(|i| tx.try_push(i)).find(|r| r.is_err());
    assert!(matches!(
        first_err,
        Some(Err(shm_queue::TryError::Corrupted {
            what: shm_queue::Word::Head,
            ..
        }))
    ));
}
