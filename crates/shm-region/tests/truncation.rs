//! A peer that shrinks a shared object: the SIGBUS guard keeps this process alive, reads
//! and writes past the new end report `Truncated` (naming the sizes), and faults at
//! addresses that are not a guarded region still take the default action.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::fd::AsRawFd;

use common::{in_child, unique, DEADLINE};
use shm_region::{Error, Options};

const LEN: usize = 1 << 16;

/// Runs `f` in a forked child that first installs the guard (a guarded region named
/// `name`), and asserts the child died of SIGBUS, the default action.
fn dies_of_sigbus(name: &str, f: impl FnOnce()) {
    // SAFETY: the child only makes a region, runs `f` (syscalls) and exits.
    let pid = match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            let _guarded = Options::new().create_shm(name, 4096).unwrap();
            f();
            // SAFETY: not reached if the signal killed us, as it must.
            unsafe { libc::_exit(3) }
        }
        nix::unistd::ForkResult::Parent { child } => child,
    };
    let status = nix::sys::wait::waitpid(pid, None).unwrap();
    let _ = shm_region::shm_unlink(name);
    assert!(
        matches!(
            status,
            nix::sys::wait::WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGBUS, _)
        ),
        "{status:?}"
    );
}

/// Truncates the object behind `name` to `len` through a descriptor of its own, as another
/// process would.
fn truncate_shm(name: &str, len: i64) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap();
    // SAFETY: ftruncate on a descriptor we own.
    assert_eq!(unsafe { libc::ftruncate(f.as_raw_fd(), len) }, 0);
}

#[test]
fn a_shrunk_posix_object_is_truncated_not_sigbus() {
    for to in [4096i64, 0] {
        let name = unique(&format!("trunc{to}"));
        // The child maps, the "peer" truncates, the child touches: it must exit normally.
        let code = in_child(DEADLINE, || {
            let region = Options::new().create_shm(&name, LEN).unwrap();
            region.write_at(LEN - 8, b"lastword").unwrap();
            assert!(!region.is_truncated());
            truncate_shm(&name, to);
            // A read past the new end: zeros were mapped in, and it says so.
            let mut buf = [0xffu8; 8];
            match region.read_at(LEN - 8, &mut buf) {
                Err(Error::Truncated { mapped, now, .. }) => {
                    assert_eq!(mapped, LEN as u64);
                    assert_eq!(now, Some(to as u64));
                }
                other => panic!("expected Truncated, got {other:?}"),
            }
            assert_eq!(buf, [0; 8], "the missing pages read as zeros");
            assert!(region.is_truncated());
            // Writes report it too, and do not fault again.
            assert!(matches!(
                region.write_at(LEN / 2, b"x"),
                Err(Error::Truncated { .. })
            ));
            let msg = region.check_truncated().unwrap_err().to_string();
            assert!(msg.contains("truncated by another process"), "{msg}");
            0
        });
        assert_eq!(code, 0, "truncated to {to}");
        let _ = shm_region::shm_unlink(&name);
    }
}

/// A SIGBUS at an address no region registered (a file mapped by other code) still kills
/// the process: the guard hands it to the default action.
#[test]
fn a_fault_outside_any_region_still_takes_the_default_action() {
    let name = unique("foreign-fault");
    dies_of_sigbus(&name, || {
        let path = std::env::temp_dir().join(format!("{name}.file"));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        f.set_len(4096).unwrap();
        // SAFETY: a fresh shared mapping of our own file, touched only below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            )
        };
        f.set_len(0).unwrap();
        let _ = std::fs::remove_file(&path);
        // SAFETY: the page is mapped (and now past the end of the file: SIGBUS).
        let _ = unsafe { std::ptr::read_volatile(p.cast::<u8>()) };
    });
}

/// A SIGBUS sent by a process (no faulting address) is not a truncation: it still takes the
/// default action, with the guard installed.
#[test]
fn a_sigbus_sent_by_kill_still_kills() {
    dies_of_sigbus(&unique("sent-sigbus"), || {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGBUS);
    });
}
