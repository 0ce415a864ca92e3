//! System V shared-memory segments (`shmget`, `shmat`, `shmdt`, `shmctl`), for interop with
//! programs that use them. nix has none of these calls, so this module uses libc.

use std::ptr::NonNull;

use nix::errno::Errno;

use crate::checks;
use crate::error::{Error, Result};
use crate::options::Options;
use crate::region::{Backend, Cleanup, Region, Unmap};
use crate::sys;

impl Options {
    /// Creates a new segment of `len` bytes under `key` (`None` for `IPC_PRIVATE`, reachable
    /// only by id) with [`Options::mode`] (and `SHM_HUGETLB` with [`Options::huge_pages`]),
    /// and attaches it. The segment is marked for removal (`IPC_RMID`) when the returned
    /// region drops, unless [`Options::keep_name`] (or, later, [`Region::keep_name`]).
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedOption`], [`Error::InvalidLength`] for zero,
    /// [`Error::AlreadyExists`] if the key is taken, [`Error::HugePagesUnavailable`],
    /// [`Error::Sys`] otherwise.
    ///
    /// # Example
    ///
    /// ```
    /// use shm_region::{Backend, Options};
    ///
    /// let a = Options::new().create_sysv(None, 8192)?; // IPC_PRIVATE; removed when `a` drops
    /// assert_eq!(a.backend(), Backend::SysV);
    /// assert!(a.sysv_id().is_some());
    /// # Ok::<(), shm_region::Error>(())
    /// ```
    pub fn create_sysv(&self, key: Option<i32>, len: usize) -> Result<Region> {
        let desc = match key {
            Some(k) => format!("System V segment with key {k:#x}"),
            None => "private System V segment".to_string(),
        };
        self.check_backend(Backend::SysV, &desc)?;
        checks::nonzero(&desc, len)?;
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
                    Error::huge_pages_unavailable(desc, len, e)
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

    /// Attaches the segment with id `id`, all of it, after checking that it belongs to us
    /// (unless [`Options::allow_foreign_owner`]), is not writable by group or others
    /// (unless [`Options::allow_shared_write`]) and holds at least [`Options::min_len`]
    /// bytes. The segment is not removed when the region drops.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedOption`], [`Error::NotFound`], [`Error::ForeignOwner`],
    /// [`Error::InsecureMode`], [`Error::TooSmall`], [`Error::Sys`].
    ///
    /// # Example
    ///
    /// ```
    /// use shm_region::Options;
    ///
    /// let a = Options::new().create_sysv(None, 8192)?;
    /// let id = a.sysv_id().expect("a System V region has an id");
    /// let b = Options::new().min_len(8192).attach_sysv(id)?;
    /// a.write_at(0, b"sysv")?;
    /// let mut buf = [0u8; 4];
    /// b.read_at(0, &mut buf)?;
    /// assert_eq!(&buf, b"sysv");
    /// # Ok::<(), shm_region::Error>(())
    /// ```
    pub fn attach_sysv(&self, id: i32) -> Result<Region> {
        let desc = format!("System V segment id {id}");
        self.check_backend(Backend::SysV, &desc)?;
        let ds = stat(id).map_err(|e| match e {
            Errno::EINVAL | Errno::EIDRM => Error::NotFound {
                region: desc.clone(),
            },
            e => Error::sys(desc.clone(), "shmctl(IPC_STAT)", e),
        })?;
        checks::owner_and_mode(
            &desc,
            ds.shm_perm.uid,
            u32::from(ds.shm_perm.mode),
            self.trust(),
        )?;
        let size = checks::at_least(&desc, ds.shm_segsz as u64, self.min_len)?;
        self.attach_id(id, size, false)
    }

    /// Looks up the segment under `key` and attaches it like [`Options::attach_sysv`].
    ///
    /// # Errors
    ///
    /// As [`Options::attach_sysv`].
    ///
    /// # Example
    ///
    /// ```
    /// use shm_region::{Error, Options};
    ///
    /// let key = 0x5348_d000 | (std::process::id() as i32 & 0xfff);
    /// let a = Options::new().create_sysv(Some(key), 4096)?;
    /// let b = Options::new().open_sysv_key(key)?;
    /// assert_eq!(a.sysv_id(), b.sysv_id());
    /// drop((a, b));
    /// assert!(matches!(Options::new().open_sysv_key(key), Err(Error::NotFound { .. })));
    /// # Ok::<(), shm_region::Error>(())
    /// ```
    pub fn open_sysv_key(&self, key: i32) -> Result<Region> {
        let desc = format!("System V segment with key {key:#x}");
        self.check_backend(Backend::SysV, &desc)?;
        // SAFETY: plain integers.
        let id = unsafe { libc::shmget(key, 0, 0) };
        if id < 0 {
            return Err(match Errno::last() {
                Errno::ENOENT => Error::NotFound { region: desc },
                e => Error::sys(desc, "shmget", e),
            });
        }
        self.attach_sysv(id)
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
            cleanup: if created && !self.keep_name {
                Cleanup::SysVRemove(id)
            } else {
                Cleanup::Nothing
            },
            created,
            huge_page_size: self.huge_pages.then(sys::huge_page_size),
            guard: None,
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
