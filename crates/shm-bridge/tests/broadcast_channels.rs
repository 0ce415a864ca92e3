//! Broadcast channels across real processes: every subscriber gets every message, a killed
//! subscriber never blocks the sender, lossy and evicting channels report exact losses, a
//! killed sender is reported after the subscribers drained, kinds are checked.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use common::{child_on, wait_until};
use shm_bridge::{ChannelOptions, Error};
use shm_queue::broadcast::SlowPolicy;

mod common;

fn name(tag: &str) -> String {
    format!("test-{}-bc-{tag}", std::process::id())
}

const N: u64 = if cfg!(debug_assertions) {
    100_000
} else {
    1_000_000
};
const LIMIT: Duration = Duration::from_secs(60);

/// A subscriber child: connects, reads `0..n` in order (single and batch receives), then
/// expects `Closed`. Exit codes: 0 ok, 1 out of order, 2 not closed, 3 other error.
fn subscribe(name: &str, n: u64) -> i32 {
    let Ok(mut rx) = ChannelOptions::new().connect_subscriber::<u64>(name) else {
        return 4;
    };
    let deadline = Some(Instant::now() + LIMIT);
    let mut next = 0;
    let mut buf = [0u64; 32];
    while next < n {
        let got = if next % 3 == 0 {
            rx.recv_slice_deadline(&mut buf, deadline)
        } else {
            rx.recv_deadline(deadline).map(|v| {
                buf[0] = v;
                1
            })
        };
        match got {
            Ok(k) => {
                for &v in &buf[..k] {
                    if v != next {
                        return 1;
                    }
                    next += 1;
                }
            }
            Err(_) => return 3,
        }
    }
    match rx.recv_deadline(deadline) {
        Err(Error::Closed { .. }) => 0,
        _ => 2,
    }
}

#[test]
fn three_subscriber_processes_get_every_message() {
    let n = name("three");
    let mut tx = ChannelOptions::new()
        .capacity(1024)
        .subscribers(4)
        .create_broadcast::<u64>(&n)
        .unwrap();
    let children: Vec<_> = (0..3).map(|_| child_on(&n, |n| subscribe(n, N))).collect();
    assert!(wait_until(LIMIT, Duration::from_millis(1), || tx
        .subscribers()
        .len()
        == 3));
    for i in 0..N {
        tx.send(i).unwrap();
    }
    drop(tx);
    for c in children {
        c.wait_timeout(LIMIT).unwrap();
    }
    assert!(!shm_bridge::shm_path(&n).exists());
}

#[test]
fn a_killed_subscriber_never_blocks_the_sender() {
    let n = name("killed");
    let opts = ChannelOptions::new().capacity(64).subscribers(2);
    let mut tx = opts.create_broadcast::<u64>(&n).unwrap();
    // A subscriber that connects and never reads.
    let stuck = child_on(&n, |n| {
        let _rx = ChannelOptions::new().connect_subscriber::<u64>(n).unwrap();
        std::thread::sleep(Duration::from_secs(60));
        0
    });
    assert!(wait_until(LIMIT, Duration::from_millis(1), || tx
        .subscribers()
        .len()
        == 1));
    let mut live = opts.connect_subscriber::<u64>(&n).unwrap();
    let mut sent = 0u64;
    while tx.try_send(sent).is_ok() {
        assert_eq!(live.try_recv().unwrap(), sent);
        sent += 1;
    }
    assert!(matches!(tx.try_send(sent), Err(Error::WouldBlock { .. })));
    assert!(tx.gated_by().is_some());
    stuck.kill().unwrap();
    // The sender asks the kernel about the subscriber holding it up, frees its entry and
    // goes on.
    for i in sent..sent + 1000 {
        tx.send_deadline(i, Some(Instant::now() + LIMIT)).unwrap();
        assert_eq!(live.recv().unwrap(), i);
    }
    assert_eq!(tx.stats().reclaimed, 1);
    assert_eq!(tx.subscribers().len(), 1);
}

#[test]
fn lossy_and_evicting_channels_report_exact_losses() {
    let n = name("lossy");
    let opts = ChannelOptions::new().capacity(64).lossy();
    let mut tx = opts.create_broadcast::<u64>(&n).unwrap();
    let mut rx = opts.connect_subscriber::<u64>(&n).unwrap();
    for i in 0..1000 {
        tx.try_send(i).unwrap(); // never full
    }
    let Err(Error::Lost { missed, how, .. }) = rx.try_recv() else {
        panic!("expected a loss")
    };
    assert_eq!(how, "overtaken");
    assert_eq!(rx.recv().unwrap(), missed);
    assert_eq!(rx.missed(), missed);
    drop((tx, rx));

    let n = name("evict");
    let opts = ChannelOptions::new()
        .capacity(64)
        .slow_policy(SlowPolicy::Evict {
            after: Duration::from_millis(20),
        });
    let mut tx = opts.create_broadcast::<u64>(&n).unwrap();
    let mut rx = opts.connect_subscriber::<u64>(&n).unwrap();
    let start = Instant::now();
    for i in 0..1000 {
        tx.send_deadline(i, Some(Instant::now() + LIMIT)).unwrap();
    }
    assert!(start.elapsed() >= Duration::from_millis(20));
    assert_eq!(tx.stats().evictions, 1);
    let Err(Error::Lost { missed, how, .. }) = rx.try_recv() else {
        panic!("expected an eviction")
    };
    assert_eq!((missed, how), (1000, "evicted"));
    tx.send(5000).unwrap();
    assert_eq!(rx.recv().unwrap(), 5000);
}

#[test]
fn a_dead_sender_is_reported_after_the_subscriber_drained() {
    let n = name("dead-sender");
    let sender = child_on(&n, |n| {
        let mut tx = ChannelOptions::new()
            .subscribers(2)
            .create_broadcast::<u64>(n)
            .unwrap();
        while tx.subscribers().is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
        for i in 0..100 {
            tx.send(i).unwrap();
        }
        std::thread::sleep(Duration::from_secs(60));
        0
    });
    let mut rx = ChannelOptions::new().connect_subscriber::<u64>(&n).unwrap();
    for i in 0..100 {
        assert_eq!(rx.recv_deadline(Some(Instant::now() + LIMIT)).unwrap(), i);
    }
    sender.kill().unwrap();
    assert!(matches!(
        rx.recv_deadline(Some(Instant::now() + LIMIT)),
        Err(Error::PeerGone { .. })
    ));
}

#[test]
fn history_and_kind_checks() {
    let n = name("history");
    let opts = ChannelOptions::new().capacity(64).subscribers(3);
    let mut tx = opts.create_broadcast::<u64>(&n).unwrap();
    for i in 0..10 {
        tx.send(i).unwrap();
    }
    let mut late = opts
        .clone()
        .history(4)
        .connect_subscriber::<u64>(&n)
        .unwrap();
    let mut newest = opts.connect_subscriber::<u64>(&n).unwrap();
    tx.send(10).unwrap();
    assert_eq!(
        (0..5).map(|_| late.recv().unwrap()).collect::<Vec<_>>(),
        [6, 7, 8, 9, 10]
    );
    assert_eq!(newest.recv().unwrap(), 10);
    let quick = ChannelOptions::new().timeout(Duration::ZERO);
    assert!(matches!(
        quick.connect::<u64>(&n),
        Err(Error::WrongKind { .. })
    ));
    assert!(matches!(
        quick.connect_subscriber::<u32>(&n),
        Err(Error::WrongKind { .. })
    ));
    let typed = name("typed");
    let _t = ChannelOptions::new().create::<u64>(&typed).unwrap();
    assert!(matches!(
        quick.connect_subscriber::<u64>(&typed),
        Err(Error::WrongKind { .. })
    ));
    assert!(matches!(
        ChannelOptions::new()
            .subscribers(0)
            .create_broadcast::<u64>(&name("zero")),
        Err(Error::BadConfig { .. })
    ));
    assert!(matches!(
        ChannelOptions::new()
            .subscribers(60)
            .create_broadcast::<u64>(&name("sixty")),
        Err(Error::BadConfig { .. })
    ));
}

#[test]
fn a_blocking_receive_reports_a_loss_rather_than_skipping_it() {
    let n = name("lossy-blocking");
    let opts = ChannelOptions::new().capacity(64).lossy();
    let mut tx = opts.create_broadcast::<u64>(&n).unwrap();
    let mut rx = opts.connect_subscriber::<u64>(&n).unwrap();
    for i in 0..1000 {
        tx.try_send(i).unwrap();
    }
    let Err(Error::Lost { missed, .. }) = rx.recv() else {
        panic!("the loss was not reported")
    };
    assert_eq!(rx.recv().unwrap(), missed);
}

#[test]
fn raw_and_typed_ends_under_an_agreed_element_name() {
    use shm_bridge::ElementType;
    let n = name("raw");
    let elem = ElementType::named("test.Tick/1", 16, 8).unwrap();
    let opts = ChannelOptions::new()
        .capacity(64)
        .subscribers(3)
        .type_name("test.Tick/1");
    let mut tx = opts.create_broadcast_raw(&n, &elem).unwrap();
    let mut typed = opts.connect_subscriber::<[u64; 2]>(&n).unwrap();
    let mut raw = opts.connect_subscriber_raw(&n, &elem).unwrap();
    // Without the agreed name, the Rust type's own is expected, and refused.
    assert!(matches!(
        ChannelOptions::new()
            .timeout(Duration::ZERO)
            .connect_subscriber::<[u64; 2]>(&n),
        Err(Error::WrongKind { .. })
    ));
    let bytes: Vec<u8> = [7u64, 8, 9, 10]
        .iter()
        .flat_map(|w| w.to_ne_bytes())
        .collect();
    assert_eq!(tx.try_send_bytes(&bytes).unwrap(), 2);
    tx.send_bytes_deadline(&bytes[..16], None).unwrap();
    assert!(tx.try_send_bytes(&bytes[..5]).is_err());
    assert_eq!(typed.recv().unwrap(), [7, 8]);
    assert_eq!(typed.recv().unwrap(), [9, 10]);
    assert_eq!(typed.recv().unwrap(), [7, 8]);
    let mut out = [0u8; 64];
    assert_eq!(raw.recv_bytes_into_deadline(&mut out, None).unwrap(), 3);
    assert_eq!(&out[..32], &bytes[..]);
    assert!(matches!(
        raw.try_recv_bytes_into(&mut out),
        Err(Error::WouldBlock { .. })
    ));
    drop(tx);
    assert!(matches!(
        raw.try_recv_bytes_into(&mut out),
        Err(Error::Closed { .. })
    ));
}

/// Byte message `i`: a length from 0 to 200 that varies with `i`, bytes derived from `i`.
fn bytes_message(i: u64) -> Vec<u8> {
    let len = (i.wrapping_mul(53) % 201) as usize;
    (0..len)
        .map(|k| (i as usize ^ k.wrapping_mul(13)) as u8)
        .collect()
}

#[test]
fn byte_message_channels_across_processes() {
    let n = name("bytes");
    let opts = ChannelOptions::new()
        .capacity(256)
        .max_message(200)
        .subscribers(3);
    let mut tx = opts.create_broadcast_bytes(&n).unwrap();
    assert_eq!(tx.max_message(), 200);
    let count = N / 4;
    let children: Vec<_> = (0..2)
        .map(|_| {
            child_on(&n, move |n| {
                let Ok(mut rx) = ChannelOptions::new().connect_subscriber_bytes(n) else {
                    return 4;
                };
                let deadline = Some(Instant::now() + LIMIT);
                let mut buf = Vec::new();
                for i in 0..count {
                    let ok = if i % 2 == 0 {
                        rx.recv_message_vec(&mut buf, deadline).is_ok() && buf == bytes_message(i)
                    } else {
                        match rx.read_message_deadline(deadline) {
                            Ok(g) => {
                                let v = g.to_vec();
                                g.release().is_ok() && v == bytes_message(i)
                            }
                            Err(_) => false,
                        }
                    };
                    if !ok {
                        return 1;
                    }
                }
                match rx.recv_message_vec(&mut buf, deadline) {
                    Err(Error::Closed { .. }) => 0,
                    _ => 2,
                }
            })
        })
        .collect();
    assert!(wait_until(LIMIT, Duration::from_millis(1), || tx
        .subscribers()
        .len()
        == 2));
    assert!(matches!(
        tx.try_send_message(&[0; 201]),
        Err(Error::Queue { .. })
    ));
    for i in 0..count {
        tx.send_message_deadline(&bytes_message(i), Some(Instant::now() + LIMIT))
            .unwrap();
    }
    drop(tx);
    for c in children {
        c.wait_timeout(LIMIT).unwrap();
    }
    assert!(!shm_bridge::shm_path(&n).exists());
}

#[test]
fn byte_message_channels_report_losses_and_check_kinds() {
    let n = name("bytes-lossy");
    let opts = ChannelOptions::new().capacity(64).max_message(64).lossy();
    let mut tx = opts.create_broadcast_bytes(&n).unwrap();
    let mut rx = opts.connect_subscriber_bytes(&n).unwrap();
    // A typed subscriber cannot read a byte-message channel.
    assert!(matches!(
        opts.connect_subscriber::<u64>(&n),
        Err(Error::WrongKind { .. })
    ));
    for i in 0..1000u64 {
        tx.try_send_message(&i.to_le_bytes()).unwrap(); // never full
    }
    let mut buf = [0u8; 64];
    let Err(Error::Lost { missed, .. }) = rx.try_recv_message(&mut buf) else {
        panic!("expected a loss")
    };
    let k = rx.recv_message_deadline(&mut buf, None).unwrap();
    assert_eq!(&buf[..k], &missed.to_le_bytes());
    // Read up (the horizon moves a step at a time, so a lapped reader can lag again).
    loop {
        match rx.try_recv_message(&mut buf) {
            Ok(k) => assert_eq!(k, 8),
            Err(Error::Lost { .. }) => {}
            Err(Error::WouldBlock { .. }) => break,
            Err(e) => panic!("{e}"),
        }
    }
    // A BufferTooSmall leaves the message for the next call.
    tx.try_send_message(&[9; 40]).unwrap();
    let mut small = [0u8; 8];
    assert!(matches!(
        rx.try_recv_message(&mut small),
        Err(Error::Queue { .. })
    ));
    assert_eq!(rx.try_recv_message(&mut buf).unwrap(), 40);
    // A batch read: what is ready, packed, with the lengths.
    for i in 0..5u8 {
        tx.try_send_message(&vec![i; usize::from(i) * 3]).unwrap();
    }
    let mut lens = [0usize; 8];
    let n = rx.try_recv_messages(&mut buf, &mut lens).unwrap();
    assert_eq!(n, 1, "a buffer of one maximum holds one message");
    let mut big = vec![0u8; 64 * 8];
    let n = rx.try_recv_messages(&mut big, &mut lens).unwrap();
    assert_eq!(&lens[..n], &[3, 6, 9, 12]);
    assert_eq!(&big[..3], &[1, 1, 1]);
    assert_eq!(rx.try_recv_messages(&mut big, &mut lens).unwrap(), 0);
    drop((tx, rx));

    // A byte-message subscriber cannot read a typed channel.
    let n = name("bytes-kind");
    let _typed = ChannelOptions::new().create_broadcast::<u64>(&n).unwrap();
    assert!(matches!(
        ChannelOptions::new().connect_subscriber_bytes(&n),
        Err(Error::WrongKind { .. })
    ));
    assert!(matches!(
        ChannelOptions::new()
            .max_message(1 << 30)
            .create_broadcast_bytes(&name("bytes-huge")),
        Err(Error::BadConfig { .. })
    ));
}

#[test]
fn waiting_for_a_peer_waits_until_a_receiver_joined_the_ring() {
    let n = name("peer");
    let mut tx = ChannelOptions::new().create_broadcast::<u64>(&n).unwrap();
    assert!(matches!(
        tx.wait_for_peer(Duration::from_millis(20)),
        Err(Error::Timeout { .. })
    ));
    // A forked receiver: once the sender's wait returns, the first message reaches it.
    let child = child_on(&n, |name| {
        match ChannelOptions::new()
            .connect_subscriber::<u64>(name)
            .and_then(|mut rx| rx.recv_deadline(Some(Instant::now() + LIMIT)))
        {
            Ok(0) => 0,
            Ok(_) => 1,
            Err(_) => 2,
        }
    });
    tx.wait_for_peer(LIMIT).unwrap();
    assert!(!tx.subscribers().is_empty());
    tx.send(0).unwrap();
    child
        .wait_timeout(LIMIT)
        .expect("the receiver got the first message (exit 1: it missed it)");
}
