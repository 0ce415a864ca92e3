//! Lock-free rings laid out in shared memory (work in progress: see issue 3).
#![deny(unsafe_op_in_unsafe_fn)]
