//! A sleeper whose process cannot issue the heavy half of the asymmetric fence (no
//! `membarrier`, a seccomp filter) says so in the header, so publishers keep their real
//! fence for it; it still receives everything, with no wake-up lost.
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{exit_code, in_child};
use shm_queue::spsc::Ring;
use shm_queue::wait::WaitStrategy;
use shm_region::Region;

/// `consumer_weak` in the header's control line (`docs/layout.md`).
const CONSUMER_WEAK: usize = 128 + 48;

fn word(region: &Region, off: usize) -> u32 {
    let mut b = [0u8; 4];
    region.read_at(off, &mut b).unwrap();
    u32::from_le_bytes(b)
}

#[test]
fn a_sleeper_without_the_heavy_barrier_is_counted_and_still_woken() {
    let region = Arc::new(Region::anonymous(Ring::<u64>::required_bytes(64).unwrap()).unwrap());
    let ring = Ring::<u64>::create(region.clone(), 64).unwrap();
    let r = ring.clone();
    const N: u64 = 300;
    let pid = in_child(move || {
        shm_queue::wait::force_no_heavy_barrier();
        let mut rx = r.consumer().unwrap();
        rx.set_wait_strategy(WaitStrategy::blocking());
        let deadline = Some(Instant::now() + Duration::from_secs(30));
        for i in 0..N {
            match rx.pop_blocking(deadline) {
                Ok(v) if v == i => {}
                _ => return 1,
            }
        }
        // Leaving the blocking strategy takes the weak count back.
        rx.set_wait_strategy(WaitStrategy::BusySpin);
        0
    });
    let t = Instant::now();
    while word(&region, CONSUMER_WEAK) != 1 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the weak sleeper never counted itself"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // One element at a time, with pauses long enough for the consumer to fall asleep, so
    // each publish races a sleep.
    let mut tx = ring.producer().unwrap();
    for i in 0..N {
        tx.push_blocking(i, None).unwrap();
        std::thread::sleep(Duration::from_micros(200));
    }
    assert_eq!(exit_code(pid, Duration::from_secs(30)), 0);
    assert_eq!(word(&region, CONSUMER_WEAK), 0);
}
