//! Machine-readable output: `--output-format json` prints the result document on stdout and
//! nothing else there; `--progress-format ndjson` makes each progress line one JSON object (the
//! collector writes those, see `engine::collector`).
//!
//! Invariant: with json output, stdout carries only result documents, so `pgstorm ... | jq` always
//! parses. Rather than teach every scenario to stay quiet, the process's stdout descriptor is
//! pointed at stderr for the whole command ([`JsonStdout::capture`]): summaries, notes and the
//! output of child processes (the sandbox's initdb and pg_ctl) all land on stderr, and the
//! documents the command archived are written to the original stdout at the end
//! ([`JsonStdout::emit`]). One document is printed as run.json holds it; several (`--repeat`,
//! a study) one per line, compact (JSON Lines).

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::FromRawFd;
use std::path::PathBuf;

use anyhow::{Context, Result};

/// What a command that makes a result prints on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// The summary for people (the default).
    #[default]
    Text,
    /// The result document(s), nothing else.
    Json,
}

/// Parses `--output-format` (argh `from_str_fn`).
pub fn output_format(s: &str) -> Result<OutputFormat, String> {
    match s {
        "text" => Ok(OutputFormat::Text),
        "json" => Ok(OutputFormat::Json),
        other => Err(format!(
            "'{other}' is not an output format; use text or json"
        )),
    }
}

/// How progress lines are written (on stderr either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressFormat {
    /// pgbench's `progress: ...` lines (the default).
    #[default]
    Text,
    /// One JSON object per line.
    Ndjson,
}

/// Parses `--progress-format` (argh `from_str_fn`).
pub fn progress_format(s: &str) -> Result<ProgressFormat, String> {
    match s {
        "text" => Ok(ProgressFormat::Text),
        "ndjson" => Ok(ProgressFormat::Ndjson),
        other => Err(format!(
            "'{other}' is not a progress format; use text or ndjson"
        )),
    }
}

/// The original stdout, kept aside while file descriptor 1 points at stderr.
pub struct JsonStdout {
    original: File,
}

impl JsonStdout {
    /// Points stdout at stderr until [`emit`](Self::emit), keeping the original for the documents.
    pub fn capture() -> Result<JsonStdout> {
        io::stdout().flush().context("cannot flush stdout")?;
        // SAFETY: dup and dup2 on descriptors 1 and 2, which the process owns for its lifetime;
        // the duplicate is a fresh descriptor owned by the File from here on.
        unsafe {
            let saved = libc::dup(1);
            if saved < 0 {
                return Err(io::Error::last_os_error()).context("cannot duplicate stdout");
            }
            let original = File::from_raw_fd(saved);
            if libc::dup2(2, 1) < 0 {
                return Err(io::Error::last_os_error())
                    .context("cannot point stdout at stderr for --output-format json");
            }
            Ok(JsonStdout { original })
        }
    }

    /// Restores stdout and writes the run.json of each folder in `written` on it (only those of
    /// scenario `only` when given): one document as it is on disk, several one per line.
    pub fn emit(mut self, written: &[PathBuf], only: Option<&str>) -> Result<()> {
        io::stdout().flush().context("cannot flush stdout")?;
        // SAFETY: the kept descriptor is open (owned by `self.original`); dup2 onto 1 restores it.
        if unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&self.original), 1) } < 0 {
            return Err(io::Error::last_os_error()).context("cannot restore stdout");
        }
        let mut docs = Vec::new();
        for dir in written {
            let path = dir.join("run.json");
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let doc: serde_json::Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            if only.is_none_or(|s| doc["scenario"] == s) {
                docs.push((bytes, doc));
            }
        }
        let mut out = Vec::new();
        for (bytes, doc) in &docs {
            if docs.len() == 1 {
                out.extend_from_slice(bytes.trim_ascii_end());
            } else {
                out.extend_from_slice(doc.to_string().as_bytes());
            }
            out.push(b'\n');
        }
        self.original
            .write_all(&out)
            .and_then(|()| self.original.flush())
            .context("cannot write the result document on stdout")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_a_wrong_one_names_the_choices() {
        assert_eq!(output_format("json"), Ok(OutputFormat::Json));
        assert_eq!(output_format("text"), Ok(OutputFormat::Text));
        assert!(output_format("yaml").unwrap_err().contains("text or json"));
        assert_eq!(progress_format("ndjson"), Ok(ProgressFormat::Ndjson));
        assert!(progress_format("json")
            .unwrap_err()
            .contains("text or ndjson"));
    }
}
