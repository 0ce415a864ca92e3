//! Fork helpers: run a closure in a `fork()`ed child that shares the parent's anonymous or
//! memfd regions, and learn how it ended (its exit code, or its panic message as an error).
//!
//! A forked child has only the thread that called `fork()`. If other threads held locks
//! (the allocator's, stdout's, a mutex of yours), the child may deadlock on them, so
//! [`fork_child`] refuses to fork a multi-threaded process. [`fork_child_unchecked`] skips
//! the check for callers who know the child only uses state no other thread touches.
//!
//! [`run_pair`] is the usual shape: a producer closure in the child and a consumer closure
//! here (or the other way round) over a region made before the fork, with the child's
//! exit status or panic folded into the result.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use crate::error::{Error, Result};

/// Exit code a child uses to report a panic (the panic message travels over a pipe).
const PANIC_CODE: i32 = 101;

/// A running child process made by [`fork_child`].
#[derive(Debug)]
pub struct Child {
    pid: Pid,
    panic_pipe: Option<OwnedFd>,
    reaped: bool,
}

impl Child {
    /// The child's process id.
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// Waits for the child to exit, without limit.
    ///
    /// # Errors
    ///
    /// [`Error::ChildPanicked`], [`Error::ChildFailed`], [`Error::ChildKilled`], or
    /// [`Error::Sys`] if `waitpid` fails.
    pub fn wait(self) -> Result<()> {
        self.wait_deadline(None)
    }

    /// Waits up to `limit` for the child to exit; past that, kills it (`SIGKILL`) and
    /// returns [`Error::ChildTimeout`].
    ///
    /// # Errors
    ///
    /// As [`Child::wait`], plus [`Error::ChildTimeout`].
    pub fn wait_timeout(self, limit: Duration) -> Result<()> {
        self.wait_deadline(Some(limit))
    }

    /// Sends `SIGKILL` to the child and reaps it.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] if the signal cannot be sent.
    pub fn kill(mut self) -> Result<()> {
        kill(self.pid, Signal::SIGKILL).map_err(|e| Error::sys("kill(SIGKILL)", e))?;
        let _ = waitpid(self.pid, None);
        self.reaped = true;
        Ok(())
    }

    fn wait_deadline(mut self, limit: Option<Duration>) -> Result<()> {
        let start = Instant::now();
        let mut nap = Duration::from_micros(50);
        let status = loop {
            let flags = if limit.is_some() {
                Some(WaitPidFlag::WNOHANG)
            } else {
                None
            };
            match waitpid(self.pid, flags) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => break s,
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(Error::sys("waitpid", e)),
            }
            if let Some(limit) = limit {
                if start.elapsed() >= limit {
                    let _ = kill(self.pid, Signal::SIGKILL);
                    let _ = waitpid(self.pid, None);
                    self.reaped = true;
                    return Err(Error::ChildTimeout {
                        pid: self.pid.as_raw(),
                        waited: limit,
                    });
                }
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(5));
            }
        };
        self.reaped = true;
        let pid = self.pid.as_raw();
        match status {
            WaitStatus::Exited(_, 0) => Ok(()),
            WaitStatus::Exited(_, PANIC_CODE) => Err(Error::ChildPanicked {
                pid,
                message: self.panic_message(),
            }),
            WaitStatus::Exited(_, code) => Err(Error::ChildFailed { pid, code }),
            WaitStatus::Signaled(_, sig, _) => Err(Error::ChildKilled {
                pid,
                signal: sig.as_str().to_string(),
            }),
            _ => Err(Error::ChildFailed { pid, code: -1 }),
        }
    }

    fn panic_message(&mut self) -> String {
        let Some(fd) = self.panic_pipe.take() else {
            return "(no message)".into();
        };
        let mut text = String::new();
        let _ = std::fs::File::from(fd).take(4096).read_to_string(&mut text);
        if text.is_empty() {
            "(no message)".into()
        } else {
            text
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            // An unwaited child would linger as a zombie; make sure it is gone.
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = waitpid(self.pid, None);
        }
    }
}

/// The number of threads in this process, from `/proc/self/status`, or `None` when that
/// file cannot be read or parsed (no `/proc` in this mount namespace, say).
pub fn thread_count() -> Option<usize> {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
}

/// Runs `f` in a forked child and returns a handle to wait on. The child exits with `f`'s
/// return value as its code; if `f` panics, [`Child::wait`] returns
/// [`Error::ChildPanicked`] with the message.
///
/// The child shares every `MAP_SHARED` mapping of the parent (anonymous and memfd regions,
/// named ones too) and has a copy of everything else.
///
/// `f` and everything it captures belong to the child: the parent never drops its copy (it
/// is forgotten, not destroyed), because destructors that touch shared memory, such as a
/// ring handle releasing its claim, must run once, in the process that owns the handle.
/// Keep what the parent needs outside the closure, or clone it before moving it in.
///
/// # Errors
///
/// [`Error::MultiThreaded`] if this process has more than one thread,
/// [`Error::ThreadCountUnknown`] if `/proc/self/status` cannot tell, [`Error::Sys`] if
/// `fork` or `pipe` fails.
///
/// # Example
///
/// ```
/// use shm_region::Region;
///
/// let region = Region::anonymous(4096)?;
/// # if shm_bridge::fork::thread_count() != Some(1) { return Ok(()); } // doctest harness threads
/// let child = shm_bridge::fork::fork_child(|| {
///     region.write_at(0, b"hi").map(|_| 0).unwrap_or(1)
/// })?;
/// child.wait()?;
/// let mut buf = [0u8; 2];
/// region.read_at(0, &mut buf)?;
/// assert_eq!(&buf, b"hi");
/// # Ok::<(), shm_bridge::Error>(())
/// ```
pub fn fork_child<F: FnOnce() -> i32>(f: F) -> Result<Child> {
    match thread_count() {
        Some(1) => {}
        Some(threads) => return Err(Error::MultiThreaded { threads }),
        None => return Err(Error::ThreadCountUnknown),
    }
    // SAFETY: the process is single-threaded, so the child inherits no lock held by
    // another thread.
    unsafe { fork_child_unchecked(f) }
}

/// [`fork_child`] without the single-thread check.
///
/// # Safety
///
/// Other threads may hold locks at the moment of the fork; the caller guarantees that `f`
/// does not need any lock (or other state) that another thread of this process may hold,
/// for example because `f` only reads and writes shared regions and calls no allocator-free
/// code paths that lock. glibc's allocator stays usable in a forked child.
///
/// # Errors
///
/// [`Error::Sys`] if `fork` or `pipe` fails.
pub unsafe fn fork_child_unchecked<F: FnOnce() -> i32>(f: F) -> Result<Child> {
    let (read_end, write_end) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe2", e))?;
    // SAFETY: the caller vouches for the threads; the child below runs `f` and then calls
    // `_exit`, never returning into the caller's stack frames.
    match unsafe { fork() }.map_err(|e| Error::sys("fork", e))? {
        ForkResult::Child => {
            drop(read_end);
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let code = match outcome {
                Ok(code) if code == PANIC_CODE => PANIC_CODE + 1,
                Ok(code) => code,
                Err(payload) => {
                    let msg = payload
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_string())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "(non-string panic payload)".into());
                    let _ = nix::unistd::write(&write_end, msg.as_bytes());
                    PANIC_CODE
                }
            };
            // SAFETY: _exit ends the child at once, without running destructors that belong
            // to the parent's copy of the state.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            // The closure and what it captured now belong to the child. Dropping the
            // parent's copy would run their destructors twice, once per process: a ring
            // handle moved into the child would release its claim (and its sleeper
            // registration) in shared memory while the child still uses it.
            std::mem::forget(f);
            drop(write_end);
            debug_assert!(read_end.as_raw_fd() >= 0);
            Ok(Child {
                pid: child,
                panic_pipe: Some(read_end),
                reaped: false,
            })
        }
    }
}

/// Runs `child` in a forked process and `parent` in this one, both over `region` (an
/// anonymous or memfd region, shared across the fork), then waits for the child and returns
/// `parent`'s result.
///
/// The child's outcome is part of the result: a non-zero exit code is
/// [`Error::ChildFailed`], a panic [`Error::ChildPanicked`] with its message, a signal
/// [`Error::ChildKilled`]; past `limit` the child is killed and the result is
/// [`Error::ChildTimeout`].
///
/// # Errors
///
/// As [`fork_child`] (including [`Error::MultiThreaded`]), and the child's outcome above.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use shm_queue::spsc::Ring;
/// use shm_region::Region;
///
/// # if shm_bridge::fork::thread_count() != Some(1) { return Ok(()); } // doctest harness threads
/// let region = Region::anonymous(Ring::<u64>::required_bytes(1024)?)?;
/// let ring = Ring::<u64>::create(region, 1024)?;
/// let (mut tx, mut rx) = ring.split()?;
/// let sum = shm_bridge::fork::run_pair(
///     move || (0..100u64).try_for_each(|i| tx.push_blocking(i, None)).map_or(1, |_| 0),
///     move || (0..100).map(|_| rx.pop_blocking(None).unwrap_or(0)).sum::<u64>(),
///     Some(Duration::from_secs(10)),
/// )?;
/// assert_eq!(sum, 4950);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn run_pair<C, P, R>(child: C, parent: P, limit: Option<Duration>) -> Result<R>
where
    C: FnOnce() -> i32,
    P: FnOnce() -> R,
{
    let kid = fork_child(child)?;
    finish_pair(kid, parent, limit)
}

/// [`run_pair`] without the single-thread check.
///
/// # Safety
///
/// As [`fork_child_unchecked`]: `child` must not need any lock another thread of this
/// process may hold at the moment of the fork.
///
/// # Errors
///
/// As [`run_pair`], except [`Error::MultiThreaded`].
pub unsafe fn run_pair_unchecked<C, P, R>(child: C, parent: P, limit: Option<Duration>) -> Result<R>
where
    C: FnOnce() -> i32,
    P: FnOnce() -> R,
{
    // SAFETY: the caller upholds fork_child_unchecked's contract for `child`.
    let kid = unsafe { fork_child_unchecked(child) }?;
    finish_pair(kid, parent, limit)
}

fn finish_pair<P: FnOnce() -> R, R>(kid: Child, parent: P, limit: Option<Duration>) -> Result<R> {
    // If `parent` panics, `kid` drops here and its Drop reaps (or kills) the child.
    let out = parent();
    match limit {
        Some(l) => kid.wait_timeout(l)?,
        None => kid.wait()?,
    }
    Ok(out)
}
