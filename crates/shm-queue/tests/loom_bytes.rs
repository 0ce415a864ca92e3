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
/// after the last record does not show a previous lap). That last check runs before the
/// join, so only the ring's own orderings (the terminator, published with the record header)
/// can make it pass: the join would order everything.
fn model(produce: fn(&mut bytes::Producer), consume: fn(&mut bytes::Consumer)) {
    loom::model(move || {
        let (mut tx, mut rx) = bytes_pair();
        let t = thread::spawn(move || produce(&mut tx));
        consume(&mut rx);
        assert!(matches!(
            rx.try_pop(&mut [0u8; 32]),
            Err(TryError::Empty { .. })
        ));
        t.join().unwrap();
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

/// The padding skip frees the space before it, too. In the 64-byte ring:
/// `[1;24]` at 0..32, `[2;8]` at 32..48 (payload 40..48), then `[3;16]` needs a padding
/// record at 48..64 and goes to 64..88, which needs only `head >= 32`. So the producer may
/// go on having seen `head == 32`, before `[2;8]` is read. `[4;16]` at 88..112 writes
/// payload offsets 32..48 and needs `head >= 56`. The consumer stores 48 (Release, after
/// reading `[2;8]`), then 64 when it skips the padding, then 88.
///
/// If the skip's store is Relaxed and the producer's reload reads 64, nothing orders the
/// consumer's read of `[2;8]` (cells 40..48) before the producer's write of `[4;16]` there.
/// loom reports the race. With `Release`, reading 64 synchronises with the skip, which comes
/// after that read.
#[test]
fn padding_skip_frees_the_space_before_it() {
    model(
        |tx| {
            send(tx, &[1; 24]);
            send(tx, &[2; 8]);
            send(tx, &[3; 16]);
            send(tx, &[4; 16]);
        },
        |rx| {
            assert_eq!(recv(rx), vec![1; 24]);
            assert_eq!(recv(rx), vec![2; 8]);
            assert_eq!(recv(rx), vec![3; 16]);
            assert_eq!(recv(rx), vec![4; 16]);
        },
    );
}

/// A new producer is taken while the consumer reads (byte ring). Two 16-byte messages
/// (records 0..24 and 24..48) are sent and the producer dropped before the consumer thread
/// starts. The new producer's `[3;24]` needs a padding record at 48 and then offsets
/// 0..32 (payload 8..32), so it needs `head >= 40`. If recovery's `head` is loaded `Relaxed`
/// and reads 48, the claim passes on the cached value, and the payload write over 8..24 has
/// no happens-before from the consumer's read of `[1;16]` there. loom reports the race.
#[test]
fn producer_taken_again_while_the_consumer_reads() {
    loom::model(|| {
        let ring = bytes::Ring::new_model(64, 24).unwrap();
        let (mut tx, mut rx) = ring.split().unwrap();
        send(&mut tx, &[1; 16]);
        send(&mut tx, &[2; 16]);
        drop(tx);
        let t = thread::spawn(move || {
            assert_eq!(recv(&mut rx), vec![1; 16]);
            assert_eq!(recv(&mut rx), vec![2; 16]);
            rx
        });
        let mut tx = ring.producer().unwrap();
        send(&mut tx, &[3; 24]);
        let mut rx = t.join().unwrap();
        assert_eq!(recv(&mut rx), vec![3; 24]);
        assert!(matches!(
            rx.try_pop(&mut [0u8; 32]),
            Err(TryError::Empty { .. })
        ));
    });
}
