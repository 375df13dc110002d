//! Rendering of document sections that have no dedicated renderer, from their JSON form, so a
//! section added to the document by a newer scenario (host or server monitoring, connection ramp
//! steps, criteria, findings ...) appears in report.html without touching this module.
//!
//! Rules: an array of records with a time field (`t_s`) becomes one time chart per numeric field;
//! any other array of records becomes a table; an object's scalar fields become a key/value table
//! and its other fields are rendered the same way, one level deeper. Serialized histograms
//! (`histogram` fields) are not shown as text.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::charts::{line_chart, ChartSpec, Series};
use super::{esc, kv_rows};
use crate::report::model::RunDocument;

/// JSON pointers of the parts that dedicated renderers (or the page header) already show.
pub const HANDLED: &[&str] = &[
    "/schema_version",
    "/pgstorm",
    "/run_id",
    "/label",
    "/scenario",
    "/command",
    "/started_at",
    "/finished_at",
    "/interrupted",
    "/host",
    "/target",
    "/dataset",
    "/warnings",
    "/merged_from",
    "/sweep",
    "/load/config",
    "/load/summary",
    "/load/queries",
    "/load/timeseries",
    "/load/pool/checkout_wait",
    "/load/pool/connect",
    "/load/pool/connections_opened",
    "/load/pool/connect_failures",
    "/load/measured_s",
    "/load/client",
    "/load/schedule_lag",
    "/load/co_corrected",
    "/load/server_check",
    "/load/stalls",
    "/load/aborted",
    "/target_lost_at",
    "/load_thread_panics",
    "/data_size",
    "/study",
    "/hygiene",
    "/criteria",
    "/analysis",
    "/isolation",
    "/connections",
    "/monitoring",
];

/// Names of the time field in a point of a time series.
const TIME_KEYS: &[&str] = &["t_s", "time_s", "elapsed_s"];
/// Numeric fields of a time series that are counters of the sampler, not measurements.
const SKIP_SERIES: &[&str] = &["tick"];
/// A chart per numeric field, at most this many per series (the rest go to the table view).
const MAX_CHARTS: usize = 12;
/// Table rows shown before the rest is summarized.
const MAX_ROWS: usize = 200;

/// The HTML of every part of `doc` not in [`HANDLED`].
pub fn other_sections(doc: &RunDocument) -> String {
    let Ok(v) = serde_json::to_value(doc) else {
        return String::new();
    };
    let mut out = String::new();
    walk("", &v, &mut out);
    out
}

fn is_handled_container(path: &str) -> bool {
    HANDLED
        .iter()
        .any(|h| h.starts_with(path) && h.as_bytes().get(path.len()) == Some(&b'/'))
}

fn walk(path: &str, v: &Value, out: &mut String) {
    if HANDLED.contains(&path) || v.is_null() {
        return;
    }
    if path.is_empty() || is_handled_container(path) {
        if let Value::Object(m) = v {
            for (k, child) in m {
                walk(&format!("{path}/{k}"), child, out);
            }
        }
        return;
    }
    let title = path
        .trim_start_matches('/')
        .replace('/', " / ")
        .replace('_', " ");
    let _ = writeln!(out, "<h2>{}</h2>", esc(&title));
    render(&title, v, out, 0);
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.3}"),
            _ => n.to_string(),
        }),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

fn time_key(m: &Map<String, Value>) -> Option<&'static str> {
    TIME_KEYS
        .iter()
        .copied()
        .find(|k| m.get(*k).is_some_and(Value::is_number))
}

fn render(title: &str, v: &Value, out: &mut String, depth: usize) {
    match v {
        Value::Object(m) => {
            let scalars: Vec<(&String, String)> = m
                .iter()
                .filter(|(k, _)| k.as_str() != "histogram")
                .filter_map(|(k, x)| scalar(x).map(|s| (k, s)))
                .collect();
            if !scalars.is_empty() {
                out.push_str("<table>");
                kv_rows(out, scalars);
                out.push_str("</table>\n");
            }
            for (k, x) in m.iter().filter(|(_, x)| scalar(x).is_none()) {
                let t = format!("{title} / {}", k.replace('_', " "));
                let h = (3 + depth).min(6);
                let _ = writeln!(out, "<h{h}>{}</h{h}>", esc(&t));
                render(&t, x, out, depth + 1);
            }
        }
        Value::Array(items) => {
            let records: Vec<&Map<String, Value>> =
                items.iter().filter_map(Value::as_object).collect();
            if records.is_empty() {
                let list: Vec<String> = items
                    .iter()
                    .map(|x| scalar(x).unwrap_or_else(|| x.to_string()))
                    .collect();
                let _ = writeln!(out, "<p>{}</p>", esc(&list.join(", ")));
            } else if let Some(tk) = time_key(records[0]) {
                time_charts(title, tk, &records, out);
            } else {
                table(&records, out);
            }
        }
        other => {
            let _ = writeln!(out, "<p>{}</p>", esc(&scalar(other).unwrap_or_default()));
        }
    }
}

fn time_charts(title: &str, tk: &str, records: &[&Map<String, Value>], out: &mut String) {
    let mut fields: Vec<&String> = Vec::new();
    for r in records {
        for (k, x) in r.iter() {
            if k != tk
                && !SKIP_SERIES.contains(&k.as_str())
                && x.is_number()
                && !fields.contains(&k)
            {
                fields.push(k);
            }
        }
    }
    let mut constant = Vec::new();
    for f in fields.iter().take(MAX_CHARTS) {
        let name = f.replace('_', " ");
        let series = Series {
            name: name.clone(),
            points: records
                .iter()
                .filter_map(|r| Some((r.get(tk)?.as_f64()?, r.get(f.as_str())?.as_f64()?)))
                .collect(),
        };
        if let Some(v) = super::panels::constant_value(&series) {
            constant.push(format!(
                "<span class=\"series\" data-series=\"{}\">{}: {}</span>",
                esc(&name),
                esc(&name),
                super::panels::human(v)
            ));
            continue;
        }
        let chart_title = format!("{title}: {name}");
        let y_label = format!("{name} ({})", unit_of(f));
        let svg = line_chart(
            &ChartSpec {
                title: &chart_title,
                x_label: "time (s)",
                y_label: &y_label,
                log_x: false,
                log_y: false,
                x_fmt: None,
            },
            &[Series {
                name: String::new(),
                points: series.points,
            }],
        );
        out.push_str(&super::panels::figure(&svg, &name));
    }
    if !constant.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"constant meta\">Constant, so not drawn: {}.</p>",
            constant.join("; ")
        );
    }
}

fn table(records: &[&Map<String, Value>], out: &mut String) {
    let mut cols: Vec<&String> = Vec::new();
    for r in records {
        for k in r.keys() {
            if k != "histogram" && !cols.contains(&k) {
                cols.push(k);
            }
        }
    }
    out.push_str("<table><tr>");
    for c in &cols {
        let _ = write!(out, "<th>{}</th>", esc(&c.replace('_', " ")));
    }
    out.push_str("</tr>\n");
    for r in records.iter().take(MAX_ROWS) {
        out.push_str("<tr>");
        for c in &cols {
            let cell = r.get(c.as_str()).map(cell).unwrap_or_default();
            let _ = write!(out, "<td>{}</td>", esc(&cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    if records.len() > MAX_ROWS {
        let _ = writeln!(
            out,
            "<p class=\"meta\">{} more rows in run.json</p>",
            records.len() - MAX_ROWS
        );
    }
}

/// A table cell: scalars as text, latency summaries as `p50 / p99 ms (n)`, other nested values
/// flattened to `key value` text (never JSON), without serialized histograms, cut to a readable
/// length.
fn cell(v: &Value) -> String {
    if let Some(s) = scalar(v) {
        return s;
    }
    let f = |k: &str| v.get(k).and_then(Value::as_f64);
    if let (Some(p50), Some(p99), Some(n)) = (f("p50_ms"), f("p99_ms"), f("count")) {
        return format!("p50 {p50:.3} / p99 {p99:.3} ms (n={n})");
    }
    let mut v = v.clone();
    if let Value::Object(m) = &mut v {
        m.remove("histogram");
    }
    let s = super::analysis::text(&v);
    if s.chars().count() > 160 {
        format!("{}…", s.chars().take(160).collect::<String>())
    } else {
        s
    }
}

/// The unit a field's name implies (`_ms`, `_s`, `_bytes`, `_percent` ...), for an axis label.
fn unit_of(field: &str) -> &'static str {
    const SUFFIXES: &[(&str, &str)] = &[
        ("_bytes_s", "bytes/s"),
        ("_per_s", "per s"),
        ("_ms", "ms"),
        ("_us", "µs"),
        ("_s", "s"),
        ("_bytes", "bytes"),
        ("_percent", "%"),
        ("_pct", "%"),
        ("_ratio", "ratio"),
    ];
    SUFFIXES
        .iter()
        .find(|(suf, _)| field.ends_with(suf))
        .map_or("count", |(_, u)| u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_time_series_become_charts_and_records_become_tables() {
        let v = serde_json::json!({
            "monitor": {"host": [
                {"t_s": 0.0, "cpu_pct": 10.0, "swap": 0},
                {"t_s": 1.0, "cpu_pct": 30.0, "swap": 0}
            ]},
            "goals": [{"name": "p99 under 50 ms", "passed": true, "detail": {"n": 3}}],
        });
        let mut out = String::new();
        walk("", &v, &mut out);
        assert_eq!(out.matches("<svg").count(), 1, "{out}");
        assert!(
            out.contains("cpu pct (%)"),
            "the axis names its unit: {out}"
        );
        assert!(
            out.contains("swap: 0"),
            "the constant series is noted: {out}"
        );
        assert!(out.contains("p99 under 50 ms"));
        assert!(out.contains("<td>n 3</td>"), "nested values as text: {out}");
        assert!(out.contains("<h2>goals</h2>"));
    }

    #[test]
    fn handled_parts_are_skipped_but_their_new_siblings_are_not() {
        let v = serde_json::json!({
            "run_id": "x",
            "load": {"config": {"clients": 3}, "ramp_steps": [{"clients": 10, "tps": 5.0}]},
        });
        let mut out = String::new();
        walk("", &v, &mut out);
        assert!(!out.contains("clients</td><td>3"), "{out}");
        assert!(out.contains("ramp steps"), "{out}");
    }
}
