//! Sends or receives `Tick` elements over a typed (SPSC) or MPMC channel under the agreed
//! element name `shmlane.Tick/1`, so the C example (`examples/c/ticks.c`) and the Python
//! package's `TypedSender`/`TypedReceiver` pair with it: every pairing shares one channel.
//!
//! ```text
//! cargo run --release --example ticks -- --role recv --name t --count 100000
//! cargo run --release --example ticks -- --role send --name t --count 100000
//! ```
//!
//! A tick is `{ u64 seq; u64 stamp_ns; f64 value; u32 check; u32 producer; }` (32 bytes,
//! align 8); the receiver checks `value == seq / 2`, `check == mix(seq, producer)` and that
//! each producer's `seq` runs 0, 1, 2, ... with no gap or duplicate, and prints
//! `received N ticks from P producer(s), E errors`.
//!
//! MPMC (`--mpmc`): one sender creates the channel (`--create`), others join; each sender
//! has its own `--producer` id and the receiver expects `--producers` of them. The creating
//! sender stays until the receiver has left, so senders that join late find the channel.
//!
//! Exit codes: 0 all ticks valid; 1 set-up error; 2 a bad tick, gap or duplicate; 3 the
//! other side died, hung or closed early.

mod common;

use std::time::{Duration, Instant};

use bytemuck::{Pod, Zeroable};
use clap::Parser;
use common::Exit;
use shm_bridge::{ChannelOptions, Error, PeerState, WaitStrategy};

/// The element every language's example agrees on.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
struct Tick {
    seq: u64,
    stamp_ns: u64,
    value: f64,
    check: u32,
    producer: u32,
}

/// The name all ends give the element.
const TICK: &str = "shmlane.Tick/1";

/// The check word of tick `seq` from `producer`.
fn mix(seq: u64, producer: u32) -> u32 {
    (seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32 ^ producer
}

fn tick(seq: u64, producer: u32, start: Instant) -> Tick {
    Tick {
        seq,
        stamp_ns: start.elapsed().as_nanos() as u64,
        value: seq as f64 * 0.5,
        check: mix(seq, producer),
        producer,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Role {
    Send,
    Recv,
}

/// Sends or receives checked ticks.
#[derive(Parser, Debug)]
struct Args {
    /// Send or receive.
    #[arg(long, value_enum)]
    role: Role,
    /// Channel name (`/dev/shm/shmlane.NAME`).
    #[arg(long, default_value = "ticks")]
    name: String,
    /// Ticks to send (per sender) or to receive (per producer).
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// An MPMC channel instead of a typed SPSC one.
    #[arg(long)]
    mpmc: bool,
    /// MPMC: this sender creates the channel (the others join it).
    #[arg(long)]
    create: bool,
    /// This sender's producer id.
    #[arg(long, default_value_t = 0)]
    producer: u32,
    /// MPMC receiver: how many producers send (ids 0..N).
    #[arg(long, default_value_t = 1)]
    producers: u32,
    /// Seconds to wait for the channel, a peer, or the next tick.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    timeout: u64,
}

fn main() -> std::process::ExitCode {
    let args = match common::parse_args::<Args>() {
        Ok(a) => a,
        Err(code) => return code,
    };
    let r = match args.role {
        Role::Send => send(&args),
        Role::Recv => recv(&args),
    };
    match r {
        Ok(()) => Exit::Ok.into(),
        Err((code, why)) => {
            eprintln!("ticks: {why}");
            code.into()
        }
    }
}

/// The exit code for a channel error.
fn code(e: &Error) -> Exit {
    match e {
        Error::PeerGone { .. } | Error::PeerHung { .. } | Error::Closed { .. } => Exit::Peer,
        Error::Timeout { .. } => Exit::Peer,
        _ => Exit::Setup,
    }
}

type Failure = (Exit, String);

fn fail(e: Error) -> Failure {
    (code(&e), e.to_string())
}

fn opts(args: &Args) -> ChannelOptions {
    ChannelOptions::new()
        .type_name(TICK)
        .wait_strategy(WaitStrategy::blocking())
        .timeout(Duration::from_secs(args.timeout))
        .participants(8)
}

fn send(args: &Args) -> Result<(), Failure> {
    let o = opts(args);
    let patience = Duration::from_secs(args.timeout);
    let start = Instant::now();
    let deadline = || Some(Instant::now() + patience);
    if args.mpmc {
        let mut tx = if args.create {
            o.create_mpmc::<Tick>(&args.name)
        } else {
            o.connect_mpmc_producer::<Tick>(&args.name)
        }
        .map_err(fail)?;
        tx.wait_for_peer(patience).map_err(fail)?;
        for seq in 0..args.count {
            tx.send_deadline(tick(seq, args.producer, start), deadline())
                .map_err(fail)?;
        }
        if args.create {
            // Keep the channel for senders that join later: stay until the receiver left.
            let until = Instant::now() + patience;
            while matches!(
                tx.peer_state(),
                PeerState::Alive { .. } | PeerState::Hung { .. }
            ) && Instant::now() < until
            {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    } else {
        let mut tx = o.create::<Tick>(&args.name).map_err(fail)?;
        tx.wait_for_peer(patience).map_err(fail)?;
        for seq in 0..args.count {
            tx.send_deadline(tick(seq, args.producer, start), deadline())
                .map_err(fail)?;
        }
    }
    println!("sent {} ticks as producer {}", args.count, args.producer);
    Ok(())
}

fn recv(args: &Args) -> Result<(), Failure> {
    let o = opts(args);
    let patience = Duration::from_secs(args.timeout);
    let producers = if args.mpmc { args.producers.max(1) } else { 1 };
    let mut next = vec![0u64; producers as usize];
    let total = args.count * u64::from(producers);
    let mut got = 0u64;
    let mut check = |t: Tick| -> Result<(), Failure> {
        let p = t.producer as usize;
        let want = next.get(p).copied();
        if want != Some(t.seq) || t.value != t.seq as f64 * 0.5 || t.check != mix(t.seq, t.producer)
        {
            return Err((
                Exit::Corrupt,
                format!("bad tick {t:?}: expected seq {want:?}"),
            ));
        }
        next[p] += 1;
        Ok(())
    };
    if args.mpmc {
        let mut rx = o.connect_mpmc_consumer::<Tick>(&args.name).map_err(fail)?;
        while got < total {
            let t = rx
                .recv_deadline(Some(Instant::now() + patience))
                .map_err(fail)?;
            check(t)?;
            got += 1;
        }
    } else {
        let mut rx = o.connect::<Tick>(&args.name).map_err(fail)?;
        while got < total {
            let t = rx
                .recv_deadline(Some(Instant::now() + patience))
                .map_err(fail)?;
            check(t)?;
            got += 1;
        }
    }
    println!("received {got} ticks from {producers} producer(s), 0 errors");
    Ok(())
}
