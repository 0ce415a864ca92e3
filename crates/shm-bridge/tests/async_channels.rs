//! The async ends (`shm_bridge::aio`) across real processes and inside tokio: an async
//! consumer against a blocking producer and the reverse, on current-thread and multi-thread
//! runtimes, for typed, byte and MPMC channels; cancellation inside `select!` under load
//! with a checked sequence; a peer killed while a task awaits; the fast path that never
//! parks; many channels drained by one task.
//!
//! Children are forked before any runtime exists (a runtime's threads do not survive a
//! fork).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use shm_bridge::aio::AsyncWait;
use shm_bridge::{ChannelOptions, Error, WaitStrategy};

use common::child_on;

mod common;

/// The tests fork; one at a time keeps the 2 CPUs for one test's processes and no test
/// thread holds a lock at another's fork.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn name(tag: &str) -> String {
    format!("aio-{}-{tag}", std::process::id())
}

fn runtime(multi: bool) -> tokio::runtime::Runtime {
    if multi {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }
}

fn blocking() -> ChannelOptions {
    ChannelOptions::new()
        .wait_strategy(WaitStrategy::blocking())
        .timeout(Duration::from_secs(10))
}

const N: u64 = 200_000;

#[test]
fn async_typed_consumer_against_a_blocking_producer_process() {
    let _s = serial();
    for multi in [false, true] {
        let n = name(&format!("typed-{multi}"));
        let kid = child_on(&n, |n| {
            let mut tx = blocking().capacity(256).create::<u64>(n).unwrap();
            tx.wait_for_peer(Duration::from_secs(10)).unwrap();
            for i in 0..N {
                tx.send(i).unwrap();
            }
            0
        });
        let stats = runtime(multi).block_on(async {
            let mut rx = blocking().connect::<u64>(&n).unwrap().into_async();
            for i in 0..N {
                assert_eq!(rx.recv().await.unwrap(), i);
            }
            assert!(matches!(rx.recv().await, Err(Error::Closed { .. })));
            rx.stats()
        });
        kid.wait_timeout(Duration::from_secs(30)).unwrap();
        assert!(stats.parks > 0 || stats.yields > 0, "{stats:?}");
    }
}

#[test]
fn async_sender_parks_on_a_full_ring_and_a_blocking_consumer_process_gets_everything() {
    let _s = serial();
    for multi in [false, true] {
        let n = name(&format!("tx-{multi}"));
        // The child consumes slowly at first, so the sender must wait for room.
        let kid = child_on(&n, |n| {
            let mut rx = blocking().connect::<u64>(n).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            for i in 0..N {
                if rx.recv().unwrap() != i {
                    return 2;
                }
            }
            match rx.recv() {
                Err(Error::Closed { .. }) => 0,
                _ => 3,
            }
        });
        let stats = runtime(multi).block_on(async {
            let mut tx = blocking()
                .capacity(16)
                .create::<u64>(&n)
                .unwrap()
                .into_async();
            tx.set_wait(AsyncWait::park_at_once());
            for i in 0..N {
                tx.send(i).await.unwrap();
            }
            tx.stats()
        });
        kid.wait_timeout(Duration::from_secs(30)).unwrap();
        assert!(stats.parks > 0 && stats.wakes > 0, "{stats:?}");
    }
}

#[test]
fn async_byte_and_mpmc_ends_with_streams_and_sinks() {
    let _s = serial();
    // Bytes: a blocking producer process, an async Stream and zero-copy reads.
    let n = name("bytes");
    let kid = child_on(&n, |n| {
        let mut tx = blocking()
            .capacity(4096)
            .max_message(64)
            .create_bytes(n)
            .unwrap();
        tx.wait_for_peer(Duration::from_secs(10)).unwrap();
        for i in 0..50_000u32 {
            tx.send(&i.to_le_bytes().repeat(1 + (i % 8) as usize))
                .unwrap();
        }
        0
    });
    runtime(false).block_on(async {
        let mut rx = blocking().connect_bytes(&n).unwrap().into_async();
        for i in 0..25_000u32 {
            let g = rx.read().await.unwrap();
            assert_eq!(g.to_vec(), i.to_le_bytes().repeat(1 + (i % 8) as usize));
        }
        let mut i = 25_000u32;
        while let Some(m) = rx.next().await {
            assert_eq!(m.unwrap(), i.to_le_bytes().repeat(1 + (i % 8) as usize));
            i += 1;
        }
        assert_eq!(i, 50_000);
    });
    kid.wait_timeout(Duration::from_secs(30)).unwrap();

    // MPMC: two blocking producer processes, one async consumer, per-producer order.
    let n = name("mpmc");
    let opts = blocking().capacity(64).participants(4);
    let tx = opts.create_mpmc::<u64>(&n).unwrap();
    let kids: Vec<_> = (0..2u64)
        .map(|p| {
            child_on(&n, move |n| {
                let mut tx = blocking().connect_mpmc_producer::<u64>(n).unwrap();
                for i in 0..50_000u64 {
                    tx.send_deadline(p << 32 | i, None).unwrap();
                }
                0
            })
        })
        .collect();
    runtime(true).block_on(async {
        let mut rx = opts.connect_mpmc_consumer::<u64>(&n).unwrap().into_async();
        let mut next = [0u64; 2];
        while next != [50_000, 50_000] {
            let v = rx.recv().await.unwrap();
            let p = (v >> 32) as usize;
            assert_eq!(v & 0xffff_ffff, next[p]);
            next[p] += 1;
        }
    });
    for k in kids {
        k.wait_timeout(Duration::from_secs(30)).unwrap();
    }
    drop(tx);

    // Sinks, in one process: typed and bytes, then close ends the receiver's stream.
    runtime(false).block_on(async {
        let n = name("sink");
        let mut tx = ChannelOptions::new()
            .capacity(8)
            .create::<u64>(&n)
            .unwrap()
            .into_async();
        let rx = ChannelOptions::new()
            .connect::<u64>(&n)
            .unwrap()
            .into_async();
        let reader = tokio::spawn(async move { rx.map(|r| r.unwrap()).collect::<Vec<_>>().await });
        tx.send_all(&mut futures_util::stream::iter((0..1000u64).map(Ok)))
            .await
            .unwrap();
        tx.close().await.unwrap();
        assert_eq!(reader.await.unwrap(), (0..1000).collect::<Vec<_>>());

        let n = name("bsink");
        let mut tx = ChannelOptions::new()
            .capacity(256)
            .max_message(16)
            .create_bytes(&n)
            .unwrap()
            .into_async();
        let mut rx = ChannelOptions::new()
            .connect_bytes(&n)
            .unwrap()
            .into_async();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 16];
            loop {
                match rx.recv(&mut buf).await {
                    Ok(len) => got.push(buf[..len].to_vec()),
                    Err(Error::Closed { .. }) => return got,
                    Err(e) => panic!("{e}"),
                }
            }
        });
        for i in 0..500u16 {
            tx.feed(i.to_le_bytes()).await.unwrap();
        }
        SinkExt::<[u8; 2]>::close(&mut tx).await.unwrap();
        let got = reader.await.unwrap();
        assert_eq!(got.len(), 500);
        assert!(got
            .iter()
            .enumerate()
            .all(|(i, m)| m[..] == (i as u16).to_le_bytes()));
    });
}

/// `select!` drops `recv()` and `send()` futures at random points under load: every
/// completed send arrives once, in order, and nothing else does.
#[test]
fn cancelled_futures_lose_and_duplicate_nothing() {
    let _s = serial();
    runtime(true).block_on(async {
        let n = name("cancel");
        let opts = ChannelOptions::new().capacity(32);
        let mut tx = opts.create::<u64>(&n).unwrap().into_async();
        let mut rx = opts.connect::<u64>(&n).unwrap().into_async();
        let total = 50_000u64;
        // The other branch: a yield (ready on its second poll, so a `send` or `recv` that
        // is not ready at once is dropped) or a timer of up to 15 µs (1 ms in practice).
        async fn other(k: u32) {
            if k & 1 == 0 {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(Duration::from_micros(u64::from(k >> 28))).await;
            }
        }
        let sender = tokio::spawn(async move {
            let (mut sent, mut dropped) = (Vec::new(), 0u64);
            let mut i = 0;
            let mut k = 0u32;
            while i < total {
                k = k.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if i % 5000 == 4999 {
                    // Let the receiver drain the ring: its `recv` then waits, and loses races.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                tokio::select! {
                    r = tx.send(i) => { r.unwrap(); sent.push(i); i += 1; }
                    _ = other(k) => dropped += 1,
                }
            }
            (sent, dropped)
        });
        let mut got = Vec::new();
        let mut dropped = 0u64;
        let mut k = 7u32;
        while (got.len() as u64) < total {
            k = k.wrapping_mul(1_103_515_245).wrapping_add(12345);
            if got.len() % 5000 == 2500 {
                // Let the sender fill the ring: its `send` then waits, and loses races.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tokio::select! {
                r = rx.recv() => got.push(r.unwrap()),
                _ = other(k) => dropped += 1,
            }
        }
        let (sent, sender_dropped) = sender.await.unwrap();
        assert!(
            dropped > 0 && sender_dropped > 0,
            "cancelled {dropped} recv, {sender_dropped} send"
        );
        assert_eq!(sent, got, "every completed send arrived once, in order");
        assert_eq!(got, (0..total).collect::<Vec<_>>());
        assert!(rx.try_recv().is_err(), "nothing else arrived");
    });
}

#[test]
fn a_peer_killed_while_a_task_awaits_is_reported_promptly() {
    let _s = serial();
    // The producer dies while the consumer task awaits data.
    let n = name("kill-p");
    let kid = child_on(&n, |n| {
        let mut tx = blocking().capacity(64).create::<u64>(n).unwrap();
        tx.send(1).unwrap();
        std::thread::sleep(Duration::from_secs(60));
        0
    });
    runtime(false).block_on(async {
        let mut rx = blocking().connect::<u64>(&n).unwrap().into_async();
        assert_eq!(rx.recv().await.unwrap(), 1);
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            (kid.kill().unwrap(), Instant::now())
        });
        let r = rx.recv().await;
        let seen = Instant::now();
        let ((), killed) = killer.join().unwrap();
        assert!(matches!(r, Err(Error::PeerGone { .. })), "{r:?}");
        let late = seen.saturating_duration_since(killed);
        assert!(
            late < Duration::from_millis(500),
            "reported {late:?} after the kill"
        );
    });

    // The consumer dies while the sender task awaits room.
    let n = name("kill-c");
    let kid = child_on(&n, |n| {
        let _rx = blocking().connect::<u64>(n).unwrap();
        std::thread::sleep(Duration::from_secs(60));
        0
    });
    runtime(true).block_on(async {
        let mut tx = blocking()
            .capacity(8)
            .create::<u64>(&n)
            .unwrap()
            .into_async();
        tx.get_ref().wait_for_peer(Duration::from_secs(10)).unwrap();
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            kid.kill().unwrap();
        });
        let mut i = 0;
        let r = loop {
            match tx.send(i).await {
                Ok(()) => i += 1,
                Err(e) => break e,
            }
        };
        killer.join().unwrap();
        assert!(matches!(r, Error::PeerGone { .. }), "{r:?}");
        assert!(i >= 8, "filled the ring first: {i}");
    });
}

#[test]
fn a_ready_ring_is_taken_on_the_fast_path_and_many_channels_share_one_task() {
    let _s = serial();
    runtime(false).block_on(async {
        let n = name("fast");
        let opts = ChannelOptions::new().capacity(2048);
        let mut tx = opts.create::<u64>(&n).unwrap();
        let mut rx = opts.connect::<u64>(&n).unwrap().into_async();
        for i in 0..1000 {
            tx.send(i).unwrap();
        }
        for i in 0..1000 {
            assert_eq!(rx.recv().await.unwrap(), i);
        }
        let s = rx.stats();
        assert_eq!(s.parks, 0, "{s:?}");
        // One yield per budget of ready results keeps the thread's other tasks running.
        assert_eq!(s.yields, 0, "{s:?}");
        rx.set_wait(AsyncWait {
            budget: 100,
            ..AsyncWait::default()
        });
        for i in 0..1000 {
            tx.send(i).unwrap();
        }
        for i in 0..1000 {
            assert_eq!(rx.recv().await.unwrap(), i);
        }
        assert_eq!(rx.stats().yields, 10, "{:?}", rx.stats());

        // Four channels, one task, fed by one thread at different rates.
        let names: Vec<String> = (0..4).map(|k| name(&format!("many{k}"))).collect();
        let txs: Vec<_> = names
            .iter()
            .map(|n| opts.create::<u64>(n).unwrap())
            .collect();
        let rxs: Vec<_> = names
            .iter()
            .map(|n| opts.connect::<u64>(n).unwrap().into_async())
            .collect();
        let feeder = std::thread::spawn(move || {
            let mut txs = txs;
            for i in 0..4000u64 {
                let k = (i % 4) as usize;
                txs[k].send(i).unwrap();
                if i % 97 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        let mut all = futures_util::stream::select_all(rxs.into_iter().map(|r| r.boxed()));
        let mut got = BTreeSet::new();
        while let Some(v) = all.next().await {
            assert!(got.insert(v.unwrap()));
        }
        feeder.join().unwrap();
        assert_eq!(got, (0..4000).collect());
    });
}

#[test]
fn async_broadcast_subscribers_and_an_async_publisher_across_processes() {
    let _s = serial();
    // A blocking publisher process; two async subscribers in one task of this process.
    let n = name("bcast");
    let opts = blocking().capacity(256).subscribers(4);
    let publisher = child_on(&n, |n| {
        let opts = blocking().capacity(256).subscribers(4);
        let Ok(mut tx) = opts.create_broadcast::<u64>(n) else {
            return 1;
        };
        while tx.subscribers().len() < 2 {
            std::thread::sleep(Duration::from_millis(1));
        }
        for i in 0..N {
            if tx.send(i).is_err() {
                return 2;
            }
        }
        0
    });
    let mut a = opts.connect_subscriber::<u64>(&n).unwrap().into_async();
    let mut b = opts.connect_subscriber::<u64>(&n).unwrap().into_async();
    runtime(false).block_on(async {
        for i in 0..N {
            let (x, y) = tokio::join!(a.recv(), b.recv());
            assert_eq!((x.unwrap(), y.unwrap()), (i, i));
        }
        // The publisher dropped its end: both streams end.
        assert!(a.next().await.is_none());
        assert!(b.next().await.is_none());
    });
    publisher.wait_timeout(Duration::from_secs(60)).unwrap();

    // An async publisher waits (parked) for a slow blocking subscriber, losing nothing; a
    // lossy stream reports its loss as an item and goes on.
    let n = name("bcast-async-tx");
    let opts = blocking().capacity(64).subscribers(2);
    let mut tx = opts.create_broadcast::<u64>(&n).unwrap().into_async();
    let reader = child_on(&n, |n| {
        let Ok(mut rx) = blocking().connect_subscriber::<u64>(n) else {
            return 1;
        };
        for i in 0..N {
            if i % 10_000 == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
            match rx.recv_deadline(Some(Instant::now() + Duration::from_secs(30))) {
                Ok(v) if v == i => {}
                _ => return 2,
            }
        }
        0
    });
    runtime(true).block_on(async {
        while tx.get_ref().subscribers().is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for i in 0..N {
            tx.send(i).await.unwrap();
        }
        assert!(tx.stats().parks > 0, "{:?}", tx.stats());
    });
    reader.wait_timeout(Duration::from_secs(60)).unwrap();
    drop(tx);

    let n = name("bcast-lossy");
    let opts = blocking().capacity(64).lossy();
    let mut tx = opts.create_broadcast::<u64>(&n).unwrap();
    let mut rx = opts.connect_subscriber::<u64>(&n).unwrap().into_async();
    for i in 0..1000 {
        tx.try_send(i).unwrap();
    }
    drop(tx);
    runtime(false).block_on(async {
        let Some(Err(Error::Lost { missed, .. })) = rx.next().await else {
            panic!("no loss reported")
        };
        let rest: Vec<u64> = rx.map(|r| r.unwrap()).collect().await;
        assert_eq!(rest, (missed..1000).collect::<Vec<_>>());
    });
}

#[test]
fn async_byte_message_broadcast_streams_reads_and_sinks() {
    let _s = serial();
    // A blocking byte-message publisher process; in this process one async subscriber
    // receives copies and one reads in place, each message checked.
    const M: u64 = 50_000;
    let n = name("bcast-bytes");
    let opts = blocking().capacity(128).max_message(64).subscribers(4);
    let publisher = child_on(&n, |n| {
        let opts = blocking().capacity(128).max_message(64).subscribers(4);
        let Ok(mut tx) = opts.create_broadcast_bytes(n) else {
            return 1;
        };
        while tx.subscribers().len() < 2 {
            std::thread::sleep(Duration::from_millis(1));
        }
        for i in 0..M {
            let len = 8 + (i % 57) as usize;
            let mut msg = vec![(i % 251) as u8; len];
            msg[..8].copy_from_slice(&i.to_le_bytes());
            if tx.send_message(&msg).is_err() {
                return 2;
            }
        }
        0
    });
    let check = |i: u64, m: &[u8]| {
        assert_eq!(m.len(), 8 + (i % 57) as usize, "message {i}");
        assert_eq!(u64::from_le_bytes(m[..8].try_into().unwrap()), i);
        assert!(m[8..].iter().all(|&b| b == (i % 251) as u8), "message {i}");
    };
    let mut a = opts
        .connect_subscriber_bytes(&n)
        .unwrap()
        .into_async_messages();
    let mut b = opts
        .connect_subscriber_bytes(&n)
        .unwrap()
        .into_async_messages();
    runtime(true).block_on(async {
        let copies = async {
            let mut buf = [0u8; 64];
            for i in 0..M {
                let len = a.recv_message(&mut buf).await.unwrap();
                check(i, &buf[..len]);
            }
            // The publisher dropped its end: the stream ends.
            assert!(a.next().await.is_none());
        };
        let in_place = async {
            for i in 0..M {
                let g = b.read_message().await.unwrap();
                check(i, &g.to_vec());
                g.release().unwrap();
            }
            assert!(matches!(b.read_message().await, Err(Error::Closed { .. })));
        };
        tokio::join!(copies, in_place);
    });
    publisher.wait_timeout(Duration::from_secs(60)).unwrap();

    // An async publisher's Sink, a lossy channel: the stream reports the loss as an item
    // and goes on with the oldest message still there.
    let n = name("bcast-bytes-lossy");
    let opts = blocking().capacity(16).max_message(16).lossy();
    let mut tx = opts
        .create_broadcast_bytes(&n)
        .unwrap()
        .into_async_messages();
    let mut rx = opts
        .connect_subscriber_bytes(&n)
        .unwrap()
        .into_async_messages();
    runtime(false).block_on(async {
        for i in 0..100u64 {
            tx.feed(i.to_le_bytes()).await.unwrap();
        }
        SinkExt::<[u8; 8]>::close(&mut tx).await.unwrap();
        let Some(Err(Error::Lost { missed, .. })) = rx.next().await else {
            panic!("no loss reported")
        };
        let rest: Vec<u64> = rx
            .map(|m| u64::from_le_bytes(m.unwrap()[..].try_into().unwrap()))
            .collect()
            .await;
        assert_eq!(rest, (missed..100).collect::<Vec<_>>());
    });
}
