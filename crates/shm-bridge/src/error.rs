//! The error type of shm-bridge.

use nix::errno::Errno;

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

    /// A system call failed.
    #[error("{op} failed: {source}")]
    Sys {
        /// What we were doing.
        op: &'static str,
        /// The errno.
        source: Errno,
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
}
