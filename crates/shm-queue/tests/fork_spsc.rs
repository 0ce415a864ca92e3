//! Cross-process tests: a `fork()`ed child produces sequence-numbered `u64`s, the parent checks
//! that every one arrives once and in order.
//!
//! The child does only ring work on handles made before the fork (no allocation, no locks,
//! no panics), then leaves with `_exit`, so forking from the multi-threaded test harness is
//! safe. Both sides have deadlines: a bug fails the test instead of hanging it.
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

mod common;

use shm_queue::TryError;
use std::sync::Arc;
use std::time::Instant;

use common::{STREAM_DEADLINE as DEADLINE, STREAM_MESSAGES as MESSAGES};
use nix::sys::wait::WaitStatus;
use shm_queue::spsc::{Consumer, Producer, Ring};
use shm_region::Region;

/// The child's work: one third single pushes, one third `push_partial_slice` batches, one third
/// zero-copy chunks. Returns the exit code.
fn produce(tx: &mut Producer<u64>, n: u64) -> i32 {
    let deadline = Instant::now() + DEADLINE;
    let mut next = 0u64;
    let mut spins = 0u32;
    let mut buf = [0u64; 64];
    while next < n {
        let res = if next < n / 3 {
            tx.try_push(next).map(|()| 1)
        } else if next < 2 * n / 3 {
            let k = (n - next).min(buf.len() as u64) as usize;
            for (i, b) in buf[..k].iter_mut().enumerate() {
                *b = next + i as u64;
            }
            tx.push_partial_slice(&buf[..k])
        } else {
            let want = (n - next).min(256) as usize;
            match tx.write_chunk_up_to(want) {
                Ok(mut chunk) => {
                    let k = chunk.fill_from_iter(next..);
                    chunk.commit_all();
                    Ok(k)
                }
                Err(e) => Err(e),
            }
        };
        match res {
            Ok(0) | Err(TryError::Full { .. }) => {
                spins += 1;
                if spins & 1023 == 0 {
                    if Instant::now() > deadline {
                        return 2;
                    }
                    std::thread::yield_now();
                }
            }
            Ok(k) => next += k as u64,
            Err(_) => return 3,
        }
    }
    0
}

/// The parent's work: single pops for the first half, chunk reads and `pop_partial_slice` after.
fn consume(rx: &mut Consumer<u64>, n: u64, deadline: Instant) -> Result<(), String> {
    let mut expect = 0u64;
    let mut spins = 0u32;
    let mut buf = [0u64; 100];
    while expect < n {
        let got = if expect < n / 2 {
            match rx.try_pop() {
                Ok(v) => {
                    if v != expect {
                        return Err(format!("expected {expect}, got {v}"));
                    }
                    1
                }
                Err(TryError::Empty { .. }) => 0,
                Err(e) => return Err(e.to_string()),
            }
        } else if expect & 1 == 0 {
            let chunk = rx.read_chunk_up_to(512).map_err(|e| e.to_string())?;
            for (i, v) in chunk.iter().enumerate() {
                if v != expect + i as u64 {
                    return Err(format!("expected {}, got {v}", expect + i as u64));
                }
            }
            let k = chunk.len();
            chunk.commit_all();
            k
        } else {
            let k = rx.pop_partial_slice(&mut buf).map_err(|e| e.to_string())?;
            for (i, v) in buf[..k].iter().enumerate() {
                if *v != expect + i as u64 {
                    return Err(format!("expected {}, got {v}", expect + i as u64));
                }
            }
            k
        };
        if got == 0 {
            spins += 1;
            if spins & 1023 == 0 {
                if Instant::now() > deadline {
                    return Err(format!("deadline passed after {expect} of {n} messages"));
                }
                std::thread::yield_now();
            }
        }
        expect += got as u64;
    }
    // Nothing beyond the last message.
    match rx.try_pop() {
        Err(TryError::Empty { .. }) => Ok(()),
        other => Err(format!("extra element after the last: {other:?}")),
    }
}

/// Forks; the child produces with `tx`, the parent consumes with `rx` and reaps the child.
fn run(mut tx: Producer<u64>, mut rx: Consumer<u64>) {
    let start = Instant::now();
    let (child, status) = common::produce_in_child(
        move || produce(&mut tx, MESSAGES),
        || consume(&mut rx, MESSAGES, start + DEADLINE),
    );
    assert_eq!(status, WaitStatus::Exited(child, 0), "child failed");
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{MESSAGES} messages in {secs:.3} s ({:.1} M/s)",
        MESSAGES as f64 / secs / 1e6
    );
}

#[test]
fn fork_anonymous_region() {
    let region = Region::anonymous(Ring::<u64>::required_bytes(4096).unwrap()).unwrap();
    let ring = Ring::<u64>::create(region, 4096).unwrap();
    let (tx, rx) = ring.split().unwrap();
    run(tx, rx);
}

#[test]
fn fork_named_region() {
    use shm_region::Options;
    let name = format!("shmlane-test-spsc-{}", std::process::id());
    let len = Ring::<u64>::required_bytes(4096).unwrap();
    // The creator's mapping removes the name when it drops.
    let created = Options::new().create_shm(&name, len).unwrap();
    let ring = Ring::<u64>::create(created, 4096).unwrap();
    // A second, independent mapping of the same object, as another process would open it.
    let opened = Arc::new(Options::new().open_shm(&name).unwrap());
    let attached = Ring::<u64>::attach(opened).unwrap();
    let (tx, rx) = (attached.producer().unwrap(), ring.consumer().unwrap());
    run(tx, rx);
}
