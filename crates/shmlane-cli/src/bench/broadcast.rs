//! Broadcast (issue 16): one publisher process fanning out to N subscriber processes,
//! against the same messages written by one producer into N SPSC rings, one per consumer
//! process; and the publisher-to-subscriber round trip against the SPSC round trip.
//!
//! With N + 1 spinning processes on fewer CPUs, every side's wait loop yields the CPU after
//! 64 failed attempts in a row ([`crate::bench::run::yield_every`]), the same loop for both
//! contenders; no process is pinned.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Release};
use std::sync::Arc;
use std::time::Instant;

use bytemuck::Pod;
use shm_queue::broadcast::{self, Mode, SlowPolicy, Start};
use shm_queue::spsc;
use shm_queue::TryError;
use shm_region::Region;

use crate::bench::report::Latency;
use crate::bench::rings::{spin, spin_yielding};
use crate::bench::run::{pingpong, spin_until, Patience, Res, DEADLINE};

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Shared words of one run: `go` (the parent's start signal), `end` (the
/// `CLOCK_MONOTONIC` time the last reader finished), `got` (messages read in all), and, for
/// contenders that connect after the start signal, `ready` (readers connected) and `begin`
/// (when the writer started writing; 0: at the start signal).
pub(crate) struct Board {
    region: Region,
}

impl Board {
    fn new() -> Res<Self> {
        Ok(Board {
            region: Region::anonymous(4096).map_err(s)?,
        })
    }
    /// Word `i`: 0 `go`, 1 `end`, 2 `got`, 3 `ready`, 4 `begin`.
    pub(crate) fn word(&self, i: usize) -> Res<&std::sync::atomic::AtomicU64> {
        self.region.atomic_u64(i * 128).map_err(s)
    }
}

/// A reader process's work: reads its messages, returns how many.
pub(crate) type Reader<'a> = Box<dyn FnOnce(&Board) -> Res<u64> + 'a>;

/// Forks `writer` and `readers` (each told its index), says go, waits for all, and returns
/// messages per second from go until the last reader finished; each reader must read `n`.
pub(crate) fn fan_out(
    n: u64,
    writer: impl FnOnce(&Board) -> Res<()>,
    readers: Vec<Reader<'_>>,
) -> Res<f64> {
    let board = Board::new()?;
    let b = &board;
    let count = readers.len() as u64;
    let mut kids = Vec::new();
    for read in readers {
        kids.push(
            shm_bridge::fork::fork_child(move || {
                let run = || -> Res<()> {
                    spin_until(b.word(0)?, 1, Instant::now() + DEADLINE)?;
                    let got = read(b)?;
                    b.word(1)?.fetch_max(crate::stamp::now_ns(), AcqRel);
                    b.word(2)?.fetch_add(got, AcqRel);
                    Ok(())
                };
                report_failure(run())
            })
            .map_err(s)?,
        );
    }
    kids.push(
        shm_bridge::fork::fork_child(move || {
            let run = || -> Res<()> {
                spin_until(b.word(0)?, 1, Instant::now() + DEADLINE)?;
                writer(b)
            };
            report_failure(run())
        })
        .map_err(s)?,
    );
    let start = crate::stamp::now_ns();
    b.word(0)?.store(1, Release);
    for k in kids {
        k.wait_timeout(DEADLINE).map_err(s)?;
    }
    let got = b.word(2)?.load(Acquire);
    if got != n * count {
        return Err(format!("the readers got {got} of {} messages", n * count));
    }
    let start = start.max(b.word(4)?.load(Acquire));
    let secs = b.word(1)?.load(Acquire).saturating_sub(start) as f64 / 1e9;
    if secs <= 0.0 {
        return Err("the run ended before it started".into());
    }
    Ok(n as f64 / secs)
}

/// A child's exit code: 0, or 1 after saying on stderr why it failed (the parent reports
/// only the code).
fn report_failure(r: Res<()>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("benchmark child {}: {e}", std::process::id());
            1
        }
    }
}

/// A reading end as the fan-out loops use it: one element, or a batch (0: none ready).
trait ReadEnd<T> {
    fn one(&mut self) -> Result<T, TryError>;
    fn many(&mut self, buf: &mut [T]) -> Result<usize, TryError>;
}

/// A writing end as the fan-out loops use it: one element, or part of a batch (0: full).
trait WriteEnd<T> {
    fn one(&mut self, v: T) -> Result<(), TryError>;
    fn many(&mut self, src: &[T]) -> Result<usize, TryError>;
}

impl<T: Pod> ReadEnd<T> for broadcast::Subscriber<T> {
    fn one(&mut self) -> Result<T, TryError> {
        self.try_recv()
    }
    fn many(&mut self, buf: &mut [T]) -> Result<usize, TryError> {
        self.recv_partial_slice(buf)
    }
}

impl<T: Pod> ReadEnd<T> for spsc::Consumer<T> {
    fn one(&mut self) -> Result<T, TryError> {
        self.try_pop()
    }
    fn many(&mut self, buf: &mut [T]) -> Result<usize, TryError> {
        self.pop_partial_slice(buf)
    }
}

impl<T: Pod> WriteEnd<T> for broadcast::Publisher<T> {
    fn one(&mut self, v: T) -> Result<(), TryError> {
        self.try_push(v)
    }
    fn many(&mut self, src: &[T]) -> Result<usize, TryError> {
        self.push_partial_slice(src)
    }
}

impl<T: Pod> WriteEnd<T> for spsc::Producer<T> {
    fn one(&mut self, v: T) -> Result<(), TryError> {
        self.try_push(v)
    }
    fn many(&mut self, src: &[T]) -> Result<usize, TryError> {
        self.push_partial_slice(src)
    }
}

/// "Not now" for a batch call that moved nothing, so the wait loop retries it.
fn nothing<F: FnOnce() -> TryError>(
    r: Result<usize, TryError>,
    not_now: F,
) -> Result<usize, TryError> {
    match r {
        Ok(0) => Err(not_now()),
        r => r,
    }
}

/// Reads `n` elements from `rx` (one at a time, or in batches of up to 64), checking that
/// element `i` carries number `i`; the readers of both contenders.
fn read_all<T: Pod, R: ReadEnd<T>>(
    rx: &mut R,
    n: u64,
    batch: bool,
    every: u32,
    seq: fn(&T) -> u64,
) -> Res<u64> {
    let mut patience = Patience::new();
    let mut buf = [T::zeroed(); 64];
    let mut i = 0;
    let empty = || TryError::Empty {
        requested: 64,
        available: 0,
    };
    while i < n {
        let k = if batch {
            spin_yielding(&mut patience, every, || nothing(rx.many(&mut buf), empty))?
        } else {
            buf[0] = spin_yielding(&mut patience, every, || rx.one())?;
            1
        };
        for v in &buf[..k] {
            if seq(v) != i {
                return Err(format!("message {i} carried {}", seq(v)));
            }
            i += 1;
        }
    }
    Ok(n)
}

/// Writes elements `0..n` (built by `make`) into every end of `txs` in turn, one at a time
/// or in batches of up to 64; the writers of both contenders (broadcast has one end).
fn write_all<T: Pod, W: WriteEnd<T>>(
    txs: &mut [W],
    n: u64,
    batch: bool,
    every: u32,
    make: fn(u64) -> T,
) -> Res<()> {
    let mut patience = Patience::new();
    let mut buf = [T::zeroed(); 64];
    let mut i = 0;
    let full = || TryError::Full {
        requested: 64,
        available: 0,
    };
    while i < n {
        let k = if batch { (n - i).min(64) as usize } else { 1 };
        for (j, b) in buf[..k].iter_mut().enumerate() {
            *b = make(i + j as u64);
        }
        for tx in txs.iter_mut() {
            if batch {
                let mut done = 0;
                while done < k {
                    done += spin_yielding(&mut patience, every, || {
                        nothing(tx.many(&buf[done..k]), full)
                    })?;
                }
            } else {
                spin_yielding(&mut patience, every, || tx.one(buf[0]))?;
            }
        }
        i += k as u64;
    }
    Ok(())
}

/// `n` `u64`s from one publisher process to `subs` subscriber processes through a lossless
/// broadcast ring of `cap`: messages per second (each delivered to every subscriber).
/// `batch`: pushes and receives move up to 64 at a time.
pub fn broadcast_rate(n: u64, cap: usize, subs: usize, batch: bool) -> Res<f64> {
    broadcast_rate_of::<u64>(n, cap, subs, batch, |i| i, |v| *v)
}

/// [`broadcast_rate`] for elements of `T` (`make(i)` builds element `i`, `seq` reads its
/// number back).
pub fn broadcast_rate_of<T: Pod + Send>(
    n: u64,
    cap: usize,
    subs: usize,
    batch: bool,
    make: fn(u64) -> T,
    seq: fn(&T) -> u64,
) -> Res<f64> {
    let opts = broadcast::Options::new(cap)
        .subscribers(subs.max(1))
        .mode(Mode::Lossless(SlowPolicy::Wait));
    let bytes = broadcast::Ring::<T>::required_bytes_with(&opts).map_err(s)?;
    let region = Arc::new(Region::anonymous(bytes).map_err(s)?);
    region.prefault().map_err(s)?;
    let ring = broadcast::Ring::<T>::create_with(region, opts).map_err(s)?;
    let every = crate::bench::run::yield_every(subs + 1);
    let mut readers: Vec<Reader<'static>> = Vec::new();
    for _ in 0..subs {
        let mut rx = ring.subscriber(Start::Newest).map_err(s)?;
        readers.push(Box::new(move |_| read_all(&mut rx, n, batch, every, seq)));
    }
    let mut tx = [ring.publisher().map_err(s)?];
    fan_out(
        n,
        move |_| write_all(&mut tx, n, batch, every, make),
        readers,
    )
}

/// The baseline: `n` `u64`s written by one producer process into `subs` SPSC rings of
/// `cap`, one per consumer process (each message written `subs` times, as a user without
/// broadcast does): messages per second. `batch` as [`broadcast_rate`].
pub fn spsc_fan_out_rate(n: u64, cap: usize, subs: usize, batch: bool) -> Res<f64> {
    spsc_fan_out_rate_of::<u64>(n, cap, subs, batch, |i| i, |v| *v)
}

/// [`spsc_fan_out_rate`] for elements of `T` (as [`broadcast_rate_of`]).
pub fn spsc_fan_out_rate_of<T: Pod + Send>(
    n: u64,
    cap: usize,
    subs: usize,
    batch: bool,
    make: fn(u64) -> T,
    seq: fn(&T) -> u64,
) -> Res<f64> {
    let every = crate::bench::run::yield_every(subs + 1);
    let mut txs = Vec::new();
    let mut readers: Vec<Reader<'static>> = Vec::new();
    for _ in 0..subs {
        let bytes = spsc::Ring::<T>::required_bytes(cap).map_err(s)?;
        let region = Arc::new(Region::anonymous(bytes).map_err(s)?);
        region.prefault().map_err(s)?;
        let (tx, mut rx) = spsc::Ring::<T>::create(region, cap)
            .map_err(s)?
            .split()
            .map_err(s)?;
        txs.push(tx);
        readers.push(Box::new(move |_| read_all(&mut rx, n, batch, every, seq)));
    }
    fan_out(
        n,
        move |_| write_all(&mut txs, n, batch, every, make),
        readers,
    )
}

/// Round trip of a `u64` from a publisher to its one subscriber, echoed back over an SPSC
/// ring: to compare with the SPSC round trip (`rtt/shmlane-spsc/8B`).
pub fn broadcast_rtt(rounds: u64, warmup: u64) -> Res<Latency> {
    let opts = broadcast::Options::new(1024).subscribers(1);
    let bytes = broadcast::Ring::<u64>::required_bytes_with(&opts).map_err(s)?;
    let region = Arc::new(Region::anonymous(bytes).map_err(s)?);
    region.prefault().map_err(s)?;
    let ring = broadcast::Ring::<u64>::create_with(region, opts).map_err(s)?;
    let mut tx = ring.publisher().map_err(s)?;
    let mut rx = ring.subscriber(Start::Newest).map_err(s)?;
    let back = spsc::Ring::<u64>::required_bytes(1024).map_err(s)?;
    let back = Arc::new(Region::anonymous(back).map_err(s)?);
    let (mut etx, mut erx) = spsc::Ring::<u64>::create(back, 1024)
        .map_err(s)?
        .split()
        .map_err(s)?;
    pingpong(
        rounds,
        warmup,
        move |total| {
            let mut patience = Patience::new();
            for _ in 0..total {
                let v = spin(&mut patience, || rx.try_recv())?;
                spin(&mut patience, || etx.try_push(v))?;
            }
            Ok(())
        },
        move |i| {
            let mut patience = Patience::new();
            spin(&mut patience, || tx.try_push(i))?;
            spin(&mut patience, || erx.try_pop())
        },
    )
}
