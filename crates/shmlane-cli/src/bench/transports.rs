//! The kernel and raw-memory baselines: the shared-atomic floor, pipes, Unix sockets and
//! eventfd.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use nix::sys::eventfd::{EfdFlags, EventFd};
use shm_region::Region;

use crate::bench::report::Latency;
use crate::bench::run::{pingpong, spin_until, stream, Res, DEADLINE};

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Round trip through two atomics on separate 128-byte lines of a shared mapping: the
/// floor no shared-memory IPC can beat.
pub fn floor_rtt(rounds: u64, warmup: u64) -> Res<Latency> {
    let region = Region::anonymous(4096).map_err(s)?;
    let ping: &AtomicU64 = region.atomic_u64(0).map_err(s)?;
    let pong: &AtomicU64 = region.atomic_u64(128).map_err(s)?;
    pingpong(
        rounds,
        warmup,
        |total| {
            let deadline = Instant::now() + DEADLINE;
            for i in 0..total {
                spin_until(ping, i + 1, deadline)?;
                pong.store(i + 1, Ordering::Release);
            }
            Ok(())
        },
        |i| {
            ping.store(i + 1, Ordering::Release);
            spin_until(pong, i + 1, Instant::now() + DEADLINE)?;
            Ok(i)
        },
    )
}

fn message(seq: u64, size: usize) -> Vec<u8> {
    let mut m = vec![0xabu8; size.max(8)];
    m[..8].copy_from_slice(&seq.to_le_bytes());
    m
}

fn seq_of(buf: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[..8]);
    u64::from_le_bytes(b)
}

/// Ping-pong of `size`-byte messages over two byte streams (pipes or a socket pair): each
/// side writes a whole message and reads a whole message.
fn stream_rtt<R: Read, W: Write>(
    rounds: u64,
    warmup: u64,
    size: usize,
    (mut child_r, mut child_w): (R, W),
    (mut parent_r, mut parent_w): (R, W),
) -> Res<Latency> {
    let size = size.max(8);
    let mut pbuf = vec![0u8; size];
    pingpong(
        rounds,
        warmup,
        move |total| {
            let mut buf = vec![0u8; size];
            for _ in 0..total {
                child_r.read_exact(&mut buf).map_err(s)?;
                child_w.write_all(&buf).map_err(s)?;
            }
            Ok(())
        },
        move |i| {
            parent_w.write_all(&message(i, size)).map_err(s)?;
            parent_r.read_exact(&mut pbuf).map_err(s)?;
            Ok(seq_of(&pbuf))
        },
    )
}

/// Round trip over two pipes.
pub fn pipe_rtt(rounds: u64, warmup: u64, size: usize) -> Res<Latency> {
    let (a_r, a_w) = std::io::pipe().map_err(s)?; // parent -> child
    let (b_r, b_w) = std::io::pipe().map_err(s)?; // child -> parent
    stream_rtt(rounds, warmup, size, (a_r, b_w), (b_r, a_w))
}

/// Round trip over a Unix stream socket pair.
pub fn unix_rtt(rounds: u64, warmup: u64, size: usize) -> Res<Latency> {
    let (a, b) = UnixStream::pair().map_err(s)?;
    let a2 = a.try_clone().map_err(s)?;
    let b2 = b.try_clone().map_err(s)?;
    stream_rtt(rounds, warmup, size, (b, b2), (a, a2))
}

/// Round trip through two eventfds (a kernel wake-up each way, no payload).
pub fn eventfd_rtt(rounds: u64, warmup: u64) -> Res<Latency> {
    let to_child = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC).map_err(s)?;
    let to_parent = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC).map_err(s)?;
    let (tc, tp) = (&to_child, &to_parent);
    pingpong(
        rounds,
        warmup,
        |total| {
            for _ in 0..total {
                tc.read().map_err(s)?;
                tp.write(1).map_err(s)?;
            }
            Ok(())
        },
        |i| {
            tc.write(1).map_err(s)?;
            tp.read().map_err(s)?;
            Ok(i)
        },
    )
}

/// Messages per second of `size`-byte messages through a byte stream, one `write` and one
/// `read_exact` per message.
fn stream_rate<R: Read, W: Write>(n: u64, size: usize, mut r: R, mut w: W) -> Res<f64> {
    let size = size.max(8);
    stream(
        n,
        move |n| {
            let mut m = message(0, size);
            for i in 0..n {
                m[..8].copy_from_slice(&i.to_le_bytes());
                w.write_all(&m).map_err(s)?;
            }
            Ok(())
        },
        move |n| {
            let mut buf = vec![0u8; size];
            for i in 0..n {
                r.read_exact(&mut buf).map_err(s)?;
                if seq_of(&buf) != i {
                    return Err(format!("message {i} carried {}", seq_of(&buf)));
                }
            }
            Ok(())
        },
    )
}

/// Pipe throughput in messages per second.
pub fn pipe_rate(n: u64, size: usize) -> Res<f64> {
    let (r, w) = std::io::pipe().map_err(s)?;
    stream_rate(n, size, r, w)
}

/// Unix socket throughput in messages per second.
pub fn unix_rate(n: u64, size: usize) -> Res<f64> {
    let (a, b) = UnixStream::pair().map_err(s)?;
    stream_rate(n, size, b, a)
}
