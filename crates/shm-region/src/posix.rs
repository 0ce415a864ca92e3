//! Named POSIX shared memory (`shm_open`), the objects that live in `/dev/shm`.
//!
//! Creation is exclusive (`O_CREAT|O_EXCL|O_CLOEXEC`), the mode is set with `fchmod` because
//! the umask masks `shm_open`'s, and the size is both set (`ftruncate`) and allocated
//! (`posix_fallocate`) so that a full `/dev/shm` fails at creation with `ENOSPC` instead of
//! killing a process with `SIGBUS` later. Opening checks the owner, the mode, the file type
//! and the size with `fstat` before mapping.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::mman::{self, MapFlags};
use nix::sys::stat::{fchmod, Mode};

use crate::checks;
use crate::error::{Error, Result};
use crate::options::Options;
use crate::region::{Backend, Cleanup, Region, Unmap};
use crate::sys;

/// The longest name accepted, in bytes (`NAME_MAX` minus the leading `/`).
pub const MAX_NAME_LEN: usize = 254;

/// Where the kernel keeps POSIX shared-memory objects.
pub const SHM_DIR: &str = "/dev/shm";

/// Checks a shared-memory name without any syscall: one path component of printable ASCII
/// without spaces, 1 to [`MAX_NAME_LEN`] bytes, not `.` or `..`. A leading `/` is accepted
/// and ignored. Returns the name without the `/`.
///
/// # Errors
///
/// [`Error::InvalidName`] saying what is wrong.
///
/// # Example
///
/// ```
/// assert_eq!(shm_region::validate_name("/orders").unwrap(), "orders");
/// assert!(shm_region::validate_name("a/b").is_err());
/// assert!(shm_region::validate_name("").is_err());
/// ```
pub fn validate_name(name: &str) -> Result<&str> {
    let bad = |reason| Error::InvalidName {
        name: name.to_string(),
        reason,
        max: MAX_NAME_LEN,
    };
    let bare = name.strip_prefix('/').unwrap_or(name);
    if bare.is_empty() {
        return Err(bad("it is empty"));
    }
    if bare.len() > MAX_NAME_LEN {
        return Err(bad("it is too long"));
    }
    if bare == "." || bare == ".." {
        return Err(bad("`.` and `..` are not names"));
    }
    if bare.contains('/') {
        return Err(bad("it contains '/'"));
    }
    if !bare.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("it contains a space, a control character or non-ASCII"));
    }
    Ok(bare)
}

fn describe(bare: &str) -> String {
    format!("POSIX shm `/{bare}`")
}

fn c_name(bare: &str) -> Result<CString> {
    // validate_name excluded NUL (not graphic), so this cannot fail; map it anyway.
    CString::new(format!("/{bare}")).map_err(|_| Error::InvalidName {
        name: bare.to_string(),
        reason: "it contains a NUL byte",
        max: MAX_NAME_LEN,
    })
}

impl Options {
    /// Creates `/dev/shm/NAME` of `len` bytes, zeroed, and maps it.
    ///
    /// Creation is exclusive (`O_CREAT|O_EXCL|O_CLOEXEC`); the object gets
    /// [`Options::mode`] exactly and, unless [`Options::allocate`] says otherwise, its
    /// memory at once. The name is removed when the region drops, unless
    /// [`Options::keep_name`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], [`Error::UnsupportedOption`], [`Error::InvalidLength`] (zero,
    /// or beyond `off_t`), [`Error::AlreadyExists`], [`Error::NoSpace`] when `/dev/shm` is
    /// full (with its size), [`Error::Sys`] for other failures. On any error nothing is left
    /// in `/dev/shm`.
    ///
    /// # Example
    ///
    /// ```
    /// use shm_region::{Backend, Options};
    ///
    /// let name = format!("shm-region-doc-create-{}", std::process::id());
    /// let region = Options::new().mode(0o640).create_shm(&name, 4096)?;
    /// assert_eq!(region.backend(), Backend::PosixShm);
    /// assert!(region.is_creator());
    /// drop(region); // unlinks /dev/shm/<name>
    /// assert!(Options::new().open_shm(&name).is_err());
    /// # Ok::<(), shm_region::Error>(())
    /// ```
    pub fn create_shm(&self, name: &str, len: usize) -> Result<Region> {
        let bare = validate_name(name)?;
        let desc = describe(bare);
        self.check_backend(Backend::PosixShm, &desc)?;
        let off = checks::off_len(&desc, len)?;
        let cname = c_name(bare)?;
        let fd = mman::shm_open(
            cname.as_c_str(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(self.mode),
        )
        .map_err(|e| match e {
            Errno::EEXIST => Error::AlreadyExists {
                region: desc.clone(),
            },
            e => Error::sys(desc.clone(), "shm_open(O_CREAT|O_EXCL)", e),
        })?;
        // From here on, failure must remove the name again.
        let undo = |err: Error| {
            let _ = mman::shm_unlink(cname.as_c_str());
            err
        };
        fchmod(&fd, Mode::from_bits_truncate(self.mode))
            .map_err(|e| undo(Error::sys(&desc, "fchmod", e)))?;
        nix::unistd::ftruncate(&fd, off).map_err(|e| undo(Error::sys(&desc, "ftruncate", e)))?;
        if self.allocate.unwrap_or(true) {
            nix::fcntl::posix_fallocate(&fd, 0, off).map_err(|e| {
                undo(match e {
                    Errno::ENOSPC => Error::no_space(&desc, len, SHM_DIR, sys::fs_space(SHM_DIR)),
                    e => Error::sys(&desc, "posix_fallocate", e),
                })
            })?;
        }
        let ptr = sys::map_shared_fd(&fd, len, MapFlags::empty())
            .map_err(|e| undo(Error::sys(&desc, "mmap(MAP_SHARED)", e)))?;
        Ok(Region {
            ptr,
            len,
            backend: Backend::PosixShm,
            name: Some(bare.to_string()),
            desc,
            fd: Some(fd),
            unmap: Unmap::Munmap,
            cleanup: if self.keep_name {
                Cleanup::Nothing
            } else {
                Cleanup::ShmUnlink(cname)
            },
            created: true,
            huge_page_size: None,
            guard: None,
        }
        .guarded())
    }

    /// Opens and maps an existing `/dev/shm/NAME`, all of it, after checking with `fstat`
    /// that it is a regular object of ours (unless [`Options::allow_foreign_owner`]), not
    /// writable by group or others (unless [`Options::allow_shared_write`]), and at least
    /// [`Options::min_len`] bytes. Symbolic links are never followed. The name is not
    /// removed when the region drops.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], [`Error::UnsupportedOption`], [`Error::NotFound`],
    /// [`Error::Symlink`], [`Error::NotRegularFile`], [`Error::ForeignOwner`],
    /// [`Error::InsecureMode`], [`Error::TooSmall`], [`Error::Sys`].
    ///
    /// # Example
    ///
    /// ```
    /// use shm_region::{Error, Options};
    ///
    /// let name = format!("shm-region-doc-open-{}", std::process::id());
    /// let creator = Options::new().create_shm(&name, 4096)?;
    /// creator.write_at(0, b"ping")?;
    /// let other = Options::new().min_len(4096).open_shm(&name)?; // in real use, another process
    /// let mut buf = [0u8; 4];
    /// other.read_at(0, &mut buf)?;
    /// assert_eq!(&buf, b"ping");
    /// assert!(!other.is_creator());
    /// let err = Options::new().min_len(8192).open_shm(&name).unwrap_err();
    /// assert!(matches!(err, Error::TooSmall { actual: 4096, .. }));
    /// # Ok::<(), shm_region::Error>(())
    /// ```
    pub fn open_shm(&self, name: &str) -> Result<Region> {
        let bare = validate_name(name)?;
        let desc = describe(bare);
        self.check_backend(Backend::PosixShm, &desc)?;
        let fd = open_fd(bare, &desc)?;
        let len = checks::check_fd(&fd, &desc, self.trust(), self.min_len)?;
        Region::map_existing(fd, len, Backend::PosixShm, Some(bare.to_string()), desc)
    }

    /// Creates `/dev/shm/NAME` of `len` bytes like [`Options::create_shm`], or opens it like
    /// [`Options::open_shm`] (requiring at least `len` bytes) if it already exists.
    /// [`Region::is_creator`] tells which happened. If another process is creating the
    /// object at the same moment, waits up to [`Options::open_wait`] for it to reach its
    /// size.
    ///
    /// # Errors
    ///
    /// As [`Options::create_shm`] and [`Options::open_shm`].
    ///
    /// # Example
    ///
    /// ```
    /// use shm_region::Options;
    ///
    /// let name = format!("shm-region-doc-ooc-{}", std::process::id());
    /// let first = Options::new().open_or_create_shm(&name, 4096)?;
    /// let second = Options::new().open_or_create_shm(&name, 4096)?;
    /// assert!(first.is_creator() && !second.is_creator());
    /// # Ok::<(), shm_region::Error>(())
    /// ```
    pub fn open_or_create_shm(&self, name: &str, len: usize) -> Result<Region> {
        let deadline = Instant::now() + self.open_wait;
        loop {
            match self.create_shm(name, len) {
                Err(Error::AlreadyExists { .. }) => {}
                other => return other,
            }
            let opener = self.clone().min_len(self.min_len.max(len));
            match opener.open_shm(name) {
                // Gone between our create and open: try creating again.
                Err(Error::NotFound { .. }) => {}
                // A creator that has not sized it yet: wait a little.
                Err(Error::TooSmall { actual, .. }) if actual < len as u64 => {
                    if Instant::now() >= deadline {
                        return opener.open_shm(name);
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                other => return other,
            }
        }
    }
}

fn open_fd(bare: &str, desc: &str) -> Result<OwnedFd> {
    let cname = c_name(bare)?;
    // glibc's shm_open adds O_NOFOLLOW; we add it too in case another libc does not.
    mman::shm_open(
        cname.as_c_str(),
        OFlag::O_RDWR | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::ENOENT => Error::NotFound {
            region: desc.to_string(),
        },
        Errno::ELOOP => Error::Symlink {
            region: desc.to_string(),
        },
        e => Error::sys(desc, "shm_open", e),
    })
}

/// Removes the name `/dev/shm/NAME` (`shm_unlink`). Processes that have it mapped keep
/// their mapping; the memory is freed when the last one unmaps.
///
/// # Errors
///
/// [`Error::InvalidName`], [`Error::NotFound`], [`Error::Sys`] (for example `EACCES`).
pub fn shm_unlink(name: &str) -> Result<()> {
    let bare = validate_name(name)?;
    let cname = c_name(bare)?;
    mman::shm_unlink(cname.as_c_str()).map_err(|e| match e {
        Errno::ENOENT => Error::NotFound {
            region: describe(bare),
        },
        e => Error::sys(describe(bare), "shm_unlink", e),
    })
}
