//! `pgstorm isolation`: ACID and isolation invariants under concurrent transactions at READ
//! COMMITTED, REPEATABLE READ and SERIALIZABLE, each backed by a positive control.
//!
//! For every (check, level) two phases run on a freshly reset table in schema `pgstorm`:
//! a concurrent load (`load`: workers, retries, classification, committed history) and one
//! deterministic two-session interleaving (`interleave`) that produces the check's anomaly every
//! time at a level that permits it. `verify` turns each phase's history into findings and the
//! pair into a verdict: `ok`, `anomaly permitted by this level (detected)` or `VIOLATION`.
//!
//! Invariants: the tables are created only through `dataset::claim_schema` (a foreign `pgstorm`
//! schema is refused) and dropped at the end; only a VIOLATION fails a run.

pub mod interleave;
mod kinds;
pub mod load;
pub mod tables;
pub mod verify;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;

use super::queries::{ArchiveOptions, Outcome};
use super::session::{Session, TargetOptions};
use crate::engine::stats::{ErrorClass, N_CLASSES};
use crate::report::isolation::{
    CheckLoad, Interleaving, IsolationCase, IsolationConfig, IsolationResult, Verdict,
};
use crate::report::model::{Warning, WarningCode};
use crate::report::{archive, latency_summary};

pub use kinds::{parse_list, Check, Level};

/// Options of the isolation scenario.
#[derive(Debug, Clone)]
pub struct IsolationOptions {
    /// Where to connect.
    pub target: TargetOptions,
    /// Where to write.
    pub archive: ArchiveOptions,
    /// Checks to run.
    pub checks: Vec<Check>,
    /// Levels to run each check at.
    pub levels: Vec<Level>,
    /// Concurrent workers per load phase.
    pub workers: u32,
    /// Transactions per worker (None: `duration`).
    pub transactions: Option<u64>,
    /// Duration of each load phase when not run by count.
    pub duration: Option<Duration>,
    /// Attempts per transaction (1 = no retry).
    pub max_tries: u32,
    /// Random seed.
    pub seed: u64,
    /// Print the summary to stdout.
    pub print_summary: bool,
}

impl Default for IsolationOptions {
    fn default() -> Self {
        IsolationOptions {
            target: TargetOptions::default(),
            archive: ArchiveOptions {
                results_dir: "results".into(),
                label: "isolation".into(),
                command: Vec::new(),
            },
            checks: Check::ALL.to_vec(),
            levels: Level::ALL.to_vec(),
            workers: 20,
            transactions: Some(50),
            duration: None,
            max_tries: 10,
            seed: 1,
            print_summary: true,
        }
    }
}

/// Validates the options (before any server is contacted).
pub fn validate(opts: &IsolationOptions) -> Result<()> {
    use crate::error::usage;
    if opts.workers == 0 {
        return Err(usage("--workers must be at least 1"));
    }
    if opts.max_tries == 0 {
        return Err(usage(
            "--max-tries must be at least 1 (1 = no retry, as pgbench)",
        ));
    }
    if opts.transactions == Some(0) {
        return Err(usage("--transactions must be at least 1"));
    }
    if opts.transactions.is_none() && opts.duration.is_none_or(|d| d.is_zero()) {
        return Err(usage("give --transactions N or -T seconds (above 0)"));
    }
    if opts.checks.is_empty() || opts.levels.is_empty() {
        return Err(usage("--check and --level need at least one entry"));
    }
    Ok(())
}

/// Runs the scenario on a new session and archives it.
pub fn run(opts: &IsolationOptions) -> Result<Outcome> {
    validate(opts)?;
    archive::probe(&opts.archive.results_dir)?;
    let mut session = Session::open(&opts.target)?;
    run_on(&mut session, opts)
}

/// Runs the scenario on an existing session and archives it as its own result folder.
pub fn run_on(session: &mut Session, opts: &IsolationOptions) -> Result<Outcome> {
    validate(opts)?;
    let started = chrono::Utc::now();
    let host = crate::monitor::host::host_info();
    let (result, warnings) = measure(session, opts)?;
    let mut doc = session.document(
        "isolation",
        &opts.archive.label,
        &opts.archive.command,
        started,
        host,
    );
    doc.interrupted = session.stop.is_stopped();
    doc.finished_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    doc.warnings = warnings;
    if doc.interrupted {
        doc.warnings.push(interrupted_warning());
    }
    doc.isolation = Some(result);
    let dir = archive::write(&opts.archive.results_dir, &mut doc, &[])?;
    if opts.print_summary {
        print!("{}", crate::report::summary::render(&doc));
        println!("result: {}", dir.display());
    }
    if doc.interrupted {
        return Err(crate::interrupt::error());
    }
    Ok(Outcome { doc, dir })
}

/// The warning of a run stopped by Ctrl-C during the isolation checks.
pub fn interrupted_warning() -> Warning {
    Warning {
        code: WarningCode::Interrupted,
        message: "the run was interrupted: the isolation verdicts cover only the (check, level) \
                  cases that ran, and the last one's load phase was cut short"
            .into(),
    }
}

/// The `deadlock_timeout` workers use: 100 ms when the server lets this role set it (so forced
/// deadlocks resolve quickly), else the server's own; and whether pgstorm set it.
fn choose_deadlock_timeout(admin: &mut postgres::Client) -> (Option<String>, String) {
    const WANTED: &str = "100ms";
    if admin
        .batch_execute(&format!(
            "SET deadlock_timeout = '{WANTED}'; RESET deadlock_timeout"
        ))
        .is_ok()
    {
        return (Some(WANTED.to_string()), WANTED.to_string());
    }
    let current = admin
        .query_one("SHOW deadlock_timeout", &[])
        .map(|r| r.get::<_, String>(0))
        .unwrap_or_else(|_| "unknown".into());
    (None, current)
}

/// Server deadlock counter delta since `before`, waiting (bounded) for the sessions' statistics
/// to be flushed: a backend leaves pg_stat_activity slightly before its counters are published.
fn settled_deadlocks(
    admin: &mut postgres::Client,
    before: i64,
    expected: u64,
) -> Result<i64, postgres::Error> {
    tables::wait_gone(admin, load::APPLICATION_NAME)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let delta = tables::server_deadlocks(admin)? - before;
        if delta >= expected as i64 || std::time::Instant::now() >= deadline {
            return Ok(delta);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn by_class(counts: &[u64; N_CLASSES]) -> BTreeMap<String, u64> {
    ErrorClass::ALL
        .iter()
        .filter(|c| counts[**c as usize] > 0)
        .map(|c| (c.as_str().to_string(), counts[*c as usize]))
        .collect()
}

/// Runs every (check, level) and returns the section plus measurement warnings (no archiving):
/// what `pgstorm run` embeds in its own document.
pub fn measure(
    session: &mut Session,
    opts: &IsolationOptions,
) -> Result<(IsolationResult, Vec<Warning>)> {
    validate(opts)?;
    // The bank interleaving uses three sessions; the admin connection is the one extra.
    crate::target::check_capacity(
        &session.server,
        opts.workers.max(3),
        1,
        &session.target.display,
    )?;
    let (set_timeout, effective_timeout) = choose_deadlock_timeout(&mut session.admin);
    let spec = load::LoadSpec {
        workers: opts.workers,
        transactions: opts.transactions,
        duration: opts.duration.unwrap_or(Duration::ZERO),
        max_tries: opts.max_tries,
        deadlock_timeout: set_timeout.clone(),
        seed: opts.seed,
        stop: session.stop.clone(),
    };
    let mut cases = Vec::new();
    let mut warnings = Vec::new();
    'outer: for &check in &opts.checks {
        for &level in &opts.levels {
            if session.stop.is_stopped() {
                break 'outer;
            }
            eprintln!(
                "pgstorm: isolation check {} at {} ...",
                check.name(),
                level.title()
            );
            let case = run_case(
                session,
                check,
                level,
                &spec,
                set_timeout.as_deref(),
                &mut warnings,
            )?;
            cases.push(case);
        }
    }
    tables::drop_all(&mut session.admin)?;
    let violations = cases
        .iter()
        .filter(|c| c.verdict == Verdict::Violation)
        .count() as u64;
    let config = IsolationConfig {
        workers: opts.workers,
        transactions_per_worker: opts.transactions,
        duration_s: match opts.transactions {
            Some(_) => None,
            None => opts.duration.map(|d| d.as_secs_f64()),
        },
        max_tries: opts.max_tries,
        checks: opts.checks.iter().map(|c| c.name().to_string()).collect(),
        levels: opts.levels.iter().map(|l| l.name().to_string()).collect(),
        deadlock_timeout: effective_timeout,
        seed: opts.seed,
    };
    Ok((
        IsolationResult {
            config,
            cases,
            violations,
        },
        warnings,
    ))
}

fn run_case(
    session: &mut Session,
    check: Check,
    level: Level,
    spec: &load::LoadSpec,
    deadlock_timeout: Option<&str>,
    warnings: &mut Vec<Warning>,
) -> Result<IsolationCase> {
    let db_err = |e: postgres::Error| {
        crate::error::target(format!(
            "reading pg_stat_database.deadlocks: {}",
            crate::target::one_line(&e)
        ))
    };
    let count_deadlocks = check == Check::Deadlock;
    let before = if count_deadlocks {
        tables::wait_gone(&mut session.admin, load::APPLICATION_NAME).map_err(db_err)?;
        Some(tables::server_deadlocks(&mut session.admin).map_err(db_err)?)
    } else {
        None
    };
    let out = load::run(&session.target, &mut session.admin, check, level, spec)?;
    let shape = load::shape(check, spec);
    let finals = tables::final_values(&mut session.admin, check)?;
    let load_finding = verify::check(check, shape, &out.records, &finals);
    let load_deadlocks = out.attempt_errors[ErrorClass::Deadlock as usize];
    let load_server = match before {
        Some(b) => Some(settled_deadlocks(&mut session.admin, b, load_deadlocks).map_err(db_err)?),
        None => None,
    };
    if let Some(server) = load_server {
        if server != load_deadlocks as i64 {
            warnings.push(Warning {
                code: WarningCode::DeadlockCountMismatch,
                message: format!(
                    "deadlock check at {}: pgstorm classified {load_deadlocks} attempts as 40P01 but \
                     pg_stat_database.deadlocks rose by {server}; another session in this database \
                     may have deadlocked at the same time",
                    level.title()
                ),
            });
        }
    }

    let mid = load_server.zip(before).map(|(d, b)| b + d);
    let il = if out.interrupted {
        None
    } else {
        Some(interleave::run(
            &session.target,
            &mut session.admin,
            check,
            level,
            deadlock_timeout,
        )?)
    };
    let il_case = match &il {
        Some(il) => {
            let finals = tables::final_values(&mut session.admin, check)?;
            let f = verify::check(check, interleave::shape(check), &il.records, &finals);
            Some((il, f))
        }
        None => None,
    };
    let il_server = match (mid, &il) {
        (Some(m), Some(il)) => {
            Some(settled_deadlocks(&mut session.admin, m, il.deadlocks).map_err(db_err)?)
        }
        _ => None,
    };
    let conflicts = verify::Conflicts {
        serialization: out.attempt_errors[ErrorClass::Serialization as usize]
            + il.as_ref().map_or(0, |i| i.serialization_failures),
        deadlocks: load_deadlocks + il.as_ref().map_or(0, |i| i.deadlocks),
        server_deadlocks: load_server.map(|l| l + il_server.unwrap_or(0)),
    };
    let (verdict, explanation) = verify::verdict(
        check,
        level,
        Some(&load_finding),
        il_case.as_ref().map(|(_, f)| f),
        conflicts,
    );
    if check.permitted(level) && il_case.as_ref().is_some_and(|(_, f)| f.anomalies == 0) {
        warnings.push(Warning {
            code: WarningCode::PositiveControlMissed,
            message: format!(
                "the {} interleaving at {} did not produce the {} this level permits: the checker \
                 could not prove it sees one; report this as a pgstorm bug",
                check.name(),
                level.title(),
                check.anomaly()
            ),
        });
    }
    if check == Check::Deadlock && il.as_ref().is_some_and(|i| i.deadlocks == 0) {
        warnings.push(Warning {
            code: WarningCode::PositiveControlMissed,
            message: format!(
                "the deadlock interleaving at {} locked two rows in opposite orders but received no \
                 40P01: the deadlock counting is unproven for this run; report this as a pgstorm bug",
                level.title()
            ),
        });
    }
    Ok(IsolationCase {
        check: check.name().to_string(),
        level: level.name().to_string(),
        permitted: check.permitted(level),
        verdict,
        explanation,
        load: Some(CheckLoad {
            duration_s: out.wall.as_secs_f64(),
            transactions: out.transactions,
            committed: out.committed,
            failed: by_class(&out.failed),
            attempt_errors: by_class(&out.attempt_errors),
            retries: out.retries,
            retried_transactions: out.retried_transactions,
            latency: latency_summary(&out.latency),
            anomalies: load_finding.anomalies,
            integrity_breaks: load_finding.integrity_breaks,
            detail: load_finding.detail,
            server_deadlocks: load_server,
        }),
        interleaving: il_case.map(|(il, f)| Interleaving {
            steps: il.steps.clone(),
            anomalies: f.anomalies,
            integrity_breaks: f.integrity_breaks,
            detail: f.detail,
            deadlocks: il.deadlocks,
            serialization_failures: il.serialization_failures,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_without_work_are_refused() {
        let mut o = IsolationOptions::default();
        validate(&o).unwrap();
        o.transactions = None;
        assert!(validate(&o).is_err());
        o.duration = Some(Duration::from_secs(1));
        validate(&o).unwrap();
        o.workers = 0;
        assert!(validate(&o).is_err());
    }
}
