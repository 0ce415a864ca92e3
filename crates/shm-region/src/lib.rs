//! Shared memory for inter-process communication on Linux.
//!
//! One type, [`Region`], stands for a mapped range of shared memory whatever backs it, so
//! the rings built on it do not care where the bytes come from:
//!
//! | backend | made with [`Options`] | shared with | survives its processes |
//! |---|---|---|---|
//! | named POSIX shm (`/dev/shm/NAME`) | `create_shm`, `open_shm`, `open_or_create_shm` | any process that knows the name | until unlinked or reboot |
//! | anonymous `MAP_SHARED` | [`Region::anonymous`], `create_anonymous` | `fork()`ed children | no |
//! | memfd | `create_memfd`, `map_memfd`, with [`send_fd`]/[`recv_fd`] | whoever gets the descriptor | no |
//! | regular file | `create_file`, `open_file`, `open_or_create_file` | any process that can open the file | yes, on disk |
//! | System V segment | `create_sysv`, `attach_sysv`, `open_sysv_key` | any process that knows the key or id | until removed or reboot |
//!
//! One [`Options`] value carries every setting (mode, huge pages, allocation, owner and mode
//! checks, seals, ...), each documented once; a setting the chosen backend cannot honour is
//! an [`Error::UnsupportedOption`] rather than silently ignored.
//!
//! Every region offers the same figures and tuning: [`Region::len`], [`Region::page_size`],
//! [`Region::residency`] (`mincore`), [`Region::prefault`], [`Region::lock`] (`mlock`),
//! [`Region::advise`] (`madvise`), [`Region::flush`] (`msync`).
//!
//! Shared memory is written by other processes at any moment, so no API here hands out
//! `&[u8]` or `&mut [u8]` over it: bytes move with the bounds-checked volatile copies
//! [`Region::read_at`] and [`Region::write_at`], control words are reached through the
//! aligned atomics of [`Region::atomic_u64`] and [`Region::atomic_u32`], and the rings of
//! `shm-queue` build their own protocol on [`Region::as_ptr`] and [`Region::len`].
//!
//! # Example: a parent and a `fork()`ed child share an anonymous region
//!
//! ```
//! use shm_region::Region;
//! use std::sync::atomic::Ordering;
//!
//! let region = Region::anonymous(4096)?;
//! // SAFETY: the child only touches the region and calls _exit.
//! match unsafe { nix::unistd::fork() }.expect("fork") {
//!     nix::unistd::ForkResult::Child => {
//!         let ok = region.write_at(8, b"from the child").is_ok();
//!         if let Ok(flag) = region.atomic_u64(0) {
//!             flag.store(1, Ordering::Release);
//!         }
//!         // SAFETY: _exit is always safe to call; it skips destructors on purpose.
//!         unsafe { libc::_exit(if ok { 0 } else { 1 }) }
//!     }
//!     nix::unistd::ForkResult::Parent { child } => {
//!         nix::sys::wait::waitpid(child, None).expect("waitpid");
//!         assert_eq!(region.atomic_u64(0)?.load(Ordering::Acquire), 1);
//!         let mut buf = [0u8; 14];
//!         region.read_at(8, &mut buf)?;
//!         assert_eq!(&buf, b"from the child");
//!     }
//! }
//! # Ok::<(), shm_region::Error>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

mod anon;
mod checks;
mod error;
mod file;
pub mod guard;
mod memfd;
mod options;
mod posix;
mod region;
mod sys;
mod sysv;

pub use error::{Error, Result};
pub use guard::Watch;
pub use memfd::{recv_fd, send_fd};
pub use options::Options;
pub use posix::{shm_unlink, validate_name, MAX_NAME_LEN, SHM_DIR};
pub use region::{Advice, Backend, Prefault, Region, Residency};
pub use sysv::sysv_remove;
