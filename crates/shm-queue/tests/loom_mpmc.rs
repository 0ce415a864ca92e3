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

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;

use loom::thread;
use model::{until_data, until_room};
use shm_queue::mpmc::{self, Consumer, Producer, Stats};
use shm_queue::Error;

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
    ring_at_the_wrap_with(mpmc::SlotLayout::default())
}

/// [`ring_at_the_wrap`] with slots spaced by `slots`.
fn ring_at_the_wrap_with(slots: mpmc::SlotLayout) -> mpmc::Ring<u64> {
    let options = mpmc::Options::new(2).owners(4).slot_layout(slots);
    let ring = mpmc::Ring::<u64>::new_model_with(options).unwrap();
    ring.producer().unwrap().try_push(0).unwrap();
    assert_eq!(ring.consumer().unwrap().try_pop().unwrap(), 0);
    ring
}

/// Two producers race for positions 1 and 2 (across the wrap) while one consumer pops:
/// each element arrives exactly once, and a producer's claim is never read before it is
/// published (loom checks the slot cells).
#[test]
fn two_producers_one_consumer_around_the_wrap() {
    two_producers_one_consumer(mpmc::SlotLayout::Packed);
}

/// The same in a ring with line-spaced slots (the other [`mpmc::SlotLayout`]; the models
/// below use the default, packed).
#[test]
fn two_producers_one_consumer_around_the_wrap_line_slots() {
    two_producers_one_consumer(mpmc::SlotLayout::Line);
}

fn two_producers_one_consumer(slots: mpmc::SlotLayout) {
    model(move || {
        let ring = ring_at_the_wrap_with(slots);
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

/// A window held open by one thread while another looks: `Relaxed` flags, so waiting on
/// them orders nothing (the models must not get the orderings under test from them).
#[derive(Clone)]
struct Window(Arc<(AtomicBool, AtomicBool)>);

impl Window {
    fn new() -> Self {
        Window(Arc::new((AtomicBool::new(false), AtomicBool::new(false))))
    }
    /// The holder: its claim is taken.
    fn held(&self) {
        self.0 .0.store(true, Ordering::Relaxed);
    }
    /// Whether the claim is taken yet.
    fn is_held(&self) -> bool {
        self.0 .0.load(Ordering::Relaxed)
    }
    /// The looker: waits until the claim is taken.
    fn wait_held(&self) {
        while !self.is_held() {
            thread::yield_now();
        }
    }
    /// The looker: it has looked (and found the claim in the way).
    fn looked(&self) {
        self.0 .1.store(true, Ordering::Relaxed);
    }
    /// The holder: waits until the looker has looked.
    fn wait_looked(&self) {
        while !self.0 .1.load(Ordering::Relaxed) {
            thread::yield_now();
        }
    }
}

/// Pushes `v`, telling `window` each time the ring is full (the held slot is in the way), so
/// the holder lets go only after a push has looked at it.
fn push_once_looked(tx: &mut Producer<u64>, v: u64, window: &Window) {
    loop {
        match tx.try_push(v) {
            Ok(()) => return,
            Err(TryError::Full { .. }) => {
                window.looked();
                thread::yield_now();
            }
            Err(e) => panic!("push: {e}"),
        }
    }
}

/// The preemption bound of the three-thread models.
const PREEMPTIONS_3_THREADS: usize = 1;

/// Pops one element, yielding while the ring is empty, but gives up (`None`) once the
/// ring's `skipped` count reaches `limit`: a model whose live claim was wrongly poisoned
/// would otherwise wait forever for an element that will never come (and end as a
/// "too many branches" failure instead of a clear assertion).
fn pop_unless_skipped(ring: &mpmc::Ring<u64>, rx: &mut Consumer<u64>, limit: u64) -> Option<u64> {
    loop {
        match rx.try_pop() {
            Ok(v) => return Some(v),
            Err(TryError::Empty { .. }) if ring.stats().skipped >= limit => return None,
            Err(TryError::Empty { .. }) => thread::yield_now(),
            Err(e) => panic!("pop: {e}"),
        }
    }
}

/// A death that only the liveness check learns of: `die` is the dying thread's last act,
/// a Release store, and the check reads it with Acquire, as the bridge's `SlotLiveness`
/// (generation word with Acquire, or an OFD-lock query through the kernel) does. Everything
/// the dead thread did is then ordered before the checker's later actions, and before
/// nobody else's: other threads learn it only through what the ring's orderings pass on.
#[derive(Clone)]
struct Death(Arc<AtomicBool>);

impl Death {
    fn new() -> Self {
        Death(Arc::new(AtomicBool::new(false)))
    }
    fn die(&self) {
        self.0.store(true, Ordering::Release);
    }
    /// A liveness check that calls `token` dead once `die` ran.
    fn check(&self, token: u64) -> impl Fn(u64) -> bool + Send + Sync + 'static {
        let flag = self.0.clone();
        move |t: u64| t == token && flag.load(Ordering::Acquire)
    }
}

// A live, slow producer races a recovery that judged another producer dead. Catches a
// weakened producer tail CAS (single and batch) and the consumer's tail load.

/// Position 0 is held by a dead producer (`claim_and_hold`). Position 1 is claimed by a
/// live producer that publishes late, and is also covered by the record of a producer
/// killed between recording position 1 and its claiming compare-and-swap
/// (`record_and_stop`). The consumer recovers: it must skip position 0 exactly once and
/// must not poison position 1. The live producer's record vetoes it, and that record
/// reaches the consumer only through the tail CAS's Release and the consumer's Acquire
/// load of the tail.
#[test]
fn live_producer_claim_is_never_poisoned_for_a_dead_record() {
    model(|| {
        let ring = mpmc::Ring::<u64>::new_model(2, 4).unwrap();
        let mut held = ring.producer().unwrap();
        let mut stopped = ring.producer().unwrap();
        let dead = [held.token(), stopped.token()];
        assert_eq!(held.claim_and_hold(7).unwrap(), 0);
        assert_eq!(stopped.record_and_stop().unwrap(), 1);
        let mut live = ring.producer().unwrap();
        let mut rx = ring
            .consumer()
            .unwrap()
            .with_recovery(move |t: u64| dead.contains(&t), Duration::ZERO);
        // The live producer claims position 1 (tail is 1) in its own thread.
        let tp = thread::spawn(move || {
            let r = live.try_push(8);
            (live, r)
        });
        let got = pop_unless_skipped(&ring, &mut rx, 2);
        let (live, pushed) = tp.join().unwrap();
        assert!(pushed.is_ok(), "live producer's claim revoked: {pushed:?}");
        assert_eq!(got, Some(8));
        assert_eq!(
            ring.stats(),
            Stats {
                skipped: 1,
                released: 0,
                revoked: 0
            }
        );
        assert!(matches!(rx.try_pop(), Err(TryError::Empty { .. })));
        drop((live, held, stopped));
    });
}

/// The same with a batch claim held open: the live producer claims positions 0 and 1 with
/// one compare-and-swap and writes them, then publishes only after the consumer has looked.
/// (Claims are held open with `Window` because a claim made and published in one go gives
/// loom no schedule in which the other thread looks in between.)
#[test]
fn live_batch_claim_is_never_poisoned_for_a_dead_record() {
    model(|| {
        let ring = mpmc::Ring::<u64>::new_model(2, 4).unwrap();
        let mut stopped = ring.producer().unwrap();
        let dead = stopped.token();
        assert_eq!(stopped.record_and_stop().unwrap(), 0);
        let mut live = ring.producer().unwrap();
        let mut rx = ring
            .consumer()
            .unwrap()
            .with_recovery(move |t: u64| t == dead, Duration::ZERO);
        let window = Window::new();
        let w = window.clone();
        let tp = thread::spawn(move || {
            let (t, k) = live.claim_and_hold_slice(&[8, 9]).unwrap();
            w.held();
            w.wait_looked();
            // SAFETY: t..t + k were claimed by this handle and are not published yet.
            let r: Vec<_> = (t..t + k)
                .map(|p| unsafe { live.publish_held(p) })
                .collect();
            (live, k, r)
        });
        window.wait_held();
        let mut got = Vec::new();
        while got.len() < 2 && ring.stats().skipped == 0 {
            match rx.try_pop() {
                Ok(v) => got.push(v),
                Err(TryError::Empty { .. }) => {
                    window.looked();
                    thread::yield_now();
                }
                Err(e) => panic!("pop: {e}"),
            }
        }
        let (live, k, r) = tp.join().unwrap();
        assert_eq!(k, 2);
        assert!(
            r.iter().all(Result::is_ok),
            "live batch claim revoked: {r:?}"
        );
        assert_eq!(got, [8, 9]);
        assert_eq!(ring.stats(), Stats::default());
        drop((live, stopped));
    });
}

// The mirror image on the consumer side. Catches a weakened consumer head CAS (single and
// batch) and recover_consumer_claim's head load.

/// A live consumer claims position 0 and reads it, and releases it only after a producer
/// with recovery, a lap later, has found the slot still held. A consumer killed between
/// recording position 0 and its claiming compare-and-swap also covers it. The live
/// consumer's record must veto the release; otherwise the producer writes the slot the live
/// consumer read (a loom cell race) and the live consumer's release is revoked.
#[test]
fn live_consumer_claim_is_never_released_for_a_dead_record() {
    model(|| {
        let ring = mpmc::Ring::<u64>::new_model(2, 4).unwrap();
        let mut tx = ring.producer().unwrap();
        tx.try_push(1).unwrap();
        tx.try_push(2).unwrap();
        let mut stopped = ring.consumer().unwrap();
        let dead = stopped.token();
        assert_eq!(stopped.record_and_stop().unwrap(), 0);
        let mut tx = tx.with_recovery(move |t: u64| t == dead, Duration::ZERO);
        let mut live = ring.consumer().unwrap();
        let window = Window::new();
        let w = window.clone();
        let tc = thread::spawn(move || {
            let (pos, v) = live.claim_and_hold().unwrap();
            w.held();
            w.wait_looked();
            // SAFETY: `pos` was claimed by this handle and is not released yet.
            let r = unsafe { live.release_held(pos) };
            (live, v, r)
        });
        window.wait_held();
        push_once_looked(&mut tx, 3, &window);
        let (mut live, first, released) = tc.join().unwrap();
        assert_eq!(first, 1);
        assert!(
            released.is_ok(),
            "live claim released by a recovery: {released:?}"
        );
        assert_eq!([pop(&mut live), pop(&mut live)], [2, 3]);
        assert_eq!(ring.stats(), Stats::default());
        drop(stopped);
    });
}

/// The same with a batch claim (positions 0 and 1, one compare-and-swap) held open.
#[test]
fn live_batch_pop_is_never_released_for_a_dead_record() {
    model(|| {
        let ring = mpmc::Ring::<u64>::new_model(2, 4).unwrap();
        let mut tx = ring.producer().unwrap();
        assert_eq!(tx.push_partial_slice(&[1, 2]).unwrap(), 2);
        let mut stopped = ring.consumer().unwrap();
        let dead = stopped.token();
        assert_eq!(stopped.record_and_stop().unwrap(), 0);
        let mut tx = tx.with_recovery(move |t: u64| t == dead, Duration::ZERO);
        let mut live = ring.consumer().unwrap();
        let window = Window::new();
        let w = window.clone();
        let tc = thread::spawn(move || {
            let (h, k) = live.claim_and_hold_run(2).unwrap();
            w.held();
            w.wait_looked();
            // SAFETY: h..h + k were claimed by this handle and are not released yet.
            let r: Vec<_> = (h..h + k)
                .map(|p| unsafe { live.release_held(p) })
                .collect();
            (live, k, r)
        });
        window.wait_held();
        push_once_looked(&mut tx, 3, &window);
        let (mut live, k, r) = tc.join().unwrap();
        assert_eq!(k, 2);
        assert!(
            r.iter().all(Result::is_ok),
            "live batch claim released: {r:?}"
        );
        assert_eq!(pop(&mut live), 3);
        assert_eq!(ring.stats(), Stats::default());
        drop(stopped);
    });
}

// The batch paths' slot checks (the sequence loads of pop_partial_slice and
// push_partial_slice).

/// A batch pop reads only slots whose publication it acquired (loom checks the cells).
#[test]
fn batch_pop_reads_only_published_slots() {
    model(|| {
        let ring = mpmc::Ring::<u64>::new_model(2, 4).unwrap();
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        let tp = thread::spawn(move || {
            tx.try_push(1).unwrap();
            tx.try_push(2).unwrap();
        });
        let (mut got, mut buf) = (Vec::new(), [0u64; 2]);
        while got.len() < 2 {
            match rx.pop_partial_slice(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(TryError::Empty { .. }) => thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        tp.join().unwrap();
        assert_eq!(got, [1, 2]);
    });
}

/// A batch push writes only slots whose release (by the previous lap's consumer) it
/// acquired: the consumer is still popping 1 and 2 when 3 and 4 go into the same slots.
#[test]
fn batch_push_writes_only_released_slots() {
    model(|| {
        let ring = mpmc::Ring::<u64>::new_model(2, 4).unwrap();
        let mut tx = ring.producer().unwrap();
        assert_eq!(tx.push_partial_slice(&[1, 2]).unwrap(), 2);
        let mut rx = ring.consumer().unwrap();
        let tc = thread::spawn(move || {
            let first = [pop(&mut rx), pop(&mut rx)];
            (rx, first)
        });
        let src = [3u64, 4];
        let mut done = 0;
        while done < src.len() {
            let n = until_room("push", || tx.push_partial_slice(&src[done..]));
            done += n;
        }
        let (mut rx, first) = tc.join().unwrap();
        assert_eq!(first, [1, 2]);
        assert_eq!([pop(&mut rx), pop(&mut rx)], [3, 4]);
    });
}

// An owner entry handed from a dropped handle to a new one (Drop's token store, the
// registration CAS).

/// The owner table is full (a dead record, the consumer, and `leaving`). A producer thread
/// waits for an entry, gets `leaving`'s when it drops, and claims position 0, which the
/// dead record also covers. The dropped holder's last `claim_len = 0` must stay ordered
/// before the new holder's record; otherwise the consumer can read it as the entry's
/// current value, miss the live veto and poison the live claim.
#[test]
fn a_reused_owner_entry_shows_its_new_holders_claim() {
    model(|| {
        let ring = mpmc::Ring::<u64>::new_model(2, 3).unwrap();
        let mut stopped = ring.producer().unwrap(); // entry 0
        let dead = stopped.token();
        assert_eq!(stopped.record_and_stop().unwrap(), 0);
        let mut rx = ring
            .consumer() // entry 1
            .unwrap()
            .with_recovery(move |t: u64| t == dead, Duration::ZERO);
        let leaving = ring.producer().unwrap(); // entry 2, the last one
        let r2 = ring.clone();
        let tp = thread::spawn(move || {
            let mut tx = loop {
                match r2.producer() {
                    Ok(tx) => break tx,
                    Err(Error::OwnerTableFull { .. }) => thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            };
            let r = tx.try_push(8);
            (tx, r)
        });
        // Dropped after the spawn, so only the entry hand-over orders its writes before
        // the new holder's.
        drop(leaving);
        let got = pop_unless_skipped(&ring, &mut rx, 1);
        let (tx, pushed) = tp.join().unwrap();
        assert!(pushed.is_ok(), "live producer's claim revoked: {pushed:?}");
        assert_eq!(got, Some(8));
        assert_eq!(ring.stats(), Stats::default());
        drop((tx, stopped));
    });
}

// The poison CAS's Release, with a death only the liveness check sees.

/// A producer dies in its own thread after writing (part of) position 0. Only the
/// recovering consumer (`poisoner`, the main thread) learns of the death, through the
/// liveness check. Another thread skips the poisoned position and then, as a producer,
/// reuses slot 0 a lap later (position 2). Its write must be ordered after the dead
/// producer's write. The chain is the liveness check, then the poison CAS (Release), then
/// the skipper's Acquire load of the sequence. Loom reports the two writes to slot 0's cell
/// as a race if the chain is cut.
#[test]
fn a_poisoned_slot_is_reused_only_after_the_dead_producers_write() {
    // Three threads: with the suite's bound of 3 preemptions this model alone takes
    // minutes; the reordering it looks for needs one.
    let mut b = loom::model::Builder::new();
    b.max_branches = 100_000;
    b.preemption_bound = Some(PREEMPTIONS_3_THREADS);
    b.check(|| {
        let ring = mpmc::Ring::<u64>::new_model(2, 4).unwrap();
        let death = Death::new();
        let mut d = ring.producer().unwrap();
        let mut poisoner = ring
            .consumer()
            .unwrap()
            .with_recovery(death.check(d.token()), Duration::ZERO);
        let mut skipper = ring.consumer().unwrap();
        let mut tx = ring.producer().unwrap();
        let dying = death.clone();
        let td = thread::spawn(move || {
            until_room("claim", || d.claim_and_hold(7)); // whichever position is next
            dying.die();
            d
        });
        let ts = thread::spawn(move || {
            until_room("push", || tx.try_push(8)); // position 1 (or 0)
            let mine = skipper.try_pop().ok(); // may skip the poisoned position itself
            until_room("push", || tx.try_push(9)); // position 2: slot 0 again
            (skipper, tx, mine)
        });
        let mut got = Vec::new();
        while ring.stats().skipped == 0 {
            match poisoner.try_pop() {
                Ok(v) => got.push(v),
                Err(TryError::Empty { .. }) => thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        let d = td.join().unwrap();
        let (skipper, tx, mine) = ts.join().unwrap();
        got.extend(mine);
        while let Ok(v) = poisoner.try_pop() {
            got.push(v);
        }
        got.sort_unstable();
        assert_eq!(got, [8, 9]);
        assert_eq!(ring.stats().skipped, 1);
        drop((d, skipper, tx));
    });
}

// Attach's position check (check_positions' tail load), through the loom-only
// `Ring::check_positions_for_model`.

/// Attach's position check, run over and over while another thread pops one element and
/// pushes one into the freed slot: it never calls the healthy ring corrupted
/// (`tail > head + capacity` from a fresh tail and a stale head).
#[test]
fn attach_check_never_reports_a_healthy_ring() {
    model(|| {
        let ring = mpmc::Ring::<u64>::new_model(2, 4).unwrap();
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        tx.try_push(1).unwrap();
        tx.try_push(2).unwrap();
        let window = Window::new();
        let w = window.clone();
        let t = thread::spawn(move || {
            assert_eq!(rx.try_pop().unwrap(), 1);
            tx.try_push(3).unwrap(); // tail 3: a lap ahead of the head this thread moved
            w.held();
            (tx, rx)
        });
        loop {
            ring.check_positions_for_model().unwrap();
            if window.is_held() {
                break;
            }
            thread::yield_now();
        }
        ring.check_positions_for_model().unwrap();
        let (tx, mut rx) = t.join().unwrap();
        assert_eq!([pop(&mut rx), pop(&mut rx)], [2, 3]);
        drop(tx);
    });
}

// reclaim_dead_owners must judge the claim it read after the liveness check, not before
// (failed before the fix: a holder that claimed and died between the two lost its entry,
// and the ring stayed stuck at its position).

/// A producer claims position 0 and dies, concurrently with a reclaim. Its claim is
/// unresolved (nobody consumed or skipped position 0), so its entry must not be freed:
/// recovery of position 0 needs it. Today the reclaim can read the entry before the claim
/// (or stale), then ask the liveness check after the death, and free the entry. Position 0
/// then has no covering owner, and the ring is stuck there for good.
#[test]
fn reclaim_never_frees_an_entry_whose_claim_is_unresolved() {
    model(|| {
        let ring = mpmc::Ring::<u64>::new_model(2, 4).unwrap();
        let death = Death::new();
        let mut d = ring.producer().unwrap();
        let check = death.check(d.token());
        let dying = death.clone();
        let td = thread::spawn(move || {
            d.claim_and_hold(7).unwrap(); // position 0
            dying.die();
            d
        });
        let freed = ring.reclaim_dead_owners(&check);
        let d = td.join().unwrap();
        assert_eq!(freed, 0, "the entry of an unresolved dead claim was freed");
        drop(d);
    });
}
