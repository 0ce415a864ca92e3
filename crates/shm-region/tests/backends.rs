//! Each backend: bytes written through one mapping are read through another mapping of the
//! same object, and in another process where the backend allows one.

mod common;

use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;

use common::{in_child, read, unique, DEADLINE};
use shm_region::{recv_fd, send_fd, Backend, Options, Region};

const MSG: &[u8] = b"written by the other side";

#[test]
fn anonymous_is_shared_with_a_forked_child() {
    let region = Region::anonymous(1 << 16).unwrap();
    assert_eq!(region.backend(), Backend::Anonymous);
    assert!(region.name().is_none());
    region.write_at(100, b"hello").unwrap();
    let code = in_child(DEADLINE, || {
        // Read what the parent wrote before the fork, then answer at another offset.
        assert_eq!(read(&region, 100, 5), b"hello");
        region.write_at(60_000, MSG).unwrap();
        region.atomic_u64(0).unwrap().store(7, Ordering::Release);
        0
    });
    assert_eq!(code, 0);
    assert_eq!(read(&region, 60_000, MSG.len()), MSG);
    assert_eq!(region.atomic_u64(0).unwrap().load(Ordering::Acquire), 7);
}

#[test]
fn anonymous_written_before_fork_is_seen_by_child() {
    let region = Options::new().create_anonymous(4096).unwrap();
    region.write_at(100, b"hello").unwrap();
    let code = in_child(DEADLINE, || i32::from(read(&region, 100, 5) != b"hello"));
    assert_eq!(code, 0);
}

#[test]
fn named_posix_shared_between_processes() {
    let name = unique("posix");
    let creator = Options::new().create_shm(&name, 8192).unwrap();
    assert_eq!(creator.backend(), Backend::PosixShm);
    assert_eq!(creator.name(), Some(name.as_str()));
    assert!(creator.is_creator());
    assert!(std::path::Path::new(&format!("/dev/shm/{name}")).exists());
    // A second mapping in this process.
    let second = Options::new().open_shm(&name).unwrap();
    assert!(!second.is_creator());
    assert_eq!(second.len(), 8192);
    creator.write_at(10, b"abc").unwrap();
    assert_eq!(read(&second, 10, 3), b"abc");
    drop(second);
    // Another process opens it by name (after exec-like isolation: it does not use our
    // mapping) and writes back.
    let child_name = name.clone();
    let code = in_child(DEADLINE, move || {
        let r = Options::new().open_shm(&child_name).unwrap();
        r.write_at(4000, MSG).unwrap();
        0
    });
    assert_eq!(code, 0);
    assert_eq!(read(&creator, 4000, MSG.len()), MSG);
    drop(creator);
    assert!(!std::path::Path::new(&format!("/dev/shm/{name}")).exists());
}

#[test]
fn named_posix_open_or_create_and_keep_name() {
    let name = unique("ooc");
    let mut first = Options::new().open_or_create_shm(&name, 4096).unwrap();
    assert!(first.is_creator());
    let second = Options::new().open_or_create_shm(&name, 4096).unwrap();
    assert!(!second.is_creator());
    first.keep_name();
    assert!(!first.removes_on_drop());
    drop(first);
    drop(second);
    // Still there: open it, then remove it explicitly.
    let again = Options::new().open_shm(&name).unwrap();
    drop(again);
    shm_region::shm_unlink(&name).unwrap();
    assert!(matches!(
        shm_region::shm_unlink(&name),
        Err(shm_region::Error::NotFound { .. })
    ));
}

#[test]
fn named_posix_mode_is_exact_despite_umask() {
    use std::os::unix::fs::PermissionsExt;
    let name = unique("mode");
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let r = Options::new().mode(0o640).create_shm(&name, 4096);
    nix::sys::stat::umask(old);
    let r = r.unwrap();
    let meta = std::fs::metadata(format!("/dev/shm/{name}")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    drop(r);
}

#[test]
fn memfd_shared_with_forked_child_and_over_socket() {
    let region = Options::new()
        .seal(true)
        .create_memfd("backends", 16384)
        .unwrap();
    assert_eq!(region.backend(), Backend::Memfd);
    // Forked child: inherits the mapping.
    let code = in_child(DEADLINE, || {
        region.write_at(0, MSG).unwrap();
        0
    });
    assert_eq!(code, 0);
    assert_eq!(read(&region, 0, MSG.len()), MSG);

    // Another process receives the descriptor over a Unix socket and maps it itself. The
    // descriptor is queued on the socket before the fork; the child's write goes through
    // the mapping it makes from the received descriptor.
    let (parent_sock, child_sock) = UnixStream::pair().unwrap();
    send_fd(&parent_sock, region.fd().unwrap()).unwrap();
    let code = in_child(DEADLINE, move || {
        let fd = recv_fd(&child_sock).unwrap();
        let r = Options::new().require_seals(true).map_memfd(fd).unwrap();
        assert_eq!(r.len(), 16384);
        assert!(!r.is_creator());
        r.write_at(1000, MSG).unwrap();
        0
    });
    assert_eq!(code, 0);
    assert_eq!(read(&region, 1000, MSG.len()), MSG);
}

#[test]
fn memfd_seals_are_enforced() {
    let unsealed = Options::new().create_memfd("unsealed", 4096).unwrap();
    let fd = unsealed.fd().unwrap().try_clone_to_owned().unwrap();
    let err = Options::new()
        .require_seals(true)
        .map_memfd(fd)
        .unwrap_err();
    assert!(
        matches!(err, shm_region::Error::MissingSeals { .. }),
        "{err}"
    );
    // A sealed memfd cannot be shrunk by anyone holding it.
    let sealed = Options::new()
        .seal(true)
        .create_memfd("sealed", 4096)
        .unwrap();
    let e = nix::unistd::ftruncate(sealed.fd().unwrap(), 0).unwrap_err();
    assert_eq!(e, nix::errno::Errno::EPERM);
}

#[test]
fn recv_fd_reports_a_closed_peer() {
    let (a, b) = UnixStream::pair().unwrap();
    drop(a);
    let err = recv_fd(&b).unwrap_err();
    assert!(
        matches!(err, shm_region::Error::NoFdReceived { .. }),
        "{err}"
    );
}

#[test]
fn sysv_two_attachments_and_a_child() {
    let a = Options::new().create_sysv(None, 10_000).unwrap();
    assert_eq!(a.backend(), Backend::SysV);
    let id = a.sysv_id().unwrap();
    let b = Options::new().min_len(10_000).attach_sysv(id).unwrap();
    assert_eq!(b.len(), 10_000);
    a.write_at(9_990, b"0123456789").unwrap();
    assert_eq!(read(&b, 9_990, 10), b"0123456789");
    drop(b);
    let code = in_child(DEADLINE, move || {
        let c = Options::new().attach_sysv(id).unwrap();
        c.write_at(0, MSG).unwrap();
        0
    });
    assert_eq!(code, 0);
    assert_eq!(read(&a, 0, MSG.len()), MSG);
    drop(a); // IPC_RMID
    let err = Options::new().attach_sysv(id).unwrap_err();
    assert!(matches!(err, shm_region::Error::NotFound { .. }), "{err}");
}

#[test]
fn sysv_by_key() {
    let key = 0x5348_0000 | (std::process::id() as i32 & 0xffff);
    let a = Options::new().create_sysv(Some(key), 4096).unwrap();
    let err = Options::new().create_sysv(Some(key), 4096).unwrap_err();
    assert!(
        matches!(err, shm_region::Error::AlreadyExists { .. }),
        "{err}"
    );
    let b = Options::new().min_len(4096).open_sysv_key(key).unwrap();
    a.write_at(0, b"k").unwrap();
    assert_eq!(read(&b, 0, 1), b"k");
    let err = Options::new().min_len(8192).open_sysv_key(key).unwrap_err();
    assert!(matches!(err, shm_region::Error::TooSmall { .. }), "{err}");
}

#[test]
fn sysv_keep_name_outlives_the_creator() {
    let a = Options::new()
        .keep_name(true)
        .create_sysv(None, 4096)
        .unwrap();
    assert!(a.is_creator());
    assert!(!a.removes_on_drop());
    let id = a.sysv_id().unwrap();
    a.write_at(0, b"kept").unwrap();
    drop(a);
    let b = Options::new().attach_sysv(id).unwrap();
    assert_eq!(read(&b, 0, 4), b"kept");
    drop(b);
    shm_region::sysv_remove(id).unwrap();
    assert!(matches!(
        Options::new().attach_sysv(id),
        Err(shm_region::Error::NotFound { .. })
    ));
}

#[test]
fn file_two_mappings_share_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.bin");
    let a = Options::new().create_file(&path, 8192).unwrap();
    assert_eq!(a.backend(), Backend::File);
    let b = Options::new().open_file(&path).unwrap();
    assert_eq!(b.len(), 8192);
    a.write_at(5000, MSG).unwrap();
    assert_eq!(read(&b, 5000, MSG.len()), MSG);
    let child_path = path.clone();
    let code = in_child(DEADLINE, move || {
        let c = Options::new().open_file(&child_path).unwrap();
        c.write_at(0, b"child").unwrap();
        c.flush().unwrap();
        0
    });
    assert_eq!(code, 0);
    assert_eq!(read(&a, 0, 5), b"child");
}

#[test]
fn file_persists_across_drop_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("persist.bin");
    {
        let r = Options::new().open_or_create_file(&path, 3 * 4096).unwrap();
        r.write_at(4096 * 2 + 7, b"survives").unwrap();
        r.flush().unwrap();
        r.flush_async().unwrap();
        r.flush_range(4096 * 2 + 7, 8).unwrap();
    }
    // The bytes are in the file itself, not only in some mapping.
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 3 * 4096);
    assert_eq!(&bytes[4096 * 2 + 7..4096 * 2 + 15], b"survives");
    let r = Options::new().open_file(&path).unwrap();
    assert_eq!(read(&r, 4096 * 2 + 7, 8), b"survives");
}

#[test]
fn file_copy_on_write_view_stays_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cow.bin");
    std::fs::write(&path, vec![1u8; 4096]).unwrap();
    let shared = Options::new().open_file(&path).unwrap();
    let private = Options::new().copy_on_write(true).open_file(&path).unwrap();
    assert_eq!(private.backend(), Backend::FilePrivate);
    private.write_at(0, b"private").unwrap();
    private.flush().unwrap();
    assert_eq!(read(&shared, 0, 7), [1u8; 7]);
    assert_eq!(&std::fs::read(&path).unwrap()[..7], &[1u8; 7]);
    assert_eq!(read(&private, 0, 7), b"private");
}

#[test]
fn file_larger_than_ram_maps_lazily() {
    // 64 GiB of sparse file on a 24 GiB machine: mapping must not touch the pages.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.bin");
    let len: usize = 64 << 30;
    let r = match Options::new().open_or_create_file(&path, len) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "skipping: the filesystem under {} cannot hold a 64 GiB sparse file: {e}",
                dir.path().display()
            );
            return;
        }
    };
    assert_eq!(r.len(), len);
    let res = r.residency().unwrap();
    assert_eq!(res.total_pages, len / r.page_size());
    assert_eq!(res.resident_pages, 0);
    r.write_at(len - 8, b"far end!").unwrap();
    r.write_at(0, b"near").unwrap();
    let res = r.residency().unwrap();
    // Read-ahead and fault-around bring in neighbours, but nowhere near the whole file.
    assert!(
        res.resident_pages >= 2 && res.resident_bytes() < 256 << 20,
        "{res:?}"
    );
    assert_eq!(read(&r, len - 8, 8), b"far end!");
    // Only the touched blocks take disk space.
    use std::os::unix::fs::MetadataExt;
    r.flush().unwrap();
    assert!(std::fs::metadata(&path).unwrap().blocks() * 512 < 16 << 20);
}
