//! Shared fixtures for the integration tests: one sandbox cluster per test binary.
//!
//! The shared sandbox lives in a `static` and is never dropped; its guard process stops and
//! removes it when the test binary exits (see `pgstorm::sandbox`).

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use pgstorm::sandbox::{Sandbox, SandboxOptions};
use std::sync::OnceLock;

/// The test binary's shared sandbox (non-durable), started on first use.
pub fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        fresh_sandbox(&SandboxOptions {
            durable: false,
            ..SandboxOptions::default()
        })
    })
}

/// A new connection to the shared sandbox's database `pgstorm`.
pub fn client() -> postgres::Client {
    let sandbox = sandbox();
    sandbox
        .pg_config()
        .connect(postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect to the test sandbox at {}: {e}", sandbox.dsn()))
}

/// A sandbox of the caller's own, for tests that restart, stop or break their server.
pub fn fresh_sandbox(opts: &SandboxOptions) -> Sandbox {
    Sandbox::start(opts).unwrap_or_else(|e| panic!("start a test sandbox: {e}"))
}

/// A DSN for database `name` in the shared sandbox, created on first use, so concurrently running
/// tests do not see each other's load in per-database statistics, locks or data.
pub fn database(name: &str) -> String {
    let mut c = client();
    let exists: bool = c
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)",
            &[&name],
        )
        .unwrap()
        .get(0);
    if !exists {
        // Two tests racing to create the same database: the loser's error is harmless.
        let _ = c.batch_execute(&format!("CREATE DATABASE \"{name}\""));
    }
    let sb = sandbox();
    format!(
        "host={} port={} user={} dbname={name}",
        sb.host(),
        sb.port(),
        sb.user()
    )
}

/// A connection to database `name` of the shared sandbox (see [`database`]).
pub fn client_of(name: &str) -> postgres::Client {
    database(name)
        .parse::<postgres::Config>()
        .unwrap()
        .connect(postgres::NoTls)
        .unwrap()
}

/// Asserts that `dir/run.json` validates against the checked-in JSON Schema, listing every
/// violation when it does not.
pub fn assert_run_json_matches_schema(dir: &std::path::Path) {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schema/run.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let instance: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "{}/run.json does not match its schema: {errors:?}",
        dir.display()
    );
}

/// `cmd` without the PG* variables, so only its arguments say where to connect.
pub fn without_pg_env(cmd: &mut std::process::Command) -> &mut std::process::Command {
    cmd.env_remove("PGHOST")
        .env_remove("PGPORT")
        .env_remove("PGUSER")
        .env_remove("PGDATABASE")
        .env_remove("PGPASSWORD")
}

/// The one result folder under `results` (fails the test if there is not exactly one).
pub fn only_result(results: &std::path::Path) -> std::path::PathBuf {
    let dirs: Vec<std::path::PathBuf> = std::fs::read_dir(results)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

/// The real binary, with no PG* variables from the test's environment.
pub fn pgstorm_command() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_pgstorm"));
    without_pg_env(&mut c);
    c
}

/// Runs the real binary with `args` and no PG* variables; returns its exit code and stderr,
/// failing the test if it panicked.
pub fn run_pgstorm(args: &[&str]) -> (i32, String) {
    let out = pgstorm_command().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    (out.status.code().unwrap_or(-1), stderr)
}

/// The warning of `code` in a run's document (fails the test, listing the warnings, if absent).
pub fn warning<'a>(
    doc: &'a pgstorm::report::model::RunDocument,
    code: &str,
) -> &'a pgstorm::report::model::Warning {
    doc.warnings
        .iter()
        .find(|w| w.code == code)
        .unwrap_or_else(|| panic!("no {code} warning in {:?}", doc.warnings))
}

/// A workload of one pgbench script, `SELECT 1` (protocol `prepared`), with the names the load's
/// connections prepare its statement under.
pub fn select_one_workload() -> (pgstorm::workload::Workload, Vec<Vec<String>>) {
    use pgstorm::workload::script::{Predefined, Script};
    use pgstorm::workload::{Protocol, QueryType, Workload};
    let script = Script::parse("one", "one", "SELECT 1;\n", Predefined::default()).unwrap();
    let w = Workload::new(
        vec![(Box::new(script) as Box<dyn QueryType>, 1)],
        Protocol::Prepared,
    )
    .unwrap();
    let names = pgstorm::engine::wire_pool::statement_names(&w);
    (w, names)
}
