//! Open-file-description locks: the liveness signal the kernel keeps for us.
//!
//! Each role of a channel holds a write lock (`F_OFD_SETLK`) on one byte of the channel's
//! file, through its own `open()` of it. The lock belongs to that open file description, so
//! the kernel drops it when the last descriptor to it closes, which includes the holder's
//! death by any signal. Another process asks with `F_OFD_GETLK` whether the byte is locked;
//! it never trusts a pid, which could have been reused. Lock offsets are positions in the
//! lock space, not bytes we read or write, so they may lie past the end of the file.

use std::os::fd::BorrowedFd;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};

/// Lock offset of participant slot `i`.
pub(crate) fn slot_offset(i: usize) -> i64 {
    i as i64
}

/// Lock offset held while a name is being created or reclaimed.
pub(crate) const CREATE_LOCK: i64 = 4000;

fn flock(kind: i32, start: i64) -> libc::flock {
    flock_range(kind, start, 1)
}

fn flock_range(kind: i32, start: i64, len: i64) -> libc::flock {
    // SAFETY: `flock` is a plain C struct for which all-zero bytes are a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start;
    fl.l_len = len;
    fl
}

/// Tries to take the write lock on byte `start`; `Ok(false)` if another open file
/// description holds it.
pub(crate) fn try_lock(fd: BorrowedFd<'_>, start: i64) -> Result<bool, Errno> {
    match fcntl(fd, FcntlArg::F_OFD_SETLK(&flock(libc::F_WRLCK, start))) {
        Ok(_) => Ok(true),
        Err(Errno::EAGAIN | Errno::EACCES) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Releases our lock on byte `start` (no effect if we do not hold it).
pub(crate) fn unlock(fd: BorrowedFd<'_>, start: i64) -> Result<(), Errno> {
    fcntl(fd, FcntlArg::F_OFD_SETLK(&flock(libc::F_UNLCK, start))).map(drop)
}

/// Whether an open file description other than `fd`'s holds a lock on byte `start`.
pub(crate) fn is_locked(fd: BorrowedFd<'_>, start: i64) -> Result<bool, Errno> {
    let mut fl = flock(libc::F_WRLCK, start);
    fcntl(fd, FcntlArg::F_OFD_GETLK(&mut fl))?;
    Ok(i32::from(fl.l_type) != libc::F_UNLCK)
}

/// Whether an open file description other than `fd`'s holds a lock on any byte of
/// `start..start + len` (one query for a whole range of slots).
pub(crate) fn any_locked(fd: BorrowedFd<'_>, start: i64, len: i64) -> Result<bool, Errno> {
    let mut fl = flock_range(libc::F_WRLCK, start, len);
    fcntl(fd, FcntlArg::F_OFD_GETLK(&mut fl))?;
    Ok(i32::from(fl.l_type) != libc::F_UNLCK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn locks_conflict_between_descriptions_and_free_on_close() {
        let path = std::env::temp_dir().join(format!("shm-bridge-lock-{}", std::process::id()));
        let a = std::fs::File::create(&path).unwrap();
        let b = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        assert!(!is_locked(b.as_fd(), 3).unwrap());
        assert!(try_lock(a.as_fd(), 3).unwrap());
        assert!(is_locked(b.as_fd(), 3).unwrap());
        assert!(!is_locked(b.as_fd(), 4).unwrap());
        assert!(!try_lock(b.as_fd(), 3).unwrap());
        assert!(any_locked(b.as_fd(), 0, 60).unwrap());
        assert!(any_locked(b.as_fd(), 3, 1).unwrap());
        assert!(!any_locked(b.as_fd(), 4, 56).unwrap());
        assert!(!any_locked(b.as_fd(), 0, 3).unwrap());
        drop(a);
        assert!(!is_locked(b.as_fd(), 3).unwrap());
        assert!(try_lock(b.as_fd(), 3).unwrap());
        unlock(b.as_fd(), 3).unwrap();
        std::fs::remove_file(&path).unwrap();
    }
}
