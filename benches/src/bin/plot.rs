//! Draws the latency percentiles of a benchmark run as an SVG bar chart, one group of bars
//! per transport (p50, p99, p99.9, on a log scale), from the JSON lines that
//! `shmlane bench --json` prints.
//!
//! ```sh
//! cargo run --release -p shmlane-cli -- bench --json > docs/bench.jsonl
//! cargo run --release -p shmlane-benches --bin plot -- docs/bench.jsonl docs/latency.svg
//! ```

use std::collections::BTreeMap;
use std::process::ExitCode;

use plotters::prelude::*;

/// Percentiles drawn, with their colours.
const SERIES: [(&str, RGBColor); 3] = [
    ("p50", RGBColor(31, 119, 180)),
    ("p99", RGBColor(255, 127, 14)),
    ("p99.9", RGBColor(214, 39, 40)),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: plot RESULTS.jsonl OUT.svg");
        return ExitCode::from(2);
    };
    match run(input, output) {
        Ok(n) => {
            println!("plot: {n} transports drawn to {output}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("plot: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One transport's percentiles: name, then percentile → nanoseconds.
type Row = (String, BTreeMap<String, f64>);

/// `rtt/<transport...>/<pct>` → transport → pct → ns, in the order first seen.
fn latencies(text: &str) -> Result<Vec<Row>, String> {
    let mut out: Vec<Row> = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        let (Some(name), Some(value)) = (v["name"].as_str(), v["value"].as_f64()) else {
            return Err(format!("line {}: no name or value", i + 1));
        };
        let Some(rest) = name.strip_prefix("rtt/") else {
            continue;
        };
        let Some((transport, pct)) = rest.rsplit_once('/') else {
            continue;
        };
        let pct = if pct == "p999" { "p99.9" } else { pct };
        if !SERIES.iter().any(|(p, _)| *p == pct) {
            continue;
        }
        match out.iter_mut().find(|(t, _)| t == transport) {
            Some((_, m)) => {
                m.insert(pct.to_owned(), value);
            }
            None => out.push((
                transport.to_owned(),
                BTreeMap::from([(pct.to_owned(), value)]),
            )),
        }
    }
    Ok(out)
}

fn run(input: &str, output: &str) -> Result<usize, String> {
    let text = std::fs::read_to_string(input).map_err(|e| format!("{input}: {e}"))?;
    let data = latencies(&text)?;
    if data.is_empty() {
        return Err(format!("{input} has no rtt/... latency figures"));
    }
    let (lo, hi) = data
        .iter()
        .flat_map(|(_, m)| m.values().copied())
        .fold((f64::MAX, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let height = 120 + 34 * data.len() as u32;
    let root = SVGBackend::new(output, (1000, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let n = data.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Round-trip latency between two processes (ns, log scale)",
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(300)
        .build_cartesian_2d(((lo / 2.0).max(1.0)..hi * 2.0).log_scale(), 0.0..n as f64)
        .map_err(|e| e.to_string())?;
    let names: Vec<String> = data.iter().map(|(t, _)| t.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(2 * n + 1)
        // Labels fall on multiples of 0.5: name the transport at the middle of its band.
        .y_label_formatter(&|y: &f64| {
            let i = y.floor();
            if (y - i - 0.5).abs() < 1e-6 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc("nanoseconds")
        .draw()
        .map_err(|e| e.to_string())?;
    let bar = 0.8 / SERIES.len() as f64;
    for (k, (pct, colour)) in SERIES.iter().enumerate() {
        let bars = data.iter().enumerate().filter_map(|(i, (_, m))| {
            let v = *m.get(*pct)?;
            let y0 = i as f64 + 0.1 + bar * k as f64;
            Some(Rectangle::new(
                [((lo / 2.0).max(1.0), y0), (v, y0 + bar)],
                colour.filled(),
            ))
        });
        chart
            .draw_series(bars)
            .map_err(|e| e.to_string())?
            .label(*pct)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(n)
}
