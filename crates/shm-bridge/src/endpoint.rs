//! One process's end of a named channel: the mapping, its role slot and lock, the heartbeat,
//! the peer checks, and removing the name when the last side leaves.
//!
//! Invariant: while an `Endpoint` lives, it holds the OFD lock of its slot through its own
//! open file description of the channel, so any other process can tell it is alive; the
//! slot's `state` is `ATTACHED` from just after the lock is taken until just before it is
//! released by a clean drop. `ATTACHED` without the lock therefore means the holder died.

use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_region::{Advice, Options, Region};

use crate::control::{
    self, monotonic_ms, ChannelKind, Control, Invalid, Layout, Role, SlotRecord, CONTROL_SIZE,
};
use crate::{heartbeat, lock};
use crate::{Error, Result};

/// Prefix of every channel's name under `/dev/shm`.
pub const PREFIX: &str = "shmlane.";

/// How long a name may stay uninitialised before it counts as abandoned (its creator died
/// during set-up) rather than still being created.
const SETUP_GRACE: Duration = Duration::from_secs(2);

/// How often a handle looks at its peer's liveness while operations keep succeeding.
pub(crate) const CHECK_EVERY_MS: u64 = 5;

/// The longest a blocking call sleeps before it looks at the peer again (so a waiter learns
/// of a death within about this long, well inside 100 ms).
pub(crate) const WAIT_SLICE: Duration = Duration::from_millis(40);

/// Checks a channel name: 1 to 200 characters from `A-Z a-z 0-9 . _ -`, not starting with a
/// dot.
///
/// # Errors
///
/// [`Error::BadName`] saying what is wrong.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::BadName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > 200 {
        return bad("it is longer than 200 bytes");
    }
    if name.starts_with('.') {
        return bad("it starts with a dot");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("it has a character outside the allowed set");
    }
    Ok(())
}

/// The POSIX shm name of channel `name` (`shmlane.NAME`).
pub fn shm_name(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// The path of channel `name` under `/dev/shm`.
pub fn shm_path(name: &str) -> PathBuf {
    PathBuf::from("/dev/shm").join(shm_name(name))
}

/// Settings shared by creating and connecting.
#[derive(Debug, Clone)]
pub(crate) struct Common {
    pub mode: u32,
    pub prefault: bool,
    pub huge_pages: bool,
    pub mlock: bool,
    pub heartbeat: Option<Duration>,
    pub allow_foreign_owner: bool,
    pub allow_shared_write: bool,
}

impl Default for Common {
    fn default() -> Self {
        Common {
            mode: 0o600,
            prefault: false,
            huge_pages: false,
            mlock: false,
            heartbeat: Some(Duration::from_millis(100)),
            allow_foreign_owner: false,
            allow_shared_write: false,
        }
    }
}

/// What the peer of a handle is doing, as far as the kernel and the control block tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// No peer has attached yet.
    Absent,
    /// A peer holds its lock and its heartbeat is fresh.
    Alive {
        /// The pid it recorded.
        pid: u32,
    },
    /// A peer holds its lock but its heartbeat has been silent for three periods.
    Hung {
        /// The pid it recorded.
        pid: u32,
        /// How long it has been silent.
        silent: Duration,
    },
    /// The peer left cleanly.
    Left {
        /// The pid it recorded.
        pid: u32,
    },
    /// The peer died: its lock was released but it never marked itself as gone.
    Dead {
        /// The pid it recorded.
        pid: u32,
    },
}

/// A stale channel that creating replaced: every recorded holder was dead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reclaimed {
    /// The name that was reclaimed.
    pub name: String,
    /// The participants it recorded, with their last pids (all dead or gone).
    pub holders: Vec<(Role, u32)>,
    /// Why it counted as stale.
    pub reason: String,
}

/// Liveness of one slot: lock first, then the state, re-checked so a slot being taken
/// concurrently is never reported dead.
pub(crate) fn slot_state(
    region: &Region,
    fd: BorrowedFd<'_>,
    ctl: Control,
    i: usize,
    now_ms: u64,
) -> PeerState {
    let before = ctl.slot(region, i);
    let locked = lock::is_locked(fd, lock::slot_offset(i)).unwrap_or(true);
    let s: SlotRecord = ctl.slot(region, i);
    if s.generation != before.generation {
        return PeerState::Alive { pid: s.pid };
    }
    match (locked, s.state) {
        (true, _) => match s.silent_for(now_ms) {
            Some(silent) => PeerState::Hung { pid: s.pid, silent },
            None => PeerState::Alive { pid: s.pid },
        },
        (false, control::ATTACHED) => PeerState::Dead { pid: s.pid },
        (false, control::LEFT) => PeerState::Left { pid: s.pid },
        (false, _) => PeerState::Absent,
    }
}

/// One process's attachment to a named channel.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub region: Arc<Region>,
    /// Shared with every `WouldBlock` error, so a polling loop allocates nothing.
    pub name: Arc<str>,
    pub ctl: Control,
    pub slot: usize,
    pub role: Role,
    pub kind: ChannelKind,
    pub slots: usize,
    pub generation: u64,
    pub reclaimed: Option<Reclaimed>,
    heartbeat: Option<heartbeat::Registration>,
    ops: u32,
    last_check_ms: u64,
    pub messages: u64,
    pub bytes: u64,
    /// Messages this participant reported lost upstream of it (`note_lost`).
    pub lost: u64,
}

fn fd_of(region: &Region) -> Result<BorrowedFd<'_>> {
    region.fd().ok_or_else(|| {
        Error::sys(
            "finding the channel's file descriptor",
            nix::errno::Errno::EBADF,
        )
    })
}

fn region_options(c: &Common) -> Options {
    Options::new()
        .mode(c.mode)
        .keep_name(true)
        .allow_foreign_owner(c.allow_foreign_owner)
        .allow_shared_write(c.allow_shared_write)
}

/// Age of channel `name`'s file (time since its last modification), if it exists.
fn file_age(name: &str) -> Option<Duration> {
    let m = std::fs::symlink_metadata(shm_path(name)).ok()?;
    m.modified().ok()?.elapsed().ok()
}

/// Whether the name still refers to the file `region` maps (so unlinking it removes ours,
/// not a successor's).
fn name_is_ours(name: &str, region: &Region) -> bool {
    // `name` is the channel name; its file is `shm_path(name)`.
    let (Some(fd), Ok(path)) = (region.fd(), std::fs::symlink_metadata(shm_path(name))) else {
        return false;
    };
    use std::os::unix::fs::MetadataExt;
    match nix::sys::stat::fstat(fd) {
        Ok(st) => st.st_ino == path.ino() && st.st_dev == path.dev(),
        Err(_) => false,
    }
}

fn apply_memory_options(region: &Region, c: &Common) -> Result<()> {
    if c.huge_pages {
        region.advise(Advice::HugePage)?;
    }
    if c.prefault {
        region.prefault()?;
    }
    if c.mlock {
        region.lock()?;
    }
    Ok(())
}

impl Endpoint {
    fn new(
        region: Arc<Region>,
        name: &str,
        ctl: Control,
        slot: usize,
        role: Role,
        layout: &Layout,
        c: &Common,
    ) -> Result<Self> {
        let hb_ms = c
            .heartbeat
            .map(|d| d.as_millis().clamp(1, u32::MAX as u128) as u32)
            .unwrap_or(0);
        let generation = ctl.attach_slot(&region, slot, role, hb_ms);
        let heartbeat = match c.heartbeat {
            Some(every) => Some(heartbeat::register(region.clone(), ctl, slot, every)?),
            None => None,
        };
        Ok(Endpoint {
            region,
            name: name.into(),
            ctl,
            slot,
            role,
            kind: layout.kind,
            slots: layout.slots as usize,
            generation,
            reclaimed: None,
            heartbeat,
            ops: 0,
            last_check_ms: monotonic_ms(),
            messages: 0,
            bytes: 0,
            lost: 0,
        })
    }

    /// Creates channel `name` holding `ring_bytes` of ring, initialised by `init`, with us
    /// in slot 0 as its producer. A stale channel under the name is reclaimed first.
    pub(crate) fn create<R>(
        name: &str,
        mut layout: Layout,
        c: &Common,
        init: impl FnOnce(Arc<Region>) -> std::result::Result<R, shm_queue::Error>,
    ) -> Result<(Self, R)> {
        validate_name(name)?;
        let page = 4096u64;
        let ring = layout.ring_bytes.div_ceil(page) * page;
        let len = ring
            .checked_add(CONTROL_SIZE as u64)
            .and_then(|l| usize::try_from(l).ok())
            .ok_or_else(|| Error::BadConfig {
                name: name.to_owned(),
                reason: format!("a ring of {} bytes is too large", layout.ring_bytes),
            })?;
        layout.ring_bytes = ring;
        let shm = shm_name(name);
        let (mut reclaimed, mut tried) = (None, false);
        let region = loop {
            match region_options(c).create_shm(&shm, len) {
                Ok(r) => break Arc::new(r),
                Err(shm_region::Error::AlreadyExists { .. }) if !tried => {
                    tried = true;
                    reclaimed = reclaim(name, c)?;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let unlink_on_error = |e: Error| {
            let _ = shm_region::shm_unlink(&shm);
            e
        };
        let fd = fd_of(&region)?;
        let setup = lock::try_lock(fd, lock::CREATE_LOCK)
            .and_then(|_| lock::try_lock(fd, lock::slot_offset(0)))
            .map_err(|e| unlink_on_error(Error::sys("locking the new channel", e)))?;
        if !setup {
            return Err(unlink_on_error(Error::InUse {
                name: name.to_owned(),
                role: "creator".into(),
                pid: 0,
                detail: "another process took the new channel's lock; retry, or pick another name"
                    .into(),
            }));
        }
        apply_memory_options(&region, c).map_err(unlink_on_error)?;
        let ctl = Control::of(&region).map_err(|_| {
            unlink_on_error(Error::BadConfig {
                name: name.to_owned(),
                reason: "region too small for a control block".into(),
            })
        })?;
        let ring_handle = init(region.clone())
            .map_err(|e| unlink_on_error(Error::queue(name, e, Duration::ZERO)))?;
        ctl.write_layout(&region, &layout);
        let mut ep = Endpoint::new(region.clone(), name, ctl, 0, Role::Producer, &layout, c)
            .map_err(unlink_on_error)?;
        ctl.publish(&region);
        let _ = lock::unlock(fd_of(&region)?, lock::CREATE_LOCK);
        ep.reclaimed = reclaimed;
        Ok((ep, ring_handle))
    }

    /// Connects to channel `name` as `role`, waiting up to `timeout` for it to exist and be
    /// ready; `attach` builds the ring handle once the control block checks out.
    pub(crate) fn connect<R>(
        name: &str,
        kind: ChannelKind,
        role: Role,
        c: &Common,
        timeout: Duration,
        expect: impl Fn(&Layout) -> Result<()>,
        mut attach: impl FnMut(&Arc<Region>, &Layout) -> Result<R>,
    ) -> Result<(Self, R)> {
        validate_name(name)?;
        let shm = shm_name(name);
        let start = Instant::now();
        let mut last;
        loop {
            match Self::try_connect(name, &shm, kind, role, c, &expect, &mut attach) {
                Ok(done) => return Ok(done),
                Err(Retry::Later(why)) => last = why,
                Err(Retry::Fail(e)) => return Err(e),
            }
            if start.elapsed() >= timeout {
                return Err(Error::ConnectTimeout {
                    name: name.to_owned(),
                    waited: start.elapsed(),
                    last,
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn try_connect<R>(
        name: &str,
        shm: &str,
        kind: ChannelKind,
        role: Role,
        c: &Common,
        expect: &impl Fn(&Layout) -> Result<()>,
        attach: &mut impl FnMut(&Arc<Region>, &Layout) -> Result<R>,
    ) -> std::result::Result<(Self, R), Retry> {
        let young = || file_age(name).is_none_or(|age| age < SETUP_GRACE);
        let corrupt = |reason: String| {
            Retry::Fail(Error::Corrupt {
                name: name.to_owned(),
                path: shm_path(name).display().to_string(),
                reason,
            })
        };
        let region = match region_options(c).open_shm(shm) {
            Ok(r) => Arc::new(r),
            Err(shm_region::Error::NotFound { .. }) => {
                return Err(Retry::Later("it does not exist".into()))
            }
            Err(e @ shm_region::Error::TooSmall { .. }) => {
                return Err(if young() {
                    Retry::Later("it is still being created".into())
                } else {
                    corrupt(e.to_string())
                })
            }
            Err(e) => return Err(Retry::Fail(e.into())),
        };
        let ctl = Control::of(&region)
            .map_err(|(Invalid::Corrupt(r) | Invalid::NotReady(r))| corrupt(r))?;
        let layout = match ctl.layout(&region) {
            Ok(l) => l,
            Err(Invalid::NotReady(_)) if young() => {
                return Err(Retry::Later("it is still being initialised".into()))
            }
            Err(Invalid::NotReady(r) | Invalid::Corrupt(r)) => return Err(corrupt(r)),
        };
        if layout.kind != kind {
            return Err(Retry::Fail(Error::WrongKind {
                name: name.to_owned(),
                expected: format!("a {kind} channel"),
                found: format!("a {} channel of {}", layout.kind, layout.type_name),
            }));
        }
        expect(&layout).map_err(Retry::Fail)?;
        let fd = fd_of(&region).map_err(Retry::Fail)?;
        if lock::is_locked(fd, lock::CREATE_LOCK).unwrap_or(false) {
            return Err(Retry::Later("it is being created or reclaimed".into()));
        }
        if layout.kind != ChannelKind::Mpmc && role == Role::Consumer {
            // A channel whose producer died or left is a leftover the next producer will
            // reclaim; attaching to it would pin the old file and never meet the new one.
            match slot_state(&region, fd, ctl, 0, monotonic_ms()) {
                PeerState::Dead { pid } | PeerState::Left { pid } => {
                    return Err(Retry::Later(format!(
                        "it is left over from an earlier run (its producer, pid {pid}, is \
                         gone); waiting for a new producer to create it again"
                    )));
                }
                _ => {}
            }
        }
        let slot = take_slot(name, &region, fd, ctl, &layout, role).map_err(Retry::Fail)?;
        let ring = match attach(&region, &layout) {
            Ok(r) => r,
            Err(e) => {
                let _ = lock::unlock(fd, lock::slot_offset(slot));
                return Err(Retry::Fail(e));
            }
        };
        apply_memory_options(&region, c).map_err(Retry::Fail)?;
        let ep = Endpoint::new(region.clone(), name, ctl, slot, role, &layout, c)
            .map_err(Retry::Fail)?;
        Ok((ep, ring))
    }

    /// State of slot `i`.
    pub(crate) fn state_of(&self, i: usize) -> PeerState {
        match self.region.fd() {
            Some(fd) => slot_state(&self.region, fd, self.ctl, i, monotonic_ms()),
            None => PeerState::Absent,
        }
    }

    /// For an MPMC endpoint being dropped: marks our slot as left, then says whether we
    /// were the last live participant of our role (so the caller closes the ring).
    ///
    /// Race-free against others of the role leaving at the same moment, in threads or
    /// processes: each leaver stores its `LEFT` state, then (after a `SeqCst` fence) looks
    /// at the others, and counts only those not yet `LEFT` whose lock is held. Of two
    /// leavers, at least one sees the other's mark (the store-buffer pattern with a full
    /// fence on both sides), so at least one of them closes; closing twice is harmless.
    pub(crate) fn leave_and_check_last(&self) -> bool {
        self.ctl.leave_slot(&self.region, self.slot);
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        !(0..self.slots).filter(|&i| i != self.slot).any(|i| {
            let rec = self.ctl.slot(&self.region, i);
            rec.role == Some(self.role)
                && rec.state != crate::control::LEFT
                && matches!(
                    self.state_of(i),
                    PeerState::Alive { .. } | PeerState::Hung { .. }
                )
        })
    }

    /// The other side's state: for SPSC the other slot; for MPMC the best state among the
    /// participants of the other role (alive beats hung beats dead beats left/absent).
    pub(crate) fn peer_state(&self) -> PeerState {
        match (self.kind, self.role) {
            (ChannelKind::Typed | ChannelKind::Bytes, _) => {
                return self.state_of(1 - self.slot.min(1))
            }
            // A subscriber's peer is the publisher, in slot 0.
            (ChannelKind::Broadcast, Role::Consumer) => return self.state_of(0),
            _ => {}
        }
        let want = match self.role {
            Role::Producer => Role::Consumer,
            Role::Consumer => Role::Producer,
        };
        let rank = |s: &PeerState| match s {
            PeerState::Alive { .. } => 4,
            PeerState::Hung { .. } => 3,
            PeerState::Dead { .. } => 2,
            PeerState::Left { .. } => 1,
            PeerState::Absent => 0,
        };
        (0..self.slots)
            .filter(|&i| i != self.slot && self.ctl.slot(&self.region, i).role == Some(want))
            .map(|i| self.state_of(i))
            .max_by_key(rank)
            .unwrap_or(PeerState::Absent)
    }

    /// Waits until a peer is attached and alive (or hung) and `ready` says it can take what
    /// is sent next, up to `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], or [`Error::PeerGone`] if it attached and died.
    pub(crate) fn wait_for_peer(&self, timeout: Duration, ready: impl Fn() -> bool) -> Result<()> {
        let start = Instant::now();
        loop {
            match self.peer_state() {
                PeerState::Alive { .. } | PeerState::Hung { .. } if ready() => return Ok(()),
                PeerState::Dead { .. } => {
                    if let Some(e) = self.peer_error() {
                        return Err(e);
                    }
                }
                _ => {}
            }
            if start.elapsed() >= timeout {
                return Err(Error::Timeout {
                    name: self.name.to_string(),
                    waited: start.elapsed(),
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The error to report for the peer's state, if it is one.
    pub(crate) fn peer_error(&self) -> Option<Error> {
        // A file shrunk under us outranks what the (zeroed) control block would say.
        if self.region.poll_truncation() {
            return self.region.check_truncated().err().map(Error::Region);
        }
        let role = match self.role {
            Role::Producer => Role::Consumer,
            Role::Consumer => Role::Producer,
        };
        match self.peer_state() {
            PeerState::Dead { pid } => Some(Error::PeerGone {
                name: self.name.to_string(),
                role,
                pid,
            }),
            PeerState::Hung { pid, silent } => Some(Error::PeerHung {
                name: self.name.to_string(),
                role,
                pid,
                silent,
            }),
            _ => None,
        }
    }

    /// Counts one operation; every 64th, if [`CHECK_EVERY_MS`] have passed since the last
    /// check, publishes our counters and returns `true` (time to look at the peer).
    #[inline]
    pub(crate) fn tick(&mut self) -> bool {
        self.ops = self.ops.wrapping_add(1);
        self.ops.is_multiple_of(64) && self.due()
    }

    /// `true` (and counters published) if [`CHECK_EVERY_MS`] passed since the last check.
    pub(crate) fn due(&mut self) -> bool {
        let now = monotonic_ms();
        if now.saturating_sub(self.last_check_ms) < CHECK_EVERY_MS {
            return false;
        }
        self.last_check_ms = now;
        self.publish_counts();
        true
    }

    pub(crate) fn publish_counts(&self) {
        self.ctl.count(
            &self.region,
            self.slot,
            self.messages,
            self.bytes,
            self.lost,
        );
    }

    /// `true` if no slot's lock is held by anyone (we released ours).
    fn nobody_left(&self, fd: BorrowedFd<'_>) -> bool {
        (0..self.slots).all(|i| !lock::is_locked(fd, lock::slot_offset(i)).unwrap_or(true))
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.publish_counts();
        drop(self.heartbeat.take());
        self.ctl.leave_slot(&self.region, self.slot);
        if let Some(fd) = self.region.fd() {
            let _ = lock::unlock(fd, lock::slot_offset(self.slot));
            if self.nobody_left(fd) && name_is_ours(&self.name, &self.region) {
                let _ = shm_region::shm_unlink(&shm_name(&self.name));
            }
        }
    }
}

/// Why a connection attempt did not succeed.
enum Retry {
    /// Not yet (it may appear or finish initialising): the reason.
    Later(String),
    /// Never: the error.
    Fail(Error),
}

/// Takes the lock of the slot `role` uses in this channel, or says who holds it.
fn take_slot(
    name: &str,
    region: &Region,
    fd: BorrowedFd<'_>,
    ctl: Control,
    layout: &Layout,
    role: Role,
) -> Result<usize> {
    let sys = |e| Error::sys("locking a channel slot", e);
    let any_slot = matches!(
        (layout.kind, role),
        (ChannelKind::Mpmc, _) | (ChannelKind::Broadcast, Role::Consumer)
    );
    if any_slot {
        for i in 1..layout.slots as usize {
            if lock::try_lock(fd, lock::slot_offset(i)).map_err(sys)? {
                return Ok(i);
            }
        }
        return Err(Error::InUse {
            name: name.to_owned(),
            role: role.to_string(),
            pid: 0,
            detail: format!(
                "all {} participant slots are taken; create the channel with more \
                 `participants` (or `subscribers`)",
                layout.slots
            ),
        });
    }
    let i = match role {
        Role::Producer => 0,
        Role::Consumer => 1,
    };
    if lock::try_lock(fd, lock::slot_offset(i)).map_err(sys)? {
        return Ok(i);
    }
    Err(Error::InUse {
        name: name.to_owned(),
        role: role.to_string(),
        pid: ctl.slot(region, i).pid,
        detail: "a channel has one producer and one consumer; stop that process, or pick \
                 another name"
            .into(),
    })
}

/// Removes the stale channel under `name` if nobody holds any of its locks; `None` if there
/// was nothing to remove after all (it vanished, or the name now refers to another file).
fn reclaim(name: &str, c: &Common) -> Result<Option<Reclaimed>> {
    let shm = shm_name(name);
    let opts = region_options(c);
    let region = match opts.open_shm(&shm) {
        Ok(r) => r,
        // Gone meanwhile: nothing to reclaim; the caller's next create decides.
        Err(shm_region::Error::NotFound { .. }) => return Ok(None),
        Err(e @ shm_region::Error::TooSmall { .. }) => {
            if file_age(name).is_some_and(|a| a >= SETUP_GRACE) {
                shm_region::shm_unlink(&shm)?;
                return Ok(Some(Reclaimed {
                    name: name.to_owned(),
                    holders: Vec::new(),
                    reason: format!("abandoned during set-up ({e})"),
                }));
            }
            return Err(in_setup(name));
        }
        Err(e) => return Err(e.into()),
    };
    let fd = fd_of(&region)?;
    let sys = |e| Error::sys("checking a channel's locks", e);
    if !lock::try_lock(fd, lock::CREATE_LOCK).map_err(sys)? {
        return Err(in_setup(name));
    }
    let ctl = Control::of(&region).ok();
    let layout = ctl.map(|c| c.layout(&region));
    for i in 0..control::MAX_SLOTS {
        if lock::is_locked(fd, lock::slot_offset(i)).map_err(sys)? {
            let rec = ctl.map(|c| c.slot(&region, i)).unwrap_or_default();
            return Err(Error::InUse {
                name: name.to_owned(),
                role: rec.role.map_or("participant".into(), |r| r.to_string()),
                pid: rec.pid,
                detail: "it is alive (it holds its lock); stop that process, connect to the \
                         channel instead, or pick another name"
                    .into(),
            });
        }
    }
    let (holders, reason) = match (ctl, layout) {
        (Some(ctl), Some(Ok(l))) => (
            (0..l.slots as usize)
                .map(|i| ctl.slot(&region, i))
                .filter(|s| s.state != control::ABSENT)
                .filter_map(|s| s.role.map(|r| (r, s.pid)))
                .collect(),
            "every recorded holder is dead or gone".to_owned(),
        ),
        (_, Some(Err(Invalid::NotReady(_)))) if file_age(name).is_some_and(|a| a < SETUP_GRACE) => {
            return Err(in_setup(name))
        }
        (_, Some(Err(Invalid::NotReady(r) | Invalid::Corrupt(r)))) => (
            Vec::new(),
            format!("nobody holds it and it is unusable: {r}"),
        ),
        _ => (Vec::new(), "nobody holds it and it is unusable".to_owned()),
    };
    if !name_is_ours(name, &region) {
        return Ok(None); // replaced meanwhile: the caller's create will say so
    }
    shm_region::shm_unlink(&shm)?;
    Ok(Some(Reclaimed {
        name: name.to_owned(),
        holders,
        reason,
    }))
}

fn in_setup(name: &str) -> Error {
    Error::InUse {
        name: name.to_owned(),
        role: "creator".into(),
        pid: 0,
        detail: "another process is creating or reclaiming it right now; retry shortly".into(),
    }
}
