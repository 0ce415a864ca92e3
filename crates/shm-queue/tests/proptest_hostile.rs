//! The hostile-peer property as a proptest, the same drivers the fuzz targets in `fuzz/`
//! run: scripts that overwrite any byte of an attached ring (header, indices, block words,
//! record lengths) between calls of every method, and re-attach. Every call must return;
//! a panic (overflow checks are on in test builds) or a crash fails the test.
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

/// Scripts biased towards patches of the header and the first blocks, where the indices
/// and lengths live: half the commands are patches at offsets below 1 KiB.
fn script() -> impl Strategy<Value = Vec<u8>> {
    let patch = (0u16..1024, any::<[u8; 8]>()).prop_map(|(off, v)| {
        let mut c = vec![0u8, 0];
        c.extend_from_slice(&off.to_le_bytes());
        c.extend_from_slice(&v);
        c
    });
    let op = (1u8..8, any::<u8>()).prop_map(|(c, a)| vec![c, a]);
    prop::collection::vec(prop_oneof![patch, op.clone(), op], 0..200).prop_map(|cmds| cmds.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
    ))]

    #[test]
    fn spsc_survives_any_script(s in script()) {
        shm_queue::hostile::spsc(&s);
    }

    #[test]
    fn bytes_survives_any_script(s in script()) {
        shm_queue::hostile::bytes(&s);
    }

    #[test]
    fn mpmc_survives_any_script(s in script()) {
        shm_queue::hostile::mpmc(&s);
    }

    #[test]
    fn broadcast_survives_any_script(s in script()) {
        shm_queue::hostile::broadcast(&s);
    }

    #[test]
    fn broadcast_messages_survive_any_script(s in script()) {
        shm_queue::hostile::broadcast_messages(&s);
    }

    #[test]
    fn raw_bytes_never_panic(s in prop::collection::vec(any::<u8>(), 0..600)) {
        shm_queue::hostile::spsc(&s);
        shm_queue::hostile::bytes(&s);
        shm_queue::hostile::mpmc(&s);
        shm_queue::hostile::broadcast(&s);
        shm_queue::hostile::broadcast_messages(&s);
    }
}

/// Inputs the fuzz targets once crashed on (`tests/fuzz-regressions/<kind>-<what>`), replayed
/// through every driver.
#[test]
fn fuzz_regressions() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        shm_queue::hostile::spsc(&data);
        shm_queue::hostile::bytes(&data);
        shm_queue::hostile::mpmc(&data);
        shm_queue::hostile::broadcast(&data);
        shm_queue::hostile::broadcast_messages(&data);
        n += 1;
    }
    assert!(n > 0, "no regression inputs in {}", dir.display());
}
