//! The readiness descriptor across `fork()`: a consumer waits in `poll(2)` instead of a
//! blocking call, and the producer signals the eventfd once per arming.
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

mod common;

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{exit_code, in_child};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use shm_queue::bytes;
use shm_queue::spsc::Ring;
use shm_queue::wait::{clear_readiness, readiness_fd};
use shm_region::Region;

fn readable(fd: std::os::fd::BorrowedFd<'_>, ms: u16) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::from(ms)).unwrap() == 1
}

#[test]
fn spsc_consumer_waits_in_poll_and_is_signalled_once_per_arming() {
    let region = Arc::new(Region::anonymous(Ring::<u64>::required_bytes(64).unwrap()).unwrap());
    let ring = Ring::<u64>::create(region, 64).unwrap();
    let (mut tx, mut rx) = ring.split().unwrap();
    let fd = readiness_fd().unwrap();
    tx.set_readiness_fd(Some(fd.try_clone().unwrap()));
    // Empty: arming says "wait".
    assert!(!rx.arm_readiness().unwrap());
    assert!(!readable(fd.as_fd(), 0));
    let child = in_child(move || {
        std::thread::sleep(Duration::from_millis(50));
        for v in 1..=3 {
            if tx.try_push(v).is_err() {
                return 1;
            }
        }
        0
    });
    let start = Instant::now();
    assert!(
        readable(fd.as_fd(), 5000),
        "the producer never signalled the descriptor"
    );
    assert!(start.elapsed() >= Duration::from_millis(40));
    assert_eq!(exit_code(child, Duration::from_secs(10)), 0);
    // Three pushes after one arming: one signal.
    assert_eq!(clear_readiness(fd.as_fd()), 1);
    let mut got = Vec::new();
    while let Ok(v) = rx.try_pop() {
        got.push(v);
    }
    assert_eq!(got, [1, 2, 3]);
    assert!(!readable(fd.as_fd(), 0));
}

#[test]
fn arming_with_data_present_says_so_and_byte_rings_signal_too() {
    let region = Arc::new(Region::anonymous(bytes::Ring::required_bytes(4096).unwrap()).unwrap());
    let ring = bytes::Ring::create(region, 4096, 256).unwrap();
    let (mut tx, mut rx) = ring.split().unwrap();
    let fd = readiness_fd().unwrap();
    tx.set_readiness_fd(Some(fd.try_clone().unwrap()));
    tx.try_push(b"early").unwrap();
    // Data already there: do not wait.
    assert!(rx.arm_readiness());
    let mut buf = [0u8; 256];
    assert_eq!(rx.try_pop(&mut buf).unwrap(), 5);
    // That arming was consumed by nobody yet: the next commit signals once.
    assert!(!rx.arm_readiness());
    tx.try_push(b"late").unwrap();
    tx.try_push(b"later").unwrap();
    assert!(readable(fd.as_fd(), 1000));
    assert_eq!(clear_readiness(fd.as_fd()), 1);
    assert_eq!(rx.try_pop(&mut buf).unwrap(), 4);
    assert_eq!(rx.try_pop(&mut buf).unwrap(), 5);
    // Not armed: commits do not touch the descriptor.
    tx.try_push(b"quiet").unwrap();
    assert!(!readable(fd.as_fd(), 0));
}

/// Broadcast: each subscriber's descriptor is signalled for its own arming only, once per
/// arming; across `fork()`, a subscriber that waits only in `poll(2)` gets every element.
#[test]
fn broadcast_subscribers_wait_in_poll_on_their_own_descriptors() {
    use shm_queue::broadcast::{Mode, Options, Ring as Bcast, SlowPolicy, Start};
    let opts = Options::new(64)
        .subscribers(4)
        .mode(Mode::Lossless(SlowPolicy::Wait));
    let region = Region::anonymous(Bcast::<u64>::required_bytes_with(&opts).unwrap()).unwrap();
    let ring = Bcast::<u64>::create_with(region, opts).unwrap();
    let mut tx = ring.publisher().unwrap();
    let (mut a, mut b) = (
        ring.subscriber(Start::Newest).unwrap(),
        ring.subscriber(Start::Newest).unwrap(),
    );
    let (fa, fb) = (readiness_fd().unwrap(), readiness_fd().unwrap());
    tx.set_readiness_fd(a.index(), a.token(), Some(fa.try_clone().unwrap()))
        .unwrap();
    tx.set_readiness_fd(b.index(), b.token(), Some(fb.try_clone().unwrap()))
        .unwrap();
    assert!(tx.set_readiness_fd(4, 1, None).is_err());

    // One process: `a` armed, `b` not.
    assert!(!a.arm_readiness());
    for v in 0..3 {
        tx.try_push(v).unwrap();
    }
    assert!(readable(fa.as_fd(), 0));
    assert_eq!(clear_readiness(fa.as_fd()), 1, "one signal per arming");
    assert!(!readable(fb.as_fd(), 0), "b never armed");
    assert_eq!(tx.readiness_signals(), 1);
    for v in 0..3 {
        assert_eq!(a.try_recv().unwrap(), v);
        assert_eq!(b.try_recv().unwrap(), v);
    }
    // Armed with data already there: says so, and the caller drains.
    tx.try_push(3).unwrap();
    assert!(b.arm_readiness());
    drop(b);
    let _ = clear_readiness(fb.as_fd());

    // Across fork: the child waits only in poll, the parent pauses now and then so the
    // child runs dry and arms.
    const N: u64 = 3000;
    let child = in_child(move || {
        let mut next = 3;
        while next < N {
            if !a.arm_readiness() {
                if !readable(fa.as_fd(), 5000) {
                    return 3;
                }
                let _ = clear_readiness(fa.as_fd());
            }
            loop {
                match a.try_recv() {
                    Ok(v) if v == next => next += 1,
                    Ok(_) => return 1,
                    Err(shm_queue::TryError::Empty { .. }) => break,
                    Err(_) => return 2,
                }
            }
        }
        0
    });
    for v in 4..N {
        tx.push_blocking(v, Some(Instant::now() + Duration::from_secs(30)))
            .unwrap();
        if v % 300 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    // The child waited only in poll: had any arming gone unsignalled it would have timed
    // out (exit 3). How many armings there were depends on the scheduler.
    assert_eq!(exit_code(child, Duration::from_secs(30)), 0);
    assert!(tx.readiness_signals() >= 1);
}
