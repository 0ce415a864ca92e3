//! Fuzz target: a bytes ring whose bytes the input rewrites between calls of every method
//! (see `shm_queue::hostile`). Run: `cargo +nightly fuzz run hostile_bytes` from `fuzz/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shm_queue::hostile::bytes(data));
