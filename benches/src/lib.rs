//! Benchmark harness for shmlane (work in progress: see issue 7).
