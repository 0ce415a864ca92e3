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
use nix::sys::stat::{fchmod, fstat, Mode, SFlag};

use crate::error::{Error, Result};
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

/// Options for creating and opening named POSIX shared memory.
///
/// The defaults are the safe ones: mode `0600`; opening refuses another user's object and
/// one that group or others may write; the creator removes the name when its region drops.
///
/// # Example
///
/// ```
/// use shm_region::ShmOptions;
///
/// let name = format!("shm-region-doc-{}", std::process::id());
/// let creator = ShmOptions::new().create(&name, 4096)?;
/// let other = ShmOptions::new().open(&name)?; // in real use, another process
/// creator.write_at(0, b"ping")?;
/// let mut buf = [0u8; 4];
/// other.read_at(0, &mut buf)?;
/// assert_eq!(&buf, b"ping");
/// drop(other);
/// drop(creator); // unlinks /dev/shm/<name>
/// assert!(ShmOptions::new().open(&name).is_err());
/// # Ok::<(), shm_region::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "options do nothing until passed to a constructor"]
pub struct ShmOptions {
    mode: u32,
    keep_name: bool,
    allow_foreign_owner: bool,
    allow_shared_write: bool,
    min_len: usize,
    allocate: bool,
    open_wait: Duration,
}

impl Default for ShmOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ShmOptions {
    /// Mode `0600`, strict checks on open, name removed by the creator on drop.
    pub fn new() -> Self {
        ShmOptions {
            mode: 0o600,
            keep_name: false,
            allow_foreign_owner: false,
            allow_shared_write: false,
            min_len: 0,
            allocate: true,
            open_wait: Duration::from_millis(200),
        }
    }

    /// Permission bits for a new object (default `0o600`); applied with `fchmod`, so the
    /// umask does not change them.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// Keep the name when the creating region drops (default: remove it).
    pub fn keep_name(mut self, yes: bool) -> Self {
        self.keep_name = yes;
        self
    }

    /// Open objects owned by another uid (default: refuse them).
    pub fn allow_foreign_owner(mut self, yes: bool) -> Self {
        self.allow_foreign_owner = yes;
        self
    }

    /// Open objects that group or others may write (default: refuse them).
    pub fn allow_shared_write(mut self, yes: bool) -> Self {
        self.allow_shared_write = yes;
        self
    }

    /// On open, require at least this many bytes (default: at least one).
    pub fn min_len(mut self, len: usize) -> Self {
        self.min_len = len;
        self
    }

    /// Allocate the memory at creation with `posix_fallocate` (default: yes), so a full
    /// filesystem is an [`Error::NoSpace`] now rather than `SIGBUS` later.
    pub fn allocate(mut self, yes: bool) -> Self {
        self.allocate = yes;
        self
    }

    /// How long [`ShmOptions::open_or_create`] waits for a concurrent creator to finish
    /// sizing the object (default 200 ms).
    pub fn open_wait(mut self, wait: Duration) -> Self {
        self.open_wait = wait;
        self
    }

    /// Creates `/dev/shm/NAME` of `len` bytes, zeroed, and maps it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], [`Error::InvalidLength`] (zero, or beyond `off_t`),
    /// [`Error::AlreadyExists`], [`Error::NoSpace`] when `/dev/shm` is full (with its size),
    /// [`Error::Sys`] for other failures. On any error nothing is left in `/dev/shm`.
    pub fn create(&self, name: &str, len: usize) -> Result<Region> {
        let bare = validate_name(name)?;
        let desc = describe(bare);
        let off = match sys::to_off(len) {
            Some(off) if len > 0 => off,
            _ => {
                return Err(Error::InvalidLength {
                    region: desc,
                    len: len as u64,
                    reason: format!("must be between 1 and {} bytes", libc::off_t::MAX),
                })
            }
        };
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
        if self.allocate {
            nix::fcntl::posix_fallocate(&fd, 0, off).map_err(|e| {
                undo(match e {
                    Errno::ENOSPC => {
                        let (total, available) = sys::fs_space(SHM_DIR);
                        Error::NoSpace {
                            region: desc.clone(),
                            len: len as u64,
                            filesystem: SHM_DIR.to_string(),
                            total,
                            available,
                        }
                    }
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
        })
    }

    /// Opens and maps an existing `/dev/shm/NAME`, all of it, after checking with `fstat`
    /// that it is a regular object of ours (unless allowed otherwise), not writable by group
    /// or others (unless allowed), and at least [`ShmOptions::min_len`] bytes. Symbolic links
    /// are never followed. The name is not removed when the region drops.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], [`Error::NotFound`], [`Error::Symlink`],
    /// [`Error::NotRegularFile`], [`Error::ForeignOwner`], [`Error::InsecureMode`],
    /// [`Error::TooSmall`], [`Error::Sys`].
    pub fn open(&self, name: &str) -> Result<Region> {
        let bare = validate_name(name)?;
        let desc = describe(bare);
        let fd = self.open_fd(bare, &desc)?;
        self.map_checked(fd, bare, desc)
    }

    fn open_fd(&self, bare: &str, desc: &str) -> Result<OwnedFd> {
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

    fn map_checked(&self, fd: OwnedFd, bare: &str, desc: String) -> Result<Region> {
        let size = check_fd(
            &fd,
            &desc,
            self.allow_foreign_owner,
            self.allow_shared_write,
            self.min_len,
        )?;
        let ptr = sys::map_shared_fd(&fd, size, MapFlags::empty())
            .map_err(|e| Error::sys(&desc, "mmap(MAP_SHARED)", e))?;
        Ok(Region {
            ptr,
            len: size,
            backend: Backend::PosixShm,
            name: Some(bare.to_string()),
            desc,
            fd: Some(fd),
            unmap: Unmap::Munmap,
            cleanup: Cleanup::Nothing,
            created: false,
            huge_page_size: None,
        })
    }

    /// Creates `/dev/shm/NAME` of `len` bytes, or opens it (requiring at least `len` bytes)
    /// if it already exists. [`Region::is_creator`] tells which happened. If another process
    /// is creating the object at the same moment, waits up to [`ShmOptions::open_wait`] for
    /// it to reach its size.
    ///
    /// # Errors
    ///
    /// As [`ShmOptions::create`] and [`ShmOptions::open`].
    pub fn open_or_create(&self, name: &str, len: usize) -> Result<Region> {
        let deadline = Instant::now() + self.open_wait;
        loop {
            match self.create(name, len) {
                Err(Error::AlreadyExists { .. }) => {}
                other => return other,
            }
            let opener = self.clone().min_len(self.min_len.max(len));
            match opener.open(name) {
                // Gone between our create and open: try creating again.
                Err(Error::NotFound { .. }) => {}
                // A creator that has not sized it yet: wait a little.
                Err(Error::TooSmall { actual, .. }) if actual < len as u64 => {
                    if Instant::now() >= deadline {
                        return opener.open(name);
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                other => return other,
            }
        }
    }
}

/// The `fstat` checks shared by every fd-backed open: returns the size to map.
pub(crate) fn check_fd(
    fd: &OwnedFd,
    desc: &str,
    allow_foreign_owner: bool,
    allow_shared_write: bool,
    min_len: usize,
) -> Result<usize> {
    let st = fstat(fd).map_err(|e| Error::sys(desc, "fstat", e))?;
    let file_type = st.st_mode & SFlag::S_IFMT.bits();
    if file_type != SFlag::S_IFREG.bits() {
        return Err(Error::NotRegularFile {
            region: desc.to_string(),
            file_type,
        });
    }
    let ours = nix::unistd::geteuid().as_raw();
    if st.st_uid != ours && !allow_foreign_owner {
        return Err(Error::ForeignOwner {
            region: desc.to_string(),
            owner: st.st_uid,
            ours,
        });
    }
    let mode = st.st_mode & 0o777;
    if mode & 0o022 != 0 && !allow_shared_write {
        return Err(Error::InsecureMode {
            region: desc.to_string(),
            mode,
        });
    }
    let size = u64::try_from(st.st_size).unwrap_or(0);
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
