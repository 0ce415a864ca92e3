//! The error type of shm-bridge.

use nix::errno::Errno;

use crate::control::Role;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in shm-bridge.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A region could not be created or opened.
    #[error(transparent)]
    Region(#[from] shm_region::Error),

    /// `fork()` was refused because other threads exist; the child would inherit only the
    /// calling thread, with any locks the others held stuck forever.
    #[error(
        "refusing to fork: this process has {threads} threads, and a forked child could \
         deadlock on a lock another thread held; fork before starting threads, or use \
         `fork_child_unchecked` if the child only touches state no other thread uses"
    )]
    MultiThreaded {
        /// The thread count from `/proc/self/status`.
        threads: usize,
    },

    /// `fork()` was refused because the thread count could not be read, so the process may
    /// have other threads (fail closed rather than fork a process that might deadlock).
    #[error(
        "refusing to fork: could not read the thread count from /proc/self/status (is /proc \
         mounted in this namespace?); mount /proc, or use `fork_child_unchecked` if the \
         child only touches state no other thread uses"
    )]
    ThreadCountUnknown,

    /// A system call failed.
    #[error("{op} failed: {source}")]
    Sys {
        /// What we were doing.
        op: &'static str,
        /// The errno.
        source: Errno,
    },

    /// A ring operation failed (the ring's own error says which check failed).
    #[error("channel `{name}`: {source}")]
    Queue {
        /// The channel's name.
        name: String,
        /// The ring's error.
        source: shm_queue::Error,
    },

    /// A channel name was refused.
    #[error(
        "invalid channel name `{name}`: {reason}; use 1 to 200 characters from \
         A-Z a-z 0-9 . _ -"
    )]
    BadName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A builder setting was refused.
    #[error("channel `{name}`: {reason}")]
    BadConfig {
        /// The channel's name.
        name: String,
        /// What is wrong and what is allowed.
        reason: String,
    },

    /// The channel exists and a live process holds it.
    #[error("channel `{name}` is in use: {role} held by pid {pid}; {detail}")]
    InUse {
        /// The channel's name.
        name: String,
        /// The role that is held (`producer`, `consumer`, or `creator` while it is set up).
        role: String,
        /// The holder's pid as it recorded it (0 if it had not yet).
        pid: u32,
        /// More about the holder, and what to do.
        detail: String,
    },

    /// The segment under the channel's name is not a usable channel.
    #[error(
        "channel `{name}` ({path}) is not a usable shmlane channel: {reason}; inspect it \
         with `shmlane inspect {name}` or remove it with `shmlane rm {name}`"
    )]
    Corrupt {
        /// The channel's name.
        name: String,
        /// Its path under /dev/shm.
        path: String,
        /// What is wrong.
        reason: String,
    },

    /// The channel holds another kind of ring, or another element type.
    #[error(
        "channel `{name}` carries {found}, but {expected} was asked for; connect with the \
         same kind and element type the producer created it with"
    )]
    WrongKind {
        /// The channel's name.
        name: String,
        /// What the caller asked for.
        expected: String,
        /// What the channel holds.
        found: String,
    },

    /// Connecting did not succeed before the deadline.
    #[error(
        "channel `{name}` was not ready after {waited:?}: {last}; start the producer, or \
         allow a longer timeout"
    )]
    ConnectTimeout {
        /// The channel's name.
        name: String,
        /// How long we waited.
        waited: std::time::Duration,
        /// The last reason it was not usable.
        last: String,
    },

    /// The process on the other side died (its lock was released without a clean close).
    /// A receiver gets this only after it drained every message that was fully sent.
    #[error(
        "channel `{name}`: the {role} (pid {pid}) died; messages it had not finished are \
         lost; create the channel again (stale channels are reclaimed) or run `shmlane gc`"
    )]
    PeerGone {
        /// The channel's name.
        name: String,
        /// The dead peer's role.
        role: Role,
        /// Its pid as recorded.
        pid: u32,
    },

    /// The process on the other side is alive but has not updated its heartbeat for
    /// `silent` (stopped, or stuck). Retryable: it may continue.
    #[error(
        "channel `{name}`: the {role} (pid {pid}) is alive but silent for {silent:?} \
         (stopped or hung); retry, or check that process"
    )]
    PeerHung {
        /// The channel's name.
        name: String,
        /// The silent peer's role.
        role: Role,
        /// Its pid as recorded.
        pid: u32,
        /// How long its heartbeat has been silent.
        silent: std::time::Duration,
    },

    /// The other side closed the channel; a receiver gets this after it drained everything.
    #[error("channel `{name}` was closed by the {by}")]
    Closed {
        /// The channel's name.
        name: String,
        /// Who closed it, as far as we know.
        by: String,
    },

    /// The ring is full (sending) or empty (receiving): try again.
    #[error("channel `{name}`: {what}, try again")]
    WouldBlock {
        /// The channel's name (shared with the channel handle: a polling loop's "try again"
        /// allocates nothing).
        name: std::sync::Arc<str>,
        /// `full` or `empty`.
        what: &'static str,
    },

    /// A broadcast subscriber lost messages: the publisher overtook it (a lossy channel)
    /// or evicted it for holding the channel up (a lossless channel that evicts). It carries
    /// on: with the oldest message still there after `Lagged`, with the newest after
    /// `Evicted`.
    #[error(
        "channel `{name}`: this subscriber lost {missed} message(s) ({how}); it carries on \
         with the next one it can read: read faster, or create the channel with a larger \
         capacity"
    )]
    Lost {
        /// The channel's name.
        name: String,
        /// Messages lost.
        missed: u64,
        /// `overtaken` (lossy) or `evicted` (lossless, for holding the publisher up).
        how: &'static str,
    },

    /// A blocking call reached its deadline.
    #[error("channel `{name}`: timed out after {waited:?}")]
    Timeout {
        /// The channel's name.
        name: String,
        /// How long it waited.
        waited: std::time::Duration,
    },

    /// The child process panicked.
    #[error("child process {pid} panicked: {message}")]
    ChildPanicked {
        /// The child's pid.
        pid: i32,
        /// The panic message, as far as it could be recovered.
        message: String,
    },

    /// The child process exited with a non-zero code.
    #[error("child process {pid} exited with code {code}")]
    ChildFailed {
        /// The child's pid.
        pid: i32,
        /// Its exit code.
        code: i32,
    },

    /// The child process was killed by a signal.
    #[error("child process {pid} was killed by signal {signal}")]
    ChildKilled {
        /// The child's pid.
        pid: i32,
        /// The signal's name.
        signal: String,
    },

    /// The child did not finish before the deadline (it has been killed).
    #[error("child process {pid} did not finish within {waited:?}; it was killed")]
    ChildTimeout {
        /// The child's pid.
        pid: i32,
        /// How long we waited.
        waited: std::time::Duration,
    },
}

impl Error {
    pub(crate) fn sys(op: &'static str, source: Errno) -> Error {
        Error::Sys { op, source }
    }

    /// Maps a ring error: full/empty, closed and timeouts get the bridge's own variants.
    pub(crate) fn queue(name: &str, e: shm_queue::Error, waited: std::time::Duration) -> Error {
        match e {
            shm_queue::Error::Full { .. } | shm_queue::Error::Empty { .. } => {
                Error::queue_shared(&std::sync::Arc::from(name), e, waited)
            }
            _ => Error::queue_other(name.to_owned(), e, waited),
        }
    }

    /// [`Error::queue`] with the channel's shared name: "full" and "empty", which polling
    /// loops see all the time, allocate nothing.
    #[inline]
    pub(crate) fn queue_shared(
        name: &std::sync::Arc<str>,
        e: shm_queue::Error,
        waited: std::time::Duration,
    ) -> Error {
        match e {
            shm_queue::Error::Full { .. } => Error::WouldBlock {
                name: name.clone(),
                what: "full",
            },
            shm_queue::Error::Empty { .. } => Error::WouldBlock {
                name: name.clone(),
                what: "empty",
            },
            _ => Error::queue_other(name.to_string(), e, waited),
        }
    }

    /// [`Error::queue`] for everything but full and empty.
    #[cold]
    fn queue_other(name: String, e: shm_queue::Error, waited: std::time::Duration) -> Error {
        match e {
            shm_queue::Error::Closed { .. } => Error::Closed {
                name,
                by: "other side".into(),
            },
            shm_queue::Error::Timeout { .. } => Error::Timeout { name, waited },
            shm_queue::Error::Lagged { missed } => Error::Lost {
                name,
                missed,
                how: "overtaken",
            },
            shm_queue::Error::Evicted { missed } => Error::Lost {
                name,
                missed,
                how: "evicted",
            },
            source => Error::Queue { name, source },
        }
    }

    /// `true` for "not now" errors worth retrying: full, empty, a timeout, a hung peer.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::WouldBlock { .. } | Error::Timeout { .. } | Error::PeerHung { .. }
        )
    }

    /// `true` for [`Error::Lost`]: a broadcast subscriber lost messages and carries on.
    pub fn is_loss(&self) -> bool {
        matches!(self, Error::Lost { .. })
    }

    /// `true` if the other side is gone: it closed the channel or it died.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, Error::Closed { .. } | Error::PeerGone { .. })
    }
}
