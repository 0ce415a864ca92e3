//! Cross-process tests of the broadcast ring with real `fork()`: subscribers in child
//! processes check every element against its position (elements encode it four ways, so a
//! torn or stale copy shows), and every loss against the move of their position.
//!
//! - Lossless: one publisher, two subscriber processes, every element to both, in order.
//! - Lossy: a subscriber that keeps pausing is overtaken; it never returns a torn element,
//!   and delivered plus reported losses account for every position.
//! - A subscriber killed with `SIGKILL` while it gates a lossless publisher: the publisher,
//!   told the pid by its liveness check, frees its entry and the survivor gets everything.
//! - The publisher killed mid-stream: the subscribers hold a valid prefix, and a new
//!   publisher carries on from where the dead one stopped.
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{exit_code, in_child};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use shm_queue::broadcast::{Mode, Options, Ring, SlowPolicy, Start, Subscriber};
use shm_queue::wait::WaitStrategy;
use shm_queue::{Error, TryError};
use shm_region::Region;

/// One test at a time: they fork, and each wants the two CPUs.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const N: u64 = if cfg!(debug_assertions) {
    200_000
} else {
    2_000_000
};
const LIMIT: Duration = Duration::from_secs(120);

type E = [u64; 4];

fn enc(p: u64) -> E {
    [
        p,
        p.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        !p,
        p ^ 0x5555_aaaa_5555_aaaa,
    ]
}

fn ring(capacity: usize, mode: Mode) -> Ring<E> {
    let options = Options::new(capacity).subscribers(4).mode(mode);
    let region = Region::anonymous(Ring::<E>::required_bytes_with(&options).unwrap()).unwrap();
    Ring::<E>::create_with(region, options).unwrap()
}

/// Words shared with the children.
fn board() -> Region {
    Region::anonymous(4096).unwrap()
}

fn word(b: &Region, i: usize) -> &AtomicU64 {
    b.atomic_u64(i * 128).unwrap()
}

/// A subscriber child's loop: reads (single and batch receives alternating) until the
/// ring is closed; returns 0 if every element matched its position and every loss matched
/// the move of the position (and, unless `losses`, there was none), 1 on a wrong element,
/// 2 on an unexpected loss, 3 on a deadline, 4 on any other error, 5 if it did not reach
/// `end`.
fn check_stream(rx: &mut Subscriber<E>, end: u64, losses: bool) -> i32 {
    let deadline = Some(Instant::now() + LIMIT);
    let mut buf = [[0u64; 4]; 16];
    loop {
        let at = rx.position();
        let r = if at.is_multiple_of(5) {
            rx.recv_partial_slice_blocking(&mut buf, deadline)
        } else {
            rx.recv_blocking(deadline).map(|v| {
                buf[0] = v;
                1
            })
        };
        match r {
            Ok(n) => {
                if (0..n).any(|k| buf[k] != enc(at + k as u64)) {
                    return 1;
                }
            }
            Err(Error::Lagged { missed }) | Err(Error::Evicted { missed }) => {
                if !losses || rx.position() != at + missed {
                    return 2;
                }
            }
            Err(Error::Closed { .. }) => return if rx.position() == end { 0 } else { 5 },
            Err(Error::Timeout { .. }) => return 3,
            Err(_) => return 4,
        }
    }
}

/// [`check_stream`] without losses, then a clean leave (the entry is freed).
fn check_then_leave(mut rx: Subscriber<E>, end: u64) -> i32 {
    let code = check_stream(&mut rx, end, false);
    drop(rx);
    code
}

/// Pushes `from..to`, in singles and batches, waiting as needed.
fn publish(tx: &mut shm_queue::broadcast::Publisher<E>, from: u64, to: u64) {
    let deadline = Some(Instant::now() + LIMIT);
    let mut p = from;
    let mut batch = Vec::with_capacity(32);
    while p < to {
        if p % 64 < 32 {
            tx.push_blocking(enc(p), deadline).unwrap();
            p += 1;
        } else {
            batch.clear();
            batch.extend((p..to.min(p + 32)).map(enc));
            tx.push_slice_blocking(&batch, deadline).unwrap();
            p += batch.len() as u64;
        }
    }
}

#[test]
fn lossless_two_subscriber_processes_get_every_element() {
    let _g = SERIAL.lock();
    let r = ring(4096, Mode::Lossless(SlowPolicy::Wait));
    let mut tx = r.publisher().unwrap();
    tx.set_wait_strategy(WaitStrategy::SpinThenYield { spins: 64 });
    let children: Vec<_> = (0..2)
        .map(|_| {
            let mut rx = r.subscriber(Start::Newest).unwrap();
            rx.set_wait_strategy(WaitStrategy::SpinThenYield { spins: 64 });
            in_child(move || check_then_leave(rx, N))
        })
        .collect();
    publish(&mut tx, 0, N);
    tx.close();
    for c in children {
        assert_eq!(exit_code(c, LIMIT), 0);
    }
    assert_eq!(r.stats().evictions, 0);
}

#[test]
fn a_paused_lossy_subscriber_is_never_torn_and_counts_its_losses() {
    let _g = SERIAL.lock();
    let r = ring(64, Mode::Lossy);
    let mut tx = r.publisher().unwrap();
    let mut rx = r.subscriber(Start::Newest).unwrap();
    rx.set_wait_strategy(WaitStrategy::blocking());
    let child = in_child(move || {
        // Pause now and then so the publisher laps it, mid-copy too.
        let mut pauses = 0u64;
        let deadline = Some(Instant::now() + LIMIT);
        let (mut delivered, mut lost) = (0u64, 0u64);
        loop {
            let at = rx.position();
            if at / 1000 > pauses {
                pauses += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
            match rx.recv_blocking(deadline) {
                Ok(v) if v == enc(at) => delivered += 1,
                Ok(_) => return 1,
                Err(Error::Lagged { missed }) if rx.position() == at + missed => lost += missed,
                Err(Error::Lagged { .. }) => return 2,
                Err(Error::Closed { .. }) => {
                    return if delivered + lost == N && lost > 0 {
                        0
                    } else {
                        5
                    };
                }
                Err(_) => return 4,
            }
        }
    });
    for p in 0..N {
        tx.try_push(enc(p)).unwrap();
        if p % 4096 == 0 {
            std::thread::yield_now();
        }
    }
    tx.close();
    assert_eq!(exit_code(child, LIMIT), 0);
}

#[test]
fn a_killed_subscriber_stops_gating_a_publisher_with_recovery() {
    let _g = SERIAL.lock();
    // Leaked so the liveness check (which must be 'static) can read it.
    let b: &'static Region = Box::leak(Box::new(board()));
    let r = ring(256, Mode::Lossless(SlowPolicy::Wait));
    // The victim joins, reads one element, then hangs until killed.
    let victim = {
        let r = r.clone();
        in_child(move || {
            let mut rx = r.subscriber(Start::Newest).unwrap();
            word(b, 0).store(1, Ordering::Release);
            let _ = rx.recv_blocking(Some(Instant::now() + LIMIT));
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    while word(b, 0).load(Ordering::Acquire) == 0 {
        std::thread::yield_now();
    }
    let mut survivor = r.subscriber(Start::Newest).unwrap();
    survivor.set_wait_strategy(WaitStrategy::SpinThenYield { spins: 64 });
    let survivor = in_child(move || check_then_leave(survivor, N));
    // What the test knows: the pid it killed, stored after the kill.
    let dead = move |token: u64| {
        let pid = word(b, 1).load(Ordering::Acquire);
        pid != 0 && token >> 32 == pid
    };
    let mut tx = r
        .publisher()
        .unwrap()
        .with_recovery(dead, Duration::from_millis(1));
    tx.set_wait_strategy(WaitStrategy::SpinThenYield { spins: 64 });
    // The victim gates the publisher within a ring: kill it once it does.
    let mut p = 0;
    let mut gated_at = None;
    while p < N {
        match tx.push_blocking(enc(p), Some(Instant::now() + Duration::from_millis(50))) {
            Ok(()) => p += 1,
            Err(Error::Timeout { .. }) if gated_at.is_none() => {
                gated_at = Some(p);
                kill(victim, Signal::SIGKILL).unwrap();
                waitpid(victim, None).unwrap();
                word(b, 1).store(victim.as_raw() as u64, Ordering::Release);
            }
            Err(e) => panic!("publisher at {p}: {e}"),
        }
    }
    tx.close();
    assert_eq!(exit_code(survivor, LIMIT), 0);
    assert!(
        gated_at.is_some_and(|g| (256..512).contains(&g)),
        "{gated_at:?}"
    );
    assert_eq!(r.stats().reclaimed, 1);
    assert_eq!(r.subscribers().len(), 0);
}

#[test]
fn a_killed_publisher_leaves_a_valid_prefix_and_a_successor_carries_on() {
    let _g = SERIAL.lock();
    let r = ring(1024, Mode::Lossless(SlowPolicy::Wait));
    let total = N / 4;
    let mut rx = r.subscriber(Start::Newest).unwrap();
    rx.set_wait_strategy(WaitStrategy::SpinThenYield { spins: 64 });
    let reader = in_child(move || check_then_leave(rx, total));
    let first = {
        let r = r.clone();
        in_child(move || {
            let mut tx = r.publisher().unwrap();
            // Half the stream, then hang: the kill lands somewhere between a third of the
            // way and here (inside a push, or in the hang), never after the end, however
            // the two processes are scheduled.
            publish(&mut tx, 0, total / 2);
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    // Kill it once it is a third of the way, wherever it is then.
    let end = Instant::now() + LIMIT;
    while r.stats().tail < total / 3 && Instant::now() < end {
        std::hint::spin_loop();
    }
    kill(first, Signal::SIGKILL).unwrap();
    waitpid(first, None).unwrap();
    let holder = r.publisher_holder().unwrap();
    // SAFETY: the holder's process is dead (reaped above).
    assert!(unsafe { r.force_release_publisher(holder) });
    let mut tx = r.publisher().unwrap();
    let from = tx.position();
    assert!(from >= total / 3 && from <= total / 2, "{from}");
    publish(&mut tx, from, total);
    tx.close();
    assert_eq!(exit_code(reader, LIMIT), 0);
    assert!(matches!(
        r.subscriber(Start::Newest).unwrap().try_recv(),
        Err(TryError::Empty { .. })
    ));
}
