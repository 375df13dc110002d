//! Success criteria: a fixed list of checks, each reading the result document, each with a target
//! that defaults to the project's seed values and can be overridden by a criteria file or flags.
//!
//! Invariants: a criterion whose section is absent from the document (its scenario did not run)
//! is `not_evaluated`, never `pass`; the verdict fails when any evaluated criterion fails. To add
//! a criterion, append a [`Criterion`] to [`CRITERIA`] whose `measure` reads your section.
//!
//! Criteria file (JSON, `--criteria FILE`): an object of criterion id → threshold, e.g.
//! `{"mean_latency_ms": 2.5, "within_timeout_pct": 99}`. `--criterion id=value` (repeatable)
//! overrides the file, which overrides the defaults.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;

use crate::error;
use crate::monitor::model::ServerHostSeries;
use crate::report::findings::{CriteriaSection, CriterionResult, CriterionStatus};
use crate::report::model::RunDocument;

/// Which side of the threshold passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// measured < threshold.
    Below,
    /// measured > threshold.
    Above,
    /// measured <= threshold.
    AtMost,
}

impl Goal {
    fn symbol(self) -> &'static str {
        match self {
            Goal::Below => "<",
            Goal::Above => ">",
            Goal::AtMost => "<=",
        }
    }
    fn passes(self, measured: f64, threshold: f64) -> bool {
        match self {
            Goal::Below => measured < threshold,
            Goal::Above => measured > threshold,
            Goal::AtMost => measured <= threshold,
        }
    }
}

/// What a criterion read from the document.
#[derive(Debug, Clone, PartialEq)]
pub enum Measurement {
    /// A value, and how it was obtained.
    Value(f64, String),
    /// The data is not in the document, and why.
    NotEvaluated(String),
}

/// One success criterion.
pub struct Criterion {
    /// Stable identifier (criteria file key, `--criterion` name).
    pub id: &'static str,
    /// What it measures.
    pub description: &'static str,
    /// Unit of threshold and value.
    pub unit: &'static str,
    /// Which side passes.
    pub goal: Goal,
    /// The seed's threshold.
    pub default: f64,
    /// Reads the measured value from the document.
    pub measure: fn(&RunDocument) -> Measurement,
}

/// Every criterion, in report order.
pub const CRITERIA: &[Criterion] = &[
    Criterion {
        id: "connection_success_pct",
        description: "connection attempts that succeeded in the connections scenario",
        unit: "%",
        goal: Goal::Above,
        default: 95.0,
        measure: |d| match &d.connections {
            Some(c) => Measurement::Value(
                100.0 * c.connection_success_rate,
                "connection operations that succeeded, of those attempted".into(),
            ),
            None => not_run("connections"),
        },
    },
    Criterion {
        id: "connection_leaks",
        description: "connections still open after the connections scenario released them",
        unit: "connections",
        goal: Goal::Below,
        default: 10.0,
        measure: |d| match &d.connections {
            Some(c) => Measurement::Value(
                c.leaks as f64,
                "connections held past the leak threshold or still checked out at the end".into(),
            ),
            None => not_run("connections"),
        },
    },
    Criterion {
        id: "mean_latency_ms",
        description: "mean latency of successful queries, all query types",
        unit: "ms",
        goal: Goal::Below,
        default: 5.0,
        measure: mean_latency,
    },
    Criterion {
        id: "within_timeout_pct",
        description: "queries that succeeded within the statement timeout, of all attempted",
        unit: "%",
        goal: Goal::Above,
        default: 95.0,
        measure: within_timeout,
    },
    Criterion {
        id: "server_cpu_pct",
        description: "CPU busy on the server under load: its host's, from --server-metrics, else \
                      the local PostgreSQL processes' share of this host",
        unit: "%",
        goal: Goal::Below,
        default: 90.0,
        measure: server_cpu,
    },
    Criterion {
        id: "server_memory_pct",
        description: "memory in use on the server host under load (p95)",
        unit: "%",
        goal: Goal::Below,
        default: 95.0,
        measure: server_memory,
    },
    Criterion {
        id: "isolation_violations",
        description: "isolation invariant VIOLATIONs",
        unit: "violations",
        goal: Goal::AtMost,
        default: 0.0,
        measure: |d| match &d.isolation {
            Some(i) => Measurement::Value(
                i.violations as f64,
                "isolation invariant checks that reported a VIOLATION".into(),
            ),
            None => not_run("isolation"),
        },
    },
];

fn not_run(scenario: &str) -> Measurement {
    Measurement::NotEvaluated(format!(
        "the {scenario} scenario did not run: its section is not in the result"
    ))
}

/// The server host's own samples under load (`--server-metrics`), when any was taken.
fn server_host(doc: &RunDocument) -> Option<&ServerHostSeries> {
    let m = doc.monitoring.as_ref()?;
    m.server_host.as_ref().filter(|s| s.summary.samples > 0)
}

/// Why the server host's figures are missing: not asked for, or asked for and not obtained.
fn server_host_missing(doc: &RunDocument, what: &str, load_machine: String) -> Measurement {
    let agent = doc
        .monitoring
        .as_ref()
        .and_then(|m| m.server_host.as_ref())
        .map(|s| {
            format!(
                "--server-metrics {} gave no sample under load ({} of {} scrapes failed)",
                s.source, s.failed, s.scrapes
            )
        })
        .unwrap_or_else(|| "give --server-metrics URL of its node_exporter".into());
    Measurement::NotEvaluated(format!(
        "the server is not on this host, so its {what} is not visible to pgstorm: {agent} ({load_machine})"
    ))
}

fn server_cpu(d: &RunDocument) -> Measurement {
    if let Some(s) = server_host(d) {
        return Measurement::Value(
            s.summary.cpu_percent.mean,
            format!(
                "mean CPU busy of the server host over {} samples scraped from {} while the load \
                 ran (peak {:.0}%, iowait mean {:.0}%)",
                s.summary.samples,
                s.source,
                s.summary.cpu_percent.peak,
                s.summary.iowait_percent.mean
            ),
        );
    }
    match d.monitoring.as_ref().and_then(|m| m.under_load.as_ref()) {
        Some(u) => match u.server_cpu_mean_percent {
            Some(pg) => Measurement::Value(
                pg,
                format!(
                    "mean CPU of the local PostgreSQL processes over {} host samples while the \
                     load ran (the whole host, pgstorm included, peaked at {:.0}%)",
                    u.samples, u.cpu_peak_percent
                ),
            ),
            None => server_host_missing(
                d,
                "CPU",
                format!(
                    "the load machine's own CPU p95 was {:.0}%",
                    u.cpu_p95_percent
                ),
            ),
        },
        None => not_run("resource monitoring"),
    }
}

fn server_memory(d: &RunDocument) -> Measurement {
    if let Some(s) = server_host(d) {
        return Measurement::Value(
            s.summary.memory_percent.p95,
            format!(
                "p95 of MemTotal minus MemAvailable over {} samples of the server host scraped \
                 from {}",
                s.summary.samples, s.source
            ),
        );
    }
    match d.monitoring.as_ref().and_then(|m| m.under_load.as_ref()) {
        Some(u) if u.server_cpu_mean_percent.is_some() => Measurement::Value(
            u.memory_p95_percent,
            format!(
                "p95 of total minus available memory over {} samples of the host the server \
                 shares with pgstorm",
                u.samples
            ),
        ),
        Some(u) => server_host_missing(
            d,
            "memory",
            format!("the load machine's p95 was {:.0}%", u.memory_p95_percent),
        ),
        None => not_run("resource monitoring"),
    }
}

fn mean_latency(doc: &RunDocument) -> Measurement {
    match &doc.load {
        Some(l) if l.summary.count > 0 => Measurement::Value(
            l.summary.latency.mean_ms,
            format!(
                "mean of {} successful queries ({} latency)",
                l.summary.count,
                l.config.latency_from.replace('_', " ")
            ),
        ),
        Some(_) => Measurement::NotEvaluated("the load completed no query".into()),
        None => not_run("queries"),
    }
}

fn within_timeout(doc: &RunDocument) -> Measurement {
    let Some(l) = &doc.load else {
        return not_run("queries");
    };
    let failed: u64 = l.summary.errors.values().sum();
    let attempted = l.summary.count + failed;
    if attempted == 0 {
        return Measurement::NotEvaluated("the load attempted no query".into());
    }
    let timeout_us = l.config.statement_timeout_ms.saturating_mul(1000);
    let within = match crate::hist::decode(&l.summary.latency.histogram) {
        Ok(h) => h.count_between(0, timeout_us),
        Err(e) => {
            return Measurement::NotEvaluated(format!(
                "the latency histogram of the result cannot be read: {e}"
            ))
        }
    };
    Measurement::Value(
        100.0 * within as f64 / attempted as f64,
        format!(
            "{within} of {attempted} queries succeeded within {} ms ({failed} failed: {})",
            l.config.statement_timeout_ms,
            if l.summary.errors.is_empty() {
                "none".to_string()
            } else {
                l.summary
                    .errors
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
    )
}

/// Thresholds in force: defaults, overridden by a file, overridden by flags.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    values: BTreeMap<String, f64>,
    /// Where they came from, for the report.
    pub source: String,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            values: CRITERIA
                .iter()
                .map(|c| (c.id.to_string(), c.default))
                .collect(),
            source: "defaults".into(),
        }
    }
}

fn known_ids() -> String {
    CRITERIA.iter().map(|c| c.id).collect::<Vec<_>>().join(", ")
}

impl Thresholds {
    /// The threshold of `id`.
    pub fn get(&self, id: &str) -> Option<f64> {
        self.values.get(id).copied()
    }

    fn set(&mut self, id: &str, v: f64, origin: &str) -> Result<()> {
        if !self.values.contains_key(id) {
            return Err(error::usage(format!(
                "{origin}: unknown criterion '{id}'; known criteria: {}",
                known_ids()
            )));
        }
        if !v.is_finite() {
            return Err(error::usage(format!(
                "{origin}: criterion '{id}' needs a finite number"
            )));
        }
        self.values.insert(id.to_string(), v);
        Ok(())
    }

    /// Applies a JSON criteria file: `{"criterion_id": threshold, ...}`.
    pub fn apply_file(&mut self, path: &Path) -> Result<()> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| error::usage(format!("cannot read criteria file {shown}: {e}")))?;
        let map: BTreeMap<String, f64> = serde_json::from_str(&text).map_err(|e| {
            error::usage(format!(
                "criteria file {shown} is not a JSON object of criterion → number ({e}); e.g. \
                 {{\"mean_latency_ms\": 5}}"
            ))
        })?;
        for (id, v) in map {
            self.set(&id, v, &format!("criteria file {shown}"))?;
        }
        self.source = format!("criteria file {shown}");
        Ok(())
    }

    /// Applies `--criterion id=value`.
    pub fn apply_flag(&mut self, spec: &str) -> Result<()> {
        let (id, v) = spec.split_once('=').ok_or_else(|| {
            error::usage(format!(
                "--criterion '{spec}': write id=value, e.g. mean_latency_ms=2.5"
            ))
        })?;
        let v: f64 = v
            .trim()
            .parse()
            .map_err(|_| error::usage(format!("--criterion '{spec}': '{v}' is not a number")))?;
        self.set(id.trim(), v, &format!("--criterion '{spec}'"))?;
        self.source = if self.source == "defaults" {
            "--criterion flags".into()
        } else if self.source.ends_with("--criterion flags") {
            self.source.clone()
        } else {
            format!("{} + --criterion flags", self.source)
        };
        Ok(())
    }
}

/// Evaluates every criterion against the document.
pub fn evaluate(doc: &RunDocument, t: &Thresholds) -> CriteriaSection {
    let criteria: Vec<CriterionResult> = CRITERIA
        .iter()
        .map(|c| {
            let threshold = t.get(c.id).unwrap_or(c.default);
            let (measured, status, detail) = match (c.measure)(doc) {
                Measurement::Value(v, d) => (
                    Some(v),
                    if c.goal.passes(v, threshold) {
                        CriterionStatus::Pass
                    } else {
                        CriterionStatus::Fail
                    },
                    d,
                ),
                Measurement::NotEvaluated(why) => (None, CriterionStatus::NotEvaluated, why),
            };
            CriterionResult {
                id: c.id.into(),
                description: c.description.into(),
                target: format!("{} {} {}", c.goal.symbol(), threshold, c.unit),
                threshold,
                unit: c.unit.into(),
                measured,
                status,
                detail,
            }
        })
        .collect();
    let verdict = if criteria.iter().any(|c| c.status == CriterionStatus::Fail) {
        CriterionStatus::Fail
    } else if criteria.iter().any(|c| c.status == CriterionStatus::Pass) {
        CriterionStatus::Pass
    } else {
        CriterionStatus::NotEvaluated
    };
    CriteriaSection {
        source: t.source.clone(),
        verdict,
        criteria,
    }
}

/// The failed criteria, as one line each: `mean_latency_ms: measured 0.41 ms, target < 0.001 ms`.
pub fn failures(section: &CriteriaSection) -> Vec<String> {
    section
        .criteria
        .iter()
        .filter(|c| c.status == CriterionStatus::Fail)
        .map(|c| {
            format!(
                "{}: measured {} {}, target {}",
                c.id,
                c.measured.map_or("?".into(), fmt_num),
                c.unit,
                c.target
            )
        })
        .collect()
}

/// Up to 4 significant decimals, no trailing zeros.
pub fn fmt_num(v: f64) -> String {
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_and_unknown_ids_are_usage_errors() {
        let mut t = Thresholds::default();
        assert_eq!(t.get("mean_latency_ms"), Some(5.0));
        t.apply_flag("mean_latency_ms=0.001").unwrap();
        assert_eq!(t.get("mean_latency_ms"), Some(0.001));
        assert_eq!(t.source, "--criterion flags");
        for bad in [
            "nope=1",
            "mean_latency_ms",
            "mean_latency_ms=x",
            "mean_latency_ms=inf",
        ] {
            let e = t.apply_flag(bad).unwrap_err();
            assert_eq!(error::exit_kind(&e), error::ExitKind::Usage, "{bad}");
        }
    }

    #[test]
    fn criteria_file_is_json_and_bad_files_name_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("c.json");
        std::fs::write(&good, r#"{"within_timeout_pct": 99.5}"#).unwrap();
        let mut t = Thresholds::default();
        t.apply_file(&good).unwrap();
        assert_eq!(t.get("within_timeout_pct"), Some(99.5));
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, r#"{"within_timeout_pct": "high"}"#).unwrap();
        let e = Thresholds::default().apply_file(&bad).unwrap_err();
        assert!(e.to_string().contains("bad.json"), "{e}");
        let missing = dir.path().join("missing.json");
        let e = Thresholds::default().apply_file(&missing).unwrap_err();
        assert_eq!(error::exit_kind(&e), error::ExitKind::Usage);
    }

    #[test]
    fn goals_compare_strictly_except_at_most() {
        assert!(Goal::Below.passes(4.9, 5.0) && !Goal::Below.passes(5.0, 5.0));
        assert!(Goal::Above.passes(95.1, 95.0) && !Goal::Above.passes(95.0, 95.0));
        assert!(Goal::AtMost.passes(0.0, 0.0) && !Goal::AtMost.passes(1.0, 0.0));
    }
}
