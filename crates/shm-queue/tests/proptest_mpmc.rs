//! The MPMC ring against a `VecDeque` model in one thread (random sequences of every
//! operation, through several handles, on rings small enough that every batch wraps), and a
//! multi-threaded test with per-producer sequence numbers.
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

mod common;

use shm_queue::TryError;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Elem, Wide};
use proptest::prelude::*;
use shm_queue::mpmc::{self, SlotLayout};
use shm_queue::Error;
use shm_region::Region;

#[derive(Debug, Clone)]
enum Op {
    Push(usize),
    PushSlice(usize, usize),
    Pop(usize),
    PopInto(usize, usize),
    Len,
    Reattach,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize).prop_map(Op::Push),
        2 => (0..3usize, 0..12usize).prop_map(|(h, n)| Op::PushSlice(h, n)),
        4 => (0..3usize).prop_map(Op::Pop),
        2 => (0..3usize, 0..12usize).prop_map(|(h, n)| Op::PopInto(h, n)),
        1 => Just(Op::Len),
        1 => Just(Op::Reattach),
    ]
}

fn slot_layout() -> impl Strategy<Value = SlotLayout> {
    prop_oneof![Just(SlotLayout::Packed), Just(SlotLayout::Line)]
}

fn run<T: Elem>(capacity: usize, slots: SlotLayout, ops: &[Op]) {
    let opts = mpmc::Options::new(capacity).slot_layout(slots);
    let region =
        Arc::new(Region::anonymous(mpmc::Ring::<T>::required_bytes_with(opts).unwrap()).unwrap());
    let mut ring = mpmc::Ring::<T>::create_with(region.clone(), opts).unwrap();
    let cap = ring.capacity();
    assert_eq!(cap, capacity.next_power_of_two().max(2));
    let first = ring.producer().unwrap();
    let mut txs = [first.clone(), first.clone(), first];
    let rx = ring.consumer().unwrap();
    let mut rxs = [rx.clone(), rx.clone(), rx];
    let mut model = VecDeque::new();
    let mut next = 0u64;
    for op in ops {
        match *op {
            Op::Push(h) => {
                let r = txs[h].try_push(T::make(next));
                if model.len() < cap {
                    r.unwrap();
                    model.push_back(next);
                    next += 1;
                } else {
                    assert!(matches!(r, Err(TryError::Full { .. })), "{r:?}");
                }
            }
            Op::PushSlice(h, n) => {
                let src: Vec<T> = (0..n as u64).map(|i| T::make(next + i)).collect();
                let r = txs[h].push_partial_slice(&src);
                let free = cap - model.len();
                if n == 0 {
                    assert_eq!(r, Ok(0));
                } else if free == 0 {
                    assert!(matches!(r, Err(TryError::Full { .. })), "{r:?}");
                } else {
                    let k = n.min(free);
                    assert_eq!(r, Ok(k));
                    model.extend(next..next + k as u64);
                    next += k as u64;
                }
            }
            Op::Pop(h) => match model.pop_front() {
                Some(v) => assert_eq!(rxs[h].try_pop(), Ok(T::make(v))),
                None => assert!(matches!(rxs[h].try_pop(), Err(TryError::Empty { .. }))),
            },
            Op::PopInto(h, n) => {
                let mut dst = vec![T::zeroed(); n];
                let r = rxs[h].pop_partial_slice(&mut dst);
                if n == 0 {
                    assert_eq!(r, Ok(0));
                } else if model.is_empty() {
                    assert!(matches!(r, Err(TryError::Empty { .. })), "{r:?}");
                } else {
                    let k = n.min(model.len());
                    assert_eq!(r, Ok(k));
                    for d in &dst[..k] {
                        assert_eq!(*d, T::make(model.pop_front().unwrap()));
                    }
                }
            }
            Op::Len => {
                assert_eq!(ring.len(), model.len());
                assert_eq!(txs[0].len(), model.len());
                assert_eq!(rxs[0].is_empty(), model.is_empty());
            }
            Op::Reattach => {
                ring = mpmc::Ring::<T>::attach(region.clone()).unwrap();
                assert_eq!(ring.slot_layout(), slots);
                txs[2] = ring.producer().unwrap();
                rxs[2] = ring.consumer().unwrap();
            }
        }
    }
    assert_eq!(ring.stats(), Default::default());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(debug_assertions) { 256 } else { 2048 }))]

    #[test]
    fn u64_ring_matches_a_vecdeque(cap in prop_oneof![Just(2usize), Just(3), Just(4), Just(8)],
                                   slots in slot_layout(),
                                   ops in proptest::collection::vec(op(), 1..120)) {
        run::<u64>(cap, slots, &ops);
    }

    #[test]
    fn u16_ring_matches_a_vecdeque(cap in prop_oneof![Just(2usize), Just(4)],
                                   slots in slot_layout(),
                                   ops in proptest::collection::vec(op(), 1..80)) {
        run::<u16>(cap, slots, &ops);
    }

    #[test]
    fn wide_ring_matches_a_vecdeque(cap in prop_oneof![Just(2usize), Just(4)],
                                    slots in slot_layout(),
                                    ops in proptest::collection::vec(op(), 1..80)) {
        run::<Wide>(cap, slots, &ops);
    }
}

#[test]
fn owner_table_fills_and_frees() {
    let opts = mpmc::Options::new(4).owners(2);
    let region = Region::anonymous(mpmc::Ring::<u64>::required_bytes_with(opts).unwrap()).unwrap();
    let ring = mpmc::Ring::<u64>::create_with(region, opts).unwrap();
    let a = ring.producer().unwrap();
    let mut b = ring.consumer().unwrap();
    assert_eq!(
        ring.producer().unwrap_err(),
        shm_queue::Error::OwnerTableFull { entries: 2 }
    );
    // A clone registers on first use, and says so when it cannot.
    let mut a2 = a.clone();
    assert_eq!(a2.try_push(1), Err(TryError::OwnerTableFull { entries: 2 }));
    drop(a);
    a2.try_push(1).unwrap();
    assert_eq!(b.try_pop(), Ok(1));
    assert!(matches!(
        ring.producer_with_token(0),
        Err(Error::InvalidOwnerToken)
    ));
    // A dead owner's resolved entry is reclaimed; a live one is not.
    let t = a2.token();
    std::mem::forget(a2); // as if its process died without dropping it
    assert_eq!(ring.reclaim_dead_owners(&|x: u64| x == t + 1), 0);
    assert_eq!(ring.reclaim_dead_owners(&|x: u64| x == t), 1);
    ring.producer().unwrap();
}

/// Three producer threads send sequence-numbered elements (some one by one, some in
/// batches) through a small ring to three consumer threads. Each consumer sees each
/// producer's elements in increasing order, and together they receive exactly what was
/// sent: no loss, no duplicate.
#[test]
fn threads_keep_per_producer_order_and_lose_nothing() {
    const PRODUCERS: u64 = 3;
    const CONSUMERS: usize = 3;
    let per: u64 = if cfg!(debug_assertions) {
        20_000
    } else {
        300_000
    };
    let region = Region::anonymous(mpmc::Ring::<u64>::required_bytes(16).unwrap()).unwrap();
    let ring = mpmc::Ring::<u64>::create(region, 16).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let consumed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let total = PRODUCERS * per;
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let mut tx = ring.producer().unwrap();
            std::thread::spawn(move || {
                let mut seq = 0;
                while seq < per {
                    let r = if seq % 3 == 0 {
                        let n = (per - seq).min(1 + seq % 5);
                        let batch: Vec<u64> = (seq..seq + n).map(|s| (p << 32) | s).collect();
                        tx.push_partial_slice(&batch)
                    } else {
                        tx.try_push((p << 32) | seq).map(|()| 1)
                    };
                    match r {
                        Ok(n) => seq += n as u64,
                        Err(TryError::Full { .. }) => {
                            assert!(Instant::now() < deadline, "producer {p} timed out");
                            std::thread::yield_now();
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|c| {
            let mut rx = ring.consumer().unwrap();
            let consumed = consumed.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut buf = [0u64; 4];
                while consumed.load(std::sync::atomic::Ordering::Relaxed) < total {
                    match common::pop_some(&mut rx, &mut buf, c == 0) {
                        Ok(n) => {
                            got.extend_from_slice(&buf[..n]);
                            consumed.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(TryError::Empty { .. }) => {
                            assert!(Instant::now() < deadline, "consumer {c} timed out");
                            std::thread::yield_now();
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                got
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let mut seen = vec![vec![false; per as usize]; PRODUCERS as usize];
    for c in consumers {
        let got = c.join().unwrap();
        let mut last = vec![None::<u64>; PRODUCERS as usize];
        for v in got {
            let (p, s) = ((v >> 32) as usize, v & 0xffff_ffff);
            assert!(
                last[p].is_none_or(|l| l < s),
                "producer {p}: {s} after {last:?}"
            );
            last[p] = Some(s);
            assert!(!seen[p][s as usize], "duplicate {p}/{s}");
            seen[p][s as usize] = true;
        }
    }
    assert!(seen.iter().flatten().all(|&b| b), "lost elements");
    assert_eq!(ring.len(), 0);
    assert_eq!(ring.stats(), Default::default());
}

#[test]
fn attach_checks_every_field() {
    let region =
        Arc::new(Region::anonymous(mpmc::Ring::<u64>::required_bytes(8).unwrap()).unwrap());
    assert!(matches!(
        mpmc::Ring::<u64>::attach(region.clone()),
        Err(Error::NotReady { .. })
    ));
    mpmc::Ring::<u64>::create(region.clone(), 8).unwrap();
    mpmc::Ring::<u64>::attach(region.clone()).unwrap();
    assert!(matches!(
        mpmc::Ring::<i64>::attach(region.clone()),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        shm_queue::spsc::Ring::<u64>::attach(region.clone()),
        Err(Error::KindMismatch {
            found: 3,
            expected: 1
        })
    ));
    // Each layout field, garbled, has its own report.
    type Case<'a> = (usize, &'a [u8], fn(&Error) -> bool);
    let fields: [Case; 6] = [
        (16, &3u64.to_le_bytes(), |e| {
            matches!(e, Error::BadCapacity { .. })
        }),
        (96, &0u64.to_le_bytes(), |e| {
            matches!(e, Error::BadOwnerCount { owners: 0, .. })
        }),
        (96, &5000u64.to_le_bytes(), |e| {
            matches!(e, Error::BadOwnerCount { .. })
        }),
        (32, &65u32.to_le_bytes(), |e| {
            matches!(
                e,
                Error::LayoutMismatch {
                    field: "block_size",
                    ..
                }
            )
        }),
        (72, &1u64.to_le_bytes(), |e| {
            matches!(
                e,
                Error::LayoutMismatch {
                    field: "area_size",
                    ..
                }
            )
        }),
        (104, &2u64.to_le_bytes(), |e| {
            matches!(
                e,
                Error::LayoutMismatch {
                    field: "reserved1[1]",
                    ..
                }
            )
        }),
    ];
    for (off, bytes, check) in fields {
        let mut saved = vec![0u8; bytes.len()];
        region.read_at(off, &mut saved).unwrap();
        region.write_at(off, bytes).unwrap();
        let e = mpmc::Ring::<u64>::attach(region.clone()).unwrap_err();
        assert!(check(&e), "offset {off}: {e}");
        region.write_at(off, &saved).unwrap();
    }
    // More owners recorded than the region holds.
    region.write_at(96, &1000u64.to_le_bytes()).unwrap();
    assert!(mpmc::Ring::<u64>::attach(region.clone()).is_err());
    region.write_at(96, &64u64.to_le_bytes()).unwrap();
    mpmc::Ring::<u64>::attach(region.clone()).unwrap();
    // A short region.
    let small = Region::anonymous(4096).unwrap();
    assert!(matches!(
        mpmc::Ring::<u64>::create(small, 1024),
        Err(Error::RegionTooSmall { .. })
    ));
    assert!(matches!(
        mpmc::Ring::<u64>::required_bytes(usize::MAX),
        Err(Error::BadCapacity { .. })
    ));
}

/// The slot layout is recorded in the header: attachers follow the creator's, a code no
/// layout has is refused, and a code that names the other layout does not match the
/// recorded stride.
#[test]
fn attach_follows_the_recorded_slot_layout_and_refuses_a_forged_one() {
    const CODE: usize = 104; // reserved1[1]
    for (slots, code) in [(SlotLayout::Line, 0u64), (SlotLayout::Packed, 1)] {
        let opts = mpmc::Options::new(8).owners(2).slot_layout(slots);
        let region = Arc::new(
            Region::anonymous(mpmc::Ring::<u64>::required_bytes_with(opts).unwrap()).unwrap(),
        );
        let ring = mpmc::Ring::<u64>::create_with(region.clone(), opts).unwrap();
        let mut tx = ring.producer().unwrap();
        tx.try_push(7).unwrap();
        let attached = mpmc::Ring::<u64>::attach(region.clone()).unwrap();
        assert_eq!(attached.slot_layout(), slots);
        assert_eq!(attached.consumer().unwrap().try_pop(), Ok(7));
        let snap = shm_queue::header::snapshot(&region).unwrap();
        assert_eq!(snap.slot_layout, code);
        for forged in [1 - code, 2, u64::MAX] {
            region.write_at(CODE, &forged.to_le_bytes()).unwrap();
            let err = mpmc::Ring::<u64>::attach(region.clone()).unwrap_err();
            assert!(
                matches!(err, Error::LayoutMismatch { .. }),
                "{slots:?} forged {forged}: {err:?}"
            );
        }
        region.write_at(CODE, &code.to_le_bytes()).unwrap();
        mpmc::Ring::<u64>::attach(region).unwrap();
    }
}
