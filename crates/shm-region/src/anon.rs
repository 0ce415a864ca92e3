//! Anonymous shared memory (`MAP_SHARED | MAP_ANONYMOUS`), inherited across `fork()`.
//!
//! memmap2's `map_anon` is `MAP_PRIVATE`, which a child would copy on write, so this backend
//! calls `mmap` itself.

use std::num::NonZeroUsize;

use nix::errno::Errno;
use nix::sys::mman::{self, MapFlags, ProtFlags};

use crate::error::{Error, Result};
use crate::region::{Backend, Cleanup, Region, Unmap};
use crate::sys;

/// Options for an anonymous shared region; [`Region::anonymous`] is the shortcut with the
/// defaults.
///
/// # Example
///
/// ```
/// use shm_region::AnonOptions;
///
/// let region = AnonOptions::new().populate(true).create(64 * 1024)?;
/// assert_eq!(region.residency()?.resident_pages, region.residency()?.total_pages);
/// # Ok::<(), shm_region::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "options do nothing until passed to a constructor"]
pub struct AnonOptions {
    huge_pages: bool,
    populate: bool,
}

impl AnonOptions {
    /// Default options: base pages, faulted in lazily.
    pub fn new() -> Self {
        Self::default()
    }

    /// Back the region with reserved huge pages (`MAP_HUGETLB`). The length is rounded up to
    /// whole huge pages.
    pub fn huge_pages(mut self, yes: bool) -> Self {
        self.huge_pages = yes;
        self
    }

    /// Fault every page in at creation (`MAP_POPULATE`).
    pub fn populate(mut self, yes: bool) -> Self {
        self.populate = yes;
        self
    }

    /// Maps `len` zeroed bytes shared with future `fork()` children.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLength`] for zero, [`Error::HugePagesUnavailable`] when huge pages
    /// were asked for and none are free, [`Error::Sys`] for other `mmap` failures.
    pub fn create(&self, len: usize) -> Result<Region> {
        let desc = "anonymous shared region".to_string();
        let mut len = len;
        if len == 0 {
            return Err(Error::InvalidLength {
                region: desc,
                len: 0,
                reason: "a region needs at least one byte".into(),
            });
        }
        let mut flags = MapFlags::MAP_SHARED;
        let mut huge = None;
        if self.huge_pages {
            let info = sys::huge_page_info();
            let hp = usize::try_from(info.size).unwrap_or(2 << 20);
            len = len
                .checked_next_multiple_of(hp)
                .ok_or_else(|| Error::InvalidLength {
                    region: desc.clone(),
                    len: len as u64,
                    reason: "too large to round up to whole huge pages".into(),
                })?;
            flags |= MapFlags::MAP_HUGETLB;
            huge = Some(hp);
        }
        if self.populate {
            flags |= MapFlags::MAP_POPULATE;
        }
        let nz = NonZeroUsize::new(len)
            .ok_or(Errno::EINVAL)
            .map_err(|e| Error::sys(&desc, "mmap", e))?;
        // SAFETY: a fresh anonymous mapping at an address the kernel picks affects no
        // existing memory; the Region below owns it and unmaps it once.
        let r = unsafe {
            mman::mmap_anonymous(
                None,
                nz,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                flags,
            )
        };
        let ptr = match r {
            Ok(p) => p.cast(),
            Err(e) if self.huge_pages => {
                let info = sys::huge_page_info();
                return Err(Error::HugePagesUnavailable {
                    region: desc,
                    len: len as u64,
                    huge_page_size: info.size,
                    free: info.free,
                    total: info.total,
                    source: e,
                });
            }
            Err(e) => return Err(Error::sys(desc, "mmap(MAP_SHARED|MAP_ANONYMOUS)", e)),
        };
        Ok(Region {
            ptr,
            len,
            backend: Backend::Anonymous,
            name: None,
            desc,
            fd: None,
            unmap: Unmap::Munmap,
            cleanup: Cleanup::Nothing,
            created: true,
            huge_page_size: huge,
        })
    }
}
