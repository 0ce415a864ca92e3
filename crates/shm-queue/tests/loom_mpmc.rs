//! loom models of the MPMC ring: the same ring code as in shared memory, over heap memory
//! with loom's atomics and cells (a slot read the sequence protocol did not order after its
//! write is reported as a data race), checked under every interleaving up to the preemption
//! bound.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p shm-queue --release --test loom_mpmc`
#![cfg(loom)]
#![allow(clippy::unwrap_used)]

#[path = "common/model.rs"]
mod model;

use shm_queue::TryError;
use std::collections::VecDeque;
use std::time::Duration;

use loom::thread;
use model::{until_data, until_room};
use shm_queue::mpmc::{self, Consumer, Producer};

/// Runs `f` under loom with room for the spin-then-yield loops of the helpers below: a
/// waiting side's every poll is a branch point.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.max_branches = 100_000;
    b.check(f);
}

/// A thread that pushes `v`, yielding while the ring is full.
fn pushing(mut tx: Producer<u64>, v: u64) -> thread::JoinHandle<()> {
    thread::spawn(move || until_room("push", || tx.try_push(v)))
}

/// Pops one element, yielding while the ring is empty.
fn pop(rx: &mut Consumer<u64>) -> u64 {
    until_data("pop", || rx.try_pop())
}

/// A capacity-2 ring whose positions start at 1 (one element pushed and popped before the
/// threads start), so the two positions the model uses, 1 and 2, straddle the wrap: position
/// 2 reuses slot 0, which the consumer of position 0 must have released.
fn ring_at_the_wrap() -> mpmc::Ring<u64> {
    let ring = mpmc::Ring::<u64>::new_model(2, 4).unwrap();
    ring.producer().unwrap().try_push(0).unwrap();
    assert_eq!(ring.consumer().unwrap().try_pop().unwrap(), 0);
    ring
}

/// Two producers race for positions 1 and 2 (across the wrap) while one consumer pops:
/// each element arrives exactly once, and a producer's claim is never read before it is
/// published (loom checks the slot cells).
#[test]
fn two_producers_one_consumer_around_the_wrap() {
    model(|| {
        let ring = ring_at_the_wrap();
        let (a, b) = (ring.producer().unwrap(), ring.producer().unwrap());
        let mut rx = ring.consumer().unwrap();
        let (ta, tb) = (pushing(a, 1), pushing(b, 2));
        let mut got = [pop(&mut rx), pop(&mut rx)];
        ta.join().unwrap();
        tb.join().unwrap();
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        assert!(matches!(rx.try_pop(), Err(TryError::Empty { .. })));
        assert_eq!(ring.stats(), Default::default());
    });
}

/// Position 1 is pushed first; then one producer pushes position 2 (slot 0, second lap)
/// while two consumers race for positions 1 and 2: together they get exactly 1 and 2.
#[test]
fn one_producer_two_consumers_around_the_wrap() {
    model(|| {
        let ring = ring_at_the_wrap();
        let mut tx = ring.producer().unwrap();
        let mut c1 = ring.consumer().unwrap();
        let mut c2 = c1.clone(); // a clone registers its own owner entry on first use
        tx.try_push(1).unwrap();
        let tp = pushing(tx, 2);
        let tc = thread::spawn(move || pop(&mut c2));
        let mine = pop(&mut c1);
        let theirs = tc.join().unwrap();
        tp.join().unwrap();
        let mut all = [mine, theirs];
        all.sort_unstable();
        assert_eq!(all, [1, 2]);
    });
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Push(u64, bool),
    Pop(Option<u64>),
}

/// Non-blocking pushes and pops on a capacity-2 ring: every outcome (which pushes found the
/// ring full, which pops found it empty, what they got) is explained by a sequential
/// `VecDeque` of capacity 2 running the two threads' operations in some interleaving, and a
/// final drain finds exactly what the model holds.
///
/// One producer thread: with several, Vyukov's queue may report empty while a later push
/// has completed and an earlier one is still being written (documented in the module).
#[test]
fn try_push_try_pop_linearize_against_a_model() {
    model(|| {
        let ring = mpmc::Ring::<u64>::new_model(2, 4).unwrap();
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        let tp = thread::spawn(move || {
            (1..=3)
                .map(|v| Op::Push(v, tx.try_push(v).is_ok()))
                .collect::<Vec<_>>()
        });
        let pops: Vec<Op> = (0..2)
            .map(|_| match rx.try_pop() {
                Ok(v) => Op::Pop(Some(v)),
                Err(TryError::Empty { .. }) => Op::Pop(None),
                Err(e) => panic!("{e}"),
            })
            .collect();
        let pushes = tp.join().unwrap();
        let mut rest = Vec::new();
        while let Ok(v) = rx.try_pop() {
            rest.push(v);
        }
        assert!(
            explained(&pushes, &pops, VecDeque::new(), &rest),
            "pushes {pushes:?} pops {pops:?} rest {rest:?}"
        );
    });
}

/// Whether some interleaving of the two threads' histories (each in program order) replays
/// on a `VecDeque` of capacity 2 with the same results and leaves exactly `rest` behind
/// (the drain runs after both threads joined).
fn explained(a: &[Op], b: &[Op], m: VecDeque<u64>, rest: &[u64]) -> bool {
    if a.is_empty() && b.is_empty() {
        return m.iter().eq(rest.iter());
    }
    let apply = |op: Op, mut m: VecDeque<u64>| match op {
        Op::Push(v, ok) => {
            let fits = m.len() < 2;
            if fits {
                m.push_back(v);
            }
            (fits == ok).then_some(m)
        }
        Op::Pop(got) => (m.pop_front() == got).then_some(m),
    };
    a.split_first()
        .and_then(|(&op, r)| apply(op, m.clone()).map(|m| explained(r, b, m, rest)))
        .unwrap_or(false)
        || b.split_first()
            .and_then(|(&op, r)| apply(op, m.clone()).map(|m| explained(a, r, m, rest)))
            .unwrap_or(false)
}

/// A producer claimed a position and was judged dead (the liveness check names its token)
/// while in fact it goes on to publish: the consumer's poison and the late publish race,
/// and exactly one wins. Either the element is delivered and nothing is skipped, or it is
/// skipped, counted once, and the publisher is told its claim was revoked. Never both,
/// never neither; the element after it is always delivered.
#[test]
fn poison_races_a_late_publish() {
    model(|| {
        let ring = mpmc::Ring::<u64>::new_model(2, 4).unwrap();
        let mut slow = ring.producer().unwrap();
        let slow_token = slow.token();
        let pos = slow.claim_and_hold(7).unwrap();
        ring.producer().unwrap().try_push(8).unwrap();
        let mut rx = ring
            .consumer()
            .unwrap()
            .with_recovery(move |t: u64| t == slow_token, Duration::ZERO);
        let tp = thread::spawn(move || {
            // SAFETY: `pos` came from claim_and_hold on this handle, not yet published.
            unsafe { slow.publish_held(pos) }
        });
        let mut got = Vec::new();
        while got.last() != Some(&8) {
            got.push(pop(&mut rx));
        }
        let published = tp.join().unwrap();
        let stats = ring.stats();
        match published {
            Ok(()) => {
                assert_eq!(got, vec![7, 8]);
                assert_eq!((stats.skipped, stats.revoked), (0, 0));
            }
            Err(TryError::ClaimRevoked {
                revoked: 1,
                completed: 0,
            }) => {
                assert_eq!(got, vec![8]);
                assert_eq!((stats.skipped, stats.revoked), (1, 1));
            }
            Err(e) => panic!("{e}"),
        }
        assert!(matches!(rx.try_pop(), Err(TryError::Empty { .. })));
    });
}

/// A consumer claimed an element and died before releasing its slot: a producer with
/// recovery, a lap later, releases the slot (counted once) while another consumer goes on;
/// nothing else is lost.
#[test]
fn dead_consumer_claim_is_released_by_a_producer() {
    model(|| {
        let ring = mpmc::Ring::<u64>::new_model(2, 4).unwrap();
        let mut tx = ring.producer().unwrap();
        tx.try_push(1).unwrap();
        let mut dying = ring.consumer().unwrap();
        let dead = dying.token();
        assert_eq!(dying.claim_and_hold().unwrap(), (0, 1));
        let mut tx = tx.with_recovery(move |t: u64| t == dead, Duration::ZERO);
        let mut rx = ring.consumer().unwrap();
        let tp = thread::spawn(move || {
            for v in 2..=3 {
                until_room("push", || tx.try_push(v));
            }
        });
        assert_eq!(pop(&mut rx), 2);
        assert_eq!(pop(&mut rx), 3);
        tp.join().unwrap();
        assert_eq!(ring.stats().released, 1);
        drop(dying);
    });
}
