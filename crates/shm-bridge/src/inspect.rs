//! Looking at channels from outside: what `shmlane list`, `inspect`, `rm` and `gc` use.
//!
//! Everything here treats the segments under `/dev/shm/shmlane.*` as untrusted: a segment
//! that cannot be opened (another owner, a symlink, too small) or whose fields make no
//! sense is reported with the reason, never used. Nothing here writes to a channel.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

use shm_region::{Options, Region};

use crate::control::{self, monotonic_ms, ChannelKind, Control, Invalid, Role, MAX_SLOTS};
use crate::endpoint::{shm_name, shm_path, slot_state, PeerState, PREFIX};
use crate::lock;
use crate::{Error, Result};

/// One participant slot as recorded in a channel's control block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// Slot index.
    pub slot: usize,
    /// Its role.
    pub role: Role,
    /// Alive, hung, dead or left (from its lock and heartbeat).
    pub state: PeerState,
    /// The pid it recorded (informative: pids are reused).
    pub pid: u32,
    /// Messages it sent or received (published every few milliseconds).
    pub messages: u64,
    /// Payload bytes it sent or received.
    pub bytes: u64,
    /// Messages it reported lost before they reached it (a bridge's gaps and drops; see
    /// `note_lost` on the channel ends).
    pub lost: u64,
    /// Milliseconds since its last heartbeat (`None` if it runs none).
    pub heartbeat_age_ms: Option<u64>,
    /// Its heartbeat period in milliseconds (0: it runs no heartbeat).
    pub heartbeat_interval_ms: u32,
    /// How many times the slot has been taken (the counters restart at each attachment).
    pub generation: u64,
    /// When it attached, milliseconds since the Unix epoch.
    pub attached_unix_ms: u64,
}

/// Everything known about one channel segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// Channel name (without the prefix).
    pub name: String,
    /// Path under `/dev/shm`.
    pub path: PathBuf,
    /// File size in bytes.
    pub size: u64,
    /// Owner uid.
    pub uid: u32,
    /// Permission bits.
    pub mode: u32,
    /// Seconds since the file was last modified.
    pub age_secs: u64,
    /// Why this segment is not a usable channel, if it is not.
    pub problem: Option<String>,
    /// Why the ring header is not a ring an attach would accept (the element type aside),
    /// from [`shm_queue::header::check`]; `None` when it is, or when it was not checked
    /// because the control block is not valid.
    pub ring_problem: Option<String>,
    /// Channel kind, if the control block is valid.
    pub kind: Option<ChannelKind>,
    /// Element type as recorded (`bytes` for byte channels).
    pub type_name: String,
    /// Element size in bytes (0 for byte channels).
    pub elem_size: u32,
    /// Element alignment in bytes (0 for byte channels).
    pub elem_align: u32,
    /// Bytes the ring may use from offset 0, as the control block records (0 if invalid).
    pub ring_bytes: u64,
    /// Participant slots in use: 2 for SPSC channels, up to 60 for MPMC (0 if invalid).
    pub slots: u32,
    /// Capacity: elements, or data bytes for byte channels.
    pub capacity: u64,
    /// Elements (or bytes) waiting, when the indices are plausible.
    ///
    /// A typed channel's ring stores its `tail` word when the producer leaves a block or sends
    /// a batch (see `shm_queue::spsc`), so for typed channels this lags by less than
    /// `ring.elems_per_block` elements; a consumer that caught up with the real tail reads
    /// as 0.
    pub fill: Option<u64>,
    /// Whether a side closed the ring.
    pub closed: bool,
    /// Pid of the creating process.
    pub creator_pid: u32,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// Participants that ever attached.
    pub participants: Vec<Participant>,
    /// The ring's header fields, if the segment is long enough to hold one.
    pub ring: Option<shm_queue::header::Snapshot>,
    /// A broadcast channel's mode, counters and subscribers (positions, losses, states).
    pub broadcast: Option<shm_queue::broadcast::Inspection>,
    /// Bytes of the segment resident in memory (`mincore`, at most `size`).
    pub resident_bytes: Option<u64>,
    /// Whether some process holds a participant or creation lock.
    pub held: bool,
}

impl ChannelInfo {
    /// The best state among participants with `role` (alive, hung, dead, left, absent).
    pub fn state_of(&self, role: Role) -> (PeerState, Option<u32>) {
        let rank = |s: &PeerState| match s {
            PeerState::Alive { .. } => 4,
            PeerState::Hung { .. } => 3,
            PeerState::Dead { .. } => 2,
            PeerState::Left { .. } => 1,
            PeerState::Absent => 0,
        };
        self.participants
            .iter()
            .filter(|p| p.role == role)
            .max_by_key(|p| rank(&p.state))
            .map_or((PeerState::Absent, None), |p| (p.state, Some(p.pid)))
    }

    /// How many participants with `role` are alive or hung (MPMC channels may have many).
    ///
    /// ```
    /// use shm_bridge::{inspect, ChannelOptions, Role};
    /// # let name = format!("doc-live-{}", std::process::id());
    ///
    /// let tx = ChannelOptions::new().create::<u64>(&name)?;
    /// let info = inspect::inspect(&name)?;
    /// assert_eq!(info.live(Role::Producer), 1);
    /// assert_eq!(info.live(Role::Consumer), 0);
    /// assert_eq!(inspect::state_word(&info.state_of(Role::Consumer).0), "absent");
    /// # drop(tx);
    /// # Ok::<(), shm_bridge::Error>(())
    /// ```
    pub fn live(&self, role: Role) -> usize {
        self.participants
            .iter()
            .filter(|p| p.role == role)
            .filter(|p| matches!(p.state, PeerState::Alive { .. } | PeerState::Hung { .. }))
            .count()
    }

    /// `true` if no process holds the channel and it may be removed: either every recorded
    /// holder is dead or gone, or it is unusable and old enough not to be mid-creation.
    pub fn is_stale(&self) -> bool {
        !self.held && (self.problem.is_none() || self.age_secs >= 2)
    }
}

/// Short human form of a state: `alive`, `hung`, `dead`, `left`, `absent`.
pub fn state_word(s: &PeerState) -> &'static str {
    match s {
        PeerState::Alive { .. } => "alive",
        PeerState::Hung { .. } => "hung",
        PeerState::Dead { .. } => "dead",
        PeerState::Left { .. } => "left",
        PeerState::Absent => "absent",
    }
}

/// Every segment under `/dev/shm/shmlane.*`, sorted by name.
///
/// # Errors
///
/// [`Error::Sys`] if `/dev/shm` cannot be read.
pub fn list() -> Result<Vec<ChannelInfo>> {
    let dir = std::fs::read_dir("/dev/shm").map_err(|e| io_error("reading /dev/shm", &e))?;
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let file = entry.file_name();
        let Some(name) = file.to_str().and_then(|f| f.strip_prefix(PREFIX)) else {
            continue;
        };
        out.push(inspect_unchecked(name));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Everything known about channel `name`.
///
/// # Errors
///
/// [`Error::BadName`]; [`Error::Region`] with `NotFound` if there is no such segment.
pub fn inspect(name: &str) -> Result<ChannelInfo> {
    crate::endpoint::validate_name(name)?;
    if std::fs::symlink_metadata(shm_path(name)).is_err() {
        return Err(Error::Region(shm_region::Error::NotFound {
            region: shm_path(name).display().to_string(),
        }));
    }
    Ok(inspect_unchecked(name))
}

fn io_error(op: &'static str, e: &std::io::Error) -> Error {
    Error::sys(
        op,
        nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    )
}

fn blank(name: &str) -> ChannelInfo {
    ChannelInfo {
        name: name.to_owned(),
        path: shm_path(name),
        size: 0,
        uid: 0,
        mode: 0,
        age_secs: 0,
        problem: None,
        ring_problem: None,
        kind: None,
        type_name: String::new(),
        elem_size: 0,
        elem_align: 0,
        ring_bytes: 0,
        slots: 0,
        capacity: 0,
        fill: None,
        closed: false,
        creator_pid: 0,
        created_unix_ms: 0,
        participants: Vec::new(),
        ring: None,
        broadcast: None,
        resident_bytes: None,
        held: false,
    }
}

/// Opens the segment strictly (our uid, not group/other-writable, no symlinks); a segment
/// that fails is described by the reason.
fn inspect_unchecked(name: &str) -> ChannelInfo {
    let mut info = blank(name);
    match std::fs::symlink_metadata(&info.path) {
        Ok(m) => {
            info.size = m.len();
            info.uid = m.uid();
            info.mode = m.mode() & 0o7777;
            info.age_secs = m
                .modified()
                .ok()
                .and_then(|t| t.elapsed().ok())
                .map_or(0, |d| d.as_secs());
            if m.file_type().is_symlink() || m.file_type().is_fifo() || !m.is_file() {
                info.problem = Some("not a regular file (symlinks are never followed)".into());
                return info;
            }
        }
        Err(e) => {
            info.problem = Some(format!("cannot stat: {e}"));
            return info;
        }
    }
    if crate::endpoint::validate_name(name).is_err() {
        info.problem = Some("name outside the channel-name character set".into());
        return info;
    }
    let region = match Options::new().open_shm(&shm_name(name)) {
        Ok(r) => r,
        Err(e) => {
            info.problem = Some(e.to_string());
            return info;
        }
    };
    fill_from_region(&mut info, &region);
    // A file shrunk while we read it (the guard kept us alive with zero pages): what was
    // read is not the channel, and the report says so.
    region.poll_truncation();
    if let Err(e) = region.check_truncated() {
        info.problem = Some(e.to_string());
    }
    info
}

fn fill_from_region(info: &mut ChannelInfo, region: &Region) {
    // Residency counts whole pages; the last one may extend past the end of the file.
    info.resident_bytes = region
        .residency()
        .ok()
        .map(|r| r.resident_bytes().min(info.size));
    info.ring = consistent_snapshot(region);
    let Some(fd) = region.fd() else {
        info.problem = Some("no file descriptor".into());
        return;
    };
    // Two queries, not one per slot: a listing of thousands of channels stays fast.
    info.held = lock::any_locked(fd, lock::slot_offset(0), MAX_SLOTS as i64).unwrap_or(true)
        || lock::is_locked(fd, lock::CREATE_LOCK).unwrap_or(true);
    let ctl = match Control::of(region) {
        Ok(c) => c,
        Err(Invalid::Corrupt(r) | Invalid::NotReady(r)) => {
            info.problem = Some(r);
            return;
        }
    };
    let layout = match ctl.layout(region) {
        Ok(l) => l,
        Err(Invalid::Corrupt(r) | Invalid::NotReady(r)) => {
            info.problem = Some(r);
            return;
        }
    };
    info.kind = Some(layout.kind);
    info.type_name = layout.type_name.clone();
    info.elem_size = layout.elem_size;
    info.elem_align = layout.elem_align;
    info.ring_bytes = layout.ring_bytes;
    info.slots = layout.slots;
    info.creator_pid = ctl.creator_pid(region);
    info.created_unix_ms = ctl.created_unix_ms(region);
    let now = monotonic_ms();
    for i in 0..layout.slots as usize {
        let rec = ctl.slot(region, i);
        let Some(role) = rec.role else { continue };
        if rec.state == control::ABSENT {
            continue;
        }
        info.participants.push(Participant {
            slot: i,
            role,
            state: slot_state(region, fd, ctl, i, now),
            pid: rec.pid,
            messages: rec.messages,
            bytes: rec.bytes,
            lost: rec.lost,
            heartbeat_age_ms: (rec.heartbeat_interval_ms > 0)
                .then(|| now.saturating_sub(rec.heartbeat_ms)),
            heartbeat_interval_ms: rec.heartbeat_interval_ms,
            generation: rec.generation,
            attached_unix_ms: rec.attached_unix_ms,
        });
    }
    // One validation for all: the checks an attach runs (the element type aside), so the
    // tools call usable exactly what a consumer would accept.
    if let Err(e) = shm_queue::header::check(region, layout.ring_bytes) {
        info.ring_problem = Some(e.to_string());
        info.problem = Some(format!("ring: {e}"));
    } else if layout.kind == ChannelKind::Broadcast {
        info.broadcast = shm_queue::broadcast::inspect(region, layout.ring_bytes).ok();
    }
    if let Some(s) = &info.ring {
        let want = match layout.kind {
            ChannelKind::Typed => shm_queue::header::RingKind::Spsc,
            ChannelKind::Bytes => shm_queue::header::RingKind::Bytes,
            ChannelKind::Mpmc => shm_queue::header::RingKind::Mpmc,
            ChannelKind::Broadcast => shm_queue::header::RingKind::Broadcast,
        };
        if info.problem.is_none() && s.ring_kind() != Some(want) {
            info.problem = Some(format!(
                "control block says {} but the ring header says kind {}",
                layout.kind, s.kind
            ));
        }
        info.capacity = s.capacity;
        info.fill = match &info.broadcast {
            // What the slowest live subscriber has not read.
            Some(b) => Some(b.slowest_lag().unwrap_or(0)),
            None => fill_of(s, layout.kind),
        };
        info.closed = s.closed != 0;
    }
}

/// The ring header, read again (a few times at most) if the positions were caught mid-move:
/// `head` and `tail` are loaded one after the other while both sides run, so on a busy byte or
/// MPMC channel `head` may pass the `tail` loaded just before it.
fn consistent_snapshot(region: &Region) -> Option<shm_queue::header::Snapshot> {
    let mut s = shm_queue::header::snapshot(region).ok()?;
    for _ in 0..3 {
        if s.fill().is_some() || s.ring_kind() == Some(shm_queue::header::RingKind::Spsc) {
            break;
        }
        s = shm_queue::header::snapshot(region).ok()?;
    }
    Some(s)
}

/// The fill level of `s`, allowing for a typed ring's lagging `tail` word (see
/// [`ChannelInfo::fill`]): a `head` up to one block past it means the consumer caught up.
fn fill_of(s: &shm_queue::header::Snapshot, kind: ChannelKind) -> Option<u64> {
    s.fill().or_else(|| {
        let ahead = s.head.checked_sub(s.tail)?;
        (kind == ChannelKind::Typed && ahead < u64::from(s.elems_per_block)).then_some(0)
    })
}

/// Removes channel `name`. Refuses while a process holds it, unless `force`.
///
/// # Errors
///
/// [`Error::InUse`] naming a live holder; [`Error::Region`] if it cannot be unlinked.
pub fn remove(name: &str, force: bool) -> Result<ChannelInfo> {
    let info = inspect(name)?;
    if info.held && !force {
        let holder = info
            .participants
            .iter()
            .find(|p| matches!(p.state, PeerState::Alive { .. } | PeerState::Hung { .. }));
        return Err(Error::InUse {
            name: name.to_owned(),
            role: holder.map_or("participant".into(), |p| p.role.to_string()),
            pid: holder.map_or(0, |p| p.pid),
            detail: "stop it first, or pass --force to remove the name anyway (its processes \
                     keep their mapping)"
                .into(),
        });
    }
    shm_region::shm_unlink(&shm_name(name))?;
    Ok(info)
}

/// Removes every channel no process holds that is stale (see [`ChannelInfo::is_stale`]);
/// returns what it removed. Segments it may not open (another owner) are left alone;
/// [`gc_report`] also says what was left and why.
///
/// # Errors
///
/// As [`list`].
pub fn gc() -> Result<Vec<ChannelInfo>> {
    gc_report().map(|r| r.removed)
}

/// Why [`gc_report`] left a channel in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// A live (or hung) process holds it.
    Held,
    /// It belongs to another uid; only that user (or root with `shmlane rm --force`) should
    /// remove it.
    ForeignOwner {
        /// The owner's uid.
        uid: u32,
    },
    /// It is unusable but younger than the grace period, so it may be a channel still being
    /// created.
    Young {
        /// Its age in seconds.
        age_secs: u64,
    },
    /// Unlinking it failed.
    UnlinkFailed {
        /// Why.
        reason: String,
    },
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skipped::Held => f.write_str("held by a live process"),
            Skipped::ForeignOwner { uid } => write!(
                f,
                "owned by uid {uid}, not us: left to its owner (or `shmlane rm --force`)"
            ),
            Skipped::Young { age_secs } => write!(
                f,
                "unusable but only {age_secs} s old: it may still be being created; run gc \
                 again in a few seconds"
            ),
            Skipped::UnlinkFailed { reason } => write!(f, "could not remove it: {reason}"),
        }
    }
}

/// What [`gc_report`] did: the channels it removed, and every other channel with the reason
/// it was left.
#[derive(Debug, Clone, Default)]
pub struct GcReport {
    /// Removed channels.
    pub removed: Vec<ChannelInfo>,
    /// Channels left in place, and why.
    pub skipped: Vec<(ChannelInfo, Skipped)>,
}

/// As [`gc`], and reports what it left in place and why.
///
/// # Errors
///
/// As [`list`].
pub fn gc_report() -> Result<GcReport> {
    let me = nix::unistd::geteuid().as_raw();
    let mut report = GcReport::default();
    for info in list()? {
        let why = if info.held {
            Some(Skipped::Held)
        } else if info.uid != me {
            Some(Skipped::ForeignOwner { uid: info.uid })
        } else if !info.is_stale() {
            Some(Skipped::Young {
                age_secs: info.age_secs,
            })
        } else {
            match shm_region::shm_unlink(&shm_name(&info.name)) {
                Ok(()) => None,
                Err(e) => Some(Skipped::UnlinkFailed {
                    reason: e.to_string(),
                }),
            }
        };
        match why {
            None => report.removed.push(info),
            Some(w) => report.skipped.push((info, w)),
        }
    }
    Ok(report)
}

/// A process that maps a channel, with its memory figures for that mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapper {
    /// Its pid.
    pub pid: u32,
    /// Its command name.
    pub comm: String,
    /// Resident set of the mapping, KiB (`Rss` in `/proc/PID/smaps`).
    pub rss_kib: u64,
    /// Proportional set of the mapping, KiB (`Pss`).
    pub pss_kib: u64,
}

/// Every process (that we may look at) mapping channel `name`, from `/proc/*/smaps`.
pub fn mappers(name: &str) -> Vec<Mapper> {
    let path = shm_path(name).display().to_string();
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        // `maps` first (a line per mapping): `smaps` (a dozen lines per mapping, and
        // costlier for the kernel to produce) only for the processes that map the file.
        let maps_it = std::fs::read_to_string(format!("/proc/{pid}/maps")).is_ok_and(|m| {
            m.lines()
                .any(|l| l.split_whitespace().nth(5) == Some(&path))
        });
        if !maps_it {
            continue;
        }
        let Ok(smaps) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
            continue;
        };
        let (mut rss, mut pss, mut found, mut inside) = (0u64, 0u64, false, false);
        for line in smaps.lines() {
            let mut words = line.split_whitespace();
            let first = words.next().unwrap_or("");
            if first.contains('-') && !first.ends_with(':') {
                // A mapping header: "start-end perms offset dev inode path".
                let target = line.split_whitespace().nth(5).unwrap_or("");
                inside = target == path;
                found |= inside;
            } else if inside {
                let kib = words
                    .next()
                    .and_then(|w| w.parse::<u64>().ok())
                    .unwrap_or(0);
                match first {
                    "Rss:" => rss += kib,
                    "Pss:" => pss += kib,
                    _ => {}
                }
            }
        }
        if found {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim().to_owned())
                .unwrap_or_default();
            out.push(Mapper {
                pid,
                comm,
                rss_kib: rss,
                pss_kib: pss,
            });
        }
    }
    out
}
