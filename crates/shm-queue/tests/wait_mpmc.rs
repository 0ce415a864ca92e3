//! Blocking waits with the MPMC ring across `fork()`: sleeping consumers use no CPU and
//! every push wakes one of them promptly, closing wakes them all, deadlines return.
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{check_idle_cpu, exit_code, in_child, mono_ns, stream_in_batches};
use shm_queue::mpmc;
use shm_queue::wait::WaitStrategy;
use shm_queue::Error;
use shm_region::Region;

fn ring_of(capacity: usize) -> mpmc::Ring<u64> {
    let region =
        Arc::new(Region::anonymous(mpmc::Ring::<u64>::required_bytes(capacity).unwrap()).unwrap());
    mpmc::Ring::<u64>::create(region, capacity).unwrap()
}

fn ring() -> mpmc::Ring<u64> {
    ring_of(64)
}

#[test]
fn sleeping_consumers_use_no_cpu_and_each_push_wakes_one_promptly() {
    let ring = ring();
    let mut rx = ring.consumer().unwrap();
    rx.set_wait_strategy(WaitStrategy::Blocking {
        spins: 0,
        yields: 0,
    });
    let lat = Arc::new(Region::anonymous(4096).unwrap());
    const PER_CHILD: usize = 10;
    let children: Vec<_> = (0..2)
        .map(|c| {
            let mut rx = rx.clone();
            let lat = lat.clone();
            in_child(move || {
                for i in 0..PER_CHILD {
                    let Ok(sent) = rx.pop_blocking(Some(Instant::now() + Duration::from_secs(20)))
                    else {
                        return 1;
                    };
                    let Ok(slot) = lat.atomic_u64(8 * (c * PER_CHILD + i)) else {
                        return 2;
                    };
                    slot.store(
                        mono_ns().saturating_sub(sent),
                        std::sync::atomic::Ordering::Release,
                    );
                }
                0
            })
        })
        .collect();
    check_idle_cpu(
        &children,
        Duration::from_millis(300),
        "two blocked consumers",
        || {},
    );
    let mut tx = ring.producer().unwrap();
    for _ in 0..2 * PER_CHILD {
        std::thread::sleep(Duration::from_millis(3));
        tx.push_blocking(mono_ns(), Some(Instant::now() + Duration::from_secs(5)))
            .unwrap();
    }
    for c in children {
        assert_eq!(exit_code(c, Duration::from_secs(20)), 0);
    }
    let mut v: Vec<u64> = (0..2 * PER_CHILD)
        .map(|i| {
            lat.atomic_u64(8 * i)
                .unwrap()
                .load(std::sync::atomic::Ordering::Acquire)
        })
        .collect();
    v.sort_unstable();
    assert!(
        v[v.len() / 2] < 5_000_000,
        "median wake-up {} ns: wake-ups are being lost",
        v[v.len() / 2]
    );
}

#[test]
fn close_wakes_every_sleeper_and_deadlines_return() {
    let ring = ring();
    let mut rx = ring.consumer().unwrap();
    rx.set_wait_strategy(WaitStrategy::blocking());
    let soon = Instant::now() + Duration::from_millis(100);
    assert!(matches!(
        rx.pop_blocking(Some(soon)),
        Err(Error::Timeout { .. })
    ));
    assert!(Instant::now().saturating_duration_since(soon) < Duration::from_millis(100));
    let children: Vec<_> = (0..2)
        .map(|_| {
            let mut rx = rx.clone();
            in_child(move || match rx.pop_blocking(None) {
                Err(Error::Closed { .. }) => 0,
                _ => 1,
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    assert!(ring.producer().unwrap().close());
    for c in children {
        assert_eq!(exit_code(c, Duration::from_secs(10)), 0);
    }
    // A producer blocked on a full ring sees the close too.
    let ring2 = ring_full();
    let mut tx = ring2.producer().unwrap();
    tx.set_wait_strategy(WaitStrategy::blocking());
    let rx2 = ring2.consumer().unwrap();
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        rx2.close();
        rx2
    });
    assert!(matches!(
        tx.push_blocking(1, None),
        Err(Error::Closed { .. })
    ));
    closer.join().unwrap();
}

fn ring_full() -> mpmc::Ring<u64> {
    let r = ring();
    let mut tx = r.producer().unwrap();
    while tx.try_push(0).is_ok() {}
    r
}

#[test]
fn batches_wait_for_room_and_data_across_processes() {
    let ring = ring_of(8);
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    tx.set_wait_strategy(WaitStrategy::blocking());
    rx.set_wait_strategy(WaitStrategy::blocking());
    let push = move |part: &[u64], deadline| tx.push_slice_blocking(part, deadline).is_ok();
    let pop = |buf: &mut [u64], deadline| rx.pop_partial_slice_blocking(buf, deadline).unwrap();
    stream_in_batches(5_000, (50, 6), push, pop);
}

#[test]
fn mpmc_readiness_descriptor_is_signalled_once_per_arming() {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use shm_queue::wait::{clear_readiness, readiness_fd};
    use std::os::fd::AsFd;
    let ring = ring();
    let mut rx = ring.consumer().unwrap();
    let mut tx = ring.producer().unwrap();
    let fd = readiness_fd().unwrap();
    tx.set_readiness_fd(Some(fd.try_clone().unwrap()));
    assert!(!rx.arm_readiness());
    let child = in_child(move || {
        std::thread::sleep(Duration::from_millis(30));
        i32::from(tx.push_partial_slice(&[1, 2]).is_err() || tx.try_push(3).is_err())
    });
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    assert_eq!(poll(&mut fds, PollTimeout::from(5000u16)).unwrap(), 1);
    assert_eq!(exit_code(child, Duration::from_secs(10)), 0);
    assert_eq!(clear_readiness(fd.as_fd()), 1);
    let mut buf = [0u64; 4];
    assert_eq!(rx.pop_partial_slice(&mut buf).unwrap(), 3);
    assert!(!rx.arm_readiness());
}
