//! The sandbox cluster: start, connect, settings, restart, stop, side by side, the persistent
//! sandbox, and cleanup after a process that never drops its sandbox.
//!
//! Tests that need a process of their own re-run this test binary as a child executing the
//! ignored `helper` test, selected by the `PGSTORM_TEST_HELPER` environment variable.

mod common;

use pgstorm::sandbox::{PersistentInfo, Sandbox, SandboxError, SandboxOptions};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const HELPER_ENV: &str = "PGSTORM_TEST_HELPER";

fn show(client: &mut postgres::Client, setting: &str) -> String {
    client
        .query_one(&format!("SHOW {setting}"), &[])
        .unwrap()
        .get(0)
}

fn connect(sandbox: &Sandbox) -> postgres::Client {
    sandbox.pg_config().connect(postgres::NoTls).unwrap()
}

/// Pids of processes whose command line mentions `needle` (the sandbox directory): the
/// postmaster (`postgres -D <dir>/data`) and the guard.
fn processes_mentioning(needle: &Path) -> Vec<u32> {
    let needle = needle.to_string_lossy().into_owned();
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
        })
        .collect()
}

fn pid_exists(pid: u32) -> bool {
    // A zombie still has a /proc entry; only a live process has a non-Z state.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// Waits until the directory, the postmaster and every process mentioning the directory are gone.
fn assert_cleaned_up(root: &Path, postmaster: u32, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let left = processes_mentioning(root);
        let gone = !root.exists() && !pid_exists(postmaster) && left.is_empty();
        if gone {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not cleaned up after {within:?}: dir exists={}, postmaster {postmaster} alive={}, \
             processes mentioning the dir={left:?}",
            root.exists(),
            pid_exists(postmaster)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn starts_and_accepts_connections() {
    let mut client = common::client();
    let one: i32 = client.query_one("SELECT 1", &[]).unwrap().get(0);
    assert_eq!(one, 1);
}

#[test]
fn max_connections_defaults_to_600() {
    assert_eq!(show(&mut common::client(), "max_connections"), "600");
}

#[test]
fn pg_stat_statements_is_preloaded_and_created() {
    assert!(common::sandbox().has_pg_stat_statements());
    let mut client = common::client();
    assert!(show(&mut client, "shared_preload_libraries").contains("pg_stat_statements"));
    let calls: i64 = client
        .query_one("SELECT count(*) FROM pg_stat_statements", &[])
        .unwrap()
        .get(0);
    assert!(calls >= 0);
}

#[test]
fn non_durable_by_default_with_sandbox_settings() {
    let sandbox = common::sandbox();
    assert!(!sandbox.is_durable());
    let mut client = common::client();
    assert_eq!(show(&mut client, "fsync"), "off");
    assert_eq!(show(&mut client, "synchronous_commit"), "off");
    assert_eq!(show(&mut client, "full_page_writes"), "off");
    assert_eq!(show(&mut client, "track_io_timing"), "on");
    assert_eq!(show(&mut client, "listen_addresses"), "127.0.0.1");
    assert_eq!(
        show(&mut client, "unix_socket_directories"),
        sandbox.socket_dir().to_string_lossy()
    );
}

#[test]
fn accessors_describe_the_running_server() {
    let sandbox = common::sandbox();
    assert_eq!(sandbox.host(), "127.0.0.1");
    assert_eq!(sandbox.user(), "pgstorm");
    assert_eq!(sandbox.dbname(), "pgstorm");
    assert_eq!(
        sandbox.dsn(),
        format!(
            "host=127.0.0.1 port={} user=pgstorm dbname=pgstorm",
            sandbox.port()
        )
    );
    assert!(sandbox.data_dir().join("PG_VERSION").exists());
    assert!(sandbox.log_file().exists());
    assert!(pid_exists(sandbox.postmaster_pid().unwrap()));

    let mut client = common::client();
    let server_version = show(&mut client, "server_version");
    assert!(
        server_version.starts_with(sandbox.server_version()),
        "SHOW server_version {server_version:?} vs postgres --version {:?}",
        sandbox.server_version()
    );
    let who: (String, String) = client
        .query_one("SELECT current_user::text, current_database()::text", &[])
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(who, ("pgstorm".to_string(), "pgstorm".to_string()));

    // The dsn is a valid conninfo, and the Unix socket works too.
    let parsed: postgres::Config = sandbox.dsn().parse().unwrap();
    parsed.connect(postgres::NoTls).unwrap();
    let mut via_socket = sandbox.pg_config();
    via_socket.host_path(sandbox.socket_dir());
    via_socket.connect(postgres::NoTls).unwrap();
}

#[test]
fn restart_keeps_accepting_new_connections() {
    let sandbox = common::fresh_sandbox(&SandboxOptions::default());
    let mut before = connect(&sandbox);
    before
        .batch_execute("CREATE TABLE survives (id int); INSERT INTO survives VALUES (1)")
        .unwrap();
    let old_pid = sandbox.postmaster_pid().unwrap();

    sandbox.restart().unwrap();

    let new_pid = sandbox.postmaster_pid().unwrap();
    assert_ne!(old_pid, new_pid, "a restart starts a new postmaster");
    assert!(
        before.simple_query("SELECT 1").is_err(),
        "old connections end"
    );
    let mut after = connect(&sandbox);
    let n: i64 = after
        .query_one("SELECT count(*) FROM survives", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    assert_eq!(show(&mut after, "max_connections"), "600");
}

#[test]
fn stop_removes_directory_and_processes_and_is_idempotent() {
    let mut sandbox = common::fresh_sandbox(&SandboxOptions::default());
    let root = sandbox.socket_dir().to_path_buf();
    let pid = sandbox.postmaster_pid().unwrap();
    assert!(!processes_mentioning(&root).is_empty());

    sandbox.stop().unwrap();

    assert!(!root.exists(), "{} still exists", root.display());
    assert!(!pid_exists(pid), "postmaster {pid} still runs");
    assert_eq!(processes_mentioning(&root), Vec::<u32>::new());
    assert!(sandbox.postmaster_pid().is_none());
    assert!(sandbox.pg_config().connect(postgres::NoTls).is_err());
    sandbox.stop().unwrap();
}

#[test]
fn two_sandboxes_run_side_by_side() {
    let durable = common::fresh_sandbox(&SandboxOptions {
        durable: true,
        max_connections: 50,
        ..SandboxOptions::default()
    });
    let tuned = common::fresh_sandbox(&SandboxOptions {
        settings: vec![("work_mem".to_string(), "8MB".to_string())],
        ..SandboxOptions::default()
    });
    assert_ne!(durable.port(), tuned.port());
    assert_ne!(durable.data_dir(), tuned.data_dir());

    let mut a = connect(&durable);
    let mut b = connect(&tuned);
    assert_eq!(show(&mut a, "fsync"), "on");
    assert_eq!(show(&mut a, "max_connections"), "50");
    assert_eq!(show(&mut b, "fsync"), "off");
    assert_eq!(show(&mut b, "work_mem"), "8MB");
}

#[test]
fn dropping_a_sandbox_cleans_up() {
    let sandbox = common::fresh_sandbox(&SandboxOptions::default());
    let root = sandbox.socket_dir().to_path_buf();
    let pid = sandbox.postmaster_pid().unwrap();
    drop(sandbox);
    assert_cleaned_up(&root, pid, Duration::from_secs(5));
}

#[test]
fn a_taken_fixed_port_is_reported_as_such() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let err = Sandbox::start(&SandboxOptions {
        port: Some(port),
        ..SandboxOptions::default()
    })
    .unwrap_err();
    assert!(
        matches!(err, SandboxError::PortInUse { port: p } if p == port),
        "{err}"
    );
}

#[test]
fn reserved_or_malformed_settings_are_refused() {
    for (name, value) in [
        ("port", "5432"),
        ("listen_addresses", "*"),
        ("work mem", "8MB"),
        ("work_mem", "8MB\nfsync = on"),
    ] {
        let err = Sandbox::start(&SandboxOptions {
            settings: vec![(name.to_string(), value.to_string())],
            ..SandboxOptions::default()
        })
        .unwrap_err();
        assert!(
            matches!(err, SandboxError::InvalidSetting { .. }),
            "{name}={value:?}: {err}"
        );
    }
}

#[test]
fn server_runs_outside_our_process_group() {
    // A terminal Ctrl-C signals our foreground group; the server must not get it.
    let pgrp = |pid: u32| -> String {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        fields[2].to_string()
    };
    let postmaster = common::sandbox().postmaster_pid().unwrap();
    assert_ne!(pgrp(postmaster), pgrp(std::process::id()));
}

#[test]
fn a_start_failure_shows_the_server_log_and_leaves_nothing_behind() {
    let err = Sandbox::start(&SandboxOptions {
        settings: vec![("shared_buffers".to_string(), "lots".to_string())],
        ..SandboxOptions::default()
    })
    .unwrap_err();
    let SandboxError::StartFailed { log, log_tail, .. } = &err else {
        panic!("expected StartFailed, got {err}");
    };
    assert!(log_tail.contains("shared_buffers"), "{err}");
    assert!(err.to_string().contains(&*log.to_string_lossy()), "{err}");
    let root = log.parent().unwrap().parent().unwrap();
    assert!(!root.exists(), "{} left behind", root.display());
}

#[test]
fn as_root_an_unreachable_temp_dir_is_reported() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let tmpdir = tempfile::tempdir().unwrap();
    // 0700 and ours: the server's user cannot enter it.
    std::fs::set_permissions(tmpdir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut child = spawn_helper("start", Some(tmpdir.path()));
    let report = helper_report(&mut child);
    assert!(child.0.wait().unwrap().success());
    let error = report_value(&report, "error");
    assert!(error.contains("TMPDIR"), "{error}");
    assert_eq!(std::fs::read_dir(tmpdir.path()).unwrap().count(), 0);
}

/// A helper child process, killed if a failing test leaves it behind.
struct Helper(Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the `helper` test in a child process of this binary.
fn spawn_helper(mode: &str, tmpdir: Option<&Path>) -> Helper {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "helper",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(HELPER_ENV, mode)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    if let Some(dir) = tmpdir {
        cmd.env("TMPDIR", dir);
    }
    Helper(cmd.spawn().unwrap())
}

/// Reads the child's `HELPER key=value` lines until `HELPER ready`, with a timeout so a stuck
/// child fails the test instead of hanging it. (libtest may print "test helper ... " in front of
/// the first line.)
fn helper_report(child: &mut Helper) -> Vec<(String, String)> {
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Keep draining after `ready`, or the child dies of a broken pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut report = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("helper did not report ready ({e}); got {report:?}"));
        let Some(at) = line.find("HELPER ") else {
            continue;
        };
        let message = &line[at + "HELPER ".len()..];
        if message == "ready" {
            return report;
        }
        if let Some((key, value)) = message.split_once('=') {
            report.push((key.to_string(), value.to_string()));
        }
    }
}

fn report_value<'a>(report: &'a [(String, String)], key: &str) -> &'a str {
    report
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("helper report lacks {key}: {report:?}"))
}

fn orphan_is_cleaned_up(mode: &str) {
    let mut child = spawn_helper(mode, None);
    let report = helper_report(&mut child);
    let root = PathBuf::from(report_value(&report, "root"));
    let pid: u32 = report_value(&report, "pid").parse().unwrap();
    if mode == "kill" {
        child.0.kill().unwrap();
    }
    child.0.wait().unwrap();
    assert_cleaned_up(&root, pid, Duration::from_secs(20));
}

#[test]
fn guard_cleans_up_after_a_process_that_exits_without_dropping() {
    orphan_is_cleaned_up("exit");
}

#[test]
fn guard_cleans_up_after_a_killed_process() {
    orphan_is_cleaned_up("kill");
}

/// A temp dir for the persistent sandbox's well-known state directory, so the test neither
/// sees nor disturbs a developer's own persistent sandbox. 0755: under root, the server's user
/// must be able to enter it.
fn private_tmpdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn persistent_step(mode: &str, tmpdir: &Path) -> Vec<(String, String)> {
    let mut child = spawn_helper(mode, Some(tmpdir));
    let report = helper_report(&mut child);
    assert!(child.0.wait().unwrap().success(), "helper {mode} failed");
    report
}

#[test]
fn persistent_sandbox_outlives_its_command_until_stopped() {
    let tmpdir = private_tmpdir();
    let start = persistent_step("persistent-start", tmpdir.path());
    let info: PersistentInfo = serde_json::from_str(report_value(&start, "info")).unwrap();

    // The starting process is gone, the server is not.
    let config: postgres::Config = info.dsn.parse().unwrap();
    config.connect(postgres::NoTls).unwrap();
    assert!(pid_exists(info.pid));

    let again = persistent_step("persistent-start", tmpdir.path());
    assert!(report_value(&again, "error").contains("already running"));

    let status = persistent_step("persistent-status", tmpdir.path());
    let seen: Option<PersistentInfo> = serde_json::from_str(report_value(&status, "info")).unwrap();
    assert_eq!(seen.as_ref(), Some(&info));

    let stop = persistent_step("persistent-stop", tmpdir.path());
    assert_eq!(report_value(&stop, "was_running"), "true");
    assert!(!info.data_dir.exists());
    assert!(!pid_exists(info.pid));
    assert!(config.connect(postgres::NoTls).is_err());

    let status = persistent_step("persistent-status", tmpdir.path());
    assert_eq!(report_value(&status, "info"), "null");
    let stop = persistent_step("persistent-stop", tmpdir.path());
    assert_eq!(report_value(&stop, "was_running"), "false");
}

/// Not a test: the child side of the tests above (does nothing unless `PGSTORM_TEST_HELPER` is set).
#[test]
#[ignore = "helper process for other tests"]
fn helper() {
    use pgstorm::sandbox::{start_persistent, status_persistent, stop_persistent};
    let Ok(mode) = std::env::var(HELPER_ENV) else {
        return;
    };
    match mode.as_str() {
        "exit" | "kill" => {
            let sandbox = common::fresh_sandbox(&SandboxOptions::default());
            println!("HELPER root={}", sandbox.socket_dir().display());
            println!("HELPER pid={}", sandbox.postmaster_pid().unwrap());
            println!("HELPER ready");
            if mode == "exit" {
                // Like the static fixture: the process ends and Drop never runs.
                std::mem::forget(sandbox);
                std::process::exit(0);
            }
            std::thread::sleep(Duration::from_secs(120));
        }
        "start" => match Sandbox::start(&SandboxOptions::default()) {
            Ok(_) => println!("HELPER started=true"),
            Err(e) => println!("HELPER error={}", e.to_string().replace('\n', " ")),
        },
        "persistent-start" => match start_persistent(&SandboxOptions::default()) {
            Ok(info) => println!("HELPER info={}", serde_json::to_string(&info).unwrap()),
            Err(e) => println!("HELPER error={}", e.to_string().replace('\n', " ")),
        },
        "persistent-status" => {
            let info = status_persistent().unwrap();
            println!("HELPER info={}", serde_json::to_string(&info).unwrap());
        }
        "persistent-stop" => println!("HELPER was_running={}", stop_persistent().unwrap()),
        other => panic!("unknown {HELPER_ENV}={other}"),
    }
    println!("HELPER ready");
}
