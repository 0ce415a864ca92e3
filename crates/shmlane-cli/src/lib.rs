//! The internals of the `shmlane` tool that other packages of this workspace reuse.
//!
//! - [`bench`](mod@bench): the cross-process benchmark suite behind `shmlane bench`. The `pairs`
//!   binary and the Criterion benches in `benches/` run the same code.
//! - [`stamp`]: the self-checking message format of `shmlane demo`, the example `producer`
//!   and `consumer`, and the soak tests.
//!
//! This is not an API for services: they link `shm-bridge`, which depends on none of this
//! crate's dependencies (clap, serde, hdrhistogram, rtrb, crossbeam). Nothing here is
//! covered by semver.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod bench;
pub mod stamp;
