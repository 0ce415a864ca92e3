//! Two processes sharing an anonymous region: a `fork()`ed child writes a message and then
//! answers pings through two atomics on separate cache lines; the parent prints what it
//! read and the round-trip figures.
//!
//! ```text
//! cargo run --release --example region_fork
//! cargo run --release --example region_fork -- 1000000   # more round trips
//! ```

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shm_region::Region;

const PING: usize = 0; // parent -> child, its own 128-byte line
const PONG: usize = 128; // child -> parent
const TEXT_LEN: usize = 256; // bytes at TEXT_AT: the child's message
const TEXT_AT: usize = 4096;
const DEADLINE: Duration = Duration::from_secs(20);

fn wait_for(word: &AtomicU64, value: u64, start: Instant) -> bool {
    let mut spins = 0u32;
    while word.load(Ordering::Acquire) != value {
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(4096) && start.elapsed() > DEADLINE {
            return false;
        }
        std::hint::spin_loop();
    }
    true
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("region_fork: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: u64 = match std::env::args().nth(1) {
        Some(s) => s
            .parse()
            .map_err(|_| format!("round trips must be a number, got {s:?}"))?,
        None => 200_000,
    };
    let region = Region::anonymous(1 << 20)?;
    region.prefault()?;

    let child = shm_bridge::fork::fork_child(|| {
        let text = format!(
            "hello from child pid {} through {} bytes of {} shared memory",
            std::process::id(),
            region.len(),
            region.backend()
        );
        let mut buf = [0u8; TEXT_LEN];
        let n = text.len().min(TEXT_LEN - 1);
        buf[..n].copy_from_slice(&text.as_bytes()[..n]);
        let (Ok(()), Ok(ping), Ok(pong)) = (
            region.write_at(TEXT_AT, &buf),
            region.atomic_u64(PING),
            region.atomic_u64(PONG),
        ) else {
            return 1;
        };
        let start = Instant::now();
        // Round 0 tells the parent the text is there; then echo every ping.
        pong.store(1, Ordering::Release);
        for i in 1..=rounds {
            if !wait_for(ping, i, start) {
                return 2;
            }
            pong.store(i + 1, Ordering::Release);
        }
        0
    })?;

    let ping = region.atomic_u64(PING)?;
    let pong = region.atomic_u64(PONG)?;
    let start = Instant::now();
    if !wait_for(pong, 1, start) {
        return Err("the child did not start within 20 s".into());
    }
    let mut text = [0u8; TEXT_LEN];
    region.read_at(TEXT_AT, &mut text)?;
    let end = text.iter().position(|b| *b == 0).unwrap_or(TEXT_LEN);
    println!("parent read: {:?}", String::from_utf8_lossy(&text[..end]));

    let mut samples = Vec::with_capacity(usize::try_from(rounds).unwrap_or(0));
    for i in 1..=rounds {
        let t = Instant::now();
        ping.store(i, Ordering::Release);
        if !wait_for(pong, i + 1, start) {
            return Err(format!("the child stopped answering after {i} round trips").into());
        }
        samples.push(t.elapsed().as_nanos() as u64);
    }
    child.wait_timeout(DEADLINE)?;

    samples.sort_unstable();
    let pct = |p: f64| {
        let idx = ((samples.len() as f64 - 1.0) * p).round() as usize;
        samples.get(idx).copied().unwrap_or(0)
    };
    let res = region.residency()?;
    println!(
        "{rounds} round trips between two processes through two shared atomics \
         (the floor any shared-memory IPC pays):"
    );
    println!(
        "  p50 {} ns, p99 {} ns, p99.9 {} ns, max {} ns",
        pct(0.50),
        pct(0.99),
        pct(0.999),
        samples.last().copied().unwrap_or(0)
    );
    println!(
        "region: {} bytes, {} of {} pages of {} bytes resident",
        region.len(),
        res.resident_pages,
        res.total_pages,
        res.page_size
    );
    Ok(())
}
