//! How a load run ends when something outside the measurement breaks, in both drivers: a
//! postmaster killed mid-run ends the run early with exit 3 and `target_lost_at` (a restart
//! within the grace period does not: the negative control); a results folder that cannot be
//! written fails before any load (exit 2) and a result that cannot be written at the end goes
//! to the fallback folder (exit 4); a load thread that panics ends the run with exit 4 and its
//! message in run.json.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgstorm::error::{exit_kind, ExitKind};
use pgstorm::report::model::RunDocument;
use pgstorm::sandbox::{Sandbox, SandboxOptions};
use pgstorm::scenarios::queries::{self, QueriesOptions};
use pgstorm::scenarios::session::{Session, TargetOptions};
use pgstorm::workload::script::{Predefined, Script};
use pgstorm::workload::{Protocol, QueryType, Workload};

fn read_doc(dir: &Path) -> RunDocument {
    serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap()
}

/// Waits until `n` load connections (application_name pgstorm) are on `sb`.
fn wait_for_load(sb: &Sandbox, n: i64) {
    let mut c = sb.pg_config().connect(postgres::NoTls).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let seen: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgstorm'",
                &[],
            )
            .unwrap()
            .get(0);
        if seen >= n {
            return;
        }
        assert!(Instant::now() < deadline, "the load never connected");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs the binary with `load_args` against a fresh sandbox of its own, kills its postmaster
/// with SIGKILL a second after the load connected, and checks the run ended early, exit 3,
/// with `target_lost_at` and rates over the time before.
fn killed_postmaster_ends_the_run(prepare: impl FnOnce(&mut postgres::Client), load_args: &[&str]) {
    let sb = common::fresh_sandbox(&SandboxOptions::default());
    prepare(&mut sb.pg_config().connect(postgres::NoTls).unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().display().to_string();
    let dsn = sb.dsn();
    let mut args = vec![
        "queries",
        "--dsn",
        &dsn,
        "-c",
        "4",
        "-T",
        "120",
        "--lost-grace",
        "2s",
        "--no-monitor",
        "--results-dir",
        &results,
    ];
    args.extend_from_slice(load_args);
    let (code, stderr, killed_at) = std::thread::scope(|s| {
        let killer = s.spawn(|| {
            wait_for_load(&sb, 4);
            std::thread::sleep(Duration::from_secs(1));
            let pid = sb.postmaster_pid().expect("postmaster running");
            let status = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap();
            assert!(status.success());
            Instant::now()
        });
        let (code, stderr) = common::run_pgstorm(&args);
        (code, stderr, killer.join().unwrap())
    });
    let after_kill = killed_at.elapsed();
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("lost the target"), "{stderr}");
    // Ended within grace + reconnect backoff + drain of the kill, far from the 120 s asked for.
    assert!(
        after_kill < Duration::from_secs(40),
        "ended {after_kill:?} after the kill"
    );
    let doc = read_doc(&common::only_result(tmp.path()));
    let lost = doc
        .target_lost_at
        .as_ref()
        .expect("target_lost_at in run.json");
    eprintln!("ended {after_kill:?} after the kill; {lost:?}; stderr: {stderr}");
    assert!(lost.seconds > 0.5 && lost.seconds < 60.0, "{lost:?}");
    assert!(!lost.reason.is_empty() && !lost.time.is_empty(), "{lost:?}");
    assert_eq!(lost.grace_s, 2.0);
    assert!(doc.warnings.iter().any(|w| w.code == "target_lost"));
    let load = doc.load.as_ref().unwrap();
    assert!(load.summary.count > 0, "nothing ran before the kill");
    // Rates are over the time the target was up, not over the requested duration.
    assert!(
        load.measured_s <= lost.seconds && load.measured_s > 0.5,
        "{}",
        load.measured_s
    );
    let tps = load.summary.count as f64 / load.measured_s;
    assert!(
        (load.summary.tps / tps - 1.0).abs() < 1e-9,
        "{} vs {tps}",
        load.summary.tps
    );
    common::assert_run_json_matches_schema(&common::only_result(tmp.path()));
}

#[test]
fn a_killed_postmaster_ends_a_pool_run_early_with_exit_3() {
    killed_postmaster_ends_the_run(
        |c| {
            let mut say = |_: &str| {};
            pgstorm::dataset::ensure(c, false, &mut say).unwrap();
        },
        &["--mix", "point=1"],
    );
}

#[test]
fn a_killed_postmaster_ends_a_multiplexed_run_early_with_exit_3() {
    killed_postmaster_ends_the_run(
        |c| {
            pgstorm::dataset::pgbench::seed(c, 1, false).unwrap();
        },
        &["-b", "select-only", "-j", "2"],
    );
}

/// Quiet load options on `dsn`, labelled `label`.
fn options(results: &Path, dsn: String, label: &str) -> QueriesOptions {
    let mut o = QueriesOptions {
        target: TargetOptions {
            dsn: Some(dsn),
            sandbox_max_connections: None,
            ..Default::default()
        },
        print_summary: false,
        monitor: None,
        mix: "point=1".into(),
        ..QueriesOptions::default()
    };
    o.archive.results_dir = results.to_path_buf();
    o.archive.label = label.into();
    o.engine.clients = 4;
    o.engine.pin = false;
    o
}

#[test]
fn a_restart_within_the_grace_period_is_a_recovered_run() {
    let sb = common::fresh_sandbox(&SandboxOptions::default());
    let tmp = tempfile::tempdir().unwrap();
    let mut o = options(tmp.path(), sb.dsn(), "restart");
    o.engine.duration = Some(Duration::from_secs(10));
    // Generous against a slow restart on a loaded machine; the restart's own time is checked.
    o.engine.lost_grace = Duration::from_secs(15);
    let mut say = |_: &str| {};
    let mut c = sb.pg_config().connect(postgres::NoTls).unwrap();
    pgstorm::dataset::ensure(&mut c, false, &mut say).unwrap();
    drop(c);
    let (out, restart_took) = std::thread::scope(|s| {
        let restarter = s.spawn(|| {
            wait_for_load(&sb, 4);
            std::thread::sleep(Duration::from_secs(2));
            let t = Instant::now();
            sb.restart().unwrap();
            t.elapsed()
        });
        let out = queries::run(&o);
        (out, restarter.join().unwrap())
    });
    eprintln!("restart took {restart_took:?}");
    assert!(
        restart_took < o.engine.lost_grace,
        "restart took {restart_took:?}"
    );
    let out = out.unwrap();
    assert!(
        out.doc.target_lost_at.is_none(),
        "{:?}",
        out.doc.target_lost_at
    );
    let load = out.doc.load.unwrap();
    // The restart cost connections, and the load went on after it.
    assert!(load.pool.connections_opened > 4, "{:?}", load.pool);
    let last = load.timeseries.last().unwrap();
    assert!(last.tps > 0.0, "no transaction after the restart: {last:?}");
}

#[test]
fn a_normal_run_has_no_target_lost_at() {
    let tmp = tempfile::tempdir().unwrap();
    let mut o = options(tmp.path(), common::database("life_normal"), "normal");
    o.engine.duration = Some(Duration::from_secs(2));
    let out = queries::run(&o).unwrap();
    assert!(out.doc.target_lost_at.is_none());
    assert!(out.doc.load_thread_panics.is_empty());
    let json = std::fs::read_to_string(out.dir.join("run.json")).unwrap();
    assert!(!json.contains("target_lost_at") && !json.contains("load_thread_panics"));
    let load = out.doc.load.unwrap();
    assert!((load.measured_s - 2.0).abs() < 0.1, "{}", load.measured_s);
}

/// A folder under a regular file in `dir`: it cannot be created, even by root (who ignores
/// permissions).
fn impossible_folder(dir: &Path) -> PathBuf {
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    file.join("results")
}

/// Sessions opened on database `db` so far, as the server counts them.
fn sessions(db: &str) -> i64 {
    common::client()
        .query_one(
            "SELECT sessions FROM pg_stat_database WHERE datname = $1",
            &[&db],
        )
        .unwrap()
        .get(0)
}

#[test]
fn an_unwritable_results_folder_is_exit_2_before_the_server_sees_any_load() {
    let db = "life_unwritable";
    let dsn = common::database(db);
    let tmp = tempfile::tempdir().unwrap();
    let bad = impossible_folder(tmp.path());
    let before = sessions(db);
    let (code, stderr) = common::run_pgstorm(&[
        "queries",
        "--dsn",
        &dsn,
        "-c",
        "2",
        "-T",
        "2",
        "--no-monitor",
        "--results-dir",
        &bad.display().to_string(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&bad.display().to_string()), "{stderr}");
    assert!(stderr.contains("Not a directory"), "{stderr}");
    // Stats of a session are flushed when it ends; the binary has exited.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sessions(db), before, "pgstorm connected to {db}");
    let schema: bool = common::client_of(db)
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'pgstorm')",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(!schema, "the dataset was seeded");
    // Positive control of the instrument: one connection shows as one more session.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        sessions(db) > before,
        "the session counter did not see a connection"
    );
}

#[test]
fn a_result_that_cannot_be_written_goes_to_the_fallback_folder_with_exit_4() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = impossible_folder(tmp.path());
    let mut o = options(tmp.path(), common::database("life_fallback"), "fallback");
    o.engine.duration = Some(Duration::from_secs(1));
    let mut session = Session::open(&o.target).unwrap();
    let m = queries::measure(&mut session, &o).unwrap();
    // The folder went bad after the probe: the archive writer falls back.
    o.archive.results_dir = bad.clone();
    let run_id = m.doc.run_id.clone();
    let err = match queries::archive_and_print(m, &o) {
        Ok(out) => panic!("written to {} under a regular file", out.dir.display()),
        Err(e) => e,
    };
    assert_eq!(exit_kind(&err), ExitKind::Internal);
    let msg = format!("{err:#}");
    let elsewhere = err
        .downcast_ref::<pgstorm::report::archive::WrittenElsewhere>()
        .unwrap_or_else(|| panic!("not a fallback: {msg}"));
    let written = elsewhere.written.clone();
    assert!(msg.contains(&bad.display().to_string()), "{msg}");
    assert!(msg.contains(&written.display().to_string()), "{msg}");
    assert!(written.starts_with(pgstorm::report::archive::fallback_dir()));
    let doc = read_doc(&written);
    std::fs::remove_dir_all(&written).unwrap();
    assert!(
        doc.run_id.starts_with(&run_id),
        "{} vs {run_id}",
        doc.run_id
    );
    assert!(doc.load.unwrap().summary.count > 0);
}

/// The script `SELECT 1` as a query type that panics when a load thread whose name starts with
/// `thread` (`pgstorm-w`: a pool worker, `pgstorm-j`: a multiplexed thread) asks for the script
/// the `after`-th time, once the load runs; setup on other threads is served normally.
struct PanicsAfter {
    script: Script,
    thread: &'static str,
    after: u64,
    asked: AtomicU64,
}

impl PanicsAfter {
    fn workload(thread: &'static str, after: u64) -> Workload {
        let script = Script::parse("one", "one", "SELECT 1;\n", Predefined::default()).unwrap();
        let t = PanicsAfter {
            script,
            thread,
            after,
            asked: AtomicU64::new(0),
        };
        Workload::new(
            vec![(Box::new(t) as Box<dyn QueryType>, 1)],
            Protocol::Prepared,
        )
        .unwrap()
    }
}

impl QueryType for PanicsAfter {
    fn script(&self) -> &Script {
        let load_thread = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with(self.thread));
        if load_thread && self.asked.fetch_add(1, Ordering::Relaxed) + 1 == self.after {
            panic!(
                "deliberate panic after {} asks on {}",
                self.after, self.thread
            );
        }
        &self.script
    }
}

/// Runs `workload` for up to 60 s and checks a panic ended it early: exit 4 after the result
/// was written, the panic's message in run.json.
fn a_panic_is_exit_4_with_its_message(
    db: &str,
    workload: Workload,
    threads: Option<u32>,
    text: &str,
) {
    let tmp = tempfile::tempdir().unwrap();
    let mut o = options(tmp.path(), common::database(db), db);
    o.engine.duration = Some(Duration::from_secs(60));
    o.engine.threads = threads;
    let mut session = Session::open(&o.target).unwrap();
    let t0 = Instant::now();
    let m = queries::measure_workload(&mut session, &o, Arc::new(workload)).unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "the panic did not end the run"
    );
    assert!(!m.complete());
    let err = match queries::archive_and_print(m, &o) {
        Ok(_) => panic!("a run with a panicked load thread succeeded"),
        Err(e) => e,
    };
    assert_eq!(exit_kind(&err), ExitKind::Internal, "{err:#}");
    assert!(format!("{err:#}").contains(text), "{err:#}");
    let dir = common::only_result(tmp.path());
    let doc = read_doc(&dir);
    assert_eq!(
        doc.load_thread_panics.len(),
        1,
        "{:?}",
        doc.load_thread_panics
    );
    assert!(
        doc.load_thread_panics[0].contains(text),
        "{:?}",
        doc.load_thread_panics
    );
    assert!(doc
        .warnings
        .iter()
        .any(|w| w.code == "load_thread_panicked"));
    common::assert_run_json_matches_schema(&dir);
}

#[test]
fn a_panicking_pool_worker_is_exit_4_with_its_message_in_run_json() {
    let w = PanicsAfter::workload("pgstorm-w", 200);
    a_panic_is_exit_4_with_its_message(
        "life_panic_pool",
        w,
        None,
        "deliberate panic after 200 asks on pgstorm-w",
    );
}

#[test]
fn a_panicking_multiplexed_thread_is_exit_4_with_its_message_in_run_json() {
    let w = PanicsAfter::workload("pgstorm-j", 500);
    a_panic_is_exit_4_with_its_message(
        "life_panic_mux",
        w,
        Some(2),
        "deliberate panic after 500 asks on pgstorm-j",
    );
}
