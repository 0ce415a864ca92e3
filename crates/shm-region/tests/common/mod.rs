//! Helpers shared by the integration tests: running a closure in a `fork()`ed child with a
//! deadline, unique names, reading a region back, and the checks and mounts of the tests
//! that need root (`root.rs`, which shm-bridge's security tests include too).
#![allow(dead_code)]

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult};
use shm_region::Region;

mod root;
#[allow(unused_imports)] // not every test uses the root helpers
pub use root::*;

/// A name no other test (or test run) uses.
pub fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "shmr-test-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        tag
    )
}

/// Runs `f` in a forked child and returns its exit code (the closure's return value; 101 if
/// it panicked). Kills the child and panics if it has not finished within `deadline`.
pub fn in_child(deadline: Duration, f: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child runs only `f` and then `_exit`s without returning into the test
    // harness; glibc keeps malloc usable in a forked child.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
            // SAFETY: _exit ends the child without running the parent's destructors twice.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            let end = Instant::now() + deadline;
            loop {
                match waitpid(child, Some(WaitPidFlag::WNOHANG)).expect("waitpid") {
                    WaitStatus::Exited(_, code) => return code,
                    WaitStatus::Signaled(_, sig, _) => panic!("child killed by {sig:?}"),
                    _ => {}
                }
                if Instant::now() > end {
                    let _ = kill(child, Signal::SIGKILL);
                    let _ = waitpid(child, None);
                    panic!("child did not finish within {deadline:?}");
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

/// Entries of /dev/shm whose names start with `prefix`.
pub fn shm_entries(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// The `len` bytes of `region` at `offset`.
pub fn read(region: &Region, offset: usize, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    region.read_at(offset, &mut buf).expect("read_at");
    buf
}

pub const DEADLINE: Duration = Duration::from_secs(20);
