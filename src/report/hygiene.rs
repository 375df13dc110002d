//! The `hygiene` section of run.json: what pgstorm did to the server before a run (vacuum,
//! checkpoint, resets, the `--pre-sql` hook) and after it (`--post-sql`), how long each took,
//! what was skipped and why, and the dead tuples the workload's tables held when the load began.
//!
//! Invariant: every action pgstorm considered appears once in `steps`, done, skipped (with the
//! reason) or failed (with the server's message), so a reader never has to guess whether a run
//! started vacuumed and checkpointed.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What was done around the run so the runs of a set start from the same state.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct HygieneSection {
    /// The actions before the load, in the order they were considered.
    pub steps: Vec<HygieneStep>,
    /// `n_dead_tup` of each workload table (as named in `steps`) from pg_stat_user_tables, read
    /// after the steps and the pre-sql hook, just before the load: about 0 when the vacuum ran.
    pub dead_tuples_at_start: BTreeMap<String, i64>,
    /// The `--pre-sql` hook, when one was given (it ran after the steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_sql: Option<HookRun>,
    /// The `--post-sql` hook, when one was given (it ran after the load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_sql: Option<HookRun>,
}

/// One action before the load.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct HygieneStep {
    /// `truncate_history`, `vacuum_analyze`, `checkpoint`, `pg_stat_statements_reset` or
    /// `pg_stat_reset`.
    pub action: String,
    /// Whether it ran.
    pub status: StepStatus,
    /// Why it was skipped, or the server's message when it failed; absent when done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The tables it acted on (vacuum, truncate).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    /// Wall time of the action (ms); 0 when skipped.
    pub duration_ms: f64,
}

/// Outcome of a [`HygieneStep`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// It ran.
    Done,
    /// It did not run, on purpose or for lack of a privilege (see `reason`).
    Skipped,
    /// It ran and the server refused it (see `reason`).
    Failed,
}

/// One run of a `--pre-sql` / `--post-sql` file.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct HookRun {
    /// The file as given on the command line.
    pub file: String,
    /// SHA-256 of the file's bytes (hex), to tell which version ran.
    pub sha256: String,
    /// Whether every statement of the file succeeded.
    pub ok: bool,
    /// The server's message when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Wall time, connecting included (ms).
    pub duration_ms: f64,
}
