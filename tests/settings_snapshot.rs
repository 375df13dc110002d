//! The whole settings snapshot on a sandbox of the test's own (ALTER SYSTEM changes the whole
//! cluster): a change that matters and an unrelated reload-only change made together both show in
//! `pgstorm compare`; a snapshot compared with itself shows nothing (negative control); a
//! shared_buffers change waiting for a restart is flagged; a new extension makes the comparison
//! unfair.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use pgstorm::compare::settings;
use pgstorm::report::model::RunDocument;
use pgstorm::sandbox::SandboxOptions;
use pgstorm::scenarios::queries::{self, QueriesOptions};
use pgstorm::scenarios::session::TargetOptions;
use pgstorm::target::{self, ServerInfo};

/// Waits until `sql` (one boolean) is true: `pg_reload_conf()` only signals the server, which
/// re-reads its files a moment later. The deadline is far above the milliseconds it takes, for a
/// loaded machine.
fn wait_for(client: &mut postgres::Client, sql: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !client.query_one(sql, &[]).unwrap().get::<_, bool>(0) {
        assert!(
            Instant::now() < deadline,
            "never true after a reload: {sql}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs each statement on its own: ALTER SYSTEM refuses the implicit transaction of a batch.
fn each(client: &mut postgres::Client, statements: &[&str]) {
    for sql in statements {
        client
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

fn info(client: &mut postgres::Client) -> ServerInfo {
    target::server_info(client).unwrap()
}

/// A one-run, two-client load of one second against `dsn`, archived under `results`.
fn one_run(results: &Path, dsn: &str, label: &str) -> std::path::PathBuf {
    let mut o = QueriesOptions {
        target: TargetOptions {
            dsn: Some(dsn.to_string()),
            sandbox_max_connections: None,
            ..Default::default()
        },
        ..QueriesOptions::default()
    };
    o.archive.results_dir = results.to_path_buf();
    o.archive.label = label.into();
    o.print_summary = false;
    o.engine.clients = 2;
    o.engine.duration = Some(Duration::from_secs(1));
    o.engine.pin = false;
    queries::run(&o).unwrap().dir
}

#[test]
fn compare_names_a_change_that_matters_and_an_unrelated_reload_only_change() {
    // Durable, so synchronous_commit starts at its built-in default (on) and is not stored: B's
    // row must supply A's value.
    let sb = common::fresh_sandbox(&SandboxOptions {
        durable: true,
        ..SandboxOptions::default()
    });
    let mut admin = sb.pg_config().connect(postgres::NoTls).unwrap();
    let (before, again) = (info(&mut admin), info(&mut admin));
    // Negative control: nothing changed, nothing listed, nothing unfair.
    assert_eq!(settings::diff(&before, &again), vec![]);
    assert_eq!(settings::warnings(&before, &again), Vec::<String>::new());
    let snap = before.snapshot.as_ref().expect("a whole snapshot");
    assert!(
        snap.setting_names.len() > 300,
        "{}",
        snap.setting_names.len()
    );
    assert!(!snap.settings.contains_key("synchronous_commit"));
    assert!(snap.settings.len() < snap.setting_names.len() / 4);
    assert!(snap.version.starts_with("PostgreSQL"), "{}", snap.version);
    // The sandbox connects as a superuser on Linux: the host facts are readable.
    assert!(snap.host.system_identifier.is_some(), "{:?}", snap.host);
    assert!(snap.host.cpus.is_some_and(|c| c >= 1), "{:?}", snap.host);
    assert!(snap.host.memory_total_bytes.is_some(), "{:?}", snap.host);

    let tmp = tempfile::tempdir().unwrap();
    let a = one_run(tmp.path(), &sb.dsn(), "before");
    each(
        &mut admin,
        &[
            "ALTER SYSTEM SET synchronous_commit = off",
            "ALTER SYSTEM SET bgwriter_delay = '50ms'",
            "SELECT pg_reload_conf()",
        ],
    );
    wait_for(
        &mut admin,
        "SELECT current_setting('bgwriter_delay') = '50ms'
            AND current_setting('synchronous_commit') = 'off'",
    );
    let b = one_run(tmp.path(), &sb.dsn(), "after");
    common::assert_run_json_matches_schema(&b);

    let (da, db) = (read(&a), read(&b));
    let diff = settings::diff(&da.target.server, &db.target.server);
    let shown: Vec<(&str, &str, Option<&str>, Option<&str>)> = diff
        .iter()
        .map(|c| {
            (
                c.category.as_str(),
                c.name.as_str(),
                c.a.as_deref(),
                c.b.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            (
                "Resource Usage / Background Writer",
                "bgwriter_delay",
                Some("200ms"),
                Some("50ms")
            ),
            (
                "Write-Ahead Log / Settings",
                "synchronous_commit",
                Some("on"),
                Some("off")
            ),
        ]
    );

    // The CLI's table: both changes, each under its category.
    let (out, err) = compare_cli(&a, &b);
    for line in [
        "  Resource Usage / Background Writer",
        "    bgwriter_delay",
        "200ms -> 50ms",
        "  Write-Ahead Log / Settings",
        "    synchronous_commit",
        "on -> off",
    ] {
        assert!(out.contains(line), "{line:?} not in:\n{out}\n{err}");
    }
    assert!(
        !out.contains("warning: installed extensions differ"),
        "{out}"
    );
}

fn read(dir: &Path) -> RunDocument {
    serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap()
}

fn compare_cli(a: &Path, b: &Path) -> (String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgstorm"))
        .args(["compare", a.to_str().unwrap(), b.to_str().unwrap()])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    (stdout, stderr)
}

#[test]
fn a_restart_pending_is_flagged_and_a_new_extension_is_unfair() {
    let sb = common::fresh_sandbox(&SandboxOptions::default());
    let mut admin = sb.pg_config().connect(postgres::NoTls).unwrap();
    let before = info(&mut admin);
    let buffers = before.settings["shared_buffers"].clone();
    each(
        &mut admin,
        &[
            "ALTER SYSTEM SET shared_buffers = '256MB'",
            "SELECT pg_reload_conf()",
        ],
    );
    wait_for(
        &mut admin,
        "SELECT pending_restart FROM pg_settings WHERE name = 'shared_buffers'",
    );
    let pending = info(&mut admin);
    let diff = settings::diff(&before, &pending);
    assert_eq!(diff.len(), 1, "{diff:?}");
    let d = &diff[0];
    assert_eq!(d.name, "shared_buffers");
    assert!(d.pending_restart_b && !d.pending_restart_a, "{d:?}");
    // The value in effect did not move: only the file did.
    assert_eq!(
        (d.a.as_deref(), d.b.as_deref()),
        (Some(buffers.as_str()), Some(buffers.as_str()))
    );
    let w = settings::warnings(&before, &pending);
    assert!(
        w.iter().any(|w| w.starts_with(
            "B: shared_buffers is changed in the configuration file but not in effect"
        )),
        "{w:?}"
    );

    admin.batch_execute("CREATE EXTENSION citext").unwrap();
    let with_citext = info(&mut admin);
    let version = with_citext.snapshot.as_ref().unwrap().extensions["citext"].clone();
    let diff = settings::diff(&pending, &with_citext);
    assert_eq!(diff.len(), 1, "{diff:?}");
    assert_eq!(
        (
            diff[0].category.as_str(),
            diff[0].name.as_str(),
            diff[0].a.as_deref(),
            diff[0].b.as_deref()
        ),
        ("Extensions", "citext", None, Some(version.as_str()))
    );
    let w = settings::warnings(&pending, &with_citext);
    assert!(
        w.iter()
            .any(|w| w.contains("installed extensions differ") && w.contains("citext")),
        "{w:?}"
    );
}
