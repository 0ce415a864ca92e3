//! Receives the `producer` example's stamped messages over a named byte channel, checks
//! every one (checksum, and a sequence contiguous from 0 with no gap or duplicate), records
//! each message's latency from its send time, and prints one summary line:
//!
//! ```text
//! received 1000000 messages, 64000000 bytes, 0 errors in 0.52 s: 1.92 M msgs/s, 123.0 MB/s, latency p50 1.2 us p99 3.4 us p99.9 10.1 us max 55.0 us
//! ```
//!
//! Run it beside the producer. Either may start first: the consumer waits up to `--timeout`
//! for the channel to appear, or to be replaced if it is left over from an earlier run.
//!
//! ```text
//! cargo run --release --example consumer -- --name demo --count 1000000
//! cargo run --release --example producer -- --name demo --count 1000000 --size 64
//! ```
//!
//! Latency runs from the send time stamped in the message to its arrival, so when the
//! producer runs flat out (no `--rate`) and the ring stays full, it is mostly time spent
//! queued. Exit codes are listed in `--help`. The summary line is printed whenever the channel was
//! opened, also on failure; the reason for a failure goes to stderr.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use common::{Exit, Wait};
use hdrhistogram::Histogram;
use shm_bridge::{ByteReceiver, ChannelOptions, Error, PeerState};
use shmlane_cli::stamp;

const AFTER_HELP: &str = "\
Exit codes:
  0  every message arrived valid and in sequence (--count of them, or all of them until the
     producer closed the channel); with --reconnect, gaps across reconnections are
     reported as lost, not errors
  1  set-up error: bad flags, the channel could not be opened (not a channel, the wrong
     kind, another owner, ...), no producer (or only a channel left over from an earlier
     run) within --timeout, or a live producer sent nothing for --timeout
  2  a message failed its checksum, or the sequence had a gap or a duplicate, or another
     process truncated the channel's file (it says so; this process survives it)
  3  the producer died, hung (heartbeat silent) with nothing sent for --timeout, or closed
     the channel before --count messages
  4  stopped by Ctrl-C or SIGTERM before --count messages (with --count 0, a stop is a
     normal end: 0). Either way the consumer closes the channel, so the producer sees
     `Closed`, and prints its summary; a second signal exits at once with 130";

/// Receives and checks the `producer` example's messages.
#[derive(Parser, Debug)]
#[command(after_help = AFTER_HELP)]
struct Args {
    /// Channel name (`/dev/shm/shmlane.NAME`).
    #[arg(long, default_value = "demo")]
    name: String,
    /// Messages to receive (with --reconnect, counting those lost across reconnections);
    /// 0: until the producer closes the channel.
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// How to wait for the next message.
    #[arg(long, value_enum, default_value_t = Wait::Block)]
    wait: Wait,
    /// Seconds to wait for the channel to appear, and the longest silence accepted.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    timeout: u64,
    /// When the producer dies or closes the channel before --count messages, connect again
    /// (within --timeout) to the channel a new producer creates under the name, such as a
    /// restarted zenoh bridge; the messages missing across the reconnection are reported
    /// as lost, not as errors.
    #[arg(long)]
    reconnect: bool,
    #[command(flatten)]
    trust: common::Trust,
}

/// Why a run failed: the exit code and a one-line reason.
type Failure = (Exit, String);

fn main() -> std::process::ExitCode {
    let args = match common::parse_args::<Args>() {
        Ok(a) => a,
        Err(code) => return code,
    };
    let stop = match common::stop_on_signal() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("consumer: blocking signals: {e}");
            return Exit::Setup.into();
        }
    };
    let (rx, mut tally) = match connect(&args).and_then(|rx| Ok((rx, Tally::new()?))) {
        Ok(both) => both,
        Err(reason) => {
            eprintln!("consumer: {reason}");
            return Exit::Setup.into();
        }
    };
    let mut rx = Some(rx);
    let ended = receive(&mut rx, &args, &mut tally, &stop);
    // Closing tells the producer at once (it sees `Closed`), also after a signal.
    drop(rx);
    println!("{}", tally.summary());
    // Bad messages outrank how the run ended.
    let failure = match (&tally.first_error, ended) {
        (Some(first), end) => {
            let mut why = format!("{} bad messages; the first: {first}", tally.errors);
            if let Err((_, then)) = end {
                why += &format!("; then {then}");
            }
            Some((Exit::Corrupt, why))
        }
        (None, Err(f)) => Some(f),
        (None, Ok(())) => None,
    };
    match failure {
        None => Exit::Ok.into(),
        Some((code, reason)) => {
            eprintln!("consumer: {reason}");
            code.into()
        }
    }
}

/// Connects, waiting up to `--timeout` for the channel. The library never attaches to a
/// channel left over from an earlier run (its producer gone): it waits for the next
/// producer to replace it, and says so if none does in time.
fn connect(args: &Args) -> Result<ByteReceiver, String> {
    ChannelOptions::new()
        .wait_strategy(args.wait.strategy())
        .timeout(Duration::from_secs(args.timeout))
        .allow_foreign_owner(args.trust.allow_foreign_owner)
        .allow_shared_write(args.trust.allow_shared_write)
        .connect_bytes(&args.name)
        .map_err(|e| common::hint_flags(e.to_string()))
}

/// Receives until `--count` messages or the producer closes; the error says why it stopped
/// otherwise.
fn receive(
    slot: &mut Option<ByteReceiver>,
    args: &Args,
    tally: &mut Tally,
    stop: &AtomicBool,
) -> Result<(), Failure> {
    let Some(mut rx) = slot.take() else {
        return Err((Exit::Setup, "no channel".into()));
    };
    let mut buf = vec![0u8; rx.max_message()];
    let silence = Duration::from_secs(args.timeout);
    let result = loop {
        // Messages lost across a reconnection count towards --count: they will not come.
        if args.count > 0 && tally.received + tally.lost_across >= args.count {
            break Ok(());
        }
        let got = match rx.try_recv(&mut buf) {
            Err(Error::WouldBlock { .. }) => match wait(&mut rx, &mut buf, silence, stop) {
                None => break stopped(args, tally.received),
                Some(got) => got,
            },
            other => other,
        };
        match got {
            Ok(n) => tally.take(&buf[..n], stamp::now_ns()),
            Err(Error::Closed { .. }) if args.count == 0 => break Ok(()),
            Err(Error::Closed { .. } | Error::PeerGone { .. }) if args.reconnect => {
                // Let go of the old channel first: the new producer cannot create the name
                // while we hold it.
                drop(rx);
                rx = match connect(args) {
                    Ok(r) => r,
                    Err(why) => return Err((Exit::Peer, format!("reconnecting: {why}"))),
                };
                buf.resize(rx.max_message(), 0);
                tally.reconnected();
            }
            Err(e) => break Err(ended(&rx, e, args, tally.received)),
        }
    };
    *slot = Some(rx);
    result
}

/// How a run stopped by Ctrl-C or SIGTERM ends: normally with `--count 0`, else exit 4.
fn stopped(args: &Args, received: u64) -> Result<(), Failure> {
    if args.count == 0 {
        Ok(())
    } else {
        Err((
            Exit::Interrupted,
            format!(
                "stopped by a signal after {received} of {} messages",
                args.count
            ),
        ))
    }
}

/// Waits up to `silence` for the next message, riding out `PeerHung` (retryable: a producer
/// descheduled or stopped for a moment), in slices short enough to notice a stop signal
/// promptly; `None` once one arrived.
fn wait(
    rx: &mut ByteReceiver,
    buf: &mut [u8],
    silence: Duration,
    stop: &AtomicBool,
) -> Option<Result<usize, Error>> {
    let deadline = Instant::now() + silence;
    loop {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        let slice = (Instant::now() + Duration::from_millis(50)).min(deadline);
        match rx.recv_deadline(buf, Some(slice)) {
            Err(e)
                if (e.is_retryable() || matches!(e, Error::Timeout { .. }))
                    && Instant::now() < deadline => {}
            other => return Some(other),
        }
    }
}

/// The exit code and reason for a receive that failed after `received` messages.
fn ended(rx: &ByteReceiver, e: Error, args: &Args, received: u64) -> Failure {
    match e {
        Error::Closed { .. } => (
            Exit::Peer,
            format!(
                "the producer closed the channel after {received} of {} messages",
                args.count
            ),
        ),
        Error::PeerGone { .. } => (Exit::Peer, e.to_string()),
        e if e.is_retryable() => {
            let silent = format!("no message for {} s", args.timeout);
            match rx.peer_state() {
                PeerState::Hung { pid, silent: hb } => (
                    Exit::Peer,
                    format!(
                        "{silent}: the producer (pid {pid}) is alive but its heartbeat has \
                         been silent for {:.1} s (stopped or hung)",
                        hb.as_secs_f64()
                    ),
                ),
                PeerState::Dead { pid } => (
                    Exit::Peer,
                    format!("{silent}: the producer (pid {pid}) died"),
                ),
                _ => (
                    Exit::Setup,
                    format!(
                        "{silent}, although the producer is alive and its heartbeat fresh; \
                         it has stopped sending (raise --timeout to wait longer)"
                    ),
                ),
            }
        }
        // The ring itself failed its checks (an impossible record header), or its file was
        // shrunk under us.
        e @ (Error::Queue { .. } | Error::Region(shm_region::Error::Truncated { .. })) => {
            (Exit::Corrupt, e.to_string())
        }
        e => (Exit::Setup, e.to_string()),
    }
}

/// What arrived: counts, the first problem, and the latencies of the good messages.
struct Tally {
    received: u64,
    bytes: u64,
    errors: u64,
    first_error: Option<String>,
    /// The sequence number the next message must carry.
    expected: u64,
    latency: Histogram<u64>,
    /// When the first message was sent and the last one received (`CLOCK_MONOTONIC` ns).
    first_sent_ns: Option<u64>,
    last_ns: u64,
    /// Reconnections (`--reconnect`), and the messages missing across them.
    reconnects: u64,
    lost_across: u64,
    /// The next message follows a reconnection: a gap before it is a reported loss.
    after_reconnect: bool,
}

impl Tally {
    fn new() -> Result<Self, String> {
        Ok(Tally {
            received: 0,
            bytes: 0,
            errors: 0,
            first_error: None,
            expected: 0,
            latency: common::latency_histogram()?,
            first_sent_ns: None,
            last_ns: 0,
            reconnects: 0,
            lost_across: 0,
            after_reconnect: false,
        })
    }

    /// A reconnection happened: the next message may follow a gap.
    fn reconnected(&mut self) {
        self.reconnects += 1;
        self.after_reconnect = true;
    }

    /// Checks one message received at `now_ns`.
    fn take(&mut self, msg: &[u8], now_ns: u64) {
        let index = self.received;
        self.received += 1;
        self.bytes += msg.len() as u64;
        self.last_ns = now_ns;
        let s = match stamp::check(msg) {
            Ok(s) => s,
            Err(bad) => {
                // Most likely the expected one, damaged: count it and move on.
                self.expected += 1;
                return self.error(format!("message {index}: {bad}"));
            }
        };
        let latency = s.latency_ns(now_ns);
        self.first_sent_ns
            .get_or_insert(now_ns.saturating_sub(latency));
        // The short layout carries only the low 32 bits of the sequence number.
        let want = if s.short {
            self.expected & 0xffff_ffff
        } else {
            self.expected
        };
        let after_reconnect = std::mem::take(&mut self.after_reconnect);
        if stamp::is_next(&s, self.expected) {
            self.latency.saturating_record(latency);
        } else if after_reconnect && s.seq > want {
            self.lost_across += s.seq - want;
            self.latency.saturating_record(latency);
        } else {
            let what = if s.seq < want { "a duplicate" } else { "a gap" };
            self.error(format!(
                "message {index} has sequence number {}, expected {want} ({what})",
                s.seq
            ));
        }
        // Continue from whatever arrived, so one gap counts as one error.
        self.expected = self.expected - want + s.seq + 1;
    }

    fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }

    fn summary(&self) -> String {
        let first = self.first_sent_ns.unwrap_or(self.last_ns);
        let secs = self.last_ns.saturating_sub(first) as f64 / 1e9;
        let reconnects = if self.reconnects > 0 {
            format!(
                ", {} lost across {} reconnection(s)",
                self.lost_across, self.reconnects
            )
        } else {
            String::new()
        };
        format!(
            "received {} messages, {} bytes, {} errors{reconnects} in {secs:.2} s: {}, latency {}",
            self.received,
            self.bytes,
            self.errors,
            common::rates(self.received, self.bytes, secs),
            common::percentiles(&self.latency)
        )
    }
}
