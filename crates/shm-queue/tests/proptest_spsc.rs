//! The SPSC ring against a `VecDeque` model: random sequences of every operation, on rings
//! small enough that batches straddle block boundaries and the end of the ring.
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

mod common;

use shm_queue::TryError;
use std::collections::VecDeque;
use std::sync::Arc;

use common::{Elem, Wide};
use proptest::prelude::*;
use shm_queue::spsc::Ring;
use shm_region::Region;

#[derive(Debug, Clone)]
enum Op {
    Push,
    PushSlice(usize),
    WriteChunk {
        n: usize,
        commit: usize,
        up_to: bool,
    },
    /// A chunk of up to `n` filled by `fill_from_iter` from `supply` items, all committed.
    FillChunk {
        n: usize,
        supply: usize,
    },
    Pop,
    PopInto(usize),
    ReadChunk {
        n: usize,
        commit: usize,
        up_to: bool,
    },
    Peek,
    Len,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Push),
        2 => (0usize..40).prop_map(Op::PushSlice),
        2 => (0usize..40, 0usize..45, any::<bool>())
            .prop_map(|(n, commit, up_to)| Op::WriteChunk { n, commit, up_to }),
        2 => (0usize..40, 0usize..45).prop_map(|(n, supply)| Op::FillChunk { n, supply }),
        4 => Just(Op::Pop),
        2 => (0usize..40).prop_map(Op::PopInto),
        2 => (0usize..40, 0usize..45, any::<bool>())
            .prop_map(|(n, commit, up_to)| Op::ReadChunk { n, commit, up_to }),
        1 => Just(Op::Peek),
        1 => Just(Op::Len),
        1 => Just(Op::Reopen),
    ]
}

/// Requests a chunk of `$n` elements from `$side` with `$exact` (with `$at_most` when
/// `$up_to`), `$room` elements being free (or ready). The ring may refuse only a fixed-size
/// request larger than `$room`, and then with exactly `$refused` naming `$n` and `$room`:
/// the loop goes on to the next op. Otherwise the chunk, as long as the model expects. A
/// macro because the chunk borrows `$side` and the write and read chunks share no trait.
macro_rules! chunk_or_next_op {
    ($side:ident.$exact:ident / $at_most:ident, $n:expr, $room:expr, $up_to:expr, $refused:ident) => {{
        let requested = if $up_to {
            $side.$at_most($n)
        } else {
            $side.$exact($n)
        };
        match requested {
            Ok(chunk) => {
                assert_eq!(chunk.len(), if $up_to { $n.min($room) } else { $n });
                chunk
            }
            Err(e) => {
                assert!(!$up_to && $n > $room, "{e}");
                let refusal = TryError::$refused {
                    requested: $n,
                    available: $room,
                };
                assert_eq!(e, refusal);
                continue;
            }
        }
    }};
}

/// Commits `k` elements of a chunk of `len` through `commit`: refused with `OutOfRange`
/// past the end, else done. Returns whether it committed.
fn commit_checked(
    k: usize,
    len: usize,
    commit: impl FnOnce(usize) -> Result<(), TryError>,
) -> bool {
    if k > len {
        assert!(matches!(commit(k), Err(TryError::OutOfRange { .. })));
        false
    } else {
        commit(k).unwrap();
        true
    }
}

fn check<T: Elem>(min_capacity: usize, ops: &[Op]) {
    let region =
        Arc::new(Region::anonymous(Ring::<T>::required_bytes(min_capacity).unwrap()).unwrap());
    let ring = Ring::<T>::create(region.clone(), min_capacity).unwrap();
    let cap = ring.capacity();
    // The consumer works through a second, attached handle, as another process would.
    let other = Ring::<T>::attach(region).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), other.consumer().unwrap());
    let mut model: VecDeque<T> = VecDeque::new();
    let mut next = 0u64;
    let mut fresh = |n: usize| -> Vec<T> {
        (0..n)
            .map(|_| {
                next += 1;
                T::make(next)
            })
            .collect()
    };

    for op in ops {
        match op.clone() {
            Op::Push => {
                let v = fresh(1)[0];
                match tx.try_push(v) {
                    Ok(()) => model.push_back(v),
                    Err(TryError::Full {
                        requested: 1,
                        available: 0,
                    }) => assert_eq!(model.len(), cap),
                    Err(e) => panic!("push: {e}"),
                }
            }
            Op::PushSlice(n) => {
                let src = fresh(n);
                let k = tx.push_partial_slice(&src).unwrap();
                assert_eq!(k, n.min(cap - model.len()));
                model.extend(&src[..k]);
            }
            Op::WriteChunk { n, commit, up_to } => {
                let free = cap - model.len();
                let mut chunk =
                    chunk_or_next_op!(tx.write_chunk / write_chunk_up_to, n, free, up_to, Full);
                let len = chunk.len();
                let src = fresh(len);
                // Write the first half with copy_from_slice, the rest by index.
                let half = len / 2;
                chunk.copy_from_slice(0, &src[..half]).unwrap();
                for (i, v) in src.iter().enumerate().skip(half) {
                    chunk.set(i, *v).unwrap();
                }
                assert!(chunk
                    .set(len, src.first().copied().unwrap_or(T::make(0)))
                    .is_err());
                assert!(chunk.copy_from_slice(len, &src[..len.min(1)]).is_err() || len == 0);
                if commit_checked(commit, len, |k| chunk.commit(k)) {
                    model.extend(&src[..commit]);
                }
            }
            Op::FillChunk { n, supply } => {
                let free = cap - model.len();
                let mut chunk =
                    chunk_or_next_op!(tx.write_chunk / write_chunk_up_to, n, free, true, Full);
                let len = chunk.len();
                let src = fresh(supply);
                let mut items = src.iter().copied();
                let k = chunk.fill_from_iter(&mut items);
                assert_eq!(k, len.min(supply));
                // No item is taken from the iterator without a slot for it.
                assert_eq!(items.len(), supply - k);
                chunk.commit(k).unwrap();
                model.extend(&src[..k]);
            }
            Op::Pop => match rx.try_pop() {
                Ok(v) => assert_eq!(Some(v), model.pop_front()),
                Err(TryError::Empty { .. }) => assert!(model.is_empty()),
                Err(e) => panic!("pop: {e}"),
            },
            Op::PopInto(n) => {
                let mut buf = vec![T::zeroed(); n];
                let k = rx.pop_partial_slice(&mut buf).unwrap();
                assert_eq!(k, n.min(model.len()));
                let want: Vec<T> = model.drain(..k).collect();
                assert_eq!(&buf[..k], &want[..]);
            }
            Op::ReadChunk { n, commit, up_to } => {
                let ready = model.len();
                let chunk =
                    chunk_or_next_op!(rx.read_chunk / read_chunk_up_to, n, ready, up_to, Empty);
                let len = chunk.len();
                let want: Vec<T> = model.iter().take(len).copied().collect();
                assert_eq!(chunk.iter().collect::<Vec<T>>(), want);
                assert_eq!(chunk.iter().len(), len);
                for (i, w) in want.iter().enumerate() {
                    assert_eq!(chunk.get(i).as_ref(), Some(w));
                }
                assert_eq!(chunk.get(len), None);
                if len > 0 {
                    let mut part = vec![T::zeroed(); len - 1];
                    chunk.copy_to_slice(1, &mut part).unwrap();
                    assert_eq!(&part[..], &want[1..]);
                    assert!(chunk
                        .copy_to_slice(1, &mut [T::zeroed(); 1].repeat(len))
                        .is_err());
                }
                if commit_checked(commit, len, |k| chunk.commit(k)) {
                    model.drain(..commit);
                }
            }
            Op::Peek => match rx.peek() {
                Ok(v) => assert_eq!(Some(&v), model.front()),
                Err(TryError::Empty { .. }) => assert!(model.is_empty()),
                Err(e) => panic!("peek: {e}"),
            },
            Op::Len => {
                assert_eq!(tx.len(), model.len());
                assert_eq!(tx.slots(), cap - model.len());
                assert_eq!(rx.len(), model.len());
                assert_eq!(rx.slots(), model.len());
                assert_eq!(rx.is_empty(), model.is_empty());
                assert_eq!(tx.is_full(), model.len() == cap);
            }
            Op::Reopen => {
                drop((tx, rx));
                tx = other.producer().unwrap();
                rx = ring.consumer().unwrap();
            }
        }
        assert_eq!(tx.position() - rx.position(), model.len() as u64);
    }
    // Drain and compare what is left.
    let mut rest = vec![T::zeroed(); cap];
    let k = rx.pop_partial_slice(&mut rest).unwrap();
    assert_eq!(&rest[..k], &model.drain(..).collect::<Vec<T>>()[..]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn u64_ring_matches_model(cap in 1usize..40, ops in proptest::collection::vec(op(), 1..200)) {
        check::<u64>(cap, &ops);
    }

    #[test]
    fn u16_ring_matches_model(cap in 1usize..80, ops in proptest::collection::vec(op(), 1..200)) {
        check::<u16>(cap, &ops);
    }

    #[test]
    fn wide_ring_matches_model(cap in 1usize..10, ops in proptest::collection::vec(op(), 1..200)) {
        check::<Wide>(cap, &ops);
    }
}

#[test]
fn fill_from_iter_writes_in_order() {
    let region = Region::anonymous(4096).unwrap();
    let (mut tx, mut rx) = Ring::<u64>::create(region, 10).unwrap().split().unwrap();
    for round in 0..5u64 {
        let mut chunk = tx.write_chunk(9).unwrap();
        assert_eq!(chunk.fill_from_iter((0..).map(|i| round * 100 + i)), 9);
        chunk.commit_all();
        let mut chunk = tx.write_chunk_up_to(100).unwrap();
        assert_eq!(chunk.len(), 5);
        assert_eq!(chunk.fill_from_iter([1, 2]), 2);
        chunk.commit(2).unwrap();
        let mut out = [0u64; 11];
        assert_eq!(rx.pop_partial_slice(&mut out).unwrap(), 11);
        let want: Vec<u64> = (0..9).map(|i| round * 100 + i).chain([1, 2]).collect();
        assert_eq!(&out[..], &want[..]);
    }
}
