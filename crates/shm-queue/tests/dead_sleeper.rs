//! A consumer killed while asleep (registered as a sleeper, inside its futex wait) leaves
//! its counts in the header; once its claim is force-released they are gone, so a new,
//! busy-polling consumer's producer goes back to the path without a system call. (CI's
//! futex check counts the system calls across real processes; this test reads the words.)
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::in_child;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use shm_queue::wait::WaitStrategy;
use shm_queue::{bytes, mpmc, spsc};
use shm_region::Region;

/// Byte offsets in the header's control line (`docs/layout.md`).
const CONSUMER_WAITERS: usize = 128 + 24;
const CONSUMER_SLEEPERS: usize = 128 + 36;
const PRODUCER_WAITERS: usize = 128 + 28;
const PRODUCER_SLEEPERS: usize = 128 + 40;

fn word(region: &Region, off: usize) -> u32 {
    let mut b = [0u8; 4];
    region.read_at(off, &mut b).unwrap();
    u32::from_le_bytes(b)
}

/// Waits until the words at `offs` read 1 (the child registered and is asleep).
fn until_asleep(region: &Region, offs: [usize; 2]) {
    let t = Instant::now();
    while offs.iter().any(|&o| word(region, o) != 1) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the child never slept"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // Let it enter the futex wait proper.
    std::thread::sleep(Duration::from_millis(30));
}

/// A fresh anonymous region of `len` bytes.
fn anon(len: usize) -> Arc<Region> {
    Arc::new(Region::anonymous(len).unwrap())
}

fn kill_child(pid: nix::unistd::Pid) {
    kill(pid, Signal::SIGKILL).unwrap();
    waitpid(pid, None).unwrap();
}

/// A child that takes a consumer with `take`, sleeps in `pop_blocking` until it is killed,
/// and is killed once it is asleep (registered, in its futex wait).
fn consumer_killed_asleep<C>(
    region: &Region,
    take: impl FnOnce() -> C,
    sleep: impl FnOnce(C),
) -> nix::unistd::Pid {
    let pid = in_child(move || {
        sleep(take());
        1
    });
    until_asleep(region, [CONSUMER_WAITERS, CONSUMER_SLEEPERS]);
    kill_child(pid);
    assert_eq!(
        word(region, CONSUMER_SLEEPERS),
        1,
        "the dead consumer's count stays"
    );
    pid
}

#[test]
fn a_consumer_killed_asleep_leaves_nothing_after_its_claim_is_released() {
    let region = anon(spsc::Ring::<u64>::required_bytes(64).unwrap());
    let ring = spsc::Ring::<u64>::create(region.clone(), 64).unwrap();
    let r = ring.clone();
    consumer_killed_asleep(
        &region,
        move || r.consumer().unwrap(),
        |mut rx| {
            rx.set_wait_strategy(WaitStrategy::blocking());
            let _ = rx.pop_blocking(None);
        },
    );
    let holder = ring.consumer_holder().unwrap();
    // SAFETY: its holder was killed above.
    assert!(unsafe { ring.force_release_consumer(holder) });
    assert_eq!(word(&region, CONSUMER_WAITERS), 0);
    assert_eq!(word(&region, CONSUMER_SLEEPERS), 0);
    // The replacement works and its producer's publishes see nobody to wake.
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    tx.try_push(7).unwrap();
    assert_eq!(rx.try_pop().unwrap(), 7);
}

#[test]
fn a_producer_killed_asleep_leaves_nothing_after_its_claim_is_released() {
    let cap = 4096;
    let region = anon(bytes::Ring::required_bytes(cap).unwrap());
    let ring = bytes::Ring::create(region.clone(), cap, 64).unwrap();
    let r = ring.clone();
    let pid = in_child(move || {
        let mut tx = r.producer().unwrap();
        tx.set_wait_strategy(WaitStrategy::blocking());
        // Fill the ring, then sleep waiting for space that never comes.
        loop {
            if tx.push_blocking(&[1; 64], None).is_err() {
                return 1;
            }
        }
    });
    until_asleep(&region, [PRODUCER_WAITERS, PRODUCER_SLEEPERS]);
    kill_child(pid);
    let holder = ring.producer_holder().unwrap();
    // SAFETY: its holder was killed above.
    assert!(unsafe { ring.force_release_producer(holder) });
    assert_eq!(word(&region, PRODUCER_WAITERS), 0);
    assert_eq!(word(&region, PRODUCER_SLEEPERS), 0);
}

/// MPMC keeps its counts per owner entry: reclaiming a dead consumer's entry takes its
/// sleeper registration and its futex waiter back.
#[test]
fn an_mpmc_consumer_killed_asleep_is_forgotten_when_its_entry_is_reclaimed() {
    let region = anon(mpmc::Ring::<u64>::required_bytes(16).unwrap());
    let ring = mpmc::Ring::<u64>::create(region.clone(), 16).unwrap();
    let r = ring.clone();
    let pid = consumer_killed_asleep(
        &region,
        move || r.consumer().unwrap(),
        |mut rx| {
            rx.set_wait_strategy(WaitStrategy::blocking());
            let _ = rx.pop_blocking(None);
        },
    );
    let dead = pid.as_raw() as u64;
    assert_eq!(ring.reclaim_dead_owners(&move |t: u64| t >> 32 == dead), 1);
    assert_eq!(word(&region, CONSUMER_SLEEPERS), 0);
    assert_eq!(word(&region, CONSUMER_WAITERS), 0);
    // A live blocking consumer that drops normally takes its own count back too.
    let mut rx = ring.consumer().unwrap();
    rx.set_wait_strategy(WaitStrategy::blocking());
    assert_eq!(word(&region, CONSUMER_SLEEPERS), 1);
    drop(rx);
    assert_eq!(word(&region, CONSUMER_SLEEPERS), 0);
}
