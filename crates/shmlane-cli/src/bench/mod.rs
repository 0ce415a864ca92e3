//! The cross-process benchmark suite behind `shmlane bench`.
//!
//! Every figure is measured next to its baseline in the same run and reported as a ratio,
//! because absolute times on a shared machine drift. Latency comes from ping-pong between a
//! parent and a `fork()`ed child pinned to different cores, one sample per round trip, in
//! an HDR histogram (p50, p99, p99.9, max, mean). Throughput streams a fixed number of
//! messages from a child producer to the parent consumer. Every contender waits with the
//! same loop and gets the same warm-up. Nothing here prints: [`suite`] returns a
//! [`report::Report`] that renders as a table or as JSON lines.
//!
//! The `fork()`-based runs need a single-threaded process: call [`suite`] before starting
//! threads (the `shmlane` binary does).

pub mod aio;
pub mod broadcast;
#[cfg(feature = "iceoryx2")]
pub mod iceoryx;
pub mod inproc;
pub mod report;
pub mod rings;
pub mod run;
pub mod scale;
pub mod transports;

use std::time::Duration;

use shm_queue::wait::WaitStrategy;

use report::{Better, Report};
use run::{median_of, median_pair, Res};

/// Which part of the suite to run, and how long.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Fewer samples: the whole suite in well under 15 seconds.
    pub quick: bool,
    /// Only `latency`, `throughput` or `scale` (`None`: all three).
    pub only: Option<String>,
    /// A hundredth of the quick sample counts: figures too noisy to read, for tests that
    /// check the suite runs and its output is well formed.
    pub smoke: bool,
}

impl Options {
    /// Divisor applied to the sample counts.
    fn scale(&self) -> u64 {
        if self.smoke {
            100
        } else {
            1
        }
    }
}

/// Runs the suite. Returns every figure measured, and the first error if one stopped it
/// early (the figures before it are still valid).
pub fn suite(o: &Options) -> (Report, Result<(), String>) {
    let mut r = Report::new();
    let want = |g: &str| o.only.as_deref().is_none_or(|x| x == g);
    let result = (|| -> Res<()> {
        if let Some(x) = o
            .only
            .as_deref()
            .filter(|x| !["latency", "throughput", "async", "broadcast", "scale"].contains(x))
        {
            return Err(format!(
                "unknown part `{x}`: use latency, throughput, async, broadcast or scale"
            ));
        }
        if want("latency") {
            latency(&mut r, o.quick || o.smoke, o.scale())?;
        }
        if want("throughput") {
            throughput(&mut r, o.quick || o.smoke, o.scale())?;
        }
        if want("async") {
            asynchronous(&mut r, o.quick || o.smoke, o.scale())?;
        }
        if want("broadcast") {
            fan_out(&mut r, o.quick || o.smoke, o.scale())?;
        }
        // Last: it leaves the process single-threaded only once its channels are closed.
        if want("scale") {
            let (counts, listed, window, rounds): (&[usize], _, _, _) = if o.smoke {
                (&[10], 10, Duration::from_millis(50), 1_000)
            } else if o.quick {
                (&[10, 100, 1_000], 2_000, Duration::from_millis(500), 20_000)
            } else {
                (&[10, 100, 1_000], 2_000, Duration::from_secs(2), 100_000)
            };
            scale::scale(&mut r, counts, listed, window, rounds)?;
        }
        Ok(())
    })();
    (r, result)
}

/// A 1 KiB element carrying round or sequence number `i` in its first word.
pub fn kib(i: u64) -> [u64; 128] {
    let mut a = [0u64; 128];
    a[0] = i;
    a
}

/// A 64-byte element carrying sequence number `i` in its first word.
pub fn line(i: u64) -> [u64; 8] {
    let mut a = [0u64; 8];
    a[0] = i;
    a
}

/// `8B` or `1KiB`, as the figure names spell sizes.
fn size_label(size: usize) -> String {
    if size >= 1024 {
        format!("{}KiB", size / 1024)
    } else {
        format!("{size}B")
    }
}

fn latency(r: &mut Report, quick: bool, scale: u64) -> Res<()> {
    let (rounds, warmup) = if quick {
        (20_000, 2_000)
    } else {
        (100_000, 10_000)
    };
    let (rounds, warmup) = (rounds / scale, warmup / scale);
    let slow = rounds / 10;
    r.latency(
        "rtt/floor-atomics",
        transports::floor_rtt(rounds, warmup)?,
        None,
    );
    r.latency(
        "rtt/rtrb-inproc/8B",
        inproc::rtrb_rtt(rounds, warmup)?,
        Some("rtt/floor-atomics"),
    );
    rings::spsc_rtt(r, rounds, warmup, "rtt/floor-atomics")?;
    rings::bytes_rtt(r, rounds / 2, warmup / 2, "rtt/floor-atomics")?;
    for size in [8usize, 1024] {
        r.latency(
            &format!("rtt/pipe/{size}B"),
            transports::pipe_rtt(slow, warmup / 10, size)?,
            None,
        );
        r.latency(
            &format!("rtt/unix-socket/{size}B"),
            transports::unix_rtt(slow, warmup / 10, size)?,
            Some(&format!("rtt/pipe/{size}B")),
        );
    }
    r.latency(
        "rtt/eventfd",
        transports::eventfd_rtt(slow, warmup / 10)?,
        Some("rtt/pipe/8B"),
    );
    // The peer, with shmlane's SPSC round trip as its baseline: the target is a ratio of
    // 4x or more (shmlane at most a quarter of iceoryx2's round trip).
    #[cfg(feature = "iceoryx2")]
    r.latency(
        "rtt/iceoryx2-pubsub/8B",
        iceoryx::rtt(rounds, warmup)?,
        Some("rtt/shmlane-spsc/8B"),
    );
    r.latency(
        "rtt/shmlane-mpmc/8B",
        rings::mpmc_rtt(rounds, warmup)?,
        Some("rtt/floor-atomics"),
    );
    r.latency(
        "rtt/shmlane-mpmc/1KiB",
        rings::mpmc_rtt_of::<[u64; 128]>(rounds / 2, warmup / 2, kib, |a| a[0])?,
        Some("rtt/floor-atomics"),
    );
    for (name, strategy) in [
        ("busyspin", WaitStrategy::BusySpin),
        ("spin-then-yield", WaitStrategy::spin_then_yield()),
        ("blocking", WaitStrategy::blocking()),
    ] {
        r.latency(
            &format!("rtt/shmlane-spsc-wait-{name}/8B"),
            rings::spsc_rtt_waiting(rounds / 2, warmup / 2, strategy)?,
            Some("rtt/floor-atomics"),
        );
    }
    // The byte ring under each wait strategy, at both sizes (a running partner: nobody
    // sleeps, so this is what each strategy costs a busy stream).
    for (name, strategy) in [
        ("busyspin", WaitStrategy::BusySpin),
        ("spin-then-yield", WaitStrategy::spin_then_yield()),
        ("blocking", WaitStrategy::blocking()),
    ] {
        for size in [8usize, 1024] {
            r.latency(
                &format!("rtt/shmlane-bytes-wait-{name}/{}", size_label(size)),
                rings::bytes_rtt_waiting(rounds / 4, warmup / 4, size, strategy)?,
                Some("rtt/floor-atomics"),
            );
        }
    }
    let l = rings::bytes_rtt_blocking(slow, warmup / 10, WaitStrategy::blocking())?;
    r.latency("rtt/shmlane-bytes-blocking/8B", l, Some("rtt/eventfd"));
    let sleep_at_once = WaitStrategy::Blocking {
        spins: 0,
        yields: 0,
    };
    let l = rings::bytes_rtt_blocking(slow, warmup / 10, sleep_at_once)?;
    r.latency("rtt/shmlane-bytes-sleeping/8B", l, Some("rtt/eventfd"));
    Ok(())
}

/// Broadcast (issue 16): fan-out to 1, 2 and 3 subscriber processes against one producer
/// writing the same messages into as many SPSC rings, single and batched; the publisher's
/// round trip to one subscriber against the SPSC round trip.
fn fan_out(r: &mut Report, quick: bool, scale: u64) -> Res<()> {
    let n: u64 = if quick { 2_000_000 } else { 10_000_000 } / scale;
    let runs = if quick { 1 } else { 3 };
    let cap = 4096;
    for subs in [1usize, 2, 3] {
        for (batch, tag) in [(false, "item"), (true, "batch64")] {
            let base = format!("tput/spsc-x{subs}/u64/{tag}/yield");
            let name = format!("tput/shmlane-broadcast-N{subs}/u64/{tag}/yield");
            paired_rates(
                r,
                runs,
                (&base, || broadcast::spsc_fan_out_rate(n, cap, subs, batch)),
                (&name, || broadcast::broadcast_rate(n, cap, subs, batch)),
            )?;
        }
    }
    // The peer: iceoryx2's lossless publish/subscribe with the same N, alternated with
    // shmlane's broadcast (target: 4x iceoryx2's rate).
    #[cfg(feature = "iceoryx2")]
    for subs in [1usize, 2, 3] {
        let base = format!("tput/iceoryx2-pubsub-N{subs}/u64/item/yield");
        let name = format!("tput/shmlane-broadcast-N{subs}/u64/item/vs-iceoryx2");
        paired_rates(
            r,
            runs,
            (&base, || iceoryx::fan_out_rate(n / 4, cap, subs)),
            (&name, || broadcast::broadcast_rate(n / 4, cap, subs, false)),
        )?;
    }
    // 1 KiB messages, one at a time: where the writer's copies (N of them into N rings)
    // weigh more.
    let n_kib = n / 20;
    for subs in [2usize, 3] {
        let base = format!("tput/spsc-x{subs}/1KiB/item/yield");
        let name = format!("tput/shmlane-broadcast-N{subs}/1KiB/item/yield");
        paired_rates(
            r,
            runs,
            (&base, || {
                broadcast::spsc_fan_out_rate_of(n_kib, 1024, subs, false, kib, |a| a[0])
            }),
            (&name, || {
                broadcast::broadcast_rate_of(n_kib, 1024, subs, false, kib, |a| a[0])
            }),
        )?;
    }
    let (rounds, warmup) = if quick {
        (20_000, 2_000)
    } else {
        (100_000, 10_000)
    };
    let (rounds, warmup) = (rounds / scale, warmup / scale);
    let spsc = "rtt/shmlane-spsc/8B";
    if r.value(&format!("{spsc}/p50")).is_none() {
        r.latency(
            spsc,
            rings::spsc_rtt_of::<u64>(rounds, warmup, |i| i, |v| *v)?,
            None,
        );
    }
    r.latency(
        "rtt/shmlane-broadcast-N1/8B",
        broadcast::broadcast_rtt(rounds, warmup)?,
        Some(spsc),
    );
    // iceoryx2's publish/subscribe round trip against the broadcast one (target: 4x, that
    // is shmlane at most a quarter of iceoryx2's).
    #[cfg(feature = "iceoryx2")]
    r.latency(
        "rtt/iceoryx2-pubsub-vs-broadcast/8B",
        iceoryx::rtt(rounds, warmup)?,
        Some("rtt/shmlane-broadcast-N1/8B"),
    );
    Ok(())
}

/// The async ends (issue 17): round trip against tokio's `UnixStream`, throughput against
/// the blocking receive and against tokio's in-process `mpsc`.
fn asynchronous(r: &mut Report, quick: bool, scale: u64) -> Res<()> {
    let (rounds, warmup) = if quick {
        (20_000, 2_000)
    } else {
        (100_000, 10_000)
    };
    let (rounds, warmup) = (rounds / scale, warmup / scale);
    let unix = "rtt/tokio-unix-stream/8B";
    r.latency(unix, aio::unix_stream_rtt(rounds / 4, warmup / 4)?, None);
    r.latency(
        "rtt/shmlane-async/8B",
        aio::shmlane_async_rtt(rounds, warmup, shm_bridge::aio::AsyncWait::default())?,
        Some(unix),
    );
    r.latency(
        "rtt/shmlane-async-park-at-once/8B",
        aio::shmlane_async_rtt(
            rounds / 4,
            warmup / 4,
            shm_bridge::aio::AsyncWait::park_at_once(),
        )?,
        Some(unix),
    );
    let n: u64 = if quick { 2_000_000 } else { 10_000_000 } / scale;
    let runs = if quick { 1 } else { 3 };
    let blocking = "tput/shmlane-blocking-recv/u64";
    let asynch = "tput/shmlane-async-recv/u64";
    paired_rates(
        r,
        runs,
        (blocking, || aio::shmlane_stream(n, 4096, false)),
        (asynch, || aio::shmlane_stream(n, 4096, true)),
    )?;
    let mpsc = "tput/tokio-mpsc-inproc/u64";
    r.base(
        mpsc,
        median_of(runs, || aio::tokio_mpsc(n, 4096))? / 1e6,
        "Mmsg/s",
        Better::Higher,
    );
    if let Some(v) = r.value(asynch) {
        r.vs(
            "tput/shmlane-async-recv/u64/vs-tokio-mpsc",
            v,
            "Mmsg/s",
            Better::Higher,
            mpsc,
        );
    }
    Ok(())
}

/// Runs a baseline and a contender alternately ([`median_pair`]) and records both, in
/// millions of messages per second, the contender as a ratio to the baseline.
fn paired_rates(
    r: &mut Report,
    runs: usize,
    (base_name, base): (&str, impl FnMut() -> Res<f64>),
    (name, contender): (&str, impl FnMut() -> Res<f64>),
) -> Res<()> {
    let (b, c) = median_pair(runs, base, contender)?;
    r.base(base_name, b / 1e6, "Mmsg/s", Better::Higher);
    r.vs(name, c / 1e6, "Mmsg/s", Better::Higher, base_name);
    Ok(())
}

fn throughput(r: &mut Report, quick: bool, scale: u64) -> Res<()> {
    let n: u64 = if quick { 5_000_000 } else { 20_000_000 } / scale;
    let runs = if quick { 1 } else { 3 };
    let cap = 4096;
    let m = |x: f64| x / 1e6;
    // Each shmlane figure alternates with its baseline, run by run, so a drift of this
    // machine's speed lands on both sides of the ratio.
    let item = "tput/rtrb-inproc/u64/item";
    paired_rates(
        r,
        runs,
        (item, || inproc::rtrb_per_item(n, cap)),
        ("tput/shmlane-spsc/u64/item", || {
            rings::spsc_per_item(n, cap)
        }),
    )?;
    paired_rates(
        r,
        runs,
        ("tput/rtrb-inproc/u64/chunk256", || {
            inproc::rtrb_chunked(n, cap, 256)
        }),
        ("tput/shmlane-spsc/u64/chunk256", || {
            rings::spsc_chunked(n, cap, 256)
        }),
    )?;
    // A 64-byte element (one cache line of payload), against rtrb with the same element.
    paired_rates(
        r,
        runs,
        ("tput/rtrb-inproc/64B/item", || {
            inproc::rtrb_per_item_of::<[u64; 8]>(n / 2, cap, line, |a| a[0])
        }),
        ("tput/shmlane-spsc/64B/item", || {
            rings::spsc_per_item_of::<[u64; 8]>(n / 2, cap, line, |a| a[0])
        }),
    )?;
    r.vs(
        "tput/crossbeam-bounded-channel/u64",
        m(median_of(runs, || inproc::crossbeam_bounded(n / 2, cap))?),
        "Mmsg/s",
        Better::Higher,
        item,
    );
    // The cost of blocking mode while nobody sleeps: a consumer in `pop_blocking`.
    paired_rates(
        r,
        runs,
        ("tput/shmlane-spsc/u64/pop-blocking-call/busyspin", || {
            rings::spsc_per_item_waiting(n, cap, WaitStrategy::BusySpin)
        }),
        ("tput/shmlane-spsc/u64/pop-blocking-call/blocking", || {
            rings::spsc_per_item_waiting(n, cap, WaitStrategy::blocking())
        }),
    )?;
    // MPMC between processes against crossbeam's ArrayQueue between threads.
    for (p, c) in [(1usize, 1usize), (2, 2)] {
        paired_rates(
            r,
            runs,
            (&format!("tput/crossbeam-arrayqueue/{p}p{c}c"), || {
                inproc::crossbeam_array_queue(n / 2, cap, p, c)
            }),
            (&format!("tput/shmlane-mpmc/{p}p{c}c"), || {
                rings::mpmc_rate(n / 2, cap, p, c)
            }),
        )?;
        // The two slot layouts alternated with each other (packed is the default).
        paired_rates(
            r,
            runs,
            (&format!("tput/shmlane-mpmc-packed-slots/{p}p{c}c"), || {
                rings::mpmc_rate_with(n / 2, cap, p, c, shm_queue::mpmc::SlotLayout::Packed)
            }),
            (&format!("tput/shmlane-mpmc-line-slots/{p}p{c}c"), || {
                rings::mpmc_rate_with(n / 2, cap, p, c, shm_queue::mpmc::SlotLayout::Line)
            }),
        )?;
    }
    let kn = n / 20;
    for size in [8usize, 64, 1024] {
        let pipe = format!("tput/pipe/{size}B");
        paired_rates(
            r,
            runs,
            (&pipe, || transports::pipe_rate(kn, size)),
            (&format!("tput/shmlane-bytes/{size}B"), || {
                rings::bytes_rate(n / 4, size, false)
            }),
        )?;
        let rate = median_of(runs, || transports::unix_rate(kn, size))?;
        r.vs(
            format!("tput/unix-socket/{size}B"),
            m(rate),
            "Mmsg/s",
            Better::Higher,
            &pipe,
        );
        let rate = median_of(runs, || rings::bytes_rate(n / 4, size, true))?;
        r.vs(
            format!("tput/shmlane-bytes-zero-copy/{size}B"),
            m(rate),
            "Mmsg/s",
            Better::Higher,
            &pipe,
        );
    }
    // Large messages: bandwidth against a single-thread memcpy of the same size.
    let big = 64 << 10;
    let memcpy = "bw/memcpy/64KiB";
    r.base(
        memcpy,
        inproc::memcpy_bandwidth(big, (4 << 30) / scale) / 1e9,
        "GB/s",
        Better::Higher,
    );
    let k = if quick { 20_000 } else { 200_000 } / scale;
    let gbs = |rate: f64| rate * big as f64 / 1e9;
    let rate = median_of(runs, || rings::bytes_rate(k, big, false))?;
    r.vs(
        "bw/shmlane-bytes/64KiB/copy",
        gbs(rate),
        "GB/s",
        Better::Higher,
        memcpy,
    );
    let rate = median_of(runs, || rings::bytes_rate(k, big, true))?;
    r.vs(
        "bw/shmlane-bytes/64KiB/zero-copy",
        gbs(rate),
        "GB/s",
        Better::Higher,
        memcpy,
    );
    Ok(())
}
