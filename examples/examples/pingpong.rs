//! Round-trip latency between two processes: this process sends a `u64` on channel
//! `NAME.ping`, a child process echoes it back on `NAME.pong`, and each round trip is timed.
//! Prints the p50, p99, p99.9, max and mean.
//!
//! ```text
//! cargo run --release --example pingpong
//! cargo run --release --example pingpong -- --count 1000000 --wait block
//! ```
//!
//! The child is this same program started again with the hidden flag `--pong`. The first
//! tenth of the round trips (at most 10 000) warm the caches and are not counted. With the
//! default `--wait spin` both processes keep a core busy: give them two idle cores.

mod common;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use clap::Parser;
use common::{Exit, Wait};
use shm_bridge::{ChannelOptions, Error};

const AFTER_HELP: &str = "\
Exit codes:
  0  every round trip completed
  1  set-up error: bad flags, a channel could not be created or opened, or the child could
     not be started
  2  a value came back other than the one sent
  3  the other process died, hung for 10 s, or exited with an error";

/// How long either side waits for the other (to start, or while it is hung).
const PATIENCE: Duration = Duration::from_secs(10);

/// Measures round-trip latency between two processes over two `u64` channels.
#[derive(Parser, Debug)]
#[command(after_help = AFTER_HELP)]
struct Args {
    /// Round trips to time.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// How both processes wait for the next value.
    #[arg(long, value_enum, default_value_t = Wait::Spin)]
    wait: Wait,
    /// Prefix of the two channel names (`NAME.ping`, `NAME.pong`).
    #[arg(long, default_value = "pingpong")]
    name: String,
    /// Run as the echoing child (started by the parent).
    #[arg(long, hide = true)]
    pong: bool,
}

/// Why a run failed: the exit code and a one-line reason.
type Failure = (Exit, String);

fn main() -> std::process::ExitCode {
    let args = match common::parse_args::<Args>() {
        Ok(a) => a,
        Err(code) => return code,
    };
    let (role, result) = if args.pong {
        ("pingpong (pong)", pong(&args))
    } else {
        ("pingpong", ping(&args))
    };
    match result {
        Ok(()) => Exit::Ok.into(),
        Err((code, reason)) => {
            eprintln!("{role}: {reason}");
            code.into()
        }
    }
}

fn options(args: &Args) -> ChannelOptions {
    ChannelOptions::new()
        .capacity(64)
        .wait_strategy(args.wait.strategy())
        .timeout(PATIENCE)
}

/// The parent: starts the child, times the round trips, prints the figures.
fn ping(args: &Args) -> Result<(), Failure> {
    let setup = |e: Error| (Exit::Setup, e.to_string());
    let mut tx = options(args)
        .create::<u64>(&format!("{}.ping", args.name))
        .map_err(setup)?;
    let exe = std::env::current_exe().map_err(|e| {
        (
            Exit::Setup,
            format!("cannot find this program to start the child: {e}"),
        )
    })?;
    let child = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .arg("--pong")
        .spawn()
        .map_err(|e| (Exit::Setup, format!("cannot start the child process: {e}")))?;
    let mut child = KillOnDrop(child);
    // The child connects to `ping` before it creates `pong`, so once this returns the
    // child is ready.
    let mut rx = options(args)
        .connect::<u64>(&format!("{}.pong", args.name))
        .map_err(setup)?;

    let warmup = (args.count / 10).min(10_000);
    let mut hist = common::latency_histogram().map_err(|e| (Exit::Setup, e))?;
    for i in 0..warmup + args.count {
        let t = Instant::now();
        patiently(|| tx.send(i)).map_err(peer)?;
        let back = patiently(|| rx.recv()).map_err(peer)?;
        let ns = t.elapsed().as_nanos() as u64;
        if back != i {
            return Err((Exit::Corrupt, format!("sent {i} but {back} came back")));
        }
        if i >= warmup {
            hist.saturating_record(ns);
        }
    }
    drop(tx); // closes `ping`: the child sees Closed and exits
    child.wait(PATIENCE)?;

    println!(
        "{} round trips between two processes over two u64 channels (wait {}, after {warmup} \
         warm-up):",
        args.count, args.wait
    );
    println!(
        "  {} mean {}",
        common::percentiles(&hist),
        common::human_ns(hist.mean() as u64)
    );
    Ok(())
}

/// The child: echoes every value until the parent closes `ping`.
fn pong(args: &Args) -> Result<(), Failure> {
    let setup = |e: Error| (Exit::Setup, e.to_string());
    let mut rx = options(args)
        .connect::<u64>(&format!("{}.ping", args.name))
        .map_err(setup)?;
    let mut tx = options(args)
        .create::<u64>(&format!("{}.pong", args.name))
        .map_err(setup)?;
    loop {
        match patiently(|| rx.recv()) {
            Ok(v) => patiently(|| tx.send(v)).map_err(peer)?,
            Err(Error::Closed { .. }) => return Ok(()),
            Err(e) => return Err(peer(e)),
        }
    }
}

/// Retries `op` while it fails with a retryable error (a peer hung for a moment), for up to
/// [`PATIENCE`].
fn patiently<T>(mut op: impl FnMut() -> Result<T, Error>) -> Result<T, Error> {
    let start = Instant::now();
    loop {
        match op() {
            Err(e) if e.is_retryable() && start.elapsed() < PATIENCE => {}
            other => return other,
        }
    }
}

/// A failed send or receive: the other process is dead, hung or gone.
fn peer(e: Error) -> Failure {
    (Exit::Peer, e.to_string())
}

/// The child process, killed and reaped if we return early.
struct KillOnDrop(Child);

impl KillOnDrop {
    /// Waits up to `limit` for the child to exit successfully.
    fn wait(&mut self, limit: Duration) -> Result<(), Failure> {
        let start = Instant::now();
        loop {
            match self.0.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    return Err((Exit::Peer, format!("the child process failed ({status})")))
                }
                Ok(None) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(5)),
                Ok(None) => {
                    return Err((
                        Exit::Peer,
                        format!("the child process did not exit within {limit:?}"),
                    ))
                }
                Err(e) => return Err((Exit::Setup, format!("waiting for the child: {e}"))),
            }
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
