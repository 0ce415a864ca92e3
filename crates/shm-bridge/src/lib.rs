//! What a service links to talk to other processes through shared memory.
//!
//! - [`channel`]: named channels. A producer process creates `/dev/shm/shmlane.NAME` with
//!   [`ChannelOptions`]; consumers connect with a deadline. Typed ([`Sender`]/[`Receiver`]),
//!   byte-message ([`ByteSender`]/[`ByteReceiver`]) and MPMC ([`MpmcSender`]/[`MpmcReceiver`])
//!   channels share one set of rules for liveness, shutdown and recovery.
//! - [`control`]: the control block each channel keeps after its ring.
//! - [`inspect`]: read-only views of every channel, for `shmlane list`, `inspect`, `rm`, `gc`
//!   (the `shmlane` tool itself is the `shmlane-cli` package, so a service that links this
//!   crate gets none of the tool's dependencies).
//! - [`fork`]: run closures in `fork()`ed children over anonymous or memfd regions.
//!
//! Liveness never trusts a pid: each role holds an open-file-description lock
//! (`F_OFD_SETLK`) on one byte of the channel's file, which the kernel releases when the
//! process dies, and a heartbeat word per endpoint shows a stopped or hung peer. One
//! background thread per process (`shmlane-liveness`, started with the first endpoint and
//! joined when the last one closes) refreshes the words of all of a process's endpoints, so
//! an idle channel costs a store per period, not a thread.
//!
//! ```
//! use shm_bridge::{ChannelOptions, Error};
//! # let name = format!("doc-lib-{}", std::process::id());
//!
//! // Producer process:
//! let mut tx = ChannelOptions::new().capacity(4096).create_bytes(&name)?;
//! // Consumer process (connect waits up to the timeout for the channel to appear):
//! let mut rx = ChannelOptions::new().connect_bytes(&name)?;
//!
//! tx.send(b"order 1")?;
//! tx.close();
//! let mut buf = vec![0u8; rx.max_message()];
//! let n = rx.recv_deadline(&mut buf, None)?;
//! assert_eq!(&buf[..n], b"order 1");
//! assert!(matches!(rx.recv_deadline(&mut buf, None), Err(Error::Closed { .. })));
//! # Ok::<(), Error>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

pub mod channel;
pub mod control;
mod endpoint;
mod error;
pub mod fork;
mod heartbeat;
pub mod inspect;
mod lock;

/// Async ends (feature `async`, alias `tokio`); see the module docs.
#[cfg(feature = "async")]
pub use channel::aio;
pub use channel::{
    AnyByteReceiver, AnyByteSender, BroadcastReceiver, BroadcastSender, ByteReceiver, ByteSender,
    ChannelOptions, MpmcReceiver, MpmcSender, Receiver, Sender,
};
pub use control::{ChannelKind, Role};
pub use endpoint::{shm_name, shm_path, validate_name, PeerState, Reclaimed, PREFIX};
pub use error::{Error, Result};
pub use shm_queue::broadcast::{SlowPolicy, SubscriberInfo};
pub use shm_queue::wait::WaitStrategy;
pub use shm_queue::{Element, ElementType, Raw};

/// The README's Rust examples run as doctests (this crate depends on both libraries).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
