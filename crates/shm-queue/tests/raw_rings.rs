//! Rings of [`Raw`] elements (shape given at run time, moved as bytes) against typed rings of
//! the same named element, both ways, for SPSC and MPMC: the same bytes in the same order,
//! whole elements only, mismatched shapes and names refused, and random shapes against a
//! `VecDeque` model. One MPMC test mixes a raw and a typed producer process.
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytemuck::{Pod, Zeroable};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use proptest::prelude::*;
use shm_queue::{mpmc, spsc, ElementType, Error, Raw, TryError};
use shm_region::Region;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
struct Tick {
    seq: u64,
    value: f64,
    check: u32,
    producer: u32,
}

const TICK: &str = "test.Tick/1";

fn tick(producer: u32, seq: u64) -> Tick {
    Tick {
        seq,
        value: seq as f64 * 0.5,
        check: (seq as u32).wrapping_mul(0x9e37_79b9) ^ producer,
        producer,
    }
}

fn elem() -> ElementType {
    ElementType::named(TICK, 24, 8).unwrap()
}

fn spsc_pair() -> (spsc::Ring<Tick>, spsc::Ring<Raw>) {
    let e = elem();
    let region =
        Arc::new(Region::anonymous(spsc::Ring::<Raw>::required_bytes_as(&e, 16).unwrap()).unwrap());
    let typed = spsc::Ring::<Tick>::create_as(region.clone(), &e, spsc::Options::new(16)).unwrap();
    let raw = spsc::Ring::<Raw>::attach_as(region, &e).unwrap();
    (typed, raw)
}

#[test]
fn spsc_typed_to_raw_and_back_in_order() {
    let (typed, raw) = spsc_pair();
    assert_eq!(raw.element_size(), 24);
    // Typed producer, raw consumer with buffers of 1 to 5 elements (and a ragged tail).
    let (mut tx, mut rx) = (typed.producer().unwrap(), raw.consumer().unwrap());
    let (mut sent, mut got) = (0u64, 0u64);
    let mut buf = [0u8; 5 * 24 + 7];
    while got < 10_000 {
        while sent < 10_000 && tx.try_push(tick(1, sent)).is_ok() {
            sent += 1;
        }
        let len = 24 * (1 + (got % 5) as usize) + (got % 3) as usize;
        let n = rx.pop_partial_into(&mut buf[..len]).unwrap();
        for k in 0..n {
            let t: Tick = bytemuck::pod_read_unaligned(&buf[24 * k..24 * (k + 1)]);
            assert_eq!(t, tick(1, got));
            got += 1;
        }
    }
    drop((tx, rx));
    // Raw producer (batches of 1 to 4), typed consumer.
    let (mut tx, mut rx) = (raw.producer().unwrap(), typed.consumer().unwrap());
    let (mut sent, mut got) = (0u64, 0u64);
    while got < 10_000 {
        let k = (1 + sent % 4).min(10_000 - sent);
        let bytes: Vec<u8> = (sent..sent + k)
            .flat_map(|s| bytemuck::bytes_of(&tick(2, s)).to_vec())
            .collect();
        if k > 0 {
            sent += tx.push_partial_bytes(&bytes).unwrap() as u64;
        }
        while let Ok(t) = rx.try_pop() {
            assert_eq!(t, tick(2, got));
            got += 1;
        }
    }
}

#[test]
fn raw_calls_take_whole_elements_only() {
    let (_typed, raw) = spsc_pair();
    let (mut tx, mut rx) = raw.split().unwrap();
    assert_eq!(
        tx.push_partial_bytes(&[0; 25]),
        Err(TryError::NotWholeElements {
            len: 25,
            elem_size: 24
        })
    );
    assert_eq!(
        tx.push_entire_bytes(&[0; 23]),
        Err(TryError::NotWholeElements {
            len: 23,
            elem_size: 24
        })
    );
    assert_eq!(rx.len(), 0, "nothing was sent");
    tx.push_entire_bytes(&[7; 48]).unwrap();
    assert_eq!(
        rx.pop_partial_into(&mut [0; 23]),
        Err(TryError::NotWholeElements {
            len: 23,
            elem_size: 24
        })
    );
    let mut out = [1u8; 40];
    assert_eq!(
        rx.pop_partial_into(&mut out).unwrap(),
        1,
        "one whole element fits"
    );
    assert_eq!(&out[..24], &[7; 24]);
    assert_eq!(&out[24..], &[1; 16], "the rest of the buffer is untouched");
    // All or nothing.
    assert!(matches!(
        tx.push_entire_bytes(&vec![0; 24 * 16]),
        Err(TryError::Full {
            requested: 16,
            available: 15
        })
    ));
}

#[test]
fn mismatched_names_and_shapes_are_refused() {
    let (typed, _raw) = spsc_pair();
    let region = typed.region().clone();
    for other in [
        ElementType::named("test.Tick/2", 24, 8).unwrap(),
        ElementType::named(TICK, 24, 4).unwrap(),
        ElementType::named(TICK, 32, 8).unwrap(),
        ElementType::of::<[u64; 3]>(),
    ] {
        assert!(
            matches!(
                spsc::Ring::<Raw>::attach_as(region.clone(), &other),
                Err(Error::TypeMismatch { .. })
            ),
            "{other:?}"
        );
    }
    // A Pod type of another shape than the named element.
    assert!(matches!(
        spsc::Ring::<u64>::attach_as(region.clone(), &elem()),
        Err(Error::TypeMismatch {
            expected_size: 8,
            found_size: 24,
            ..
        })
    ));
    // A typed ring made the default way is a raw ring of its `type_name`.
    let region = Region::anonymous(spsc::Ring::<u64>::required_bytes(8).unwrap()).unwrap();
    let ring = spsc::Ring::<u64>::create(region, 8).unwrap();
    let raw =
        spsc::Ring::<Raw>::attach_as(ring.region().clone(), &ElementType::of::<u64>()).unwrap();
    ring.producer().unwrap().try_push(0x0102_0304).unwrap();
    let mut b = [0u8; 8];
    assert_eq!(raw.consumer().unwrap().pop_partial_into(&mut b).unwrap(), 1);
    assert_eq!(u64::from_ne_bytes(b), 0x0102_0304);
}

#[test]
fn raw_blocking_calls_wait_and_see_close() {
    for mpmc_kind in [false, true] {
        let e = ElementType::named("blocking.E/1", 12, 4).unwrap();
        let soon = || Some(Instant::now() + Duration::from_millis(20));
        let mut out = [0u8; 36];
        if mpmc_kind {
            let o = mpmc::Options::new(4);
            let r =
                Region::anonymous(mpmc::Ring::<Raw>::required_bytes_as(&e, o).unwrap()).unwrap();
            let ring = mpmc::Ring::<Raw>::create_as(r, &e, o).unwrap();
            let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
            assert!(matches!(
                rx.pop_into_blocking(&mut out, soon()),
                Err(Error::Timeout { .. })
            ));
            let (done, err) = tx.push_bytes_blocking(&[5; 12 * 5], soon()).unwrap_err();
            assert_eq!(done, 4);
            assert!(matches!(err, Error::Timeout { .. }));
            assert_eq!(rx.pop_into_blocking(&mut out, None).unwrap(), 3);
            assert_eq!(rx.pop_into_blocking(&mut out, None).unwrap(), 1);
            tx.close();
            assert!(matches!(
                rx.pop_into_blocking(&mut out, None),
                Err(Error::Closed { .. })
            ));
        } else {
            let r =
                Region::anonymous(spsc::Ring::<Raw>::required_bytes_as(&e, 4).unwrap()).unwrap();
            let ring = spsc::Ring::<Raw>::create_as(r, &e, spsc::Options::new(4)).unwrap();
            let cap = ring.capacity();
            let (mut tx, mut rx) = ring.split().unwrap();
            assert!(matches!(
                rx.pop_into_blocking(&mut out, soon()),
                Err(Error::Timeout { .. })
            ));
            let (done, err) = tx
                .push_bytes_blocking(&vec![5; 12 * (cap + 1)], soon())
                .unwrap_err();
            assert_eq!(done, cap);
            assert!(matches!(err, Error::Timeout { .. }));
            assert_eq!(rx.pop_into_blocking(&mut out, None).unwrap(), 3.min(cap));
            tx.close();
            while rx.pop_into_blocking(&mut out, None).is_ok() {}
            assert!(matches!(
                rx.pop_into_blocking(&mut out, None),
                Err(Error::Closed { .. })
            ));
        }
    }
}

/// A raw and a typed producer process into one MPMC ring, drained by a raw consumer in the
/// parent: every element arrives once, each producer's in order.
#[test]
fn mpmc_raw_and_typed_producers_across_processes() {
    let e = elem();
    let o = mpmc::Options::new(64);
    let region =
        Arc::new(Region::anonymous(mpmc::Ring::<Raw>::required_bytes_as(&e, o).unwrap()).unwrap());
    let ring = mpmc::Ring::<Raw>::create_as(region.clone(), &e, o).unwrap();
    let per = if cfg!(debug_assertions) {
        20_000
    } else {
        200_000
    };
    let mut kids = Vec::new();
    for p in 0..2u32 {
        // SAFETY: the child only uses the ring and its own heap, then `_exit`s.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                let ok = std::panic::catch_unwind(|| {
                    let deadline = Some(Instant::now() + Duration::from_secs(60));
                    if p == 0 {
                        let ring = mpmc::Ring::<Raw>::attach_as(region.clone(), &e).unwrap();
                        let mut tx = ring.producer().unwrap();
                        for s in (0..per).step_by(3) {
                            let bytes: Vec<u8> = (s..(s + 3).min(per))
                                .flat_map(|s| bytemuck::bytes_of(&tick(p, s)).to_vec())
                                .collect();
                            tx.push_bytes_blocking(&bytes, deadline).unwrap();
                        }
                    } else {
                        let ring = mpmc::Ring::<Tick>::attach_as(region.clone(), &e).unwrap();
                        let mut tx = ring.producer().unwrap();
                        for s in 0..per {
                            tx.push_blocking(tick(p, s), deadline).unwrap();
                        }
                    }
                })
                .is_ok();
                // SAFETY: ends the child without running the parent's destructors.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            ForkResult::Parent { child } => kids.push(child),
        }
    }
    let mut rx = ring.consumer().unwrap();
    let mut next = [0u64; 2];
    let mut buf = vec![0u8; 24 * 7];
    let deadline = Instant::now() + Duration::from_secs(120);
    while next != [per, per] {
        assert!(Instant::now() < deadline, "stalled at {next:?}");
        let n = match rx
            .pop_into_blocking(&mut buf, Some(Instant::now() + Duration::from_millis(100)))
        {
            Ok(n) => n,
            Err(Error::Timeout { .. }) => continue,
            Err(e) => panic!("{e}"),
        };
        for k in 0..n {
            let t: Tick = bytemuck::pod_read_unaligned(&buf[24 * k..24 * (k + 1)]);
            let p = t.producer as usize;
            assert!(p < 2, "{t:?}");
            assert_eq!(t, tick(t.producer, next[p]));
            next[p] += 1;
        }
    }
    for kid in kids {
        assert_eq!(waitpid(kid, None).unwrap(), WaitStatus::Exited(kid, 0));
    }
}

type Push = Box<dyn FnMut(&[u8]) -> usize>;
type Pop = Box<dyn FnMut(&mut [u8]) -> usize>;

#[derive(Debug, Clone)]
enum Op {
    Push(usize),
    Pop(usize),
}

fn shape() -> impl Strategy<Value = (usize, usize)> {
    (0u32..7, 1usize..=200).prop_map(|(a, k)| {
        let align = 1usize << a;
        (align * k.div_ceil(align).max(1), align)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random element shapes and batch sizes against a `VecDeque` model, SPSC and MPMC.
    #[test]
    fn raw_rings_match_a_model(
        (size, align) in shape(),
        cap in 1usize..40,
        mpmc_kind in any::<bool>(),
        ops in proptest::collection::vec(
            prop_oneof![(0usize..9).prop_map(Op::Push), (1usize..9).prop_map(Op::Pop)], 1..60),
    ) {
        let e = ElementType::named("prop.E", size, align).unwrap();
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let mut stamp = 0u8;
        let (mut push, mut pop): (Push, Pop) = if mpmc_kind {
            let o = mpmc::Options::new(cap);
            let r = Region::anonymous(mpmc::Ring::<Raw>::required_bytes_as(&e, o).unwrap()).unwrap();
            let ring = mpmc::Ring::<Raw>::create_as(r, &e, o).unwrap();
            let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
            (
                // As the typed batch push, a full MPMC ring is `Full`, not 0.
                Box::new(move |b| match tx.push_partial_bytes(b) {
                    Err(TryError::Full { .. }) => 0,
                    r => r.unwrap(),
                }),
                Box::new(move |b| match rx.pop_partial_into(b) {
                    Err(TryError::Empty { .. }) => 0,
                    r => r.unwrap(),
                }),
            )
        } else {
            let r = Region::anonymous(spsc::Ring::<Raw>::required_bytes_as(&e, cap).unwrap()).unwrap();
            let ring = spsc::Ring::<Raw>::create_as(r, &e, spsc::Options::new(cap)).unwrap();
            let (mut tx, mut rx) = ring.split().unwrap();
            (
                Box::new(move |b| tx.push_partial_bytes(b).unwrap()),
                Box::new(move |b| rx.pop_partial_into(b).unwrap()),
            )
        };
        for op in ops {
            match op {
                Op::Push(k) => {
                    let elems: Vec<Vec<u8>> = (0..k)
                        .map(|_| {
                            stamp = stamp.wrapping_add(1);
                            (0..size).map(|i| stamp ^ i as u8).collect()
                        })
                        .collect();
                    let n = push(&elems.concat());
                    prop_assert!(n <= k);
                    model.extend(elems.into_iter().take(n));
                }
                Op::Pop(k) => {
                    let mut buf = vec![0u8; k * size];
                    let n = pop(&mut buf);
                    prop_assert!(n <= k && n <= model.len());
                    for j in 0..n {
                        let want = model.pop_front().unwrap();
                        prop_assert_eq!(&buf[j * size..(j + 1) * size], &want[..]);
                    }
                    // The model says something was ready, so the ring must give something.
                    prop_assert!(n > 0 || model.is_empty());
                }
            }
        }
    }
}
