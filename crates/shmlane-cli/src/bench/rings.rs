//! shmlane's own rings, measured across processes with the same harness as the baselines.

use std::sync::Arc;
use std::time::Instant;

use bytemuck::Pod;
use shm_queue::bytes;
use shm_queue::spsc::{Consumer, Producer, Ring};
use shm_queue::wait::WaitStrategy;
use shm_queue::TryError;
use shm_region::Region;

use crate::bench::report::Report;
use crate::bench::run::{pingpong, stream, Patience, Res, DEADLINE};

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// A fresh SPSC ring of at least `capacity` elements in its own anonymous region.
fn spsc_pair<T: Pod>(capacity: usize) -> Res<(Producer<T>, Consumer<T>)> {
    let bytes = Ring::<T>::required_bytes(capacity).map_err(s)?;
    let region = Arc::new(Region::anonymous(bytes).map_err(s)?);
    region.prefault().map_err(s)?;
    Ring::<T>::create(region, capacity)
        .map_err(s)?
        .split()
        .map_err(s)
}

/// Calls `f` until it succeeds, spinning with the baselines' [`Patience`] while it reports a
/// full or empty ring: the one wait loop of every shmlane contender. Always inlined, as the
/// baselines' loops are written inline: an out-of-line call per message (which rustc chose
/// here before) halved the per-item figure and measured the call, not the ring.
#[inline(always)]
pub(crate) fn spin<R>(
    patience: &mut Patience,
    mut f: impl FnMut() -> Result<R, TryError>,
) -> Res<R> {
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if e.is_retryable() => {
                if !patience.spin() {
                    return Err("timed out waiting for the peer".into());
                }
            }
            Err(e) => return Err(s(e)),
        }
    }
}

/// [`spin`] that also yields the CPU after every `every` failed attempts in a row (see
/// [`crate::bench::run::yield_every`]): the MPMC contenders' loop, the same as
/// [`crate::bench::inproc::crossbeam_array_queue`]'s. With more spinning processes than CPUs
/// (2P2C on 2 vCPUs), a handle preempted between its claim and its publish stalls the others
/// until it runs again; yielding lets it.
#[inline(always)]
pub(crate) fn spin_yielding<R>(
    patience: &mut Patience,
    every: u32,
    mut f: impl FnMut() -> Result<R, TryError>,
) -> Res<R> {
    let mut fails = 0u32;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if e.is_retryable() => {
                fails += 1;
                if fails.is_multiple_of(every) {
                    std::thread::yield_now();
                }
                if !patience.spin() {
                    return Err("timed out waiting for the peer".into());
                }
            }
            Err(e) => return Err(s(e)),
        }
    }
}

/// Spins on `try_pop` until an element arrives or patience runs out.
#[inline(always)]
fn pop_spin<T: Pod>(rx: &mut Consumer<T>, patience: &mut Patience) -> Res<T> {
    spin(patience, || rx.try_pop())
}

/// Spins on `try_push` until there is room or patience runs out.
#[inline(always)]
fn push_spin<T: Pod>(tx: &mut Producer<T>, v: T, patience: &mut Patience) -> Res<()> {
    spin(patience, || tx.try_push(v))
}

/// Round trip of one element of `T` over two SPSC rings (one each way).
pub(crate) fn spsc_rtt_of<T: Pod>(
    rounds: u64,
    warmup: u64,
    make: fn(u64) -> T,
    seq: fn(&T) -> u64,
) -> Res<crate::bench::report::Latency> {
    let (mut tx1, mut rx1) = spsc_pair::<T>(1024)?;
    let (mut tx2, mut rx2) = spsc_pair::<T>(1024)?;
    pingpong(
        rounds,
        warmup,
        move |total| {
            let mut patience = Patience::new();
            for _ in 0..total {
                let v = pop_spin(&mut rx1, &mut patience)?;
                push_spin(&mut tx2, v, &mut patience)?;
            }
            Ok(())
        },
        move |i| {
            let mut patience = Patience::new();
            push_spin(&mut tx1, make(i), &mut patience)?;
            Ok(seq(&pop_spin(&mut rx2, &mut patience)?))
        },
    )
}

/// SPSC round trips (8 B and 1 KiB elements), compared to the floor.
pub fn spsc_rtt(r: &mut Report, rounds: u64, warmup: u64, floor: &str) -> Res<()> {
    let l = spsc_rtt_of::<u64>(rounds, warmup, |i| i, |v| *v)?;
    r.latency("rtt/shmlane-spsc/8B", l, Some(floor));
    let l = spsc_rtt_of::<[u64; 128]>(rounds / 2, warmup / 2, crate::bench::kib, |a| a[0])?;
    r.latency("rtt/shmlane-spsc/1KiB", l, Some(floor));
    Ok(())
}

/// One `u64` at a time through a cross-process SPSC ring: messages per second.
pub fn spsc_per_item(n: u64, cap: usize) -> Res<f64> {
    spsc_per_item_of::<u64>(n, cap, |i| i, |v| *v)
}

/// One element of `T` at a time through a cross-process SPSC ring (`make(i)` builds
/// element `i`, `seq` reads its number back): messages per second.
pub fn spsc_per_item_of<T: Pod>(
    n: u64,
    cap: usize,
    make: fn(u64) -> T,
    seq: fn(&T) -> u64,
) -> Res<f64> {
    let (mut tx, mut rx) = spsc_pair::<T>(cap)?;
    stream(
        n,
        move |n| {
            let mut patience = Patience::new();
            for i in 0..n {
                push_spin(&mut tx, make(i), &mut patience)?;
            }
            Ok(())
        },
        move |n| {
            let mut patience = Patience::new();
            for i in 0..n {
                let v = seq(&pop_spin(&mut rx, &mut patience)?);
                if v != i {
                    return Err(format!("element {i} carried {v}"));
                }
            }
            Ok(())
        },
    )
}

/// `u64`s in chunks of up to `chunk`, written and read in place: messages per second.
pub fn spsc_chunked(n: u64, cap: usize, chunk: usize) -> Res<f64> {
    let (mut tx, mut rx) = spsc_pair::<u64>(cap)?;
    stream(
        n,
        move |n| {
            let mut patience = Patience::new();
            let mut next = 0u64;
            while next < n {
                let want = chunk.min((n - next) as usize);
                let mut c = tx.write_chunk_up_to(want).map_err(s)?;
                if c.is_empty() {
                    if !patience.spin() {
                        return Err("timed out waiting for room".into());
                    }
                    continue;
                }
                // A bounded range, as the rtrb loop it is compared with.
                let k = c.fill_from_iter(next..next + c.len() as u64);
                c.commit_all();
                next += k as u64;
            }
            Ok(())
        },
        move |n| {
            let mut patience = Patience::new();
            let mut expect = 0u64;
            while expect < n {
                let c = rx.read_chunk_up_to(chunk).map_err(s)?;
                if c.is_empty() {
                    if !patience.spin() {
                        return Err("timed out waiting for data".into());
                    }
                    continue;
                }
                for v in &c {
                    if v != expect {
                        return Err(format!("element {expect} carried {v}"));
                    }
                    expect += 1;
                }
                c.commit_all();
            }
            Ok(())
        },
    )
}

/// A fresh byte ring with a data area of `capacity` bytes in its own anonymous region.
fn bytes_pair(capacity: usize, max: usize) -> Res<(bytes::Producer, bytes::Consumer)> {
    let region =
        Arc::new(Region::anonymous(bytes::Ring::required_bytes(capacity).map_err(s)?).map_err(s)?);
    region.prefault().map_err(s)?;
    bytes::Ring::create(region, capacity, max)
        .map_err(s)?
        .split()
        .map_err(s)
}

#[inline(always)]
fn send_spin(tx: &mut bytes::Producer, msg: &[u8], patience: &mut Patience) -> Res<()> {
    spin(patience, || tx.try_push(msg))
}

#[inline(always)]
fn recv_spin(rx: &mut bytes::Consumer, buf: &mut [u8], patience: &mut Patience) -> Res<usize> {
    spin(patience, || rx.try_pop(buf))
}

fn seq_of(buf: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[..8]);
    u64::from_le_bytes(b)
}

/// Round trip of a `size`-byte message over two byte rings.
fn bytes_rtt_of(rounds: u64, warmup: u64, size: usize) -> Res<crate::bench::report::Latency> {
    let size = size.max(8);
    let (mut tx1, mut rx1) = bytes_pair(64 * 1024, size)?;
    let (mut tx2, mut rx2) = bytes_pair(64 * 1024, size)?;
    let mut pbuf = vec![0u8; size];
    let mut msg = vec![0xabu8; size];
    pingpong(
        rounds,
        warmup,
        move |total| {
            let mut patience = Patience::new();
            let mut buf = vec![0u8; size];
            for _ in 0..total {
                let n = recv_spin(&mut rx1, &mut buf, &mut patience)?;
                send_spin(&mut tx2, &buf[..n], &mut patience)?;
            }
            Ok(())
        },
        move |i| {
            let mut patience = Patience::new();
            msg[..8].copy_from_slice(&i.to_le_bytes());
            send_spin(&mut tx1, &msg, &mut patience)?;
            recv_spin(&mut rx2, &mut pbuf, &mut patience)?;
            Ok(seq_of(&pbuf))
        },
    )
}

/// Byte-ring round trips (8 B and 1 KiB), compared to the floor.
pub fn bytes_rtt(r: &mut Report, rounds: u64, warmup: u64, floor: &str) -> Res<()> {
    for (size, tag) in [(8usize, "8B"), (1024, "1KiB")] {
        let l = bytes_rtt_of(rounds, warmup, size)?;
        r.latency(&format!("rtt/shmlane-bytes/{tag}"), l, Some(floor));
    }
    Ok(())
}

/// `size`-byte messages through a cross-process byte ring: messages per second. With
/// `zero_copy`, the producer writes each message in place through a claim and the consumer
/// reads it in place through a guard (only its sequence number is copied out).
pub fn bytes_rate(n: u64, size: usize, zero_copy: bool) -> Res<f64> {
    let size = size.max(8);
    let cap = (size * 64).next_power_of_two().max(1 << 20);
    let (mut tx, mut rx) = bytes_pair(cap, size)?;
    stream(
        n,
        move |n| {
            let mut patience = Patience::new();
            let mut msg = vec![0x5au8; size];
            let mut i = 0;
            while i < n {
                if zero_copy {
                    match tx.claim(size) {
                        Ok(mut c) => {
                            c.write_at(0, &i.to_le_bytes()).map_err(s)?;
                            c.write_at(8, &msg[8..]).map_err(s)?;
                            c.commit();
                            i += 1;
                        }
                        Err(TryError::Full { .. }) => {
                            if !patience.spin() {
                                return Err("timed out waiting for room".into());
                            }
                        }
                        Err(e) => return Err(s(e)),
                    }
                } else {
                    msg[..8].copy_from_slice(&i.to_le_bytes());
                    send_spin(&mut tx, &msg, &mut patience)?;
                    i += 1;
                }
            }
            Ok(())
        },
        move |n| {
            let mut patience = Patience::new();
            let mut buf = vec![0u8; size];
            let mut piece = [0u8; 4096];
            let mut i = 0;
            while i < n {
                let seq = if zero_copy {
                    match rx.read() {
                        Ok(g) => {
                            // Read every byte in place, as a consumer processing the
                            // message would, through a small buffer that stays in L1 (made
                            // once: zeroing it per message cost small messages 4 KiB each).
                            let mut first = [0u8; 8];
                            let mut off = 0;
                            while off < g.len() {
                                let k = (g.len() - off).min(piece.len());
                                g.read_at(off, &mut piece[..k]).map_err(s)?;
                                if off == 0 {
                                    first.copy_from_slice(&piece[..8]);
                                }
                                std::hint::black_box(&piece);
                                off += k;
                            }
                            u64::from_le_bytes(first)
                        }
                        Err(TryError::Empty { .. }) => {
                            if !patience.spin() {
                                return Err("timed out waiting for data".into());
                            }
                            continue;
                        }
                        Err(e) => return Err(s(e)),
                    }
                } else {
                    recv_spin(&mut rx, &mut buf, &mut patience)?;
                    seq_of(&buf)
                };
                if seq != i {
                    return Err(format!("message {i} carried {seq}"));
                }
                i += 1;
            }
            Ok(())
        },
    )
}

/// Round trip of an 8-byte message over two byte rings whose consumers wait with
/// `strategy` (`recv_blocking`), so the figure includes the wake-up when they sleep.
pub fn bytes_rtt_blocking(
    rounds: u64,
    warmup: u64,
    strategy: WaitStrategy,
) -> Res<crate::bench::report::Latency> {
    bytes_rtt_waiting(rounds, warmup, 8, strategy)
}

/// Round trip of a `size`-byte message over two byte rings whose consumers wait with
/// `strategy` (`recv_blocking`).
pub fn bytes_rtt_waiting(
    rounds: u64,
    warmup: u64,
    size: usize,
    strategy: WaitStrategy,
) -> Res<crate::bench::report::Latency> {
    let size = size.max(8);
    let (mut tx1, mut rx1) = bytes_pair(64 * 1024, size)?;
    let (mut tx2, mut rx2) = bytes_pair(64 * 1024, size)?;
    rx1.set_wait_strategy(strategy);
    rx2.set_wait_strategy(strategy);
    let mut msg = vec![0x5au8; size];
    let mut pbuf = vec![0u8; size];
    pingpong(
        rounds,
        warmup,
        move |total| {
            let deadline = Some(Instant::now() + DEADLINE);
            let mut buf = vec![0u8; size];
            for _ in 0..total {
                let n = rx1.pop_blocking(&mut buf, deadline).map_err(s)?;
                tx2.try_push(&buf[..n]).map_err(s)?;
            }
            Ok(())
        },
        move |i| {
            let deadline = Some(Instant::now() + DEADLINE);
            msg[..8].copy_from_slice(&i.to_le_bytes());
            tx1.try_push(&msg).map_err(s)?;
            rx2.pop_blocking(&mut pbuf, deadline).map_err(s)?;
            Ok(seq_of(&pbuf))
        },
    )
}

/// One `u64` at a time through a cross-process SPSC ring whose consumer waits with
/// `strategy` (`pop_blocking`): with a steady stream the consumer rarely sleeps, so this is
/// the cost of blocking mode when nobody sleeps (compare `WaitStrategy::BusySpin`).
pub fn spsc_per_item_waiting(n: u64, cap: usize, strategy: WaitStrategy) -> Res<f64> {
    let (mut tx, mut rx) = spsc_pair::<u64>(cap)?;
    rx.set_wait_strategy(strategy);
    stream(
        n,
        move |n| {
            let mut patience = Patience::new();
            for i in 0..n {
                push_spin(&mut tx, i, &mut patience)?;
            }
            Ok(())
        },
        move |n| {
            let deadline = Some(Instant::now() + DEADLINE);
            for i in 0..n {
                let v = rx.pop_blocking(deadline).map_err(s)?;
                if v != i {
                    return Err(format!("element {i} carried {v}"));
                }
            }
            Ok(())
        },
    )
}

/// `n` `u64`s through a cross-process MPMC ring (the default slot layout) from `producers`
/// producer processes to `consumers` consumer processes: see [`mpmc_rate_with`].
pub fn mpmc_rate(n: u64, capacity: usize, producers: usize, consumers: usize) -> Res<f64> {
    mpmc_rate_with(
        n,
        capacity,
        producers,
        consumers,
        shm_queue::mpmc::SlotLayout::default(),
    )
}

/// `n` `u64`s through a cross-process MPMC ring whose slots are spaced by `slots`, from
/// `producers` producer processes to `consumers` consumer processes, producer `k` pinned to
/// CPU `k` and consumer `k` to CPU `k + 1` (modulo the CPUs), as the threads of
/// [`crate::bench::inproc::crossbeam_array_queue`]: items per second, from the start signal
/// until the last consumer has seen its stop marker (pushed by the last producer to finish).
pub fn mpmc_rate_with(
    n: u64,
    capacity: usize,
    producers: usize,
    consumers: usize,
    slots: shm_queue::mpmc::SlotLayout,
) -> Res<f64> {
    use shm_queue::mpmc;
    use std::sync::atomic::Ordering::{AcqRel, Acquire, Release};
    const STOP: u64 = u64::MAX;
    let (producers, consumers) = (producers.max(1), consumers.max(1));
    let per_p = n / producers as u64;
    let opts = mpmc::Options::new(capacity).slot_layout(slots);
    let bytes = mpmc::Ring::<u64>::required_bytes_with(opts).map_err(s)?;
    let region = Arc::new(Region::anonymous(bytes).map_err(s)?);
    region.prefault().map_err(s)?;
    let ring = mpmc::Ring::<u64>::create_with(region, opts).map_err(s)?;
    let sync = Region::anonymous(4096).map_err(s)?;
    let go = sync.atomic_u64(0).map_err(s)?;
    let got = sync.atomic_u64(64).map_err(s)?;
    // Producers that finished, and the CLOCK_MONOTONIC time the last consumer took its STOP:
    // the window runs from `go` to that moment, as the threads' window runs from spawning
    // to the last join, and excludes the parent's polling for exits and the teardown.
    let done = sync.atomic_u64(128).map_err(s)?;
    let end = sync.atomic_u64(192).map_err(s)?;
    let cpus = crate::bench::run::available_cpus();
    let every = crate::bench::run::yield_every(producers + consumers);
    let mut kids = Vec::new();
    for k in 0..producers {
        let mut p = ring.producer().map_err(s)?;
        kids.push(
            shm_bridge::fork::fork_child(move || {
                // The same placement as the threads of `crossbeam_array_queue`.
                crate::bench::run::pin(k % cpus);
                let mut run = || -> Res<()> {
                    crate::bench::run::spin_until(go, 1, Instant::now() + DEADLINE)?;
                    let mut patience = Patience::new();
                    for i in 0..per_p {
                        spin_yielding(&mut patience, every, || p.try_push(i))?;
                    }
                    // The last producer to finish tells every consumer to stop.
                    if done.fetch_add(1, AcqRel) + 1 == producers as u64 {
                        for _ in 0..consumers {
                            spin_yielding(&mut patience, every, || p.try_push(STOP))?;
                        }
                    }
                    Ok(())
                };
                i32::from(run().is_err())
            })
            .map_err(s)?,
        );
    }
    let mut cons = Vec::new();
    for k in 0..consumers {
        let mut c = ring.consumer().map_err(s)?;
        cons.push(
            shm_bridge::fork::fork_child(move || {
                crate::bench::run::pin((k + 1) % cpus);
                let mut patience = Patience::new();
                let mut mine = 0u64;
                loop {
                    match spin_yielding(&mut patience, every, || c.try_pop()) {
                        Ok(STOP) => break,
                        Ok(_) => mine += 1,
                        Err(_) => return 1,
                    }
                }
                end.fetch_max(crate::stamp::now_ns(), AcqRel);
                got.fetch_add(mine, AcqRel);
                0
            })
            .map_err(s)?,
        );
    }
    let start = crate::stamp::now_ns();
    go.store(1, Release);
    for k in kids {
        k.wait_timeout(DEADLINE).map_err(s)?;
    }
    for c in cons {
        c.wait_timeout(DEADLINE).map_err(s)?;
    }
    let secs = end.load(Acquire).saturating_sub(start) as f64 / 1e9;
    let total = got.load(Acquire);
    if total != per_p * producers as u64 {
        return Err(format!(
            "MPMC consumers got {total} of {} items",
            per_p * producers as u64
        ));
    }
    if secs <= 0.0 {
        return Err("MPMC run ended before it started (clock went backwards?)".into());
    }
    Ok(total as f64 / secs)
}

/// Round trip of a `u64` over two typed SPSC rings whose consumers wait with `strategy`
/// (`pop_blocking`), so each wait strategy can be compared with the floor.
pub fn spsc_rtt_waiting(
    rounds: u64,
    warmup: u64,
    strategy: WaitStrategy,
) -> Res<crate::bench::report::Latency> {
    let (mut tx1, mut rx1) = spsc_pair::<u64>(1024)?;
    let (mut tx2, mut rx2) = spsc_pair::<u64>(1024)?;
    rx1.set_wait_strategy(strategy);
    rx2.set_wait_strategy(strategy);
    pingpong(
        rounds,
        warmup,
        move |total| {
            let deadline = Some(Instant::now() + DEADLINE);
            for _ in 0..total {
                let v = rx1.pop_blocking(deadline).map_err(s)?;
                tx2.try_push(v).map_err(s)?;
            }
            Ok(())
        },
        move |i| {
            let deadline = Some(Instant::now() + DEADLINE);
            tx1.try_push(i).map_err(s)?;
            rx2.pop_blocking(deadline).map_err(s)
        },
    )
}

/// Round trip of a `u64` over two MPMC rings (one producer and one consumer each way).
pub fn mpmc_rtt(rounds: u64, warmup: u64) -> Res<crate::bench::report::Latency> {
    mpmc_rtt_of::<u64>(rounds, warmup, |i| i, |v| *v)
}

/// Round trip of one element of `T` over two MPMC rings (one producer and one consumer
/// each way).
pub fn mpmc_rtt_of<T: Pod>(
    rounds: u64,
    warmup: u64,
    make: fn(u64) -> T,
    seq: fn(&T) -> u64,
) -> Res<crate::bench::report::Latency> {
    use shm_queue::mpmc;
    let ring = || -> Res<mpmc::Ring<T>> {
        let region = Arc::new(
            Region::anonymous(mpmc::Ring::<T>::required_bytes(1024).map_err(s)?).map_err(s)?,
        );
        region.prefault().map_err(s)?;
        mpmc::Ring::<T>::create(region, 1024).map_err(s)
    };
    let (a, b) = (ring()?, ring()?);
    let (mut tx1, mut rx1) = (a.producer().map_err(s)?, a.consumer().map_err(s)?);
    let (mut tx2, mut rx2) = (b.producer().map_err(s)?, b.consumer().map_err(s)?);
    pingpong(
        rounds,
        warmup,
        move |total| {
            let mut patience = Patience::new();
            for _ in 0..total {
                let v = spin(&mut patience, || rx1.try_pop())?;
                spin(&mut patience, || tx2.try_push(v))?;
            }
            Ok(())
        },
        move |i| {
            let mut patience = Patience::new();
            spin(&mut patience, || tx1.try_push(make(i)))?;
            Ok(seq(&spin(&mut patience, || rx2.try_pop())?))
        },
    )
}
