//! The crash matrix: `SIGKILL` a producer, a consumer, an MPMC participant, a broadcast
//! publisher or a broadcast subscriber at a random moment (often inside a claim/commit, a
//! send or an in-place read), then check what the survivor saw:
//!
//! - every message it received is valid (checksum, contiguous sequence from 0, nothing
//!   invented);
//! - it learns of the death (`PeerGone`) within its deadline, or (a broadcast publisher)
//!   is never held up by a dead subscriber, whose live peers lose nothing;
//! - the channel is reclaimed by the next create and works again.
//!
//! `SHMLANE_CRASH_KILLS` sets the kills per channel kind and victim (default 20, as in CI;
//! the long run in docs/RELIABILITY.md uses 200). `SHMLANE_CRASH_SEED` replays a run.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use common::{alive, child_on, mpmc_pair, wait_until};
use shm_bridge::fork::Child;
use shm_bridge::{ChannelOptions, Error, Role};

mod common;

// The self-checking message format of the tool and the examples, compiled into this test
// from its one source (shm-bridge does not depend on the tool's crate).
#[path = "../../shmlane-cli/src/stamp.rs"]
mod stamp;

fn kills() -> usize {
    std::env::var("SHMLANE_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

struct Rng(u64);

impl Rng {
    fn new(salt: u64) -> Self {
        let seed = std::env::var("SHMLANE_CRASH_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| stamp::now_ns() | 1);
        eprintln!("crash matrix seed {seed} (replay with SHMLANE_CRASH_SEED={seed})");
        Rng(seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// How long a survivor may take to report the death.
const DEADLINE: Duration = Duration::from_secs(2);

fn opts() -> ChannelOptions {
    ChannelOptions::new()
        .timeout(Duration::from_secs(5))
        .heartbeat(Some(Duration::from_millis(50)))
}

/// A child's endless stream: sends `0, 1, 2, ...` through `send`, retrying what is
/// retryable, until a send fails for good (then returns the exit code 1) or the child is
/// killed.
fn send_forever(mut send: impl FnMut(u64) -> Result<(), Error>) -> i32 {
    let mut i = 0;
    loop {
        match send(i) {
            Ok(()) => i += 1,
            Err(e) if e.is_retryable() => {}
            Err(_) => return 1,
        }
    }
}

/// Byte channel, producer killed: everything received is valid and contiguous, then
/// `PeerGone`; the next create reclaims the name.
#[test]
fn bytes_producer_killed() {
    let mut rng = Rng::new(1);
    let name = format!("crash-{}-bytes-p", std::process::id());
    for round in 0..kills() {
        let seed = rng.next();
        let kid = child_on(&name, |n| {
            let mut r = Rng(seed | 1);
            let Ok(mut tx) = opts().capacity(1 << 14).max_message(512).create_bytes(n) else {
                return 10;
            };
            if tx.wait_for_peer(Duration::from_secs(5)).is_err() {
                return 11;
            }
            let mut msg = vec![0u8; 512];
            for seq in 0.. {
                let len = 8 + r.below(505) as usize;
                let _ = stamp::write(&mut msg[..len], seq, stamp::now_ns());
                let sent = if r.below(2) == 0 {
                    // A hung-looking consumer (a starved heartbeat on a loaded machine) is
                    // retryable.
                    loop {
                        match tx.send(&msg[..len]) {
                            Err(e) if e.is_retryable() => {}
                            other => break other,
                        }
                    }
                } else {
                    // Zero-copy: the kill often lands between claim and commit.
                    let deadline = Instant::now() + Duration::from_secs(5);
                    loop {
                        match tx.claim(len) {
                            Ok(mut c) => {
                                let _ = c.write_at(0, &msg[..len]);
                                c.commit();
                                break Ok(());
                            }
                            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                                std::hint::spin_loop()
                            }
                            Err(e) => break Err(e),
                        }
                    }
                };
                if sent.is_err() {
                    return 12;
                }
            }
            0
        });
        let mut rx = opts().connect_bytes(&name).unwrap();
        let kill_after = Duration::from_micros(200 + rng.below(20_000));
        let start = Instant::now();
        let mut killed: Option<(Child, Instant)> = Some((kid, start));
        let mut kill_time = None;
        let mut expect = 0u64;
        let mut buf = vec![0u8; rx.max_message()];
        loop {
            if kill_time.is_none() && start.elapsed() >= kill_after {
                let (k, _) = killed.take().unwrap();
                k.kill().unwrap();
                kill_time = Some(Instant::now());
            }
            let soon = Some(Instant::now() + Duration::from_millis(5));
            match rx.recv_deadline(&mut buf, soon) {
                Ok(len) => {
                    let s = stamp::check(&buf[..len])
                        .unwrap_or_else(|e| panic!("round {round}: invalid message: {e}"));
                    assert!(
                        stamp::is_next(&s, expect),
                        "round {round}: got seq {} expected {expect}",
                        s.seq
                    );
                    expect += 1;
                }
                Err(Error::Timeout { .. } | Error::PeerHung { .. }) => {}
                Err(Error::PeerGone { .. }) => {
                    let t = kill_time.expect("PeerGone only after the kill");
                    assert!(t.elapsed() < DEADLINE, "round {round}: late PeerGone");
                    break;
                }
                Err(e) => panic!("round {round}: unexpected {e:?}"),
            }
            if let Some(t) = kill_time {
                assert!(t.elapsed() < DEADLINE, "round {round}: no PeerGone in time");
            }
        }
        drop(rx); // last side out: the name goes
        assert!(!shm_bridge::shm_path(&name).exists(), "round {round}");
    }
}

/// Typed channel, consumer killed: the producer's sends turn into `PeerGone` in time. Every
/// other round the producer is killed too, and the next round's create must reclaim the
/// name left by the two dead processes.
#[test]
fn typed_consumer_killed_and_stale_names_reclaimed() {
    let mut rng = Rng::new(2);
    let name = format!("crash-{}-typed-c", std::process::id());
    let mut expect_reclaim = false;
    for round in 0..kills() {
        let both = round % 2 == 1;
        let consumer = child_on(&name, |n| {
            let Ok(mut rx) = opts().connect::<u64>(n) else {
                return 10;
            };
            let mut expect = 0;
            loop {
                match rx.recv() {
                    Ok(v) if v == expect => expect += 1,
                    Ok(_) => return 2,
                    Err(e) if e.is_retryable() => {}
                    Err(_) => return 3,
                }
            }
        });
        if both {
            let producer = child_on(&name, |n| {
                let Ok(mut tx) = opts().capacity(256).create::<u64>(n) else {
                    return 10;
                };
                send_forever(|i| tx.send(i))
            });
            // Both attached, then killed at a random moment of the stream.
            assert!(
                wait_until(Duration::from_secs(5), Duration::from_micros(200), || {
                    alive(&name, Role::Consumer)
                }),
                "round {round}: no consumer"
            );
            std::thread::sleep(Duration::from_micros(500 + rng.below(20_000)));
            producer.kill().unwrap();
            consumer.kill().unwrap();
            expect_reclaim = true;
            continue;
        }
        let mut tx = opts().capacity(256).create::<u64>(&name).unwrap();
        assert_eq!(
            tx.reclaimed().is_some(),
            expect_reclaim,
            "round {round}: a name left by dead processes is reclaimed"
        );
        expect_reclaim = false;
        tx.wait_for_peer(Duration::from_secs(5)).unwrap();
        let kill_after = Duration::from_micros(200 + rng.below(20_000));
        let start = Instant::now();
        let mut consumer = Some(consumer);
        let mut kill_time = None;
        let mut i = 0u64;
        loop {
            if kill_time.is_none() && start.elapsed() >= kill_after {
                consumer.take().unwrap().kill().unwrap();
                kill_time = Some(Instant::now());
            }
            let soon = Some(Instant::now() + Duration::from_millis(5));
            match tx.send_deadline(i, soon) {
                Ok(()) => i += 1,
                Err(Error::Timeout { .. } | Error::PeerHung { .. }) => {}
                Err(Error::PeerGone { .. }) => {
                    let t = kill_time.expect("PeerGone only after the kill");
                    assert!(t.elapsed() < DEADLINE, "round {round}: late PeerGone");
                    break;
                }
                Err(e) => {
                    let how = consumer
                        .take()
                        .map(|c| c.wait_timeout(Duration::from_secs(5)));
                    panic!("round {round}: unexpected {e:?}; the consumer ended with {how:?}")
                }
            }
            if let Some(t) = kill_time {
                assert!(t.elapsed() < DEADLINE, "round {round}: no PeerGone in time");
            }
        }
    }
}

/// MPMC channel: a producer process killed at a random moment (possibly between claiming
/// a slot and publishing it) never wedges the ring; what the consumer gets from it is a
/// contiguous prefix, and our own producer's messages all arrive, in order.
#[test]
fn mpmc_participant_killed() {
    let mut rng = Rng::new(3);
    for round in 0..kills() {
        let name = format!("crash-{}-mpmc-{round}", std::process::id());
        let (mut tx, mut rx) = mpmc_pair(&opts().capacity(64).participants(8), &name);
        let kid = child_on(&name, |n| {
            let Ok(mut p) = opts().connect_mpmc_producer::<u64>(n) else {
                return 10;
            };
            send_forever(|i| p.send_deadline((1 << 40) | i, None))
        });
        let kill_after = Duration::from_micros(500 + rng.below(20_000));
        let start = Instant::now();
        let mut kid = Some(kid);
        let (mut theirs, mut ours, mut sent) = (0u64, 0u64, 0u64);
        loop {
            if kid.is_some() && start.elapsed() >= kill_after {
                kid.take().unwrap().kill().unwrap();
            }
            if sent < 2000 && tx.try_send(sent).is_ok() {
                sent += 1;
            }
            match rx.try_recv() {
                Ok(v) if v >= 1 << 40 => {
                    assert_eq!(v - (1 << 40), theirs, "round {round}: child's prefix");
                    theirs += 1;
                }
                Ok(v) => {
                    assert_eq!(v, ours, "round {round}: our producer's order");
                    ours += 1;
                }
                Err(e) if e.is_retryable() => {}
                Err(e) => panic!("round {round}: unexpected {e:?}"),
            }
            if kid.is_none() && ours == 2000 {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "round {round}: ring wedged (ours {ours}, theirs {theirs})"
            );
        }
    }
}

/// Checks a broadcast receiver's stream of stamped messages (24 bytes or more, so the full
/// sequence is in each): every message valid, and every gap exactly a loss the channel
/// reported (none on a lossless channel).
struct Tally {
    expect: u64,
    reported: u64,
    lossless: bool,
}

impl Tally {
    fn take(&mut self, msg: &[u8], round: usize) {
        let s = stamp::check(msg).unwrap_or_else(|e| panic!("round {round}: torn message: {e}"));
        let gap = s.seq.checked_sub(self.expect);
        let gap = gap.unwrap_or_else(|| panic!("round {round}: {} again", s.seq));
        assert!(
            gap == self.reported && (gap == 0 || !self.lossless),
            "round {round}: gap of {gap} before {}, {} reported",
            s.seq,
            self.reported
        );
        self.reported = 0;
        self.expect = s.seq + 1;
    }
}

/// Receives one message as `Tally` checks it, copying or (every other time) reading in
/// place; `Err` is the channel's error, `Ok(false)` a timeout.
fn broadcast_recv(
    rx: &mut shm_bridge::BroadcastReceiver<shm_bridge::Raw>,
    tally: &mut Tally,
    buf: &mut [u8],
    in_place: bool,
    round: usize,
) -> Result<bool, Error> {
    let soon = Some(Instant::now() + Duration::from_millis(5));
    let got = if in_place {
        rx.read_message_deadline(soon).map(|g| {
            let v = g.to_vec();
            (v, g.release())
        })
    } else {
        rx.recv_message_deadline(buf, soon)
            .map(|n| (buf[..n].to_vec(), Ok(())))
    };
    match got {
        Ok((v, Ok(()))) => tally.take(&v, round),
        Ok((_, Err(shm_queue::TryError::Lagged { missed }))) if !tally.lossless => {
            tally.reported += missed
        }
        Ok((_, Err(e))) => panic!("round {round}: release: {e}"),
        Err(Error::Lost { missed, .. }) if !tally.lossless => tally.reported += missed,
        Err(Error::Timeout { .. } | Error::PeerHung { .. }) => return Ok(false),
        Err(e) => return Err(e),
    }
    Ok(true)
}

/// A stamped message of 24 to 512 bytes.
fn stamped(msg: &mut [u8], r: &mut Rng, seq: u64) -> usize {
    let len = 24 + r.below(489) as usize;
    let _ = stamp::write(&mut msg[..len], seq, stamp::now_ns());
    len
}

/// Broadcast channel, publisher killed at a random moment (often inside a send): the
/// subscriber gets valid messages only, every one up to the death on a lossless channel
/// (every gap reported on a lossy one, every other round), then `PeerGone` in time; the
/// next create reclaims the name.
#[test]
fn broadcast_publisher_killed() {
    let mut rng = Rng::new(4);
    let name = format!("crash-{}-bcast-p", std::process::id());
    for round in 0..kills() {
        let lossless = round % 2 == 0;
        let seed = rng.next();
        let kid = child_on(&name, move |n| {
            let mut r = Rng(seed | 1);
            let o = opts().capacity(256).max_message(512).subscribers(2);
            let o = if lossless { o } else { o.lossy() };
            let Ok(mut tx) = o.create_broadcast_bytes(n) else {
                return 10;
            };
            let start = Instant::now();
            while tx.subscribers().is_empty() {
                if start.elapsed() > Duration::from_secs(5) {
                    return 11;
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            let mut msg = vec![0u8; 512];
            send_forever(|seq| {
                let len = stamped(&mut msg, &mut r, seq);
                tx.send_message(&msg[..len])
            })
        });
        let mut rx = opts().connect_subscriber_bytes(&name).unwrap();
        let kill_after = Duration::from_micros(200 + rng.below(20_000));
        let start = Instant::now();
        let mut kid = Some(kid);
        let mut kill_time = None;
        let mut tally = Tally {
            expect: 0,
            reported: 0,
            lossless,
        };
        let mut buf = vec![0u8; rx.max_message()];
        loop {
            if kill_time.is_none() && start.elapsed() >= kill_after {
                kid.take().unwrap().kill().unwrap();
                kill_time = Some(Instant::now());
            }
            let in_place = rng.below(2) == 0;
            match broadcast_recv(&mut rx, &mut tally, &mut buf, in_place, round) {
                Ok(_) => {}
                Err(Error::PeerGone { .. }) => {
                    let t = kill_time.expect("PeerGone only after the kill");
                    assert!(t.elapsed() < DEADLINE, "round {round}: late PeerGone");
                    break;
                }
                Err(e) => panic!("round {round}: unexpected {e:?}"),
            }
            if let Some(t) = kill_time {
                assert!(t.elapsed() < DEADLINE, "round {round}: no PeerGone in time");
            }
        }
    }
    // The name the dead publishers left is reclaimed by the next create.
    let tx = opts().create_broadcast_bytes(&name).unwrap();
    drop(tx);
    assert!(!shm_bridge::shm_path(&name).exists());
}

/// Broadcast channel, one of two subscriber processes killed at a random moment (often
/// holding a lossless publisher up, or inside an in-place read): the publisher is never
/// blocked for good (the dead subscriber's entry is freed), and the surviving subscriber
/// gets every message, valid and in order, then `Closed`.
#[test]
fn broadcast_subscriber_killed() {
    let mut rng = Rng::new(5);
    const M: u64 = 20_000;
    for round in 0..kills() {
        let name = format!("crash-{}-bcast-s-{round}", std::process::id());
        let o = opts().capacity(64).max_message(512).subscribers(3);
        let mut tx = o.create_broadcast_bytes(&name).unwrap();
        let kids: Vec<Child> = (0..2)
            .map(|k| {
                let seed = rng.next();
                child_on(&name, move |n| {
                    let mut r = Rng(seed | 1);
                    let Ok(mut rx) = opts().connect_subscriber_bytes(n) else {
                        return 10;
                    };
                    let mut tally = Tally {
                        expect: 0,
                        reported: 0,
                        lossless: true,
                    };
                    let mut buf = vec![0u8; rx.max_message()];
                    loop {
                        let in_place = r.below(2) == 0;
                        match broadcast_recv(&mut rx, &mut tally, &mut buf, in_place, k) {
                            Ok(_) => {}
                            Err(Error::Closed { .. }) if tally.expect == M => return 0,
                            Err(_) => return 12,
                        }
                    }
                })
            })
            .collect();
        let start = Instant::now();
        while tx.subscribers().len() < 2 {
            assert!(start.elapsed() < Duration::from_secs(10), "round {round}");
            std::thread::sleep(Duration::from_micros(100));
        }
        let mut kids = kids.into_iter();
        let (mut victim, survivor) = (kids.next(), kids.next().unwrap());
        let kill_after = Duration::from_micros(200 + rng.below(20_000));
        let start = Instant::now();
        let mut msg = vec![0u8; 512];
        let mut r = Rng(rng.next() | 1);
        for seq in 0..M {
            if victim.is_some() && start.elapsed() >= kill_after {
                victim.take().unwrap().kill().unwrap();
            }
            let len = stamped(&mut msg, &mut r, seq);
            tx.send_message_deadline(&msg[..len], Some(Instant::now() + Duration::from_secs(10)))
                .unwrap_or_else(|e| panic!("round {round}: send {seq}: {e}"));
        }
        if let Some(v) = victim {
            v.kill().unwrap();
        }
        drop(tx);
        survivor
            .wait_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("round {round}: survivor: {e}"));
    }
}
