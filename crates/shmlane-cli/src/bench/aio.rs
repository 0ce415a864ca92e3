//! The async ends (issue 17) beside tokio's own transports and the blocking ends, in the
//! same run: round trip against a tokio `UnixStream` in the same runtime configuration
//! (current-thread runtimes on both sides), throughput against the blocking `recv`, and
//! against tokio's in-process `mpsc` between two tasks.
//!
//! Every measurement runs in a forked child of its own (`isolated`): async ends start a
//! waiting thread and channels the liveness thread, and the rest of the suite forks from a
//! single-threaded process.

use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use shm_bridge::aio::AsyncWait;
use shm_bridge::{ChannelOptions, WaitStrategy};
use shm_region::Region;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::{Builder, Runtime};

use crate::bench::report::Latency;
use crate::bench::run::{two_processes, Res, DEADLINE};

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn runtime() -> Res<Runtime> {
    Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(s)
}

/// A channel name no other run uses.
fn fresh(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "bench-aio-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `f` in a forked child and returns the `K` numbers it produced (through a shared
/// page), so this process stays single-threaded.
fn isolated<const K: usize>(f: impl FnOnce() -> Res<[f64; K]>) -> Res<[f64; K]> {
    let page = Region::anonymous(4096).map_err(s)?;
    let words: Vec<&AtomicU64> = (0..K)
        .map(|i| page.atomic_u64(8 * i))
        .collect::<Result<_, _>>()
        .map_err(s)?;
    let child = shm_bridge::fork::fork_child(|| match f() {
        Ok(v) => {
            for (w, x) in words.iter().zip(v) {
                w.store(x.to_bits(), Ordering::Release);
            }
            0
        }
        Err(e) => {
            let msg = &e.as_bytes()[..e.len().min(2048)];
            let _ = page.write_at(2048, msg);
            1
        }
    })
    .map_err(s)?;
    child.wait_timeout(DEADLINE * 2).map_err(|e| {
        let mut buf = vec![0u8; 2048];
        let _ = page.read_at(2048, &mut buf);
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        format!("{e}: {}", String::from_utf8_lossy(&buf[..end]))
    })?;
    let mut out = [0.0; K];
    for (o, w) in out.iter_mut().zip(&words) {
        *o = f64::from_bits(w.load(Ordering::Acquire));
    }
    Ok(out)
}

fn to_array(l: Latency) -> [f64; 5] {
    [l.p50, l.p99, l.p999, l.max, l.mean]
}

fn from_array(a: [f64; 5]) -> Latency {
    Latency {
        p50: a[0],
        p99: a[1],
        p999: a[2],
        max: a[3],
        mean: a[4],
    }
}

fn histogram() -> Res<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).map_err(s)
}

/// Round trip of 8 bytes over a tokio `UnixStream` pair, both sides in current-thread
/// runtimes.
pub fn unix_stream_rtt(rounds: u64, warmup: u64) -> Res<Latency> {
    isolated(|| {
        let (a, b) = StdUnixStream::pair().map_err(s)?;
        a.set_nonblocking(true).map_err(s)?;
        b.set_nonblocking(true).map_err(s)?;
        let total = rounds + warmup;
        two_processes(
            move |_| {
                runtime()?.block_on(async move {
                    let mut st = tokio::net::UnixStream::from_std(b).map_err(s)?;
                    let mut buf = [0u8; 8];
                    for _ in 0..total {
                        st.read_exact(&mut buf).await.map_err(s)?;
                        st.write_all(&buf).await.map_err(s)?;
                    }
                    Ok(())
                })
            },
            move |_| {
                runtime()?.block_on(async move {
                    let mut st = tokio::net::UnixStream::from_std(a).map_err(s)?;
                    let mut h = histogram()?;
                    let mut buf = [0u8; 8];
                    for i in 0..total {
                        let t = Instant::now();
                        st.write_all(&i.to_le_bytes()).await.map_err(s)?;
                        st.read_exact(&mut buf).await.map_err(s)?;
                        let ns = t.elapsed().as_nanos() as u64;
                        if u64::from_le_bytes(buf) != i {
                            return Err(format!("round {i}: a wrong echo"));
                        }
                        if i >= warmup {
                            h.saturating_record(ns.max(1));
                        }
                    }
                    Ok(to_array(Latency::from_histogram(&h)))
                })
            },
        )
    })
    .map(from_array)
}

/// Round trip of a `u64` over two typed channels with async ends on both sides (current-
/// thread runtimes), each end waiting as `wait` says.
pub fn shmlane_async_rtt(rounds: u64, warmup: u64, wait: AsyncWait) -> Res<Latency> {
    isolated(|| {
        let (ping, pong) = (fresh("ping"), fresh("pong"));
        let total = rounds + warmup;
        let opts = || {
            ChannelOptions::new()
                .capacity(64)
                .wait_strategy(WaitStrategy::blocking())
                .timeout(Duration::from_secs(10))
        };
        let (ping2, pong2) = (ping.clone(), pong.clone());
        two_processes(
            move |_| {
                runtime()?.block_on(async move {
                    let mut rx = opts().connect::<u64>(&ping2).map_err(s)?.into_async();
                    let mut tx = opts().create::<u64>(&pong2).map_err(s)?.into_async();
                    rx.set_wait(wait);
                    tx.set_wait(wait);
                    for _ in 0..total {
                        let v = rx.recv().await.map_err(s)?;
                        tx.send(v).await.map_err(s)?;
                    }
                    Ok(())
                })
            },
            move |_| {
                runtime()?.block_on(async move {
                    let mut tx = opts().create::<u64>(&ping).map_err(s)?.into_async();
                    let mut rx = opts().connect::<u64>(&pong).map_err(s)?.into_async();
                    rx.set_wait(wait);
                    tx.set_wait(wait);
                    let mut h = histogram()?;
                    for i in 0..total {
                        let t = Instant::now();
                        tx.send(i).await.map_err(s)?;
                        let v = rx.recv().await.map_err(s)?;
                        let ns = t.elapsed().as_nanos() as u64;
                        if v != i {
                            return Err(format!("round {i}: the echo carried {v}"));
                        }
                        if i >= warmup {
                            h.saturating_record(ns.max(1));
                        }
                    }
                    // Hold both ends until the child has its last echo sent.
                    let _ = rx.recv().await;
                    Ok(to_array(Latency::from_histogram(&h)))
                })
            },
        )
    })
    .map(from_array)
}

/// Streams `n` `u64`s from a child's blocking sender to this process's receiver, blocking
/// (`recv` with a sleeping strategy) or async (`recv().await` on a current-thread runtime);
/// messages per second from the first message received to the last.
pub fn shmlane_stream(n: u64, cap: usize, receive_async: bool) -> Res<f64> {
    isolated(|| {
        let name = fresh("tput");
        let opts = move || {
            ChannelOptions::new()
                .capacity(cap)
                .wait_strategy(WaitStrategy::blocking())
                .timeout(Duration::from_secs(10))
        };
        let name2 = name.clone();
        two_processes(
            move |_| {
                let mut tx = opts().create::<u64>(&name2).map_err(s)?;
                tx.wait_for_peer(Duration::from_secs(10)).map_err(s)?;
                for i in 0..n {
                    tx.send(i).map_err(s)?;
                }
                Ok(())
            },
            move |_| {
                let rate = if receive_async {
                    runtime()?.block_on(async move {
                        let mut rx = opts().connect::<u64>(&name).map_err(s)?.into_async();
                        rx.recv().await.map_err(s)?;
                        let t = Instant::now();
                        for i in 1..n {
                            let v = rx.recv().await.map_err(s)?;
                            if v != i {
                                return Err(format!("expected {i}, got {v}"));
                            }
                        }
                        Ok((n - 1) as f64 / t.elapsed().as_secs_f64())
                    })?
                } else {
                    let mut rx = opts().connect::<u64>(&name).map_err(s)?;
                    rx.recv().map_err(s)?;
                    let t = Instant::now();
                    for i in 1..n {
                        let v = rx.recv().map_err(s)?;
                        if v != i {
                            return Err(format!("expected {i}, got {v}"));
                        }
                    }
                    (n - 1) as f64 / t.elapsed().as_secs_f64()
                };
                Ok([rate])
            },
        )
    })
    .map(|[r]| r)
}

/// `n` `u64`s between two tasks of one process over tokio's bounded `mpsc` (capacity
/// `cap`), on a two-worker multi-thread runtime.
pub fn tokio_mpsc(n: u64, cap: usize) -> Res<f64> {
    isolated(|| {
        let rt = Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .map_err(s)?;
        let rate = rt.block_on(async move {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(cap);
            let producer = tokio::spawn(async move {
                for i in 0..n {
                    if tx.send(i).await.is_err() {
                        return;
                    }
                }
            });
            rx.recv().await.ok_or("closed early")?;
            let t = Instant::now();
            for i in 1..n {
                let v = rx.recv().await.ok_or("closed early")?;
                if v != i {
                    return Err(format!("expected {i}, got {v}"));
                }
            }
            let rate = (n - 1) as f64 / t.elapsed().as_secs_f64();
            producer.await.map_err(s)?;
            Ok(rate)
        })?;
        rt.shutdown_timeout(Duration::from_secs(5));
        Ok([rate])
    })
    .map(|[r]| r)
}
