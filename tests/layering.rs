//! Dependency direction, checked on the source tree: the report, the analysis and compare work on
//! the result document and `hist`, never on the engine, so a result read back from disk is as good
//! as one just measured. A file under those folders that names the engine's path fails here.

use std::path::{Path, PathBuf};

/// Folders whose code must not reach into the engine.
const ABOVE_THE_RESULT: [&str; 3] = ["src/report", "src/analysis", "src/compare"];

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
    out
}

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
