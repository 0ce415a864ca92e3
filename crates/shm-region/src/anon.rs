//! Anonymous shared memory (`MAP_SHARED | MAP_ANONYMOUS`), inherited across `fork()`.
//!
//! memmap2's `map_anon` is `MAP_PRIVATE`, which a child would copy on write, so this backend
//! calls `mmap` itself.

use std::num::NonZeroUsize;

use nix::errno::Errno;
use nix::sys::mman::{self, MapFlags, ProtFlags};

use crate::checks;
use crate::error::{Error, Result};
use crate::options::Options;
use crate::region::{Backend, Cleanup, Region, Unmap};

impl Options {
    /// Maps `len` zeroed bytes of anonymous shared memory (`MAP_SHARED | MAP_ANONYMOUS`),
    /// shared with `fork()` children made after this call. [`Options::huge_pages`] rounds
    /// the length up to whole huge pages; [`Options::populate`] faults every page in now.
    /// [`Region::anonymous`] is the shortcut with the defaults.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedOption`], [`Error::InvalidLength`] for zero,
    /// [`Error::HugePagesUnavailable`] when huge pages were asked for and none are free,
    /// [`Error::Sys`] for other `mmap` failures.
    ///
    /// # Example
    ///
    /// ```
    /// use shm_region::Options;
    ///
    /// let region = Options::new().populate(true).create_anonymous(64 * 1024)?;
    /// assert_eq!(region.residency()?.resident_pages, region.residency()?.total_pages);
    /// # Ok::<(), shm_region::Error>(())
    /// ```
    pub fn create_anonymous(&self, len: usize) -> Result<Region> {
        let desc = "anonymous shared region".to_string();
        self.check_backend(Backend::Anonymous, &desc)?;
        checks::nonzero(&desc, len)?;
        let mut len = len;
        let mut flags = MapFlags::MAP_SHARED;
        let mut huge = None;
        if self.huge_pages {
            let (rounded, hp) = checks::round_to_huge_pages(&desc, len)?;
            len = rounded;
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
            Err(e) if self.huge_pages => return Err(Error::huge_pages_unavailable(desc, len, e)),
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
            guard: None,
        })
    }
}
