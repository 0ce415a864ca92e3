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

/// Round trips each run, the first 1000 of them a warm-up that is not recorded.
const ROUNDS: u64 = RT_SAMPLES as u64 + 1000;

/// Spins until `f` gives a value.
fn spin<T>(mut f: impl FnMut() -> Option<T>) -> T {
    loop {
        if let Some(v) = f() {
            return v;
        }
        std::hint::spin_loop();
    }
}

/// The answering side of a round trip: `ROUNDS` times, takes a value from `recv` (spinning
/// until one comes) and sends it back through `send` (retrying until it is taken).
fn echo(mut recv: impl FnMut() -> Option<u64>, mut send: impl FnMut(u64) -> bool) {
    for _ in 0..ROUNDS {
        let v = spin(&mut recv);
        while !send(v) {}
    }
}

/// The timing side: `ROUNDS` round trips (`round(i)` sends `i` and waits for the answer),
/// each timed; returns the times after the warm-up, in nanoseconds.
fn time_round_trips(mut round: impl FnMut(u64)) -> Vec<u64> {
    let mut out = Vec::with_capacity(RT_SAMPLES);
    for i in 0..ROUNDS {
        let t = Instant::now();
        round(i);
        if i >= 1000 {
            out.push(t.elapsed().as_nanos() as u64);
        }
    }
    out
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
    with_child(
        || {
            for i in 1..=ROUNDS {
                while ping.load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
                pong.store(i, Ordering::Release);
            }
        },
        || {
            time_round_trips(|i| {
                ping.store(i + 1, Ordering::Release);
                while pong.load(Ordering::Acquire) != i + 1 {
                    std::hint::spin_loop();
                }
            })
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
    let (mut ping_tx, mut ping_rx) = ra.split().unwrap();
    let (mut pong_tx, mut pong_rx) = rb.split().unwrap();
    with_child(
        || echo(|| ping_rx.try_pop().ok(), |v| pong_tx.try_push(v).is_ok()),
        || {
            time_round_trips(|i| {
                ping_tx.try_push(i).unwrap();
                spin(|| pong_rx.try_pop().ok());
            })
        },
    )
}

fn rtrb_round_trip() -> Vec<u64> {
    let (mut ping_tx, mut ping_rx) = rtrb::RingBuffer::<u64>::new(1024);
    let (mut pong_tx, mut pong_rx) = rtrb::RingBuffer::<u64>::new(1024);
    let t = std::thread::spawn(move || echo(|| ping_rx.pop().ok(), |v| pong_tx.push(v).is_ok()));
    let out = time_round_trips(|i| {
        ping_tx.push(i).unwrap();
        spin(|| pong_rx.pop().ok());
    });
    t.join().unwrap();
    out
}

/// The sending side of a throughput run: `send(i)` sends what it can from item `i` on and
/// returns how many it sent; called until all `ITEMS` are sent.
fn send_all(mut send: impl FnMut(u64) -> usize) {
    let mut i = 0u64;
    while i < ITEMS {
        i += send(i) as u64;
    }
}

/// The receiving side: `receive(&mut sum)` adds what it received to `sum` and returns how
/// many items that was; called until all `ITEMS` have arrived. Checks the sum and returns
/// millions of items per second since `start`.
fn receive_all(start: Instant, mut receive: impl FnMut(&mut u64) -> usize) -> f64 {
    let (mut i, mut sum) = (0u64, 0u64);
    while i < ITEMS {
        i += receive(&mut sum) as u64;
    }
    assert_eq!(sum, ITEMS * (ITEMS - 1) / 2);
    ITEMS as f64 / start.elapsed().as_secs_f64() / 1e6
}

/// Adds `values` to `sum` (wrapping); returns how many there were.
fn add(sum: &mut u64, values: impl IntoIterator<Item = u64>) -> usize {
    values.into_iter().fold(0, |n, v| {
        *sum = sum.wrapping_add(v);
        n + 1
    })
}

/// `push_partial_slice`/`pop_partial_slice` through a 256-element buffer in process memory.
fn ring_throughput_slices() -> f64 {
    let cap = 4096;
    let region = Region::anonymous(Ring::<u64>::required_bytes(cap).unwrap()).unwrap();
    let (mut tx, mut rx) = Ring::<u64>::create(region, cap).unwrap().split().unwrap();
    with_child(
        || {
            let mut buf = [0u64; 256];
            send_all(|i| {
                let n = 256.min((ITEMS - i) as usize);
                for (k, b) in buf[..n].iter_mut().enumerate() {
                    *b = i + k as u64;
                }
                let mut done = 0;
                while done < n {
                    done += tx.push_partial_slice(&buf[done..n]).unwrap();
                }
                n
            })
        },
        || {
            let mut buf = [0u64; 256];
            receive_all(Instant::now(), |sum| {
                let n = rx.pop_partial_slice(&mut buf).unwrap();
                add(sum, buf[..n].iter().copied())
            })
        },
    )
}

fn ring_throughput(chunk: usize) -> f64 {
    let cap = 4096;
    let region = Region::anonymous(Ring::<u64>::required_bytes(cap).unwrap()).unwrap();
    let (mut tx, mut rx) = Ring::<u64>::create(region, cap).unwrap().split().unwrap();
    with_child(
        || {
            send_all(|i| {
                if chunk == 1 {
                    usize::from(tx.try_push(i).is_ok())
                } else if let Ok(mut c) = tx.write_chunk_up_to(chunk.min((ITEMS - i) as usize)) {
                    let n = c.fill_from_iter(i..);
                    c.commit_all();
                    n
                } else {
                    0
                }
            })
        },
        || {
            receive_all(Instant::now(), |sum| {
                if chunk == 1 {
                    add(sum, rx.try_pop())
                } else if let Ok(c) = rx.read_chunk_up_to(chunk) {
                    let n = add(sum, &c);
                    c.commit_all();
                    n
                } else {
                    0
                }
            })
        },
    )
}

fn rtrb_throughput(chunk: usize) -> f64 {
    let (mut tx, mut rx) = rtrb::RingBuffer::<u64>::new(4096);
    let start = Instant::now();
    let p = std::thread::spawn(move || {
        send_all(|i| {
            if chunk == 1 {
                usize::from(tx.push(i).is_ok())
            } else {
                match tx.slots().min(chunk).min((ITEMS - i) as usize) {
                    0 => 0,
                    n => tx.write_chunk_uninit(n).unwrap().fill_from_iter(i..),
                }
            }
        })
    });
    let rate = receive_all(start, |sum| {
        if chunk == 1 {
            add(sum, rx.pop())
        } else {
            match rx.slots().min(chunk) {
                0 => 0,
                n => add(sum, rx.read_chunk(n).unwrap()),
            }
        }
    });
    p.join().unwrap();
    rate
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
