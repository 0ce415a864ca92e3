//! Drivers for the hostile-peer property, shared by the fuzz targets (`fuzz/`) and the
//! proptest suite (`tests/proptest_hostile.rs`): a ring in an anonymous region whose bytes
//! an input script overwrites at will (header, indices, block words, record lengths)
//! between calls of every producer and consumer method, and re-attaches.
//!
//! The property: whatever the script does, every call returns (an error or data) without
//! panicking, hanging, or touching memory outside the region. The drivers only call the
//! public API; a panic or a crash is the finding. Blocking calls get a deadline that has
//! already passed, so a wait can only be as long as one check.
//!
//! Script format: a stream of commands. Command byte `c`: `c % 8 == 0` is a patch (the next
//! two bytes, little-endian, are an offset modulo the region length; the next eight bytes
//! are written there, clipped to the region); `c % 8 == 1` re-attaches and re-takes the
//! handles; anything else selects an operation, with the next byte as its argument.

use std::sync::Arc;
use std::time::Instant;

use shm_region::Region;

use crate::spsc::Ring;

/// Reads the script.
struct Script<'a> {
    data: &'a [u8],
    at: usize,
}

/// One step of a script, for a driver.
enum Step {
    /// Re-attach and re-take the handles.
    Reattach,
    /// Operation selector (2..8) and its argument byte.
    Op(u8, u8),
}

impl Script<'_> {
    /// Runs the script: patches are applied here, the other commands go to `step`.
    fn run(&mut self, region: &Region, mut step: impl FnMut(Step)) {
        while let Some(c) = self.byte() {
            let arg = self.byte().unwrap_or(0);
            match c % 8 {
                0 => self.patch(region),
                1 => step(Step::Reattach),
                op => step(Step::Op(op, arg)),
            }
        }
    }

    fn byte(&mut self) -> Option<u8> {
        let b = *self.data.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    /// Applies a patch command's operands to `region`.
    fn patch(&mut self, region: &Region) {
        let (Some(lo), Some(hi)) = (self.byte(), self.byte()) else {
            return;
        };
        let offset = usize::from(u16::from_le_bytes([lo, hi])) % region.len();
        let end = (self.at + 8).min(self.data.len());
        let value = &self.data[self.at..end];
        self.at = end;
        let n = value.len().min(region.len() - offset);
        let _ = region.write_at(offset, &value[..n]);
    }
}

fn region(len: usize) -> Option<Arc<Region>> {
    Region::anonymous(len).ok().map(Arc::new)
}

/// Typed SPSC ring of `u64`, capacity 16.
pub fn spsc(data: &[u8]) {
    let Some(len) = Ring::<u64>::required_bytes(16).ok() else {
        return;
    };
    let Some(region) = region(len) else { return };
    let Ok(ring) = Ring::<u64>::create(region.clone(), 16) else {
        return;
    };
    let mut handles = ring.split().ok();
    let mut s = Script { data, at: 0 };
    let mut buf = [0u64; 40];
    s.run(&region, |step| match step {
        Step::Reattach => {
            drop(handles.take()); // release the claims first
            handles = Ring::<u64>::attach(region.clone())
                .and_then(|r| r.split())
                .ok();
        }
        Step::Op(op, arg) => {
            let Some((tx, rx)) = handles.as_mut() else {
                return;
            };
            let n = usize::from(arg % 40);
            let past = Some(Instant::now());
            let _ = match op {
                2 => tx.try_push(u64::from(arg)).map(drop).map_err(drop),
                3 => rx.try_pop().map(drop).map_err(drop),
                4 => tx.push_partial_slice(&buf[..n]).map(drop).map_err(drop),
                5 => rx.pop_partial_slice(&mut buf[..n]).map(drop).map_err(drop),
                6 => match tx.write_chunk_up_to(n) {
                    Ok(mut ch) => {
                        let k = ch.len();
                        for i in 0..k {
                            let _ = ch.set(i, i as u64);
                        }
                        ch.commit(k / 2 + usize::from(arg & 1)).map_err(drop)
                    }
                    Err(_) => Err(()),
                },
                _ => match arg % 5 {
                    0 => rx.peek().map(drop).map_err(drop),
                    1 => rx.pop_blocking(past).map(drop).map_err(drop),
                    2 => tx.push_blocking(1, past).map_err(drop),
                    3 => match rx.read_chunk_up_to(n) {
                        Ok(ch) => {
                            let _ = ch.iter().count();
                            let _ = ch.get(n);
                            ch.commit(n / 2).map_err(drop)
                        }
                        Err(_) => Err(()),
                    },
                    _ => {
                        let _ = (tx.len(), rx.len(), rx.is_empty(), tx.is_full());
                        Ok(())
                    }
                },
            };
        }
    });
}

/// Byte-message ring, 1 KiB of data, messages up to 200 bytes.
pub fn bytes(data: &[u8]) {
    let Some(len) = crate::bytes::Ring::required_bytes(1024).ok() else {
        return;
    };
    let Some(region) = region(len) else { return };
    let opts = crate::bytes::Options::new(1024).max_message(200);
    let Ok(ring) = crate::bytes::Ring::create_with(region.clone(), opts) else {
        return;
    };
    let mut handles = ring.split().ok();
    let mut s = Script { data, at: 0 };
    let mut buf = vec![0u8; 256];
    let mut vec = Vec::new();
    s.run(&region, |step| match step {
        Step::Reattach => {
            drop(handles.take());
            handles = crate::bytes::Ring::attach(region.clone())
                .and_then(|r| r.split())
                .ok();
        }
        Step::Op(op, arg) => {
            let Some((tx, rx)) = handles.as_mut() else {
                return;
            };
            let n = usize::from(arg);
            let past = Some(Instant::now());
            let _ = match op {
                2 => tx.try_push(&buf[..n.min(buf.len())]).map_err(drop),
                3 => rx.try_pop(&mut buf[..n]).map(drop).map_err(drop),
                4 => match tx.claim(n) {
                    Ok(mut cl) => {
                        let _ = cl.write_at(0, &[7; 16][..n.min(16)]);
                        match arg % 3 {
                            0 => {
                                cl.commit();
                                Ok(())
                            }
                            1 => cl.commit_len(n / 2).map_err(drop),
                            _ => {
                                cl.abort();
                                Ok(())
                            }
                        }
                    }
                    Err(_) => Err(()),
                },
                5 => match rx.read() {
                    Ok(g) => {
                        let _ = g.read_at(n, &mut buf[..8]);
                        let _ = g.to_vec();
                        Ok(())
                    }
                    Err(_) => Err(()),
                },
                6 => rx.try_pop_vec(&mut vec).map(drop).map_err(drop),
                _ => match arg % 4 {
                    0 => rx.pop_blocking(&mut buf, past).map(drop).map_err(drop),
                    1 => tx.push_blocking(b"x", past).map_err(drop),
                    2 => rx.wait_for_message(past).map_err(drop),
                    _ => {
                        let _ = (tx.used_bytes(), rx.position(), rx.has_message());
                        Ok(())
                    }
                },
            };
        }
    });
}

/// MPMC ring of `u64`, capacity 16, 4 owner entries, two producers and two consumers.
pub fn mpmc(data: &[u8]) {
    let opts = crate::mpmc::Options::new(16).owners(4);
    let Some(len) = crate::mpmc::Ring::<u64>::required_bytes_with(opts).ok() else {
        return;
    };
    let Some(region) = region(len) else { return };
    let Ok(ring) = crate::mpmc::Ring::<u64>::create_with(region.clone(), opts) else {
        return;
    };
    let take = |r: &crate::mpmc::Ring<u64>| {
        Some((
            r.producer().ok()?,
            r.producer().ok()?,
            r.consumer().ok()?,
            r.consumer().ok()?,
        ))
    };
    let mut handles = take(&ring);
    let mut s = Script { data, at: 0 };
    let mut buf = [0u64; 20];
    s.run(&region, |step| match step {
        Step::Reattach => {
            drop(handles.take());
            handles = crate::mpmc::Ring::<u64>::attach(region.clone())
                .ok()
                .and_then(|r| take(&r));
        }
        Step::Op(op, arg) => {
            let Some((p1, p2, c1, c2)) = handles.as_mut() else {
                return;
            };
            let (p, c) = if arg & 1 == 0 { (p1, c1) } else { (p2, c2) };
            let n = usize::from(arg % 20);
            let past = Some(Instant::now());
            let _ = match op {
                2 => p.try_push(u64::from(arg)).map_err(drop),
                3 => c.try_pop().map(drop).map_err(drop),
                4 => p.push_partial_slice(&buf[..n]).map(drop).map_err(drop),
                5 => c.pop_partial_slice(&mut buf[..n]).map(drop).map_err(drop),
                6 => p.push_blocking(3, past).map_err(drop),
                _ => match arg % 3 {
                    0 => c.pop_blocking(past).map(drop).map_err(drop),
                    1 => p.claim_and_hold(9).map(drop).map_err(drop),
                    _ => c.claim_and_hold().map(drop).map_err(drop),
                },
            };
        }
    });
}

/// The broadcast ring's delivery mode for a script: its first byte picks one.
fn broadcast_mode(data: &[u8]) -> crate::broadcast::Mode {
    use crate::broadcast::{Mode, SlowPolicy};
    match data.first().map_or(0, |b| b % 3) {
        0 => Mode::Lossless(SlowPolicy::Wait),
        1 => Mode::Lossless(SlowPolicy::Evict {
            after: std::time::Duration::ZERO,
        }),
        _ => Mode::Lossy,
    }
}

/// The calls that read a broadcast ring without a handle, and the ring-level recovery,
/// with a liveness answer taken from `arg`.
fn broadcast_ring_calls<T: crate::Element>(
    ring: &crate::broadcast::Ring<T>,
    region: &Region,
    arg: u8,
) {
    let _ = crate::broadcast::inspect(region, region.len() as u64);
    let _ = (ring.stats(), ring.subscribers(), ring.publisher_holder());
    let _ = ring.reclaim_dead_subscribers(&|token: u64| token % 3 == u64::from(arg % 3));
}

/// A broadcast driver's handles: the publisher, a subscriber from the newest element and
/// one with history.
#[allow(clippy::type_complexity)]
fn broadcast_handles<T: crate::Element>(
    r: &crate::broadcast::Ring<T>,
) -> Option<(
    crate::broadcast::Publisher<T>,
    crate::broadcast::Subscriber<T>,
    crate::broadcast::Subscriber<T>,
)> {
    use crate::broadcast::Start;
    Some((
        r.publisher().ok()?,
        r.subscriber(Start::Newest).ok()?,
        r.subscriber(Start::History(8)).ok()?,
    ))
}

/// Broadcast ring of `u64`, capacity 16, 3 subscriber entries: a publisher and two
/// subscribers (the first script byte picks the mode).
pub fn broadcast(data: &[u8]) {
    use crate::broadcast::{Options, Ring, Start};
    let opts = Options::new(16).subscribers(3).mode(broadcast_mode(data));
    let Some(len) = Ring::<u64>::required_bytes_with(&opts).ok() else {
        return;
    };
    let Some(region) = region(len) else { return };
    let Ok(ring) = Ring::<u64>::create_with(region.clone(), opts) else {
        return;
    };
    let mut ring = Some(ring);
    let mut handles = ring.as_ref().and_then(broadcast_handles);
    let mut s = Script { data, at: 0 };
    let mut buf = [0u64; 20];
    s.run(&region, |step| match step {
        Step::Reattach => {
            drop(handles.take());
            ring = Ring::<u64>::attach(region.clone()).ok();
            handles = ring.as_ref().and_then(broadcast_handles);
        }
        Step::Op(op, arg) => {
            let (Some(r), Some((tx, a, b))) = (ring.as_ref(), handles.as_mut()) else {
                return;
            };
            let rx = if arg & 1 == 0 { a } else { b };
            let n = usize::from(arg % 20);
            let past = Some(Instant::now());
            let _ = match op {
                2 => tx.try_push(u64::from(arg)).map_err(drop),
                3 => rx.try_recv().map(drop).map_err(drop),
                4 => tx.push_partial_slice(&buf[..n]).map(drop).map_err(drop),
                5 => rx.recv_partial_slice(&mut buf[..n]).map(drop).map_err(drop),
                6 => tx.push_blocking(3, past).map_err(drop),
                _ => match arg % 4 {
                    0 => rx.recv_blocking(past).map(drop).map_err(drop),
                    1 => {
                        broadcast_ring_calls(r, &region, arg);
                        Ok(())
                    }
                    2 => {
                        let _ = (rx.lag(), rx.is_empty(), tx.gated_by(), rx.position());
                        Ok(())
                    }
                    _ => match r.subscriber(Start::History(usize::from(arg))) {
                        Ok(new) => {
                            *rx = new;
                            Ok(())
                        }
                        Err(_) => Err(()),
                    },
                },
            };
        }
    });
}

/// Broadcast ring of byte messages up to 24 bytes, capacity 16, 3 subscriber entries: a
/// publisher and two subscribers reading by copy and in place (the first script byte picks
/// the mode).
pub fn broadcast_messages(data: &[u8]) {
    use crate::broadcast::{message_type, Options, Ring};
    use crate::Raw;
    let opts = Options::new(16).subscribers(3).mode(broadcast_mode(data));
    let Ok(ty) = message_type(24) else { return };
    let Some(len) = Ring::<Raw>::required_bytes_as(&ty, &opts).ok() else {
        return;
    };
    let Some(region) = region(len) else { return };
    let Ok(ring) = Ring::<Raw>::create_as(region.clone(), &ty, opts) else {
        return;
    };
    let mut ring = Some(ring);
    let mut handles = ring.as_ref().and_then(broadcast_handles);
    let mut s = Script { data, at: 0 };
    let mut buf = [0u8; 40];
    s.run(&region, |step| match step {
        Step::Reattach => {
            drop(handles.take());
            ring = Ring::<Raw>::attach_as(region.clone(), &ty).ok();
            handles = ring.as_ref().and_then(broadcast_handles);
        }
        Step::Op(op, arg) => {
            let (Some(r), Some((tx, a, b))) = (ring.as_ref(), handles.as_mut()) else {
                return;
            };
            let rx = if arg & 1 == 0 { a } else { b };
            let n = usize::from(arg % 40);
            let past = Some(Instant::now());
            let _ = match op {
                2 => tx.try_send_message(&buf[..n]).map_err(drop),
                3 => rx.try_recv_message(&mut buf[..n]).map(drop).map_err(drop),
                4 => match rx.try_read_message() {
                    Ok(g) => {
                        let mut d = [0u8; 8];
                        let _ = (g.len(), g.to_vec(), g.read_at(n % 30, &mut d));
                        if arg & 2 == 0 {
                            g.release().map_err(drop)
                        } else {
                            drop(g);
                            Ok(())
                        }
                    }
                    Err(_) => Err(()),
                },
                5 => tx.send_message_blocking(&buf[..n], past).map_err(drop),
                6 => rx
                    .recv_message_blocking(&mut buf, past)
                    .map(drop)
                    .map_err(drop),
                _ => match arg % 3 {
                    0 => rx.wait_for_message(past).map_err(drop),
                    1 => {
                        broadcast_ring_calls(r, &region, arg);
                        Ok(())
                    }
                    _ => tx
                        .push_partial_bytes(&buf[..n - n % 32])
                        .map(drop)
                        .map_err(drop),
                },
            };
        }
    });
}
