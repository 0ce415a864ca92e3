//! Many channels in one process: threads, idle CPU and set-up time for 10, 100 and 1 000
//! channels, and the SPSC round trip with 1 000 idle channels open against none.
//!
//! Each channel is a typed channel of 16 `u64`s with both sides open in this process (two
//! endpoints, two descriptors). The set-up baseline is what the kernel work of a channel
//! costs at least: creating and opening a POSIX shm object of the same size with
//! `shm_region` (no ring, no control block, no locks, no liveness). Runs last in the suite:
//! while channels are open the process has a liveness thread, and the round trip's fork
//! has to skip the single-thread check (see [`run::with_threads_allowed`]).

use std::time::{Duration, Instant};

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::time::{clock_gettime, ClockId};
use shm_bridge::{ChannelOptions, Receiver, Sender};

use super::report::{Better, Report};
use super::rings;
use super::run::{self, Res};

/// Elements per channel (the ring is one page).
const CAPACITY: usize = 16;

fn name(tag: &str, i: usize) -> String {
    format!("bench-scale-{}-{tag}-{i}", std::process::id())
}

/// Raises the soft `RLIMIT_NOFILE` so `channels` channels (two descriptors each) fit;
/// returns how many channels fit under the hard limit.
fn room_for(channels: usize) -> Res<usize> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| e.to_string())?;
    let want = (channels as u64) * 2 + 64;
    if soft < want {
        setrlimit(Resource::RLIMIT_NOFILE, want.min(hard), hard)
            .map_err(|e| format!("raising RLIMIT_NOFILE to {}: {e}", want.min(hard)))?;
    }
    let soft = want.min(hard).max(soft);
    Ok((soft.saturating_sub(64) / 2) as usize)
}

/// Opens `n` channels, both sides here.
fn open(tag: &str, n: usize) -> Res<Vec<(Sender<u64>, Receiver<u64>)>> {
    let opts = ChannelOptions::new().capacity(CAPACITY);
    (0..n)
        .map(|i| {
            let nm = name(tag, i);
            let tx = opts.create::<u64>(&nm).map_err(|e| e.to_string())?;
            let rx = opts.connect::<u64>(&nm).map_err(|e| e.to_string())?;
            Ok((tx, rx))
        })
        .collect()
}

/// Microseconds per create+open of a bare shm object the size of one channel's file, for
/// `n` objects all kept open until the end (the floor of a channel's set-up).
fn floor_setup(n: usize, size: usize) -> Res<f64> {
    let opts = shm_region::Options::new();
    let t = Instant::now();
    let mut keep = Vec::with_capacity(n);
    for i in 0..n {
        let nm = name("floor", i);
        let a = opts.create_shm(&nm, size).map_err(|e| e.to_string())?;
        let b = opts.open_shm(&nm).map_err(|e| e.to_string())?;
        keep.push((a, b));
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    drop(keep);
    Ok(us)
}

/// The median of `v` (not empty).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// CPU time this process used over `window` of idling, as a percentage of one core.
fn idle_cpu(window: Duration) -> Res<f64> {
    let cpu = || {
        clock_gettime(ClockId::CLOCK_PROCESS_CPUTIME_ID)
            .map(|t| Duration::from(t).as_secs_f64())
            .map_err(|e| e.to_string())
    };
    let (c0, t0) = (cpu()?, Instant::now());
    std::thread::sleep(window);
    let (c1, t1) = (cpu()?, Instant::now());
    Ok(100.0 * (c1 - c0) / (t1 - t0).as_secs_f64())
}

/// The size of a small channel's file (its ring plus control block).
fn channel_file_size() -> Res<usize> {
    let nm = name("size", 0);
    let tx = ChannelOptions::new()
        .capacity(CAPACITY)
        .create::<u64>(&nm)
        .map_err(|e| e.to_string())?;
    let size = shm_bridge::inspect::inspect(&nm)
        .map_err(|e| e.to_string())?
        .size;
    drop(tx);
    usize::try_from(size).map_err(|e| e.to_string())
}

/// Reads `/dev/shm` and stats every entry; returns the number of entries.
fn stat_all() -> Res<usize> {
    let dir = std::fs::read_dir("/dev/shm").map_err(|e| e.to_string())?;
    let mut n = 0;
    for e in dir.flatten() {
        if std::fs::symlink_metadata(e.path()).is_ok() {
            n += 1;
        }
    }
    Ok(n)
}

/// The median time of `runs` calls of `f`, in milliseconds.
fn median_ms(runs: usize, mut f: impl FnMut() -> Res<usize>) -> Res<f64> {
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let t0 = Instant::now();
            f().map(|_| t0.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<Res<_>>()?;
    t.sort_by(f64::total_cmp);
    Ok(t[t.len() / 2])
}

fn threads() -> Res<f64> {
    shm_bridge::fork::thread_count()
        .map(|n| n as f64)
        .ok_or_else(|| "cannot read /proc/self/status".to_string())
}

/// The scale figures for `counts` channels; `listed` channels for the listing figure;
/// `window` is the idle-CPU sampling time; `rounds` the round trips. Set-up figures per
/// count are medians over `500 / n` rounds (1 to 9), floor and channels alternating; each
/// round's channels are all open before the first is closed.
pub fn scale(
    r: &mut Report,
    counts: &[usize],
    listed: usize,
    window: Duration,
    rounds: u64,
) -> Res<()> {
    let fit = room_for(counts.iter().copied().max().unwrap_or(0))?;
    let counts: Vec<usize> = counts.iter().copied().filter(|&n| n <= fit).collect();
    let size = channel_file_size()?;

    r.base("scale/threads/0ch", threads()?, "threads", Better::Lower);
    r.base(
        "scale/idle-cpu/0ch",
        idle_cpu(window)?,
        "%core",
        Better::Lower,
    );
    for &n in &counts {
        let floor = format!("scale/setup-floor/{n}ch");
        // A few hundred channels at least per figure (a median over repeated rounds for the
        // small counts), alternating floor and channels, so one slow moment of the machine
        // does not make the figure.
        let reps = (500 / n).clamp(1, 9);
        let (mut floors, mut chans) = (Vec::new(), Vec::new());
        for rep in 1..reps {
            floors.push(floor_setup(n, size)?);
            let t = Instant::now();
            let round = open(&format!("n{n}r{rep}"), n)?;
            chans.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
            drop(round);
        }
        floors.push(floor_setup(n, size)?);
        let t = Instant::now();
        let open = open(&format!("n{n}"), n)?;
        chans.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
        r.base(&floor, median(floors), "us", Better::Lower);
        let us = median(chans);
        r.vs(
            format!("scale/setup/{n}ch"),
            us,
            "us",
            Better::Lower,
            &floor,
        );
        r.vs(
            format!("scale/threads/{n}ch"),
            threads()?,
            "threads",
            Better::Lower,
            "scale/threads/0ch",
        );
        r.vs(
            format!("scale/idle-cpu/{n}ch"),
            idle_cpu(window)?,
            "%core",
            Better::Lower,
            "scale/idle-cpu/0ch",
        );
        drop(open);
    }

    // `shmlane list` with `listed` channels (producer sides only) against reading the
    // directory and stating each entry, the least any listing does.
    if listed <= room_for(listed)? * 2 {
        let opts = ChannelOptions::new().capacity(CAPACITY);
        let held = (0..listed)
            .map(|i| {
                opts.create::<u64>(&name("list", i))
                    .map_err(|e| e.to_string())
            })
            .collect::<Res<Vec<_>>>()?;
        let dir = format!("scale/list-floor/{listed}ch");
        r.base(&dir, median_ms(3, stat_all)?, "ms", Better::Lower);
        let list = || {
            shm_bridge::inspect::list()
                .map(|v| v.len())
                .map_err(|e| e.to_string())
        };
        r.vs(
            format!("scale/list/{listed}ch"),
            median_ms(3, list)?,
            "ms",
            Better::Lower,
            &dir,
        );
        drop(held);
    }

    // The round trip with none, then with the most channels open, the same rounds.
    let most = counts.iter().copied().max().unwrap_or(0);
    let warmup = rounds / 10;
    let none = rings::spsc_rtt_of::<u64>(rounds, warmup, |i| i, |v| *v)?;
    r.latency("rtt/shmlane-spsc/8B/idle-0ch", none, None);
    let open = open("rtt", most)?;
    // SAFETY: the forked child only touches the two anonymous rings and the sync page it
    // is handed; it never takes a lock the liveness thread may hold (the liveness registry
    // belongs to this pid and the child never drops an inherited channel: it leaves with
    // `_exit`).
    let with = unsafe {
        run::with_threads_allowed(|| rings::spsc_rtt_of::<u64>(rounds, warmup, |i| i, |v| *v))
    }?;
    r.latency(
        &format!("rtt/shmlane-spsc/8B/idle-{most}ch"),
        with,
        Some("rtt/shmlane-spsc/8B/idle-0ch"),
    );
    drop(open);
    Ok(())
}
