//! Server-level rules: temp-file spills (database counters, pg_stat_statements and plans),
//! row-estimate misestimates, checkpoints, JIT, top statements, and the settings review against
//! the host.
//!
//! Invariants: settings are only compared with the host's RAM and disks when the server runs on
//! the load machine (a sandbox or a loopback/socket target); otherwise a note says the check was
//! skipped, rather than comparing with the wrong machine.

use serde_json::json;

use super::plans::ExplainedPlan;
use super::snapshot::Snapshot;
use super::tables::round3;
use super::{ev, Inputs};
use crate::report::findings::{Finding, Severity, TopStatement};

/// Estimated/actual row ratio (either way) that counts as a misestimate.
pub const MISESTIMATE_FACTOR: f64 = 10.0;
/// Rows (the larger of estimate and actual) below which a misestimate cannot hurt a plan much.
pub const MISESTIMATE_MIN_ROWS: f64 = 1_000.0;
/// Share of checkpoints that may be requested rather than timed.
pub const MAX_REQUESTED_CHECKPOINT_SHARE: f64 = 0.1;
/// Share of a plan's execution time JIT compilation may take.
pub const MAX_JIT_SHARE: f64 = 0.1;
/// Share of max_connections the load's peak may use before headroom is short.
pub const MAX_CONNECTION_USE: f64 = 0.8;
/// Statements listed in each top list.
pub const TOP_N: usize = 5;

/// All server findings (`notes` receives the checks that could not run).
pub fn findings(inp: &Inputs<'_>, notes: &mut Vec<String>) -> Vec<Finding> {
    let mut out = Vec::new();
    temp_files(inp, &mut out);
    statement_spills(inp, &mut out);
    plan_spills(inp.plans, &mut out);
    misestimates(
        inp.plans,
        inp.doc.target.server.server_version_num,
        &mut out,
    );
    jit(inp.plans, &mut out);
    checkpoints(inp, &mut out);
    settings(inp, notes, &mut out);
    out
}

fn temp_files(inp: &Inputs<'_>, out: &mut Vec<Finding>) {
    let files = inp.after.database.temp_files - inp.before.database.temp_files;
    let bytes = inp.after.database.temp_bytes - inp.before.database.temp_bytes;
    if files <= 0 {
        return;
    }
    let work_mem = inp.setting("work_mem");
    out.push(Finding {
        code: "temp_files".into(),
        severity: Severity::Warning,
        object: "database".into(),
        title: format!(
            "{files} temp files ({}) written during the run: sorts or hashes spilled past work_mem ({})",
            super::indexes::human_bytes(bytes),
            work_mem.unwrap_or("?")
        ),
        evidence: ev(&[
            ("temp_files_during_run", json!(files)),
            ("temp_bytes_during_run", json!(bytes)),
            ("avg_temp_file_bytes", json!(bytes / files)),
            ("work_mem", json!(work_mem)),
        ]),
        threshold: "pg_stat_database.temp_files increased during the run".into(),
        source: "PgHero / check_postgres (temp files); PostgreSQL docs, work_mem".into(),
        action: format!(
            "find the spilling statements (temp_spill findings); raise work_mem for them (per \
             role or per session) to about {} rather than globally, since every sort and hash \
             of every connection may use it",
            suggest_work_mem(bytes / files)
        ),
        sql: Some(format!(
            "ALTER ROLE <role> SET work_mem = '{}';",
            suggest_work_mem(bytes / files)
        )),
        plan: None,
    });
}

/// Twice the spill, rounded up to a power of two MB (at least 4MB, PostgreSQL's default).
fn suggest_work_mem(spill_bytes: i64) -> String {
    let mb = ((2 * spill_bytes.max(0)) as f64 / (1024.0 * 1024.0))
        .ceil()
        .max(4.0);
    format!("{}MB", (mb as u64).next_power_of_two())
}

fn statement_spills(inp: &Inputs<'_>, out: &mut Vec<Finding>) {
    for s in window_statements(inp.before, inp.after) {
        if s.temp_blks_written <= 0 {
            continue;
        }
        let bytes = s.temp_blks_written * 8192;
        out.push(Finding {
            code: "temp_spill".into(),
            severity: Severity::Warning,
            object: format!("queryid {}", s.queryid),
            title: format!(
                "statement spilled {} to temp files over {} calls: {}",
                super::indexes::human_bytes(bytes),
                s.calls,
                s.query
            ),
            evidence: ev(&[
                ("temp_blks_written", json!(s.temp_blks_written)),
                ("calls", json!(s.calls)),
                ("mean_ms", json!(round3(s.mean_ms))),
                ("work_mem", json!(inp.setting("work_mem"))),
            ]),
            threshold: "pg_stat_statements.temp_blks_written > 0 during the run".into(),
            source: "pg_stat_statements; PostgreSQL docs, work_mem".into(),
            action: format!(
                "EXPLAIN (ANALYZE, BUFFERS) it; raise work_mem for it to about {} (SET LOCAL in \
                 its transaction, or per role), or make it sort less (an index matching the ORDER \
                 BY, a LIMIT)",
                suggest_work_mem(bytes / s.calls.max(1))
            ),
            sql: Some(format!(
                "SET LOCAL work_mem = '{}';",
                suggest_work_mem(bytes / s.calls.max(1))
            )),
            plan: None,
        });
    }
}

fn plan_spills(plans: &[ExplainedPlan], out: &mut Vec<Finding>) {
    for p in plans {
        for n in &p.nodes {
            let sort = n.sort_space_type.as_deref() == Some("Disk");
            let hash = n.hash_batches > 1;
            if !sort && !hash {
                continue;
            }
            out.push(Finding {
                code: "plan_spill".into(),
                severity: Severity::Warning,
                object: format!("query type {}", p.query_type),
                title: format!(
                    "{} in query type {} spills to disk ({})",
                    n.node_type,
                    p.query_type,
                    if sort {
                        format!("{:.0} kB sorted on disk", n.sort_space_kb)
                    } else {
                        format!("{} hash batches", n.hash_batches)
                    }
                ),
                evidence: ev(&[
                    ("sort_space_kb", json!(n.sort_space_kb)),
                    ("hash_batches", json!(n.hash_batches)),
                    ("temp_written_blocks", json!(n.temp_written_blocks)),
                    ("execution_ms", json!(p.execution_ms)),
                ]),
                threshold: "Sort Space Type = Disk or Hash Batches > 1 in EXPLAIN ANALYZE".into(),
                source: "PostgreSQL docs (EXPLAIN, work_mem)".into(),
                action: format!(
                    "raise work_mem for this statement to about {}",
                    suggest_work_mem((n.sort_space_kb.max(n.peak_memory_kb) * 1024.0) as i64)
                ),
                sql: Some(format!(
                    "SET LOCAL work_mem = '{}';",
                    suggest_work_mem((n.sort_space_kb.max(n.peak_memory_kb) * 1024.0) as i64)
                )),
                plan: Some(p.render()),
            });
        }
    }
}

fn misestimates(plans: &[ExplainedPlan], version: i32, out: &mut Vec<Finding>) {
    for p in plans {
        // The worst node of each plan is enough to point at the statement.
        let worst = p
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.loops > 0.0)
            .map(|(i, n)| {
                let (est, act) = (n.plan_rows.max(1.0), n.actual_rows.max(1.0));
                (i, n, est.max(act) / est.min(act))
            })
            .filter(|(_, n, f)| {
                *f >= MISESTIMATE_FACTOR && n.plan_rows.max(n.actual_rows) >= MISESTIMATE_MIN_ROWS
            })
            .max_by(|a, b| a.2.total_cmp(&b.2));
        let Some((at, n, factor)) = worst else {
            continue;
        };
        // The relation under the node (itself for a scan).
        let relation = p.nodes[at..]
            .iter()
            .take_while(|c| c.depth >= n.depth)
            .find_map(|c| c.relation.clone());
        // A GROUP BY on an expression: the planner knows nothing of its distinct values until
        // expression statistics exist (PostgreSQL 14+).
        let expressions: Vec<String> = n
            .group_key
            .iter()
            .filter(|k| k.contains('('))
            .map(|k| super::plans::unqualify(k))
            .collect();
        let (action, sql) = match (&relation, expressions.first()) {
            (Some(rel), Some(expr)) if version >= 140_000 => (
                "the planner cannot estimate how many groups a GROUP BY expression yields: create \
                 expression statistics on it and analyze the table"
                    .to_string(),
                Some(format!(
                    "CREATE STATISTICS IF NOT EXISTS {}_group_stats ON ({expr}) FROM {rel};\nANALYZE {rel};",
                    rel.rsplit('.').next().unwrap_or(rel)
                )),
            ),
            _ => (
                "ANALYZE the tables involved; if it persists, raise the column's statistics \
                 target or add extended statistics (CREATE STATISTICS) on correlated columns or \
                 expressions"
                    .to_string(),
                relation.as_ref().map(|r| format!("ANALYZE {r};")),
            ),
        };
        out.push(Finding {
            code: "row_misestimate".into(),
            severity: Severity::Info,
            object: format!("query type {}", p.query_type),
            title: format!(
                "{} in query type {}: estimated {:.0} rows, got {:.0} ({factor:.0}x off)",
                n.node_type, p.query_type, n.plan_rows, n.actual_rows
            ),
            evidence: ev(&[
                ("estimated_rows", json!(n.plan_rows)),
                ("actual_rows", json!(n.actual_rows)),
                ("factor", json!(round3(factor))),
                ("group_key", json!(n.group_key)),
            ]),
            threshold: format!(
                "estimate off by >= {MISESTIMATE_FACTOR:.0}x on a node with >= \
                 {MISESTIMATE_MIN_ROWS:.0} rows"
            ),
            source: "PostgreSQL docs (Using EXPLAIN; planner statistics, CREATE STATISTICS)".into(),
            action,
            sql,
            plan: Some(p.render()),
        });
    }
}

fn jit(plans: &[ExplainedPlan], out: &mut Vec<Finding>) {
    for p in plans {
        let Some(jit) = p.jit_ms else { continue };
        if p.execution_ms <= 0.0 || jit < MAX_JIT_SHARE * p.execution_ms {
            continue;
        }
        out.push(Finding {
            code: "jit_overhead".into(),
            severity: Severity::Warning,
            object: "jit".into(),
            title: format!(
                "JIT took {jit:.1} ms of {:.1} ms in query type {}",
                p.execution_ms, p.query_type
            ),
            evidence: ev(&[
                ("jit_ms", json!(jit)),
                ("execution_ms", json!(p.execution_ms)),
            ]),
            threshold: format!(
                "JIT time >= {:.0}% of execution time",
                MAX_JIT_SHARE * 100.0
            ),
            source: "PostgreSQL docs (JIT: when to use it)".into(),
            action:
                "short OLTP queries pay more to compile than they gain: turn JIT off, or raise \
                     jit_above_cost"
                    .into(),
            sql: Some("ALTER SYSTEM SET jit = off; SELECT pg_reload_conf();".into()),
            plan: Some(p.render()),
        });
    }
}

fn checkpoints(inp: &Inputs<'_>, out: &mut Vec<Finding>) {
    let (a, b) = (&inp.after.checkpoints, &inp.before.checkpoints);
    let timed = a.timed - b.timed;
    let requested = a.requested - b.requested;
    let total = timed + requested;
    if requested <= 0 || (requested as f64) <= MAX_REQUESTED_CHECKPOINT_SHARE * total as f64 {
        return;
    }
    out.push(Finding {
        code: "checkpoints_requested".into(),
        severity: Severity::Warning,
        object: "max_wal_size".into(),
        title: format!(
            "{requested} of {total} checkpoints during the run were requested, not timed \
             (cluster-wide)"
        ),
        evidence: ev(&[
            ("checkpoints_requested", json!(requested)),
            ("checkpoints_timed", json!(timed)),
            ("view", json!(a.view)),
            ("max_wal_size", json!(inp.setting("max_wal_size"))),
        ]),
        threshold: format!(
            "requested checkpoints > {:.0}% of all checkpoints",
            MAX_REQUESTED_CHECKPOINT_SHARE * 100.0
        ),
        source: "check_postgres / PostgreSQL docs (WAL configuration)".into(),
        action: "WAL fills max_wal_size before checkpoint_timeout: raise max_wal_size so \
                 checkpoints are spread out (an explicit CHECKPOINT or CREATE DATABASE also \
                 counts as requested)"
            .into(),
        sql: Some(
            "ALTER SYSTEM SET max_wal_size = '<2x current>'; SELECT pg_reload_conf();".into(),
        ),
        plan: None,
    });
}

/// Parses a PostgreSQL memory setting as shown by current_setting (`128MB`, `4GB`, `64kB`).
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..split].parse().ok()?;
    let mult = match s[split..].trim() {
        "" | "B" => 1,
        "kB" => 1024,
        "MB" => 1024 * 1024,
        "GB" => 1024 * 1024 * 1024,
        "TB" => 1024u64.pow(4),
        _ => return None,
    };
    Some(n * mult)
}

fn settings(inp: &Inputs<'_>, notes: &mut Vec<String>, out: &mut Vec<Finding>) {
    let doc = inp.doc;
    let server = &doc.target.server;
    // Connections: the load's own peak (its clients + the advisor's connection + what was there).
    if let Some(load) = &doc.load {
        let peak = server.connections_in_use + load.config.clients as i64 + 1;
        out.extend(connection_headroom(peak, server.max_connections));
    }
    if !inp.server_local {
        notes.push(
            "settings vs RAM and disks skipped: the server is not on the load machine, whose \
             memory and disks say nothing about it"
                .into(),
        );
        return;
    }
    let ram = doc.host.memory_bytes;
    let get = |n: &str| inp.setting(n).and_then(parse_bytes);
    if let (Some(sb), true) = (get("shared_buffers"), ram > 0) {
        let share = sb as f64 / ram as f64;
        if !(0.1..=0.4).contains(&share) {
            out.push(Finding {
                code: "shared_buffers_vs_ram".into(),
                severity: Severity::Info,
                object: "shared_buffers".into(),
                title: format!(
                    "shared_buffers is {} = {:.1}% of the host's {} RAM",
                    inp.setting("shared_buffers").unwrap_or("?"),
                    share * 100.0,
                    super::indexes::human_bytes(ram as i64)
                ),
                evidence: ev(&[
                    ("shared_buffers_bytes", json!(sb)),
                    ("ram_bytes", json!(ram)),
                    ("share", json!(round3(share))),
                ]),
                threshold: "shared_buffers outside 10%..40% of RAM".into(),
                source: "PostgreSQL docs (Resource Consumption: 25% of RAM is a reasonable start)"
                    .into(),
                action: "on a dedicated database server set it to about 25% of RAM".into(),
                sql: Some(format!(
                    "ALTER SYSTEM SET shared_buffers = '{}MB';  -- needs a restart",
                    ram / 4 / (1024 * 1024)
                )),
                plan: None,
            });
        }
    }
    if let (Some(ecs), true) = (get("effective_cache_size"), ram > 0) {
        let share = ecs as f64 / ram as f64;
        if share < 0.5 {
            out.push(Finding {
                code: "effective_cache_size_vs_ram".into(),
                severity: Severity::Info,
                object: "effective_cache_size".into(),
                title: format!(
                    "effective_cache_size is {} = {:.0}% of the host's RAM: the planner \
                     undervalues index scans",
                    inp.setting("effective_cache_size").unwrap_or("?"),
                    share * 100.0
                ),
                evidence: ev(&[
                    ("effective_cache_size_bytes", json!(ecs)),
                    ("ram_bytes", json!(ram)),
                ]),
                threshold: "effective_cache_size < 50% of RAM".into(),
                source: "PostgreSQL docs (Planner cost constants); PGTune uses 75% of RAM".into(),
                action: "set it to about 75% of RAM on a dedicated server (no restart needed)"
                    .into(),
                sql: Some(format!(
                    "ALTER SYSTEM SET effective_cache_size = '{}MB'; SELECT pg_reload_conf();",
                    ram * 3 / 4 / (1024 * 1024)
                )),
                plan: None,
            });
        }
    }
    if let (Some(wm), true) = (get("work_mem"), ram > 0) {
        let worst = wm.saturating_mul(server.max_connections.max(0) as u64);
        if worst > ram {
            out.push(Finding {
                code: "work_mem_vs_ram".into(),
                severity: Severity::Info,
                object: "work_mem".into(),
                title: format!(
                    "work_mem {} x max_connections {} = {} exceeds the host's RAM",
                    inp.setting("work_mem").unwrap_or("?"),
                    server.max_connections,
                    super::indexes::human_bytes(worst as i64)
                ),
                evidence: ev(&[("work_mem_bytes", json!(wm)), ("ram_bytes", json!(ram))]),
                threshold: "work_mem x max_connections > RAM (one sort per connection)".into(),
                source: "PostgreSQL docs (work_mem: several operations per query may each use it)"
                    .into(),
                action: "keep the global work_mem modest and raise it per role or statement where \
                         spills are measured"
                    .into(),
                sql: None,
                plan: None,
            });
        }
    }
    match inp.ssd {
        Some(true) => {
            let rpc: Option<f64> = inp.setting("random_page_cost").and_then(|s| s.parse().ok());
            if let Some(rpc) = rpc.filter(|r| *r >= 2.0) {
                out.push(Finding {
                    code: "random_page_cost_ssd".into(),
                    severity: Severity::Info,
                    object: "random_page_cost".into(),
                    title: format!(
                        "random_page_cost is {rpc} but every disk of the host is solid-state"
                    ),
                    evidence: ev(&[
                        ("random_page_cost", json!(rpc)),
                        ("disks", json!("non-rotational")),
                    ]),
                    threshold: "random_page_cost >= 2 with only non-rotational disks".into(),
                    source: "PostgreSQL docs (random_page_cost for SSDs); PGTune uses 1.1".into(),
                    action: "random reads cost about as much as sequential ones on SSDs: lower it \
                             so the planner uses indexes when they help"
                        .into(),
                    sql: Some(
                        "ALTER SYSTEM SET random_page_cost = 1.1; SELECT pg_reload_conf();".into(),
                    ),
                    plan: None,
                });
            }
        }
        Some(false) => {}
        None => notes.push("random_page_cost review skipped: disk type unknown".into()),
    }
}

/// `max_connections_headroom` when the peak uses more than [`MAX_CONNECTION_USE`] of `max`.
pub fn connection_headroom(peak: i64, max: i64) -> Option<Finding> {
    if max <= 0 || peak as f64 <= MAX_CONNECTION_USE * max as f64 {
        return None;
    }
    Some(Finding {
        code: "max_connections_headroom".into(),
        severity: Severity::Warning,
        object: "max_connections".into(),
        title: format!("the run used {peak} of max_connections {max}"),
        evidence: ev(&[
            ("peak_connections", json!(peak)),
            ("max_connections", json!(max)),
        ]),
        threshold: format!(
            "peak connections > {:.0}% of max_connections",
            MAX_CONNECTION_USE * 100.0
        ),
        source: "check_postgres backends".into(),
        action: "put a connection pooler (PgBouncer) in front, or raise max_connections (needs a \
                 restart, and memory per connection)"
            .into(),
        sql: None,
        plan: None,
    })
}

/// pg_stat_statements entries over the window, with their window-only figures.
pub fn window_statements(before: &Snapshot, after: &Snapshot) -> Vec<TopStatement> {
    let (Some(a), Some(b)) = (&after.statements, &before.statements) else {
        return Vec::new();
    };
    a.iter()
        .filter_map(|(k, s)| {
            let p = b.get(k);
            let calls = s.calls - p.map_or(0, |p| p.calls);
            if calls <= 0 {
                return None;
            }
            let total = s.total_ms - p.map_or(0.0, |p| p.total_ms);
            Some(TopStatement {
                queryid: k.1,
                query: s.query.chars().take(200).collect(),
                calls,
                total_ms: round3(total),
                mean_ms: round3(total / calls as f64),
                rows: s.rows - p.map_or(0, |p| p.rows),
                temp_blks_written: s.temp_blks_written - p.map_or(0, |p| p.temp_blks_written),
            })
        })
        .collect()
}

/// Top statements by total and by mean time over the window.
pub fn top_statements(
    before: &Snapshot,
    after: &Snapshot,
) -> (Vec<TopStatement>, Vec<TopStatement>) {
    let mut all = window_statements(before, after);
    all.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
    let by_total = all.iter().take(TOP_N).cloned().collect();
    all.sort_by(|a, b| b.mean_ms.total_cmp(&a.mean_ms));
    let by_mean = all.into_iter().take(TOP_N).collect();
    (by_total, by_mean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_settings_parse_in_postgres_units() {
        assert_eq!(parse_bytes("128MB"), Some(128 * 1024 * 1024));
        assert_eq!(parse_bytes("4GB"), Some(4 * 1024 * 1024 * 1024));
        assert_eq!(parse_bytes("64kB"), Some(64 * 1024));
        assert_eq!(parse_bytes("8"), Some(8));
        assert_eq!(parse_bytes("lots"), None);
    }

    #[test]
    fn connection_headroom_fires_above_80_percent_only() {
        assert!(connection_headroom(81, 100).is_some());
        assert!(connection_headroom(80, 100).is_none());
        assert!(connection_headroom(5, 0).is_none());
    }

    #[test]
    fn work_mem_suggestion_covers_twice_the_spill() {
        assert_eq!(suggest_work_mem(100 * 1024), "4MB");
        assert_eq!(suggest_work_mem(5 * 1024 * 1024), "16MB");
    }
}
