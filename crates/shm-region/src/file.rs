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

use crate::checks;
use crate::error::{io_errno, Error, Result};
use crate::options::Options;
use crate::region::{Backend, Cleanup, Region, Unmap};
use crate::sys;

/// Whether opening a file region may create the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Create {
    /// The file must exist (`open`).
    No,
    /// Create it if missing (`O_CREAT`).
    IfMissing,
    /// It must not exist (`O_CREAT|O_EXCL`).
    New,
}

impl Options {
    /// Creates the file, which must not exist yet (`O_CREAT|O_EXCL`), with
    /// [`Options::mode`] (subject to the umask), sizes it to `len` bytes (sparsely, unless
    /// [`Options::allocate`]) and maps it. [`Region::is_creator`] is `true`.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedOption`], [`Error::InvalidLength`] (zero, or beyond `off_t`),
    /// [`Error::AlreadyExists`], [`Error::Symlink`] (a dangling link in its place),
    /// [`Error::NotFound`] (a missing directory), [`Error::NoSpace`], [`Error::Sys`].
    ///
    /// # Example
    ///
    /// ```
    /// use shm_region::{Error, Options};
    ///
    /// let dir = std::env::temp_dir().join(format!("shm-region-doc-cf-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).expect("temp dir");
    /// let path = dir.join("new.bin");
    /// let region = Options::new().create_file(&path, 4096)?;
    /// assert!(region.is_creator());
    /// let err = Options::new().create_file(&path, 4096).unwrap_err();
    /// assert!(matches!(err, Error::AlreadyExists { .. }));
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), shm_region::Error>(())
    /// ```
    pub fn create_file(&self, path: impl AsRef<Path>, len: usize) -> Result<Region> {
        self.file_region(path.as_ref(), Create::New, Some(len))
    }

    /// Opens an existing file and maps all of it, after checking that it is a regular file
    /// of at least [`Options::min_len`] bytes (and at least one). A symbolic link in the last
    /// path component is refused unless [`Options::follow_symlinks`].
    /// [`Options::copy_on_write`] maps a private view.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedOption`], [`Error::NotFound`], [`Error::Symlink`],
    /// [`Error::NotRegularFile`], [`Error::TooSmall`], [`Error::Sys`].
    ///
    /// # Example
    ///
    /// ```
    /// use shm_region::Options;
    ///
    /// let dir = std::env::temp_dir().join(format!("shm-region-doc-of-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).expect("temp dir");
    /// let path = dir.join("log.bin");
    /// {
    ///     let region = Options::new().create_file(&path, 4096)?;
    ///     region.write_at(0, b"persisted")?;
    ///     region.flush()?; // msync(MS_SYNC)
    /// }
    /// let again = Options::new().open_file(&path)?;
    /// assert_eq!(again.len(), 4096);
    /// let mut buf = [0u8; 9];
    /// again.read_at(0, &mut buf)?;
    /// assert_eq!(&buf, b"persisted");
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), shm_region::Error>(())
    /// ```
    pub fn open_file(&self, path: impl AsRef<Path>) -> Result<Region> {
        self.file_region(path.as_ref(), Create::No, None)
    }

    /// Opens the file, creating it if it is missing (`O_CREAT`, with [`Options::mode`]),
    /// and maps exactly `len` bytes of it, growing it (sparsely, unless
    /// [`Options::allocate`]) if it is shorter. A copy-on-write view
    /// ([`Options::copy_on_write`]) never grows the file: a shorter one is
    /// [`Error::TooSmall`]. [`Region::is_creator`] is `false` even when the file was
    /// created; use [`Options::create_file`] to know.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedOption`], [`Error::InvalidLength`] (zero, or beyond `off_t`),
    /// [`Error::Symlink`], [`Error::NotRegularFile`], [`Error::TooSmall`],
    /// [`Error::NoSpace`], [`Error::Sys`].
    ///
    /// # Example
    ///
    /// ```
    /// use shm_region::Options;
    ///
    /// let dir = std::env::temp_dir().join(format!("shm-region-doc-ocf-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).expect("temp dir");
    /// let path = dir.join("grown.bin");
    /// std::fs::write(&path, b"short").expect("write");
    /// let region = Options::new().open_or_create_file(&path, 8192)?;
    /// assert_eq!(region.len(), 8192);
    /// assert_eq!(std::fs::metadata(&path).expect("stat").len(), 8192);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), shm_region::Error>(())
    /// ```
    pub fn open_or_create_file(&self, path: impl AsRef<Path>, len: usize) -> Result<Region> {
        self.file_region(path.as_ref(), Create::IfMissing, Some(len))
    }

    /// Opens (or creates) the file and maps it: the whole file if `len` is `None`, else
    /// exactly `len` bytes.
    fn file_region(&self, path: &Path, create: Create, len: Option<usize>) -> Result<Region> {
        let shown = path.display().to_string();
        let desc = format!("file `{shown}`");
        self.check_backend(Backend::File, &desc)?;
        if let Some(len) = len {
            checks::nonzero(&desc, len)?;
        }
        let mut oo = OpenOptions::new();
        oo.read(true).write(true).mode(self.mode);
        match create {
            Create::No => {}
            Create::IfMissing => {
                oo.create(true);
            }
            Create::New => {
                oo.create_new(true);
            }
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
        let len = match len {
            None => checks::at_least(&desc, meta.len(), self.min_len)?,
            Some(len) => self.grow(&file, meta.len(), len, &desc)?,
        };
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
            created: create == Create::New,
            huge_page_size: None,
            guard: None,
        }
        .guarded())
    }

    /// Makes a file of `size` bytes at least `len` long (and allocates it) as asked, and
    /// returns `len`.
    fn grow(&self, file: &File, size: u64, len: usize, desc: &str) -> Result<usize> {
        let Some(off) = sys::to_off(len) else {
            return Err(Error::InvalidLength {
                region: desc.to_string(),
                len: len as u64,
                reason: format!("must be at most {} bytes", libc::off_t::MAX),
            });
        };
        let no_space = || Error::no_space(desc, len, "the file's filesystem", (0, 0));
        if size < len as u64 {
            if self.copy_on_write {
                return Err(Error::TooSmall {
                    region: desc.to_string(),
                    actual: size,
                    required: len as u64,
                });
            }
            file.set_len(len as u64).map_err(|e| match io_errno(&e) {
                Errno::ENOSPC | Errno::EFBIG => no_space(),
                e => Error::sys(desc, "ftruncate", e),
            })?;
        }
        if self.allocate.unwrap_or(false) && !self.copy_on_write {
            nix::fcntl::posix_fallocate(file, 0, off).map_err(|e| match e {
                Errno::ENOSPC => no_space(),
                e => Error::sys(desc, "posix_fallocate", e),
            })?;
        }
        Ok(len)
    }
}
