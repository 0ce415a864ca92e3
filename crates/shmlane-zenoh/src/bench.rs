//! `shmlane-zenoh bench`: end to end through both bridges against plain zenoh
//! publish/subscribe, between the same two processes on the same transport (TCP on
//! 127.0.0.1, one zenoh peer listening, the other connecting, scouting off).
//!
//! - Throughput: one process sends `n` messages, the other receives them; the rate is
//!   measured at the receiver, from the first message's arrival to the last's (so start-up
//!   and connection are outside it). Bridged: the sender writes into a shmlane byte channel
//!   that an [`out`](crate::out) thread of the same process publishes; the receiver's
//!   [`in_`](crate::in_) thread writes into a channel its main thread reads.
//! - Round trip: ping and echo; bridged, each side has an `out` and an `in` thread, so a
//!   round trip crosses four bridges and four channels. The latency the bridges add, per
//!   direction, is half the difference of the round trips' medians.
//!
//! - One wake-up: half the round trip of a byte between two threads sleeping in blocking
//!   socket reads, printed beside the added latency. Each direction through the bridges
//!   hands the message to one more sleeping thread than plain zenoh does (the application's
//!   thread to the `out` thread), so one wake-up is the floor under the added latency.
//!
//! Each side is a child process (`bench-side`), started by the coordinator, which never
//! opens zenoh itself.

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shm_bridge::ChannelOptions;
use shmlane_zenoh::local::{Sink, SinkKind, Source};
use shmlane_zenoh::{in_, out, InOptions, OutOptions};
use zenoh::Wait;

/// One side's role.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Role {
    /// Sends `count` messages.
    Send,
    /// Receives `count` messages and prints the rate.
    Recv,
    /// Sends pings and prints the round trips.
    Ping,
    /// Echoes pings.
    Echo,
}

/// How messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Path {
    /// zenoh publish/subscribe only.
    Plain,
    /// shmlane channel -> out bridge -> zenoh -> in bridge -> shmlane channel.
    Bridged,
}

fn now_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

fn session(port: u16, listen: bool) -> Result<zenoh::Session, String> {
    let mut c = zenoh::Config::default();
    let ep = format!("[\"tcp/127.0.0.1:{port}\"]");
    let set = |c: &mut zenoh::Config, k: &str, v: &str| {
        c.insert_json5(k, v)
            .map_err(|e| format!("zenoh config {k}: {e}"))
    };
    set(&mut c, "mode", "\"peer\"")?;
    set(
        &mut c,
        if listen {
            "listen/endpoints"
        } else {
            "connect/endpoints"
        },
        &ep,
    )?;
    set(&mut c, "scouting/multicast/enabled", "false")?;
    set(&mut c, "scouting/gossip/enabled", "false")?;
    zenoh::open(c).wait().map_err(|e| format!("zenoh: {e}"))
}

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Waits until stdin closes (the coordinator's signal that the run is over), so a sender's
/// last messages are not lost to an early exit.
fn until_released() {
    let mut line = String::new();
    while std::io::stdin()
        .lock()
        .read_line(&mut line)
        .is_ok_and(|n| n > 0)
    {
        line.clear();
    }
}

fn wait_matching(p: &zenoh::pubsub::Publisher<'_>) -> Result<(), String> {
    let start = Instant::now();
    while !p.matching_status().wait().map_err(s)?.matching() {
        if start.elapsed() > Duration::from_secs(20) {
            return Err("no subscriber matched within 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// The local channels and bridge threads of one bridged side.
struct Bridged {
    /// The application's sending channel end (its `out` thread publishes it).
    tx: Option<shm_bridge::ByteSender>,
    /// The application's receiving channel end (its `in` thread fills it).
    rx: Option<shm_bridge::ByteReceiver>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Bridged {
    /// Sets up an `out` thread publishing on `send_key` and an `in` thread subscribed to
    /// `recv_key` (either may be absent), with channels for messages of `size` bytes.
    fn new(
        session: &Arc<zenoh::Session>,
        tag: &str,
        size: usize,
        send_key: Option<&str>,
        recv_key: Option<&str>,
    ) -> Result<Bridged, String> {
        // Every thread sleeps while it waits, as the plain zenoh side's do.
        let opts = ChannelOptions::new()
            .capacity((size * 64).max(1 << 20).next_power_of_two())
            .max_message(size)
            .wait_strategy(shm_bridge::WaitStrategy::blocking());
        let stop = Arc::new(AtomicBool::new(false));
        let mut b = Bridged {
            tx: None,
            rx: None,
            stop: stop.clone(),
            threads: Vec::new(),
        };
        let pid = std::process::id();
        if let Some(key) = send_key {
            let name = format!("zbench-{pid}-{tag}-out");
            b.tx = Some(opts.create_bytes(&name).map_err(s)?);
            let source = Source::connect(&opts, &name).map_err(s)?;
            let (session, key) = (session.clone(), key.to_owned());
            let mut o = OutOptions::new(stop.clone());
            o.await_subscriber = Some(Duration::from_secs(20));
            b.threads.push(std::thread::spawn(move || {
                if let Err(e) = out(source, &session, &key, &o) {
                    eprintln!("bench out: {e}");
                }
            }));
        }
        if let Some(key) = recv_key {
            let name = format!("zbench-{pid}-{tag}-in");
            let sink = Sink::create(&opts, &name, SinkKind::Bytes, None).map_err(s)?;
            b.rx = Some(opts.connect_bytes(&name).map_err(s)?);
            let (session, key) = (session.clone(), key.to_owned());
            let i = InOptions::new(stop.clone());
            b.threads.push(std::thread::spawn(move || {
                if let Err(e) = in_(sink, &session, &key, &i) {
                    eprintln!("bench in: {e}");
                }
            }));
        }
        Ok(b)
    }
}

impl Drop for Bridged {
    fn drop(&mut self) {
        drop(self.tx.take());
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        drop(self.rx.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Runs one side (the hidden `bench-side` subcommand); prints its figures on stdout.
pub fn side(role: Role, path: Path, size: usize, count: u64, port: u16) -> Result<(), String> {
    let listen = matches!(role, Role::Recv | Role::Echo);
    let session = Arc::new(session(port, listen)?);
    let (k1, k2) = (format!("zbench/{port}/1"), format!("zbench/{port}/2"));
    let deadline = || Some(Instant::now() + Duration::from_secs(60));
    let mut msg = vec![0u8; size];
    let stamp = |m: &mut Vec<u8>, i: u64| m[..8].copy_from_slice(&i.to_le_bytes());
    match (role, path) {
        (Role::Send, Path::Plain) => {
            let p = session
                .declare_publisher(k1.clone())
                .congestion_control(zenoh::qos::CongestionControl::Block)
                .wait()
                .map_err(s)?;
            wait_matching(&p)?;
            for i in 0..count {
                stamp(&mut msg, i);
                p.put(msg.clone()).wait().map_err(s)?;
            }
            until_released();
        }
        (Role::Send, Path::Bridged) => {
            let mut b = Bridged::new(&session, "send", size, Some(&k1), None)?;
            let tx = b.tx.as_mut().ok_or("no channel")?;
            for i in 0..count {
                stamp(&mut msg, i);
                tx.send_deadline(&msg, deadline()).map_err(s)?;
            }
            until_released();
        }
        (Role::Recv, _) => {
            let mut b = None;
            let sub = match path {
                Path::Plain => Some(session.declare_subscriber(k1.clone()).wait().map_err(s)?),
                Path::Bridged => {
                    b = Some(Bridged::new(&session, "recv", size, None, Some(&k1))?);
                    None
                }
            };
            let (mut first, mut last) = (0, 0);
            // Each side reads its message where it is (zenoh's sample, the channel's slot)
            // and checks its stamp: the same work, and the cheapest each offers.
            for i in 0..count {
                let got = match (&sub, b.as_mut().and_then(|b| b.rx.as_mut())) {
                    (Some(sub), _) => zenoh_stamp(&sub.recv().map_err(s)?)?,
                    (None, Some(rx)) => channel_stamp(&rx.read_deadline(deadline()).map_err(s)?)?,
                    _ => return Err("no receiver".into()),
                };
                if got != i {
                    return Err(format!("message {i} arrived as {got}"));
                }
                last = now_ns();
                if i == 0 {
                    first = last;
                }
            }
            println!("first={first} last={last}");
        }
        (Role::Ping, Path::Plain) => {
            let p = session
                .declare_publisher(k1.clone())
                .congestion_control(zenoh::qos::CongestionControl::Block)
                .wait()
                .map_err(s)?;
            let sub = session.declare_subscriber(k2.clone()).wait().map_err(s)?;
            wait_matching(&p)?;
            let mut rtts = Vec::with_capacity(count as usize);
            // The echo's publisher may not match yet: the first pings may go unanswered.
            loop {
                p.put(msg.clone()).wait().map_err(s)?;
                if sub
                    .recv_timeout(Duration::from_millis(50))
                    .map_err(s)?
                    .is_some()
                {
                    break;
                }
            }
            while sub.try_recv().map_err(s)?.is_some() {}
            for i in 0..count {
                stamp(&mut msg, i);
                let t = now_ns();
                p.put(msg.clone()).wait().map_err(s)?;
                let got = zenoh_stamp(&sub.recv().map_err(s)?)?;
                rtts.push(now_ns() - t);
                if got != i {
                    return Err(format!("ping {i} came back as {got}"));
                }
            }
            print_rtts(&mut rtts);
        }
        (Role::Echo, Path::Plain) => {
            let sub = session.declare_subscriber(k1.clone()).wait().map_err(s)?;
            let p = session
                .declare_publisher(k2.clone())
                .congestion_control(zenoh::qos::CongestionControl::Block)
                .wait()
                .map_err(s)?;
            while let Some(sample) = sub.recv_timeout(Duration::from_secs(2)).map_err(s)? {
                p.put(sample.payload().clone()).wait().map_err(s)?;
            }
        }
        (Role::Ping, Path::Bridged) => {
            let mut b = Bridged::new(&session, "ping", size, Some(&k1), Some(&k2))?;
            let (Some(tx), Some(rx)) = (b.tx.as_mut(), b.rx.as_mut()) else {
                return Err("no channels".into());
            };
            let mut rtts = Vec::with_capacity(count as usize);
            // The first ping waits in the channel until both bridges' paths are up.
            stamp(&mut msg, u64::MAX);
            tx.send_deadline(&msg, deadline()).map_err(s)?;
            channel_stamp(&rx.read_deadline(deadline()).map_err(s)?)?;
            for i in 0..count {
                stamp(&mut msg, i);
                let t = now_ns();
                tx.send_deadline(&msg, deadline()).map_err(s)?;
                let got = channel_stamp(&rx.read_deadline(deadline()).map_err(s)?)?;
                rtts.push(now_ns() - t);
                if got != i {
                    return Err(format!("ping {i} came back as {got}"));
                }
            }
            print_rtts(&mut rtts);
        }
        (Role::Echo, Path::Bridged) => {
            let mut b = Bridged::new(&session, "echo", size, Some(&k2), Some(&k1))?;
            let (Some(tx), Some(rx)) = (b.tx.as_mut(), b.rx.as_mut()) else {
                return Err("no channels".into());
            };
            loop {
                let soon = Some(Instant::now() + Duration::from_secs(2));
                let Ok(g) = rx.read_deadline(soon) else {
                    break;
                };
                // Echoed from where it is, as the plain echo forwards its sample.
                // SAFETY: this process's own `in` thread is the channel's only producer,
                // and it does not write a record until the guard releases it.
                let m = unsafe { g.as_slice() };
                tx.send_deadline(m, deadline()).map_err(s)?;
            }
        }
    }
    let _ = std::io::stdout().flush();
    Ok(())
}

/// The stamp (first eight bytes) of a zenoh sample.
fn zenoh_stamp(sample: &zenoh::sample::Sample) -> Result<u64, String> {
    let mut b = [0u8; 8];
    std::io::Read::read_exact(&mut sample.payload().reader(), &mut b).map_err(s)?;
    Ok(u64::from_le_bytes(b))
}

/// The stamp (first eight bytes) of a channel message, read in place.
fn channel_stamp(g: &shm_queue::bytes::ReadGuard<'_>) -> Result<u64, String> {
    let mut b = [0u8; 8];
    g.read_at(0, &mut b).map_err(s)?;
    Ok(u64::from_le_bytes(b))
}

fn print_rtts(rtts: &mut [u64]) {
    rtts.sort_unstable();
    let at = |q: f64| rtts[((rtts.len() - 1) as f64 * q) as usize];
    println!("p50={} p99={}", at(0.5), at(0.99));
}

/// Parses `key=value` pairs from a side's output line.
fn field(out: &str, key: &str) -> Result<u64, String> {
    out.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no `{key}` in {out:?}"))
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(s)
}

/// Runs a pair of sides: `first` (listening) and `second`; returns the output of the one
/// that reports (`Recv` or `Ping`).
fn pair(a: Role, b: Role, path: Path, size: usize, count: u64) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(s)?;
    let port = free_port()?;
    let spawn = |role: Role| {
        let role = format!("{role:?}").to_lowercase();
        let path = format!("{path:?}").to_lowercase();
        Command::new(&exe)
            .args(["bench-side", &role, "--path", &path])
            .args(["--size", &size.to_string(), "--count", &count.to_string()])
            .args(["--port", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(s)
    };
    let mut listener = spawn(b)?;
    std::thread::sleep(Duration::from_millis(200));
    let mut talker = spawn(a)?;
    let (reporter, other) = if matches!(b, Role::Recv) {
        (&mut listener, &mut talker)
    } else {
        (&mut talker, &mut listener)
    };
    let mut out = String::new();
    if let Some(mut o) = reporter.stdout.take() {
        std::io::Read::read_to_string(&mut o, &mut out).map_err(s)?;
    }
    let status = reporter.wait().map_err(s)?;
    drop(other.stdin.take());
    drop(reporter.stdin.take());
    let _ = other.wait();
    if !status.success() {
        return Err(format!("a benchmark side failed: {status}"));
    }
    Ok(out)
}

/// Half the median round trip of one byte between two threads that sleep in a blocking
/// `read` on a Unix socket pair: what handing a message to a sleeping thread costs here, the
/// floor under each hand-off a bridge adds.
fn one_wake_ns(rounds: usize) -> Result<f64, String> {
    use std::io::Read;
    use std::os::unix::net::UnixStream;
    let (mut a, mut b) = UnixStream::pair().map_err(s)?;
    let echo = std::thread::spawn(move || {
        let mut x = [0u8; 1];
        while b.read_exact(&mut x).is_ok() && b.write_all(&x).is_ok() {}
    });
    let mut rtts = Vec::with_capacity(rounds);
    let mut x = [0u8; 1];
    for _ in 0..rounds {
        let t = now_ns();
        a.write_all(&x).map_err(s)?;
        a.read_exact(&mut x).map_err(s)?;
        rtts.push(now_ns() - t);
    }
    drop(a);
    let _ = echo.join();
    rtts.sort_unstable();
    Ok(rtts[rtts.len() / 2] as f64 / 2.0)
}

/// The coordinator: every figure beside its plain-zenoh baseline.
pub fn run(quick: bool) -> Result<(), String> {
    let runs = if quick { 1 } else { 3 };
    println!(
        "{:<40} {:>12} {:>12} {:>8}",
        "figure", "bridged", "plain zenoh", "ratio"
    );
    for size in [64usize, 64 << 10] {
        let n: u64 = match (size, quick) {
            (64, false) => 1_000_000,
            (64, true) => 100_000,
            (_, false) => 20_000,
            (_, true) => 2_000,
        };
        let mut rates = [Vec::new(), Vec::new()];
        for _ in 0..runs {
            for (k, path) in [Path::Plain, Path::Bridged].into_iter().enumerate() {
                let o = pair(Role::Send, Role::Recv, path, size, n)?;
                let secs = (field(&o, "last")? - field(&o, "first")?) as f64 / 1e9;
                rates[k].push((n - 1) as f64 / secs.max(1e-9));
            }
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (plain, bridged) = (med(&mut rates[0]), med(&mut rates[1]));
        println!(
            "{:<40} {:>12} {:>12} {:>7.2}x",
            format!("throughput {size} B (msgs/s)"),
            format!("{:.0}", bridged),
            format!("{:.0}", plain),
            bridged / plain
        );
        let rounds = if quick { 500 } else { 5_000 };
        let mut p50 = [Vec::new(), Vec::new()];
        for _ in 0..runs {
            for (k, path) in [Path::Plain, Path::Bridged].into_iter().enumerate() {
                let o = pair(Role::Ping, Role::Echo, path, size, rounds)?;
                p50[k].push(field(&o, "p50")? as f64);
            }
        }
        let (plain, bridged) = (med(&mut p50[0]), med(&mut p50[1]));
        println!(
            "{:<40} {:>12} {:>12} {:>7.2}x",
            format!("round trip p50 {size} B (us)"),
            format!("{:.1}", bridged / 1e3),
            format!("{:.1}", plain / 1e3),
            bridged / plain
        );
        let wake = one_wake_ns(rounds as usize)?;
        println!(
            "{:<40} {:>12} {:>12} {:>7.2}x",
            format!("added latency p50, one way, {size} B (us)"),
            format!("{:.1}", (bridged - plain) / 2e3),
            format!("{:.1} wake", wake / 1e3),
            (bridged - plain) / 2.0 / wake
        );
    }
    Ok(())
}
