//! Helpers shared by the integration tests: a seeded generator, guarded regions and hostile
//! values for the scribbling tests, element types for the model tests, forked children and
//! their CPU time, and the polling and pop loops several tests repeat. The loom models have
//! their own helpers in `model.rs` (the ring constructors here do not exist under loom).
#![allow(dead_code)]

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytemuck::{Pod, Zeroable};
use shm_queue::{mpmc, TryError};
use shm_region::Region;

/// xorshift64*: a tiny deterministic generator, so failures replay from their seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A region of `pages` pages with a `PROT_NONE` guard page mapped right after it, if the
/// kernel places it so (it allocates top-down, so it usually reuses the hole we leave below
/// the guard; regions that land elsewhere are kept until the end so the holes fill up).
/// Returns the region and whether the guard is in place.
pub fn guarded_region(pages: usize) -> (Arc<Region>, bool) {
    let len = pages * 4096;
    let mut misses = Vec::new();
    for _ in 0..64 {
        // SAFETY: a fresh private reservation; nothing else refers to it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len + 4096,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        // SAFETY: unmaps the front of our own reservation; its last page stays as a guard.
        unsafe { libc::munmap(p, len) };
        let region = Region::anonymous(len).unwrap();
        if region.as_ptr().as_ptr().cast::<libc::c_void>() == p {
            return (Arc::new(region), true);
        }
        misses.push(region);
    }
    (Arc::new(Region::anonymous(len).unwrap()), false)
}

/// Runs `scribble` on a fresh guarded region of `pages` pages (see [`guarded_region`]) for
/// each seed, saying when no guard page could be placed behind it, and checks that some of
/// the calls it made on the damaged ring succeeded (it returns how many).
pub fn for_guarded_seeds(
    pages: usize,
    seeds: impl IntoIterator<Item = u64>,
    mut scribble: impl FnMut(Arc<Region>, u64) -> usize,
) {
    for seed in seeds {
        let (region, guarded) = guarded_region(pages);
        if !guarded {
            eprintln!("seed {seed}: no guard page could be placed behind the region");
        }
        let ok = scribble(region, seed);
        assert!(
            ok > 0,
            "seed {seed}: nothing ever succeeded, the test tests nothing"
        );
    }
}

/// `n` in debug builds (as `cargo test` runs the tests), ten times `n` in optimised ones.
pub const fn rounds(n: usize) -> usize {
    if cfg!(debug_assertions) {
        n
    } else {
        10 * n
    }
}

/// A forgery of one ring kind: from the generator, the real position nearby and the
/// capacity, a value that looks like one of that ring's words.
pub type Forgery = fn(&mut Rng, u64, u64) -> u64;

/// A value a hostile peer might write into a word: zero, huge, near the real position
/// `near` (either side), a single bit, one of the ring's own `forgeries`, or random.
pub fn nasty(rng: &mut Rng, near: u64, cap: u64, forgeries: &[Forgery]) -> u64 {
    let forged = 5..5 + forgeries.len() as u64;
    match rng.below(forged.end + 1) {
        0 => 0,
        1 => u64::MAX - rng.below(4),
        2 => near + rng.below(2 * cap + 2),
        3 => near.saturating_sub(rng.below(2 * cap + 2)),
        4 => 1 << rng.below(64),
        k if forged.contains(&k) => forgeries[(k - forged.start) as usize](rng, near, cap),
        _ => rng.next(),
    }
}

/// Takes one side of a ring as a restarted peer would: `take` it, and if a stale claim
/// refuses it (`ProducerClaimed`, `ConsumerClaimed`), `release` that holder and try once
/// more. `None` if the ring still refuses, or refuses for any other reason.
pub fn retake<H>(
    mut take: impl FnMut() -> Result<H, shm_queue::Error>,
    mut release: impl FnMut(u64),
) -> Option<H> {
    for _ in 0..2 {
        match take() {
            Ok(handle) => return Some(handle),
            Err(
                shm_queue::Error::ProducerClaimed { holder }
                | shm_queue::Error::ConsumerClaimed { holder },
            ) => release(holder),
            Err(_) => return None,
        }
    }
    None
}

/// Drops both handles of a hostile test and retakes them through a fresh attach of the
/// ring's region (the ring itself if the damaged header refuses the attach), as restarted
/// peers would; see [`retake`]. A macro because the SPSC and byte rings share these
/// methods but no trait.
#[allow(unused_macros)]
macro_rules! restart_peers {
    ($Ring:ty, $ring:expr, $tx:expr, $rx:expr) => {{
        *$tx = None;
        *$rx = None;
        let r = <$Ring>::attach($ring.region().clone()).unwrap_or_else(|_| $ring.clone());
        // SAFETY: this test holds no handle now, so any claim is garbage.
        let release_producer = |holder| unsafe {
            r.force_release_producer(holder);
        };
        // SAFETY: as above.
        let release_consumer = |holder| unsafe {
            r.force_release_consumer(holder);
        };
        *$tx = common::retake(|| r.producer(), release_producer);
        *$rx = common::retake(|| r.consumer(), release_consumer);
    }};
}
#[allow(unused_imports)]
pub(crate) use restart_peers;

/// Element types for the model tests, of different shapes: `u64` (7 to an SPSC block),
/// `u16` (28) and [`Wide`] (one to a 128-byte SPSC block or MPMC slot).
pub trait Elem: Pod + PartialEq + Debug {
    fn make(v: u64) -> Self;
}

impl Elem for u64 {
    fn make(v: u64) -> Self {
        v
    }
}

impl Elem for u16 {
    fn make(v: u64) -> Self {
        v as u16
    }
}

/// 72 bytes: one element per 128-byte block or slot.
#[derive(Clone, Copy, PartialEq, Debug, Zeroable, Pod)]
#[repr(C)]
pub struct Wide {
    a: [u64; 8],
    b: u64,
}

impl Elem for Wide {
    fn make(v: u64) -> Self {
        Wide { a: [v; 8], b: !v }
    }
}

/// One fruitless poll more in a spinning loop: `false` once `deadline` has passed (looked at
/// every 1024th poll), else a spin-loop hint and `true`.
pub fn keep_polling(spins: &mut u32, deadline: Instant) -> bool {
    *spins += 1;
    if *spins & 1023 == 0 && Instant::now() > deadline {
        return false;
    }
    std::hint::spin_loop();
    true
}

/// Pops into `buf` from an MPMC consumer: a batch (`pop_partial_slice`) when `batch`, else
/// one element (`try_pop`) into `buf[0]`. Returns how many it got.
pub fn pop_some(
    rx: &mut mpmc::Consumer<u64>,
    buf: &mut [u64],
    batch: bool,
) -> Result<usize, TryError> {
    if batch {
        rx.pop_partial_slice(buf)
    } else {
        rx.try_pop().map(|v| {
            buf[0] = v;
            1
        })
    }
}

/// The payload of message `seq` with `len` bytes: the sequence number in its first 8 bytes
/// (as far as they go), then a pattern derived from it.
pub fn payload(seq: u64, len: usize, out: &mut [u8]) {
    let s = seq.to_le_bytes();
    for (i, b) in out[..len].iter_mut().enumerate() {
        *b = if i < 8 {
            s[i]
        } else {
            (seq as u8).wrapping_add(i as u8).wrapping_mul(31)
        };
    }
}

/// The length of message `seq` for a ring carrying at most `max` bytes.
pub fn length(seq: u64, max: usize) -> usize {
    match seq % 7 {
        0 => 0,
        1 => max,
        2 => 8,
        _ => ((seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as usize) % (max + 1),
    }
}

/// Waits for `child` to exit, at most `limit`; kills it and panics past that.
pub fn exit_code(child: nix::unistd::Pid, limit: std::time::Duration) -> i32 {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let end = std::time::Instant::now() + limit;
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG)).unwrap() {
            WaitStatus::Exited(_, code) => return code,
            WaitStatus::Signaled(_, sig, _) => panic!("child killed by {sig:?}"),
            _ => {}
        }
        if std::time::Instant::now() > end {
            let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(child, None);
            panic!("child still running after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Lets `children` fall asleep (100 ms) and measures the CPU time they use together over
/// `idle`; then runs `wake` (which wakes and reaps them, or not) and checks that they used
/// less than 5% of one CPU while asleep.
pub fn check_idle_cpu(
    children: &[nix::unistd::Pid],
    idle: Duration,
    who: &str,
    wake: impl FnOnce(),
) {
    std::thread::sleep(Duration::from_millis(100));
    let used = || children.iter().map(|&c| cpu_ns(c)).sum::<u64>();
    let (t0, c0) = (Instant::now(), used());
    std::thread::sleep(idle);
    let (wall, cpu) = (t0.elapsed().as_nanos() as u64, used() - c0);
    wake();
    eprintln!(
        "{who}: {cpu} ns of CPU in {wall} ns ({:.3}%)",
        cpu as f64 * 100.0 / wall as f64
    );
    assert!(
        cpu * 20 < wall,
        "{who} used {cpu} ns of CPU in {wall} ns (must be under 5%)"
    );
}

/// CPU time a process has used, in nanoseconds (`/proc/PID/schedstat`, first field).
pub fn cpu_ns(pid: nix::unistd::Pid) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap();
    s.split_whitespace().next().unwrap().parse().unwrap()
}

/// Runs `f` in a forked child, which exits with `f`'s return value; returns its pid. The
/// child must only do ring work (no locks another thread of the harness might hold).
/// What `f` captures is moved to the child and never dropped in the parent.
pub fn in_child(f: impl FnOnce() -> i32) -> nix::unistd::Pid {
    // SAFETY: the child runs only `f`, then _exits.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            let code = f();
            // SAFETY: leave without running the harness's destructors.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            // `f` and what it captured belong to the child: dropping the parent's copy would
            // release ring claims and sleeper registrations the child still relies on.
            std::mem::forget(f);
            child
        }
    }
}

/// Runs `produce` in a forked child (see [`in_child`]) and `consume` here, then reaps the
/// child, killing it first if `consume` failed, and panics with `consume`'s error. Returns
/// the child's pid and how it ended.
pub fn produce_in_child(
    produce: impl FnOnce() -> i32,
    consume: impl FnOnce() -> Result<(), String>,
) -> (nix::unistd::Pid, nix::sys::wait::WaitStatus) {
    let child = in_child(produce);
    let checked = consume();
    if checked.is_err() {
        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
    }
    let status = nix::sys::wait::waitpid(child, None).unwrap();
    checked.unwrap();
    (child, status)
}

/// Messages a forked producer sends in the cross-process stream tests.
pub const STREAM_MESSAGES: u64 = if cfg!(debug_assertions) {
    200_000
} else {
    10_000_000
};

/// How long either side of a cross-process stream test may take.
pub const STREAM_DEADLINE: Duration = Duration::from_secs(120);

/// Streams `0..n` from a forked child to here: the child sends slices of `part` elements
/// through `push` (a blocking push with a 30 s deadline that says whether it succeeded),
/// and must exit 0; here `pop` (a blocking pop into a buffer of `buf_len` elements, with a
/// 30 s deadline, that returns how many it got) must receive them in order.
pub fn stream_in_batches(
    n: u64,
    (part, buf_len): (usize, usize),
    mut push: impl FnMut(&[u64], Option<Instant>) -> bool,
    mut pop: impl FnMut(&mut [u64], Option<Instant>) -> usize,
) {
    let child = in_child(move || {
        let src: Vec<u64> = (0..n).collect();
        let deadline = Some(Instant::now() + Duration::from_secs(30));
        i32::from(src.chunks(part).any(|p| !push(p, deadline)))
    });
    let mut buf = vec![0u64; buf_len];
    let mut expect = 0;
    let deadline = Some(Instant::now() + Duration::from_secs(30));
    while expect < n {
        let k = pop(&mut buf, deadline);
        for v in &buf[..k] {
            assert_eq!(*v, expect);
            expect += 1;
        }
    }
    assert_eq!(exit_code(child, Duration::from_secs(10)), 0);
}

/// `CLOCK_MONOTONIC` in nanoseconds: comparable between processes, unlike `Instant`.
pub fn mono_ns() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}
