//! `pgstorm trend`: the archived runs of a label (or of every label) over time, each point
//! annotated with the settings that changed since the previous run of the same label, so a
//! folder of archived runs reads as a history of tuning decisions. A terminal table and one
//! self-contained HTML page (inline SVG chart, no script).
//!
//! Invariants: built from the result folders' run.json documents only (the index is reconciled
//! first, never trusted alone); runs are ordered by start time within a label; the settings
//! changes come from the same diff `compare` prints ([`super::settings_diff`]), so the
//! two never disagree about what changed; a run without the metric (a sweep, an isolation run)
//! is listed with a blank value but still carries its settings changes forward.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Result;

use super::Metric;
use crate::error;
use crate::report::html::charts::{line_chart, ChartSpec, Series};
use crate::report::html::{self, esc};
use crate::report::model::RunDocument;

/// The name of each metric on the command line (`--metric`), in [`Metric::ALL`] order.
pub const METRIC_NAMES: [(Metric, &str); 7] = [
    (Metric::Tps, "tps"),
    (Metric::Mean, "mean"),
    (Metric::P50, "p50"),
    (Metric::P95, "p95"),
    (Metric::P99, "p99"),
    (Metric::P999, "p99.9"),
    (Metric::ErrorRate, "errors"),
];

/// Parses `--metric`.
pub fn parse_metric(s: &str) -> Result<Metric> {
    METRIC_NAMES
        .iter()
        .find(|(_, n)| *n == s)
        .map(|(m, _)| *m)
        .ok_or_else(|| {
            let names: Vec<&str> = METRIC_NAMES.iter().map(|(_, n)| *n).collect();
            error::usage(format!(
                "--metric {s}: unknown metric; use one of {}",
                names.join(", ")
            ))
        })
}

/// The metric of a run's whole mix, None when it has no query load.
fn metric_of(metric: Metric, doc: &RunDocument) -> Option<f64> {
    Some(metric.of(&doc.load.as_ref()?.summary))
}

/// One run on a trend.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The result folder's name.
    pub run_id: String,
    /// Start time (RFC 3339).
    pub started_at: String,
    /// The metric, None when the run has none.
    pub value: Option<f64>,
    /// Change of the metric against the previous run of the label that had one, in %.
    pub change_pct: Option<f64>,
    /// "name: old -> new" for each setting (and the server version) that differs from the
    /// previous run of the label; empty for the first run.
    pub changes: Vec<String>,
}

/// The runs of each label (only `label` when given), in start order.
pub fn trends(
    docs: &[RunDocument],
    label: Option<&str>,
    metric: Metric,
) -> BTreeMap<String, Vec<Point>> {
    let mut by_label: BTreeMap<String, Vec<&RunDocument>> = BTreeMap::new();
    for d in docs.iter().filter(|d| label.is_none_or(|l| d.label == l)) {
        by_label.entry(d.label.clone()).or_default().push(d);
    }
    by_label
        .into_iter()
        .map(|(l, mut runs)| {
            runs.sort_by(|a, b| (&a.started_at, &a.run_id).cmp(&(&b.started_at, &b.run_id)));
            let mut points = Vec::with_capacity(runs.len());
            let mut last_value = None;
            for (i, d) in runs.iter().enumerate() {
                let changes = match i.checked_sub(1).map(|p| runs[p]) {
                    Some(prev) => super::settings_diff(prev, d)
                        .into_iter()
                        .map(|c| {
                            format!(
                                "{}: {} -> {}",
                                c.name,
                                c.a.as_deref().unwrap_or("(unset)"),
                                c.b.as_deref().unwrap_or("(unset)")
                            )
                        })
                        .collect(),
                    None => Vec::new(),
                };
                let value = metric_of(metric, d);
                let change_pct = match (last_value, value) {
                    (Some(a), Some(b)) if a != 0.0 => Some((b - a) / a * 100.0),
                    _ => None,
                };
                if value.is_some() {
                    last_value = value;
                }
                points.push(Point {
                    run_id: d.run_id.clone(),
                    started_at: d.started_at.clone(),
                    value,
                    change_pct,
                    changes,
                });
            }
            (l, points)
        })
        .collect()
}

fn value_text(v: Option<f64>, metric: Metric) -> String {
    match (v, metric) {
        (None, _) => String::new(),
        (Some(v), Metric::Tps) => format!("{v:.1}"),
        (Some(v), _) => format!("{v:.3}"),
    }
}

fn change_text(c: Option<f64>) -> String {
    c.map(|c| format!("{c:+.1}%")).unwrap_or_default()
}

/// The terminal table: one block per label.
pub fn render_text(trends: &BTreeMap<String, Vec<Point>>, metric: Metric) -> String {
    let mut s = String::new();
    let w = trends
        .values()
        .flatten()
        .map(|p| p.run_id.len())
        .max()
        .unwrap_or(0)
        .max(3);
    for (label, points) in trends {
        let _ = writeln!(
            s,
            "label {label}: {} over {} run(s)",
            metric.label(),
            points.len()
        );
        let _ = writeln!(
            s,
            "  {:<w$} {:<24} {:>12} {:>8}  settings changed since the previous run",
            "run", "started", "value", "change"
        );
        for p in points {
            let changes = if p.changes.is_empty() {
                "-".to_string()
            } else {
                p.changes.join("; ")
            };
            let _ = writeln!(
                s,
                "  {:<w$} {:<24} {:>12} {:>8}  {changes}",
                p.run_id,
                p.started_at,
                value_text(p.value, metric),
                change_text(p.change_pct)
            );
        }
    }
    s
}

/// The y axis description of `metric`, with its unit in parentheses.
fn axis_label(metric: Metric) -> String {
    let l = metric.label();
    if let Some(p) = l.strip_suffix(" ms") {
        format!("{p} latency (ms)")
    } else if let Some(p) = l.strip_suffix(" %") {
        format!("{p} rate (%)")
    } else if metric == Metric::Tps {
        "throughput (tx/s)".into()
    } else {
        format!("{l} (value)")
    }
}

/// The HTML page: one chart (a series per label, x = run number within the label) and, per
/// label, the table of runs with the settings changes that explain the steps.
pub fn page(trends: &BTreeMap<String, Vec<Point>>, metric: Metric) -> String {
    let series: Vec<Series> = trends
        .iter()
        .map(|(label, points)| Series {
            name: label.clone(),
            points: points
                .iter()
                .enumerate()
                .filter_map(|(i, p)| p.value.map(|v| ((i + 1) as f64, v)))
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    let mut body = format!("<h1>pgstorm trend: {}</h1>\n", esc(metric.label()));
    if !series.is_empty() {
        body.push_str(&line_chart(
            &ChartSpec {
                title: metric.label(),
                x_label: "run number within the label (in start order)",
                y_label: &axis_label(metric),
                log_x: false,
                log_y: false,
                x_fmt: Some(|x| format!("{x:.0}")),
            },
            &series,
        ));
    }
    let better = if metric.higher_is_better() {
        "higher is better"
    } else {
        "lower is better"
    };
    for (label, points) in trends {
        let _ = writeln!(
            body,
            "<h2>{}</h2>\n<p class=\"meta\">{} run(s); {}</p>\n<table><tr><th>#</th><th>run</th>\
             <th>started</th><th>{}</th><th>change</th><th>settings changed since the previous \
             run</th></tr>",
            esc(label),
            points.len(),
            better,
            esc(metric.label())
        );
        for (i, p) in points.iter().enumerate() {
            let changes: Vec<String> = p.changes.iter().map(|c| esc(c)).collect();
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td></tr>",
                i + 1,
                esc(&p.run_id),
                esc(&p.started_at),
                value_text(p.value, metric),
                change_text(p.change_pct),
                if changes.is_empty() { "&ndash;".to_string() } else { changes.join("<br>") }
            );
        }
        body.push_str("</table>\n");
    }
    html::page(&format!("pgstorm trend: {}", metric.label()), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick_run() -> RunDocument {
        let text = include_str!("../../results/20261126T223209Z-quick/run.json");
        serde_json::from_str(text).expect("an archived run loads")
    }

    /// Three runs of one label: the second raises shared_buffers and throughput, the third
    /// changes nothing but is slower.
    fn history() -> Vec<RunDocument> {
        let base = quick_run();
        let mut runs = Vec::new();
        for (i, (sb, tps)) in [("128MB", 1000.0), ("1GB", 1250.0), ("1GB", 1200.0)]
            .into_iter()
            .enumerate()
        {
            let mut d = base.clone();
            d.run_id = format!("run{i}");
            d.label = "study".into();
            d.started_at = format!("2026-11-2{i}T10:00:00Z");
            d.target
                .server
                .settings
                .insert("shared_buffers".into(), sb.into());
            d.load.as_mut().unwrap().summary.tps = tps;
            runs.push(d);
        }
        // Out of order on disk: the trend sorts by start time.
        runs.swap(0, 2);
        runs
    }

    #[test]
    fn each_point_names_the_settings_changed_since_the_previous_run() {
        let t = trends(&history(), Some("study"), Metric::Tps);
        let points = &t["study"];
        assert_eq!(
            points.iter().map(|p| p.run_id.as_str()).collect::<Vec<_>>(),
            ["run0", "run1", "run2"]
        );
        assert!(points[0].changes.is_empty());
        assert_eq!(points[1].changes, ["shared_buffers: 128MB -> 1GB"]);
        assert!(points[2].changes.is_empty(), "{:?}", points[2].changes);
        assert_eq!(points[1].change_pct, Some(25.0));
        assert_eq!(points[2].change_pct, Some(-4.0));
        let text = render_text(&t, Metric::Tps);
        assert!(text.contains("shared_buffers: 128MB -> 1GB"), "{text}");
        assert!(text.contains("+25.0%"), "{text}");
        let html = page(&t, Metric::Tps);
        assert!(html.contains("<svg") && html.contains("shared_buffers: 128MB -&gt; 1GB"));
    }

    #[test]
    fn other_labels_are_left_out_when_one_is_asked_for() {
        let mut docs = history();
        let mut other = quick_run();
        other.label = "other".into();
        docs.push(other);
        assert_eq!(trends(&docs, Some("study"), Metric::P99).len(), 1);
        assert_eq!(trends(&docs, None, Metric::P99).len(), 2);
        assert!(trends(&docs, Some("nothing"), Metric::P99).is_empty());
    }

    #[test]
    fn an_unknown_metric_is_a_usage_error_naming_the_choices() {
        let e = parse_metric("latency").unwrap_err();
        assert_eq!(error::exit_kind(&e), error::ExitKind::Usage);
        assert!(format!("{e}").contains("tps, mean, p50, p95, p99, p99.9, errors"));
        assert_eq!(parse_metric("p99.9").unwrap(), Metric::P999);
    }
}
