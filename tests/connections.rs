//! The connection scenario against real sandbox servers: 500 connections held, recovery from a
//! restart and from terminated backends, leak detection (positive and negative control),
//! checkout timeouts with the direct fallback, storm mode against the server's own session
//! counter, and preflight refusing a run the server cannot hold.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use pgstorm::report::model::ConnectionsResult;
use pgstorm::sandbox::SandboxOptions;
use pgstorm::scenarios::connections::{self, ConnectionsOptions};
use pgstorm::scenarios::session::TargetOptions;

/// A short, quiet ramp on `dsn` writing into `results`.
fn options(results: &Path, dsn: String, label: &str, steps: &[u32]) -> ConnectionsOptions {
    let mut o = ConnectionsOptions {
        target: TargetOptions {
            dsn: Some(dsn),
            sandbox_max_connections: None,
            ..Default::default()
        },
        print_summary: false,
        ..ConnectionsOptions::default()
    };
    o.archive.results_dir = results.to_path_buf();
    o.archive.label = label.into();
    let e = &mut o.engine;
    e.steps = steps.to_vec();
    e.step_hold = Duration::from_millis(500);
    e.hold = Duration::from_secs(2);
    e.connect_rate = Some(500.0);
    e.think = Duration::from_millis(5);
    e.progress = false;
    o
}

/// Runs the scenario; checks the folder is complete and run.json matches the checked-in schema.
fn run(o: &ConnectionsOptions) -> ConnectionsResult {
    let out = connections::run(o).unwrap();
    for f in ["run.json", "pool_timeseries.csv", "connection_steps.csv"] {
        assert!(out.dir.join(f).is_file(), "{f} missing");
    }
    common::assert_run_json_matches_schema(&out.dir);
    out.doc.connections.unwrap()
}

/// Polls the server's own count of pgstorm connections until `stop`; returns the highest seen.
fn watch_backends(dsn: &str, stop: &AtomicBool, peak: &AtomicI64) {
    let mut c = dsn
        .parse::<postgres::Config>()
        .unwrap()
        .connect(postgres::NoTls)
        .unwrap();
    while !stop.load(Ordering::Relaxed) {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgstorm'",
                &[],
            )
            .unwrap()
            .get(0);
        peak.fetch_max(n, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn five_hundred_connections_are_held_without_a_failure() {
    let sb = common::fresh_sandbox(&SandboxOptions {
        max_connections: 600,
        ..SandboxOptions::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let mut o = options(tmp.path(), sb.dsn(), "c500", &[100, 500]);
    o.engine.think = Duration::from_millis(50);
    let stop = AtomicBool::new(false);
    let server_peak = AtomicI64::new(0);
    let c = std::thread::scope(|s| {
        s.spawn(|| watch_backends(&sb.dsn(), &stop, &server_peak));
        let c = run(&o);
        stop.store(true, Ordering::Relaxed);
        c
    });
    assert_eq!(c.peak_open, 500);
    assert!(
        server_peak.load(Ordering::Relaxed) >= 500,
        "server saw {server_peak:?}"
    );
    let last = c.steps.last().unwrap();
    assert!(last.time_to_reach_s.is_some(), "{last:?}");
    assert_eq!(last.workers, 500);
    assert_eq!(c.failed_operations, 0, "{:?}", c.errors);
    assert_eq!(c.connect_failures, 0);
    assert_eq!(c.connections_opened, 500);
    assert_eq!(c.connection_success_rate, 1.0);
    assert!(last.ok > 0);
    // Negative controls: a clean run reports no incident, leak or timeout.
    assert!(c.incidents.is_empty(), "{:?}", c.incidents);
    assert_eq!((c.leaks, c.checkout_timeouts), (0, 0));
    // The pool time series saw the hold.
    assert!(c
        .pool_timeseries
        .iter()
        .any(|p| p.open == 500 && p.target == 500));
    // Every worker thread measured its wait for a CPU.
    let rq = c.client.run_queue.as_ref().expect("run-queue wait");
    assert_eq!(rq.threads, 500);
}

#[test]
fn a_server_restart_mid_run_is_survived_and_its_recovery_reported() {
    let sb = common::fresh_sandbox(&SandboxOptions::default());
    let tmp = tempfile::tempdir().unwrap();
    let mut o = options(tmp.path(), sb.dsn(), "restart", &[20]);
    o.engine.hold = Duration::from_secs(7);
    let t0 = Instant::now();
    let c = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_secs(2));
            sb.restart().unwrap();
        });
        run(&o)
    });
    assert!(t0.elapsed() < Duration::from_secs(30), "the run hung");
    assert!(!c.incidents.is_empty(), "no incident seen");
    let i = &c.incidents[0];
    eprintln!("restart incident: {i:?}");
    assert!(i.recovered, "{i:?}");
    let rec = i.recovery_s.unwrap();
    assert!(rec > 0.0 && rec < 6.0, "recovery {rec}");
    assert!(i.pool_recovery_s.is_some(), "{i:?}");
    assert!(i.failed_operations > 0);
    assert!(c.errors.contains_key("connection") || c.errors.contains_key("shutdown"));
    // Service goes on after the restart, on a full pool.
    let tail = c.pool_timeseries.last().unwrap();
    assert_eq!(tail.open, 20, "{tail:?}");
    assert!(c.connections_opened > 20);
}

#[test]
fn all_backends_terminated_mid_run_are_survived() {
    let dsn = common::database("conn_term");
    let tmp = tempfile::tempdir().unwrap();
    let mut o = options(tmp.path(), dsn, "term", &[30]);
    o.engine.workers = Some(10);
    o.engine.hold = Duration::from_secs(4);
    let killed = std::thread::scope(|s| {
        let killer = s.spawn(|| {
            std::thread::sleep(Duration::from_millis(1500));
            let mut c = common::client_of("conn_term");
            let n: i64 = c
                .query_one(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE application_name = 'pgstorm' AND datname = 'conn_term'",
                    &[],
                )
                .unwrap()
                .get(0);
            n
        });
        let c = run(&o);
        (killer.join().unwrap(), c)
    });
    let (n, c) = killed;
    assert_eq!(
        n, 30,
        "the pool was not full when its backends were terminated"
    );
    assert_eq!(c.incidents.len(), 1, "{:?}", c.incidents);
    let i = &c.incidents[0];
    eprintln!("terminate incident: {i:?}");
    assert!(i.recovered && i.pool_recovery_s.is_some(), "{i:?}");
    assert!(i.failed_operations > 0);
    // The dead connections were discarded and replaced.
    assert!(
        c.connections_discarded >= 30,
        "{} discarded, {} opened, {} connect failures, errors {:?}, incidents {:?}, tail {:?}",
        c.connections_discarded,
        c.connections_opened,
        c.connect_failures,
        c.errors,
        c.incidents,
        &c.pool_timeseries[c.pool_timeseries.len().saturating_sub(3)..]
    );
    assert!(c.connections_opened >= 60);
    assert_eq!(c.pool_timeseries.last().unwrap().open, 30);
    assert!(
        c.connection_success_rate > 0.95,
        "{}",
        c.connection_success_rate
    );
}

#[test]
fn deliberately_held_connections_are_reported_as_leaks_and_timeouts_fall_back() {
    let dsn = common::database("conn_leak");
    let tmp = tempfile::tempdir().unwrap();
    let mut o = options(tmp.path(), dsn, "leak", &[4]);
    o.engine.workers = Some(6);
    o.engine.inject_leaks = 4;
    o.engine.leak_threshold = Duration::from_millis(500);
    o.engine.checkout_timeout = Duration::from_millis(300);
    o.engine.fallback_direct = true;
    // Bounds the end-of-run wait for connections still out (they are, on purpose).
    o.engine.statement_timeout = Duration::from_secs(1);
    let c = run(&o);
    assert_eq!(c.leaks, 4, "{:?}", c.leak_details);
    for l in &c.leak_details {
        assert!(l.worker < 4, "{l:?}");
        assert_eq!(l.query, "ping");
        assert!(l.still_out_at_end && l.held_s >= 0.5, "{l:?}");
    }
    // The two other workers never got a pooled connection: timeouts, served directly.
    assert!(c.checkout_timeouts > 0);
    assert_eq!(c.errors.get("pool_timeout"), Some(&c.checkout_timeouts));
    assert!(c.fallback_direct > 0);
    assert_eq!(c.fallback_failed, 0);
}

#[test]
fn a_clean_run_reports_no_leak_even_with_a_short_threshold() {
    let dsn = common::database("conn_clean");
    let tmp = tempfile::tempdir().unwrap();
    let mut o = options(tmp.path(), dsn, "clean", &[5, 10]);
    // A tenth of the default (30 s), and above the pauses a loaded 2-core machine gives a whole
    // process (0.65 s seen: four workers' pings held together). A real leak is held to the end.
    o.engine.leak_threshold = Duration::from_secs(3);
    let c = run(&o);
    assert_eq!(c.leaks, 0, "{:?}", c.leak_details);
    assert!(c.incidents.is_empty());
    assert_eq!(c.failed_operations, 0);
    assert_eq!(c.steps.len(), 2);
    assert!(c.steps.iter().all(|s| s.time_to_reach_s.is_some()));
}

#[test]
fn storm_connections_match_the_servers_session_counter() {
    let dsn = common::database("conn_storm");
    let tmp = tempfile::tempdir().unwrap();
    let mut o = options(tmp.path(), dsn, "storm", &[4]);
    o.engine.storm = true;
    o.engine.think = Duration::ZERO;
    let c = run(&o);
    assert_eq!(c.config.mode, "storm");
    assert_eq!(c.failed_operations, 0, "{:?}", c.errors);
    assert!(c.connections_opened > 20, "{}", c.connections_opened);
    assert_eq!(c.connect.count, c.connections_opened);
    assert!(c.connections_per_s > 0.0);
    let sc = c.server_check.unwrap();
    assert_eq!(sc.sessions as u64, sc.client_connections, "{sc:?}");
    assert_eq!(sc.client_connections, c.connections_opened);
}

#[test]
fn preflight_refuses_500_against_max_connections_100_before_connecting() {
    let sb = common::fresh_sandbox(&SandboxOptions {
        max_connections: 100,
        settings: vec![("log_connections".into(), "on".into())],
        ..SandboxOptions::default()
    });
    let authorized = || {
        std::fs::read_to_string(sb.log_file())
            .unwrap()
            .matches("connection authorized")
            .count()
    };
    let before = authorized();
    let tmp = tempfile::tempdir().unwrap();
    let o = options(tmp.path(), sb.dsn(), "preflight", &[100, 500]);
    let Err(err) = connections::run(&o) else {
        panic!("preflight let 500 connections through against max_connections 100");
    };
    assert_eq!(
        pgstorm::error::exit_kind(&err),
        pgstorm::error::ExitKind::Target
    );
    let msg = format!("{err:#}");
    assert!(
        msg.contains("max_connections") && msg.contains("--max-connections"),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
    std::thread::sleep(Duration::from_millis(300));
    // Only preflight's own connection reached the server; no result was written.
    assert_eq!(authorized() - before, 1);
    assert!(std::fs::read_dir(tmp.path()).unwrap().next().is_none());
    // The binary's exit code for it.
    let args: Vec<String> = [
        "connections",
        "--dsn",
        &sb.dsn(),
        "--max-connections",
        "500",
        "--results-dir",
        &tmp.path().display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(pgstorm::app::main(&args), 3);
}
