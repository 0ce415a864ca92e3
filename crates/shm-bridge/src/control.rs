//! The channel control block: one page at the end of a channel's region, after the ring.
//!
//! The ring (owned by shm-queue) starts at offset 0, as every ring does; the bridge's own
//! fields live in the last [`CONTROL_SIZE`] bytes, so a tool finds them from the file's size
//! alone, before it knows the ring's kind. Every field is a little-endian word accessed
//! atomically; every value read back is validated before use, because a peer can write any
//! byte at any time.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "SHMLANEC"
//!      8     4  version (1)
//!     12     4  kind: 1 typed SPSC, 2 bytes SPSC, 3 MPMC
//!     16     8  ring_bytes: bytes the ring may use from offset 0 (<= control offset)
//!     24     8  total_len: the region's length
//!     32     4  elem_size      36  4  elem_align   (0 for byte channels)
//!     40     8  created_unix_ms
//!     48     4  creator_pid    52  4  type_name_len
//!     56     4  slots in use (2 for SPSC, up to 60 for MPMC)
//!     64     8  ready: READY once the ring and this block are initialised
//!    128   128  type_name (UTF-8, type_name_len bytes)
//!    256  60x64 participant slots
//! ```
//!
//! A slot (64 bytes): `state` u32 (0 absent, 1 attached, 2 left cleanly), `role` u32
//! (1 producer, 2 consumer), `pid` u32 (informative only), `heartbeat_interval_ms` u32,
//! `generation` u64, `heartbeat_ms` u64 (`CLOCK_MONOTONIC`), `messages` u64, `bytes` u64,
//! `attached_unix_ms` u64, `lost` u64 (messages the participant knows were lost before they
//! reached it, such as a zenoh bridge's gaps and drops). SPSC channels use slot 0 for the producer and slot 1 for the
//! consumer; MPMC participants take any free slot.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use shm_region::Region;

/// Bytes of the control block.
pub const CONTROL_SIZE: usize = 4096;
/// Participant slots in a control block.
pub const MAX_SLOTS: usize = 60;
/// The control block's magic number.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMLANEC");
/// Control block layout version.
pub const VERSION: u32 = 1;
/// The `ready` word once a channel is initialised.
pub const READY: u64 = u64::from_le_bytes(*b"CHREADY\x01");

const TYPE_NAME_AT: usize = 128;
const TYPE_NAME_MAX: usize = 128;
const SLOTS_AT: usize = 256;
const SLOT_SIZE: usize = 64;
const _: () = assert!(SLOTS_AT + MAX_SLOTS * SLOT_SIZE == CONTROL_SIZE);

/// Field offsets in the block header.
mod at {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 8;
    pub const KIND: usize = 12;
    pub const RING_BYTES: usize = 16;
    pub const TOTAL_LEN: usize = 24;
    pub const ELEM_SIZE: usize = 32;
    pub const ELEM_ALIGN: usize = 36;
    pub const CREATED_MS: usize = 40;
    pub const CREATOR_PID: usize = 48;
    pub const TYPE_NAME_LEN: usize = 52;
    pub const SLOTS: usize = 56;
    pub const READY: usize = 64;
}

/// Field offsets in a slot.
mod slot_at {
    pub const STATE: usize = 0;
    pub const ROLE: usize = 4;
    pub const PID: usize = 8;
    pub const HB_INTERVAL: usize = 12;
    pub const GENERATION: usize = 16;
    pub const HEARTBEAT: usize = 24;
    pub const MESSAGES: usize = 32;
    pub const BYTES: usize = 40;
    pub const ATTACHED_MS: usize = 48;
    pub const LOST: usize = 56;
}

/// Slot states.
pub(crate) const ABSENT: u32 = 0;
pub(crate) const ATTACHED: u32 = 1;
pub(crate) const LEFT: u32 = 2;

/// What a channel carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// Fixed-size `Pod` elements through an SPSC ring.
    Typed,
    /// Variable-length byte messages through an SPSC byte ring.
    Bytes,
    /// Fixed-size `Pod` elements through an MPMC ring, any number of processes per side.
    Mpmc,
    /// Fixed-size `Pod` elements through a broadcast ring: one publisher, every subscriber
    /// reads every element.
    Broadcast,
}

impl ChannelKind {
    pub(crate) fn code(self) -> u32 {
        match self {
            ChannelKind::Typed => 1,
            ChannelKind::Bytes => 2,
            ChannelKind::Mpmc => 3,
            ChannelKind::Broadcast => 4,
        }
    }

    pub(crate) fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(ChannelKind::Typed),
            2 => Some(ChannelKind::Bytes),
            3 => Some(ChannelKind::Mpmc),
            4 => Some(ChannelKind::Broadcast),
            _ => None,
        }
    }

    /// A short lower-case name: `typed`, `bytes`, `mpmc` or `broadcast`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Typed => "typed",
            ChannelKind::Bytes => "bytes",
            ChannelKind::Mpmc => "mpmc",
            ChannelKind::Broadcast => "broadcast",
        }
    }
}

impl std::fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A participant's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sends messages.
    Producer,
    /// Receives messages.
    Consumer,
}

impl Role {
    pub(crate) fn code(self) -> u32 {
        match self {
            Role::Producer => 1,
            Role::Consumer => 2,
        }
    }

    pub(crate) fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(Role::Producer),
            2 => Some(Role::Consumer),
            _ => None,
        }
    }

    /// `producer` or `consumer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Producer => "producer",
            Role::Consumer => "consumer",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the creator records about the ring, checked by everyone who connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    pub kind: ChannelKind,
    pub ring_bytes: u64,
    pub elem_size: u32,
    pub elem_align: u32,
    pub type_name: String,
    pub slots: u32,
}

/// The control block of a mapped channel region: an offset into it, validated once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Control {
    base: usize,
}

/// Why a region does not hold a usable control block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// Not initialised yet (the creator may still be writing it, or died doing so).
    NotReady(String),
    /// Not a channel, or a damaged one: the reason.
    Corrupt(String),
}

/// Milliseconds of `CLOCK_MONOTONIC` (the same clock in every process of a host).
pub(crate) fn monotonic_ms() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| (t.tv_sec() as u64).saturating_mul(1000) + (t.tv_nsec() as u64) / 1_000_000)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Control {
    /// The control block of `region`: its last page. The region must be at least one page
    /// and a multiple of eight bytes long.
    pub(crate) fn of(region: &Region) -> Result<Control, Invalid> {
        let len = region.len();
        if len < CONTROL_SIZE || !len.is_multiple_of(8) {
            return Err(Invalid::Corrupt(format!(
                "{len} bytes is not a channel size (at least {CONTROL_SIZE}, a multiple of 8)"
            )));
        }
        Ok(Control {
            base: len - CONTROL_SIZE,
        })
    }

    pub(crate) fn u64(&self, region: &Region, off: usize) -> u64 {
        self.w64(region, off)
            .map(|w| w.load(Ordering::Acquire))
            .unwrap_or(0)
    }

    pub(crate) fn u32(&self, region: &Region, off: usize) -> u32 {
        self.w32(region, off)
            .map(|w| w.load(Ordering::Acquire))
            .unwrap_or(0)
    }

    pub(crate) fn set64(&self, region: &Region, off: usize, v: u64) {
        if let Some(w) = self.w64(region, off) {
            w.store(v, Ordering::Release);
        }
    }

    pub(crate) fn set32(&self, region: &Region, off: usize, v: u32) {
        if let Some(w) = self.w32(region, off) {
            w.store(v, Ordering::Release);
        }
    }

    /// `off` is always inside the block and aligned (`Control::of` checked the region is
    /// long enough and the base is a multiple of 8), so these never fail in practice.
    fn w64<'r>(&self, region: &'r Region, off: usize) -> Option<&'r AtomicU64> {
        region.atomic_u64(self.base + off).ok()
    }

    fn w32<'r>(&self, region: &'r Region, off: usize) -> Option<&'r AtomicU32> {
        region.atomic_u32(self.base + off).ok()
    }

    /// Writes the layout fields (everything but `ready` and the slots).
    pub(crate) fn write_layout(&self, region: &Region, l: &Layout) {
        let name = l.type_name.as_bytes();
        let name = &name[..name.len().min(TYPE_NAME_MAX)];
        let _ = region.write_at(self.base + TYPE_NAME_AT, name);
        self.set32(region, at::TYPE_NAME_LEN, name.len() as u32);
        self.set64(region, at::MAGIC, MAGIC);
        self.set32(region, at::VERSION, VERSION);
        self.set32(region, at::KIND, l.kind.code());
        self.set64(region, at::RING_BYTES, l.ring_bytes);
        self.set64(region, at::TOTAL_LEN, region.len() as u64);
        self.set32(region, at::ELEM_SIZE, l.elem_size);
        self.set32(region, at::ELEM_ALIGN, l.elem_align);
        self.set64(region, at::CREATED_MS, unix_ms());
        self.set32(region, at::CREATOR_PID, std::process::id());
        self.set32(region, at::SLOTS, l.slots);
    }

    /// Publishes the block: everything written before is visible to whoever sees `READY`.
    pub(crate) fn publish(&self, region: &Region) {
        self.set64(region, at::READY, READY);
    }

    /// Reads and checks the layout fields.
    pub(crate) fn layout(&self, region: &Region) -> Result<Layout, Invalid> {
        let magic = self.u64(region, at::MAGIC);
        let ready = self.u64(region, at::READY);
        if magic == 0 || (magic == MAGIC && ready == 0) {
            return Err(Invalid::NotReady(
                "its control block is not initialised".into(),
            ));
        }
        if magic != MAGIC {
            return Err(Invalid::Corrupt(format!(
                "bad control-block magic {magic:#018x} (not a shmlane channel)"
            )));
        }
        if ready != READY {
            return Err(Invalid::Corrupt(format!("bad ready word {ready:#018x}")));
        }
        let version = self.u32(region, at::VERSION);
        if version != VERSION {
            return Err(Invalid::Corrupt(format!(
                "control-block version {version} (this build reads {VERSION})"
            )));
        }
        let code = self.u32(region, at::KIND);
        let kind = ChannelKind::from_code(code)
            .ok_or_else(|| Invalid::Corrupt(format!("unknown channel kind {code}")))?;
        let total = self.u64(region, at::TOTAL_LEN);
        if total != region.len() as u64 {
            return Err(Invalid::Corrupt(format!(
                "records a length of {total} bytes but the region has {}",
                region.len()
            )));
        }
        let ring_bytes = self.u64(region, at::RING_BYTES);
        if ring_bytes == 0 || ring_bytes > self.base as u64 {
            return Err(Invalid::Corrupt(format!(
                "ring of {ring_bytes} bytes does not fit before the control block at {}",
                self.base
            )));
        }
        let slots = self.u32(region, at::SLOTS);
        let want_slots = match kind {
            ChannelKind::Mpmc | ChannelKind::Broadcast => 1..=MAX_SLOTS,
            ChannelKind::Typed | ChannelKind::Bytes => 2..=2,
        };
        if !want_slots.contains(&(slots as usize)) {
            return Err(Invalid::Corrupt(format!(
                "{slots} participant slots for a {kind} channel"
            )));
        }
        Ok(Layout {
            kind,
            ring_bytes,
            elem_size: self.u32(region, at::ELEM_SIZE),
            elem_align: self.u32(region, at::ELEM_ALIGN),
            type_name: self.type_name(region),
            slots,
        })
    }

    /// What [`Control::write_layout`] records of element type name `name`: its first
    /// [`TYPE_NAME_MAX`] bytes (read back as [`Control::type_name`] does), so a longer name
    /// compares equal to its own record.
    pub(crate) fn recorded_type_name(name: &str) -> std::borrow::Cow<'_, str> {
        let b = name.as_bytes();
        String::from_utf8_lossy(&b[..b.len().min(TYPE_NAME_MAX)])
    }

    /// The recorded element type name (lossy: a peer may have written anything).
    pub(crate) fn type_name(&self, region: &Region) -> String {
        let len = (self.u32(region, at::TYPE_NAME_LEN) as usize).min(TYPE_NAME_MAX);
        let mut buf = vec![0u8; len];
        let _ = region.read_at(self.base + TYPE_NAME_AT, &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }

    pub(crate) fn created_unix_ms(&self, region: &Region) -> u64 {
        self.u64(region, at::CREATED_MS)
    }

    pub(crate) fn creator_pid(&self, region: &Region) -> u32 {
        self.u32(region, at::CREATOR_PID)
    }

    /// Offset of field `f` of slot `i` within the block (`i < MAX_SLOTS`).
    fn slot_field(i: usize, f: usize) -> usize {
        SLOTS_AT + (i % MAX_SLOTS) * SLOT_SIZE + f
    }

    /// Marks slot `i` as attached by us with `role`; returns its new generation.
    pub(crate) fn attach_slot(&self, region: &Region, i: usize, role: Role, hb_ms: u32) -> u64 {
        let generation = self
            .w64(region, Self::slot_field(i, slot_at::GENERATION))
            .map(|w| w.fetch_add(1, Ordering::AcqRel).wrapping_add(1))
            .unwrap_or(0);
        self.set32(region, Self::slot_field(i, slot_at::ROLE), role.code());
        self.set32(
            region,
            Self::slot_field(i, slot_at::PID),
            std::process::id(),
        );
        self.set32(region, Self::slot_field(i, slot_at::HB_INTERVAL), hb_ms);
        self.set64(
            region,
            Self::slot_field(i, slot_at::HEARTBEAT),
            monotonic_ms(),
        );
        self.set64(region, Self::slot_field(i, slot_at::MESSAGES), 0);
        self.set64(region, Self::slot_field(i, slot_at::BYTES), 0);
        self.set64(region, Self::slot_field(i, slot_at::LOST), 0);
        self.set64(region, Self::slot_field(i, slot_at::ATTACHED_MS), unix_ms());
        self.set32(region, Self::slot_field(i, slot_at::STATE), ATTACHED);
        generation
    }

    pub(crate) fn leave_slot(&self, region: &Region, i: usize) {
        self.set32(region, Self::slot_field(i, slot_at::STATE), LEFT);
    }

    pub(crate) fn beat(&self, region: &Region, i: usize) {
        self.set64(
            region,
            Self::slot_field(i, slot_at::HEARTBEAT),
            monotonic_ms(),
        );
    }

    pub(crate) fn count(&self, region: &Region, i: usize, messages: u64, bytes: u64, lost: u64) {
        self.set64(region, Self::slot_field(i, slot_at::MESSAGES), messages);
        self.set64(region, Self::slot_field(i, slot_at::BYTES), bytes);
        self.set64(region, Self::slot_field(i, slot_at::LOST), lost);
    }

    /// Everything recorded in slot `i`.
    pub(crate) fn slot(&self, region: &Region, i: usize) -> SlotRecord {
        let f = |off| Self::slot_field(i, off);
        SlotRecord {
            state: self.u32(region, f(slot_at::STATE)),
            role: Role::from_code(self.u32(region, f(slot_at::ROLE))),
            pid: self.u32(region, f(slot_at::PID)),
            heartbeat_interval_ms: self.u32(region, f(slot_at::HB_INTERVAL)),
            generation: self.u64(region, f(slot_at::GENERATION)),
            heartbeat_ms: self.u64(region, f(slot_at::HEARTBEAT)),
            messages: self.u64(region, f(slot_at::MESSAGES)),
            bytes: self.u64(region, f(slot_at::BYTES)),
            attached_unix_ms: self.u64(region, f(slot_at::ATTACHED_MS)),
            lost: self.u64(region, f(slot_at::LOST)),
        }
    }
}

/// The raw contents of a participant slot (unvalidated).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SlotRecord {
    pub state: u32,
    pub role: Option<Role>,
    pub pid: u32,
    pub heartbeat_interval_ms: u32,
    pub generation: u64,
    pub heartbeat_ms: u64,
    pub messages: u64,
    pub bytes: u64,
    pub attached_unix_ms: u64,
    pub lost: u64,
}

impl SlotRecord {
    /// How long the heartbeat has been silent, if this slot declared a heartbeat and it is
    /// older than three periods (a hung process); a timestamp in the future counts as fresh.
    pub(crate) fn silent_for(&self, now_ms: u64) -> Option<std::time::Duration> {
        let interval = u64::from(self.heartbeat_interval_ms);
        if interval == 0 {
            return None;
        }
        let age = now_ms.saturating_sub(self.heartbeat_ms);
        (age > 3 * interval.max(10)).then(|| std::time::Duration::from_millis(age))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shm_region::Options;

    #[test]
    fn layout_round_trips_and_garbage_is_rejected() {
        let region = Options::new().create_anonymous(3 * CONTROL_SIZE).unwrap();
        let c = Control::of(&region).unwrap();
        assert!(matches!(c.layout(&region), Err(Invalid::NotReady(_))));
        let l = Layout {
            kind: ChannelKind::Typed,
            ring_bytes: 8192,
            elem_size: 8,
            elem_align: 8,
            type_name: "u64".into(),
            slots: 2,
        };
        c.write_layout(&region, &l);
        assert!(matches!(c.layout(&region), Err(Invalid::NotReady(_))));
        c.publish(&region);
        assert_eq!(c.layout(&region).unwrap(), l);
        c.set64(&region, at::RING_BYTES, 8193 + 4096);
        assert!(matches!(c.layout(&region), Err(Invalid::Corrupt(_))));
        c.set64(&region, at::RING_BYTES, 8192);
        c.set32(&region, at::SLOTS, 7);
        assert!(matches!(c.layout(&region), Err(Invalid::Corrupt(_))));
        c.set32(&region, at::SLOTS, 2);
        c.set32(&region, at::TYPE_NAME_LEN, u32::MAX);
        assert_eq!(c.type_name(&region).len(), TYPE_NAME_MAX);
        region.fill(0, region.len(), 0xa5).unwrap();
        assert!(matches!(c.layout(&region), Err(Invalid::Corrupt(_))));
        for i in 0..MAX_SLOTS * 3 {
            let _ = c.slot(&region, i);
        }
    }

    #[test]
    fn heartbeat_age() {
        let mut s = SlotRecord {
            heartbeat_interval_ms: 100,
            heartbeat_ms: 1_000,
            ..SlotRecord::default()
        };
        assert_eq!(s.silent_for(1_200), None);
        assert!(s.silent_for(1_400).is_some());
        assert_eq!(s.silent_for(10), None);
        s.heartbeat_interval_ms = 0;
        assert_eq!(s.silent_for(100_000), None);
    }
}
