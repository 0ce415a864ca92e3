//! Reads the `publisher` example's messages from a named broadcast channel, checks every
//! one (its pattern, and a sequence whose every gap is exactly a loss the channel
//! reported), records each message's latency from its send time, and prints one summary
//! line:
//!
//! ```text
//! received 1000000 messages, 0 lost (0 reported), 0 errors in 0.52 s: 1.92 M msgs/s, 123.0 MB/s, latency p50 1.2 us ...
//! ```
//!
//! Start it before or after the publisher (it waits up to `--timeout` for the channel);
//! it reads from the next message sent, or with up to `--history N` earlier ones.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Parser;
use common::{Exit, Wait};
use shm_bridge::{ChannelOptions, Error};
use shmlane_cli::stamp;

const AFTER_HELP: &str = "\
Exit codes:
  0  every message arrived valid and in sequence, every gap exactly a loss the channel
     reported (--count messages, or all until the publisher closed the channel)
  1  set-up error: bad flags, the channel could not be opened, or no publisher within
     --timeout
  2  a message failed its check, or the sequence had a gap the channel did not report, or
     a duplicate
  3  the publisher died or hung with nothing sent for --timeout, or closed the channel
     before --count messages
  4  stopped by Ctrl-C or SIGTERM before --count messages";

/// Reads and checks the `publisher` example's messages.
#[derive(Parser, Debug)]
#[command(after_help = AFTER_HELP)]
struct Args {
    /// Channel name (`/dev/shm/shmlane.NAME`).
    #[arg(long, default_value = "feed")]
    name: String,
    /// Messages to receive (losses count); 0: until the publisher closes the channel.
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// Start with up to N messages sent before this subscriber connected.
    #[arg(long, default_value_t = 0, value_name = "N")]
    history: usize,
    /// Pause this many microseconds after each message (to play a slow subscriber).
    #[arg(long, default_value_t = 0, value_name = "US")]
    pause: u64,
    /// How to wait for the next message.
    #[arg(long, value_enum, default_value_t = Wait::Block)]
    wait: Wait,
    /// Seconds to wait for the channel, and for a message while the publisher is silent.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    timeout: u64,
}

fn main() -> std::process::ExitCode {
    common::main_of::<Args>("subscriber", run)
}

/// The full sequence number of a checked message: short messages carry only its low 32
/// bits, taken as the nearest at or after `next`.
fn sequence(s: &stamp::Stamp, next: Option<u64>) -> u64 {
    match next {
        Some(n) if s.short => n + (s.seq.wrapping_sub(n) & 0xffff_ffff),
        _ => s.seq,
    }
}

fn run(args: &Args) -> Result<(), (Exit, String)> {
    let stop =
        common::stop_on_signal().map_err(|e| (Exit::Setup, format!("blocking signals: {e}")))?;
    let mut rx = ChannelOptions::new()
        .wait_strategy(args.wait.strategy())
        .history(args.history)
        .timeout(Duration::from_secs(args.timeout))
        .connect_subscriber_bytes(&args.name)
        .map_err(|e| (Exit::Setup, e.to_string()))?;
    let mut hist = common::latency_histogram().map_err(|e| (Exit::Setup, e))?;
    let limit = Duration::from_secs(args.timeout);
    let (mut received, mut lost, mut reported) = (0u64, 0u64, 0u64);
    let mut next: Option<u64> = None;
    let mut buf = vec![0u8; rx.max_message()];
    let mut bytes = 0u64;
    let start = Instant::now();
    let result = loop {
        if args.count > 0 && received + lost >= args.count {
            break Ok(());
        }
        if stop.load(Ordering::Relaxed) {
            break if args.count == 0 {
                Ok(())
            } else {
                Err((Exit::Interrupted, "stopped by a signal".into()))
            };
        }
        match rx.recv_message_deadline(&mut buf, Some(Instant::now() + limit)) {
            Ok(len) => {
                let s = match stamp::check(&buf[..len]) {
                    Ok(s) => s,
                    Err(e) => {
                        let at =
                            next.map_or("the first".into(), |n| format!("message {n} or after"));
                        break Err((Exit::Corrupt, format!("{at} failed its check: {e}")));
                    }
                };
                let seq = sequence(&s, next);
                bytes += len as u64;
                match next {
                    Some(n) if seq < n => {
                        break Err((Exit::Corrupt, format!("message {seq} again (expected {n})")))
                    }
                    Some(n) if seq > n => {
                        // Every gap must be a loss the channel reported just before.
                        let gap = seq - n;
                        if gap > reported {
                            break Err((
                                Exit::Corrupt,
                                format!(
                                    "{gap} message(s) missing before {seq}, {reported} reported"
                                ),
                            ));
                        }
                        reported -= gap;
                        lost += gap;
                    }
                    _ => {}
                }
                if reported != 0 && next.is_some() {
                    break Err((
                        Exit::Corrupt,
                        format!("{reported} loss(es) reported but no gap before {seq}"),
                    ));
                }
                reported = 0;
                next = Some(seq + 1);
                received += 1;
                hist.saturating_record(s.latency_ns(stamp::now_ns()).max(1));
                if args.pause > 0 {
                    std::thread::sleep(Duration::from_micros(args.pause));
                }
            }
            Err(Error::Lost { missed, .. }) => reported += missed,
            Err(Error::Closed { .. }) if args.count == 0 => break Ok(()),
            Err(
                e @ (Error::Closed { .. }
                | Error::PeerGone { .. }
                | Error::PeerHung { .. }
                | Error::Timeout { .. }),
            ) => break Err((Exit::Peer, e.to_string())),
            Err(e) => break Err((Exit::Setup, e.to_string())),
        }
    };
    let secs = start.elapsed().as_secs_f64();
    println!(
        "received {received} messages, {lost} lost ({} reported), {} errors in {secs:.2} s: {}, latency {}",
        rx.missed(),
        u8::from(result.is_err()),
        common::rates(received, bytes, secs),
        common::percentiles(&hist)
    );
    result
}
