//! The sandbox's error type. Invariant: every message says what failed, on which path or
//! command, and what to do next.

use std::io;
use std::path::{Path, PathBuf};

/// Why a sandbox could not be started, stopped or inspected.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// initdb / pg_ctl / postgres are not installed where we look.
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on {searched}; install \
         the Debian package `postgresql` (apt-get install postgresql), or put initdb/pg_ctl on PATH"
    )]
    NoBinaries {
        /// Where we looked.
        searched: String,
    },
    /// A file system operation failed.
    #[error("could not {what} {}: {source}", path.display())]
    Io {
        /// The operation, as a verb phrase.
        what: String,
        /// The path it was applied to.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A program could not be started at all.
    #[error("could not run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The OS error.
        source: io::Error,
    },
    /// A program ran and failed.
    #[error("`{command}` failed ({status}):\n{output_tail}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The last lines it printed (stderr, else stdout).
        output_tail: String,
    },
    /// The server did not start (or restart); the log says why.
    #[error(
        "the sandbox server did not start: `{command}` failed ({status}); last lines of {}:\n{log_tail}",
        log.display()
    )]
    StartFailed {
        /// The pg_ctl command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The server log file.
        log: PathBuf,
        /// Its last lines.
        log_tail: String,
    },
    /// The requested fixed port is taken.
    #[error(
        "port {port} on 127.0.0.1 is already in use; choose another port or leave it unset so \
         a free one is picked"
    )]
    PortInUse {
        /// The port.
        port: u16,
    },
    /// We are root and there is no unprivileged account to run the server as.
    #[error(
        "running as root, but neither user `postgres` nor `nobody` exists to run the server as \
         (initdb and postgres refuse root); create one (useradd --system postgres) or run as an \
         ordinary user"
    )]
    NoUnprivilegedUser,
    /// The server's user cannot reach the sandbox directory.
    #[error(
        "user `{user}` cannot enter {}, so the server cannot use a directory below it; set \
         TMPDIR to a directory that `{user}` can reach, such as /tmp",
        path.display()
    )]
    DirNotReachable {
        /// The directory without search permission.
        path: PathBuf,
        /// The server's user.
        user: String,
    },
    /// A setting in [`crate::sandbox::SandboxOptions::settings`] cannot be written safely.
    #[error("invalid sandbox setting `{name}`: {reason}")]
    InvalidSetting {
        /// The setting name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server started but refused or dropped a connection.
    #[error("could not connect to the sandbox at {dsn}: {source}")]
    Connect {
        /// The conninfo used.
        dsn: String,
        /// The driver error.
        source: postgres::Error,
    },
    /// Preparing the database failed.
    #[error("could not {what} in the sandbox: {source}")]
    Sql {
        /// The step, as a verb phrase.
        what: String,
        /// The driver error.
        source: postgres::Error,
    },
    /// `start_persistent` found one already running.
    #[error(
        "a persistent sandbox is already running at {dsn}; use it, or stop it first with \
         `pgstorm sandbox stop`"
    )]
    AlreadyRunning {
        /// Its conninfo.
        dsn: String,
    },
    /// The persistent sandbox's state directory or file is unusable.
    #[error("persistent sandbox state {}: {reason}", path.display())]
    State {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
}

impl SandboxError {
    pub(super) fn io(what: &str, path: &Path, source: io::Error) -> Self {
        SandboxError::Io {
            what: what.to_string(),
            path: path.to_path_buf(),
            source,
        }
    }
}
