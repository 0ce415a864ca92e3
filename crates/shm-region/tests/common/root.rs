//! Helpers for the tests that need root: the check that says why a test skips without it,
//! a segment handed to another user, and a private mount namespace with a small tmpfs for
//! the tests that fill `/dev/shm`. shm-bridge's security tests include this file too
//! (`#[path]`), so both crates set these cases up, and skip them, the same way.
#![allow(dead_code)]

use std::path::Path;

/// The unprivileged user (and group) `nobody`: the "another user" of the ownership tests.
pub const NOBODY: u32 = 65534;

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether this process runs as root; if not, says that the calling test skips, and `why`.
pub fn root_or_skip(why: &str) -> bool {
    let root = is_root();
    if !root {
        eprintln!("skipping: {why}");
    }
    root
}

/// Gives `path` to [`NOBODY`], as if another user had created it (needs root).
pub fn give_to_nobody(path: impl AsRef<Path>) {
    std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).expect("chown to nobody");
}

/// In a forked child with a small `RLIMIT_MEMLOCK`: if it runs as root, becomes [`NOBODY`],
/// dropping `CAP_IPC_LOCK`, which would let it lock past the limit.
pub fn drop_root() {
    if is_root() {
        nix::unistd::setgid(nix::unistd::Gid::from_raw(NOBODY)).expect("setgid(nobody)");
        nix::unistd::setuid(nix::unistd::Uid::from_raw(NOBODY)).expect("setuid(nobody)");
    }
}

/// Moves this (forked, root) process into a mount namespace of its own, whose mounts stay
/// private to it. `false` if the kernel refuses to unshare one (in some containers), after
/// saying that the test skips; panics if it then cannot make the mounts private.
pub fn private_mount_namespace() -> bool {
    use nix::mount::{mount, MsFlags};
    if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS) {
        eprintln!("skipping: unshare(CLONE_NEWNS) failed: {e}");
        return false;
    }
    let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
    mount(None::<&str>, "/", None::<&str>, private, None::<&str>).expect("make / private");
    true
}

/// Mounts a tmpfs of `size` (as the mount option takes it: `256k`) over `dir`, in the
/// private mount namespace.
pub fn mount_tmpfs(dir: impl AsRef<Path>, size: &str) {
    let options = format!("size={size}");
    nix::mount::mount(
        Some("tmpfs"),
        dir.as_ref(),
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some(options.as_str()),
    )
    .expect("mount a tmpfs");
}
