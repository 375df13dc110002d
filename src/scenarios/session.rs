//! A session with the server under test: the resolved target (or a sandbox started for this run),
//! an administrative connection, and what preflight learned.
//!
//! Invariants: the sandbox, when there is one, lives exactly as long as the session (dropping the
//! session stops and removes it); the first line printed says which server is used; the admin
//! connection is not one of the pool's and is named `pgstorm-monitor`.

use std::time::Duration;

use anyhow::Result;
use postgres::Client;

use crate::connector::SessionSecurity;
use crate::report::model::{HostInfo, RunDocument, TargetInfo, ToolInfo, SCHEMA_VERSION};
use crate::sandbox::{Sandbox, SandboxOptions};
use crate::stop::StopToken;
use crate::target::{self, ServerInfo, Target, TargetSource};

/// Options shared by every subcommand that talks to a server.
#[derive(Debug, Clone, Default)]
pub struct TargetOptions {
    /// `--dsn`.
    pub dsn: Option<String>,
    /// max_connections of a sandbox started for this run.
    pub sandbox_max_connections: Option<u32>,
    /// What stops the run (the app's is stopped by Ctrl-C); the session carries it to the
    /// scenario and the engine.
    pub stop: StopToken,
}

/// `--dsn`, PG* variables, or the persistent sandbox; says which on stderr.
fn existing_target(dsn: Option<&str>) -> Result<Option<Target>> {
    if let Some(t) = target::resolve(dsn)? {
        eprintln!("pgstorm: target {}", t.display);
        return Ok(Some(t));
    }
    if let Ok(Some(info)) = crate::sandbox::status_persistent() {
        let t = target::resolve(Some(&info.dsn))?.map(|t| Target {
            source: TargetSource::Sandbox,
            ..t
        });
        if let Some(t) = &t {
            eprintln!(
                "pgstorm: target {} (the sandbox started by `pgstorm sandbox start`)",
                t.display
            );
        }
        return Ok(t);
    }
    Ok(None)
}

/// An open session.
pub struct Session {
    /// Where the load goes.
    pub target: Target,
    /// The admin / monitoring connection.
    pub admin: Client,
    /// Preflight facts.
    pub server: ServerInfo,
    /// How the admin session is protected (the load's sessions use the same connector).
    pub security: SessionSecurity,
    /// What stops this session's run ([`TargetOptions::stop`]).
    pub stop: StopToken,
    /// The password exchange, probed once when the first document is made (after preflight,
    /// so a refused run opens no connection beyond preflight's own).
    auth_exchange: std::sync::OnceLock<Option<String>>,
    /// The sandbox, when pgstorm started one (declared last: dropped after the connection).
    pub sandbox: Option<Sandbox>,
}

impl Session {
    /// Resolves an existing target: `--dsn`, PG* variables, or a sandbox kept running by
    /// `pgstorm sandbox start`. Never starts a throwaway one (its data would vanish at exit).
    pub fn open_existing(dsn: Option<&str>, stop: &StopToken) -> Result<Session> {
        match existing_target(dsn)? {
            Some(t) => Session::connect(t, None, stop.clone()),
            None => Err(crate::error::usage(
                "no target: give --dsn, set PGHOST/PGUSER/PGDATABASE, or start a sandbox with                  `pgstorm sandbox start`",
            )),
        }
    }

    /// Resolves the target (starting a sandbox when none is given) and connects.
    pub fn open(opts: &TargetOptions) -> Result<Session> {
        let (target, sandbox) = match existing_target(opts.dsn.as_deref())? {
            Some(t) => (t, None),
            None => {
                let sb_opts = SandboxOptions {
                    max_connections: opts.sandbox_max_connections.unwrap_or(600),
                    ..SandboxOptions::default()
                };
                let sb = Sandbox::start(&sb_opts).map_err(|e| {
                    crate::error::target(format!("cannot start a sandbox PostgreSQL: {e}"))
                })?;
                let t = Target::new(sb.pg_config(), TargetSource::Sandbox);
                eprintln!(
                    "pgstorm: no target given (--dsn or PG* variables): using a throwaway PostgreSQL {} \
                     sandbox at {} (max_connections {}, fsync off); it is removed when pgstorm exits",
                    sb.server_version(),
                    t.display,
                    sb_opts.max_connections
                );
                (t, Some(sb))
            }
        };
        Session::connect(target, sandbox, opts.stop.clone())
    }

    fn connect(target: Target, sandbox: Option<Sandbox>, stop: StopToken) -> Result<Session> {
        let mut admin_cfg = target.config.clone();
        admin_cfg.application_name("pgstorm-monitor");
        let mut admin = target
            .connect_with(&admin_cfg)
            .map_err(|e| target::connect_error(&target.display, &e))?;
        let server = target::server_info(&mut admin).map_err(|e| {
            crate::error::target(format!(
                "connected to {} but cannot read its settings: {}",
                target.display,
                target::one_line(&e)
            ))
        })?;
        let security =
            SessionSecurity::read(&mut admin, &target.connector, server.server_version_num)
                .map_err(|e| {
                    crate::error::target(format!(
                        "connected to {} but cannot read pg_stat_ssl: {}",
                        target.display,
                        target::one_line(&e)
                    ))
                })?;
        eprintln!(
            "pgstorm: connected over {} (sslmode={})",
            security.describe(),
            security.sslmode
        );
        Ok(Session {
            target,
            admin,
            server,
            security,
            stop,
            auth_exchange: std::sync::OnceLock::new(),
            sandbox,
        })
    }

    /// The document skeleton every scenario fills in.
    pub fn document(
        &self,
        scenario: &str,
        label: &str,
        command: &[String],
        started: chrono::DateTime<chrono::Utc>,
        host: HostInfo,
    ) -> RunDocument {
        RunDocument {
            schema_version: SCHEMA_VERSION,
            pgstorm: ToolInfo {
                version: env!("CARGO_PKG_VERSION").to_string(),
                git_commit: env!("PGSTORM_GIT_COMMIT").to_string(),
            },
            run_id: crate::report::archive::run_id(started, label),
            label: label.to_string(),
            scenario: scenario.to_string(),
            command: command.iter().map(|a| target::redact(a)).collect(),
            started_at: started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            finished_at: String::new(),
            interrupted: false,
            target_lost_at: None,
            load_thread_panics: Vec::new(),
            host,
            target: TargetInfo {
                dsn: self.target.display.clone(),
                source: self.target.source,
                local: self.target.is_local(),
                server: self.server.clone(),
                security: Some(SessionSecurity {
                    auth_exchange: self
                        .auth_exchange
                        .get_or_init(|| {
                            let mut config = self.target.config.clone();
                            config.application_name("pgstorm-monitor");
                            SessionSecurity::probe_auth_exchange(&self.target.connector, &config)
                        })
                        .clone(),
                    ..self.security.clone()
                }),
            },
            dataset: None,
            load: None,
            isolation: None,
            connections: None,
            sweep: None,
            hygiene: None,
            warnings: Vec::new(),
            monitoring: None,
            analysis: None,
            criteria: None,
            merged_from: None,
            data_size: None,
            study: None,
        }
    }

    /// (xact_commit, xact_rollback) of the current database, fresh (not a cached snapshot).
    pub fn xact_counters(&mut self) -> Result<(i64, i64), postgres::Error> {
        self.admin
            .batch_execute("SELECT pg_stat_clear_snapshot()")?;
        let row = self.admin.query_one(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )?;
        Ok((row.get(0), row.get(1)))
    }

    /// The PostgreSQL processes on this host: the sandbox's postmaster, or (for a local socket or
    /// loopback target) the parent of our own backend; `None` for a remote server.
    pub fn local_server(&mut self) -> Option<crate::monitor::LocalServer> {
        if let Some(pid) = self.sandbox.as_ref().and_then(|s| s.postmaster_pid()) {
            return Some(crate::monitor::LocalServer {
                pid,
                source: "sandbox",
            });
        }
        if !self.target.is_local() {
            return None;
        }
        crate::monitor::local_postmaster(&mut self.admin)
    }

    /// Waits (bounded) until the pool's backends have exited, so their statistics are flushed.
    pub fn wait_pool_gone(&mut self, timeout: Duration) -> Result<(), postgres::Error> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let n: i64 = self
                .admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgstorm' \
                     AND datname = current_database() AND pid <> pg_backend_pid()",
                    &[],
                )?
                .get(0);
            if n == 0 || std::time::Instant::now() >= deadline {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
