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

/// Takes the producer side of `ring` as soon as it is free, yielding while it is claimed.
fn take_producer(ring: &shm_queue::spsc::Ring<u64>) -> Producer<u64> {
    loop {
        match ring.producer() {
            Ok(p) => return p,
            Err(shm_queue::Error::ProducerClaimed { .. }) => thread::yield_now(),
            Err(e) => panic!("producer: {e}"),
        }
    }
}

/// A producer pushes and drops its handle while a successor waits to take the side and
/// push: the successor resumes after the first producer's element. The claim's release
/// and take are what order the first producer's writes before the successor's recovery of
/// the tail; without them the successor may resume at position 0 and write slot 0 again
/// (loom: two unordered writes of one cell).
#[test]
fn a_released_producer_claim_hands_over_its_writes() {
    loom::model(|| {
        let ring = shm_queue::spsc::Ring::<u64>::new_model(2, 1).unwrap();
        let (tx, mut rx) = ring.split().unwrap();
        let t = thread::spawn(move || {
            let mut tx = tx;
            tx.try_push(1).unwrap();
        });
        take_producer(&ring).try_push(2).unwrap();
        t.join().unwrap();
        assert_eq!(until_data("pop", || rx.try_pop()), 1);
        assert_eq!(until_data("pop", || rx.try_pop()), 2);
    });
}

/// A producer pushes and dies (its handle is never used again); recovery learns of the
/// death (here: `join`, standing in for the kernel's lock release) and force-releases the
/// side, and a successor that was already waiting takes it and pushes. The force-release
/// must hand the dead producer's writes, which the recoverer has seen, to the successor.
#[test]
fn force_release_hands_a_dead_producers_writes_to_the_next() {
    loom::model(|| {
        let ring = shm_queue::spsc::Ring::<u64>::new_model(2, 1).unwrap();
        let (tx, mut rx) = ring.split().unwrap();
        let holder = ring.producer_holder().unwrap();
        let r2 = ring.clone();
        let next = thread::spawn(move || take_producer(&r2).try_push(2).unwrap());
        let dying = thread::spawn(move || {
            let mut tx = tx;
            tx.try_push(1).unwrap();
            tx // never used again; returned so it is dropped after the release
        });
        let dead = dying.join().unwrap();
        // SAFETY: the holder's handle is never used again (its drop below releases
        // nothing: its token no longer holds the claim).
        assert!(unsafe { ring.force_release_producer(holder) });
        next.join().unwrap();
        assert_eq!(until_data("pop", || rx.try_pop()), 1);
        assert_eq!(until_data("pop", || rx.try_pop()), 2);
        drop(dead);
    });
}

/// `slots()` promises what a read can take: once it says `n` elements are ready,
/// `read_chunk(n)` succeeds. This is the pattern examples/spsc_quick.rs uses
/// (`rx.read_chunk(rx.slots().min(chunk)).unwrap()`). Two blocks of one element: the
/// single push leaves block 0 (`next_block` stores the header's tail word), and the
/// one-element batch goes to block 1 (`publish` stores block 1's word, then the tail word).
///
/// If the tail word is stored or loaded `Relaxed`, the consumer can read the new tail
/// word without synchronising with the producer. It then reads stale block words (0), so
/// `slots()` reports elements that `read_chunk` (or `try_pop`) does not find. This fails
/// as an assertion and shows no payload race: `slots()` takes `&self` and never feeds
/// `tail_cache`.
#[test]
fn slots_promise_what_read_chunk_takes() {
    loom::model(|| {
        let (mut tx, mut rx) = spsc_pair(2, 1);
        let t = thread::spawn(move || {
            tx.try_push(1).unwrap();
            tx.push_entire_slice(&[2]).unwrap();
        });
        let mut next = 1;
        while next <= 2 {
            let n = rx.slots();
            if n == 0 {
                thread::yield_now();
                continue;
            }
            let chunk = rx
                .read_chunk(n)
                .unwrap_or_else(|e| panic!("slots() said {n} ready, then read_chunk({n}): {e}"));
            for v in &chunk {
                assert_eq!(v, next);
                next += 1;
            }
            chunk.commit_all();
        }
        t.join().unwrap();
    });
}

/// A producer handle is dropped and taken again on the same thread (an application that
/// re-creates its producer) while the consumer keeps reading. Two blocks of two elements
/// and three pushes leave block 0's word at 2 and block 1's at 3, so recovery stores 3
/// into block 0's word (`w.store(tail, ..)`) and into the tail word.
///
/// - `w.store` Relaxed: the consumer's `Acquire` of block 0's word reads the repair value 3
///   and synchronises with nothing. It then reads slots 0..2, which the other thread wrote,
///   and loom reports a race on the payload cell. (A relaxed store does not continue the
///   release sequence of the same thread's earlier `Release` store of 2: C++20, and loom.)
/// - recovery's tail-word store Relaxed: `slots()` reads 3 unsynchronised and says 3 are
///   ready, and `try_pop` finds block 0's word still 0 (assertion).
#[test]
fn recovery_repairs_a_block_word_under_a_live_consumer() {
    loom::model(|| {
        let ring = shm_queue::spsc::Ring::<u64>::new_model(2, 2).unwrap();
        let (mut tx, mut rx) = ring.split().unwrap();
        let t = thread::spawn(move || {
            for v in 1..=3 {
                tx.try_push(v).unwrap();
            }
            drop(tx);
            // Resumes at 3 and repairs block 0's word (2 -> 3) unless the consumer is past it.
            drop(ring.producer().unwrap());
        });
        let mut next = 1;
        while next <= 3 {
            let n = rx.slots();
            if n == 0 {
                thread::yield_now();
                continue;
            }
            for _ in 0..n {
                let v = rx
                    .try_pop()
                    .unwrap_or_else(|e| panic!("slots() said {n} ready, then try_pop: {e}"));
                assert_eq!(v, next);
                next += 1;
            }
        }
        t.join().unwrap();
    });
}

/// A new producer is taken while the consumer pops: capacity 1, one element pushed and the
/// old producer dropped before the consumer thread starts. Recovery's `head` becomes the new
/// producer's `head_cache`. If `check_positions` loads it `Relaxed` and reads 1, the push
/// of 2 reuses slot 0 with no happens-before from the consumer's read of element 1, and loom
/// reports a race on the payload cell.
#[test]
fn producer_taken_again_while_the_consumer_pops() {
    loom::model(|| {
        let ring = shm_queue::spsc::Ring::<u64>::new_model(1, 1).unwrap();
        let (mut tx, mut rx) = ring.split().unwrap();
        tx.try_push(1).unwrap();
        drop(tx);
        let t = thread::spawn(move || {
            assert_eq!(rx.try_pop().unwrap(), 1);
            rx
        });
        let mut tx = ring.producer().unwrap();
        until_room("push", || tx.try_push(2));
        let mut rx = t.join().unwrap();
        assert_eq!(rx.try_pop().unwrap(), 2);
    });
}
