//! A quick measurement of the MPMC ring, each figure beside its baseline from the same run:
//! throughput of `u64`s with 1 producer + 1 consumer and 2 + 2, the ring across forked
//! processes next to crossbeam's `ArrayQueue` between threads (same capacity, same counts);
//! then the recovery time after a producer is killed holding a claim.
//!
//! `cargo run --release -p shm-queue --example mpmc_quick`
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Pid};
use shm_queue::mpmc;
use shm_region::Region;

const ITEMS: u64 = 4_000_000;
const CAP: usize = 4096;

fn child(f: impl FnOnce()) -> Pid {
    // SAFETY: single-threaded here; the child only runs `f` and `_exit`s.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            f();
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => child,
    }
}

/// Sends `0..n` through `push` (which says whether it took the item), spinning while full.
fn send_all(n: u64, mut push: impl FnMut(u64) -> bool) {
    for v in 0..n {
        while !push(v) {
            std::hint::spin_loop();
        }
    }
}

/// Takes items through `pop` (which says whether it got one), spinning while empty, until
/// the consumers together (counted in `got`) have taken `total`.
fn take_until(got: &AtomicU64, total: u64, mut pop: impl FnMut() -> bool) {
    while got.load(Ordering::Relaxed) < total {
        if pop() {
            got.fetch_add(1, Ordering::Relaxed);
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Items per second through the ring with `p` producer and `c` consumer processes.
fn ring(p: u64, c: u64) -> f64 {
    let region = Region::anonymous(mpmc::Ring::<u64>::required_bytes(CAP).unwrap()).unwrap();
    let ring = mpmc::Ring::<u64>::create(region, CAP).unwrap();
    let done = Arc::new(Region::anonymous(4096).unwrap());
    let start = Instant::now();
    let mut kids = Vec::new();
    for _ in 0..p {
        let ring = ring.clone();
        kids.push(child(move || {
            let mut tx = ring.producer().unwrap();
            send_all(ITEMS / p, |v| tx.try_push(v).is_ok());
        }));
    }
    for _ in 0..c {
        let (ring, done) = (ring.clone(), done.clone());
        kids.push(child(move || {
            let mut rx = ring.consumer().unwrap();
            let got = done.atomic_u64(0).unwrap();
            take_until(got, ITEMS / p * p, || rx.try_pop().is_ok());
        }));
    }
    for k in kids {
        waitpid(k, None).unwrap();
    }
    ITEMS as f64 / start.elapsed().as_secs_f64()
}

/// The same with crossbeam's `ArrayQueue` and threads.
fn crossbeam(p: u64, c: u64) -> f64 {
    let q = Arc::new(ArrayQueue::<u64>::new(CAP));
    let got = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut ts = Vec::new();
    for _ in 0..p {
        let q = q.clone();
        ts.push(std::thread::spawn(move || {
            send_all(ITEMS / p, |v| q.push(v).is_ok())
        }));
    }
    for _ in 0..c {
        let (q, got) = (q.clone(), got.clone());
        ts.push(std::thread::spawn(move || {
            take_until(&got, ITEMS / p * p, || q.pop().is_some())
        }));
    }
    for t in ts {
        t.join().unwrap();
    }
    ITEMS as f64 / start.elapsed().as_secs_f64()
}

/// Time from a producer's death (known to the liveness check) to the consumer getting the
/// element after its held claim, with the given patience.
fn recovery(patience: Duration) -> Duration {
    let region = Region::anonymous(mpmc::Ring::<u64>::required_bytes(64).unwrap()).unwrap();
    let ring = mpmc::Ring::<u64>::create(region, 64).unwrap();
    let board = Arc::new(Region::anonymous(4096).unwrap());
    let victim = {
        let (ring, board) = (ring.clone(), board.clone());
        child(move || {
            // Keep the handle: its owner entry is what recovery asks about.
            let mut tx = ring.producer().unwrap();
            tx.claim_and_hold(1).unwrap();
            board.atomic_u64(0).unwrap().store(1, Ordering::Release);
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    while board.atomic_u64(0).unwrap().load(Ordering::Acquire) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    ring.producer().unwrap().try_push(2).unwrap();
    let dead = Arc::new(AtomicU64::new(0));
    let d = dead.clone();
    let mut rx = ring
        .consumer()
        .unwrap()
        .with_recovery(move |t: u64| t >> 32 == d.load(Ordering::Relaxed), patience);
    assert!(rx.try_pop().is_err()); // stuck behind the claim; starts the patience clock
    kill(victim, Signal::SIGKILL).unwrap();
    waitpid(victim, None).unwrap();
    let t = Instant::now();
    dead.store(victim.as_raw() as u64, Ordering::Relaxed);
    loop {
        match rx.try_pop() {
            Ok(2) => return t.elapsed(),
            Err(shm_queue::TryError::Empty { .. }) => std::hint::spin_loop(),
            other => panic!("unexpected {other:?} (stats {:?})", ring.stats()),
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no recovery: {:?}",
            ring.stats()
        );
    }
}

fn main() {
    println!("{ITEMS} u64s, capacity {CAP}, 2 vCPUs (2P2C oversubscribes them: 4 spinners)");
    let only_recovery = std::env::args().any(|a| a == "--recovery");
    for (p, c) in [(1, 1), (2, 2)].into_iter().filter(|_| !only_recovery) {
        let r = ring(p, c);
        let x = crossbeam(p, c);
        println!(
            "{p}P{c}C  shm-queue mpmc (processes) {:>6.1} M/s   crossbeam ArrayQueue (threads) {:>6.1} M/s   ratio {:.2}",
            r / 1e6,
            x / 1e6,
            r / x
        );
    }
    for ms in [0, 10, 50] {
        let mut v: Vec<Duration> = (0..5)
            .map(|_| recovery(Duration::from_millis(ms)))
            .collect();
        v.sort();
        println!(
            "recovery after a killed producer, patience {ms:>2} ms: median {:?}, max {:?} (5 runs)",
            v[2], v[4]
        );
    }
}
