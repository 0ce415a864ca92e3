//! What the `producer`, `consumer` and `pingpong` examples share: the `--wait` flag, the
//! exit codes, argument parsing that exits 1 on bad input, and the figures they print.

// Each example compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::sys::signal::{SigSet, Signal};

use clap::Parser;
use hdrhistogram::Histogram;
use shm_bridge::WaitStrategy;

/// How a blocked call waits (`--wait`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Wait {
    /// Busy-spin: the lowest latency, and a core at 100 % while waiting.
    Spin,
    /// Spin briefly, then yield the CPU between checks.
    Yield,
    /// Spin and yield for about 10 µs, then sleep in the kernel until woken.
    Block,
}

impl Wait {
    /// The library's strategy for this choice.
    pub fn strategy(self) -> WaitStrategy {
        match self {
            Wait::Spin => WaitStrategy::BusySpin,
            Wait::Yield => WaitStrategy::spin_then_yield(),
            Wait::Block => WaitStrategy::blocking(),
        }
    }
}

impl std::fmt::Display for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Wait::Spin => "spin",
            Wait::Yield => "yield",
            Wait::Block => "block",
        })
    }
}

/// The exit codes, listed in each example's `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything arrived (or was sent) and checked out.
    Ok = 0,
    /// Bad flags, or the channel could not be set up.
    Setup = 1,
    /// A corrupt message, or a gap or duplicate in the sequence.
    Corrupt = 2,
    /// The process on the other side died, hung, or left too early.
    Peer = 3,
    /// Stopped by Ctrl-C or SIGTERM before the requested count (the consumer).
    Interrupted = 4,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// Parses the command line. `--help` prints and exits 0; a bad flag or value prints clap's
/// message and exits 1 (not clap's usual 2, which means corruption here).
pub fn parse_args<A: Parser>() -> Result<A, ExitCode> {
    A::try_parse().map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            Exit::Setup.into()
        } else {
            ExitCode::SUCCESS
        }
    })
}

/// The `main` of an example whose work is `run`: parses the flags (1 on bad ones), runs,
/// and on failure prints the reason after `who: ` to stderr and exits with its code.
pub fn main_of<A: Parser>(
    who: &str,
    run: impl FnOnce(&A) -> Result<(), (Exit, String)>,
) -> ExitCode {
    let args = match parse_args::<A>() {
        Ok(a) => a,
        Err(code) => return code,
    };
    match run(&args) {
        Ok(()) => Exit::Ok.into(),
        Err((code, reason)) => {
            eprintln!("{who}: {reason}");
            code.into()
        }
    }
}

/// A histogram of nanoseconds, from 1 ns to an hour, to 3 significant digits.
pub fn latency_histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
        .map_err(|e| format!("cannot create the latency histogram: {e}"))
}

/// `850 ns`, `1.2 us`, `3.4 ms` or `1.50 s`.
pub fn human_ns(ns: u64) -> String {
    let f = ns as f64;
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{:.1} us", f / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} ms", f / 1e6),
        _ => format!("{:.2} s", f / 1e9),
    }
}

/// `p50 1.2 us p99 3.4 us p99.9 10.1 us max 55.0 us` for a histogram of nanoseconds.
pub fn percentiles(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "n/a (no samples)".into();
    }
    format!(
        "p50 {} p99 {} p99.9 {} max {}",
        human_ns(h.value_at_quantile(0.50)),
        human_ns(h.value_at_quantile(0.99)),
        human_ns(h.value_at_quantile(0.999)),
        human_ns(h.max()),
    )
}

/// `1.92 M msgs/s, 123.0 MB/s` (or `k msgs/s`, or plain `msgs/s` below a thousand) for
/// `messages` of `bytes` in all over `secs`.
pub fn rates(messages: u64, bytes: u64, secs: f64) -> String {
    let per_s = |x: u64| if secs > 0.0 { x as f64 / secs } else { 0.0 };
    let m = per_s(messages);
    let msgs = if m >= 1e6 {
        format!("{:.2} M", m / 1e6)
    } else if m >= 1e3 {
        format!("{:.1} k", m / 1e3)
    } else {
        format!("{m:.1}")
    };
    format!("{msgs} msgs/s, {:.1} MB/s", per_s(bytes) / 1e6)
}

/// Turns SIGINT and SIGTERM into a flag the send loop polls, so Ctrl-C ends the run
/// cleanly: the channel is closed, the other side sees `Closed`, and both print their
/// summaries.
/// A second signal exits at once (code 130). Call it before starting any other thread:
/// threads inherit the blocked mask, and a thread that does not block the signals would
/// take the default action (death) instead.
pub fn stop_on_signal() -> nix::Result<Arc<AtomicBool>> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.thread_block()?;
    let flag = Arc::new(AtomicBool::new(false));
    let seen = flag.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            while set.wait().is_ok() {
                if seen.swap(true, Ordering::Relaxed) {
                    std::process::exit(130);
                }
            }
        })
        .map_err(|_| nix::errno::Errno::EAGAIN)?;
    Ok(flag)
}

/// The flags that relax the library's safety checks on an existing channel, named in its
/// error hints (which `hint_flags` rewrites to name these flags).
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct Trust {
    /// Use a channel owned by another uid (refused by default).
    #[arg(long)]
    pub allow_foreign_owner: bool,
    /// Use a channel that group or others may write (refused by default).
    #[arg(long)]
    pub allow_shared_write: bool,
}

/// Rewrites the library's hints, which name its builder calls, to name this program's
/// flags instead.
pub fn hint_flags(message: String) -> String {
    message
        .replace("`.allow_foreign_owner(true)`", "`--allow-foreign-owner`")
        .replace("`.allow_shared_write(true)`", "`--allow-shared-write`")
}
