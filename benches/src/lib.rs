//! The cross-process benchmark harness of shmlane.
//!
//! Every figure is measured next to its baseline in the same run and reported as a ratio,
//! because absolute times on a shared machine drift. Latency comes from ping-pong between a
//! parent and a `fork()`ed child pinned to different cores, one sample per round trip, in
//! an HDR histogram (p50, p99, p99.9, max, mean). Throughput streams a fixed number of
//! messages from a child producer to the parent consumer.
//!
//! The binary `ipc-bench` runs the suite; see `docs/BENCHMARKS.md`.

pub mod inproc;
pub mod report;
pub mod rings;
pub mod run;
pub mod transports;
