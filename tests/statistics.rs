//! compare's verdicts on real runs where the truth is known: a change that must matter
//! (synchronous_commit off on a server that really flushes its WAL) is called faster and
//! significant at 3 runs per side, both from two independent sets and from an interleaved
//! `pgstorm study` of 3 pairs (positive controls), and a study of 6 pairs with nothing changed
//! between its sides passes `compare --fail-on-regression 5%` with no significant line (negative
//! control).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pgstorm::compare::{self, CompareOptions, Metric, Test, Verdict};
use pgstorm::sandbox::{Sandbox, SandboxOptions};
use pgstorm::scenarios::queries::{self, QueriesOptions};
use pgstorm::scenarios::session::TargetOptions;
use pgstorm::workload::script::ScriptSource;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A durable sandbox (fsync and synchronous_commit on, as a real server) with a table `tick`
/// larger than its small shared_buffers (a tuning study's dataset must not fit in memory):
/// every commit waits for a WAL flush to disk unless synchronous_commit is off. The flush is
/// preceded by a [`COMMIT_DELAY_US`] wait (commit_delay, for every commit: commit_siblings 0),
/// so the cost of a synchronous commit is mostly that wait and not a fsync, whose time on a VM
/// disk shared with other builds ranges over an order of magnitude from run to run.
fn durable() -> Sandbox {
    let sb = common::fresh_sandbox(&SandboxOptions {
        durable: true,
        max_connections: 20,
        settings: vec![
            ("commit_delay".into(), COMMIT_DELAY_US.to_string()),
            ("commit_siblings".into(), "0".into()),
            ("shared_buffers".into(), SHARED_BUFFERS.into()),
        ],
        ..SandboxOptions::default()
    });
    assert!(sb.is_durable());
    let mut c = sb.pg_config().connect(postgres::NoTls).unwrap();
    let fsync: String = c.query_one("SHOW fsync", &[]).unwrap().get(0);
    assert_eq!(fsync, "on");
    c.batch_execute("CREATE TABLE tick AS SELECT g::int AS n FROM generate_series(1, 20000) g")
        .unwrap();
    sb
}

/// shared_buffers of [`durable`]: the smallest PostgreSQL takes (16 pages), far below `tick`.
const SHARED_BUFFERS: &str = "128kB";

/// commit_delay of [`durable`], µs: many times a fsync on a quiet disk, so two clients commit
/// synchronously at most some 40 times a second, far below [`TICK_RATE`].
const COMMIT_DELAY_US: u32 = 50_000;

/// Rate of the [`ticks`] runs (transactions per second, open loop): far above what synchronous
/// commits allow and far below what asynchronous ones do even on a loaded host, so the
/// asynchronous side runs at this rate whatever else the host runs, and the synchronous side at
/// its commit_delay-bound pace.
const TICK_RATE: f64 = 200.0;

/// Sets synchronous_commit server-wide and waits until a new connection sees it.
fn set_synchronous_commit(sb: &Sandbox, value: &str) {
    let mut c = sb.pg_config().connect(postgres::NoTls).unwrap();
    c.batch_execute(&format!("ALTER SYSTEM SET synchronous_commit = {value}"))
        .unwrap();
    c.batch_execute("SELECT pg_reload_conf()").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut fresh = sb.pg_config().connect(postgres::NoTls).unwrap();
        let now: String = fresh
            .query_one("SHOW synchronous_commit", &[])
            .unwrap()
            .get(0);
        if now == value {
            return;
        }
        assert!(Instant::now() < deadline, "synchronous_commit stays {now}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Short runs of the POS mix on `dsn`, archived under `results`.
fn short(results: &Path, dsn: String, label: &str) -> QueriesOptions {
    let mut o = QueriesOptions {
        target: TargetOptions {
            dsn: Some(dsn),
            sandbox_max_connections: None,
            ..Default::default()
        },
        monitor: None,
        ..QueriesOptions::default()
    };
    o.archive.results_dir = results.to_path_buf();
    o.archive.label = label.into();
    o.print_summary = false;
    o.engine.clients = 2;
    o.engine.duration = Some(Duration::from_secs(2));
    o.engine.pin = false;
    o
}

/// A script of one INSERT, one commit each: its time is mostly the commit's WAL flush when
/// synchronous_commit is on, so switching it off multiplies the rate even on a loaded host.
fn tick_script(dir: &Path) -> PathBuf {
    let path = dir.join("tick.sql");
    std::fs::write(&path, "INSERT INTO tick VALUES (1);\n").unwrap();
    path
}

/// Runs of the [`tick_script`], after a warmup (connections opened, the new table's first
/// pages written), each [`TICK_SECONDS`] long: a fsync on a shared VM disk can stall for a good
/// part of a second, and a longer run averages such stalls out.
fn ticks(results: &Path, dsn: String, label: &str) -> QueriesOptions {
    let mut o = QueriesOptions {
        mix: String::new(),
        scripts: vec![ScriptSource::file(s(&tick_script(results))).unwrap()],
        ..short(results, dsn, label)
    };
    o.engine.duration = Some(Duration::from_secs(TICK_SECONDS));
    o.engine.warmup = Duration::from_secs(TICK_WARMUP);
    o.engine.rate = Some(TICK_RATE);
    o
}

/// Measured seconds of each run of [`ticks`] (also the study's `-T`).
const TICK_SECONDS: u64 = 4;
/// Warmup seconds of each run of [`ticks`] (also the study's `--warmup`).
const TICK_WARMUP: u64 = 1;

/// Runs `pgstorm study` of `pairs` pairs into `results`: side A applies `a`'s SQL file and side B
/// `b`'s (each given as label and file), every run with `load` as its arguments and no monitor.
/// Asserts that it exited 0 and returns the two sets' directories, A's first.
fn study(
    a: (&str, &Path),
    b: (&str, &Path),
    pairs: u32,
    dsn: &str,
    results: &Path,
    load: &[&str],
) -> [PathBuf; 2] {
    let side = |(label, sql): (&str, &Path)| format!("label={label},sql={}", sql.display());
    let (side_a, side_b, pairs) = (side(a), side(b), pairs.to_string());
    let mut args = vec![
        "study", "--a", &side_a, "--b", &side_b, "--pairs", &pairs, "--", "--dsn", dsn,
    ];
    args.extend_from_slice(load);
    args.extend_from_slice(&["--no-monitor", "--results-dir", s(results)]);
    let (code, err) = common::run_pgstorm(&args);
    assert_eq!(code, 0, "{err}");
    let set = |label: &str| {
        std::fs::read_dir(results)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|d| d.join("set.json").is_file() && s(d).ends_with(&format!("-{label}-set")))
            .unwrap_or_else(|| panic!("no set {label} in {results:?}"))
    };
    [set(a.0), set(b.0)]
}

/// The tps line of scope `all`.
fn tps(c: &compare::Comparison) -> &compare::MetricDelta {
    c.scopes[0]
        .metrics
        .iter()
        .find(|d| d.metric == Metric::Tps)
        .unwrap()
}

#[test]
fn synchronous_commit_off_is_significantly_faster_at_three_runs_per_side() {
    let sb = durable();
    let tmp = tempfile::tempdir().unwrap();
    let sets: Vec<PathBuf> = [("on", "sync"), ("off", "async")]
        .iter()
        .map(|(value, label)| {
            if *value == "off" {
                // An unrelated reload-only setting changed at the same time, as happens in a
                // real study: the settings diff must name it beside the change under test.
                let mut c = sb.pg_config().connect(postgres::NoTls).unwrap();
                c.batch_execute("ALTER SYSTEM SET bgwriter_delay = '50ms'")
                    .unwrap();
            }
            set_synchronous_commit(&sb, value);
            queries::run_repeated(&ticks(tmp.path(), sb.dsn(), label), 3)
                .unwrap()
                .1
                .unwrap()
        })
        .collect();

    let (a, b) = (
        compare::load_side(s(&sets[0])).unwrap(),
        compare::load_side(s(&sets[1])).unwrap(),
    );
    let c = compare::compare(&a, &b, &CompareOptions::default());
    assert!(c.pairing.is_none());
    assert!(
        c.settings_diff
            .iter()
            .any(|d| d.name == "synchronous_commit" && d.b.as_deref() == Some("off")),
        "{:?}",
        c.settings_diff
    );
    assert!(
        c.settings_diff.iter().any(|d| d.name == "bgwriter_delay"),
        "the unrelated reload-only change is named too: {:?}",
        c.settings_diff
    );
    // Every run measured a dataset larger than shared_buffers, so nothing warned that memory
    // settings cannot show an effect.
    for run in a.runs.iter().chain(&b.runs) {
        let size = run
            .data_size
            .as_ref()
            .expect("the run records its data size");
        assert!(
            size.total_bytes > size.shared_buffers_bytes,
            "{} bytes vs shared_buffers {}",
            size.total_bytes,
            size.shared_buffers_bytes
        );
        assert!(
            !run.warnings
                .iter()
                .any(|w| w.code == "dataset_fits_in_shared_buffers"),
            "{:?}",
            run.warnings
        );
    }
    // No split of 3 + 3 runs reaches 5 % (smallest p 0.1): Welch's t-test decides, and finds it.
    let d = tps(&c);
    let run_tps = |side: &compare::Side| -> Vec<f64> {
        side.runs
            .iter()
            .map(|r| r.load.as_ref().unwrap().summary.tps)
            .collect()
    };
    let why = format!("{d:?}\nA tps {:?}\nB tps {:?}", run_tps(&a), run_tps(&b));
    assert_eq!(d.test, Some(Test::Welch), "{why}");
    assert_eq!(d.verdict, Verdict::Improved, "{why}");
    assert!(d.q_value.unwrap() <= c.level, "{why}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgstorm"))
        .args(["compare", s(&sets[0]), s(&sets[1])])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("independent sets") && text.contains("Welch"),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("all") && l.contains("tps"))
        .unwrap();
    assert!(line.ends_with("faster"), "{text}");
}

#[test]
fn a_study_of_three_pairs_is_compared_pair_by_pair_and_sees_synchronous_commit() {
    let sb = durable();
    let tmp = tempfile::tempdir().unwrap();
    let script = tick_script(tmp.path());
    let results = tmp.path().join("results");
    std::fs::create_dir(&results).unwrap();
    let (on, off) = (tmp.path().join("on.sql"), tmp.path().join("off.sql"));
    std::fs::write(
        &on,
        "-- side A: every commit waits for its WAL flush\nALTER SYSTEM SET synchronous_commit = on;\n",
    )
    .unwrap();
    std::fs::write(&off, "ALTER SYSTEM SET synchronous_commit = off;").unwrap();
    let dsn = sb.dsn();
    let rate = TICK_RATE.to_string();
    let (seconds, warmup) = (TICK_SECONDS.to_string(), TICK_WARMUP.to_string());
    let [a, b] = study(
        ("sync", &on),
        ("async", &off),
        3,
        &dsn,
        &results,
        &[
            "-c",
            "2",
            "-T",
            &seconds,
            "--warmup",
            &warmup,
            "-R",
            &rate,
            "-f",
            s(&script),
        ],
    );

    // Six runs, each marked with the study, its side and its pair; two sets.
    let mut runs = Vec::new();
    let mut sets = 0;
    for e in std::fs::read_dir(&results).unwrap() {
        let dir = e.unwrap().path();
        if dir.join("run.json").is_file() {
            common::assert_run_json_matches_schema(&dir);
            runs.push(compare::load::read_run(&dir).unwrap());
        } else if dir.join("set.json").is_file() {
            sets += 1;
        }
    }
    runs.sort_by(|x, y| x.started_at.cmp(&y.started_at));
    let order: Vec<(String, u32, String)> = runs
        .iter()
        .map(|r| {
            let m = r.study.as_ref().expect("a study mark");
            let sc = &r.target.server.settings["synchronous_commit"];
            (m.side.clone(), m.pair, sc.clone())
        })
        .collect();
    // The order flips every pair (A B, B A, A B), so a steady drift does not favour B.
    let want: Vec<(String, u32, String)> = [
        ("a", 0, "on"),
        ("b", 0, "off"),
        ("b", 1, "off"),
        ("a", 1, "on"),
        ("a", 2, "on"),
        ("b", 2, "off"),
    ]
    .into_iter()
    .map(|(side, pair, sc)| (side.into(), pair, sc.into()))
    .collect();
    assert_eq!(order, want);
    assert_eq!(sets, 2, "two sets in {results:?}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgstorm"))
        .args(["compare", s(&a), s(&b), "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pairing"]["pairs"], 3, "{v}");
    let all_tps = &v["scopes"][0]["metrics"][0];
    let pairs: Vec<(String, f64)> = runs
        .iter()
        .map(|r| (r.label.clone(), r.load.as_ref().unwrap().summary.tps))
        .collect();
    let why = format!("{all_tps}\nruns in order: {pairs:?}");
    assert_eq!(all_tps["metric"], "tps");
    assert_eq!(all_tps["test"], "paired_t", "{why}");
    assert_eq!(all_tps["verdict"], "improved", "{why}");
    let text = std::process::Command::new(env!("CARGO_BIN_EXE_pgstorm"))
        .args(["compare", s(&a), s(&b)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("paired: A and B ran alternately") && text.contains("3 pairs"),
        "{text}"
    );
}

/// The negative control runs its two sides alternately, as `pgstorm study` does: two sets run one
/// after the other met different loads on a shared host (other tests of this binary run beside
/// it), and a fresh clone once saw one query type's mean latency 15 % lower in the second set,
/// a real difference between the two minutes and not a false positive of the test. Alternating,
/// drift hits both sides alike and compare tests pair by pair; the order flips every pair, so a
/// load that eases while the study runs does not make every pair's second run the faster.
///
/// Six pairs, not three: at three, compare answers with the paired t-test, whose A/A rate is the
/// level by design (`compare::calibrate` simulates 4.5 % of A/A studies with a significant line
/// at 3 pairs), so this test would fail in about one run in twenty with nothing wrong; it did
/// once in nine. At six the exact sign-flip test answers: its smallest p (1/32) survives the
/// adjustment over 49 lines only when most lines' pairs all agree in sign, as a real change or a
/// bias of the study's order makes them, and noise does not (0 of 400 simulated A/A studies).
#[test]
fn two_sides_with_nothing_changed_pass_the_gate_with_no_significant_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dsn = common::database("stat_aa");
    let results = tmp.path().join("results");
    std::fs::create_dir(&results).unwrap();
    // Both sides apply the same no-op: nothing changes between A and B.
    let noop = tmp.path().join("noop.sql");
    std::fs::write(&noop, "SELECT 1;\n").unwrap();
    let sets = study(
        ("first", &noop),
        ("second", &noop),
        6,
        &dsn,
        &results,
        &["-c", "2", "-T", "2", "--no-pin"],
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgstorm"))
        .args([
            "compare",
            s(&sets[0]),
            s(&sets[1]),
            "--fail-on-regression",
            "5%",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let c = compare::compare(
        &compare::load_side(s(&sets[0])).unwrap(),
        &compare::load_side(s(&sets[1])).unwrap(),
        &CompareOptions::default(),
    );
    assert_eq!(
        c.pairing.as_ref().map(|p| p.pairs),
        Some(6),
        "compared pair by pair\n{text}"
    );
    assert_eq!(c.lines_tested, 49, "7 metrics × (all + six query types)");
    for scope in &c.scopes {
        for d in &scope.metrics {
            assert_eq!(
                d.verdict,
                Verdict::NoSignificantChange,
                "{} {:?}: {d:?}\n{text}",
                scope.name,
                d.metric
            );
        }
    }
}
