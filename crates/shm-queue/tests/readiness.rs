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
