//! Security and resource exhaustion at the channel level:
//!
//! - channels are created `0600` with `O_EXCL`;
//! - a name pre-created by another user, or planted as a symlink, is refused (never reused,
//!   never reclaimed, never followed), and tools list it with the reason;
//! - a group- or world-writable channel is refused unless the caller opts in;
//! - a full `/dev/shm` and an `RLIMIT_MEMLOCK` too small for `mlock` are clear errors at
//!   creation, leaving nothing behind (never a `SIGBUS` later).
//!
//! The cases that need root (chown, a private mount namespace, dropping `CAP_IPC_LOCK`)
//! print why they skip otherwise; CI runs as root.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use root::{drop_root, give_to_nobody, mount_tmpfs, private_mount_namespace, root_or_skip};
use shm_bridge::fork::fork_child_unchecked;
use shm_bridge::{inspect, shm_path, ChannelOptions, Error};

// The checks and set-ups of the root-only cases, shared with shm-region's tests.
#[path = "../../shm-region/tests/common/root.rs"]
mod root;

fn name(tag: &str) -> String {
    format!("sec-{}-{tag}", std::process::id())
}

/// Runs `f` in a forked child and returns its exit code (a panic counts as 101).
fn in_child(f: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only makes syscalls and channel handles of its own.
    let kid = unsafe { fork_child_unchecked(f) }.unwrap();
    match kid.wait_timeout(Duration::from_secs(30)) {
        Ok(()) => 0,
        Err(Error::ChildFailed { code, .. }) => code,
        Err(e) => panic!("child: {e}"),
    }
}

#[test]
fn channels_are_private_to_their_owner_by_default() {
    let n = name("mode");
    let _tx = ChannelOptions::new().create::<u64>(&n).unwrap();
    let m = std::fs::metadata(shm_path(&n)).unwrap();
    assert_eq!(m.mode() & 0o777, 0o600);
    assert_eq!(m.uid(), nix::unistd::geteuid().as_raw());

    // A wider mode is applied as asked (fchmod, so the umask does not narrow it), and a
    // group-writable channel is refused by a consumer that did not opt in.
    let n2 = name("groupw");
    let _tx2 = ChannelOptions::new()
        .mode(0o660)
        .create::<u64>(&n2)
        .unwrap();
    assert_eq!(
        std::fs::metadata(shm_path(&n2)).unwrap().mode() & 0o777,
        0o660
    );
    let e = ChannelOptions::new()
        .timeout(Duration::from_millis(100))
        .connect::<u64>(&n2)
        .unwrap_err();
    assert!(matches!(e, Error::Region(_)), "{e:?}");
    assert!(e.to_string().contains("writ"), "{e}");
    ChannelOptions::new()
        .allow_shared_write(true)
        .connect::<u64>(&n2)
        .unwrap();
}

#[test]
fn a_symlink_under_the_prefix_is_never_followed() {
    let n = name("symlink");
    let target = std::env::temp_dir().join(format!("shmlane-sec-target-{}", std::process::id()));
    std::fs::write(&target, b"precious").unwrap();
    std::os::unix::fs::symlink(&target, shm_path(&n)).unwrap();

    let e = ChannelOptions::new().create::<u64>(&n).unwrap_err();
    assert!(matches!(e, Error::Region(_)), "create: {e:?}");
    let e = ChannelOptions::new()
        .timeout(Duration::from_millis(100))
        .connect::<u64>(&n)
        .unwrap_err();
    assert!(matches!(e, Error::Region(_)), "connect: {e:?}");
    let info = inspect::inspect(&n).unwrap();
    assert!(info.problem.is_some(), "{info:?}");
    assert!(!info.is_stale() || info.problem.is_some());
    // gc leaves it alone or removes the link, never the target.
    let _ = inspect::gc();
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    let _ = std::fs::remove_file(shm_path(&n));
    std::fs::remove_file(&target).unwrap();
}

#[test]
fn a_name_owned_by_another_user_is_refused_not_reclaimed() {
    if !root_or_skip("chown to another uid needs root") {
        return;
    }
    let n = name("foreign");
    let path = shm_path(&n);
    std::fs::write(&path, vec![0u8; 8192]).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    give_to_nobody(&path);

    for e in [
        ChannelOptions::new().create::<u64>(&n).unwrap_err(),
        ChannelOptions::new()
            .timeout(Duration::from_millis(100))
            .connect::<u64>(&n)
            .unwrap_err(),
    ] {
        assert!(e.to_string().contains("65534"), "{e}");
    }
    assert!(path.exists(), "never reclaimed");
    let info = inspect::inspect(&n).unwrap();
    assert!(
        info.problem.as_deref().unwrap_or("").contains("65534"),
        "{info:?}"
    );
    let removed = inspect::gc().unwrap();
    assert!(
        !removed.iter().any(|i| i.name == n),
        "gc leaves foreign segments alone"
    );
    assert!(path.exists());
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_full_dev_shm_is_an_error_at_creation() {
    if !root_or_skip("a private mount namespace needs root") {
        return;
    }
    let n = name("full");
    let code = in_child(move || {
        if !private_mount_namespace() {
            return 0;
        }
        mount_tmpfs("/dev/shm", "256k");
        let e = ChannelOptions::new()
            .capacity(1 << 20)
            .create::<u64>(&n)
            .unwrap_err();
        let msg = e.to_string();
        if !matches!(e, Error::Region(shm_region::Error::NoSpace { .. })) {
            eprintln!("expected NoSpace, got {e:?}");
            return 1;
        }
        assert!(msg.contains("/dev/shm"), "{msg}");
        assert_eq!(
            std::fs::read_dir("/dev/shm").unwrap().count(),
            0,
            "nothing left"
        );
        // A channel that fits works, to the last byte of its ring.
        let mut tx = ChannelOptions::new()
            .capacity(1024)
            .create::<u64>(&n)
            .unwrap();
        let mut rx = ChannelOptions::new().connect::<u64>(&n).unwrap();
        for i in 0..1024 {
            tx.try_send(i).unwrap();
        }
        assert_eq!(rx.recv_into(&mut [0u64; 1024]).unwrap(), 1024);
        0
    });
    assert_eq!(code, 0);
}

#[test]
fn mlock_beyond_the_limit_is_an_error_at_creation() {
    let n = name("mlock");
    let code = in_child(move || {
        use nix::sys::resource::{setrlimit, Resource};
        setrlimit(Resource::RLIMIT_MEMLOCK, 64 * 1024, 64 * 1024).unwrap();
        drop_root();
        match ChannelOptions::new()
            .capacity(1 << 16)
            .mlock(true)
            .create::<u64>(&n)
        {
            Err(e @ Error::Region(shm_region::Error::LockLimit { .. })) => {
                assert!(e.to_string().contains("RLIMIT_MEMLOCK"), "{e}");
                assert!(!shm_path(&n).exists(), "nothing left behind");
                0
            }
            other => {
                eprintln!("expected LockLimit, got {other:?}");
                1
            }
        }
    });
    assert_eq!(code, 0);
}

#[test]
fn huge_pages_are_a_hint_that_never_fails_later() {
    // Transparent huge pages for tmpfs are an madvise hint: either creation fails with a
    // clear error, or the channel works like any other.
    let n = name("huge");
    match ChannelOptions::new()
        .capacity(1 << 18)
        .huge_pages(true)
        .prefault(true)
        .create::<u64>(&n)
    {
        Ok(mut tx) => {
            let mut rx = ChannelOptions::new().connect::<u64>(&n).unwrap();
            for i in 0..100_000u64 {
                tx.send(i).unwrap();
                assert_eq!(rx.recv().unwrap(), i);
            }
        }
        Err(e) => assert!(matches!(e, Error::Region(_)), "{e:?}"),
    }
}
