//! The isolation part of report.html: a check × level matrix of coloured verdicts (the
//! explanation on hover), the explanation of every cell below it, and the load phases' figures.
//!
//! Invariants: rendered from `isolation` only; a cell exists for every (check, level) run and is
//! blank for a pair that was not run; the colour follows the verdict (ok, anomaly the level
//! permits, violation), never the raw counts.

use std::fmt::Write as _;

use super::esc;
use crate::report::isolation::{IsolationCase, Verdict};
use crate::report::model::RunDocument;

/// The section, or None without isolation checks.
pub fn section(doc: &RunDocument) -> Option<String> {
    let r = doc.isolation.as_ref()?;
    let mut checks: Vec<&str> = Vec::new();
    let mut levels: Vec<&str> = Vec::new();
    for c in &r.cases {
        if !checks.contains(&c.check.as_str()) {
            checks.push(&c.check);
        }
        if !levels.contains(&c.level.as_str()) {
            levels.push(&c.level);
        }
    }
    let mut s = format!(
        "<h2>Isolation</h2>\n<p class=\"verdict {}\">{} violation(s) in {} check(s)</p>\n<table class=\"matrix\"><tr><th>check</th>",
        if r.violations == 0 { "pass" } else { "fail" },
        r.violations,
        r.cases.len()
    );
    for l in &levels {
        let _ = write!(s, "<th>{}</th>", esc(l));
    }
    s.push_str("</tr>\n");
    let find = |c: &str, l: &str| r.cases.iter().find(|x| x.check == c && x.level == l);
    for c in &checks {
        let _ = write!(s, "<tr><td>{}</td>", esc(c));
        for l in &levels {
            match find(c, l) {
                Some(case) => {
                    let (cls, word) = cell(case);
                    let _ = write!(
                        s,
                        "<td class=\"v {cls}\" title=\"{}\">{word}</td>",
                        esc(&case.explanation)
                    );
                }
                None => s.push_str("<td></td>"),
            }
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n<ul class=\"explain\">\n");
    for case in &r.cases {
        let load = case
            .load
            .as_ref()
            .map(|l| {
                format!(
                    " ({} committed of {}, {} retries, p99 {:.2} ms)",
                    l.committed, l.transactions, l.retries, l.latency.p99_ms
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "<li><b>{} @ {}</b>: {}{}</li>",
            esc(&case.check),
            esc(&case.level),
            esc(&case.explanation),
            esc(&load)
        );
    }
    s.push_str("</ul>\n");
    Some(s)
}

fn cell(c: &IsolationCase) -> (&'static str, &'static str) {
    match c.verdict {
        Verdict::Ok => ("ok", "ok"),
        Verdict::AnomalyPermitted => ("permitted", "anomaly permitted (detected)"),
        Verdict::Violation => ("violation", "VIOLATION"),
    }
}
