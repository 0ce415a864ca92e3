//! Bad input from callers and from whoever else can reach the name: each case returns the
//! right error variant, and nothing is left behind in /dev/shm.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{give_to_nobody, in_child, read, root_or_skip, shm_entries, unique, DEADLINE};
use shm_region::{shm_unlink, Error, Options, Region};

#[test]
fn invalid_names_are_rejected_before_any_syscall() {
    let long = "x".repeat(shm_region::MAX_NAME_LEN + 1);
    let cases = [
        "",
        "/",
        "a/b",
        "/a/b",
        ".",
        "..",
        "has space",
        "tab\there",
        "nul\0",
        "é",
        long.as_str(),
    ];
    for name in cases {
        for result in [
            Options::new().create_shm(name, 4096).map(drop),
            Options::new().open_shm(name).map(drop),
            Options::new().open_or_create_shm(name, 4096).map(drop),
            shm_unlink(name),
            Options::new().create_memfd(name, 4096).map(drop),
        ] {
            match result {
                Err(Error::InvalidName { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{name:?}: expected InvalidName, got {other:?}"),
            }
        }
    }
    // The longest valid name works.
    let ok = "y".repeat(shm_region::MAX_NAME_LEN);
    let r = Options::new().create_shm(&ok, 4096).unwrap();
    drop(r);
    assert!(shm_entries(&ok).is_empty());
}

#[test]
fn zero_lengths_are_rejected() {
    let name = unique("zero");
    let dir = tempfile::tempdir().unwrap();
    let results = [
        Options::new().create_shm(&name, 0).map(drop),
        Options::new().open_or_create_shm(&name, 0).map(drop),
        Region::anonymous(0).map(drop),
        Options::new().create_anonymous(0).map(drop),
        Options::new().create_memfd("zero", 0).map(drop),
        Options::new().create_sysv(None, 0).map(drop),
        Options::new()
            .open_or_create_file(dir.path().join("z"), 0)
            .map(drop),
        Options::new()
            .create_file(dir.path().join("z"), 0)
            .map(drop),
    ];
    for r in results {
        assert!(matches!(r, Err(Error::InvalidLength { .. })), "{r:?}");
    }
    assert!(shm_entries(&name).is_empty());
    // An existing empty file has nothing to map.
    std::fs::write(dir.path().join("empty"), b"").unwrap();
    let r = Options::new().open_file(dir.path().join("empty"));
    assert!(matches!(r, Err(Error::TooSmall { actual: 0, .. })), "{r:?}");
}

#[test]
fn create_of_an_existing_name_fails_and_leaves_the_original() {
    let name = unique("exists");
    let first = Options::new().create_shm(&name, 4096).unwrap();
    first.write_at(0, b"original").unwrap();
    let err = Options::new().create_shm(&name, 8192).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert!(err.to_string().contains(&name), "{err}");
    assert_eq!(err.errno(), Some(nix::errno::Errno::EEXIST));
    // The failed create must not have unlinked or resized the original.
    let again = Options::new().open_shm(&name).unwrap();
    assert_eq!(again.len(), 4096);
    assert_eq!(read(&again, 0, 8), b"original");
    drop(again);
    drop(first);
    assert!(shm_entries(&name).is_empty());
}

#[test]
fn open_of_a_missing_name() {
    let name = unique("missing");
    let err = Options::new().open_shm(&name).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(shm_entries(&name).is_empty());
    let dir = tempfile::tempdir().unwrap();
    let err = Options::new()
        .open_file(dir.path().join("nope"))
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

#[test]
fn a_segment_smaller_than_required() {
    let name = unique("small");
    let r = Options::new().create_shm(&name, 4096).unwrap();
    let err = Options::new().min_len(8192).open_shm(&name).unwrap_err();
    match &err {
        Error::TooSmall {
            actual, required, ..
        } => {
            assert_eq!((*actual, *required), (4096, 8192));
        }
        other => panic!("expected TooSmall, got {other:?}"),
    }
    // open_or_create with a larger size must not silently map less.
    let err = Options::new()
        .open_wait(std::time::Duration::from_millis(20))
        .open_or_create_shm(&name, 8192)
        .unwrap_err();
    assert!(matches!(err, Error::TooSmall { .. }), "{err}");
    drop(r);
    assert!(shm_entries(&name).is_empty());
}

#[test]
fn a_segment_owned_by_another_uid() {
    if !root_or_skip("chown to another uid needs root") {
        return;
    }
    let name = unique("foreign");
    let r = Options::new().create_shm(&name, 4096).unwrap();
    give_to_nobody(format!("/dev/shm/{name}"));
    let err = Options::new().open_shm(&name).unwrap_err();
    match &err {
        Error::ForeignOwner { owner, ours, .. } => assert_eq!((*owner, *ours), (65534, 0)),
        other => panic!("expected ForeignOwner, got {other:?}"),
    }
    assert!(err.to_string().contains("allow_foreign_owner"), "{err}");
    Options::new()
        .allow_foreign_owner(true)
        .open_shm(&name)
        .unwrap();
    drop(r);
    assert!(shm_entries(&name).is_empty());
}

#[test]
fn a_group_writable_segment() {
    let name = unique("groupw");
    let r = Options::new().mode(0o660).create_shm(&name, 4096).unwrap();
    let err = Options::new().open_shm(&name).unwrap_err();
    assert!(
        matches!(err, Error::InsecureMode { mode: 0o660, .. }),
        "{err}"
    );
    Options::new()
        .allow_shared_write(true)
        .open_shm(&name)
        .unwrap();
    // World-writable after the fact, as a careless or hostile chmod would do.
    std::fs::set_permissions(
        format!("/dev/shm/{name}"),
        std::fs::Permissions::from_mode(0o606),
    )
    .unwrap();
    let err = Options::new().open_shm(&name).unwrap_err();
    assert!(
        matches!(err, Error::InsecureMode { mode: 0o606, .. }),
        "{err}"
    );
    drop(r);
    assert!(shm_entries(&name).is_empty());
}

#[test]
fn symlinks_are_not_followed() {
    // A symlink planted in /dev/shm under the name we are about to open.
    let target = unique("target");
    let link = unique("link");
    let t = Options::new().create_shm(&target, 4096).unwrap();
    std::os::unix::fs::symlink(format!("/dev/shm/{target}"), format!("/dev/shm/{link}")).unwrap();
    let err = Options::new().open_shm(&link).unwrap_err();
    assert!(matches!(err, Error::Symlink { .. }), "{err}");
    // create must not follow it either.
    let err = Options::new().create_shm(&link, 4096).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    std::fs::remove_file(format!("/dev/shm/{link}")).unwrap();
    drop(t);
    assert!(shm_entries(&target).is_empty());

    // A symlink for a file region.
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.bin");
    std::fs::write(&real, vec![0u8; 4096]).unwrap();
    let sym = dir.path().join("sym.bin");
    std::os::unix::fs::symlink(&real, &sym).unwrap();
    let err = Options::new().open_file(&sym).unwrap_err();
    assert!(matches!(err, Error::Symlink { .. }), "{err}");
    let err = Options::new().open_or_create_file(&sym, 4096).unwrap_err();
    assert!(matches!(err, Error::Symlink { .. }), "{err}");
    let r = Options::new()
        .follow_symlinks(true)
        .open_file(&sym)
        .unwrap();
    assert_eq!(r.len(), 4096);
    // A directory is not a file.
    let err = Options::new().open_file(dir.path()).unwrap_err();
    assert!(
        matches!(err, Error::NotRegularFile { .. } | Error::Sys { .. }),
        "{err}"
    );
}

#[test]
fn file_create_new_refuses_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    std::fs::write(&p, b"x").unwrap();
    let err = Options::new().create_file(&p, 4096).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert_eq!(std::fs::read(&p).unwrap(), b"x");
}

#[test]
fn access_helpers_check_bounds_and_alignment() {
    let r = Region::anonymous(4096).unwrap();
    let mut buf = [0u8; 16];
    assert!(r.read_at(4090, &mut buf).is_err());
    assert!(r.write_at(4096, &[1]).is_err());
    assert!(r.write_at(usize::MAX, &[1]).is_err());
    assert!(r.read_at(usize::MAX - 3, &mut buf).is_err());
    assert!(r.ptr_at(0, 4097).is_err());
    assert!(r.fill(4000, 100, 0).is_err());
    r.write_at(4096 - 16, &[9u8; 16]).unwrap();
    r.read_at(4096 - 16, &mut buf).unwrap();
    assert_eq!(buf, [9u8; 16]);
    r.write_at(4096, &[]).unwrap(); // empty at the very end is fine
    assert!(matches!(
        r.atomic_u64(4),
        Err(Error::Misaligned { align: 8, .. })
    ));
    assert!(matches!(
        r.atomic_u32(2),
        Err(Error::Misaligned { align: 4, .. })
    ));
    assert!(matches!(r.atomic_u64(4096), Err(Error::OutOfBounds { .. })));
    assert!(r.atomic_u64(4088).is_ok());
    // Unaligned volatile copies at every offset and length agree with a plain model.
    let mut model = vec![0u8; 4096];
    for (i, off) in [0usize, 1, 3, 7, 8, 9, 15, 4000].iter().enumerate() {
        let data: Vec<u8> = (0..(i * 7 + 3)).map(|b| b as u8 ^ 0xa5).collect();
        r.write_at(*off, &data).unwrap();
        model[*off..*off + data.len()].copy_from_slice(&data);
    }
    let mut all = vec![0u8; 4096];
    r.read_at(0, &mut all).unwrap();
    // Offsets 4080..4096 were filled with 9s above and not overwritten.
    model[4080..4096].copy_from_slice(&[9u8; 16]);
    assert_eq!(all, model);
}

#[test]
fn nothing_is_left_behind_after_failures_in_a_child() {
    // Failures in another process leave no names either.
    let prefix = unique("child-fail");
    let p2 = prefix.clone();
    let code = in_child(DEADLINE, move || {
        let _ = Options::new().create_shm(&format!("{p2}/x"), 4096);
        let _ = Options::new().create_shm(&p2, 0);
        0
    });
    assert_eq!(code, 0);
    assert!(shm_entries(&prefix).is_empty());
}

#[test]
fn settings_a_backend_cannot_honour_are_errors_before_any_syscall() {
    let name = unique("unsupported");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    let cases: Vec<(&str, Result<Region, Error>)> = vec![
        ("seal", Options::new().seal(true).create_shm(&name, 4096)),
        (
            "require_seals",
            Options::new().require_seals(true).open_shm(&name),
        ),
        (
            "huge_pages",
            Options::new().huge_pages(true).create_shm(&name, 4096),
        ),
        (
            "populate",
            Options::new().populate(true).create_memfd("m", 4096),
        ),
        ("mode", Options::new().mode(0o644).create_anonymous(4096)),
        (
            "allocate",
            Options::new().allocate(true).create_sysv(None, 4096),
        ),
        (
            "keep_name",
            Options::new().keep_name(true).create_memfd("m", 4096),
        ),
        (
            "allow_foreign_owner",
            Options::new()
                .allow_foreign_owner(true)
                .open_or_create_file(&file, 4096),
        ),
        ("min_len", Options::new().min_len(1).create_anonymous(4096)),
        (
            "copy_on_write",
            Options::new().copy_on_write(true).create_sysv(None, 4096),
        ),
        (
            "follow_symlinks",
            Options::new().follow_symlinks(true).open_shm(&name),
        ),
        (
            "open_wait",
            Options::new()
                .open_wait(std::time::Duration::ZERO)
                .create_file(&file, 4096),
        ),
    ];
    for (expected, result) in cases {
        match result {
            Err(e @ Error::UnsupportedOption { option, .. }) => {
                assert_eq!(option, expected);
                let msg = e.to_string();
                assert!(msg.contains(&format!("`.{expected}(..)`")), "{msg}");
            }
            other => panic!("{expected}: expected UnsupportedOption, got {other:?}"),
        }
    }
    // Nothing was made on the way.
    assert!(shm_entries(&name).is_empty());
    assert!(!file.exists());
    // The message says where the setting does apply.
    let err = Options::new()
        .seal(true)
        .create_shm(&name, 4096)
        .unwrap_err();
    assert!(err.to_string().contains("memfd"), "{err}");
}

#[test]
fn one_options_value_serves_creator_and_opener() {
    // Create-side and open-side settings of the same backend do not trip each other.
    let name = unique("both-sides");
    let opts = Options::new()
        .mode(0o600)
        .keep_name(false)
        .allow_foreign_owner(true)
        .allow_shared_write(true)
        .min_len(4096)
        .allocate(true);
    let created = opts.create_shm(&name, 4096).unwrap();
    let opened = opts.open_shm(&name).unwrap();
    assert_eq!(opened.len(), 4096);
    drop((created, opened));
    assert!(shm_entries(&name).is_empty());
}

#[test]
fn min_len_on_every_backend_that_opens() {
    // Each opener: refused below its 4096 bytes, accepted at exactly that.
    let check = |what: &str, open: &dyn Fn(usize) -> Result<Region, Error>| {
        match open(8192) {
            Err(Error::TooSmall {
                actual: 4096,
                required: 8192,
                ..
            }) => {}
            other => panic!("{what}: expected TooSmall, got {other:?}"),
        }
        assert_eq!(open(4096).unwrap().len(), 4096, "{what}");
    };
    let memfd = Options::new().create_memfd("small", 4096).unwrap();
    check("memfd", &|n| {
        let fd = memfd.fd().unwrap().try_clone_to_owned().unwrap();
        Options::new().min_len(n).map_memfd(fd)
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.bin");
    std::fs::write(&path, vec![0u8; 4096]).unwrap();
    check("file", &|n| Options::new().min_len(n).open_file(&path));
    let seg = Options::new().create_sysv(None, 4096).unwrap();
    let id = seg.sysv_id().unwrap();
    check("sysv", &|n| Options::new().min_len(n).attach_sysv(id));
}
