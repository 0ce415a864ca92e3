//! Receives the `producer` example's stamped messages on several byte channels at once,
//! from one tokio task, through the async ends (`shm_bridge::aio`): the channels' streams are
//! merged and drained as messages arrive, whichever channel they come from. Checks every
//! message as the `consumer` example does (checksum, a sequence contiguous from 0 per
//! channel) and prints a line per channel and a total.
//!
//! ```text
//! cargo run --release --example async_consumer -- --name demo --channels 4 --count 100000
//! for k in 0 1 2 3; do
//!     cargo run --release --example producer -- --name demo.$k --count 100000 &
//! done
//! ```
//!
//! With `--channels 1` the channel is `NAME` itself. Exit codes as the `consumer` example's:
//! 0 every message of every channel arrived valid and in sequence; 1 set-up error (or no
//! producer within `--timeout`); 2 a bad message, gap or duplicate; 3 a producer died,
//! hung, or closed its channel before `--count` messages.

mod common;

use std::time::{Duration, Instant};

use clap::Parser;
use common::Exit;
use futures_util::stream::{select_all, StreamExt};
use shm_bridge::{ChannelOptions, Error, WaitStrategy};
use shmlane_cli::stamp;

/// Receives and checks the `producer` example's messages on several channels in one task.
#[derive(Parser, Debug)]
struct Args {
    /// Channel name prefix: `NAME.0` .. `NAME.(N-1)`, or `NAME` with `--channels 1`.
    #[arg(long, default_value = "demo")]
    name: String,
    /// How many channels.
    #[arg(long, default_value_t = 1)]
    channels: usize,
    /// Messages to receive per channel; 0: until every producer closes its channel.
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// Seconds to wait for a channel to appear, and the longest silence accepted.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    timeout: u64,
}

/// One channel's tally.
#[derive(Debug, Default, Clone)]
struct Tally {
    received: u64,
    bytes: u64,
    error: Option<String>,
    ended: Option<String>,
}

fn main() -> std::process::ExitCode {
    let args = match common::parse_args::<Args>() {
        Ok(a) => a,
        Err(code) => return code,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("async_consumer: cannot start the runtime: {e}");
            return Exit::Setup.into();
        }
    };
    match rt.block_on(run(&args)) {
        Ok(code) => code.into(),
        Err(reason) => {
            eprintln!("async_consumer: {reason}");
            Exit::Setup.into()
        }
    }
}

async fn run(args: &Args) -> Result<Exit, String> {
    let names: Vec<String> = if args.channels <= 1 {
        vec![args.name.clone()]
    } else {
        (0..args.channels)
            .map(|k| format!("{}.{k}", args.name))
            .collect()
    };
    let opts = ChannelOptions::new()
        .wait_strategy(WaitStrategy::blocking())
        .timeout(Duration::from_secs(args.timeout));
    let mut streams = Vec::new();
    for (k, n) in names.iter().enumerate() {
        let rx = opts
            .connect_bytes(n)
            .map_err(|e| e.to_string())?
            .into_async();
        // Each message tagged with its channel; each stream ends after `--count`.
        let limit = if args.count == 0 {
            u64::MAX
        } else {
            args.count
        };
        streams.push(rx.take(limit as usize).map(move |m| (k, m)).boxed());
    }
    let mut tallies = vec![Tally::default(); names.len()];
    let mut all = select_all(streams);
    let start = Instant::now();
    let silence = Duration::from_secs(args.timeout);
    // Set when a channel's failure stopped the run (the others were cut short by it).
    let mut stopped = false;
    loop {
        let next = match tokio::time::timeout(silence, all.next()).await {
            Ok(n) => n,
            Err(_) => {
                for t in tallies.iter_mut().filter(|t| t.ended.is_none()) {
                    t.ended = Some(format!("nothing arrived for {silence:?}"));
                }
                break;
            }
        };
        let Some((k, m)) = next else { break };
        let t = &mut tallies[k];
        match m {
            Ok(msg) => {
                match stamp::check(&msg) {
                    Ok(s) if stamp::is_next(&s, t.received) => {}
                    Ok(s) => {
                        t.error.get_or_insert(format!(
                            "expected message {}, got {}",
                            t.received, s.seq
                        ));
                    }
                    Err(bad) => {
                        t.error.get_or_insert(bad.to_string());
                    }
                }
                t.received += 1;
                t.bytes += msg.len() as u64;
            }
            Err(Error::PeerHung { .. }) => {}
            Err(e) => {
                // A producer died (or its channel broke): stop, as the `consumer` does.
                t.ended.get_or_insert(e.to_string());
                stopped = true;
                break;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let mut code = Exit::Ok;
    let (mut total, mut bytes) = (0, 0);
    for (n, t) in names.iter().zip(&tallies) {
        println!(
            "{n}: received {} messages, {} bytes, {} errors",
            t.received,
            t.bytes,
            u64::from(t.error.is_some())
        );
        total += t.received;
        bytes += t.bytes;
        if let Some(e) = &t.error {
            eprintln!("async_consumer: {n}: {e}");
            code = Exit::Corrupt;
        } else if t.ended.is_some() || (!stopped && args.count != 0 && t.received < args.count) {
            let why = t
                .ended
                .clone()
                .unwrap_or_else(|| "the producer closed the channel".into());
            eprintln!("async_consumer: {n}: {why} after {} messages", t.received);
            if code == Exit::Ok {
                code = Exit::Peer;
            }
        }
    }
    println!(
        "received {total} messages, {bytes} bytes on {} channel(s) in one task in {secs:.2} s: {:.2} M msgs/s",
        names.len(),
        total as f64 / secs / 1e6
    );
    Ok(code)
}
