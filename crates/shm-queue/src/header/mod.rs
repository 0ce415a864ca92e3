//! The header every ring region starts with, its geometry (`geometry`), the generic
//! checks every ring's validation shares, and [`snapshot`] for tools. Each ring validates its
//! own geometry (`spsc::ring`, `bytes::ring`, `mpmc::layout`); the waiting protocol on the
//! header's wait words is `wait::notify`.
//!
//! The header is 512 bytes: four 128-byte lines, each `#[repr(C, align(128))]` and made only of
//! fixed-width atomics (`u32`/`u64`, never `usize`), so a header written by one process reads
//! the same in any other process on the host. `docs/layout.md` draws the byte map; the
//! compile-time assertions at the bottom of this file pin every offset.
//!
//! | bytes | line | written by | read by |
//! |---|---|---|---|
//! | 0..128 | configuration, `ready` at 120 | the creator, once | every attacher, once |
//! | 128..256 | claims, wait words (futex, waiters, sleepers, closed, readiness) | handles; blocking calls; publishers | handles; publishers; sleepers |
//! | 256..384 | producer position (`tail`) | the producer, per publish | the consumer's `len`, attach |
//! | 384..512 | consumer position (`head`) | the consumer, per pop | the producer, when its cache runs out |
//!
//! Invariant: a ring is usable only once `ready` holds [`READY`]. The creator stores every
//! other field first and `ready` last with `Release`; an attacher loads `ready` with
//! `Acquire` before it reads anything else, and checks every field against the real region
//! length and its own element type before it trusts it.
//!
//! Every field is an atomic so that Rust references to the header stay sound while another
//! process writes it; configuration words are read once with `Relaxed` after the `Acquire`
//! of `ready` and then kept in process memory.

use crate::element::ElementType;
use crate::error::Error;
use crate::sync::{AtomicU32, AtomicU64, Ordering};

mod geometry;
mod snapshot;

pub(crate) use geometry::{checked_area, round_up, BlockShape, Geometry};
#[cfg(not(loom))]
pub use snapshot::snapshot;
pub use snapshot::Snapshot;

/// First word of every shmlane ring: the bytes `SHMLANEQ`, little endian.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMLANEQ");

/// Version of the layout described in `docs/layout.md`. Bumped on any incompatible change.
pub const LAYOUT_VERSION: u32 = 1;

/// Value of the `ready` word once the creator has finished: the ring may be attached.
pub const READY: u64 = u64::from_le_bytes(*b"READY\0\0\x01");

/// Value of the `ready` word while a creator is initialising the ring.
pub const INITIALIZING: u64 = u64::from_le_bytes(*b"INIT\0\0\0\x01");

/// Size of the header in bytes; the slot area starts at this offset.
pub const HEADER_SIZE: usize = 512;

/// Size of a block of the SPSC slot area for elements of up to 56 bytes: one cache line.
pub const BLOCK_BYTES: usize = 64;

/// Largest element alignment a ring accepts (one cache line).
pub const MAX_ELEMENT_ALIGN: usize = 64;

/// Largest element size a ring accepts.
pub const MAX_ELEMENT_SIZE: usize = 1 << 30;

/// Largest number of blocks in a ring (2^36: 4 TiB of 64-byte blocks).
pub const MAX_BLOCKS: u64 = 1 << 36;

/// Largest position a ring accepts in its header (2^62). Positions count elements since
/// creation and never wrap: at a billion elements a second this limit is 146 years away, and
/// keeping it far below `u64::MAX` means no sum of a position and a capacity can overflow.
pub const MAX_POSITION: u64 = 1 << 62;

/// What kind of ring a header describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
#[non_exhaustive]
pub enum RingKind {
    /// Single producer, single consumer, fixed-size `Pod` elements ([`crate::spsc`]).
    Spsc = 1,
    /// Single producer, single consumer, variable-length byte messages ([`crate::bytes`]).
    Bytes = 2,
    /// Many producers, many consumers ([`crate::mpmc`]).
    Mpmc = 3,
    /// One publisher, many subscribers each reading every element ([`crate::broadcast`]).
    Broadcast = 4,
}

/// The 64-bit fingerprint of an element type recorded in the header: FNV-1a over
/// `core::any::type_name::<T>()`, then its size and alignment as little-endian `u64`s.
///
/// `type_name` is not guaranteed stable across compiler versions, so both processes should be
/// built with the same toolchain; the size and alignment are also stored as separate fields,
/// so a mismatch report says which of the three differs.
///
/// ```
/// use shm_queue::header::type_fingerprint;
/// assert_eq!(type_fingerprint::<u64>(), type_fingerprint::<u64>());
/// assert_ne!(type_fingerprint::<u64>(), type_fingerprint::<i64>());
/// ```
pub fn type_fingerprint<T>() -> u64 {
    crate::element::fingerprint_of(
        core::any::type_name::<T>(),
        core::mem::size_of::<T>(),
        core::mem::align_of::<T>(),
    )
}

/// Line 0: configuration, written once by the creator.
#[repr(C, align(128))]
pub(crate) struct ConfigLine {
    /// [`MAGIC`].
    pub magic: AtomicU64,
    /// [`LAYOUT_VERSION`].
    pub version: AtomicU32,
    /// [`RingKind`] as `u32`.
    pub kind: AtomicU32,
    /// Capacity in elements: `block_count * elems_per_block`.
    pub capacity: AtomicU64,
    /// Number of blocks in the slot area; a power of two.
    pub block_count: AtomicU64,
    /// Bytes per block: 64, or `round_up(elem_offset + elem_size, 64)` for big elements.
    pub block_size: AtomicU32,
    /// Elements per block.
    pub elems_per_block: AtomicU32,
    /// Offset of the first element within a block: `round_up(8, elem_align)`.
    pub elem_offset: AtomicU32,
    /// `size_of::<T>()`.
    pub elem_size: AtomicU32,
    /// `align_of::<T>()`.
    pub elem_align: AtomicU32,
    /// Creation flags; none defined yet, always 0.
    pub flags: AtomicU32,
    /// [`type_fingerprint`] of `T`.
    pub type_hash: AtomicU64,
    /// Offset of the slot area from the start of the region: [`HEADER_SIZE`].
    pub header_size: AtomicU64,
    /// Bytes the ring occupies: header plus slot area.
    pub area_size: AtomicU64,
    /// Capacity the creator asked for (creation parameter; the real capacity may be larger).
    pub requested_capacity: AtomicU64,
    /// Process id of the creator (informative only: pids are reused).
    pub creator_pid: AtomicU32,
    /// Byte rings: the largest message accepted, in bytes. 0 for other ring kinds.
    pub max_message: AtomicU32,
    /// Kind-specific words, 0 unless the kind defines them (MPMC: `[0]` is the number of
    /// owner-table entries).
    pub reserved1: [AtomicU64; 3],
    /// [`READY`] once the creator is done; written last, with `Release`.
    pub ready: AtomicU64,
}

/// Line 1: claims of the two sides, and the words of the wait strategies ([`crate::wait`]).
#[repr(C, align(128))]
pub(crate) struct ControlLine {
    /// 0 when free, else the token of the producer handle that holds the side.
    pub producer_claim: AtomicU64,
    /// 0 when free, else the token of the consumer handle that holds the side.
    pub consumer_claim: AtomicU64,
    /// Futex word consumers sleep on for data; bumped by every wake.
    pub data_futex: AtomicU32,
    /// Futex word producers sleep on for space; bumped by every wake.
    pub space_futex: AtomicU32,
    /// Consumers asleep (or about to be) on `data_futex`.
    pub consumer_waiters: AtomicU32,
    /// Producers asleep (or about to be) on `space_futex`.
    pub producer_waiters: AtomicU32,
    /// Nonzero once the ring is closed (see [`crate::wait`]): 1 by the producer side, 2 by
    /// the consumer side, 3 by anyone else (for example liveness code).
    pub closed: AtomicU32,
    /// Consumer handles whose wait strategy may sleep (the producer wakes them).
    pub consumer_sleepers: AtomicU32,
    /// Producer handles whose wait strategy may sleep (the consumer wakes them).
    pub producer_sleepers: AtomicU32,
    /// Non-zero while a consumer has armed its readiness file descriptor (see
    /// [`crate::wait::readiness_fd`]): the next publication signals it and clears this.
    pub data_armed: AtomicU32,
    /// Of `consumer_sleepers`, those whose process cannot issue the heavy half of the
    /// asymmetric fence (no `membarrier`, a seccomp filter, a failed registration): while
    /// any is counted, producers pay the real fence (see `crate::wait`).
    pub consumer_weak: AtomicU32,
    /// Of `producer_sleepers`, those that cannot issue the heavy half (see `consumer_weak`).
    pub producer_weak: AtomicU32,
}

/// Lines 2 and 3: one position word alone on its 128-byte line.
#[repr(C, align(128))]
pub(crate) struct PositionLine {
    /// An absolute element position (count since creation).
    pub pos: AtomicU64,
}

/// The whole header: four 128-byte lines.
#[repr(C, align(128))]
pub(crate) struct Header {
    pub config: ConfigLine,
    pub control: ControlLine,
    /// `tail`: everything before it has been written and published.
    pub producer: PositionLine,
    /// `head`: everything before it has been consumed; the producer may overwrite it.
    pub consumer: PositionLine,
}

#[cfg(not(loom))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<Header>() == HEADER_SIZE);
    assert!(align_of::<Header>() == 128);
    assert!(offset_of!(Header, config) == 0);
    assert!(offset_of!(Header, control) == 128);
    assert!(offset_of!(Header, producer) == 256);
    assert!(offset_of!(Header, consumer) == 384);
    assert!(size_of::<ConfigLine>() == 128);
    assert!(offset_of!(ConfigLine, magic) == 0);
    assert!(offset_of!(ConfigLine, version) == 8);
    assert!(offset_of!(ConfigLine, kind) == 12);
    assert!(offset_of!(ConfigLine, capacity) == 16);
    assert!(offset_of!(ConfigLine, block_count) == 24);
    assert!(offset_of!(ConfigLine, block_size) == 32);
    assert!(offset_of!(ConfigLine, elems_per_block) == 36);
    assert!(offset_of!(ConfigLine, elem_offset) == 40);
    assert!(offset_of!(ConfigLine, elem_size) == 44);
    assert!(offset_of!(ConfigLine, elem_align) == 48);
    assert!(offset_of!(ConfigLine, flags) == 52);
    assert!(offset_of!(ConfigLine, type_hash) == 56);
    assert!(offset_of!(ConfigLine, header_size) == 64);
    assert!(offset_of!(ConfigLine, area_size) == 72);
    assert!(offset_of!(ConfigLine, requested_capacity) == 80);
    assert!(offset_of!(ConfigLine, creator_pid) == 88);
    assert!(offset_of!(ConfigLine, max_message) == 92);
    assert!(offset_of!(ConfigLine, reserved1) == 96);
    assert!(offset_of!(ConfigLine, ready) == 120);
    assert!(size_of::<ControlLine>() == 128);
    assert!(offset_of!(ControlLine, producer_claim) == 0);
    assert!(offset_of!(ControlLine, consumer_claim) == 8);
    assert!(offset_of!(ControlLine, data_futex) == 16);
    assert!(offset_of!(ControlLine, space_futex) == 20);
    assert!(offset_of!(ControlLine, consumer_waiters) == 24);
    assert!(offset_of!(ControlLine, producer_waiters) == 28);
    assert!(offset_of!(ControlLine, closed) == 32);
    assert!(offset_of!(ControlLine, consumer_sleepers) == 36);
    assert!(offset_of!(ControlLine, producer_sleepers) == 40);
    assert!(offset_of!(ControlLine, data_armed) == 44);
    assert!(offset_of!(ControlLine, consumer_weak) == 48);
    assert!(offset_of!(ControlLine, producer_weak) == 52);
    assert!(size_of::<PositionLine>() == 128);
    assert!(offset_of!(PositionLine, pos) == 0);
    // The block words are `AtomicU64`s at the start of 64-byte-aligned blocks.
    assert!(HEADER_SIZE & 127 == 0 && BLOCK_BYTES & 63 == 0);
};

impl Header {
    /// A zeroed header in process memory (loom models only: loom atomics cannot live in a
    /// mapping).
    #[cfg(loom)]
    pub(crate) fn new_zeroed() -> Self {
        let z64 = || AtomicU64::new(0);
        let z32 = || AtomicU32::new(0);
        Header {
            config: ConfigLine {
                magic: z64(),
                version: z32(),
                kind: z32(),
                capacity: z64(),
                block_count: z64(),
                block_size: z32(),
                elems_per_block: z32(),
                elem_offset: z32(),
                elem_size: z32(),
                elem_align: z32(),
                flags: z32(),
                type_hash: z64(),
                header_size: z64(),
                area_size: z64(),
                requested_capacity: z64(),
                creator_pid: z32(),
                max_message: z32(),
                reserved1: [z64(), z64(), z64()],
                ready: z64(),
            },
            control: ControlLine {
                producer_claim: z64(),
                consumer_claim: z64(),
                data_futex: z32(),
                space_futex: z32(),
                consumer_waiters: z32(),
                producer_waiters: z32(),
                closed: z32(),
                consumer_sleepers: z32(),
                producer_sleepers: z32(),
                data_armed: z32(),
                consumer_weak: z32(),
                producer_weak: z32(),
            },
            producer: PositionLine { pos: z64() },
            consumer: PositionLine { pos: z64() },
        }
    }

    /// Stores every field but `ready` (all `Relaxed`): configuration from `g`, claims,
    /// positions and reserved words zero. The caller publishes with [`Header::publish_ready`].
    pub(crate) fn write_config(&self, g: &Geometry, kind: RingKind, requested_capacity: u64) {
        let c = &self.config;
        let r = Ordering::Relaxed;
        c.magic.store(MAGIC, r);
        c.version.store(LAYOUT_VERSION, r);
        c.kind.store(kind as u32, r);
        c.capacity.store(g.capacity() as u64, r);
        c.block_count.store(g.block_count as u64, r);
        c.block_size.store(g.block_size as u32, r);
        c.elems_per_block.store(g.elems_per_block as u32, r);
        c.elem_offset.store(g.elem_offset as u32, r);
        c.elem_size.store(g.elem_size as u32, r);
        c.elem_align.store(g.elem_align as u32, r);
        c.flags.store(0, r);
        c.type_hash.store(g.type_hash, r);
        c.header_size.store(HEADER_SIZE as u64, r);
        c.area_size.store(g.area_size() as u64, r);
        c.requested_capacity.store(requested_capacity, r);
        c.creator_pid.store(std::process::id(), r);
        c.max_message.store(0, r);
        for w in &c.reserved1 {
            w.store(0, r);
        }
        let k = &self.control;
        k.producer_claim.store(0, r);
        k.consumer_claim.store(0, r);
        k.data_futex.store(0, r);
        k.space_futex.store(0, r);
        k.consumer_waiters.store(0, r);
        k.producer_waiters.store(0, r);
        k.closed.store(0, r);
        k.consumer_sleepers.store(0, r);
        k.producer_sleepers.store(0, r);
        k.data_armed.store(0, r);
        k.consumer_weak.store(0, r);
        k.producer_weak.store(0, r);
        self.producer.pos.store(0, r);
        self.consumer.pos.store(0, r);
    }

    /// Marks the ring usable: the `Release` that publishes every earlier store of the creator.
    pub(crate) fn publish_ready(&self) {
        self.config.ready.store(READY, Ordering::Release);
    }

    /// Takes the right to initialise the ring: moves `ready` from what it is now to
    /// [`INITIALIZING`], refusing if it is already set unless `reinitialize` is true.
    pub(crate) fn begin_init(&self, reinitialize: bool) -> Result<(), Error> {
        let found = self.config.ready.load(Ordering::Acquire);
        if found != 0 && !reinitialize {
            return Err(Error::AlreadyInitialized { ready: found });
        }
        self.config
            .ready
            .compare_exchange(found, INITIALIZING, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(|ready| Error::AlreadyInitialized { ready })
    }

    /// The block shape the header's recorded element size and alignment give (with its
    /// recorded type hash): for checks that do not know the element type, such as tools.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedType`] if no element type could have that size and alignment.
    #[cfg(not(loom))]
    pub(crate) fn recorded_shape(&self) -> Result<BlockShape, Error> {
        let c = &self.config;
        let r = Ordering::Relaxed;
        BlockShape::of(
            c.elem_size.load(r) as usize,
            c.elem_align.load(r) as usize,
            c.type_hash.load(r),
            "(the element type recorded in the header)".into(),
        )
    }

    /// The identity checks (magic, version, `ready`, `kind`) and the element type's, then
    /// `rest` with the type's block shape: the frame every typed ring's validation shares.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn for_element<R>(
        &self,
        kind: RingKind,
        elem: &ElementType,
        rest: impl FnOnce(&Self, BlockShape) -> Result<R, Error>,
    ) -> Result<R, Error> {
        self.check_identity(kind)?;
        let shape = self.check_element(elem)?;
        rest(self, shape)
    }

    /// Checks the recorded element size, alignment and type fingerprint against `elem`;
    /// returns its block shape.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn check_element(&self, elem: &ElementType) -> Result<BlockShape, Error> {
        let c = &self.config;
        let r = Ordering::Relaxed;
        let shape = BlockShape::of_element(elem)?;
        let (size, align, hash) = (
            c.elem_size.load(r),
            c.elem_align.load(r),
            c.type_hash.load(r),
        );
        if size as usize != shape.elem_size
            || align as usize != shape.elem_align
            || hash != shape.type_hash
        {
            return Err(Error::TypeMismatch {
                type_name: elem.name().to_owned().into(),
                expected_size: shape.elem_size as u32,
                expected_align: shape.elem_align as u32,
                expected_hash: shape.type_hash,
                found_size: size.into(),
                found_align: align.into(),
                found_hash: hash,
            });
        }
        Ok(shape)
    }

    /// [`Header::expect_geometry`] for a ring of typed elements (SPSC or MPMC), which
    /// records no largest message.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn expect_typed_geometry(
        &self,
        g: &Geometry,
        area_size: u64,
        region_len: u64,
    ) -> Result<(), Error> {
        self.expect_geometry(g, area_size, region_len)?;
        expect_field(
            "max_message",
            self.config.max_message.load(Ordering::Relaxed).into(),
            0,
        )
    }

    /// Checks every layout field against the geometry the caller derived (`area_size` is
    /// passed separately because an MPMC ring adds its owner table), the flags, and that
    /// the region holds the whole area.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn expect_geometry(
        &self,
        g: &Geometry,
        area_size: u64,
        region_len: u64,
    ) -> Result<(), Error> {
        let c = &self.config;
        let r = Ordering::Relaxed;
        let fields: [(&'static str, u64, u64); 11] = [
            ("header_size", c.header_size.load(r), HEADER_SIZE as u64),
            ("block_count", c.block_count.load(r), g.block_count as u64),
            (
                "block_size",
                c.block_size.load(r).into(),
                g.block_size as u64,
            ),
            (
                "elems_per_block",
                c.elems_per_block.load(r).into(),
                g.elems_per_block as u64,
            ),
            (
                "elem_offset",
                c.elem_offset.load(r).into(),
                g.elem_offset as u64,
            ),
            ("elem_size", c.elem_size.load(r).into(), g.elem_size as u64),
            (
                "elem_align",
                c.elem_align.load(r).into(),
                g.elem_align as u64,
            ),
            ("type_hash", c.type_hash.load(r), g.type_hash),
            ("capacity", c.capacity.load(r), g.capacity() as u64),
            ("area_size", c.area_size.load(r), area_size),
            ("flags", c.flags.load(r).into(), 0),
        ];
        for (field, found, expected) in fields {
            expect_field(field, found, expected)?;
        }
        if area_size > region_len {
            return Err(Error::RegionTooSmall {
                len: region_len,
                need: area_size,
            });
        }
        Ok(())
    }

    /// Checks `ready` (with `Acquire`, first), magic, version and kind: what every ring
    /// kind's validation starts with.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn check_identity(&self, kind: RingKind) -> Result<(), Error> {
        let c = &self.config;
        let r = Ordering::Relaxed;
        let ready = c.ready.load(Ordering::Acquire);
        let magic = c.magic.load(r);
        if ready != READY {
            if magic == MAGIC || ready == 0 || ready == INITIALIZING {
                return Err(Error::NotReady { ready });
            }
            return Err(Error::BadMagic {
                found: magic,
                expected: MAGIC,
            });
        }
        if magic != MAGIC {
            return Err(Error::BadMagic {
                found: magic,
                expected: MAGIC,
            });
        }
        let version = c.version.load(r);
        if version != LAYOUT_VERSION {
            return Err(Error::VersionMismatch {
                found: version,
                expected: LAYOUT_VERSION,
            });
        }
        let found_kind = c.kind.load(r);
        if found_kind != kind as u32 {
            return Err(Error::KindMismatch {
                found: found_kind,
                expected: kind as u32,
            });
        }
        Ok(())
    }
}

#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn expect_field(field: &'static str, found: u64, expected: u64) -> Result<(), Error> {
    if found == expected {
        Ok(())
    } else {
        Err(Error::LayoutMismatch {
            field,
            found,
            expected,
        })
    }
}

pub(crate) fn check_block_count(blocks: u64) -> Result<(), Error> {
    let reason = if blocks == 0 {
        "zero"
    } else if blocks > MAX_BLOCKS {
        "too large"
    } else if !blocks.is_power_of_two() {
        "not a power of two"
    } else {
        return Ok(());
    };
    Err(Error::BadCapacity {
        blocks,
        max_blocks: MAX_BLOCKS,
        reason,
    })
}
/// Runs on the ring at the start of `region` every check that attaching runs, except the
/// element type's identity, which only the attaching program knows: magic, version, kind,
/// `ready`, the geometry recomputed from the recorded element size and alignment against
/// every header field and `ring_len` (the bytes the ring may use), and the shared positions.
/// Tools (`shmlane list`, `inspect`, `gc`) use it so that they call usable exactly the rings
/// an attach would accept, apart from the element type. Returns the ring's kind.
///
/// # Errors
///
/// What the matching `attach` would return for the same bytes.
///
/// ```
/// use shm_queue::{header, spsc};
/// use shm_region::Region;
///
/// let region = Region::anonymous(spsc::Ring::<u64>::required_bytes(64)?)?;
/// let len = region.len() as u64;
/// let ring = spsc::Ring::<u64>::create(region, 64)?;
/// assert_eq!(header::check(ring.region(), len)?, header::RingKind::Spsc);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(not(loom))]
pub fn check(region: &shm_region::Region, ring_len: u64) -> Result<RingKind, Error> {
    let h = crate::mem::header_of(region)?;
    let ring_len = ring_len.min(region.len() as u64);
    let kind = match h.config.kind.load(Ordering::Relaxed) {
        k if k == RingKind::Spsc as u32 => RingKind::Spsc,
        k if k == RingKind::Bytes as u32 => RingKind::Bytes,
        k if k == RingKind::Broadcast as u32 => RingKind::Broadcast,
        _ => RingKind::Mpmc,
    };
    // Magic, version, ready and the kind itself (an unknown kind fails here).
    h.check_identity(kind)?;
    match kind {
        RingKind::Spsc => {
            let g = h.validate_shape(h.recorded_shape()?, ring_len)?;
            crate::spsc::check_positions(h, &g)?;
        }
        RingKind::Bytes => {
            let (cap, _) = h.validate_bytes(ring_len)?;
            crate::bytes::check_positions(h, cap)?;
        }
        RingKind::Mpmc => {
            let layout = h.validate_mpmc_shape(h.recorded_shape()?, ring_len)?;
            crate::mpmc::check_positions(h, layout.capacity() as u64)?;
        }
        RingKind::Broadcast => {
            crate::broadcast::check_recorded(region, ring_len)?;
        }
    }
    Ok(kind)
}

#[cfg(all(test, not(loom)))]
mod tests {
    fn for_cap<T: bytemuck::Pod>(n: usize) -> Result<Geometry, Error> {
        Geometry::for_capacity(BlockShape::of_element(&ElementType::of::<T>())?, n)
    }
    use super::*;

    #[test]
    fn block_shapes() {
        // (size, align) -> (elem_offset, block_size, elems_per_block)
        assert_eq!(BlockShape::compute(1, 1), Ok((8, 64, 56)));
        assert_eq!(BlockShape::compute(4, 4), Ok((8, 64, 14)));
        assert_eq!(BlockShape::compute(8, 8), Ok((8, 64, 7)));
        assert_eq!(BlockShape::compute(12, 4), Ok((8, 64, 4)));
        assert_eq!(BlockShape::compute(16, 16), Ok((16, 64, 3)));
        assert_eq!(BlockShape::compute(24, 8), Ok((8, 64, 2)));
        assert_eq!(BlockShape::compute(32, 32), Ok((32, 64, 1)));
        assert_eq!(BlockShape::compute(56, 8), Ok((8, 64, 1)));
        assert_eq!(BlockShape::compute(57, 1), Ok((8, 128, 1)));
        assert_eq!(BlockShape::compute(64, 64), Ok((64, 128, 1)));
        assert_eq!(BlockShape::compute(4096, 8), Ok((8, 4160, 1)));
        assert!(BlockShape::compute(0, 1).is_err());
        assert!(BlockShape::compute(128, 128).is_err());
        assert!(BlockShape::compute(MAX_ELEMENT_SIZE + 1, 8).is_err());
    }

    #[test]
    fn every_shape_fits_its_block() {
        for align in [1usize, 2, 4, 8, 16, 32, 64] {
            for size in (align..=512).step_by(align) {
                let (off, bs, epb) = BlockShape::compute(size, align).unwrap();
                assert!(epb >= 1);
                assert_eq!(off % align, 0);
                assert!(off >= 8);
                assert!(off + epb * size <= bs, "size {size} align {align}");
                assert_eq!(bs % 64, 0);
            }
        }
    }

    #[test]
    fn capacities() {
        let g = for_cap::<u64>(1).unwrap();
        assert_eq!((g.block_count, g.capacity()), (1, 7));
        let g = for_cap::<u64>(8).unwrap();
        assert_eq!((g.block_count, g.capacity()), (2, 14));
        let g = for_cap::<u64>(1000).unwrap();
        assert_eq!((g.block_count, g.capacity()), (256, 1792));
        assert_eq!(g.area_size(), 512 + 256 * 64);
        assert!(matches!(
            for_cap::<u64>(0),
            Err(Error::BadCapacity { reason: "zero", .. })
        ));
        assert!(matches!(
            for_cap::<u64>(usize::MAX),
            Err(Error::BadCapacity {
                reason: "too large",
                ..
            })
        ));
        assert!(matches!(
            for_cap::<()>(4),
            Err(Error::UnsupportedType { .. })
        ));
    }

    #[test]
    fn block_counts() {
        assert!(check_block_count(1).is_ok());
        assert!(check_block_count(MAX_BLOCKS).is_ok());
        assert!(check_block_count(0).is_err());
        assert!(check_block_count(3).is_err());
        assert!(check_block_count(MAX_BLOCKS * 2).is_err());
    }

    #[test]
    fn fingerprints_differ() {
        assert_ne!(type_fingerprint::<u32>(), type_fingerprint::<f32>());
        assert_ne!(type_fingerprint::<[u8; 4]>(), type_fingerprint::<u32>());
        assert_eq!(round_up(9, 8), 16);
        assert_eq!(round_up(64, 64), 64);
    }
}
