//! Run hygiene: what pgbench and pgbench-tools do before each run, so every run of a set starts
//! from the same state, and the `--pre-sql` / `--post-sql` hooks around a run.
//!
//! Before each run, in this order: TRUNCATE pgbench_history when pgbench scripts run and
//! VACUUM (ANALYZE) the workload's tables (both skipped by `--no-vacuum`, pgbench's `-n`);
//! CHECKPOINT when the role may (superuser, or a member of pg_checkpoint from PostgreSQL 15 on);
//! pg_stat_statements_reset() when the extension is installed and callable; then the pre-sql
//! hook; then `n_dead_tup` of each workload table is read as the evidence of a clean start.
//!
//! Invariants and choices:
//! - pg_stat_reset() is never called. Every figure pgstorm takes from the statistics views is a
//!   difference of two readings around the load (the server sampler's counters, the advisor's
//!   snapshots, the transaction counts), so a reset would change no result, and it would erase
//!   the server's cumulative statistics for everyone else who reads them. The step is recorded as
//!   skipped with that reason.
//! - The POS `transaction` type always rolls back: it leaves no live rows behind, but each
//!   execution leaves dead ones (its aborted pos_order insert and the old versions of the
//!   pos_order_line rows it updated) and advances pos_order's id sequence. The vacuum removes the
//!   dead rows, so the next run finds the same live rows and none dead; nothing needs deleting or
//!   bounding. The sequence is left alone: no query reads it and rolled-back ids are never seen.
//! - A step the role may not do (CHECKPOINT without the privilege, VACUUM of a table it neither
//!   owns nor may maintain, where the server would only print a warning and skip it) is recorded
//!   as skipped with the reason; a step the server refuses is recorded as failed and becomes a
//!   warning of the run. Neither stops the load.
//! - A hook runs on its own connection (application_name `pgstorm-hook`), closed after it, so a
//!   SET or an open transaction in the file cannot leak into the admin session. A failing pre-sql
//!   stops before any load (exit 3) and nothing is archived for that run; a failing post-sql is a
//!   warning and the result is kept.
//! - Everything here runs before the advisor's "before" snapshot, so the vacuum's own reads do not
//!   count as load (see `queries::measure_with`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use sha2::Digest;

use super::session::Session;
use crate::report::hygiene::{HookRun, HygieneSection, HygieneStep, StepStatus};
use crate::report::model::{RunDocument, Warning, WarningCode};

/// pgbench's tables, as its scripts name them (unqualified, resolved by the search_path).
const PGBENCH_TABLES: [&str; 4] = [
    "pgbench_accounts",
    "pgbench_branches",
    "pgbench_tellers",
    "pgbench_history",
];
/// The table pgbench empties before each run.
const PGBENCH_HISTORY: &str = "pgbench_history";
/// `server_version_num` from which the pg_checkpoint role exists.
const PG_CHECKPOINT_SINCE: i32 = 150_000;
/// `server_version_num` from which VACUUM is allowed by the MAINTAIN privilege.
const MAINTAIN_SINCE: i32 = 170_000;

/// What to do around each run.
#[derive(Debug, Clone)]
pub struct HygieneOptions {
    /// VACUUM (ANALYZE) the workload's tables and truncate pgbench_history (false: `--no-vacuum`).
    pub vacuum: bool,
    /// pgbench's `-v`: pgbench's four tables are vacuumed (when they exist) even when no script
    /// runs; a script run vacuums them anyway, pgbench_accounts included.
    pub vacuum_pgbench: bool,
    /// `--pre-sql`: run after the steps, before the load.
    pub pre_sql: Option<SqlFile>,
    /// `--post-sql`: run after the load.
    pub post_sql: Option<SqlFile>,
}

impl Default for HygieneOptions {
    fn default() -> Self {
        HygieneOptions {
            vacuum: true,
            vacuum_pgbench: false,
            pre_sql: None,
            post_sql: None,
        }
    }
}

/// A hook file, read once when the options are validated.
#[derive(Debug, Clone)]
pub struct SqlFile {
    /// The path as given.
    pub name: String,
    /// Its text.
    pub text: String,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
}

impl SqlFile {
    /// Reads `path` for `flag`; an unreadable or non-UTF-8 file is an input error (exit 2).
    pub fn read(flag: &str, path: &str) -> Result<SqlFile> {
        let bytes = std::fs::read(Path::new(path)).map_err(|e| {
            crate::error::usage(format!(
                "{flag} {path}: cannot read it: {e}; give a readable file of SQL statements"
            ))
        })?;
        let sha256 = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let text = String::from_utf8(bytes).map_err(|_| {
            crate::error::usage(format!(
                "{flag} {path}: not UTF-8 text; save it as UTF-8 SQL"
            ))
        })?;
        Ok(SqlFile {
            name: path.to_string(),
            text,
            sha256,
        })
    }
}

/// The tables a workload touches: the POS tables when built-in query types run, pgbench's when
/// scripts do (those that exist are vacuumed).
pub fn workload_tables(pos: bool, scripts: bool) -> Vec<&'static str> {
    let mut t = Vec::new();
    if pos {
        t.extend(crate::dataset::DATASET_TABLES);
    }
    if scripts {
        t.extend(PGBENCH_TABLES);
    }
    t
}

/// Runs the steps and the pre-sql hook before a run on `tables`; returns the section to record
/// (post-sql still to come). A failing pre-sql is an error (exit 3): the run must not start.
pub fn before_run(
    session: &mut Session,
    opts: &HygieneOptions,
    tables: &[&str],
) -> Result<HygieneSection> {
    let existing = existing_tables(session, tables)?;
    let mut steps = Vec::new();
    let history: Vec<String> = existing
        .iter()
        .filter(|t| t.as_str() == PGBENCH_HISTORY)
        .cloned()
        .collect();
    if !history.is_empty() {
        steps.push(if opts.vacuum {
            timed(session, "truncate_history", history.clone(), |c| {
                c.batch_execute(&format!("TRUNCATE {PGBENCH_HISTORY}"))
            })
        } else {
            skipped("truncate_history", "--no-vacuum")
        });
    }
    if !existing.is_empty() {
        steps.push(if opts.vacuum {
            vacuum(session, &existing)?
        } else {
            skipped("vacuum_analyze", "--no-vacuum")
        });
    }
    steps.push(checkpoint(session)?);
    steps.push(pg_stat_statements_reset(session)?);
    steps.push(skipped(
        "pg_stat_reset",
        "not needed: pgstorm's figures are differences of readings taken around the load, and a \
         reset would erase the server's statistics for its other readers",
    ));
    let done: Vec<String> = steps
        .iter()
        .filter(|s| s.status == StepStatus::Done)
        .map(|s| format!("{} ({:.0} ms)", s.action, s.duration_ms))
        .collect();
    if !done.is_empty() {
        eprintln!("pgstorm: before the run: {}", done.join(", "));
    }
    for s in steps.iter().filter(|s| s.status == StepStatus::Failed) {
        eprintln!(
            "pgstorm: before the run, {} failed: {}",
            s.action,
            s.reason.as_deref().unwrap_or("")
        );
    }
    let pre_sql = match &opts.pre_sql {
        Some(f) => {
            let run = run_hook(session, f);
            if let Some(e) = &run.error {
                return Err(crate::error::target(format!(
                    "--pre-sql {} failed on {}: {e}; no load was run; fix the file and run again",
                    f.name, session.target.display
                )));
            }
            Some(run)
        }
        None => None,
    };
    let dead_tuples_at_start = dead_tuples(session, &existing)?;
    Ok(HygieneSection {
        steps,
        dead_tuples_at_start,
        pre_sql,
        post_sql: None,
    })
}

/// The warnings of a section's failed steps: the run may not start like the others of its set.
pub fn step_warnings(section: &HygieneSection) -> Vec<Warning> {
    section
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Failed)
        .map(|s| Warning {
            code: WarningCode::HygieneStepFailed,
            message: format!(
                "{} before the run failed: {}; this run may not start from the same state as \
                 the others of its set",
                s.action,
                s.reason.as_deref().unwrap_or("")
            ),
        })
        .collect()
}

/// Runs the post-sql hook, when given and the target was not lost, and records it in the
/// document's hygiene section, with a warning when it failed (the result is kept).
pub fn after_run(session: &mut Session, opts: &HygieneOptions, doc: &mut RunDocument) {
    let Some(f) = &opts.post_sql else {
        return;
    };
    if doc.target_lost_at.is_some() {
        return;
    }
    let run = run_hook(session, f);
    if let Some(e) = &run.error {
        eprintln!("pgstorm: --post-sql {} failed: {e}", f.name);
        doc.warnings.push(Warning {
            code: WarningCode::PostSqlFailed,
            message: format!(
                "--post-sql {} failed: {e}; the run's results are kept, but what the file should \
                 have done after it was not (fully) done",
                f.name
            ),
        });
    }
    if let Some(section) = doc.hygiene.as_mut() {
        section.post_sql = Some(run);
    }
}

/// The `tables` that exist, as given.
fn existing_tables(session: &mut Session, tables: &[&str]) -> Result<Vec<String>> {
    let names: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
    let rows = session
        .admin
        .query(
            "SELECT t FROM unnest($1::text[]) WITH ORDINALITY AS u(t, i) \
             WHERE to_regclass(t) IS NOT NULL ORDER BY i",
            &[&names],
        )
        .map_err(|e| read_error(session, &e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// VACUUM (ANALYZE) of the tables the role may vacuum; the others are named in a skipped step.
fn vacuum(session: &mut Session, tables: &[String]) -> Result<HygieneStep> {
    let may = if session.server.server_version_num >= MAINTAIN_SINCE {
        "has_table_privilege(c.oid, 'MAINTAIN')"
    } else {
        "pg_has_role(c.relowner, 'USAGE') OR (SELECT pg_has_role(datdba, 'USAGE') FROM \
         pg_database WHERE datname = current_database())"
    };
    let rows = session
        .admin
        .query(
            &format!(
                "SELECT t, {may} FROM unnest($1::text[]) WITH ORDINALITY AS u(t, i) \
                 JOIN pg_class c ON c.oid = to_regclass(t) ORDER BY i"
            ),
            &[&tables],
        )
        .map_err(|e| read_error(session, &e))?;
    let (allowed, refused): (Vec<_>, Vec<_>) = rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, bool>(1)))
        .partition(|(_, may)| *may);
    let allowed: Vec<String> = allowed.into_iter().map(|(t, _)| t).collect();
    if allowed.is_empty() {
        return Ok(skipped(
            "vacuum_analyze",
            &format!(
                "role {} may not vacuum {}: it needs to own them (or, from PostgreSQL 17, the \
                 MAINTAIN privilege)",
                session.target.config.get_user().unwrap_or("?"),
                tables.join(", ")
            ),
        ));
    }
    let sql = format!("VACUUM (ANALYZE) {}", allowed.join(", "));
    let mut step = timed(session, "vacuum_analyze", allowed, |c| {
        c.batch_execute(&sql)
    });
    if !refused.is_empty() && step.status == StepStatus::Done {
        let names: Vec<String> = refused.into_iter().map(|(t, _)| t).collect();
        step.reason = Some(format!(
            "not vacuumed, not owned by the role: {}",
            names.join(", ")
        ));
    }
    Ok(step)
}

/// CHECKPOINT when the role may; otherwise a skipped step saying which privilege is missing.
fn checkpoint(session: &mut Session) -> Result<HygieneStep> {
    let version = session.server.server_version_num;
    let may = session.server.superuser
        || (version >= PG_CHECKPOINT_SINCE
            && session
                .admin
                .query_one("SELECT pg_has_role('pg_checkpoint', 'MEMBER')", &[])
                .map_err(|e| read_error(session, &e))?
                .get::<_, bool>(0));
    if !may {
        return Ok(skipped(
            "checkpoint",
            if version >= PG_CHECKPOINT_SINCE {
                "the role is neither superuser nor a member of pg_checkpoint \
                 (GRANT pg_checkpoint TO <role> allows it)"
            } else {
                "the role is not superuser (before PostgreSQL 15 only a superuser may CHECKPOINT)"
            },
        ));
    }
    Ok(timed(session, "checkpoint", Vec::new(), |c| {
        c.batch_execute("CHECKPOINT")
    }))
}

/// pg_stat_statements_reset() in the extension's schema, when installed; a call the server
/// refuses (not preloaded, no privilege) is a skip with the server's message.
fn pg_stat_statements_reset(session: &mut Session) -> Result<HygieneStep> {
    const ACTION: &str = "pg_stat_statements_reset";
    let schema: Option<String> = session
        .admin
        .query_opt(
            "SELECT quote_ident(n.nspname) FROM pg_extension e \
             JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'",
            &[],
        )
        .map_err(|e| read_error(session, &e))?
        .map(|r| r.get(0));
    let Some(schema) = schema else {
        return Ok(skipped(
            ACTION,
            "extension pg_stat_statements is not installed in this database",
        ));
    };
    let mut step = timed(session, ACTION, Vec::new(), |c| {
        c.batch_execute(&format!("SELECT {schema}.pg_stat_statements_reset()"))
    });
    if step.status == StepStatus::Failed {
        step.status = StepStatus::Skipped;
        step.duration_ms = 0.0;
    }
    Ok(step)
}

/// `n_dead_tup` of each table from pg_stat_user_tables, keyed by the name given.
fn dead_tuples(session: &mut Session, tables: &[String]) -> Result<BTreeMap<String, i64>> {
    let rows = session
        .admin
        .query(
            "SELECT t, s.n_dead_tup FROM unnest($1::text[]) AS u(t) \
             JOIN pg_stat_user_tables s ON s.relid = to_regclass(t)",
            &[&tables],
        )
        .map_err(|e| read_error(session, &e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Runs `f` on the admin connection, timed: done, or failed with the server's message.
fn timed(
    session: &mut Session,
    action: &str,
    tables: Vec<String>,
    f: impl FnOnce(&mut postgres::Client) -> Result<(), postgres::Error>,
) -> HygieneStep {
    let t0 = Instant::now();
    let r = f(&mut session.admin);
    HygieneStep {
        action: action.to_string(),
        status: if r.is_ok() {
            StepStatus::Done
        } else {
            StepStatus::Failed
        },
        reason: r.err().map(|e| crate::target::one_line(&e)),
        tables,
        duration_ms: t0.elapsed().as_secs_f64() * 1000.0,
    }
}

fn skipped(action: &str, reason: &str) -> HygieneStep {
    HygieneStep {
        action: action.to_string(),
        status: StepStatus::Skipped,
        reason: Some(reason.to_string()),
        tables: Vec::new(),
        duration_ms: 0.0,
    }
}

/// Runs a hook file on a connection of its own.
fn run_hook(session: &Session, f: &SqlFile) -> HookRun {
    let t0 = Instant::now();
    let mut cfg = session.target.config.clone();
    cfg.application_name("pgstorm-hook");
    let result = session
        .target
        .connect_with(&cfg)
        .and_then(|mut c| c.batch_execute(&f.text));
    HookRun {
        file: f.name.clone(),
        sha256: f.sha256.clone(),
        ok: result.is_ok(),
        error: result.err().map(|e| crate::target::one_line(&e)),
        duration_ms: t0.elapsed().as_secs_f64() * 1000.0,
    }
}

/// A catalog read that failed: the admin connection is unusable or lacks read access.
fn read_error(session: &Session, e: &postgres::Error) -> anyhow::Error {
    crate::error::target(format!(
        "cannot prepare {} for the run (reading the catalog): {}",
        session.target.display,
        crate::target::one_line(e)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hook_file_is_hashed_as_sha256_and_an_unreadable_one_is_an_input_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc.sql");
        std::fs::write(&path, "abc").unwrap();
        let f = SqlFile::read("--pre-sql", path.to_str().unwrap()).unwrap();
        // The FIPS 180-2 test vector of "abc".
        assert_eq!(
            f.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(f.text, "abc");
        let missing = dir.path().join("missing.sql");
        let e = SqlFile::read("--post-sql", missing.to_str().unwrap()).unwrap_err();
        assert_eq!(crate::error::exit_kind(&e), crate::error::ExitKind::Usage);
        assert!(e.to_string().contains("--post-sql"), "{e}");
    }

    #[test]
    fn scripts_add_pgbench_tables_and_the_mix_adds_the_pos_tables() {
        assert_eq!(
            workload_tables(true, false),
            crate::dataset::DATASET_TABLES.to_vec()
        );
        assert_eq!(workload_tables(false, true), PGBENCH_TABLES.to_vec());
        assert_eq!(
            workload_tables(true, true).len(),
            crate::dataset::DATASET_TABLES.len() + PGBENCH_TABLES.len()
        );
        assert!(workload_tables(false, false).is_empty());
    }
}
