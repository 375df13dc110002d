//! Analysis of runs: the advisor and the success criteria (what to change after a load, and
//! whether the run passed), and models fitted to measurements with the advice drawn from them
//! (pool-size sweep: `pool_size`, `slo`, `usl`). Criteria and models work on `report::model`
//! values and plain numbers, never on engine internals.
//!
//! The advisor brackets a load with two snapshots of the statistics views ([`begin`] before,
//! [`finish`] after), explains the workload's own statements, and turns the differences into
//! [`Finding`]s, each with its evidence, the threshold applied and where that threshold comes
//! from, and the SQL to act on it.
//!
//! Invariants: only objects in scope are judged (schema `pgstorm` unless `--all-schemas`); the
//! rules are functions of the two snapshots, the plans and the result document (plus, for a
//! local server, the host's disk types), so they are unit-testable; findings are ordered most
//! severe first.

pub mod criteria;
pub mod indexes;
pub mod plans;
pub mod pool_size;
pub mod server;
pub mod slo;
pub mod snapshot;
pub mod tables;
#[cfg(test)]
mod tests;
pub mod usl;

use std::collections::BTreeMap;

use postgres::Client;

use crate::report::findings::{AnalysisSection, Finding};
use crate::report::model::RunDocument;
use crate::workload::DataRange;
use plans::ExplainedPlan;
use snapshot::{Scope, Snapshot, StatementsSource};

/// How the advisor runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdvisorOptions {
    /// Which schemas to judge.
    pub scope: Scope,
}

/// The "before" half of an analysis.
pub struct Before {
    snapshot: Snapshot,
    opts: AdvisorOptions,
}

/// Everything the rules read.
pub struct Inputs<'a> {
    /// Snapshot before the load.
    pub before: &'a Snapshot,
    /// Snapshot after the load.
    pub after: &'a Snapshot,
    /// Plans of the workload's statements.
    pub plans: &'a [ExplainedPlan],
    /// The run's document (target settings, host, load config).
    pub doc: &'a RunDocument,
    /// Whether the server runs on the load machine (settings vs RAM/disks make sense).
    pub server_local: bool,
    /// Whether every disk of the load machine is solid-state (`None`: unknown).
    pub ssd: Option<bool>,
    /// The scope's name, for findings about the whole scope.
    pub scope_name: &'a str,
}

impl Inputs<'_> {
    /// A setting from the run's settings snapshot.
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.doc
            .target
            .server
            .settings
            .get(name)
            .map(String::as_str)
    }
}

/// Takes the "before" snapshot.
pub fn begin(client: &mut Client, opts: AdvisorOptions) -> Result<Before, postgres::Error> {
    Ok(Before {
        snapshot: snapshot::take(client, opts.scope)?,
        opts,
    })
}

/// Takes the "after" snapshot, explains the load's statements (from `doc.load`) and returns the
/// analysis section. Call it after the load's connections are gone, so their statistics are
/// flushed.
pub fn finish(
    client: &mut Client,
    before: Before,
    doc: &RunDocument,
) -> Result<AnalysisSection, postgres::Error> {
    let after = snapshot::take(client, before.opts.scope)?;
    let mut notes = Vec::new();
    let plans = match (&doc.load, data_range(client)) {
        (Some(load), Some(data)) => {
            let names: Vec<String> = load.config.mix.iter().map(|m| m.name.clone()).collect();
            plans::explain_workload(client, &names, &data)
        }
        (Some(_), None) => {
            notes.push(
                "plans not checked: no pgstorm dataset marker to draw parameters from".into(),
            );
            Vec::new()
        }
        (None, _) => Vec::new(),
    };
    for p in plans.iter().filter(|p| p.error.is_some()) {
        notes.push(format!(
            "EXPLAIN of query type {} failed: {}",
            p.query_type,
            p.error.as_deref().unwrap_or("")
        ));
    }
    Ok(analyze(
        &before.snapshot,
        &after,
        &plans,
        doc,
        before.opts,
        notes,
    ))
}

/// The pure part: findings and tables from two snapshots, the plans and the document.
pub fn analyze(
    before: &Snapshot,
    after: &Snapshot,
    plans: &[ExplainedPlan],
    doc: &RunDocument,
    opts: AdvisorOptions,
    mut notes: Vec<String>,
) -> AnalysisSection {
    // Decided from the driver's hosts when the document was made (`Target::is_local`).
    let server_local = doc.target.local;
    let inp = Inputs {
        before,
        after,
        plans,
        doc,
        server_local,
        ssd: if server_local { all_disks_ssd() } else { None },
        scope_name: opts.scope.describe(),
    };
    let mut findings: Vec<Finding> = Vec::new();
    findings.extend(indexes::findings(&inp));
    findings.extend(tables::findings(&inp));
    findings.extend(server::findings(&inp, &mut notes));
    // Most severe first; stable within a severity so the rule order is kept.
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let (top_total, top_mean) = server::top_statements(before, after);
    let pgss = match &after.statements_source {
        StatementsSource::Available(_) => "used".to_string(),
        StatementsSource::NotCreated => {
            notes.push(
                "pg_stat_statements is preloaded but not created in this database: run CREATE \
                 EXTENSION pg_stat_statements to get top statements and per-statement spills"
                    .into(),
            );
            "preloaded but not created in this database".to_string()
        }
        StatementsSource::NotPreloaded => "not preloaded".to_string(),
    };
    AnalysisSection {
        scope: opts.scope.describe().into(),
        window_s: tables::round3(after.at.duration_since(before.at).as_secs_f64()),
        pg_stat_statements: pgss,
        findings,
        notes,
        indexes: indexes::usage(before, after),
        tables: tables::activity(before, after),
        plans: plans
            .iter()
            .map(|p| crate::report::findings::PlanCheck {
                query_type: p.query_type.clone(),
                sql: p.sql.clone(),
                execution_ms: p.execution_ms,
                temp_blocks_written: p.temp_written_blocks(),
                plan: p.render(),
                error: p.error.clone(),
            })
            .collect(),
        top_by_total_time: top_total,
        top_by_mean_time: top_mean,
    }
}

/// The seeded data window, read from the dataset marker (`None` without a dataset).
fn data_range(client: &mut Client) -> Option<DataRange> {
    let m = crate::dataset::status(client).ok().flatten()?;
    Some(DataRange {
        partners: m.partners,
        orders: m.orders,
        start_us: m.data_start.timestamp_micros(),
        end_us: m.data_end.timestamp_micros(),
    })
}

/// `Some(true)` when every real block device of this machine is non-rotational.
fn all_disks_ssd() -> Option<bool> {
    let entries = std::fs::read_dir("/sys/block").ok()?;
    let mut seen = false;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if ["loop", "ram", "zram", "dm-", "md", "sr", "nbd"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            continue;
        }
        let rot = std::fs::read_to_string(e.path().join("queue/rotational")).ok()?;
        seen = true;
        if rot.trim() != "0" {
            return Some(false);
        }
    }
    seen.then_some(true)
}

/// Builds an evidence map.
pub fn ev(pairs: &[(&str, serde_json::Value)]) -> BTreeMap<String, serde_json::Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// Quotes an identifier for SQL when it needs it (`pos_order` stays bare).
pub fn quote_ident(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

/// `part / total`, `None` when total is 0.
pub fn ratio(part: i64, total: i64) -> Option<f64> {
    (total > 0).then(|| part as f64 / total as f64)
}
