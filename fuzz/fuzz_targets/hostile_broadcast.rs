//! Fuzz target: a broadcast ring whose bytes the input rewrites between calls of every
//! method (see `shm_queue::hostile`). Run: `cargo +nightly fuzz run hostile_broadcast` from
//! `fuzz/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shm_queue::hostile::broadcast(data));
