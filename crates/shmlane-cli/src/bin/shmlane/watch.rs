//! `shmlane watch`: a channel's message and byte rates and fill level, sampled at an interval.
//!
//! Each refresh looks at the channel again and divides what moved since the previous look by
//! the time between them. What "moved" depends on the kind:
//!
//! - typed and MPMC rings: the ring's positions (`tail` for sent, `head` for received) count
//!   elements exactly, whatever API the processes use; bytes are elements × element size;
//! - byte rings: the message and byte counters each participant publishes every few
//!   milliseconds (a ring position counts record headers and padding, not messages).
//!
//! Counters restart when a slot is taken again, so they are compared per (slot, generation);
//! a channel created anew under the same name starts from zero.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;
use shm_bridge::inspect::{self, ChannelInfo};
use shm_bridge::{ChannelKind, Role};

use crate::render;
use crate::{emit, Failure, Outcome};

/// Messages and payload bytes that moved between two samples.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Moved {
    messages: u64,
    bytes: u64,
}

/// What the participants with `role` counted since `prev`, per (slot, generation).
fn counted(prev: &ChannelInfo, now: &ChannelInfo, role: Role) -> Moved {
    let before: HashMap<(usize, u64), (u64, u64)> = prev
        .participants
        .iter()
        .filter(|p| p.role == role)
        .map(|p| ((p.slot, p.generation), (p.messages, p.bytes)))
        .collect();
    now.participants
        .iter()
        .filter(|p| p.role == role)
        .fold(Moved::default(), |m, p| {
            let (msgs, bytes) = before
                .get(&(p.slot, p.generation))
                .copied()
                .unwrap_or((0, 0));
            Moved {
                messages: m.messages.saturating_add(p.messages.saturating_sub(msgs)),
                bytes: m.bytes.saturating_add(p.bytes.saturating_sub(bytes)),
            }
        })
}

/// What moved through the channel on `role`'s side between the samples `prev` and `now`.
fn moved(prev: &ChannelInfo, now: &ChannelInfo, role: Role) -> Moved {
    let same = prev.created_unix_ms == now.created_unix_ms && prev.creator_pid == now.creator_pid;
    let empty = ChannelInfo {
        participants: Vec::new(),
        ring: None,
        ..prev.clone()
    };
    let prev = if same { prev } else { &empty };
    match now.kind {
        Some(ChannelKind::Typed | ChannelKind::Mpmc) => {
            let pos = |i: &ChannelInfo| {
                i.ring.as_ref().map_or(0, |s| match role {
                    Role::Producer => s.tail,
                    Role::Consumer => s.head,
                })
            };
            let messages = pos(now).saturating_sub(pos(prev));
            Moved {
                messages,
                bytes: messages.saturating_mul(u64::from(now.elem_size)),
            }
        }
        // A broadcast channel's receive rate is the sum over its subscribers.
        Some(ChannelKind::Bytes | ChannelKind::Broadcast) => counted(prev, now, role),
        None => Moved::default(),
    }
}

fn per_second(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

fn bytes_rate(v: f64) -> String {
    let s = render::si(v);
    if s.ends_with(|c: char| c.is_ascii_alphabetic()) {
        format!("{s}B/s")
    } else {
        format!("{s} B/s")
    }
}

const COLUMNS: &str = "    TIME      MSGS/S       BYTES/S  RECV MSGS/S  FILL              PRODUCER          CONSUMER\n";

/// Watches channel `name`: a line every `interval_ms`, `count` times or until interrupted.
pub(crate) fn run(name: &str, interval_ms: u64, count: Option<u64>, json: bool) -> Outcome {
    let interval = Duration::from_millis(interval_ms);
    let start = Instant::now();
    let mut prev = (Instant::now(), crate::find(name)?);
    if !json {
        emit(COLUMNS)?;
    }
    let mut next = start + interval;
    let mut shown = 0u64;
    loop {
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        next = (next + interval).max(Instant::now());
        let info = match inspect::inspect(name) {
            Ok(info) => info,
            Err(shm_bridge::Error::Region(shm_region::Error::NotFound { .. })) => {
                return Err(Failure::msg(format!(
                    "channel `{name}` disappeared after {shown} refresh(es): its last \
                     participant left, or it was removed"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let at = Instant::now();
        let secs = at.duration_since(prev.0).as_secs_f64();
        let sent = moved(&prev.1, &info, Role::Producer);
        let recv = moved(&prev.1, &info, Role::Consumer);
        let (msgs, bytes) = (
            per_second(sent.messages, secs),
            per_second(sent.bytes, secs),
        );
        let recv_msgs = per_second(recv.messages, secs);
        if json {
            let line = json!({
                "name": name,
                "elapsed_ms": at.duration_since(start).as_millis() as u64,
                "interval_ms": (secs * 1000.0).round() as u64,
                "msgs_per_s": msgs,
                "bytes_per_s": bytes,
                "recv_msgs_per_s": recv_msgs,
                "recv_bytes_per_s": per_second(recv.bytes, secs),
                "source": match info.kind {
                    Some(ChannelKind::Bytes) => "counters",
                    Some(_) => "ring",
                    None => "none",
                },
                "kind": info.kind.map(|k| k.as_str()),
                "fill": info.fill,
                "capacity": info.capacity,
                "closed": info.closed,
                "problem": info.problem,
                "producer": render::side_json(&info, Role::Producer),
                "consumer": render::side_json(&info, Role::Consumer),
            });
            emit(&format!("{line}\n"))?;
        } else {
            let state = |role| render::state(&info.state_of(role).0);
            emit(&format!(
                "{:>7.1}s  {:>10}  {:>12}  {:>11}  {:<16}  {:<16}  {}\n",
                at.duration_since(start).as_secs_f64(),
                render::si(msgs),
                bytes_rate(bytes),
                render::si(recv_msgs),
                render::fill(&info),
                state(Role::Producer),
                state(Role::Consumer),
            ))?;
        }
        shown += 1;
        if count.is_some_and(|c| shown >= c) {
            return Ok(());
        }
        prev = (at, info);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shm_bridge::inspect::Participant;
    use shm_bridge::PeerState;

    fn info(
        kind: ChannelKind,
        tail: u64,
        head: u64,
        parts: &[(usize, u64, u64, u64)],
    ) -> ChannelInfo {
        let base = std::env::temp_dir().join("none");
        let mut i = ChannelInfo {
            name: "x".into(),
            path: base,
            size: 0,
            uid: 0,
            mode: 0,
            age_secs: 0,
            problem: None,
            ring_problem: None,
            kind: Some(kind),
            type_name: "u64".into(),
            elem_size: 8,
            elem_align: 8,
            ring_bytes: 0,
            slots: 2,
            capacity: 1024,
            fill: Some(tail - head),
            closed: false,
            creator_pid: 1,
            created_unix_ms: 1,
            participants: Vec::new(),
            ring: Some(shm_queue::header::Snapshot {
                tail,
                head,
                ..Default::default()
            }),
            broadcast: None,
            resident_bytes: None,
            held: true,
        };
        for &(slot, generation, messages, bytes) in parts {
            i.participants.push(Participant {
                slot,
                role: if slot == 0 {
                    Role::Producer
                } else {
                    Role::Consumer
                },
                state: PeerState::Alive { pid: 1 },
                pid: 1,
                messages,
                bytes,
                lost: 0,
                heartbeat_age_ms: None,
                heartbeat_interval_ms: 0,
                generation,
                attached_unix_ms: 0,
            });
        }
        i
    }

    #[test]
    fn typed_rates_come_from_positions() {
        let a = info(ChannelKind::Typed, 100, 90, &[(0, 1, 0, 0)]);
        let b = info(ChannelKind::Typed, 150, 149, &[(0, 1, 0, 0)]);
        let m = moved(&a, &b, Role::Producer);
        assert_eq!(
            m,
            Moved {
                messages: 50,
                bytes: 400
            }
        );
        assert_eq!(moved(&a, &b, Role::Consumer).messages, 59);
    }

    #[test]
    fn byte_rates_come_from_counters_per_attachment() {
        let a = info(ChannelKind::Bytes, 0, 0, &[(0, 1, 10, 640), (1, 1, 5, 320)]);
        let b = info(
            ChannelKind::Bytes,
            0,
            0,
            &[(0, 1, 30, 1920), (1, 2, 4, 256)],
        );
        assert_eq!(
            moved(&a, &b, Role::Producer),
            Moved {
                messages: 20,
                bytes: 1280
            }
        );
        // The consumer re-attached (generation 2): its counters restarted from zero.
        assert_eq!(
            moved(&a, &b, Role::Consumer),
            Moved {
                messages: 4,
                bytes: 256
            }
        );
    }

    #[test]
    fn a_recreated_channel_starts_from_zero() {
        let a = info(ChannelKind::Typed, 1000, 1000, &[]);
        let mut b = info(ChannelKind::Typed, 10, 5, &[]);
        b.created_unix_ms = 2;
        assert_eq!(moved(&a, &b, Role::Producer).messages, 10);
    }
}
