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
            WRITTEN.lock().push(dir.clone());
            append_index(results_dir, doc)
                .with_context(|| format!("the result itself is in {}", dir.display()))?;
            return Ok(dir);
        }
        Err(e) => e,
    };
    let fallback = fallback_dir();
    match write_folder(&fallback, doc, extra) {
        Ok(written) => {
            WRITTEN.lock().push(written.clone());
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

/// Result folders [`write()`] wrote in this process, in order, until [`take_written`].
static WRITTEN: parking_lot::Mutex<Vec<PathBuf>> = parking_lot::Mutex::new(Vec::new());

/// The result folders [`write()`] wrote (or fell back to) since the last call, in order: what
/// `--output-format json` prints, whichever scenario, repetition or study wrote them.
pub fn take_written() -> Vec<PathBuf> {
    std::mem::take(&mut *WRITTEN.lock())
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
    let run_start = unix_s_of(&doc.started_at);
    // A row with a `t_s` is timed from the load's start (the monitor's for resources.csv).
    let load_start = doc
        .load
        .as_ref()
        .and_then(|l| l.started_unix_s)
        .or_else(|| doc.connections.as_ref().and_then(|c| c.started_unix_s));
    let stamped = |csv: Vec<u8>, t0: Option<f64>| {
        csv_out::stamp(&csv, &doc.run_id, |t_s| match t_s {
            Some(t) => t0.map(|t0| t0 + t),
            None => run_start,
        })
    };
    if let Some(load) = &doc.load {
        let summary = stamped(csv_out::summary(load)?, load_start)?;
        write_file(&dir.join("summary.csv"), &summary)?;
        let series = stamped(csv_out::timeseries(load)?, load_start)?;
        write_file(&dir.join("timeseries.csv"), &series)?;
    }
    if let Some(m) = &doc.monitoring {
        let resources = stamped(csv_out::resources(m)?, unix_s_of(&m.started_at))?;
        write_file(&dir.join("resources.csv"), &resources)?;
    }
    if let Some(iso) = &doc.isolation {
        let cases = stamped(super::isolation::csv(iso)?, None)?;
        write_file(&dir.join("isolation.csv"), &cases)?;
    }
    write_file(
        &dir.join("report.html"),
        super::html::run_page(doc).as_bytes(),
    )?;
    for (name, bytes) in extra {
        if name.ends_with(".csv") {
            write_file(&dir.join(name), &stamped(bytes.clone(), load_start)?)?;
        } else {
            write_file(&dir.join(name), bytes)?;
        }
    }
    Ok(())
}

/// Unix seconds of an RFC 3339 time; `None` when it does not parse (a hand-edited document).
fn unix_s_of(rfc3339: &str) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp_micros() as f64 / 1e6)
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
    "run_id,started_at,label,scenario,host,server_version,clients,tps,p99_ms,errors,verdict,shared_buffers,work_mem,max_connections,n_star,best_tps";

/// The index line of `doc`, in [`INDEX_HEADER`] order.
pub fn index_row(doc: &RunDocument) -> Vec<String> {
    let load = doc.load.as_ref();
    let sweep = doc.sweep.as_ref();
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
        verdict(doc).to_string(),
        setting("shared_buffers"),
        setting("work_mem"),
        setting("max_connections"),
        sweep
            .and_then(|s| s.usl.as_ref())
            .and_then(|u| u.limit_n)
            .map(|n| n.to_string())
            .unwrap_or_default(),
        sweep
            .and_then(|s| s.levels.iter().map(|l| l.tps).reduce(f64::max))
            .map(|t| format!("{t:.1}"))
            .unwrap_or_default(),
    ]
}

/// Whether the index at `path` starts with [`INDEX_HEADER`] (an unreadable file counts as not).
fn has_current_header(path: &Path) -> bool {
    use std::io::BufRead;
    fs::File::open(path)
        .ok()
        .and_then(|f| std::io::BufReader::new(f).lines().next())
        .and_then(|l| l.ok())
        .is_some_and(|l| l == INDEX_HEADER)
}

/// The index's verdict of `doc`: `interrupted` (its figures cover part of the run), else the
/// criteria's `pass` or `fail`, else `no criteria` (none were evaluated: only `pgstorm run`
/// evaluates them, and a run whose scenarios all were absent has nothing to judge).
pub fn verdict(doc: &RunDocument) -> &'static str {
    use super::findings::CriterionStatus;
    if doc.interrupted {
        return "interrupted";
    }
    match doc.criteria.as_ref().map(|c| c.verdict) {
        Some(CriterionStatus::Pass) => "pass",
        Some(CriterionStatus::Fail) => "fail",
        Some(CriterionStatus::NotEvaluated) | None => "no criteria",
    }
}

/// Appends one line for `doc` to `results_dir/index.csv` (creating it with a header). An index
/// written by an older version (another header) is rewritten from the result folders instead,
/// `doc`'s already in place among them, so its lines get the current columns.
pub fn append_index(results_dir: &Path, doc: &RunDocument) -> Result<()> {
    let path = results_dir.join("index.csv");
    let new = !path.exists();
    if !new && !has_current_header(&path) {
        return super::index::reconcile(results_dir).map(|_| ());
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::findings::CriterionStatus;

    fn archived(folder: &str) -> RunDocument {
        let path = format!("{}/results/{folder}/run.json", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_slice(&fs::read(path).unwrap()).expect("an archived run loads")
    }

    fn quick_run() -> RunDocument {
        archived("20261126T223209Z-quick")
    }

    fn column(row: &[String], name: &str) -> String {
        let i = INDEX_HEADER.split(',').position(|h| h == name).unwrap();
        row[i].clone()
    }

    #[test]
    fn the_index_verdict_is_pass_fail_no_criteria_or_interrupted() {
        let mut doc = quick_run();
        let mut verdict_with = |status: Option<CriterionStatus>, interrupted: bool| {
            match (status, doc.criteria.as_mut()) {
                (Some(s), Some(c)) => c.verdict = s,
                (Some(_), None) => panic!("the quick run has criteria"),
                (None, _) => doc.criteria = None,
            }
            doc.interrupted = interrupted;
            column(&index_row(&doc), "verdict")
        };
        assert_eq!(verdict_with(Some(CriterionStatus::Pass), false), "pass");
        assert_eq!(verdict_with(Some(CriterionStatus::Fail), false), "fail");
        assert_eq!(
            verdict_with(Some(CriterionStatus::NotEvaluated), false),
            "no criteria"
        );
        assert_eq!(verdict_with(None, false), "no criteria");
        assert_eq!(verdict_with(None, true), "interrupted");
    }

    #[test]
    fn a_sweep_row_carries_its_concurrency_limit_and_best_throughput() {
        let doc = archived("20261126T213200Z-sweep");
        let sw = doc.sweep.as_ref().unwrap();
        let row = index_row(&doc);
        let n_star = sw.usl.as_ref().and_then(|u| u.limit_n).unwrap();
        assert_eq!(column(&row, "n_star"), n_star.to_string());
        let best = sw.levels.iter().map(|l| l.tps).fold(0.0, f64::max);
        assert_eq!(column(&row, "best_tps"), format!("{best:.1}"));
        // A run that is not a sweep leaves both empty.
        let row = index_row(&quick_run());
        assert_eq!(
            (column(&row, "n_star"), column(&row, "best_tps")),
            ("".into(), "".into())
        );
    }

    #[test]
    fn an_index_of_an_older_version_is_rewritten_with_the_current_columns() {
        let dir = tempfile::tempdir().unwrap();
        let old_header = "run_id,started_at,label,scenario,host,server_version,clients,tps,\
                          p99_ms,errors,verdict,shared_buffers,work_mem,max_connections";
        let mut first = quick_run();
        first.run_id = "old-run".into();
        write_folder(dir.path(), &mut first, &[]).unwrap();
        let old_line = "old-run,2026-11-26T22:32:09Z,quick,run,h,15,10,100.0,1.0,0,,128MB,4MB,100";
        fs::write(
            dir.path().join("index.csv"),
            format!("{old_header}\n{old_line}\n"),
        )
        .unwrap();

        let mut second = quick_run();
        second.run_id = "new-run".into();
        second.started_at = "2026-11-27T10:00:00Z".into();
        write(dir.path(), &mut second, &[]).unwrap();

        let text = fs::read_to_string(dir.path().join("index.csv")).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(INDEX_HEADER));
        let rows: Vec<Vec<String>> = csv::Reader::from_reader(text.as_bytes())
            .records()
            .map(|r| r.unwrap().iter().map(str::to_string).collect())
            .collect();
        let ids: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(ids, ["old-run", "new-run"], "{text}");
        let width = INDEX_HEADER.split(',').count();
        assert!(rows.iter().all(|r| r.len() == width), "{text}");
        assert!(
            rows.iter().all(|r| column(r, "verdict") == "pass"),
            "{text}"
        );
    }

    #[test]
    fn every_csv_row_carries_the_run_id_and_its_unix_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut doc = quick_run();
        let t0 = 1_764_196_329.25;
        doc.load.as_mut().unwrap().started_unix_s = Some(t0);
        let extra = vec![(
            "pool_timeseries.csv".to_string(),
            b"t_s,open\n2.5,3\n".to_vec(),
        )];
        let folder = write_folder(dir.path(), &mut doc, &extra).unwrap();
        let read = |name: &str| -> Vec<csv::StringRecord> {
            let mut r = csv::Reader::from_path(folder.join(name)).unwrap();
            let h = r.headers().unwrap().clone();
            let n = h.len();
            assert_eq!((&h[n - 2], &h[n - 1]), ("run_id", "unix_s"), "{name}");
            r.records().map(|r| r.unwrap()).collect()
        };
        let series = read("timeseries.csv");
        let load = doc.load.as_ref().unwrap();
        assert_eq!(series.len(), load.timeseries.len());
        for (row, p) in series.iter().zip(&load.timeseries) {
            let n = row.len();
            assert_eq!(&row[n - 2], doc.run_id);
            let unix: f64 = row[n - 1].parse().unwrap();
            assert!((unix - (t0 + p.t_s)).abs() < 0.002, "{row:?}");
            // The existing columns keep their place.
            assert_eq!(
                row[0].parse::<f64>().unwrap(),
                (p.t_s * 1000.0).round() / 1000.0
            );
        }
        let run_start = chrono::DateTime::parse_from_rfc3339(&doc.started_at).unwrap();
        for row in read("summary.csv") {
            let unix: f64 = row[row.len() - 1].parse().unwrap();
            assert!((unix - run_start.timestamp_millis() as f64 / 1000.0).abs() < 0.002);
        }
        let m = doc.monitoring.as_ref().unwrap();
        let m_start = chrono::DateTime::parse_from_rfc3339(&m.started_at).unwrap();
        for row in read("resources.csv") {
            let t_s: f64 = row[1].parse().unwrap();
            let unix: f64 = row[row.len() - 1].parse().unwrap();
            let want = m_start.timestamp_millis() as f64 / 1000.0 + t_s;
            assert!((unix - want).abs() < 0.002, "{row:?}");
        }
        let pool = read("pool_timeseries.csv");
        assert_eq!(&pool[0][2], doc.run_id);
        assert_eq!(&pool[0][3], &format!("{:.3}", t0 + 2.5));
    }
}
