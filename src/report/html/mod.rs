//! `report.html`: one self-contained page per run with SVG charts, and the building blocks
//! (page frame, escaping, charts) the other pages (compare, trend) are made of.
//!
//! Invariants: the page needs nothing but itself (inline CSS and inline SVG, no script, no
//! network); it is rendered from the result document only, so `pgstorm report <folder>` gives the
//! same page as the run did. Sections are independent functions over the document listed in
//! [`RUN_SECTIONS`]: a section whose data is absent renders nothing. Document sections without a
//! dedicated renderer (added by newer scenarios) still show: arrays of points with a `t_s` field
//! become time charts, arrays of records become tables, scalars a key/value table (see
//! [`generic`]). To give a new section a dedicated renderer, add a function to `RUN_SECTIONS` and
//! its key to [`generic::HANDLED`].

mod analysis;
pub mod charts;
mod connections;
mod details;
pub mod generic;
mod isolation;
pub mod panels;
mod resources;
mod sweep;
mod verdict;

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use super::model::{LoadResult, RunDocument};
use crate::hist::{self, Hist};
use charts::{line_chart, ChartSpec, Series};

/// HTML-escapes text.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Appends one two-cell table row per (key, value), both HTML-escaped: the key/value tables of
/// the run page (load health, the settings snapshot, the connection section, generic records).
pub fn kv_rows<K: AsRef<str>, V: AsRef<str>>(
    out: &mut String,
    rows: impl IntoIterator<Item = (K, V)>,
) {
    for (k, v) in rows {
        out.push_str("<tr><td>");
        out.push_str(&esc(k.as_ref()));
        out.push_str("</td><td>");
        out.push_str(&esc(v.as_ref()));
        out.push_str("</td></tr>");
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {}", path.display(), e.error))?;
    Ok(())
}

const STYLE: &str = "body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:16px auto;max-width:960px;color:#222;background:#fff;padding:0 12px}\
h1{font-size:21px;margin:0 0 2px}h2{font-size:17px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}h3{font-size:15px;margin-top:18px}\
table{border-collapse:collapse;font-size:13px;margin:8px 0;max-width:100%}th,td{border:1px solid #ddd;padding:3px 8px;text-align:right;vertical-align:top}\
th{background:#f4f6f8}td:first-child,th:first-child{text-align:left}td.note,td.sql{text-align:left;color:#555;font-size:12px;overflow-wrap:anywhere}#criteria th:last-child,.kv td{text-align:left}\
.meta{color:#555;font-size:13px}.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:5px 10px;margin:4px 0;font-size:13px}\
.bad{color:#b00020;font-weight:bold}.good{color:#0a7d28;font-weight:bold}.err{color:#b00020}\
.verdict{font-size:17px;font-weight:bold;margin:8px 0;padding:6px 12px;border-radius:4px;background:#f4f6f8}\
.verdict.pass{background:#e3f5e8;color:#0a6b23}.verdict.fail{background:#fde7ea;color:#9b001a}\
.matrix td.v,.matrix th{text-align:center}.matrix td.v{font-weight:bold}.v.ok{background:#e3f5e8;color:#0a6b23}.v.permitted{background:#e8f0fb;color:#1f4e8c}.v.violation{background:#fde7ea;color:#9b001a}\
.explain{font-size:13px;color:#333}.card{border:1px solid #ddd;border-left:5px solid #888;border-radius:4px;padding:8px 12px;margin:10px 0;font-size:13px}\
.card.warning{border-left-color:#f0a020}.card.critical{border-left-color:#b00020}.card.info{border-left-color:#4a7fc1}.card p{margin:4px 0}\
.sev{text-transform:uppercase;font-size:11px;font-weight:bold;color:#555}pre{background:#f6f8fa;padding:6px 8px;overflow-x:auto;white-space:pre-wrap;font-size:12px;margin:4px 0}\
summary{cursor:pointer;font-weight:bold;font-size:14px;margin:8px 0}figure{margin:8px 0}svg{display:block;max-width:100%;height:auto}\
@media print{body{max-width:none;margin:0}h2{break-after:avoid}figure,.card,table{break-inside:avoid}}";

/// A whole page around `body`, with the shared style.
pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head>\n<body>\n{body}\n<p class=\"meta\">pgstorm {}</p></body></html>\n",
        esc(title),
        env!("CARGO_PKG_VERSION")
    )
}

/// One renderer: the HTML of its section, or None when the document has no data for it.
pub type Section = fn(&RunDocument) -> Option<String>;

/// The sections of a run page, in order.
pub const RUN_SECTIONS: &[Section] = &[
    verdict::section,
    sweep::section,
    summary_table,
    latency_spectrum,
    throughput_over_time,
    details::load_health,
    pool,
    connections::section,
    resources::section,
    isolation::section,
    analysis::section,
    merged_from,
    details::run_context,
];

/// The page of one run.
pub fn run_page(doc: &RunDocument) -> String {
    let mut body = String::new();
    for s in RUN_SECTIONS {
        if let Some(html) = s(doc) {
            body.push_str(&html);
        }
    }
    body.push_str(&generic::other_sections(doc));
    page(&format!("pgstorm {}", doc.run_id), &body)
}

fn summary_table(doc: &RunDocument) -> Option<String> {
    let l = doc.load.as_ref()?;
    let mut s = String::from(
        "<h2>Latency and throughput</h2>\n<table><tr><th>query</th><th>count</th><th>errors</th><th>tps</th>\
         <th>mean ms</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th></tr>\n",
    );
    for q in l.queries.iter().chain(std::iter::once(&l.summary)) {
        let t = &q.latency;
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td></tr>",
            esc(&q.name),
            q.count,
            q.errors.values().sum::<u64>(),
            q.tps,
            t.mean_ms,
            t.p50_ms,
            t.p95_ms,
            t.p99_ms,
            t.p999_ms,
            t.max_ms
        );
    }
    s.push_str("</table>\n");
    Some(s)
}

fn hists(l: &LoadResult) -> Vec<(String, Hist)> {
    l.queries
        .iter()
        .chain(std::iter::once(&l.summary))
        .filter_map(|q| {
            hist::decode(&q.latency.histogram)
                .ok()
                .map(|h| (q.name.clone(), h))
        })
        .collect()
}

fn latency_spectrum(doc: &RunDocument) -> Option<String> {
    let l = doc.load.as_ref()?;
    let svg = charts::spectrum("Latency percentile spectrum by query type", &hists(l));
    let names: Vec<String> = hists(l).into_iter().map(|(n, _)| n).collect();
    (!svg.is_empty()).then(|| panels::figure(&svg, &names.join("|")))
}

fn throughput_over_time(doc: &RunDocument) -> Option<String> {
    let l = doc.load.as_ref()?;
    if l.timeseries.is_empty() {
        return None;
    }
    let ts = &l.timeseries;
    let spec = |title, y_label| ChartSpec {
        title,
        x_label: "time since the load started (s)",
        y_label,
        log_x: false,
        log_y: false,
        x_fmt: None,
    };
    let tps = line_chart(
        &spec("Throughput", "throughput (tx/s)"),
        &[Series {
            name: "tps".into(),
            points: ts.iter().map(|p| (p.t_s, p.tps)).collect(),
        }],
    );
    let lat = line_chart(
        &spec("Latency per interval", "latency (ms)"),
        &[
            Series {
                name: "p99".into(),
                points: ts.iter().map(|p| (p.t_s, p.p99_ms)).collect(),
            },
            Series {
                name: "p50".into(),
                points: ts.iter().map(|p| (p.t_s, p.p50_ms)).collect(),
            },
        ],
    );
    let warm = ts.iter().filter(|p| p.warmup).count();
    let note = if warm > 0 {
        format!("<p class=\"meta\">the first {warm} interval(s) are warmup, excluded from the totals</p>\n")
    } else {
        String::new()
    };
    Some(format!(
        "<h3>Over time</h3>\n{note}{}{}",
        panels::figure(&tps, "tps"),
        panels::figure(&lat, "p99|p50")
    ))
}

fn pool(doc: &RunDocument) -> Option<String> {
    let p = &doc.load.as_ref()?.pool;
    let row = |n: &str, l: &super::model::LatencySummary| {
        format!(
            "<tr><td>{n}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td></tr>\n",
            l.count, l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms
        )
    };
    Some(format!(
        "<h3>Pool</h3>\n<p class=\"meta\">{} connections opened, {} connect failures</p>\n\
         <table><tr><th></th><th>count</th><th>p50 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th></tr>\n{}{}</table>\n",
        p.connections_opened,
        p.connect_failures,
        row("checkout wait", &p.checkout_wait),
        row("connect", &p.connect)
    ))
}

fn merged_from(doc: &RunDocument) -> Option<String> {
    let m = doc.merged_from.as_ref()?;
    let mut s = String::from(
        "<h2>Merged load machines</h2>\n<table><tr><th>run</th><th>host</th><th>started</th><th>count</th></tr>\n",
    );
    for r in m {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.run_id),
            esc(&r.hostname),
            esc(&r.started_at),
            r.count
        );
    }
    s.push_str("</table>\n");
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_rows_escape_both_cells_and_keep_their_order() {
        let mut s = String::from("<table>");
        kv_rows(&mut s, [("a<b", "x & y"), ("pgstorm's CPU", "1 µs")]);
        assert_eq!(
            s,
            "<table><tr><td>a&lt;b</td><td>x &amp; y</td></tr>\
             <tr><td>pgstorm&#39;s CPU</td><td>1 µs</td></tr>"
        );
        let before = s.clone();
        kv_rows(&mut s, Vec::<(String, String)>::new());
        assert_eq!(s, before, "no rows, nothing written");
    }
}
