//! The byte ring against a `VecDeque<Vec<u8>>` model: random sends, zero-copy claims
//! (committed, shortened or aborted), receives into buffers and read guards, on small rings
//! so that records wrap and padding records are frequent.
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

use shm_queue::TryError;
use std::collections::VecDeque;

use proptest::prelude::*;
use shm_queue::bytes;
use shm_region::Region;

#[derive(Debug, Clone)]
enum Op {
    Send(Vec<u8>),
    Claim { len: usize, commit: Option<usize> },
    Recv { buf: usize },
    Read,
    Reattach,
}

fn op(max: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..=max).prop_map(Op::Send),
        2 => (0..=max, proptest::option::of(0..=max)).prop_map(|(len, commit)| Op::Claim { len, commit }),
        3 => (0..=max + 8).prop_map(|buf| Op::Recv { buf }),
        2 => Just(Op::Read),
        1 => Just(Op::Reattach),
    ]
}

fn run(capacity: usize, max: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let region = Region::anonymous(bytes::Ring::required_bytes(capacity).unwrap()).unwrap();
    let ring = bytes::Ring::create(region, capacity, max).unwrap();
    let (mut tx, mut rx) = ring.split().unwrap();
    let mut model: VecDeque<Vec<u8>> = VecDeque::new();
    for op in ops {
        match op {
            Op::Send(m) => match tx.try_push(&m) {
                Ok(()) => model.push_back(m),
                Err(TryError::Full { .. }) => prop_assert!(!model.is_empty(), "full while empty"),
                Err(e) => return Err(TestCaseError::fail(e.to_string())),
            },
            Op::Claim { len, commit } => match tx.claim(len) {
                Ok(mut c) => {
                    let m: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
                    c.write_at(0, &m).unwrap();
                    match commit {
                        None => c.abort(),
                        Some(k) if k <= len => {
                            c.commit_len(k).unwrap();
                            model.push_back(m[..k].to_vec());
                        }
                        Some(k) => prop_assert!(c.commit_len(k).is_err()),
                    }
                }
                Err(TryError::Full { .. }) => prop_assert!(!model.is_empty(), "full while empty"),
                Err(e) => return Err(TestCaseError::fail(e.to_string())),
            },
            Op::Recv { buf } => {
                let mut b = vec![0u8; buf];
                match rx.try_pop(&mut b) {
                    Ok(n) => {
                        let want = model.pop_front().unwrap();
                        prop_assert_eq!(&b[..n], &want[..]);
                    }
                    Err(TryError::Empty { .. }) => prop_assert!(model.is_empty()),
                    Err(TryError::BufferTooSmall { needed, .. }) => {
                        prop_assert_eq!(needed, model.front().unwrap().len());
                    }
                    Err(e) => return Err(TestCaseError::fail(e.to_string())),
                }
            }
            Op::Read => match rx.read() {
                Ok(g) => {
                    let want = model.pop_front().unwrap();
                    prop_assert_eq!(g.to_vec(), want);
                }
                Err(TryError::Empty { .. }) => prop_assert!(model.is_empty()),
                Err(e) => return Err(TestCaseError::fail(e.to_string())),
            },
            Op::Reattach => {
                drop((tx, rx));
                let again = bytes::Ring::attach(ring.region().clone()).unwrap();
                (tx, rx) = again.split().unwrap();
            }
        }
    }
    // Drain: everything the model holds comes out, in order.
    while let Some(want) = model.pop_front() {
        prop_assert_eq!(rx.read().unwrap().to_vec(), want);
    }
    let empty = matches!(rx.read(), Err(TryError::Empty { .. }));
    prop_assert!(empty);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn smallest_ring(ops in proptest::collection::vec(op(24), 0..200)) {
        run(64, 24, ops)?;
    }

    #[test]
    fn small_ring_odd_sizes(ops in proptest::collection::vec(op(100), 0..300)) {
        run(256, 100, ops)?;
    }

    #[test]
    fn larger_ring(ops in proptest::collection::vec(op(700), 0..300)) {
        run(2048, 700, ops)?;
    }
}
