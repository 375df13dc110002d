//! Reading one side of a comparison: a result folder, a set folder written by `--repeat`, or a
//! comma-separated list of either.
//!
//! Invariant: every error names the path and what to give instead (exit 2).

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::error;
use crate::report::model::RunDocument;
pub use crate::report::read::read_run;
use crate::report::set;

/// The runs of one side.
#[derive(Debug, Clone)]
pub struct Side {
    /// What the user passed.
    pub spec: String,
    /// The documents, in the order given.
    pub runs: Vec<RunDocument>,
    /// Their folders.
    pub dirs: Vec<PathBuf>,
}

/// Expands a folder into run folders: itself, or the members of a set.
pub fn expand(dir: &Path) -> Result<Vec<PathBuf>> {
    if dir.join("run.json").is_file() {
        Ok(vec![dir.to_path_buf()])
    } else if dir.join(set::SET_FILE).is_file() {
        Ok(set::read(dir)?.1)
    } else {
        Err(error::usage(format!(
            "{} is neither a result folder (no run.json) nor a run set (no set.json); \
             give a folder under results/",
            dir.display()
        )))
    }
}

/// Loads one side from `spec` (folders separated by commas).
pub fn load_side(spec: &str) -> Result<Side> {
    let mut dirs = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        dirs.extend(expand(Path::new(part))?);
    }
    if dirs.is_empty() {
        return Err(error::usage(format!(
            "'{spec}' names no result folder; give e.g. results/20250101T000000Z-baseline"
        )));
    }
    let runs = dirs
        .iter()
        .map(|d| read_run(d))
        .collect::<Result<Vec<_>>>()?;
    Ok(Side {
        spec: spec.to_string(),
        runs,
        dirs,
    })
}
