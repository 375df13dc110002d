//! The document sections written by the advisor (`analysis`) and the success criteria
//! (`criteria`): findings with their evidence, and the verdict.
//!
//! Invariants: every finding carries the numbers it was derived from, the threshold it was held
//! against and where that threshold comes from, so a reader can disagree with the rule without
//! re-running anything. A criterion that could not be measured is `not_evaluated`, never `pass`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How urgent a finding is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing; no action needed unless it matches a symptom.
    Info,
    /// Costs performance now; act on it.
    Warning,
    /// Broken or dangerous (e.g. an invalid index still maintained on every write).
    Critical,
}

impl Severity {
    /// Lower-case name as written in run.json.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One piece of advice.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Finding {
    /// Stable identifier of the rule, e.g. `missing_index`, `unused_index`, `temp_spill`.
    pub code: String,
    /// How urgent.
    pub severity: Severity,
    /// The object concerned (`schema.table`, `schema.index`, a setting name, or `database`).
    pub object: String,
    /// One line: what was seen.
    pub title: String,
    /// The numbers behind it (name → value), measured over the analysis window unless the name
    /// says `cumulative`.
    pub evidence: BTreeMap<String, serde_json::Value>,
    /// The rule applied, with its numbers (e.g. "idx_scan = 0 during the run").
    pub threshold: String,
    /// Where the rule comes from (PgHero, check_postgres, the PostgreSQL documentation, ...).
    pub source: String,
    /// What to do.
    pub action: String,
    /// SQL that carries out the action, when there is one.
    pub sql: Option<String>,
    /// The plan node(s) that show it, from `EXPLAIN (ANALYZE, BUFFERS)` of the workload's own
    /// queries, as compact text.
    pub plan: Option<String>,
}

/// Per-index usage over the analysis window.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct IndexUsage {
    /// `schema.index`.
    pub index: String,
    /// `schema.table`.
    pub table: String,
    /// Index scans during the window.
    pub idx_scan: i64,
    /// Index entries returned during the window.
    pub idx_tup_read: i64,
    /// Live heap rows fetched by plain index scans during the window.
    pub idx_tup_fetch: i64,
    /// idx_tup_fetch / idx_tup_read (null without reads). Index-only and bitmap scans fetch no
    /// rows through the index, so a low value is only a problem for plain index scans.
    pub efficiency: Option<f64>,
    /// Size on disk (bytes).
    pub size_bytes: i64,
}

/// Per-table activity over the analysis window.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct TableActivity {
    /// `schema.table`.
    pub table: String,
    /// Estimated live rows at the end of the window.
    pub live_rows: i64,
    /// Dead rows at the end of the window.
    pub dead_rows: i64,
    /// Sequential scans during the window.
    pub seq_scan: i64,
    /// Rows read by sequential scans during the window.
    pub seq_tup_read: i64,
    /// Index scans during the window.
    pub idx_scan: i64,
    /// Rows inserted during the window (rolled-back inserts included).
    pub inserted: i64,
    /// Rows updated during the window.
    pub updated: i64,
    /// Of which HOT (no index update).
    pub hot_updated: i64,
    /// Rows deleted during the window.
    pub deleted: i64,
    /// Heap block hit ratio during the window (null without block accesses).
    pub heap_hit_ratio: Option<f64>,
    /// Last (auto)vacuum, RFC 3339 (null: never since statistics reset).
    pub last_vacuum: Option<String>,
    /// Last (auto)analyze, RFC 3339 (null: never since statistics reset).
    pub last_analyze: Option<String>,
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of one of the workload's statements.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct PlanCheck {
    /// Query type name.
    pub query_type: String,
    /// The statement as explained, with its representative parameters as literals.
    pub sql: String,
    /// Execution time reported by EXPLAIN ANALYZE (ms).
    pub execution_ms: f64,
    /// Temp blocks written by the whole plan.
    pub temp_blocks_written: i64,
    /// Compact one-line-per-node plan.
    pub plan: String,
    /// Why the plan could not be taken, when it could not (the statement failed).
    pub error: Option<String>,
}

/// A statement from pg_stat_statements, over the analysis window.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct TopStatement {
    /// pg_stat_statements queryid.
    pub queryid: i64,
    /// Normalized query text (first 200 characters).
    pub query: String,
    /// Calls during the window.
    pub calls: i64,
    /// Total execution time during the window (ms).
    pub total_ms: f64,
    /// Mean execution time during the window (ms).
    pub mean_ms: f64,
    /// Rows returned or affected.
    pub rows: i64,
    /// Temp blocks written (sorts/hashes spilled to disk).
    pub temp_blks_written: i64,
}

/// The advisor's section of run.json.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct AnalysisSection {
    /// What was looked at: `schema pgstorm` (default) or `all schemas`.
    pub scope: String,
    /// Length of the window between the two statistics snapshots (s).
    pub window_s: f64,
    /// pg_stat_statements: `used`, `not preloaded`, or `preloaded but not created in this database`.
    pub pg_stat_statements: String,
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
    /// Checks that could not run, and why (e.g. settings vs RAM on a remote server).
    pub notes: Vec<String>,
    /// Index usage over the window.
    pub indexes: Vec<IndexUsage>,
    /// Table activity over the window.
    pub tables: Vec<TableActivity>,
    /// Plans of the workload's statements.
    pub plans: Vec<PlanCheck>,
    /// Top statements by total time during the window (pg_stat_statements).
    pub top_by_total_time: Vec<TopStatement>,
    /// Top statements by mean time during the window (pg_stat_statements).
    pub top_by_mean_time: Vec<TopStatement>,
}

/// Outcome of one criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CriterionStatus {
    /// Measured and within its target.
    Pass,
    /// Measured and outside its target.
    Fail,
    /// Its scenario did not run (its section is absent): neither pass nor fail.
    NotEvaluated,
}

/// One success criterion, evaluated.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct CriterionResult {
    /// Stable identifier, as used in a criteria file and `--criterion`.
    pub id: String,
    /// What it measures.
    pub description: String,
    /// The target, e.g. `< 5 ms`.
    pub target: String,
    /// The threshold value.
    pub threshold: f64,
    /// Unit of threshold and measured value.
    pub unit: String,
    /// The measured value (null when not evaluated).
    pub measured: Option<f64>,
    /// pass, fail or not_evaluated.
    pub status: CriterionStatus,
    /// How it was measured, or why it was not.
    pub detail: String,
}

/// The verdict section of run.json.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct CriteriaSection {
    /// Where the thresholds came from: `defaults`, a criteria file, `--criterion` flags.
    pub source: String,
    /// `pass` (every evaluated criterion passed), `fail`, or `not_evaluated` (none could be).
    pub verdict: CriterionStatus,
    /// Every criterion, in a fixed order.
    pub criteria: Vec<CriterionResult>,
}
