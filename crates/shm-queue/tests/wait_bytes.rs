//! Blocking waits across processes with the byte ring: a sleeping consumer uses no CPU and
//! wakes when a message arrives, deadlines return `Timeout` on time, closing wakes sleepers,
//! and a producer blocked on a full ring wakes when the consumer frees space.
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

mod common;

use shm_queue::TryError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{check_idle_cpu, exit_code, in_child};
use nix::unistd::Pid;
use shm_queue::bytes;
use shm_queue::wait::WaitStrategy;
use shm_queue::Error;
use shm_region::Region;

fn ring() -> (bytes::Ring, Arc<Region>) {
    let region = Arc::new(Region::anonymous(bytes::Ring::required_bytes(4096).unwrap()).unwrap());
    (
        bytes::Ring::create(region.clone(), 4096, 512).unwrap(),
        region,
    )
}

/// Runs `f` with the consumer in a forked child (which owns the consumer side from then
/// on); returns the child's pid. The child exits with `f`'s code.
fn child_consumer(ring: &bytes::Ring, f: impl FnOnce(&mut bytes::Consumer) -> i32) -> Pid {
    let mut rx = ring.consumer().unwrap();
    in_child(move || f(&mut rx))
}

#[test]
fn a_sleeping_consumer_uses_no_cpu_and_wakes_on_a_message() {
    let (ring, _region) = ring();
    let mut tx = ring.producer().unwrap();
    let child = child_consumer(&ring, |rx| {
        rx.set_wait_strategy(WaitStrategy::blocking());
        let mut buf = [0u8; 512];
        match rx.pop_blocking(&mut buf, Some(Instant::now() + Duration::from_secs(20))) {
            Ok(5) if &buf[..5] == b"wake!" => 0,
            _ => 1,
        }
    });
    // Let it reach its sleep, then watch its CPU time for 500 ms.
    check_idle_cpu(&[child], Duration::from_millis(500), "the consumer", || {
        tx.try_push(b"wake!").unwrap();
        assert_eq!(exit_code(child, Duration::from_secs(10)), 0);
    });
}

#[test]
fn a_deadline_returns_timeout_on_time() {
    let (ring, _region) = ring();
    let (_tx, mut rx) = ring.split().unwrap();
    for strategy in [
        WaitStrategy::BusySpin,
        WaitStrategy::spin_then_yield(),
        WaitStrategy::blocking(),
    ] {
        rx.set_wait_strategy(strategy);
        let start = Instant::now();
        let deadline = start + Duration::from_millis(200);
        let err = rx
            .pop_blocking(&mut [0u8; 512], Some(deadline))
            .unwrap_err();
        let late = Instant::now().saturating_duration_since(deadline);
        match err {
            Error::Timeout { waited, what } => {
                // Measured from the start of the call, a little after `start`.
                assert!(
                    waited > Duration::from_millis(190),
                    "{strategy:?}: {waited:?}"
                );
                assert_eq!(what, "a message");
            }
            other => panic!("{strategy:?}: expected Timeout, got {other:?}"),
        }
        assert!(Instant::now() >= deadline);
        // The contract is ±50 ms under load; allow twice that on a shared 2-core machine.
        assert!(
            late < Duration::from_millis(100),
            "{strategy:?}: {late:?} late"
        );
    }
}

#[test]
fn closing_wakes_a_sleeper_after_it_drained() {
    let (ring, _region) = ring();
    let tx = ring.producer().unwrap();
    let child = child_consumer(&ring, |rx| {
        let mut buf = [0u8; 512];
        // First the message sent before closing, then Closed.
        match rx.pop_blocking(&mut buf, None) {
            Ok(3) => {}
            _ => return 1,
        }
        match rx.pop_blocking(&mut buf, None) {
            Err(Error::Closed { .. }) => 0,
            _ => 2,
        }
    });
    let mut tx = tx;
    tx.try_push(b"bye").unwrap();
    std::thread::sleep(Duration::from_millis(100)); // the child is asleep by now
    assert!(tx.close());
    assert!(!tx.close(), "closing twice reports the first close only");
    assert!(tx.is_closed());
    assert_eq!(exit_code(child, Duration::from_secs(10)), 0);
}

#[test]
fn a_producer_blocked_on_a_full_ring_wakes_when_space_frees() {
    let (ring, _region) = ring();
    let (mut tx, mut rx) = ring.split().unwrap();
    while tx.try_push(&[1u8; 500]).is_ok() {}
    let t = std::thread::spawn(move || {
        tx.set_wait_strategy(WaitStrategy::Blocking {
            spins: 10,
            yields: 1,
        });
        tx.push_blocking(&[2u8; 500], Some(Instant::now() + Duration::from_secs(10)))
            .map(|()| tx)
    });
    std::thread::sleep(Duration::from_millis(100));
    let mut buf = [0u8; 512];
    let mut n = 0;
    loop {
        match rx.try_pop(&mut buf) {
            Ok(len) => {
                n += 1;
                if buf[..len] == [2u8; 500] {
                    break;
                }
            }
            Err(TryError::Empty { .. }) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("{e}"),
        }
        assert!(n < 100, "the blocked message never arrived");
    }
    t.join().unwrap().unwrap();
}

#[test]
fn a_producer_blocked_on_a_full_ring_sees_the_consumer_close() {
    let (ring, _region) = ring();
    let (mut tx, rx) = ring.split().unwrap();
    while tx.try_push(&[1u8; 500]).is_ok() {}
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        rx.close();
        rx
    });
    let err = tx.push_blocking(&[2u8; 500], None).unwrap_err();
    assert!(matches!(err, Error::Closed { .. }), "{err}");
    closer.join().unwrap();
}
