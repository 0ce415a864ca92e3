//! What a service links to talk to other processes through shared memory.
//!
//! This crate is being built up (see issue 6): so far it holds the [`fork`] helpers and the
//! [`Error`] type; named channels, liveness and the `shmlane` command-line tool follow.
#![deny(unsafe_op_in_unsafe_fn)]

mod error;
pub mod fork;

pub use error::{Error, Result};

/// The README's Rust examples run as doctests (this crate depends on both libraries).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
