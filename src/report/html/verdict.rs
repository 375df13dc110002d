//! The first screen of report.html: what ran, the verdict, each success criterion with its
//! measured value and threshold, and the warnings.
//!
//! Invariants: this block comes first on the page and stays short (a compact header, one verdict
//! line, one table, the warnings) so the verdict and criteria fit in the first screen; an
//! interrupted run, a lost target or a panicking load thread is said in the verdict line itself.

use std::fmt::Write as _;

use super::esc;
use crate::report::findings::CriterionStatus;
use crate::report::model::RunDocument;

/// Header, verdict, criteria and warnings.
pub fn section(doc: &RunDocument) -> Option<String> {
    let mut s = format!(
        "<h1>pgstorm {} &middot; {}</h1>\n<p class=\"meta\">{} &middot; {} &rarr; {} &middot; PostgreSQL {} on {} &middot; load host {} ({} CPUs)</p>\n",
        esc(&doc.scenario),
        esc(&doc.label),
        esc(&doc.run_id),
        esc(&doc.started_at),
        esc(&doc.finished_at),
        esc(doc.target.server.server_version.split(' ').next().unwrap_or_default()),
        esc(&doc.target.dsn),
        esc(&doc.host.hostname),
        doc.host.cpus
    );
    s.push_str("<section id=\"verdict\">\n");
    let (class, text) = match doc.criteria.as_ref().map(|c| c.verdict) {
        Some(CriterionStatus::Pass) => ("pass", "PASS".to_string()),
        Some(CriterionStatus::Fail) => ("fail", "FAIL".to_string()),
        Some(CriterionStatus::NotEvaluated) => ("none", "no criterion could be evaluated".into()),
        None => match doc.sweep.as_ref() {
            Some(sw) => (
                "none",
                crate::report::sweep_out::recommendation_lines(sw)
                    .into_iter()
                    .next()
                    .map_or_else(|| "sweep: no recommendation".into(), |l| esc(&l)),
            ),
            None => ("none", "no success criteria for this scenario".into()),
        },
    };
    let mut also = Vec::new();
    if doc.interrupted {
        also.push("interrupted: only the part that ran is measured".to_string());
    }
    if let Some(l) = &doc.target_lost_at {
        also.push(format!(
            "target lost at {:.1} s: {}",
            l.seconds,
            esc(&l.reason)
        ));
    }
    if !doc.load_thread_panics.is_empty() {
        also.push(format!(
            "{} load thread(s) panicked",
            doc.load_thread_panics.len()
        ));
    }
    let _ = writeln!(
        s,
        "<p class=\"verdict {class}\">{text}{}</p>",
        also.iter()
            .map(|a| format!(" <span class=\"bad\">&middot; {a}</span>"))
            .collect::<String>()
    );
    if let Some(c) = &doc.criteria {
        let _ = writeln!(
            s,
            "<table id=\"criteria\"><tr><th>criterion</th><th>measured</th><th>threshold</th><th>result</th><th>how</th></tr>"
        );
        for r in &c.criteria {
            let (cls, word) = match r.status {
                CriterionStatus::Pass => ("good", "pass"),
                CriterionStatus::Fail => ("bad", "FAIL"),
                CriterionStatus::NotEvaluated => ("meta", "not evaluated"),
            };
            let measured = r
                .measured
                .map(|v| format!("{} {}", super::panels::human(v), esc(&r.unit)))
                .unwrap_or_else(|| "&ndash;".into());
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{measured}</td><td>{}</td><td class=\"{cls}\">{word}</td><td class=\"note\">{}</td></tr>",
                esc(&r.description),
                esc(&r.target),
                esc(&r.detail)
            );
        }
        let _ = writeln!(
            s,
            "</table>\n<p class=\"meta\">thresholds from {}</p>",
            esc(&c.source)
        );
    }
    s.push_str("</section>\n");
    if !doc.warnings.is_empty() {
        s.push_str("<section id=\"warnings\">\n");
        for w in &doc.warnings {
            let _ = writeln!(
                s,
                "<div class=\"warn\"><b>{}</b>: {}<br><span class=\"meta\">{}</span></div>",
                esc(&w.code.as_str().replace('_', " ")),
                esc(&w.message),
                esc(w.code.explanation())
            );
        }
        s.push_str("</section>\n");
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    fn quick_doc() -> crate::report::model::RunDocument {
        let text = include_str!("../../../results/20261126T223209Z-quick/run.json");
        serde_json::from_str(text).expect("an archived quick run loads")
    }

    #[test]
    fn the_verdict_and_criteria_come_before_everything_else() {
        let page = super::super::run_page(&quick_doc());
        let verdict = page.find("id=\"verdict\"").expect("a verdict block");
        let criteria = page.find("id=\"criteria\"").expect("a criteria table");
        let latency = page.find("Latency and throughput").unwrap();
        assert!(verdict < criteria && criteria < latency);
        assert!(page.contains("<p class=\"verdict pass\">PASS"), "{page}");
        for raw in ["<td>{\"", "<td>[{"] {
            assert!(!page.contains(raw), "a cell holds raw JSON ({raw})");
        }
    }
}
