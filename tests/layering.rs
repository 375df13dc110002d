//! The direction of the crate's dependencies, checked on the source text: a module below another
//! never names it, so the lower one can be read, tested and changed without the upper one.
//!
//! Invariants checked here (see DESIGN.md, "Dependencies point one way"):
//! - `report/` never uses `compare/`: compare and trend read several archived runs and render
//!   their pages from report's building blocks, never the other way round;
//! - `monitor/` never uses `report/`: the monitor's model (samples, `HostInfo`) is carried by the
//!   result document, not defined by it.
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
