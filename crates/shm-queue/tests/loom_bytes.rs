//! loom models of the byte-message ring: the same ring code as in shared memory, over heap
//! memory with loom's atomics and cells (payload words are cells, so loom reports any read
//! of a record the protocol did not order after its write).
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p shm-queue --release --test loom_bytes`
#![cfg(loom)]
#![allow(clippy::unwrap_used)]

use loom::thread;
use shm_queue::bytes;
use shm_queue::TryError;

fn send(tx: &mut bytes::Producer, msg: &[u8]) {
    loop {
        match tx.try_push(msg) {
            Ok(()) => return,
            Err(TryError::Full { .. }) => thread::yield_now(),
            Err(e) => panic!("send: {e}"),
        }
    }
}

fn recv(rx: &mut bytes::Consumer) -> Vec<u8> {
    let mut buf = [0u8; 32];
    loop {
        match rx.try_pop(&mut buf) {
            Ok(n) => return buf[..n].to_vec(),
            Err(TryError::Empty { .. }) => thread::yield_now(),
            Err(e) => panic!("recv: {e}"),
        }
    }
}

/// The smallest ring (64 bytes): three 24-byte records cannot all fit before the end, so
/// the third is preceded by a padding record and wraps to offset 0, while the consumer
/// reads concurrently. The terminator keeps the consumer from reading the previous lap.
#[test]
fn wrap_with_a_padding_record() {
    loom::model(|| {
        let (mut tx, mut rx) = bytes::Ring::new_model(64, 24).unwrap().split().unwrap();
        let t = thread::spawn(move || {
            for i in 1..=3u8 {
                send(&mut tx, &[i; 16]);
            }
        });
        for i in 1..=3u8 {
            assert_eq!(recv(&mut rx), vec![i; 16]);
        }
        t.join().unwrap();
        // Nothing more: the slot after the last record must not show a previous lap.
        assert!(matches!(
            rx.try_pop(&mut [0u8; 32]),
            Err(TryError::Empty { .. })
        ));
    });
}

/// A claim that is aborted publishes nothing; a claim committed shorter publishes exactly
/// its prefix; both race with the consumer.
#[test]
fn claim_abort_and_commit_len() {
    loom::model(|| {
        let (mut tx, mut rx) = bytes::Ring::new_model(64, 24).unwrap().split().unwrap();
        let t = thread::spawn(move || {
            let mut c = tx.claim(16).unwrap();
            c.write_at(0, &[9; 16]).unwrap();
            c.abort();
            let mut c = tx.claim(16).unwrap();
            c.write_at(0, &[1; 16]).unwrap();
            c.commit_len(8).unwrap();
            send(&mut tx, &[2; 8]);
        });
        assert_eq!(recv(&mut rx), vec![1; 8]);
        assert_eq!(recv(&mut rx), vec![2; 8]);
        t.join().unwrap();
        assert!(matches!(
            rx.try_pop(&mut [0u8; 32]),
            Err(TryError::Empty { .. })
        ));
    });
}

/// A zero-copy read guard keeps its record's bytes from being reused until it drops, while
/// the producer waits for room.
#[test]
fn read_guard_holds_its_space() {
    loom::model(|| {
        let (mut tx, mut rx) = bytes::Ring::new_model(64, 24).unwrap().split().unwrap();
        let t = thread::spawn(move || {
            send(&mut tx, &[1; 24]);
            send(&mut tx, &[2; 24]);
        });
        let first = loop {
            match rx.read() {
                Ok(g) => break g.to_vec(),
                Err(TryError::Empty { .. }) => thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(first, vec![1; 24]);
        assert_eq!(recv(&mut rx), vec![2; 24]);
        t.join().unwrap();
        assert!(matches!(
            rx.try_pop(&mut [0u8; 32]),
            Err(TryError::Empty { .. })
        ));
    });
}
