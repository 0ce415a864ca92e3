//! loom models of the SPSC ring: the same ring code as in shared memory, over heap memory with
//! loom's atomics and cells, checked under every interleaving (up to the preemption bound).
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p shm-queue --release --test loom_spsc`
#![cfg(loom)]
#![allow(clippy::unwrap_used)]

use loom::thread;
use shm_queue::spsc::{Consumer, Producer, Ring};
use shm_queue::TryError;

/// Pushes `v`, yielding while the ring is full.
fn push(tx: &mut Producer<u64>, v: u64) {
    loop {
        match tx.try_push(v) {
            Ok(()) => return,
            Err(TryError::Full { .. }) => thread::yield_now(),
            Err(e) => panic!("push: {e}"),
        }
    }
}

/// Pops one element, yielding while the ring is empty.
fn pop(rx: &mut Consumer<u64>) -> u64 {
    loop {
        match rx.try_pop() {
            Ok(v) => return v,
            Err(TryError::Empty { .. }) => thread::yield_now(),
            Err(e) => panic!("pop: {e}"),
        }
    }
}

/// Capacity 2 (two blocks of one element): three pushes wrap around the end while the
/// consumer pops concurrently.
#[test]
fn push_pop_across_the_wrap() {
    loom::model(|| {
        let (mut tx, mut rx) = Ring::<u64>::new_model(2, 1).unwrap().split().unwrap();
        let t = thread::spawn(move || {
            for v in 1..=3 {
                push(&mut tx, v);
            }
        });
        for v in 1..=3 {
            assert_eq!(pop(&mut rx), v);
        }
        t.join().unwrap();
    });
}

/// Two blocks of two elements: single pushes that fill a block word by word, crossing a block
/// boundary and the wrap.
#[test]
fn push_pop_multi_element_blocks() {
    loom::model(|| {
        let (mut tx, mut rx) = Ring::<u64>::new_model(2, 2).unwrap().split().unwrap();
        let t = thread::spawn(move || {
            for v in 1..=5 {
                push(&mut tx, v);
            }
        });
        for v in 1..=5 {
            assert_eq!(pop(&mut rx), v);
        }
        t.join().unwrap();
    });
}

/// A chunk of three committed at once, straddling a block boundary and the wrap, against
/// single pops.
#[test]
fn chunk_commit_against_concurrent_pops() {
    loom::model(|| {
        let (mut tx, mut rx) = Ring::<u64>::new_model(2, 2).unwrap().split().unwrap();
        let t = thread::spawn(move || {
            push(&mut tx, 1);
            // Positions 1..4: block 0 slot 1, block 1, then block 0 slot 0 of the next lap,
            // which needs position 0 consumed first.
            let mut chunk = loop {
                match tx.write_chunk(3) {
                    Ok(c) => break c,
                    Err(TryError::Full { .. }) => thread::yield_now(),
                    Err(e) => panic!("write_chunk: {e}"),
                }
            };
            for i in 0..3 {
                chunk.set(i, 2 + i as u64).unwrap();
            }
            chunk.commit_all();
        });
        for v in 1..=4 {
            assert_eq!(pop(&mut rx), v);
        }
        t.join().unwrap();
    });
}

/// Read chunks committed against single pushes across the wrap (capacity 2).
#[test]
fn read_chunk_against_concurrent_pushes() {
    loom::model(|| {
        let (mut tx, mut rx) = Ring::<u64>::new_model(2, 1).unwrap().split().unwrap();
        let t = thread::spawn(move || {
            for v in 1..=3 {
                push(&mut tx, v);
            }
        });
        let mut next = 1;
        while next <= 3 {
            let chunk = rx.read_chunk_up_to(2).unwrap();
            if chunk.is_empty() {
                drop(chunk);
                thread::yield_now();
                continue;
            }
            for v in &chunk {
                assert_eq!(v, next);
                next += 1;
            }
            chunk.commit_all();
        }
        t.join().unwrap();
    });
}

/// Batch push and batch pop, both wrapping (capacity 2, three elements).
#[test]
fn push_slice_pop_into() {
    loom::model(|| {
        let (mut tx, mut rx) = Ring::<u64>::new_model(2, 1).unwrap().split().unwrap();
        let t = thread::spawn(move || {
            let src = [1u64, 2, 3];
            let mut sent = 0;
            while sent < src.len() {
                match tx.push_partial_slice(&src[sent..]).unwrap() {
                    0 => thread::yield_now(),
                    n => sent += n,
                }
            }
        });
        let mut got = Vec::new();
        let mut buf = [0u64; 2];
        while got.len() < 3 {
            match rx.pop_partial_slice(&mut buf).unwrap() {
                0 => thread::yield_now(),
                n => got.extend_from_slice(&buf[..n]),
            }
        }
        assert_eq!(got, [1, 2, 3]);
        t.join().unwrap();
    });
}

/// `peek` sees the same element `try_pop` then takes, while the producer laps the ring.
#[test]
fn peek_then_pop() {
    loom::model(|| {
        let (mut tx, mut rx) = Ring::<u64>::new_model(2, 1).unwrap().split().unwrap();
        let t = thread::spawn(move || {
            for v in 1..=3 {
                push(&mut tx, v);
            }
        });
        for v in 1..=3 {
            let seen = loop {
                match rx.peek() {
                    Ok(x) => break x,
                    Err(TryError::Empty { .. }) => thread::yield_now(),
                    Err(e) => panic!("peek: {e}"),
                }
            };
            assert_eq!(seen, v);
            assert_eq!(rx.try_pop().unwrap(), v);
        }
        t.join().unwrap();
    });
}
