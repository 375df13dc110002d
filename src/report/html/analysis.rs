//! The advisor's part of report.html: each finding as a card (severity, what was seen, the
//! evidence, the rule and its source, the action, the SQL in a code block, the plan collapsed),
//! then the tables behind them (index usage, table activity, plans, top statements) collapsed.
//!
//! Invariants: rendered from `analysis` only; evidence values are printed as text, never as
//! JSON; a nested evidence value is flattened to `key value` pairs.

use std::fmt::Write as _;

use serde_json::Value;

use super::esc;
use super::panels::human;
use crate::report::findings::{AnalysisSection, TopStatement};
use crate::report::model::RunDocument;

/// The section, or None without an analysis.
pub fn section(doc: &RunDocument) -> Option<String> {
    let a = doc.analysis.as_ref()?;
    let mut s = format!(
        "<h2>Findings</h2>\n<p class=\"meta\">{} finding(s) over a {:.0} s window, {}; pg_stat_statements {}</p>\n",
        a.findings.len(),
        a.window_s,
        esc(&a.scope),
        esc(&a.pg_stat_statements)
    );
    for f in &a.findings {
        let sev = f.severity.as_str();
        let evidence: Vec<String> = f
            .evidence
            .iter()
            .map(|(k, v)| format!("{} <b>{}</b>", esc(&k.replace('_', " ")), esc(&text(v))))
            .collect();
        let _ = write!(
            s,
            "<div class=\"card {sev}\"><span class=\"sev\">{sev}</span> <b>{}</b>\
             <p>evidence: {}</p><p class=\"meta\">rule: {} ({})</p><p><b>action:</b> {}</p>",
            esc(&f.title),
            evidence.join(", "),
            esc(&f.threshold),
            esc(&f.source),
            esc(&f.action)
        );
        if let Some(sql) = &f.sql {
            let _ = write!(s, "<pre><code>{}</code></pre>", esc(sql));
        }
        if let Some(plan) = &f.plan {
            let _ = write!(
                s,
                "<details><summary>plan</summary><pre>{}</pre></details>",
                esc(plan)
            );
        }
        s.push_str("</div>\n");
    }
    for n in &a.notes {
        let _ = writeln!(s, "<p class=\"meta\">note: {}</p>", esc(n));
    }
    tables(a, &mut s);
    Some(s)
}

/// A JSON value as plain text (objects and arrays flattened).
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), human_exact),
        Value::Bool(b) => b.to_string(),
        Value::Null => "none".into(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        Value::Object(m) => m
            .iter()
            .map(|(k, x)| format!("{} {}", k.replace('_', " "), text(x)))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Integers as integers, other numbers as [`human`] does.
fn human_exact(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        human(v)
    }
}

fn tables(a: &AnalysisSection, s: &mut String) {
    if !a.indexes.is_empty() {
        s.push_str("<details><summary>Index usage</summary><table><tr><th>index</th><th>table</th><th>scans</th><th>entries read</th><th>rows fetched</th><th>size (MiB)</th></tr>\n");
        for i in &a.indexes {
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td></tr>",
                esc(&i.index),
                esc(&i.table),
                i.idx_scan,
                i.idx_tup_read,
                i.idx_tup_fetch,
                i.size_bytes as f64 / super::panels::MIB
            );
        }
        s.push_str("</table></details>\n");
    }
    if !a.tables.is_empty() {
        s.push_str("<details><summary>Table activity</summary><table><tr><th>table</th><th>live rows</th><th>dead rows</th><th>seq scans</th><th>index scans</th><th>inserted</th><th>updated (HOT)</th><th>deleted</th><th>heap hit %</th></tr>\n");
        for t in &a.tables {
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td></tr>",
                esc(&t.table),
                t.live_rows,
                t.dead_rows,
                t.seq_scan,
                t.idx_scan,
                t.inserted,
                t.updated,
                t.hot_updated,
                t.deleted,
                t.heap_hit_ratio
                    .map(|r| format!("{:.1}", r * 100.0))
                    .unwrap_or_default()
            );
        }
        s.push_str("</table></details>\n");
    }
    if !a.plans.is_empty() {
        s.push_str("<details><summary>Plans of the workload's statements</summary>\n");
        for p in &a.plans {
            let _ = writeln!(
                s,
                "<p><b>{}</b>: {:.3} ms, {} temp blocks written{}</p><pre>{}</pre>",
                esc(&p.query_type),
                p.execution_ms,
                p.temp_blocks_written,
                p.error
                    .as_ref()
                    .map(|e| format!(" <span class=\"err\">{}</span>", esc(e)))
                    .unwrap_or_default(),
                esc(&p.plan)
            );
        }
        s.push_str("</details>\n");
    }
    top(s, "Top statements by total time", &a.top_by_total_time);
    top(s, "Top statements by mean time", &a.top_by_mean_time);
}

fn top(s: &mut String, title: &str, rows: &[TopStatement]) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "<details><summary>{title}</summary><table><tr><th>statement</th><th>calls</th><th>total ms</th><th>mean ms</th><th>rows</th><th>temp blocks</th></tr>"
    );
    for t in rows {
        let _ = writeln!(
            s,
            "<tr><td class=\"sql\">{}</td><td>{}</td><td>{:.1}</td><td>{:.3}</td><td>{}</td><td>{}</td></tr>",
            esc(&t.query),
            t.calls,
            t.total_ms,
            t.mean_ms,
            t.rows,
            t.temp_blks_written
        );
    }
    s.push_str("</table></details>\n");
}
