//! loom models of the SPSC ring: the same ring code as in shared memory, over heap memory with
//! loom's atomics and cells, checked under every interleaving (up to the preemption bound).
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p shm-queue --release --test loom_spsc`
#![cfg(loom)]
#![allow(clippy::unwrap_used)]

#[path = "common/model.rs"]
mod model;

use loom::thread;
use model::{spsc_pair, until_data, until_room};
use shm_queue::spsc::{Consumer, Producer};
use shm_queue::TryError;

/// Runs a loom model of a ring of `blocks` blocks of `per_block` elements: `produce` on a
/// thread of its own while `consume` runs on this one.
fn model(
    blocks: usize,
    per_block: usize,
    produce: impl Fn(&mut Producer<u64>) + Copy + Send + Sync + 'static,
    consume: impl Fn(&mut Consumer<u64>) + Send + Sync + 'static,
) {
    loom::model(move || {
        let (mut tx, mut rx) = spsc_pair(blocks, per_block);
        let t = thread::spawn(move || produce(&mut tx));
        consume(&mut rx);
        t.join().unwrap();
    });
}

/// Pushes `1..=n` one at a time, yielding while the ring is full.
fn push_each(n: u64) -> impl Fn(&mut Producer<u64>) + Copy + Send + Sync + 'static {
    move |tx| {
        for v in 1..=n {
            until_room("push", || tx.try_push(v));
        }
    }
}

/// Pops `1..=n` one at a time, in order, yielding while the ring is empty.
fn pop_each(n: u64) -> impl Fn(&mut Consumer<u64>) + Send + Sync + 'static {
    move |rx| {
        for v in 1..=n {
            assert_eq!(until_data("pop", || rx.try_pop()), v);
        }
    }
}

/// Capacity 2 (two blocks of one element): three pushes wrap around the end while the
/// consumer pops concurrently.
#[test]
fn push_pop_across_the_wrap() {
    model(2, 1, push_each(3), pop_each(3));
}

/// Two blocks of two elements: single pushes that fill a block word by word, crossing a block
/// boundary and the wrap.
#[test]
fn push_pop_multi_element_blocks() {
    model(2, 2, push_each(5), pop_each(5));
}

/// A chunk of three committed at once, straddling a block boundary and the wrap, against
/// single pops.
#[test]
fn chunk_commit_against_concurrent_pops() {
    let produce = |tx: &mut Producer<u64>| {
        until_room("push", || tx.try_push(1));
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
    };
    model(2, 2, produce, pop_each(4));
}

/// Read chunks committed against single pushes across the wrap (capacity 2).
#[test]
fn read_chunk_against_concurrent_pushes() {
    model(2, 1, push_each(3), |rx| {
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
    });
}

/// Batch push and batch pop, both wrapping (capacity 2, three elements).
#[test]
fn push_slice_pop_into() {
    let produce = |tx: &mut Producer<u64>| {
        let src = [1u64, 2, 3];
        let mut sent = 0;
        while sent < src.len() {
            match tx.push_partial_slice(&src[sent..]).unwrap() {
                0 => thread::yield_now(),
                n => sent += n,
            }
        }
    };
    model(2, 1, produce, |rx| {
        let mut got = Vec::new();
        let mut buf = [0u64; 2];
        while got.len() < 3 {
            match rx.pop_partial_slice(&mut buf).unwrap() {
                0 => thread::yield_now(),
                n => got.extend_from_slice(&buf[..n]),
            }
        }
        assert_eq!(got, [1, 2, 3]);
    });
}

/// `peek` sees the same element `try_pop` then takes, while the producer laps the ring.
#[test]
fn peek_then_pop() {
    model(2, 1, push_each(3), |rx| {
        for v in 1..=3 {
            assert_eq!(until_data("peek", || rx.peek()), v);
            assert_eq!(rx.try_pop().unwrap(), v);
        }
    });
}
