//! Soak test: many messages through each channel kind between processes, every one checked.
//!
//! ```sh
//! cargo run --release -p shmlane-benches --bin soak -- --messages 1000000000   # the long run
//! cargo run -p shmlane-benches --bin soak -- --messages 10000000              # CI's run
//! ```
//!
//! For each kind (typed `[u64; 2]`, byte messages of 8 to 256 bytes, MPMC with two producer
//! processes), forked producers stream sequence-numbered, checksummed messages to this
//! process, which counts messages lost, duplicated, reordered and corrupted (all must be
//! 0), prints the throughput every tenth of the run, and the resident set (`VmRSS`) of the
//! consumer and each producer after the first tenth (once the ring is warm) and at the end. Exit code 0 only if every count
//! is 0; `--json` prints one object per kind.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use shm_bridge::fork::{fork_child, Child};
use shm_bridge::{ChannelOptions, Error, PeerState};
use shmlane_cli::stamp;

#[derive(Debug, Default, serde::Serialize)]
struct Report {
    kind: &'static str,
    messages: u64,
    received: u64,
    lost: u64,
    duplicated_or_reordered: u64,
    corrupted: u64,
    seconds: f64,
    msgs_per_s: f64,
    /// Messages per second in each tenth of the run.
    timeline: Vec<f64>,
    consumer_rss_kib: (u64, u64),
    producer_rss_kib: Vec<(u64, u64)>,
}

impl Report {
    fn clean(&self) -> bool {
        self.lost == 0
            && self.duplicated_or_reordered == 0
            && self.corrupted == 0
            && self.received == self.messages
    }
}

/// Per-stream sequence checking.
#[derive(Default)]
struct Seq {
    next: u64,
}

impl Seq {
    fn see(&mut self, seq: u64, r: &mut Report) {
        match seq.cmp(&self.next) {
            std::cmp::Ordering::Equal => self.next += 1,
            std::cmp::Ordering::Greater => {
                r.lost += seq - self.next;
                self.next = seq + 1;
            }
            std::cmp::Ordering::Less => r.duplicated_or_reordered += 1,
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn check_word(seq: u64) -> u64 {
    seq.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) ^ 0x5eed
}

fn opts() -> ChannelOptions {
    ChannelOptions::new().timeout(Duration::from_secs(10))
}

/// Child side: after sending, wait for the consumer to leave, so it can read our RSS.
fn linger<F: Fn() -> PeerState>(peer: F) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(30)
        && matches!(peer(), PeerState::Alive { .. } | PeerState::Hung { .. })
    {
        std::thread::sleep(Duration::from_millis(2));
    }
}

struct Progress {
    start: Instant,
    total: u64,
    marks: Vec<(Instant, u64)>,
}

impl Progress {
    fn new(total: u64) -> Self {
        Progress {
            start: Instant::now(),
            total,
            marks: vec![(Instant::now(), 0)],
        }
    }
    #[inline]
    fn tick(&mut self, received: u64) {
        let step = (self.total / 10).max(1);
        if received.is_multiple_of(step) && received > 0 {
            self.marks.push((Instant::now(), received));
        }
    }
    fn finish(&self, r: &mut Report) {
        r.seconds = self.start.elapsed().as_secs_f64();
        r.msgs_per_s = r.received as f64 / r.seconds.max(1e-9);
        r.timeline = self
            .marks
            .windows(2)
            .map(|w| (w[1].1 - w[0].1) as f64 / w[1].0.duration_since(w[0].0).as_secs_f64())
            .collect();
    }
}

fn typed(n: u64, name: &str) -> Result<Report, Error> {
    let mut r = Report {
        kind: "typed",
        messages: n,
        ..Report::default()
    };
    let nm = name.to_owned();
    let kid = fork_child(move || {
        let Ok(mut tx) = opts().capacity(1 << 16).create::<[u64; 2]>(&nm) else {
            return 10;
        };
        if tx.wait_for_peer(Duration::from_secs(10)).is_err() {
            return 11;
        }
        for seq in 0..n {
            if tx.send([seq, check_word(seq)]).is_err() {
                return 12;
            }
        }
        tx.close();
        linger(|| tx.peer_state());
        0
    })?;
    let mut rx = opts().connect::<[u64; 2]>(name)?;
    let pid = kid.pid() as u32;
    let pids = [pid];
    let mut seq = Seq::default();
    let mut p = Progress::new(n);
    let mut buf = [[0u64; 2]; 256];
    loop {
        match rx.recv_into(&mut buf) {
            Ok(k) => {
                for m in &buf[..k] {
                    if m[1] != check_word(m[0]) {
                        r.corrupted += 1;
                    }
                    seq.see(m[0], &mut r);
                    r.received += 1;
                    p.tick(r.received);
                    warm(&mut r, &pids);
                }
            }
            Err(e) if e.is_retryable() => std::hint::spin_loop(),
            Err(Error::Closed { .. }) => break,
            Err(e) => return Err(e),
        }
    }
    p.finish(&mut r);
    finish(r, rx, vec![kid])
}

/// Takes the start RSS figures once a tenth of the run is through (so every page of the
/// ring has been touched: growth after that would be a leak).
fn warm(r: &mut Report, pids: &[u32]) {
    if r.received == (r.messages / 10).max(1) {
        r.consumer_rss_kib.0 = rss_kib(std::process::id());
        r.producer_rss_kib = pids.iter().map(|&p| (rss_kib(p), 0)).collect();
    }
}

/// Records the end RSS figures (the producers are lingering until `rx` goes), lets the
/// producers finish, and checks they exited cleanly.
fn finish<R>(mut r: Report, rx: R, kids: Vec<Child>) -> Result<Report, Error> {
    r.consumer_rss_kib.1 = rss_kib(std::process::id());
    for (i, k) in kids.iter().enumerate() {
        if let Some(p) = r.producer_rss_kib.get_mut(i) {
            p.1 = rss_kib(k.pid() as u32);
        }
    }
    drop(rx);
    for k in kids {
        k.wait_timeout(Duration::from_secs(30))?;
    }
    Ok(r)
}

fn bytes(n: u64, name: &str) -> Result<Report, Error> {
    let mut r = Report {
        kind: "bytes",
        messages: n,
        ..Report::default()
    };
    let nm = name.to_owned();
    let kid = fork_child(move || {
        let Ok(mut tx) = opts().capacity(1 << 20).max_message(256).create_bytes(&nm) else {
            return 10;
        };
        if tx.wait_for_peer(Duration::from_secs(10)).is_err() {
            return 11;
        }
        let mut msg = [0u8; 256];
        for seq in 0..n {
            let len = 8 + (seq.wrapping_mul(0x9e37_79b9) >> 7) as usize % 249;
            if stamp::write(&mut msg[..len], seq, 0).is_err() || tx.send(&msg[..len]).is_err() {
                return 12;
            }
        }
        tx.close();
        linger(|| tx.peer_state());
        0
    })?;
    let mut rx = opts().connect_bytes(name)?;
    let pids = [kid.pid() as u32];
    let mut seq = Seq::default();
    let mut p = Progress::new(n);
    let mut buf = vec![0u8; rx.max_message()];
    loop {
        match rx.try_recv(&mut buf) {
            Ok(len) => {
                match stamp::check(&buf[..len]) {
                    Ok(s) => seq.see(s.seq, &mut r),
                    Err(_) => r.corrupted += 1,
                }
                r.received += 1;
                p.tick(r.received);
                warm(&mut r, &pids);
            }
            Err(e) if e.is_retryable() => std::hint::spin_loop(),
            Err(Error::Closed { .. }) => break,
            Err(e) => return Err(e),
        }
    }
    p.finish(&mut r);
    finish(r, rx, vec![kid])
}

fn mpmc(n: u64, name: &str) -> Result<Report, Error> {
    let mut r = Report {
        kind: "mpmc",
        messages: n,
        ..Report::default()
    };
    let half = n / 2;
    let mut kids = Vec::new();
    for id in 0..2u64 {
        let nm = name.to_owned();
        let count = if id == 0 { n - half } else { half };
        kids.push(fork_child(move || {
            let o = opts().capacity(1 << 14).participants(4);
            let tx = if id == 0 {
                o.create_mpmc::<[u64; 2]>(&nm)
            } else {
                o.connect_mpmc_producer::<[u64; 2]>(&nm)
            };
            let Ok(mut tx) = tx else { return 10 };
            if tx.wait_for_peer(Duration::from_secs(10)).is_err() {
                return 11;
            }
            for seq in 0..count {
                let word = (id << 63) | seq;
                if tx.send_deadline([word, check_word(word)], None).is_err() {
                    return 12;
                }
            }
            // Lingering until the consumer leaves keeps the channel open for the other
            // producer: the last live producer's drop closes it.
            linger(|| tx.peer_state());
            0
        })?);
    }
    let mut rx = opts()
        .participants(4)
        .connect_mpmc_consumer::<[u64; 2]>(name)?;
    let pids: Vec<u32> = kids.iter().map(|k| k.pid() as u32).collect();
    let mut seqs = [Seq::default(), Seq::default()];
    let mut p = Progress::new(n);
    let mut last = Instant::now();
    let mut polls = 0u32;
    while r.received < n {
        match rx.try_recv() {
            Ok(m) => {
                polls = 0;
                if m[1] != check_word(m[0]) {
                    r.corrupted += 1;
                } else {
                    seqs[(m[0] >> 63) as usize].see(m[0] & !(1 << 63), &mut r);
                }
                r.received += 1;
                p.tick(r.received);
                warm(&mut r, &pids);
            }
            Err(e) if e.is_retryable() => {
                // Nothing for 10 s: stop and report what is missing as lost.
                polls += 1;
                if polls.is_multiple_of(1 << 16) {
                    if last.elapsed() > Duration::from_secs(10) {
                        r.lost += n - r.received;
                        break;
                    }
                } else if polls == 1 {
                    last = Instant::now();
                }
                std::hint::spin_loop()
            }
            Err(e) => return Err(e),
        }
    }
    p.finish(&mut r);
    finish(r, rx, kids)
}

fn main() -> ExitCode {
    let mut n: u64 = 10_000_000;
    let mut kinds = vec!["typed".to_owned(), "bytes".into(), "mpmc".into()];
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--messages" => match args.next().and_then(|v| v.parse().ok()) {
                Some(v) => n = v,
                None => return usage("--messages needs a number"),
            },
            "--kinds" => match args.next() {
                Some(v) => kinds = v.split(',').map(str::to_owned).collect(),
                None => return usage("--kinds needs a list"),
            },
            "--json" => json = true,
            "-h" | "--help" => return usage(""),
            other => return usage(&format!("unknown argument `{other}`")),
        }
    }
    let mut ok = true;
    for kind in &kinds {
        let name = format!("soak-{}-{kind}", std::process::id());
        let result = match kind.as_str() {
            "typed" => typed(n, &name),
            "bytes" => bytes(n, &name),
            "mpmc" => mpmc(n, &name),
            other => return usage(&format!("unknown kind `{other}`")),
        };
        match result {
            Ok(r) => {
                ok &= r.clean();
                if json {
                    println!("{}", serde_json::to_string(&r).unwrap_or_default());
                } else {
                    print_report(&r);
                }
            }
            Err(e) => {
                eprintln!("soak {kind}: {e}");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_report(r: &Report) {
    println!(
        "{:<6} {} messages: received {}, lost {}, duplicated/reordered {}, corrupted {}; \
         {:.2} s, {:.2} M msgs/s",
        r.kind,
        r.messages,
        r.received,
        r.lost,
        r.duplicated_or_reordered,
        r.corrupted,
        r.seconds,
        r.msgs_per_s / 1e6
    );
    let tl: Vec<String> = r
        .timeline
        .iter()
        .map(|x| format!("{:.1}", x / 1e6))
        .collect();
    println!("       M msgs/s per tenth: {}", tl.join(" "));
    println!(
        "       RSS KiB start -> end: consumer {} -> {}, producers {:?}",
        r.consumer_rss_kib.0, r.consumer_rss_kib.1, r.producer_rss_kib
    );
}

fn usage(problem: &str) -> ExitCode {
    if !problem.is_empty() {
        eprintln!("soak: {problem}");
    }
    eprintln!("usage: soak [--messages N] [--kinds typed,bytes,mpmc] [--json]");
    if problem.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}
