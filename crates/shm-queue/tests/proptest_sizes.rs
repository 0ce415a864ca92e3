//! Size arithmetic on numbers from a caller or a peer never overflows: every
//! `required_bytes` over the whole range of its arguments, and attach after any value in
//! any word of the configuration line, either answer or return an error. A panic (overflow
//! checks are on in test builds) or a wrapped, too-small size fails the test.
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use proptest::prelude::*;
use shm_queue::{bytes, mpmc, spsc, Error};
use shm_region::Region;

/// A 1 GiB element: the largest a ring accepts.
#[derive(Clone, Copy)]
#[repr(transparent)]
struct Huge([u8; 1 << 30]);
// SAFETY: a byte array of any length is valid for every bit pattern, including all zeros,
// and has no padding; `repr(transparent)` keeps that layout.
unsafe impl bytemuck::Zeroable for Huge {}
// SAFETY: as above; Huge is Copy and 'static.
unsafe impl bytemuck::Pod for Huge {}

/// Capacities from the whole `usize` range, biased to powers of two and their neighbours,
/// where the arithmetic turns.
fn capacity() -> impl Strategy<Value = usize> {
    prop_oneof![
        any::<usize>(),
        (0u32..64).prop_map(|s| 1usize << s),
        (0u32..64).prop_map(|s| (1usize << s).wrapping_sub(1)),
        (0u32..64).prop_map(|s| (1usize << s).wrapping_add(1)),
    ]
}

/// A size that came back `Ok` is at least what the capacity's elements need.
fn big_enough(got: Result<usize, Error>, capacity: usize, elem: usize) {
    if let Ok(n) = got {
        assert!(
            n as u128 >= capacity as u128 * elem as u128,
            "{n} bytes for {capacity} elements of {elem} bytes"
        );
    }
}

/// The example: a 1 GiB element and 2^34 of them wrapped to a small size.
#[test]
fn a_ring_larger_than_the_address_space_is_an_error() {
    assert!(matches!(
        spsc::Ring::<Huge>::required_bytes(1 << 34),
        Err(Error::BadCapacity { .. })
    ));
    assert!(matches!(
        mpmc::Ring::<Huge>::required_bytes(1 << 34),
        Err(Error::BadCapacity { .. })
    ));
}

/// Config words a hostile peer may write: every word of the 128-byte configuration line.
const CONFIG_WORDS: std::ops::Range<usize> = 0..16;

fn values() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        (0u32..64).prop_map(|s| 1u64 << s),
        (0u32..64).prop_map(|s| (1u64 << s).wrapping_sub(1)),
        Just(u64::MAX),
    ]
}

/// Overwrites word `w` of the configuration line (keeping the `ready` word when asked, so
/// attach reads further) and attaches every kind of ring; each must return.
fn attach_all(region: &Arc<Region>, w: usize, v: u64) {
    region.write_at(w * 8, &v.to_le_bytes()).unwrap();
    let _ = spsc::Ring::<u64>::attach(region.clone());
    let _ = spsc::Ring::<Huge>::attach(region.clone());
    let _ = bytes::Ring::attach(region.clone());
    let _ = mpmc::Ring::<u64>::attach(region.clone());
    let _ = mpmc::Ring::<Huge>::attach(region.clone());
    let _ = shm_queue::header::snapshot(region).map(|s| s.fill());
    let _ = shm_queue::header::check(region, region.len() as u64);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512)
    ))]

    #[test]
    fn spsc_required_bytes_never_wraps(cap in capacity()) {
        big_enough(spsc::Ring::<u8>::required_bytes(cap), cap, 1);
        big_enough(spsc::Ring::<u64>::required_bytes(cap), cap, 8);
        big_enough(spsc::Ring::<[u64; 128]>::required_bytes(cap), cap, 1024);
        big_enough(spsc::Ring::<Huge>::required_bytes(cap), cap, 1 << 30);
    }

    #[test]
    fn mpmc_required_bytes_never_wraps(cap in capacity(), owners in capacity()) {
        let o = mpmc::Options::new(cap).owners(owners);
        big_enough(mpmc::Ring::<u64>::required_bytes_with(o), cap, 8);
        big_enough(mpmc::Ring::<Huge>::required_bytes_with(o), cap, 1 << 30);
    }

    #[test]
    fn bytes_required_bytes_never_wraps(cap in capacity()) {
        big_enough(bytes::Ring::required_bytes(cap), cap, 1);
    }

    #[test]
    fn attach_survives_any_config_word(kind in 0u8..3, w in CONFIG_WORDS, v in values()) {
        let len = 1 << 16;
        let region = Arc::new(Region::anonymous(len).unwrap());
        match kind {
            0 => drop(spsc::Ring::<u64>::create(region.clone(), 64).unwrap()),
            1 => drop(bytes::Ring::create(region.clone(), 4096, 1024).unwrap()),
            _ => drop(mpmc::Ring::<u64>::create(region.clone(), 64).unwrap()),
        }
        attach_all(&region, w, v);
    }
}
