//! The advisor and the success criteria against a real sandbox PostgreSQL: each detector's
//! positive control (the thing really happens and is reported, with its evidence) and negative
//! control (a healthy dataset reports nothing), and the exit code of `pgstorm run` against its
//! criteria. Every test uses its own database so per-database statistics do not mix.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use pgstorm::analysis::{self, AdvisorOptions};
use pgstorm::report::findings::{CriterionStatus, Finding};
use pgstorm::report::model::RunDocument;
use pgstorm::scenarios::analyze::{self, AnalyzeOptions};
use pgstorm::scenarios::queries::QueriesOptions;
use pgstorm::scenarios::session::{Session, TargetOptions};

/// A short load on database `db` with the advisor around it.
fn options(results: &Path, db: &str, mix: &str) -> AnalyzeOptions {
    let mut q = QueriesOptions {
        target: TargetOptions {
            dsn: Some(common::database(db)),
            sandbox_max_connections: None,
            ..Default::default()
        },
        mix: mix.into(),
        print_summary: false,
        ..QueriesOptions::default()
    };
    q.archive.results_dir = results.to_path_buf();
    q.archive.label = db.into();
    q.engine.clients = 2;
    q.engine.duration = Some(Duration::from_secs(2));
    q.engine.pin = false;
    AnalyzeOptions {
        queries: q,
        advisor: AdvisorOptions::default(),
        criteria: None,
    }
}

/// Seeds `db` at `scale` (large enough for the missing-index rule's 10,000-row floor at 20).
fn seed(db: &str, scale: u32) {
    let mut c = common::client_of(db);
    pgstorm::dataset::seed(
        &mut c,
        &pgstorm::dataset::SeedOptions {
            scale,
            seed: 1,
            progress: false,
            ..Default::default()
        },
    )
    .unwrap();
}

fn findings<'a>(doc: &'a RunDocument, code: &str) -> Vec<&'a Finding> {
    doc.analysis
        .as_ref()
        .expect("analysis section")
        .findings
        .iter()
        .filter(|f| f.code == code)
        .collect()
}

fn codes(doc: &RunDocument) -> Vec<String> {
    doc.analysis
        .as_ref()
        .unwrap()
        .findings
        .iter()
        .map(|f| format!("{} {}", f.code, f.object))
        .collect()
}

#[test]
fn dropped_create_date_index_is_recommended_with_plan_evidence() {
    let db = "an_missing";
    seed(db, 20);
    common::client_of(db)
        .batch_execute("DROP INDEX pgstorm.pos_order_create_date_idx")
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = analyze::run(&options(tmp.path(), db, "simple=4,aggregation=1")).unwrap();
    let missing = findings(&out.doc, "missing_index");
    assert_eq!(missing.len(), 1, "{:?}", codes(&out.doc));
    let f = missing[0];
    assert_eq!(f.object, "pgstorm.pos_order");
    let sql = f.sql.as_deref().unwrap();
    assert!(
        sql.starts_with("CREATE INDEX CONCURRENTLY")
            && sql.contains("pgstorm.pos_order (create_date)"),
        "{sql}"
    );
    let plan = f.plan.as_deref().unwrap();
    assert!(plan.starts_with("Seq Scan on pgstorm.pos_order"), "{plan}");
    assert!(plan.contains("create_date"), "{plan}");
    assert_eq!(f.evidence["query_type"], "simple");
    assert!(f.evidence["seq_scan_during_run"].as_i64().unwrap() > 0);
    assert!(f.evidence["plan_rows_scanned"].as_f64().unwrap() >= 10_000.0);
    assert!(f.threshold.contains("5%") && f.source.contains("PgHero"));

    // The archived run.json carries the same finding.
    let doc: RunDocument =
        serde_json::from_slice(&std::fs::read(out.dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(findings(&doc, "missing_index").len(), 1);
}

#[test]
fn healthy_dataset_gets_no_missing_unused_duplicate_or_spill_finding() {
    let db = "an_healthy";
    seed(db, 20);
    let tmp = tempfile::tempdir().unwrap();
    let out = analyze::run(&options(
        tmp.path(),
        db,
        pgstorm::workload::builtin::DEFAULT_MIX,
    ))
    .unwrap();
    let a = out.doc.analysis.as_ref().unwrap();
    for code in [
        "missing_index",
        "seq_scan_heavy",
        "duplicate_index",
        "invalid_index",
        "plan_spill",
        "temp_spill",
        "temp_files",
        "dead_tuples",
        "never_analyzed",
    ] {
        assert!(
            findings(&out.doc, code).is_empty(),
            "false {code}: {:?}",
            codes(&out.doc)
        );
    }
    // Every index of the default mix is used by it.
    let unused: Vec<_> = findings(&out.doc, "unused_index")
        .iter()
        .map(|f| f.object.clone())
        .collect();
    assert!(unused.is_empty(), "{unused:?}");
    // Plans of every statement of the mix were taken (transaction has two).
    assert_eq!(a.plans.len(), 7, "{:?}", a.notes);
    assert!(a.plans.iter().all(|p| p.error.is_none()));
    assert_eq!(a.scope, "schema pgstorm");
}

#[test]
fn duplicate_invalid_and_unused_indexes_are_named() {
    let db = "an_indexes";
    let mut c = common::client_of(db);
    let mut say = |_: &str| {};
    pgstorm::dataset::ensure(&mut c, false, &mut say).unwrap();
    c.batch_execute(
        "CREATE INDEX pos_order_create_date_copy_idx ON pgstorm.pos_order (create_date);
         CREATE INDEX pos_order_state_idx ON pgstorm.pos_order (state);",
    )
    .unwrap();
    // A unique index over duplicate values fails and, built concurrently, stays behind invalid.
    assert!(c
        .batch_execute(
            "CREATE UNIQUE INDEX CONCURRENTLY pos_order_state_uniq ON pgstorm.pos_order (state)"
        )
        .is_err());
    // An index outside schema pgstorm is out of scope by default.
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS public.other (a int); \
         CREATE INDEX IF NOT EXISTS other_a_idx ON public.other (a)",
    )
    .unwrap();
    drop(c);
    let tmp = tempfile::tempdir().unwrap();
    let out = analyze::run(&options(tmp.path(), db, "simple=1,point=1")).unwrap();

    let dup = findings(&out.doc, "duplicate_index");
    assert_eq!(dup.len(), 1, "{:?}", codes(&out.doc));
    assert_eq!(dup[0].object, "pgstorm.pos_order_create_date_copy_idx");
    assert!(
        dup[0].title.contains("pgstorm.pos_order_create_date_idx"),
        "{}",
        dup[0].title
    );
    assert_eq!(
        dup[0].sql.as_deref(),
        Some("DROP INDEX CONCURRENTLY pgstorm.pos_order_create_date_copy_idx;")
    );

    let invalid = findings(&out.doc, "invalid_index");
    assert_eq!(invalid.len(), 1, "{:?}", codes(&out.doc));
    assert_eq!(invalid[0].object, "pgstorm.pos_order_state_uniq");

    let unused: Vec<&str> = findings(&out.doc, "unused_index")
        .iter()
        .map(|f| f.object.as_str())
        .collect();
    assert!(
        unused.contains(&"pgstorm.pos_order_state_idx"),
        "{unused:?}"
    );
    let state = findings(&out.doc, "unused_index")
        .into_iter()
        .find(|f| f.object == "pgstorm.pos_order_state_idx")
        .unwrap();
    assert!(state.evidence["size_bytes"].as_i64().unwrap() > 0);
    assert_eq!(state.evidence["idx_scan_during_run"], 0);
    // Keys, unique indexes and indexes the load used are never "unused"; other schemas are out
    // of scope.
    for never in [
        "pgstorm.pos_order_pkey",
        "pgstorm.pos_order_state_uniq",
        "public.other_a_idx",
    ] {
        assert!(
            !unused.contains(&never),
            "{never} reported unused: {unused:?}"
        );
    }
    assert!(out
        .doc
        .analysis
        .as_ref()
        .unwrap()
        .indexes
        .iter()
        .all(|i| i.index.starts_with("pgstorm.")));

    // --all-schemas widens the scope to other schemas' indexes.
    let mut session = Session::open(&TargetOptions {
        dsn: Some(common::database(db)),
        sandbox_max_connections: None,
        ..Default::default()
    })
    .unwrap();
    let all = AdvisorOptions {
        scope: pgstorm::analysis::snapshot::Scope::AllSchemas,
    };
    let before = analysis::begin(&mut session.admin, all).unwrap();
    let doc = RunDocument {
        load: None,
        ..out.doc.clone()
    };
    let a = analysis::finish(&mut session.admin, before, &doc).unwrap();
    assert_eq!(a.scope, "all schemas");
    assert!(
        a.findings
            .iter()
            .any(|f| f.code == "unused_index" && f.object == "public.other_a_idx"),
        "{:?}",
        a.findings.iter().map(|f| &f.object).collect::<Vec<_>>()
    );
}

#[test]
fn a_sort_past_work_mem_is_reported_as_a_spill() {
    let db = "an_spill";
    let mut c = common::client_of(db);
    c.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .unwrap();
    let mut say = |_: &str| {};
    pgstorm::dataset::ensure(&mut c, false, &mut say).unwrap();
    drop(c);
    // ~3,000 order lines sorted in 64 kB of work_mem: an external merge sort.
    let doc = analyze_window(
        db,
        "SET work_mem = '64kB'; SELECT * FROM pgstorm.pos_order_line ORDER BY price_subtotal, id",
    );
    let tf = findings(&doc, "temp_files");
    assert_eq!(tf.len(), 1, "{:?}", codes(&doc));
    assert!(tf[0].evidence["temp_bytes_during_run"].as_i64().unwrap() > 64 * 1024);
    let spill = findings(&doc, "temp_spill");
    assert_eq!(spill.len(), 1, "{:?}", codes(&doc));
    assert!(
        spill[0].title.contains("ORDER BY price_subtotal"),
        "{}",
        spill[0].title
    );
    assert!(spill[0].evidence["temp_blks_written"].as_i64().unwrap() > 0);
    assert!(spill[0].sql.as_deref().unwrap().contains("work_mem"));
    assert_eq!(doc.analysis.as_ref().unwrap().pg_stat_statements, "used");

    // Without a load section no criterion can be measured: not evaluated, never pass.
    let c = pgstorm::analysis::criteria::evaluate(
        &doc,
        &pgstorm::analysis::criteria::Thresholds::default(),
    );
    assert_eq!(c.verdict, CriterionStatus::NotEvaluated);
    assert!(c
        .criteria
        .iter()
        .all(|r| r.status == CriterionStatus::NotEvaluated && r.measured.is_none()));
}

/// The `verdict` cell of `run_id`'s line in `results/index.csv`.
fn index_verdict(results: &Path, run_id: &str) -> String {
    let mut r = csv::Reader::from_path(results.join("index.csv")).unwrap();
    let col = r
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "verdict")
        .unwrap();
    let rows: Vec<csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
    let row = rows
        .iter()
        .find(|r| &r[0] == run_id)
        .unwrap_or_else(|| panic!("no index line for {run_id}: {rows:?}"));
    row[col].to_string()
}

fn pgstorm_run(db: &str, results: &Path, extra: &[&str]) -> (i32, String, RunDocument) {
    pgstorm_run_with_stdout(db, results, extra).0
}

/// [`pgstorm_run`], and what the binary printed on stdout.
fn pgstorm_run_with_stdout(
    db: &str,
    results: &Path,
    extra: &[&str],
) -> ((i32, String, RunDocument), String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pgstorm"))
        .args(["run", "--dsn", &common::database(db), "--results-dir"])
        .arg(results)
        .args([
            "-c",
            "2",
            "-T",
            "2",
            "--warmup",
            "0",
            "--mix",
            "point=3,simple=1",
        ])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let dir = std::fs::read_dir(results)
        .unwrap()
        .flatten()
        // The query load's folder, not the connection scenario's (`<label>-connections`).
        .find(|e| {
            e.path().join("run.json").is_file()
                && !e.file_name().to_string_lossy().ends_with("-connections")
        })
        .unwrap_or_else(|| panic!("no result folder; stderr: {stderr}"))
        .path();
    let text = std::fs::read(dir.join("run.json")).unwrap();
    // The analysis and criteria sections match the checked-in schema.
    common::assert_run_json_matches_schema(&dir);
    let doc = serde_json::from_slice(&text).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    ((out.status.code().unwrap_or(-1), stderr, doc), stdout)
}

#[test]
fn run_exits_1_naming_the_criterion_that_must_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, stderr, doc) = pgstorm_run(
        "an_crit_fail",
        tmp.path(),
        &["--criterion", "mean_latency_ms=0.001"],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("success criterion failed: mean_latency_ms"),
        "{stderr}"
    );
    let c = doc.criteria.as_ref().unwrap();
    assert_eq!(c.verdict, CriterionStatus::Fail);
    assert_eq!(index_verdict(tmp.path(), &doc.run_id), "fail");
    let get = |id: &str| c.criteria.iter().find(|r| r.id == id).unwrap();
    assert_eq!(get("mean_latency_ms").status, CriterionStatus::Fail);
    assert_eq!(get("mean_latency_ms").threshold, 0.001);
    assert!(get("mean_latency_ms").measured.unwrap() > 0.001);
    assert!(doc.analysis.is_some());
}

#[test]
fn run_exits_0_when_criteria_pass_and_evaluates_every_scenario_it_ran() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("criteria.json");
    // Generous enough for a shared, noisy CI machine: this is the passing control.
    std::fs::write(
        &file,
        r#"{"mean_latency_ms": 1000, "within_timeout_pct": 50}"#,
    )
    .unwrap();
    let results = tmp.path().join("results");
    let ((code, stderr, doc), stdout) = pgstorm_run_with_stdout(
        "an_crit_pass",
        &results,
        &[
            "--criteria",
            file.to_str().unwrap(),
            "--output-format",
            "json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let c = doc.criteria.as_ref().unwrap();
    assert_eq!(c.verdict, CriterionStatus::Pass);
    assert_eq!(index_verdict(&results, &doc.run_id), "pass");
    // With json output stdout is the suite's document alone, not its connection scenario's.
    let printed: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not one document ({e}): {stdout}"));
    assert_eq!(printed["run_id"], doc.run_id.as_str());
    assert!(
        stderr.contains("tps"),
        "the summary went to stderr: {stderr}"
    );
    assert!(c.source.contains("criteria.json"), "{}", c.source);
    // The suite runs every scenario (connections first, then the load with monitoring, the
    // isolation checks and the advisor) against a local server, so every criterion has a value;
    // absent sections staying not_evaluated is covered by the criteria unit tests.
    for r in &c.criteria {
        assert_eq!(r.status, CriterionStatus::Pass, "{r:?}");
        assert!(r.measured.is_some(), "{r:?}");
    }
    let within = c
        .criteria
        .iter()
        .find(|r| r.id == "within_timeout_pct")
        .unwrap();
    assert_eq!(within.measured, Some(100.0));

    // Regression: the run seeded the dataset on the advisor's own connection, whose insert counts
    // used to be flushed after the "before" snapshot and so counted as load. The workload never
    // inserts order lines.
    let lines = doc
        .analysis
        .as_ref()
        .unwrap()
        .tables
        .iter()
        .find(|t| t.table == "pgstorm.pos_order_line")
        .unwrap();
    assert_eq!(lines.inserted, 0, "{lines:?}");
}

#[test]
fn workload_sorting_past_work_mem_shows_the_spill_in_its_plan() {
    let db = "an_plan_spill";
    seed(db, 20);
    // A week of orders (~4,700 rows, ~450 kB to sort) against 64 kB of work_mem.
    common::client_of(db)
        .batch_execute(&format!("ALTER DATABASE {db} SET work_mem = '64kB'"))
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = analyze::run(&options(tmp.path(), db, "aggregation=1")).unwrap();
    let spill = findings(&out.doc, "plan_spill");
    assert_eq!(spill.len(), 1, "{:?}", codes(&out.doc));
    assert_eq!(spill[0].object, "query type aggregation");
    assert!(
        spill[0].plan.as_deref().unwrap().contains("Disk")
            || spill[0].evidence["hash_batches"].as_i64().unwrap() > 1
    );
    assert!(spill[0].evidence["temp_written_blocks"].as_i64().unwrap() > 0);
    // The workers' own executions spilled too: the database's temp-file counter moved.
    let tf = findings(&out.doc, "temp_files");
    assert_eq!(tf.len(), 1, "{:?}", codes(&out.doc));
    assert_eq!(tf[0].evidence["work_mem"], "64kB");
}

/// Waits (bounded) until backend `pid` has exited, and so flushed its statistics.
fn wait_gone(admin: &mut postgres::Client, pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                &[&pid],
            )
            .unwrap()
            .get::<_, i64>(0)
            > 0
    {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `work` on its own connection to `db` between the advisor's two snapshots, and waits for
/// that backend's statistics to be flushed (it flushes them when it exits).
fn analyze_window(db: &str, work: &str) -> RunDocument {
    let mut session = Session::open(&TargetOptions {
        dsn: Some(common::database(db)),
        sandbox_max_connections: None,
        ..Default::default()
    })
    .unwrap();
    let before = analysis::begin(&mut session.admin, AdvisorOptions::default()).unwrap();
    let mut worker = common::client_of(db);
    let pid: i32 = worker
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    worker.batch_execute(work).unwrap();
    drop(worker);
    wait_gone(&mut session.admin, pid);
    let doc = session.document(
        "analyze",
        db,
        &[],
        chrono::Utc::now(),
        pgstorm::monitor::host::host_info(),
    );
    let a = analysis::finish(&mut session.admin, before, &doc).unwrap();
    RunDocument {
        analysis: Some(a),
        ..doc
    }
}

#[test]
fn dead_rows_and_a_requested_checkpoint_in_the_window_are_reported() {
    let db = "an_window";
    let mut c = common::client_of(db);
    let mut say = |_: &str| {};
    pgstorm::dataset::ensure(&mut c, false, &mut say).unwrap();
    // Autovacuum must not clean up before the advisor looks.
    c.batch_execute("ALTER TABLE pgstorm.pos_order_line SET (autovacuum_enabled = off)")
        .unwrap();
    drop(c);
    let doc = analyze_window(
        db,
        "DELETE FROM pgstorm.pos_order_line WHERE id % 2 = 0; CHECKPOINT",
    );
    let dead = findings(&doc, "dead_tuples");
    assert_eq!(dead.len(), 1, "{:?}", codes(&doc));
    assert_eq!(dead[0].object, "pgstorm.pos_order_line");
    assert!(dead[0].evidence["dead_ratio"].as_f64().unwrap() > 0.2);
    // The window's own DELETE made every one of them.
    assert_eq!(
        dead[0].evidence["dead_rows_made_by_run"],
        dead[0].evidence["dead_rows"]
    );
    let cp = findings(&doc, "checkpoints_requested");
    assert_eq!(cp.len(), 1, "{:?}", codes(&doc));
    assert!(cp[0].evidence["checkpoints_requested"].as_i64().unwrap() >= 1);
}

/// Seeds `db` at scale 1 with autovacuum off for the order tables, so the dead rows stay until
/// the advisor looks.
fn seed_without_autovacuum(db: &str) -> postgres::Client {
    let mut c = common::client_of(db);
    let mut say = |_: &str| {};
    pgstorm::dataset::ensure(&mut c, false, &mut say).unwrap();
    c.batch_execute(
        "ALTER TABLE pgstorm.pos_order SET (autovacuum_enabled = off); \
         ALTER TABLE pgstorm.pos_order_line SET (autovacuum_enabled = off)",
    )
    .unwrap();
    c
}

#[test]
fn dead_rows_made_by_a_write_heavy_run_are_attributed_to_its_writes() {
    let db = "an_dead_by_run";
    drop(seed_without_autovacuum(db));
    let tmp = tempfile::tempdir().unwrap();
    // `transaction` inserts an order and updates another order's lines, then rolls back: every
    // row it touches is left dead.
    let mut o = options(tmp.path(), db, "transaction=1");
    o.queries.engine.duration = Some(Duration::from_secs(3));
    let out = analyze::run(&o).unwrap();
    let dead = findings(&out.doc, "dead_tuples");
    assert!(!dead.is_empty(), "{:?}", codes(&out.doc));
    for f in dead {
        let made = f.evidence["dead_rows_made_by_run"].as_i64().unwrap();
        let all = f.evidence["dead_rows"].as_i64().unwrap();
        assert!(made > 0 && made <= all, "{f:?}");
        assert!(
            made <= f.evidence["writes_during_run"].as_i64().unwrap(),
            "{f:?}"
        );
        assert!(
            f.title.ends_with("were made by this run's writes"),
            "{}",
            f.title
        );
        let text = f.evidence["made_by_run"].as_str().unwrap();
        eprintln!("{}: {text}", f.title);
        assert!(
            text.starts_with(&format!(
                "{made} of the {all} dead rows were made by this run's writes"
            )),
            "{text}"
        );
    }
}

#[test]
fn dead_rows_made_before_the_run_are_not_attributed_to_it() {
    let db = "an_dead_before";
    let mut c = seed_without_autovacuum(db);
    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    c.batch_execute("DELETE FROM pgstorm.pos_order_line WHERE id % 2 = 0")
        .unwrap();
    drop(c);
    // Flushed before the advisor's first snapshot: these dead rows predate the run.
    wait_gone(&mut common::client_of(db), pid);
    let tmp = tempfile::tempdir().unwrap();
    // --no-vacuum: the run's hygiene would otherwise vacuum them away before the load.
    let mut o = options(tmp.path(), db, "point=1");
    o.queries.hygiene.vacuum = false;
    let out = analyze::run(&o).unwrap();
    let dead = findings(&out.doc, "dead_tuples");
    assert_eq!(dead.len(), 1, "{:?}", codes(&out.doc));
    let f = dead[0];
    assert_eq!(f.object, "pgstorm.pos_order_line");
    assert_eq!(f.evidence["dead_rows_made_by_run"], 0, "{f:?}");
    assert_eq!(
        f.evidence["dead_rows_before_run"], f.evidence["dead_rows"],
        "{f:?}"
    );
    assert!(
        f.title.ends_with("none of them were made by this run"),
        "{}",
        f.title
    );
}

#[test]
fn a_working_set_larger_than_shared_buffers_lowers_the_cache_hit_ratio() {
    // Its own cluster: shared_buffers is server-wide and needs a restart.
    let sb = common::fresh_sandbox(&pgstorm::sandbox::SandboxOptions {
        max_connections: 20,
        settings: vec![("shared_buffers".into(), "256kB".into())],
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    // The join reads ~15 blocks per execution, far more than 32 buffers keep (a 3 s run read
    // ~31,000 blocks against the rule's floor of 1,000).
    let mut o = options(tmp.path(), "an_cache", "join=1");
    o.queries.target.dsn = Some(sb.dsn());
    let out = analyze::run(&o).unwrap();
    let hit = findings(&out.doc, "heap_cache_hit");
    assert_eq!(hit.len(), 1, "{:?}", codes(&out.doc));
    assert!(hit[0].evidence["hit_ratio"].as_f64().unwrap() < 0.99);
    assert!(hit[0].evidence["blocks_read"].as_i64().unwrap() >= 1000);
    assert_eq!(hit[0].evidence["shared_buffers"], "256kB");
}
