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
