//! Shared memory for inter-process communication on Linux.
//!
//! One type, [`Region`], stands for a mapped range of shared memory whatever backs it:
//!
//! | backend | made with | shared with |
//! |---|---|---|
//! | anonymous `MAP_SHARED` | [`Region::anonymous`], [`AnonOptions`] | `fork()`ed children |
//!
//! The rings of `shm-queue` are built on [`Region::as_ptr`] and [`Region::len`]; other code
//! moves bytes with the bounds-checked [`Region::read_at`] and [`Region::write_at`] and
//! reaches control words through [`Region::atomic_u64`] and [`Region::atomic_u32`]. No API
//! hands out `&[u8]` over memory another process may be writing.
#![deny(unsafe_op_in_unsafe_fn)]

mod anon;
mod error;
mod region;
mod sys;
mod sysv;

pub use anon::AnonOptions;
pub use error::{Error, Result};
pub use region::{Advice, Backend, Prefault, Region, Residency};
pub use sysv::{sysv_remove, SysVOptions};
