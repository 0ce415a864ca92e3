//! iceoryx2 publish/subscribe round trip (feature `iceoryx2`): the peer the suite compares
//! shmlane with. Two services, `ping` and `pong`, between the same two pinned processes as
//! every other round trip; each side creates its own node after the fork.

use std::time::{Duration, Instant};

use iceoryx2::prelude::*;

use crate::bench::report::Latency;
use crate::bench::run::{pingpong, Res, DEADLINE};

fn s<E: std::fmt::Display>(e: E) -> String {
    format!("iceoryx2: {e}")
}

type Pub = iceoryx2::port::publisher::Publisher<ipc::Service, u64, ()>;
type Sub = iceoryx2::port::subscriber::Subscriber<ipc::Service, u64, ()>;

/// A node with a publisher on `out` and a subscriber on `inn`.
fn ports(tag: &str, out: &str, inn: &str) -> Res<(Node<ipc::Service>, Pub, Sub)> {
    let node = NodeBuilder::new().create::<ipc::Service>().map_err(s)?;
    let service = |name: &str| {
        let name: ServiceName = format!("shmlane-bench/{tag}/{name}")
            .as_str()
            .try_into()
            .map_err(s)?;
        node.service_builder(&name)
            .publish_subscribe::<u64>()
            .open_or_create()
            .map_err(s)
    };
    let out_service = service(out)?;
    let in_service = service(inn)?;
    let publisher = out_service.publisher_builder().create().map_err(s)?;
    let subscriber = in_service.subscriber_builder().create().map_err(s)?;
    Ok((node, publisher, subscriber))
}

/// Spins on `receive` until a sample arrives or the deadline passes.
fn receive(sub: &Sub, deadline: Instant) -> Res<u64> {
    let mut spins = 0u32;
    loop {
        if let Some(sample) = sub.receive().map_err(s)? {
            return Ok(*sample);
        }
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(1 << 14) && Instant::now() > deadline {
            return Err("iceoryx2: timed out waiting for the peer".into());
        }
        std::hint::spin_loop();
    }
}

/// Round trip of a `u64` through two iceoryx2 publish/subscribe services.
pub fn rtt(rounds: u64, warmup: u64) -> Res<Latency> {
    let tag = format!("{}", std::process::id());
    let child_tag = tag.clone();
    let mut parent: Option<(Node<ipc::Service>, Pub, Sub)> = None;
    pingpong(
        rounds,
        warmup,
        move |total| {
            let (_node, publisher, subscriber) = ports(&child_tag, "pong", "ping")?;
            let deadline = Instant::now() + DEADLINE;
            loop {
                let v = receive(&subscriber, deadline)?;
                publisher.send_copy(v).map_err(s)?;
                if v + 1 >= total {
                    return Ok(());
                }
            }
        },
        move |i| {
            let deadline = Instant::now() + DEADLINE;
            if parent.is_none() {
                // First round: the child's subscriber may not be connected yet, and a sample
                // sent before it is lost, so repeat ping 0 until an echo comes back, then drop
                // the surplus echoes.
                let (node, publisher, subscriber) = ports(&tag, "ping", "pong")?;
                loop {
                    publisher.send_copy(0).map_err(s)?;
                    std::thread::sleep(Duration::from_millis(1));
                    if subscriber.receive().map_err(s)?.is_some() {
                        break;
                    }
                    if Instant::now() > deadline {
                        return Err("iceoryx2: the child never answered".into());
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
                while subscriber.receive().map_err(s)?.is_some() {}
                parent = Some((node, publisher, subscriber));
                return Ok(i);
            }
            let Some((_, publisher, subscriber)) = parent.as_ref() else {
                return Err("iceoryx2: no ports".into());
            };
            publisher.send_copy(i).map_err(s)?;
            receive(subscriber, deadline)
        },
    )
}

/// The fan-out's connection marker (never a message number).
const MARK: u64 = u64::MAX - 1;

/// `n` `u64`s from one iceoryx2 publisher process to `subs` subscriber processes, lossless
/// (no safe overflow; the publisher retries until every subscriber has room), each
/// subscriber's buffer `cap` samples: messages per second, timed from the first send (the
/// processes connect first). Every side waits as the shmlane contenders do: spin, yield
/// every `yield_every` failed attempts; iceoryx2's own retry on a full buffer is its own.
pub fn fan_out_rate(n: u64, cap: usize, subs: usize) -> Res<f64> {
    use std::sync::atomic::Ordering::{AcqRel, Acquire, Release};

    use crate::bench::broadcast::{fan_out, Reader};
    use crate::bench::rings::spin_yielding;
    use crate::bench::run::Patience;

    // A fresh service per run: one left by an earlier run (its ports still being torn
    // down) would have other limits.
    let name = format!(
        "shmlane-bench/{}/fan-out-{subs}-{}",
        std::process::id(),
        crate::stamp::now_ns()
    );
    let every = crate::bench::run::yield_every(subs + 1);
    let service = move |node: &Node<ipc::Service>| {
        let name: ServiceName = name.as_str().try_into().map_err(s)?;
        node.service_builder(&name)
            .publish_subscribe::<u64>()
            .enable_safe_overflow(false)
            .subscriber_max_buffer_size(cap)
            .max_subscribers(subs)
            .max_publishers(1)
            .history_size(0)
            .open_or_create()
            .map_err(s)
    };
    let mut readers: Vec<Reader<'_>> = Vec::new();
    for _ in 0..subs {
        let service = service.clone();
        readers.push(Box::new(move |b| {
            let node = NodeBuilder::new().create::<ipc::Service>().map_err(s)?;
            let sub = service(&node)?
                .subscriber_builder()
                .buffer_size(cap)
                .create()
                .map_err(s)?;
            let mut patience = Patience::new();
            let empty = || shm_queue::TryError::Empty {
                requested: 1,
                available: 0,
            };
            let mut next = || {
                spin_yielding(&mut patience, every, || match sub.receive() {
                    Ok(Some(sample)) => Ok(*sample),
                    Ok(None) => Err(empty()),
                    // Any receive error ends the run (reported as a wrong message).
                    Err(_) => Ok(u64::MAX),
                })
            };
            // The connection handshake: markers until the first one arrives, then say so;
            // the stream starts once every subscriber has.
            let mut v = next()?;
            if v == MARK {
                b.word(3)?.fetch_add(1, AcqRel);
            }
            while v == MARK {
                v = next()?;
            }
            for i in 0..n {
                if i > 0 {
                    v = next()?;
                }
                if v != i {
                    return Err(format!("iceoryx2: message {i} carried {v}"));
                }
            }
            Ok(n)
        }));
    }
    fan_out(
        n,
        move |b| {
            let node = NodeBuilder::new().create::<ipc::Service>().map_err(s)?;
            let publisher = service(&node)?
                .publisher_builder()
                .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
                .create()
                .map_err(s)?;
            // A sample sent before a subscriber's side of the connection is up can be
            // dropped (its buffer counts as full and unconnected), so the stream starts only
            // after every subscriber received a marker.
            let deadline = Instant::now() + DEADLINE;
            while b.word(3)?.load(Acquire) < subs as u64 {
                if Instant::now() > deadline {
                    return Err("iceoryx2: the subscribers never connected".into());
                }
                iceoryx2::port::update_connections::UpdateConnections::update_connections(
                    &publisher,
                )
                .map_err(s)?;
                publisher.send_copy(MARK).map_err(s)?;
                std::thread::sleep(Duration::from_millis(1));
            }
            b.word(4)?.store(crate::stamp::now_ns(), Release);
            for i in 0..n {
                publisher.send_copy(i).map_err(s)?;
            }
            // Keep the publisher (whose memory holds the samples) until every subscriber
            // has read everything.
            while b.word(2)?.load(Acquire) < n * subs as u64 {
                if Instant::now() > deadline {
                    return Err("iceoryx2: the subscribers never finished".into());
                }
                std::thread::yield_now();
            }
            Ok(())
        },
        readers,
    )
}
