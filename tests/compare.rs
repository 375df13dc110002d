//! Compare, merge and report.html against real short runs on the test sandbox: a run compared
//! with itself shows no change (negative control), a deliberately slowed server shows as slower
//! and trips `--fail-on-regression` (positive control), the settings diff names the changed
//! setting, a merge adds histograms exactly (also through scripts/collect-merge.sh, which takes each
//! load machine's newest run), and report.html renders in headless Chromium.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pgstorm::compare::{self, Basis, CompareOptions, Metric, Verdict};
use pgstorm::hist;
use pgstorm::report::model::RunDocument;
use pgstorm::scenarios::queries::{self, QueriesOptions};
use pgstorm::scenarios::session::TargetOptions;

/// A short closed-loop load on the test's own database `db`.
fn options(results: &Path, db: &str) -> QueriesOptions {
    let mut o = QueriesOptions {
        target: TargetOptions {
            dsn: Some(common::database(db)),
            sandbox_max_connections: None,
            ..Default::default()
        },
        ..QueriesOptions::default()
    };
    o.archive.results_dir = results.to_path_buf();
    o.archive.label = db.into();
    o.print_summary = false;
    o.engine.clients = 2;
    o.engine.duration = Some(Duration::from_secs(2));
    o.engine.pin = false;
    o
}

fn pgstorm(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pgstorm"))
        .args(args)
        .output()
        .expect("run the pgstorm binary")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_run_compared_with_itself_shows_no_significant_change() {
    let tmp = tempfile::tempdir().unwrap();
    let (runs, set) = queries::run_repeated(&options(tmp.path(), "cmp_self"), 2).unwrap();
    let set = set.expect("two runs make a set");
    assert_eq!(runs.len(), 2);

    // A set against itself: the runs are samples, and nothing changed.
    let side = compare::load_side(s(&set)).unwrap();
    assert_eq!(side.runs.len(), 2);
    let c = compare::compare(&side, &side, &CompareOptions::default());
    assert!(c.assessed);
    assert!(c.settings_diff.is_empty());
    // Negative control of the fairness warnings: same server, host, dataset and load.
    assert!(
        !c.warnings.iter().any(|w| w.contains("differs")),
        "{:?}",
        c.warnings
    );
    assert_eq!(c.scopes[0].name, "all");
    assert_eq!(c.scopes.len(), 7, "all + six query types");
    // Two runs per side split only 6 ways, so no permutation p can go below 1/3: Welch's t-test
    // answers instead (it used to be a bootstrap verdict, which is what cried wolf), and a set
    // against itself shows no change on any line.
    for scope in &c.scopes {
        for d in &scope.metrics {
            assert_eq!(d.basis, Basis::Runs, "{} {:?}", scope.name, d.metric);
            assert_eq!(
                d.test,
                Some(compare::Test::Welch),
                "{} {:?}",
                scope.name,
                d.metric
            );
            assert_eq!(
                d.verdict,
                Verdict::NoSignificantChange,
                "{} {:?}",
                scope.name,
                d.metric
            );
        }
    }

    // list shows both runs and names the set to give to compare.
    let list = pgstorm(&[
        "list",
        "--results-dir",
        s(tmp.path()),
        "--label",
        "cmp_self",
    ]);
    let text = String::from_utf8_lossy(&list.stdout);
    let set_name = set.file_name().unwrap().to_str().unwrap();
    assert!(text.contains(set_name) && text.contains("2 runs"), "{text}");
    for r in &runs {
        assert!(text.contains(&r.doc.run_id), "{text}");
    }

    // A single run against itself: no verdict claims a change, and the output says why.
    let one = s(&runs[0].dir);
    let out = pgstorm(&["compare", one, one, "--fail-on-regression", "5%"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("significance cannot be assessed"), "{text}");
    assert!(
        !text.contains("slower") && !text.contains("faster"),
        "{text}"
    );
}

/// Runs `n` loads on database `db` and returns the set folder.
fn set_of(results: &Path, db: &str, n: u32) -> PathBuf {
    queries::run_repeated(&options(results, db), n)
        .unwrap()
        .1
        .unwrap()
}

#[test]
fn a_slowed_server_is_slower_fails_the_gate_and_the_diff_names_the_setting() {
    // The slowdown must be deterministic on a tiny dataset (a smaller shared_buffers would not
    // show): JIT compilation of every statement (jit on, all JIT cost thresholds at 0) costs
    // milliseconds per execution, against a baseline with jit off. Per-database settings keep
    // the shared sandbox untouched for the other tests.
    let mut admin = common::client();
    let jit: bool = admin
        .query_one("SELECT pg_jit_available()", &[])
        .unwrap()
        .get(0);
    assert!(
        jit,
        "this test needs PostgreSQL's LLVM JIT (llvmjit.so), which the Debian server package ships"
    );
    common::database("cmp_base");
    common::database("cmp_slow");
    admin
        .batch_execute(
            "ALTER DATABASE cmp_base SET jit = off;
             ALTER DATABASE cmp_slow SET jit = on;
             ALTER DATABASE cmp_slow SET jit_above_cost = 0;
             ALTER DATABASE cmp_slow SET jit_inline_above_cost = 0;
             ALTER DATABASE cmp_slow SET jit_optimize_above_cost = 0;",
        )
        .unwrap();
    // An open connection of the test's own would look like a lingering pool backend to the run.
    drop(admin);
    let tmp = tempfile::tempdir().unwrap();
    // Five runs per side: with three, an exact permutation test cannot go below p = 0.1 (20
    // splits), so no verdict is possible at 5 %; five give 252 splits, enough to pass the
    // false-discovery correction over all lines.
    let a = set_of(tmp.path(), "cmp_base", 5);
    let b = set_of(tmp.path(), "cmp_slow", 5);

    let (sa, sb) = (
        compare::load_side(s(&a)).unwrap(),
        compare::load_side(s(&b)).unwrap(),
    );
    let c = compare::compare(&sa, &sb, &CompareOptions::default());
    assert!(c.assessed);
    let jit_change = c
        .settings_diff
        .iter()
        .find(|d| d.name == "jit")
        .unwrap_or_else(|| panic!("jit not in the settings diff: {:?}", c.settings_diff));
    assert_eq!(
        (jit_change.a.as_deref(), jit_change.b.as_deref()),
        (Some("off"), Some("on"))
    );
    let all = &c.scopes[0];
    for m in [Metric::Tps, Metric::Mean, Metric::P50] {
        let d = all.metrics.iter().find(|d| d.metric == m).unwrap();
        assert_eq!(d.verdict, Verdict::Regressed, "{m:?}: {d:?}");
        assert!(d.fails(5.0), "{m:?}: {d:?}");
    }
    // The other direction is an improvement, never a regression.
    let back = compare::compare(&sb, &sa, &CompareOptions::default());
    assert!(back.regressions(0.0).is_empty());

    // The CLI: the gate exits 1 and says why; the table names the setting and says slower.
    let out = pgstorm(&["compare", s(&a), s(&b), "--fail-on-regression", "5%"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}\n{err}");
    assert!(text.contains("jit") && text.contains("off -> on"), "{text}");
    assert!(text.contains("slower"), "{text}");
    // How the verdicts were reached, and what an unchanged line could have shown.
    assert!(text.contains("Benjamini–Hochberg"), "{text}");
    assert!(
        text.contains("no significant change (smallest detectable ±"),
        "{text}"
    );
    assert!(err.contains("regression beyond 5%"), "{err}");
    // Without the gate the same comparison exits 0; Markdown and JSON carry the same verdicts.
    let md = pgstorm(&["compare", s(&a), s(&b), "--format", "markdown"]);
    assert_eq!(md.status.code(), Some(0));
    let md = String::from_utf8_lossy(&md.stdout);
    assert!(
        md.contains("| `jit` | off | on |") && md.contains("**slower**"),
        "{md}"
    );
    let js = pgstorm(&["compare", s(&a), s(&b), "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&js.stdout).unwrap();
    assert_eq!(v["scopes"][0]["metrics"][0]["verdict"], "regressed");
}

#[test]
fn bad_compare_input_is_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = pgstorm(&["compare", s(tmp.path()), s(tmp.path())]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("neither a result folder"), "{err}");
    let out = pgstorm(&["compare", "a", "b", "--format", "xml"]);
    assert_eq!(out.status.code(), Some(2));
    let out = pgstorm(&["merge", s(tmp.path())]);
    assert_eq!(out.status.code(), Some(2));
    let out = pgstorm(&["queries", "--start-at", "tomorrow"]);
    assert_eq!(out.status.code(), Some(2));
    let out = pgstorm(&["queries", "--repeat", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let out = pgstorm(&["compare", "a", "b", "--fail-on-regression", "lots"]);
    assert_eq!(out.status.code(), Some(2));
    let out = pgstorm(&["compare", "a", "b", "--level", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--level '0'"));
}

fn read_doc(dir: &Path) -> RunDocument {
    serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap()
}

#[test]
fn merge_of_simultaneous_runs_adds_counts_and_histograms_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    common::database("cmp_merge");
    // Seed once, before the two loads race to do it.
    {
        let mut c = common::client_of("cmp_merge");
        pgstorm::dataset::ensure(&mut c, false, &mut |_| {}).unwrap();
    }
    // Two "load machines" started together with --start-at, as the README recipe does.
    let at = chrono::Utc::now() + chrono::Duration::seconds(2);
    let handles: Vec<_> = ["cmp_merge_a", "cmp_merge_b"]
        .iter()
        .map(|label| {
            let mut o = options(tmp.path(), "cmp_merge");
            o.archive.label = label.to_string();
            o.start_at = Some(at);
            std::thread::spawn(move || queries::run(&o).unwrap())
        })
        .collect();
    let runs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for r in &runs {
        let started = chrono::DateTime::parse_from_rfc3339(&r.doc.started_at).unwrap();
        // started_at is kept to the millisecond.
        assert!(
            started + chrono::Duration::milliseconds(1) >= at,
            "a run started before --start-at"
        );
    }
    let out = pgstorm(&[
        "merge",
        s(&runs[0].dir),
        s(&runs[1].dir),
        "--label",
        "fleet",
        "--results-dir",
        s(tmp.path()),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = PathBuf::from(
        stdout
            .lines()
            .last()
            .unwrap()
            .trim_start_matches("result: "),
    );
    let merged = read_doc(&dir);
    assert!(dir.join("report.html").is_file());
    assert_eq!(merged.merged_from.as_ref().unwrap().len(), 2);
    let (m, a, b) = (
        merged.load.as_ref().unwrap(),
        runs[0].doc.load.as_ref().unwrap(),
        runs[1].doc.load.as_ref().unwrap(),
    );
    assert_eq!(m.config.clients, a.config.clients + b.config.clients);
    let pairs = std::iter::once((&m.summary, &a.summary, &b.summary)).chain(
        m.queries
            .iter()
            .zip(&a.queries)
            .zip(&b.queries)
            .map(|((m, a), b)| (m, a, b)),
    );
    for (qm, qa, qb) in pairs {
        assert_eq!(qm.count, qa.count + qb.count, "{}", qm.name);
        let mut h = hist::decode(&qa.latency.histogram).unwrap();
        h.add(hist::decode(&qb.latency.histogram).unwrap()).unwrap();
        let expected = pgstorm::report::latency_summary(&h);
        let l = &qm.latency;
        assert_eq!(l.count, expected.count, "{}", qm.name);
        for (got, want) in [
            (l.p50_ms, expected.p50_ms),
            (l.p95_ms, expected.p95_ms),
            (l.p99_ms, expected.p99_ms),
            (l.p999_ms, expected.p999_ms),
            (l.max_ms, expected.max_ms),
        ] {
            assert_eq!(got, want, "{}", qm.name);
        }
        // The mean is a float sum over buckets: equal up to rounding.
        assert!(
            (l.mean_ms - expected.mean_ms).abs() <= 1e-9 * expected.mean_ms,
            "{}",
            qm.name
        );
    }

    // Interval percentiles come from the interval logs, added: first check that a run's own log
    // reproduces its own time series, then that the merged series is the sum of both logs.
    use pgstorm::report::merge::{interval_totals, read_log};
    let interval = a.config.interval_s;
    let log_of = |d: &Path| read_log(&std::fs::read(d.join("latency.hlog")).unwrap()).unwrap();
    let own = interval_totals(&log_of(&runs[0].dir), interval).unwrap();
    for p in &a.timeseries {
        let h = &own[&((p.t_s / interval).round() as u64)];
        assert_eq!(
            p.p99_ms,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            "t={}",
            p.t_s
        );
    }
    let mut both = log_of(&runs[0].dir);
    both.extend(log_of(&runs[1].dir));
    let sum = interval_totals(&both, interval).unwrap();
    for p in &m.timeseries {
        let h = &sum[&((p.t_s / interval).round() as u64)];
        assert_eq!(
            p.p99_ms,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            "t={}",
            p.t_s
        );
        assert_eq!(p.max_ms, h.max() as f64 / 1000.0, "t={}", p.t_s);
    }
    assert!(dir.join("latency.hlog").is_file());

    // Started together: no warning. Positive control: the same runs, one shifted by a minute.
    let code = |d: &RunDocument, c: &str| d.warnings.iter().any(|w| w.code == c);
    assert!(
        !code(&merged, "merge_not_simultaneous"),
        "{:?}",
        merged.warnings
    );
    assert!(!code(&merged, "merge_interval_percentiles"));
    let mut late = runs[1].doc.clone();
    let shifted = chrono::DateTime::parse_from_rfc3339(&late.started_at).unwrap()
        + chrono::Duration::seconds(60);
    late.started_at = shifted.to_rfc3339();
    let m2 =
        pgstorm::report::merge::merge(&[(runs[0].doc.clone(), None), (late, None)], "late", &[])
            .unwrap();
    assert!(
        code(&m2.doc, "merge_not_simultaneous"),
        "{:?}",
        m2.doc.warnings
    );
    assert!(code(&m2.doc, "merge_interval_percentiles"));
    assert!(m2.log.is_none());

    // The index lists every run folder once; list filters by label.
    let list = pgstorm(&["list", "--results-dir", s(tmp.path()), "--label", "fleet"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert_eq!(list.status.code(), Some(0));
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains(&merged.run_id), "{text}");
    // A folder removed by hand: list reconciles the index.
    std::fs::remove_dir_all(&runs[0].dir).unwrap();
    let list = pgstorm(&["list", "--results-dir", s(tmp.path())]);
    assert!(String::from_utf8_lossy(&list.stderr).contains("rewritten"));
    let index = std::fs::read_to_string(tmp.path().join("index.csv")).unwrap();
    assert!(!index.contains(&runs[0].doc.run_id), "{index}");
    assert_eq!(index.lines().count(), 1 + 2, "{index}");
}

/// Two "load machines" (one results folder each) run together as the recipe's pods do: `load-0`
/// and `load-1`, labelled as the Kubernetes job labels them.
fn simultaneous_pair(machines: &[PathBuf; 2], db: &str) -> Vec<PathBuf> {
    let at = chrono::Utc::now() + chrono::Duration::seconds(2);
    let handles: Vec<_> = machines
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let mut o = options(dir, db);
            o.archive.label = format!("load-{i}");
            o.start_at = Some(at);
            std::thread::spawn(move || queries::run(&o).unwrap().dir)
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn collect_merge_script_merges_each_machines_newest_run() {
    let tmp = tempfile::tempdir().unwrap();
    common::database("cmp_collect");
    {
        let mut c = common::client_of("cmp_collect");
        pgstorm::dataset::ensure(&mut c, false, &mut |_| {}).unwrap();
    }
    // The job's volume: one folder per pod; an earlier job left runs there too.
    let volume = tmp.path().join("volume");
    let machines = [volume.join("0"), volume.join("1")];
    let older = simultaneous_pair(&machines, "cmp_collect");
    std::thread::sleep(Duration::from_millis(1100)); // folder names have 1 s resolution
    let newer = simultaneous_pair(&machines, "cmp_collect");
    let merged_dir = tmp.path().join("merged");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/collect-merge.sh");
    let out = Command::new("bash")
        .arg(script)
        .args(["--pgstorm", env!("CARGO_BIN_EXE_pgstorm")])
        .args([
            "--label",
            "fleet",
            "--results-dir",
            s(&merged_dir),
            s(&volume),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = PathBuf::from(
        stdout
            .lines()
            .last()
            .unwrap()
            .trim_start_matches("result: "),
    );
    assert!(dir.starts_with(&merged_dir), "{stdout}");
    let merged = read_doc(&dir);
    let from: Vec<&str> = merged
        .merged_from
        .as_ref()
        .unwrap()
        .iter()
        .map(|r| r.run_id.as_str())
        .collect();
    let name = |p: &PathBuf| p.file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(from, newer.iter().map(name).collect::<Vec<_>>(), "{stderr}");
    assert!(older.iter().all(|o| !from.contains(&name(o).as_str())));

    // A folder without a matching result is a usage error that writes nothing.
    let before = std::fs::read_dir(&merged_dir).unwrap().count();
    let out = Command::new("bash")
        .arg(script)
        .args(["--pgstorm", env!("CARGO_BIN_EXE_pgstorm")])
        .args([
            "--match",
            "*-nothing-*",
            "--results-dir",
            s(&merged_dir),
            s(&volume),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("*-nothing-*"), "{stderr}");
    assert_eq!(std::fs::read_dir(&merged_dir).unwrap().count(), before);
}

/// Screenshot of `page` by headless Chromium (Debian package `chromium`), as RGBA rows.
fn screenshot(page: &Path, out: &Path) -> (u32, u32, Vec<u8>) {
    let profile = tempfile::tempdir().unwrap();
    let status = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1000,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", out.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot start chromium ({e}): install it (apt-get install chromium; scripts/test.sh does)")
        });
    assert!(
        out.is_file(),
        "chromium wrote no screenshot: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let mut decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(out).unwrap()));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let rgba = buf[..info.buffer_size()]
        .chunks(channels)
        .flat_map(|p| match channels {
            1 | 2 => [p[0], p[0], p[0], 255],
            _ => [p[0], p[1], p[2], 255],
        })
        .collect();
    (info.width, info.height, rgba)
}

/// Variance of the luminance and the share of non-white pixels.
fn ink(rgba: &[u8]) -> (f64, f64) {
    let lum: Vec<f64> = rgba
        .chunks(4)
        .map(|p| 0.2126 * p[0] as f64 + 0.7152 * p[1] as f64 + 0.0722 * p[2] as f64)
        .collect();
    let n = lum.len() as f64;
    let mean = lum.iter().sum::<f64>() / n;
    let var = lum.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n;
    let dark = lum.iter().filter(|l| **l < 200.0).count() as f64 / n;
    (var, dark)
}

#[test]
fn report_html_renders_in_headless_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let run = queries::run(&options(tmp.path(), "cmp_html")).unwrap();
    let page = run.dir.join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: inline SVG charts, nothing fetched.
    assert!(
        html.matches("<svg").count() >= 3,
        "expected the spectrum and two time charts"
    );
    for external in ["src=", "href=", "<script", "@import", "url("] {
        assert!(
            !html.contains(external),
            "report.html references {external}"
        );
    }
    // `pgstorm report` re-renders the same page from run.json.
    std::fs::remove_file(&page).unwrap();
    let out = pgstorm(&["report", s(&run.dir)]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&page).unwrap(), html);

    let (w, h, rgba) = screenshot(&page, &tmp.path().join("run.png"));
    assert!(w >= 800 && h >= 800, "{w}x{h}");
    let (var, dark) = ink(&rgba);
    assert!(
        var > 100.0 && dark > 0.01,
        "the page looks blank: variance {var}, dark share {dark}"
    );

    // The comparison page renders too.
    let cmp = tmp.path().join("compare.html");
    let out = pgstorm(&["compare", s(&run.dir), s(&run.dir), "--html", s(&cmp)]);
    assert_eq!(out.status.code(), Some(0));
    let (_, _, rgba) = screenshot(&cmp, &tmp.path().join("cmp.png"));
    let (var, dark) = ink(&rgba);
    assert!(
        var > 100.0 && dark > 0.01,
        "the comparison looks blank: variance {var}, dark share {dark}"
    );

    // Negative control of the blank check itself: an empty page is seen as blank.
    let blank = tmp.path().join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>").unwrap();
    let (_, _, rgba) = screenshot(&blank, &tmp.path().join("blank.png"));
    let (var, dark) = ink(&rgba);
    assert!(
        var < 1.0 && dark == 0.0,
        "variance {var}, dark share {dark}"
    );
}

#[test]
fn trend_lists_a_labels_archived_runs_and_writes_its_page() {
    // The repository's own archived runs, copied: trend reconciles the index it reads.
    let tmp = tempfile::tempdir().unwrap();
    let archive = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    for entry in std::fs::read_dir(&archive).unwrap().flatten() {
        let dest = tmp.path().join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir(&dest).unwrap();
            for f in std::fs::read_dir(entry.path()).unwrap().flatten() {
                std::fs::copy(f.path(), dest.join(f.file_name())).unwrap();
            }
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
    let out = pgstorm(&["trend", "--results-dir", s(tmp.path()), "--label", "quick"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("label quick: tps") && text.contains("-quick "),
        "{text}"
    );
    assert!(
        !text.contains("label sweep"),
        "only the asked label: {text}"
    );
    let page = std::fs::read_to_string(tmp.path().join("trend.html")).unwrap();
    assert!(page.contains("<svg"), "the page has its chart");
    // A label with no run is a usage error that says how to see the labels.
    let out = pgstorm(&["trend", "--results-dir", s(tmp.path()), "--label", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pgstorm list"));
}
