//! libpq's connection service file (`service=name` or `PGSERVICE`, read from `PGSERVICEFILE` or
//! `~/.pg_service.conf`): named sets of connection options.
//!
//! Format: INI-like, `[name]` starts a service, `key=value` lines follow, `#` starts a comment.
//! As in libpq, a service's options fill what the connection string leaves unset, and the
//! environment fills what both leave unset.
//!
//! Invariant: errors name the file, the service and the line number, never a value (a service
//! may hold a password).

use std::path::Path;

use anyhow::Result;

use crate::error;

/// The `key=value` options of service `name` in the file at `path`.
pub fn options(path: &Path, name: &str) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        error::usage(format!(
            "service '{name}' was asked for but the service file {} cannot be read: {e}; set \
             PGSERVICEFILE or create ~/.pg_service.conf",
            path.display()
        ))
    })?;
    let mut in_service = false;
    let mut found = false;
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_service = section == name;
            found |= in_service;
            continue;
        }
        if !in_service {
            continue;
        }
        let (k, v) = line.split_once('=').ok_or_else(|| {
            error::usage(format!(
                "syntax error in service file {}, line {}: expected key=value",
                path.display(),
                i + 1
            ))
        })?;
        out.push((k.trim().to_string(), v.trim().to_string()));
    }
    if !found {
        return Err(error::usage(format!(
            "definition of service '{name}' not found in {}",
            path.display()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_named_section_is_read_and_others_skipped() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            f.path(),
            "# services\n[other]\nhost=x\n\n[bench]\nhost = db1\nport=6543\nsslmode=verify-full\n",
        )
        .unwrap();
        let o = options(f.path(), "bench").unwrap();
        assert_eq!(
            o,
            [
                ("host".to_string(), "db1".to_string()),
                ("port".into(), "6543".into()),
                ("sslmode".into(), "verify-full".into())
            ]
        );
        let e = options(f.path(), "missing").unwrap_err();
        assert_eq!(error::exit_kind(&e), error::ExitKind::Usage);
        assert!(e.to_string().contains("'missing' not found"), "{e}");
    }
}
