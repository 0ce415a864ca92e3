//! loom models of the byte-message ring: the same ring code as in shared memory, over heap
//! memory with loom's atomics and cells (payload words are cells, so loom reports any read
//! of a record the protocol did not order after its write).
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p shm-queue --release --test loom_bytes`
#![cfg(loom)]
#![allow(clippy::unwrap_used)]

#[path = "common/model.rs"]
mod model;

use loom::thread;
use model::{bytes_pair, until_data, until_room};
use shm_queue::bytes;
use shm_queue::TryError;

fn send(tx: &mut bytes::Producer, msg: &[u8]) {
    until_room("send", || tx.try_push(msg));
}

fn recv(rx: &mut bytes::Consumer) -> Vec<u8> {
    let mut buf = [0u8; 32];
    let n = until_data("recv", || rx.try_pop(&mut buf));
    buf[..n].to_vec()
}

/// Runs a loom model of the smallest byte ring: `produce` on a thread of its own while
/// `consume` reads on this one; then nothing more is left to read (in particular, the slot
/// after the last record does not show a previous lap).
fn model(produce: fn(&mut bytes::Producer), consume: fn(&mut bytes::Consumer)) {
    loom::model(move || {
        let (mut tx, mut rx) = bytes_pair();
        let t = thread::spawn(move || produce(&mut tx));
        consume(&mut rx);
        t.join().unwrap();
        assert!(matches!(
            rx.try_pop(&mut [0u8; 32]),
            Err(TryError::Empty { .. })
        ));
    });
}

/// The smallest ring (64 bytes): three 24-byte records cannot all fit before the end, so
/// the third is preceded by a padding record and wraps to offset 0, while the consumer
/// reads concurrently. The terminator keeps the consumer from reading the previous lap.
#[test]
fn wrap_with_a_padding_record() {
    model(
        |tx| {
            for i in 1..=3u8 {
                send(tx, &[i; 16]);
            }
        },
        |rx| {
            for i in 1..=3u8 {
                assert_eq!(recv(rx), vec![i; 16]);
            }
        },
    );
}

/// A claim that is aborted publishes nothing; a claim committed shorter publishes exactly
/// its prefix; both race with the consumer.
#[test]
fn claim_abort_and_commit_len() {
    model(
        |tx| {
            let mut c = tx.claim(16).unwrap();
            c.write_at(0, &[9; 16]).unwrap();
            c.abort();
            let mut c = tx.claim(16).unwrap();
            c.write_at(0, &[1; 16]).unwrap();
            c.commit_len(8).unwrap();
            send(tx, &[2; 8]);
        },
        |rx| {
            assert_eq!(recv(rx), vec![1; 8]);
            assert_eq!(recv(rx), vec![2; 8]);
        },
    );
}

/// A zero-copy read guard keeps its record's bytes from being reused until it drops, while
/// the producer waits for room.
#[test]
fn read_guard_holds_its_space() {
    model(
        |tx| {
            send(tx, &[1; 24]);
            send(tx, &[2; 24]);
        },
        |rx| {
            let first = until_data("read", || rx.read().map(|g| g.to_vec()));
            assert_eq!(first, vec![1; 24]);
            assert_eq!(recv(rx), vec![2; 24]);
        },
    );
}
