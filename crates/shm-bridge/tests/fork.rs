//! The fork helpers: exit codes, panics with their message, signals, deadlines, and the
//! refusal to fork a multi-threaded process.

use std::time::{Duration, Instant};

use shm_bridge::fork::{fork_child, fork_child_unchecked, thread_count};
use shm_bridge::Error;
use shm_region::Region;

/// The test harness runs tests on their own threads, so the checked helper must refuse.
#[test]
fn refuses_a_multi_threaded_process() {
    let _extra = std::thread::spawn(|| std::thread::sleep(Duration::from_millis(200)));
    assert!(thread_count().is_some_and(|n| n > 1));
    match fork_child(|| 0) {
        Err(e @ Error::MultiThreaded { threads }) => {
            assert!(threads > 1);
            assert!(
                e.to_string().contains("fork before starting threads"),
                "{e}"
            );
        }
        other => panic!("expected MultiThreaded, got {other:?}"),
    }
}

#[test]
fn child_shares_the_region_and_exits_zero() {
    let region = Region::anonymous(4096).unwrap();
    // SAFETY: the child only writes the shared region and returns.
    let child =
        unsafe { fork_child_unchecked(|| region.write_at(0, b"child").map_or(1, |_| 0)) }.unwrap();
    assert!(child.pid() > 0);
    child.wait_timeout(Duration::from_secs(10)).unwrap();
    let mut buf = [0u8; 5];
    region.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"child");
}

#[test]
fn exit_codes_panics_and_signals_are_reported() {
    // SAFETY: the child only returns.
    let c = unsafe { fork_child_unchecked(|| 7) }.unwrap();
    let pid = c.pid();
    match c.wait() {
        Err(Error::ChildFailed { pid: p, code: 7 }) => assert_eq!(p, pid),
        other => panic!("expected ChildFailed(7), got {other:?}"),
    }
    // SAFETY: the child only panics.
    let c = unsafe { fork_child_unchecked(|| panic!("boom {}", 42)) }.unwrap();
    match c.wait() {
        Err(Error::ChildPanicked { message, .. }) => {
            assert!(message.contains("boom 42"), "{message}")
        }
        other => panic!("expected ChildPanicked, got {other:?}"),
    }
    // SAFETY: the child only aborts.
    let c = unsafe { fork_child_unchecked(|| std::process::abort()) }.unwrap();
    match c.wait() {
        Err(Error::ChildKilled { signal, .. }) => assert_eq!(signal, "SIGABRT"),
        other => panic!("expected ChildKilled, got {other:?}"),
    }
}

#[test]
fn a_hung_child_is_killed_at_the_deadline() {
    // SAFETY: the child only sleeps.
    let c = unsafe {
        fork_child_unchecked(|| {
            std::thread::sleep(Duration::from_secs(60));
            0
        })
    }
    .unwrap();
    let start = Instant::now();
    match c.wait_timeout(Duration::from_millis(100)) {
        Err(Error::ChildTimeout { waited, .. }) => assert_eq!(waited, Duration::from_millis(100)),
        other => panic!("expected ChildTimeout, got {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(10));
    // kill() works too.
    // SAFETY: the child only sleeps.
    let c = unsafe {
        fork_child_unchecked(|| {
            std::thread::sleep(Duration::from_secs(60));
            0
        })
    }
    .unwrap();
    c.kill().unwrap();
}

/// What the closure captured belongs to the child: its destructors run once, in the child,
/// never again in the parent (where they could, for example, release a ring claim the child
/// still holds).
#[test]
fn the_closure_is_dropped_in_the_child_only() {
    use std::sync::atomic::Ordering;
    struct CountsDrops<'a>(&'a Region);
    impl Drop for CountsDrops<'_> {
        fn drop(&mut self) {
            if let Ok(n) = self.0.atomic_u64(0) {
                n.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
    let region = Region::anonymous(4096).unwrap();
    let token = CountsDrops(&region);
    // SAFETY: the child only touches the shared region.
    let child = unsafe {
        fork_child_unchecked(move || {
            let _owned = token;
            0
        })
    }
    .unwrap();
    child.wait().unwrap();
    assert_eq!(region.atomic_u64(0).unwrap().load(Ordering::Acquire), 1);
}

#[test]
fn run_pair_streams_through_a_ring_and_reports_the_child() {
    use shm_queue::spsc::Ring;
    let region = Region::anonymous(Ring::<u64>::required_bytes(256).unwrap()).unwrap();
    let ring = Ring::<u64>::create(region, 256).unwrap();
    let (mut tx, mut rx) = ring.split().unwrap();
    let n = 100_000u64;
    // SAFETY: the child only pushes into the shared ring and returns.
    let sum = unsafe {
        shm_bridge::fork::run_pair_unchecked(
            move || match (0..n).try_for_each(|i| tx.push_blocking(i, None)) {
                Ok(()) => 0,
                Err(_) => 1,
            },
            move || (0..n).map(|_| rx.pop_blocking(None).unwrap()).sum::<u64>(),
            Some(Duration::from_secs(30)),
        )
    }
    .unwrap();
    assert_eq!(sum, n * (n - 1) / 2);

    // SAFETY: the child only panics.
    let err =
        unsafe { shm_bridge::fork::run_pair_unchecked(|| panic!("child says no"), || 5, None) }
            .unwrap_err();
    assert!(
        matches!(&err, Error::ChildPanicked { message, .. } if message.contains("child says no")),
        "{err:?}"
    );
    // SAFETY: the child only returns a code.
    let err = unsafe { shm_bridge::fork::run_pair_unchecked(|| 7, || (), None) }.unwrap_err();
    assert!(matches!(err, Error::ChildFailed { code: 7, .. }), "{err:?}");
}

/// With `/proc` hidden (an empty tmpfs over it in a private mount namespace), the thread
/// count is unknown and the checked helper refuses instead of assuming one thread.
#[test]
fn refuses_when_the_thread_count_is_unknown() {
    use nix::mount::{mount, MsFlags};
    use nix::sched::{unshare, CloneFlags};
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: hiding /proc in a mount namespace needs root");
        return;
    }
    // SAFETY: the child makes syscalls and reads a file; the harness threads hold no lock
    // it needs at the fork (the same assumption as the other unchecked tests here).
    let child = unsafe {
        fork_child_unchecked(|| {
            if unshare(CloneFlags::CLONE_NEWNS).is_err() {
                return 10;
            }
            let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
            if mount(None::<&str>, "/", None::<&str>, private, None::<&str>).is_err() {
                return 11;
            }
            if mount(
                Some("none"),
                "/proc",
                Some("tmpfs"),
                MsFlags::empty(),
                None::<&str>,
            )
            .is_err()
            {
                return 12;
            }
            match fork_child(|| 0) {
                Err(Error::ThreadCountUnknown) => 0,
                Ok(c) => {
                    let _ = c.wait();
                    13
                }
                Err(_) => 14,
            }
        })
    }
    .unwrap();
    child.wait_timeout(Duration::from_secs(10)).unwrap();
}
