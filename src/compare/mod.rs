//! `pgstorm compare A B`: what changed between two result folders (or two sets of repeated runs)
//! and whether it is real.
//!
//! Invariants: compare reads result documents only (never engine internals). With at least two
//! runs per side the runs are the samples (latencies inside one run are autocorrelated, so they
//! are not independent samples): each line (metric × query type) gets an exact permutation p of
//! its run-level values, the p-values of all lines are adjusted together (Benjamini–Hochberg), and
//! a change is significant when its adjusted p is at most the level AND the change exceeds the
//! noise floor. When no split of the runs can reach the level, the verdict says "too few runs"
//! instead of guessing. With single runs significance cannot be assessed: per-interval samples give
//! a verdict marked as a hint only, and a hint never fails `--fail-on-regression`.

pub mod calibrate;
pub mod drift;
pub mod exact;
pub mod html;
pub mod load;
pub mod parametric;
pub mod render;
pub mod settings;
pub mod stats;
pub mod trend;
pub mod units;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::report::model::{IntervalPoint, QueryResult, RunDocument};
pub use load::{load_side, Side};
pub use settings::SettingChange;

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
    /// p of the run-level values by `test` (runs basis only).
    pub p_value: Option<f64>,
    /// `p_value` adjusted over every line of the comparison (Benjamini–Hochberg).
    pub q_value: Option<f64>,
    /// Minimum detectable change at the level, from the run-to-run scatter (same unit as
    /// `change_pct`, never below the noise floor), for a line with no significant change; null
    /// otherwise or when no verdict is possible.
    pub mde_pct: Option<f64>,
    /// The outcome.
    pub verdict: Verdict,
    /// What the verdict rests on.
    pub basis: Basis,
    /// The test behind a run-based verdict (null for a hint or no verdict).
    pub test: Option<Test>,
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
    /// Significance level of each run-based verdict (false-discovery rate over all lines).
    pub level: f64,
    /// Lines tested on run-level values, over which the p-values were adjusted.
    pub lines_tested: usize,
    /// When both sides come from one interleaved study (`pgstorm study`): its pairs, tested
    /// pair by pair.
    pub pairing: Option<Pairing>,
    /// Settings that differ (the change under test), grouped by category, server version and
    /// extensions included.
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
    /// Significance level: the false-discovery rate over all lines, and the drift test's level.
    pub level: f64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            min_noise_pct: 1.0,
            level: 0.05,
        }
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

/// The run-level values of one line: one per run that has the scope.
fn values(runs: &[&RunDocument], scope: &str, metric: Metric) -> Vec<f64> {
    runs.iter()
        .filter_map(|d| query(d, scope).map(|q| metric.of(q)))
        .collect()
}

/// A line's figures (medians of `va`, `vb`; noise floor of the samples `sa`, `sb`) with no
/// verdict yet.
fn measured(
    metric: Metric,
    (va, vb): (&[f64], &[f64]),
    (sa, sb): (&[f64], &[f64]),
    basis: Basis,
    opts: &CompareOptions,
) -> MetricDelta {
    let (a, b) = (stats::median(va), stats::median(vb));
    // The error rate changes in percentage points (it is often 0 on the baseline); every other
    // metric in % of the baseline.
    let change_pct = if metric.is_relative() {
        (a != 0.0 && a.is_finite() && b.is_finite()).then(|| (b - a) / a * 100.0)
    } else {
        (a.is_finite() && b.is_finite()).then_some(b - a)
    };
    let noise = |xs: &[f64]| {
        if metric.is_relative() {
            stats::relative_mad_pct(xs)
        } else {
            stats::mad(xs)
        }
    };
    MetricDelta {
        metric,
        a,
        b,
        change_pct,
        ci_pct: None,
        noise_floor_pct: noise(sa).max(noise(sb)).max(opts.min_noise_pct),
        p_value: None,
        q_value: None,
        mde_pct: None,
        verdict: Verdict::Unknown,
        basis,
        test: None,
    }
}

/// 95 % bootstrap interval of the change between samples `sa` and `sb`, in the line's unit.
fn change_ci(metric: Metric, sa: &[f64], sb: &[f64], seed: u64) -> Option<(f64, f64)> {
    let relative = metric.is_relative();
    stats::bootstrap_ci(sa, sb, seed, move |ma, mb| {
        if relative {
            (mb - ma) / ma * 100.0
        } else {
            mb - ma
        }
    })
}

/// Improved or regressed, by the sign of a significant change.
fn direction(metric: Metric, change: f64) -> Verdict {
    if (change > 0.0) == metric.higher_is_better() {
        Verdict::Improved
    } else {
        Verdict::Regressed
    }
}

/// A line of a side without two runs: per-interval samples of the first runs give a hint (the
/// bootstrap interval excludes zero and the change exceeds the noise), or nothing at all.
fn hint(
    firsts: (&RunDocument, &RunDocument),
    scope: &str,
    metric: Metric,
    (va, vb): (&[f64], &[f64]),
    opts: &CompareOptions,
    seed: u64,
) -> MetricDelta {
    let (ia, ib) = (
        interval_samples(firsts.0, scope, metric),
        interval_samples(firsts.1, scope, metric),
    );
    let mut d = if ia.len() >= 2 && ib.len() >= 2 {
        let mut d = measured(metric, (va, vb), (&ia, &ib), Basis::IntervalHint, opts);
        d.ci_pct = change_ci(metric, &ia, &ib, seed);
        d
    } else {
        measured(metric, (va, vb), (&[], &[]), Basis::None, opts)
    };
    d.verdict = match (d.change_pct, d.ci_pct) {
        (Some(0.0), _) => Verdict::NoSignificantChange,
        (Some(c), Some((lo, hi))) if (lo > 0.0 || hi < 0.0) && c.abs() > d.noise_floor_pct => {
            direction(metric, c)
        }
        (Some(_), Some(_)) => Verdict::NoSignificantChange,
        (None, _) if d.a == d.b => Verdict::NoSignificantChange,
        _ => Verdict::Unknown,
    };
    d
}

/// One line to judge on run-level values: the metric, A's values and B's values.
pub type RunLine = (Metric, Vec<f64>, Vec<f64>);

/// How the runs of the two sides relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Design {
    /// Two independent sets of runs.
    Independent,
    /// An interleaved study: the i-th value of A and of B form a pair, run one after the other.
    Paired,
}

/// The test behind a run-based verdict, chosen per line by the design and the run counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Test {
    /// Exact permutation test of the difference of means: no distribution assumed.
    Permutation,
    /// Welch's t-test, where no split of the runs reaches the level (fewer than 4 per side).
    Welch,
    /// Exact sign-flip test of the pair differences of an interleaved study.
    SignFlip,
    /// Paired t-test, where no assignment of signs reaches the level (fewer than 6 pairs).
    PairedT,
}

impl Test {
    /// The test of a line of `design` with `na` and `nb` runs at `level`: the exact one when its
    /// smallest possible p reaches the level, the t-test otherwise.
    pub fn choose(design: Design, na: usize, nb: usize, level: f64) -> Test {
        match design {
            Design::Paired if exact::smallest_sign_flip_p(na.min(nb)) <= level => Test::SignFlip,
            Design::Paired => Test::PairedT,
            Design::Independent if exact::smallest_p(na, nb) <= level => Test::Permutation,
            Design::Independent => Test::Welch,
        }
    }

    /// What the test is, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Test::Permutation => "exact permutation test",
            Test::Welch => "Welch's t-test (normal run-to-run scatter assumed)",
            Test::SignFlip => "exact sign-flip test of the pair differences",
            Test::PairedT => "paired t-test (normal pair differences assumed)",
        }
    }
}

/// One line's test: which one, its p, and the values it ran on (logarithms for a relative
/// metric whose values are all positive, so a change is a ratio whatever the level).
struct LineTest {
    test: Test,
    p: f64,
    log: bool,
    a: Vec<f64>,
    b: Vec<f64>,
}

impl LineTest {
    /// Picks the exact test when its smallest possible p reaches `level`, the t-test otherwise.
    fn new(metric: Metric, va: &[f64], vb: &[f64], design: Design, level: f64, seed: u64) -> Self {
        let log = metric.is_relative() && va.iter().chain(vb).all(|x| *x > 0.0 && x.is_finite());
        let tr = |xs: &[f64]| -> Vec<f64> {
            if log {
                xs.iter().map(|x| x.ln()).collect()
            } else {
                xs.to_vec()
            }
        };
        let (a, b) = (tr(va), tr(vb));
        let test = Test::choose(design, a.len(), b.len(), level);
        let p = match test {
            Test::SignFlip => exact::sign_flip_p(&pair_differences(&a, &b), seed),
            Test::PairedT => parametric::paired(&pair_differences(&a, &b)).map(|t| t.p()),
            Test::Permutation => exact::permutation_p(&a, &b, seed),
            Test::Welch => parametric::welch(&a, &b).map(|t| t.p()),
        };
        LineTest {
            test,
            p: p.unwrap_or(1.0),
            log,
            a,
            b,
        }
    }

    /// The smallest change this test calls significant at `level` with this scatter, in the
    /// line's unit (% of `base` for a relative metric, points for the error rate).
    fn detectable(&self, metric: Metric, base: f64, level: f64, seed: u64) -> Option<f64> {
        let (a, b) = (&self.a, &self.b);
        let c = match self.test {
            Test::Permutation => exact::critical_difference(a, b, level, seed),
            Test::Welch => parametric::welch(a, b).map(|t| t.critical_difference(level)),
            Test::SignFlip => exact::sign_flip_critical(&pair_differences(a, b), level, seed),
            Test::PairedT => {
                parametric::paired(&pair_differences(a, b)).map(|t| t.critical_difference(level))
            }
        }?;
        let pct = if self.log {
            c.exp_m1() * 100.0
        } else if metric.is_relative() {
            c * 100.0 / base.abs()
        } else {
            c
        };
        pct.is_finite().then_some(pct)
    }
}

/// B − A of each pair.
fn pair_differences(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| y - x).collect()
}

/// Verdicts of lines measured on run-level values, judged together: per line an exact test when
/// the runs allow one to reach the level and a t-test otherwise (see [`Test`]),
/// Benjamini–Hochberg over all lines, the noise floor, and (where nothing changed significantly)
/// the minimum detectable change. The core of compare, which the calibration harness drives
/// directly; bootstrap intervals are left to the caller (they are for display). With
/// [`Design::Paired`] every line's A and B values are in pair order, as many on each side.
pub fn judge(lines: &[RunLine], design: Design, opts: &CompareOptions) -> Vec<MetricDelta> {
    let tests: Vec<LineTest> = lines
        .iter()
        .enumerate()
        .map(|(i, (m, a, b))| LineTest::new(*m, a, b, design, opts.level, i as u64))
        .collect();
    let ps: Vec<f64> = tests.iter().map(|t| t.p).collect();
    let qs = exact::benjamini_hochberg(&ps);
    lines
        .iter()
        .zip(tests.iter().zip(qs))
        .enumerate()
        .map(|(i, ((metric, va, vb), (t, q)))| {
            let mut d = measured(*metric, (va, vb), (va, vb), Basis::Runs, opts);
            d.p_value = Some(t.p);
            d.q_value = Some(q);
            d.test = Some(t.test);
            d.verdict = match d.change_pct {
                Some(c) if q <= opts.level && c != 0.0 && c.abs() > d.noise_floor_pct => {
                    direction(*metric, c)
                }
                Some(_) => Verdict::NoSignificantChange,
                None if d.a == d.b => Verdict::NoSignificantChange,
                None => Verdict::Unknown,
            };
            if d.verdict == Verdict::NoSignificantChange {
                d.mde_pct = t
                    .detectable(*metric, d.a, opts.level, i as u64)
                    .map(|c| c.max(d.noise_floor_pct));
            }
            d
        })
        .collect()
}

/// Settings, server version and extensions that differ between two runs (see [`settings`]).
pub fn settings_diff(a: &RunDocument, b: &RunDocument) -> Vec<SettingChange> {
    settings::diff(&a.target.server, &b.target.server)
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
    w.extend(settings::warnings(&fa.target.server, &fb.target.server));
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
    }
    w
}

/// The pairs of an interleaved study found in two sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pairing {
    /// The study's id.
    pub study: String,
    /// Pairs tested (one run of each side per pair).
    pub pairs: usize,
}

/// The pairing of `a` and `b` when both come from one study: every run marked with the same
/// study id, all of A on one side and all of B on the other, and each pair index once on each
/// side. Both sides are then put in pair order.
fn pairing<'d>(a: &mut [&'d RunDocument], b: &mut [&'d RunDocument]) -> Option<Pairing> {
    let lead: &'d RunDocument = a.first().copied()?;
    let first = lead.study.as_ref()?;
    let side_of = |runs: &[&RunDocument]| -> Option<(String, Vec<u32>)> {
        let marks: Vec<&crate::report::model::StudyMark> = runs
            .iter()
            .map(|d| d.study.as_ref().filter(|s| s.id == first.id))
            .collect::<Option<_>>()?;
        let side = marks.first()?.side.clone();
        marks.iter().all(|m| m.side == side).then_some(())?;
        let mut pairs: Vec<u32> = marks.iter().map(|m| m.pair).collect();
        pairs.sort_unstable();
        Some((side, pairs))
    };
    let ((sa, pa), (sb, pb)) = (side_of(a)?, side_of(b)?);
    let distinct = pa.windows(2).all(|w| w[0] < w[1]);
    if sa == sb || pa != pb || !distinct || pa.len() < 2 {
        return None;
    }
    let study = first.id.clone();
    let key = |d: &&RunDocument| d.study.as_ref().map_or(0, |s| s.pair);
    a.sort_by_key(key);
    b.sort_by_key(key);
    Some(Pairing {
        study,
        pairs: pa.len(),
    })
}

/// Compares side A (baseline) with side B.
pub fn compare(a: &Side, b: &Side, opts: &CompareOptions) -> Comparison {
    let mut ar: Vec<&RunDocument> = a.runs.iter().collect();
    let mut br: Vec<&RunDocument> = b.runs.iter().collect();
    let mut pairing = pairing(&mut ar, &mut br);
    let mut names = vec!["all".to_string()];
    if let (Some(la), Some(lb)) = (&ar[0].load, &br[0].load) {
        for q in &la.queries {
            if lb.queries.iter().any(|x| x.name == q.name) {
                names.push(q.name.clone());
            }
        }
    }
    let mut scopes = Vec::new();
    let mut run_lines = Vec::new();
    let mut placed = Vec::new();
    if ar[0].load.is_some() && br[0].load.is_some() {
        for (i, n) in names.iter().enumerate() {
            let mut metrics = Vec::new();
            for (j, m) in Metric::ALL.iter().enumerate() {
                let (va, vb) = (values(&ar, n, *m), values(&br, n, *m));
                let seed = (i * 16 + j) as u64;
                if va.len() >= 2 && vb.len() >= 2 {
                    placed.push((i, j, seed));
                    run_lines.push((*m, va, vb));
                    // Replaced below, once every line's p-value is known.
                    metrics.push(measured(*m, (&[], &[]), (&[], &[]), Basis::None, opts));
                } else {
                    metrics.push(hint((ar[0], br[0]), n, *m, (&va, &vb), opts, seed));
                }
            }
            scopes.push(ScopeDelta {
                name: n.clone(),
                metrics,
            });
        }
    }
    // A query type missing from some run would misalign the pairs: test such sides as
    // independent sets.
    if run_lines
        .iter()
        .any(|(_, va, vb)| va.len() != ar.len() || vb.len() != br.len())
    {
        pairing = None;
    }
    let design = if pairing.is_some() {
        Design::Paired
    } else {
        Design::Independent
    };
    let judged = judge(&run_lines, design, opts);
    for (((i, j, seed), mut d), (m, va, vb)) in placed.into_iter().zip(judged).zip(&run_lines) {
        d.ci_pct = change_ci(*m, va, vb, seed);
        scopes[i].metrics[j] = d;
    }
    let mut warnings = fairness_warnings(&ar, &br);
    warnings.extend(drift::warnings("A", &ar, opts.level));
    warnings.extend(drift::warnings("B", &br, opts.level));
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
        level: opts.level,
        lines_tested: run_lines.len(),
        pairing,
        settings_diff: settings_diff(ar[0], br[0]),
        warnings,
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

/// Parses a significance level: `5%` or `0.05`, strictly between 0 and 50 %.
pub fn parse_level(s: &str) -> anyhow::Result<f64> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    };
    match v {
        Ok(v) if v > 0.0 && v < 0.5 => Ok(v),
        _ => Err(crate::error::usage(format!(
            "--level '{s}' is not a significance level; write e.g. 5% or 0.05"
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
        assert_eq!(parse_level("5%").unwrap(), 0.05);
        assert_eq!(parse_level("0.1").unwrap(), 0.1);
        for bad in ["0", "50%", "x", "NaN"] {
            let e = parse_level(bad).unwrap_err();
            assert_eq!(crate::error::exit_kind(&e), crate::error::ExitKind::Usage);
        }
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
            p_value: None,
            q_value: None,
            mde_pct: None,
            verdict,
            basis,
            test: None,
        };
        assert!(d(Verdict::Regressed, Basis::Runs, 8.0).fails(5.0));
        assert!(!d(Verdict::Regressed, Basis::Runs, 4.0).fails(5.0));
        assert!(!d(Verdict::Regressed, Basis::IntervalHint, 80.0).fails(5.0));
        assert!(!d(Verdict::Improved, Basis::Runs, -80.0).fails(5.0));
    }
}
