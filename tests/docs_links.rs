//! The documentation names only things that exist: every relative link of README.md and
//! docs/*.md (file, and `#anchor` against the target's headings), every repository path they
//! name (`src/…`, `scripts/…`, `tests/…`, `benches/…`, `docs/…`, `schema/…`) and every archived
//! run folder (`results/<timestamp>-…`) must be there. A moved module or a renamed script then
//! fails here instead of sending a reader to nothing.
//!
//! Paths are read as written in the text, links as Markdown writes them (`[text](target)`);
//! a path followed by `<`, `*` or `{` is a pattern (`results/<time>-<label>/`), not a claim,
//! and is skipped, as are web addresses. No server is needed.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Top folders whose paths the text names as files of the repository.
const CHECKED_ROOTS: &[&str] = &["src/", "scripts/", "tests/", "benches/", "docs/", "schema/"];

/// One stale reference: where it is and what it names.
#[derive(Debug, PartialEq)]
struct Stale {
    file: String,
    line: usize,
    what: String,
}

/// The GitHub anchor of a heading: lower case, punctuation dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Lines of a Markdown text with a flag: inside a fenced code block.
fn lines_with_fence(text: &str) -> Vec<(usize, &str, bool)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            out.push((i + 1, line, true));
            continue;
        }
        out.push((i + 1, line, fenced));
    }
    out
}

/// The anchors of a Markdown text's headings (code blocks excluded), with GitHub's `-1`, `-2`
/// suffixes for repeated ones.
fn anchors(text: &str) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for (_, line, fenced) in lines_with_fence(text) {
        if fenced || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#');
        if !title.starts_with(' ') {
            continue;
        }
        let base = slug(title);
        let n = seen.entry(base.clone()).or_insert(0);
        out.push(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

/// Targets of the Markdown links and images of one line: what stands between `](` and `)`.
fn link_targets(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let Some(end) = after.find(')') else { break };
        let target = after[..end].split_whitespace().next().unwrap_or("");
        out.push(target.trim_matches(|c| c == '<' || c == '>').to_string());
        rest = &after[end..];
    }
    out
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-')
}

/// Repository paths named in one line: tokens starting with a checked root (or an archived run
/// folder under `results/`), not part of a longer path, and not a pattern.
fn named_paths(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    for (k, &(i, _)) in chars.iter().enumerate() {
        // A link's target is checked as a link, relative to its file.
        if k > 0 && (is_path_char(chars[k - 1].1) || line[..i].ends_with("](")) {
            continue;
        }
        let tail = &line[i..];
        let archived_run = tail.starts_with("results/")
            && tail["results/".len()..]
                .chars()
                .take(8)
                .filter(char::is_ascii_digit)
                .count()
                == 8;
        if !archived_run && !CHECKED_ROOTS.iter().any(|r| tail.starts_with(r)) {
            continue;
        }
        let len = tail.find(|c| !is_path_char(c)).unwrap_or(tail.len());
        if matches!(tail[len..].chars().next(), Some('<' | '*' | '{')) {
            continue;
        }
        let token = tail[..len].trim_end_matches('.');
        out.push(token.to_string());
    }
    out
}

/// Every stale link and path of one Markdown file (`file`, relative to `root`).
fn check_file(root: &Path, file: &str) -> Vec<Stale> {
    let path = root.join(file);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let dir = path.parent().unwrap_or(root).to_path_buf();
    let own_anchors = anchors(&text);
    let mut stale = Vec::new();
    let mut report = |line: usize, what: String| {
        stale.push(Stale {
            file: file.to_string(),
            line,
            what,
        })
    };
    for (n, line, fenced) in lines_with_fence(&text) {
        for p in named_paths(line) {
            if !root.join(&p).exists() {
                report(n, format!("path {p} does not exist"));
            }
        }
        if fenced {
            continue;
        }
        for target in link_targets(line) {
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file_part, anchor) = match target.split_once('#') {
                Some((f, a)) => (f, Some(a)),
                None => (target.as_str(), None),
            };
            let linked: PathBuf = if file_part.is_empty() {
                path.clone()
            } else {
                dir.join(file_part)
            };
            if !linked.exists() {
                report(n, format!("link {target}: {file_part} does not exist"));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            let known = if file_part.is_empty() {
                own_anchors.clone()
            } else if file_part.ends_with(".md") {
                anchors(&fs::read_to_string(&linked).unwrap_or_default())
            } else {
                continue;
            };
            if !known.iter().any(|a| a == anchor) {
                report(
                    n,
                    format!("link {target}: no heading with anchor #{anchor}"),
                );
            }
        }
    }
    stale
}

/// README.md and every docs/*.md, relative to `root`.
fn documents(root: &Path) -> Vec<String> {
    let mut files = vec!["README.md".to_string()];
    if let Ok(entries) = fs::read_dir(root.join("docs")) {
        let mut docs: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".md"))
            .map(|n| format!("docs/{n}"))
            .collect();
        docs.sort();
        files.extend(docs);
    }
    files
}

#[test]
fn readme_and_docs_name_only_what_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let stale: Vec<Stale> = documents(root)
        .iter()
        .flat_map(|f| check_file(root, f))
        .collect();
    let listing: Vec<String> = stale
        .iter()
        .map(|s| format!("{}:{}: {}", s.file, s.line, s.what))
        .collect();
    assert!(
        stale.is_empty(),
        "stale references in the documentation (fix the text or the path):\n{}",
        listing.join("\n")
    );
}

/// Positive control: a document with a stale path, a dead link and a missing anchor is caught,
/// and patterns, web links and existing paths are not.
#[test]
fn the_check_reports_what_is_stale() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("src/wire")).unwrap();
    fs::create_dir_all(root.join("docs")).unwrap();
    fs::write(root.join("docs/notes.md"), "# Notes\n\n## Real heading\n").unwrap();
    let readme = "# Title\n\n## Usage: `pgstorm run`\n\
        The wire protocol is in `src/wire.rs`, now src/wire/.\n\
        See [notes](docs/notes.md#real-heading), [gone](docs/gone.md), \
        [bad anchor](docs/notes.md#nowhere), [usage](#usage-pgstorm-run), [web](https://example.org/x).\n\
        Results go to results/<time>-<label>/ and results/*-before-set; \
        results/20260101T000000Z-quick is archived.\n\
        ```\n# not a heading\nscripts/missing.sh\n```\n";
    fs::write(root.join("README.md"), readme).unwrap();
    let stale: Vec<String> = documents(root)
        .iter()
        .flat_map(|f| check_file(root, f))
        .map(|s| format!("{}:{}: {}", s.file, s.line, s.what))
        .collect();
    assert_eq!(
        stale,
        vec![
            "README.md:4: path src/wire.rs does not exist",
            "README.md:5: link docs/gone.md: docs/gone.md does not exist",
            "README.md:5: link docs/notes.md#nowhere: no heading with anchor #nowhere",
            "README.md:6: path results/20260101T000000Z-quick does not exist",
            "README.md:9: path scripts/missing.sh does not exist",
        ]
    );
}

#[test]
fn anchors_follow_github() {
    assert_eq!(
        slug(" Pool-size sweep: `pgstorm sweep`"),
        "pool-size-sweep-pgstorm-sweep"
    );
    assert_eq!(
        anchors("# A\n## A\n```\n# A\n```\n## TLS and libpq conventions\n"),
        vec!["a", "a-1", "tls-and-libpq-conventions"]
    );
}
