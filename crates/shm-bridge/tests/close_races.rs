//! Ends dropped at the same moment, in threads and in forked processes: the last producer
//! out closes (receivers drain, then get `Closed`, never hang), and when every receiver
//! has gone a blocked sender gets `Closed` (not a timeout or a hang), for every kind.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::child_on;
use shm_bridge::{ChannelOptions, Error, PeerState, Role};

fn name(tag: &str) -> String {
    format!("close-{}-{tag}", std::process::id())
}

const ROUNDS: usize = 20;

/// Long enough for a loaded machine; a hang (the bug) shows as a timeout instead of
/// `Closed`.
fn soon() -> Option<Instant> {
    Some(Instant::now() + Duration::from_secs(10))
}

/// Runs `body` for `count` rounds, each on a fresh MPMC channel name and options with room
/// for `capacity` elements and four participants.
fn rounds(
    count: usize,
    tag: &str,
    capacity: usize,
    mut body: impl FnMut(usize, &str, &ChannelOptions),
) {
    for round in 0..count {
        let n = name(&format!("{tag}-{round}"));
        let opts = ChannelOptions::new().capacity(capacity).participants(4);
        body(round, &n, &opts);
    }
}

/// The call ended with `Closed` (a `Timeout` here is the hang the test is about).
fn expect_closed<T: std::fmt::Debug>(r: Result<T, Error>, round: usize) {
    match r {
        Err(Error::Closed { .. }) => {}
        other => panic!("round {round}: expected Closed, got {other:?}"),
    }
}

#[test]
fn two_mpmc_senders_dropped_together_in_threads_close_the_channel() {
    rounds(ROUNDS, "tx2", 64, |round, n, opts| {
        let a = opts.create_mpmc::<u64>(n).unwrap();
        let b = opts.connect_mpmc_producer::<u64>(n).unwrap();
        let mut rx = opts.connect_mpmc_consumer::<u64>(n).unwrap();
        let go = Arc::new(Barrier::new(2));
        let g = go.clone();
        let t = std::thread::spawn(move || {
            g.wait();
            drop(b);
        });
        go.wait();
        drop(a);
        t.join().unwrap();
        expect_closed(rx.recv_deadline(soon()), round);
    });
}

#[test]
fn two_mpmc_senders_dropped_together_in_processes_close_the_channel() {
    rounds(ROUNDS / 4, "ptx2", 64, |round, n, opts| {
        let a = opts.create_mpmc::<u64>(n).unwrap();
        let mut rx = opts.connect_mpmc_consumer::<u64>(n).unwrap();
        // Both children connect, wait for the parent's go (the channel's first message is
        // the go for the consumer side; here a file the parent removes), then drop at once.
        let go = std::env::temp_dir().join(format!("{n}.go"));
        std::fs::write(&go, b"").unwrap();
        let kids: Vec<_> = (0..2)
            .map(|_| {
                let go = go.clone();
                child_on(n, move |n| {
                    let opts = ChannelOptions::new().participants(4);
                    let Ok(tx) = opts.connect_mpmc_producer::<u64>(n) else {
                        return 2;
                    };
                    while go.exists() {
                        std::hint::spin_loop();
                    }
                    drop(tx);
                    0
                })
            })
            .collect();
        // Wait until both children hold their producer slots, then let them go with ours.
        let t = Instant::now();
        while shm_bridge::inspect::inspect(n)
            .map(|i| {
                i.participants
                    .iter()
                    .filter(|p| {
                        p.role == Role::Producer && matches!(p.state, PeerState::Alive { .. })
                    })
                    .count()
            })
            .unwrap_or(0)
            < 3
        {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "children never connected"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        std::fs::remove_file(&go).unwrap();
        drop(a);
        for k in kids {
            k.wait_timeout(Duration::from_secs(10)).unwrap();
        }
        expect_closed(rx.recv_deadline(soon()), round);
    });
}

#[test]
fn every_mpmc_receiver_gone_gives_a_blocked_sender_closed() {
    rounds(ROUNDS / 4, "rx2", 4, |round, n, opts| {
        let mut tx = opts.create_mpmc::<u64>(n).unwrap();
        let c = opts.connect_mpmc_consumer::<u64>(n).unwrap();
        let d = opts.connect_mpmc_consumer::<u64>(n).unwrap();
        while tx.try_send(1).is_ok() {}
        let go = Arc::new(Barrier::new(3));
        let drops: Vec<_> = [c, d]
            .into_iter()
            .map(|r| {
                let g = go.clone();
                std::thread::spawn(move || {
                    g.wait();
                    std::thread::sleep(Duration::from_millis(20));
                    drop(r);
                })
            })
            .collect();
        go.wait();
        // Blocked for space when the receivers go.
        expect_closed(tx.send_deadline(2, soon()), round);
        for t in drops {
            t.join().unwrap();
        }
    });
}

/// The typed and byte channels already close on either side's drop; the table in
/// docs/CHANNELS.md holds for them too: a sender blocked on a full ring gets `Closed` when
/// the receiver drops.
#[test]
fn typed_and_byte_senders_blocked_when_the_receiver_drops_get_closed() {
    let n = name("typed");
    let mut tx = ChannelOptions::new().capacity(4).create::<u64>(&n).unwrap();
    let rx = ChannelOptions::new().connect::<u64>(&n).unwrap();
    while tx.try_send(1).is_ok() {}
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        drop(rx);
    });
    assert!(matches!(
        tx.send_deadline(2, soon()),
        Err(Error::Closed { .. })
    ));
    t.join().unwrap();

    let n = name("bytes");
    let mut tx = ChannelOptions::new()
        .capacity(256)
        .create_bytes(&n)
        .unwrap();
    let rx = ChannelOptions::new().connect_bytes(&n).unwrap();
    while tx.try_send(&[7; 64]).is_ok() {}
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        drop(rx);
    });
    assert!(matches!(
        tx.send_deadline(&[7; 64], soon()),
        Err(Error::Closed { .. })
    ));
    t.join().unwrap();
}
