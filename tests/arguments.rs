//! Arguments never panic: random argument vectors built from the real subcommands and flags go
//! through the parser and validator in-process (`app::plan`, which contacts no server) and give
//! a usage error or a validated plan; and each argument that used to panic is exit 2, one line,
//! from the real binary.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use pgstorm::app::{self, Plan};
use pgstorm::args::MAX_SECS;
use pgstorm::error::{exit_kind, ExitKind};
use pgstorm::rng::Rng;

/// The help text of `args` (e.g. `["queries", "--help"]`).
fn help(args: &[&str]) -> String {
    match app::plan(args) {
        Ok(Plan::Help(text)) => text,
        _ => panic!("no help text for {args:?}"),
    }
}

/// The subcommands, read from the top-level help ("Commands:" section).
fn subcommands() -> Vec<String> {
    let text = help(&["--help"]);
    let section = text.split("Commands:").nth(1).expect("a Commands section");
    section
        .lines()
        // "  name   description"; wrapped description lines are indented further.
        .filter_map(|l| l.strip_prefix("  ").filter(|r| !r.starts_with(' ')))
        .filter_map(|r| r.split_whitespace().next())
        .filter(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        .map(str::to_string)
        .collect()
}

/// One flag of a subcommand's usage line: its name and whether it takes a value.
struct Flag {
    name: String,
    takes_value: bool,
}

/// The flags and the number of positional arguments of `sub`, read from its usage line.
fn flags(sub: &str) -> (Vec<Flag>, usize) {
    let text = help(&[sub, "--help"]);
    let usage = text.lines().next().expect("a usage line");
    let mut flags = Vec::new();
    let mut positionals = 0;
    let mut rest = usage;
    while let Some(i) = rest.find(['[', '<']) {
        let close = if rest[i..].starts_with('[') { ']' } else { '>' };
        let end = i + rest[i..].find(close).expect("balanced usage line");
        let item = &rest[i + 1..end];
        if item.starts_with('-') {
            let mut parts = item.split_whitespace();
            flags.push(Flag {
                name: parts.next().unwrap().to_string(),
                takes_value: parts.next().is_some(),
            });
        } else {
            positionals += 1;
        }
        rest = &rest[end + 1..];
    }
    (flags, positionals)
}

/// Values that have broken parsers: huge, tiny, negative, NaN, infinite, garbage, unicode,
/// empty, and plausible ones so that some vectors get deep into validation.
const VALUES: &[&str] = &[
    "",
    " ",
    "0",
    "1",
    "2",
    "10",
    "-1",
    "-0",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "-9223372036854775808",
    "1e20",
    "1e300",
    "1e-300",
    "5e-324",
    "1.7976931348623157e308",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "infinity",
    "0.0000001",
    "1e20s",
    "1e-300ms",
    "5s",
    "500ms",
    "2m",
    "1h",
    "0s",
    "-5s",
    "NaNs",
    "infms",
    "50/s",
    "0/s",
    "1e-300/s",
    "unlimited",
    "none",
    "100%",
    "1e400%",
    "p99<20ms",
    "p99<1e20ms",
    "p100<0ms",
    "point=1",
    "point=4294967296",
    "simple=0",
    "nope=1",
    "1,2,4",
    "1,2,4294967295",
    "4,2,1",
    "1,,2",
    "extended",
    "simple",
    "prepared",
    "poisson",
    "uniform",
    "direct",
    "all",
    "serializable",
    "bank",
    "quick",
    "standard",
    "tpcb-like",
    "select-only@4294967296",
    "start",
    "status",
    "json",
    "mean_latency_ms=1e400",
    "2025-06-01T12:00:00Z",
    "9999-99-99T99:99:99Z",
    "héllo",
    "日本語",
    "🦀",
    "\u{202e}",
    "a\tb",
    "--",
    "-",
    "--help",
    "x=y",
    "=",
    "@",
    "file.sql@-1",
];

/// A random argument vector: a real subcommand, then a random mix of its real flags (with and
/// without values), stray values and positionals.
fn random_argv(rng: &mut Rng, subs: &[(String, Vec<Flag>, usize)]) -> Vec<String> {
    let pick = |rng: &mut Rng, n: usize| (rng.next_u64() % n as u64) as usize;
    let (sub, flags, positionals) = &subs[pick(rng, subs.len())];
    let mut argv = vec![sub.clone()];
    for _ in 0..pick(rng, 8) {
        match pick(rng, 10) {
            0 => argv.push(VALUES[pick(rng, VALUES.len())].to_string()),
            _ if !flags.is_empty() => {
                let f = &flags[pick(rng, flags.len())];
                argv.push(f.name.clone());
                // Now and then a value-taking flag comes last, without its value.
                if f.takes_value && pick(rng, 20) != 0 {
                    argv.push(VALUES[pick(rng, VALUES.len())].to_string());
                }
            }
            _ => {}
        }
    }
    for _ in 0..*positionals {
        if pick(rng, 5) != 0 {
            argv.push(VALUES[pick(rng, VALUES.len())].to_string());
        }
    }
    argv
}

/// The durations of a validated load plan are finite and within the documented bound.
fn assert_plan_in_range(plan: &Plan, argv: &[String]) {
    let max = Duration::from_secs(MAX_SECS);
    let engine = match plan {
        Plan::Queries(o, repeat) => {
            assert!(*repeat >= 1, "{argv:?}");
            Some(&o.engine)
        }
        Plan::Analyze(o) => Some(&o.queries.engine),
        Plan::Sweep(o) => Some(&o.engine),
        _ => None,
    };
    if let Some(e) = engine {
        assert!(e.clients >= 1, "{argv:?}");
        for d in [e.duration.unwrap_or_default(), e.warmup, e.interval] {
            assert!(d <= max, "{argv:?}: {d:?}");
        }
        if let Some(r) = e.rate {
            let gap = e.clients as f64 / r;
            assert!(r.is_finite() && gap <= MAX_SECS as f64, "{argv:?}: -R {r}");
        }
    }
}

#[test]
fn random_argument_vectors_give_a_usage_error_or_a_valid_plan_never_a_panic() {
    let subs: Vec<(String, Vec<Flag>, usize)> = subcommands()
        .into_iter()
        .map(|s| {
            let (f, p) = flags(&s);
            (s, f, p)
        })
        .collect();
    assert!(subs.len() >= 14, "subcommands found: {}", subs.len());
    let queries = subs.iter().find(|(s, ..)| s == "queries").unwrap();
    assert!(
        queries
            .1
            .iter()
            .any(|f| f.name == "--interval" && f.takes_value),
        "flags of queries not read from its usage line"
    );

    // Positive control: the values break a parser without bounds (the old duration parser took
    // any finite positive number of seconds), so a panic, were one reachable, would be caught.
    let naive = |v: &str| {
        v.trim_end_matches('s')
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x > 0.0)
            .map(Duration::from_secs_f64)
    };
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let breaking = VALUES
        .iter()
        .filter(|v| catch_unwind(|| naive(v)).is_err())
        .count();
    std::panic::set_hook(hook);
    assert!(breaking > 0, "no value breaks an unbounded duration parser");

    // Silence the default hook so a caught panic is reported once, by the assertion below.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng::new(20_260_515);
    let (mut plans, mut usage) = (0u32, 0u32);
    let mut panicked = Vec::new();
    for _ in 0..20_000 {
        let argv = random_argv(&mut rng, &subs);
        let strs: Vec<&str> = argv.iter().map(String::as_str).collect();
        match catch_unwind(AssertUnwindSafe(|| app::plan(&strs))) {
            Ok(Ok(plan)) => {
                assert_plan_in_range(&plan, &argv);
                plans += 1;
            }
            Ok(Err(e)) => {
                assert_eq!(exit_kind(&e), ExitKind::Usage, "{argv:?}: {e:#}");
                assert!(!format!("{e:#}").contains('\n'), "{argv:?}: {e:#}");
                usage += 1;
            }
            Err(_) => panicked.push(argv),
        }
    }
    std::panic::set_hook(hook);
    eprintln!("{plans} valid plans, {usage} usage errors");
    assert!(panicked.is_empty(), "panicked on {panicked:?}");
    // Both outcomes occur, so the generator reaches validation and not only argh's errors.
    assert!(plans > 500 && usage > 500, "{plans} plans, {usage} errors");
}

/// Runs the binary with `args` and an unreachable target, expecting exit 2 with one line
/// naming `flag`, and no panic.
fn assert_usage_error(args: &[&str], flag: &str) {
    let mut all = args.to_vec();
    all.extend(["--dsn", "host=127.0.0.1 port=1"]);
    let (code, stderr) = common::run_pgstorm(&all);
    assert_eq!(code, 2, "{args:?}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.contains(flag), "{args:?}: {stderr}");
}

#[test]
fn a_tiny_rate_is_exit_2() {
    assert_usage_error(&["queries", "-R", "1e-300"], "-R");
}

#[test]
fn an_interval_past_any_duration_is_exit_2() {
    assert_usage_error(&["queries", "--interval", "1e20"], "--interval");
}

#[test]
fn a_duration_of_u64_max_seconds_is_exit_2() {
    assert_usage_error(&["queries", "-T", "18446744073709551615"], "-T");
}

#[test]
fn a_huge_worker_count_is_exit_2() {
    assert_usage_error(&["connections", "--workers", "4000000000"], "--workers");
}

#[test]
fn a_non_utf8_argument_is_exit_2_naming_it() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgstorm"))
        .args([OsStr::new("queries"), OsStr::from_bytes(b"--label=\xff")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("argument 2"), "{stderr}");
}
