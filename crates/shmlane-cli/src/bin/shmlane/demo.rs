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

/// Latency percentiles in nanoseconds.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
struct Latency {
    p50_ns: u64,
    p99_ns: u64,
    p999_ns: u64,
    max_ns: u64,
    mean_ns: u64,
}

/// What a sending process reports.
#[derive(Debug, Default, Serialize, Deserialize)]
struct SenderReport {
    /// Messages sent.
    messages: u64,
    /// Sends retried because the peer looked hung.
    retries: u64,
    /// Why it stopped early, if it did.
    error: Option<String>,
}

/// What a receiving process reports.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ReceiverReport {
    messages: u64,
    bytes: u64,
    checksum_errors: u64,
    sequence_errors: u64,
    length_errors: u64,
    /// Send time of the first message (`CLOCK_MONOTONIC` ns).
    first_sent_ns: u64,
    /// Receive time of the last message.
    last_recv_ns: u64,
    latency: Latency,
    /// Why it stopped other than by a clean close or end of file, if it did.
    error: Option<String>,
}

/// Checks received messages and keeps the figures.
struct Checker {
    size: usize,
    next_seq: u64,
    hist: Histogram<u64>,
    r: ReceiverReport,
}

impl Checker {
    fn new(size: usize) -> Outcome<Checker> {
        let hist = Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
            .map_err(|e| Failure::msg(format!("cannot create the latency histogram: {e}")))?;
        Ok(Checker {
            size,
            next_seq: 0,
            hist,
            r: ReceiverReport::default(),
        })
    }

    fn check(&mut self, msg: &[u8]) {
        let now = stamp::now_ns();
        self.r.messages += 1;
        self.r.bytes += msg.len() as u64;
        self.r.last_recv_ns = now;
        if msg.len() != self.size {
            self.r.length_errors += 1;
            return;
        }
        let Ok(s) = stamp::check(msg) else {
            self.r.checksum_errors += 1;
            return;
        };
        if !stamp::is_next(&s, self.next_seq) {
            self.r.sequence_errors += 1;
        }
        // Continue from what arrived, so one gap counts once.
        self.next_seq = if s.short {
            (self.next_seq & !0xffff_ffff | s.seq) + 1
        } else {
            s.seq + 1
        };
        let latency = s.latency_ns(now);
        if self.r.first_sent_ns == 0 {
            self.r.first_sent_ns = now.saturating_sub(latency);
        }
        self.hist.saturating_record(latency.max(1));
    }

    fn finish(mut self, error: Option<String>) -> ReceiverReport {
        if !self.hist.is_empty() {
            self.r.latency = Latency {
                p50_ns: self.hist.value_at_quantile(0.5),
                p99_ns: self.hist.value_at_quantile(0.99),
                p999_ns: self.hist.value_at_quantile(0.999),
                max_ns: self.hist.max(),
                mean_ns: self.hist.mean() as u64,
            };
        }
        self.r.error = error;
        self.r
    }
}

fn report_line<T: Serialize>(report: &T) -> Outcome<String> {
    serde_json::to_string(report)
        .map(|s| s + "\n")
        .map_err(|e| Failure::msg(format!("cannot encode the report: {e}")))
}

/// Sends stamped messages through `send` until `seconds` have passed or it fails, as fast
/// as it can or `rate` per second (sleeping until each one is due, so the sender leaves the
/// CPU to the receiver as a real paced producer would); a retryable failure (a peer that
/// looks hung) resends the message.
fn stream(
    seconds: f64,
    size: usize,
    rate: u64,
    mut send: impl FnMut(&[u8]) -> Result<(), (bool, String)>,
) -> SenderReport {
    let mut report = SenderReport::default();
    let mut msg = vec![0u8; size];
    let start = stamp::now_ns();
    let end = start + (seconds * 1e9) as u64;
    let period = 1e9 / rate.max(1) as f64;
    if rate > 0 {
        // Wake within a microsecond of each due time, not the default 50 µs timer slack.
        let _ = nix::sys::prctl::set_timerslack(1_000);
    }
    loop {
        let mut now = stamp::now_ns();
        if rate > 0 {
            let due = (start + (report.messages as f64 * period) as u64).min(end);
            if now < due {
                std::thread::sleep(Duration::from_nanos(due - now));
                now = stamp::now_ns();
            }
        }
        if now >= end {
            return report;
        }
        if let Err(e) = stamp::write(&mut msg, report.messages, now) {
            report.error = Some(e.to_string());
            return report;
        }
        match send(&msg) {
            Ok(()) => report.messages += 1,
            Err((true, _)) => report.retries += 1,
            Err((false, e)) => {
                report.error = Some(e);
                return report;
            }
        }
    }
}

/// `demo-producer`: creates the channel, waits for the consumer, streams, closes.
pub(crate) fn producer(args: &RoleArgs) -> Outcome {
    let size = args.size as usize;
    let mut tx = ChannelOptions::new()
        .capacity(ring_capacity(size))
        .max_message(size)
        .create_bytes(&args.name)?;
    let report = match tx.wait_for_peer(CONNECT) {
        Ok(()) => stream(args.seconds, size, args.rate, |m| {
            tx.send(m).map_err(|e| (e.is_retryable(), e.to_string()))
        }),
        Err(e) => SenderReport {
            error: Some(format!("the consumer did not connect: {e}")),
            ..SenderReport::default()
        },
    };
    drop(tx); // closes the channel: the consumer drains it, then sees Closed
    emit(&report_line(&report)?)
}

/// `demo-consumer`: connects, checks every message until the producer closes.
pub(crate) fn consumer(args: &RoleArgs) -> Outcome {
    let size = args.size as usize;
    let mut rx = ChannelOptions::new()
        .timeout(CONNECT)
        .connect_bytes(&args.name)?;
    let mut checker = Checker::new(size)?;
    let mut buf = vec![0u8; rx.max_message().max(size)];
    let error = loop {
        // Take what is there; block only when the ring is empty.
        let got = match rx.try_recv(&mut buf) {
            Err(Error::WouldBlock { .. }) => rx.recv_deadline(&mut buf, None),
            other => other,
        };
        match got {
            Ok(n) => checker.check(&buf[..n]),
            Err(Error::Closed { .. }) => break None,
            Err(e) if e.is_retryable() => {}
            Err(e) => break Some(e.to_string()),
        }
    };
    drop(rx);
    emit(&report_line(&checker.finish(error))?)
}

/// `demo-pipe-writer`: streams into its stdout; reports on stderr.
pub(crate) fn pipe_writer(args: &RoleArgs) -> Outcome {
    // Our own descriptor for stdout: Rust's `Stdout` is line-buffered, which would hold
    // messages back until a newline byte happens to pass.
    let fd = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| Failure::msg(format!("cannot duplicate stdout: {e}")))?;
    let mut pipe = std::fs::File::from(fd);
    let report = stream(args.seconds, args.size as usize, args.rate, |m| {
        pipe.write_all(m)
            .map_err(|e| (false, format!("writing the pipe: {e}")))
    });
    drop(pipe);
    let line = report_line(&report)?;
    std::io::stderr()
        .write_all(line.as_bytes())
        .map_err(|e| Failure::msg(format!("cannot write the report: {e}")))
}

/// Reads until `buf` is full or the input ends; returns how many bytes it read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// `demo-pipe-reader`: says `ready`, then checks every message on stdin until end of file.
pub(crate) fn pipe_reader(args: &RoleArgs) -> Outcome {
    let size = args.size as usize;
    let fd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| Failure::msg(format!("cannot duplicate stdin: {e}")))?;
    let mut input = BufReader::with_capacity(BUFFER, std::fs::File::from(fd));
    let mut checker = Checker::new(size)?;
    let mut buf = vec![0u8; size];
    emit("ready\n")?;
    let error = loop {
        match read_full(&mut input, &mut buf) {
            Ok(0) => break None,
            Ok(n) => {
                checker.check(&buf[..n]);
                if n < size {
                    break None; // a torn last message, counted as a length error
                }
            }
            Err(e) => break Some(format!("reading the pipe: {e}")),
        }
    };
    emit(&report_line(&checker.finish(error))?)
}

/// A demo process, with threads collecting its stdout lines and its stderr.
struct Proc {
    what: &'static str,
    child: Option<std::process::Child>,
    lines: mpsc::Receiver<String>,
    stdout: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<Vec<String>>>,
}

/// How a demo process ended, and what it printed.
struct Finished {
    what: &'static str,
    pid: u32,
    status: ExitStatus,
    stdout: Vec<String>,
    stderr: Vec<String>,
}

fn collector<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Outcome<JoinHandle<T>> {
    std::thread::Builder::new()
        .name(format!("demo-{what}"))
        .spawn(f)
        .map_err(|e| Failure::msg(format!("cannot start a thread to read the {what}: {e}")))
}

impl Proc {
    /// Starts `cmd` (its stdin and stdout already set up; stderr is collected).
    fn spawn(what: &'static str, mut cmd: Command) -> Outcome<Proc> {
        cmd.stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            Failure::msg(format!(
                "cannot start the demo {what} ({}): {e}",
                cmd.get_program().to_string_lossy()
            ))
        })?;
        // Dropping the command closes our copies of the pipe ends it handed to the child.
        drop(cmd);
        let (tx, lines) = mpsc::channel();
        let stdout = match child.stdout.take() {
            Some(out) => Some(collector(what, move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })?),
            None => None,
        };
        let stderr = match child.stderr.take() {
            Some(err) => Some(collector(what, move || {
                let mut text = Vec::new();
                let _ = BufReader::new(err).read_to_end(&mut text);
                String::from_utf8_lossy(&text)
                    .lines()
                    .map(str::to_owned)
                    .collect()
            })?),
            None => None,
        };
        Ok(Proc {
            what,
            child: Some(child),
            lines,
            stdout,
            stderr,
        })
    }

    /// The next line the process prints on stdout, waiting until `deadline`.
    fn line(&self, deadline: Instant) -> Option<String> {
        self.lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .ok()
    }

    /// Waits for the process to exit until `deadline`, then kills it.
    fn finish(mut self, deadline: Instant) -> Outcome<Finished> {
        let what = self.what;
        let Some(mut child) = self.child.take() else {
            return Err(Failure::msg(format!("the demo {what} was already reaped")));
        };
        let pid = child.id();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Failure::msg(format!(
                        "the demo {what} (pid {pid}) did not finish in time and was killed; \
                         is the machine overloaded? try a shorter --seconds"
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => {
                    return Err(Failure::msg(format!(
                        "cannot wait for the demo {what} (pid {pid}): {e}"
                    )))
                }
            }
        };
        if let Some(t) = self.stdout.take() {
            let _ = t.join();
        }
        let stderr = self
            .stderr
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        Ok(Finished {
            what,
            pid,
            status,
            stdout: self.lines.try_iter().collect(),
            stderr,
        })
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A demo process we gave up on must not outlive the demo.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Finished {
    /// The process's report: the last line of stdout (or stderr) that parses as one.
    fn report<T: DeserializeOwned>(&self, on_stderr: bool) -> Outcome<T> {
        let lines = if on_stderr {
            &self.stderr
        } else {
            &self.stdout
        };
        if let Some(r) = lines
            .iter()
            .rev()
            .find_map(|l| serde_json::from_str::<T>(l).ok())
        {
            return Ok(r);
        }
        let said: Vec<&str> = self
            .stderr
            .iter()
            .map(String::as_str)
            .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_err())
            .collect();
        Err(Failure::msg(format!(
            "the demo {} (pid {}) ended ({}) without a report{}",
            self.what,
            self.pid,
            self.status,
            if said.is_empty() {
                String::new()
            } else {
                format!(": {}", said.join(" / "))
            }
        )))
    }
}

/// One run of a sender and a receiver: how long, how big, how fast.
#[derive(Debug, Clone, Copy)]
struct Plan {
    seconds: f64,
    size: u32,
    /// Messages per second (0: flat out).
    rate: u64,
}

/// The command line of a demo process, with stdin empty and stdout piped to us.
fn role_command(exe: &Path, role: &str, name: &str, plan: Plan) -> Command {
    let mut cmd = Command::new(exe);
    cmd.arg(role)
        .arg("--seconds")
        .arg(plan.seconds.to_string())
        .arg("--size")
        .arg(plan.size.to_string())
        .arg("--rate")
        .arg(plan.rate.to_string());
    if !name.is_empty() {
        cmd.arg("--name").arg(name);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    cmd
}

/// What one sender and receiver pair reported.
struct Run {
    sent: SenderReport,
    recv: ReceiverReport,
}

impl Run {
    fn seconds(&self) -> f64 {
        self.recv
            .last_recv_ns
            .saturating_sub(self.recv.first_sent_ns) as f64
            / 1e9
    }

    fn per_second(&self, n: u64) -> f64 {
        let s = self.seconds();
        if s > 0.0 {
            n as f64 / s
        } else {
            0.0
        }
    }
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

fn measure_shmlane(exe: &Path, name: &str, plan: Plan) -> Outcome<Run> {
    let deadline = Instant::now() + Duration::from_secs_f64(plan.seconds) + GRACE;
    let consumer = Proc::spawn("consumer", role_command(exe, "demo-consumer", name, plan))?;
    let producer = Proc::spawn("producer", role_command(exe, "demo-producer", name, plan))?;
    // If the producer fails, returning drops (and so kills) the consumer.
    let sent = producer.finish(deadline)?.report(false)?;
    let recv = consumer.finish(deadline)?.report(false)?;
    Ok(Run { sent, recv })
}

/// [`measure_shmlane`] on channel `name`, which is removed afterwards if a side left it.
fn measure_channel(exe: &Path, name: &str, plan: Plan) -> Outcome<Run> {
    let run = measure_shmlane(exe, name, plan);
    // The last side out removes the name; if a side died, we do.
    if shm_bridge::shm_path(name).exists() {
        let _ = shm_bridge::inspect::remove(name, true);
    }
    run
}

fn measure_pipe(exe: &Path, plan: Plan) -> Outcome<Run> {
    let deadline = Instant::now() + Duration::from_secs_f64(plan.seconds) + GRACE;
    let (read_end, write_end) =
        std::io::pipe().map_err(|e| Failure::msg(format!("cannot create a pipe: {e}")))?;
    let mut cmd = role_command(exe, "demo-pipe-reader", "", plan);
    cmd.stdin(read_end);
    let reader = Proc::spawn("pipe reader", cmd)?;
    if reader.line(Instant::now() + CONNECT).as_deref() != Some("ready") {
        let f = reader.finish(deadline)?;
        return Err(f
            .report::<ReceiverReport>(false)
            .err()
            .unwrap_or_else(|| Failure::msg("the demo pipe reader did not start")));
    }
    let mut cmd = role_command(exe, "demo-pipe-writer", "", plan);
    cmd.stdout(write_end);
    let writer = Proc::spawn("pipe writer", cmd)?;
    let sent = writer.finish(deadline)?.report(true)?;
    let recv = reader.finish(deadline)?.report(false)?;
    Ok(Run { sent, recv })
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
