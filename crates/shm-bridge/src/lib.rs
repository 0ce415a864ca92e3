//! Named shared-memory channels between processes (work in progress: see issue 6).
#![deny(unsafe_op_in_unsafe_fn)]
