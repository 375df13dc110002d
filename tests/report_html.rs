//! report.html, a sweep's report.html and the trend page, rendered by headless Chromium from real
//! runs on a sandbox: the verdict and criteria sit in the first 1,000 px, no table cell holds raw
//! JSON, every chart names a unit on its axes, and a series that stays at zero draws no chart (it
//! is named in the note instead).
//!
//! The pages have no script of their own; the test appends a probe script to a copy of each page,
//! lets Chromium lay it out (`--dump-dom`) and reads what the probe measured. Skipped, saying so,
//! only when Chromium is not installed (scripts/test.sh installs it).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// What the probe script measures in the laid-out page.
const PROBE: &str = r#"<script>
(function () {
  const r = {};
  const bottom = (id) => {
    const e = document.getElementById(id);
    return e ? e.getBoundingClientRect().bottom + window.scrollY : null;
  };
  r.verdict = bottom('verdict');
  r.criteria = bottom('criteria');
  r.json_cells = [];
  document.querySelectorAll('table').forEach((t) => {
    const w = document.createTreeWalker(t, NodeFilter.SHOW_TEXT);
    let n;
    while ((n = w.nextNode())) {
      const s = n.nodeValue.trim();
      if (s.startsWith('{"') || s.startsWith('[{')) r.json_cells.push(s.slice(0, 80));
    }
  });
  r.charts = Array.from(document.querySelectorAll('svg')).map((svg) => {
    const fig = svg.closest('figure');
    return {
      axes: Array.from(svg.querySelectorAll('text'))
        .filter((t) => (t.getAttribute('transform') || '').includes('rotate'))
        .map((t) => t.textContent.trim()),
      series: fig ? fig.dataset.series.split('|') : [],
    };
  });
  r.constant = Array.from(document.querySelectorAll('.constant .series')).map((s) => ({
    name: s.dataset.series,
    text: s.textContent,
  }));
  const out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = JSON.stringify(r);
  document.body.appendChild(out);
})();
</script>"#;

fn chromium_present() -> bool {
    Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Lays `page` out at 1200 px wide in headless Chromium and returns what the probe measured.
fn probe(page: &Path) -> Value {
    let html = std::fs::read_to_string(page).unwrap();
    let probed = page.with_file_name("probe.html");
    std::fs::write(&probed, html.replace("</body>", &format!("{PROBE}</body>"))).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1200,1000",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("file://{}", probed.display()))
        .output()
        .expect("start chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    let start = dom.find("<pre id=\"probe\">").unwrap_or_else(|| {
        panic!(
            "the probe did not run in {}: {}",
            page.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    }) + "<pre id=\"probe\">".len();
    let end = start + dom[start..].find("</pre>").unwrap();
    let text = dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("probe output {text}: {e}"))
}

/// What is wrong with a probed page: raw JSON in a table, a chart axis without a unit, the
/// verdict (and the criteria, when `criteria`) ending below 1,000 px.
fn problems(p: &Value, verdict: bool, criteria: bool) -> Vec<String> {
    let mut out = Vec::new();
    for cell in p["json_cells"].as_array().unwrap() {
        out.push(format!("table text starts with raw JSON: {cell}"));
    }
    let charts = p["charts"].as_array().unwrap();
    if charts.is_empty() {
        out.push("no chart at all".into());
    }
    for c in charts {
        let axes = c["axes"].as_array().unwrap();
        if axes.is_empty() {
            out.push(format!("a chart without a y axis label: {c}"));
        }
        for a in axes.iter().filter_map(Value::as_str) {
            let unit = a
                .rsplit_once('(')
                .and_then(|(_, u)| u.strip_suffix(')'))
                .filter(|u| !u.trim().is_empty());
            if unit.is_none() {
                out.push(format!("axis label {a:?} names no unit"));
            }
        }
    }
    let mut first_screen = |id: &str| match p[id].as_f64() {
        None => out.push(format!("no #{id}")),
        Some(v) if v > 1000.0 => out.push(format!("#{id} ends at {v} px, below the first screen")),
        Some(_) => {}
    };
    if verdict {
        first_screen("verdict");
    }
    if criteria {
        first_screen("criteria");
    }
    out
}

/// Series of the run's monitoring and pool samples that are zero in every sample, by the name the
/// report gives them.
fn zero_series(doc: &Value) -> Vec<&'static str> {
    let all_zero = |samples: &Value, field: &str| {
        samples
            .as_array()
            .is_some_and(|s| !s.is_empty() && s.iter().all(|x| x[field].as_f64() == Some(0.0)))
    };
    let host = &doc["monitoring"]["host"]["samples"];
    let server = &doc["monitoring"]["server"]["samples"];
    let pool = &doc["connections"]["pool_timeseries"];
    [
        (host, "swap_used_bytes", "swap used"),
        (host, "net_rx_bytes_s", "network received"),
        (host, "net_tx_bytes_s", "network sent"),
        (host, "disk_read_bytes_s", "disk read"),
        (server, "temp_files", "temp files"),
        (server, "deadlocks", "deadlocks"),
        (server, "blocked_backends", "blocked backends"),
        (pool, "waiters", "workers waiting"),
        (pool, "failed", "failed"),
    ]
    .into_iter()
    .filter(|(s, f, _)| all_zero(s, f))
    .map(|(_, _, n)| n)
    .collect()
}

/// Every series in `zero` (zero throughout) must be named in the note with the value 0 and drawn
/// nowhere: the problems found.
fn zero_problems(p: &Value, zero: &[&str]) -> Vec<String> {
    let noted: Vec<(&str, &str)> = p["constant"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["text"].as_str().unwrap()))
        .collect();
    let drawn: Vec<&str> = p["charts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["series"].as_array().unwrap().iter())
        .filter_map(Value::as_str)
        .collect();
    let mut out = Vec::new();
    for z in zero {
        if !noted.iter().any(|(n, t)| n == z && t.contains(": 0 ")) {
            out.push(format!(
                "{z} is zero throughout but not in the note: {noted:?}"
            ));
        }
        if drawn.contains(z) {
            out.push(format!("{z} is zero throughout but drawn"));
        }
    }
    out
}

fn assert_clean(name: &str, problems: Vec<String>) {
    assert!(problems.is_empty(), "{name}:\n{}", problems.join("\n"));
}

fn pgstorm(args: &[&str], results: &Path) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_pgstorm"))
        .args(args)
        .arg("--results-dir")
        .arg(results)
        .output()
        .expect("run the pgstorm binary");
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "pgstorm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The one result folder in `results` whose name ends with `suffix`.
fn folder(results: &Path, suffix: &str) -> PathBuf {
    std::fs::read_dir(results)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir() && p.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("no result folder *{suffix} in {}", results.display()))
}

#[test]
fn run_sweep_and_trend_pages_read_well_in_headless_chromium() {
    if !chromium_present() {
        eprintln!(
            "SKIPPED: chromium is not installed, so report.html cannot be rendered \
             (apt-get install chromium; scripts/test.sh installs it)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path();
    let dsn = common::database("report_html");

    // A real suite run, short: load, connections, isolation checks, monitoring and the advisor.
    pgstorm(
        &[
            "run",
            "--profile",
            "quick",
            "-T",
            "3",
            "--warmup",
            "1",
            "--label",
            "page",
            "--dsn",
            &dsn,
        ],
        results,
    );
    let run = folder(results, "-page");
    let doc: Value = serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
    assert!(
        doc["analysis"]["findings"]
            .as_array()
            .is_some_and(|f| !f.is_empty()),
        "the run's advisor found nothing to show as cards"
    );
    assert!(doc["isolation"]["cases"]
        .as_array()
        .is_some_and(|c| !c.is_empty()));
    let p = probe(&run.join("report.html"));
    assert_clean("report.html", problems(&p, true, true));
    let zero = zero_series(&doc);
    assert!(
        !zero.is_empty(),
        "no series stayed at zero in this run, so the constant-series rule is not exercised"
    );
    assert_clean("report.html", zero_problems(&p, &zero));
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("class=\"card "), "findings as cards");
    assert!(html.contains("class=\"matrix\""), "isolation as a matrix");
    assert!(
        html.contains("<details><summary>Server settings"),
        "settings collapsed"
    );
    for external in ["src=", "href=", "<script", "@import", "url("] {
        assert!(
            !html.contains(external),
            "report.html references {external}"
        );
    }

    // A real sweep: its recommendation is the first screen's verdict.
    pgstorm(
        &[
            "sweep",
            "--dsn",
            &dsn,
            "--clients",
            "1,2,4",
            "-T",
            "1",
            "--warmup",
            "0",
            "--no-pin",
            "--bootstrap",
            "50",
            "--label",
            "pagesweep",
        ],
        results,
    );
    let sweep = folder(results, "-pagesweep");
    let sdoc: Value =
        serde_json::from_slice(&std::fs::read(sweep.join("run.json")).unwrap()).unwrap();
    let p = probe(&sweep.join("report.html"));
    assert_clean("sweep report.html", problems(&p, true, false));
    assert_clean("sweep report.html", zero_problems(&p, &zero_series(&sdoc)));

    // The trend page over both labels.
    pgstorm(&["trend"], results);
    let p = probe(&results.join("trend.html"));
    assert_clean("trend.html", problems(&p, false, false));

    // Positive control of the checks: a page with each fault is caught on each count.
    let bad = results.join("bad.html");
    std::fs::write(
        &bad,
        "<!DOCTYPE html><html><body><section id=\"verdict\">PASS</section>\
         <div style=\"height:1200px\"></div><table id=\"criteria\"><tr><td>{\"a\": 1}</td></tr>\
         <tr><td>[{\"b\": 2}]</td></tr></table><figure class=\"chart\" data-series=\"swap used\">\
         <svg><text transform=\"rotate(270, 5, 5)\">swap used</text></svg></figure></body></html>",
    )
    .unwrap();
    let p = probe(&bad);
    let found = problems(&p, true, true);
    assert_eq!(
        found.len(),
        4,
        "raw JSON twice, no unit, criteria too low: {found:?}"
    );
    assert!(
        found.iter().any(|f| f.contains("#criteria ends at")),
        "{found:?}"
    );
    assert_eq!(
        zero_problems(&p, &["swap used"]).len(),
        2,
        "drawn and not noted"
    );
}
