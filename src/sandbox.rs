//! A throwaway local PostgreSQL cluster (initdb + pg_ctl): the target when the user gives none,
//! and the fixture of the integration tests.
//!
//! Invariants:
//! - Everything lives in one fresh directory under the temp dir: the data directory (with the
//!   server log `server.log` inside it) and the Unix sockets. Nothing is written elsewhere, and
//!   the server never uses the system socket directory.
//! - The server listens on 127.0.0.1 only, on a port that was free (retried if it was taken
//!   meanwhile), with `max_connections` raised before the run (600 by default) and
//!   `pg_stat_statements` preloaded and created in the database `pgstorm`.
//! - Unless [`SandboxOptions::durable`] is set, the cluster runs with `fsync`, `synchronous_commit`
//!   and `full_page_writes` off: it is throwaway, fast, and its numbers are not those of a durable
//!   server.
//! - Run by root, the directory is handed to user `postgres` (else `nobody`) and initdb, pg_ctl
//!   and the server run as that user, because they refuse root.
//! - The server runs in its own process group, so a terminal Ctrl-C reaches pgstorm (which then
//!   shuts down gracefully) and not the server underneath it.
//! - Cleanup does not depend on `Drop`: a guard process, started before initdb, holds the read
//!   end of a pipe whose write end only this process holds. When this process ends for any
//!   reason (including SIGKILL, or a sandbox kept in a `static` that is never dropped), the pipe
//!   reads EOF and the guard stops the server (`-m immediate`) and removes the directory. A pipe
//!   rather than `kill -0 <pid>` polling: it cannot be fooled by pid reuse and works when the
//!   guard runs as another user than us (root).
//! - A persistent sandbox ([`start_persistent`]) detaches its guard and records itself in a
//!   state file, so it outlives the command that started it.

mod error;
mod guard;
mod os;
mod persistent;

pub use error::SandboxError;
pub use os::find_bin_dir;
pub use persistent::{start_persistent, status_persistent, stop_persistent, PersistentInfo};

use guard::Guard;
use os::RunAs;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The superuser role created by initdb, and the database created after start.
const USER: &str = "pgstorm";
const DBNAME: &str = "pgstorm";
const HOST: &str = "127.0.0.1";
/// How many times a start is retried when the chosen port was taken in the meantime.
const PORT_ATTEMPTS: usize = 5;
/// Seconds pg_ctl waits for a start, stop or restart.
const PG_CTL_TIMEOUT: &str = "60";

/// How to build a sandbox cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxOptions {
    /// `max_connections` of the server (default 600, room for 500 clients plus monitoring).
    pub max_connections: u32,
    /// A fixed TCP port; `None` picks a free one.
    pub port: Option<u16>,
    /// Extra `postgresql.conf` settings, applied last so they override the sandbox defaults.
    pub settings: Vec<(String, String)>,
    /// `false` (default) turns off fsync, synchronous_commit and full_page_writes: a throwaway
    /// cluster that is fast but would lose data on a crash.
    pub durable: bool,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            max_connections: 600,
            port: None,
            settings: Vec::new(),
            durable: false,
        }
    }
}

/// Lifecycle of a [`Sandbox`] value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    /// Ours to stop and remove.
    Owned,
    /// Stopped and removed (stop is idempotent).
    Stopped,
    /// Handed over to the persistent state file: never stopped or removed by this value.
    Kept,
}

/// A running throwaway cluster; stopped and removed by [`Sandbox::stop`], on drop, or by its
/// guard process when this process ends.
#[derive(Debug)]
pub struct Sandbox {
    root: PathBuf,
    data_dir: PathBuf,
    log_file: PathBuf,
    bin_dir: PathBuf,
    run_as: Option<RunAs>,
    port: u16,
    version: String,
    durable: bool,
    pg_stat_statements: bool,
    guard: Option<Guard>,
    life: Life,
}

impl Sandbox {
    /// initdb a fresh cluster in a new temp directory, start it, and create database `pgstorm`.
    pub fn start(opts: &SandboxOptions) -> Result<Sandbox, SandboxError> {
        let parent = std::env::temp_dir();
        // 0700: the socket lives here, and authentication is `trust`.
        let dir = tempfile::Builder::new()
            .prefix("pgstorm-sbx-")
            .permissions(fs::Permissions::from_mode(0o700))
            .tempdir_in(&parent)
            .map_err(|e| SandboxError::io("create a directory in", &parent, e))?
            .keep();
        Sandbox::start_in(dir, opts)
    }

    /// Like [`Sandbox::start`] in `root`, an existing empty directory that becomes the sandbox's
    /// (it is removed on stop).
    fn start_in(root: PathBuf, opts: &SandboxOptions) -> Result<Sandbox, SandboxError> {
        if let Err(e) = check_settings(&opts.settings) {
            let _ = fs::remove_dir_all(&root);
            return Err(e);
        }
        let found = find_bin_dir().and_then(|bin| {
            let version = os::server_version(&bin)?;
            Ok((bin, version, os::run_as()?))
        });
        let (bin_dir, version, run_as) = match found {
            Ok(found) => found,
            Err(e) => {
                let _ = fs::remove_dir_all(&root);
                return Err(e);
            }
        };
        let data_dir = root.join("data");
        let mut sandbox = Sandbox {
            log_file: data_dir.join("server.log"),
            data_dir,
            root,
            pg_stat_statements: pg_stat_statements_installed(&bin_dir),
            bin_dir,
            run_as,
            port: 0,
            version,
            durable: opts.durable,
            guard: None,
            life: Life::Owned,
        };
        // From here on, an early return drops `sandbox`, which stops and removes what exists.
        sandbox.prepare_dir()?;
        sandbox.guard = Some(Guard::spawn(&sandbox)?);
        sandbox.initdb(&sandbox.conf(opts))?;
        sandbox.boot(opts.port)?;
        sandbox.create_database()?;
        Ok(sandbox)
    }

    /// Always "127.0.0.1".
    pub fn host(&self) -> &str {
        HOST
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser role created by initdb ("pgstorm"); authentication is `trust`.
    pub fn user(&self) -> &str {
        USER
    }

    /// The database created after start ("pgstorm").
    pub fn dbname(&self) -> &str {
        DBNAME
    }

    /// libpq conninfo for the database `pgstorm`, e.g. for pgbench or psql.
    pub fn dsn(&self) -> String {
        format!("host={HOST} port={} user={USER} dbname={DBNAME}", self.port)
    }

    /// A driver configuration for the database `pgstorm`.
    pub fn pg_config(&self) -> postgres::Config {
        self.pg_config_for(DBNAME)
    }

    fn pg_config_for(&self, dbname: &str) -> postgres::Config {
        let mut config = postgres::Config::new();
        config
            .host(HOST)
            .port(self.port)
            .user(USER)
            .dbname(dbname)
            .application_name("pgstorm")
            .connect_timeout(Duration::from_secs(10));
        config
    }

    /// The server version from `postgres --version`, e.g. "15.18".
    pub fn server_version(&self) -> &str {
        &self.version
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The directory holding the server's Unix socket (`host=<this>` connects over it).
    pub fn socket_dir(&self) -> &Path {
        &self.root
    }

    /// The server log (stderr of the postmaster).
    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    /// The directory of the PostgreSQL binaries in use.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// Whether fsync and friends are on (see [`SandboxOptions::durable`]).
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// Whether pg_stat_statements is preloaded and created (false only when the installation
    /// lacks the module).
    pub fn has_pg_stat_statements(&self) -> bool {
        self.pg_stat_statements
    }

    /// The postmaster's pid from `postmaster.pid`, for host samplers; `None` when not running.
    pub fn postmaster_pid(&self) -> Option<u32> {
        read_postmaster_pid(&self.data_dir)
    }

    /// `pg_ctl restart -m fast`; returns once the server accepts connections again.
    pub fn restart(&self) -> Result<(), SandboxError> {
        let mut cmd = self.pg_ctl();
        cmd.args([
            "restart",
            "-m",
            "fast",
            "-w",
            "-s",
            "-t",
            PG_CTL_TIMEOUT,
            "-l",
        ])
        .arg(&self.log_file);
        self.run_server_command(cmd).map(|_| ())
    }

    /// Stops the server (`pg_ctl stop -m fast`) and removes the directory; a second call does
    /// nothing. Every step is attempted; the first failure is returned.
    pub fn stop(&mut self) -> Result<(), SandboxError> {
        if self.life != Life::Owned {
            return Ok(());
        }
        self.life = Life::Stopped;
        let mut first_err = None;
        if self.postmaster_pid().is_some() {
            let mut cmd = self.pg_ctl();
            cmd.args(["stop", "-m", "fast", "-w", "-s", "-t", PG_CTL_TIMEOUT]);
            first_err = os::run(&mut cmd, self.run_as.as_ref()).err();
        }
        // The guard stops the server hard if our fast stop failed, then removes the directory.
        if let Some(guard) = self.guard.take() {
            guard.clean_up_now();
        }
        match fs::remove_dir_all(&self.root) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                first_err.get_or_insert(SandboxError::io("remove", &self.root, e));
            }
            _ => {}
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Hands the running cluster over to the caller: its guard exits without cleaning up and
    /// nothing stops it on drop.
    fn keep(&mut self) {
        if let Some(guard) = self.guard.take() {
            guard.detach();
        }
        self.life = Life::Kept;
    }

    fn pg_ctl(&self) -> Command {
        let mut cmd = os::pg_command(
            &self.bin_dir.join("pg_ctl"),
            self.run_as.as_ref(),
            &self.root,
        );
        cmd.arg("-D").arg(&self.data_dir);
        cmd
    }

    fn prepare_dir(&self) -> Result<(), SandboxError> {
        if let Some(user) = &self.run_as {
            os::check_reachable(&self.root, user)?;
        }
        os::give_to(&self.root, self.run_as.as_ref())
    }

    fn initdb(&self, conf: &str) -> Result<(), SandboxError> {
        let mut cmd = os::pg_command(
            &self.bin_dir.join("initdb"),
            self.run_as.as_ref(),
            &self.root,
        );
        cmd.arg("-D")
            .arg(&self.data_dir)
            .args(["--no-sync", "-A", "trust", "-U", USER, "-E", "UTF8"])
            .args(["--locale=C"]);
        os::run(&mut cmd, self.run_as.as_ref())?;
        // Our settings go in their own file, included last, so the port can be rewritten on a
        // retry without editing initdb's file twice.
        self.write_file("pgstorm.conf", conf)?;
        let main_conf = self.data_dir.join("postgresql.conf");
        fs::OpenOptions::new()
            .append(true)
            .open(&main_conf)
            .and_then(|mut f| f.write_all(b"\ninclude 'pgstorm.conf'\n"))
            .map_err(|e| SandboxError::io("append to", &main_conf, e))
    }

    /// Starts the server, retrying with a new port when a picked one was taken meanwhile.
    fn boot(&mut self, fixed_port: Option<u16>) -> Result<(), SandboxError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.port = match fixed_port {
                Some(port) => port,
                None => os::free_port()
                    .map_err(|e| SandboxError::io("find a free TCP port on", Path::new(HOST), e))?,
            };
            self.write_file("pgstorm-port.conf", &format!("port = {}\n", self.port))?;
            let log_start = fs::metadata(&self.log_file).map_or(0, |m| m.len());
            let mut cmd = self.pg_ctl();
            cmd.args(["start", "-w", "-s", "-t", PG_CTL_TIMEOUT, "-l"])
                .arg(&self.log_file);
            match self.run_server_command(cmd) {
                Ok(()) => return Ok(()),
                Err(e) if self.port_was_taken(log_start) => {
                    if let Some(port) = fixed_port {
                        return Err(SandboxError::PortInUse { port });
                    }
                    if attempt >= PORT_ATTEMPTS {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn port_was_taken(&self, log_start: u64) -> bool {
        let log = fs::read(&self.log_file).unwrap_or_default();
        let new = log.get(log_start as usize..).unwrap_or_default();
        String::from_utf8_lossy(new).contains("Address already in use")
    }

    /// Runs pg_ctl start/restart; a failure carries the tail of the server log.
    fn run_server_command(&self, mut cmd: Command) -> Result<(), SandboxError> {
        match os::run(&mut cmd, self.run_as.as_ref()) {
            Ok(_) => Ok(()),
            Err(SandboxError::Command {
                command, status, ..
            }) => Err(SandboxError::StartFailed {
                command,
                status,
                log: self.log_file.clone(),
                log_tail: os::file_tail(&self.log_file, 20),
            }),
            Err(e) => Err(e),
        }
    }

    fn create_database(&self) -> Result<(), SandboxError> {
        let connect = |config: postgres::Config, dbname: &str| {
            config
                .connect(postgres::NoTls)
                .map_err(|source| SandboxError::Connect {
                    dsn: format!("host={HOST} port={} user={USER} dbname={dbname}", self.port),
                    source,
                })
        };
        let mut admin = connect(self.pg_config_for("postgres"), "postgres")?;
        admin
            .batch_execute(&format!("CREATE DATABASE {DBNAME}"))
            .map_err(|source| SandboxError::Sql {
                what: format!("create database {DBNAME}"),
                source,
            })?;
        if self.pg_stat_statements {
            connect(self.pg_config(), DBNAME)?
                .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                .map_err(|source| SandboxError::Sql {
                    what: "create extension pg_stat_statements".to_string(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Writes `name` in the data directory, owned by the server's user and readable by it only
    /// (0600, as the server demands of a TLS key), e.g. certificates or a `pg_hba.conf` that a
    /// test installs before `pg_reload_conf()`; returns its path.
    pub fn install_file(&self, name: &str, content: &str) -> Result<PathBuf, SandboxError> {
        self.write_file(name, content)?;
        let path = self.data_dir.join(name);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
            .map_err(|e| SandboxError::io("chmod 600", &path, e))?;
        Ok(path)
    }

    /// Writes a file in the data directory, owned by the server's user.
    fn write_file(&self, name: &str, content: &str) -> Result<(), SandboxError> {
        let path = self.data_dir.join(name);
        fs::write(&path, content).map_err(|e| SandboxError::io("write", &path, e))?;
        os::give_to(&path, self.run_as.as_ref())
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

impl Sandbox {
    /// The sandbox's postgresql.conf lines (the port goes in its own file, see `boot`).
    fn conf(&self, opts: &SandboxOptions) -> String {
        let mut lines = vec![
            "# Written by pgstorm: a throwaway sandbox cluster.".to_string(),
            format!("listen_addresses = '{HOST}'"),
            format!(
                "unix_socket_directories = {}",
                conf_quote(&self.root.to_string_lossy())
            ),
            format!("max_connections = {}", opts.max_connections),
            "shared_buffers = '128MB'".to_string(),
            "track_io_timing = on".to_string(),
            "logging_collector = off".to_string(),
            "log_line_prefix = '%m [%p] '".to_string(),
            "include_if_exists 'pgstorm-port.conf'".to_string(),
        ];
        if self.pg_stat_statements {
            lines.push("shared_preload_libraries = 'pg_stat_statements'".to_string());
        }
        if !opts.durable {
            lines.push(
                "# Not durable: data may be lost on a crash; fine for a throwaway cluster.".into(),
            );
            lines.extend(
                [
                    "fsync = off",
                    "synchronous_commit = off",
                    "full_page_writes = off",
                ]
                .map(String::from),
            );
        }
        for (name, value) in &opts.settings {
            lines.push(format!("{name} = {}", conf_quote(value)));
        }
        lines.join("\n") + "\n"
    }
}

/// Settings the sandbox owns: changing them would break its invariants or its accessors.
const RESERVED_SETTINGS: [(&str, &str); 4] = [
    ("port", "use SandboxOptions::port"),
    ("max_connections", "use SandboxOptions::max_connections"),
    ("listen_addresses", "the sandbox listens on 127.0.0.1 only"),
    (
        "unix_socket_directories",
        "the sandbox keeps its socket in its own directory",
    ),
];

fn check_settings(settings: &[(String, String)]) -> Result<(), SandboxError> {
    settings
        .iter()
        .try_for_each(|(name, value)| check_setting(name, value))
}

fn check_setting(name: &str, value: &str) -> Result<(), SandboxError> {
    let invalid = |reason: &str| SandboxError::InvalidSetting {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        return Err(invalid(
            "a setting name has only letters, digits, `_` and `.`",
        ));
    }
    if let Some((_, reason)) = RESERVED_SETTINGS
        .iter()
        .find(|(reserved, _)| reserved.eq_ignore_ascii_case(name))
    {
        return Err(invalid(reason));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(
            "the value must not contain control characters such as newlines",
        ));
    }
    Ok(())
}

/// A postgresql.conf string literal (any setting accepts one, numbers included).
fn conf_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

fn read_postmaster_pid(data_dir: &Path) -> Option<u32> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// Whether the installation has the pg_stat_statements module (asked of `pg_config` when it is
/// next to the server; assumed present when there is no way to tell).
fn pg_stat_statements_installed(bin_dir: &Path) -> bool {
    let mut cmd = os::pg_command(&bin_dir.join("pg_config"), None, Path::new("/"));
    cmd.arg("--pkglibdir");
    match os::run(&mut cmd, None) {
        Ok(out) => {
            let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
            Path::new(&dir).join("pg_stat_statements.so").exists()
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binaries_say_what_to_install() {
        let msg = SandboxError::NoBinaries {
            searched: "PATH".into(),
        }
        .to_string();
        assert!(msg.contains("apt-get install postgresql"), "{msg}");
        assert!(msg.contains("PATH"), "{msg}");
    }

    #[test]
    fn conf_values_are_quoted_for_postgresql_conf() {
        assert_eq!(conf_quote("8MB"), "'8MB'");
        assert_eq!(conf_quote("it's"), "'it''s'");
        assert_eq!(conf_quote(r"a\b"), r"'a\\b'");
    }

    #[test]
    fn settings_are_checked_before_anything_runs() {
        assert!(check_setting("work_mem", "8MB").is_ok());
        assert!(check_setting("pg_stat_statements.max", "10000").is_ok());
        assert!(check_setting("Port", "1").is_err());
        assert!(check_setting("a b", "1").is_err());
        assert!(check_setting("", "1").is_err());
        assert!(check_setting("work_mem", "1\nfsync=on").is_err());
    }
}
