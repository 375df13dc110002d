//! libpq's password file (`~/.pgpass`, `PGPASSFILE`, `passfile=`): a password for a target that
//! names none.
//!
//! Format, as libpq reads it: one `hostname:port:database:username:password` per line; `*` in
//! any of the first four fields matches anything; `\` escapes `:` and `\`; lines starting with
//! `#` are comments; the first matching line wins. A Unix-socket host matches `localhost`.
//!
//! Invariants: a file with group or world access is ignored with one warning (libpq's rule), as
//! is a missing default file (silently); the password itself is never part of a message.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What the password file gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The first matching line's password.
    Found(String),
    /// No file, or no line matches.
    NotFound,
    /// The file was not used; the warning says why (one line, no password).
    Ignored(String),
}

/// Looks up the password for one host/port/database/user in the file at `path`.
pub fn lookup(path: &Path, host: &str, port: u16, database: &str, user: &str) -> Lookup {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(_) => return Lookup::NotFound,
    };
    if !meta.is_file() {
        return Lookup::Ignored(format!(
            "password file {} is not a plain file; it is ignored",
            path.display()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        return Lookup::Ignored(format!(
            "password file {} has group or world access; permissions should be u=rw (0600) or \
             less; it is ignored (chmod 600 it)",
            path.display()
        ));
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return Lookup::Ignored(format!(
                "cannot read password file {}: {e}; it is ignored",
                path.display()
            ))
        }
    };
    let port = port.to_string();
    let wanted = [host, port.as_str(), database, user];
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(fields) = fields(line) else {
            continue;
        };
        if fields[..4]
            .iter()
            .zip(wanted)
            .all(|(f, w)| f == "*" || f == w)
        {
            return Lookup::Found(fields[4].clone());
        }
    }
    Lookup::NotFound
}

/// The five fields of a line, unescaped; `None` for a line with fewer.
fn fields(line: &str) -> Option<[String; 5]> {
    let mut out: Vec<String> = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.last_mut()?.extend(chars.next()),
            // The password is the rest of the line: a later ':' belongs to it.
            ':' if out.len() < 5 => out.push(String::new()),
            c => out.last_mut()?.push(c),
        }
    }
    out.try_into().ok()
}

/// The host name a line must match: a Unix-socket directory counts as `localhost`.
pub fn host_key(host: &postgres::config::Host) -> String {
    match host {
        postgres::config::Host::Tcp(h) => h.clone(),
        postgres::config::Host::Unix(_) => "localhost".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file(text: &str, mode: u32) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        f
    }

    #[test]
    fn first_match_wins_with_wildcards_and_escapes() {
        let f = file(
            "# comment\n\
             db1:5432:*:alice:first\n\
             *:*:*:alice:second\n\
             h\\:x:*:d:bob:pa\\:ss:with:colons\n",
            0o600,
        );
        let get = |h, p, d, u| lookup(f.path(), h, p, d, u);
        assert_eq!(
            get("db1", 5432, "x", "alice"),
            Lookup::Found("first".into())
        );
        assert_eq!(
            get("db1", 5433, "x", "alice"),
            Lookup::Found("second".into())
        );
        assert_eq!(
            get("h:x", 1, "d", "bob"),
            Lookup::Found("pa:ss:with:colons".into())
        );
        assert_eq!(get("h", 1, "d", "bob"), Lookup::NotFound);
    }

    #[test]
    fn a_file_others_can_read_is_ignored_with_a_warning() {
        let f = file("*:*:*:*:secret\n", 0o644);
        match lookup(f.path(), "h", 1, "d", "u") {
            Lookup::Ignored(w) => {
                assert!(w.contains("group or world access"), "{w}");
                assert!(!w.contains("secret"), "{w}");
            }
            other => panic!("{other:?}"),
        }
        // Positive control: the same file at 0600 is used.
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            lookup(f.path(), "h", 1, "d", "u"),
            Lookup::Found("secret".into())
        );
    }

    #[test]
    fn a_missing_file_is_not_found() {
        assert_eq!(
            lookup(Path::new("/nonexistent/pgpass"), "h", 1, "d", "u"),
            Lookup::NotFound
        );
    }
}
