//! Writing a result folder: run.json, CSVs, report.html, the HdrHistogram interval log, and the
//! index line.
//!
//! Invariants: a result folder appears complete or not at all. Everything is written into a hidden
//! temporary folder next to the final one and renamed into place; `index.csv` gets its line only
//! after the rename, in a single append. Nothing written here contains a password (the document
//! holds only redacted DSNs and the command line is redacted before it gets here).
//!
//! Nothing measured is lost: scenarios [`probe`] the results folder before they contact the
//! server (an unwritable folder is an input error, exit 2, before any load), and a result that
//! still cannot be written at the end goes to a fallback folder under the temp dir
//! ([`fallback_dir`]); the error then names both folders ([`WrittenElsewhere`], exit 4).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::csv_out;
use super::model::RunDocument;

/// Extra files a scenario wants in its folder (name, contents).
pub type ExtraFile = (String, Vec<u8>);

/// Folder name: `<UTC yyyymmddThhmmssZ>-<label>`, label reduced to `[A-Za-z0-9._-]`.
pub fn run_id(started: chrono::DateTime<chrono::Utc>, label: &str) -> String {
    let clean: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{}-{}", started.format("%Y%m%dT%H%M%SZ"), clean)
}

/// Creates `results_dir` and writes, then removes, a probe file in it: run before any server
/// contact, so a folder the result could not be written to fails the run before the load (a
/// usage error, exit 2, naming the folder and the OS error).
pub fn probe(results_dir: &Path) -> Result<()> {
    let fail = |what: &str, e: std::io::Error| {
        crate::error::usage(format!(
            "cannot {what} the results folder {}: {e}; pass --results-dir a folder you can write to",
            results_dir.display()
        ))
    };
    fs::create_dir_all(results_dir).map_err(|e| fail("create", e))?;
    let file = results_dir.join(format!(".pgstorm-probe-{}", std::process::id()));
    let written = fs::File::create_new(&file).and_then(|mut f| f.write_all(b"probe"));
    let removed = fs::remove_file(&file);
    written.map_err(|e| fail("write to", e))?;
    removed.map_err(|e| fail("remove a file from", e))
}

/// Where a result goes when its results folder cannot take it: `pgstorm-results` in the
/// system's temp dir (`TMPDIR`).
pub fn fallback_dir() -> PathBuf {
    std::env::temp_dir().join("pgstorm-results")
}

/// A result that could not be written to its results folder and was written to the fallback
/// folder instead (exit 4: the environment failed, the measurement is kept).
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot write the result to {}: {cause}; it was written to {} instead",
    wanted.display(),
    written.display()
)]
pub struct WrittenElsewhere {
    /// The results folder asked for.
    pub wanted: PathBuf,
    /// Why writing there failed (with the OS error).
    pub cause: String,
    /// The result folder written under [`fallback_dir`].
    pub written: PathBuf,
}

/// Writes the document and its companion files under `results_dir/<run_id>/`, atomically, and
/// appends to `results_dir/index.csv`. Returns the folder. The run_id is made unique by a suffix
/// if a folder of that name exists. When the folder cannot be written, writes it under
/// [`fallback_dir`] (without an index line), prints where, and fails with [`WrittenElsewhere`].
pub fn write(results_dir: &Path, doc: &mut RunDocument, extra: &[ExtraFile]) -> Result<PathBuf> {
    let err = match write_folder(results_dir, doc, extra) {
        Ok(dir) => {
            append_index(results_dir, doc)
                .with_context(|| format!("the result itself is in {}", dir.display()))?;
            return Ok(dir);
        }
        Err(e) => e,
    };
    let fallback = fallback_dir();
    match write_folder(&fallback, doc, extra) {
        Ok(written) => {
            eprintln!(
                "pgstorm: cannot write the result to {}; written to {} instead",
                results_dir.display(),
                written.display()
            );
            Err(WrittenElsewhere {
                wanted: results_dir.to_path_buf(),
                cause: format!("{err:#}"),
                written,
            }
            .into())
        }
        Err(e) => Err(anyhow::anyhow!(
            "cannot write the result to {}: {err:#}; nor to the fallback folder {}: {e:#}",
            results_dir.display(),
            fallback.display()
        )),
    }
}

/// Writes the result folder under `results_dir` (no index line, no fallback); returns it.
fn write_folder(results_dir: &Path, doc: &mut RunDocument, extra: &[ExtraFile]) -> Result<PathBuf> {
    doc.run_id = free_name(results_dir, &doc.run_id)?;
    let doc = &*doc;
    place(results_dir, &doc.run_id, |tmp| write_into(tmp, doc, extra))
}

/// Writes `files` alone into a new folder `results_dir/<run_id>/` (made unique like a result
/// folder's), atomically; no run.json and no index line. Returns the folder.
pub fn write_files(results_dir: &Path, run_id: &str, files: &[ExtraFile]) -> Result<PathBuf> {
    let id = free_name(results_dir, run_id)?;
    place(results_dir, &id, |tmp| {
        fs::create_dir_all(tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        files
            .iter()
            .try_for_each(|(name, bytes)| write_file(&tmp.join(name), bytes))
    })
}

/// Creates `results_dir` and returns `run_id`, suffixed `-2`, `-3`, ... if a folder of that name
/// exists.
fn free_name(results_dir: &Path, run_id: &str) -> Result<String> {
    fs::create_dir_all(results_dir).with_context(|| {
        format!(
            "cannot create the results folder {}; pass --results-dir to a writable folder",
            results_dir.display()
        )
    })?;
    let mut id = run_id.to_string();
    let mut n = 1;
    while results_dir.join(&id).exists() {
        n += 1;
        id = format!("{run_id}-{n}");
    }
    Ok(id)
}

/// Fills a hidden temporary folder with `fill` and renames it to `results_dir/<name>`; on
/// failure removes the temporary folder, so the result appears complete or not at all.
fn place(
    results_dir: &Path,
    name: &str,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let final_dir = results_dir.join(name);
    let tmp = results_dir.join(format!(".tmp-{name}-{}", std::process::id()));
    let result = fill(&tmp).and_then(|()| {
        fs::rename(&tmp, &final_dir).with_context(|| {
            format!(
                "cannot move {} into place as {}",
                tmp.display(),
                final_dir.display()
            )
        })
    });
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    Ok(final_dir)
}

fn write_into(dir: &Path, doc: &RunDocument, extra: &[ExtraFile]) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let json = serde_json::to_vec_pretty(doc)?;
    write_file(&dir.join("run.json"), &json)?;
    if let Some(load) = &doc.load {
        write_file(&dir.join("summary.csv"), &csv_out::summary(load)?)?;
        write_file(&dir.join("timeseries.csv"), &csv_out::timeseries(load)?)?;
    }
    if let Some(m) = &doc.monitoring {
        write_file(&dir.join("resources.csv"), &csv_out::resources(m)?)?;
    }
    if let Some(iso) = &doc.isolation {
        write_file(&dir.join("isolation.csv"), &super::isolation::csv(iso)?)?;
    }
    write_file(
        &dir.join("report.html"),
        super::html::run_page(doc).as_bytes(),
    )?;
    for (name, bytes) in extra {
        write_file(&dir.join(name), bytes)?;
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f =
        fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Columns of `index.csv`.
pub const INDEX_HEADER: &str =
    "run_id,started_at,label,scenario,host,server_version,clients,tps,p99_ms,errors,verdict,shared_buffers,work_mem,max_connections";

/// The index line of `doc`, in [`INDEX_HEADER`] order.
pub fn index_row(doc: &RunDocument) -> Vec<String> {
    let load = doc.load.as_ref();
    let setting = |k: &str| {
        doc.target
            .server
            .settings
            .get(k)
            .cloned()
            .unwrap_or_default()
    };
    vec![
        doc.run_id.clone(),
        doc.started_at.clone(),
        doc.label.clone(),
        doc.scenario.clone(),
        doc.host.hostname.clone(),
        doc.target.server.server_version.clone(),
        load.map(|l| l.config.clients.to_string())
            .or_else(|| doc.connections.as_ref().map(|c| c.peak_open.to_string()))
            .unwrap_or_default(),
        load.map(|l| format!("{:.1}", l.summary.tps))
            .unwrap_or_default(),
        load.map(|l| format!("{:.3}", l.summary.latency.p99_ms))
            .unwrap_or_default(),
        load.map(|l| l.summary.errors.values().sum::<u64>().to_string())
            .or_else(|| {
                doc.connections
                    .as_ref()
                    .map(|c| c.failed_operations.to_string())
            })
            .unwrap_or_default(),
        if doc.interrupted { "interrupted" } else { "" }.to_string(),
        setting("shared_buffers"),
        setting("work_mem"),
        setting("max_connections"),
    ]
}

/// Appends one line for `doc` to `results_dir/index.csv` (creating it with a header).
pub fn append_index(results_dir: &Path, doc: &RunDocument) -> Result<()> {
    let path = results_dir.join("index.csv");
    let new = !path.exists();
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    if new {
        w.write_record(INDEX_HEADER.split(','))?;
    }
    w.write_record(index_row(doc))?;
    let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot append to {}", path.display()))?;
    // One write call: concurrent runs appending to the same index do not interleave lines.
    f.write_all(&bytes)
        .with_context(|| format!("cannot append to {}", path.display()))
}
