//! The one error type of this crate.
//!
//! Every variant names the region it is about (`region`, a human-readable description such as
//! ``POSIX shm `/orders` ``), carries the sizes and the errno involved, and its message says
//! what to do about it.

use nix::errno::Errno;

use crate::region::Backend;
use crate::sys;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when creating, opening or using a region.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A name was rejected before any syscall.
    #[error(
        "invalid shared-memory name {name:?}: {reason}; use one path component of printable \
         ASCII (no '/', no spaces), 1 to {max} bytes, for example \"shmlane.orders\""
    )]
    InvalidName {
        /// The name as given.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
        /// The longest accepted name, in bytes.
        max: usize,
    },

    /// A length or offset argument was rejected before any syscall.
    #[error("invalid length {len} for {region}: {reason}")]
    InvalidLength {
        /// The region the length was meant for.
        region: String,
        /// The length as given.
        len: u64,
        /// Why it was rejected and what would be accepted.
        reason: String,
    },

    /// `create` found the name taken (`EEXIST`).
    #[error(
        "{region} already exists; open it instead, or remove it if it is stale \
         (`shmlane rm NAME`, or `rm /dev/shm/NAME` for a POSIX name)"
    )]
    AlreadyExists {
        /// The region.
        region: String,
    },

    /// `open` found nothing under the name (`ENOENT`).
    #[error("{region} does not exist; check the name, or have the creating process start first")]
    NotFound {
        /// The region.
        region: String,
    },

    /// The object belongs to another user and the caller did not opt in.
    #[error(
        "{region} belongs to uid {owner} (we are uid {ours}); refusing to use another user's \
         memory: pass `.allow_foreign_owner(true)` if you trust that user, or remove the object"
    )]
    ForeignOwner {
        /// The region.
        region: String,
        /// The uid that owns the object.
        owner: u32,
        /// Our effective uid.
        ours: u32,
    },

    /// The object is writable by group or others and the caller did not opt in.
    #[error(
        "{region} has mode {mode:04o}, writable by group or others, so any local user could \
         corrupt it; recreate it with mode 0600, or pass `.allow_shared_write(true)`"
    )]
    InsecureMode {
        /// The region.
        region: String,
        /// The permission bits found.
        mode: u32,
    },

    /// Another process truncated the object under the mapping: the pages past its new end
    /// now read as zeros here (the SIGBUS guard mapped them so this process survives), and
    /// nothing read there is data.
    #[error(
        "{region} was truncated by another process while mapped ({mapped} bytes mapped, {} \
         now): its contents are gone; recreate it, and use a sealed memfd (Options::seal) \
         where peers must not be able to shrink it",
        now.map_or_else(|| "unknown size".to_owned(), |n| format!("{n} bytes"))
    )]
    Truncated {
        /// The region's description (backend and name).
        region: String,
        /// Bytes mapped.
        mapped: u64,
        /// The object's length now, if it could be read.
        now: Option<u64>,
    },

    /// The object is smaller than the caller requires.
    #[error(
        "{region} is {actual} bytes but at least {required} are needed; its creator may not \
         have finished setting it up, or it was made by a different program or version"
    )]
    TooSmall {
        /// The region.
        region: String,
        /// Its size in bytes.
        actual: u64,
        /// The size the caller asked for.
        required: u64,
    },

    /// The path is a symbolic link and the caller did not allow following it.
    #[error(
        "{region} is a symbolic link; refusing to follow it (someone may be redirecting us); \
         open the target directly, or pass `.follow_symlinks(true)`"
    )]
    Symlink {
        /// The region.
        region: String,
    },

    /// The object is not a regular file or shared-memory object.
    #[error("{region} is not a regular file (file type bits {file_type:#o}); refusing to map it")]
    NotRegularFile {
        /// The region.
        region: String,
        /// The `S_IFMT` bits found.
        file_type: u32,
    },

    /// The filesystem holding the object is full (`ENOSPC` from `posix_fallocate`).
    #[error(
        "no space for {region} ({len} bytes): {filesystem} has {available} of {total} bytes \
         free; enlarge it (`mount -o remount,size=2G /dev/shm`, or `docker run --shm-size=2g`), \
         free space there, or ask for less"
    )]
    NoSpace {
        /// The region.
        region: String,
        /// The length asked for.
        len: u64,
        /// The filesystem's mount point.
        filesystem: String,
        /// Its total size in bytes (0 if unknown).
        total: u64,
        /// Bytes free for us (0 if unknown).
        available: u64,
    },

    /// Huge pages were asked for but the system cannot provide them.
    #[error(
        "no huge pages for {region} ({len} bytes in {huge_page_size}-byte pages): the system \
         has {free} free of {total} reserved ({source}); reserve some with \
         `echo N > /proc/sys/vm/nr_hugepages` (as root), or create the region without huge pages"
    )]
    HugePagesUnavailable {
        /// The region.
        region: String,
        /// The length asked for (rounded up to whole huge pages).
        len: u64,
        /// The huge page size in bytes.
        huge_page_size: u64,
        /// `HugePages_Free` from `/proc/meminfo`.
        free: u64,
        /// `HugePages_Total` from `/proc/meminfo`.
        total: u64,
        /// The errno the kernel returned.
        source: Errno,
    },

    /// `mlock` failed, usually because of `RLIMIT_MEMLOCK`.
    #[error(
        "cannot lock {len} bytes of {region} in memory ({source}); RLIMIT_MEMLOCK is {soft} \
         bytes (hard limit {hard}); raise it (`ulimit -l`, `LimitMEMLOCK=` for a systemd \
         service, `--ulimit memlock=` for docker) or grant CAP_IPC_LOCK"
    )]
    LockLimit {
        /// The region.
        region: String,
        /// The length we tried to lock.
        len: u64,
        /// The soft limit, in bytes (`u64::MAX` for unlimited).
        soft: u64,
        /// The hard limit, in bytes (`u64::MAX` for unlimited).
        hard: u64,
        /// The errno from `mlock`.
        source: Errno,
    },

    /// The process (`EMFILE`) or the whole system (`ENFILE`) has no file descriptor left.
    #[error(
        "cannot {op} for {region}: {}",
        file_limit_advice(*source, *soft, *hard)
    )]
    FileLimit {
        /// The region.
        region: String,
        /// The operation that needed a descriptor.
        op: &'static str,
        /// `RLIMIT_NOFILE`'s soft limit (`u64::MAX` for unlimited or unknown).
        soft: u64,
        /// `RLIMIT_NOFILE`'s hard limit (`u64::MAX` for unlimited or unknown).
        hard: u64,
        /// `EMFILE` (this process's limit) or `ENFILE` (the system's).
        source: Errno,
    },

    /// An access helper was called with an offset and length outside the region.
    #[error(
        "out-of-bounds access to {region}: offset {offset} + length {len} exceeds its \
         {region_len} bytes"
    )]
    OutOfBounds {
        /// The region.
        region: String,
        /// The offset asked for.
        offset: usize,
        /// The length asked for.
        len: usize,
        /// The region's length.
        region_len: usize,
    },

    /// An atomic helper was called with an offset that is not aligned for the type.
    #[error("misaligned atomic access to {region}: offset {offset} is not a multiple of {align}")]
    Misaligned {
        /// The region.
        region: String,
        /// The offset asked for.
        offset: usize,
        /// The alignment the type needs.
        align: usize,
    },

    /// A memfd lacks the seals the caller requires.
    #[error(
        "{region} is missing seals {missing:#x} (has {present:#x}); the sender must create it \
         with `Options::new().seal(true)` so that it cannot be shrunk under us"
    )]
    MissingSeals {
        /// The region.
        region: String,
        /// The seal bits required but absent.
        missing: i32,
        /// The seal bits present.
        present: i32,
    },

    /// A setting on [`Options`](crate::Options) that the chosen backend cannot honour was
    /// changed from its default; nothing was created or opened.
    #[error(
        "`.{option}(..)` has no effect on {region} (a {backend} region): it applies to \
         {applies_to} only; leave it unset for this backend, or pick one that has it"
    )]
    UnsupportedOption {
        /// The region that was about to be made.
        region: String,
        /// The name of the setting (its builder method).
        option: &'static str,
        /// The backend that cannot honour it.
        backend: Backend,
        /// The backends that do honour it, in words.
        applies_to: &'static str,
    },

    /// A message received over a Unix socket carried no file descriptor.
    #[error("no file descriptor arrived on the Unix socket ({detail}); is the peer sending one with `send_fd`?")]
    NoFdReceived {
        /// What arrived instead.
        detail: String,
    },

    /// Any other failed system call.
    #[error("{op} failed for {region}: {source}")]
    Sys {
        /// The region.
        region: String,
        /// The operation that failed (the syscall and what it was for).
        op: &'static str,
        /// The errno.
        source: Errno,
    },
}

impl Error {
    /// The errno behind this error, if a system call failed.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Sys { source, .. }
            | Error::LockLimit { source, .. }
            | Error::FileLimit { source, .. }
            | Error::HugePagesUnavailable { source, .. } => Some(*source),
            Error::AlreadyExists { .. } => Some(Errno::EEXIST),
            Error::NotFound { .. } => Some(Errno::ENOENT),
            Error::NoSpace { .. } => Some(Errno::ENOSPC),
            _ => None,
        }
    }

    /// A failed system call; running out of file descriptors becomes [`Error::FileLimit`]
    /// with the limit to raise.
    pub(crate) fn sys(region: impl Into<String>, op: &'static str, source: Errno) -> Error {
        if matches!(source, Errno::EMFILE | Errno::ENFILE) {
            let (soft, hard) = crate::sys::nofile_limit();
            return Error::FileLimit {
                region: region.into(),
                op,
                soft,
                hard,
                source,
            };
        }
        Error::Sys {
            region: region.into(),
            op,
            source,
        }
    }

    /// [`Error::HugePagesUnavailable`] for `len` bytes, with the system's huge page figures
    /// from `/proc/meminfo`.
    pub(crate) fn huge_pages_unavailable(
        region: impl Into<String>,
        len: usize,
        source: Errno,
    ) -> Error {
        let info = sys::huge_page_info();
        Error::HugePagesUnavailable {
            region: region.into(),
            len: len as u64,
            huge_page_size: info.size,
            free: info.free,
            total: info.total,
            source,
        }
    }

    /// [`Error::NoSpace`] for `len` bytes on `filesystem`, with its `(total, available)`
    /// bytes (`(0, 0)` if unknown).
    pub(crate) fn no_space(
        region: impl Into<String>,
        len: usize,
        filesystem: &str,
        (total, available): (u64, u64),
    ) -> Error {
        Error::NoSpace {
            region: region.into(),
            len: len as u64,
            filesystem: filesystem.to_string(),
            total,
            available,
        }
    }
}

/// Turns an `io::Error` (from memmap2 or std) into an `Errno`.
pub(crate) fn io_errno(e: &std::io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
}

/// The advice of [`Error::FileLimit`]: which limit ran out and how to raise it.
fn file_limit_advice(source: Errno, soft: u64, hard: u64) -> String {
    let show = |v: u64| {
        if v == u64::MAX {
            "unlimited".to_owned()
        } else {
            v.to_string()
        }
    };
    if source == Errno::ENFILE {
        return format!(
            "the system's open-file table is full ({source}); raise `fs.file-max` \
             (`sysctl -w fs.file-max=N`) or close descriptors in other processes"
        );
    }
    format!(
        "this process has no file descriptor left ({source}); RLIMIT_NOFILE is {} (hard \
         limit {}) and each open channel endpoint or region holds one; raise it (`ulimit -n`, \
         `LimitNOFILE=` for a systemd service, `--ulimit nofile=` for docker, or `setrlimit` \
         up to the hard limit)",
        show(soft),
        show(hard)
    )
}
