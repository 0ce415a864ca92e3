//! System V shared-memory segments (`shmget`, `shmat`, `shmdt`, `shmctl`), for interop with
//! programs that use them. nix has none of these calls, so this module uses libc.

use std::ptr::NonNull;

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::region::{Backend, Cleanup, Region, Unmap};
use crate::sys;

/// Options for creating or attaching a System V segment.
///
/// # Example
///
/// ```
/// use shm_region::SysVOptions;
///
/// let a = SysVOptions::new().create(None, 8192)?; // IPC_PRIVATE; removed when `a` drops
/// let id = a.sysv_id().expect("a System V region has an id");
/// let b = SysVOptions::new().attach(id, 8192)?;
/// a.write_at(0, b"sysv")?;
/// let mut buf = [0u8; 4];
/// b.read_at(0, &mut buf)?;
/// assert_eq!(&buf, b"sysv");
/// # Ok::<(), shm_region::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "options do nothing until passed to a constructor"]
pub struct SysVOptions {
    mode: u32,
    allow_foreign_owner: bool,
    allow_shared_write: bool,
    huge_pages: bool,
}

impl Default for SysVOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl SysVOptions {
    /// Mode 0600, same owner required, no group/other write.
    pub fn new() -> Self {
        SysVOptions {
            mode: 0o600,
            allow_foreign_owner: false,
            allow_shared_write: false,
            huge_pages: false,
        }
    }

    /// Permission bits for a new segment (default `0o600`).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// Attach to segments owned by another uid.
    pub fn allow_foreign_owner(mut self, yes: bool) -> Self {
        self.allow_foreign_owner = yes;
        self
    }

    /// Attach to segments that group or others may write.
    pub fn allow_shared_write(mut self, yes: bool) -> Self {
        self.allow_shared_write = yes;
        self
    }

    /// Create the segment with `SHM_HUGETLB`.
    pub fn huge_pages(mut self, yes: bool) -> Self {
        self.huge_pages = yes;
        self
    }

    /// Creates a new segment of `len` bytes under `key` (`None` for `IPC_PRIVATE`, reachable
    /// only by id) and attaches it. The segment is marked for removal (`IPC_RMID`) when the
    /// returned region drops, unless [`Region::keep_name`] is called.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLength`] for zero, [`Error::AlreadyExists`] if the key is taken,
    /// [`Error::HugePagesUnavailable`], [`Error::Sys`] otherwise.
    pub fn create(&self, key: Option<i32>, len: usize) -> Result<Region> {
        let desc = match key {
            Some(k) => format!("System V segment with key {k:#x}"),
            None => "private System V segment".to_string(),
        };
        if len == 0 {
            return Err(Error::InvalidLength {
                region: desc,
                len: 0,
                reason: "a segment needs at least one byte".into(),
            });
        }
        let mut flags = libc::IPC_CREAT | libc::IPC_EXCL | self.mode as libc::c_int;
        if self.huge_pages {
            flags |= libc::SHM_HUGETLB;
        }
        let k = key.unwrap_or(libc::IPC_PRIVATE);
        // SAFETY: shmget takes plain integers and touches no memory of ours.
        let id = unsafe { libc::shmget(k, len, flags) };
        if id < 0 {
            let e = Errno::last();
            return Err(match e {
                Errno::EEXIST => Error::AlreadyExists { region: desc },
                Errno::ENOMEM | Errno::EPERM if self.huge_pages => {
                    let info = sys::huge_page_info();
                    Error::HugePagesUnavailable {
                        region: desc,
                        len: len as u64,
                        huge_page_size: info.size,
                        free: info.free,
                        total: info.total,
                        source: e,
                    }
                }
                _ => Error::sys(desc, "shmget(IPC_CREAT|IPC_EXCL)", e),
            });
        }
        match self.attach_id(id, len, true) {
            Ok(r) => Ok(r),
            Err(e) => {
                let _ = rmid(id);
                Err(e)
            }
        }
    }

    /// Attaches the segment with id `id`, checking its owner and mode and that it holds at
    /// least `min_len` bytes. The segment is not removed when the region drops.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::ForeignOwner`], [`Error::InsecureMode`],
    /// [`Error::TooSmall`], [`Error::Sys`].
    pub fn attach(&self, id: i32, min_len: usize) -> Result<Region> {
        self.attach_checked(id, min_len)
    }

    /// Looks up the segment under `key` and attaches it like [`SysVOptions::attach`].
    ///
    /// # Errors
    ///
    /// As [`SysVOptions::attach`].
    pub fn open_key(&self, key: i32, min_len: usize) -> Result<Region> {
        // SAFETY: plain integers.
        let id = unsafe { libc::shmget(key, 0, 0) };
        if id < 0 {
            let desc = format!("System V segment with key {key:#x}");
            return Err(match Errno::last() {
                Errno::ENOENT => Error::NotFound { region: desc },
                e => Error::sys(desc, "shmget", e),
            });
        }
        self.attach_checked(id, min_len)
    }

    fn attach_checked(&self, id: i32, min_len: usize) -> Result<Region> {
        let desc = format!("System V segment id {id}");
        let ds = stat(id).map_err(|e| match e {
            Errno::EINVAL | Errno::EIDRM => Error::NotFound {
                region: desc.clone(),
            },
            e => Error::sys(desc.clone(), "shmctl(IPC_STAT)", e),
        })?;
        let ours = nix::unistd::geteuid().as_raw();
        let owner = ds.shm_perm.uid;
        if owner != ours && !self.allow_foreign_owner {
            return Err(Error::ForeignOwner {
                region: desc,
                owner,
                ours,
            });
        }
        let mode = u32::from(ds.shm_perm.mode) & 0o777;
        if mode & 0o022 != 0 && !self.allow_shared_write {
            return Err(Error::InsecureMode { region: desc, mode });
        }
        let size = ds.shm_segsz;
        if size < min_len.max(1) {
            return Err(Error::TooSmall {
                region: desc,
                actual: size as u64,
                required: min_len.max(1) as u64,
            });
        }
        self.attach_id(id, size, false)
    }

    fn attach_id(&self, id: i32, len: usize, created: bool) -> Result<Region> {
        let desc = format!("System V segment id {id}");
        // SAFETY: a null address lets the kernel choose where to attach, so no existing
        // memory is affected; the Region owns the attachment and detaches it once.
        let p = unsafe { libc::shmat(id, std::ptr::null(), 0) };
        if p as isize == -1 {
            return Err(Error::sys(desc, "shmat", Errno::last()));
        }
        let ptr = NonNull::new(p.cast::<u8>())
            .ok_or_else(|| Error::sys(&desc, "shmat", Errno::EFAULT))?;
        Ok(Region {
            ptr,
            len,
            backend: Backend::SysV,
            name: Some(id.to_string()),
            desc,
            fd: None,
            unmap: Unmap::SysV,
            cleanup: if created {
                Cleanup::SysVRemove(id)
            } else {
                Cleanup::Nothing
            },
            created,
            huge_page_size: self
                .huge_pages
                .then(|| usize::try_from(sys::huge_page_info().size).unwrap_or(2 << 20)),
        })
    }
}

fn stat(id: i32) -> std::result::Result<libc::shmid_ds, Errno> {
    let mut ds = std::mem::MaybeUninit::<libc::shmid_ds>::zeroed();
    // SAFETY: IPC_STAT writes one shmid_ds into the buffer we pass, which is large enough.
    let rc = unsafe { libc::shmctl(id, libc::IPC_STAT, ds.as_mut_ptr()) };
    if rc < 0 {
        return Err(Errno::last());
    }
    // SAFETY: shmctl succeeded, so it filled the struct (and it was zeroed before anyway).
    Ok(unsafe { ds.assume_init() })
}

pub(crate) fn rmid(id: i32) -> std::result::Result<(), Errno> {
    // SAFETY: IPC_RMID ignores the buffer argument; null is allowed.
    let rc = unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    if rc < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Marks System V segment `id` for removal (`shmctl(IPC_RMID)`); it disappears once the
/// last process detaches.
///
/// # Errors
///
/// [`Error::NotFound`] if there is no such segment, [`Error::Sys`] otherwise (for example
/// `EPERM` for another user's segment).
pub fn sysv_remove(id: i32) -> Result<()> {
    rmid(id).map_err(|e| {
        let region = format!("System V segment id {id}");
        match e {
            Errno::EINVAL | Errno::EIDRM => Error::NotFound { region },
            e => Error::sys(region, "shmctl(IPC_RMID)", e),
        }
    })
}
