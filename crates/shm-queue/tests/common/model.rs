//! Helpers shared by the loom models (`tests/loom_*.rs`, which include this file with
//! `#[path]`: the rest of `common` uses ring constructors that do not exist under loom): the
//! smallest rings over loom's heap memory, and the retry loops that yield to the other
//! model threads while a ring is full or empty.
#![allow(dead_code)]

use loom::thread;
use shm_queue::{bytes, spsc, TryError};

/// Runs `op` until it succeeds, yielding to the other threads while it fails with an error
/// `wait` accepts; any other error panics, prefixed with `what`.
fn retry<T>(
    what: &str,
    wait: fn(&TryError) -> bool,
    mut op: impl FnMut() -> Result<T, TryError>,
) -> T {
    loop {
        match op() {
            Ok(v) => return v,
            Err(e) if wait(&e) => thread::yield_now(),
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// Runs `op` (a push, a claim) until it succeeds, yielding while the ring is full.
pub fn until_room<T>(what: &str, op: impl FnMut() -> Result<T, TryError>) -> T {
    retry(what, |e| matches!(e, TryError::Full { .. }), op)
}

/// Runs `op` (a pop, a peek, a read) until it succeeds, yielding while the ring is empty.
pub fn until_data<T>(what: &str, op: impl FnMut() -> Result<T, TryError>) -> T {
    retry(what, |e| matches!(e, TryError::Empty { .. }), op)
}

/// Both sides of an SPSC ring of `u64` over loom memory: `blocks` blocks of `per_block`
/// elements.
pub fn spsc_pair(blocks: usize, per_block: usize) -> (spsc::Producer<u64>, spsc::Consumer<u64>) {
    let ring = spsc::Ring::<u64>::new_model(blocks, per_block).unwrap();
    ring.split().unwrap()
}

/// Both sides of the smallest byte ring over loom memory: 64 bytes, messages of up to 24.
pub fn bytes_pair() -> (bytes::Producer, bytes::Consumer) {
    bytes::Ring::new_model(64, 24).unwrap().split().unwrap()
}
