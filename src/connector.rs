//! The connector: the one place that turns a resolved target into an open, authenticated
//! connection, for every connection pgstorm opens (pool and `-j` drivers, connection scenario,
//! isolation sessions, samplers, preflight, seeding).
//!
//! It owns the TLS settings (libpq's `sslmode` and certificate options, see [`tls`]) and the
//! rustls configuration built from them once; the blocking paths go through [`Connector::connect`]
//! (tokio-postgres with `tokio-postgres-rustls`, which also gives SCRAM channel binding), and the
//! `-j` driver takes the same rustls configuration for its sans-IO sessions
//! ([`Connector::rustls`]).
//!
//! libpq's sslmode semantics on top of the driver's three modes: `allow` tries plaintext first and
//! TLS when the server refuses it; `prefer` falls back to plaintext when the server refuses the
//! TLS session (pg_hba `hostnossl`); Unix-domain sockets never use TLS (as in libpq).
//!
//! Invariants: a connection is TLS-or-nothing for `require` and the `verify-*` modes; the TLS
//! handshake happens inside `connect`, so it is part of every measured connect time.

pub mod options;
pub mod pgpass;
pub mod service;
pub mod tls;
mod verify;

use std::sync::Arc;

use postgres::config::{Host, SslMode as DriverMode};
use postgres::{Client, Config, NoTls};
use serde::{Deserialize, Serialize};
use tokio_postgres_rustls::MakeRustlsConnect;

pub use self::tls::{SslMode, TlsSettings};

/// Hands out connections with the target's TLS settings; cheap to clone.
#[derive(Clone)]
pub struct Connector {
    inner: Arc<Inner>,
}

struct Inner {
    settings: TlsSettings,
    rustls: Option<Arc<rustls::ClientConfig>>,
    make_tls: Option<MakeRustlsConnect>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Connector(sslmode={})", self.inner.settings.mode)
    }
}

impl Connector {
    /// Builds the connector, reading every certificate and key file now (errors are exit 2/3).
    pub fn new(settings: TlsSettings) -> anyhow::Result<Connector> {
        let rustls = settings.client_config()?;
        let make_tls = rustls
            .as_ref()
            .map(|c| MakeRustlsConnect::new(c.as_ref().clone()));
        Ok(Connector {
            inner: Arc::new(Inner {
                settings,
                rustls,
                make_tls,
            }),
        })
    }

    /// The TLS settings in force.
    pub fn settings(&self) -> &TlsSettings {
        &self.inner.settings
    }

    /// The rustls client configuration (`None` with `sslmode=disable`).
    pub fn rustls(&self) -> Option<&Arc<rustls::ClientConfig>> {
        self.inner.rustls.as_ref()
    }

    /// Opens one connection with `config` (the target's, possibly with per-use changes such as
    /// `application_name`), negotiating TLS as the sslmode says.
    pub fn connect(&self, config: &Config) -> Result<Client, postgres::Error> {
        let mode = if only_unix_sockets(config) {
            SslMode::Disable
        } else {
            self.inner.settings.mode
        };
        let tls = self.inner.make_tls.clone();
        let mut cfg = config.clone();
        let plain = |cfg: &mut Config| cfg.ssl_mode(DriverMode::Disable).connect(NoTls);
        let with_tls = |cfg: &mut Config, m: DriverMode| match tls.clone() {
            Some(t) => cfg.ssl_mode(m).connect(t),
            None => cfg.ssl_mode(DriverMode::Disable).connect(NoTls),
        };
        match mode {
            SslMode::Disable => plain(&mut cfg),
            SslMode::Allow => match plain(&mut cfg) {
                Err(e) if e.as_db_error().is_some() => with_tls(&mut cfg, DriverMode::Require),
                r => r,
            },
            SslMode::Prefer => match with_tls(&mut cfg, DriverMode::Prefer) {
                Err(e) if e.as_db_error().is_some() => plain(&mut cfg),
                r => r,
            },
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                with_tls(&mut cfg, DriverMode::Require)
            }
        }
    }
}

fn only_unix_sockets(config: &Config) -> bool {
    let hosts = config.get_hosts();
    config.get_hostaddrs().is_empty()
        && !hosts.is_empty()
        && hosts.iter().all(|h| matches!(h, Host::Unix(_)))
}

/// How a session is protected and authenticated, as the server and pgstorm's handshake see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SessionSecurity {
    /// The sslmode pgstorm connected with.
    pub sslmode: String,
    /// The TLS version, e.g. "TLSv1.3", or "none" for a plaintext session.
    pub tls_version: String,
    /// The TLS cipher, e.g. "TLS_AES_256_GCM_SHA384", or "none".
    pub tls_cipher: String,
    /// `system_user` (PostgreSQL 16+: "method:identity", e.g. "cert:alice"); `None` when the
    /// server cannot tell (older servers, trust authentication).
    pub auth: Option<String>,
    /// The password exchange the server asked for when pgstorm connected, read from the protocol
    /// itself so it is known on every server version: "SCRAM-SHA-256-PLUS", "SCRAM-SHA-256",
    /// "md5", "password", or "none" (trust, peer, ident or cert: nothing was asked).
    /// `None` when the probe connection failed (the reason is not a run failure).
    #[serde(default)]
    pub auth_exchange: Option<String>,
    /// The distinguished name of the client certificate the server accepted
    /// (`pg_stat_ssl.client_dn`); with `auth_exchange` "none" this is how `cert` logins show.
    #[serde(default)]
    pub client_dn: Option<String>,
}

impl SessionSecurity {
    /// Reads it for the session of `client`, connected through `connector`: TLS from the
    /// server's `pg_stat_ssl` and the identity from `system_user` where the server has it.
    /// `auth_exchange` is left for [`SessionSecurity::probe_auth_exchange`], which costs a
    /// connection and so runs only once preflight has accepted the run.
    pub fn read(
        client: &mut Client,
        connector: &Connector,
        server_version_num: i32,
    ) -> Result<SessionSecurity, postgres::Error> {
        let row = client.query_one(
            "SELECT coalesce(version, 'none'), coalesce(cipher, 'none'), client_dn \
             FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )?;
        let auth = if server_version_num >= 160_000 {
            client.query_one("SELECT system_user", &[])?.get(0)
        } else {
            None
        };
        Ok(SessionSecurity {
            sslmode: connector.settings().mode.name().to_string(),
            tls_version: row.get(0),
            tls_cipher: row.get(1),
            auth,
            auth_exchange: None,
            client_dn: row.get(2),
        })
    }

    /// The password exchange the server asks of `config`'s role, learnt from one short probe
    /// connection over pgstorm's own wire protocol code (the only place a client sees what the
    /// server asked for). None when the probe fails: that is not a reason to fail a run.
    pub fn probe_auth_exchange(connector: &Connector, config: &Config) -> Option<String> {
        crate::wire::WireConn::connect(config, connector, "")
            .ok()
            .map(|probe| probe.auth_exchange().name().to_string())
    }

    /// "TLS 1.3" or "plaintext", for headers.
    pub fn label(&self) -> String {
        if self.tls_version == "none" {
            "plaintext".to_string()
        } else {
            self.tls_version.replace("TLSv", "TLS ")
        }
    }

    /// "TLS 1.3 (TLS_AES_256_GCM_SHA384)" or "plaintext", for the terminal.
    pub fn describe(&self) -> String {
        if self.tls_version == "none" {
            return self.label();
        }
        format!("{} ({})", self.label(), self.tls_cipher)
    }
}
