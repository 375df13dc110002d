//! End-to-end tests of `pgstorm sweep` against a real sandbox PostgreSQL: a short sweep yields a
//! fitted model, a recommendation, a valid document, CSV and chart; an SLO no level can meet is
//! reported as such (positive control) while a generous one is met (negative control); the open-loop
//! rate search records every probe; Ctrl-C keeps the finished levels (exit 130); bad input exits 2
//! without writing a result. `sweep --fit` fits points from a file with no server at all: the
//! specsdm91 reference data print their peak near 96, and bad files exit 2 naming file and line.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pgstorm::analysis::slo::Slo;
use pgstorm::report::model::RunDocument;
use pgstorm::scenarios::session::TargetOptions;
use pgstorm::scenarios::sweep::{self, RateSearchOptions, SweepOptions};

fn options(results: &Path, db: &str, levels: &[u32], slo: &str, probes: u32) -> SweepOptions {
    let mut o = SweepOptions {
        target: TargetOptions {
            dsn: Some(common::database(db)),
            sandbox_max_connections: None,
            ..Default::default()
        },
        mix: "point=5,join=1".into(),
        levels: levels.to_vec(),
        slo: Some(slo.parse::<Slo>().unwrap()),
        rate_search: Some(RateSearchOptions {
            max_probes: probes,
            ..RateSearchOptions::default()
        }),
        bootstrap_replicates: 200,
        print_summary: false,
        ..SweepOptions::default()
    };
    o.archive.results_dir = results.to_path_buf();
    o.archive.label = db.into();
    o.engine.duration = Some(Duration::from_secs(1));
    o.engine.warmup = Duration::ZERO;
    o.engine.pin = false;
    o
}

fn validate_against_schema(dir: &Path) {
    common::assert_run_json_matches_schema(dir);
}

#[test]
fn short_sandbox_sweep_fits_a_model_and_recommends_a_pool() {
    let tmp = tempfile::tempdir().unwrap();
    let out = sweep::run(&options(tmp.path(), "sweep_ok", &[1, 2, 4, 8], "p99<2s", 3)).unwrap();

    for f in ["run.json", "sweep.csv", "sweep.svg", "rate_search.csv"] {
        assert!(out.dir.join(f).is_file(), "{f} missing");
    }
    validate_against_schema(&out.dir);
    let doc: RunDocument =
        serde_json::from_slice(&std::fs::read(out.dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(doc.scenario, "sweep");
    let sw = doc.sweep.as_ref().expect("a sweep section");
    assert_eq!(
        sw.levels.iter().map(|l| l.clients).collect::<Vec<_>>(),
        vec![1, 2, 4, 8]
    );
    for l in &sw.levels {
        assert!(
            l.count > 0 && l.tps > 0.0,
            "level {} did nothing",
            l.clients
        );
        assert!(l.latency.p50_ms <= l.latency.p99_ms);
        // Negative control: a 2 s p99 is met by every level of a healthy sandbox.
        assert_eq!(
            l.meets_slo,
            Some(true),
            "level {}: {:?}",
            l.clients,
            l.latency.p99_ms
        );
        assert!(l.usl_tps.is_some());
    }

    let m = sw.usl.as_ref().expect("a fitted model");
    assert!(m.lambda > 0.0 && (0.0..1.0).contains(&m.sigma) && (0.0..1.0).contains(&m.kappa));
    assert!(m.r2.is_finite());
    let r = &sw.recommendation;
    let pool = r.pool_size.expect("a recommended pool size");
    assert!(pool >= 1, "{r:?}");
    assert_eq!(r.slo_limit, Some(8));
    assert_eq!(pool, r.usl_limit.unwrap_or(u32::MAX).min(8), "{r:?}");
    assert!(r.max_connections.unwrap() > pool);
    // The sandbox runs on this host: the rule of thumb uses its cores.
    assert!(r.heuristic.as_ref().is_some_and(|h| h.cores >= 1), "{r:?}");

    let rs = sw.rate_search.as_ref().expect("a rate search");
    assert_eq!(rs.clients, pool);
    assert!(!rs.probes.is_empty() && rs.probes.len() <= 3);
    for p in &rs.probes {
        assert!(p.rate > 0.0 && p.count > 0, "{p:?}");
        assert_eq!(p.passed, p.reason.is_empty(), "{p:?}");
    }
    assert!(
        rs.max_sustainable_rate.is_some() || rs.lowest_failing_rate.is_some(),
        "{rs:?}"
    );

    let csv = std::fs::read_to_string(out.dir.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 4, "{csv}");
    let svg = std::fs::read_to_string(out.dir.join("sweep.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("measured") && svg.contains("USL"));
}

#[test]
fn an_slo_no_level_can_meet_gives_no_pool_and_no_sustainable_rate() {
    let tmp = tempfile::tempdir().unwrap();
    // Positive control: no query answers in under a microsecond.
    let out = sweep::run(&options(tmp.path(), "sweep_slo", &[1, 2, 4], "p50<1us", 2)).unwrap();
    let sw = out.doc.sweep.as_ref().unwrap();
    assert!(sw.levels.iter().all(|l| l.meets_slo == Some(false)));
    let r = &sw.recommendation;
    assert_eq!(
        (r.pool_size, r.slo_limit, r.max_connections),
        (None, None, None)
    );
    assert!(r.basis.contains("p50<1us"), "{}", r.basis);
    let rs = sw.rate_search.as_ref().unwrap();
    assert_eq!(rs.probes.len(), 2);
    assert!(rs
        .probes
        .iter()
        .all(|p| !p.passed && p.reason.contains("p50<1us")));
    assert_eq!(rs.max_sustainable_rate, None);
    // Halving after each failure.
    assert!((rs.probes[1].rate - rs.probes[0].rate / 2.0).abs() < 1e-9);
}

#[test]
fn bad_sweep_input_exits_2_with_one_line_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        vec!["--slo", "p99 under 20ms"],
        vec!["--clients", "8,4,2"],
        vec!["--rate-search"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_pgstorm"))
            .arg("sweep")
            .args(&args)
            .args(["--dsn", &common::database("sweep_bad")])
            .arg("--results-dir")
            .arg(tmp.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn ctrl_c_mid_sweep_keeps_the_finished_levels_and_exits_130() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let dsn = common::database("sweep_interrupt");
    let mut c = common::client_of("sweep_interrupt");
    pgstorm::dataset::ensure(&mut c, false, &mut |_: &str| {}).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgstorm"))
        .args(["sweep", "--dsn", &dsn, "--clients", "1,2,4", "-T", "2"])
        .args([
            "--warmup",
            "0",
            "--no-pin",
            "--bootstrap",
            "50",
            "--results-dir",
        ])
        .arg(tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the first level is complete and the second has started.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        if line.contains("sweep level 2/3") {
            break;
        }
        line.clear();
    }
    assert!(seen.contains("sweep level 2/3"), "{seen}");
    // SAFETY: sending SIGINT to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}{rest}");
    assert!(!rest.contains("panicked"), "{rest}");
    let dirs: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "exactly one complete result folder");
    let doc: RunDocument =
        serde_json::from_slice(&std::fs::read(dirs[0].path().join("run.json")).unwrap()).unwrap();
    assert!(doc.interrupted);
    assert!(doc.warnings.iter().any(|w| w.code == "interrupted"));
    let sw = doc.sweep.unwrap();
    // Level 1, plus level 2's part when the signal came after its pool was open.
    assert!((1..=2).contains(&sw.levels.len()), "{:?}", sw.levels.len());
    assert_eq!(sw.levels[0].clients, 1);
    assert!(sw.levels[0].count > 0);
    // Two levels cannot carry a three-parameter model: said, not guessed.
    assert!(sw.usl.is_none() && sw.usl_error.is_some());
    assert!(sw.rate_search.is_none());
}

/// `pgstorm sweep --fit FILE` with no PG* variables and no --dsn: it must not need a server.
fn fit(file: &Path, results: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pgstorm"))
        .args(["sweep", "--bootstrap", "200", "--fit"])
        .arg(file)
        .arg("--results-dir")
        .arg(results)
        .env_remove("PGHOST")
        .env_remove("PGPORT")
        .env_remove("PGDATABASE")
        .output()
        .unwrap()
}

#[test]
fn fit_of_the_specsdm91_points_prints_a_peak_near_96_and_writes_json_and_svg() {
    let tmp = tempfile::tempdir().unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/usl/specsdm91.csv");
    let out = fit(&data, tmp.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("peak N* = floor(√((1−σ)/κ)) = 96"),
        "{stdout}"
    );
    assert!(stdout.contains("κ kept"), "{stdout}");
    assert!(stdout.contains("recommended pool size: 96"), "{stdout}");
    let dirs: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
    assert_eq!(dirs.len(), 1);
    let dir = dirs[0].path();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(json["sweep"]["usl"]["limit_kind"], "peak");
    assert_eq!(json["sweep"]["usl"]["limit_n"], 96);
    assert_eq!(json["sweep"]["levels"].as_array().unwrap().len(), 7);
    let svg = std::fs::read_to_string(dir.join("sweep.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("N* = 96"),
        "{svg:.200}"
    );
}

#[test]
fn bad_fit_files_exit_2_naming_the_file_and_line_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let cases = [
        ("missing.csv", None, "cannot read"),
        ("word.csv", Some("N,tps\n1,100\n2,abc\n4,300\n"), "line 3"),
        (
            "few.csv",
            Some("N,tps\n1,100\n2,190\n"),
            "fewer than the 3 parameters",
        ),
        (
            "negative.csv",
            Some("N,tps\n1,100\n2,190\n4,-5\n8,300\n"),
            "line 4",
        ),
        ("noheader.csv", Some("1,100\n2,190\n4,300\n"), "line 1"),
    ];
    for (name, body, says) in cases {
        let file = tmp.path().join(name);
        if let Some(b) = body {
            std::fs::write(&file, b).unwrap();
        }
        let out = fit(&file, &results);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{name}: {err}");
        assert!(err.contains(name) && err.contains(says), "{name}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(!results.exists(), "nothing is written on bad input");
}
