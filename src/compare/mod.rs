//! `pgstorm compare A B`: what changed between two result folders (or two sets of repeated runs)
//! and whether it is real.
//!
//! Invariants: compare reads result documents only (never engine internals). With at least two
//! runs per side the runs are the samples (latencies inside one run are autocorrelated, so they
//! are not independent samples): a change is significant when the 95 % bootstrap interval of the
//! difference of medians excludes zero AND the change exceeds the noise floor. With single runs
//! significance cannot be assessed: per-interval samples give a verdict marked as a hint only, and
//! a hint never fails `--fail-on-regression`.

pub mod load;
pub mod render;
pub mod stats;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::report::model::{IntervalPoint, QueryResult, RunDocument};
pub use load::{load_side, Side};

/// A measured figure compared between the two sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Successful executions per second.
    Tps,
    /// Mean latency (ms).
    Mean,
    /// Median latency (ms).
    P50,
    /// 95th percentile latency (ms).
    P95,
    /// 99th percentile latency (ms).
    P99,
    /// 99.9th percentile latency (ms).
    P999,
    /// Failed / attempted executions (%).
    ErrorRate,
}

impl Metric {
    /// Every metric, in display order.
    pub const ALL: [Metric; 7] = [
        Metric::Tps,
        Metric::Mean,
        Metric::P50,
        Metric::P95,
        Metric::P99,
        Metric::P999,
        Metric::ErrorRate,
    ];

    /// Display name.
    pub fn label(self) -> &'static str {
        match self {
            Metric::Tps => "tps",
            Metric::Mean => "mean ms",
            Metric::P50 => "p50 ms",
            Metric::P95 => "p95 ms",
            Metric::P99 => "p99 ms",
            Metric::P999 => "p99.9 ms",
            Metric::ErrorRate => "error %",
        }
    }

    /// True when changes are relative (in % of A); false for the error rate, whose changes are in
    /// percentage points.
    pub fn is_relative(self) -> bool {
        self != Metric::ErrorRate
    }

    /// True when a larger value is an improvement.
    pub fn higher_is_better(self) -> bool {
        self == Metric::Tps
    }

    /// The figure of one query result.
    pub fn of(self, q: &QueryResult) -> f64 {
        let l = &q.latency;
        match self {
            Metric::Tps => q.tps,
            Metric::Mean => l.mean_ms,
            Metric::P50 => l.p50_ms,
            Metric::P95 => l.p95_ms,
            Metric::P99 => l.p99_ms,
            Metric::P999 => l.p999_ms,
            Metric::ErrorRate => {
                let errors: u64 = q.errors.values().sum();
                let attempted = errors + q.count;
                if attempted == 0 {
                    0.0
                } else {
                    errors as f64 * 100.0 / attempted as f64
                }
            }
        }
    }
}

/// The outcome for one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// B is better beyond the noise (faster, more throughput, fewer errors).
    Improved,
    /// B is worse beyond the noise.
    Regressed,
    /// No change beyond the noise.
    NoSignificantChange,
    /// Not enough samples to say anything.
    Unknown,
}

/// What a verdict rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// One value per run on each side: a real significance test.
    Runs,
    /// One value per time-series interval of a single run: autocorrelated, only a hint.
    IntervalHint,
    /// Nothing to test with.
    None,
}

/// One metric of one scope, A against B.
#[derive(Debug, Clone, Serialize)]
pub struct MetricDelta {
    /// Which figure.
    pub metric: Metric,
    /// A's value (median over its runs).
    pub a: f64,
    /// B's value (median over its runs).
    pub b: f64,
    /// (b - a) / a in %, null when a is zero; for the error rate b - a in percentage points.
    pub change_pct: Option<f64>,
    /// 95 % bootstrap interval of the change (same unit as `change_pct`).
    pub ci_pct: Option<(f64, f64)>,
    /// Run-to-run noise (MAD of the noisier side, relative except for the error rate, at least
    /// the configured minimum), same unit as `change_pct`.
    pub noise_floor_pct: f64,
    /// The outcome.
    pub verdict: Verdict,
    /// What the verdict rests on.
    pub basis: Basis,
}

impl MetricDelta {
    /// True for a significant (run-based) regression larger than `threshold_pct` (percentage
    /// points for the error rate).
    pub fn fails(&self, threshold_pct: f64) -> bool {
        self.basis == Basis::Runs
            && self.verdict == Verdict::Regressed
            && self.change_pct.is_some_and(|c| c.abs() > threshold_pct)
    }
}

/// All metrics of one query type (or `all`).
#[derive(Debug, Clone, Serialize)]
pub struct ScopeDelta {
    /// Query type name, `all` for the summary.
    pub name: String,
    /// One entry per metric.
    pub metrics: Vec<MetricDelta>,
}

/// A setting whose value differs between the two sides.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SettingChange {
    /// Setting name (or `server_version`).
    pub name: String,
    /// Value on A (null: not in A's snapshot).
    pub a: Option<String>,
    /// Value on B.
    pub b: Option<String>,
}

/// Summary of one side.
#[derive(Debug, Clone, Serialize)]
pub struct SideInfo {
    /// What the user passed.
    pub spec: String,
    /// The run folders used.
    pub runs: Vec<String>,
    /// Label of the first run.
    pub label: String,
    /// Server version of the first run.
    pub server_version: String,
}

/// The whole comparison, as written by `--format json`.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The baseline.
    pub a: SideInfo,
    /// The candidate.
    pub b: SideInfo,
    /// True when both sides have at least two runs (significance can be assessed).
    pub assessed: bool,
    /// Settings that differ (the change under test), server version included.
    pub settings_diff: Vec<SettingChange>,
    /// Reasons the comparison may be unfair or weak.
    pub warnings: Vec<String>,
    /// `all` first, then each query type present on both sides.
    pub scopes: Vec<ScopeDelta>,
}

impl Comparison {
    /// Every delta that fails `--fail-on-regression threshold_pct`, with its scope.
    pub fn regressions(&self, threshold_pct: f64) -> Vec<(&str, &MetricDelta)> {
        self.scopes
            .iter()
            .flat_map(|s| s.metrics.iter().map(move |m| (s.name.as_str(), m)))
            .filter(|(_, m)| m.fails(threshold_pct))
            .collect()
    }
}

/// Options of a comparison.
#[derive(Debug, Clone, Copy)]
pub struct CompareOptions {
    /// Minimum noise floor in % (a change smaller than this is never significant).
    pub min_noise_pct: f64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions { min_noise_pct: 1.0 }
    }
}

fn query<'a>(doc: &'a RunDocument, name: &str) -> Option<&'a QueryResult> {
    let load = doc.load.as_ref()?;
    if name == "all" {
        Some(&load.summary)
    } else {
        load.queries.iter().find(|q| q.name == name)
    }
}

/// Per-interval samples of a single run (measured intervals only), where the time series has them.
fn interval_samples(doc: &RunDocument, scope: &str, metric: Metric) -> Vec<f64> {
    let Some(load) = &doc.load else {
        return Vec::new();
    };
    let interval = load.config.interval_s.max(f64::MIN_POSITIVE);
    // Only whole measured intervals: a trailing stub of a few transactions is not a sample.
    let full = |p: &&IntervalPoint| match load.config.duration_s {
        Some(d) => p.t_s + interval <= load.config.warmup_s + d + 1e-6,
        None => load.timeseries.last().is_none_or(|last| last.t_s > p.t_s),
    };
    let measured = load.timeseries.iter().filter(|p| !p.warmup).filter(full);
    match (scope, metric) {
        ("all", Metric::Tps) => measured.map(|p| p.tps).collect(),
        ("all", Metric::P50) => measured.map(|p| p.p50_ms).collect(),
        ("all", Metric::P99) => measured.map(|p| p.p99_ms).collect(),
        (name, Metric::Tps) => measured
            .filter_map(|p| p.per_query.get(name).map(|n| *n as f64 / interval))
            .collect(),
        _ => Vec::new(),
    }
}

fn delta(
    a_runs: &[&RunDocument],
    b_runs: &[&RunDocument],
    scope: &str,
    metric: Metric,
    opts: &CompareOptions,
    seed: u64,
) -> MetricDelta {
    let values = |runs: &[&RunDocument]| -> Vec<f64> {
        runs.iter()
            .filter_map(|d| query(d, scope).map(|q| metric.of(q)))
            .collect()
    };
    let (va, vb) = (values(a_runs), values(b_runs));
    let (a, b) = (stats::median(&va), stats::median(&vb));
    // The error rate changes in percentage points (it is often 0 on the baseline); every other
    // metric in % of the baseline.
    let relative = metric.is_relative();
    let change_pct = if relative {
        (a != 0.0 && a.is_finite() && b.is_finite()).then(|| (b - a) / a * 100.0)
    } else {
        (a.is_finite() && b.is_finite()).then_some(b - a)
    };
    let (basis, sa, sb) = if va.len() >= 2 && vb.len() >= 2 {
        (Basis::Runs, va, vb)
    } else {
        let (ia, ib) = (
            interval_samples(a_runs[0], scope, metric),
            interval_samples(b_runs[0], scope, metric),
        );
        if ia.len() >= 2 && ib.len() >= 2 {
            (Basis::IntervalHint, ia, ib)
        } else {
            (Basis::None, Vec::new(), Vec::new())
        }
    };
    let noise = |xs: &[f64]| {
        if relative {
            stats::relative_mad_pct(xs)
        } else {
            stats::mad(xs)
        }
    };
    let noise_floor_pct = noise(&sa).max(noise(&sb)).max(opts.min_noise_pct);
    let ci_pct = stats::bootstrap_ci(&sa, &sb, seed, move |ma, mb| {
        if relative {
            (mb - ma) / ma * 100.0
        } else {
            mb - ma
        }
    });
    let verdict = match (change_pct, ci_pct) {
        (Some(0.0), _) => Verdict::NoSignificantChange,
        (Some(c), Some((lo, hi))) => {
            if (lo > 0.0 || hi < 0.0) && c.abs() > noise_floor_pct {
                if (c > 0.0) == metric.higher_is_better() {
                    Verdict::Improved
                } else {
                    Verdict::Regressed
                }
            } else {
                Verdict::NoSignificantChange
            }
        }
        (None, _) if a == b => Verdict::NoSignificantChange,
        _ => Verdict::Unknown,
    };
    MetricDelta {
        metric,
        a,
        b,
        change_pct,
        ci_pct,
        noise_floor_pct,
        verdict,
        basis,
    }
}

/// Settings (and the server version) that differ between the first runs of the two sides.
pub fn settings_diff(a: &RunDocument, b: &RunDocument) -> Vec<SettingChange> {
    let (sa, sb) = (&a.target.server, &b.target.server);
    let mut out = Vec::new();
    if sa.server_version != sb.server_version {
        out.push(SettingChange {
            name: "server_version".into(),
            a: Some(sa.server_version.clone()),
            b: Some(sb.server_version.clone()),
        });
    }
    let names: std::collections::BTreeSet<&String> =
        sa.settings.keys().chain(sb.settings.keys()).collect();
    for n in names {
        let (va, vb) = (sa.settings.get(n), sb.settings.get(n));
        if va != vb {
            out.push(SettingChange {
                name: n.clone(),
                a: va.cloned(),
                b: vb.cloned(),
            });
        }
    }
    out
}

fn fairness_warnings(a: &[&RunDocument], b: &[&RunDocument]) -> Vec<String> {
    let mut w = Vec::new();
    let (fa, fb) = (a[0], b[0]);
    let mut differs = |what: &str, x: String, y: String| {
        if x != y {
            w.push(format!("{what} differs: {x} (A) vs {y} (B)"));
        }
    };
    differs(
        "server version",
        fa.target.server.server_version.clone(),
        fb.target.server.server_version.clone(),
    );
    differs(
        "load host",
        fa.host.hostname.clone(),
        fb.host.hostname.clone(),
    );
    differs(
        "load host CPUs",
        fa.host.cpus.to_string(),
        fb.host.cpus.to_string(),
    );
    differs("target", fa.target.dsn.clone(), fb.target.dsn.clone());
    differs("scenario", fa.scenario.clone(), fb.scenario.clone());
    let scale = |d: &RunDocument| {
        d.dataset.as_ref().map_or("none".to_string(), |s| {
            format!("scale {} seed {}", s.scale, s.seed)
        })
    };
    differs("dataset", scale(fa), scale(fb));
    match (&fa.load, &fb.load) {
        (Some(la), Some(lb)) => {
            let (ca, cb) = (&la.config, &lb.config);
            differs("clients", ca.clients.to_string(), cb.clients.to_string());
            let driver = |t: Option<u32>| {
                t.map_or("one thread per client".to_string(), |j| {
                    format!("{j} multiplexing threads (-j)")
                })
            };
            differs("driver", driver(ca.threads), driver(cb.threads));
            differs(
                "duration",
                format!("{:?} s", ca.duration_s),
                format!("{:?} s", cb.duration_s),
            );
            differs(
                "transactions per client",
                format!("{:?}", ca.transactions_per_client),
                format!("{:?}", cb.transactions_per_client),
            );
            differs(
                "warmup",
                format!("{} s", ca.warmup_s),
                format!("{} s", cb.warmup_s),
            );
            differs("rate", format!("{:?}", ca.rate), format!("{:?}", cb.rate));
            differs(
                "latency measured from",
                ca.latency_from.clone(),
                cb.latency_from.clone(),
            );
            differs("protocol", ca.protocol.clone(), cb.protocol.clone());
            let mix = |c: &crate::report::model::LoadConfig| {
                c.mix
                    .iter()
                    .map(|m| format!("{}={}", m.name, m.weight))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            differs("mix", mix(ca), mix(cb));
        }
        _ => w.push("one side has no query load: only settings can be compared".into()),
    }
    for (side, runs) in [("A", a), ("B", b)] {
        for d in runs {
            if d.interrupted {
                w.push(format!("{side}: run {} was interrupted", d.run_id));
            }
            for x in &d.warnings {
                w.push(format!("{side}: run {}: {}", d.run_id, x.message));
            }
            if !settings_diff(runs[0], d).is_empty() {
                w.push(format!(
                    "{side}: run {} has different settings than {} in the same set",
                    d.run_id, runs[0].run_id
                ));
            }
        }
    }
    let (na, nb) = (a.len(), b.len());
    if na < 2 || nb < 2 {
        w.push(format!(
            "{na} run(s) vs {nb} run(s): significance cannot be assessed from single runs; \
             verdicts marked (hint) use per-interval samples, which are autocorrelated. \
             Repeat each side (--repeat 5) for a real test"
        ));
    } else if na < 3 || nb < 3 {
        w.push(format!(
            "{na} vs {nb} runs: the confidence interval from so few runs is coarse; 5 per side is better"
        ));
    }
    w
}

/// Compares side A (baseline) with side B.
pub fn compare(a: &Side, b: &Side, opts: &CompareOptions) -> Comparison {
    let ar: Vec<&RunDocument> = a.runs.iter().collect();
    let br: Vec<&RunDocument> = b.runs.iter().collect();
    let mut names = vec!["all".to_string()];
    if let (Some(la), Some(lb)) = (&ar[0].load, &br[0].load) {
        for q in &la.queries {
            if lb.queries.iter().any(|x| x.name == q.name) {
                names.push(q.name.clone());
            }
        }
    }
    let scopes = if ar[0].load.is_some() && br[0].load.is_some() {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| ScopeDelta {
                name: n.clone(),
                metrics: Metric::ALL
                    .iter()
                    .enumerate()
                    .map(|(j, m)| delta(&ar, &br, n, *m, opts, (i * 16 + j) as u64))
                    .collect(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let info = |s: &Side| SideInfo {
        spec: s.spec.clone(),
        runs: s.runs.iter().map(|d| d.run_id.clone()).collect(),
        label: s.runs[0].label.clone(),
        server_version: s.runs[0].target.server.server_version.clone(),
    };
    Comparison {
        a: info(a),
        b: info(b),
        assessed: ar.len() >= 2 && br.len() >= 2,
        settings_diff: settings_diff(ar[0], br[0]),
        warnings: fairness_warnings(&ar, &br),
        scopes,
    }
}

/// Parses `5%` or `5` into a percentage.
pub fn parse_threshold(s: &str) -> anyhow::Result<f64> {
    let t = s.trim().trim_end_matches('%').trim();
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(crate::error::usage(format!(
            "--fail-on-regression '{s}' is not a percentage; write e.g. 5%"
        ))),
    }
}

/// Counts of verdicts, for a one-line headline.
pub fn headline(c: &Comparison) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for s in &c.scopes {
        for d in &s.metrics {
            let k = match d.verdict {
                Verdict::Improved => "improved",
                Verdict::Regressed => "regressed",
                Verdict::NoSignificantChange => "no significant change",
                Verdict::Unknown => "unknown",
            };
            *m.entry(k).or_insert(0) += 1;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_with_or_without_percent_and_reject_garbage() {
        assert_eq!(parse_threshold("5%").unwrap(), 5.0);
        assert_eq!(parse_threshold(" 2.5 ").unwrap(), 2.5);
        for bad in ["", "five", "-1%", "NaN"] {
            let e = parse_threshold(bad).unwrap_err();
            assert_eq!(
                crate::error::exit_kind(&e),
                crate::error::ExitKind::Usage,
                "{bad}"
            );
        }
    }

    #[test]
    fn only_run_based_regressions_beyond_the_threshold_fail() {
        let d = |verdict, basis, change| MetricDelta {
            metric: Metric::P99,
            a: 1.0,
            b: 1.0,
            change_pct: Some(change),
            ci_pct: None,
            noise_floor_pct: 1.0,
            verdict,
            basis,
        };
        assert!(d(Verdict::Regressed, Basis::Runs, 8.0).fails(5.0));
        assert!(!d(Verdict::Regressed, Basis::Runs, 4.0).fails(5.0));
        assert!(!d(Verdict::Regressed, Basis::IntervalHint, 80.0).fails(5.0));
        assert!(!d(Verdict::Improved, Basis::Runs, -80.0).fails(5.0));
    }
}
