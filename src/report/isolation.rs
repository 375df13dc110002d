//! The `isolation` section of run.json: one verdict per (check, isolation level), with the load
//! phase's transaction classification and the deterministic interleaving that backs it.
//!
//! Invariant: a verdict is `violation` only for an anomaly the isolation level forbids (or a broken
//! integrity invariant, which every level forbids); an anomaly the level permits is
//! `anomaly_permitted`, never a failure. Each case carries a one-line explanation for a DBA.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::model::LatencySummary;

/// Results of `pgstorm isolation` (or of the suite's isolation part).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct IsolationResult {
    /// How the checks were driven.
    pub config: IsolationConfig,
    /// One entry per (check, level), checks in the order run, levels weakest first.
    pub cases: Vec<IsolationCase>,
    /// Number of cases whose verdict is `violation` (0 on a correct server).
    pub violations: u64,
}

/// How the isolation checks were driven.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct IsolationConfig {
    /// Concurrent workers of each load phase (one thread and one connection each).
    pub workers: u32,
    /// Transactions per worker in each load phase, when run by count.
    pub transactions_per_worker: Option<u64>,
    /// Duration of each load phase (s), when run by time.
    pub duration_s: Option<f64>,
    /// Attempts per transaction before giving up (1 = no retry), as pgbench's `--max-tries`.
    pub max_tries: u32,
    /// Checks run (`bank`, `lost-update`, `write-skew`, `read-skew`, `deadlock`).
    pub checks: Vec<String>,
    /// Levels run (`read committed`, `repeatable read`, `serializable`).
    pub levels: Vec<String>,
    /// deadlock_timeout the workers ran with (pgstorm lowers it when allowed, to keep deadlock
    /// phases short).
    pub deadlock_timeout: String,
    /// Random seed of the workers.
    pub seed: u64,
}

/// What one (check, level) showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// No anomaly.
    Ok,
    /// An anomaly this level permits was produced and detected (the checker works).
    AnomalyPermitted,
    /// An anomaly this level forbids, or a broken integrity invariant: the server failed.
    Violation,
}

impl Verdict {
    /// Stable name, as in run.json.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::AnomalyPermitted => "anomaly_permitted",
            Verdict::Violation => "violation",
        }
    }

    /// How the verdict is printed.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::AnomalyPermitted => "anomaly permitted by this level (detected)",
            Verdict::Violation => "VIOLATION",
        }
    }
}

/// One (check, level).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct IsolationCase {
    /// Check name.
    pub check: String,
    /// Isolation level (`read committed`, `repeatable read`, `serializable`).
    pub level: String,
    /// Whether this level permits the check's anomaly.
    pub permitted: bool,
    /// The verdict over both phases.
    pub verdict: Verdict,
    /// One line a DBA understands: what was seen, and why it is or is not acceptable.
    pub explanation: String,
    /// The concurrent load phase.
    pub load: Option<CheckLoad>,
    /// The deterministic two-session interleaving.
    pub interleaving: Option<Interleaving>,
}

/// The concurrent load phase of one (check, level).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CheckLoad {
    /// Wall time of the phase (s).
    pub duration_s: f64,
    /// Transactions started (each counted once, whatever its retries).
    pub transactions: u64,
    /// Transactions that committed (possibly after retries).
    pub committed: u64,
    /// Transactions abandoned after `max_tries` attempts or on an error that is not retried, by
    /// the class of their last error.
    pub failed: BTreeMap<String, u64>,
    /// Failed attempts by class (`serialization` = 40001, `deadlock` = 40P01, `other`, ...).
    pub attempt_errors: BTreeMap<String, u64>,
    /// Retries (attempts beyond the first).
    pub retries: u64,
    /// Committed transactions that needed at least one retry.
    pub retried_transactions: u64,
    /// Latency of committed transactions, first attempt to commit (retries included).
    pub latency: LatencySummary,
    /// Anomalies of the check's kind found in the committed history.
    pub anomalies: u64,
    /// Broken integrity invariants (forbidden at every level) found in the committed history.
    pub integrity_breaks: u64,
    /// What the invariant check compared, in one line.
    pub detail: String,
    /// pg_stat_database.deadlocks delta over the phase (deadlock check only).
    pub server_deadlocks: Option<i64>,
}

/// The deterministic interleaving of one (check, level).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Interleaving {
    /// The schedule as run: one line per step, `s1: <action> -> <outcome>`.
    pub steps: Vec<String>,
    /// Anomalies of the check's kind it produced.
    pub anomalies: u64,
    /// Broken integrity invariants it produced.
    pub integrity_breaks: u64,
    /// What the invariant check compared, in one line.
    pub detail: String,
    /// Deadlocks (40P01) the sessions received.
    pub deadlocks: u64,
    /// Serialization failures (40001) the sessions received.
    pub serialization_failures: u64,
}

/// `isolation.csv`: one row per (check, level) with the verdict, the load phase's transaction
/// classes and latency, and the interleaving's outcome.
pub fn csv(result: &IsolationResult) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "check",
        "level",
        "permitted",
        "verdict",
        "transactions",
        "committed",
        "failed",
        "serialization_failures",
        "deadlocks",
        "other_errors",
        "retries",
        "p50_ms",
        "p99_ms",
        "max_ms",
        "load_anomalies",
        "load_integrity_breaks",
        "server_deadlocks",
        "interleaving_anomalies",
        "interleaving_integrity_breaks",
        "explanation",
    ])?;
    for c in &result.cases {
        let mut r = vec![
            c.check.clone(),
            c.level.clone(),
            c.permitted.to_string(),
            c.verdict.as_str().to_string(),
        ];
        match &c.load {
            Some(l) => {
                let get = |k: &str| l.attempt_errors.get(k).copied().unwrap_or(0);
                let other: u64 = l
                    .attempt_errors
                    .iter()
                    .filter(|(k, _)| *k != "serialization" && *k != "deadlock")
                    .map(|(_, v)| v)
                    .sum();
                r.extend([
                    l.transactions.to_string(),
                    l.committed.to_string(),
                    l.failed.values().sum::<u64>().to_string(),
                    get("serialization").to_string(),
                    get("deadlock").to_string(),
                    other.to_string(),
                    l.retries.to_string(),
                    format!("{:.3}", l.latency.p50_ms),
                    format!("{:.3}", l.latency.p99_ms),
                    format!("{:.3}", l.latency.max_ms),
                    l.anomalies.to_string(),
                    l.integrity_breaks.to_string(),
                    l.server_deadlocks
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                ]);
            }
            None => r.extend(std::iter::repeat_n(String::new(), 13)),
        }
        match &c.interleaving {
            Some(i) => r.extend([i.anomalies.to_string(), i.integrity_breaks.to_string()]),
            None => r.extend([String::new(), String::new()]),
        }
        r.push(c.explanation.clone());
        w.write_record(&r)?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}
