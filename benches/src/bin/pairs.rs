//! Paired throughput runs: a shmlane contender and its in-process baseline, alternated
//! `--rounds` times, printing each pair's ratio and the median ratio. Alternating the two
//! inside one run cancels most of this machine's drift, which a single run does not.
//!
//! `cargo run --release -p shmlane-benches --bin pairs -- [item|chunk] [rounds] [n]`

use shm_bridge::bench::{inproc, rings};

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "item".into());
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
    let n: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let cap = 4096;
    let mut ratios = Vec::new();
    for round in 0..rounds {
        let (ours, base) = match what.as_str() {
            "item" => (rings::spsc_per_item(n, cap), inproc::rtrb_per_item(n, cap)),
            "chunk" => (
                rings::spsc_chunked(n, cap, 256),
                inproc::rtrb_chunked(n, cap, 256),
            ),
            other => {
                eprintln!("unknown contender {other}: item or chunk");
                std::process::exit(2);
            }
        };
        match (ours, base) {
            (Ok(a), Ok(b)) => {
                println!(
                    "round {round}: shmlane {:.1} M/s  rtrb {:.1} M/s  ratio {:.2}",
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
    println!("median ratio {:.2}", ratios[ratios.len() / 2]);
}
