//! Options on any region: pre-fault and residency, mlock limits, huge pages, madvise
//! hints, and a full filesystem at creation.

mod common;

use common::{
    drop_root, in_child, is_root, mount_tmpfs, private_mount_namespace, read, root_or_skip, unique,
    DEADLINE,
};
use shm_region::{Advice, Error, Options, Prefault, Region};

#[test]
fn prefault_takes_residency_from_zero_to_all() {
    for how in [Prefault::Auto, Prefault::Madvise, Prefault::Touch] {
        let r = Region::anonymous(64 * 4096).unwrap();
        let before = r.residency().unwrap();
        assert_eq!(before.total_pages, 64);
        assert_eq!(before.page_size, r.page_size());
        assert_eq!(
            before.resident_pages, 0,
            "{how:?}: fresh anonymous memory is not resident"
        );
        r.write_at(12345, b"kept").unwrap();
        let used = r.prefault_with(how).unwrap();
        if how != Prefault::Auto {
            assert_eq!(used, how);
        }
        let after = r.residency().unwrap();
        assert_eq!(after.resident_pages, 64, "{how:?}");
        assert_eq!(after.resident_bytes(), 64 * 4096);
        let mut buf = [0u8; 4];
        r.read_at(12345, &mut buf).unwrap();
        assert_eq!(
            &buf, b"kept",
            "{how:?}: pre-faulting must not change contents"
        );
    }
    // MAP_POPULATE at creation, and an unallocated memfd.
    let r = Options::new()
        .populate(true)
        .create_anonymous(32 * 4096)
        .unwrap();
    assert_eq!(r.residency().unwrap().resident_pages, 32);
    let m = Options::new()
        .allocate(false)
        .create_memfd("prefault", 16 * 4096)
        .unwrap();
    assert_eq!(m.residency().unwrap().resident_pages, 0);
    m.prefault().unwrap();
    assert_eq!(m.residency().unwrap().resident_pages, 16);
}

#[test]
fn residency_of_a_named_region_counts_the_object() {
    let name = unique("resid");
    let r = Options::new()
        .allocate(false)
        .create_shm(&name, 8 * 4096)
        .unwrap();
    assert_eq!(r.residency().unwrap().resident_pages, 0);
    r.write_at(0, &[1]).unwrap();
    assert_eq!(r.residency().unwrap().resident_pages, 1);
    r.prefault().unwrap();
    assert_eq!(r.residency().unwrap().resident_pages, 8);
}

#[test]
fn mlock_within_the_limit_and_beyond_it() {
    let r = Region::anonymous(64 * 1024).unwrap();
    r.lock().unwrap();
    assert_eq!(r.residency().unwrap().resident_pages, 16);
    r.unlock().unwrap();

    // Beyond RLIMIT_MEMLOCK, in a child with a small limit (and, when we are root, without
    // CAP_IPC_LOCK, which would bypass the limit: the child drops to uid nobody).
    let big = Region::anonymous(1 << 20).unwrap();
    let code = in_child(DEADLINE, move || {
        use nix::sys::resource::{setrlimit, Resource};
        setrlimit(Resource::RLIMIT_MEMLOCK, 64 * 1024, 64 * 1024).unwrap();
        drop_root();
        match big.lock() {
            Err(
                e @ Error::LockLimit {
                    soft, hard, len, ..
                },
            ) => {
                assert_eq!((soft, hard, len), (65536, 65536, 1 << 20));
                assert!(e.to_string().contains("RLIMIT_MEMLOCK is 65536"), "{e}");
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

fn set_nr_hugepages(n: u64) -> std::io::Result<()> {
    std::fs::write("/proc/sys/vm/nr_hugepages", format!("{n}\n"))
}

fn nr_hugepages() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/vm/nr_hugepages")
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn free_hugepages() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("HugePages_Free:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Both cases in one test, so that reserving pages cannot race the "none" case.
#[test]
fn huge_pages_unavailable_then_reserved() {
    if free_hugepages() == 0 {
        let err = Options::new()
            .huge_pages(true)
            .create_anonymous(1 << 20)
            .unwrap_err();
        match &err {
            Error::HugePagesUnavailable {
                free,
                len,
                huge_page_size,
                ..
            } => {
                assert_eq!(*free, 0);
                assert_eq!(*len, *huge_page_size, "rounded up to one huge page");
            }
            other => panic!("expected HugePagesUnavailable, got {other:?}"),
        }
        assert!(err.to_string().contains("nr_hugepages"), "{err}");
        let err = Options::new()
            .huge_pages(true)
            .create_memfd("huge", 1 << 20)
            .unwrap_err();
        assert!(matches!(err, Error::HugePagesUnavailable { .. }), "{err}");
    } else {
        eprintln!("huge pages are free on this machine: the 'none reserved' case is not tested");
    }

    let Some(old) = nr_hugepages() else {
        eprintln!("skipping the reserved case: /proc/sys/vm/nr_hugepages is unreadable");
        return;
    };
    if !is_root() || set_nr_hugepages(old + 4).is_err() {
        eprintln!("skipping the reserved case: cannot reserve huge pages (needs root)");
        return;
    }
    let result = std::panic::catch_unwind(|| {
        if free_hugepages() < 2 {
            eprintln!("skipping the reserved case: the kernel reserved no huge pages");
            return;
        }
        let r = Options::new()
            .huge_pages(true)
            .create_anonymous(100)
            .unwrap();
        let hp = r.huge_page_size().unwrap();
        assert_eq!(r.len(), hp);
        r.write_at(hp - 4, b"huge").unwrap();
        r.prefault().unwrap();
        let code = in_child(DEADLINE, || i32::from(read(&r, hp - 4, 4) != b"huge"));
        assert_eq!(code, 0);
        let m = Options::new()
            .huge_pages(true)
            .create_memfd("huge-ok", 1)
            .unwrap();
        assert_eq!(m.len(), hp);
        m.write_at(0, b"ok").unwrap();
    });
    set_nr_hugepages(old).unwrap();
    result.unwrap();
}

#[test]
fn madvise_hints() {
    let r = Region::anonymous(16 * 4096).unwrap();
    for a in [
        Advice::Sequential,
        Advice::Random,
        Advice::WillNeed,
        Advice::NoHugePage,
        Advice::DoFork,
    ] {
        r.advise(a).unwrap_or_else(|e| panic!("{a:?}: {e}"));
    }
    match r.advise(Advice::HugePage) {
        Ok(())
        | Err(Error::Sys {
            source: nix::errno::Errno::EINVAL,
            ..
        }) => {}
        Err(e) => panic!("HugePage: {e}"),
    }
    // DONTNEED on shared memory keeps the data.
    r.write_at(4096, b"stays").unwrap();
    r.advise_range(4096, 4096, Advice::DontNeed).unwrap();
    assert_eq!(read(&r, 4096, 5), b"stays");
    assert!(matches!(
        r.advise_range(1, 10, Advice::Random),
        Err(Error::Misaligned { .. })
    ));
    assert!(matches!(
        r.advise_range(0, 1 << 30, Advice::Random),
        Err(Error::OutOfBounds { .. })
    ));

    // DONTFORK: the child does not have the mapping at all.
    r.advise(Advice::DontFork).unwrap();
    let addr = r.as_ptr().as_ptr() as usize;
    let code = in_child(DEADLINE, move || {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let mapped = maps.lines().any(|l| {
            let range = l.split_whitespace().next().unwrap_or("");
            let mut it = range
                .split('-')
                .map(|x| usize::from_str_radix(x, 16).unwrap_or(0));
            let (lo, hi) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
            lo <= addr && addr < hi
        });
        i32::from(mapped)
    });
    assert_eq!(code, 0, "the child still had the DONTFORK mapping");
}

/// A tiny tmpfs over /dev/shm in a private mount namespace, so the real one is untouched.
#[test]
fn a_full_dev_shm_fails_at_creation() {
    if !root_or_skip("a private mount namespace needs root") {
        return;
    }
    let name = unique("full");
    let code = in_child(DEADLINE, move || {
        if !private_mount_namespace() {
            return 0;
        }
        mount_tmpfs("/dev/shm", "256k");
        let err = Options::new().create_shm(&name, 1 << 20).unwrap_err();
        let Error::NoSpace {
            total,
            filesystem,
            len,
            ..
        } = &err
        else {
            eprintln!("expected NoSpace, got {err:?}");
            return 1;
        };
        assert_eq!(filesystem, "/dev/shm");
        assert_eq!(*len, 1 << 20);
        assert_eq!(*total, 256 * 1024);
        let msg = err.to_string();
        assert!(
            msg.contains("--shm-size") && msg.contains("262144"),
            "{msg}"
        );
        // Nothing left behind in the (private) /dev/shm.
        assert_eq!(std::fs::read_dir("/dev/shm").unwrap().count(), 0);
        // A size that fits still works there.
        Options::new().create_shm(&name, 64 * 1024).unwrap();

        // File regions with allocation on a small filesystem fail the same way.
        let dir = tempfile::tempdir().unwrap();
        mount_tmpfs(dir.path(), "128k");
        let e = Options::new()
            .allocate(true)
            .open_or_create_file(dir.path().join("f"), 1 << 20)
            .unwrap_err();
        assert!(matches!(e, Error::NoSpace { .. }), "{e}");
        0
    });
    assert_eq!(code, 0);
}

#[test]
fn figures() {
    let r = Region::anonymous(10_000).unwrap();
    assert_eq!(r.len(), 10_000);
    assert!(!r.is_empty());
    assert!(r.page_size().is_power_of_two());
    assert_eq!(
        r.residency().unwrap().total_pages,
        10_000usize.div_ceil(r.page_size())
    );
    assert_eq!(r.backend().to_string(), "anonymous");
    assert_eq!(r.huge_page_size(), None);
    assert!(r.fd().is_none());
    let s = format!("{r:?}");
    assert!(s.contains("Anonymous"), "{s}");
}
