//! Cross-process test of the byte ring: a `fork()`ed child sends sequence-numbered messages
//! of varying length (empty to the maximum, through `try_send` and zero-copy claims), the
//! parent checks each one's length and every byte, and that none is lost, duplicated or
//! reordered. Over an anonymous and a named region. Both sides have deadlines.
#![cfg(not(loom))]
#![allow(clippy::unwrap_used)]

mod common;

use shm_queue::TryError;
use std::sync::Arc;
use std::time::Instant;

use common::{keep_polling, STREAM_DEADLINE as DEADLINE, STREAM_MESSAGES as MESSAGES};
use nix::sys::wait::WaitStatus;
use shm_queue::bytes;
use shm_region::{Options, Region};

const MAX: usize = 200;

fn produce(tx: &mut bytes::Producer, n: u64) -> i32 {
    let deadline = Instant::now() + DEADLINE;
    let mut buf = [0u8; MAX];
    let mut spins = 0u32;
    let mut seq = 0;
    while seq < n {
        let len = common::length(seq, MAX);
        common::payload(seq, len, &mut buf);
        let r = if seq % 2 == 0 {
            tx.try_push(&buf[..len])
        } else {
            tx.claim(len).and_then(|mut c| {
                c.write_at(0, &buf[..len])?;
                c.commit();
                Ok(())
            })
        };
        match r {
            Ok(()) => seq += 1,
            Err(TryError::Full { .. }) => {
                if !keep_polling(&mut spins, deadline) {
                    return 2;
                }
            }
            Err(_) => return 3,
        }
    }
    0
}

fn consume(rx: &mut bytes::Consumer, n: u64) -> Result<(), String> {
    let deadline = Instant::now() + DEADLINE;
    let mut got = [0u8; MAX];
    let mut want = [0u8; MAX];
    let mut spins = 0u32;
    let mut seq = 0;
    while seq < n {
        let r = if seq % 3 == 0 {
            rx.read().map(|g| {
                let len = g.len();
                g.copy_to(&mut got).map(|()| len)
            })
        } else {
            Ok(rx.try_pop(&mut got))
        };
        match r.and_then(|x| x) {
            Ok(len) => {
                let expect = common::length(seq, MAX);
                if len != expect {
                    return Err(format!("message {seq}: length {len}, expected {expect}"));
                }
                common::payload(seq, len, &mut want);
                if got[..len] != want[..len] {
                    return Err(format!("message {seq}: payload differs"));
                }
                seq += 1;
            }
            Err(TryError::Empty { .. }) => {
                if !keep_polling(&mut spins, deadline) {
                    return Err(format!("timed out after {seq} messages"));
                }
            }
            Err(e) => return Err(format!("message {seq}: {e}")),
        }
    }
    match rx.try_pop(&mut got) {
        Err(TryError::Empty { .. }) => Ok(()),
        other => Err(format!("extra message after the last: {other:?}")),
    }
}

fn run(region: Arc<Region>) {
    let ring = bytes::Ring::create(region.clone(), 64 * 1024, MAX).unwrap();
    let mut tx = ring.producer().unwrap();
    let (_, status) = common::produce_in_child(
        move || produce(&mut tx, MESSAGES),
        || {
            consume(
                &mut bytes::Ring::attach(region).unwrap().consumer().unwrap(),
                MESSAGES,
            )
        },
    );
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "child: {status:?}"
    );
}

#[test]
fn forked_producer_over_anonymous_memory() {
    run(Arc::new(
        Region::anonymous(bytes::Ring::required_bytes(64 * 1024).unwrap()).unwrap(),
    ));
}

#[test]
fn forked_producer_over_named_memory() {
    let name = format!("shmq-test-bytes-{}", std::process::id());
    let region = Options::new()
        .create_shm(&name, bytes::Ring::required_bytes(64 * 1024).unwrap())
        .unwrap();
    run(Arc::new(region));
    // The parent's copy of what the child took is forgotten, not dropped (see `in_child`),
    // so the region never drops here: remove the name explicitly.
    let _ = shm_region::shm_unlink(&name);
}
