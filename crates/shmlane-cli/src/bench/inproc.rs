//! In-process references: rtrb and crossbeam with two threads, and `memcpy` bandwidth.

use std::time::Instant;

use crossbeam_queue::ArrayQueue;

use crate::bench::report::Latency;
use crate::bench::run::{available_cpus, pin, unpin, yield_every, Patience, Res};

fn two_threads(
    producer: impl FnOnce() + Send,
    consumer: impl FnOnce() -> Res<()> + Send,
) -> Res<f64> {
    let t = Instant::now();
    std::thread::scope(|sc| {
        let p = sc.spawn(|| {
            pin(1);
            producer();
        });
        pin(0);
        let r = consumer();
        unpin();
        p.join()
            .map_err(|_| "producer thread panicked".to_string())?;
        r
    })?;
    Ok(t.elapsed().as_secs_f64())
}

/// rtrb, one `push`/`pop` per item: items per second.
pub fn rtrb_per_item(n: u64, capacity: usize) -> Res<f64> {
    rtrb_per_item_of::<u64>(n, capacity, |i| i, |v| *v)
}

/// rtrb with elements of `T`, one `push`/`pop` per item (`make(i)` builds element `i`,
/// `seq` reads its number back): items per second.
pub fn rtrb_per_item_of<T: Send>(
    n: u64,
    capacity: usize,
    make: fn(u64) -> T,
    seq: fn(&T) -> u64,
) -> Res<f64> {
    let (mut p, mut c) = rtrb::RingBuffer::<T>::new(capacity);
    let secs = two_threads(
        move || {
            for i in 0..n {
                let mut v = make(i);
                loop {
                    match p.push(v) {
                        Ok(()) => break,
                        Err(rtrb::PushError::Full(back)) => {
                            v = back;
                            std::hint::spin_loop();
                        }
                    }
                }
            }
        },
        move || {
            // The same loop shape as the shmlane consumer: spin, and read the clock only
            // every 2^14 empty polls (reading it on every poll would act as a back-off).
            let mut patience = Patience::new();
            let mut expect = 0;
            while expect < n {
                match c.pop().map(|v| seq(&v)) {
                    Ok(v) if v == expect => expect += 1,
                    Ok(v) => return Err(format!("rtrb gave {v}, expected {expect}")),
                    Err(_) if !patience.spin() => return Err("rtrb consumer timed out".into()),
                    Err(_) => {}
                }
            }
            Ok(())
        },
    )?;
    Ok(n as f64 / secs)
}

/// rtrb with chunks of `chunk` items on both sides: items per second.
pub fn rtrb_chunked(n: u64, capacity: usize, chunk: usize) -> Res<f64> {
    let (mut p, mut c) = rtrb::RingBuffer::<u64>::new(capacity);
    let secs = two_threads(
        move || {
            let mut next = 0u64;
            while next < n {
                let want = chunk.min((n - next) as usize);
                if let Ok(w) = p.write_chunk_uninit(want) {
                    let start = next;
                    let k = w.fill_from_iter(start..start + want as u64);
                    next += k as u64;
                } else {
                    std::hint::spin_loop();
                }
            }
        },
        move || {
            let mut patience = Patience::new();
            let mut expect = 0u64;
            while expect < n {
                let avail = c.slots().min(chunk);
                if avail == 0 {
                    if !patience.spin() {
                        return Err("rtrb consumer timed out".into());
                    }
                    continue;
                }
                let r = c.read_chunk(avail).map_err(|e| e.to_string())?;
                let (a, b) = r.as_slices();
                for v in a.iter().chain(b) {
                    if *v != expect {
                        return Err(format!("rtrb gave {v}, expected {expect}"));
                    }
                    expect += 1;
                }
                r.commit_all();
            }
            Ok(())
        },
    )?;
    Ok(n as f64 / secs)
}

/// crossbeam `ArrayQueue` with `producers` and `consumers` threads: items per second.
/// Each consumer stops at a sentinel the producers push after their items, so no shared
/// counter adds contention the queue itself does not have.
pub fn crossbeam_array_queue(
    n: u64,
    capacity: usize,
    producers: usize,
    consumers: usize,
) -> Res<f64> {
    const STOP: u64 = u64::MAX;
    let q = ArrayQueue::<u64>::new(capacity);
    let q = &q;
    let producers = producers.max(1);
    let consumers = consumers.max(1);
    let per_p = n / producers as u64;
    // The same wait loop as `rings::mpmc_rate`'s: spin, yielding after every `every`
    // failures in a row when the threads outnumber the CPUs.
    let every = yield_every(producers + consumers);
    let push = move |v: u64| {
        let mut v = v;
        let mut fails = 0u32;
        while let Err(back) = q.push(v) {
            v = back;
            fails += 1;
            if fails.is_multiple_of(every) {
                std::thread::yield_now();
            }
            std::hint::spin_loop();
        }
    };
    let t = Instant::now();
    let received = std::thread::scope(|sc| -> Res<u64> {
        let cpus = available_cpus();
        // Producer k on CPU k, consumer k on CPU k + 1 (modulo the CPUs): the placement of
        // `rings::mpmc_rate`'s processes.
        let ps: Vec<_> = (0..producers)
            .map(|k| {
                sc.spawn(move || {
                    pin(k % cpus);
                    for i in 0..per_p {
                        push(i);
                    }
                })
            })
            .collect();
        let cs: Vec<_> = (0..consumers)
            .map(|k| {
                sc.spawn(move || {
                    pin((k + 1) % cpus);
                    let mut patience = Patience::new();
                    let mut mine = 0u64;
                    let mut fails = 0u32;
                    loop {
                        match q.pop() {
                            Some(STOP) => return Ok(mine),
                            Some(_) => {
                                mine += 1;
                                fails = 0;
                            }
                            None if !patience.spin() => {
                                return Err("crossbeam consumer timed out".to_string())
                            }
                            None => {
                                fails += 1;
                                if fails.is_multiple_of(every) {
                                    std::thread::yield_now();
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        for p in ps {
            p.join().map_err(|_| "producer panicked".to_string())?;
        }
        for _ in 0..consumers {
            push(STOP);
        }
        let mut total = 0;
        for c in cs {
            total += c.join().map_err(|_| "consumer panicked".to_string())??;
        }
        Ok(total)
    })?;
    if received != per_p * producers as u64 {
        return Err(format!(
            "crossbeam delivered {received} of {}",
            per_p * producers as u64
        ));
    }
    Ok(received as f64 / t.elapsed().as_secs_f64())
}

/// crossbeam's `bounded` channel of `capacity`, one sender thread and one receiver thread,
/// `n` `u64`s with a non-blocking send/receive spin (the same loop shape as every other
/// contender): items per second.
pub fn crossbeam_bounded(n: u64, capacity: usize) -> Res<f64> {
    let (tx, rx) = crossbeam_channel::bounded::<u64>(capacity);
    let t = Instant::now();
    std::thread::scope(|sc| -> Res<()> {
        let p = sc.spawn(move || {
            pin(1);
            for i in 0..n {
                let mut v = i;
                loop {
                    match tx.try_send(v) {
                        Ok(()) => break,
                        Err(crossbeam_channel::TrySendError::Full(back)) => {
                            v = back;
                            std::hint::spin_loop();
                        }
                        Err(_) => return,
                    }
                }
            }
        });
        pin(0);
        let mut patience = Patience::new();
        let mut next = 0u64;
        while next < n {
            match rx.try_recv() {
                Ok(v) if v == next => next += 1,
                Ok(v) => return Err(format!("crossbeam channel: got {v}, expected {next}")),
                Err(_) if patience.spin() => {}
                Err(_) => return Err("crossbeam channel receiver timed out".into()),
            }
        }
        unpin();
        p.join().map_err(|_| "sender panicked".to_string())
    })?;
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

/// Single-thread `memcpy` bandwidth for `size`-byte copies, in bytes per second.
pub fn memcpy_bandwidth(size: usize, total_bytes: u64) -> f64 {
    let src = vec![0x5au8; size];
    let mut dst = vec![0u8; size];
    let iters = (total_bytes / size as u64).max(1);
    let t = Instant::now();
    for i in 0..iters {
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut dst);
        dst[0] = i as u8;
    }
    (iters * size as u64) as f64 / t.elapsed().as_secs_f64()
}

/// Round trip between two threads of one process over two rtrb rings (one each way), each
/// side spinning: the in-process reference for the SPSC round trip.
pub fn rtrb_rtt(rounds: u64, warmup: u64) -> Res<Latency> {
    let (mut tx1, mut rx1) = rtrb::RingBuffer::<u64>::new(1024);
    let (mut tx2, mut rx2) = rtrb::RingBuffer::<u64>::new(1024);
    let total = rounds + warmup;
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|e| e.to_string())?;
    std::thread::scope(|sc| -> Res<()> {
        let echo = sc.spawn(move || {
            pin(1);
            let mut patience = Patience::new();
            for _ in 0..total {
                let v = loop {
                    if let Ok(v) = rx1.pop() {
                        break v;
                    }
                    if !patience.spin() {
                        return;
                    }
                };
                while tx2.push(v).is_err() {
                    std::hint::spin_loop();
                }
            }
        });
        pin(0);
        let mut patience = Patience::new();
        let mut result = Ok(());
        for i in 0..total {
            let t = Instant::now();
            while tx1.push(i).is_err() {
                std::hint::spin_loop();
            }
            let v = loop {
                if let Ok(v) = rx2.pop() {
                    break Some(v);
                }
                if !patience.spin() {
                    break None;
                }
            };
            let ns = t.elapsed().as_nanos() as u64;
            match v {
                Some(v) if v == i => {}
                other => {
                    result = Err(format!("rtrb round {i}: got {other:?}"));
                    break;
                }
            }
            if i >= warmup {
                h.saturating_record(ns.max(1));
            }
        }
        unpin();
        echo.join()
            .map_err(|_| "echo thread panicked".to_string())?;
        result
    })?;
    Ok(Latency::from_histogram(&h))
}
