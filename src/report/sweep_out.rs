//! Text forms of a sweep section: `sweep.csv` (one row per level), `rate_search.csv` (one row per
//! probe), and the terminal table with the model and the recommendation.
//!
//! Reads only the document, so a sweep read back from disk prints the same.

use std::fmt::Write as _;

use anyhow::Result;

use super::model::{RateSearch, RunDocument, SweepLevel, SweepSection, Warning};

fn finish(w: csv::Writer<Vec<u8>>) -> Result<Vec<u8>> {
    w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}

fn opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.3}")).unwrap_or_default()
}

/// `sweep.csv` contents.
pub fn levels_csv(s: &SweepSection) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "clients",
        "tps",
        "usl_tps",
        "count",
        "errors",
        "mean_ms",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "p99_9_ms",
        "max_ms",
        "checkout_wait_p99_ms",
        "client_cpu_share",
        "meets_slo",
    ])?;
    for l in &s.levels {
        let t = &l.latency;
        w.write_record([
            l.clients.to_string(),
            format!("{:.3}", l.tps),
            opt(l.usl_tps),
            l.count.to_string(),
            l.errors.values().sum::<u64>().to_string(),
            format!("{:.3}", t.mean_ms),
            format!("{:.3}", t.p50_ms),
            format!("{:.3}", t.p95_ms),
            format!("{:.3}", t.p99_ms),
            format!("{:.3}", t.p999_ms),
            format!("{:.3}", t.max_ms),
            format!("{:.3}", l.checkout_wait_p99_ms),
            format!("{:.3}", l.client_cpu_share),
            l.meets_slo.map(|m| m.to_string()).unwrap_or_default(),
        ])?;
    }
    finish(w)
}

/// `rate_search.csv` contents.
pub fn probes_csv(r: &RateSearch) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "rate",
        "achieved_tps",
        "count",
        "errors",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "p99_9_ms",
        "max_ms",
        "lag_p99_ms",
        "passed",
        "reason",
    ])?;
    for p in &r.probes {
        let t = &p.latency;
        w.write_record([
            format!("{:.3}", p.rate),
            format!("{:.3}", p.achieved_tps),
            p.count.to_string(),
            p.errors.to_string(),
            format!("{:.3}", t.p50_ms),
            format!("{:.3}", t.p95_ms),
            format!("{:.3}", t.p99_ms),
            format!("{:.3}", t.p999_ms),
            format!("{:.3}", t.max_ms),
            format!("{:.3}", p.lag_p99_ms),
            p.passed.to_string(),
            p.reason.clone(),
        ])?;
    }
    finish(w)
}

/// One line per level, as printed while the sweep runs.
pub fn level_line(l: &SweepLevel) -> String {
    format!(
        "{:>5} clients: {:>10.1} tx/s  p50 {:>8.3} ms  p99 {:>8.3} ms  errors {}{}",
        l.clients,
        l.tps,
        l.latency.p50_ms,
        l.latency.p99_ms,
        l.errors.values().sum::<u64>(),
        match l.meets_slo {
            Some(true) => "  meets SLO",
            Some(false) => "  misses SLO",
            None => "",
        }
    )
}

/// The terminal summary of a sweep document.
pub fn render(doc: &RunDocument) -> String {
    let mut s = String::new();
    let Some(sw) = &doc.sweep else {
        return s;
    };
    let _ = writeln!(
        s,
        "\nsweep on {} ({}), {:.0} s per level after {:.0} s warmup, closed loop, protocol {}",
        doc.target.dsn,
        doc.target.server.server_version,
        sw.config.duration_s,
        sw.config.warmup_s,
        sw.config.protocol
    );
    s.push_str(&render_section(sw, &doc.warnings));
    s
}

/// A latency figure of level `l` in ms, or blank when the level has no latency distribution (a
/// level read from a file by `sweep --fit`): blank, not 0.
pub fn level_ms(l: &SweepLevel, v: f64) -> String {
    if l.latency.count > 0 {
        format!("{v:.3}")
    } else {
        String::new()
    }
}

/// The level table, model, recommendation, rate search and warnings of a sweep section, for a
/// measured sweep and for points read from a file (`sweep --fit`) alike.
pub fn render_section(sw: &SweepSection, warnings: &[Warning]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>7} {:>11} {:>11} {:>9} {:>9} {:>9} {:>9} {:>7} {:>5}",
        "clients", "tps", "usl tps", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "slo"
    );
    for l in &sw.levels {
        let t = &l.latency;
        let ms = |v: f64| level_ms(l, v);
        let _ = writeln!(
            s,
            "{:>7} {:>11.1} {:>11} {:>9} {:>9} {:>9} {:>9} {:>7} {:>5}",
            l.clients,
            l.tps,
            l.usl_tps.map(|v| format!("{v:.1}")).unwrap_or_default(),
            ms(t.p50_ms),
            ms(t.p95_ms),
            ms(t.p99_ms),
            ms(t.max_ms),
            l.errors.values().sum::<u64>(),
            match l.meets_slo {
                Some(true) => "yes",
                Some(false) => "no",
                None => "",
            }
        );
    }
    for line in model_lines(sw).iter().chain(&recommendation_lines(sw)) {
        let _ = writeln!(s, "{line}");
    }
    if let Some(rs) = &sw.rate_search {
        let _ = writeln!(
            s,
            "rate search ({} clients, open loop, latency from the intended start, SLO {}):",
            rs.clients, rs.slo.text
        );
        for p in &rs.probes {
            let _ = writeln!(
                s,
                "  {:>10.1} tx/s offered: {:>10.1} achieved, p{} {:>9.3} ms, {} errors: {}",
                p.rate,
                p.achieved_tps,
                rs.slo.percentile,
                p.latency.percentile_ms(rs.slo.percentile),
                p.errors,
                if p.passed { "pass" } else { p.reason.as_str() }
            );
        }
        match rs.max_sustainable_rate {
            Some(v) => {
                let _ = writeln!(
                    s,
                    "max sustainable rate meeting {}: {v:.1} tx/s",
                    rs.slo.text
                );
            }
            None => {
                let _ = writeln!(s, "no probed rate met {}", rs.slo.text);
            }
        }
    }
    for w in warnings {
        let _ = writeln!(s, "WARNING [{}]: {}", w.code, w.message);
    }
    s
}

/// The fitted model (or why there is none) as lines of text: the coefficients, their intervals,
/// the κ test, the limit and its interval. Shared by the terminal and report.html.
pub fn model_lines(sw: &SweepSection) -> Vec<String> {
    let mut out = Vec::new();
    match (&sw.usl, &sw.usl_error) {
        (Some(m), _) => {
            out.push(format!(
                "USL: λ = {:.2} tx/s, σ = {:.5}, κ = {:.7}, R² = {:.4} ({} levels)",
                m.lambda, m.sigma, m.kappa, m.r2, m.points
            ));
            if let Some(c) = &m.coefficient_intervals {
                let kappa = c
                    .kappa
                    .map(|k| format!(", κ {:.7} .. {:.7}", k.lower, k.upper))
                    .unwrap_or_default();
                out.push(format!(
                    "     {:.0}% bootstrap intervals: λ {:.2} .. {:.2}, σ {:.5} .. {:.5}{kappa}",
                    c.level * 100.0,
                    c.lambda.lower,
                    c.lambda.upper,
                    c.sigma.lower,
                    c.sigma.upper
                ));
            }
            let test = m.kappa_test.as_ref().map(|t| {
                format!(
                    "F = {:.2} on (1, {}) df, p = {:.2e}, level {}",
                    t.f, t.df, t.p_value, t.level
                )
            });
            out.push(match (&test, m.kappa_fixed) {
                (Some(t), true) => {
                    format!("     κ fixed at 0: it does not improve the fit significantly ({t})")
                }
                (Some(t), false) => format!("     κ kept: it improves the fit ({t})"),
                (None, _) => format!(
                    "     κ kept untested: {} points leave no degree of freedom for the F-test",
                    m.points
                ),
            });
            let mut limit = match (m.limit_kind.as_str(), m.limit_n, m.limit_tps) {
                ("peak", Some(n), Some(x)) => {
                    format!("     peak N* = floor(√((1−σ)/κ)) = {n}, X(N*) = {x:.1} tx/s")
                }
                ("plateau", Some(n), Some(x)) => format!(
                    "     no peak within the fitted model (κ = 0): 95% of the ceiling λ/σ = \
                     {:.1} tx/s is reached at N = {n} ({x:.1} tx/s)",
                    m.asymptote_tps.unwrap_or(0.0)
                ),
                _ => "     no peak within the fitted model: throughput scales linearly over the \
                      measured range"
                    .into(),
            };
            if m.extrapolated {
                limit.push_str(" (extrapolated beyond the measured levels)");
            }
            out.push(limit);
            if let Some(i) = &m.limit_interval {
                out.push(format!(
                    "     {:.0}% bootstrap interval of the unrounded limit: {:.1} .. {} ({} \
                     replicates, {} without a limit)",
                    i.level * 100.0,
                    i.lower,
                    i.upper
                        .map(|u| format!("{u:.1}"))
                        .unwrap_or_else(|| "unbounded".into()),
                    i.replicates,
                    i.unbounded
                ));
            }
        }
        (None, Some(e)) => out.push(format!("USL: not fitted: {e}")),
        (None, None) => {}
    }
    out
}

/// The recommendation, the rule of thumb beside it and the max_connections to pair it with, as
/// lines of text. Shared by the terminal and report.html.
pub fn recommendation_lines(sw: &SweepSection) -> Vec<String> {
    let r = &sw.recommendation;
    let mut out = vec![match r.pool_size {
        Some(p) => format!("recommended pool size: {p} ({})", r.basis),
        None => format!("recommended pool size: none ({})", r.basis),
    }];
    out.push(match &r.heuristic {
        Some(h) => format!(
            "rule of thumb cores × 2 + spindles: {} × 2 + {} = {} ({})",
            h.cores, h.spindles, h.pool_size, h.assumption
        ),
        None => "rule of thumb cores × 2 + spindles: server cores unknown (remote server); give \
                 --server-cores and --spindles to compare"
            .to_string(),
    });
    if let (Some(m), Some(b)) = (r.max_connections, &r.max_connections_basis) {
        out.push(format!("pair with max_connections >= {m} ({b})"));
    }
    out
}
