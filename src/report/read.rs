//! Reading a result folder back: its `run.json`, checked to be a pgstorm result document this
//! version can read. Every reader of archived results (list, trend, report, compare, merge) goes
//! through [`read_run`], so they accept and refuse the same folders.
//!
//! Invariant: every error names the path and what to give instead (exit 2).

use std::path::Path;

use anyhow::Result;

use super::model::{RunDocument, SCHEMA_VERSION};
use crate::error;

/// Reads `run.json` of a result folder.
pub fn read_run(dir: &Path) -> Result<RunDocument> {
    let path = dir.join("run.json");
    let bytes = std::fs::read(&path).map_err(|e| {
        error::usage(format!(
            "cannot read {} ({e}); give a result folder (it holds run.json) or a set folder (set.json)",
            path.display()
        ))
    })?;
    let doc: RunDocument = serde_json::from_slice(&bytes).map_err(|e| {
        error::usage(format!(
            "{} is not a pgstorm result document ({e}); give a folder written by pgstorm",
            path.display()
        ))
    })?;
    if doc.schema_version > SCHEMA_VERSION {
        return Err(error::usage(format!(
            "{} has schema_version {} but this pgstorm reads up to {SCHEMA_VERSION}; use a newer pgstorm",
            path.display(),
            doc.schema_version
        )));
    }
    Ok(doc)
}
