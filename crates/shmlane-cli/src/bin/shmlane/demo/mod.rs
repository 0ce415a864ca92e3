//! `shmlane demo`: two processes stream self-checking messages through a channel, then two
//! processes stream the same messages through a pipe, and the figures are shown side by side.
//!
//! The parent starts every process from its own executable with a hidden subcommand:
//! `demo-consumer` and `demo-producer` share a channel `demo-<parent pid>-<run>`;
//! `demo-pipe-reader` reads the stdout of `demo-pipe-writer`, like `writer | reader` in a
//! shell. Both transports are measured the same way, in two runs of half the time each:
//!
//! - throughput: the sender sends as fast as the receiver takes messages;
//! - latency: the sender sends at a fixed rate (`--rate`, far below what either transport
//!   carries), so the figures show the transport's own delay, not time spent queueing behind
//!   earlier messages in a full buffer (the throughput run's latencies, which mostly measure
//!   the buffer's size, are in the JSON as `loaded_latency`).
//!
//! In both, the sender stamps each message ([`shmlane_cli::stamp`]: sequence number,
//! `CLOCK_MONOTONIC` send time, checksum) just before its send call; the receiver checks every
//! message (length, checksum, next sequence number), records its latency (send call to
//! receive) in an HdrHistogram, and reports throughput over the span from the first send to
//! the last receive. Both buffers hold 64 KiB (the Linux pipe default; the ring is sized to
//! match).
//!
//! Children report one JSON line to the parent: receivers and the channel producer on their
//! stdout, the pipe writer on its stderr (its stdout is the pipe).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use shm_bridge::{ChannelOptions, Error};
use shmlane_cli::stamp;

use crate::render::{duration_ns, si};
use crate::{emit, emit_json, Failure, Outcome};

/// Bytes either transport may hold in flight: the Linux default pipe size.
const BUFFER: usize = 64 * 1024;
/// How long a demo process waits for its peer to show up.
const CONNECT: Duration = Duration::from_secs(10);
/// How long past the streaming time the parent waits for a demo process before killing it.
const GRACE: Duration = Duration::from_secs(30);

mod procs;
mod roles;

use procs::*;
use roles::*;
pub(crate) use roles::{consumer, pipe_reader, pipe_writer, producer};

/// Options of `shmlane demo`.
#[derive(Debug, Clone, Args)]
pub(crate) struct DemoArgs {
    /// Seconds per transport (0.2 to 3600): half streaming flat out for throughput, half
    /// at --rate for latency.
    #[arg(long, value_name = "S", default_value_t = 3.0, value_parser = demo_seconds)]
    seconds: f64,
    /// Message size in bytes (8 to 1048576).
    #[arg(long, value_name = "BYTES", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(8..=1_048_576))]
    size: u32,
    /// Messages per second in the latency run (1 to 1000000).
    #[arg(long, value_name = "N", default_value_t = 20_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    rate: u64,
}

/// Options of the hidden demo processes (set by the parent).
#[derive(Debug, Args)]
pub(crate) struct RoleArgs {
    /// Channel name (channel roles only).
    #[arg(long, default_value = "")]
    name: String,
    /// Seconds to stream.
    #[arg(long, value_parser = seconds)]
    seconds: f64,
    /// Message size in bytes.
    #[arg(long, value_parser = clap::value_parser!(u32).range(8..=1_048_576))]
    size: u32,
    /// Messages per second (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
}

fn seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if (0.05..=3600.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} s is not between 0.05 and 3600"))
    }
}

/// `--seconds` of `shmlane demo`: two runs of half of it each, of at least 0.1 s.
fn demo_seconds(s: &str) -> Result<f64, String> {
    match seconds(s)? {
        v if v >= 0.2 => Ok(v),
        v => Err(format!("{v} s is not between 0.2 and 3600")),
    }
}

/// The ring capacity that holds [`BUFFER`] bytes and carries `size`-byte messages.
fn ring_capacity(size: usize) -> usize {
    let mut cap = BUFFER;
    while shm_queue::bytes::max_message_for(cap) < size {
        cap *= 2;
    }
    cap
}

/// One transport's figures, as the demo prints them.
#[derive(Debug, Serialize)]
struct Transport {
    /// Messages received in both runs.
    messages: u64,
    /// Payload bytes received in both runs.
    bytes: u64,
    /// Length of the throughput run, first send to last receive.
    seconds: f64,
    msgs_per_s: f64,
    mb_per_s: f64,
    /// Latency in the run paced at `--rate`.
    latency: Latency,
    /// Latency in the throughput run (mostly waiting in a full buffer).
    loaded_latency: Latency,
    checksum_errors: u64,
    sequence_errors: u64,
    length_errors: u64,
    /// Messages the sender sent that the receiver never got.
    lost: u64,
    /// Why a side stopped early, if one did.
    failures: Vec<String>,
    /// All of the above errors together.
    errors: u64,
    /// Sends retried because the receiver looked hung (not an error).
    retries: u64,
}

impl Transport {
    fn new(throughput: Run, latency: Run) -> Transport {
        let mut t = Transport {
            messages: 0,
            bytes: 0,
            seconds: throughput.seconds(),
            msgs_per_s: throughput.per_second(throughput.recv.messages),
            mb_per_s: throughput.per_second(throughput.recv.bytes) / 1e6,
            latency: latency.recv.latency,
            loaded_latency: throughput.recv.latency,
            checksum_errors: 0,
            sequence_errors: 0,
            length_errors: 0,
            lost: 0,
            failures: Vec::new(),
            errors: 0,
            retries: 0,
        };
        for run in [throughput, latency] {
            let r = run.recv;
            t.messages += r.messages;
            t.bytes += r.bytes;
            t.checksum_errors += r.checksum_errors;
            t.sequence_errors += r.sequence_errors;
            t.length_errors += r.length_errors;
            t.lost += run.sent.messages.saturating_sub(r.messages);
            t.failures.extend(run.sent.error.into_iter().chain(r.error));
            t.retries += run.sent.retries;
        }
        t.errors = t.checksum_errors
            + t.sequence_errors
            + t.length_errors
            + t.lost
            + t.failures.len() as u64;
        t
    }
}

/// `a / b`, if `b` is not zero.
fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

fn times(r: Option<f64>) -> String {
    match r {
        Some(r) if r >= 10.0 => format!("{r:.1}×"),
        Some(r) => format!("{r:.2}×"),
        None => "-".into(),
    }
}

fn percentiles(l: &Latency) -> [u64; 4] {
    [l.p50_ns, l.p99_ns, l.p999_ns, l.max_ns]
}

/// `shmlane demo`.
pub(crate) fn run(args: &DemoArgs, json: bool) -> Outcome {
    let exe = std::env::current_exe().map_err(|e| {
        Failure::msg(format!(
            "cannot find the shmlane executable to start the demo processes from: {e}"
        ))
    })?;
    let name = format!("demo-{}", std::process::id());
    let half = args.seconds / 2.0;
    let flat = Plan {
        seconds: half,
        size: args.size,
        rate: 0,
    };
    let paced = Plan {
        rate: args.rate,
        ..flat
    };
    let shm = Transport::new(
        measure_channel(&exe, &format!("{name}-throughput"), flat)?,
        measure_channel(&exe, &format!("{name}-latency"), paced)?,
    );
    let pipe = Transport::new(measure_pipe(&exe, flat)?, measure_pipe(&exe, paced)?);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let lat_ratio: Vec<Option<f64>> = percentiles(&shm.latency)
        .iter()
        .zip(percentiles(&pipe.latency))
        .map(|(&a, b)| ratio(a as f64, b as f64))
        .collect();
    let errors = shm.errors + pipe.errors;
    if json {
        emit_json(&json!({
            "message_size": args.size,
            "seconds": args.seconds,
            "latency_rate": args.rate,
            "buffer_bytes": BUFFER,
            "cpus": cpus,
            "channel": name,
            "shmlane": shm,
            "pipe": pipe,
            "ratio": {
                "msgs_per_s": ratio(shm.msgs_per_s, pipe.msgs_per_s),
                "mb_per_s": ratio(shm.mb_per_s, pipe.mb_per_s),
                "p50": lat_ratio[0],
                "p99": lat_ratio[1],
                "p999": lat_ratio[2],
                "max": lat_ratio[3],
            },
            "errors": errors,
        }))?;
    } else {
        let row = |label: &str, t: &Transport| {
            let mut r = vec![
                label.to_owned(),
                si(t.msgs_per_s),
                format!("{:.1}", t.mb_per_s),
            ];
            r.extend(percentiles(&t.latency).iter().map(|&ns| duration_ns(ns)));
            r.push(t.messages.to_string());
            r.push(t.errors.to_string());
            r
        };
        let mut ratios = vec![
            "shmlane/pipe".to_owned(),
            times(ratio(shm.msgs_per_s, pipe.msgs_per_s)),
            times(ratio(shm.mb_per_s, pipe.mb_per_s)),
        ];
        ratios.extend(lat_ratio.iter().map(|&r| times(r)));
        let table = crate::render::table(
            &[
                "", "msgs/s", "MB/s", "p50", "p99", "p99.9", "max", "messages", "errors",
            ],
            &[row("shmlane", &shm), row("pipe", &pipe), ratios],
        );
        let mut text = format!(
            "shmlane demo: {}-byte messages between two processes, {cpus} CPU(s), 64 KiB \
             buffers; every message checked (length, checksum, sequence).\n\
             Throughput: streaming flat out for {half} s. Latency: send call to receive, at \
             {} msgs/s for {half} s.\n\n{table}\n",
            args.size,
            si(args.rate as f64).trim_end(),
        );
        for (label, t) in [("shmlane", &shm), ("pipe", &pipe)] {
            if t.errors > 0 {
                text.push_str(&format!(
                    "{label}: {} checksum, {} sequence, {} length errors, {} lost{}\n",
                    t.checksum_errors,
                    t.sequence_errors,
                    t.length_errors,
                    t.lost,
                    if t.failures.is_empty() {
                        String::new()
                    } else {
                        format!("; {}", t.failures.join("; "))
                    }
                ));
            }
        }
        if errors == 0 {
            text.push_str(&format!(
                "No errors in {} messages.\n",
                shm.messages + pipe.messages
            ));
        }
        emit(&text)?;
    }
    if errors > 0 {
        return Err(Failure::msg(format!(
            "the demo saw {errors} error(s) (shmlane {}, pipe {}); the lines above say \
             which; please report this with the output of `shmlane demo --json`",
            shm.errors, pipe.errors
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checker_counts_each_kind_of_error_once() {
        for size in [8, 64] {
            let mut c = Checker::new(size).unwrap();
            let mut m = vec![0u8; size];
            for seq in [0, 1, 3, 4] {
                stamp::write(&mut m, seq, stamp::now_ns()).unwrap();
                c.check(&m);
            }
            m[size - 1] ^= 0xff;
            c.check(&m);
            c.check(&m[..size - 1]);
            let r = c.finish(None);
            assert_eq!(r.messages, 6, "{size}");
            assert_eq!(r.sequence_errors, 1, "{size}");
            assert_eq!(r.checksum_errors, 1, "{size}");
            assert_eq!(r.length_errors, 1, "{size}");
            assert!(r.latency.max_ns >= r.latency.p50_ns);
        }
    }

    #[test]
    fn ring_fits_the_message() {
        assert_eq!(ring_capacity(64), BUFFER);
        let big = ring_capacity(1 << 20);
        assert!(shm_queue::bytes::max_message_for(big) >= 1 << 20);
    }
}
