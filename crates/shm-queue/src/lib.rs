//! Lock-free rings laid out in shared memory, for passing messages between processes on
//! one Linux host.
//!
//! A ring lives in a [`shm_region::Region`]: a [`header`] of fixed-width fields that any
//! process can validate, followed by the ring's slots. One process creates the ring, any other
//! mapping the same memory attaches to it, and each side takes its handle:
//!
//! ```
//! use shm_queue::spsc::Ring;
//! use shm_region::Region;
//! use std::sync::Arc;
//!
//! let region = Arc::new(Region::anonymous(Ring::<u64>::required_bytes(1024)?)?);
//! let mut tx = Ring::<u64>::create(region.clone(), 1024)?.producer()?;
//! // ... in the other process, over the same memory:
//! let mut rx = Ring::<u64>::attach(region)?.consumer()?;
//!
//! tx.try_push(7)?;
//! assert_eq!(rx.try_pop()?, 7);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! | module | what |
//! |---|---|
//! | [`spsc`] | single producer, single consumer, fixed-size `T: bytemuck::Pod` elements |
//! | [`bytes`] | single producer, single consumer, variable-length byte messages, zero-copy claims and reads |
//! | [`broadcast`] | one publisher, many subscribers each reading every element at its own pace, lossless (the slowest gates the publisher, or is evicted) or lossy (a lapped subscriber learns how many it lost) |
//! | [`mpmc`] | any number of producers and consumers in any number of processes, `T: bytemuck::Pod`, recovery of claims left by dead processes |
//! | [`wait`] | wait strategies: spin, yield, then futex sleep, with deadlines; no syscall when nobody sleeps |
//! | [`header`] | the shared header, its constants and the element-type fingerprint |
//! | [`Error`] | the one error type |
//!
//! Everything read from shared memory is validated: a broken or hostile peer process can
//! garble the messages it sends, but never make this crate read or write outside the ring,
//! panic, or hand out a reference to memory that might change under it.
//!
//! # Racy access to `MAP_SHARED` memory
//!
//! All ring memory is reached through one layer (`mem`): control words are atomics, and
//! payload moves only by `copy_nonoverlapping` between the mapping and process memory,
//! inside the window the ring protocol grants. Another process may still write the same
//! bytes at the same moment. Rust's memory model does not describe memory shared with
//! another process; the assumption this crate makes, as every shared-memory transport must,
//! is that the compiler cannot see that process and treats the mapping as opaque memory: a
//! copy yields some bytes, which are a valid value because every payload type is `Pod`, and a
//! copied value is never re-read from the mapping. No `&`/`&mut` reference to payload bytes
//! in the mapping is ever created. If another process truncates the object, the region's
//! SIGBUS guard keeps this process alive and every operation reports
//! [`TryError::Truncated`].
//!
//! Under `cfg(loom)` the same ring code runs over heap memory with loom's atomics and cells
//! (see `tests/loom_spsc.rs`); the region-based constructors are then absent and
//! `spsc::Ring::new_model` builds rings instead.
#![deny(unsafe_op_in_unsafe_fn)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod broadcast;
pub mod bytes;
pub mod element;
mod error;
pub mod header;
/// Drivers that play a hostile peer, for the fuzz targets and the proptest suite.
#[cfg(all(feature = "test-hooks", not(loom)))]
pub mod hostile;
mod mem;
pub mod mpmc;
pub mod spsc;
mod sync;
pub mod wait;

pub use element::{Element, ElementType, Raw};
pub use error::{Error, TryError, Word};
