//! Small system queries and the one `mmap` call every fd-backed backend shares.

use std::num::NonZeroUsize;
use std::os::fd::AsFd;
use std::ptr::NonNull;
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::sys::mman::{self, MapFlags, ProtFlags};
use nix::sys::resource::{getrlimit, Resource};

/// The base page size (`sysconf(_SC_PAGESIZE)`), 4096 if the query fails.
pub(crate) fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .and_then(|v| usize::try_from(v).ok())
            .filter(|v| v.is_power_of_two())
            .unwrap_or(4096)
    })
}

/// `RLIMIT_MEMLOCK` (soft, hard) in bytes; `u64::MAX` for unlimited or unknown.
pub(crate) fn memlock_limit() -> (u64, u64) {
    getrlimit(Resource::RLIMIT_MEMLOCK).unwrap_or((u64::MAX, u64::MAX))
}

/// `RLIMIT_NOFILE` (soft, hard); `u64::MAX` for unlimited or unknown.
pub(crate) fn nofile_limit() -> (u64, u64) {
    getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((u64::MAX, u64::MAX))
}

/// Huge page figures from `/proc/meminfo`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HugePageInfo {
    pub size: u64,
    pub total: u64,
    pub free: u64,
}

pub(crate) fn huge_page_info() -> HugePageInfo {
    let mut info = HugePageInfo {
        size: 2 << 20,
        ..HugePageInfo::default()
    };
    let Ok(text) = std::fs::read_to_string("/proc/meminfo") else {
        return info;
    };
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(value) = value.parse::<u64>() else {
            continue;
        };
        match key {
            "HugePages_Total:" => info.total = value,
            "HugePages_Free:" => info.free = value,
            "Hugepagesize:" => info.size = value.saturating_mul(1024),
            _ => {}
        }
    }
    info
}

/// The huge page size in bytes (2 MiB if `/proc/meminfo` does not say).
pub(crate) fn huge_page_size() -> usize {
    usize::try_from(huge_page_info().size).unwrap_or(2 << 20)
}

/// Total and available bytes of the filesystem holding `path`, `(0, 0)` if unknown.
pub(crate) fn fs_space(path: &str) -> (u64, u64) {
    match nix::sys::statvfs::statvfs(path) {
        Ok(s) => {
            let frag = s.fragment_size();
            (
                s.blocks().saturating_mul(frag),
                s.blocks_available().saturating_mul(frag),
            )
        }
        Err(_) => (0, 0),
    }
}

/// `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_SHARED | extra, fd, 0)`.
pub(crate) fn map_shared_fd(
    fd: impl AsFd,
    len: usize,
    extra: MapFlags,
) -> Result<NonNull<u8>, Errno> {
    let len = NonZeroUsize::new(len).ok_or(Errno::EINVAL)?;
    // SAFETY: we ask the kernel for a fresh mapping at an address of its choosing, so no
    // existing memory is affected; the caller owns the result and unmaps it once.
    let p = unsafe {
        mman::mmap(
            None,
            len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED | extra,
            fd,
            0,
        )
    }?;
    Ok(p.cast())
}

/// Converts a length to `off_t`, for `ftruncate` and `posix_fallocate`.
pub(crate) fn to_off(len: usize) -> Option<libc::off_t> {
    libc::off_t::try_from(len).ok()
}
