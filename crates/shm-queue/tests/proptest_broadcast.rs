//! The broadcast ring against a model, in one thread: random pushes (single and batch),
//! receives (single and batch), joins (newest and with history) and leaves.
//!
//! - Lossless (waiting): the publisher accepts exactly what fits before the slowest
//!   subscriber's cursor plus the capacity, and every subscriber receives exactly the
//!   elements from its start, in order.
//! - Lossy: the publisher accepts everything; a subscriber receives the element at its
//!   position or, once overtaken, one `Lagged` whose count is exactly the jump to the oldest
//!   intact position (the horizon less the capacity), never a torn or wrong element.
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use shm_queue::broadcast::{Mode, Options, Ring, SlowPolicy, Start, Subscriber};
use shm_queue::TryError;
use shm_region::Region;

#[derive(Debug, Clone)]
enum Op {
    Push(usize),
    Recv(usize, usize),
    Join(Option<usize>),
    Leave(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..40).prop_map(Op::Push),
        4 => (0usize..4, 1usize..20).prop_map(|(s, k)| Op::Recv(s, k)),
        1 => proptest::option::of(0usize..60).prop_map(Op::Join),
        1 => (0usize..4).prop_map(Op::Leave),
    ]
}

fn enc(p: u64) -> [u64; 2] {
    [p, !p]
}

struct Sub {
    rx: Subscriber<[u64; 2]>,
}

fn run(mode: Mode, capacity: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let options = Options::new(capacity).subscribers(4).mode(mode);
    let region =
        Region::anonymous(Ring::<[u64; 2]>::required_bytes_with(&options).unwrap()).unwrap();
    let ring = Ring::<[u64; 2]>::create_with(region, options).unwrap();
    let cap = ring.capacity() as u64;
    let lossless = mode.is_lossless();
    let mut tx = ring.publisher().unwrap();
    let mut subs: Vec<Sub> = Vec::new();
    let mut tail = 0u64;
    for op in ops {
        match op {
            Op::Push(k) => {
                let src: Vec<_> = (tail..tail + k as u64).map(enc).collect();
                let fits = |gate: u64| (gate + cap - tail).min(k as u64) as usize;
                let (least, most) = if lossless {
                    // The publisher gates on every cursor it has seen, but learns of a
                    // subscriber that joined with history only at its next scan of the
                    // table, so it may overwrite that history (never what was published
                    // from the join on) until then.
                    let oldest = ring.stats().horizon.saturating_sub(cap);
                    let strict = subs.iter().map(|s| s.rx.position().max(oldest)).min();
                    let loose = subs
                        .iter()
                        .map(|s| s.rx.position().max(s.rx.joined_at()))
                        .min();
                    (fits(strict.unwrap_or(tail)), fits(loose.unwrap_or(tail)))
                } else {
                    (k.min(cap as usize), k.min(cap as usize))
                };
                let got = if k == 1 {
                    match tx.try_push(src[0]) {
                        Ok(()) => 1,
                        Err(TryError::Full { .. }) => 0,
                        Err(e) => return Err(TestCaseError::fail(format!("push: {e}"))),
                    }
                } else {
                    tx.push_partial_slice(&src).unwrap()
                };
                prop_assert!(
                    least <= got && got <= most,
                    "push of {} at {}: {} not in {}..={}",
                    k,
                    tail,
                    got,
                    least,
                    most
                );
                tail += got as u64;
            }
            Op::Recv(s, k) => {
                let n = subs.len();
                if n == 0 {
                    continue;
                }
                let sub = &mut subs[s % n];
                let (at, lost_before) = (sub.rx.position(), sub.rx.history_lost());
                let joined = sub.rx.joined_at();
                let mut buf = vec![[0u64; 2]; k];
                let r = if k == 1 {
                    sub.rx.try_recv().map(|v| {
                        buf[0] = v;
                        1
                    })
                } else {
                    sub.rx.recv_partial_slice(&mut buf)
                };
                // History overwritten before the publisher saw the subscriber is skipped
                // silently (and counted), never elements published after it joined.
                let skipped = sub.rx.history_lost() - lost_before;
                prop_assert!(at + skipped <= joined.max(at));
                let from = at + skipped;
                match r {
                    Ok(got) => {
                        prop_assert_eq!(got as u64, (tail - from).min(k as u64));
                        for (i, v) in buf[..got].iter().enumerate() {
                            prop_assert_eq!(*v, enc(from + i as u64));
                        }
                    }
                    Err(TryError::Empty { .. }) => prop_assert_eq!(from, tail),
                    Err(TryError::Lagged { missed }) if !lossless => {
                        let oldest = ring.stats().horizon - cap;
                        prop_assert!(from < oldest);
                        prop_assert_eq!(missed, oldest - from.max(joined));
                        prop_assert_eq!(sub.rx.position(), oldest);
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("recv at {at}: {e}"))),
                }
            }
            Op::Join(history) => {
                let start = history.map_or(Start::Newest, Start::History);
                match ring.subscriber(start) {
                    Ok(rx) => {
                        let oldest = ring.stats().horizon.saturating_sub(cap);
                        let from = match history {
                            None => tail,
                            Some(h) => tail.saturating_sub(h as u64).max(oldest),
                        };
                        prop_assert_eq!(rx.position(), from);
                        subs.push(Sub { rx });
                    }
                    Err(shm_queue::Error::SubscribersFull { .. }) => prop_assert_eq!(subs.len(), 4),
                    Err(e) => return Err(TestCaseError::fail(format!("join: {e}"))),
                }
            }
            Op::Leave(s) => {
                if !subs.is_empty() {
                    let n = subs.len();
                    subs.remove(s % n);
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn lossless_matches_the_model(cap in 1usize..40, ops in proptest::collection::vec(op(), 1..200)) {
        run(Mode::Lossless(SlowPolicy::Wait), cap, ops)?;
    }

    #[test]
    fn lossy_matches_the_model(cap in 1usize..40, ops in proptest::collection::vec(op(), 1..200)) {
        run(Mode::Lossy, cap, ops)?;
    }
}
