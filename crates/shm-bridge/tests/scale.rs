//! Many channels in one process: one liveness thread whatever their number, peers' deaths
//! still reported within today's bounds, forked children with a liveness thread of their
//! own, and running out of file descriptors named as such.
//!
//! Each test runs in a forked child, which starts with one thread, so thread counts mean
//! what they say (the test harness runs other tests on other threads).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{alive, child, child_on, connect, create};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use shm_bridge::fork::thread_count;
use shm_bridge::{inspect, ChannelOptions, Error, PeerState, Receiver, Role, Sender};

fn name(tag: &str, i: usize) -> String {
    format!("scale-{tag}-{}-{i}", std::process::id())
}

/// Raises the soft `RLIMIT_NOFILE` to `want` (or the hard limit), returning the new value.
fn raise_nofile(want: u64) -> u64 {
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let soft = want.min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();
    soft
}

/// Opens `n` small typed channels, both sides in this process.
fn open_pairs(tag: &str, from: usize, n: usize) -> Vec<(Sender<u64>, Receiver<u64>)> {
    (from..from + n)
        .map(|i| {
            let nm = name(tag, i);
            let tx = create(&nm, 16);
            (tx, connect(&nm))
        })
        .collect()
}

/// Runs `f` in a forked child (one thread to begin with); its panic fails the test.
fn in_child(f: impl FnOnce()) {
    child(move || {
        f();
        0
    })
    .wait_timeout(Duration::from_secs(120))
    .unwrap();
}

#[test]
fn threads_do_not_grow_with_channels() {
    in_child(|| {
        assert!(raise_nofile(4096) >= 2_100, "needs RLIMIT_NOFILE of 2100");
        assert_eq!(thread_count(), Some(1));
        let mut all = Vec::new();
        for (step, n) in [(0, 10), (1, 90), (2, 900)] {
            let from = all.len();
            all.extend(open_pairs(&format!("t{step}"), from, n));
            assert_eq!(
                thread_count(),
                Some(2),
                "{} channels: main thread plus one liveness thread",
                all.len()
            );
        }
        // Every endpoint is still refreshed: after more than three heartbeat periods, no
        // side of any channel looks hung.
        std::thread::sleep(Duration::from_millis(450));
        for (i, _) in all.iter().enumerate().step_by(37) {
            let step = match i {
                0..10 => 0,
                10..100 => 1,
                _ => 2,
            };
            let info = inspect::inspect(&name(&format!("t{step}"), i)).unwrap();
            for role in [Role::Producer, Role::Consumer] {
                let p = info.state_of(role).0;
                assert!(
                    matches!(p, PeerState::Alive { .. }),
                    "channel {i} {role}: {p:?}"
                );
            }
        }
        drop(all);
        assert_eq!(
            thread_count(),
            Some(1),
            "the last close joins the liveness thread"
        );
        // And it starts again for the next channel.
        let again = open_pairs("t3", 0, 1);
        assert_eq!(thread_count(), Some(2));
        drop(again);
        assert_eq!(thread_count(), Some(1));
    });
}

#[test]
fn a_death_is_reported_as_promptly_with_1000_channels_open() {
    in_child(|| {
        raise_nofile(4096);
        let idle = open_pairs("idle", 0, 1_000);
        let n = name("watched", 0);
        let mut tx = create(&n, 64);
        // A grandchild forked while this process's liveness thread runs: it builds its own.
        let kid = child_on(&n, |n| {
            let _rx = connect(n);
            std::thread::sleep(Duration::from_secs(60));
            0
        });
        tx.wait_for_peer(Duration::from_secs(5)).unwrap();
        while tx.try_send(1).is_ok() {}
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let t = Instant::now();
            kid.kill().unwrap();
            t
        });
        let err = tx.send(2).unwrap_err();
        let woke = Instant::now();
        let killed = killer.join().unwrap();
        assert!(
            matches!(
                err,
                Error::PeerGone {
                    role: Role::Consumer,
                    ..
                }
            ),
            "{err:?}"
        );
        let late = woke.duration_since(killed);
        assert!(
            late < Duration::from_millis(100),
            "woke {late:?} after the death"
        );
        drop(idle);
    });
}

#[test]
fn forked_children_get_their_own_liveness_thread() {
    in_child(|| {
        // The parent's liveness thread beats every millisecond, so its registry lock is often
        // held at the moment of a fork; a child must neither deadlock on it nor rely on it.
        let opts = ChannelOptions::new()
            .capacity(16)
            .heartbeat(Some(Duration::from_millis(1)));
        let _busy = opts.create::<u64>(&name("busy", 0)).unwrap();
        for i in 0..20 {
            let kid = child(move || {
                let nm = name("forked", i);
                let opts = ChannelOptions::new()
                    .capacity(16)
                    .heartbeat(Some(Duration::from_millis(20)));
                let _tx = opts.create::<u64>(&nm).unwrap();
                std::thread::sleep(Duration::from_millis(100));
                assert!(
                    alive(&nm, Role::Producer),
                    "forked child {i}: heartbeat stale"
                );
                assert_eq!(thread_count(), Some(2), "forked child {i}");
                0
            });
            kid.wait_timeout(Duration::from_secs(10)).unwrap();
        }
    });
}

#[test]
fn running_out_of_descriptors_names_rlimit_nofile() {
    in_child(|| {
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        setrlimit(Resource::RLIMIT_NOFILE, 32, hard).unwrap();
        let mut open = Vec::new();
        let err = loop {
            let nm = name("emfile", open.len());
            match ChannelOptions::new().capacity(16).create::<u64>(&nm) {
                Ok(tx) => open.push(tx),
                Err(e) => break e,
            }
            assert!(open.len() < 64, "32 descriptors never ran out");
        };
        let failed = name("emfile", open.len());
        drop(open);
        let text = err.to_string();
        assert!(text.contains("RLIMIT_NOFILE is 32"), "{text}");
        assert!(text.contains("ulimit -n"), "{text}");
        assert!(
            matches!(
                &err,
                Error::Region(shm_region::Error::FileLimit {
                    source: nix::errno::Errno::EMFILE,
                    soft: 32,
                    ..
                })
            ),
            "{err:?}"
        );
        assert!(!std::path::Path::new(&format!("/dev/shm/shmlane.{failed}")).exists());
    });
}
