//! How channels look on screen and in JSON: size and rate units, aligned tables, and the
//! JSON form of `inspect::ChannelInfo` that `list`, `inspect`, `rm` and `gc` share.

use serde_json::{json, Value};
use shm_bridge::inspect::{self, ChannelInfo, Mapper, Participant};
use shm_bridge::{ChannelKind, PeerState, Role};
use shm_queue::header::Snapshot;

/// A byte count in binary units: `512 B`, `4.0 KiB`, `1.5 MiB`.
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A rate or count with a decimal suffix: `950`, `12.3 k`, `4.56 M`, `1.20 G`.
pub(crate) fn si(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2} G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// Nanoseconds in a readable unit: `850 ns`, `12.4 µs`, `3.10 ms`, `1.20 s`.
pub(crate) fn duration_ns(ns: u64) -> String {
    let v = ns as f64;
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.1} µs", v / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2} ms", v / 1e6)
    } else {
        format!("{:.2} s", v / 1e9)
    }
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC` (civil-from-days, after
/// Howard Hinnant's `chrono`-compatible algorithms).
pub(crate) fn utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// `s` with every control character (and the backslash) escaped, so a string read from
/// /dev/shm or /proc (a file name, a type name, a command name) cannot move the cursor,
/// change colours or start a fake line on the terminal of whoever runs the tool: `\n`,
/// `\t`, `\\` and `\u{1b}` style escapes, as Rust's `escape_debug` writes them.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || c == '\\' {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// Columns padded to their widest cell, two spaces apart; the last column is not padded.
/// Every cell is escaped ([`esc`]).
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| esc(c)).collect())
        .collect();
    let rows = &rows[..];
    let cols = headers.len();
    let mut width: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate().take(cols) {
            if i + 1 == cols {
                line.push_str(cell);
            } else {
                let pad = width[i] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `alive 1234`, `dead 1234`, `hung 1234 (silent 2.1 s)`, `absent`.
pub(crate) fn state(s: &PeerState) -> String {
    match s {
        PeerState::Absent => "absent".into(),
        PeerState::Hung { pid, silent } => {
            format!("hung {pid} (silent {:.1} s)", silent.as_secs_f64())
        }
        PeerState::Alive { pid } | PeerState::Left { pid } | PeerState::Dead { pid } => {
            format!("{} {pid}", inspect::state_word(s))
        }
    }
}

/// The best state of `role` on the channel, with `(+N)` when more than one is live.
fn side(info: &ChannelInfo, role: Role) -> String {
    let text = state(&info.state_of(role).0);
    match info.live(role) {
        n if n > 1 => format!("{text} (+{})", n - 1),
        _ => text,
    }
}

/// Capacity in the channel's unit: bytes for byte channels, messages otherwise.
fn capacity(info: &ChannelInfo) -> String {
    match info.kind {
        Some(ChannelKind::Bytes) => size(info.capacity),
        Some(_) => format!("{} msgs", info.capacity),
        None => "-".into(),
    }
}

/// Fill level in the channel's unit, with the percentage of the capacity.
pub(crate) fn fill(info: &ChannelInfo) -> String {
    let Some(n) = info.fill.filter(|_| info.kind.is_some()) else {
        return "-".into();
    };
    let amount = match info.kind {
        Some(ChannelKind::Bytes) => size(n),
        _ => n.to_string(),
    };
    format!("{amount} ({:.0}%)", percent(n, info.capacity))
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// What the NOTE column says: the problem, `closed`, or that `gc` would remove it.
fn note(info: &ChannelInfo) -> String {
    let mut notes = Vec::new();
    if let Some(p) = &info.problem {
        notes.push(format!("not usable: {p}"));
    } else if info.closed {
        notes.push("closed".to_owned());
    }
    if info.is_stale() {
        notes.push("stale (`shmlane gc` removes it)".to_owned());
    }
    notes.join("; ")
}

/// The `shmlane list` table.
pub(crate) fn list_table(channels: &[ChannelInfo]) -> String {
    if channels.is_empty() {
        return "no shmlane channels in /dev/shm\n".into();
    }
    let rows: Vec<Vec<String>> = channels
        .iter()
        .map(|c| {
            let valid = c.kind.is_some();
            let dash = || "-".to_owned();
            vec![
                c.name.clone(),
                c.kind.map_or_else(dash, |k| k.to_string()),
                if valid { c.type_name.clone() } else { dash() },
                capacity(c),
                fill(c),
                if valid {
                    side(c, Role::Producer)
                } else {
                    dash()
                },
                if valid {
                    side(c, Role::Consumer)
                } else {
                    dash()
                },
                size(c.size),
                c.resident_bytes.map_or_else(dash, size),
                note(c),
            ]
        })
        .collect();
    table(
        &[
            "NAME", "KIND", "TYPE", "CAPACITY", "FILL", "PRODUCER", "CONSUMER", "SIZE", "RESIDENT",
            "NOTE",
        ],
        &rows,
    )
}

fn state_json(s: &PeerState, pid: Option<u32>) -> Value {
    let mut v = json!({ "state": inspect::state_word(s), "pid": pid });
    if let PeerState::Hung { silent, .. } = s {
        v["silent_ms"] = json!(silent.as_millis() as u64);
    }
    v
}

/// `{"state": "alive", "pid": 1234, "live": 1}` for the best participant with `role`.
pub(crate) fn side_json(info: &ChannelInfo, role: Role) -> Value {
    let (s, pid) = info.state_of(role);
    let mut v = state_json(&s, pid);
    v["live"] = json!(info.live(role));
    v
}

fn participant_json(p: &Participant) -> Value {
    let mut v = json!({
        "slot": p.slot,
        "role": p.role.as_str(),
        "pid": p.pid,
        "state": inspect::state_word(&p.state),
        "messages": p.messages,
        "bytes": p.bytes,
        "lost": p.lost,
        "heartbeat_interval_ms": p.heartbeat_interval_ms,
        "heartbeat_age_ms": p.heartbeat_age_ms,
        "generation": p.generation,
        "attached_unix_ms": p.attached_unix_ms,
    });
    if let PeerState::Hung { silent, .. } = p.state {
        v["silent_ms"] = json!(silent.as_millis() as u64);
    }
    v
}

/// The JSON form of a channel shared by `list`, `inspect`, `rm` and `gc`.
pub(crate) fn channel_json(c: &ChannelInfo) -> Value {
    json!({
        "name": c.name,
        "path": c.path.display().to_string(),
        "problem": c.problem,
        "kind": c.kind.map(|k| k.as_str()),
        "type": c.type_name,
        "elem_size": c.elem_size,
        "elem_align": c.elem_align,
        "capacity": c.capacity,
        "fill": c.fill,
        "fill_ratio": c.fill.map(|f| percent(f, c.capacity) / 100.0),
        "closed": c.closed,
        "producer": side_json(c, Role::Producer),
        "consumer": side_json(c, Role::Consumer),
        "participants": c.participants.iter().map(participant_json).collect::<Vec<_>>(),
        "size": c.size,
        "resident_bytes": c.resident_bytes,
        "uid": c.uid,
        "mode": format!("{:04o}", c.mode),
        "age_secs": c.age_secs,
        "held": c.held,
        "stale": c.is_stale(),
        "creator_pid": c.creator_pid,
        "created_unix_ms": c.created_unix_ms,
    })
}

/// Every ring header field, in the order of `Snapshot`.
fn ring_fields(s: &Snapshot) -> Vec<(&'static str, u64, String)> {
    let hex = |v: u64| format!("{v:#018x}");
    let dec = |v: u64| v.to_string();
    let kind = match s.ring_kind() {
        Some(k) => format!("{} ({k:?})", s.kind),
        None => format!("{} (unknown)", s.kind),
    };
    vec![
        ("magic", s.magic, hex(s.magic)),
        ("version", s.version.into(), dec(s.version.into())),
        ("kind", s.kind.into(), kind),
        ("capacity", s.capacity, dec(s.capacity)),
        ("block_count", s.block_count, dec(s.block_count)),
        ("block_size", s.block_size.into(), dec(s.block_size.into())),
        (
            "elems_per_block",
            s.elems_per_block.into(),
            dec(s.elems_per_block.into()),
        ),
        ("elem_size", s.elem_size.into(), dec(s.elem_size.into())),
        ("elem_align", s.elem_align.into(), dec(s.elem_align.into())),
        ("type_hash", s.type_hash, hex(s.type_hash)),
        ("area_size", s.area_size, dec(s.area_size)),
        (
            "requested_capacity",
            s.requested_capacity,
            dec(s.requested_capacity),
        ),
        (
            "creator_pid",
            s.creator_pid.into(),
            dec(s.creator_pid.into()),
        ),
        (
            "max_message",
            s.max_message.into(),
            dec(s.max_message.into()),
        ),
        ("owners", s.owners, dec(s.owners)),
        (
            "slot_layout",
            s.slot_layout,
            match (s.ring_kind(), s.slot_layout) {
                (Some(shm_queue::header::RingKind::Mpmc), 0) => "0 (line)".to_owned(),
                (Some(shm_queue::header::RingKind::Mpmc), 1) => "1 (packed)".to_owned(),
                (Some(shm_queue::header::RingKind::Mpmc), n) => format!("{n} (unknown)"),
                (_, n) => dec(n),
            },
        ),
        ("ready", s.ready, hex(s.ready)),
        ("producer_claim", s.producer_claim, hex(s.producer_claim)),
        ("consumer_claim", s.consumer_claim, hex(s.consumer_claim)),
        ("closed", s.closed.into(), dec(s.closed.into())),
        (
            "consumer_waiters",
            s.consumer_waiters.into(),
            dec(s.consumer_waiters.into()),
        ),
        (
            "producer_waiters",
            s.producer_waiters.into(),
            dec(s.producer_waiters.into()),
        ),
        (
            "consumer_sleepers",
            s.consumer_sleepers.into(),
            dec(s.consumer_sleepers.into()),
        ),
        (
            "producer_sleepers",
            s.producer_sleepers.into(),
            dec(s.producer_sleepers.into()),
        ),
        ("tail", s.tail, dec(s.tail)),
        ("head", s.head, dec(s.head)),
    ]
}

fn ring_json(s: &Snapshot, problem: Option<&str>) -> Value {
    let mut v = serde_json::Map::new();
    for (key, raw, _) in ring_fields(s) {
        v.insert(key.into(), json!(raw));
    }
    v.insert("fill".into(), json!(s.fill()));
    v.insert("problem".into(), json!(problem));
    Value::Object(v)
}

fn mapper_json(m: &Mapper) -> Value {
    json!({ "pid": m.pid, "comm": m.comm, "rss_kib": m.rss_kib, "pss_kib": m.pss_kib })
}

/// The control block's fields as the library validated them (`None` if it is not valid).
fn control_json(c: &ChannelInfo) -> Value {
    if c.kind.is_none() {
        return Value::Null;
    }
    json!({
        "magic": String::from_utf8_lossy(&shm_bridge::control::MAGIC.to_le_bytes()),
        "version": shm_bridge::control::VERSION,
        "ready": true,
        "kind": c.kind.map(|k| k.as_str()),
        "ring_bytes": c.ring_bytes,
        "total_len": c.size,
        "elem_size": c.elem_size,
        "elem_align": c.elem_align,
        "type_name": c.type_name,
        "slots": c.slots,
        "creator_pid": c.creator_pid,
        "created_unix_ms": c.created_unix_ms,
    })
}

/// The `shmlane inspect --json` document.
pub(crate) fn inspect_json(c: &ChannelInfo, mappers: &[Mapper]) -> Value {
    let mut v = channel_json(c);
    v["control"] = control_json(c);
    v["ring"] = c
        .ring
        .as_ref()
        .map_or(Value::Null, |s| ring_json(s, c.ring_problem.as_deref()));
    v["mappers"] = mappers.iter().map(mapper_json).collect();
    v["broadcast"] = c.broadcast.as_ref().map_or(Value::Null, broadcast_json);
    v
}

/// A broadcast subscriber's participant slot, from its token (`(slot + 1) << 32 |
/// generation`, as the bridge registers it).
fn subscriber_slot(token: u64) -> Option<u64> {
    (token >> 32).checked_sub(1)
}

fn subscriber_state(s: &shm_queue::broadcast::SubscriberState) -> String {
    match s {
        shm_queue::broadcast::SubscriberState::Live => "live".into(),
        shm_queue::broadcast::SubscriberState::Evicted => "evicted".into(),
        shm_queue::broadcast::SubscriberState::Unknown(x) => format!("unknown ({x})"),
    }
}

fn broadcast_json(b: &shm_queue::broadcast::Inspection) -> Value {
    json!({
        "mode": b.mode.to_string(),
        "capacity": b.capacity,
        "max_subscribers": b.max_subscribers,
        "published": b.stats.tail,
        "horizon": b.stats.horizon,
        "evictions": b.stats.evictions,
        "reclaimed": b.stats.reclaimed,
        "slowest_lag": b.slowest_lag(),
        "subscribers": b.subscribers.iter().map(|s| json!({
            "entry": s.index,
            "slot": subscriber_slot(s.token),
            "state": subscriber_state(&s.state),
            "position": s.cursor,
            "lag": b.stats.tail.saturating_sub(s.cursor),
            "missed": s.missed,
            "joined_at": s.joined_at,
        })).collect::<Vec<_>>(),
    })
}

/// The `shmlane inspect` text.
pub(crate) fn inspect_text(c: &ChannelInfo, mappers: &[Mapper]) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<13}{}\n", esc(&v)));
    line("channel", format!("{} ({})", c.name, c.path.display()));
    if let Some(p) = &c.problem {
        line(
            "problem",
            format!(
                "not a usable channel: {p}{}",
                if c.is_stale() {
                    "; `shmlane gc` or `shmlane rm` removes it"
                } else {
                    ""
                }
            ),
        );
    }
    line(
        "file",
        format!(
            "{} ({} bytes), uid {}, mode {:04o}, modified {} s ago",
            size(c.size),
            c.size,
            c.uid,
            c.mode,
            c.age_secs
        ),
    );
    line(
        "resident",
        match c.resident_bytes {
            Some(r) => format!(
                "{} of {} ({:.1}%)",
                size(r),
                size(c.size),
                percent(r, c.size)
            ),
            None => "unknown (the segment could not be mapped)".into(),
        },
    );
    if let Some(kind) = c.kind {
        let elem = match kind {
            ChannelKind::Bytes => "byte messages".to_owned(),
            _ => format!(
                "{} ({} bytes, align {})",
                c.type_name, c.elem_size, c.elem_align
            ),
        };
        line("kind", format!("{kind}, {elem}"));
        line(
            "control",
            format!(
                "magic SHMLANEC, version {}, ready, ring {} bytes, {} slots",
                shm_bridge::control::VERSION,
                c.ring_bytes,
                c.slots
            ),
        );
        line(
            "created",
            format!("{} by pid {}", utc(c.created_unix_ms), c.creator_pid),
        );
        line("capacity", capacity(c));
        line("fill", fill(c));
        line(
            "state",
            format!(
                "{}; {}",
                if c.closed { "closed" } else { "open" },
                if c.held {
                    "held by a live process"
                } else {
                    "held by no process (stale: `shmlane gc` removes it)"
                }
            ),
        );
        line("producer", side(c, Role::Producer));
        line("consumer", side(c, Role::Consumer));
    }
    if let Some(s) = &c.ring {
        match &c.ring_problem {
            None => out.push_str("\nring header\n"),
            Some(p) => out.push_str(&format!(
                "\nring header, as stored (not a valid ring: {p})\n"
            )),
        }
        for (key, _, shown) in ring_fields(s) {
            out.push_str(&format!("  {key:<20}{shown}\n"));
        }
        let fill = s.fill().map_or("implausible".into(), |f| f.to_string());
        out.push_str(&format!("  {:<20}{fill}\n", "tail - head"));
    }
    if let Some(b) = &c.broadcast {
        out.push_str(&format!(
            "\nbroadcast\n  mode                {}\n  published           {}\n  evictions           {}\n  dead freed          {}\n",
            b.mode, b.stats.tail, b.stats.evictions, b.stats.reclaimed
        ));
        let rows: Vec<Vec<String>> = b
            .subscribers
            .iter()
            .map(|s| {
                vec![
                    s.index.to_string(),
                    subscriber_slot(s.token).map_or("-".into(), |x| x.to_string()),
                    subscriber_state(&s.state),
                    s.cursor.to_string(),
                    b.stats.tail.saturating_sub(s.cursor).to_string(),
                    s.missed.to_string(),
                    s.joined_at.to_string(),
                ]
            })
            .collect();
        out.push_str("\nsubscribers\n");
        let t = table(
            &[
                "ENTRY",
                "SLOT",
                "STATE",
                "POSITION",
                "LAG",
                "MISSED",
                "JOINED AT",
            ],
            &rows,
        );
        for l in t.lines() {
            out.push_str(&format!("  {l}\n"));
        }
    }
    if !c.participants.is_empty() {
        out.push_str("\nparticipants\n");
        let rows: Vec<Vec<String>> = c
            .participants
            .iter()
            .map(|p| {
                vec![
                    p.slot.to_string(),
                    p.role.to_string(),
                    state(&p.state),
                    p.messages.to_string(),
                    size(p.bytes),
                    p.lost.to_string(),
                    match p.heartbeat_age_ms {
                        Some(age) => format!("{age} ms ago (every {} ms)", p.heartbeat_interval_ms),
                        None => "none".into(),
                    },
                    p.generation.to_string(),
                    utc(p.attached_unix_ms),
                ]
            })
            .collect();
        let t = table(
            &[
                "SLOT",
                "ROLE",
                "STATE",
                "MESSAGES",
                "BYTES",
                "LOST",
                "HEARTBEAT",
                "GEN",
                "ATTACHED",
            ],
            &rows,
        );
        for l in t.lines() {
            out.push_str(&format!("  {l}\n"));
        }
    }
    out.push_str("\nmapped by\n");
    if mappers.is_empty() {
        out.push_str("  no process (that we may look at) maps it\n");
    } else {
        let rows: Vec<Vec<String>> = mappers
            .iter()
            .map(|m| {
                vec![
                    m.pid.to_string(),
                    m.comm.clone(),
                    size(m.rss_kib * 1024),
                    size(m.pss_kib * 1024),
                ]
            })
            .collect();
        for l in table(&["PID", "COMMAND", "RSS", "PSS"], &rows).lines() {
            out.push_str(&format!("  {l}\n"));
        }
    }
    out
}

/// The `shmlane gc` text: what was removed and why each counted as stale, then what was
/// left and why (channels held by live processes only as a count).
pub(crate) fn gc_text(report: &inspect::GcReport) -> String {
    let mut out = if report.removed.is_empty() {
        "nothing removed\n".to_owned()
    } else {
        format!("removed {} stale channel(s):\n", report.removed.len())
    };
    for c in &report.removed {
        let why = match &c.problem {
            Some(p) => format!("not usable: {p}"),
            None => {
                let holders: Vec<String> = c
                    .participants
                    .iter()
                    .map(|p| format!("{} {}", p.role, state(&p.state)))
                    .collect();
                if holders.is_empty() {
                    "no participant".into()
                } else {
                    holders.join(", ")
                }
            }
        };
        out.push_str(&format!(
            "  {}  {}  ({})\n",
            esc(&c.name),
            size(c.size),
            esc(&why)
        ));
    }
    let held = report
        .skipped
        .iter()
        .filter(|(_, w)| *w == inspect::Skipped::Held)
        .count();
    if held > 0 {
        out.push_str(&format!("left {held} channel(s) held by live processes\n"));
    }
    for (c, why) in report
        .skipped
        .iter()
        .filter(|(_, w)| *w != inspect::Skipped::Held)
    {
        out.push_str(&format!(
            "left  {}  ({})\n",
            esc(&c.name),
            esc(&why.to_string())
        ));
    }
    out
}

/// `shmlane gc --json`: removed channels, and skipped ones with the reason.
pub(crate) fn gc_json(report: &inspect::GcReport) -> Value {
    let skipped: Vec<Value> = report
        .skipped
        .iter()
        .map(|(c, why)| json!({ "channel": channel_json(c), "reason": why.to_string() }))
        .collect();
    let removed: Vec<Value> = report.removed.iter().map(channel_json).collect();
    json!({ "removed": removed, "skipped": skipped })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1024), "1.0 KiB");
        assert_eq!(size(3 << 20), "3.0 MiB");
        assert_eq!(si(950.0), "950");
        assert_eq!(si(12_345.0), "12.3 k");
        assert_eq!(si(4_560_000.0), "4.56 M");
        assert_eq!(duration_ns(850), "850 ns");
        assert_eq!(duration_ns(12_400), "12.4 µs");
        assert_eq!(duration_ns(3_100_000), "3.10 ms");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_709_251_199_000), "2024-02-29 23:59:59 UTC");
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["A", "BB", "C"],
            &[vec!["xyz".into(), "1".into(), "last".into()]],
        );
        assert_eq!(t, "A    BB  C\nxyz  1   last\n");
    }
}
