//! Example programs for shmlane live in `examples/examples/`.
