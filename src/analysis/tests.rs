//! Positive and negative controls of the advisor's rules on synthetic snapshots: each rule fires
//! on the numbers it is about and stays quiet just on the other side of its threshold.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::json;

use super::plans::{ExplainedPlan, PlanNode};
use super::snapshot::{
    CheckpointStat, DatabaseStat, IndexStat, Scope, Snapshot, StatementsSource, TableStat,
};
use super::{analyze, AdvisorOptions};
use crate::report::findings::AnalysisSection;
use crate::report::model::RunDocument;

/// A document of a run against `dsn` (on the load machine when `local`) with `settings`, on a
/// host with 16 GiB of RAM.
fn doc(dsn: &str, source: &str, local: bool, settings: &[(&str, &str)]) -> RunDocument {
    let settings: BTreeMap<&str, &str> = settings.iter().copied().collect();
    serde_json::from_value(json!({
        "schema_version": 1,
        "pgstorm": {"version": "0", "git_commit": "x"},
        "run_id": "r", "label": "l", "scenario": "analyze", "command": [],
        "started_at": "", "finished_at": "", "interrupted": false,
        "host": {"hostname": "h", "os": "", "kernel": "", "cpu_model": "", "cpus": 2,
                 "memory_bytes": 16u64 << 30, "clocksource": "tsc"},
        "target": {"dsn": dsn, "source": source, "local": local, "server": {
            "server_version": "15", "server_version_num": 150000, "max_connections": 100,
            "reserved_connections": 3, "connections_in_use": 1, "superuser": true,
            "settings": settings}},
        "warnings": []
    }))
    .unwrap()
}

fn remote() -> RunDocument {
    doc("postgres://u@db.example:5432/d", "dsn", false, &[])
}

fn snap() -> Snapshot {
    Snapshot {
        at: Instant::now(),
        tables: BTreeMap::new(),
        indexes: BTreeMap::new(),
        database: DatabaseStat::default(),
        checkpoints: CheckpointStat::default(),
        statements: None,
        statements_source: StatementsSource::NotPreloaded,
    }
}

fn table(name: &str, live: i64) -> TableStat {
    TableStat {
        schema: "pgstorm".into(),
        name: name.into(),
        n_live_tup: live,
        last_analyze: Some(chrono::Utc::now()),
        columns: vec!["id".into(), "create_date".into(), "state".into()],
        ..TableStat::default()
    }
}

fn with_table(mut s: Snapshot, t: TableStat) -> Snapshot {
    s.tables.insert(t.qualified(), t);
    s
}

fn run(
    before: &Snapshot,
    after: &Snapshot,
    plans: &[ExplainedPlan],
    d: &RunDocument,
) -> AnalysisSection {
    analyze(
        before,
        after,
        plans,
        d,
        AdvisorOptions {
            scope: Scope::Pgstorm,
        },
        Vec::new(),
    )
}

fn codes(a: &AnalysisSection) -> Vec<&str> {
    a.findings.iter().map(|f| f.code.as_str()).collect()
}

#[test]
fn dead_tuples_over_a_fifth_are_reported_and_below_it_not() {
    let mut t = table("pos_order", 10_000);
    t.n_dead_tup = 5_000;
    let a = run(&snap(), &with_table(snap(), t.clone()), &[], &remote());
    assert_eq!(codes(&a), ["dead_tuples"]);
    assert!(a.findings[0]
        .sql
        .as_deref()
        .unwrap()
        .starts_with("VACUUM (ANALYZE) pgstorm.pos_order"));
    t.n_dead_tup = 2_000;
    let a = run(&snap(), &with_table(snap(), t), &[], &remote());
    assert!(codes(&a).is_empty(), "{:?}", codes(&a));
}

/// The dead-row finding's share of the run: `(dead_rows_made_by_run, title, made_by_run)`.
fn dead_by_run(before: &Snapshot, t: TableStat) -> (i64, String, String) {
    let a = run(before, &with_table(snap(), t), &[], &remote());
    let f = a
        .findings
        .iter()
        .find(|f| f.code == "dead_tuples")
        .unwrap_or_else(|| panic!("no dead_tuples finding in {:?}", codes(&a)));
    (
        f.evidence["dead_rows_made_by_run"].as_i64().unwrap(),
        f.title.clone(),
        f.evidence["made_by_run"].as_str().unwrap().to_string(),
    )
}

#[test]
fn dead_rows_the_runs_writes_made_are_named_and_older_ones_are_not() {
    let mut old = table("pos_order_line", 10_000);
    old.n_dead_tup = 500;
    old.n_tup_upd = 100;
    let before = with_table(snap(), old.clone());
    // Positive control: 4,000 updates and 500 deletes during the run, 4,500 more dead rows.
    let mut t = old.clone();
    t.n_dead_tup = 5_000;
    t.n_tup_upd = 4_100;
    t.n_tup_del = 500;
    let (made, title, text) = dead_by_run(&before, t);
    assert_eq!(made, 4_500);
    assert!(
        title.ends_with("4500 of them were made by this run's writes"),
        "{title}"
    );
    assert!(
        text.starts_with("4500 of the 5000 dead rows were made by this run's writes (4000 updates, 500 deletes, 0 inserts"),
        "{text}"
    );
    // Negative control: the same dead rows, all there before the run, which wrote nothing.
    let mut stale = old.clone();
    stale.n_dead_tup = 5_000;
    let before_stale = with_table(snap(), stale.clone());
    let (made, title, text) = dead_by_run(&before_stale, stale);
    assert_eq!(made, 0);
    assert!(
        title.ends_with("none of them were made by this run"),
        "{title}"
    );
    assert!(text.starts_with("0 of the 5000 dead rows"), "{text}");
}

#[test]
fn after_a_vacuum_in_the_window_the_dead_rows_left_are_the_runs_up_to_its_writes() {
    let mut old = table("pos_order", 10_000);
    old.n_dead_tup = 8_000;
    let before = with_table(snap(), old.clone());
    let mut t = old.clone();
    t.last_vacuum = Some(chrono::Utc::now());
    t.n_dead_tup = 3_000;
    // Rolled-back inserts: the counters count the attempt, and each leaves a dead row.
    t.n_tup_ins = 2_000;
    t.n_tup_upd = 1_500;
    assert_eq!(dead_by_run(&before, t.clone()).0, 3_000);
    // Fewer writes than dead rows: never more than the writes.
    t.n_tup_ins = 0;
    assert_eq!(dead_by_run(&before, t).0, 1_500);
}

#[test]
fn a_table_never_analyzed_is_reported() {
    let mut t = table("pos_order", 5_000);
    t.last_analyze = None;
    let a = run(&snap(), &with_table(snap(), t), &[], &remote());
    assert_eq!(codes(&a), ["never_analyzed"]);
}

#[test]
fn cache_hit_below_99_percent_with_real_reads_is_reported_and_a_cold_start_not() {
    let before = with_table(snap(), table("pos_order", 100));
    let mut t = table("pos_order", 100);
    t.heap_blks_read = 2_000;
    t.heap_blks_hit = 18_000;
    let a = run(&before, &with_table(snap(), t.clone()), &[], &remote());
    assert_eq!(codes(&a), ["heap_cache_hit"]);
    assert_eq!(a.findings[0].evidence["hit_ratio"], 0.9);
    t.heap_blks_read = 500;
    t.heap_blks_hit = 1_000;
    let a = run(&before, &with_table(snap(), t), &[], &remote());
    assert!(codes(&a).is_empty(), "{:?}", codes(&a));
}

#[test]
fn requested_checkpoints_are_reported_and_timed_ones_not() {
    let mut after = snap();
    after.checkpoints = CheckpointStat {
        timed: 1,
        requested: 3,
        view: "pg_stat_bgwriter",
    };
    let a = run(&snap(), &after, &[], &remote());
    assert_eq!(codes(&a), ["checkpoints_requested"]);
    after.checkpoints.requested = 0;
    let a = run(&snap(), &after, &[], &remote());
    assert!(codes(&a).is_empty());
}

fn plan(nodes: Vec<PlanNode>) -> ExplainedPlan {
    ExplainedPlan {
        query_type: "simple".into(),
        sql: "SELECT".into(),
        nodes,
        execution_ms: 10.0,
        jit_ms: None,
        error: None,
    }
}

#[test]
fn jit_taking_a_tenth_of_execution_is_reported() {
    let mut p = plan(vec![]);
    p.jit_ms = Some(5.0);
    let a = run(&snap(), &snap(), &[p.clone()], &remote());
    assert_eq!(codes(&a), ["jit_overhead"]);
    p.jit_ms = Some(0.5);
    let a = run(&snap(), &snap(), &[p], &remote());
    assert!(codes(&a).is_empty());
}

#[test]
fn misestimates_of_ten_times_on_big_nodes_are_reported_and_small_ones_not() {
    let node = |est: f64, act: f64| PlanNode {
        node_type: "Hash Join".into(),
        plan_rows: est,
        actual_rows: act,
        loops: 1.0,
        ..PlanNode::default()
    };
    let a = run(
        &snap(),
        &snap(),
        &[plan(vec![node(10.0, 5_000.0)])],
        &remote(),
    );
    assert_eq!(codes(&a), ["row_misestimate"]);
    let a = run(
        &snap(),
        &snap(),
        &[plan(vec![node(4_000.0, 5_000.0)])],
        &remote(),
    );
    assert!(codes(&a).is_empty());
    let a = run(&snap(), &snap(), &[plan(vec![node(1.0, 50.0)])], &remote());
    assert!(codes(&a).is_empty());
}

fn seq_scan(rows: f64, removed: f64) -> PlanNode {
    PlanNode {
        node_type: "Seq Scan".into(),
        relation: Some("pgstorm.pos_order".into()),
        filter: Some("(pos_order.state = 'draft'::text)".into()),
        plan_rows: rows,
        actual_rows: rows,
        loops: 1.0,
        removed_by_filter: removed,
        ..PlanNode::default()
    }
}

#[test]
fn missing_index_needs_a_selective_seq_scan_on_a_big_table_and_no_leading_index() {
    let before = with_table(snap(), table("pos_order", 50_000));
    let mut t = table("pos_order", 50_000);
    t.seq_scan = 100;
    let after = with_table(snap(), t);
    let a = run(
        &before,
        &after,
        &[plan(vec![seq_scan(10.0, 49_990.0)])],
        &remote(),
    );
    assert_eq!(codes(&a), ["missing_index"]);
    assert_eq!(
        a.findings[0].sql.as_deref(),
        Some("CREATE INDEX CONCURRENTLY pos_order_state_idx ON pgstorm.pos_order (state);")
    );
    // Not selective (40% kept): the planner is right to scan.
    let a = run(
        &before,
        &after,
        &[plan(vec![seq_scan(20_000.0, 30_000.0)])],
        &remote(),
    );
    assert!(codes(&a).is_empty(), "{:?}", codes(&a));
    // An index already leads with the column: not missing.
    let mut with_idx = after.clone();
    with_idx.indexes.insert(
        "pgstorm.pos_order_state_idx".into(),
        IndexStat {
            schema: "pgstorm".into(),
            table: "pos_order".into(),
            name: "pos_order_state_idx".into(),
            valid: true,
            idx_scan: 1,
            keys: vec![3],
            key_names: vec![Some("state".into())],
            method: "btree".into(),
            ..IndexStat::default()
        },
    );
    let mut before_idx = before.clone();
    before_idx.indexes = with_idx.indexes.clone();
    before_idx.indexes.values_mut().for_each(|i| i.idx_scan = 0);
    let a = run(
        &before_idx,
        &with_idx,
        &[plan(vec![seq_scan(10.0, 49_990.0)])],
        &remote(),
    );
    assert!(!codes(&a).contains(&"missing_index"), "{:?}", codes(&a));
    // Statistics alone (no plan) only give an info finding.
    let a = run(&before, &after, &[], &remote());
    assert_eq!(codes(&a), ["seq_scan_heavy"]);
}

#[test]
fn settings_are_compared_with_ram_only_for_a_local_server() {
    let settings = [
        ("shared_buffers", "128MB"),
        ("effective_cache_size", "4GB"),
        ("work_mem", "4MB"),
        ("random_page_cost", "4"),
    ];
    let local = doc("postgres://u@127.0.0.1:5432/d", "dsn", true, &settings);
    let a = run(&snap(), &snap(), &[], &local);
    let c = codes(&a);
    assert!(c.contains(&"shared_buffers_vs_ram"), "{c:?}");
    assert!(c.contains(&"effective_cache_size_vs_ram"), "{c:?}");
    assert!(!c.contains(&"work_mem_vs_ram"), "{c:?}");
    let far = doc("postgres://u@db.example:5432/d", "dsn", false, &settings);
    let a = run(&snap(), &snap(), &[], &far);
    assert!(codes(&a).is_empty(), "{:?}", codes(&a));
    assert!(a
        .notes
        .iter()
        .any(|n| n.contains("not on the load machine")));
    // Sized to the host, nothing to say.
    let tuned = doc(
        "postgres://u@localhost/d",
        "dsn",
        true,
        &[
            ("shared_buffers", "4GB"),
            ("effective_cache_size", "12GB"),
            ("work_mem", "64MB"),
        ],
    );
    let a = run(&snap(), &snap(), &[], &tuned);
    assert!(
        !codes(&a).iter().any(|c| c.ends_with("_vs_ram")),
        "{:?}",
        codes(&a)
    );
}

/// Regression: the advisor used to re-parse the displayed DSN, and a multi-host or IPv6 one that
/// did not parse as a URL read as a local server, so the load machine's RAM and disks were judged
/// as the server's. Locality now comes from the driver's hosts (`Target::is_local`).
#[test]
fn a_multi_host_target_with_a_remote_host_gets_no_local_hardware_findings() {
    let settings = [("shared_buffers", "128MB"), ("random_page_cost", "4")];
    let d = doc(
        "postgres://u@[::1]:5432,db.example:5432/d",
        "dsn",
        false,
        &settings,
    );
    let a = run(&snap(), &snap(), &[], &d);
    assert!(codes(&a).is_empty(), "{:?}", codes(&a));
    assert!(a
        .notes
        .iter()
        .any(|n| n.contains("not on the load machine")));
}

#[test]
fn work_mem_times_max_connections_over_ram_is_reported() {
    let d = doc(
        "postgres://u@localhost/d",
        "dsn",
        true,
        &[
            ("shared_buffers", "4GB"),
            ("effective_cache_size", "12GB"),
            ("work_mem", "256MB"),
        ],
    );
    let a = run(&snap(), &snap(), &[], &d);
    assert!(codes(&a).contains(&"work_mem_vs_ram"), "{:?}", codes(&a));
}

#[test]
fn random_page_cost_is_questioned_only_on_solid_state_disks() {
    let d = doc(
        "postgres://u@localhost/d",
        "dsn",
        true,
        &[("random_page_cost", "4")],
    );
    let (before, after) = (snap(), snap());
    let inputs = |ssd| super::Inputs {
        before: &before,
        after: &after,
        plans: &[],
        doc: &d,
        server_local: true,
        ssd,
        scope_name: "schema pgstorm",
    };
    let found = |ssd| {
        let mut notes = Vec::new();
        super::server::findings(&inputs(ssd), &mut notes)
            .iter()
            .any(|f| f.code == "random_page_cost_ssd")
    };
    assert!(found(Some(true)));
    assert!(!found(Some(false)));
    assert!(!found(None));
}

#[test]
fn a_group_by_expression_misestimate_suggests_expression_statistics() {
    let agg = PlanNode {
        node_type: "Aggregate".into(),
        plan_rows: 5_000.0,
        actual_rows: 7.0,
        loops: 1.0,
        group_key: vec!["(date_trunc('day'::text, pos_order.create_date))".into()],
        ..PlanNode::default()
    };
    let scan = PlanNode {
        depth: 1,
        node_type: "Seq Scan".into(),
        relation: Some("pgstorm.pos_order".into()),
        plan_rows: 5_000.0,
        actual_rows: 4_700.0,
        loops: 1.0,
        ..PlanNode::default()
    };
    let d = doc("postgres://u@db.example/d", "dsn", false, &[]);
    let a = run(&snap(), &snap(), &[plan(vec![agg, scan])], &d);
    assert_eq!(codes(&a), ["row_misestimate"]);
    assert_eq!(
        a.findings[0].sql.as_deref(),
        Some(
            "CREATE STATISTICS IF NOT EXISTS pos_order_group_stats ON ((date_trunc('day'::text, \
             create_date))) FROM pgstorm.pos_order;\nANALYZE pgstorm.pos_order;"
        )
    );
}

#[test]
fn updates_that_are_rarely_hot_are_reported() {
    let before = with_table(snap(), table("pos_order_line", 3_000));
    let mut t = table("pos_order_line", 3_000);
    t.n_tup_upd = 5_000;
    t.n_tup_hot_upd = 500;
    let a = run(&before, &with_table(snap(), t.clone()), &[], &remote());
    assert_eq!(codes(&a), ["low_hot_updates"]);
    t.n_tup_hot_upd = 4_000;
    let a = run(&before, &with_table(snap(), t), &[], &remote());
    assert!(codes(&a).is_empty(), "{:?}", codes(&a));
}

/// Adds a monitoring section whose load window saw `cpu_p95`% host CPU and, when the server is
/// local, `pg_cpu`% for the PostgreSQL processes.
fn with_monitoring(mut d: RunDocument, cpu_p95: f64, pg_cpu: Option<f64>) -> RunDocument {
    d.monitoring = Some(
        serde_json::from_value(json!({
            "started_at": "", "interval_s": 1.0, "capacity": 10, "load_window": null,
            "thresholds": {"cpu_percent": 90.0, "memory_percent": 95.0, "client_cpu_percent": 90.0},
            "under_load": {"samples": 10, "cpu_mean_percent": cpu_p95, "cpu_p95_percent": cpu_p95,
                "cpu_peak_percent": cpu_p95, "memory_p95_percent": 40.0,
                "memory_peak_percent": 41.0, "client_cpu_mean_percent": 10.0,
                "server_cpu_mean_percent": pg_cpu, "swap_pages": 0},
            "host": null, "server": null, "alerts": [], "errors": []
        }))
        .unwrap(),
    );
    d
}

#[test]
fn criteria_of_absent_sections_are_not_evaluated_and_never_pass() {
    use super::criteria::{evaluate, Thresholds};
    use crate::report::findings::CriterionStatus;
    let c = evaluate(&remote(), &Thresholds::default());
    assert!(c
        .criteria
        .iter()
        .all(|r| r.status == CriterionStatus::NotEvaluated && r.measured.is_none()));
    assert_ne!(c.verdict, CriterionStatus::Pass);
}

#[test]
fn stability_criteria_judge_a_local_server_and_skip_a_remote_one() {
    use super::criteria::{evaluate, Thresholds};
    use crate::report::findings::CriterionStatus;
    let status = |d: &RunDocument, id: &str| {
        evaluate(d, &Thresholds::default())
            .criteria
            .into_iter()
            .find(|r| r.id == id)
            .unwrap()
            .status
    };
    let local = doc("postgres://u@127.0.0.1:5432/d", "sandbox", true, &[]);
    // The whole host is saturated by client + server, the server itself is below the target.
    let calm = with_monitoring(local.clone(), 99.0, Some(55.0));
    assert_eq!(status(&calm, "server_cpu_pct"), CriterionStatus::Pass);
    assert_eq!(status(&calm, "server_memory_pct"), CriterionStatus::Pass);
    let hot = with_monitoring(local, 99.0, Some(95.0));
    assert_eq!(status(&hot, "server_cpu_pct"), CriterionStatus::Fail);
    let far = with_monitoring(remote(), 99.0, None);
    assert_eq!(
        status(&far, "server_cpu_pct"),
        CriterionStatus::NotEvaluated
    );
    assert_eq!(
        status(&far, "server_memory_pct"),
        CriterionStatus::NotEvaluated
    );
}

/// `far` with the server host's node_exporter figures: `samples` under load at `cpu`% busy.
fn with_agent(mut far: RunDocument, samples: usize, cpu: f64) -> RunDocument {
    use crate::monitor::model::{ServerHostSeries, ServerHostSummary, Stat};
    let at = |v: f64| Stat {
        mean: v,
        p95: v,
        peak: v,
    };
    far.monitoring.as_mut().unwrap().server_host = Some(ServerHostSeries {
        source: "http://db.example:9100/metrics".into(),
        cpus: 4,
        memory_bytes: 1 << 33,
        taken: samples as u64,
        dropped: 0,
        scrapes: samples as u64 + 3,
        failed: 3,
        cost_us_mean: 1.0,
        cost_us_max: 1.0,
        cpu_us_mean: 1.0,
        summary: ServerHostSummary {
            samples,
            cpu_percent: at(cpu),
            memory_percent: at(50.0),
            ..ServerHostSummary::default()
        },
        samples: Vec::new(),
    });
    far
}

#[test]
fn stability_criteria_judge_a_remote_server_from_its_node_exporter() {
    use super::criteria::{evaluate, Thresholds};
    use crate::report::findings::CriterionStatus;
    let judged = |d: &RunDocument, id: &str| {
        evaluate(d, &Thresholds::default())
            .criteria
            .into_iter()
            .find(|r| r.id == id)
            .unwrap()
    };
    let far = with_monitoring(remote(), 20.0, None);
    let busy = with_agent(far.clone(), 10, 95.0);
    let cpu = judged(&busy, "server_cpu_pct");
    assert_eq!(
        (cpu.status, cpu.measured),
        (CriterionStatus::Fail, Some(95.0))
    );
    assert!(
        cpu.detail.contains("http://db.example:9100/metrics"),
        "{}",
        cpu.detail
    );
    assert_eq!(
        judged(&busy, "server_memory_pct").status,
        CriterionStatus::Pass
    );
    let calm = with_agent(far.clone(), 10, 30.0);
    assert_eq!(
        judged(&calm, "server_cpu_pct").status,
        CriterionStatus::Pass
    );
    // Asked for, but no scrape answered under load: not evaluated, saying so.
    let silent = judged(&with_agent(far, 0, 0.0), "server_cpu_pct");
    assert_eq!(silent.status, CriterionStatus::NotEvaluated);
    assert!(
        silent
            .detail
            .contains("gave no sample under load (3 of 3 scrapes failed)"),
        "{}",
        silent.detail
    );
}
