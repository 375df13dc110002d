//! The direction of the crate's dependencies, checked on the source text: a module below another
//! never names it, so the lower one can be read, tested and changed without the upper one.
//!
//! Invariants checked here (see DESIGN.md, "Dependencies point one way"):
//! - `report/` never uses `compare/`: compare and trend read several archived runs and render
//!   their pages from report's building blocks, never the other way round;
//! - `monitor/` never uses `report/`: the monitor's model (samples, `HostInfo`) is carried by the
//!   result document, not defined by it;
//! - `report/`, `analysis/` and `compare/` never name the engine: they work on the result document
//!   and `hist`, so a result read back from disk is as good as one just measured.
//!
//! A use is any path through the module (`compare::`, `crate::{compare, ..}`) outside a comment.

use std::fs;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            fs::read_dir(&d).unwrap_or_else(|e| panic!("cannot list {}: {e}", d.display()));
        for entry in entries {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// True when `code` (one line, comments removed) names `module` as a path segment: `module::`
/// or an item of a `{..}` use group, not as part of a longer identifier.
fn names_module(code: &str, module: &str) -> bool {
    code.match_indices(module).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        let after = code[i + module.len()..].trim_start();
        let starts_path = before.is_none_or(|c| !is_ident(c));
        let in_group =
            code[..i].contains('{') && (after.starts_with(',') || after.starts_with('}'));
        starts_path && (after.starts_with("::") || in_group)
    })
}

/// The lines (1-based, with their text) of `source` that use `module`.
fn uses_of(source: &str, module: &str) -> Vec<(usize, String)> {
    source
        .lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let code = line.split("//").next().unwrap_or("");
            names_module(code, module).then(|| (i + 1, line.trim().to_string()))
        })
        .collect()
}

/// Every use of `module` in the files under `src/<dir>`, as `path:line: text`.
fn forbidden_uses(dir: &str, module: &str) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
    let files = rust_files(&root);
    assert!(!files.is_empty(), "no source under {}", root.display());
    let mut out = Vec::new();
    for f in files {
        let text = fs::read_to_string(&f).unwrap();
        let shown = f.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(&f);
        for (n, line) in uses_of(&text, module) {
            out.push(format!("{}:{n}: {line}", shown.display()));
        }
    }
    out
}

#[test]
fn the_checker_sees_a_forbidden_use() {
    let source = "use crate::compare::Side;\n\
                  use crate::{compare, error};\n\
                  let x = crate::compare::load::read_run(p);\n\
                  use super::super::compare::{Comparison};\n\
                  // compare::Side in a comment is no use\n\
                  let comparer::x = compared::y; // a longer name is another module\n\
                  fn compare_runs() {}\n";
    let lines: Vec<usize> = uses_of(source, "compare").iter().map(|u| u.0).collect();
    assert_eq!(lines, vec![1, 2, 3, 4]);
}

#[test]
fn report_never_uses_compare() {
    let found = forbidden_uses("report", "compare");
    assert!(
        found.is_empty(),
        "report/ must not use compare/ (compare builds on report, not the reverse); move the \
         code to compare/ or the shared piece down into report/:\n{}",
        found.join("\n")
    );
}

#[test]
fn monitor_never_uses_report() {
    let found = forbidden_uses("monitor", "report");
    assert!(
        found.is_empty(),
        "monitor/ must not use report/ (the result document carries the monitor's model); move \
         the type into monitor/model.rs and re-export it from report::model:\n{}",
        found.join("\n")
    );
}

/// Folders whose code must not reach into the engine.
const ABOVE_THE_RESULT: [&str; 3] = ["src/report", "src/analysis", "src/compare"];

/// Whether `line` names pgstorm's engine module as a path (`crate::engine::…`, `engine::…` after a
/// `use crate::{engine, …}`, `pgstorm::engine`, `super::…::engine`), not another crate's `engine`
/// (`base64::engine::general_purpose`).
fn names_engine(line: &str) -> bool {
    line.match_indices("engine").any(|(at, _)| {
        let before = &line[..at];
        let after = &line[at + "engine".len()..];
        if before.ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            return false;
        }
        let qualified_by_other_crate = before.ends_with("::")
            && !["crate::", "pgstorm::", "super::"]
                .iter()
                .any(|p| before.ends_with(p));
        let path = after.starts_with("::");
        let imported =
            before.trim_start().starts_with("use ") && after.starts_with([',', ';', '}']);
        !qualified_by_other_crate && (path || imported)
    })
}

/// `file:line: text` of every line under `dirs` (relative to `root`) that names the engine.
fn engine_references(root: &Path, dirs: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for dir in dirs {
        for file in rust_files(&root.join(dir)) {
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                if names_engine(line) {
                    let shown = file.strip_prefix(root).unwrap_or(&file);
                    found.push(format!("{}:{}: {}", shown.display(), n + 1, line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn report_analysis_and_compare_never_import_the_engine() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = engine_references(root, &ABOVE_THE_RESULT);
    assert!(
        found.is_empty(),
        "these files reach into the engine; use the result document (report::model) or \
         crate::hist instead:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_sees_an_engine_import_and_ignores_other_crates_engines() {
    for line in [
        "use crate::engine::stats::Hist;",
        "    let h = crate::engine::stats::decode(s)?;",
        "use crate::{engine, report};",
        "use super::super::engine::collector;",
        "use pgstorm::engine::stats;",
        "fn f(h: &engine::stats::Hist) {}",
    ] {
        assert!(names_engine(line), "missed: {line}");
    }
    for line in [
        "base64::engine::general_purpose::STANDARD.encode(b)",
        "use base64::Engine as _;",
        "//! never on engine internals",
        "let engine_count = 3;",
    ] {
        assert!(!names_engine(line), "false alarm: {line}");
    }

    let dir = std::env::temp_dir().join(format!("pgstorm-layering-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("src/report/html")).unwrap();
    std::fs::write(dir.join("src/report/ok.rs"), "use crate::hist::Hist;\n").unwrap();
    std::fs::write(
        dir.join("src/report/html/bad.rs"),
        "//! charts\n\nuse crate::engine::stats::Hist;\n",
    )
    .unwrap();
    let found = engine_references(&dir, &["src/report"]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("bad.rs:3:"), "{found:?}");
}
