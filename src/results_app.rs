//! The subcommands that read archived results and never touch a server: `compare`, `report`,
//! `list` and `merge`. Validation and output only; the work is in `compare` and `report`.
//!
//! Invariant: bad input (a folder that is not a result, an unknown format, a bad threshold) is one
//! line and exit 2, checked before anything is written.

use std::path::Path;

use anyhow::{Context, Result};

use crate::cli;
use crate::compare::{self, render, CompareOptions};
use crate::error::{self, ExitKind};

/// `pgstorm compare A B`: prints the comparison; 1 when `--fail-on-regression` trips.
pub fn compare(a: &cli::CompareArgs) -> Result<i32> {
    let format = a.format.as_str();
    if !matches!(format, "table" | "markdown" | "json") {
        return Err(error::usage(format!(
            "--format '{format}': use table, markdown or json"
        )));
    }
    let threshold = a
        .fail_on_regression
        .as_deref()
        .map(compare::parse_threshold)
        .transpose()?;
    let min_noise_pct = compare::parse_threshold(&a.min_effect).map_err(|_| {
        error::usage(format!(
            "--min-effect '{}' is not a percentage; write e.g. 1%",
            a.min_effect
        ))
    })?;
    let level = compare::parse_level(&a.level)?;
    let (side_a, side_b) = (compare::load_side(&a.a)?, compare::load_side(&a.b)?);
    let c = compare::compare(
        &side_a,
        &side_b,
        &CompareOptions {
            min_noise_pct,
            level,
        },
    );
    match format {
        "markdown" => print!("{}", render::markdown(&c)),
        "json" => println!("{}", serde_json::to_string_pretty(&c)?),
        _ => print!("{}", render::text(&c)),
    }
    if let Some(path) = &a.html {
        let page = compare::html::comparison_page(&c, &side_a, &side_b);
        crate::report::html::write_atomic(Path::new(path), page.as_bytes())?;
        eprintln!("pgstorm: comparison report written to {path}");
    }
    if let Some(t) = threshold {
        let failed = c.regressions(t);
        if !failed.is_empty() {
            for (scope, d) in &failed {
                eprintln!(
                    "pgstorm: regression beyond {t}%: {scope} {} {} (95% CI {})",
                    d.metric.label(),
                    render::pct(d),
                    render::ci(d)
                );
            }
            return Ok(ExitKind::CriteriaFailed.code());
        }
    }
    Ok(0)
}

/// `pgstorm report <folder>`: re-renders report.html from run.json.
pub fn report(a: &cli::ReportArgs) -> Result<i32> {
    let dir = Path::new(&a.folder);
    let doc = crate::report::read::read_run(dir)?;
    let path = dir.join("report.html");
    crate::report::html::write_atomic(&path, crate::report::html::run_page(&doc).as_bytes())?;
    println!("{}", path.display());
    Ok(0)
}

/// `pgstorm list`: the index (reconciled with the folders), filtered by label.
pub fn list(a: &cli::ListArgs) -> Result<i32> {
    let dir = Path::new(&a.results_dir);
    if !dir.is_dir() {
        return Err(error::usage(format!(
            "{} is not a folder; pass --results-dir to the folder holding result folders",
            dir.display()
        )));
    }
    let changed = crate::report::index::reconcile(dir)?;
    if changed {
        eprintln!(
            "pgstorm: {} was out of date with the result folders: rewritten",
            dir.join("index.csv").display()
        );
    }
    print!("{}", crate::report::index::render(dir, a.label.as_deref())?);
    Ok(0)
}

/// `pgstorm trend`: the terminal table on stdout, the page written atomically.
pub fn trend(a: &cli::TrendArgs) -> Result<i32> {
    use crate::compare::trend;
    let metric = trend::parse_metric(&a.metric)?;
    let dir = Path::new(&a.results_dir);
    if !dir.is_dir() {
        return Err(error::usage(format!(
            "{} is not a folder; pass --results-dir to the folder holding result folders",
            dir.display()
        )));
    }
    crate::report::index::reconcile(dir)?;
    let docs = crate::report::index::documents(dir)?;
    let trends = trend::trends(&docs, a.label.as_deref(), metric);
    if trends.is_empty() {
        return Err(error::usage(match &a.label {
            Some(l) => format!(
                "no run labelled {l} in {}; `pgstorm list --results-dir {}` shows the labels",
                dir.display(),
                dir.display()
            ),
            None => format!("no archived run in {}", dir.display()),
        }));
    }
    print!("{}", trend::render_text(&trends, metric));
    let path = a
        .html
        .as_ref()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.join("trend.html"));
    crate::report::html::write_atomic(&path, trend::page(&trends, metric).as_bytes())?;
    println!("{}", path.display());
    Ok(0)
}

/// `pgstorm merge A B ... --label L`: one result from runs on several load machines.
pub fn merge(a: &cli::MergeArgs, argv: &[String]) -> Result<i32> {
    if a.folders.len() < 2 {
        return Err(error::usage(
            "merge needs at least two result folders, one per load machine",
        ));
    }
    let mut runs = Vec::new();
    for f in &a.folders {
        let dir = Path::new(f);
        let doc = crate::report::read::read_run(dir)?;
        let log = std::fs::read(dir.join("latency.hlog")).ok();
        runs.push((doc, log));
    }
    let merged = crate::report::merge::merge(&runs, &a.label, argv)?;
    let mut doc = merged.doc;
    let extra: Vec<crate::report::archive::ExtraFile> = merged
        .log
        .map(|l| ("latency.hlog".to_string(), l))
        .into_iter()
        .collect();
    let dir = crate::report::archive::write(Path::new(&a.results_dir), &mut doc, &extra)
        .context("cannot archive the merged result")?;
    let merged = doc;
    print!("{}", crate::report::summary::render(&merged));
    println!("result: {}", dir.display());
    Ok(0)
}
