//! File-backed regions: a regular file mapped `MAP_SHARED` (its bytes outlive every process
//! and reach the disk with [`Region::flush`]), or `MAP_PRIVATE` as a copy-on-write view.
//!
//! Mapping goes through memmap2. Pages are faulted in on first touch, so a file much larger
//! than RAM maps at once and costs memory only for what is used. The final path component
//! is never followed if it is a symbolic link unless the caller allows it (`O_NOFOLLOW`).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::errno::Errno;

use crate::error::{io_errno, Error, Result};
use crate::region::{Backend, Cleanup, Region, Unmap};
use crate::sys;

/// Options for mapping a regular file.
///
/// # Example
///
/// ```
/// use shm_region::FileOptions;
///
/// let dir = std::env::temp_dir().join(format!("shm-region-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).expect("temp dir");
/// let path = dir.join("log.bin");
/// {
///     let region = FileOptions::new().create(true).len(4096).open(&path)?;
///     region.write_at(0, b"persisted")?;
///     region.flush()?; // msync(MS_SYNC)
/// }
/// let again = FileOptions::new().open(&path)?;
/// let mut buf = [0u8; 9];
/// again.read_at(0, &mut buf)?;
/// assert_eq!(&buf, b"persisted");
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), shm_region::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "options do nothing until passed to a constructor"]
pub struct FileOptions {
    create: bool,
    create_new: bool,
    len: Option<usize>,
    follow_symlinks: bool,
    copy_on_write: bool,
    allocate: bool,
    mode: u32,
}

impl Default for FileOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl FileOptions {
    /// Open an existing file, map all of it shared, never follow a symlink.
    pub fn new() -> Self {
        FileOptions {
            create: false,
            create_new: false,
            len: None,
            follow_symlinks: false,
            copy_on_write: false,
            allocate: false,
            mode: 0o600,
        }
    }

    /// Create the file if it does not exist (requires [`FileOptions::len`]).
    pub fn create(mut self, yes: bool) -> Self {
        self.create = yes;
        self
    }

    /// Create the file and fail with [`Error::AlreadyExists`] if it exists.
    pub fn create_new(mut self, yes: bool) -> Self {
        self.create_new = yes;
        self
    }

    /// Map exactly `len` bytes, growing the file (sparsely) if it is shorter.
    pub fn len(mut self, len: usize) -> Self {
        self.len = Some(len);
        self
    }

    /// Follow a symbolic link in the last path component (default: refuse).
    pub fn follow_symlinks(mut self, yes: bool) -> Self {
        self.follow_symlinks = yes;
        self
    }

    /// Map `MAP_PRIVATE`: writes go to private copies of the pages and never reach the
    /// file or other processes.
    pub fn copy_on_write(mut self, yes: bool) -> Self {
        self.copy_on_write = yes;
        self
    }

    /// Allocate disk blocks for the whole length now (`posix_fallocate`), so a full disk
    /// is an [`Error::NoSpace`] now rather than `SIGBUS` on a later write. Off by default so
    /// large sparse files stay sparse.
    pub fn allocate(mut self, yes: bool) -> Self {
        self.allocate = yes;
        self
    }

    /// Permission bits for a created file (default `0o600`, subject to the umask).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// Opens (or creates) the file and maps it.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::AlreadyExists`], [`Error::Symlink`],
    /// [`Error::NotRegularFile`], [`Error::InvalidLength`] (zero length, or `create` without
    /// `len`), [`Error::TooSmall`] (an empty file and no `len`), [`Error::NoSpace`],
    /// [`Error::Sys`].
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Region> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let desc = format!("file `{shown}`");
        if (self.create || self.create_new) && self.len.is_none() {
            return Err(Error::InvalidLength {
                region: desc,
                len: 0,
                reason: "creating a file region needs `.len(bytes)`".into(),
            });
        }
        if self.len == Some(0) {
            return Err(Error::InvalidLength {
                region: desc,
                len: 0,
                reason: "a region needs at least one byte".into(),
            });
        }
        let mut oo = OpenOptions::new();
        oo.read(true).write(true).mode(self.mode);
        if self.create_new {
            oo.create_new(true);
        } else if self.create {
            oo.create(true);
        }
        if !self.follow_symlinks {
            oo.custom_flags(libc::O_NOFOLLOW);
        }
        let file = oo.open(path).map_err(|e| match io_errno(&e) {
            Errno::ENOENT => Error::NotFound {
                region: desc.clone(),
            },
            Errno::EEXIST => Error::AlreadyExists {
                region: desc.clone(),
            },
            Errno::ELOOP => Error::Symlink {
                region: desc.clone(),
            },
            e => Error::sys(&desc, "open", e),
        })?;
        let meta = file
            .metadata()
            .map_err(|e| Error::sys(&desc, "fstat", io_errno(&e)))?;
        if !meta.file_type().is_file() {
            use std::os::unix::fs::MetadataExt;
            return Err(Error::NotRegularFile {
                region: desc,
                file_type: meta.mode() & libc::S_IFMT,
            });
        }
        let len = self.size_and_grow(&file, meta.len(), &desc)?;
        let mut mo = memmap2::MmapOptions::new();
        mo.len(len);
        let raw = if self.copy_on_write {
            // SAFETY: map_copy is unsafe because the file may change under a `&[u8]` view;
            // we never create such views (only volatile copies and atomics), so concurrent
            // changes to the file are harmless here.
            unsafe { mo.map_copy(&file) }.map(memmap2::MmapRaw::from)
        } else {
            mo.map_raw(&file)
        }
        .map_err(|e| Error::sys(&desc, "mmap", io_errno(&e)))?;
        let ptr = std::ptr::NonNull::new(raw.as_mut_ptr())
            .ok_or_else(|| Error::sys(&desc, "mmap", Errno::EFAULT))?;
        Ok(Region {
            ptr,
            len,
            backend: if self.copy_on_write {
                Backend::FilePrivate
            } else {
                Backend::File
            },
            name: Some(shown),
            desc,
            fd: Some(file.into()),
            unmap: Unmap::Memmap(raw),
            cleanup: Cleanup::Nothing,
            created: self.create_new,
            huge_page_size: None,
        })
    }

    /// Decides the mapped length, growing (and optionally allocating) the file as asked.
    fn size_and_grow(&self, file: &File, size: u64, desc: &str) -> Result<usize> {
        let Some(len) = self.len else {
            if size == 0 {
                return Err(Error::TooSmall {
                    region: desc.to_string(),
                    actual: 0,
                    required: 1,
                });
            }
            return usize::try_from(size).map_err(|_| Error::InvalidLength {
                region: desc.to_string(),
                len: size,
                reason: "larger than this process's address space".into(),
            });
        };
        let Some(off) = sys::to_off(len) else {
            return Err(Error::InvalidLength {
                region: desc.to_string(),
                len: len as u64,
                reason: format!("must be at most {} bytes", libc::off_t::MAX),
            });
        };
        if size < len as u64 {
            if self.copy_on_write {
                return Err(Error::TooSmall {
                    region: desc.to_string(),
                    actual: size,
                    required: len as u64,
                });
            }
            file.set_len(len as u64).map_err(|e| match io_errno(&e) {
                Errno::ENOSPC | Errno::EFBIG => self.no_space(desc, len),
                e => Error::sys(desc, "ftruncate", e),
            })?;
        }
        if self.allocate && !self.copy_on_write {
            nix::fcntl::posix_fallocate(file, 0, off).map_err(|e| match e {
                Errno::ENOSPC => self.no_space(desc, len),
                e => Error::sys(desc, "posix_fallocate", e),
            })?;
        }
        Ok(len)
    }

    fn no_space(&self, desc: &str, len: usize) -> Error {
        Error::NoSpace {
            region: desc.to_string(),
            len: len as u64,
            filesystem: "the file's filesystem".to_string(),
            total: 0,
            available: 0,
        }
    }
}
