//! The checks every backend shares: lengths, before any system call, and an existing
//! object's type, owner, mode and size, before it is mapped.
//!
//! One copy here, so the backends cannot drift apart in what they accept or in the errors
//! they give for it.

use std::os::fd::AsFd;

use nix::sys::stat::{fstat, SFlag};

use crate::error::{Error, Result};
use crate::sys;

/// Which owner and mode checks to skip when opening an existing object.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Trust {
    /// Accept an object owned by another uid.
    pub foreign_owner: bool,
    /// Accept an object that group or others may write.
    pub shared_write: bool,
}

impl Trust {
    /// Skip both checks: for a descriptor handed to us on purpose.
    pub const ANY: Trust = Trust {
        foreign_owner: true,
        shared_write: true,
    };
}

/// Rejects a zero length.
pub(crate) fn nonzero(desc: &str, len: usize) -> Result<()> {
    if len == 0 {
        return Err(Error::InvalidLength {
            region: desc.to_string(),
            len: 0,
            reason: "a region needs at least one byte".into(),
        });
    }
    Ok(())
}

/// A length for `ftruncate` and `posix_fallocate`: between 1 and `off_t::MAX`.
pub(crate) fn off_len(desc: &str, len: usize) -> Result<libc::off_t> {
    match sys::to_off(len) {
        Some(off) if len > 0 => Ok(off),
        _ => Err(Error::InvalidLength {
            region: desc.to_string(),
            len: len as u64,
            reason: format!("must be between 1 and {} bytes", libc::off_t::MAX),
        }),
    }
}

/// `len` rounded up to whole huge pages, and the huge page size.
pub(crate) fn round_to_huge_pages(desc: &str, len: usize) -> Result<(usize, usize)> {
    let hp = sys::huge_page_size();
    let rounded = len
        .checked_next_multiple_of(hp)
        .ok_or_else(|| Error::InvalidLength {
            region: desc.to_string(),
            len: len as u64,
            reason: "too large to round up to whole huge pages".into(),
        })?;
    Ok((rounded, hp))
}

/// Refuses an object owned by another uid, or writable by group or others, unless trusted.
/// `mode` may carry file-type bits; only the permission bits are looked at.
pub(crate) fn owner_and_mode(desc: &str, owner: u32, mode: u32, trust: Trust) -> Result<()> {
    let ours = nix::unistd::geteuid().as_raw();
    if owner != ours && !trust.foreign_owner {
        return Err(Error::ForeignOwner {
            region: desc.to_string(),
            owner,
            ours,
        });
    }
    let mode = mode & 0o777;
    if mode & 0o022 != 0 && !trust.shared_write {
        return Err(Error::InsecureMode {
            region: desc.to_string(),
            mode,
        });
    }
    Ok(())
}

/// Requires `size` to be at least `min_len` bytes (and at least one), and to fit this
/// process's address space; returns it as the length to map.
pub(crate) fn at_least(desc: &str, size: u64, min_len: usize) -> Result<usize> {
    let required = min_len.max(1) as u64;
    if size < required {
        return Err(Error::TooSmall {
            region: desc.to_string(),
            actual: size,
            required,
        });
    }
    usize::try_from(size).map_err(|_| Error::InvalidLength {
        region: desc.to_string(),
        len: size,
        reason: "larger than this process's address space".into(),
    })
}

/// The `fstat` checks shared by every descriptor-backed open: a regular file, owner and
/// mode as `trust` allows, at least `min_len` bytes. Returns the size to map.
pub(crate) fn check_fd(fd: impl AsFd, desc: &str, trust: Trust, min_len: usize) -> Result<usize> {
    let st = fstat(fd).map_err(|e| Error::sys(desc, "fstat", e))?;
    let file_type = st.st_mode & SFlag::S_IFMT.bits();
    if file_type != SFlag::S_IFREG.bits() {
        return Err(Error::NotRegularFile {
            region: desc.to_string(),
            file_type,
        });
    }
    owner_and_mode(desc, st.st_uid, st.st_mode, trust)?;
    at_least(desc, u64::try_from(st.st_size).unwrap_or(0), min_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        assert!(nonzero("r", 0).is_err());
        assert!(nonzero("r", 1).is_ok());
        assert!(off_len("r", 0).is_err());
        assert_eq!(off_len("r", 4096).ok(), Some(4096));
        assert!(off_len("r", usize::MAX).is_err());
        let (len, hp) = round_to_huge_pages("r", 1).unwrap();
        assert_eq!(len, hp);
        assert!(round_to_huge_pages("r", usize::MAX).is_err());
    }

    #[test]
    fn sizes() {
        assert!(matches!(
            at_least("r", 0, 0),
            Err(Error::TooSmall { required: 1, .. })
        ));
        assert!(matches!(
            at_least("r", 4096, 8192),
            Err(Error::TooSmall {
                actual: 4096,
                required: 8192,
                ..
            })
        ));
        assert_eq!(at_least("r", 8192, 8192).ok(), Some(8192));
    }

    #[test]
    fn owner_and_mode_checks() {
        let ours = nix::unistd::geteuid().as_raw();
        let strict = Trust {
            foreign_owner: false,
            shared_write: false,
        };
        assert!(owner_and_mode("r", ours, 0o100600, strict).is_ok());
        assert!(matches!(
            owner_and_mode("r", ours.wrapping_add(1), 0o600, strict),
            Err(Error::ForeignOwner { .. })
        ));
        assert!(matches!(
            owner_and_mode("r", ours, 0o100660, strict),
            Err(Error::InsecureMode { mode: 0o660, .. })
        ));
        assert!(owner_and_mode("r", ours.wrapping_add(1), 0o666, Trust::ANY).is_ok());
    }
}
