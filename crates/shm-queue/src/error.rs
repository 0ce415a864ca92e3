//! The one error type of this crate.
//!
//! Every variant carries the numbers involved and its message says what to do. Bad input
//! from the caller or garbage written by a peer process is always reported as a value of
//! this type, never as a panic.

/// Everything that can go wrong creating, attaching to or using a ring.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The region is shorter than the ring needs (the header alone, or header plus slots).
    #[error(
        "the region is {len} bytes but the ring needs {need}; make the region at least {need} \
         bytes (the ring type's `required_bytes` computes it)"
    )]
    RegionTooSmall {
        /// Length of the region in bytes.
        len: u64,
        /// Bytes the ring needs.
        need: u64,
    },

    /// The region does not start on the 128-byte boundary the ring header needs.
    #[error(
        "the region starts at {addr:#x}, which is not a multiple of {align}; map rings with \
         shm_region (mappings are page aligned), or start the ring at an aligned offset"
    )]
    Misaligned {
        /// Address of the region's first byte.
        addr: u64,
        /// The alignment needed.
        align: u64,
    },

    /// The region does not start with a shmlane ring header.
    #[error(
        "no shmlane ring here: magic is {found:#018x}, expected {expected:#018x}; attach to \
         the region a ring was created in, or create one first"
    )]
    BadMagic {
        /// The magic word found.
        found: u64,
        /// The magic word of every shmlane ring.
        expected: u64,
    },

    /// The ring was laid out by a different version of this crate.
    #[error(
        "the ring has layout version {found}, this build understands version {expected}; \
         build both processes against the same shm-queue version"
    )]
    VersionMismatch {
        /// Layout version in the header.
        found: u32,
        /// Layout version of this build.
        expected: u32,
    },

    /// The ring is of another kind (for example a byte-message ring, not an SPSC ring).
    #[error(
        "the ring is of kind {found}, expected kind {expected} (1 = spsc, 2 = bytes, 3 = mpmc, 4 = broadcast); \
         attach with the ring type it was created as"
    )]
    KindMismatch {
        /// Ring kind in the header.
        found: u32,
        /// Ring kind the caller asked for.
        expected: u32,
    },

    /// The ring carries another element type than the caller's `T`.
    #[error(
        "the ring holds elements of size {found_size}, align {found_align}, type hash \
         {found_hash:#018x}, but `{type_name}` has size {expected_size}, align {expected_align}, \
         hash {expected_hash:#018x}; use the same element type (built with the same compiler) \
         in both processes, or give both the same explicit element name"
    )]
    TypeMismatch {
        /// The caller's element name (`core::any::type_name` of a Rust type by default).
        type_name: std::borrow::Cow<'static, str>,
        /// Size of the caller's type.
        expected_size: u32,
        /// Alignment of the caller's type.
        expected_align: u32,
        /// Fingerprint of the caller's type.
        expected_hash: u64,
        /// Element size in the header.
        found_size: u64,
        /// Element alignment in the header.
        found_align: u64,
        /// Element-type fingerprint in the header.
        found_hash: u64,
    },

    /// The element type cannot be stored in a ring.
    #[error(
        "`{type_name}` (size {size}, align {align}) cannot be a ring element: {reason}; wrap it \
         in a type with size 1..=2^30 and alignment at most 64"
    )]
    UnsupportedType {
        /// The element's name (`core::any::type_name` of a Rust type by default).
        type_name: std::borrow::Cow<'static, str>,
        /// Its size.
        size: usize,
        /// Its alignment.
        align: usize,
        /// Why it is refused.
        reason: &'static str,
    },

    /// The requested or recorded capacity is unusable.
    #[error(
        "capacity of {blocks} blocks is invalid: {reason} (at most {max_blocks} blocks); \
         ask for a capacity between 1 and the maximum"
    )]
    BadCapacity {
        /// Number of blocks requested or found in the header.
        blocks: u64,
        /// The largest number of blocks a ring may have.
        max_blocks: u64,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A layout field of the header disagrees with what the element type and block count
    /// imply.
    #[error(
        "header field `{field}` is {found}, expected {expected}; the region holds a ring built \
         differently (or was damaged): recreate it"
    )]
    LayoutMismatch {
        /// Name of the header field.
        field: &'static str,
        /// Value found.
        found: u64,
        /// Value expected.
        expected: u64,
    },

    /// The creator has not finished initialising the ring (or died while doing so).
    #[error(
        "the ring is not ready (ready word {ready:#018x}); retry until the creator has \
         finished, or recreate it with `reinitialize` if the creator died"
    )]
    NotReady {
        /// The ready word found.
        ready: u64,
    },

    /// `create` found a ring (or a creation in progress) already in the region.
    #[error(
        "the region already holds a ring (ready word {ready:#018x}); attach to it instead, or \
         create with the (unsafe) `reinitialize(true)` option if you are sure no process is using it"
    )]
    AlreadyInitialized {
        /// The ready word found.
        ready: u64,
    },

    /// Another handle holds the producer side.
    #[error(
        "the producer side is already taken (claim {holder:#018x}, pid {}); drop the other \
         producer, or force-release the claim once its process is known to be dead",
        holder >> 32
    )]
    ProducerClaimed {
        /// The claim word: the holder's pid in the high 32 bits, a counter in the low.
        holder: u64,
    },

    /// Another handle holds the consumer side.
    #[error(
        "the consumer side is already taken (claim {holder:#018x}, pid {}); drop the other \
         consumer, or force-release the claim once its process is known to be dead",
        holder >> 32
    )]
    ConsumerClaimed {
        /// The claim word: the holder's pid in the high 32 bits, a counter in the low.
        holder: u64,
    },

    /// Not enough free slots for the requested write.
    #[error("the ring is full: {requested} slots requested, {available} free; retry after the consumer pops")]
    Full {
        /// Slots asked for.
        requested: usize,
        /// Slots free.
        available: usize,
    },

    /// Not enough elements for the requested read.
    #[error("the ring is empty: {requested} elements requested, {available} ready; retry after the producer pushes")]
    Empty {
        /// Elements asked for.
        requested: usize,
        /// Elements ready.
        available: usize,
    },

    /// An index or count passed to a chunk is past its end.
    #[error("index or count {index} is out of range for a chunk of {len} elements")]
    OutOfRange {
        /// The index or count given.
        index: usize,
        /// The chunk length.
        len: usize,
    },

    /// A byte ring's data area size is unusable.
    #[error(
        "byte ring capacity {capacity} is invalid: {reason}; ask for 64 bytes to 1 TiB (it is \
         rounded up to a power of two)"
    )]
    BadByteCapacity {
        /// The capacity asked for or found in the header.
        capacity: u64,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A byte ring's maximum message size is unusable.
    #[error(
        "maximum message size {max} is invalid for a byte ring of {capacity} bytes: it must be \
         1 to {limit}; ask for a bigger ring (a record may take at most half of it)"
    )]
    BadMaxMessage {
        /// The maximum asked for or found in the header.
        max: u64,
        /// The largest allowed for this capacity.
        limit: u64,
        /// The ring's data area size.
        capacity: u64,
    },

    /// A message is larger than the ring's maximum message size.
    #[error(
        "message of {len} bytes exceeds this ring's maximum of {max}; split it, or create the \
         ring with a larger maximum"
    )]
    MessageTooLarge {
        /// The message length.
        len: usize,
        /// The ring's maximum.
        max: usize,
    },

    /// The caller's buffer is too small for the next message (which stays in the ring).
    #[error("the next message is {needed} bytes but the buffer holds {len}; pass a buffer of at least the ring's maximum message size")]
    BufferTooSmall {
        /// The message length.
        needed: usize,
        /// The buffer length.
        len: usize,
    },

    /// A byte buffer handed to a ring of [`Raw`](crate::Raw) elements is not a whole number
    /// of elements (to send), or shorter than one (to receive); nothing was moved.
    #[error("a buffer of {len} bytes is not a whole number of {elem_size}-byte elements (a receive buffer must hold at least one); pass a multiple of the element size")]
    NotWholeElements {
        /// The buffer length.
        len: usize,
        /// The ring's element size.
        elem_size: usize,
    },

    /// A readiness file descriptor could not be made or used.
    #[error("{op} failed for the readiness descriptor (errno {errno}); check the process's descriptor limit (ulimit -n)")]
    ReadinessFd {
        /// The call that failed.
        op: &'static str,
        /// Its errno.
        errno: i32,
    },

    /// A blocking call reached its deadline.
    #[error("timed out after {waited:?} waiting for {what}; the peer may be slow, hung or gone: retry, or check it")]
    Timeout {
        /// What was awaited (for example "data" or "space").
        what: &'static str,
        /// How long the call waited.
        waited: std::time::Duration,
    },

    /// The ring was closed and what was awaited can never come.
    #[error("the ring is closed (waiting for {what}); everything sent before closing has been delivered")]
    Closed {
        /// What was awaited.
        what: &'static str,
    },

    /// Another process truncated the shared object under the ring (see
    /// [`TryError::Truncated`]).
    #[error("the ring's shared object was truncated by another process; its contents are gone: recreate the ring")]
    Truncated,

    /// A word read from shared memory is impossible: the peer is broken or hostile, or the
    /// memory was overwritten.
    #[error(
        "shared ring state is corrupted: {what} is {value}, which is impossible here; the peer \
         process is broken or the region was overwritten, recreate the ring"
    )]
    Corrupted {
        /// Which word ([`Word::name`]).
        what: &'static str,
        /// The value read.
        value: u64,
    },

    /// An MPMC ring's owner table has no free entry for a new handle.
    #[error(
        "all {entries} owner entries of the MPMC ring are taken; drop handles you no longer \
         use, call `reclaim_dead_owners` with your liveness check to free the entries of \
         dead processes, or create the ring with more owner entries"
    )]
    OwnerTableFull {
        /// Number of entries in the table.
        entries: u64,
    },

    /// The requested or recorded number of MPMC owner-table entries is unusable.
    #[error(
        "an MPMC owner table of {owners} entries is invalid: ask for 1 to {max} (or recreate \
         the ring if this number was read from its header)"
    )]
    BadOwnerCount {
        /// Entries asked for or found in the header.
        owners: u64,
        /// The largest table allowed.
        max: u64,
    },

    /// An owner token of 0, which marks a free owner entry.
    #[error("owner token 0 is reserved for free owner entries; pass a non-zero token")]
    InvalidOwnerToken,

    /// A lossy broadcast subscriber was overtaken by the publisher: `missed` messages were
    /// overwritten before it read them. It resumes at the oldest message still intact.
    #[error(
        "this subscriber fell a whole ring behind the publisher and lost {missed} message(s); \
         it carries on with the oldest one still intact: read faster, or create the channel \
         with a larger capacity or in lossless mode"
    )]
    Lagged {
        /// Messages lost.
        missed: u64,
    },

    /// A lossless broadcast subscriber gated the publisher for longer than the ring's
    /// eviction time and was evicted: `missed` messages were published and not delivered to
    /// it. It carries on with the newest message.
    #[error(
        "this subscriber held the publisher up past the ring's eviction time and was \
         evicted, losing {missed} message(s); it carries on with the newest: read faster, \
         or create the ring with a larger capacity or a longer eviction time"
    )]
    Evicted {
        /// Messages lost.
        missed: u64,
    },

    /// A broadcast ring's subscriber table has no free entry.
    #[error(
        "all {entries} subscriber entries of the broadcast ring are taken; drop subscribers \
         you no longer use, reclaim those of dead processes (`reclaim_dead_subscribers`), or \
         create the ring with more subscribers"
    )]
    SubscribersFull {
        /// Entries in the table.
        entries: u64,
    },

    /// A broadcast subscriber entry index outside the ring's table.
    #[error(
        "broadcast subscriber entry {index} does not exist: the ring's table has {entries} \
         entries; pass the index() of a subscriber of this ring"
    )]
    NoSuchSubscriber {
        /// The index given.
        index: u64,
        /// Entries in the table.
        entries: u64,
    },

    /// The requested or recorded number of broadcast subscribers is unusable.
    #[error(
        "a broadcast ring of {subscribers} subscribers is invalid: ask for 1 to {max} (or \
         recreate the ring if this number was read from its header)"
    )]
    BadSubscriberCount {
        /// Subscribers asked for or found in the header.
        subscribers: u64,
        /// The largest number allowed.
        max: u64,
    },

    /// A broadcast ring's delivery policy is unusable.
    #[error("invalid broadcast policy: {reason}; {hint}")]
    BadPolicy {
        /// What is wrong.
        reason: &'static str,
        /// What to do.
        hint: &'static str,
    },

    /// A peer's liveness check declared this handle's process dead and recovered some of
    /// its claims, while it was in fact still running.
    #[error(
        "{revoked} claimed element(s) were recovered by a peer that judged this process dead \
         ({completed} completed normally): pushed elements were not delivered, popped ones \
         may be torn and were dropped; resend them if needed, and fix the liveness check or \
         the patience, which declared a live process dead"
    )]
    ClaimRevoked {
        /// Elements whose claim was recovered by a peer.
        revoked: usize,
        /// Elements of the same call that completed (pushed, or popped to the front of the
        /// caller's buffer).
        completed: usize,
    },
}

impl Error {
    /// `true` for [`Error::Lagged`] and [`Error::Evicted`]: a broadcast subscriber lost
    /// messages and carries on after them (the count is in the error).
    pub fn is_loss(&self) -> bool {
        matches!(self, Error::Lagged { .. } | Error::Evicted { .. })
    }

    /// `true` for [`Error::Full`] and [`Error::Empty`]: the ring is fine and the same call
    /// may succeed later (after the peer pops or pushes). Every other error is not cured by
    /// retrying.
    ///
    /// ```
    /// use shm_queue::Error;
    /// assert!(Error::Empty { requested: 1, available: 0 }.is_retryable());
    /// assert!(!Error::NotReady { ready: 0 }.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Full { .. } | Error::Empty { .. })
    }
}

/// Shorthand for [`TryError::Corrupted`] (which converts to [`Error::Corrupted`]).
#[cold]
pub(crate) fn corrupted(what: Word, value: u64) -> TryError {
    TryError::Corrupted { what, value }
}

/// The shared word that held an impossible value, in [`TryError::Corrupted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Word {
    /// An SPSC block's published-position word.
    BlockPosition,
    /// The consumer's position (`head`).
    Head,
    /// The producer's position (`tail`).
    Tail,
    /// A byte ring's `head` that is not a multiple of 8.
    HeadAlignment,
    /// A byte ring's `tail` that is not a multiple of 8.
    TailAlignment,
    /// An MPMC slot's sequence word.
    SlotSequence,
    /// A byte ring's record header tag.
    RecordTag,
    /// A byte ring's record kind.
    RecordKind,
    /// A byte ring's record length.
    RecordLength,
    /// A byte ring's padding record length.
    PaddingLength,
    /// A byte ring's padding record at the start of the area (it can only end the area).
    PaddingAtZero,
    /// A committed byte record that reaches past the free space.
    CommittedRecord,
    /// A broadcast ring's horizon (how far the publisher may be writing).
    Horizon,
}

impl Word {
    /// What the word is, in words.
    pub fn name(self) -> &'static str {
        match self {
            Word::BlockPosition => "block published position",
            Word::Head => "consumer position (head)",
            Word::Tail => "producer position (tail)",
            Word::HeadAlignment => "consumer position (head), not 8-aligned",
            Word::TailAlignment => "producer position (tail), not 8-aligned",
            Word::SlotSequence => "slot sequence",
            Word::RecordTag => "record header tag",
            Word::RecordKind => "record kind",
            Word::RecordLength => "record length",
            Word::PaddingLength => "padding record length",
            Word::PaddingAtZero => "padding record at offset 0",
            Word::CommittedRecord => "committed record beyond the free space",
            Word::Horizon => "broadcast horizon",
        }
    }
}

impl core::fmt::Display for Word {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of a ring call that does not wait (`try_push`, `try_pop`, `try_send`,
/// `try_recv`, `claim`, `read`, the partial-slice and chunk calls): small and `Copy` (24
/// bytes, a tag and two words), so a hot loop that meets "full" or "empty" moves no more
/// than it must. Calls that wait, create or attach return the rich [`Error`], and a
/// `TryError` converts into it with `?`.
///
/// ```
/// use shm_queue::{spsc::Ring, TryError};
/// use shm_region::Region;
///
/// let (mut tx, mut rx) = Ring::<u64>::create(Region::anonymous(Ring::<u64>::required_bytes(7)?)?, 7)?.split()?;
/// assert_eq!(rx.try_pop(), Err(TryError::Empty { requested: 1, available: 0 }));
/// tx.try_push(1)?;
/// assert_eq!(rx.try_pop()?, 1);
/// assert!(std::mem::size_of::<TryError>() <= 24);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TryError {
    /// Not enough free slots (or bytes) for the write; nothing was written.
    #[error(
        "the ring is full: {requested} requested, {available} free; retry after the consumer pops"
    )]
    Full {
        /// Slots (or record bytes) asked for.
        requested: usize,
        /// Slots (or bytes) free.
        available: usize,
    },

    /// Not enough elements for the read; nothing was read.
    #[error("the ring is empty: {requested} requested, {available} ready; retry after the producer pushes")]
    Empty {
        /// Elements asked for.
        requested: usize,
        /// Elements ready.
        available: usize,
    },

    /// An index or count passed to a chunk is past its end.
    #[error("index or count {index} is out of range for a chunk of {len} elements")]
    OutOfRange {
        /// The index or count given.
        index: usize,
        /// The chunk length.
        len: usize,
    },

    /// A message is larger than the ring's maximum message size.
    #[error("message of {len} bytes exceeds this ring's maximum of {max}; split it, or create the ring with a larger maximum")]
    MessageTooLarge {
        /// The message length.
        len: usize,
        /// The ring's maximum.
        max: usize,
    },

    /// The caller's buffer is too small for the next message (which stays in the ring).
    #[error("the next message is {needed} bytes but the buffer holds {len}; pass a buffer of at least the ring's maximum message size")]
    BufferTooSmall {
        /// The message length.
        needed: usize,
        /// The buffer length.
        len: usize,
    },

    /// A byte buffer handed to a ring of [`Raw`](crate::Raw) elements is not a whole number
    /// of elements (to send), or shorter than one (to receive); nothing was moved.
    #[error("a buffer of {len} bytes is not a whole number of {elem_size}-byte elements (a receive buffer must hold at least one); pass a multiple of the element size")]
    NotWholeElements {
        /// The buffer length.
        len: usize,
        /// The ring's element size.
        elem_size: usize,
    },

    /// An MPMC ring's owner table has no free entry for this handle.
    #[error("all {entries} owner entries of the MPMC ring are taken; drop unused handles or reclaim dead owners")]
    OwnerTableFull {
        /// Number of entries in the table.
        entries: u64,
    },

    /// A peer judged this process dead and recovered some of this call's MPMC claims.
    #[error("{revoked} claimed element(s) were recovered by a peer that judged this process dead ({completed} completed normally)")]
    ClaimRevoked {
        /// Elements whose claim was recovered by a peer.
        revoked: usize,
        /// Elements of the same call that completed.
        completed: usize,
    },

    /// A lossy broadcast subscriber was overtaken: `missed` messages were overwritten
    /// before it read them; the next call reads the oldest one still intact.
    #[error("this subscriber fell a ring behind and lost {missed} message(s); it carries on with the oldest intact one")]
    Lagged {
        /// Messages lost.
        missed: u64,
    },

    /// A lossless broadcast subscriber was evicted for holding the publisher up: `missed`
    /// messages were not delivered to it; the next call reads the newest.
    #[error("this subscriber was evicted for holding the publisher up and lost {missed} message(s); it carries on with the newest")]
    Evicted {
        /// Messages lost.
        missed: u64,
    },

    /// A broadcast ring's subscriber table has no free entry.
    #[error("all {entries} subscriber entries of the broadcast ring are taken; drop unused subscribers or reclaim dead ones")]
    SubscribersFull {
        /// Entries in the table.
        entries: u64,
    },

    /// Another process truncated the shared object under the ring: the memory past its new
    /// end reads as zeros here (the region's SIGBUS guard kept this process alive), so the
    /// call did nothing with it. The region's `check_truncated` gives the sizes.
    #[error("the ring's shared object was truncated by another process; its contents are gone: recreate the ring")]
    Truncated,

    /// A word read from shared memory is impossible.
    #[error("shared ring state is corrupted: {what} is {value}, which is impossible here; the peer process is broken or the region was overwritten, recreate the ring")]
    Corrupted {
        /// Which word.
        what: Word,
        /// The value read.
        value: u64,
    },
}

impl TryError {
    /// `true` for [`TryError::Full`] and [`TryError::Empty`]: the ring is fine and the same
    /// call may succeed later.
    #[inline]
    pub fn is_retryable(&self) -> bool {
        matches!(self, TryError::Full { .. } | TryError::Empty { .. })
    }

    /// `true` for [`TryError::Lagged`] and [`TryError::Evicted`]: a broadcast subscriber
    /// lost messages and carries on after them.
    #[inline]
    pub fn is_loss(&self) -> bool {
        matches!(self, TryError::Lagged { .. } | TryError::Evicted { .. })
    }
}

impl From<TryError> for Error {
    #[cold]
    fn from(e: TryError) -> Self {
        match e {
            TryError::Full {
                requested,
                available,
            } => Error::Full {
                requested,
                available,
            },
            TryError::Empty {
                requested,
                available,
            } => Error::Empty {
                requested,
                available,
            },
            TryError::OutOfRange { index, len } => Error::OutOfRange { index, len },
            TryError::MessageTooLarge { len, max } => Error::MessageTooLarge { len, max },
            TryError::BufferTooSmall { needed, len } => Error::BufferTooSmall { needed, len },
            TryError::NotWholeElements { len, elem_size } => {
                Error::NotWholeElements { len, elem_size }
            }
            TryError::OwnerTableFull { entries } => Error::OwnerTableFull { entries },
            TryError::ClaimRevoked { revoked, completed } => {
                Error::ClaimRevoked { revoked, completed }
            }
            TryError::Lagged { missed } => Error::Lagged { missed },
            TryError::Evicted { missed } => Error::Evicted { missed },
            TryError::SubscribersFull { entries } => Error::SubscribersFull { entries },
            TryError::Truncated => Error::Truncated,
            TryError::Corrupted { what, value } => Error::Corrupted {
                what: what.name(),
                value,
            },
        }
    }
}
