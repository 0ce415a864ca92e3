//! memfd regions (`memfd_create`): shared memory with no name in any filesystem, shared by
//! passing the descriptor (to a `fork()`ed child, or over a Unix socket with `SCM_RIGHTS`).
//!
//! Sealed memfds (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`) cannot change size, so a peer
//! that receives one knows the mapping can never be truncated under it (which would turn
//! later accesses into `SIGBUS`).

use std::ffi::CString;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::mman::MapFlags;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

use crate::checks::{self, Trust};
use crate::error::{Error, Result};
use crate::options::Options;
use crate::region::{Backend, Cleanup, Region, Unmap};
use crate::sys;

/// The seals [`Options::seal`] applies and [`Options::require_seals`] checks.
const SIZE_SEALS: SealFlag = SealFlag::F_SEAL_SHRINK.union(SealFlag::F_SEAL_GROW);

impl Options {
    /// Creates a memfd of `len` bytes and maps it. `name` only labels it in
    /// `/proc/PID/fd` and `/proc/PID/maps` (as `memfd:NAME`); it is validated like a shm
    /// name. [`Options::seal`] fixes its size for good; [`Options::huge_pages`] rounds the
    /// length up to whole huge pages; the memory is allocated at once unless
    /// [`Options::allocate`] says otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], [`Error::UnsupportedOption`], [`Error::InvalidLength`],
    /// [`Error::HugePagesUnavailable`], [`Error::NoSpace`], [`Error::Sys`].
    ///
    /// # Example
    ///
    /// ```
    /// use shm_region::{Backend, Options};
    ///
    /// let region = Options::new().seal(true).create_memfd("ring", 8192)?;
    /// assert_eq!(region.backend(), Backend::Memfd);
    /// region.write_at(0, b"memfd")?;
    /// # Ok::<(), shm_region::Error>(())
    /// ```
    pub fn create_memfd(&self, name: &str, len: usize) -> Result<Region> {
        let bare = crate::posix::validate_name(name)?;
        let desc = format!("memfd `{bare}`");
        self.check_backend(Backend::Memfd, &desc)?;
        let (len, huge) = if self.huge_pages {
            let (rounded, hp) = checks::round_to_huge_pages(&desc, len)?;
            (rounded, Some(hp))
        } else {
            (len, None)
        };
        let off = checks::off_len(&desc, len)?;
        let cname = CString::new(bare).map_err(|_| Error::InvalidName {
            name: bare.to_string(),
            reason: "it contains a NUL byte",
            max: crate::posix::MAX_NAME_LEN,
        })?;
        let mut flags = MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING;
        if self.huge_pages {
            flags |= MFdFlags::MFD_HUGETLB;
        }
        // With huge pages, any failure to get memory means none are free.
        let fail = |op, e| {
            if self.huge_pages {
                Error::huge_pages_unavailable(&desc, len, e)
            } else {
                Error::sys(&desc, op, e)
            }
        };
        let fd = memfd_create(cname.as_c_str(), flags).map_err(|e| fail("memfd_create", e))?;
        nix::unistd::ftruncate(&fd, off).map_err(|e| Error::sys(&desc, "ftruncate", e))?;
        if self.allocate.unwrap_or(true) {
            nix::fcntl::posix_fallocate(&fd, 0, off).map_err(|e| match e {
                Errno::ENOSPC | Errno::ENOMEM if !self.huge_pages => {
                    Error::no_space(&desc, len, "memory (memfd)", (0, 0))
                }
                e => fail("posix_fallocate", e),
            })?;
        }
        if self.seal {
            fcntl(
                &fd,
                FcntlArg::F_ADD_SEALS(SIZE_SEALS | SealFlag::F_SEAL_SEAL),
            )
            .map_err(|e| Error::sys(&desc, "fcntl(F_ADD_SEALS)", e))?;
        }
        let ptr = sys::map_shared_fd(&fd, len, MapFlags::empty())
            .map_err(|e| fail("mmap(MAP_SHARED)", e))?;
        Ok(Region {
            ptr,
            len,
            backend: Backend::Memfd,
            name: Some(bare.to_string()),
            desc,
            fd: Some(fd),
            unmap: Unmap::Munmap,
            cleanup: Cleanup::Nothing,
            created: true,
            huge_page_size: huge,
            guard: None,
        }
        .guarded())
    }

    /// Maps a memfd received from another process (all of it), after checking that it is a
    /// regular memory file of at least [`Options::min_len`] bytes and, with
    /// [`Options::require_seals`], that its size is sealed. Its owner and mode are not
    /// checked: the descriptor was handed over on purpose.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedOption`], [`Error::MissingSeals`], [`Error::NotRegularFile`],
    /// [`Error::TooSmall`] for an empty file (or one below `min_len`), [`Error::Sys`].
    ///
    /// # Example
    ///
    /// ```
    /// use shm_region::Options;
    ///
    /// let region = Options::new().seal(true).create_memfd("ring", 8192)?;
    /// region.write_at(0, b"memfd")?;
    /// // A second mapping of the same descriptor, as a receiving process would make.
    /// let fd = region.fd().expect("memfd regions have a descriptor").try_clone_to_owned()
    ///     .map_err(|e| shm_region::Error::NoFdReceived { detail: e.to_string() })?;
    /// let other = Options::new().require_seals(true).map_memfd(fd)?;
    /// let mut buf = [0u8; 5];
    /// other.read_at(0, &mut buf)?;
    /// assert_eq!(&buf, b"memfd");
    /// # Ok::<(), shm_region::Error>(())
    /// ```
    pub fn map_memfd(&self, fd: OwnedFd) -> Result<Region> {
        let desc = format!("received memfd (fd {})", fd.as_raw_fd());
        self.check_backend(Backend::Memfd, &desc)?;
        if self.require_seals {
            let present = fcntl(&fd, FcntlArg::F_GET_SEALS)
                .map_err(|e| Error::sys(&desc, "fcntl(F_GET_SEALS)", e))?;
            let missing = SIZE_SEALS.bits() & !present;
            if missing != 0 {
                return Err(Error::MissingSeals {
                    region: desc,
                    missing,
                    present,
                });
            }
        }
        let len = checks::check_fd(&fd, &desc, Trust::ANY, self.min_len)?;
        Region::map_existing(fd, len, Backend::Memfd, None, desc)
    }
}

/// Sends a file descriptor (for example [`Region::fd`] of a memfd region) over a connected
/// Unix stream socket with `SCM_RIGHTS`. The receiver gets its own descriptor for the same
/// open file.
///
/// # Errors
///
/// [`Error::Sys`] if `sendmsg` fails.
///
/// # Example
///
/// ```
/// use std::os::unix::net::UnixStream;
/// use shm_region::{recv_fd, send_fd, Options};
///
/// let (a, b) = UnixStream::pair().expect("socketpair");
/// let region = Options::new().seal(true).create_memfd("passed", 4096)?;
/// region.write_at(0, &[42])?;
/// send_fd(&a, region.fd().expect("memfd has an fd"))?;
/// let received = Options::new().require_seals(true).map_memfd(recv_fd(&b)?)?;
/// let mut byte = [0u8];
/// received.read_at(0, &mut byte)?;
/// assert_eq!(byte[0], 42);
/// # Ok::<(), shm_region::Error>(())
/// ```
pub fn send_fd(socket: &UnixStream, fd: BorrowedFd<'_>) -> Result<()> {
    let raw = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let payload = [0x5au8];
    let iov = [IoSlice::new(&payload)];
    sendmsg::<()>(
        socket.as_fd().as_raw_fd(),
        &iov,
        &cmsg,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(|e| Error::sys("Unix socket", "sendmsg(SCM_RIGHTS)", e))?;
    Ok(())
}

/// Receives one file descriptor sent with [`send_fd`]. Blocks until a message arrives
/// (set a read timeout on the socket to bound the wait). Extra descriptors in the same
/// message are closed.
///
/// # Errors
///
/// [`Error::NoFdReceived`] if the peer closed the socket or sent no descriptor,
/// [`Error::Sys`] if `recvmsg` fails (`EAGAIN` after a socket timeout).
pub fn recv_fd(socket: &UnixStream) -> Result<OwnedFd> {
    use std::os::fd::FromRawFd;

    let mut buf = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let msg = recvmsg::<()>(
        socket.as_fd().as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| Error::sys("Unix socket", "recvmsg(SCM_RIGHTS)", e))?;
    let bytes = msg.bytes;
    let mut received: Vec<OwnedFd> = Vec::new();
    for cmsg in msg
        .cmsgs()
        .map_err(|e| Error::sys("Unix socket", "recvmsg(cmsgs)", e))?
    {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // SAFETY: the kernel just installed this descriptor in our table for us; no
                // one else owns it.
                received.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    let mut iter = received.into_iter();
    iter.next().ok_or_else(|| Error::NoFdReceived {
        detail: if bytes == 0 {
            "the peer closed the socket".to_string()
        } else {
            format!("{bytes} byte(s) without a descriptor")
        },
    })
}
