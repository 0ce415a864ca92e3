//! Publishes self-checking messages (`--size` bytes, 64 by default) on a named byte-message
//! broadcast channel, for any number of `subscriber` examples to read at their own pace,
//! and prints one summary line.
//!
//! ```text
//! cargo run --release --example publisher -- --name feed --count 1000000 --subscribers 4 --await-subscribers 2
//! cargo run --release --example subscriber -- --name feed    # in two other terminals
//! ```
//!
//! Each message is stamped as the `producer` example's are (sequence, send time, checksum,
//! filler; see `shmlane_cli::stamp`): the subscriber checks the bytes, the sequence (a gap
//! must be exactly a reported loss) and the latency.
//! A lossless channel (the default) waits for its slowest subscriber, or evicts it after
//! `--slow-policy evict:MS`; `--lossy` never waits. Exit codes are listed in `--help`.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use common::{Exit, Wait};
use shm_bridge::SlowPolicy;
use shm_bridge::{BroadcastSender, ChannelOptions, Error, Raw};
use shmlane_cli::stamp;

const AFTER_HELP: &str = "\
Exit codes:
  0  every message was sent (--count of them, or until stopped with --count 0)
  1  set-up error: bad flags, the channel could not be created, or fewer than
     --await-subscribers subscribers connected within --timeout
  3  the channel stayed full (a live subscriber not reading, on a lossless channel that
     waits) for --timeout
  4  stopped by Ctrl-C or SIGTERM before --count messages (with --count 0, a stop is a
     normal end: 0). Either way the channel is closed, so subscribers drain and end";

/// Publishes self-checking messages to every subscriber.
#[derive(Parser, Debug)]
#[command(after_help = AFTER_HELP)]
struct Args {
    /// Channel name (`/dev/shm/shmlane.NAME`).
    #[arg(long, default_value = "feed")]
    name: String,
    /// Messages to send; 0: until Ctrl-C.
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Bytes per message, 8 to 1048576 (1 MiB).
    #[arg(long, default_value_t = 64, value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(8..=1_048_576))]
    size: u32,
    /// Messages per second (0: as fast as the slowest subscriber allows).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Ring capacity in messages (default: 4096, or fewer for large messages so that the
    /// ring stays near 64 MiB, at least 16).
    #[arg(long)]
    capacity: Option<usize>,
    /// Most subscribers at once (1 to 59).
    #[arg(long, default_value_t = 8)]
    subscribers: usize,
    /// Wait (up to --timeout) for this many subscribers before sending the first message.
    #[arg(long, default_value_t = 0, value_name = "N")]
    await_subscribers: usize,
    /// Never wait for a subscriber: one that falls a ring behind loses the oldest messages.
    #[arg(long)]
    lossy: bool,
    /// A lossless channel's treatment of a subscriber that holds it up: `wait`, or
    /// `evict:MS` (evict it after MS milliseconds without reading).
    #[arg(long, default_value = "wait", value_parser = parse_policy)]
    slow_policy: SlowPolicy,
    /// How to wait for room.
    #[arg(long, value_enum, default_value_t = Wait::Block)]
    wait: Wait,
    /// Seconds to wait for subscribers to connect, and for room while the ring stays full.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    timeout: u64,
}

fn parse_policy(s: &str) -> Result<SlowPolicy, String> {
    match s.split_once(':') {
        None if s == "wait" => Ok(SlowPolicy::Wait),
        Some(("evict", ms)) => ms
            .parse::<u64>()
            .map(|ms| SlowPolicy::Evict {
                after: Duration::from_millis(ms),
            })
            .map_err(|e| format!("`{ms}` is not a number of milliseconds: {e}")),
        _ => Err(format!("`{s}`: use `wait` or `evict:MS`")),
    }
}

type Failure = (Exit, String);

fn main() -> std::process::ExitCode {
    common::main_of::<Args>("publisher", run)
}

fn run(args: &Args) -> Result<(), Failure> {
    let stop =
        common::stop_on_signal().map_err(|e| (Exit::Setup, format!("blocking signals: {e}")))?;
    let mut opts = ChannelOptions::new()
        .capacity(args.capacity.unwrap_or_else(|| {
            ((64 << 20) / args.size as usize)
                .clamp(16, 4096)
                .next_power_of_two()
        }))
        .subscribers(args.subscribers)
        .max_message(args.size as usize)
        .wait_strategy(args.wait.strategy());
    opts = if args.lossy {
        opts.lossy()
    } else {
        opts.slow_policy(args.slow_policy)
    };
    let mut tx = opts
        .create_broadcast_bytes(&args.name)
        .map_err(|e| (Exit::Setup, e.to_string()))?;
    let limit = Duration::from_secs(args.timeout);
    let start = Instant::now();
    while tx.subscribers().len() < args.await_subscribers {
        if stop.load(Ordering::Relaxed) || start.elapsed() >= limit {
            return Err((
                Exit::Setup,
                format!(
                    "{} of {} subscribers connected to `{}` within {} s; start them \
                     (cargo run --release --example subscriber -- --name {}) or raise \
                     --timeout",
                    tx.subscribers().len(),
                    args.await_subscribers,
                    args.name,
                    args.timeout,
                    args.name
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let start = Instant::now();
    let (sent, result) = send_all(&mut tx, args, &stop);
    let secs = start.elapsed().as_secs_f64();
    tx.close();
    let stats = tx.stats();
    println!(
        "sent {sent} messages, {} bytes in {secs:.2} s: {}; {} evicted, {} dead subscribers freed",
        sent * u64::from(args.size),
        common::rates(sent, sent * u64::from(args.size), secs),
        stats.evictions,
        stats.reclaimed
    );
    result
}

fn send_all(
    tx: &mut BroadcastSender<Raw>,
    args: &Args,
    stop: &AtomicBool,
) -> (u64, Result<(), Failure>) {
    let limit = Duration::from_secs(args.timeout);
    let start = Instant::now();
    let mut seq = 0u64;
    let mut msg = vec![0u8; args.size as usize];
    while args.count == 0 || seq < args.count {
        if stop.load(Ordering::Relaxed) {
            let code = if args.count == 0 {
                Ok(())
            } else {
                Err((Exit::Interrupted, "stopped by a signal".into()))
            };
            return (seq, code);
        }
        if args.rate > 0 {
            let due = start + Duration::from_secs_f64(seq as f64 / args.rate as f64);
            if let Some(d) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
        }
        if let Err(e) = stamp::write(&mut msg, seq, stamp::now_ns()) {
            return (seq, Err((Exit::Setup, e.to_string())));
        }
        match tx.send_message_deadline(&msg, Some(Instant::now() + limit)) {
            Ok(()) => seq += 1,
            Err(Error::Timeout { .. }) => {
                return (
                    seq,
                    Err((
                        Exit::Peer,
                        format!(
                            "the channel stayed full for {} s: a subscriber is not reading \
                             (use --lossy or --slow-policy evict:MS not to wait for it)",
                            args.timeout
                        ),
                    )),
                )
            }
            Err(e) => return (seq, Err((Exit::Peer, e.to_string()))),
        }
    }
    (seq, Ok(()))
}
