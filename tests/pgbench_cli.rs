//! Differential test of pgbench's command line: the same arguments go to the installed pgbench
//! (the oracle) and to `pgstorm queries` / `pgstorm seed`, on the same sandbox, and what each
//! accepts, refuses and reports is compared: the tables `-i` builds (fillfactor, partitions,
//! foreign keys, persistence), the exit status for bad values (pgbench exits 1, pgstorm 2, its
//! usage code: both must refuse), the `-l` logs (files, lines, columns), `-L` late and skipped
//! counts under `-R`, and `--progress-timestamp`. pgbench options pgstorm refuses on purpose
//! are checked to be refused with a message naming them.

mod common;

use std::path::Path;
use std::process::Command;

/// `-h`, `-p`, `-U` and the database name of `db` in the shared sandbox, as both tools take them.
fn login(db: &str) -> Vec<String> {
    common::database(db);
    let sb = common::sandbox();
    vec![
        "-h".into(),
        sb.host().into(),
        "-p".into(),
        sb.port().to_string(),
        "-U".into(),
        sb.user().into(),
        db.into(),
    ]
}

/// Exit code, stdout and stderr of a finished command.
struct Ran {
    code: i32,
    out: String,
    err: String,
}

fn run(mut cmd: Command) -> Ran {
    let o = common::without_pg_env(&mut cmd)
        .output()
        .expect("start the command");
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!err.contains("panicked"), "panic: {err}");
    Ran {
        code: o.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&o.stdout).to_string(),
        err,
    }
}

/// pgbench with `args`, then the login of `db`, in folder `cwd` (where it writes `-l` logs).
fn pgbench(args: &[&str], db: &str, cwd: &Path) -> Ran {
    let mut c = Command::new("pgbench");
    c.args(args).args(login(db)).current_dir(cwd);
    run(c)
}

/// `pgstorm <sub>` with `args` unchanged, pgstorm's own options, then the login of `db`.
fn pgstorm(sub: &str, args: &[&str], own: &[&str], db: &str) -> Ran {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pgstorm"));
    c.arg(sub).args(args).args(own).args(login(db));
    run(c)
}

/// `pgstorm queries` writing its result folder under `results`.
fn queries(args: &[&str], db: &str, results: &Path) -> Ran {
    let own = [
        "--no-monitor",
        "--no-pin",
        "--results-dir",
        results.to_str().unwrap(),
    ];
    pgstorm("queries", args, &own, db)
}

/// What `-i` built, in a form both tools' tables can be compared by.
fn fingerprint(db: &str) -> Vec<String> {
    let mut c = common::client_of(db);
    let mut rows: Vec<String> = c
        .query(
            "SELECT c.relname || ' ' || c.relkind::text || ' ' || c.relpersistence::text || ' ' ||
                    coalesce(array_to_string(c.reloptions, ','), '-') || ' ' ||
                    coalesce(pg_get_expr(c.relpartbound, c.oid), '-')
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relname LIKE 'pgbench%' AND c.relkind IN ('r', 'p')
             UNION ALL
             SELECT conname || ' ' || contype::text FROM pg_constraint
             WHERE conrelid::regclass::text LIKE 'pgbench%' AND contype IN ('p', 'f')
             UNION ALL
             SELECT 'accounts ' || count(*) || ' ' || sum(abalance) FROM pgbench_accounts
             UNION ALL
             SELECT 'tellers ' || count(*) FROM pgbench_tellers",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    rows.sort();
    rows
}

#[test]
fn init_options_build_the_same_tables_as_pgbench() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, args) in [
        &[
            "-i",
            "-s",
            "1",
            "-F",
            "80",
            "--partitions",
            "3",
            "--foreign-keys",
        ][..],
        &[
            "-i",
            "-I",
            "dtGvp",
            "--partitions",
            "2",
            "--partition-method",
            "hash",
            "--unlogged-tables",
        ],
        &["-i", "-I", "dtgGpf", "-n", "-q"],
    ]
    .iter()
    .enumerate()
    {
        let (theirs, ours) = (format!("init_pgbench_{i}"), format!("init_pgstorm_{i}"));
        let p = pgbench(args, &theirs, tmp.path());
        assert_eq!(p.code, 0, "pgbench {args:?}: {}", p.err);
        let s = pgstorm("seed", args, &[], &ours);
        assert_eq!(s.code, 0, "pgstorm seed {args:?}: {}", s.err);
        let (want, got) = (fingerprint(&theirs), fingerprint(&ours));
        assert!(want.len() >= 6, "{want:?}");
        assert_eq!(
            got, want,
            "pgstorm seed {args:?} built other tables than pgbench"
        );
    }
}

#[test]
fn bad_values_are_refused_by_both() {
    let tmp = tempfile::tempdir().unwrap();
    let db = "cli_bad";
    let init: &[&[&str]] = &[
        &["-i", "-F", "5"],
        &["-i", "-F", "101"],
        &["-i", "-I", "dtx"],
        &["-i", "--partition-method", "hash"],
        &["-i", "--partitions", "2", "--partition-method", "list"],
    ];
    let runs: &[&[&str]] = &[
        &["-S", "-L", "0"],
        &["-S", "-L", "abc"],
        &["-S", "-l", "--sampling-rate", "2"],
        &["-S", "--sampling-rate", "0.5"],
        &["-S", "--log-prefix", "x"],
        &[
            "-S",
            "-l",
            "--sampling-rate",
            "0.5",
            "--aggregate-interval",
            "1",
        ],
        &["-S", "-T", "3", "-l", "--aggregate-interval", "2"],
        &["-b", "nosuch"],
        &["-S", "--exit-on-abort"],
    ];
    for args in init.iter().chain(runs) {
        let p = pgbench(args, db, tmp.path());
        assert_eq!(
            p.code, 1,
            "pgbench {args:?} should refuse: {}{}",
            p.out, p.err
        );
        let s = if args[0] == "-i" {
            pgstorm("seed", args, &[], db)
        } else {
            queries(args, db, tmp.path())
        };
        assert_eq!(
            s.code, 2,
            "pgstorm {args:?} should refuse (usage): {}",
            s.err
        );
        assert!(s.err.lines().count() == 1, "one line: {}", s.err);
    }
    // Refused on purpose (pgbench runs it): the message names the option and what to use.
    let s = queries(&["-S", "-d"], db, tmp.path());
    assert_eq!(s.code, 2, "-d: {}", s.err);
    assert!(
        s.err.contains("-d") && s.err.contains("server log"),
        "{}",
        s.err
    );
}

#[test]
fn info_options_print_and_exit_0_like_pgbench() {
    let tmp = tempfile::tempdir().unwrap();
    let db = "cli_info";
    for args in [
        &["-V"][..],
        &["-b", "list"],
        &["--show-script", "select-only"],
    ] {
        let p = pgbench(args, db, tmp.path());
        let s = queries(args, db, tmp.path());
        assert_eq!((p.code, s.code), (0, 0), "{args:?}: {} / {}", p.err, s.err);
        assert!(
            std::fs::read_dir(tmp.path()).unwrap().next().is_none(),
            "{args:?} ran a load"
        );
    }
    let s = queries(&["--show-script", "select-only"], db, tmp.path());
    assert!(s
        .out
        .contains("SELECT abalance FROM pgbench_accounts WHERE aid = :aid;"));
    let s = queries(&["-b", "list"], db, tmp.path());
    for name in ["tpcb-like", "simple-update", "select-only"] {
        assert!(s.out.contains(name), "{}", s.out);
    }
}

/// The `-l` files under `dir` whose names start with `prefix.`: (name, lines, column counts).
fn logs(dir: &Path, prefix: &str) -> Vec<(String, usize, Vec<usize>)> {
    let mut found: Vec<(String, usize, Vec<usize>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{prefix}."))
        })
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let mut cols: Vec<usize> = text.lines().map(|l| l.split(' ').count()).collect();
            let n = cols.len();
            cols.sort_unstable();
            cols.dedup();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                n,
                cols,
            )
        })
        .collect();
    found.sort();
    found
}

/// The run.json of the one result folder under `results`.
fn run_json(results: &Path) -> serde_json::Value {
    let dir = common::only_result(results);
    common::assert_run_json_matches_schema(&dir);
    serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap()
}

/// Writes a script file `name` holding `text` into `dir`; returns its path.
fn script_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn transaction_logs_have_pgbench_files_lines_and_columns() {
    let db = "cli_log";
    let seed_dir = tempfile::tempdir().unwrap();
    assert_eq!(pgbench(&["-i", "-q"], db, seed_dir.path()).code, 0);
    for (args, lines, cols) in [
        // Per transaction: 6 columns; one file per thread.
        (
            &[
                "-n",
                "-S",
                "-c",
                "2",
                "-j",
                "2",
                "-t",
                "5",
                "-l",
                "--log-prefix",
                "tx",
            ][..],
            Some(10),
            vec![6],
        ),
        // With -R the schedule lag, with --max-tries other than 1 the retries: 8 columns.
        (
            &[
                "-n",
                "-N",
                "-c",
                "2",
                "-j",
                "2",
                "-t",
                "4",
                "-l",
                "--log-prefix",
                "tx",
                "-R",
                "500",
                "--max-tries",
                "2",
            ],
            Some(8),
            vec![8],
        ),
        // Aggregated: 15 columns, a line per interval.
        (
            &[
                "-n",
                "-S",
                "-c",
                "2",
                "-j",
                "2",
                "-T",
                "2",
                "-l",
                "--log-prefix",
                "tx",
                "--aggregate-interval",
                "1",
            ],
            None,
            vec![15],
        ),
    ] {
        let theirs = tempfile::tempdir().unwrap();
        let p = pgbench(args, db, theirs.path());
        assert_eq!(p.code, 0, "pgbench {args:?}: {}", p.err);
        let ours = tempfile::tempdir().unwrap();
        let s = queries(args, db, ours.path());
        assert_eq!(s.code, 0, "pgstorm {args:?}: {}", s.err);
        let (want, got) = (
            logs(theirs.path(), "tx"),
            logs(&common::only_result(ours.path()), "tx"),
        );
        assert_eq!(want.len(), 2, "pgbench {args:?}: {want:?}");
        assert_eq!(
            got.len(),
            want.len(),
            "files of {args:?}: {got:?} vs {want:?}"
        );
        for (name, n, c) in &got {
            assert_eq!(c, &cols, "{args:?}: columns of {name}");
            assert!(*n > 0, "{args:?}: {name} is empty");
        }
        if let Some(lines) = lines {
            let total = |v: &[(String, usize, Vec<usize>)]| v.iter().map(|f| f.1).sum::<usize>();
            assert_eq!((total(&want), total(&got)), (lines, lines), "{args:?}");
        }
    }
}

/// The two `-L` lines of a summary: (skipped, late, successes).
fn limit_counts(text: &str) -> (u64, u64, u64) {
    let num = |line: &str, after: &str| -> String {
        line.split(after)
            .nth(1)
            .unwrap()
            .trim()
            .split([' ', '/'])
            .next()
            .unwrap()
            .to_string()
    };
    let skipped = text
        .lines()
        .find(|l| l.starts_with("number of transactions skipped:"))
        .map(|l| num(l, "skipped:").parse().unwrap())
        .unwrap_or_else(|| panic!("no skipped line in {text}"));
    let late_line = text
        .lines()
        .find(|l| l.contains("latency limit:"))
        .unwrap_or_else(|| panic!("no latency limit line in {text}"));
    let frac = late_line.split("limit:").nth(1).unwrap().trim();
    let (late, of) = frac.split_once('/').unwrap();
    let of = of.split(' ').next().unwrap();
    (skipped, late.parse().unwrap(), of.parse().unwrap())
}

#[test]
fn latency_limit_counts_late_and_skipped_like_pgbench() {
    // Every transaction sleeps 30 ms, due every 10 ms, with a 5 ms limit: each one that runs is
    // late and the arrivals it falls behind are skipped (positive control); the same run without
    // -R skips none (negative control).
    let tmp = tempfile::tempdir().unwrap();
    let script = script_file(tmp.path(), "sleep.sql", "\\sleep 30 ms\n");
    let script = script.as_str();
    let db = "cli_limit";
    for driver in [&[][..], &["-j", "1"]] {
        let mut args = vec![
            "-n", "-c", "1", "-t", "20", "-R", "100", "-L", "5", "-f", script,
        ];
        args.extend_from_slice(driver);
        let p = pgbench(&args, db, tmp.path());
        assert_eq!(p.code, 0, "pgbench: {}", p.err);
        let results = tempfile::tempdir().unwrap();
        let s = queries(&args, db, results.path());
        assert_eq!(s.code, 0, "pgstorm {args:?}: {}", s.err);
        for (who, text) in [("pgbench", &p.out), ("pgstorm", &s.out)] {
            let (skipped, late, ran) = limit_counts(text);
            assert!(skipped > 0, "{who} {args:?}: nothing skipped: {text}");
            assert_eq!(
                late, ran,
                "{who} {args:?}: every transaction run is late: {text}"
            );
            assert_eq!(
                skipped + ran,
                20,
                "{who} {args:?}: skipped ones count toward -t: {text}"
            );
        }
        let doc = run_json(results.path());
        assert!(doc["load"]["summary"]["skipped"].as_u64().unwrap() > 0);
    }
    let results = tempfile::tempdir().unwrap();
    let s = queries(
        &["-n", "-c", "1", "-t", "3", "-L", "5", "-f", script],
        db,
        results.path(),
    );
    assert_eq!(s.code, 0, "{}", s.err);
    assert!(
        !s.out.contains("skipped:"),
        "closed loop skips nothing: {}",
        s.out
    );
    assert!(s.out.contains("latency limit: 3/3"), "{}", s.out);
}

#[test]
fn progress_timestamp_prints_unix_time_like_pgbench() {
    let tmp = tempfile::tempdir().unwrap();
    let db = "cli_progress";
    let script = script_file(tmp.path(), "one.sql", "SELECT 1;\n");
    let args = [
        "-n",
        "-c",
        "1",
        "-T",
        "2",
        "-P",
        "1",
        "--progress-timestamp",
        "-f",
        &script,
    ];
    let p = pgbench(&args, db, tmp.path());
    let results = tempfile::tempdir().unwrap();
    let s = queries(&args, db, results.path());
    for (who, r) in [("pgbench", &p), ("pgstorm", &s)] {
        assert_eq!(r.code, 0, "{who}: {}", r.err);
        let first: f64 = r
            .err
            .lines()
            .find_map(|l| l.strip_prefix("progress: "))
            .and_then(|l| l.split(' ').next())
            .unwrap_or_else(|| panic!("{who}: no progress line: {}", r.err))
            .parse()
            .unwrap();
        assert!(first > 1.0e9, "{who}: {first} is not Unix time");
    }
}

#[test]
fn connect_per_transaction_opens_a_connection_for_each() {
    // -C on both drivers: as many connections as transactions, each timed in the connect
    // histogram; without -C (negative control) only the clients' own.
    let tmp = tempfile::tempdir().unwrap();
    let script = script_file(tmp.path(), "one.sql", "SELECT 1;\n");
    let script = script.as_str();
    let db = "cli_connect";
    for (extra, want) in [
        (&["-C"][..], 2 * 6),
        (&["-C", "-j", "2"], 2 * 6),
        (&[], 2),
        (&["-j", "2"], 2),
    ] {
        let mut args = vec!["-n", "-c", "2", "-t", "6", "-f", script];
        args.extend_from_slice(extra);
        let p = pgbench(&args, db, tmp.path());
        assert_eq!(p.code, 0, "pgbench {args:?}: {}", p.err);
        let results = tempfile::tempdir().unwrap();
        let s = queries(&args, db, results.path());
        assert_eq!(s.code, 0, "pgstorm {args:?}: {}", s.err);
        let doc = run_json(results.path());
        let pool = &doc["load"]["pool"];
        assert_eq!(
            pool["connections_opened"].as_u64(),
            Some(want),
            "{args:?}: {pool}"
        );
        assert_eq!(
            pool["connect"]["count"].as_u64(),
            Some(want),
            "{args:?}: {pool}"
        );
        assert_eq!(
            doc["load"]["summary"]["count"].as_u64(),
            Some(12),
            "{args:?}"
        );
    }
}
