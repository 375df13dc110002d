//! The multiplexed driver (`-j`) against a real sandbox PostgreSQL, for what the pool engine's
//! tests cannot show about it: a transaction that fails inside BEGIN is rolled back before the
//! connection is reused (its insert never lands, the next transaction works); connections the
//! server kills are counted as connection failures and replaced while the run goes on; an
//! open-loop run measures a server stall from the intended start (coordinated omission); `-t`
//! runs exactly that many transactions per client; a server on this host leaves the load
//! threads unpinned; a COPY with the client is refused before the
//! run and, if a variable smuggles one in, at run time without hanging; and `-j` runs the
//! built-in query types from the command line (their counts: `tests/builtin_types.rs`).

mod common;

use std::path::Path;
use std::time::Duration;

use pgstorm::engine::Arrival;
use pgstorm::scenarios::queries::{self, QueriesOptions};
use pgstorm::scenarios::session::TargetOptions;
use pgstorm::workload::script::ScriptSource;

fn options(results: &Path, db: &str, name: &str, text: &str) -> QueriesOptions {
    let mut o = QueriesOptions {
        target: TargetOptions {
            dsn: Some(common::database(db)),
            sandbox_max_connections: None,
            ..Default::default()
        },
        mix: String::new(),
        scripts: vec![ScriptSource {
            name: name.into(),
            source_name: name.into(),
            text: text.into(),
            weight: 1,
            builtin: false,
        }],
        ..QueriesOptions::default()
    };
    o.archive.results_dir = results.to_path_buf();
    o.archive.label = db.into();
    o.print_summary = false;
    o.engine.clients = 6;
    o.engine.threads = Some(2);
    o.engine.duration = Some(Duration::from_secs(2));
    o.engine.pin = false;
    o
}

/// Half the transactions fail after their INSERT, inside the block, with a serialization
/// failure: the class pgbench counts and goes on after (any other error aborts the client).
const HALF_FAIL: &str = "\\set f random(0, 1)
BEGIN;
INSERT INTO mux_log (f) VALUES (:f);
SELECT mux_fail_if_zero(:f);
END;
";

#[test]
fn a_failure_inside_begin_is_rolled_back_and_the_connection_reused() {
    let db = "mux_rollback";
    let mut c = common::client_of(db);
    c.batch_execute(
        "DROP TABLE IF EXISTS mux_log; CREATE TABLE mux_log (f int);
         CREATE OR REPLACE FUNCTION mux_fail_if_zero(f int) RETURNS int LANGUAGE plpgsql AS $$
         BEGIN
           IF f = 0 THEN RAISE EXCEPTION 'forced' USING ERRCODE = '40001'; END IF;
           RETURN f;
         END $$",
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = queries::run(&options(tmp.path(), db, "half.sql", HALF_FAIL)).unwrap();
    let q = &out.doc.load.as_ref().unwrap().queries[0];
    let failed = q.errors.get("serialization").copied().unwrap_or(0);
    assert!(
        q.count > 50 && failed > 50,
        "{} ok, {:?}",
        q.count,
        q.errors
    );
    let row = c
        .query_one(
            "SELECT count(*) FILTER (WHERE f = 1), count(*) FILTER (WHERE f = 0) FROM mux_log",
            &[],
        )
        .unwrap();
    let (ones, zeros): (i64, i64) = (row.get(0), row.get(1));
    // Every success committed its row; every failure's row was rolled back. Had a connection
    // been reused inside its failed block, the next transactions would fail with 25P02.
    assert_eq!(ones as u64, q.count);
    assert_eq!(zeros, 0);
    let sc = out
        .doc
        .load
        .as_ref()
        .unwrap()
        .server_check
        .as_ref()
        .unwrap();
    assert!(
        sc.xact_rollback >= failed as i64,
        "server rollbacks {} < client failures {failed}",
        sc.xact_rollback
    );
}

#[test]
fn killed_connections_are_counted_and_replaced() {
    let db = "mux_kill";
    let mut c = common::client_of(db);
    let tmp = tempfile::tempdir().unwrap();
    let mut o = options(tmp.path(), db, "sel.sql", "SELECT pg_sleep(0.001);\n");
    o.engine.duration = Some(Duration::from_secs(4));
    o.engine.interval = Duration::from_millis(500);
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        let killed: i64 = c
            .query_one(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = $1 AND application_name = 'pgstorm' AND pid <> pg_backend_pid() \
                 AND query LIKE 'SELECT pg_sleep%'",
                &[&db],
            )
            .unwrap()
            .get(0);
        killed
    });
    let out = queries::run(&o).unwrap();
    let killed = killer.join().unwrap();
    assert!(killed >= 1, "nothing was killed");
    let load = out.doc.load.as_ref().unwrap();
    let q = &load.queries[0];
    let lost: u64 = ["connection", "shutdown"]
        .iter()
        .filter_map(|k| q.errors.get(*k))
        .sum();
    assert!(lost >= 1, "no connection failure counted: {:?}", q.errors);
    // A backend killed while its client waited sent FATAL 57P01 before closing: that is the
    // class, not the socket's end.
    assert!(
        q.errors.get("shutdown").copied().unwrap_or(0) >= 1,
        "57P01 not classified as shutdown: {:?}",
        q.errors
    );
    // The killed clients reconnected: more connections were opened than clients, and the last
    // intervals still completed transactions.
    assert!(
        load.pool.connections_opened > 6,
        "opened {}",
        load.pool.connections_opened
    );
    let tail: f64 = load.timeseries.iter().rev().take(3).map(|p| p.tps).sum();
    assert!(tail > 0.0, "no transaction after the kill");
}

#[test]
fn open_loop_latency_includes_a_server_stall() {
    let db = "mux_stall";
    let mut c = common::client_of(db);
    c.batch_execute(
        "DROP TABLE IF EXISTS mux_t; CREATE TABLE mux_t (id int PRIMARY KEY); \
         INSERT INTO mux_t VALUES (1)",
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut o = options(
        tmp.path(),
        db,
        "point.sql",
        "SELECT id FROM mux_t WHERE id = 1;\n",
    );
    o.engine.duration = Some(Duration::from_secs(4));
    o.engine.rate = Some(200.0);
    o.engine.arrival = Arrival::Uniform;
    o.engine.interval = Duration::from_millis(250);
    let stall = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        c.batch_execute("BEGIN; LOCK TABLE mux_t IN ACCESS EXCLUSIVE MODE")
            .unwrap();
        std::thread::sleep(Duration::from_secs(1));
        c.batch_execute("COMMIT").unwrap();
    });
    let out = queries::run(&o).unwrap();
    stall.join().unwrap();
    let load = out.doc.load.as_ref().unwrap();
    // ~200 of ~800 transactions were due during the 1 s stall; from their intended start they
    // waited up to 1 s. A driver that measured from the send would report ~1 ms.
    assert!(
        load.summary.latency.p99_ms >= 500.0,
        "open-loop p99 {} ms does not show a 1 s stall",
        load.summary.latency.p99_ms
    );
    assert_eq!(load.config.latency_from, "intended_start");
    assert_eq!(load.config.threads, Some(2));
    let rate = load.summary.tps;
    assert!(
        (150.0..=250.0).contains(&rate),
        "rate {rate} tx/s, asked 200"
    );
}

/// The stall detector under `-j`: one thread serves 12 clients, all of which block on a lock at
/// once. A thread's batch must have room for every client it serves (it once kept 8, which hid
/// the stall: 8 of 12 waiting is below the 3-in-4 the detector needs).
#[test]
fn a_closed_loop_stall_of_every_client_of_one_thread_is_reported() {
    let db = "mux_closed_stall";
    let mut c = common::client_of(db);
    c.batch_execute(
        "DROP TABLE IF EXISTS mux_s; CREATE TABLE mux_s (id int PRIMARY KEY); \
         INSERT INTO mux_s VALUES (1)",
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut o = options(
        tmp.path(),
        db,
        "point.sql",
        "SELECT id FROM mux_s WHERE id = 1;\n",
    );
    o.engine.clients = 12;
    o.engine.threads = Some(1);
    o.engine.duration = Some(Duration::from_secs(4));
    o.engine.interval = Duration::from_millis(250);
    let stall = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        c.batch_execute("BEGIN; LOCK TABLE mux_s IN ACCESS EXCLUSIVE MODE")
            .unwrap();
        std::thread::sleep(Duration::from_secs(1));
        c.batch_execute("COMMIT").unwrap();
    });
    let out = queries::run(&o).unwrap();
    stall.join().unwrap();
    let load = out.doc.load.as_ref().unwrap();
    let stall = load
        .stalls
        .iter()
        .find(|s| !s.client_side)
        .unwrap_or_else(|| panic!("no server-side stall in {:?}", load.stalls));
    assert!(stall.clients_waiting >= 11, "{stall:?}");
    assert_eq!(stall.clients_required, 9);
    common::warning(&out.doc, "closed_loop_stall");
}

#[test]
fn transaction_limit_runs_exactly_that_many_per_client() {
    let db = "mux_limit";
    let tmp = tempfile::tempdir().unwrap();
    let mut o = options(tmp.path(), db, "one.sql", "\\sleep 1 ms\nSELECT 1;\n");
    o.engine.duration = None;
    o.engine.transactions_per_client = Some(25);
    let out = queries::run(&o).unwrap();
    let q = &out.doc.load.as_ref().unwrap().queries[0];
    assert_eq!(q.count, 6 * 25);
    assert!(q.errors.is_empty(), "{:?}", q.errors);
}

#[test]
fn a_local_server_means_unpinned_load_threads() {
    // Pinning asked for (the CLI default), but the sandbox runs on this host: the run is not
    // pinned and its document says so.
    let tmp = tempfile::tempdir().unwrap();
    let mut o = options(tmp.path(), "mux_pin", "one.sql", "SELECT 1;\n");
    o.engine.pin = true;
    o.engine.duration = None;
    o.engine.transactions_per_client = Some(5);
    let out = queries::run(&o).unwrap();
    assert!(!out.doc.load.as_ref().unwrap().config.pinned);
}

#[test]
fn jobs_run_the_builtin_query_types_from_the_command_line() {
    // `queries --mix ... -j N` and `run -j N` plan the multiplexed driver for the built-in types.
    match pgstorm::app::plan(&["queries", "--mix", "point=1,join=1", "-c", "4", "-j", "2"]) {
        Ok(pgstorm::app::Plan::Queries(o, _)) => {
            assert_eq!(
                (o.mix.as_str(), o.engine.threads),
                ("point=1,join=1", Some(2))
            );
        }
        other => panic!("not a queries plan: {:?}", other.map(|_| ())),
    }
    match pgstorm::app::plan(&["run", "-j", "3"]) {
        Ok(pgstorm::app::Plan::Suite(o)) => assert_eq!(o.overrides.threads, Some(3)),
        other => panic!("not a suite plan: {:?}", other.map(|_| ())),
    }
    let dsn = common::database("mux_builtin_cli");
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().to_str().unwrap();
    let (code, err) = common::run_pgstorm(&[
        "queries",
        "--dsn",
        &dsn,
        "--mix",
        "point=3,transaction=1",
        "-c",
        "3",
        "-j",
        "2",
        "-t",
        "5",
        "--results-dir",
        results,
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, err) = common::run_pgstorm(&["queries", "--dsn", &dsn, "-b", "select", "-j", "0"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn copy_with_the_client_is_refused_before_the_run_and_at_run_time() {
    let db = "mux_copy";
    let mut c = common::client_of(db);
    c.batch_execute("DROP TABLE IF EXISTS mux_copy; CREATE TABLE mux_copy (v int)")
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("copy.sql");
    std::fs::write(&file, "SELECT 1;\nCOPY mux_copy FROM STDIN;\n").unwrap();
    let dsn = common::database(db);
    let (code, err) = common::run_pgstorm(&[
        "queries",
        "--dsn",
        &dsn,
        "-j",
        "1",
        "-f",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("copy.sql:2") && err.contains("STDIN"), "{err}");

    // A COPY rendered from a variable (-M simple) gets past that check: the server then waits
    // for data, and the driver must refuse it (CopyFail) instead of waiting for ever.
    let mut o = options(tmp.path(), db, "smuggled.sql", "SELECT 1;\n:cmd;\n");
    o.protocol = pgstorm::workload::Protocol::Simple;
    o.defines = vec![("cmd".into(), "COPY mux_copy FROM STDIN".into())];
    o.engine.clients = 2;
    o.engine.threads = Some(1);
    o.engine.duration = None;
    o.engine.transactions_per_client = Some(3);
    let out = queries::run(&o).unwrap();
    let load = out.doc.load.as_ref().unwrap();
    let q = &load.queries[0];
    assert_eq!(q.count, 0);
    // Each client's first transaction fails and aborts it, as pgbench aborts a client.
    assert_eq!(q.errors.get("other").copied(), Some(2), "{:?}", q.errors);
    assert_eq!(load.aborted.len(), 1, "{:?}", load.aborted);
    let a = &load.aborted[0];
    assert_eq!(a.clients, 2);
    assert!(
        a.message.contains("smuggled.sql:2") && a.message.contains("COPY"),
        "{}",
        a.message
    );
    common::warning(&out.doc, "clients_aborted");
}
