//! The announce-then-re-check handshake for callers that sleep outside the blocking calls
//! (async runtimes): every interleaving of a publish with the waiter's announce and re-check
//! either lets the re-check find the element or leaves the announced wait signalled, so no
//! wake-up is lost; and `wait_any` returns on a signal, on the bell, and at its deadline.
//! (The handshake itself is `Signal::announce`, the code the loom models of the blocking
//! sleep run.)
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use shm_queue::spsc::Ring;
use shm_queue::wait::{ring_bell, wait_any, WaitStrategy};
use shm_queue::TryError;
use shm_region::Region;

/// Where the publish happens relative to the waiter's steps.
#[derive(Debug, Clone, Copy)]
enum When {
    BeforeAnnounce,
    BetweenAnnounceAndRecheck,
    AfterRecheck,
}

#[test]
fn no_interleaving_of_publish_and_announce_loses_the_wake() {
    for when in [
        When::BeforeAnnounce,
        When::BetweenAnnounceAndRecheck,
        When::AfterRecheck,
    ] {
        for side_is_space in [false, true] {
            let ring = Ring::<u64>::create(Region::anonymous(4096).unwrap(), 7).unwrap();
            let (mut tx, mut rx) = ring.split().unwrap();
            rx.set_wait_strategy(WaitStrategy::blocking());
            tx.set_wait_strategy(WaitStrategy::blocking());
            if side_is_space {
                // The producer waits for room in a full ring; the consumer "publishes" room.
                while tx.try_push(0).is_ok() {}
                if let When::BeforeAnnounce = when {
                    rx.try_pop().unwrap();
                }
                let w = tx.announce_wait();
                if let When::BetweenAnnounceAndRecheck = when {
                    rx.try_pop().unwrap();
                }
                let recheck = tx.try_push(1);
                if let When::AfterRecheck = when {
                    assert!(matches!(recheck, Err(TryError::Full { .. })));
                    assert!(!w.is_signalled(), "nothing happened yet");
                    rx.try_pop().unwrap();
                    assert!(
                        w.is_signalled(),
                        "{when:?}: the freed slot must signal the waiter"
                    );
                } else {
                    assert!(recheck.is_ok(), "{when:?}: the re-check must find the room");
                }
            } else {
                if let When::BeforeAnnounce = when {
                    tx.try_push(5).unwrap();
                }
                let w = rx.announce_wait();
                if let When::BetweenAnnounceAndRecheck = when {
                    tx.try_push(5).unwrap();
                }
                let recheck = rx.try_pop();
                if let When::AfterRecheck = when {
                    assert!(matches!(recheck, Err(TryError::Empty { .. })));
                    assert!(!w.is_signalled());
                    tx.try_push(5).unwrap();
                    assert!(
                        w.is_signalled(),
                        "{when:?}: the publish must signal the waiter"
                    );
                } else {
                    assert_eq!(recheck.unwrap(), 5, "{when:?}: the re-check must find it");
                }
            }
        }
    }
}

#[test]
fn a_handle_that_may_not_sleep_is_not_woken() {
    // Without a sleeping strategy the handle is not counted as a sleeper: the publisher
    // keeps its one-load fast path and does not signal (the reason async ends switch their
    // strategy to `blocking()`).
    let ring = Ring::<u64>::create(Region::anonymous(4096).unwrap(), 7).unwrap();
    let (mut tx, rx) = ring.split().unwrap();
    let w = rx.announce_wait();
    tx.try_push(1).unwrap();
    assert!(!w.is_signalled());
}

#[test]
fn wait_any_returns_on_a_signal_the_bell_or_the_deadline() {
    let ring = Ring::<u64>::create(Region::anonymous(4096).unwrap(), 7).unwrap();
    let (tx, mut rx) = ring.split().unwrap();
    rx.set_wait_strategy(WaitStrategy::blocking());
    let bell = AtomicU32::new(0);

    // The deadline.
    let w = rx.announce_wait();
    let t = Instant::now();
    wait_any(&[&w], &bell, 0, Some(t + Duration::from_millis(30))).unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(25),
        "{:?}",
        t.elapsed()
    );
    assert!(!w.is_signalled());

    // A publish from another thread.
    let pusher = std::thread::spawn(move || {
        let mut tx = tx;
        std::thread::sleep(Duration::from_millis(20));
        tx.try_push(9).unwrap();
        tx
    });
    wait_any(
        &[&w],
        &bell,
        0,
        Some(Instant::now() + Duration::from_secs(10)),
    )
    .unwrap();
    assert!(w.is_signalled());
    let _tx = pusher.join().unwrap();

    // The bell, rung by another thread; and at once when the bell already moved.
    let w2 = rx.announce_wait();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(20));
            ring_bell(&bell);
        });
        let t = Instant::now();
        wait_any(&[&w2], &bell, 0, Some(t + Duration::from_secs(10))).unwrap();
        assert!(t.elapsed() < Duration::from_secs(5));
    });
    let t = Instant::now();
    wait_any(&[&w2], &bell, 0, None).unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "the bell had moved: no sleep"
    );
    assert_eq!(rx.try_pop().unwrap(), 9);
}
