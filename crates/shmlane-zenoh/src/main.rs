//! `shmlane-zenoh`: runs one side of a bridge between a shmlane channel and zenoh.
//!
//! ```text
//! shmlane-zenoh out --name ticks --key plant/ticks --connect tcp/10.0.0.2:7447
//! shmlane-zenoh in  --name ticks --key plant/ticks --kind bytes --listen tcp/0.0.0.0:7447
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use shm_bridge::{ChannelOptions, ElementType, WaitStrategy};
use shmlane_zenoh::local::{Full, Sink, SinkKind, Source};
use shmlane_zenoh::{in_, out, Error, InOptions, OutOptions};
use zenoh::Wait;

mod bench;

const AFTER_HELP: &str = "\
Exit codes:
  0  done: the stream ended (its channel closed) and everything was passed on, or the
     bridge was stopped with Ctrl-C or SIGTERM (it closes its side cleanly)
  1  set-up error: bad flags, the channel could not be opened or created, zenoh could not
     start, or (out) no subscriber within --timeout
  2  (in) refused a stream of another message type than its channel's
  3  the local channel failed: its other side died, or it broke";

/// Bridges shmlane channels onto zenoh.
#[derive(Parser, Debug)]
#[command(name = "shmlane-zenoh", after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    side: Side,
}

/// zenoh settings shared by both sides.
#[derive(clap::Args, Debug, Clone)]
struct ZenohArgs {
    /// A zenoh configuration file (JSON5); the flags below override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// zenoh mode.
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    /// Endpoint to connect to, e.g. `tcp/10.0.0.2:7447` (repeat for more).
    #[arg(long, value_name = "ENDPOINT")]
    connect: Vec<String>,
    /// Endpoint to listen on, e.g. `tcp/0.0.0.0:7447` (repeat for more).
    #[arg(long, value_name = "ENDPOINT")]
    listen: Vec<String>,
    /// Turn multicast and gossip scouting off (only the endpoints given are used).
    #[arg(long)]
    no_scouting: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    Peer,
    Client,
}

#[derive(Debug, Clone, Copy, ValueEnum, Default)]
enum Reliability {
    /// Retransmitted until delivered (zenoh's default).
    #[default]
    Reliable,
    /// Sent once: a loss shows as a gap at the far side.
    BestEffort,
}

#[derive(Subcommand, Debug)]
enum Side {
    /// End to end through both bridges against plain zenoh publish/subscribe between two
    /// processes on TCP 127.0.0.1: throughput and round trip, 64 B and 64 KiB.
    Bench {
        /// Fewer messages and one run per figure (a smoke run).
        #[arg(long)]
        quick: bool,
    },
    /// One side of a benchmark (run by `bench`).
    #[command(hide = true, name = "bench-side")]
    BenchPart {
        #[arg(value_enum)]
        role: bench::Role,
        #[arg(long, value_enum)]
        path: bench::Path,
        #[arg(long)]
        size: usize,
        #[arg(long)]
        count: u64,
        #[arg(long)]
        port: u16,
    },
    /// Reads a local channel (any kind; a broadcast channel gets a new subscriber) and
    /// publishes its messages on a key expression.
    Out {
        /// The local channel (`/dev/shm/shmlane.NAME`).
        #[arg(long)]
        name: String,
        /// The zenoh key expression to publish on.
        #[arg(long)]
        key: String,
        /// Most messages per zenoh message (batches carry only what is ready).
        #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
        batch: u32,
        /// When zenoh cannot keep up: wait (backpressure) or drop (the far side counts the
        /// gap).
        #[arg(long, value_enum, default_value_t = Full::Wait)]
        full: Full,
        #[arg(long, value_enum, default_value_t = Reliability::Reliable)]
        reliability: Reliability,
        /// Seconds to wait for the channel to exist and for a subscriber on the key.
        #[arg(long, default_value_t = 10, value_name = "SECS")]
        timeout: u64,
        #[command(flatten)]
        zenoh: ZenohArgs,
    },
    /// Subscribes to a key expression and produces what arrives into a local channel it
    /// creates.
    In {
        /// The local channel to create (`/dev/shm/shmlane.NAME`).
        #[arg(long)]
        name: String,
        /// The zenoh key expression to subscribe to.
        #[arg(long)]
        key: String,
        /// The kind of channel to create.
        #[arg(long, value_enum, default_value_t = SinkKind::Bytes)]
        kind: SinkKind,
        /// The element type of an element channel, as `NAME:SIZE:ALIGN` (the name the
        /// sending side's channel records, e.g. `u64:8:8`).
        #[arg(long = "type", value_name = "NAME:SIZE:ALIGN", value_parser = parse_type)]
        elem: Option<ElementType>,
        /// Channel capacity: elements, or bytes for a byte channel.
        #[arg(long)]
        capacity: Option<usize>,
        /// Largest byte message (byte kinds).
        #[arg(long, value_name = "BYTES")]
        max_message: Option<usize>,
        /// When the local channel is full: wait (backpressure through zenoh) or drop and
        /// count.
        #[arg(long, value_enum, default_value_t = Full::Wait)]
        full: Full,
        /// Keep running after a stream ends (waiting for the next one) instead of closing
        /// the channel and exiting.
        #[arg(long)]
        keep_going: bool,
        /// Seconds to keep retrying the channel's creation while a live process still holds
        /// the name (a consumer of this bridge's previous run, say).
        #[arg(long, default_value_t = 10, value_name = "SECS")]
        timeout: u64,
        #[command(flatten)]
        zenoh: ZenohArgs,
    },
}

fn parse_type(s: &str) -> Result<ElementType, String> {
    let mut parts = s.rsplitn(3, ':');
    let (Some(align), Some(size), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("`{s}`: use NAME:SIZE:ALIGN, e.g. u64:8:8"));
    };
    let size = size
        .parse()
        .map_err(|e| format!("`{size}` is not a size: {e}"))?;
    let align = align
        .parse()
        .map_err(|e| format!("`{align}` is not an alignment: {e}"))?;
    ElementType::named(name.to_owned(), size, align).map_err(|e| e.to_string())
}

fn zenoh_config(z: &ZenohArgs) -> Result<zenoh::Config, String> {
    let mut c = match &z.config {
        Some(p) => zenoh::Config::from_file(p)
            .map_err(|e| format!("reading the zenoh configuration {}: {e}", p.display()))?,
        None => zenoh::Config::default(),
    };
    let mut set = |key: &str, value: String| {
        c.insert_json5(key, &value)
            .map_err(|e| format!("zenoh configuration `{key}` = {value}: {e}"))
    };
    if let Some(m) = z.mode {
        let m = match m {
            Mode::Peer => "\"peer\"",
            Mode::Client => "\"client\"",
        };
        set("mode", m.into())?;
    }
    let list = |v: &[String]| {
        let quoted: Vec<String> = v.iter().map(|e| format!("{e:?}")).collect();
        format!("[{}]", quoted.join(","))
    };
    if !z.connect.is_empty() {
        set("connect/endpoints", list(&z.connect))?;
    }
    if !z.listen.is_empty() {
        set("listen/endpoints", list(&z.listen))?;
    }
    if z.no_scouting {
        set("scouting/multicast/enabled", "false".into())?;
        set("scouting/gossip/enabled", "false".into())?;
    }
    Ok(c)
}

/// Blocks SIGINT and SIGTERM in every thread (call before any thread starts) and sets the
/// returned flag when one arrives.
fn stop_on_signal() -> Result<Arc<AtomicBool>, String> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.thread_block()
        .map_err(|e| format!("blocking signals: {e}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if set.wait().is_ok() {
                flag.store(true, Ordering::Relaxed);
            }
        })
        .map_err(|e| format!("starting the signal thread: {e}"))?;
    Ok(stop)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(line) => {
            if !line.is_empty() {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err((code, msg)) => {
            eprintln!("shmlane-zenoh: {msg}");
            ExitCode::from(code)
        }
    }
}

fn run(cli: Cli) -> Result<String, (u8, String)> {
    let setup = |e: String| (1u8, e);
    match cli.side {
        Side::Bench { quick } => {
            bench::run(quick).map_err(setup)?;
            return Ok(String::new());
        }
        Side::BenchPart {
            role,
            path,
            size,
            count,
            port,
        } => {
            bench::side(role, path, size.max(8), count, port).map_err(setup)?;
            return Ok(String::new());
        }
        _ => {}
    }
    let stop = stop_on_signal().map_err(setup)?;
    match cli.side {
        Side::Bench { .. } | Side::BenchPart { .. } => Ok(String::new()),
        Side::Out {
            name,
            key,
            batch,
            full,
            reliability,
            timeout,
            zenoh,
        } => {
            let config = zenoh_config(&zenoh).map_err(setup)?;
            let limit = Duration::from_secs(timeout);
            let source =
                Source::connect_within(&ChannelOptions::new().timeout(limit), &name, limit)
                    .map_err(|e| setup(e.to_string()))?;
            let session = zenoh::open(config)
                .wait()
                .map_err(|e| setup(format!("starting zenoh: {e}")))?;
            let mut opts = OutOptions::new(stop);
            opts.max_batch = batch;
            opts.full = full;
            opts.reliability = match reliability {
                Reliability::Reliable => zenoh::qos::Reliability::Reliable,
                Reliability::BestEffort => zenoh::qos::Reliability::BestEffort,
            };
            opts.await_subscriber = Some(limit);
            let r = out(source, &session, &key, &opts).map_err(classify)?;
            let _ = session.close().wait();
            Ok(format!(
                "out `{name}` -> `{key}`: stream {:016x}, {} messages, {} bytes in {} zenoh messages, {} lost locally{}",
                r.stream,
                r.messages,
                r.bytes,
                r.batches,
                r.lost_locally,
                if r.ended { ", channel ended" } else { ", stopped" }
            ))
        }
        Side::In {
            name,
            key,
            kind,
            elem,
            capacity,
            max_message,
            full,
            keep_going,
            timeout,
            zenoh,
        } => {
            let config = zenoh_config(&zenoh).map_err(setup)?;
            let mut copts = ChannelOptions::new().wait_strategy(WaitStrategy::blocking());
            if let Some(c) = capacity {
                copts = copts.capacity(c);
            }
            if let Some(m) = max_message {
                copts = copts.max_message(m);
            }
            let sink = create_retrying(&copts, &name, kind, elem.as_ref(), timeout, &stop)
                .map_err(|e| setup(e.to_string()))?;
            let session = zenoh::open(config)
                .wait()
                .map_err(|e| setup(format!("starting zenoh: {e}")))?;
            let mut opts = InOptions::new(stop);
            opts.full = full;
            opts.exit_on_end = !keep_going;
            opts.on_event = Some(Arc::new(|e| eprintln!("shmlane-zenoh in: {e}")));
            let r = in_(sink, &session, &key, &opts).map_err(classify)?;
            let _ = session.close().wait();
            Ok(format!(
                "in `{key}` -> `{name}`: {} messages, {} bytes in {} zenoh messages, {} lost on the way, {} dropped, {} malformed, {} duplicates, {} stream(s){}",
                r.messages,
                r.bytes,
                r.batches,
                r.gaps,
                r.dropped,
                r.malformed,
                r.duplicates,
                r.streams,
                if r.ended { ", ended" } else { ", stopped" }
            ))
        }
    }
}

/// Creates the channel, retrying while a live process still holds the name (the consumer
/// of a previous run, which lets go once it sees that run's end).
fn create_retrying(
    opts: &ChannelOptions,
    name: &str,
    kind: SinkKind,
    elem: Option<&ElementType>,
    timeout: u64,
    stop: &AtomicBool,
) -> Result<Sink, shm_bridge::Error> {
    let start = std::time::Instant::now();
    loop {
        match Sink::create(opts, name, kind, elem) {
            Err(shm_bridge::Error::InUse { .. })
                if start.elapsed() < Duration::from_secs(timeout)
                    && !stop.load(Ordering::Relaxed) =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

fn classify(e: Error) -> (u8, String) {
    let code = match &e {
        Error::WrongType { .. } => 2,
        Error::Channel(_) => 3,
        _ => 1,
    };
    (code, e.to_string())
}
