//! pgbench-compatible scripts against a real sandbox PostgreSQL: pgbench's built-in scripts (and
//! their transaction counts against the server's), a custom script with \set, \gset and \if in
//! every protocol, a bad script's line number and exit code, and retries under a forced
//! serialization conflict (with the no-retry run as its negative control). Each runs on both
//! drivers: one thread per client over the pool, and the multiplexed one (`-j 2`).

mod common;

use std::path::Path;
use std::time::Duration;

use pgstorm::scenarios::queries::{self, QueriesOptions};
use pgstorm::scenarios::session::TargetOptions;
use pgstorm::workload::script::ScriptSource;
use pgstorm::workload::Protocol;

/// The two drivers: one thread per client over the pool, and two threads multiplexing (`-j 2`).
const DRIVERS: [Option<u32>; 2] = [None, Some(2)];

/// A short script-only load on database `db`.
fn options(results: &Path, db: &str, scripts: Vec<ScriptSource>) -> QueriesOptions {
    let mut o = QueriesOptions {
        target: TargetOptions {
            dsn: Some(common::database(db)),
            sandbox_max_connections: None,
            ..Default::default()
        },
        mix: String::new(),
        scripts,
        ..QueriesOptions::default()
    };
    o.archive.results_dir = results.to_path_buf();
    o.archive.label = db.into();
    o.print_summary = false;
    o.engine.clients = 4;
    o.engine.duration = Some(Duration::from_secs(2));
    o.engine.pin = false;
    o
}

fn source(name: &str, text: &str, weight: u32) -> ScriptSource {
    ScriptSource {
        name: name.into(),
        source_name: name.into(),
        text: text.into(),
        weight,
        builtin: false,
    }
}

#[test]
fn pgbench_builtin_scripts_run_and_their_counts_match_the_server() {
    let db = "scripts_builtin";
    let mut c = common::client_of(db);
    pgstorm::dataset::pgbench::seed(&mut c, 1, false).unwrap();
    let accounts: i64 = c
        .query_one("SELECT count(*) FROM pgbench_accounts", &[])
        .unwrap()
        .get(0);
    assert_eq!(accounts, 100_000);
    for threads in DRIVERS {
        let tmp = tempfile::tempdir().unwrap();
        let scripts = ["tpcb-like", "simple-update@2", "select@3"]
            .iter()
            .map(|s| ScriptSource::builtin(s).unwrap())
            .collect();
        let mut o = options(tmp.path(), db, scripts);
        o.per_command = true;
        o.engine.threads = threads;
        let out = queries::run(&o).unwrap();
        let load = out.doc.load.as_ref().unwrap();
        let names: Vec<&str> = load.queries.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["tpcb-like", "simple-update", "select-only"]);
        for q in &load.queries {
            assert!(q.count > 0, "{threads:?}: {} never ran", q.name);
            assert!(q.errors.is_empty(), "{}: {:?}", q.name, q.errors);
            let cmds = q.commands.as_ref().expect("-r gives per-command latencies");
            assert!(cmds
                .iter()
                .any(|c| c.command.contains("pgbench_accounts") && c.count > 0));
        }
        // Each script is one transaction (BEGIN..END, or one autocommit SELECT): the server's own
        // commit counter agrees with the client's count. The excess is setup, bounded: per pool
        // connection one SET and one implicit transaction per prepared statement (7 + 5 + 1), plus the
        // monitor connection's polling while the pool closes.
        let sc = load.server_check.as_ref().unwrap();
        let client = sc.client_transactions as i64;
        let setup = 4 * (1 + 13) + 100;
        assert!(
            sc.xact_rollback == 0 && sc.xact_commit >= client && sc.xact_commit - client <= setup,
            "{threads:?}: server {} commits + {} rollbacks vs {} client transactions",
            sc.xact_commit,
            sc.xact_rollback,
            sc.client_transactions
        );
        // The run's hygiene truncated pgbench_history (as pgbench does), and each tpcb-like and
        // simple-update transaction then inserted exactly one history row.
        let history: i64 = c
            .query_one("SELECT count(*) FROM pgbench_history", &[])
            .unwrap()
            .get(0);
        let writers = load.queries[0].count + load.queries[1].count;
        assert_eq!(history as u64, writers);
    }
}

const CUSTOM: &str = r"-- \set with expressions, \gset into variables, \if on what came back
\set n random(1, 1000)
\set twice :n * 2
SELECT :n::int * 2 AS doubled, :client_id::int AS cid,
       (:n::int * 3)::text AS tripled \gset got_
\if :got_doubled = :twice AND :got_cid >= 0
  \set ok 1
\elif :got_doubled < 0
  SELECT 1 / 0;
\else
  SELECT 1 / 0;
\endif
\set h hash(:n)
\set z permute(:n, 1000) - abs(-1) + greatest(1, 2.5) + int(random_gaussian(1, 10, 2.5))
\set z random_zipfian(1, 100, 1.5) + random_exponential(1, 100, 3.0) + :z
\sleep 1 us
INSERT INTO custom_log (n, h, tripled) VALUES (:n, :h, :got_tripled);
";

#[test]
fn custom_script_with_set_gset_and_if_runs_in_every_protocol() {
    let db = "scripts_custom";
    let mut c = common::client_of(db);
    c.batch_execute(
        "DROP TABLE IF EXISTS custom_log; CREATE TABLE custom_log (n int, h bigint, tripled int)",
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut total = 0;
    let runs = DRIVERS.iter().flat_map(|&t| {
        [Protocol::Prepared, Protocol::Extended, Protocol::Simple].map(move |p| (t, p))
    });
    for (threads, protocol) in runs {
        let mut o = options(tmp.path(), db, vec![source("custom.sql", CUSTOM, 1)]);
        o.protocol = protocol;
        o.engine.threads = threads;
        o.engine.duration = Some(Duration::from_secs(1));
        let out = queries::run(&o).unwrap();
        let q = &out.doc.load.as_ref().unwrap().queries[0];
        assert_eq!(q.name, "custom.sql");
        assert!(q.count > 0, "{threads:?} {protocol:?}: no transaction");
        assert!(
            q.errors.is_empty(),
            "{threads:?} {protocol:?}: {:?} {:?}",
            q.errors,
            out.doc.warnings
        );
        total += q.count;
    }
    // Every transaction took the \if branch (the others divide by zero) and logged what \gset
    // stored (text from the server, bound back as a parameter).
    let row = c
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE tripled = 3 * n) FROM custom_log",
            &[],
        )
        .unwrap();
    let (rows, labelled): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(rows as u64, total);
    assert_eq!(labelled, rows);
}

#[test]
fn expression_errors_abort_the_client_with_their_line() {
    let db = "scripts_runtime_error";
    for threads in DRIVERS {
        let tmp = tempfile::tempdir().unwrap();
        let script = "\\set d 0\n\\set x 1 / :d\nSELECT 1;\n";
        let mut o = options(tmp.path(), db, vec![source("div.sql", script, 1)]);
        o.engine.threads = threads;
        let out = queries::run(&o).unwrap();
        let load = out.doc.load.as_ref().unwrap();
        let q = &load.queries[0];
        assert_eq!(q.count, 0, "{threads:?}");
        // One failed transaction per client, then the client is gone (pgbench aborts it).
        assert_eq!(
            q.errors.get("other").copied(),
            Some(4),
            "{threads:?}: {:?}",
            q.errors
        );
        assert_eq!(load.aborted.len(), 1, "{threads:?}: {:?}", load.aborted);
        let a = &load.aborted[0];
        assert_eq!(
            (a.clients, a.sqlstate.as_deref(), a.message.as_str()),
            (4, None, "div.sql:2: division by zero"),
            "{threads:?}"
        );
        let w = common::warning(&out.doc, "clients_aborted");
        assert!(
            w.message.contains("div.sql:2: division by zero"),
            "{threads:?}: {}",
            w.message
        );
    }
}

#[test]
fn unknown_meta_command_fails_with_its_line_number_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.sql");
    std::fs::write(&file, "\\set aid 1\nSELECT :aid;\n\n\\frobnicate 3\n").unwrap();
    let results = tmp.path().join("results");
    let dsn = common::database("scripts_bad");
    let (code, stderr) = common::run_pgstorm(&[
        "queries",
        "--dsn",
        &dsn,
        "-f",
        file.to_str().unwrap(),
        "--results-dir",
        results.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("bad.sql:4:"), "{stderr}");
    assert!(stderr.contains("invalid command \\frobnicate"), "{stderr}");
    assert!(!results.exists(), "a result folder was written");

    // A meta-command pgbench has but pgstorm does not run is refused the same way.
    std::fs::write(&file, "SELECT 1;\n\\shell echo hi\n").unwrap();
    let (code, stderr) =
        common::run_pgstorm(&["queries", "--dsn", &dsn, "-f", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("bad.sql:2:") && stderr.contains("\\shell"),
        "{stderr}"
    );

    // A missing file and an unknown built-in are input errors too.
    let (code, _) = common::run_pgstorm(&["queries", "--dsn", &dsn, "-f", "/nonexistent/x.sql"]);
    assert_eq!(code, 2);
    let (code, stderr) = common::run_pgstorm(&["queries", "--dsn", &dsn, "-b", "tpcc"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("tpcb-like"), "{stderr}");
}

/// Every transaction reads then increments the one row under REPEATABLE READ, after a pause that
/// lets the others commit first: concurrent clients get serialization failures (40001).
const HOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT v FROM hot WHERE id = 1;
\\sleep 2 ms
UPDATE hot SET v = v + 1 WHERE id = 1;
END;
";

fn hot_run(
    db: &str,
    max_tries: u32,
    threads: Option<u32>,
) -> (pgstorm::report::model::QueryResult, i64) {
    let mut c = common::client_of(db);
    c.batch_execute(
        "DROP TABLE IF EXISTS hot; CREATE TABLE hot (id int PRIMARY KEY, v bigint); \
         INSERT INTO hot VALUES (1, 0)",
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut o = options(tmp.path(), db, vec![source("hot.sql", HOT, 1)]);
    o.engine.max_tries = max_tries;
    o.engine.threads = threads;
    let out = queries::run(&o).unwrap();
    let q = out.doc.load.as_ref().unwrap().queries[0].clone();
    let v: i64 = c
        .query_one("SELECT v FROM hot WHERE id = 1", &[])
        .unwrap()
        .get(0);
    (q, v)
}

#[test]
fn serialization_failures_are_retried_and_counted() {
    for threads in DRIVERS {
        // Negative control: one try, so conflicts are failures and nothing is retried.
        let (q, v) = hot_run("scripts_hot_once", 1, threads);
        assert!(
            q.errors.get("serialization").copied().unwrap_or(0) > 0,
            "{threads:?}: {:?}",
            q.errors
        );
        assert_eq!((q.retried, q.retries), (0, 0));
        assert_eq!(
            v as u64, q.count,
            "each committed transaction adds exactly 1"
        );

        // With retries the same conflicts are retried and almost every transaction succeeds.
        let (q, v) = hot_run("scripts_hot_retry", 100, threads);
        assert!(
            q.retried > 0 && q.retries >= q.retried,
            "{threads:?}: {q:?}"
        );
        assert!(
            q.errors.get("serialization").copied().unwrap_or(0) <= q.count / 10,
            "{threads:?}: {:?}",
            q.errors
        );
        assert_eq!(v as u64, q.count, "a retried transaction is applied once");
    }
}

#[test]
fn more_than_128_scripts_and_a_bad_random_seed_are_refused_as_pgbench_does() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("one.sql");
    std::fs::write(&file, "SELECT 1;\n").unwrap();
    let file = file.to_str().unwrap();
    let dsn = common::database("scripts_limits");
    let results = tmp.path().join("results");
    let run = |scripts: usize, seed: &str| {
        let mut args = vec!["queries", "--dsn", &dsn, "-t", "1", "--random-seed", seed];
        args.extend(["--results-dir", results.to_str().unwrap()]);
        for _ in 0..scripts {
            args.extend(["-f", file]);
        }
        common::run_pgstorm(&args)
    };
    let (code, stderr) = run(129, "1");
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("at most 128 SQL scripts are allowed"),
        "{stderr}"
    );
    let (code, stderr) = run(1, "soon");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("unrecognized random seed"), "{stderr}");
    // The limit itself is allowed, and pgbench's seed spellings are taken.
    let (code, stderr) = run(128, "rand");
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("setting random seed to"), "{stderr}");
}
