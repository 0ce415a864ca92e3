//! Figures, their baselines and ratios; the table and JSON output.

use serde::Serialize;

/// Latency percentiles of one run, in nanoseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest sample.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Latency {
    /// Percentiles of an HDR histogram of nanosecond samples.
    pub fn from_histogram(h: &hdrhistogram::Histogram<u64>) -> Latency {
        Latency {
            p50: h.value_at_quantile(0.50) as f64,
            p99: h.value_at_quantile(0.99) as f64,
            p999: h.value_at_quantile(0.999) as f64,
            max: h.max() as f64,
            mean: h.mean(),
        }
    }
}

/// Whether bigger or smaller is better for a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Latencies: smaller is better.
    Lower,
    /// Rates: bigger is better.
    Higher,
}

/// One measured figure, with the baseline it is compared to.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// What was measured, e.g. `rtt/shmlane-spsc/8B/p50`.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit (`ns`, `Mmsg/s`, `GB/s`).
    pub unit: &'static str,
    /// The baseline's name, if this figure has one.
    pub baseline: Option<String>,
    /// The baseline's value in the same unit, measured in the same run.
    pub baseline_value: Option<f64>,
    /// `value / baseline_value`.
    pub ratio: Option<f64>,
    /// Which direction is better.
    pub better: Better,
}

/// Collects figures and prints them.
#[derive(Debug, Default)]
pub struct Report {
    figures: Vec<Figure>,
}

impl Report {
    /// An empty report.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a figure without a baseline (a baseline itself).
    pub fn base(
        &mut self,
        name: impl Into<String>,
        value: f64,
        unit: &'static str,
        better: Better,
    ) {
        self.figures.push(Figure {
            name: name.into(),
            value,
            unit,
            baseline: None,
            baseline_value: None,
            ratio: None,
            better,
        });
    }

    /// Records a figure compared to the already recorded figure named `baseline`.
    pub fn vs(
        &mut self,
        name: impl Into<String>,
        value: f64,
        unit: &'static str,
        better: Better,
        baseline: &str,
    ) {
        let bv = self.value(baseline);
        self.figures.push(Figure {
            name: name.into(),
            value,
            unit,
            baseline: Some(baseline.to_string()),
            baseline_value: bv,
            ratio: bv.filter(|b| *b != 0.0).map(|b| value / b),
            better,
        });
    }

    /// The value of a recorded figure.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.figures
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value)
    }

    /// Records the five percentiles of a latency run as `prefix/p50` etc., each compared to
    /// the same percentile of `baseline_prefix` if given.
    pub fn latency(&mut self, prefix: &str, l: Latency, baseline_prefix: Option<&str>) {
        for (tag, v) in [
            ("p50", l.p50),
            ("p99", l.p99),
            ("p99.9", l.p999),
            ("max", l.max),
            ("mean", l.mean),
        ] {
            let name = format!("{prefix}/{tag}");
            match baseline_prefix {
                Some(b) => self.vs(name, v, "ns", Better::Lower, &format!("{b}/{tag}")),
                None => self.base(name, v, "ns", Better::Lower),
            }
        }
    }

    /// All figures.
    pub fn figures(&self) -> &[Figure] {
        &self.figures
    }

    /// A human-readable table.
    pub fn table(&self) -> String {
        let w = self
            .figures
            .iter()
            .flat_map(|f| [f.name.len(), f.baseline.as_deref().map_or(0, str::len)])
            .max()
            .unwrap_or(0)
            .max(20);
        let mut out = String::new();
        out.push_str(&format!(
            "{:<w$} {:>12} {:<7} {:<w$} {:>12} {:>8}\n",
            "figure", "value", "unit", "baseline (same run)", "baseline", "ratio"
        ));
        for f in &self.figures {
            let (b, bv, r) = match (&f.baseline, f.baseline_value, f.ratio) {
                (Some(b), Some(bv), Some(r)) => (b.as_str(), fmt_num(bv), format!("{r:.2}x")),
                (Some(b), _, _) => (b.as_str(), "?".into(), "".into()),
                _ => ("", "".into(), "".into()),
            };
            out.push_str(&format!(
                "{:<w$} {:>12} {:<7} {:<w$} {:>12} {:>8}\n",
                f.name,
                fmt_num(f.value),
                f.unit,
                b,
                bv,
                r
            ));
        }
        out
    }

    /// One JSON object per line per figure.
    pub fn json_lines(&self) -> String {
        self.figures
            .iter()
            .filter_map(|f| serde_json::to_string(f).ok())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn fmt_num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
