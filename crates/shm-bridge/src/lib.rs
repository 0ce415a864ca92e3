//! What a service links to talk to other processes through shared memory.
//!
//! This crate is being built up (see issue 6): so far it holds the [`fork`] helpers and the
//! [`Error`] type; named channels, liveness and the `shmlane` command-line tool follow.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod channel;
pub mod control;
mod endpoint;
mod error;
pub mod fork;
pub mod inspect;
mod lock;
pub mod stamp;

pub use channel::{
    ByteReceiver, ByteSender, ChannelOptions, MpmcReceiver, MpmcSender, Receiver, Sender,
};
pub use control::{ChannelKind, Role};
pub use endpoint::{shm_name, shm_path, validate_name, PeerState, Reclaimed, PREFIX};
pub use error::{Error, Result};
pub use shm_queue::wait::WaitStrategy;

/// The README's Rust examples run as doctests (this crate depends on both libraries).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
