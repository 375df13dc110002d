//! Run hygiene against a real sandbox: the runs of a set start vacuumed and checkpointed (dead
//! tuples ≈ 0, with `--no-vacuum` as the negative control where they pile up), CHECKPOINT is
//! skipped with its reason for a role that may not, and the `--pre-sql` / `--post-sql` hooks
//! really run, stop the run (pre) or only warn (post) when they fail.
//!
//! The cluster runs with autovacuum off, so the only vacuum is pgstorm's: a clean start cannot be
//! autovacuum's doing, and the negative control's dead tuples stay where the load left them.

mod common;

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use pgstorm::report::hygiene::StepStatus;
use pgstorm::report::model::RunDocument;
use pgstorm::sandbox::{Sandbox, SandboxOptions};
use pgstorm::scenarios::queries::{self, QueriesOptions};
use pgstorm::scenarios::session::TargetOptions;

fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        common::fresh_sandbox(&SandboxOptions {
            max_connections: 50,
            settings: vec![("autovacuum".into(), "off".into())],
            ..SandboxOptions::default()
        })
    })
}

/// A DSN for database `db` (created now) of this binary's sandbox, as `user`.
fn database(db: &str, user: &str) -> String {
    let sb = sandbox();
    let mut c = sb.pg_config().connect(postgres::NoTls).unwrap();
    c.batch_execute(&format!("CREATE DATABASE \"{db}\" OWNER \"{user}\""))
        .unwrap();
    format!(
        "host={} port={} user={user} dbname={db}",
        sb.host(),
        sb.port()
    )
}

fn options(results: &Path, dsn: String) -> QueriesOptions {
    let mut o = QueriesOptions {
        target: TargetOptions {
            dsn: Some(dsn),
            sandbox_max_connections: None,
            ..Default::default()
        },
        mix: "transaction=1".into(),
        monitor: None,
        print_summary: false,
        ..QueriesOptions::default()
    };
    o.archive.results_dir = results.to_path_buf();
    o.engine.clients = 2;
    o.engine.duration = Some(Duration::from_secs(2));
    o.engine.pin = false;
    o
}

fn dead_at_start(doc: &RunDocument) -> i64 {
    let h = doc.hygiene.as_ref().expect("a hygiene section");
    assert_eq!(h.dead_tuples_at_start.len(), 3, "{h:?}");
    h.dead_tuples_at_start.values().sum()
}

fn step<'a>(doc: &'a RunDocument, action: &str) -> &'a pgstorm::report::hygiene::HygieneStep {
    let h = doc.hygiene.as_ref().expect("a hygiene section");
    h.steps
        .iter()
        .find(|s| s.action == action)
        .unwrap_or_else(|| panic!("no {action} step in {:?}", h.steps))
}

#[test]
fn every_run_of_a_set_starts_without_dead_tuples_and_no_vacuum_lets_them_pile_up() {
    let user = sandbox().user().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let clean = options(tmp.path(), database("hyg_clean", &user));
    let (clean, set) = queries::run_repeated(&clean, 3).unwrap();
    assert!(set.is_some());
    let mut dirty = options(tmp.path(), database("hyg_dirty", &user));
    dirty.hygiene.vacuum = false;
    let (dirty, _) = queries::run_repeated(&dirty, 3).unwrap();

    // Every rolled-back transaction leaves at least one dead tuple (its aborted insert): a run
    // that kept 1 % of the previous run's would not have started clean.
    let fewest = clean
        .iter()
        .chain(&dirty)
        .map(|o| o.doc.load.as_ref().unwrap().summary.count as i64)
        .min()
        .unwrap();
    assert!(fewest > 0);
    let tolerance = fewest / 100;
    for o in &clean {
        common::assert_run_json_matches_schema(&o.dir);
        let vacuum = step(&o.doc, "vacuum_analyze");
        assert_eq!(vacuum.status, StepStatus::Done, "{vacuum:?}");
        assert_eq!(vacuum.tables.len(), 3, "{vacuum:?}");
        assert_eq!(step(&o.doc, "checkpoint").status, StepStatus::Done);
        assert_eq!(step(&o.doc, "pg_stat_reset").status, StepStatus::Skipped);
        let dead = dead_at_start(&o.doc);
        assert!(
            dead <= tolerance,
            "{} dead tuples at the start of a vacuumed run (tolerance {tolerance})",
            dead
        );
    }
    // Negative control: the same set without the vacuum starts each run dirtier than the last.
    let dead: Vec<i64> = dirty.iter().map(|o| dead_at_start(&o.doc)).collect();
    assert_eq!(
        step(&dirty[0].doc, "vacuum_analyze").status,
        StepStatus::Skipped
    );
    assert!(
        dead[1] > tolerance && dead[2] > dead[1],
        "dead tuples at the starts of unvacuumed runs: {dead:?} (tolerance {tolerance})"
    );
}

#[test]
fn checkpoint_is_skipped_with_the_reason_for_a_role_that_may_not_and_done_once_granted() {
    let sb = sandbox();
    let mut admin = sb.pg_config().connect(postgres::NoTls).unwrap();
    admin.batch_execute("CREATE ROLE hyg_plain LOGIN").unwrap();
    let dsn = database("hyg_plain", "hyg_plain");
    let tmp = tempfile::tempdir().unwrap();
    let mut o = options(tmp.path(), dsn);
    o.engine.duration = Some(Duration::from_secs(1));
    let out = queries::run(&o).unwrap();
    let cp = step(&out.doc, "checkpoint");
    assert_eq!(cp.status, StepStatus::Skipped, "{cp:?}");
    assert!(
        cp.reason.as_deref().unwrap().contains("pg_checkpoint"),
        "{cp:?}"
    );
    // The database's owner may vacuum the tables it seeded.
    assert_eq!(step(&out.doc, "vacuum_analyze").status, StepStatus::Done);

    admin
        .batch_execute("GRANT pg_checkpoint TO hyg_plain")
        .unwrap();
    let out = queries::run(&o).unwrap();
    assert_eq!(step(&out.doc, "checkpoint").status, StepStatus::Done);
}

fn result_dirs(results: &Path) -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir(results)
        .map(|r| {
            r.flatten()
                .map(|e| e.path())
                .filter(|p| p.join("run.json").is_file())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// The real binary: a one-second `queries` load of one client on `dsn`, plus `extra`.
fn short_load(dsn: &str, results: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec![
        "queries",
        "--dsn",
        dsn,
        "--mix",
        "point=1",
        "-c",
        "1",
        "-T",
        "1",
        "--no-monitor",
        "--results-dir",
        results.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    common::run_pgstorm(&args)
}

fn read_doc(dir: &Path) -> RunDocument {
    serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap()
}

#[test]
fn pre_and_post_sql_run_around_each_run_on_their_own_connection() {
    let dsn = database("hyg_hooks", sandbox().user());
    // The sandbox's own connections are named like the load's: this one is closed before the run.
    let connect = || {
        sandbox()
            .pg_config()
            .dbname("hyg_hooks")
            .connect(postgres::NoTls)
            .unwrap()
    };
    connect()
        .batch_execute("CREATE TABLE hook_log (n serial, event text, load_connections bigint)")
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let log = |event: &str| {
        format!(
            "INSERT INTO hook_log (event, load_connections) SELECT '{event}', count(*) \
             FROM pg_stat_activity WHERE application_name = 'pgstorm' \
             AND datname = current_database();"
        )
    };
    let pre = tmp.path().join("pre.sql");
    let post = tmp.path().join("post.sql");
    std::fs::write(&pre, log("pre")).unwrap();
    std::fs::write(&post, log("post")).unwrap();
    let results = tmp.path().join("results");
    let (code, err) = short_load(
        &dsn,
        &results,
        &[
            "--repeat",
            "2",
            "--pre-sql",
            pre.to_str().unwrap(),
            "--post-sql",
            post.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let rows: Vec<(String, i64)> = connect()
        .query(
            "SELECT event, load_connections FROM hook_log ORDER BY n",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // Each hook ran once per run, in order, while no load connection was open.
    let expected: Vec<(String, i64)> = ["pre", "post", "pre", "post"]
        .iter()
        .map(|e| (e.to_string(), 0))
        .collect();
    assert_eq!(rows, expected);
    let dirs = result_dirs(&results);
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    for d in &dirs {
        common::assert_run_json_matches_schema(d);
        let doc = read_doc(d);
        let h = doc.hygiene.unwrap();
        let (pre_run, post_run) = (h.pre_sql.unwrap(), h.post_sql.unwrap());
        assert!(pre_run.ok && post_run.ok);
        assert_eq!(pre_run.file, pre.to_str().unwrap());
        assert_eq!(pre_run.sha256.len(), 64);
        assert_ne!(pre_run.sha256, post_run.sha256);
    }
}

#[test]
fn a_failing_pre_sql_exits_3_before_any_load_and_a_failing_post_sql_only_warns() {
    let dsn = database("hyg_fail", sandbox().user());
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.sql");
    std::fs::write(&bad, "SELECT * FROM no_such_table;").unwrap();
    let results = tmp.path().join("results");
    let run = |extra: &[&str]| short_load(&dsn, &results, extra);

    let (code, err) = run(&["--pre-sql", bad.to_str().unwrap()]);
    assert_eq!(code, 3, "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].contains("bad.sql") && errors[0].contains("no_such_table"),
        "{err}"
    );
    assert!(result_dirs(&results).is_empty(), "a result was written");
    let missing = tmp.path().join("missing.sql");
    let (code, err) = run(&["--pre-sql", missing.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing.sql"), "{err}");

    let (code, err) = run(&["--post-sql", bad.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let dirs = result_dirs(&results);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let doc = read_doc(&dirs[0]);
    assert!(doc.load.as_ref().unwrap().summary.count > 0);
    common::warning(&doc, "post_sql_failed");
    let post = doc.hygiene.unwrap().post_sql.unwrap();
    assert!(!post.ok);
    assert!(post.error.unwrap().contains("no_such_table"));
}
