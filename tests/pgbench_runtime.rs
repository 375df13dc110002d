//! pgbench script runtime semantics, each compared with what the installed pgbench does for the
//! same script on the same sandbox database: which failures abort a client (exit 2, the message
//! on the terminal and, by SQLSTATE, in run.json), a transaction block left open at the end of
//! the script, `\gset` after a `\;` compound command, `\aset`, and pipeline mode (one implicit
//! transaction per pipeline: proof of a single Sync, so of one round trip). Every case runs on
//! both drivers where the feature exists on both: one thread per client over the pool, and the
//! multiplexed one (`-j 2`).

mod common;

use std::path::Path;
use std::process::Command;

/// The pool driver (no `-j`) and the multiplexed one.
const DRIVERS: [&[&str]; 2] = [&[], &["-j", "2"]];

/// What one tool did with one script.
struct Ran {
    code: i32,
    stderr: String,
}

/// Runs pgbench (the oracle) on database `db` with `args`, no vacuum, as pgbench itself
/// would be run by a user.
fn pgbench(db: &str, args: &[&str]) -> Ran {
    let out = Command::new("pgbench")
        .arg("-n")
        .args(args)
        .arg(common::database(db))
        .env_remove("PGPASSWORD")
        .output()
        .expect("pgbench is on PATH");
    Ran {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs pgstorm's `queries` on database `db` with `args`, results under `results`; returns the
/// outcome and the run's document when one was written.
fn pgstorm(
    db: &str,
    results: &Path,
    args: &[&str],
) -> (Ran, Option<pgstorm::report::model::RunDocument>) {
    let dsn = common::database(db);
    let mut all = vec![
        "queries",
        "--dsn",
        &dsn,
        "--results-dir",
        results.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let (code, stderr) = common::run_pgstorm(&all);
    let doc = std::fs::read_dir(results).ok().and_then(|entries| {
        let dir = entries
            .flatten()
            .find(|e| e.path().join("run.json").is_file())?
            .path();
        common::assert_run_json_matches_schema(&dir);
        Some(serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap())
    });
    (Ran { code, stderr }, doc)
}

/// [`pgstorm`] with `driver`'s arguments after `args`, results in `dir`'s folder `tag`.
fn pgstorm_with(
    db: &str,
    dir: &Path,
    tag: &str,
    args: &[&str],
    driver: &[&str],
) -> (Ran, Option<pgstorm::report::model::RunDocument>) {
    let all: Vec<&str> = args.iter().chain(driver).copied().collect();
    pgstorm(db, &dir.join(tag), &all)
}

/// Runs `args` through pgbench and through pgstorm on each of `drivers`, and checks that both
/// abort (exit 2) saying `pgbench_says` and `pgstorm_says`; returns pgstorm's load results.
fn both_abort(
    db: &str,
    dir: &Path,
    args: &[&str],
    drivers: &[&[&str]],
    (pgbench_says, pgstorm_says): (&str, &str),
) -> Vec<pgstorm::report::model::LoadResult> {
    let oracle = pgbench(db, args);
    assert_eq!(oracle.code, 2, "pgbench {args:?}: {}", oracle.stderr);
    assert!(
        oracle.stderr.contains(pgbench_says),
        "pgbench {args:?}: {}",
        oracle.stderr
    );
    drivers
        .iter()
        .enumerate()
        .map(|(k, driver)| {
            let (ran, doc) = pgstorm_with(db, dir, &format!("run{k}"), args, driver);
            assert_eq!(ran.code, 2, "{args:?} {driver:?}: {}", ran.stderr);
            assert!(
                ran.stderr.contains(pgstorm_says),
                "{args:?} {driver:?}: {}",
                ran.stderr
            );
            load(&doc).clone()
        })
        .collect()
}

/// Writes `text` as `name` under `dir`; returns its path.
fn script(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

fn load(doc: &Option<pgstorm::report::model::RunDocument>) -> &pgstorm::report::model::LoadResult {
    doc.as_ref()
        .expect("a result was written")
        .load
        .as_ref()
        .unwrap()
}

#[test]
fn an_open_transaction_block_at_the_end_aborts_the_client_like_pgbench() {
    let db = "rt_unfinished";
    let tmp = tempfile::tempdir().unwrap();
    let open = script(tmp.path(), "open.sql", "BEGIN;\nSELECT 1;\n");
    let closed = script(tmp.path(), "closed.sql", "BEGIN;\nSELECT 1;\nEND;\n");
    let message = "end of script reached without completing the last transaction";

    let args = ["-f", open.as_str(), "-t", "10", "-c", "2"];
    let dir = tmp.path().join("open");
    for load in both_abort(db, &dir, &args, &DRIVERS, (message, message)) {
        // As pgbench ("processed: 2/20"): each client's one transaction counts, then it ends.
        assert_eq!(load.summary.count, 2);
        assert_eq!(load.aborted.len(), 1, "{:?}", load.aborted);
        assert_eq!(load.aborted[0].clients, 2);
        assert_eq!(load.aborted[0].message, format!("open.sql: {message}"));
    }

    // Negative control: the same script with its END runs to the end in both tools.
    let oracle = pgbench(db, &["-f", &closed, "-t", "10", "-c", "2"]);
    assert_eq!(oracle.code, 0, "{}", oracle.stderr);
    for (k, driver) in DRIVERS.iter().enumerate() {
        let (ran, doc) = pgstorm_with(
            db,
            tmp.path(),
            &format!("closed{k}"),
            &["-f", closed.as_str(), "-t", "10", "-c", "2"],
            driver,
        );
        assert_eq!(ran.code, 0, "{driver:?}: {}", ran.stderr);
        let load = load(&doc);
        assert_eq!(load.summary.count, 20, "{driver:?}");
        assert!(load.aborted.is_empty(), "{driver:?}: {:?}", load.aborted);
    }
}

#[test]
fn runs_whose_every_transaction_fails_exit_2_with_the_message_in_run_json() {
    let db = "rt_all_fail";
    let tmp = tempfile::tempdir().unwrap();
    // (script, pgbench's words for it, pgstorm's message in run.json, SQLSTATE)
    let cases = [
        (
            "sql.sql",
            "SELECT 1/0;\n",
            "division by zero",
            "sql.sql:1: division by zero",
            Some("22012"),
        ),
        (
            "set.sql",
            "\\set d 0\n\\set x 1 / :d\nSELECT 1;\n",
            "division by zero",
            "set.sql:2: division by zero",
            None,
        ),
        (
            "gset.sql",
            "SELECT 1 AS v UNION ALL SELECT 2 \\gset\n",
            "expected one row, got 2",
            "gset.sql:1: expected one row, got 2",
            None,
        ),
    ];
    for (name, text, words, message, sqlstate) in cases {
        let path = script(tmp.path(), name, text);
        let args = ["-f", path.as_str(), "-t", "3", "-c", "2"];
        let dir = tmp.path().join(format!("{name}.results"));
        for load in both_abort(db, &dir, &args, &DRIVERS, (words, message)) {
            assert_eq!(load.summary.count, 0, "{name}");
            assert_eq!(load.aborted.len(), 1, "{name}");
            let a = &load.aborted[0];
            assert_eq!(
                (a.message.as_str(), a.sqlstate.as_deref(), a.clients),
                (message, sqlstate, 2),
                "{name}"
            );
        }
    }

    // Negative control: a script that works exits 0 and records no abort.
    let path = script(tmp.path(), "ok.sql", "SELECT 1;\n");
    assert_eq!(pgbench(db, &["-f", &path, "-t", "3", "-c", "2"]).code, 0);
    for (k, driver) in DRIVERS.iter().enumerate() {
        let (ran, doc) = pgstorm_with(
            db,
            tmp.path(),
            &format!("ok{k}"),
            &["-f", path.as_str(), "-t", "3", "-c", "2"],
            driver,
        );
        assert_eq!(ran.code, 0, "{driver:?}: {}", ran.stderr);
        assert!(load(&doc).aborted.is_empty());
    }
}

/// Creates the table the stored values go to, empty.
fn values_table(db: &str) {
    common::client_of(db)
        .batch_execute(
            "DROP TABLE IF EXISTS rt_vals; CREATE TABLE rt_vals (tool int, a text, b text)",
        )
        .unwrap();
}

/// The distinct (a, b) pairs `tool` wrote.
fn values_of(db: &str, tool: i32) -> Vec<(Option<String>, Option<String>)> {
    common::client_of(db)
        .query(
            "SELECT DISTINCT a, b FROM rt_vals WHERE tool = $1 ORDER BY 1, 2",
            &[&tool],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Runs `text` (which writes `:tool` rows into rt_vals) through pgbench as tool 0 and pgstorm's
/// drivers as tools 1 and 2 with protocol `m`; returns each tool's values.
fn values_by_tool(
    db: &str,
    name: &str,
    text: &str,
    m: &str,
) -> Vec<Vec<(Option<String>, Option<String>)>> {
    values_table(db);
    let tmp = tempfile::tempdir().unwrap();
    let path = script(tmp.path(), name, text);
    let oracle = pgbench(
        db,
        &["-M", m, "-D", "tool=0", "-f", &path, "-t", "2", "-c", "2"],
    );
    assert_eq!(oracle.code, 0, "{name} -M {m}: {}", oracle.stderr);
    for (k, driver) in DRIVERS.iter().enumerate() {
        let tool = format!("tool={}", k + 1);
        let (ran, _) = pgstorm_with(
            db,
            tmp.path(),
            &format!("r{k}"),
            &["-M", m, "-D", &tool, "-f", &path, "-t", "2", "-c", "2"],
            driver,
        );
        assert_eq!(ran.code, 0, "{name} -M {m} {driver:?}: {}", ran.stderr);
    }
    (0..3).map(|t| values_of(db, t)).collect()
}

fn pair(a: &str, b: &str) -> (Option<String>, Option<String>) {
    (Some(a.into()), Some(b.into()))
}

#[test]
fn gset_after_a_compound_command_stores_the_last_result() {
    let db = "rt_gset";
    // The first result's column must not be stored: `a` keeps its \set value.
    let text = "\\set a 7\n\
                SELECT 1 AS a \\; SELECT 2 AS b \\gset\n\
                INSERT INTO rt_vals VALUES (:tool, :a, :b);\n";
    let by_tool = values_by_tool(db, "compound.sql", text, "simple");
    assert_eq!(by_tool[0], vec![pair("7", "2")], "pgbench");
    assert_eq!(by_tool[1], by_tool[0], "pool driver");
    assert_eq!(by_tool[2], by_tool[0], "-j driver");

    // The last result decides the row count: an UPDATE last is "got 0", as in pgbench.
    let tmp = tempfile::tempdir().unwrap();
    let path = script(
        tmp.path(),
        "last.sql",
        "SELECT 1 AS a \\; SET search_path = public \\gset\n",
    );
    both_abort(
        db,
        &tmp.path().join("last"),
        &["-M", "simple", "-f", path.as_str(), "-t", "1", "-c", "1"],
        &DRIVERS,
        (
            "expected one row, got 0",
            "last.sql:1: expected one row, got 0",
        ),
    );
}

#[test]
fn aset_stores_the_last_row_of_every_result() {
    let db = "rt_aset";
    // a from the first result, b from the last row of the second, the empty third sets nothing.
    let compound = "\\set b 0\n\
                    SELECT 1 AS a \\; SELECT g AS b FROM generate_series(1, 3) g \\; \
                    SELECT 9 AS b WHERE false \\aset\n\
                    INSERT INTO rt_vals VALUES (:tool, :a, :b);\n";
    let by_tool = values_by_tool(db, "compound.sql", compound, "simple");
    assert_eq!(by_tool[0], vec![pair("1", "3")], "pgbench");
    assert_eq!(by_tool[1], by_tool[0], "pool driver");
    assert_eq!(by_tool[2], by_tool[0], "-j driver");

    // One statement under the extended protocols: the last row; no row leaves the variable.
    let single = "\\set b 5\n\
                  SELECT g AS a FROM generate_series(1, 4) g \\aset\n\
                  SELECT 1 AS b WHERE false \\aset\n\
                  INSERT INTO rt_vals VALUES (:tool, :a, :b);\n";
    for m in ["extended", "prepared"] {
        let by_tool = values_by_tool(db, "single.sql", single, m);
        assert_eq!(by_tool[0], vec![pair("4", "5")], "pgbench -M {m}");
        assert_eq!(by_tool[1], by_tool[0], "pool driver -M {m}");
        assert_eq!(by_tool[2], by_tool[0], "-j driver -M {m}");
    }
}

/// Rows per transaction id each tool's two INSERTs of one pass left: 2 when they shared one
/// implicit transaction (one Sync for both, so one round trip), 1 when each had its own.
fn rows_per_xid(db: &str, tool: i32) -> Vec<i64> {
    common::client_of(db)
        .query(
            "SELECT DISTINCT count(*) FROM rt_pipe WHERE tool = $1 GROUP BY x",
            &[&tool],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn a_pipeline_is_one_sync_like_pgbench_and_needs_the_extended_protocol() {
    let db = "rt_pipeline";
    let tmp = tempfile::tempdir().unwrap();
    let body = "INSERT INTO rt_pipe VALUES (:tool, txid_current());\n\
                INSERT INTO rt_pipe VALUES (:tool, txid_current());\n";
    let piped = script(
        tmp.path(),
        "piped.sql",
        &format!("\\startpipeline\n{body}\\endpipeline\n"),
    );
    let plain = script(tmp.path(), "plain.sql", body);
    for m in ["extended", "prepared"] {
        // Negative control first: without a pipeline every INSERT is its own transaction.
        for (path, expect) in [(&plain, 1), (&piped, 2)] {
            common::client_of(db)
                .batch_execute(
                    "DROP TABLE IF EXISTS rt_pipe; CREATE TABLE rt_pipe (tool int, x bigint)",
                )
                .unwrap();
            let oracle = pgbench(
                db,
                &["-M", m, "-D", "tool=0", "-f", path, "-t", "5", "-c", "2"],
            );
            assert_eq!(oracle.code, 0, "{path} -M {m}: {}", oracle.stderr);
            assert_eq!(rows_per_xid(db, 0), vec![expect], "pgbench {path} -M {m}");
            // Both drivers run the pipeline: the pool driver over the same executor.
            for (k, driver) in DRIVERS.iter().enumerate() {
                let tool = format!("tool={}", k + 1);
                let (ran, doc) = pgstorm_with(
                    db,
                    tmp.path(),
                    &format!("{m}{expect}{k}"),
                    &["-M", m, "-D", &tool, "-f", path, "-t", "5", "-c", "2"],
                    driver,
                );
                assert_eq!(ran.code, 0, "{path} -M {m} {driver:?}: {}", ran.stderr);
                assert_eq!(load(&doc).summary.count, 10, "{driver:?}");
                let t = k as i32 + 1;
                assert_eq!(
                    rows_per_xid(db, t),
                    vec![expect],
                    "{path} -M {m} {driver:?}"
                );
                // The server committed as many transactions as the tool counted (10 pipelines
                // of one implicit transaction each, or 20 single INSERTs).
                let xids: i64 = common::client_of(db)
                    .query_one(
                        "SELECT count(DISTINCT x) FROM rt_pipe WHERE tool = $1",
                        &[&t],
                    )
                    .unwrap()
                    .get(0);
                assert_eq!(xids, 20 / expect, "{path} -M {m} {driver:?}");
            }
        }
    }

    // Under -M simple pgbench aborts every client with this message; pgstorm refuses the script
    // before the run with the same words.
    let words = "cannot use pipeline mode with the simple query protocol";
    let oracle = pgbench(
        db,
        &["-M", "simple", "-D", "tool=0", "-f", &piped, "-t", "1"],
    );
    assert_eq!(oracle.code, 2, "{}", oracle.stderr);
    assert!(oracle.stderr.contains(words), "{}", oracle.stderr);
    let (ran, doc) = pgstorm(
        db,
        &tmp.path().join("simple"),
        &[
            "-M", "simple", "-D", "tool=1", "-f", &piped, "-t", "1", "-j", "2",
        ],
    );
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(
        ran.stderr.contains(&format!("piped.sql:1: {words}")),
        "{}",
        ran.stderr
    );
    assert!(doc.is_none(), "a refused script wrote a result");
    // Beside built-in query types the pool driver runs the pipeline too: every type is a script
    // on the same executor (this was refused while the built-in types ran over another client).
    let (ran, doc) = pgstorm(
        db,
        &tmp.path().join("pool"),
        &[
            "-D", "tool=3", "-f", &piped, "--mix", "point=1", "-t", "20", "-c", "1",
        ],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(load(&doc).summary.count, 20);
    assert_eq!(rows_per_xid(db, 3), vec![2], "a pipeline beside --mix");
}

#[test]
fn pipeline_misuse_aborts_the_client_as_in_pgbench() {
    let db = "rt_pipeline_misuse";
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "open.sql",
            "\\startpipeline\nSELECT 1;\n",
            "end of script reached with pipeline open",
        ),
        ("end.sql", "\\endpipeline\n", "not in pipeline mode"),
        (
            "twice.sql",
            "\\startpipeline\n\\startpipeline\n\\endpipeline\n",
            "already in pipeline mode",
        ),
        (
            "gset.sql",
            "\\startpipeline\nSELECT 1 AS v \\gset\n\\endpipeline\n",
            "\\gset is not allowed in pipeline mode",
        ),
        (
            "error.sql",
            "\\startpipeline\nSELECT 1/0;\nSELECT 2;\n\\endpipeline\n",
            "division by zero",
        ),
    ];
    for (name, text, words) in cases {
        let path = script(tmp.path(), name, text);
        let args = ["-M", "extended", "-f", path.as_str(), "-t", "2", "-c", "2"];
        let dir = tmp.path().join(format!("{name}.results"));
        for load in both_abort(db, &dir, &args, &[&["-j", "2"]], (words, words)) {
            assert_eq!(load.summary.count, 0, "{name}");
            let clients: u64 = load.aborted.iter().map(|a| a.clients).sum();
            assert_eq!(clients, 2, "{name}");
        }
    }
}

#[test]
fn verbose_errors_print_each_failed_try_on_both_drivers() {
    let db = "rt_verbose_errors";
    let tmp = tempfile::tempdir().unwrap();
    // Repeatable read, a snapshot, a pause, then an update of the one row every client updates:
    // a client whose row was updated since its snapshot fails with 40001 and is retried.
    let racy = script(
        tmp.path(),
        "racy.sql",
        "BEGIN ISOLATION LEVEL REPEATABLE READ;\n\
         SELECT v FROM rt_ser WHERE id = 1;\n\
         \\sleep 20 ms\n\
         UPDATE rt_ser SET v = v + 1 WHERE id = 1;\n\
         COMMIT;\n",
    );
    let args = [
        "--no-vacuum",
        "-f",
        &racy,
        "-c",
        "4",
        "-t",
        "10",
        "--max-tries",
        "1000",
    ];
    for (k, driver) in DRIVERS.iter().enumerate() {
        for verbose in [false, true] {
            common::client_of(db)
                .batch_execute(
                    "DROP TABLE IF EXISTS rt_ser; CREATE TABLE rt_ser (id int, v int); \
                     INSERT INTO rt_ser VALUES (1, 0)",
                )
                .unwrap();
            let mut all = args.to_vec();
            if verbose {
                all.push("--verbose-errors");
            }
            let (ran, doc) = pgstorm_with(db, tmp.path(), &format!("{k}{verbose}"), &all, driver);
            assert_eq!(ran.code, 0, "{driver:?}: {}", ran.stderr);
            let retried = load(&doc).summary.count;
            assert_eq!(retried, 40, "{driver:?}");
            let committed: i32 = common::client_of(db)
                .query_one("SELECT v FROM rt_ser", &[])
                .unwrap()
                .get(0);
            assert_eq!(committed, 40, "every transaction committed once");
            let errors = ran
                .stderr
                .lines()
                .filter(|l| {
                    l.contains("got an error in command at line 4 of script 0")
                        && l.contains("could not serialize access")
                        && l.contains("40001")
                })
                .count();
            let repeats = ran
                .stderr
                .matches("repeats the transaction after the error (try ")
                .count();
            if verbose {
                // Positive control: 4 clients racing for one row do fail, each failure is
                // reported with its retry.
                assert!(errors > 0, "{driver:?}: {}", ran.stderr);
                assert_eq!(errors, repeats, "{driver:?}: {}", ran.stderr);
                assert!(ran.stderr.contains("/1000)"), "{}", ran.stderr);
            } else {
                assert_eq!((errors, repeats), (0, 0), "{driver:?}: {}", ran.stderr);
            }
        }
    }
}

#[test]
fn v_vacuums_pgbench_accounts_before_the_run() {
    let db = "rt_vacuum_all";
    let tmp = tempfile::tempdir().unwrap();
    common::client_of(db)
        .batch_execute(
            "DROP TABLE IF EXISTS pgbench_accounts; CREATE TABLE pgbench_accounts (aid int); \
             INSERT INTO pgbench_accounts SELECT generate_series(1, 100)",
        )
        .unwrap();
    let last_vacuum = || -> Option<std::time::SystemTime> {
        common::client_of(db)
            .query_one(
                "SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = 'pgbench_accounts'",
                &[],
            )
            .unwrap()
            .get(0)
    };
    assert_eq!(last_vacuum(), None);
    let select = script(tmp.path(), "one.sql", "SELECT 1;\n");
    let (ran, doc) = pgstorm(db, &tmp.path().join("v"), &["-v", "-f", &select, "-t", "1"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let steps = &doc.unwrap().hygiene.unwrap().steps;
    let vacuum = steps.iter().find(|s| s.action == "vacuum_analyze").unwrap();
    assert!(
        vacuum.tables.iter().any(|t| t == "pgbench_accounts"),
        "{vacuum:?}"
    );
    // The server's statistics say so too (they are flushed by the next access).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while last_vacuum().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(last_vacuum().is_some(), "pgbench_accounts was not vacuumed");
}
