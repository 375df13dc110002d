//! Machine-readable output of the real binary: `--output-format json` leaves only the result
//! document on stdout, `--progress-format ndjson` one JSON object per progress line on stderr.

mod common;

use std::path::Path;

/// Runs the binary; returns (exit code, stdout, stderr).
fn pgstorm(args: &[&str], results: &Path) -> (i32, String, String) {
    let out = common::pgstorm_command()
        .args(args)
        .arg("--results-dir")
        .arg(results)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        stderr,
    )
}

/// Stdout is exactly the archived run.json, which validates against the checked-in schema.
fn assert_stdout_is_the_document(stdout: &str, results: &Path) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {stdout}"));
    let dir = common::only_result(results);
    let on_disk = std::fs::read_to_string(dir.join("run.json")).unwrap();
    assert_eq!(stdout.trim_end(), on_disk.trim_end());
    common::assert_run_json_matches_schema(&dir);
    assert_eq!(doc["run_id"], dir.file_name().unwrap().to_str().unwrap());
    doc
}

#[test]
fn queries_prints_only_its_document_and_ndjson_progress_with_rising_unix_time() {
    let tmp = tempfile::tempdir().unwrap();
    let dsn = common::database("output_queries");
    let (code, stdout, stderr) = pgstorm(
        &[
            "queries",
            "--dsn",
            &dsn,
            "-c",
            "2",
            "-T",
            "4",
            "-P",
            "1",
            "--mix",
            "point=1",
            "--no-pin",
            "--output-format",
            "json",
            "--progress-format",
            "ndjson",
        ],
        tmp.path(),
    );
    assert_eq!(code, 0, "{stderr}");
    let doc = assert_stdout_is_the_document(&stdout, tmp.path());
    assert_eq!(doc["scenario"], "queries");
    // The summary people read went to stderr, not lost.
    assert!(stderr.contains("tps"), "{stderr}");

    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.len() >= 3, "a line per second of a 4 s run: {stderr}");
    assert!(!stderr.contains("progress: "), "no text progress: {stderr}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut last = 0.0;
    for l in &lines {
        let unix = l["unix_s"].as_f64().unwrap();
        assert!(unix > last, "Unix time increases: {lines:?}");
        assert!(
            (now - unix).abs() < 3600.0,
            "a Unix time, not an offset: {unix}"
        );
        last = unix;
        assert!(l["elapsed_s"].as_f64().unwrap() > 0.0, "{l}");
        assert!(l["tps"].as_f64().unwrap() >= 0.0, "{l}");
        assert!(
            l["p99_ms"].as_f64().unwrap() >= l["p50_ms"].as_f64().unwrap(),
            "{l}"
        );
        assert_eq!(l["failed"], 0, "{l}");
        assert_eq!(l["clients"], 2, "{l}");
    }
    // Positive control: the lines count the load that ran.
    assert!(
        lines.iter().any(|l| l["tps"].as_f64().unwrap() > 0.0),
        "{lines:?}"
    );
}

#[test]
fn isolation_with_json_output_keeps_its_verdict_table_off_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    let dsn = common::database("output_isolation");
    let (code, stdout, stderr) = pgstorm(
        &[
            "isolation",
            "--dsn",
            &dsn,
            "--check",
            "lost-update",
            "--level",
            "read-committed",
            "--workers",
            "2",
            "--transactions",
            "5",
            "--output-format",
            "json",
        ],
        tmp.path(),
    );
    assert_eq!(code, 0, "{stderr}");
    let doc = assert_stdout_is_the_document(&stdout, tmp.path());
    assert_eq!(doc["scenario"], "isolation");
    assert!(doc["isolation"]["cases"].is_array());
    assert!(stderr.contains("lost-update  read committed"), "{stderr}");
}

#[test]
fn output_and_progress_formats_are_checked_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        vec!["queries", "--output-format", "yaml"],
        vec!["run", "--progress-format", "json"],
        vec!["sweep", "--fit", "points.csv", "--output-format", "json"],
    ] {
        let (code, stdout, stderr) = pgstorm(&args, tmp.path());
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
        assert!(
            stderr.contains("--output-format") || stderr.contains("--progress-format"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn an_interrupted_run_still_prints_its_document_and_is_indexed_as_interrupted() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let dsn = common::database("output_interrupted");
    let mut child = common::pgstorm_command()
        .args(["queries", "--dsn", &dsn, "-c", "2", "-T", "600", "-P", "1"])
        .args(["--mix", "point=1", "--no-pin", "--output-format", "json"])
        .args(["--progress-format", "ndjson", "--results-dir"])
        .arg(tmp.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut stdout = child.stdout.take().unwrap();
    let printed = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let mut seen = Vec::new();
    let mut lines = stderr.lines();
    // Interrupt once the load is under way (its first progress line), as a user would.
    for line in lines.by_ref() {
        let line = line.unwrap();
        let started = line.starts_with('{');
        seen.push(line);
        if started {
            break;
        }
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    seen.extend(lines.map(|l| l.unwrap()));
    let code = child.wait().unwrap().code();
    let stderr = seen.join("\n");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(code, Some(130), "{stderr}");
    let stdout = printed.join().unwrap();
    let doc = assert_stdout_is_the_document(&stdout, tmp.path());
    assert_eq!(doc["interrupted"], true);

    let mut r = csv::Reader::from_path(tmp.path().join("index.csv")).unwrap();
    let col = r
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "verdict")
        .unwrap();
    let rows: Vec<csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(&rows[0][col], "interrupted");
}

#[test]
fn connections_with_json_output_prints_its_document_with_the_ramp() {
    let tmp = tempfile::tempdir().unwrap();
    let dsn = common::database("output_connections");
    let (code, stdout, stderr) = pgstorm(
        &[
            "connections",
            "--dsn",
            &dsn,
            "--steps",
            "2,4",
            "--step-hold",
            "200ms",
            "-T",
            "1",
            "--output-format",
            "json",
        ],
        tmp.path(),
    );
    assert_eq!(code, 0, "{stderr}");
    let doc = assert_stdout_is_the_document(&stdout, tmp.path());
    assert_eq!(doc["scenario"], "connections");
    assert_eq!(doc["connections"]["steps"].as_array().unwrap().len(), 2);
    // Its own CSVs are stamped too.
    let csv = std::fs::read_to_string(common::only_result(tmp.path()).join("pool_timeseries.csv"))
        .unwrap();
    assert!(
        csv.lines().next().unwrap().ends_with(",run_id,unix_s"),
        "{csv}"
    );
}

#[test]
fn a_sweep_prints_its_document_ndjson_progress_per_level_and_indexes_its_best_tps() {
    let tmp = tempfile::tempdir().unwrap();
    let dsn = common::database("output_sweep");
    let (code, stdout, stderr) = pgstorm(
        &[
            "sweep",
            "--dsn",
            &dsn,
            "--clients",
            "1,2,3",
            "-T",
            "2",
            "--warmup",
            "0",
            "-P",
            "1",
            "--mix",
            "point=1",
            "--no-pin",
            "--output-format",
            "json",
            "--progress-format",
            "ndjson",
        ],
        tmp.path(),
    );
    assert_eq!(code, 0, "{stderr}");
    let doc = assert_stdout_is_the_document(&stdout, tmp.path());
    let levels = doc["sweep"]["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 3);
    let clients: std::collections::BTreeSet<u64> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["clients"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(clients, [1, 2, 3].into(), "{stderr}");

    let mut r = csv::Reader::from_path(tmp.path().join("index.csv")).unwrap();
    let h = r.headers().unwrap().clone();
    let row = r.records().next().unwrap().unwrap();
    let cell = |name: &str| row[h.iter().position(|c| c == name).unwrap()].to_string();
    let best = levels
        .iter()
        .map(|l| l["tps"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert_eq!(cell("best_tps"), format!("{best:.1}"));
    let n_star = doc["sweep"]["usl"]["limit_n"]
        .as_u64()
        .map(|n| n.to_string());
    assert_eq!(cell("n_star"), n_star.unwrap_or_default());
    assert_eq!(cell("verdict"), "no criteria");
}
