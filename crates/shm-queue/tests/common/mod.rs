//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use shm_region::Region;

/// xorshift64*: a tiny deterministic generator, so failures replay from their seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A region of `pages` pages with a `PROT_NONE` guard page mapped right after it, if the
/// kernel places it so (it allocates top-down, so it usually reuses the hole we leave below
/// the guard; regions that land elsewhere are kept until the end so the holes fill up).
/// Returns the region and whether the guard is in place.
pub fn guarded_region(pages: usize) -> (Arc<Region>, bool) {
    let len = pages * 4096;
    let mut misses = Vec::new();
    for _ in 0..64 {
        // SAFETY: a fresh private reservation; nothing else refers to it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len + 4096,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        // SAFETY: unmaps the front of our own reservation; its last page stays as a guard.
        unsafe { libc::munmap(p, len) };
        let region = Region::anonymous(len).unwrap();
        if region.as_ptr().as_ptr().cast::<libc::c_void>() == p {
            return (Arc::new(region), true);
        }
        misses.push(region);
    }
    (Arc::new(Region::anonymous(len).unwrap()), false)
}

/// The payload of message `seq` with `len` bytes: the sequence number in its first 8 bytes
/// (as far as they go), then a pattern derived from it.
pub fn payload(seq: u64, len: usize, out: &mut [u8]) {
    let s = seq.to_le_bytes();
    for (i, b) in out[..len].iter_mut().enumerate() {
        *b = if i < 8 {
            s[i]
        } else {
            (seq as u8).wrapping_add(i as u8).wrapping_mul(31)
        };
    }
}

/// The length of message `seq` for a ring carrying at most `max` bytes.
pub fn length(seq: u64, max: usize) -> usize {
    match seq % 7 {
        0 => 0,
        1 => max,
        2 => 8,
        _ => ((seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as usize) % (max + 1),
    }
}

/// Waits for `child` to exit, at most `limit`; kills it and panics past that.
pub fn exit_code(child: nix::unistd::Pid, limit: std::time::Duration) -> i32 {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let end = std::time::Instant::now() + limit;
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG)).unwrap() {
            WaitStatus::Exited(_, code) => return code,
            WaitStatus::Signaled(_, sig, _) => panic!("child killed by {sig:?}"),
            _ => {}
        }
        if std::time::Instant::now() > end {
            let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(child, None);
            panic!("child still running after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// CPU time a process has used, in nanoseconds (`/proc/PID/schedstat`, first field).
pub fn cpu_ns(pid: nix::unistd::Pid) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap();
    s.split_whitespace().next().unwrap().parse().unwrap()
}

/// Runs `f` in a forked child, which exits with `f`'s return value; returns its pid. The
/// child must only do ring work (no locks another thread of the harness might hold).
/// What `f` captures is moved to the child and never dropped in the parent.
pub fn in_child(f: impl FnOnce() -> i32) -> nix::unistd::Pid {
    // SAFETY: the child runs only `f`, then _exits.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            let code = f();
            // SAFETY: leave without running the harness's destructors.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            // `f` and what it captured belong to the child: dropping the parent's copy would
            // release ring claims and sleeper registrations the child still relies on.
            std::mem::forget(f);
            child
        }
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: comparable between processes, unlike `Instant`.
pub fn mono_ns() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}
