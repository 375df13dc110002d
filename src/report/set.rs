//! A set of repeated runs (`--repeat N`): a folder holding `set.json`, which names its member run
//! folders (siblings in the same results folder), so `compare` can treat the runs as samples.
//!
//! Invariants: a set folder is written atomically after all its runs are archived, and only lists
//! runs that exist; members are stored by run_id (relative), so a results folder can be moved.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Name of the file that marks a set folder.
pub const SET_FILE: &str = "set.json";

/// Contents of `set.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunSet {
    /// Layout version of this file.
    pub schema_version: u32,
    /// User label shared by the runs.
    pub label: String,
    /// When the set was written (RFC 3339, UTC).
    pub created_at: String,
    /// Member run folders (run_ids), in the order they ran.
    pub runs: Vec<String>,
    /// What is wrong with the set as a sample (e.g. drift run over run); absent when nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Writes `results_dir/<first run's timestamp>-<label>-set/set.json` atomically, with the set's
/// `warnings`; returns the folder.
pub fn write(
    results_dir: &Path,
    label: &str,
    runs: &[String],
    warnings: &[String],
) -> Result<PathBuf> {
    let now = chrono::Utc::now();
    let mut name = format!("{}-set", super::archive::run_id(now, label));
    let mut n = 1;
    while results_dir.join(&name).exists() {
        n += 1;
        name = format!("{}-set-{n}", super::archive::run_id(now, label));
    }
    let set = RunSet {
        schema_version: 1,
        label: label.to_string(),
        created_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        runs: runs.to_vec(),
        warnings: warnings.to_vec(),
    };
    let tmp = results_dir.join(format!(".tmp-{name}-{}", std::process::id()));
    let final_dir = results_dir.join(&name);
    let result = fs::create_dir_all(&tmp)
        .and_then(|()| fs::write(tmp.join(SET_FILE), serde_json::to_vec_pretty(&set)?))
        .and_then(|()| fs::rename(&tmp, &final_dir))
        .with_context(|| format!("cannot write the run set {}", final_dir.display()));
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result.map(|()| final_dir)
}

/// Reads a set folder; returns the set and the member folders.
pub fn read(dir: &Path) -> Result<(RunSet, Vec<PathBuf>)> {
    let path = dir.join(SET_FILE);
    let bytes = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let set: RunSet = serde_json::from_slice(&bytes).map_err(|e| {
        crate::error::usage(format!(
            "{} is not a pgstorm run set ({e}); give a folder written by --repeat",
            path.display()
        ))
    })?;
    let parent = dir.parent().unwrap_or(Path::new("."));
    let members = set.runs.iter().map(|r| parent.join(r)).collect();
    Ok((set, members))
}
