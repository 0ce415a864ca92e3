//! Named channels: create/connect rules, clean shutdown, peer death and hangs seen through
//! real forked processes, stale-name reclaim, and bad segments under the prefix.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use common::{alive, child_on, connect, create, mpmc_pair, wait_until};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shm_bridge::{inspect, ChannelKind, ChannelOptions, Error, PeerState, Role};

mod common;

/// Held by tests that plant stale segments or run `gc` (which removes every stale segment),
/// so one never removes the other's fixtures.
static GC_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn name(tag: &str) -> String {
    format!("test-{}-{tag}", std::process::id())
}

fn gone(name: &str) -> bool {
    !shm_bridge::shm_path(name).exists()
}

#[test]
fn typed_round_trip_close_and_unlink() {
    let n = name("typed");
    let mut tx = create(&n, 64);
    assert!(tx.reclaimed().is_none());
    assert_eq!(tx.peer_state(), PeerState::Absent);
    let mut rx = connect(&n);
    assert!(matches!(tx.peer_state(), PeerState::Alive { .. }));
    for i in 0..1000u64 {
        tx.send(i).unwrap();
        assert_eq!(rx.recv().unwrap(), i);
    }
    tx.send(7).unwrap();
    drop(tx);
    assert!(!gone(&n), "the consumer still holds it");
    assert_eq!(rx.recv().unwrap(), 7, "drained first");
    assert!(matches!(rx.recv(), Err(Error::Closed { .. })));
    assert!(matches!(rx.try_recv(), Err(Error::Closed { .. })));
    drop(rx);
    assert!(gone(&n), "the last side out removes the name");
}

#[test]
fn one_consumer_per_typed_channel_and_kind_checks() {
    let n = name("inuse");
    let _tx = ChannelOptions::new().create::<u64>(&n).unwrap();
    let _rx = connect(&n);
    match ChannelOptions::new().connect::<u64>(&n) {
        Err(e @ Error::InUse { pid, .. }) => {
            assert_eq!(pid, std::process::id());
            assert!(e.to_string().contains("consumer"), "{e}");
        }
        other => panic!("expected InUse, got {other:?}"),
    }
    match ChannelOptions::new().connect::<u32>(&n) {
        Err(e @ Error::WrongKind { .. }) => assert!(e.to_string().contains("u64"), "{e}"),
        other => panic!("expected WrongKind, got {other:?}"),
    }
    assert!(matches!(
        ChannelOptions::new().connect_bytes(&n),
        Err(Error::WrongKind { .. })
    ));
    match ChannelOptions::new().create::<u64>(&n) {
        Err(Error::InUse { pid, .. }) => assert_eq!(pid, std::process::id()),
        other => panic!("expected InUse, got {other:?}"),
    }
}

#[test]
fn bad_names_and_settings_are_refused() {
    for bad in ["", ".hidden", "a/b", "sp ace", &"x".repeat(201)] {
        assert!(matches!(
            ChannelOptions::new().create::<u64>(bad),
            Err(Error::BadName { .. })
        ));
    }
    assert!(matches!(
        ChannelOptions::new()
            .capacity(4096)
            .max_message(1 << 20)
            .create_bytes(&name("badmax")),
        Err(Error::BadConfig { .. })
    ));
    assert!(matches!(
        ChannelOptions::new()
            .participants(1)
            .create_mpmc::<u64>(&name("badparts")),
        Err(Error::BadConfig { .. })
    ));
}

#[test]
fn consumer_may_start_first_and_times_out_clearly() {
    let n = name("late");
    let start = Instant::now();
    match ChannelOptions::new()
        .timeout(Duration::from_millis(50))
        .connect::<u64>(&n)
    {
        Err(e @ Error::ConnectTimeout { .. }) => {
            assert!(e.to_string().contains("does not exist"), "{e}")
        }
        other => panic!("expected ConnectTimeout, got {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(2));
    let n2 = n.clone();
    let creator = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        let mut tx = ChannelOptions::new().create::<u64>(&n2).unwrap();
        tx.wait_for_peer(Duration::from_secs(5)).unwrap();
        tx.send(99).unwrap();
        tx
    });
    let mut rx = connect(&n);
    assert_eq!(rx.recv().unwrap(), 99);
    drop(creator.join().unwrap());
}

#[test]
fn byte_channel_round_trip_and_zero_copy() {
    let n = name("bytes");
    let mut tx = ChannelOptions::new()
        .capacity(1 << 16)
        .max_message(1000)
        .create_bytes(&n)
        .unwrap();
    let mut rx = ChannelOptions::new().connect_bytes(&n).unwrap();
    assert_eq!(rx.max_message(), 1000);
    tx.send(b"hello").unwrap();
    let mut claim = tx.claim(3).unwrap();
    claim.write_at(0, b"abc").unwrap();
    claim.commit();
    let mut buf = vec![0u8; 1000];
    assert_eq!(rx.recv_deadline(&mut buf, None).unwrap(), 5);
    assert_eq!(&buf[..5], b"hello");
    let g = rx.read_deadline(None).unwrap();
    assert_eq!(g.to_vec(), b"abc");
    drop(g);
    assert!(matches!(rx.try_read(), Err(Error::WouldBlock { .. })));
    // Messages in parts arrive whole; too long in total is refused whole.
    tx.try_send_parts(&[b"he", b"", b"llo"]).unwrap();
    tx.send_parts_deadline(&[b"wor", b"ld"], None).unwrap();
    assert_eq!(rx.try_read().unwrap().to_vec(), b"hello");
    assert_eq!(rx.try_read().unwrap().to_vec(), b"world");
    assert!(matches!(
        tx.try_send_parts(&[&[0u8; 600], &[0u8; 401]]),
        Err(Error::Queue { .. })
    ));
    assert!(matches!(
        tx.send_parts_deadline(&[&[0u8; 600], &[0u8; 401]], None),
        Err(Error::Queue { .. })
    ));
    assert!(matches!(rx.try_read(), Err(Error::WouldBlock { .. })));
    assert!(matches!(
        tx.try_send(&[0u8; 1001]),
        Err(Error::Queue { .. })
    ));
    drop(tx);
    assert!(matches!(rx.recv_vec(&mut buf), Err(Error::Closed { .. })));
}

#[test]
fn mpmc_two_producers_two_consumers() {
    use shm_queue::mpmc::SlotLayout;
    for (tag, slots, other) in [
        ("mpmc-packed", SlotLayout::Packed, SlotLayout::Line),
        ("mpmc-line", SlotLayout::Line, SlotLayout::Packed),
    ] {
        // Connecting follows the creator's slot layout, whatever the connector asks for.
        let n = name(tag);
        let opts = ChannelOptions::new().capacity(256).participants(8);
        let a = opts
            .clone()
            .slot_layout(slots)
            .create_mpmc::<u64>(&n)
            .unwrap();
        let opts = opts.slot_layout(other);
        two_by_two(&n, a, &opts);
    }
}

fn two_by_two(n: &str, mut a: shm_bridge::MpmcSender<u64>, opts: &ChannelOptions) {
    let mut b = opts.connect_mpmc_producer::<u64>(n).unwrap();
    let mut c = opts.connect_mpmc_consumer::<u64>(n).unwrap();
    let mut d = opts.connect_mpmc_consumer::<u64>(n).unwrap();
    for i in 0..100u64 {
        a.send_deadline(i, None).unwrap();
        b.send_deadline(1000 + i, None).unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..100 {
        got.push(c.recv_deadline(None).unwrap());
        got.push(d.recv_deadline(None).unwrap());
    }
    got.sort_unstable();
    let want: Vec<u64> = (0..100).chain(1000..1100).collect();
    assert_eq!(got, want);
    drop(b);
    drop(a); // the last producer closes
    assert!(matches!(c.recv_deadline(None), Err(Error::Closed { .. })));
}

#[test]
fn dead_consumer_makes_send_fail_and_wakes_a_blocked_sender() {
    let n = name("deadcons");
    let mut tx = create(&n, 64);
    let kid = child_on(&n, |n| {
        let _rx = connect(n);
        std::thread::sleep(Duration::from_secs(60));
        0
    });
    tx.wait_for_peer(Duration::from_secs(5)).unwrap();
    // Fill the ring, so the next send blocks.
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
    match &err {
        Error::PeerGone { role, .. } => assert_eq!(*role, Role::Consumer),
        other => panic!("expected PeerGone, got {other:?}"),
    }
    assert!(
        woke.duration_since(killed) < Duration::from_millis(100),
        "woke {:?} after the death",
        woke.duration_since(killed)
    );
    assert!(matches!(tx.try_send(3), Err(Error::PeerGone { .. })));
}

#[test]
fn dead_producer_is_reported_after_draining_and_its_name_is_reclaimed() {
    let n = name("deadprod");
    let kid = child_on(&n, |n| {
        let mut tx = create(n, 1024);
        tx.wait_for_peer(Duration::from_secs(5)).unwrap();
        for i in 0..500u64 {
            tx.send(i).unwrap();
        }
        std::thread::sleep(Duration::from_secs(60));
        0
    });
    let mut rx = connect(&n);
    let kid_pid = kid.pid() as u32;
    // Wait until all 500 are in (5 s at most), then kill the producer.
    wait_until(Duration::from_secs(5), Duration::from_millis(1), || {
        rx.len() >= 500
    });
    kid.kill().unwrap();
    for i in 0..500u64 {
        assert_eq!(rx.recv().unwrap(), i);
    }
    let t = Instant::now();
    match rx.recv() {
        Err(Error::PeerGone { role, pid, .. }) => {
            assert_eq!(role, Role::Producer);
            assert_eq!(pid, kid_pid);
        }
        other => panic!("expected PeerGone, got {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_millis(100));
    // The producer's name is left behind; listing shows a dead producer.
    let info = inspect::inspect(&n).unwrap();
    assert_eq!(info.kind, Some(ChannelKind::Typed));
    assert!(matches!(
        info.state_of(Role::Producer).0,
        PeerState::Dead { .. }
    ));
    // While our consumer lives, the name is in use.
    assert!(matches!(
        ChannelOptions::new().create::<u64>(&n),
        Err(Error::InUse { .. })
    ));
    drop(rx);
}

#[test]
fn stale_channel_is_reclaimed_by_create_and_by_gc() {
    let _gc = GC_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    for via_gc in [false, true] {
        let n = name(if via_gc { "stale-gc" } else { "stale-create" });
        let kid = child_on(&n, |n| {
            let _tx = ChannelOptions::new().create::<u64>(n).unwrap();
            std::thread::sleep(Duration::from_secs(60));
            0
        });
        let pid = kid.pid() as u32;
        assert!(wait_until(
            Duration::from_secs(5),
            Duration::from_millis(1),
            || alive(&n, Role::Producer)
        ));
        match ChannelOptions::new().create::<u64>(&n) {
            Err(e @ Error::InUse { .. }) => assert!(e.to_string().contains(&pid.to_string())),
            other => panic!("expected InUse, got {other:?}"),
        }
        kid.kill().unwrap();
        assert!(inspect::inspect(&n).unwrap().is_stale());
        if via_gc {
            let removed = inspect::gc().unwrap();
            assert!(removed.iter().any(|i| i.name == n), "{removed:?}");
            assert!(gone(&n));
        } else {
            let tx = ChannelOptions::new().create::<u64>(&n).unwrap();
            let r = tx.reclaimed().expect("says it reclaimed");
            assert_eq!(r.holders, vec![(Role::Producer, pid)]);
        }
    }
}

#[test]
fn stopped_consumer_is_reported_hung_then_recovers() {
    let n = name("hung");
    let mut tx = ChannelOptions::new()
        .capacity(64)
        .heartbeat(Some(Duration::from_millis(20)))
        .create::<u64>(&n)
        .unwrap();
    let kid = child_on(&n, |n| {
        let mut rx = ChannelOptions::new()
            .heartbeat(Some(Duration::from_millis(20)))
            .connect::<u64>(n)
            .unwrap();
        let mut next = 0;
        loop {
            match rx.recv() {
                Ok(v) if v == next => next += 1,
                Ok(_) => return 2,
                Err(Error::Closed { .. }) => return if next == 1000 { 0 } else { 3 },
                Err(_) => return 4,
            }
        }
    });
    tx.wait_for_peer(Duration::from_secs(5)).unwrap();
    let pid = Pid::from_raw(kid.pid());
    kill(pid, Signal::SIGSTOP).unwrap();
    let mut sent = 0u64;
    let mut saw_hung = false;
    let t = Instant::now();
    while sent < 1000 {
        match tx.send_deadline(sent, Some(Instant::now() + Duration::from_secs(1))) {
            Ok(()) => sent += 1,
            Err(Error::PeerHung { silent, .. }) => {
                assert!(silent >= Duration::from_millis(60));
                saw_hung = true;
                kill(pid, Signal::SIGCONT).unwrap();
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(20));
    }
    assert!(saw_hung, "a stopped consumer must be reported");
    drop(tx);
    kid.wait_timeout(Duration::from_secs(10)).unwrap();
}

#[test]
fn garbage_segments_under_the_prefix_are_reported_not_used() {
    let _gc = GC_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let cases: [(&str, Vec<u8>); 3] = [
        (
            "garbage",
            (0..16384u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
        ("empty", Vec::new()),
        ("zeros", vec![0u8; 16384]),
    ];
    for (tag, bytes) in cases {
        let n = name(tag);
        let path = shm_bridge::shm_path(&n);
        std::fs::write(&path, &bytes).unwrap();
        // Old enough not to look mid-creation.
        let old = std::time::SystemTime::now() - Duration::from_secs(10);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let err = ChannelOptions::new()
            .timeout(Duration::from_millis(200))
            .connect::<u64>(&n)
            .unwrap_err();
        assert!(
            matches!(err, Error::Corrupt { .. } | Error::Region(_)),
            "{tag}: {err:?}"
        );
        let info = inspect::inspect(&n).unwrap();
        assert!(info.problem.is_some(), "{tag}: {info:?}");
        assert!(inspect::list().unwrap().iter().any(|i| i.name == n));
        // A producer reclaims it: nobody holds it.
        let tx = ChannelOptions::new().create::<u64>(&n).unwrap();
        assert!(tx.reclaimed().is_some(), "{tag}");
    }
}

#[test]
fn a_new_consumer_takes_over_from_a_dead_one() {
    let n = name("takeover");
    let mut tx = create(&n, 1024);
    let kid = child_on(&n, |n| {
        let mut rx = connect(n);
        for i in 0..100u64 {
            if rx.recv().unwrap() != i {
                return 2;
            }
        }
        std::thread::sleep(Duration::from_secs(60));
        0
    });
    tx.wait_for_peer(Duration::from_secs(5)).unwrap();
    for i in 0..300u64 {
        tx.send(i).unwrap();
    }
    wait_until(Duration::from_secs(5), Duration::from_millis(1), || {
        tx.len() <= 200
    });
    kid.kill().unwrap();
    assert!(matches!(tx.peer_state(), PeerState::Dead { .. }));
    let mut rx = connect(&n);
    assert!(matches!(tx.peer_state(), PeerState::Alive { .. }));
    for i in 100..300u64 {
        assert_eq!(
            rx.recv().unwrap(),
            i,
            "continues where the dead consumer stopped"
        );
    }
    tx.send(300).unwrap();
    assert_eq!(rx.recv().unwrap(), 300);
}

#[test]
fn mpmc_survives_a_killed_participant() {
    let n = name("mpmc-kill");
    let opts = ChannelOptions::new().capacity(64).participants(8);
    let (mut tx, mut rx) = mpmc_pair(&opts, &n);
    let kid = child_on(&n, |n| {
        let mut p = ChannelOptions::new()
            .connect_mpmc_producer::<u64>(n)
            .unwrap();
        for i in 0.. {
            if p.send_deadline(1_000_000 + i, None).is_err() {
                return 1;
            }
        }
        0
    });
    // Let the child produce for a while (it blocks when the ring is full), then kill it.
    let mut from_child = 0u64;
    let t = Instant::now();
    while from_child < 1000 {
        if rx.recv_deadline(None).unwrap() >= 1_000_000 {
            from_child += 1;
        }
        assert!(t.elapsed() < Duration::from_secs(10));
    }
    kid.kill().unwrap();
    // Our own producer and consumer carry on: drain the child's leftovers, then ours flow.
    let mut ours = Vec::new();
    let t = Instant::now();
    let mut next = 0u64;
    while ours.len() < 500 {
        if next < 500 && tx.try_send(next).is_ok() {
            next += 1;
        }
        match rx.try_recv() {
            Ok(v) if v < 1_000_000 => ours.push(v),
            Ok(_) => {}
            Err(e) => assert!(e.is_retryable(), "{e:?}"),
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "stuck at {}",
            ours.len()
        );
    }
    assert_eq!(ours, (0..500).collect::<Vec<_>>());
}

#[test]
fn scribbled_control_block_never_panics_or_hangs() {
    use shm_region::Options;
    let n = name("scribble");
    let mut tx = create(&n, 64);
    let mut rx = connect(&n);
    let raw = Options::new().open_shm(&shm_bridge::shm_name(&n)).unwrap();
    let ctl = raw.len() - shm_bridge::control::CONTROL_SIZE;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..200 {
        let mut page = vec![0u8; shm_bridge::control::CONTROL_SIZE];
        for b in page.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *b = if round % 3 == 0 { 0xff } else { seed as u8 };
        }
        raw.write_at(ctl, &page).unwrap();
        let _ = tx.try_send(round);
        let _ = rx.try_recv();
        let _ = tx.peer_state();
        let _ = rx.peer_state();
        let soon = Some(Instant::now() + Duration::from_millis(1));
        let _ = rx.recv_deadline(soon);
        let info = inspect::inspect(&n).unwrap();
        let _ = info.state_of(Role::Producer);
        let _ = inspect::list().unwrap();
        // A scribbled block never makes a connect use the channel.
        assert!(ChannelOptions::new()
            .timeout(Duration::from_millis(1))
            .connect::<u64>(&n)
            .is_err());
    }
}

#[test]
fn stopped_producer_is_reported_hung_then_recovers() {
    let n = name("hungprod");
    let kid = child_on(&n, |n| {
        let Ok(mut tx) = ChannelOptions::new()
            .heartbeat(Some(Duration::from_millis(20)))
            .create::<u64>(n)
        else {
            return 1;
        };
        if tx.wait_for_peer(Duration::from_secs(5)).is_err() {
            return 2;
        }
        for i in 0..100u64 {
            if tx.send(i).is_err() {
                return 3;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        0
    });
    let mut rx = ChannelOptions::new()
        .heartbeat(Some(Duration::from_millis(20)))
        .connect::<u64>(&n)
        .unwrap();
    assert_eq!(rx.recv().unwrap(), 0);
    let pid = Pid::from_raw(kid.pid());
    kill(pid, Signal::SIGSTOP).unwrap();
    let mut next = 1;
    let mut saw_hung = false;
    let t = Instant::now();
    while next < 100 {
        match rx.recv_deadline(Some(Instant::now() + Duration::from_secs(1))) {
            Ok(v) => {
                assert_eq!(v, next);
                next += 1;
            }
            Err(Error::PeerHung { role, .. }) => {
                assert_eq!(role, Role::Producer);
                if !saw_hung {
                    assert!(matches!(rx.peer_state(), PeerState::Hung { .. }));
                    saw_hung = true;
                    kill(pid, Signal::SIGCONT).unwrap();
                }
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(20));
    }
    assert!(saw_hung, "a stopped producer must be reported");
    kid.wait_timeout(Duration::from_secs(10)).unwrap();
    assert!(matches!(rx.recv(), Err(Error::Closed { .. })));
}

/// An element type whose name is longer than the 128 bytes the control block keeps.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
struct AnElementTypeWhoseNameIsDeliberatelyLongerThanTheOneHundredAndTwentyEightBytesThatTheControlBlockRecordsForItAndThenSomeMoreBytes
{
    v: u64,
}

#[test]
fn an_element_type_with_a_name_over_128_bytes_connects() {
    type Long =
        AnElementTypeWhoseNameIsDeliberatelyLongerThanTheOneHundredAndTwentyEightBytesThatTheControlBlockRecordsForItAndThenSomeMoreBytes;
    assert!(std::any::type_name::<Long>().len() > 128);
    let n = name("longtype");
    let opts = ChannelOptions::new().capacity(16);
    let mut tx = opts.create::<Long>(&n).unwrap();
    let mut rx = opts.connect::<Long>(&n).unwrap();
    tx.try_send(Long { v: 7 }).unwrap();
    assert_eq!(rx.try_recv().unwrap(), Long { v: 7 });
    // Another type is still refused.
    assert!(matches!(
        opts.connect::<u64>(&n),
        Err(Error::WrongKind { .. })
    ));
}
