//! Paired throughput runs: a shmlane contender and its baseline, alternated `ROUNDS` times,
//! printing each pair's ratio and the median ratio. Alternating the two inside one run
//! cancels most of a noisy machine's drift, which a single run does not.
//!
//! ```text
//! cargo run --release -p shmlane-benches --bin pairs -- CONTENDER [ROUNDS] [N]
//! ```
//!
//! | contender | shmlane | baseline |
//! |---|---|---|
//! | `item` | SPSC `u64` one at a time | rtrb, two threads |
//! | `item64` | SPSC `[u64; 8]` one at a time | rtrb, same element |
//! | `chunk` | SPSC `u64` in chunks of 256 | rtrb chunks of 256 |
//! | `bytes8`, `bytes64`, `bytes1024` | byte ring, copying send/receive | pipe, same size |
//! | `zc64k` | byte ring, 64 KiB zero-copy claim and read | single-thread `memcpy` of 64 KiB |
//! | `bytes8typed` | byte ring, 8 B copying send/receive | typed SPSC `u64` one at a time (no framing: the bound for one message at a time) |
//! | `typed8pipe` | typed SPSC `u64` one at a time | pipe, 8 B |
//! | `zc8` | byte ring, 8 B zero-copy claim and read | the same ring, 8 B copying send and receive |
//! | `blocking` | SPSC `u64` per item, consumer in `pop_blocking` with `Blocking` | the same with `BusySpin` |
//! | `mpmc11`, `mpmc22` | MPMC (packed slots, the default), 1P1C or 2P2C processes | crossbeam `ArrayQueue` threads |
//! | `mpmc11l`, `mpmc22l` | the same with line slots (`SlotLayout::Line`) | crossbeam `ArrayQueue` threads |
//! | `packed11`, `packed22` | MPMC with packed slots | MPMC with line slots |

use shm_queue::mpmc::SlotLayout;
use shm_queue::wait::WaitStrategy;
use shmlane_cli::bench::{inproc, line, rings, run::Res, transports};

fn pair(what: &str, n: u64) -> Option<(Res<f64>, Res<f64>)> {
    let cap = 4096;
    let bytes = |size: usize| {
        (
            rings::bytes_rate(n / 4, size, false),
            transports::pipe_rate(n / 20, size),
        )
    };
    Some(match what {
        "item" => (rings::spsc_per_item(n, cap), inproc::rtrb_per_item(n, cap)),
        "item64" => (
            rings::spsc_per_item_of::<[u64; 8]>(n / 2, cap, line, |a| a[0]),
            inproc::rtrb_per_item_of::<[u64; 8]>(n / 2, cap, line, |a| a[0]),
        ),
        "chunk" => (
            rings::spsc_chunked(n, cap, 256),
            inproc::rtrb_chunked(n, cap, 256),
        ),
        "bytes8" => bytes(8),
        "bytes64" => bytes(64),
        "bytes1024" => bytes(1024),
        "zc64k" => {
            let big = 64 << 10;
            let k = (n / 100).max(1000);
            (
                rings::bytes_rate(k, big, true).map(|r| r * big as f64),
                Ok(inproc::memcpy_bandwidth(big, k * big as u64)),
            )
        }
        "bytes8typed" => (
            rings::bytes_rate(n / 4, 8, false),
            rings::spsc_per_item(n / 4, cap),
        ),
        "typed8pipe" => (
            rings::spsc_per_item(n / 4, cap),
            transports::pipe_rate(n / 20, 8),
        ),
        "zc8" => (
            rings::bytes_rate(n / 4, 8, true),
            rings::bytes_rate(n / 4, 8, false),
        ),
        "blocking" => (
            rings::spsc_per_item_waiting(n, cap, WaitStrategy::blocking()),
            rings::spsc_per_item_waiting(n, cap, WaitStrategy::BusySpin),
        ),
        "mpmc11" => (
            rings::mpmc_rate(n / 2, cap, 1, 1),
            inproc::crossbeam_array_queue(n / 2, cap, 1, 1),
        ),
        "mpmc22" => (
            rings::mpmc_rate(n / 2, cap, 2, 2),
            inproc::crossbeam_array_queue(n / 2, cap, 2, 2),
        ),
        "mpmc11l" => (
            rings::mpmc_rate_with(n / 2, cap, 1, 1, SlotLayout::Line),
            inproc::crossbeam_array_queue(n / 2, cap, 1, 1),
        ),
        "mpmc22l" => (
            rings::mpmc_rate_with(n / 2, cap, 2, 2, SlotLayout::Line),
            inproc::crossbeam_array_queue(n / 2, cap, 2, 2),
        ),
        "packed11" => (
            rings::mpmc_rate_with(n / 2, cap, 1, 1, SlotLayout::Packed),
            rings::mpmc_rate_with(n / 2, cap, 1, 1, SlotLayout::Line),
        ),
        "packed22" => (
            rings::mpmc_rate_with(n / 2, cap, 2, 2, SlotLayout::Packed),
            rings::mpmc_rate_with(n / 2, cap, 2, 2, SlotLayout::Line),
        ),
        _ => return None,
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "item".into());
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
    let n: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let mut ratios = Vec::new();
    for round in 0..rounds {
        let Some((ours, base)) = pair(&what, n) else {
            eprintln!("unknown contender {what}: item, item64, chunk, bytes8, bytes8typed, typed8pipe, bytes64, bytes1024, zc64k, blocking, mpmc11, mpmc22, mpmc11l, mpmc22l, packed11 or packed22");
            std::process::exit(2);
        };
        match (ours, base) {
            (Ok(a), Ok(b)) => {
                println!(
                    "round {round}: shmlane {:.2}e6/s  baseline {:.2}e6/s  ratio {:.2}",
                    a / 1e6,
                    b / 1e6,
                    a / b
                );
                ratios.push(a / b);
            }
            (a, b) => {
                eprintln!("round {round} failed: {a:?} {b:?}");
                std::process::exit(1);
            }
        }
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "{what}: median ratio {:.2} of {rounds} rounds",
        ratios[ratios.len() / 2]
    );
}
