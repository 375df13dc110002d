//! Drift within a set of runs: a monotone trend of the run-level values (exact Mann–Kendall over
//! the runs in the order they started), which means the target changes under the runs (dead rows
//! piling up, caches warming) and a compare of two sets would blame the change under test for it.
//!
//! Invariants: the throughput and the mean latency of the `all` scope are tested (a closed loop
//! shows drift in both, an open loop at a fixed rate in the latency only), adjusted together with
//! Benjamini–Hochberg at the level, so a steady set is flagged at most at that rate; a set too
//! short for any ordering to reach the level says so instead of passing silently.

use super::{exact, values, Metric};
use crate::report::model::RunDocument;

/// The figures watched for drift.
const WATCHED: [Metric; 2] = [Metric::Tps, Metric::Mean];

/// The set's runs in the order they started.
fn in_time_order<'a>(runs: &[&'a RunDocument]) -> Vec<&'a RunDocument> {
    let mut v = runs.to_vec();
    v.sort_by(|a, b| a.started_at.cmp(&b.started_at));
    v
}

/// Drift warnings of a set just run, named by its label, at compare's default level; printed and
/// kept in set.json so the set says it before anyone compares it.
pub fn of_set(label: &str, runs: &[&RunDocument]) -> Vec<String> {
    let w = warnings(
        &format!("set {label}"),
        runs,
        super::CompareOptions::default().level,
    );
    for x in &w {
        eprintln!("pgstorm: warning: {x}");
    }
    w
}

/// Warnings about drift within the runs of one side (named `side`, e.g. `A` or a set label);
/// empty for a single run or a steady set.
pub fn warnings(side: &str, runs: &[&RunDocument], level: f64) -> Vec<String> {
    let n = runs.len();
    if n < 2 {
        return Vec::new();
    }
    if exact::smallest_trend_p(n) > level {
        let enough = (2..)
            .find(|&k| exact::smallest_trend_p(k) <= level)
            .unwrap_or(n);
        return vec![format!(
            "{side}: {n} runs are too few to check for drift (a trend over {n} runs cannot reach \
             p below {:.2} at the level {level}); {enough} runs can show it",
            exact::smallest_trend_p(n)
        )];
    }
    let ordered = in_time_order(runs);
    let trends: Vec<(Metric, exact::Trend)> = WATCHED
        .iter()
        .filter_map(|m| {
            let v = values(&ordered, "all", *m);
            (v.len() == n)
                .then(|| exact::mann_kendall(&v))
                .flatten()
                .map(|t| (*m, t))
        })
        .collect();
    let ps: Vec<f64> = trends.iter().map(|(_, t)| t.p).collect();
    let found: Vec<String> = trends
        .iter()
        .zip(exact::benjamini_hochberg(&ps))
        .filter(|(_, q)| *q <= level)
        .map(|((m, t), _)| {
            let way = if t.s > 0 { "rises" } else { "falls" };
            format!("{} {way} (Mann–Kendall S={}, p={:.3})", m.label(), t.s, t.p)
        })
        .collect();
    if found.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "{side}: the target drifts run over run: reset it between runs ({} over {n} runs)",
        found.join("; ")
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` copies of an archived run, started a minute apart, whose overall tps is `tps(i)`.
    fn set(n: usize, tps: impl Fn(usize) -> f64) -> Vec<RunDocument> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/results/20261126T223209Z-quick/run.json"
        );
        let template: RunDocument = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        (0..n)
            .map(|i| {
                let mut d = template.clone();
                d.started_at = format!("2026-01-01T00:{i:02}:00.000Z");
                d.load.as_mut().unwrap().summary.tps = tps(i);
                d
            })
            .collect()
    }

    fn check(docs: &[RunDocument]) -> Vec<String> {
        let refs: Vec<&RunDocument> = docs.iter().collect();
        warnings("A", &refs, 0.05)
    }

    #[test]
    fn a_steady_decline_is_drift_and_scatter_is_not() {
        // Positive control: 2 % less throughput every run, as dead rows pile up.
        let mut docs = set(5, |i| 1000.0 * (1.0 - 0.02 * i as f64));
        // Listed out of order: the test follows the start times, not the list.
        docs.swap(0, 3);
        let w = check(&docs);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("the target drifts run over run: reset it between runs")
                && w[0].contains("tps falls"),
            "{w:?}"
        );
        // Negative control: the same spread, no order.
        let scatter = [1000.0, 960.0, 1010.0, 950.0, 990.0];
        assert!(check(&set(5, |i| scatter[i])).is_empty());
    }

    #[test]
    fn three_runs_say_they_cannot_show_drift() {
        let w = check(&set(3, |i| 1000.0 - i as f64));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("too few to check for drift") && w[0].contains("5 runs"));
        assert!(check(&set(1, |_| 1.0)).is_empty());
    }
}
