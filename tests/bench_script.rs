//! `scripts/bench-vs-pgbench.sh --summarize`: the verdicts it prints from recorded rounds.
//!
//! The script's runs need a server and minutes, but its reading of the rounds is what a closing
//! note quotes, so it is tested here on rounds written by hand: a goal missed in every round is
//! "missed" (the positive control), one met in every round is "met", one the rounds straddle is
//! "open", and the interval's order statistics and coverage are the sign test's. Bad input names
//! the file and fails.
//!
//! Invariant: these tests start no server; they need bash and python3 (the script's own needs).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/bench-vs-pgbench.sh")
}

/// One round of a case: pgbench at 1000 TPS and 0.5 ms CPU per transaction, pgstorm at
/// `tps_ratio` of its TPS and `cpu_ratio` of its CPU per transaction.
fn round(case: &str, rep: u32, tps_ratio: f64, cpu_ratio: f64) -> String {
    let tx = 10_000.0;
    let cpu = 5.0;
    let s_tx = (tx * tps_ratio).round();
    let s_cpu = cpu / tx * cpu_ratio * s_tx;
    format!(
        "{case}\t{rep}\tpgbench\t1000\t{tx}\t{cpu}\t9000\tnan\tnan\t10\t{tx}\n\
         {case}\t{rep}\tpgstorm\t{}\t{s_tx}\t{s_cpu}\t40000\t0.1\t0.2\t10\t{s_tx}\n",
        1000.0 * tps_ratio
    )
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::File::create(&p)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    p
}

fn summarize(files: &[&PathBuf]) -> Output {
    Command::new("bash")
        .arg(script())
        .arg("--summarize")
        .args(files)
        .output()
        .expect("bash runs the script")
}

/// The verdict line of `case`'s `measure` whose goal column is `goal`.
fn verdict<'a>(out: &'a str, case: &str, measure: &str, goal: &str) -> &'a str {
    let line = out
        .lines()
        .find(|l| {
            l.starts_with(&format!("{case} "))
                && l.contains(measure)
                && l.contains(&format!(" {goal} "))
        })
        .unwrap_or_else(|| panic!("no {case} {measure} {goal} line in:\n{out}"));
    line.split_whitespace().last().unwrap()
}

#[test]
fn a_goal_missed_in_every_round_is_missed_one_met_is_met_and_a_straddled_one_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for rep in 1..=15 {
        // c8pool: TPS 0.80-0.87x in every round (goal >= 1.0), CPU/tx 0.90-0.97x (goal <= 1.1).
        let wobble = f64::from(rep % 8) / 100.0;
        text += &round("c8pool", rep, 0.80 + wobble, 0.90 + wobble);
        // c8: TPS alternating 0.92 and 1.08x around the goal 1.0, CPU/tx 0.95x.
        let tps = if rep % 2 == 0 { 0.92 } else { 1.08 };
        text += &round("c8", rep, tps, 0.95);
    }
    let file = write(&dir, "rounds.tsv", &text);
    let out = summarize(&[&file]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        verdict(&stdout, "c8pool", "TPS ratio", ">= 1.0"),
        "missed",
        "{stdout}"
    );
    assert_eq!(
        verdict(&stdout, "c8pool", "CPU/tx ratio", "<= 1.1"),
        "met",
        "{stdout}"
    );
    assert_eq!(
        verdict(&stdout, "c8", "TPS ratio", ">= 1.0"),
        "open",
        "{stdout}"
    );
    // 15 rounds: the 4th smallest to the 4th largest, at 1 - 2 P(Binomial(15, 1/2) <= 3) = 96.5 %.
    let c8pool_tps = stdout
        .lines()
        .find(|l| l.starts_with("c8pool ") && l.contains("TPS ratio"))
        .unwrap();
    assert!(
        c8pool_tps.contains("0.820..0.860") && c8pool_tps.contains("96.5%"),
        "{c8pool_tps}"
    );
    // c8's TPS goals (>= 1.05 and >= 1.0) are both open, its CPU/tx (<= 1.0) met.
    assert!(
        stdout.contains("on the intervals: 2 met, 1 missed, 2 open"),
        "{stdout}"
    );
}

#[test]
fn five_rounds_decide_only_when_every_round_agrees_and_saved_runs_pool() {
    let dir = tempfile::tempdir().unwrap();
    // Four rounds below the goal and one above: the median misses, the interval (the whole
    // range at five rounds) straddles the goal.
    let mut first = String::new();
    for (rep, tps) in [(1, 0.90), (2, 0.92), (3, 1.02), (4, 0.94), (5, 0.91)] {
        first += &round("c8pool", rep, tps, 1.0);
    }
    let a = write(&dir, "first.tsv", &first);
    let out = summarize(&[&a]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("c8pool ") && l.contains("TPS"))
        .unwrap();
    assert!(line.contains("MISSED") && line.contains("93.8%"), "{line}");
    assert_eq!(
        verdict(&stdout, "c8pool", "TPS ratio", ">= 1.0"),
        "open",
        "{stdout}"
    );
    // A second run of ten rounds all below the goal: pooled, fifteen rounds, and the interval
    // (4th..12th of 0.80-0.94) lies below the goal.
    let mut second = String::new();
    for rep in 1..=10 {
        second += &round("c8pool", rep, 0.80 + f64::from(rep) / 100.0, 1.0);
    }
    let b = write(&dir, "second.tsv", &second);
    let out = summarize(&[&a, &b]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(
        verdict(&stdout, "c8pool", "TPS ratio", ">= 1.0"),
        "missed",
        "{stdout}"
    );
    assert!(
        stdout.contains(" 2.10 pgstorm "),
        "rounds of the second file are 2.N: {stdout}"
    );
}

#[test]
fn a_file_that_is_not_rounds_is_named_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(&dir, "notes.txt", "c8pool 1 pgstorm\n");
    let out = summarize(&[&bad]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("notes.txt, line 1") && stderr.contains("11 or 13 tab-separated"),
        "{stderr}"
    );
    let empty = write(&dir, "empty.tsv", "");
    let out = summarize(&[&empty]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no rounds in"));
    let missing = dir.path().join("missing.tsv");
    let out = summarize(&[&missing]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.tsv"));
}

/// One tool's run in a floor case: `tps`, `tx` transactions and `cpu_ms_per_tx` of CPU each.
fn tool_run(case: &str, rep: u32, tool: &str, tps: f64, tx: f64, cpu_ms_per_tx: f64) -> String {
    let cpu = tx * cpu_ms_per_tx / 1000.0;
    format!("{case}\t{rep}\t{tool}\t{tps}\t{tx}\t{cpu}\t9000\tnan\tnan\t10\t{tx}\n")
}

/// The TPS and CPU/tx ratios printed for `case`'s `pair` ("a / b").
fn floor_ratio(out: &str, case: &str, pair: &str) -> (f64, f64) {
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{case} ")) && l.contains(&format!(" {pair} ")))
        .unwrap_or_else(|| panic!("no {case} {pair} line in:\n{out}"));
    let v: Vec<f64> = line
        .split_whitespace()
        .rev()
        .take(2)
        .map(|x| x.parse().unwrap())
        .collect();
    (v[1], v[0])
}

#[test]
fn the_floor_cases_print_each_client_against_the_others_with_pgbench_per_client_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for rep in 1..=3 {
        // c500floor: pgbench -j 2 at 1000 TPS and 0.5 ms/tx, pgbench -j 500 at 900 and 1.0,
        // the floor at 800 and 0.8, the pool driver at 700 and 1.0.
        text += &tool_run("c500floor", rep, "pgbench", 1000.0, 10_000.0, 0.5);
        text += &tool_run("c500floor", rep, "pgbench500", 900.0, 9_000.0, 1.0);
        text += &tool_run("c500floor", rep, "floor", 800.0, 8_000.0, 0.8);
        text += &tool_run("c500floor", rep, "pgstorm", 700.0, 7_000.0, 1.0);
        // c8floor keeps its pgbench8.
        text += &tool_run("c8floor", rep, "pgbench", 1000.0, 10_000.0, 0.5);
        text += &tool_run("c8floor", rep, "pgbench8", 500.0, 5_000.0, 0.6);
    }
    let file = write(&dir, "floors.tsv", &text);
    let out = summarize(&[&file]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let close = |(t, c): (f64, f64), (et, ec): (f64, f64)| {
        assert!(
            (t - et).abs() < 0.002 && (c - ec).abs() < 0.002,
            "{t} {c}, expected {et} {ec}:\n{stdout}"
        )
    };
    for (case, pair, expected) in [
        ("c500floor", "pgstorm / floor", (0.875, 1.25)),
        ("c500floor", "floor / pgbench500", (0.889, 0.8)),
        ("c500floor", "pgbench500 / pgbench", (0.9, 2.0)),
        ("c500floor", "pgstorm / pgbench", (0.7, 2.0)),
        ("c8floor", "pgbench8 / pgbench", (0.5, 1.2)),
    ] {
        close(floor_ratio(&stdout, case, pair), expected);
    }
    assert!(
        stdout.lines().any(|l| l.starts_with("c500floor ")
            && l.contains(" pgbench500 ")
            && l.contains(" 900.0 ")),
        "every tool's runs are printed, pgbench500's too: {stdout}"
    );
    assert!(
        !stdout
            .lines()
            .any(|l| l.starts_with("c8floor ") && l.contains("pgstorm /")),
        "no pgstorm rounds in c8floor, no pgstorm ratios: {stdout}"
    );
    assert!(stdout.contains("no goals in these cases"), "{stdout}");
}

/// The effective clients and p90/p10 `--spread` prints for the logs in `dir`.
fn spread(dir: &std::path::Path) -> (f64, f64) {
    let out = Command::new("bash")
        .arg(script())
        .arg("--spread")
        .arg(dir)
        .output()
        .expect("bash runs the script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<f64> = stdout
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    (v[0], v[1])
}

/// A pgbench-format per-transaction log: `counts[c]` transactions of client `c`.
fn tx_log(counts: &[u32]) -> String {
    let mut log = String::new();
    for (client, &n) in counts.iter().enumerate() {
        for tx in 0..n {
            log += &format!("{client} {tx} 120 0 1796141233 324388\n");
        }
    }
    log
}

#[test]
fn the_spread_of_a_log_in_which_a_few_clients_carry_the_load_shows_fewer_effective_clients() {
    // Ten clients with 100 transactions each: ten effective clients, p90/p10 1.
    let even = tempfile::tempdir().unwrap();
    write(&even, "pgbench_log.1", &tx_log(&[100; 10]));
    let (eff, p90p10) = spread(even.path());
    assert!(
        (eff - 10.0).abs() < 0.05 && (p90p10 - 1.0).abs() < 1e-6,
        "{eff} {p90p10}"
    );
    // The positive control: the same ten, two of which carry most of the load (pgbench's
    // favoured connections), in two thread logs as pgbench -j 2 writes them, and in a pgstorm
    // results directory: (1000 + 800 + 8 * 50)^2 / (1000^2 + 800^2 + 8 * 50^2) = 2.87.
    let uneven = tempfile::tempdir().unwrap();
    let counts = [1000, 50, 50, 50, 50, 800, 50, 50, 50, 50];
    write(&uneven, "pgbench_log.7", &tx_log(&counts[..5]));
    let second: String = tx_log(&counts)
        .lines()
        .filter(|l| l.split(' ').next().unwrap().parse::<usize>().unwrap() >= 5)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::create_dir_all(uneven.path().join("results/run1")).unwrap();
    std::fs::write(uneven.path().join("results/run1/pgbench_log.7.1"), second).unwrap();
    let (eff, p90p10) = spread(uneven.path());
    assert!((eff - 2.87).abs() < 0.05, "{eff}");
    // Sorted counts: 50 x 8, 800, 1000; the 90th percentile is the 10th smallest.
    assert!((p90p10 - 20.0).abs() < 1e-6, "{p90p10}");
    // No log: nan, which the summary leaves out.
    let none = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(script())
        .arg("--spread")
        .arg(none.path())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "nan nan");
}

#[test]
fn the_spread_case_prints_each_tools_effective_clients_and_reads_rounds_saved_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for rep in 1..=3u32 {
        let eff = 330.0 + f64::from(rep);
        for (tool, tps, e, s) in [
            ("pgbench", 1000.0, eff, 2.9),
            ("pgstorm-j", 800.0, 494.0, 1.33),
            ("pgbench500", 700.0, 491.0, 1.4),
            ("pgstorm", 750.0, 440.0, 3.0),
        ] {
            let row = tool_run("c500spread", rep, tool, tps, tps * 10.0, 0.5);
            text += &format!("{}\t{e}\t{s}\n", row.trim_end());
        }
    }
    // A round saved before the spread columns (11 fields) reads as before.
    text += &tool_run("c500floor", 1, "pgbench", 1000.0, 10_000.0, 0.5);
    text += &tool_run("c500floor", 1, "floor", 800.0, 8_000.0, 0.8);
    let file = write(&dir, "spread.tsv", &text);
    let out = summarize(&[&file]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |tool: &str| {
        stdout
            .lines()
            .find(|l| {
                // Not the ratio lines ("c500spread pgstorm-j / pgbench ...").
                let w: Vec<&str> = l.split_whitespace().collect();
                w.first() == Some(&"c500spread")
                    && w.get(1) == Some(&tool)
                    && w.get(2) != Some(&"/")
            })
            .unwrap_or_else(|| panic!("no spread line of {tool}:\n{stdout}"))
            .to_string()
    };
    assert!(line("pgbench").contains("332 (331-333)"), "{stdout}");
    assert!(line("pgbench").contains("2.90 (2.90-2.90)"), "{stdout}");
    assert!(line("pgstorm-j").contains("494 (494-494)"), "{stdout}");
    let (tps, _) = floor_ratio(&stdout, "c500spread", "pgstorm-j / pgbench");
    assert!((tps - 0.8).abs() < 0.002, "{stdout}");
    let (tps, _) = floor_ratio(&stdout, "c500spread", "pgstorm-j / pgbench500");
    assert!((tps - 800.0 / 700.0).abs() < 0.002, "{stdout}");
    assert!(
        !stdout
            .lines()
            .any(|l| l.starts_with("c500floor ") && l.contains("effective")),
        "no logs in c500floor, no spread table: {stdout}"
    );
}
