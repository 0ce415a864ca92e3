//! Blocking waits with the SPSC ring, across `fork()`: a sleeping consumer uses no CPU and
//! wakes on an element, deadlines return `Timeout`, closing wakes a sleeper after it has
//! drained, and batch pushes and pops wait for room and data.
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{check_idle_cpu, exit_code, in_child, mono_ns, stream_in_batches};
use shm_queue::spsc::Ring;
use shm_queue::wait::WaitStrategy;
use shm_queue::Error;
use shm_region::Region;

fn ring(capacity: usize) -> Ring<u64> {
    let region =
        Arc::new(Region::anonymous(Ring::<u64>::required_bytes(capacity).unwrap()).unwrap());
    Ring::<u64>::create(region, capacity).unwrap()
}

#[test]
fn a_sleeping_consumer_uses_no_cpu_and_wakes_on_an_element() {
    let ring = ring(64);
    let (mut tx, mut rx) = ring.split().unwrap();
    rx.set_wait_strategy(WaitStrategy::blocking());
    let child = in_child(move || {
        let deadline = Some(Instant::now() + Duration::from_secs(20));
        match rx.pop_blocking(deadline) {
            Ok(99) => 0,
            _ => 1,
        }
    });
    let idle = Duration::from_millis(500);
    check_idle_cpu(&[child], idle, "the blocked consumer", || {
        tx.try_push(99).unwrap();
        assert_eq!(exit_code(child, Duration::from_secs(10)), 0);
    });
}

#[test]
fn deadlines_and_close() {
    let ring = ring(64);
    let (mut tx, mut rx) = ring.split().unwrap();
    for strategy in [
        WaitStrategy::BusySpin,
        WaitStrategy::spin_then_yield(),
        WaitStrategy::blocking(),
    ] {
        rx.set_wait_strategy(strategy);
        let deadline = Instant::now() + Duration::from_millis(100);
        assert!(matches!(
            rx.pop_blocking(Some(deadline)),
            Err(Error::Timeout { .. })
        ));
        let late = Instant::now().saturating_duration_since(deadline);
        assert!(
            late < Duration::from_millis(100),
            "{strategy:?}: {late:?} late"
        );
    }
    tx.push_partial_slice(&[1, 2, 3]).unwrap();
    assert!(tx.close());
    let mut buf = [0u64; 8];
    assert_eq!(rx.pop_partial_slice_blocking(&mut buf, None).unwrap(), 3);
    assert!(matches!(rx.pop_blocking(None), Err(Error::Closed { .. })));
    assert!(matches!(
        rx.pop_partial_slice_blocking(&mut buf, None),
        Err(Error::Closed { .. })
    ));
    assert!(rx.is_closed());
}

#[test]
fn closing_wakes_a_sleeping_consumer_in_another_process() {
    let ring = ring(64);
    let (tx, mut rx) = ring.split().unwrap();
    rx.set_wait_strategy(WaitStrategy::Blocking {
        spins: 0,
        yields: 0,
    });
    let child = in_child(move || match rx.pop_blocking(None) {
        Err(Error::Closed { .. }) => 0,
        _ => 1,
    });
    std::thread::sleep(Duration::from_millis(100));
    tx.close();
    assert_eq!(exit_code(child, Duration::from_secs(10)), 0);
}

#[test]
fn batches_wait_for_room_and_data() {
    let ring = ring(14);
    let (mut tx, mut rx) = ring.split().unwrap();
    tx.set_wait_strategy(WaitStrategy::blocking());
    rx.set_wait_strategy(WaitStrategy::blocking());
    let push = move |part: &[u64], deadline| tx.push_slice_blocking(part, deadline).is_ok();
    let pop = |buf: &mut [u64], deadline| rx.pop_partial_slice_blocking(buf, deadline).unwrap();
    stream_in_batches(10_000, (100, 9), push, pop);
}

#[test]
fn a_producer_blocked_on_a_full_ring_times_out_or_sees_close() {
    let ring = ring(7);
    let (mut tx, rx) = ring.split().unwrap();
    while tx.try_push(0).is_ok() {}
    tx.set_wait_strategy(WaitStrategy::blocking());
    let soon = Some(Instant::now() + Duration::from_millis(50));
    assert!(matches!(
        tx.push_blocking(1, soon),
        Err(Error::Timeout { .. })
    ));
    match tx.push_slice_blocking(&[1, 2], soon) {
        Err((0, Error::Timeout { .. })) => {}
        other => panic!("{other:?}"),
    }
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        rx.close();
        rx
    });
    assert!(matches!(
        tx.push_blocking(1, None),
        Err(Error::Closed { .. })
    ));
    closer.join().unwrap();
}

/// No lost wake-ups: a consumer that goes straight to sleep is woken by each push, not by
/// the end of its 20 ms sleep slice. Wake-ups take microseconds; the bound is far above
/// that (scheduling noise on a loaded machine) and far below a missed wake-up.
#[test]
fn every_push_wakes_the_sleeping_consumer() {
    let ring = ring(64);
    let (mut tx, mut rx) = ring.split().unwrap();
    rx.set_wait_strategy(WaitStrategy::Blocking {
        spins: 0,
        yields: 0,
    });
    let region = Arc::new(Region::anonymous(4096).unwrap());
    let woke = region.clone();
    const ROUNDS: usize = 20;
    let child = in_child(move || {
        for i in 0..ROUNDS {
            let Ok(sent) = rx.pop_blocking(Some(Instant::now() + Duration::from_secs(10))) else {
                return 1;
            };
            let Ok(slot) = woke.atomic_u64(8 * i) else {
                return 2;
            };
            slot.store(
                mono_ns().saturating_sub(sent),
                std::sync::atomic::Ordering::Release,
            );
        }
        0
    });
    for _ in 0..ROUNDS {
        std::thread::sleep(Duration::from_millis(5)); // the child is asleep again
        tx.try_push(mono_ns()).unwrap();
    }
    assert_eq!(exit_code(child, Duration::from_secs(20)), 0);
    let mut lat: Vec<u64> = (0..ROUNDS)
        .map(|i| {
            region
                .atomic_u64(8 * i)
                .unwrap()
                .load(std::sync::atomic::Ordering::Acquire)
        })
        .collect();
    lat.sort_unstable();
    let median = lat[ROUNDS / 2];
    assert!(
        median < 5_000_000,
        "median wake-up took {median} ns: wake-ups are being lost"
    );
}
