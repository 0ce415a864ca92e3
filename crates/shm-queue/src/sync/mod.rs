//! One facade for the synchronisation primitives the rings use, so the same ring code runs
//! over mapped memory and under [loom](https://docs.rs/loom).
//!
//! Without `cfg(loom)` these are the `core` atomics, which have the size and alignment of
//! the plain integers and so can be placed in a shared mapping. Under `cfg(loom)` they are
//! loom's model-checked atomics, which are bigger and process-private: they must only ever
//! live in heap memory built by a loom test (see [`crate::mem`]), never in a mapping.
//!
//! Payload cells: in a mapping, elements are reached by raw pointers inside the window the
//! protocol grants (see [`crate::mem`]); under loom every element is a
//! `loom::cell::UnsafeCell`, so loom reports a read or write of a slot that the protocol did
//! not order as a data race.

#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::Arc;

#[cfg(not(loom))]
#[allow(unused_imports)]
pub(crate) use core::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::Arc;

/// The cell every payload element lives in under loom.
#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell as PayloadCell;

pub(crate) mod claim;
