//! The HTML page of a comparison (`pgstorm compare --html`), built from the report's building
//! blocks ([`crate::report::html`]: page frame, escaping, charts) so it looks like a run's page.
//!
//! Invariant: like every pgstorm page, one self-contained file (inline CSS and SVG, no script, no
//! network), rendered from the two sides' documents and the comparison only.

use std::fmt::Write as _;

use super::render::{self, verdict_text};
use super::{Comparison, Side, Verdict};
use crate::hist::{self, Hist};
use crate::report::html::charts::{self, line_chart, ChartSpec, Series};
use crate::report::html::{esc, page};

/// The sum of the `all` histograms of a side's runs (exact pooled distribution).
fn side_hist(side: &Side, scope: &str) -> Option<Hist> {
    let mut acc: Option<Hist> = None;
    for d in &side.runs {
        let l = d.load.as_ref()?;
        let q = if scope == "all" {
            Some(&l.summary)
        } else {
            l.queries.iter().find(|q| q.name == scope)
        }?;
        let h = hist::decode(&q.latency.histogram).ok()?;
        match &mut acc {
            Some(a) => a.add(&h).ok()?,
            None => acc = Some(h),
        }
    }
    acc
}

/// The page of a comparison.
pub fn comparison_page(c: &Comparison, a: &Side, b: &Side) -> String {
    let mut s = format!(
        "<h1>pgstorm compare</h1>\n<p class=\"meta\">A: {} ({} run(s), label {})<br>B: {} ({} run(s), label {})</p>\n",
        esc(&c.a.spec),
        c.a.runs.len(),
        esc(&c.a.label),
        esc(&c.b.spec),
        c.b.runs.len(),
        esc(&c.b.label)
    );
    s.push_str("<h2>Settings changed</h2>\n");
    if c.settings_diff.is_empty() {
        s.push_str("<p>identical settings snapshots</p>\n");
    } else {
        s.push_str("<table><tr><th>setting</th><th>A</th><th>B</th></tr>\n");
        for d in &c.settings_diff {
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&d.name),
                esc(d.a.as_deref().unwrap_or("(absent)")),
                esc(d.b.as_deref().unwrap_or("(absent)"))
            );
        }
        s.push_str("</table>\n");
    }
    if !c.warnings.is_empty() {
        s.push_str("<h2>Warnings</h2>\n");
        for w in &c.warnings {
            let _ = writeln!(s, "<div class=\"warn\">{}</div>", esc(w));
        }
    }
    s.push_str("<h2>Changes</h2>\n");
    if let Some(m) = render::method(c) {
        let _ = writeln!(s, "<p>{}</p>", esc(&m));
    }
    s.push_str(
        "<table><tr><th>query</th><th>metric</th><th>A</th><th>B</th><th>change</th><th>95% CI</th><th>noise</th><th>verdict</th></tr>\n",
    );
    for scope in &c.scopes {
        for d in &scope.metrics {
            let class = match d.verdict {
                Verdict::Regressed => " class=\"bad\"",
                Verdict::Improved => " class=\"good\"",
                _ => "",
            };
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td{class} style=\"text-align:left\">{}</td></tr>",
                esc(&scope.name),
                d.metric.label(),
                render::num(d.a, d.metric),
                render::num(d.b, d.metric),
                render::pct(d),
                render::ci(d),
                render::noise(d),
                esc(&verdict_text(d))
            );
        }
    }
    s.push_str("</table>\n");
    let pooled: Vec<(String, Hist)> = [("A", a), ("B", b)]
        .iter()
        .filter_map(|(n, side)| {
            side_hist(side, "all").map(|h| (format!("{n}: {}", c_label(side)), h))
        })
        .collect();
    let svg = charts::spectrum(
        "Latency percentile spectrum, all query types (runs pooled)",
        &pooled,
    );
    if !svg.is_empty() {
        let _ = writeln!(s, "<h2>Latency spectrum</h2>\n{svg}");
    }
    let tps: Vec<Series> = [("A", a), ("B", b)]
        .iter()
        .filter_map(|(n, side)| {
            let l = side.runs[0].load.as_ref()?;
            Some(Series {
                name: format!("{n}: {}", side.runs[0].run_id),
                points: l.timeseries.iter().map(|p| (p.t_s, p.tps)).collect(),
            })
        })
        .collect();
    let svg = line_chart(
        &ChartSpec {
            title: "Throughput over time (first run of each side)",
            x_label: "time since the load started (s)",
            y_label: "throughput (tx/s)",
            log_x: false,
            log_y: false,
            x_fmt: None,
        },
        &tps,
    );
    if !svg.is_empty() {
        let _ = writeln!(s, "<h2>Throughput</h2>\n{svg}");
    }
    page("pgstorm compare", &s)
}

fn c_label(side: &Side) -> String {
    side.runs[0].label.clone()
}
