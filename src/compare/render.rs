//! A comparison as a terminal table or as Markdown (for a pull-request comment); JSON is the
//! serialized [`Comparison`].

use std::fmt::Write as _;

use super::{Basis, Comparison, Metric, MetricDelta, SettingChange, Test, Verdict};

/// The verdict in words, e.g. `slower`, `more errors`, `slower (hint)`; "no significant change"
/// on runs says the smallest change the runs could have shown, so it is not read as "the same".
pub fn verdict_text(d: &MetricDelta) -> String {
    let word = match (d.verdict, d.metric) {
        (Verdict::Improved, Metric::ErrorRate) => "fewer errors",
        (Verdict::Regressed, Metric::ErrorRate) => "more errors",
        (Verdict::Improved, _) => "faster",
        (Verdict::Regressed, _) => "slower",
        (Verdict::NoSignificantChange, _) => "no significant change",
        (Verdict::Unknown, _) => "cannot be assessed",
    };
    if let (Verdict::NoSignificantChange, Basis::Runs, Some(m)) = (d.verdict, d.basis, d.mde_pct) {
        return format!("{word} (smallest detectable ±{m:.1}{})", unit(d));
    }
    if d.basis == Basis::IntervalHint && d.verdict != Verdict::Unknown {
        format!("{word} (hint)")
    } else {
        word.to_string()
    }
}

/// A metric value with the precision it deserves (`-` when undefined).
pub fn num(v: f64, metric: Metric) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    match metric {
        Metric::Tps => format!("{v:.1}"),
        Metric::ErrorRate => format!("{v:.2}"),
        _ => format!("{v:.3}"),
    }
}

/// A signed change: `%` of A, or percentage points for the error rate (`-` when undefined).
pub fn pct(d: &MetricDelta) -> String {
    d.change_pct
        .map_or("-".into(), |c| format!("{c:+.1}{}", unit(d)))
}

fn unit(d: &MetricDelta) -> &'static str {
    if d.metric.is_relative() {
        "%"
    } else {
        "pp"
    }
}

/// The confidence interval of the change (`-` when there is none).
pub fn ci(d: &MetricDelta) -> String {
    d.ci_pct.map_or("-".into(), |(lo, hi)| {
        format!("[{lo:+.1}, {hi:+.1}]{}", unit(d))
    })
}

/// The noise floor (`-` when nothing was tested).
pub fn noise(d: &MetricDelta) -> String {
    if d.basis == Basis::None {
        "-".into()
    } else {
        format!("{:.1}{}", d.noise_floor_pct, unit(d))
    }
}

fn side_line(name: &str, s: &super::SideInfo) -> String {
    format!(
        "{name}: {} ({} run{}, label {}, PostgreSQL {})",
        s.spec,
        s.runs.len(),
        if s.runs.len() == 1 { "" } else { "s" },
        s.label,
        s.server_version
    )
}

/// How the run-based verdicts were reached (None when no line was tested on runs): the design
/// (paired by a study, or independent sets), each test used and on how many lines, the
/// adjustment and the level.
pub fn method(c: &Comparison) -> Option<String> {
    (c.lines_tested > 0).then(|| {
        let mut used: Vec<(Test, usize)> = Vec::new();
        for d in c.scopes.iter().flat_map(|s| &s.metrics) {
            if let Some(t) = d.test {
                match used.iter_mut().find(|(u, _)| *u == t) {
                    Some((_, n)) => *n += 1,
                    None => used.push((t, 1)),
                }
            }
        }
        let tests = used
            .iter()
            .map(|(t, n)| {
                format!(
                    "{} on {n} line{}",
                    t.describe(),
                    if *n == 1 { "" } else { "s" }
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let design = match &c.pairing {
            Some(p) => format!(
                "paired: A and B ran alternately in study {} ({} pairs), each pair's B tested \
                 against its A",
                p.study, p.pairs
            ),
            None => "independent sets of runs".to_string(),
        };
        format!(
            "test ({design}): {tests} on the run-level values (logarithms for relative metrics), \
             p adjusted over {} lines (Benjamini–Hochberg), level {}",
            c.lines_tested, c.level
        )
    })
}

fn setting_value(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("(absent)")
}

/// What a setting's line adds when a restart is pending on a side: the value in effect is then
/// not the one in the file.
fn pending_note(d: &SettingChange) -> String {
    let sides: Vec<&str> = [("A", d.pending_restart_a), ("B", d.pending_restart_b)]
        .into_iter()
        .filter_map(|(side, p)| p.then_some(side))
        .collect();
    if sides.is_empty() {
        String::new()
    } else {
        format!(
            "  [pending restart on {}: changed in the file but not in effect]",
            sides.join(" and ")
        )
    }
}

/// The settings diff, one heading per category.
fn grouped(c: &Comparison) -> Vec<(&str, Vec<&SettingChange>)> {
    let mut groups: Vec<(&str, Vec<&SettingChange>)> = Vec::new();
    for d in &c.settings_diff {
        match groups.last_mut() {
            Some((cat, items)) if *cat == d.category => items.push(d),
            _ => groups.push((d.category.as_str(), vec![d])),
        }
    }
    groups
}

/// The terminal table.
pub fn text(c: &Comparison) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", side_line("A", &c.a));
    let _ = writeln!(s, "{}", side_line("B", &c.b));
    if c.settings_diff.is_empty() {
        let _ = writeln!(s, "settings: identical snapshots");
    } else {
        let _ = writeln!(s, "settings changed (A -> B):");
        for (category, items) in grouped(c) {
            let _ = writeln!(s, "  {category}");
            for d in items {
                let _ = writeln!(
                    s,
                    "    {:<32} {} -> {}{}",
                    d.name,
                    setting_value(&d.a),
                    setting_value(&d.b),
                    pending_note(d)
                );
            }
        }
    }
    for w in &c.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    if let Some(m) = method(c) {
        let _ = writeln!(s, "{m}");
    }
    let _ = writeln!(
        s,
        "\n{:<13} {:<9} {:>11} {:>11} {:>8} {:>18} {:>7}  verdict",
        "query", "metric", "A", "B", "change", "95% CI", "noise"
    );
    for scope in &c.scopes {
        for d in &scope.metrics {
            let _ = writeln!(
                s,
                "{:<13} {:<9} {:>11} {:>11} {:>8} {:>18} {:>7}  {}",
                scope.name,
                d.metric.label(),
                num(d.a, d.metric),
                num(d.b, d.metric),
                pct(d),
                ci(d),
                noise(d),
                verdict_text(d)
            );
        }
    }
    s
}

/// Markdown for a pull-request comment.
pub fn markdown(c: &Comparison) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "### pgstorm compare\n");
    let _ = writeln!(s, "- {}", side_line("**A**", &c.a));
    let _ = writeln!(s, "- {}\n", side_line("**B**", &c.b));
    if c.settings_diff.is_empty() {
        let _ = writeln!(s, "Settings: identical snapshots.\n");
    } else {
        let _ = writeln!(s, "| setting | A | B |\n|---|---|---|");
        for (category, items) in grouped(c) {
            let _ = writeln!(s, "| **{category}** | | |");
            for d in items {
                let _ = writeln!(
                    s,
                    "| `{}` | {} | {}{} |",
                    d.name,
                    setting_value(&d.a),
                    setting_value(&d.b),
                    pending_note(d)
                );
            }
        }
        s.push('\n');
    }
    for w in &c.warnings {
        let _ = writeln!(s, "> **warning**: {w}");
    }
    if !c.warnings.is_empty() {
        s.push('\n');
    }
    if let Some(m) = method(c) {
        let _ = writeln!(s, "{m}\n");
    }
    let _ = writeln!(
        s,
        "| query | metric | A | B | change | 95% CI | noise | verdict |\n|---|---|---:|---:|---:|---:|---:|---|"
    );
    for scope in &c.scopes {
        for d in &scope.metrics {
            let v = verdict_text(d);
            let v = match d.verdict {
                Verdict::Improved | Verdict::Regressed if d.basis == Basis::Runs => {
                    format!("**{v}**")
                }
                _ => v,
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                scope.name,
                d.metric.label(),
                num(d.a, d.metric),
                num(d.b, d.metric),
                pct(d),
                ci(d),
                noise(d),
                v
            );
        }
    }
    s
}
