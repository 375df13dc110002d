//! `results/index.csv` kept consistent with the result folders, and `pgstorm list`.
//!
//! Invariants: the index has exactly one line per result folder (a folder holding run.json),
//! ordered by start time; when it has drifted (a folder deleted or copied in by hand, a line lost
//! to a crash) [`reconcile`] rewrites it from the documents, atomically (temp file + rename).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use super::archive::{index_row, INDEX_HEADER};
use super::model::RunDocument;

fn read_rows(path: &Path) -> Result<Vec<Vec<String>>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    r.records()
        .map(|rec| {
            rec.map(|r| r.iter().map(str::to_string).collect())
                .with_context(|| format!("{} is not valid CSV", path.display()))
        })
        .collect()
}

/// The documents of every result folder in `dir` (unreadable ones skipped with a note on
/// stderr), in start order.
pub fn documents(dir: &Path) -> Result<Vec<RunDocument>> {
    let mut docs = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let p = entry?.path();
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        if hidden || !p.join("run.json").is_file() {
            continue;
        }
        match super::read::read_run(&p) {
            Ok(d) => docs.push(d),
            Err(e) => eprintln!("pgstorm: skipping {}: {e:#}", p.display()),
        }
    }
    docs.sort_by(|a, b| (&a.started_at, &a.run_id).cmp(&(&b.started_at, &b.run_id)));
    Ok(docs)
}

/// Rewrites `dir/index.csv` from the result folders when it does not list exactly those folders,
/// once each, with the current header. Returns true when it rewrote it.
pub fn reconcile(dir: &Path) -> Result<bool> {
    let path = dir.join("index.csv");
    let rows = read_rows(&path)?;
    let docs = documents(dir)?;
    let header_ok = fs::read_to_string(&path)
        .map(|s| s.lines().next() == Some(INDEX_HEADER))
        .unwrap_or(docs.is_empty());
    let listed: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.first().map(String::as_str))
        .collect();
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    let folders: BTreeSet<&str> = docs.iter().map(|d| d.run_id.as_str()).collect();
    if header_ok && unique.len() == listed.len() && unique == folders {
        return Ok(false);
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(INDEX_HEADER.split(','))?;
    for d in &docs {
        w.write_record(index_row(d))?;
    }
    let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    super::html::write_atomic(&path, &bytes)?;
    Ok(true)
}

/// The index as an aligned table, only `label` when given.
pub fn render(dir: &Path, label: Option<&str>) -> Result<String> {
    let rows = read_rows(&dir.join("index.csv"))?;
    let header: Vec<&str> = INDEX_HEADER.split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let shown = [
        "run_id",
        "label",
        "host",
        "server_version",
        "clients",
        "tps",
        "p99_ms",
        "errors",
        "verdict",
        "shared_buffers",
    ];
    let idx: Vec<usize> = shown.iter().filter_map(|n| col(n)).collect();
    let label_col = col("label").unwrap_or(2);
    let picked: Vec<Vec<&str>> = rows
        .iter()
        .filter(|r| label.is_none_or(|l| r.get(label_col).map(String::as_str) == Some(l)))
        .map(|r| {
            idx.iter()
                .map(|i| r.get(*i).map_or("", String::as_str))
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = shown.iter().map(|s| s.len()).collect();
    for r in &picked {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut s = String::new();
    let line = |s: &mut String, cells: &[&str]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(s, "{}", parts.join("  ").trim_end());
    };
    line(&mut s, &shown);
    for r in &picked {
        line(&mut s, r);
    }
    if picked.is_empty() {
        let _ = writeln!(
            s,
            "(no runs{})",
            label.map_or(String::new(), |l| format!(" with label {l}"))
        );
    }
    let sets = sets(dir, label)?;
    if !sets.is_empty() {
        let _ = writeln!(s, "\nsets of repeated runs (give one to compare):");
        for (name, set) in sets {
            let _ = writeln!(s, "{name}  {} runs, label {}", set.runs.len(), set.label);
        }
    }
    Ok(s)
}

/// Set folders (written by `--repeat`) in `dir`, by name, only `label` when given.
fn sets(dir: &Path, label: Option<&str>) -> Result<Vec<(String, super::set::RunSet)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let p = entry?.path();
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if name.starts_with('.') || !p.join(super::set::SET_FILE).is_file() {
            continue;
        }
        if let Ok((set, _)) = super::set::read(&p) {
            if label.is_none_or(|l| l == set.label) {
                out.push((name, set));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}
