//! Round-trip latency between two processes through the async ends: this process sends a
//! `u64` on `NAME.ping` with `send().await`, a child echoes it back on `NAME.pong`, each in a
//! tokio runtime; each round trip is timed. Prints the p50, p99, p99.9, max and mean.
//!
//! ```text
//! cargo run --release --example async_pingpong
//! cargo run --release --example async_pingpong -- --flavor multi --spins 0 --yields 0
//! ```
//!
//! `--spins` and `--yields` set how long an await retries before it parks
//! (`shm_bridge::aio::AsyncWait`; 0 and 0 park at once and measure the wake path). The child
//! is this program started again with the hidden flag `--pong`. Exit codes: 0 done; 1 set-up
//! error; 2 a wrong echo; 3 the other process died, hung or failed.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;
use common::Exit;
use shm_bridge::aio::AsyncWait;
use shm_bridge::{ChannelOptions, Error, WaitStrategy};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Flavor {
    /// A current-thread runtime.
    Current,
    /// A multi-thread runtime with two workers.
    Multi,
}

/// Measures the async round trip between two processes over two `u64` channels.
#[derive(Parser, Debug)]
struct Args {
    /// Round trips to time (after a tenth as many, at most 10 000, to warm up).
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Prefix of the two channel names (`NAME.ping`, `NAME.pong`).
    #[arg(long, default_value = "async-pingpong")]
    name: String,
    /// The tokio runtime of both processes.
    #[arg(long, value_enum, default_value_t = Flavor::Current)]
    flavor: Flavor,
    /// Retries of the ring inside one poll before yielding.
    #[arg(long, default_value_t = AsyncWait::default().spins)]
    spins: u32,
    /// Yields to the runtime before parking.
    #[arg(long, default_value_t = AsyncWait::default().yields)]
    yields: u32,
    /// Run as the echoing child.
    #[arg(long, hide = true)]
    pong: bool,
}

type Failure = (Exit, String);

fn main() -> std::process::ExitCode {
    let args = match common::parse_args::<Args>() {
        Ok(a) => a,
        Err(code) => return code,
    };
    let rt = match args.flavor {
        Flavor::Current => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Flavor::Multi => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("async_pingpong: cannot start the runtime: {e}");
            return Exit::Setup.into();
        }
    };
    let (role, r) = if args.pong {
        ("async_pingpong (pong)", rt.block_on(pong(&args)))
    } else {
        ("async_pingpong", rt.block_on(ping(&args)))
    };
    match r {
        Ok(()) => Exit::Ok.into(),
        Err((code, why)) => {
            eprintln!("{role}: {why}");
            code.into()
        }
    }
}

fn options() -> ChannelOptions {
    ChannelOptions::new()
        .capacity(64)
        .wait_strategy(WaitStrategy::blocking())
        .timeout(Duration::from_secs(10))
}

fn wait_of(args: &Args) -> AsyncWait {
    AsyncWait {
        spins: args.spins,
        yields: args.yields,
        ..AsyncWait::default()
    }
}

fn setup(e: Error) -> Failure {
    (Exit::Setup, e.to_string())
}

fn peer(e: Error) -> Failure {
    (Exit::Peer, e.to_string())
}

async fn ping(args: &Args) -> Result<(), Failure> {
    let mut tx = options()
        .create::<u64>(&format!("{}.ping", args.name))
        .map_err(setup)?
        .into_async();
    let exe = std::env::current_exe().map_err(|e| (Exit::Setup, e.to_string()))?;
    let mut child = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .arg("--pong")
        .spawn()
        .map_err(|e| (Exit::Setup, format!("cannot start the child process: {e}")))?;
    let result = async {
        let mut rx = options()
            .connect::<u64>(&format!("{}.pong", args.name))
            .map_err(setup)?
            .into_async();
        tx.set_wait(wait_of(args));
        rx.set_wait(wait_of(args));
        let warmup = (args.count / 10).min(10_000);
        let mut hist = common::latency_histogram().map_err(|e| (Exit::Setup, e))?;
        for i in 0..warmup + args.count {
            let t = Instant::now();
            tx.send(i).await.map_err(peer)?;
            let back = rx.recv().await.map_err(peer)?;
            let ns = t.elapsed().as_nanos() as u64;
            if back != i {
                return Err((Exit::Corrupt, format!("sent {i} but {back} came back")));
            }
            if i >= warmup {
                hist.saturating_record(ns);
            }
        }
        let stats = (tx.stats(), rx.stats());
        drop(tx); // the child sees Closed and exits
        println!(
            "{} async round trips between two processes ({:?} runtime, spins {}, yields {}, \
             after {warmup} warm-up):",
            args.count, args.flavor, args.spins, args.yields
        );
        println!(
            "  {} mean {}",
            common::percentiles(&hist),
            common::human_ns(hist.mean() as u64)
        );
        println!(
            "  receiver parked {} times, sender {} times",
            stats.1.parks, stats.0.parks
        );
        Ok(())
    }
    .await;
    if result.is_err() {
        let _ = child.kill();
    }
    let status = child.wait().map_err(|e| (Exit::Setup, e.to_string()))?;
    result?;
    if !status.success() {
        return Err((Exit::Peer, format!("the child failed ({status})")));
    }
    Ok(())
}

async fn pong(args: &Args) -> Result<(), Failure> {
    let mut rx = options()
        .connect::<u64>(&format!("{}.ping", args.name))
        .map_err(setup)?
        .into_async();
    let mut tx = options()
        .create::<u64>(&format!("{}.pong", args.name))
        .map_err(setup)?
        .into_async();
    rx.set_wait(wait_of(args));
    tx.set_wait(wait_of(args));
    loop {
        match rx.recv().await {
            Ok(v) => tx.send(v).await.map_err(peer)?,
            Err(Error::Closed { .. }) => return Ok(()),
            Err(e) => return Err(peer(e)),
        }
    }
}
