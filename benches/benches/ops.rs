//! Criterion micro benchmarks: the cost of one operation, single-threaded, with the
//! in-process rings as the baseline in the same run. `cargo bench -p shmlane-benches`.
//!
//! These measure instruction-path cost (no cross-core traffic): a push immediately followed
//! by a pop on one thread. Cross-process latency and throughput are `shmlane bench` /
//! `shmlane bench`, which reports percentiles and ratios to the floor.
#![allow(clippy::unwrap_used)] // set-up failures in a benchmark should stop it loudly

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shm_bridge::ChannelOptions;
use shm_queue::bytes;
use shm_queue::mpmc;
use shm_queue::spsc::Ring;
use shm_region::Region;

fn push_pop(c: &mut Criterion) {
    let mut g = c.benchmark_group("push+pop u64");
    g.throughput(Throughput::Elements(1));

    let region = Region::anonymous(Ring::<u64>::required_bytes(1024).unwrap()).unwrap();
    let (mut tx, mut rx) = Ring::<u64>::create(region, 1024).unwrap().split().unwrap();
    g.bench_function("shmlane spsc", |b| {
        b.iter(|| {
            tx.try_push(black_box(7)).unwrap();
            black_box(rx.try_pop().unwrap())
        })
    });

    let (mut p, mut q) = rtrb::RingBuffer::<u64>::new(1024);
    g.bench_function("rtrb", |b| {
        b.iter(|| {
            p.push(black_box(7)).unwrap();
            black_box(q.pop().unwrap())
        })
    });

    let aq = crossbeam_queue::ArrayQueue::<u64>::new(1024);
    g.bench_function("crossbeam ArrayQueue", |b| {
        b.iter(|| {
            aq.push(black_box(7)).unwrap();
            black_box(aq.pop().unwrap())
        })
    });

    let region = Region::anonymous(mpmc::Ring::<u64>::required_bytes(1024).unwrap()).unwrap();
    let ring = mpmc::Ring::<u64>::create(region, 1024).unwrap();
    let (mut mp, mut mc) = (ring.producer().unwrap(), ring.consumer().unwrap());
    g.bench_function("shmlane mpmc", |b| {
        b.iter(|| {
            mp.try_push(black_box(7)).unwrap();
            black_box(mc.try_pop().unwrap())
        })
    });

    let name = format!("bench-ops-{}", std::process::id());
    let mut ctx = ChannelOptions::new()
        .capacity(1024)
        .create::<u64>(&name)
        .unwrap();
    let mut crx = ChannelOptions::new().connect::<u64>(&name).unwrap();
    g.bench_function("shmlane channel (liveness checks included)", |b| {
        b.iter(|| {
            ctx.try_send(black_box(7)).unwrap();
            black_box(crx.try_recv().unwrap())
        })
    });
    g.finish();
}

fn chunks(c: &mut Criterion) {
    let mut g = c.benchmark_group("push+pop 256 u64 in one batch");
    g.throughput(Throughput::Elements(256));
    let src: Vec<u64> = (0..256).collect();
    let mut dst = vec![0u64; 256];

    let region = Region::anonymous(Ring::<u64>::required_bytes(1024).unwrap()).unwrap();
    let (mut tx, mut rx) = Ring::<u64>::create(region, 1024).unwrap().split().unwrap();
    g.bench_function("shmlane spsc push_partial_slice/pop_partial_slice", |b| {
        b.iter(|| {
            tx.push_partial_slice(black_box(&src)).unwrap();
            black_box(rx.pop_partial_slice(&mut dst).unwrap())
        })
    });

    let (mut p, mut q) = rtrb::RingBuffer::<u64>::new(1024);
    g.bench_function("rtrb chunks", |b| {
        b.iter(|| {
            let mut w = p.write_chunk_uninit(256).unwrap();
            let (a, bb) = w.as_mut_slices();
            for (s, d) in src.iter().zip(a.iter_mut().chain(bb.iter_mut())) {
                d.write(*s);
            }
            // SAFETY: all 256 slots were written just above.
            unsafe { w.commit_all() };
            let r = q.read_chunk(256).unwrap();
            let (a, bb) = r.as_slices();
            dst[..a.len()].copy_from_slice(a);
            dst[a.len()..].copy_from_slice(bb);
            r.commit_all();
            black_box(&dst);
        })
    });
    g.finish();
}

fn bytes(c: &mut Criterion) {
    let mut g = c.benchmark_group("byte message send+recv");
    for size in [8usize, 64, 1024, 65536] {
        g.throughput(Throughput::Bytes(size as u64));
        let cap = 1 << 20;
        let region = Region::anonymous(bytes::Ring::required_bytes(cap).unwrap()).unwrap();
        let (mut tx, mut rx) = bytes::Ring::create(region, cap, 1 << 17)
            .unwrap()
            .split()
            .unwrap();
        let msg = vec![5u8; size];
        let mut buf = vec![0u8; size];
        g.bench_function(format!("shmlane bytes {size} B copy"), |b| {
            b.iter(|| {
                tx.try_push(black_box(&msg)).unwrap();
                black_box(rx.try_pop(&mut buf).unwrap())
            })
        });
        let mut dst = vec![0u8; size];
        g.bench_function(format!("memcpy {size} B (ceiling)"), |b| {
            b.iter(|| {
                dst.copy_from_slice(black_box(&msg));
                black_box(&dst);
            })
        });
    }
    g.finish();
}

fn stamp(c: &mut Criterion) {
    let mut g = c.benchmark_group("stamp (example message format)");
    let mut m = vec![0u8; 64];
    g.bench_function("write+check 64 B", |b| {
        b.iter(|| {
            shmlane_cli::stamp::write(&mut m, black_box(1), 2).unwrap();
            black_box(shmlane_cli::stamp::check(&m).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, push_pop, chunks, bytes, stamp);
criterion_main!(benches);
