//! A hostile peer against the MPMC ring: random bytes scribbled over the header, the
//! counters, the owner table and the slot sequences of an attached ring, then every method
//! called, recovery included (with a liveness check that calls anyone dead at random). Each
//! must return an error or data, never panic (overflow checks are on in debug builds), hang,
//! or touch memory outside the region (a `PROT_NONE` guard page follows it where the kernel
//! allows).
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Rng;
use shm_queue::header::MAX_POSITION;
use shm_queue::mpmc::{self, Consumer, Producer, SlotLayout};
use shm_region::Region;

/// A plausible poison mark on a slot sequence near the real position.
const POISON: common::Forgery = |rng, near, _| (1 << 63) | (near + rng.below(4)).saturating_sub(2);
/// A position next to the largest one a ring accepts.
const NEAR_THE_BOUND: common::Forgery = |rng, _, _| MAX_POSITION + rng.below(3) - 1;

struct Side {
    txs: Vec<Producer<u64>>,
    rxs: Vec<Consumer<u64>>,
}

fn exercise(
    ring: &mpmc::Ring<u64>,
    side: &mut Side,
    rng: &mut Rng,
    dead: &Arc<AtomicU64>,
) -> usize {
    let mut ok = 0;
    let mut buf = [0u64; 6];
    dead.store(rng.next(), Ordering::Relaxed);
    for tx in &mut side.txs {
        ok += usize::from(tx.try_push(rng.next()).is_ok());
        let n = rng.below(6) as usize;
        ok += usize::from(tx.push_partial_slice(&buf[..n]).is_ok());
        let _ = (tx.len(), tx.is_empty(), tx.capacity());
    }
    for rx in &mut side.rxs {
        ok += usize::from(rx.try_pop().is_ok());
        let n = rng.below(6) as usize;
        ok += usize::from(rx.pop_partial_slice(&mut buf[..n]).is_ok());
        let _ = (rx.len(), rx.is_empty(), rx.capacity());
    }
    let _ = (
        ring.len(),
        ring.stats(),
        ring.capacity(),
        ring.owner_entries(),
    );
    if rng.below(16) == 0 {
        let d = dead.clone();
        let _ = ring.reclaim_dead_owners(&move |t: u64| t & 1 == d.load(Ordering::Relaxed) & 1);
    }
    if rng.below(8) == 0 {
        side.txs.clear();
        side.rxs.clear();
        let r = mpmc::Ring::<u64>::attach(ring.region().clone()).unwrap_or_else(|_| ring.clone());
        let live = |d: Arc<AtomicU64>| move |t: u64| t & 3 == d.load(Ordering::Relaxed) & 3;
        if let Ok(tx) = r.producer() {
            side.txs
                .push(tx.clone().with_recovery(live(dead.clone()), Duration::ZERO));
            side.txs.push(tx);
        }
        if let Ok(rx) = r.consumer() {
            side.rxs
                .push(rx.clone().with_recovery(live(dead.clone()), Duration::ZERO));
            side.rxs.push(rx);
        }
    }
    ok
}

/// Scribbles over a fresh ring in `region` for `rounds` rounds, calling every method after
/// each; returns how many calls succeeded.
fn scribble(region: Arc<Region>, opts: mpmc::Options, seed: u64, rounds: usize) -> usize {
    let ring = mpmc::Ring::<u64>::create_with(region.clone(), opts).unwrap();
    let cap = ring.capacity() as u64;
    let owners = ring.owner_entries();
    let area = mpmc::Ring::<u64>::required_bytes_with(opts).unwrap();
    let slots = 640 + owners * 128;
    let stride = (area - slots) / cap as usize;
    let dead = Arc::new(AtomicU64::new(0));
    let live = |d: Arc<AtomicU64>| move |t: u64| t & 3 == d.load(Ordering::Relaxed) & 3;
    let attached = mpmc::Ring::<u64>::attach(region.clone()).unwrap();
    let mut side = Side {
        txs: vec![
            ring.producer().unwrap(),
            attached
                .producer()
                .unwrap()
                .with_recovery(live(dead.clone()), Duration::ZERO),
        ],
        rxs: vec![
            attached.consumer().unwrap(),
            ring.consumer()
                .unwrap()
                .with_recovery(live(dead.clone()), Duration::ZERO),
        ],
    };
    let mut rng = Rng(seed);
    let mut ok = 0;
    for _ in 0..rounds {
        let started = Instant::now();
        for _ in 0..=rng.below(3) {
            let near = ring.len() as u64 + rng.below(4 * cap);
            let off = match rng.below(6) {
                0 => rng.below(area as u64) as usize,      // any byte
                1 => (rng.below(512) & !7) as usize,       // a header word
                2 => 256 + 8 * rng.below(2) as usize * 16, // tail or head
                3 => 512 + (rng.below(3) * 8) as usize,    // a counter
                4 => 640 + (rng.below(owners as u64 * 16) * 8) as usize, // owner entry words
                _ => slots + rng.below(cap) as usize * stride, // a slot sequence
            };
            if rng.below(5) == 0 {
                region.write_at(off, &[rng.next() as u8]).unwrap();
            } else {
                let value = common::nasty(&mut rng, near, cap, &[POISON, NEAR_THE_BOUND]);
                region
                    .write_at(off.min(area - 8), &value.to_le_bytes())
                    .unwrap();
            }
        }
        ok += exercise(&ring, &mut side, &mut rng, &dead);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "seed {seed}: one round took {:?}",
            started.elapsed()
        );
    }
    ok
}

#[test]
fn scribbled_mpmc_ring_never_panics_hangs_or_escapes() {
    let rounds = common::rounds(2_000);
    for slots in [SlotLayout::Packed, SlotLayout::Line] {
        // 640 + 4 * 128 header, counters and owners, then 32 slots of 16 or 64 bytes: one
        // page.
        common::for_guarded_seeds(1, 1..=8, |region, seed| {
            let opts = mpmc::Options::new(32).owners(4).slot_layout(slots);
            scribble(region, opts, seed, rounds / 2)
        });
        common::for_guarded_seeds(2, 100..104, |region, seed| {
            let opts = mpmc::Options::new(4).owners(16).slot_layout(slots);
            scribble(region, opts, seed, rounds / 4)
        });
    }
}
