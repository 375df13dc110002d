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
