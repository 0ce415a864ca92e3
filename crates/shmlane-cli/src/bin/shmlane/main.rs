//! `shmlane`: look at, watch, clean up and demonstrate shmlane channels from a shell.
//!
//! A channel is the file `/dev/shm/shmlane.NAME` (see `shm_bridge::channel`). This tool
//! reads channels from outside, through the library's `inspect` module, and never writes
//! into one:
//!
//! - `shmlane list`: every segment under the prefix, one line each: kind, element type,
//!   capacity, fill level, producer and consumer state with pids, size and resident memory.
//!   Corrupt or foreign segments are listed with the reason they are not usable.
//! - `shmlane inspect NAME`: every control-block and ring-header field, the participants with
//!   their counters and liveness, residency, and the processes that map the channel.
//! - `shmlane watch NAME`: msgs/s, bytes/s and fill level, refreshed every second.
//! - `shmlane rm NAME` and `shmlane gc`: remove one channel (refused while a holder is alive,
//!   unless `--force`), or every channel whose holders are all dead.
//! - `shmlane demo`: streams self-checking messages between two processes it starts, through
//!   a channel and then through a pipe, and prints both side by side.
//! - `shmlane bench`: the cross-process benchmark suite (`shmlane_cli::bench`): each figure
//!   beside its baseline from the same run, and the ratio.
//!
//! Every command prints a table for people by default and JSON with `--json` (one document,
//! or one object per line for `watch`). The exit status is 0 on success and 1 on any error,
//! usage errors included; the message on stderr names the problem and what to do.

mod demo;
mod render;
mod watch;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shm_bridge::inspect;

/// Command-line interface (see the module doc).
#[derive(Debug, Parser)]
#[command(
    name = "shmlane",
    version,
    about = "Look at, watch, clean up and demonstrate shmlane shared-memory channels",
    long_about = "Look at, watch, clean up and demonstrate shmlane shared-memory channels.\n\n\
                  Channels live in /dev/shm/shmlane.NAME. Every command prints a table by \
                  default and JSON with --json. Exit status: 0 on success, 1 on error."
)]
struct Cli {
    /// Print JSON instead of tables (one document; one object per line for `watch`).
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List every channel: kind, type, capacity, fill, producer and consumer, memory.
    ///
    /// Segments under /dev/shm/shmlane.* that are not usable channels (corrupt, foreign,
    /// half-created) are listed too, with the reason.
    List,

    /// Show everything about one channel: header fields, indices, counters, liveness,
    /// residency, and which processes map it.
    Inspect {
        /// Channel name (without the `shmlane.` prefix).
        name: String,
    },

    /// Show msgs/s, bytes/s and fill level of a channel, refreshed until Ctrl-C.
    ///
    /// Typed and MPMC channels count messages from the ring's producer position (exact,
    /// whatever API the producer uses); byte channels from the counters each participant
    /// publishes every few milliseconds.
    Watch {
        /// Channel name (without the `shmlane.` prefix).
        name: String,
        /// Milliseconds between refreshes.
        #[arg(long, value_name = "MS", default_value_t = 1000,
              value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
        interval: u64,
        /// Stop after this many refreshes (default: run until Ctrl-C).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
    },

    /// Remove a channel. Refused while a process holds it, unless --force.
    ///
    /// A forced removal only unlinks the name: processes that hold the channel keep using
    /// their mapping, and new processes no longer find it.
    Rm {
        /// Channel name (without the `shmlane.` prefix).
        name: String,
        /// Remove it even if a live process holds it.
        #[arg(long)]
        force: bool,
    },

    /// Remove every channel whose holders are all dead (and unusable leftovers), and say
    /// what was removed.
    Gc,

    /// Stream self-checking messages between two processes through a channel, then through
    /// a pipe, and compare throughput and latency.
    ///
    /// Starts a consumer and a producer process, streams stamped messages (sequence number,
    /// send time, checksum) for a few seconds, verifies every one, and does the same through
    /// a pipe between two processes. Latency is measured from just before the send call to
    /// the receive, under full load, so it includes waiting in the buffer (64 KiB for both).
    /// Exits 1 if any message was lost, reordered or damaged.
    Demo(demo::DemoArgs),

    /// Run the cross-process benchmark suite: every figure beside its baseline measured in
    /// the same run (the shared-atomic floor, pipes, Unix sockets, eventfd, rtrb, crossbeam),
    /// and the ratio.
    ///
    /// About a minute by default, under 15 s with --quick. With --json, one object per
    /// figure and line: name, value, unit, baseline, baseline_value, ratio, better.
    Bench {
        /// Fewer samples, for a first look (under 15 s).
        #[arg(long)]
        quick: bool,
        /// Run only `latency`, `throughput`, `async`, `broadcast` or `scale` (threads, idle CPU and set-up time
        /// with 10 to 1 000 channels open).
        #[arg(long, value_parser = ["latency", "throughput", "async", "broadcast", "scale"])]
        only: Option<String>,
        /// Tiny sample counts, for tests of the output format (figures meaningless).
        #[arg(long, hide = true)]
        smoke: bool,
    },

    /// Demo producer process (started by `shmlane demo`).
    #[command(hide = true)]
    DemoProducer(demo::RoleArgs),

    /// Demo consumer process (started by `shmlane demo`).
    #[command(hide = true)]
    DemoConsumer(demo::RoleArgs),

    /// Demo pipe writer process (started by `shmlane demo`).
    #[command(hide = true)]
    DemoPipeWriter(demo::RoleArgs),

    /// Demo pipe reader process (started by `shmlane demo`).
    #[command(hide = true)]
    DemoPipeReader(demo::RoleArgs),
}

/// Why a command failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A message for stderr: what went wrong and what to do.
    Message(String),
    /// Standard output was closed (for example piped into `head`): stop quietly.
    OutputClosed,
}

impl Failure {
    pub(crate) fn msg(text: impl Into<String>) -> Failure {
        Failure::Message(text.into())
    }
}

impl From<shm_bridge::Error> for Failure {
    fn from(e: shm_bridge::Error) -> Self {
        Failure::Message(e.to_string())
    }
}

pub(crate) type Outcome<T = ()> = Result<T, Failure>;

/// Writes `text` to stdout and flushes it (so `watch` lines appear at once).
pub(crate) fn emit(text: &str) -> Outcome {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => Failure::OutputClosed,
            _ => Failure::msg(format!("cannot write to standard output: {e}")),
        })
}

/// Writes `value` as pretty JSON and a newline.
pub(crate) fn emit_json(value: &serde_json::Value) -> Outcome {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::msg(format!("cannot encode JSON: {e}")))?;
    emit(&format!("{text}\n"))
}

/// Looks up channel `name`, with an error that says how to find the right name.
pub(crate) fn find(name: &str) -> Outcome<inspect::ChannelInfo> {
    match inspect::inspect(name) {
        Ok(info) => Ok(info),
        Err(shm_bridge::Error::Region(shm_region::Error::NotFound { .. })) => {
            Err(Failure::msg(format!(
                "there is no channel named `{name}` ({} does not exist); `shmlane list` shows \
                 the channels there are",
                shm_bridge::shm_path(name).display()
            )))
        }
        Err(e) => Err(e.into()),
    }
}

fn list(json: bool) -> Outcome {
    let channels = inspect::list()?;
    if json {
        let all: Vec<_> = channels.iter().map(render::channel_json).collect();
        emit_json(&serde_json::Value::Array(all))
    } else {
        emit(&render::list_table(&channels))
    }
}

fn inspect_one(name: &str, json: bool) -> Outcome {
    let info = find(name)?;
    let me = std::process::id();
    let mappers: Vec<_> = inspect::mappers(name)
        .into_iter()
        .filter(|m| m.pid != me)
        .collect();
    if json {
        emit_json(&render::inspect_json(&info, &mappers))?;
    } else {
        emit(&render::inspect_text(&info, &mappers))?;
    }
    match &info.problem {
        // The report above says what is wrong; the exit code tells scripts.
        Some(p) => Err(Failure::msg(format!("channel `{name}` is not usable: {p}"))),
        None => Ok(()),
    }
}

fn rm(name: &str, force: bool, json: bool) -> Outcome {
    find(name)?;
    let info = inspect::remove(name, force)?;
    let holders: Vec<_> = info
        .participants
        .iter()
        .filter(|p| {
            matches!(
                p.state,
                shm_bridge::PeerState::Alive { .. } | shm_bridge::PeerState::Hung { .. }
            )
        })
        .collect();
    if json {
        emit_json(&serde_json::json!({
            "removed": render::channel_json(&info),
            "forced": force,
            "was_held": info.held,
        }))
    } else {
        let mut text = format!(
            "removed channel `{name}` ({}, {})\n",
            info.path.display(),
            render::size(info.size)
        );
        if info.held {
            text.push_str(
                "note: live processes still hold it and keep their mapping until they exit",
            );
            for p in holders {
                text.push_str(&format!("; {} pid {}", p.role, p.pid));
            }
            text.push('\n');
        }
        emit(&text)
    }
}

fn gc(json: bool) -> Outcome {
    let report = inspect::gc_report()?;
    if json {
        emit_json(&render::gc_json(&report))
    } else {
        emit(&render::gc_text(&report))
    }
}

fn bench(quick: bool, only: Option<String>, smoke: bool, json: bool) -> Outcome {
    let options = shmlane_cli::bench::Options { quick, only, smoke };
    let (report, result) = shmlane_cli::bench::suite(&options);
    if json {
        emit(&format!("{}\n", report.json_lines()))?;
    } else {
        emit(&report.table())?;
        emit(&format!(
            "\n{} CPUs; sides pinned to CPUs 0 and 1 where there are two; latency ratios < 1 \
             and rate ratios > 1 favour the figure\n",
            shmlane_cli::bench::run::available_cpus()
        ))?;
    }
    result.map_err(|e| Failure::msg(format!("the benchmark stopped early: {e}")))
}

fn run(cli: Cli) -> Outcome {
    match cli.command {
        Command::List => list(cli.json),
        Command::Inspect { name } => inspect_one(&name, cli.json),
        Command::Watch {
            name,
            interval,
            count,
        } => watch::run(&name, interval, count, cli.json),
        Command::Rm { name, force } => rm(&name, force, cli.json),
        Command::Gc => gc(cli.json),
        Command::Demo(args) => demo::run(&args, cli.json),
        Command::Bench { quick, only, smoke } => bench(quick, only, smoke, cli.json),
        Command::DemoProducer(args) => demo::producer(&args),
        Command::DemoConsumer(args) => demo::consumer(&args),
        Command::DemoPipeWriter(args) => demo::pipe_writer(&args),
        Command::DemoPipeReader(args) => demo::pipe_reader(&args),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors; every usage error exits 1.
            let code = if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
            let _ = e.print();
            return code;
        }
    };
    let json = cli.json;
    match run(cli) {
        Ok(()) | Err(Failure::OutputClosed) => ExitCode::SUCCESS,
        Err(Failure::Message(m)) => {
            if json {
                // Under --json, errors are JSON too (on stderr, so stdout stays parseable).
                let v = serde_json::json!({ "error": m });
                let _ = writeln!(std::io::stderr(), "{v}");
            } else {
                let m: Vec<String> = m.lines().map(render::esc).collect();
                let _ = writeln!(std::io::stderr(), "shmlane: error: {}", m.join("\n"));
            }
            ExitCode::FAILURE
        }
    }
}
