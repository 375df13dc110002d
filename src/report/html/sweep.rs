//! The sweep section of report.html: the reasons behind the recommendation (which itself is the
//! page's verdict line, see `verdict`), then the USL chart (the same SVG
//! as `sweep.svg`, inline), the table of levels (clients vs throughput and latency, the model's
//! throughput beside the measured one, the SLO verdict), the model's coefficients and limit, and
//! the open-loop rate search.
//!
//! Invariants: rendered from the document's sweep section only, with the same wording as the
//! terminal (the model and recommendation lines come from `sweep_out`), so the page, the terminal
//! and `pgstorm report` agree; a level without a latency distribution (points read by
//! `sweep --fit`) shows blank latency cells, never zeros.

use std::fmt::Write as _;

use super::esc;
use crate::report::model::{RateSearch, RunDocument, SweepSection};
use crate::report::{sweep_chart, sweep_out};

/// The section, or None for a document without a sweep.
pub fn section(doc: &RunDocument) -> Option<String> {
    let sw = doc.sweep.as_ref()?;
    let mut s = String::from("<h2>Pool-size sweep</h2>\n");
    // The first line (the recommendation) is the page's verdict line; the reasons follow here.
    let rest: Vec<String> = sweep_out::recommendation_lines(sw)
        .into_iter()
        .skip(1)
        .map(|l| esc(&l))
        .collect();
    if !rest.is_empty() {
        let _ = writeln!(s, "<p class=\"meta\">{}</p>", rest.join("<br>"));
    }
    match sweep_chart::render(sw) {
        Ok(svg) => s.push_str(strip_xml_declaration(&svg)),
        Err(e) => {
            let _ = writeln!(
                s,
                "<p class=\"meta\">no chart: {}</p>",
                esc(&format!("{e:#}"))
            );
        }
    }
    levels_table(sw, &mut s);
    let model = sweep_out::model_lines(sw);
    if !model.is_empty() {
        let lines: Vec<String> = model.iter().map(|l| esc(l.trim())).collect();
        let _ = writeln!(
            s,
            "<h3>Universal Scalability Law</h3>\n<p class=\"meta\">{}</p>",
            lines.join("<br>")
        );
    }
    if let Some(rs) = &sw.rate_search {
        rate_search(rs, &mut s);
    }
    Some(s)
}

/// An SVG document inlined in HTML must not carry its `<?xml ...?>` declaration.
fn strip_xml_declaration(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}

fn levels_table(sw: &SweepSection, s: &mut String) {
    let slo = sw.config.slo.as_ref();
    let _ = writeln!(
        s,
        "<table><tr><th>clients</th><th>tps</th><th>USL tps</th><th>p50 ms</th><th>p95 ms</th>\
         <th>p99 ms</th><th>max ms</th><th>errors</th><th>{}</th></tr>",
        slo.map_or("SLO".to_string(), |o| format!("meets {}", esc(&o.text)))
    );
    for l in &sw.levels {
        let t = &l.latency;
        let ms = |v: f64| sweep_out::level_ms(l, v);
        let verdict = match l.meets_slo {
            Some(true) => "<span class=\"good\">yes</span>",
            Some(false) => "<span class=\"bad\">no</span>",
            None => "",
        };
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{verdict}</td></tr>",
            l.clients,
            l.tps,
            l.usl_tps.map(|v| format!("{v:.1}")).unwrap_or_default(),
            ms(t.p50_ms),
            ms(t.p95_ms),
            ms(t.p99_ms),
            ms(t.max_ms),
            l.errors.values().sum::<u64>()
        );
    }
    s.push_str("</table>\n");
}

fn rate_search(rs: &RateSearch, s: &mut String) {
    let _ = writeln!(
        s,
        "<h3>Rate search</h3>\n<p class=\"meta\">{} clients, open loop, latency from the intended \
         start, SLO {}</p>\n<table><tr><th>offered tx/s</th><th>achieved tx/s</th><th>p{} ms</th>\
         <th>errors</th><th>result</th></tr>",
        rs.clients,
        esc(&rs.slo.text),
        rs.slo.percentile
    );
    for p in &rs.probes {
        let result = if p.passed {
            "<span class=\"good\">pass</span>".to_string()
        } else {
            format!("<span class=\"bad\">{}</span>", esc(&p.reason))
        };
        let _ = writeln!(
            s,
            "<tr><td>{:.1}</td><td>{:.1}</td><td>{:.3}</td><td>{}</td><td>{result}</td></tr>",
            p.rate,
            p.achieved_tps,
            p.latency.percentile_ms(rs.slo.percentile),
            p.errors
        );
    }
    s.push_str("</table>\n");
    let _ = writeln!(
        s,
        "<p class=\"verdict\">{}</p>",
        match rs.max_sustainable_rate {
            Some(v) => format!(
                "max sustainable rate meeting {}: {v:.1} tx/s",
                esc(&rs.slo.text)
            ),
            None => format!("no probed rate met {}", esc(&rs.slo.text)),
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep_doc() -> RunDocument {
        let text = include_str!("../../../results/20261126T213200Z-sweep/run.json");
        serde_json::from_str(text).expect("an archived sweep loads")
    }

    #[test]
    fn an_archived_sweep_renders_its_recommendation_chart_and_levels() {
        let doc = sweep_doc();
        let sw = doc.sweep.as_ref().unwrap();
        let html = section(&doc).expect("a sweep section");
        let page = super::super::run_page(&doc);
        assert_eq!(
            page.matches("recommended pool size").count(),
            1,
            "the recommendation is the verdict line, once"
        );
        assert!(page.find("recommended pool size") < page.find("<h2>Pool-size sweep"));
        assert!(html.contains("<svg"), "the chart is inline");
        assert!(!html.contains("<?xml"), "no XML declaration inside HTML");
        for l in &sw.levels {
            assert!(
                html.contains(&format!("<tr><td>{}</td><td>{:.1}</td>", l.clients, l.tps)),
                "level {} in the table",
                l.clients
            );
        }
        assert!(
            !page.contains("<h2>sweep"),
            "the generic renderer no longer dumps the sweep section as tables"
        );
    }

    #[test]
    fn a_document_without_a_sweep_has_no_sweep_section() {
        let mut doc = sweep_doc();
        doc.sweep = None;
        assert!(section(&doc).is_none());
    }
}
