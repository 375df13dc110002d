//! The persistent sandbox behind `pgstorm sandbox start|stop|status`: one cluster per user that
//! outlives the command that started it.
//!
//! Invariants: its state lives in `<temp dir>/pgstorm-sandbox-<uid>/` (the cluster in `cluster/`,
//! the description in `state.json`, written atomically). That directory must be ours, a real
//! directory and not writable by others, since its path is predictable. A state file whose server
//! is gone (crash, reboot) is stale: status reports nothing, start replaces it, stop removes it.

use super::{os, read_postmaster_pid, Sandbox, SandboxError, SandboxOptions};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What `pgstorm sandbox status` shows, and how other commands find the persistent sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistentInfo {
    /// libpq conninfo for the database `pgstorm`.
    pub dsn: String,
    /// Always 127.0.0.1.
    pub host: String,
    /// The TCP port.
    pub port: u16,
    /// The superuser role ("pgstorm").
    pub user: String,
    /// The database ("pgstorm").
    pub dbname: String,
    /// The cluster's data directory.
    pub data_dir: PathBuf,
    /// The server log.
    pub log_file: PathBuf,
    /// The postmaster's pid (re-read from postmaster.pid by [`status_persistent`]).
    pub pid: u32,
    /// The server version, e.g. "15.18".
    pub version: String,
    /// Where pg_ctl was found, so stop uses the binaries that started the cluster.
    pub bin_dir: PathBuf,
    /// Whether fsync and friends are on.
    pub durable: bool,
}

const STATE_FILE: &str = "state.json";
const CLUSTER_DIR: &str = "cluster";

/// Starts the persistent sandbox; fails with [`SandboxError::AlreadyRunning`] if one runs.
pub fn start_persistent(opts: &SandboxOptions) -> Result<PersistentInfo, SandboxError> {
    let dir = state_dir()?;
    if let Some(info) = status_in(&dir)? {
        return Err(SandboxError::AlreadyRunning { dsn: info.dsn });
    }
    remove_cluster(&dir, None)?;
    let root = dir.join(CLUSTER_DIR);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&root)
        .map_err(|e| SandboxError::io("create", &root, e))?;
    let mut sandbox = Sandbox::start_in(root, opts)?;
    let info = PersistentInfo {
        dsn: sandbox.dsn(),
        host: sandbox.host().to_string(),
        port: sandbox.port(),
        user: sandbox.user().to_string(),
        dbname: sandbox.dbname().to_string(),
        data_dir: sandbox.data_dir().to_path_buf(),
        log_file: sandbox.log_file().to_path_buf(),
        pid: sandbox.postmaster_pid().unwrap_or(0),
        version: sandbox.server_version().to_string(),
        bin_dir: sandbox.bin_dir().to_path_buf(),
        durable: sandbox.is_durable(),
    };
    // Written before `keep`: if this fails, dropping `sandbox` removes the cluster again.
    write_state(&dir, &info)?;
    sandbox.keep();
    Ok(info)
}

/// Stops and removes the persistent sandbox; `Ok(true)` if a server was running.
pub fn stop_persistent() -> Result<bool, SandboxError> {
    let dir = state_path();
    if fs::symlink_metadata(&dir).is_err() {
        return Ok(false);
    }
    check_state_dir(&dir)?;
    // A corrupt state file must not prevent stopping: fall back to the installed binaries.
    let info = read_state(&dir).ok().flatten();
    let was_running = remove_cluster(&dir, info.as_ref().map(|i| i.bin_dir.as_path()))?;
    let state = dir.join(STATE_FILE);
    match fs::remove_file(&state) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(SandboxError::io("remove", &state, e)),
        _ => Ok(was_running),
    }
}

/// The running persistent sandbox, or `None` (also when only a stale state file is left).
pub fn status_persistent() -> Result<Option<PersistentInfo>, SandboxError> {
    let dir = state_path();
    if fs::symlink_metadata(&dir).is_err() {
        return Ok(None);
    }
    check_state_dir(&dir)?;
    status_in(&dir)
}

fn status_in(dir: &Path) -> Result<Option<PersistentInfo>, SandboxError> {
    let Some(mut info) = read_state(dir)? else {
        return Ok(None);
    };
    match running_postmaster(&info.data_dir) {
        Some(pid) => {
            info.pid = pid;
            Ok(Some(info))
        }
        None => Ok(None),
    }
}

/// The postmaster's pid when it is alive and (where /proc tells) really serves `data_dir`, so a
/// pid reused after a reboot is not mistaken for our server.
fn running_postmaster(data_dir: &Path) -> Option<u32> {
    let pid = read_postmaster_pid(data_dir)?;
    if !os::pid_alive(pid) {
        return None;
    }
    match fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => {
            let cmdline = String::from_utf8_lossy(&cmdline);
            cmdline
                .contains(data_dir.to_string_lossy().as_ref())
                .then_some(pid)
        }
        Err(_) => Some(pid),
    }
}

/// Stops a server still running in `<dir>/cluster` and removes the directory; returns whether
/// one was running.
fn remove_cluster(dir: &Path, bin_dir: Option<&Path>) -> Result<bool, SandboxError> {
    let root = dir.join(CLUSTER_DIR);
    let data_dir = root.join("data");
    let was_running = running_postmaster(&data_dir).is_some();
    if was_running {
        let bin_dir = match bin_dir {
            Some(bin) => bin.to_path_buf(),
            None => super::find_bin_dir()?,
        };
        let run_as = os::run_as()?;
        let mut cmd = os::pg_command(&bin_dir.join("pg_ctl"), run_as.as_ref(), Path::new("/"));
        cmd.arg("-D").arg(&data_dir).args([
            "stop",
            "-m",
            "fast",
            "-w",
            "-s",
            "-t",
            super::PG_CTL_TIMEOUT,
        ]);
        os::run(&mut cmd, run_as.as_ref())?;
    }
    match fs::remove_dir_all(&root) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(SandboxError::io("remove", &root, e)),
        _ => Ok(was_running),
    }
}

fn state_path() -> PathBuf {
    std::env::temp_dir().join(format!("pgstorm-sandbox-{}", os::euid()))
}

/// The state directory, created if missing. Mode 0755 so that, under root, the server's user can
/// reach the cluster directory inside it.
fn state_dir() -> Result<PathBuf, SandboxError> {
    let dir = state_path();
    match fs::DirBuilder::new().mode(0o755).create(&dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            return Err(SandboxError::io("create", &dir, e));
        }
        _ => {}
    }
    check_state_dir(&dir)?;
    Ok(dir)
}

fn check_state_dir(dir: &Path) -> Result<(), SandboxError> {
    let meta = fs::symlink_metadata(dir).map_err(|e| SandboxError::io("inspect", dir, e))?;
    let problem = if !meta.is_dir() {
        Some("it is not a directory (a symlink?)")
    } else if meta.uid() != os::euid() {
        Some("it belongs to another user")
    } else if meta.mode() & 0o022 != 0 {
        Some("others can write to it")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(SandboxError::State {
            path: dir.to_path_buf(),
            reason: format!("{problem}; remove it (after checking no server uses it) and retry"),
        }),
        None => Ok(()),
    }
}

fn read_state(dir: &Path) -> Result<Option<PersistentInfo>, SandboxError> {
    let path = dir.join(STATE_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SandboxError::io("read", &path, e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| SandboxError::State {
            path,
            reason: format!("unreadable ({e}); run `pgstorm sandbox stop` to clear it"),
        })
}

fn write_state(dir: &Path, info: &PersistentInfo) -> Result<(), SandboxError> {
    let path = dir.join(STATE_FILE);
    let tmp = dir.join(format!("{STATE_FILE}.tmp"));
    let json = serde_json::to_string_pretty(info).map_err(|e| SandboxError::State {
        path: path.clone(),
        reason: format!("could not serialize: {e}"),
    })?;
    fs::write(&tmp, json + "\n").map_err(|e| SandboxError::io("write", &tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| SandboxError::io("rename into", &path, e))
}
