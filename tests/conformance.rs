//! Differential conformance against pgbench itself: every script of tests/corpus/conformance/,
//! plus a batch of randomly generated expressions, runs once through the installed `pgbench` and
//! once through `pgstorm queries` on the same sandbox with the same seed (one client unless the
//! case says otherwise, one transaction), and the two outcomes are compared:
//!
//! - the class: success, input error (the script is refused before the run), or abort (the
//!   client stops at run time), and the exit status that goes with it;
//! - the message: pgbench's first error text (without its file/line prefix and its
//!   `in command` suffix) must appear in pgstorm's output, and an input error must name the
//!   same file and line;
//! - the values: each `debug()` line's payload (`int 5`, `double Infinity`, `null`, ...), in
//!   order. Scripts expose what they compute through `debug()`, which pgbench prints exactly.
//!
//! pgbench is the oracle. A difference is intentional only when the README lists it ("pgbench
//! conformance"); the one the comparison meets is the exit status of a refused script (2, the
//! house's code for input errors, where pgbench says 1), so such a case counts as an intentional
//! difference when all else agrees. Every other difference fails the test, which prints a
//! summary line: cases, agreements, intentional differences, unintended differences.
//!
//! A case file may start with lines of extra arguments for both tools, one run each:
//! `-- args: -M simple -D x=1`.
//! `scripts/conformance.sh` runs this test with more generated expressions
//! (`PGSTORM_CONFORMANCE_FUZZ=<count>[:<seed>]`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use pgstorm::rng::Rng;

/// The run seed both tools get.
const SEED: &str = "7";
/// Generated expressions in the default run, and the generator's seed.
const FUZZ_COUNT: usize = 300;
const FUZZ_SEED: u64 = 19;

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
enum Class {
    Ok,
    Input,
    Abort,
}

#[derive(Debug)]
struct Outcome {
    class: Class,
    code: i32,
    /// pgbench: the core of its first error; pgstorm: all it printed.
    message: String,
    /// `file:line` of an input error (pgbench).
    location: Option<String>,
    /// The message is the server's (pgbench).
    server_error: bool,
    values: Vec<String>,
}

fn debug_values(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.starts_with("debug("))
        .filter_map(|l| l.split_once("): ").map(|(_, v)| v.to_string()))
        .collect()
}

/// The runs of a case: one per `-- args:` line at its top (none: one run without extra
/// arguments), so one script can run under several protocols.
fn case_runs(text: &str) -> Vec<Vec<String>> {
    let runs: Vec<Vec<String>> = text
        .lines()
        .map_while(|l| l.strip_prefix("-- args:"))
        .map(|a| a.split_whitespace().map(str::to_string).collect())
        .collect();
    if runs.is_empty() {
        vec![Vec::new()]
    } else {
        runs
    }
}

/// `--random-seed SEED` and `-c 1` unless the case gives its own.
fn default_args(case_args: &[String]) -> Vec<&'static str> {
    let given = |flag: &str| case_args.iter().any(|a| a == flag);
    let mut out = Vec::new();
    if !given("--random-seed") {
        out.extend(["--random-seed", SEED]);
    }
    if !given("-c") {
        out.extend(["-c", "1"]);
    }
    out
}

/// The `debug()` values of a run; with several clients their lines interleave in no fixed
/// order in either tool, so they are compared as a sorted multiset.
fn values_of(stderr: &str, case_args: &[String]) -> Vec<String> {
    let mut v = debug_values(stderr);
    if case_args.iter().any(|a| a == "-c") {
        v.sort();
    }
    v
}

fn run_pgbench(case: &Path, args: &[String]) -> Outcome {
    let sb = common::sandbox();
    common::database("conformance");
    let out = Command::new("pgbench")
        .args(["-n", "-t", "1"])
        .args(default_args(args))
        .args([
            "-h",
            sb.host(),
            "-p",
            &sb.port().to_string(),
            "-U",
            sb.user(),
        ])
        .args(args)
        .arg("-f")
        .arg(case)
        .arg("conformance")
        .env_remove("PGPASSWORD")
        .output()
        .expect("run pgbench (PostgreSQL 15's pgbench must be on PATH)");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let code = out.status.code().unwrap_or(-1);
    let first = stderr
        .lines()
        .find_map(|l| l.strip_prefix("pgbench: error: "))
        .unwrap_or("");
    let file = case.file_name().unwrap().to_string_lossy().to_string();
    // `path/case.sql:3: message (detail) in command "set"` for an input error.
    let (location, message) = match first.find(&format!("{file}:")) {
        Some(at) => {
            let rest = &first[at..];
            let (loc, msg) = rest.split_once(": ").map_or((rest, ""), |(l, m)| (l, m));
            let msg = msg.rsplit_once(" in command ").map_or(msg, |(m, _)| m);
            (Some(loc.to_string()), msg.to_string())
        }
        None => {
            // A server error: keep the server's message after "ERROR:  "; a misplaced \if
            // block: keep what follows `condition error in script "path" command N: `.
            let msg = first.rsplit_once("ERROR:  ").map_or(first, |(_, m)| m);
            let msg = match msg.strip_prefix("condition error in script ") {
                Some(rest) => rest.split_once(": ").map_or(rest, |(_, m)| m),
                None => msg,
            };
            (None, msg.to_string())
        }
    };
    Outcome {
        class: match code {
            0 => Class::Ok,
            1 => Class::Input,
            _ => Class::Abort,
        },
        code,
        server_error: first.contains("ERROR:  "),
        message,
        location,
        values: values_of(&stderr, args),
    }
}

fn run_pgstorm(case: &Path, args: &[String], results: &Path) -> Outcome {
    let dsn = common::database("conformance");
    let out = common::pgstorm_command()
        .args(["queries", "--dsn", &dsn, "-t", "1"])
        .args(default_args(args))
        .arg("--results-dir")
        .arg(results)
        .args(args)
        .arg("-f")
        .arg(case)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "pgstorm panicked: {stderr}");
    let code = out.status.code().unwrap_or(-1);
    let ran = stdout.contains("result: ");
    let failed = stdout.contains("transactions failed") || stderr.contains("aborted");
    Outcome {
        class: if !ran && code == 2 {
            Class::Input
        } else if failed || code == 2 {
            Class::Abort
        } else {
            Class::Ok
        },
        code,
        message: format!("{stdout}\n{stderr}"),
        location: None,
        server_error: false,
        values: values_of(&stderr, args),
    }
}

/// Why pgstorm's outcome differs from pgbench's, or `None` when they agree.
fn difference(pgbench: &Outcome, pgstorm: &Outcome) -> Option<String> {
    if pgbench.class != pgstorm.class {
        return Some(format!(
            "class: pgbench {:?} (exit {}, {:?}), pgstorm {:?} (exit {})",
            pgbench.class, pgbench.code, pgbench.message, pgstorm.class, pgstorm.code
        ));
    }
    // pgstorm's exit statuses: 0 ok, 2 for an input error (the house's usage/input code where
    // pgbench says 1) and for aborted clients (as pgbench).
    if !pgstorm.message.contains(&pgbench.message) {
        let kind = if pgbench.server_error {
            SERVER_MESSAGE
        } else {
            "message"
        };
        return Some(format!(
            "{kind}: pgbench says {:?}, pgstorm does not: {}",
            pgbench.message,
            pgstorm.message.trim()
        ));
    }
    if let Some(loc) = &pgbench.location {
        if !pgstorm.message.contains(&format!("{loc}:")) {
            return Some(format!("location: pgbench names {loc}, pgstorm does not"));
        }
    }
    if pgbench.values != pgstorm.values {
        let at = pgbench
            .values
            .iter()
            .zip(&pgstorm.values)
            .position(|(a, b)| a != b)
            .unwrap_or(pgbench.values.len().min(pgstorm.values.len()));
        return Some(format!(
            "values: {} from pgbench, {} from pgstorm; first difference at #{}: pgbench {:?}, pgstorm {:?}",
            pgbench.values.len(),
            pgstorm.values.len(),
            at + 1,
            pgbench.values.get(at),
            pgstorm.values.get(at)
        ));
    }
    let expected_code = match pgbench.class {
        Class::Ok => 0,
        Class::Input | Class::Abort => 2,
    };
    if pgstorm.code != expected_code {
        return Some(format!(
            "{ABORT_EXIT}: pgbench {} ({:?}: {}), pgstorm {} (expected {expected_code})",
            pgbench.code, pgbench.class, pgbench.message, pgstorm.code
        ));
    }
    None
}

/// How [`difference`] starts a difference in exit status alone.
const ABORT_EXIT: &str = "exit status";
/// How [`difference`] starts a server error message that pgstorm does not show.
const SERVER_MESSAGE: &str = "server message";

/// A seeded generator of valid expressions, typed so that evaluation cannot fail: integers
/// stay far from overflow, divisors are never zero, shifts stay below 64, and doubles may
/// become Infinity or NaN (compared as pgbench prints them).
struct ExprGen {
    rng: Rng,
}

impl ExprGen {
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.rng.range_i64(0, xs.len() as i64 - 1) as usize]
    }

    fn small(&mut self) -> i64 {
        self.rng.range_i64(-100, 100)
    }

    fn int(&mut self, depth: u32) -> String {
        if depth == 0 || self.rng.range_i64(0, 3) == 0 {
            return match self.rng.range_i64(0, 7) {
                0 => {
                    let lo = self.small();
                    format!("random({lo}, {})", lo + self.rng.range_i64(0, 200))
                }
                1 => format!("random_exponential(1, 50, {}.5)", self.rng.range_i64(0, 5)),
                2 => format!("random_gaussian(-20, 20, {}.0)", self.rng.range_i64(2, 6)),
                3 => format!("random_zipfian(1, 30, 1.{})", self.rng.range_i64(1, 9)),
                4 => format!(
                    "permute({}, {}, {})",
                    self.small(),
                    self.rng.range_i64(1, 50),
                    self.small()
                ),
                5 => format!("(hash({}) % 1000)", self.small()),
                6 => format!("int({}.5)", self.small()),
                _ => self.small().to_string(),
            };
        }
        let d = depth - 1;
        match self.rng.range_i64(0, 11) {
            0 => format!("({} + {})", self.int(d), self.int(d)),
            1 => format!("({} - {})", self.int(d), self.int(d)),
            2 => format!("({} * {})", self.int(0), self.int(0)),
            3 => format!("({} / (abs({}) + 1))", self.int(d), self.int(d)),
            4 => format!("({} % (abs({}) + 1))", self.int(d), self.int(d)),
            5 => {
                let op = self.pick(&["&", "|", "#"]);
                format!("({} {op} {})", self.int(d), self.int(d))
            }
            6 => {
                let op = self.pick(&["<<", ">>"]);
                format!("({} {op} {})", self.int(0), self.rng.range_i64(0, 8))
            }
            7 => format!("abs({})", self.int(d)),
            8 => {
                let f = self.pick(&["least", "greatest"]);
                format!("{f}({}, {}, {})", self.int(d), self.int(d), self.int(0))
            }
            9 => format!(
                "CASE WHEN {} THEN {} ELSE {} END",
                self.boolean(d),
                self.int(d),
                self.int(d)
            ),
            10 => format!("(-{})", self.int(d)),
            _ => format!("mod({}, {})", self.int(d), self.rng.range_i64(1, 9)),
        }
    }

    fn double(&mut self, depth: u32) -> String {
        if depth == 0 || self.rng.range_i64(0, 3) == 0 {
            return match self.rng.range_i64(0, 5) {
                0 => "pi()".into(),
                1 => format!("double({})", self.small()),
                2 => format!("{}e{}", self.small(), self.rng.range_i64(-3, 3)),
                3 => format!("{}.{}", self.small(), self.rng.range_i64(0, 999)),
                4 => "null".into(),
                _ => format!("{}.25", self.small()),
            };
        }
        let d = depth - 1;
        match self.rng.range_i64(0, 8) {
            0 => {
                let op = self.pick(&["+", "-", "*", "/"]);
                format!("({} {op} {})", self.double(d), self.double(d))
            }
            1 => {
                let op = self.pick(&["+", "-", "*", "/"]);
                format!("({} {op} {})", self.int(d), self.double(d))
            }
            2 => format!("sqrt(abs({}))", self.double(d)),
            3 => format!("ln(abs({}) + 1)", self.double(d)),
            4 => format!("exp({} / 100.0)", self.double(d)),
            5 => format!("pow({}, {})", self.double(d), self.rng.range_i64(-2, 3)),
            6 => format!("abs({})", self.double(d)),
            7 => format!("greatest({}, {})", self.double(d), self.int(d)),
            _ => format!("(-{})", self.double(d)),
        }
    }

    fn boolean(&mut self, depth: u32) -> String {
        if depth == 0 {
            return self.pick(&["true", "false", "null"]).into();
        }
        let d = depth - 1;
        match self.rng.range_i64(0, 6) {
            0 => {
                let op = self.pick(&["<", "<=", ">", ">=", "=", "<>", "!="]);
                format!("({} {op} {})", self.int(d), self.int(d))
            }
            1 => {
                let op = self.pick(&["<", ">=", "=", "<>"]);
                format!("({} {op} {})", self.double(d), self.double(d))
            }
            2 => {
                let op = self.pick(&["AND", "OR"]);
                format!("({} {op} {})", self.boolean(d), self.boolean(d))
            }
            3 => format!("(NOT {})", self.boolean(d)),
            4 => {
                let t = self.pick(&["NULL", "NOT NULL", "TRUE", "FALSE"]);
                format!("({} IS {t})", self.boolean(d))
            }
            5 => format!("({} IS NULL)", self.double(d)),
            _ => self.pick(&["true", "false"]).into(),
        }
    }

    /// One expression of any type.
    fn any(&mut self) -> String {
        match self.rng.range_i64(0, 2) {
            0 => self.int(3),
            1 => self.double(3),
            _ => self.boolean(3),
        }
    }
}

/// The generated script: `\set eN debug(<expr>)` per expression, then one SQL command.
fn fuzz_script(count: usize, seed: u64) -> String {
    let mut g = ExprGen {
        rng: Rng::new(seed),
    };
    let mut s = String::new();
    for i in 0..count {
        s.push_str(&format!("\\set e{i} debug({})\n", g.any()));
    }
    s.push_str("SELECT 1;\n");
    s
}

fn fuzz_config() -> (usize, u64) {
    match std::env::var("PGSTORM_CONFORMANCE_FUZZ") {
        Ok(v) => {
            let (n, s) = v.split_once(':').unwrap_or((&v, ""));
            (
                n.parse()
                    .expect("PGSTORM_CONFORMANCE_FUZZ=<count>[:<seed>]"),
                s.parse().unwrap_or(FUZZ_SEED),
            )
        }
        Err(_) => (FUZZ_COUNT, FUZZ_SEED),
    }
}

#[test]
fn pgstorm_runs_scripts_as_pgbench_does() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/conformance");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    cases.sort();
    // The generated expressions run in batches, so a generator slip that aborts one batch
    // still leaves the others compared.
    let (count, seed) = fuzz_config();
    let batch = 100;
    for (i, start) in (0..count).step_by(batch).enumerate() {
        let path = tmp.path().join(format!("fuzz_{i:03}.sql"));
        let n = batch.min(count - start);
        std::fs::write(&path, fuzz_script(n, seed.wrapping_add(i as u64))).unwrap();
        cases.push(path);
    }

    let (mut agree, mut intentional, mut unintended) = (0, 0, Vec::new());
    let mut values = 0;
    let runs: Vec<(&PathBuf, Vec<String>)> = cases
        .iter()
        .flat_map(|c| {
            case_runs(&std::fs::read_to_string(c).unwrap())
                .into_iter()
                .map(move |args| (c, args))
        })
        .collect();
    for (case, args) in &runs {
        let file = case.file_name().unwrap().to_string_lossy().to_string();
        let name = if args.is_empty() {
            file
        } else {
            format!("{file} [{}]", args.join(" "))
        };
        let a = run_pgbench(case, args);
        let b = run_pgstorm(case, args, &tmp.path().join("results"));
        values += a.values.len();
        match difference(&a, &b) {
            None if a.class == Class::Input => intentional += 1,
            None => agree += 1,
            Some(why) => unintended.push(format!("{name}: {why}")),
        }
    }
    println!(
        "conformance: {} cases ({values} values compared), {agree} agree, {intentional} \
         intentional differences, {} unintended differences",
        runs.len(),
        unintended.len()
    );
    for u in &unintended {
        println!("  {u}");
    }
    assert_eq!(
        unintended.len(),
        0,
        "unintended differences from pgbench:\n{}",
        unintended.join("\n")
    );
}

#[test]
fn the_expression_generator_is_seeded_and_varied() {
    assert_eq!(fuzz_script(20, 5), fuzz_script(20, 5));
    assert_ne!(fuzz_script(20, 5), fuzz_script(20, 6));
    let s = fuzz_script(300, 1);
    for needle in [
        "random_zipfian",
        "permute",
        "CASE WHEN",
        "IS NULL",
        " / ",
        "<<",
    ] {
        assert!(s.contains(needle), "no {needle} in {s}");
    }
}
