//! Running one measurement across two processes: pinning, the fork, the start signal, the
//! deadline, and the histogram.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use shm_region::Region;

use crate::bench::report::Latency;

/// How long any single measurement may take before it is abandoned.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Error text; the harness reports and moves on.
pub type Res<T> = Result<T, String>;

/// Pins the calling process (thread) to `cpu`, if the machine has it. Returns whether it
/// did.
pub fn pin(cpu: usize) -> bool {
    let mut set = CpuSet::new();
    if cpu >= CpuSet::count() || set.set(cpu).is_err() {
        return false;
    }
    cpu < available_cpus() && sched_setaffinity(Pid::from_raw(0), &set).is_ok()
}

/// Undoes [`pin`]: lets the process run on every CPU again.
pub fn unpin() {
    let mut set = CpuSet::new();
    for cpu in 0..available_cpus().min(CpuSet::count()) {
        let _ = set.set(cpu);
    }
    let _ = sched_setaffinity(Pid::from_raw(0), &set);
}

/// CPUs online (not the affinity mask, which [`pin`] narrows).
pub fn available_cpus() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
        .ok()
        .flatten()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n > 0)
        .unwrap_or(1)
}

/// The MPMC contenders' wait loops (shmlane's and crossbeam's alike) yield the CPU after this
/// many failed attempts in a row when they outnumber the CPUs ([`yield_every`]).
pub const YIELD_EVERY: u32 = 64;

/// After how many failed attempts in a row a wait loop of `spinners` processes or threads
/// yields the CPU: [`YIELD_EVERY`] when they outnumber the CPUs (a spinner holding a claim
/// may be preempted, and the others wait for it to run again), else never (`u32::MAX`).
pub fn yield_every(spinners: usize) -> u32 {
    if spinners > available_cpus() {
        YIELD_EVERY
    } else {
        u32::MAX
    }
}

/// A spin-wait budget: [`Patience::spin`] hints the CPU and reads the clock only every 2^14
/// calls, so every contender's wait loop costs the same and none gets a clock read as an
/// accidental back-off.
#[derive(Debug)]
pub struct Patience {
    spins: u32,
    deadline: Instant,
}

impl Patience {
    /// A budget that runs out [`DEADLINE`] from now.
    pub fn new() -> Self {
        Patience {
            spins: 0,
            deadline: Instant::now() + DEADLINE,
        }
    }

    /// One empty poll: returns `false` once the deadline has passed.
    #[inline]
    pub fn spin(&mut self) -> bool {
        self.spins = self.spins.wrapping_add(1);
        if self.spins.is_multiple_of(1 << 14) && Instant::now() > self.deadline {
            return false;
        }
        std::hint::spin_loop();
        true
    }
}

impl Default for Patience {
    fn default() -> Self {
        Self::new()
    }
}

/// Spins until `word` equals `want`, giving up at `deadline`.
pub fn spin_until(word: &AtomicU64, want: u64, deadline: Instant) -> Res<()> {
    let mut spins = 0u32;
    while word.load(Ordering::Acquire) != want {
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(1 << 14) && Instant::now() > deadline {
            return Err("timed out waiting for the peer".into());
        }
        std::hint::spin_loop();
    }
    Ok(())
}

/// Whether [`two_processes`] may fork while other threads run (see
/// [`with_threads_allowed`]).
static THREADS_ALLOWED: AtomicBool = AtomicBool::new(false);

/// Runs `f` with [`two_processes`] forking without the single-thread check (for figures
/// measured while channels, and so the liveness thread, are open).
///
/// # Safety
///
/// The children forked inside `f` must not need any lock that another thread of this
/// process may hold at the fork (the allocator's excepted: glibc resets it in the child).
pub unsafe fn with_threads_allowed<T>(f: impl FnOnce() -> T) -> T {
    THREADS_ALLOWED.store(true, Ordering::Relaxed);
    let out = f();
    THREADS_ALLOWED.store(false, Ordering::Relaxed);
    out
}

/// Runs `child` in a forked child pinned to CPU 1 and `parent` here pinned to CPU 0, then
/// waits for the child. Both get a shared "go" word the parent may use to start the child.
pub fn two_processes<T>(
    child: impl FnOnce(&AtomicU64) -> Res<()>,
    parent: impl FnOnce(&AtomicU64) -> Res<T>,
) -> Res<T> {
    let sync = Region::anonymous(4096).map_err(|e| e.to_string())?;
    let go = sync.atomic_u64(0).map_err(|e| e.to_string())?;
    let sync = &sync;
    let body = || {
        pin(1);
        match child(go) {
            Ok(()) => 0,
            Err(e) => {
                // The child's reason travels back through the shared page (no printing in
                // library code): length at byte 8, text from byte 16.
                let msg = &e.as_bytes()[..e.len().min(4096 - 16)];
                let _ = sync.write_at(16, msg);
                let _ = sync.write_at(8, &(msg.len() as u64).to_le_bytes());
                1
            }
        }
    };
    let proc = if THREADS_ALLOWED.load(Ordering::Relaxed) {
        // SAFETY: set only by `with_threads_allowed`, whose caller vouches that the child
        // needs no lock another thread of this process may hold.
        unsafe { shm_bridge::fork::fork_child_unchecked(body) }
    } else {
        shm_bridge::fork::fork_child(body)
    }
    .map_err(|e| e.to_string())?;
    pin(0);
    let out = parent(go);
    unpin();
    let waited = proc.wait_timeout(DEADLINE).map_err(|e| {
        let mut len = [0u8; 8];
        let _ = sync.read_at(8, &mut len);
        let len = (u64::from_le_bytes(len) as usize).min(4096 - 16);
        let mut msg = vec![0u8; len];
        let _ = sync.read_at(16, &mut msg);
        format!("{e}: {}", String::from_utf8_lossy(&msg))
    });
    let out = out?;
    waited?;
    Ok(out)
}

/// Ping-pong latency: the parent calls `round(i)` for `warmup + rounds` rounds (it must
/// send `i` and wait for the echo, returning what came back), timing each of the last
/// `rounds`. `child(total)` must echo `total` messages.
pub fn pingpong(
    rounds: u64,
    warmup: u64,
    child: impl FnOnce(u64) -> Res<()>,
    mut round: impl FnMut(u64) -> Res<u64>,
) -> Res<Latency> {
    let total = rounds + warmup;
    two_processes(
        |_| child(total),
        |_| {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
                .map_err(|e| e.to_string())?;
            for i in 0..total {
                let t = Instant::now();
                let echoed = round(i)?;
                let ns = t.elapsed().as_nanos() as u64;
                if echoed != i {
                    return Err(format!("round {i}: the echo carried {echoed}"));
                }
                if i >= warmup {
                    h.saturating_record(ns.max(1));
                }
            }
            Ok(Latency::from_histogram(&h))
        },
    )
}

/// Streaming throughput: the child runs `produce(n)` after the parent says go, the parent
/// runs `consume(n)`; returns messages per second measured by the parent from go to the
/// last message.
pub fn stream(
    n: u64,
    produce: impl FnOnce(u64) -> Res<()>,
    consume: impl FnOnce(u64) -> Res<()>,
) -> Res<f64> {
    two_processes(
        |go| {
            spin_until(go, 1, Instant::now() + DEADLINE)?;
            produce(n)
        },
        |go| {
            let t = Instant::now();
            go.store(1, Ordering::Release);
            consume(n)?;
            Ok(n as f64 / t.elapsed().as_secs_f64())
        },
    )
}

/// The median of `runs` repetitions of a throughput measurement.
pub fn median_of(runs: usize, mut f: impl FnMut() -> Res<f64>) -> Res<f64> {
    let mut v = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        v.push(f()?);
    }
    v.sort_by(f64::total_cmp);
    Ok(v[v.len() / 2])
}

/// The medians of `runs` alternated repetitions of a baseline and a contender, baseline
/// first each time: `(baseline, contender)`. Alternating puts a drift in this machine's
/// speed on both sides of their ratio, which running all of one and then all of the other
/// does not.
pub fn median_pair(
    runs: usize,
    mut baseline: impl FnMut() -> Res<f64>,
    mut contender: impl FnMut() -> Res<f64>,
) -> Res<(f64, f64)> {
    let (mut b, mut c) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs.max(1) {
        b.push(baseline()?);
        c.push(contender()?);
    }
    b.sort_by(f64::total_cmp);
    c.sort_by(f64::total_cmp);
    Ok((b[b.len() / 2], c[c.len() / 2]))
}
