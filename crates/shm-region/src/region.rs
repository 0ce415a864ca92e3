//! [`Region`]: one mapped range of shared memory, whatever backs it.
//!
//! Invariant kept by this module: `ptr .. ptr + len` is a live mapping, readable and writable,
//! for as long as the `Region` exists, and is unmapped exactly once when it drops. Nothing
//! here hands out `&[u8]` or `&mut [u8]` over the mapping, because another process may write
//! it at any moment; bytes move by bounds-checked volatile copies, control words through
//! aligned atomics.

use std::ffi::CString;
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use nix::errno::Errno;
use nix::sys::mman::{self, MapFlags, MmapAdvise, MsFlags};

use crate::error::{Error, Result};
use crate::sys;

/// What backs a [`Region`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// A named POSIX shared-memory object in `/dev/shm` (`shm_open`).
    PosixShm,
    /// An anonymous `MAP_SHARED` mapping, shared with `fork()`ed children.
    Anonymous,
    /// A `memfd_create` file, shared by passing its descriptor.
    Memfd,
    /// A regular file mapped `MAP_SHARED`: the bytes persist.
    File,
    /// A regular file mapped `MAP_PRIVATE`: a copy-on-write view, writes stay private.
    FilePrivate,
    /// A System V shared-memory segment (`shmget`/`shmat`).
    SysV,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::PosixShm => "posix-shm",
            Backend::Anonymous => "anonymous",
            Backend::Memfd => "memfd",
            Backend::File => "file",
            Backend::FilePrivate => "file-private",
            Backend::SysV => "sysv",
        })
    }
}

/// How [`Region::prefault_with`] brings pages into memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefault {
    /// `MADV_POPULATE_WRITE` (Linux 5.14+), falling back to [`Prefault::Touch`] where the
    /// kernel does not know it.
    Auto,
    /// `MADV_POPULATE_WRITE` only; an error where the kernel does not support it.
    Madvise,
    /// Touch every page with an atomic read-modify-write that leaves its contents unchanged.
    Touch,
}

/// `madvise` hints accepted by [`Region::advise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advice {
    /// `MADV_SEQUENTIAL`: expect sequential access; read ahead aggressively.
    Sequential,
    /// `MADV_RANDOM`: expect random access; do not read ahead.
    Random,
    /// `MADV_WILLNEED`: start reading the pages in now.
    WillNeed,
    /// `MADV_DONTNEED`: drop our page-table entries. For shared memory the data stays in the
    /// object and is faulted back in on the next access; for a copy-on-write file view,
    /// private changes are discarded.
    DontNeed,
    /// `MADV_HUGEPAGE`: back the range with transparent huge pages where the system allows.
    HugePage,
    /// `MADV_NOHUGEPAGE`: never use transparent huge pages here.
    NoHugePage,
    /// `MADV_DONTFORK`: a `fork()`ed child does not inherit this mapping.
    DontFork,
    /// `MADV_DOFORK`: undo [`Advice::DontFork`].
    DoFork,
}

impl Advice {
    fn to_nix(self) -> MmapAdvise {
        match self {
            Advice::Sequential => MmapAdvise::MADV_SEQUENTIAL,
            Advice::Random => MmapAdvise::MADV_RANDOM,
            Advice::WillNeed => MmapAdvise::MADV_WILLNEED,
            Advice::DontNeed => MmapAdvise::MADV_DONTNEED,
            Advice::HugePage => MmapAdvise::MADV_HUGEPAGE,
            Advice::NoHugePage => MmapAdvise::MADV_NOHUGEPAGE,
            Advice::DontFork => MmapAdvise::MADV_DONTFORK,
            Advice::DoFork => MmapAdvise::MADV_DOFORK,
        }
    }
}

/// Residency figures from `mincore`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Residency {
    /// Pages of the region currently in memory (in base pages of [`Region::page_size`]).
    pub resident_pages: usize,
    /// Pages the region spans.
    pub total_pages: usize,
    /// The base page size in bytes.
    pub page_size: usize,
}

impl Residency {
    /// Resident bytes (`resident_pages * page_size`).
    pub fn resident_bytes(&self) -> u64 {
        self.resident_pages as u64 * self.page_size as u64
    }
}

/// How the mapping is released.
pub(crate) enum Unmap {
    /// `munmap(ptr, len)`.
    Munmap,
    /// memmap2 owns it.
    Memmap(#[allow(dead_code)] memmap2::MmapRaw),
    /// `shmdt(ptr)`.
    SysV,
}

/// What happens to the name when the region drops.
pub(crate) enum Cleanup {
    Nothing,
    ShmUnlink(CString),
    SysVRemove(i32),
}

/// One mapped range of shared memory.
///
/// Made by the entry points of [`crate::Options`] (`create_shm`, `create_memfd`,
/// `open_file`, `create_sysv`, ...) or by [`Region::anonymous`]; used the same way whatever
/// backs it. The rings above take [`Region::as_ptr`] and [`Region::len`]; everyone
/// else copies bytes in and out with [`Region::write_at`] and [`Region::read_at`], or uses the
/// aligned atomics of [`Region::atomic_u64`] and [`Region::atomic_u32`].
///
/// # Example
///
/// ```
/// use shm_region::Region;
///
/// let region = Region::anonymous(4096)?;
/// region.write_at(0, b"hello")?;
/// let mut buf = [0u8; 5];
/// region.read_at(0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
/// # Ok::<(), shm_region::Error>(())
/// ```
pub struct Region {
    pub(crate) ptr: NonNull<u8>,
    pub(crate) len: usize,
    pub(crate) backend: Backend,
    pub(crate) name: Option<String>,
    pub(crate) desc: String,
    pub(crate) fd: Option<OwnedFd>,
    pub(crate) unmap: Unmap,
    pub(crate) cleanup: Cleanup,
    pub(crate) created: bool,
    pub(crate) huge_page_size: Option<usize>,
    /// The SIGBUS guard's registration (file-backed shared mappings).
    pub(crate) guard: Option<crate::guard::Guard>,
}

// SAFETY: a Region is a handle to memory that is shared with other processes anyway; it
// exposes the memory only through copies and atomics, which are sound from any thread.
unsafe impl Send for Region {}
// SAFETY: as above; no method hands out a non-atomic reference into the mapping.
unsafe impl Sync for Region {}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("backend", &self.backend)
            .field("name", &self.name)
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("created", &self.created)
            .finish()
    }
}

impl Region {
    /// Maps `len` bytes of anonymous shared memory (`MAP_SHARED | MAP_ANONYMOUS`), zeroed.
    ///
    /// A child made by `fork()` after this call shares the same bytes with the parent, so
    /// this is the region for parent/child pipelines. See
    /// [`Options::create_anonymous`](crate::Options::create_anonymous) for huge pages and
    /// pre-faulting.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLength`] for a zero length, [`Error::Sys`] if `mmap` fails.
    ///
    /// # Example
    ///
    /// ```
    /// use shm_region::Region;
    ///
    /// let region = Region::anonymous(1 << 20)?;
    /// assert_eq!(region.len(), 1 << 20);
    /// # Ok::<(), shm_region::Error>(())
    /// ```
    pub fn anonymous(len: usize) -> Result<Region> {
        crate::Options::new().create_anonymous(len)
    }

    /// Maps all `len` bytes of an existing object's descriptor (`MAP_SHARED`), as a region
    /// this handle did not create and that removes nothing when it drops.
    pub(crate) fn map_existing(
        fd: OwnedFd,
        len: usize,
        backend: Backend,
        name: Option<String>,
        desc: String,
    ) -> Result<Region> {
        let ptr = sys::map_shared_fd(&fd, len, MapFlags::empty())
            .map_err(|e| Error::sys(&desc, "mmap(MAP_SHARED)", e))?;
        Ok(Region {
            ptr,
            len,
            backend,
            name,
            desc,
            fd: Some(fd),
            unmap: Unmap::Munmap,
            cleanup: Cleanup::Nothing,
            created: false,
            huge_page_size: None,
            guard: None,
        }
        .guarded())
    }

    /// Registers the mapping with the SIGBUS guard (see [`crate::guard`]), for mappings of
    /// objects another process may truncate.
    pub(crate) fn guarded(mut self) -> Self {
        // Base-page zero pages cannot be mapped into a huge-page mapping: such a region is
        // not guarded (`Watch::is_guarded` says so); seal the memfd instead.
        if self.huge_page_size.is_none() {
            self.guard = crate::guard::Guard::register(self.ptr.as_ptr() as usize, self.len);
        }
        self
    }

    /// What to check after touching the memory: whether another process truncated the
    /// object under this mapping (see [`Region::check_truncated`]). Cheap and `Copy`, for
    /// hot loops.
    pub fn watch(&self) -> crate::Watch {
        self.guard
            .as_ref()
            .map_or_else(crate::Watch::never, |g| g.watch())
    }

    /// `true` once an access found the object shorter than this mapping: the pages past
    /// its end were replaced by private zero pages (so this process did not die of
    /// `SIGBUS`), and nothing read there since is data.
    pub fn is_truncated(&self) -> bool {
        self.watch().is_truncated()
    }

    /// Looks at the object's length now (`fstat`) and marks the region truncated if it is
    /// shorter than the mapping, before any access faults there; returns
    /// [`Region::is_truncated`]. For liveness code that checks every few milliseconds: a
    /// channel whose peer stopped writing would otherwise not notice until it next touches
    /// the missing pages.
    pub fn poll_truncation(&self) -> bool {
        if let (Some(guard), Some(fd)) = (&self.guard, &self.fd) {
            if !self.is_truncated() {
                if let Ok(st) = nix::sys::stat::fstat(fd) {
                    if (st.st_size.max(0) as u64) < self.len as u64 {
                        guard.mark();
                    }
                }
            }
        }
        self.is_truncated()
    }

    /// [`Error::Truncated`] once the object was found truncated (see
    /// [`Region::is_truncated`]), with the length mapped and the object's length now.
    ///
    /// # Errors
    ///
    /// [`Error::Truncated`].
    pub fn check_truncated(&self) -> Result<()> {
        if !self.is_truncated() {
            return Ok(());
        }
        let now = self
            .fd
            .as_ref()
            .and_then(|fd| nix::sys::stat::fstat(fd).ok())
            .map(|st| st.st_size.max(0) as u64);
        Err(Error::Truncated {
            region: self.desc.clone(),
            mapped: self.len as u64,
            now,
        })
    }

    /// The first byte of the mapping (page aligned).
    ///
    /// The rings build their layout on this pointer; anything dereferencing it must stay
    /// within [`Region::len`] bytes and must not create Rust references to bytes another
    /// process may write.
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: a region has at least one byte. Present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// What backs this region.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The name: the POSIX shm name without its leading `/`, the file path, the memfd
    /// name, or the System V key. `None` for anonymous memory.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// A short human-readable description, as used in error messages.
    pub fn description(&self) -> &str {
        &self.desc
    }

    /// `true` if this handle created the object (and so, unless told otherwise, removes its
    /// name when it drops).
    pub fn is_creator(&self) -> bool {
        self.created
    }

    /// The file descriptor behind the mapping (POSIX shm, memfd, file), if any.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|fd| fd.as_fd())
    }

    /// The System V segment id, for a System V region.
    pub fn sysv_id(&self) -> Option<i32> {
        match (&self.backend, &self.cleanup) {
            (Backend::SysV, Cleanup::SysVRemove(id)) => Some(*id),
            (Backend::SysV, _) => self.name.as_deref().and_then(|n| n.parse().ok()),
            _ => None,
        }
    }

    /// Whether the name (POSIX) or segment (System V) is removed when this handle drops.
    pub fn removes_on_drop(&self) -> bool {
        !matches!(self.cleanup, Cleanup::Nothing)
    }

    /// Keep the name (POSIX shm) or the segment (System V) after this handle drops, so
    /// other processes can still open it. Removal is then up to someone else
    /// ([`crate::shm_unlink`], [`crate::sysv_remove`], `shmlane rm`).
    pub fn keep_name(&mut self) {
        self.cleanup = Cleanup::Nothing;
    }

    /// The base page size of the system in bytes.
    pub fn page_size(&self) -> usize {
        sys::page_size()
    }

    /// The huge page size backing this region, if it was created with huge pages.
    pub fn huge_page_size(&self) -> Option<usize> {
        self.huge_page_size
    }

    /// Checks that `offset .. offset + len` lies inside the region and returns a pointer to
    /// its first byte.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] if the range does not fit (including arithmetic overflow).
    pub fn ptr_at(&self, offset: usize, len: usize) -> Result<NonNull<u8>> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => {
                // SAFETY: offset <= end <= self.len, so the result is inside (or one past the
                // end of) the mapping, and is non-null because the mapping is.
                Ok(unsafe { NonNull::new_unchecked(self.ptr.as_ptr().add(offset)) })
            }
            _ => Err(Error::OutOfBounds {
                region: self.desc.clone(),
                offset,
                len,
                region_len: self.len,
            }),
        }
    }

    /// Copies `src` into the region at `offset`.
    ///
    /// The copy is volatile: it is sound even while another process reads or writes the
    /// same bytes, although such a reader may then see a mix of old and new bytes.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] if `offset + src.len()` exceeds the region.
    pub fn write_at(&self, offset: usize, src: &[u8]) -> Result<()> {
        let dst = self.ptr_at(offset, src.len())?;
        // SAFETY: ptr_at checked that dst .. dst + src.len() is inside the mapping, which is
        // writable and lives as long as `self`.
        unsafe { volatile_copy_in(dst.as_ptr(), src) };
        self.check_truncated()
    }

    /// Copies bytes from the region at `offset` into `dst`.
    ///
    /// Volatile like [`Region::write_at`]: if another process writes the range meanwhile,
    /// `dst` may hold a mix of old and new bytes, never anything outside the range.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] if `offset + dst.len()` exceeds the region.
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) -> Result<()> {
        let src = self.ptr_at(offset, dst.len())?;
        // SAFETY: ptr_at checked that src .. src + dst.len() is inside the live mapping.
        unsafe { volatile_copy_out(src.as_ptr(), dst) };
        self.check_truncated()
    }

    /// Fills `len` bytes at `offset` with `byte`.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] if the range does not fit.
    pub fn fill(&self, offset: usize, len: usize, byte: u8) -> Result<()> {
        let dst = self.ptr_at(offset, len)?;
        for i in 0..len {
            // SAFETY: i < len and ptr_at checked the whole range is inside the mapping.
            unsafe { dst.as_ptr().add(i).write_volatile(byte) };
        }
        Ok(())
    }

    /// The 64-bit word at `offset`, as an atomic shared with every process mapping the
    /// region.
    ///
    /// # Errors
    ///
    /// [`Error::Misaligned`] unless `offset` is a multiple of 8, [`Error::OutOfBounds`] if
    /// the word does not fit.
    ///
    /// # Example
    ///
    /// ```
    /// use std::sync::atomic::Ordering;
    /// let region = shm_region::Region::anonymous(4096)?;
    /// region.atomic_u64(64)?.fetch_add(1, Ordering::AcqRel);
    /// assert_eq!(region.atomic_u64(64)?.load(Ordering::Acquire), 1);
    /// assert!(region.atomic_u64(3).is_err());
    /// # Ok::<(), shm_region::Error>(())
    /// ```
    pub fn atomic_u64(&self, offset: usize) -> Result<&AtomicU64> {
        let p = self.aligned_ptr(offset, 8)?;
        // SAFETY: p is 8-aligned and 8 bytes inside the mapping, which lives as long as the
        // returned borrow of self; AtomicU64 has the layout of u64 and every bit pattern is
        // valid; all access through it is atomic.
        Ok(unsafe { &*p.as_ptr().cast::<AtomicU64>() })
    }

    /// The 32-bit word at `offset`, as an atomic (for futex words and flags).
    ///
    /// # Errors
    ///
    /// [`Error::Misaligned`] unless `offset` is a multiple of 4, [`Error::OutOfBounds`] if
    /// the word does not fit.
    pub fn atomic_u32(&self, offset: usize) -> Result<&AtomicU32> {
        let p = self.aligned_ptr(offset, 4)?;
        // SAFETY: as in atomic_u64, with 4-byte size and alignment.
        Ok(unsafe { &*p.as_ptr().cast::<AtomicU32>() })
    }

    fn aligned_ptr(&self, offset: usize, size: usize) -> Result<NonNull<u8>> {
        if !offset.is_multiple_of(size) {
            return Err(Error::Misaligned {
                region: self.desc.clone(),
                offset,
                align: size,
            });
        }
        // The mapping itself is page aligned, so an aligned offset gives an aligned pointer.
        self.ptr_at(offset, size)
    }

    /// Brings every page into memory now, so the first real access does not fault. Uses
    /// [`Prefault::Auto`].
    ///
    /// # Errors
    ///
    /// See [`Region::prefault_with`].
    pub fn prefault(&self) -> Result<Prefault> {
        self.prefault_with(Prefault::Auto)
    }

    /// Brings every page into memory with the chosen method and returns the method that
    /// was used. Contents are unchanged.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] if `madvise` fails for a reason other than an old kernel (with
    /// [`Prefault::Madvise`], for any reason).
    pub fn prefault_with(&self, how: Prefault) -> Result<Prefault> {
        if how != Prefault::Touch {
            // SAFETY: the whole mapping is ours and live; MADV_POPULATE_WRITE does not change
            // contents, it only faults pages in writable.
            let r = unsafe {
                mman::madvise(self.ptr.cast(), self.len, MmapAdvise::MADV_POPULATE_WRITE)
            };
            match r {
                Ok(()) => return Ok(Prefault::Madvise),
                Err(Errno::EINVAL) if how == Prefault::Auto => {}
                Err(e) => return Err(Error::sys(&self.desc, "madvise(MADV_POPULATE_WRITE)", e)),
            }
        }
        let step = self.huge_page_size.unwrap_or_else(sys::page_size);
        let mut off = 0;
        while off < self.len {
            // SAFETY: off < len, so the byte is inside the mapping; an atomic fetch_add of 0
            // writes the page (faulting it in writable) without changing any byte, and is
            // atomic so it cannot race with another writer of that byte.
            let byte = unsafe { &*self.ptr.as_ptr().add(off).cast::<AtomicU8>() };
            byte.fetch_add(0, Ordering::Relaxed);
            off += step;
        }
        Ok(Prefault::Touch)
    }

    /// Locks the region in memory (`mlock`): it is faulted in now and never swapped.
    ///
    /// # Errors
    ///
    /// [`Error::LockLimit`] with the process's `RLIMIT_MEMLOCK` when the kernel refuses.
    pub fn lock(&self) -> Result<()> {
        // SAFETY: the range is our live mapping; mlock does not change its contents.
        match unsafe { mman::mlock(self.ptr.cast(), self.len) } {
            Ok(()) => Ok(()),
            Err(e @ (Errno::ENOMEM | Errno::EPERM | Errno::EAGAIN)) => {
                let (soft, hard) = sys::memlock_limit();
                Err(Error::LockLimit {
                    region: self.desc.clone(),
                    len: self.len as u64,
                    soft,
                    hard,
                    source: e,
                })
            }
            Err(e) => Err(Error::sys(&self.desc, "mlock", e)),
        }
    }

    /// Undoes [`Region::lock`].
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] if `munlock` fails.
    pub fn unlock(&self) -> Result<()> {
        // SAFETY: the range is our live mapping.
        unsafe { mman::munlock(self.ptr.cast(), self.len) }
            .map_err(|e| Error::sys(&self.desc, "munlock", e))
    }

    /// Gives the kernel a hint about the whole region (`madvise`).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] if the kernel refuses the hint (for example [`Advice::HugePage`] where
    /// transparent huge pages are disabled).
    pub fn advise(&self, advice: Advice) -> Result<()> {
        self.advise_range(0, self.len, advice)
    }

    /// Gives the kernel a hint about part of the region. `offset` must be page aligned.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] for a range outside the region, [`Error::Misaligned`] for an
    /// unaligned offset, [`Error::Sys`] if the kernel refuses.
    pub fn advise_range(&self, offset: usize, len: usize, advice: Advice) -> Result<()> {
        let p = self.ptr_at(offset, len)?;
        let page = sys::page_size();
        if !offset.is_multiple_of(page) {
            return Err(Error::Misaligned {
                region: self.desc.clone(),
                offset,
                align: page,
            });
        }
        // SAFETY: the range is inside our live mapping and page aligned. None of the accepted
        // hints makes memory invalid: DONTNEED on shared memory only drops page-table
        // entries (data stays in the object), and on a private view re-reads the file.
        unsafe { mman::madvise(p.cast(), len, advice.to_nix()) }
            .map_err(|e| Error::sys(&self.desc, "madvise", e))
    }

    /// How much of the region is in memory now (`mincore`).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] if `mincore` fails.
    pub fn residency(&self) -> Result<Residency> {
        let page = sys::page_size();
        let total = self.len.div_ceil(page);
        let mut vec = vec![0u8; total];
        // SAFETY: the range is our live mapping (page aligned start); vec has one byte for
        // each page of it, as mincore requires. nix has no mincore, hence libc.
        let rc = unsafe { libc::mincore(self.ptr.as_ptr().cast(), self.len, vec.as_mut_ptr()) };
        if rc != 0 {
            return Err(Error::sys(&self.desc, "mincore", Errno::last()));
        }
        Ok(Residency {
            resident_pages: vec.iter().filter(|b| **b & 1 != 0).count(),
            total_pages: total,
            page_size: page,
        })
    }

    /// Writes changes back to the file and waits for the write (`msync(MS_SYNC)`). For
    /// memory-only backends this is cheap and harmless.
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] if `msync` fails (for example `EIO` from the disk).
    pub fn flush(&self) -> Result<()> {
        self.msync(0, self.len, MsFlags::MS_SYNC)
    }

    /// Starts writing changes back to the file without waiting (`msync(MS_ASYNC)`).
    ///
    /// # Errors
    ///
    /// [`Error::Sys`] if `msync` fails.
    pub fn flush_async(&self) -> Result<()> {
        self.msync(0, self.len, MsFlags::MS_ASYNC)
    }

    /// Writes back part of the region and waits. The start is rounded down to a page.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfBounds`] for a range outside the region, [`Error::Sys`] if `msync`
    /// fails.
    pub fn flush_range(&self, offset: usize, len: usize) -> Result<()> {
        self.ptr_at(offset, len)?;
        let page = sys::page_size();
        let start = offset - offset % page;
        self.msync(start, len + (offset - start), MsFlags::MS_SYNC)
    }

    fn msync(&self, offset: usize, len: usize, flags: MsFlags) -> Result<()> {
        if self.backend == Backend::FilePrivate {
            // A private view has nothing to write back.
            return Ok(());
        }
        let p = self.ptr_at(offset, len)?;
        // SAFETY: the (page aligned) range is inside our live mapping.
        unsafe { mman::msync(p.cast(), len, flags) }.map_err(|e| Error::sys(&self.desc, "msync", e))
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // Unregister from the SIGBUS guard before unmapping, so the handler never maps over
        // an address range that may be reused.
        drop(self.guard.take());
        match &self.unmap {
            Unmap::Munmap => {
                // SAFETY: ptr/len is the mapping we created with mmap and nothing borrows it
                // any more (every borrow is tied to &self).
                let _ = unsafe { mman::munmap(self.ptr.cast(), self.len) };
            }
            Unmap::Memmap(_) => {} // memmap2 unmaps when the field drops.
            Unmap::SysV => {
                // SAFETY: ptr is the address shmat returned and nothing borrows it any more.
                let _ = unsafe { libc::shmdt(self.ptr.as_ptr().cast()) };
            }
        }
        match &self.cleanup {
            Cleanup::Nothing => {}
            Cleanup::ShmUnlink(name) => {
                let _ = mman::shm_unlink(name.as_c_str());
            }
            Cleanup::SysVRemove(id) => {
                let _ = crate::sysv::rmid(*id);
            }
        }
    }
}

/// Volatile copy from process memory into the mapping, 8 bytes at a time where aligned.
///
/// # Safety
///
/// `dst .. dst + src.len()` must be valid for writes.
unsafe fn volatile_copy_in(dst: *mut u8, src: &[u8]) {
    let n = src.len();
    let mut i = 0;
    while i < n && !(dst as usize + i).is_multiple_of(8) {
        // SAFETY: i < n, inside the range the caller vouched for.
        unsafe { dst.add(i).write_volatile(src[i]) };
        i += 1;
    }
    while i + 8 <= n {
        let mut word = [0u8; 8];
        word.copy_from_slice(&src[i..i + 8]);
        // SAFETY: i + 8 <= n and dst + i is 8-aligned (the loop above aligned it).
        unsafe {
            dst.add(i)
                .cast::<u64>()
                .write_volatile(u64::from_ne_bytes(word))
        };
        i += 8;
    }
    while i < n {
        // SAFETY: i < n.
        unsafe { dst.add(i).write_volatile(src[i]) };
        i += 1;
    }
}

/// Volatile copy from the mapping into process memory, 8 bytes at a time where aligned.
///
/// # Safety
///
/// `src .. src + dst.len()` must be valid for reads.
unsafe fn volatile_copy_out(src: *const u8, dst: &mut [u8]) {
    let n = dst.len();
    let mut i = 0;
    while i < n && !(src as usize + i).is_multiple_of(8) {
        // SAFETY: i < n, inside the range the caller vouched for.
        dst[i] = unsafe { src.add(i).read_volatile() };
        i += 1;
    }
    while i + 8 <= n {
        // SAFETY: i + 8 <= n and src + i is 8-aligned.
        let word = unsafe { src.add(i).cast::<u64>().read_volatile() };
        dst[i..i + 8].copy_from_slice(&word.to_ne_bytes());
        i += 8;
    }
    while i < n {
        // SAFETY: i < n.
        dst[i] = unsafe { src.add(i).read_volatile() };
        i += 1;
    }
}
