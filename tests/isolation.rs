//! The isolation scenario against a real sandbox PostgreSQL: each anomaly is produced and detected
//! at the levels that permit it (positive controls) and absent at the levels that forbid it
//! (negative controls); deadlocks are counted like the server counts them; a foreign `pgstorm`
//! schema is refused. Each test has its own database.

mod common;

use std::path::Path;

use pgstorm::report::isolation::{IsolationCase, IsolationResult, Verdict};
use pgstorm::scenarios::isolation::{self, Check, IsolationOptions, Level};
use pgstorm::scenarios::session::TargetOptions;

/// A short run of `checks` at every level on database `db`.
fn options(results: &Path, db: &str, checks: &[Check]) -> IsolationOptions {
    let mut o = IsolationOptions {
        target: TargetOptions {
            dsn: Some(common::database(db)),
            sandbox_max_connections: None,
            ..Default::default()
        },
        checks: checks.to_vec(),
        workers: 4,
        transactions: Some(15),
        print_summary: false,
        ..IsolationOptions::default()
    };
    o.archive.results_dir = results.to_path_buf();
    o.archive.label = db.into();
    o
}

fn run(db: &str, checks: &[Check]) -> IsolationResult {
    let tmp = tempfile::tempdir().unwrap();
    let out = isolation::run(&options(tmp.path(), db, checks)).unwrap();
    // The tables are the scenario's to reset and drop: none is left behind.
    let left: i64 = common::client_of(db)
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'pgstorm' AND c.relname LIKE 'isolation%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "isolation tables left behind");
    out.doc.isolation.unwrap()
}

fn case(r: &IsolationResult, check: Check, level: Level) -> &IsolationCase {
    r.cases
        .iter()
        .find(|c| c.check == check.name() && c.level == level.name())
        .unwrap_or_else(|| panic!("no case {} at {}", check.name(), level.name()))
}

/// The anomaly is produced, detected, and explained as permitted.
fn assert_detected(c: &IsolationCase) {
    assert_eq!(
        c.verdict,
        Verdict::AnomalyPermitted,
        "{} at {}: {}",
        c.check,
        c.level,
        c.explanation
    );
    let il = c.interleaving.as_ref().unwrap();
    assert!(
        il.anomalies >= 1,
        "the interleaving must produce it: {:?}",
        il.steps
    );
    assert!(c.explanation.contains("permits"), "{}", c.explanation);
}

/// Neither phase shows the anomaly, and the server had to abort the conflicting interleaved
/// transaction to keep it so.
fn assert_prevented(c: &IsolationCase) {
    assert_eq!(
        c.verdict,
        Verdict::Ok,
        "{} at {}: {}",
        c.check,
        c.level,
        c.explanation
    );
    let load = c.load.as_ref().unwrap();
    let il = c.interleaving.as_ref().unwrap();
    assert_eq!((load.anomalies, load.integrity_breaks), (0, 0));
    assert_eq!(
        (il.anomalies, il.integrity_breaks),
        (0, 0),
        "{:?}",
        il.steps
    );
    assert!(load.committed > 0);
}

#[test]
fn lost_update_is_detected_at_read_committed_and_prevented_above() {
    let r = run("iso_lost_update", &[Check::LostUpdate]);
    assert_eq!(r.cases.len(), 3);
    assert_detected(case(&r, Check::LostUpdate, Level::ReadCommitted));
    for level in [Level::RepeatableRead, Level::Serializable] {
        let c = case(&r, Check::LostUpdate, level);
        assert_prevented(c);
        assert_eq!(c.interleaving.as_ref().unwrap().serialization_failures, 1);
    }
    assert_eq!(r.violations, 0);
}

#[test]
fn write_skew_is_detected_under_snapshot_isolation_and_prevented_at_serializable() {
    let r = run("iso_write_skew", &[Check::WriteSkew]);
    assert_detected(case(&r, Check::WriteSkew, Level::ReadCommitted));
    assert_detected(case(&r, Check::WriteSkew, Level::RepeatableRead));
    let ser = case(&r, Check::WriteSkew, Level::Serializable);
    assert_prevented(ser);
    assert_eq!(ser.interleaving.as_ref().unwrap().serialization_failures, 1);
    assert_eq!(r.violations, 0);
}

#[test]
fn read_skew_is_detected_at_read_committed_only() {
    let r = run("iso_read_skew", &[Check::ReadSkew]);
    assert_detected(case(&r, Check::ReadSkew, Level::ReadCommitted));
    assert_prevented(case(&r, Check::ReadSkew, Level::RepeatableRead));
    assert_prevented(case(&r, Check::ReadSkew, Level::Serializable));
}

#[test]
fn bank_invariant_holds_at_every_level() {
    let r = run("iso_bank", &[Check::Bank]);
    for level in Level::ALL {
        let c = case(&r, Check::Bank, level);
        assert_eq!(c.verdict, Verdict::Ok, "{}", c.explanation);
        let load = c.load.as_ref().unwrap();
        assert_eq!(load.integrity_breaks, 0, "{}", load.detail);
        assert_eq!(load.committed + load.failed.values().sum::<u64>(), 60);
        assert!(load.detail.contains("concurrent audits"), "{}", load.detail);
    }
}

#[test]
fn deadlocks_are_forced_classified_retried_and_counted_like_the_server() {
    let r = run("iso_deadlock", &[Check::Deadlock]);
    for level in Level::ALL {
        let c = case(&r, Check::Deadlock, level);
        assert_eq!(c.verdict, Verdict::Ok, "{}", c.explanation);
        let load = c.load.as_ref().unwrap();
        let il = c.interleaving.as_ref().unwrap();
        // The scripted lock cycle always deadlocks, and exactly one session is the victim.
        assert_eq!(il.deadlocks, 1, "{:?}", il.steps);
        let client = load.attempt_errors.get("deadlock").copied().unwrap_or(0);
        assert_eq!(
            load.server_deadlocks,
            Some(client as i64),
            "pgstorm's 40P01 count must match pg_stat_database.deadlocks at {}",
            c.level
        );
        // Every deadlock victim was retried or counted as given up.
        assert!(load.retries + load.failed.values().sum::<u64>() >= client);
        assert!(
            c.explanation.contains("pg_stat_database counted"),
            "{}",
            c.explanation
        );
    }
    // At READ COMMITTED nothing but lock order makes transactions fail: the load deadlocks too.
    let rc = case(&r, Check::Deadlock, Level::ReadCommitted);
    assert!(
        rc.load
            .as_ref()
            .unwrap()
            .attempt_errors
            .get("deadlock")
            .copied()
            .unwrap_or(0)
            > 0,
        "4 workers locking in opposite orders never deadlocked: {:?}",
        rc.load
    );
}

#[test]
fn a_foreign_pgstorm_schema_is_refused_and_left_untouched() {
    let db = "iso_foreign";
    let mut c = common::client_of(db);
    c.batch_execute("DROP SCHEMA IF EXISTS pgstorm CASCADE; CREATE SCHEMA pgstorm")
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let Err(err) = isolation::run(&options(tmp.path(), db, &[Check::Bank])) else {
        panic!("a foreign schema pgstorm was used");
    };
    assert_eq!(
        pgstorm::error::exit_kind(&err),
        pgstorm::error::ExitKind::Target
    );
    assert!(
        format!("{err:#}").contains("not created by pgstorm"),
        "{err:#}"
    );
    let tables: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'pgstorm'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(tables, 0);
    // No half-written result folder either.
    assert_eq!(
        std::fs::read_dir(tmp.path())
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
}

#[test]
fn result_validates_against_the_checked_in_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let mut o = options(tmp.path(), "iso_schema", &[Check::LostUpdate]);
    o.levels = vec![Level::ReadCommitted];
    o.transactions = Some(5);
    let out = isolation::run(&o).unwrap();
    common::assert_run_json_matches_schema(&out.dir);
    let summary = pgstorm::report::summary::render(&out.doc);
    assert!(
        summary.contains("anomaly permitted by this level (detected)"),
        "{summary}"
    );
}

#[test]
fn the_binary_runs_by_duration_prints_verdicts_and_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgstorm"))
        .args([
            "isolation",
            "--dsn",
            &common::database("iso_cli"),
            "--check",
            "lost-update,deadlock",
            "--level",
            "read-committed",
            "--workers",
            "2",
            "-T",
            "1",
            "--results-dir",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("lost-update  read committed")
            && stdout.contains("anomaly permitted by this level (detected)"),
        "{stdout}"
    );
    assert!(stdout.contains("0 of 2 cases VIOLATION"), "{stdout}");
    let dir = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.path().join("run.json").is_file())
        .unwrap()
        .path();
    let csv = std::fs::read_to_string(dir.join("isolation.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(
        csv.contains("lost-update,read committed,true,anomaly_permitted"),
        "{csv}"
    );
    let doc: pgstorm::report::model::RunDocument =
        serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap();
    let iso = doc.isolation.unwrap();
    assert_eq!(iso.config.duration_s, Some(1.0));
    assert_eq!(iso.config.transactions_per_worker, None);
    let load = iso.cases[0].load.as_ref().unwrap();
    assert!(load.duration_s >= 1.0 && load.transactions > 0, "{load:?}");
}

#[test]
fn ctrl_c_writes_the_cases_that_ran_and_exits_130() {
    let tmp = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_pgstorm"))
        .args([
            "isolation",
            "--dsn",
            &common::database("iso_interrupt"),
            "--check",
            "bank",
            "--workers",
            "2",
            "-T",
            "30",
            "--results-dir",
        ])
        .arg(tmp.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    // SAFETY: sending SIGINT to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let dirs: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "exactly one complete result folder");
    let doc: pgstorm::report::model::RunDocument =
        serde_json::from_slice(&std::fs::read(dirs[0].path().join("run.json")).unwrap()).unwrap();
    assert!(doc.interrupted);
    assert!(doc.warnings.iter().any(|w| w.code == "interrupted"));
    let iso = doc.isolation.unwrap();
    assert_eq!(iso.cases.len(), 1, "only the case that was running");
    let load = iso.cases[0].load.as_ref().unwrap();
    assert!(load.committed > 0 && load.duration_s < 30.0, "{load:?}");
    assert_eq!(
        iso.cases[0].verdict,
        Verdict::Ok,
        "{}",
        iso.cases[0].explanation
    );
}
