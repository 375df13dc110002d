//! The terminal rendering of the advisor's findings and the success-criteria verdict, appended to
//! the run summary.
//!
//! Invariant: reads only the document, so a result read back from disk prints the same advice.

use std::fmt::Write as _;

use super::findings::CriterionStatus;
use super::model::RunDocument;

/// Findings (with evidence and SQL), top statements, notes, then the criteria table and verdict.
pub fn render(doc: &RunDocument) -> String {
    let mut s = String::new();
    if let Some(a) = &doc.analysis {
        let _ = writeln!(
            s,
            "\nadvisor ({}, {:.0} s window, pg_stat_statements {}): {} finding(s)",
            a.scope,
            a.window_s,
            a.pg_stat_statements,
            a.findings.len()
        );
        for f in &a.findings {
            let _ = writeln!(s, "  [{}] {}: {}", f.severity.as_str(), f.code, f.title);
            let evidence: Vec<String> =
                f.evidence.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(s, "      evidence: {}", evidence.join(", "));
            if let Some(p) = &f.plan {
                for line in p.lines() {
                    let _ = writeln!(s, "      plan: {line}");
                }
            }
            let _ = writeln!(s, "      rule: {} ({})", f.threshold, f.source);
            let _ = writeln!(s, "      action: {}", f.action);
            for line in f.sql.iter().flat_map(|q| q.lines()) {
                let _ = writeln!(s, "      sql: {line}");
            }
        }
        for (title, list) in [
            ("total", &a.top_by_total_time),
            ("mean", &a.top_by_mean_time),
        ] {
            for (i, t) in list.iter().take(3).enumerate() {
                if i == 0 {
                    let _ = writeln!(s, "  top statements by {title} time:");
                }
                let _ = writeln!(
                    s,
                    "    {:>10.1} ms total, {:>8.3} ms mean, {:>8} calls  {}",
                    t.total_ms, t.mean_ms, t.calls, t.query
                );
            }
        }
        for n in &a.notes {
            let _ = writeln!(s, "  note: {n}");
        }
    }
    if let Some(c) = &doc.criteria {
        let _ = writeln!(s, "\nsuccess criteria ({}):", c.source);
        for r in &c.criteria {
            let status = match r.status {
                CriterionStatus::Pass => "pass",
                CriterionStatus::Fail => "FAIL",
                CriterionStatus::NotEvaluated => "not evaluated",
            };
            let measured = r
                .measured
                .map(|v| format!("{} {}", crate::analysis::criteria::fmt_num(v), r.unit))
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                s,
                "  {:<24} {:<16} {:>16}  {:<13} {}",
                r.id, r.target, measured, status, r.detail
            );
        }
        let verdict = match c.verdict {
            CriterionStatus::Pass => "PASS",
            CriterionStatus::Fail => "FAIL",
            CriterionStatus::NotEvaluated => "NOT EVALUATED",
        };
        let _ = writeln!(s, "verdict: {verdict}");
    }
    s
}
