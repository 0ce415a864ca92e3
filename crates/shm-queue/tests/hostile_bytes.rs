//! A hostile peer against the byte ring: random bytes scribbled over the header, the record
//! headers and the payload of an attached ring, then every method called. Each must return
//! an error or data, never panic (overflow checks are on in debug builds), hang, or touch
//! memory outside the region (a `PROT_NONE` guard page follows it where the kernel allows).
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::Rng;
use shm_queue::bytes;
use shm_queue::header::HEADER_SIZE;
use shm_region::Region;

/// A plausible record header: the right tag, any kind and length.
const RECORD_HEADER: common::Forgery =
    |rng, _, cap| (0x5a1e << 48) | (rng.below(4) << 32) | rng.below(2 * cap);

fn exercise(
    ring: &bytes::Ring,
    tx: &mut Option<bytes::Producer>,
    rx: &mut Option<bytes::Consumer>,
    rng: &mut Rng,
) -> usize {
    let mut ok = 0;
    let mut buf = vec![0u8; ring.max_message() + 16];
    if let Some(tx) = tx.as_mut() {
        let n = rng.below(ring.max_message() as u64 + 2) as usize;
        ok += usize::from(tx.try_push(&buf[..n.min(buf.len())]).is_ok());
        if let Ok(mut c) = tx.claim(rng.below(ring.max_message() as u64 + 1) as usize) {
            let _ = c.write_at(rng.below(8) as usize, &[1, 2, 3]);
            if rng.below(2) == 0 {
                c.commit();
            } else {
                let _ = c.commit_len(rng.below(50) as usize);
            }
        }
        let _ = (
            tx.used_bytes(),
            tx.position(),
            tx.capacity(),
            tx.max_message(),
        );
    }
    if let Some(rx) = rx.as_mut() {
        let n = rng.below(buf.len() as u64) as usize;
        ok += usize::from(rx.try_pop(&mut buf[..n]).is_ok());
        if let Ok(g) = rx.read() {
            let _ = g.to_vec();
            let mut two = [0u8; 2];
            let _ = g.read_at(rng.below(g.len() as u64 + 2) as usize, &mut two);
        }
        let mut v = Vec::new();
        let _ = rx.try_pop_vec(&mut v);
        let _ = (rx.has_message(), rx.position(), rx.capacity());
    }
    if rng.below(8) == 0 {
        common::restart_peers!(bytes::Ring, ring, tx, rx);
    }
    ok
}

/// Scribbles over a fresh ring in `region` for `rounds` rounds, calling every method after
/// each; returns how many calls succeeded.
fn scribble(region: Arc<Region>, capacity: usize, max: usize, seed: u64, rounds: usize) -> usize {
    let ring = bytes::Ring::create(region.clone(), capacity, max).unwrap();
    let cap = ring.capacity() as u64;
    let attached = bytes::Ring::attach(region.clone()).unwrap();
    let (mut tx, mut rx) = (
        Some(ring.producer().unwrap()),
        Some(attached.consumer().unwrap()),
    );
    let area = HEADER_SIZE + ring.capacity();
    let mut rng = Rng(seed);
    let mut ok = 0;
    for _ in 0..rounds {
        for _ in 0..=rng.below(3) {
            let near = tx.as_ref().map_or(0, |t| t.position());
            let off = match rng.below(4) {
                0 => rng.below(area as u64) as usize,               // any byte
                1 => (rng.below(HEADER_SIZE as u64) & !7) as usize, // a header word
                _ => HEADER_SIZE + (rng.below(cap) & !7) as usize,  // a record header slot
            };
            if rng.below(5) == 0 {
                region.write_at(off, &[rng.next() as u8]).unwrap();
            } else {
                let value = common::nasty(&mut rng, near, cap, &[RECORD_HEADER]);
                region.write_at(off, &value.to_le_bytes()).unwrap();
            }
        }
        ok += exercise(&ring, &mut tx, &mut rx, &mut rng);
    }
    ok
}

/// The guard page catches any access past the region; accesses past the ring's data area
/// but inside the region are caught by the debug assertions on every data access (this test
/// runs in debug builds under `cargo test`).
#[test]
fn scribbled_byte_ring_never_panics_or_escapes() {
    let rounds = common::rounds(3_000);
    // 512 header bytes and a 2048-byte data area in one page.
    common::for_guarded_seeds(1, 1..=8, |region, seed| {
        scribble(region, 2048, 512, seed, rounds)
    });
    // The largest messages a 4 KiB area allows, so records span most of it.
    common::for_guarded_seeds(2, 100..104, |region, seed| {
        scribble(region, 4096, 2040, seed, rounds / 2)
    });
}
