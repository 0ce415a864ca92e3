//! A quick cross-process harness for the SPSC ring, each figure beside its baseline from the
//! same run: round trip (p50, p99, p99.9, max) against two processes bouncing one shared
//! atomic (the floor) and against rtrb between two threads; throughput of `u64`s one at a
//! time and in chunks of 256 against rtrb between two threads. Runs in a few seconds; the
//! benchmark crate builds the full suite.
//!
//! `cargo run --release -p shm-queue --example spsc_quick`
#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering;
use std::time::Instant;

use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult};
use shm_queue::spsc::Ring;
use shm_region::Region;

const RT_SAMPLES: usize = 200_000;
const ITEMS: u64 = 20_000_000;

/// Runs `child` in a forked process (which then `_exit`s) and `parent` here.
fn with_child<R>(child: impl FnOnce(), parent: impl FnOnce() -> R) -> R {
    // SAFETY: this example is single-threaded; the child only runs `child` and `_exit`s.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            child();
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            let r = parent();
            waitpid(child, None).unwrap();
            r
        }
    }
}

fn report(name: &str, mut ns: Vec<u64>) {
    ns.sort_unstable();
    let q = |f: f64| ns[((ns.len() as f64 * f) as usize).min(ns.len() - 1)];
    println!(
        "{name:<34} p50 {:>6} ns  p99 {:>6} ns  p99.9 {:>7} ns  max {:>8} ns",
        q(0.5),
        q(0.99),
        q(0.999),
        ns[ns.len() - 1]
    );
}

fn floor_round_trip() -> Vec<u64> {
    let region = Region::anonymous(4096).unwrap();
    let (ping, pong) = (
        region.atomic_u64(0).unwrap(),
        region.atomic_u64(128).unwrap(),
    );
    let n = RT_SAMPLES as u64 + 1000;
    with_child(
        || {
            for i in 1..=n {
                while ping.load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
                pong.store(i, Ordering::Release);
            }
        },
        || {
            let mut out = Vec::with_capacity(RT_SAMPLES);
            for i in 1..=n {
                let t = Instant::now();
                ping.store(i, Ordering::Release);
                while pong.load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
                if i > 1000 {
                    out.push(t.elapsed().as_nanos() as u64);
                }
            }
            out
        },
    )
}

fn ring_round_trip() -> Vec<u64> {
    let bytes = Ring::<u64>::required_bytes(1024).unwrap();
    let (a, b) = (
        Region::anonymous(bytes).unwrap(),
        Region::anonymous(bytes).unwrap(),
    );
    let (ra, rb) = (
        Ring::<u64>::create(a, 1024).unwrap(),
        Ring::<u64>::create(b, 1024).unwrap(),
    );
    let n = RT_SAMPLES as u64 + 1000;
    let (mut ping_tx, mut ping_rx) = ra.split().unwrap();
    let (mut pong_tx, mut pong_rx) = rb.split().unwrap();
    with_child(
        || {
            for _ in 0..n {
                let v = loop {
                    if let Ok(v) = ping_rx.try_pop() {
                        break v;
                    }
                    std::hint::spin_loop();
                };
                while pong_tx.try_push(v).is_err() {}
            }
        },
        || {
            let mut out = Vec::with_capacity(RT_SAMPLES);
            for i in 0..n {
                let t = Instant::now();
                ping_tx.try_push(i).unwrap();
                loop {
                    if pong_rx.try_pop().is_ok() {
                        break;
                    }
                    std::hint::spin_loop();
                }
                if i >= 1000 {
                    out.push(t.elapsed().as_nanos() as u64);
                }
            }
            out
        },
    )
}

fn rtrb_round_trip() -> Vec<u64> {
    let (mut ping_tx, mut ping_rx) = rtrb::RingBuffer::<u64>::new(1024);
    let (mut pong_tx, mut pong_rx) = rtrb::RingBuffer::<u64>::new(1024);
    let n = RT_SAMPLES as u64 + 1000;
    let t = std::thread::spawn(move || {
        for _ in 0..n {
            let v = loop {
                if let Ok(v) = ping_rx.pop() {
                    break v;
                }
                std::hint::spin_loop();
            };
            while pong_tx.push(v).is_err() {}
        }
    });
    let mut out = Vec::with_capacity(RT_SAMPLES);
    for i in 0..n {
        let t = Instant::now();
        ping_tx.push(i).unwrap();
        while pong_rx.pop().is_err() {
            std::hint::spin_loop();
        }
        if i >= 1000 {
            out.push(t.elapsed().as_nanos() as u64);
        }
    }
    t.join().unwrap();
    out
}

/// `push_partial_slice`/`pop_partial_slice` through a 256-element buffer in process memory.
fn ring_throughput_slices() -> f64 {
    let cap = 4096;
    let region = Region::anonymous(Ring::<u64>::required_bytes(cap).unwrap()).unwrap();
    let (mut tx, mut rx) = Ring::<u64>::create(region, cap).unwrap().split().unwrap();
    with_child(
        || {
            let (mut i, mut buf) = (0u64, [0u64; 256]);
            while i < ITEMS {
                let n = 256.min((ITEMS - i) as usize);
                for (k, b) in buf[..n].iter_mut().enumerate() {
                    *b = i + k as u64;
                }
                let mut done = 0;
                while done < n {
                    done += tx.push_partial_slice(&buf[done..n]).unwrap();
                }
                i += n as u64;
            }
        },
        || {
            let t = Instant::now();
            let (mut i, mut sum, mut buf) = (0u64, 0u64, [0u64; 256]);
            while i < ITEMS {
                let n = rx.pop_partial_slice(&mut buf).unwrap();
                sum = buf[..n].iter().fold(sum, |s, v| s.wrapping_add(*v));
                i += n as u64;
            }
            assert_eq!(sum, ITEMS * (ITEMS - 1) / 2);
            ITEMS as f64 / t.elapsed().as_secs_f64() / 1e6
        },
    )
}

fn ring_throughput(chunk: usize) -> f64 {
    let cap = 4096;
    let region = Region::anonymous(Ring::<u64>::required_bytes(cap).unwrap()).unwrap();
    let (mut tx, mut rx) = Ring::<u64>::create(region, cap).unwrap().split().unwrap();
    with_child(
        || {
            let mut i = 0u64;
            while i < ITEMS {
                if chunk == 1 {
                    if tx.try_push(i).is_ok() {
                        i += 1;
                    }
                } else if let Ok(mut c) = tx.write_chunk_up_to(chunk.min((ITEMS - i) as usize)) {
                    i += c.fill_from_iter(i..) as u64;
                    c.commit_all();
                }
            }
        },
        || {
            let t = Instant::now();
            let (mut i, mut sum) = (0u64, 0u64);
            while i < ITEMS {
                if chunk == 1 {
                    if let Ok(v) = rx.try_pop() {
                        sum = sum.wrapping_add(v);
                        i += 1;
                    }
                } else if let Ok(c) = rx.read_chunk_up_to(chunk) {
                    for v in &c {
                        sum = sum.wrapping_add(v);
                    }
                    i += c.len() as u64;
                    c.commit_all();
                }
            }
            assert_eq!(sum, ITEMS * (ITEMS - 1) / 2);
            ITEMS as f64 / t.elapsed().as_secs_f64() / 1e6
        },
    )
}

fn rtrb_throughput(chunk: usize) -> f64 {
    let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(4096);
    let t = Instant::now();
    let p = std::thread::spawn(move || {
        let mut i = 0u64;
        while i < ITEMS {
            if chunk == 1 {
                if tx.push(i).is_ok() {
                    i += 1;
                }
            } else {
                let n = tx.slots().min(chunk).min((ITEMS - i) as usize);
                if n > 0 {
                    let c = tx.write_chunk_uninit(n).unwrap();
                    i += c.fill_from_iter(i..) as u64;
                }
            }
        }
    });
    let (mut i, mut sum) = (0u64, 0u64);
    while i < ITEMS {
        if chunk == 1 {
            if let Ok(v) = rx.pop() {
                sum = sum.wrapping_add(v);
                i += 1;
            }
        } else {
            let n = rx.slots().min(chunk);
            if n > 0 {
                let c = rx.read_chunk(n).unwrap();
                for v in c.into_iter() {
                    sum = sum.wrapping_add(v);
                }
                i += n as u64;
            }
        }
    }
    p.join().unwrap();
    assert_eq!(sum, ITEMS * (ITEMS - 1) / 2);
    ITEMS as f64 / t.elapsed().as_secs_f64() / 1e6
}

fn main() {
    println!("round trip, {RT_SAMPLES} samples each");
    report("floor: shared atomic, 2 processes", floor_round_trip());
    report("shm-queue spsc, 2 processes", ring_round_trip());
    report("rtrb, 2 threads", rtrb_round_trip());
    println!("throughput of {ITEMS} u64s (M items/s)");
    for chunk in [1, 256] {
        println!(
            "  chunk {chunk:>3}: shm-queue 2 processes {:>7.1}   rtrb 2 threads {:>7.1}",
            ring_throughput(chunk),
            rtrb_throughput(chunk)
        );
    }
    println!(
        "  push_partial_slice/pop_partial_slice, 256: shm-queue 2 processes {:>7.1}",
        ring_throughput_slices()
    );
}
