//! `pgstorm study`: an interleaved A/B study. Side A and side B run alternately, pair after pair,
//! in a counterbalanced order (A B, B A, A B, ...: [`StudyMark::a_runs_first`]), each applied by
//! its own SQL file just before each of its runs, so whatever drifts over the study (dead rows,
//! caches, the host) hits both sides alike, and a steady drift does not favour the side that
//! runs second. Every run is
//! archived as `pgstorm queries` archives it, marked with the study's id, its side and its pair;
//! each side gets a set folder; and the two sets are compared pair by pair.
//!
//! How a side is applied, and why: the file runs statement by statement on pgstorm's own
//! connection, not on the load's, so it can change the server for every connection the next run
//! opens (ALTER SYSTEM, an index, a table's storage parameters). A file with ALTER SYSTEM is
//! followed by `pg_reload_conf()`, and the run waits until the reload took effect (the
//! connection's `pg_conf_load_time()` moves), because new backends read the configuration the
//! postmaster holds. The server is left as the last run's side set it: B after an odd number of
//! pairs, A after an even number.
//!
//! Invariants: the side files are read and split before a server is contacted (a missing or
//! empty file is exit 2); each run goes through the queries scenario's own per-run path
//! ([`queries::repeat_on`]), so it gets whatever that path does before and after a run; a
//! statement a side's file cannot run stops the study with exit 2, naming the file and the
//! statement.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::queries::{self, Outcome, QueriesOptions};
use super::session::Session;
use crate::compare::{self, render, CompareOptions, Comparison, Side};
use crate::report::archive;
use crate::report::model::StudyMark;

/// How long a configuration reload may take to reach pgstorm's own connection.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// One side of a study.
#[derive(Debug, Clone, PartialEq)]
pub struct StudySide {
    /// Label of its runs and set.
    pub label: String,
    /// The SQL file that applies it.
    pub file: PathBuf,
    /// The file's statements, in order.
    pub statements: Vec<String>,
    /// The file holds ALTER SYSTEM: reload the configuration after it.
    pub reload: bool,
}

/// Options of a study.
#[derive(Debug, Clone)]
pub struct StudyOptions {
    /// The load of every run (its label is replaced by the side's).
    pub queries: QueriesOptions,
    /// The baseline.
    pub a: StudySide,
    /// The candidate.
    pub b: StudySide,
    /// Pairs of runs.
    pub pairs: u32,
}

/// What a study produced.
pub struct StudyOutcome {
    /// The set folders of A and B.
    pub sets: (PathBuf, PathBuf),
    /// The pair-by-pair comparison of the two sets.
    pub comparison: Comparison,
}

/// Parses `label=NAME,sql=FILE` (the value of `--a` or `--b`) and reads the file.
pub fn parse_side(flag: &str, spec: &str) -> Result<StudySide> {
    let bad = |why: String| {
        crate::error::usage(format!(
            "{flag} '{spec}': {why}; write {flag} label=NAME,sql=FILE"
        ))
    };
    let (mut label, mut file) = (None, None);
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some(("label", v)) if !v.trim().is_empty() => label = Some(v.trim().to_string()),
            Some(("sql", v)) if !v.trim().is_empty() => file = Some(PathBuf::from(v.trim())),
            _ => return Err(bad(format!("'{part}' is not label=NAME or sql=FILE"))),
        }
    }
    let label = label.ok_or_else(|| bad("no label".into()))?;
    let file = file.ok_or_else(|| bad("no sql file".into()))?;
    let text = std::fs::read_to_string(&file).map_err(|e| {
        bad(format!(
            "cannot read {} ({e}); give a file of SQL statements",
            file.display()
        ))
    })?;
    let statements = split_statements(&text);
    if statements.is_empty() {
        return Err(bad(format!(
            "{} holds no SQL statement; put in it what makes this side (e.g. ALTER SYSTEM SET \
             synchronous_commit = off;)",
            file.display()
        )));
    }
    let reload = statements
        .iter()
        .any(|s| s.to_ascii_uppercase().contains("ALTER SYSTEM"));
    Ok(StudySide {
        label,
        file,
        statements,
        reload,
    })
}

/// Splits SQL text into statements at semicolons outside quotes ('...', "..."), dollar quotes
/// and comments; a statement that is only comments and blanks is dropped.
pub fn split_statements(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let (mut out, mut start, mut i, mut has_code) = (Vec::new(), 0, 0, false);
    let mut push = |from: usize, to: usize, has_code: bool| {
        let s = text[from..to].trim();
        if has_code && !s.is_empty() {
            out.push(s.to_string());
        }
    };
    while i < b.len() {
        match b[i] {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = text[i..].find('\n').map_or(b.len(), |n| i + n);
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                // Block comments nest in PostgreSQL.
                let mut depth = 0;
                while i < b.len() {
                    if b[i..].starts_with(b"/*") {
                        depth += 1;
                        i += 2;
                    } else if b[i..].starts_with(b"*/") {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            q @ (b'\'' | b'"') => {
                has_code = true;
                // A doubled quote inside is the quote itself: it closes and reopens.
                i = text[i + 1..]
                    .find(q as char)
                    .map_or(b.len(), |n| i + 1 + n + 1);
                continue;
            }
            b'$' => {
                has_code = true;
                let tag_len = text[i + 1..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .map(|n| n + 2);
                if let Some(len) = tag_len.filter(|&l| b.get(i + l - 1) == Some(&b'$')) {
                    let tag = &text[i..i + len];
                    i = text[i + len..]
                        .find(tag)
                        .map_or(b.len(), |n| i + len + n + len);
                    continue;
                }
            }
            b';' => {
                push(start, i, has_code);
                start = i + 1;
                has_code = false;
            }
            c if !c.is_ascii_whitespace() => has_code = true,
            _ => {}
        }
        i += 1;
    }
    push(start, b.len(), has_code);
    out
}

/// Runs a side's statements on the admin connection and, after ALTER SYSTEM, reloads the
/// configuration and waits until it took effect; then refreshes the settings snapshot the run's
/// document records.
fn apply(session: &mut Session, side: &StudySide) -> Result<()> {
    let loaded_before: Option<std::time::SystemTime> = if side.reload {
        Some(
            session
                .admin
                .query_one("SELECT pg_conf_load_time()", &[])?
                .get(0),
        )
    } else {
        None
    };
    for (i, stmt) in side.statements.iter().enumerate() {
        session.admin.batch_execute(stmt).map_err(|e| {
            crate::error::usage(format!(
                "{} (side {}): statement {} failed: {}; fix the file",
                side.file.display(),
                side.label,
                i + 1,
                crate::target::one_line(&e)
            ))
        })?;
    }
    if let Some(before) = loaded_before {
        session
            .admin
            .batch_execute("SELECT pg_reload_conf()")
            .map_err(|e| {
                crate::error::target(format!(
                    "{} (side {}) holds ALTER SYSTEM, but the configuration cannot be reloaded: \
                     {}; connect as a superuser or a role granted pg_reload_conf()",
                    side.file.display(),
                    side.label,
                    crate::target::one_line(&e)
                ))
            })?;
        let deadline = Instant::now() + RELOAD_TIMEOUT;
        loop {
            let now: std::time::SystemTime = session
                .admin
                .query_one("SELECT pg_conf_load_time()", &[])?
                .get(0);
            if now > before {
                break;
            }
            if Instant::now() >= deadline {
                return Err(crate::error::target(format!(
                    "the configuration reload after {} (side {}) did not take effect within {} s; \
                     look for errors in the server log",
                    side.file.display(),
                    side.label,
                    RELOAD_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    session.server = crate::target::server_info(&mut session.admin)?;
    Ok(())
}

/// The study's id: when it started, and what it compares.
fn study_id(opts: &StudyOptions) -> String {
    archive::run_id(
        chrono::Utc::now(),
        &format!("{}-vs-{}", opts.a.label, opts.b.label),
    )
}

/// Runs the study on a new session.
pub fn run(opts: &StudyOptions) -> Result<StudyOutcome> {
    archive::probe(&opts.queries.archive.results_dir)?;
    let mut session = Session::open(&opts.queries.target)?;
    run_on(&mut session, opts)
}

/// Runs the study on an existing session: the pairs, a set per side, the comparison.
pub fn run_on(session: &mut Session, opts: &StudyOptions) -> Result<StudyOutcome> {
    let id = study_id(opts);
    let sides = [("a", &opts.a), ("b", &opts.b)];
    let mut outcomes: [Vec<Outcome>; 2] = [Vec::new(), Vec::new()];
    let side_opts = |name: &str, side: &StudySide| QueriesOptions {
        archive: queries::ArchiveOptions {
            label: side.label.clone(),
            ..opts.queries.archive.clone()
        },
        study: Some(StudyMark {
            id: id.clone(),
            side: name.to_string(),
            pair: 0,
            pairs: opts.pairs,
        }),
        ..opts.queries.clone()
    };
    for pair in 0..opts.pairs {
        let order = if StudyMark::a_runs_first(pair) {
            [0, 1]
        } else {
            [1, 0]
        };
        for (i, k) in order.into_iter().enumerate() {
            let (name, side) = sides[k];
            eprintln!(
                "pgstorm: study {id}: pair {} of {}, side {} ({}): applying {}",
                pair + 1,
                opts.pairs,
                name.to_ascii_uppercase(),
                side.label,
                side.file.display()
            );
            apply(session, side)?;
            let mut o = side_opts(name, side);
            if let Some(mark) = &mut o.study {
                mark.pair = pair;
            }
            // Only the first run waits for --start-at.
            if pair > 0 || i > 0 {
                o.start_at = None;
            }
            let (runs, _) = queries::repeat_on(session, &o, 1)?;
            outcomes[k].extend(runs);
        }
    }
    let [runs_a, runs_b] = outcomes;
    let set_a = queries::write_set(&side_opts("a", &opts.a), &runs_a)?;
    let set_b = queries::write_set(&side_opts("b", &opts.b), &runs_b)?;
    let side = |dir: &Path, runs: Vec<Outcome>| Side {
        spec: dir.display().to_string(),
        dirs: runs.iter().map(|o| o.dir.clone()).collect(),
        runs: runs.into_iter().map(|o| o.doc).collect(),
    };
    let comparison = compare::compare(
        &side(&set_a, runs_a),
        &side(&set_b, runs_b),
        &CompareOptions::default(),
    );
    if opts.queries.print_summary {
        println!(
            "\nstudy {id}: {} pairs\n{}",
            opts.pairs,
            render::text(&comparison)
        );
        println!(
            "compare again with: pgstorm compare {} {}",
            set_a.display(),
            set_b.display()
        );
    }
    Ok(StudyOutcome {
        sets: (set_a, set_b),
        comparison,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_outside_quotes_dollar_quotes_and_comments() {
        let sql = "-- side B; no sync\nALTER SYSTEM SET synchronous_commit = 'off';\n\
                   /* a; /* nested; */ comment */ SELECT 'a;''b', \"x;y\";\n\
                   DO $f$ BEGIN PERFORM 1; END $f$;\n;  -- trailing; comment\nSELECT $1";
        assert_eq!(
            split_statements(sql),
            vec![
                "-- side B; no sync\nALTER SYSTEM SET synchronous_commit = 'off'",
                "/* a; /* nested; */ comment */ SELECT 'a;''b', \"x;y\"",
                "DO $f$ BEGIN PERFORM 1; END $f$",
                "-- trailing; comment\nSELECT $1",
            ]
        );
        assert!(split_statements("-- nothing\n;;/* here */").is_empty());
    }

    #[test]
    fn a_side_needs_a_label_and_a_readable_file_of_statements() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("b.sql");
        std::fs::write(&file, "ALTER SYSTEM SET synchronous_commit = off;").unwrap();
        let spec = format!("label=async,sql={}", file.display());
        let side = parse_side("--b", &spec).unwrap();
        assert_eq!(side.label, "async");
        assert!(side.reload);
        assert_eq!(side.statements.len(), 1);
        let empty = dir.path().join("empty.sql");
        std::fs::write(&empty, "-- nothing yet\n").unwrap();
        for bad in [
            "label=x".to_string(),
            format!("sql={}", file.display()),
            format!("label=x,sql={}", dir.path().join("missing.sql").display()),
            format!("label=x,sql={}", empty.display()),
            format!("label=x,sql={},colour=red", file.display()),
        ] {
            let e = parse_side("--b", &bad).unwrap_err();
            assert_eq!(
                crate::error::exit_kind(&e),
                crate::error::ExitKind::Usage,
                "{bad}"
            );
            assert!(e.to_string().contains("--b"), "{e}");
        }
    }
}
