//! Sends stamped messages to the `consumer` example over a named byte channel: each message
//! carries its sequence number, its send time and a checksum ([`shmlane_cli::stamp`]), so the
//! consumer can prove that nothing was lost, duplicated or corrupted, and measure latency.
//!
//! ```text
//! cargo run --release --example consumer -- --name demo --count 1000000
//! cargo run --release --example producer -- --name demo --count 1000000 --size 64
//! ```
//!
//! Either may start first. The producer creates `/dev/shm/shmlane.NAME` (replacing one left
//! behind by dead processes), waits up to `--timeout` for the consumer, sends, and closes
//! the channel; the consumer drains it and both print one summary line. With `--count 0` it
//! sends until Ctrl-C (or SIGTERM), then closes the channel just the same. `--rate` paces
//! the messages against a schedule (message `i` is due at `start + i / rate`).
//!
//! Without `--rate` the producer outruns the consumer, the ring stays full, and the
//! consumer's latency figures are mostly time spent queued in the ring; pass a `--rate`
//! below the throughput to see the latency of the channel itself. Exit codes are listed in
//! `--help`.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use common::{Exit, Wait};
use shm_bridge::{ByteSender, ChannelOptions, Error, PeerState};
use shmlane_cli::stamp;

const AFTER_HELP: &str = "\
Exit codes:
  0  every message was sent (with --count 0: stopped by Ctrl-C/SIGTERM, or the consumer left)
  1  set-up error: bad flags, the channel could not be created, or no consumer connected
     within --timeout
  2  the ring is corrupt (the consumer's position is impossible), or another process
     truncated the channel's file (it says so; this process survives it)
  3  the consumer died, left before every message was sent, or took nothing for --timeout
     while the ring was full
  130  a second Ctrl-C/SIGTERM (the first one stops sending and closes the channel)";

/// Sends stamped messages to the `consumer` example.
#[derive(Parser, Debug)]
#[command(after_help = AFTER_HELP)]
struct Args {
    /// Channel name (`/dev/shm/shmlane.NAME`).
    #[arg(long, default_value = "demo")]
    name: String,
    /// Messages to send; 0: until interrupted (Ctrl-C or SIGTERM).
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Bytes per message, 8 to 1048576 (1 MiB).
    #[arg(long, default_value_t = 64, value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(8..=1_048_576))]
    size: u32,
    /// Messages per second (default: as fast as the consumer takes them).
    #[arg(long, value_name = "MSGS_PER_S", value_parser = clap::value_parser!(u64).range(1..))]
    rate: Option<u64>,
    /// How to wait when the ring is full, or for the next message's turn with --rate.
    #[arg(long, value_enum, default_value_t = Wait::Block)]
    wait: Wait,
    /// Seconds to wait for a consumer to connect, and for room while the ring stays full.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    timeout: u64,
    #[command(flatten)]
    trust: common::Trust,
}

/// Why a run failed: the exit code and a one-line reason.
type Failure = (Exit, String);

fn main() -> std::process::ExitCode {
    common::main_of::<Args>("producer", run)
}

fn run(args: &Args) -> Result<(), Failure> {
    // Before the first channel starts the liveness thread, which must inherit the blocked mask.
    let stop =
        common::stop_on_signal().map_err(|e| (Exit::Setup, format!("blocking signals: {e}")))?;
    let mut tx = open(args, &stop)?;
    let start = Instant::now();
    let (sent, result) = send_all(&mut tx, args, &stop);
    let secs = start.elapsed().as_secs_f64();
    tx.close();
    let bytes = sent * u64::from(args.size);
    println!(
        "sent {sent} messages, {bytes} bytes in {secs:.2} s: {}",
        common::rates(sent, bytes, secs)
    );
    result
}

/// Creates the channel and waits for the consumer.
fn open(args: &Args, stop: &AtomicBool) -> Result<ByteSender, Failure> {
    let size = args.size as usize;
    // Room for at least four messages in flight (the ring needs a power of two).
    let capacity = (4 * size).max(4 << 20).next_power_of_two();
    let tx = ChannelOptions::new()
        .capacity(capacity)
        .max_message(size)
        .wait_strategy(args.wait.strategy())
        .allow_foreign_owner(args.trust.allow_foreign_owner)
        .allow_shared_write(args.trust.allow_shared_write)
        .create_bytes(&args.name)
        .map_err(|e| (Exit::Setup, common::hint_flags(e.to_string())))?;
    if let Some(r) = tx.reclaimed() {
        eprintln!(
            "producer: replaced stale channel `{}` ({})",
            r.name, r.reason
        );
    }
    let limit = Duration::from_secs(args.timeout);
    let start = Instant::now();
    // In short slices, so Ctrl-C is noticed while waiting.
    while let Err(e) = tx.wait_for_peer(Duration::from_millis(100)) {
        match e {
            Error::Timeout { .. } if stop.load(Ordering::Relaxed) => {
                return Err((
                    Exit::Setup,
                    "interrupted before a consumer connected".into(),
                ))
            }
            Error::Timeout { .. } if start.elapsed() >= limit => {
                return Err((
                    Exit::Setup,
                    format!(
                        "no consumer connected to channel `{0}` within {1} s; start one \
                         (cargo run --release --example consumer -- --name {0}) or raise \
                         --timeout",
                        args.name, args.timeout
                    ),
                ))
            }
            Error::Timeout { .. } => {}
            e => return Err((Exit::Peer, e.to_string())),
        }
    }
    Ok(tx)
}

/// Sends the messages; returns how many were sent and how the run ended.
fn send_all(tx: &mut ByteSender, args: &Args, stop: &AtomicBool) -> (u64, Result<(), Failure>) {
    let mut msg = vec![0u8; args.size as usize];
    let patience = Duration::from_secs(args.timeout);
    let start = Instant::now();
    let mut seq = 0u64;
    while args.count == 0 || seq < args.count {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if let Some(rate) = args.rate {
            let due_ns = u128::from(seq) * 1_000_000_000 / u128::from(rate);
            pace(start + Duration::from_nanos(due_ns as u64), args.wait);
        }
        if let Err(e) = stamp::write(&mut msg, seq, stamp::now_ns()) {
            return (seq, Err((Exit::Setup, e.to_string())));
        }
        if let Err(e) = send(tx, &msg, patience) {
            return (seq, ended(tx, e, seq, args));
        }
        seq += 1;
    }
    (seq, Ok(()))
}

/// Sends one message, waiting up to `patience` for room while the ring is full (riding out
/// a consumer that is briefly hung: `PeerHung` is retryable).
fn send(tx: &mut ByteSender, msg: &[u8], patience: Duration) -> Result<(), Error> {
    match tx.try_send(msg) {
        Err(Error::WouldBlock { .. }) => {}
        other => return other,
    }
    let deadline = Instant::now() + patience;
    loop {
        match tx.send_deadline(msg, Some(deadline)) {
            Err(e) if e.is_retryable() && Instant::now() < deadline => {}
            other => return other,
        }
    }
}

/// The exit code and reason for a send that failed after `sent` messages.
fn ended(tx: &ByteSender, e: Error, sent: u64, args: &Args) -> Result<(), Failure> {
    match e {
        // With --count 0 there is no "all": the consumer leaving ends the run.
        Error::Closed { .. } if args.count == 0 => Ok(()),
        Error::Closed { .. } => Err((
            Exit::Peer,
            format!(
                "the consumer closed the channel after {sent} of {} messages",
                args.count
            ),
        )),
        Error::PeerGone { .. } => Err((Exit::Peer, e.to_string())),
        e @ Error::Region(shm_region::Error::Truncated { .. }) => {
            Err((Exit::Corrupt, e.to_string()))
        }
        e if e.is_retryable() => {
            let why = match tx.peer_state() {
                PeerState::Hung { pid, silent } => format!(
                    "the consumer (pid {pid}) is alive but its heartbeat has been silent for \
                     {:.1} s (stopped or hung)",
                    silent.as_secs_f64()
                ),
                _ => "the consumer stopped reading".into(),
            };
            Err((
                Exit::Peer,
                format!("the ring stayed full for {} s: {why}", args.timeout),
            ))
        }
        e @ Error::Queue { .. } => Err((Exit::Corrupt, e.to_string())),
        e => Err((Exit::Setup, e.to_string())),
    }
}

/// Waits until `due` the way `--wait` says: spinning, yielding, or sleeping. A sleep may
/// overshoot by tens of microseconds, more than the gap between messages at high rates; the
/// schedule absorbs that, since after a late wake-up every message that fell due goes out at
/// once, so the average rate holds and a sleep comes only every few messages.
fn pace(due: Instant, wait: Wait) {
    loop {
        let now = Instant::now();
        if now >= due {
            return;
        }
        match wait {
            Wait::Spin => std::hint::spin_loop(),
            Wait::Yield => std::thread::yield_now(),
            Wait::Block => std::thread::sleep(due - now),
        }
    }
}
