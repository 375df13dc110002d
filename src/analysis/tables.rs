//! Table rules: missing indexes (sequential-scan statistics confirmed by the workload's plans),
//! table health (dead tuples, never analyzed), cache hit ratio, and the per-table activity table.
//!
//! Invariants: `missing_index` is only reported when a plan of the workload's own queries shows a
//! Seq Scan on a large table whose filter keeps a small share of the rows, and no valid index
//! already leads with the filtered columns; statistics alone only ever give an `info` finding; a
//! dead-row finding says how many of the dead rows the run's own writes made, so the run's own
//! churn is not mistaken for neglected maintenance, nor old bloat for the run's doing.

use serde_json::json;

use super::plans::{filter_columns, ExplainedPlan, PlanNode};
use super::snapshot::{Snapshot, TableStat};
use super::{ev, quote_ident, ratio, Inputs};
use crate::report::findings::{Finding, Severity, TableActivity};

/// Live rows below which a sequential scan is cheap enough not to need an index (PgHero's
/// missing-index rule uses the same floor).
pub const MIN_ROWS_FOR_INDEX: f64 = 10_000.0;
/// Share of a table's scans that must use an index (PgHero: below 95% is "missing index").
pub const MIN_INDEX_SCAN_SHARE: f64 = 0.95;
/// Largest share of scanned rows a filter may keep for an index to pay off (rule of thumb for
/// B-tree vs sequential scan; above it the planner is right to scan).
pub const MAX_SELECTIVITY: f64 = 0.05;
/// Dead-row share that calls for a vacuum (autovacuum_vacuum_scale_factor's default 0.2).
pub const MAX_DEAD_RATIO: f64 = 0.2;
/// Dead rows below which the ratio does not matter.
pub const MIN_DEAD_ROWS: i64 = 1_000;
/// Updates during the window below which the HOT share is noise.
pub const MIN_UPDATES: i64 = 1_000;
/// HOT share of updates below which most updates also write every index.
pub const MIN_HOT_SHARE: f64 = 0.5;
/// Cache hit ratio floor (PgHero).
pub const MIN_HIT_RATIO: f64 = 0.99;
/// Blocks read from outside shared buffers (8 MB) below which a low hit ratio is a cold start,
/// not a working set that does not fit.
pub const MIN_BLOCKS_READ: i64 = 1_000;

struct Delta {
    seq_scan: i64,
    seq_tup_read: i64,
    idx_scan: i64,
    ins: i64,
    upd: i64,
    hot: i64,
    del: i64,
    heap_read: i64,
    heap_hit: i64,
    idx_read: i64,
    idx_hit: i64,
}

fn delta(a: &TableStat, b: Option<&TableStat>) -> Delta {
    let z = TableStat::default();
    let b = b.unwrap_or(&z);
    Delta {
        seq_scan: a.seq_scan - b.seq_scan,
        seq_tup_read: a.seq_tup_read - b.seq_tup_read,
        idx_scan: a.idx_scan - b.idx_scan,
        ins: a.n_tup_ins - b.n_tup_ins,
        upd: a.n_tup_upd - b.n_tup_upd,
        hot: a.n_tup_hot_upd - b.n_tup_hot_upd,
        del: a.n_tup_del - b.n_tup_del,
        heap_read: a.heap_blks_read - b.heap_blks_read,
        heap_hit: a.heap_blks_hit - b.heap_blks_hit,
        idx_read: a.idx_blks_read - b.idx_blks_read,
        idx_hit: a.idx_blks_hit - b.idx_blks_hit,
    }
}

/// Per-table activity over the window.
pub fn activity(before: &Snapshot, after: &Snapshot) -> Vec<TableActivity> {
    after
        .tables
        .iter()
        .map(|(k, a)| {
            let d = delta(a, before.tables.get(k));
            TableActivity {
                table: k.clone(),
                live_rows: a.n_live_tup,
                dead_rows: a.n_dead_tup,
                seq_scan: d.seq_scan,
                seq_tup_read: d.seq_tup_read,
                idx_scan: d.idx_scan,
                inserted: d.ins,
                updated: d.upd,
                hot_updated: d.hot,
                deleted: d.del,
                heap_hit_ratio: ratio(d.heap_hit, d.heap_hit + d.heap_read),
                last_vacuum: a.last_vacuum.map(|t| t.to_rfc3339()),
                last_analyze: a.last_analyze.map(|t| t.to_rfc3339()),
            }
        })
        .collect()
}

/// All table findings.
pub fn findings(inp: &Inputs<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    missing_indexes(inp, &mut out);
    health(inp, &mut out);
    hot_updates(inp, &mut out);
    cache_hit(inp, &mut out);
    out
}

/// The plan nodes that are a selective Seq Scan on `table` (rows, filter) in some plan.
fn selective_seq_scans<'p>(
    plans: &'p [ExplainedPlan],
    table: &str,
) -> Vec<(&'p ExplainedPlan, &'p PlanNode)> {
    plans
        .iter()
        .flat_map(|p| p.nodes.iter().map(move |n| (p, n)))
        .filter(|(_, n)| {
            n.node_type == "Seq Scan"
                && n.relation.as_deref() == Some(table)
                && n.filter.is_some()
                && n.rows_scanned() >= MIN_ROWS_FOR_INDEX
                && n.actual_rows * n.loops.max(1.0) <= MAX_SELECTIVITY * n.rows_scanned()
        })
        .collect()
}

fn missing_indexes(inp: &Inputs<'_>, out: &mut Vec<Finding>) {
    for (k, a) in &inp.after.tables {
        let d = delta(a, inp.before.tables.get(k));
        if d.seq_scan == 0 {
            continue;
        }
        let share = d.idx_scan as f64 / (d.idx_scan + d.seq_scan) as f64;
        let stats = ev(&[
            ("seq_scan_during_run", json!(d.seq_scan)),
            ("seq_tup_read_during_run", json!(d.seq_tup_read)),
            ("idx_scan_during_run", json!(d.idx_scan)),
            ("index_scan_share", json!(round3(share))),
            ("live_rows", json!(a.n_live_tup)),
        ]);
        let hits = selective_seq_scans(inp.plans, k);
        let mut suggested: Vec<Vec<String>> = Vec::new();
        for (plan, node) in &hits {
            let cols = filter_columns(node.filter.as_deref().unwrap_or(""), &a.columns);
            if cols.is_empty()
                || suggested.contains(&cols)
                || leading_index_exists(inp.after, k, &cols)
            {
                continue;
            }
            suggested.push(cols.clone());
            let kept = node.actual_rows * node.loops.max(1.0);
            let scanned = node.rows_scanned();
            let mut evidence = stats.clone();
            evidence.insert("query_type".into(), json!(plan.query_type));
            evidence.insert("plan_rows_scanned".into(), json!(scanned));
            evidence.insert("plan_rows_kept".into(), json!(kept));
            evidence.insert("plan_selectivity".into(), json!(round3(kept / scanned)));
            evidence.insert("plan_execution_ms".into(), json!(plan.execution_ms));
            let name = format!("{}_{}_idx", a.name, cols.join("_"));
            out.push(Finding {
                code: "missing_index".into(),
                severity: if share < MIN_INDEX_SCAN_SHARE {
                    Severity::Warning
                } else {
                    Severity::Info
                },
                object: k.clone(),
                title: format!(
                    "{k} ({} rows) is read by sequential scan to keep {:.2}% of its rows in \
                     query type {}: index ({}) is missing",
                    a.n_live_tup,
                    100.0 * kept / scanned,
                    plan.query_type,
                    cols.join(", ")
                ),
                evidence,
                threshold: format!(
                    "Seq Scan with a filter keeping <= {:.0}% of >= {MIN_ROWS_FOR_INDEX:.0} rows \
                     in a workload plan; index scans < {:.0}% of the table's scans make it a \
                     warning",
                    MAX_SELECTIVITY * 100.0,
                    MIN_INDEX_SCAN_SHARE * 100.0
                ),
                source: "PgHero missing indexes (scan share, 10,000 rows), confirmed by EXPLAIN \
                         ANALYZE of the workload's statements"
                    .into(),
                action: format!(
                    "create the index without blocking writes, then re-run to confirm the plan \
                     uses it (filter: {})",
                    node.filter.as_deref().unwrap_or("")
                ),
                sql: Some(format!(
                    "CREATE INDEX CONCURRENTLY {} ON {}.{} ({});",
                    quote_ident(&name),
                    quote_ident(&a.schema),
                    quote_ident(&a.name),
                    cols.iter()
                        .map(|c| quote_ident(c))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                plan: Some(node.describe()),
            });
        }
        // Heavy sequential scans no workload plan accounts for: other statements read this table.
        let explained = inp.plans.iter().any(|p| {
            p.nodes
                .iter()
                .any(|n| n.node_type == "Seq Scan" && n.relation.as_deref() == Some(k.as_str()))
        });
        if !explained
            && hits.is_empty()
            && share < MIN_INDEX_SCAN_SHARE
            && a.n_live_tup as f64 >= MIN_ROWS_FOR_INDEX
        {
            out.push(Finding {
                code: "seq_scan_heavy".into(),
                severity: Severity::Info,
                object: k.clone(),
                title: format!(
                    "{k} ({} rows): {:.0}% of its scans during the run were sequential, and \
                     none of the workload's plans explains them",
                    a.n_live_tup,
                    100.0 * (1.0 - share)
                ),
                evidence: stats,
                threshold: format!(
                    "index scans < {:.0}% of scans on a table with >= {MIN_ROWS_FOR_INDEX:.0} live rows",
                    MIN_INDEX_SCAN_SHARE * 100.0
                ),
                source: "PgHero missing indexes".into(),
                action: "find the statements reading it (top statements below, or \
                         pg_stat_statements) and EXPLAIN them"
                    .into(),
                sql: None,
                plan: None,
            });
        }
    }
}

/// Whether a valid index on `table` already leads with `cols` (then the planner chose the scan
/// on purpose, or its estimates are off: not a missing index).
fn leading_index_exists(after: &Snapshot, table: &str, cols: &[String]) -> bool {
    after.indexes.values().any(|i| {
        i.valid
            && i.predicate.is_none()
            && i.table_qualified() == table
            && i.key_names.len() >= cols.len()
            && i.key_names[..cols.len()]
                .iter()
                .zip(cols)
                .all(|(k, c)| k.as_deref() == Some(c.as_str()))
    })
}

/// How many of `after`'s dead rows the writes between the two snapshots made, and how many such
/// writes there were. Updates and deletes leave one dead row each, and so does an insert that
/// rolled back (the counters count attempts, committed or not: an upper bound). Without a vacuum
/// in the window the rows dead before it are still there, so only the growth is the run's; after
/// one, the old ones were removed, so every dead row left came from the window's writes.
fn dead_rows_made_in_window(before: Option<&TableStat>, after: &TableStat) -> (i64, i64) {
    let d = delta(after, before);
    let writes = (d.upd + d.del + d.ins).max(0);
    let before_dead = before.map_or(0, |b| b.n_dead_tup);
    let vacuumed = after.last_vacuum > before.and_then(|b| b.last_vacuum);
    let made = if vacuumed {
        after.n_dead_tup
    } else {
        after.n_dead_tup - before_dead
    };
    (made.clamp(0, after.n_dead_tup.max(0)).min(writes), writes)
}

fn health(inp: &Inputs<'_>, out: &mut Vec<Finding>) {
    for (k, a) in &inp.after.tables {
        let total = a.n_live_tup + a.n_dead_tup;
        let dead = if total > 0 {
            a.n_dead_tup as f64 / total as f64
        } else {
            0.0
        };
        if a.n_dead_tup >= MIN_DEAD_ROWS && dead > MAX_DEAD_RATIO {
            let before = inp.before.tables.get(k);
            let (made, writes) = dead_rows_made_in_window(before, a);
            let d = delta(a, before);
            let by_run = format!(
                "{made} of the {} dead rows were made by this run's writes ({} updates, {} \
                 deletes, {} inserts during the run; rolled-back inserts leave dead rows too)",
                a.n_dead_tup, d.upd, d.del, d.ins
            );
            let (title_tail, action) = if made > 0 {
                (
                    format!("; {made} of them were made by this run's writes"),
                    "the run's own writes made them: vacuum before the next run so it starts \
                     from the same state; if a production workload writes like this, lower \
                     autovacuum_vacuum_scale_factor for this table",
                )
            } else {
                (
                    "; none of them were made by this run".to_string(),
                    "they were dead before the run started: vacuum it now; if it keeps \
                     happening, lower autovacuum_vacuum_scale_factor for this table",
                )
            };
            out.push(Finding {
                code: "dead_tuples".into(),
                severity: Severity::Warning,
                object: k.clone(),
                title: format!(
                    "{k}: {:.0}% of its rows are dead ({} dead, {} live){title_tail}",
                    dead * 100.0,
                    a.n_dead_tup,
                    a.n_live_tup
                ),
                evidence: ev(&[
                    ("dead_rows", json!(a.n_dead_tup)),
                    ("live_rows", json!(a.n_live_tup)),
                    ("dead_ratio", json!(round3(dead))),
                    ("last_vacuum", json!(a.last_vacuum.map(|t| t.to_rfc3339()))),
                    (
                        "dead_rows_before_run",
                        json!(before.map_or(0, |b| b.n_dead_tup)),
                    ),
                    ("dead_rows_made_by_run", json!(made)),
                    ("writes_during_run", json!(writes)),
                    ("made_by_run", json!(by_run)),
                ]),
                threshold: format!(
                    "dead rows > {:.0}% of rows and >= {MIN_DEAD_ROWS}",
                    MAX_DEAD_RATIO * 100.0
                ),
                source: "autovacuum_vacuum_scale_factor default (0.2); check_postgres bloat".into(),
                action: action.into(),
                sql: Some(format!(
                    "VACUUM (ANALYZE) {}.{};",
                    quote_ident(&a.schema),
                    quote_ident(&a.name)
                )),
                plan: None,
            });
        }
        if a.last_analyze.is_none() && a.n_live_tup >= MIN_DEAD_ROWS {
            out.push(Finding {
                code: "never_analyzed".into(),
                severity: Severity::Warning,
                object: k.clone(),
                title: format!(
                    "{k} ({} rows) has never been analyzed: the planner works from defaults",
                    a.n_live_tup
                ),
                evidence: ev(&[("live_rows", json!(a.n_live_tup))]),
                threshold: format!(
                    "no ANALYZE or autoanalyze since statistics reset, >= {MIN_DEAD_ROWS} rows"
                ),
                source: "check_postgres last_analyze".into(),
                action: "analyze it".into(),
                sql: Some(format!(
                    "ANALYZE {}.{};",
                    quote_ident(&a.schema),
                    quote_ident(&a.name)
                )),
                plan: None,
            });
        }
    }
}

fn hot_updates(inp: &Inputs<'_>, out: &mut Vec<Finding>) {
    for (k, a) in &inp.after.tables {
        let d = delta(a, inp.before.tables.get(k));
        if d.upd < MIN_UPDATES {
            continue;
        }
        let share = d.hot as f64 / d.upd as f64;
        if share >= MIN_HOT_SHARE {
            continue;
        }
        out.push(Finding {
            code: "low_hot_updates".into(),
            severity: Severity::Info,
            object: k.clone(),
            title: format!(
                "{k}: only {:.0}% of {} updates during the run were HOT; the others wrote a new \
                 entry in every index",
                share * 100.0,
                d.upd
            ),
            evidence: ev(&[
                ("updates_during_run", json!(d.upd)),
                ("hot_updates_during_run", json!(d.hot)),
                ("inserts_during_run", json!(d.ins)),
                ("deletes_during_run", json!(d.del)),
                ("hot_share", json!(round3(share))),
            ]),
            threshold: format!(
                "HOT share < {:.0}% of >= {MIN_UPDATES} updates",
                MIN_HOT_SHARE * 100.0
            ),
            source: "PostgreSQL docs (Heap-Only Tuples; fillfactor)".into(),
            action: "when the updated columns are not indexed, an update stays HOT only if its \
                     page has room: leave some with a lower fillfactor (new pages at once; existing \
                     ones after a rewrite such as VACUUM FULL)"
                .into(),
            sql: Some(format!(
                "ALTER TABLE {}.{} SET (fillfactor = 90);",
                quote_ident(&a.schema),
                quote_ident(&a.name)
            )),
            plan: None,
        });
    }
}

fn cache_hit(inp: &Inputs<'_>, out: &mut Vec<Finding>) {
    let (mut hr, mut hh, mut ir, mut ih) = (0, 0, 0, 0);
    for (k, a) in &inp.after.tables {
        let d = delta(a, inp.before.tables.get(k));
        hr += d.heap_read;
        hh += d.heap_hit;
        ir += d.idx_read;
        ih += d.idx_hit;
    }
    for (what, hit, read) in [("heap", hh, hr), ("index", ih, ir)] {
        let total = hit + read;
        let Some(r) = ratio(hit, total) else { continue };
        if read < MIN_BLOCKS_READ || r >= MIN_HIT_RATIO {
            continue;
        }
        out.push(Finding {
            code: format!("{what}_cache_hit"),
            severity: Severity::Warning,
            object: inp.scope_name.to_string(),
            title: format!(
                "{what} cache hit ratio {:.2}% during the run ({read} of {total} blocks read \
                 from outside shared_buffers)",
                r * 100.0
            ),
            evidence: ev(&[
                ("blocks_hit", json!(hit)),
                ("blocks_read", json!(read)),
                ("hit_ratio", json!(round3(r))),
                (
                    "shared_buffers",
                    json!(inp.doc.target.server.settings.get("shared_buffers")),
                ),
            ]),
            threshold: format!(
                "hit ratio < {:.0}% with >= {MIN_BLOCKS_READ} blocks read from outside shared_buffers",
                MIN_HIT_RATIO * 100.0
            ),
            source: "PgHero cache hit rate".into(),
            action: "the working set does not fit in shared_buffers: raise shared_buffers (about \
                     25% of RAM on a dedicated server) or reduce what the queries read"
                .into(),
            sql: Some(
                "ALTER SYSTEM SET shared_buffers = '<25% of RAM>';  -- needs a restart".into(),
            ),
            plan: None,
        });
    }
}

/// Rounds to 3 decimals for readable evidence.
pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
