//! Where to connect, and whether the server there can take the requested load.
//!
//! Resolution follows libpq habits: `--dsn` (URL or conninfo) first, then the PG* environment
//! variables; with neither, the caller starts a sandbox. Fields missing from a DSN are filled from
//! its service (`service=`/`PGSERVICE`), then from the environment, and a missing password from
//! the password file (`passfile=`/`PGPASSFILE`/`~/.pgpass`), as libpq does.
//!
//! Invariants: a password never appears in [`Target::display`], in an error message or in anything
//! this module returns for printing. Preflight refuses a run that the server's `max_connections`
//! cannot hold *before* a single worker connects.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Result;
use postgres::config::Host;
use postgres::{Client, Config};
use serde::{Deserialize, Serialize};

use crate::connector::{options, pgpass, service, Connector, TlsSettings};
use crate::error;

/// How the target was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetSource {
    /// `--dsn` on the command line.
    Dsn,
    /// PG* environment variables.
    Env,
    /// A throwaway cluster started by pgstorm.
    Sandbox,
}

/// A resolved connection target.
#[derive(Clone)]
pub struct Target {
    /// Connection settings for the driver (may hold a password: never print it).
    pub config: Config,
    /// Redacted `postgres://user@host:port/db` form, safe for logs and result files.
    pub display: String,
    /// Where it came from.
    pub source: TargetSource,
    /// TLS settings and the way every connection to it is opened.
    pub connector: Connector,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({})", self.display)
    }
}

impl Target {
    /// Whether the server runs on this machine, judged from the hosts the driver really connects
    /// to (never from the displayed DSN): each must be a Unix socket, `localhost`, this machine's
    /// name, a loopback address (127.0.0.0/8, ::1) or an address of one of this machine's
    /// interfaces. A multi-host target is local only if every host is, since the driver may
    /// connect to any of them; any other name is taken as remote (resolving it could hang on DNS,
    /// and the cost of a wrong "local" is reporting the load machine's disks as the server's).
    pub fn is_local(&self) -> bool {
        hosts_are_local(&self.config, ThisMachine::read)
    }
}

/// What makes an address or a name this machine's, beyond loopback and `localhost`.
struct ThisMachine {
    name: Option<String>,
    addrs: Vec<std::net::IpAddr>,
}

impl ThisMachine {
    /// The host name and interface addresses, read from the OS.
    fn read() -> ThisMachine {
        let networks = sysinfo::Networks::new_with_refreshed_list();
        ThisMachine {
            name: sysinfo::System::host_name(),
            addrs: networks
                .values()
                .flat_map(|n| n.ip_networks().iter().map(|i| i.addr))
                .collect(),
        }
    }
}

/// [`Target::is_local`] of `config`; `machine` is only read when loopback and `localhost` do not
/// settle the question.
fn hosts_are_local(config: &Config, machine: impl FnOnce() -> ThisMachine) -> bool {
    use std::net::IpAddr;
    enum Endpoint<'a> {
        Socket,
        Ip(IpAddr),
        Name(&'a str),
    }
    let (hosts, addrs) = (config.get_hosts(), config.get_hostaddrs());
    // As libpq: `hostaddr` i, when given, is where connection i goes; `host` i is then only a name.
    let endpoints: Vec<Endpoint> = (0..hosts.len().max(addrs.len()))
        .map(|i| match (addrs.get(i), hosts.get(i)) {
            (Some(ip), _) => Endpoint::Ip(*ip),
            (None, Some(Host::Tcp(name))) => {
                match name.trim_matches(['[', ']']).parse::<IpAddr>() {
                    Ok(ip) => Endpoint::Ip(ip),
                    Err(_) => Endpoint::Name(name),
                }
            }
            (None, Some(Host::Unix(_))) => Endpoint::Socket,
            // Not reached (i is below one of the two lengths); an empty name is never local.
            (None, None) => Endpoint::Name(""),
        })
        .collect();
    let loopback = |e: &Endpoint| match e {
        Endpoint::Socket => true,
        // 0.0.0.0 and :: reach this machine on Linux, as the loopback addresses do.
        Endpoint::Ip(ip) => ip.to_canonical().is_loopback() || ip.is_unspecified(),
        Endpoint::Name(n) => n.eq_ignore_ascii_case("localhost"),
    };
    if endpoints.is_empty() {
        return false;
    }
    if endpoints.iter().all(loopback) {
        return true;
    }
    let me = machine();
    endpoints.iter().all(|e| {
        loopback(e)
            || match e {
                Endpoint::Ip(ip) => me.addrs.contains(&ip.to_canonical()),
                Endpoint::Name(n) => me
                    .name
                    .as_deref()
                    .is_some_and(|m| m.eq_ignore_ascii_case(n)),
                Endpoint::Socket => true,
            }
    })
}

#[cfg(test)]
mod local_tests {
    use super::*;

    /// A machine named `loadbox` with one LAN address of each family.
    fn loadbox() -> ThisMachine {
        ThisMachine {
            name: Some("loadbox".into()),
            addrs: vec!["10.0.0.5".parse().unwrap(), "fd00::5".parse().unwrap()],
        }
    }

    fn local(dsn: &str) -> bool {
        hosts_are_local(&dsn.parse::<Config>().unwrap(), loadbox)
    }

    #[test]
    fn loopback_names_addresses_and_sockets_are_local() {
        assert!(local("host=localhost user=u"));
        assert!(local("host=LocalHost user=u"));
        assert!(local("host=127.0.0.1 user=u"));
        assert!(local("host=127.0.0.2 user=u"));
        assert!(local("host=::1 user=u"));
        assert!(local("postgres://u@[::1]:5432/d"));
        assert!(local("postgres://u@localhost/d"));
        assert!(local("host=/var/run/postgresql user=u"));
        assert!(local("postgres://u@%2Fvar%2Frun%2Fpostgresql/d"));
    }

    #[test]
    fn this_machines_own_name_and_interface_addresses_are_local() {
        assert!(local("host=loadbox user=u"));
        assert!(local("host=10.0.0.5 user=u"));
        assert!(local("postgres://u@[fd00::5]:5432/d"));
    }

    #[test]
    fn remote_names_and_addresses_are_not_local() {
        assert!(!local("host=db.example.com user=u"));
        assert!(!local("host=10.1.2.3 user=u"));
        assert!(!local("host=2001:db8::7 user=u"));
        assert!(!local("postgres://u@[2001:db8::7]:5432/d"));
    }

    #[test]
    fn a_multi_host_target_is_local_only_if_every_host_is() {
        assert!(local("host=localhost,/tmp,127.0.0.1 user=u"));
        assert!(!local("host=localhost,db.example.com user=u"));
        assert!(!local("postgres://u@[::1]:5432,10.1.2.3:5432/d"));
        assert!(!local("host=db.example.com,127.0.0.1 user=u"));
    }

    #[test]
    fn hostaddr_decides_where_the_connection_goes() {
        assert!(!local("host=localhost hostaddr=10.1.2.3 user=u"));
        assert!(local("host=db.example.com hostaddr=127.0.0.1 user=u"));
    }

    #[test]
    fn the_machine_is_read_only_when_loopback_does_not_settle_it() {
        let config: Config = "host=127.0.0.1,/tmp user=u".parse().unwrap();
        assert!(hosts_are_local(&config, || unreachable!(
            "no OS lookup for a loopback target"
        )));
    }

    #[test]
    fn the_real_machine_answers_for_loopback_and_a_documentation_address() {
        let target = |dsn: &str| Target::new(dsn.parse().unwrap(), TargetSource::Dsn);
        assert!(target("host=127.0.0.1 user=u").is_local());
        assert!(!target("host=192.0.2.1 user=u").is_local());
    }
}

/// The environment variables that make pgstorm use an existing server rather than a sandbox.
const TARGET_ENV: [&str; 5] = ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE"];

/// pgbench's way of naming a target on the command line: `-h`, `-p`, `-U` and a trailing
/// database name (which, as in pgbench, may itself be a URL or a conninfo string).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Login {
    /// `--dsn`.
    pub dsn: Option<String>,
    /// `-h`: host name, address or socket directory.
    pub host: Option<String>,
    /// `-p`.
    pub port: Option<u16>,
    /// `-U`.
    pub user: Option<String>,
    /// The trailing database name or connection string.
    pub dbname: Option<String>,
}

impl Login {
    /// The one connection string these name, or `None` for none (then PG* variables or a
    /// sandbox). `-h`/`-p`/`-U`/dbname become a conninfo string whose missing fields the PG*
    /// variables fill, as libpq fills them; given beside a connection string they are refused,
    /// since one of the two would silently lose.
    pub fn dsn(&self) -> Result<Option<String>> {
        let positional_dsn = self.dbname.as_deref().filter(|d| {
            d.contains('=') || d.starts_with("postgres://") || d.starts_with("postgresql://")
        });
        let parts = [
            ("host", self.host.clone()),
            ("port", self.port.map(|p| p.to_string())),
            ("user", self.user.clone()),
            (
                "dbname",
                self.dbname.clone().filter(|_| positional_dsn.is_none()),
            ),
        ];
        let given: Vec<(&str, String)> = parts
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        let dsn = match (self.dsn.as_deref(), positional_dsn) {
            (Some(_), Some(_)) => {
                return Err(error::usage(
                    "two connection strings: --dsn and a trailing one; give the target once",
                ))
            }
            (Some(d), None) | (None, Some(d)) => Some(d),
            (None, None) => None,
        };
        match (dsn, given.is_empty()) {
            (Some(d), true) => Ok(Some(d.to_string())),
            (Some(_), false) => Err(error::usage(format!(
                "{} given beside a connection string; put {} in the connection string instead",
                given
                    .iter()
                    .map(|(k, _)| match *k {
                        "host" => "-h",
                        "port" => "-p",
                        "user" => "-U",
                        _ => "a database name",
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                given.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
            ))),
            (None, true) => Ok(None),
            (None, false) => Ok(Some(
                given
                    .iter()
                    .map(|(k, v)| format!("{k}={}", conninfo_quote(v)))
                    .collect::<Vec<_>>()
                    .join(" "),
            )),
        }
    }
}

/// A conninfo value in single quotes, with `\` and `'` escaped as libpq reads them.
fn conninfo_quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Resolves `--dsn` / PG* env. `Ok(None)` means "no target given: use a sandbox".
pub fn resolve(dsn: Option<&str>) -> Result<Option<Target>> {
    resolve_with_env(dsn, &|k| std::env::var(k).ok())
}

/// [`resolve`] with an injectable environment (tests must not mutate the process environment).
pub fn resolve_with_env(
    dsn: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Target>> {
    let cannot_parse = |d: &str, e: &dyn std::fmt::Display| {
        error::usage(format!(
            "cannot parse --dsn '{}': {e}; give a URL (postgres://user@host:5432/db) or a \
             conninfo string (host=... port=... user=... dbname=...)",
            redact(d)
        ))
    };
    let (mut config, source, mut ours) = match dsn {
        Some(d) => {
            let split = options::split(d).map_err(|e| cannot_parse(d, &e))?;
            let config = Config::from_str(&split.rest).map_err(|e| cannot_parse(d, &e))?;
            (config, TargetSource::Dsn, split.ours)
        }
        None if TARGET_ENV.iter().any(|k| env(k).is_some()) => {
            (Config::new(), TargetSource::Env, Vec::new())
        }
        None => return Ok(None),
    };
    let home = env("HOME").map(std::path::PathBuf::from);
    let last = |ours: &[(String, String)], k: &str| {
        ours.iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    if let Some(name) = last(&ours, "service").or_else(|| env("PGSERVICE")) {
        let path = env("PGSERVICEFILE")
            .map(std::path::PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".pg_service.conf")))
            .unwrap_or_default();
        let mut from_service = Vec::new();
        let mut rest = Vec::new();
        for (k, v) in service::options(&path, &name)? {
            if options::OURS.contains(&k.as_str()) {
                from_service.push((k, v));
            } else {
                rest.push(format!("{k}={}", options::quote(&v)));
            }
        }
        let svc = Config::from_str(&rest.join(" "))
            .map_err(|e| error::usage(format!("service '{name}' in {}: {e}", path.display())))?;
        fill_unset(&mut config, &svc);
        // The connection string's own options come later, so they win.
        from_service.append(&mut ours);
        ours = from_service;
    }
    fill_from_env(&mut config, env)?;
    if config.get_password().is_none() {
        let passfile = last(&ours, "passfile")
            .or_else(|| env("PGPASSFILE"))
            .map(std::path::PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".pgpass")));
        if let Some(path) = passfile {
            password_from_file(&mut config, &path);
        }
    }
    let opt = |k: &str| last(&ours, k);
    let tls = TlsSettings::resolve(&opt, env, home.as_deref())?;
    let connector = Connector::new(tls)?;
    Ok(Some(Target {
        display: display_of(&config),
        config,
        source,
        connector,
    }))
}

/// Fills what `config` leaves unset from a service's settings (host, port, hostaddr, user,
/// password, dbname, options, application_name, connect_timeout).
fn fill_unset(config: &mut Config, svc: &Config) {
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        for h in svc.get_hosts() {
            match h {
                Host::Tcp(s) => config.host(s),
                Host::Unix(p) => config.host_path(p),
            };
        }
        for a in svc.get_hostaddrs() {
            config.hostaddr(*a);
        }
    }
    if config.get_ports().is_empty() {
        for p in svc.get_ports() {
            config.port(*p);
        }
    }
    if let (None, Some(u)) = (config.get_user(), svc.get_user()) {
        config.user(u);
    }
    if let (None, Some(p)) = (config.get_password(), svc.get_password()) {
        config.password(p);
    }
    if let (None, Some(d)) = (config.get_dbname(), svc.get_dbname()) {
        config.dbname(d);
    }
    if let (None, Some(o)) = (config.get_options(), svc.get_options()) {
        config.options(o);
    }
    if let (None, Some(a)) = (config.get_application_name(), svc.get_application_name()) {
        config.application_name(a);
    }
    if let (None, Some(t)) = (config.get_connect_timeout(), svc.get_connect_timeout()) {
        config.connect_timeout(*t);
    }
}

/// Sets the password from libpq's password file: the first host with a matching line wins
/// (the driver holds one password for all hosts). A file others can read is ignored with a
/// warning on stderr, as libpq does.
fn password_from_file(config: &mut Config, path: &std::path::Path) {
    let user = config.get_user().unwrap_or("").to_string();
    let db = config.get_dbname().unwrap_or("").to_string();
    for (i, host) in config.get_hosts().to_vec().iter().enumerate() {
        match pgpass::lookup(
            path,
            &pgpass::host_key(host),
            port_of(config, i),
            &db,
            &user,
        ) {
            pgpass::Lookup::Found(pw) => {
                config.password(pw);
                return;
            }
            pgpass::Lookup::Ignored(warning) => {
                eprintln!("pgstorm: warning: {warning}");
                return;
            }
            pgpass::Lookup::NotFound => {}
        }
    }
}

/// Fills unset fields from PG* variables and libpq's defaults.
fn fill_from_env(config: &mut Config, env: &dyn Fn(&str) -> Option<String>) -> Result<()> {
    if config.get_hosts().is_empty() {
        match env("PGHOST") {
            Some(h) => {
                for part in h.split(',') {
                    config.host(part);
                }
            }
            // libpq's Debian default is the socket directory; fall back to TCP on localhost.
            None if std::path::Path::new("/var/run/postgresql").is_dir() => {
                config.host_path("/var/run/postgresql");
            }
            None => {
                config.host("localhost");
            }
        }
    }
    if config.get_ports().is_empty() {
        if let Some(p) = env("PGPORT") {
            let port: u16 = p.trim().parse().map_err(|_| {
                error::usage(format!(
                    "PGPORT='{p}' is not a port number; set it to e.g. 5432"
                ))
            })?;
            config.port(port);
        }
    }
    if config.get_user().is_none() {
        let user = env("PGUSER")
            .or_else(|| env("USER"))
            .unwrap_or_else(|| "postgres".into());
        config.user(&user);
    }
    if config.get_dbname().is_none() {
        let db = env("PGDATABASE").unwrap_or_else(|| config.get_user().unwrap_or("").to_string());
        config.dbname(&db);
    }
    if config.get_password().is_none() {
        if let Some(p) = env("PGPASSWORD") {
            config.password(p);
        }
    }
    if config.get_connect_timeout().is_none() {
        let secs = env("PGCONNECT_TIMEOUT")
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(10);
        config.connect_timeout(Duration::from_secs(secs.max(1)));
    }
    if config.get_application_name().is_none() {
        config.application_name(env("PGAPPNAME").as_deref().unwrap_or("pgstorm"));
    }
    if config.get_options().is_none() {
        if let Some(o) = env("PGOPTIONS") {
            config.options(&o);
        }
    }
    Ok(())
}

impl Target {
    /// Wraps a driver config that carries no libpq TLS options (e.g. a sandbox's), computing the
    /// redacted display form.
    pub fn new(config: Config, source: TargetSource) -> Target {
        let display = display_of(&config);
        let connector = Connector::new(TlsSettings::from_driver(&config))
            .expect("TLS settings without certificate files always build");
        Target {
            config,
            display,
            source,
            connector,
        }
    }

    /// Opens one connection, with an error that says what to check.
    pub fn connect(&self) -> Result<Client> {
        self.connect_with(&self.config)
            .map_err(|e| connect_error(&self.display, &e))
    }

    /// Opens one connection with a variant of the target's config (e.g. another
    /// `application_name`) through the target's connector.
    pub fn connect_with(&self, config: &Config) -> Result<Client, postgres::Error> {
        self.connector.connect(config)
    }
}

/// The port of host `i`, as libpq pairs them: the i-th port, else the only one, else 5432.
pub fn port_of(config: &Config, i: usize) -> u16 {
    let ports = config.get_ports();
    ports.get(i).or(ports.first()).copied().unwrap_or(5432)
}

/// The redacted `postgres://user@host:port/db` form of a config (no password, ever).
pub fn display_of(config: &Config) -> String {
    let user = config.get_user().unwrap_or("");
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                Host::Tcp(s) => s.clone(),
                Host::Unix(p) => p.display().to_string(),
            };
            format!("{host}:{}", port_of(config, i))
        })
        .collect();
    format!(
        "postgres://{user}@{}/{}",
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}

/// Turns a connect failure into a one-line, classified error (exit 3) naming the target.
pub fn connect_error(display: &str, e: &postgres::Error) -> anyhow::Error {
    use postgres::error::SqlState;
    let hint = match e.code() {
        Some(c)
            if *c == SqlState::INVALID_PASSWORD
                || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            "check the user and password (PGPASSWORD, ~/.pgpass or PGPASSFILE) and pg_hba.conf"
        }
        _ if is_tls_failure(e) => {
            "check sslmode, sslrootcert (the CA that signed the server's certificate) and that \
             the certificate names the host you connect to"
        }
        Some(c) if *c == SqlState::TOO_MANY_CONNECTIONS => {
            "the server is out of connection slots: raise max_connections or lower -c"
        }
        Some(c) if *c == SqlState::INVALID_CATALOG_NAME => {
            "the database does not exist: create it or name another in --dsn"
        }
        Some(c) if *c == SqlState::CANNOT_CONNECT_NOW => {
            "the server is starting up or shutting down: retry shortly"
        }
        _ => {
            "check that the server runs and listens there (host, port, listen_addresses, firewall)"
        }
    };
    error::target(format!(
        "cannot connect to {display}: {}; {hint}",
        one_line(e)
    ))
}

/// Whether the driver failed in TLS negotiation or the handshake (the driver's error kind is
/// private; its text for it is "error performing TLS handshake").
fn is_tls_failure(e: &postgres::Error) -> bool {
    e.to_string().contains("TLS handshake")
}

/// A driver error on one line, including the server's message when there is one.
pub fn one_line(e: &postgres::Error) -> String {
    let text = match e.as_db_error() {
        Some(db) => format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        ),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            s
        }
    };
    text.replace('\n', " ")
}

/// Masks passwords in a URL (`user:secret@`) or conninfo (`password=secret`) string.
pub fn redact(s: &str) -> String {
    let mut out = s.to_string();
    // URL form: scheme://user:password@host
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let rest = &out[rest_start..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            if let Some(colon) = rest[..at].find(':') {
                out.replace_range(rest_start + colon + 1..rest_start + at, "***");
            }
        }
        // ?password=... query parameter
        out = mask_key_values(&out, '&');
        return out;
    }
    mask_key_values(&out, ' ')
}

fn mask_key_values(s: &str, sep: char) -> String {
    let mut result = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = find_password_key(rest) {
        let (before, after) = rest.split_at(pos);
        result.push_str(before);
        let eq = after.find('=').unwrap_or(after.len() - 1);
        result.push_str(&after[..=eq]);
        let value = &after[eq + 1..];
        let value = value.trim_start();
        let consumed = if let Some(quoted) = value.strip_prefix('\'') {
            let mut end = quoted.len();
            let bytes = quoted.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'\\' {
                    i += 2;
                    continue;
                }
                if bytes[i] == b'\'' {
                    end = i + 1;
                    break;
                }
                i += 1;
            }
            1 + end.min(quoted.len())
        } else {
            value.find([sep, ' ', '&']).unwrap_or(value.len())
        };
        result.push_str("***");
        rest = &value[consumed.min(value.len())..];
    }
    result.push_str(rest);
    result
}

fn find_password_key(s: &str) -> Option<usize> {
    let lower = s.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("password") {
        let at = from + i;
        let boundary = at == 0 || matches!(lower.as_bytes()[at - 1], b' ' | b'?' | b'&' | b'\t');
        let after = lower[at + 8..].trim_start();
        if boundary && after.starts_with('=') {
            return Some(at);
        }
        from = at + 8;
    }
    None
}

/// What preflight learned about the server.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServerInfo {
    /// `server_version`, e.g. "15.18 (Debian 15.18-0+deb12u1)".
    pub server_version: String,
    /// `server_version_num`, e.g. 150018.
    pub server_version_num: i32,
    /// `max_connections`.
    pub max_connections: i64,
    /// Slots reserved for superusers (and, on 16+, `reserved_connections`).
    pub reserved_connections: i64,
    /// Client backends connected when preflight ran (including preflight's own).
    pub connections_in_use: i64,
    /// Whether the connecting role is a superuser (it may use the reserved slots).
    pub superuser: bool,
    /// Tuning-relevant settings ([`SNAPSHOT_SETTINGS`]) as `current_setting()` shows them (units
    /// included): the quick view for index.csv and the advisor, and all that results archived by
    /// versions before the whole snapshot hold.
    pub settings: BTreeMap<String, String>,
    /// The whole configuration (every non-default setting, the names of all, extensions, host
    /// facts): what compare diffs; absent in results of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<crate::server_snapshot::ServerSnapshot>,
}

impl ServerInfo {
    /// Connection slots a non-superuser could still open.
    pub fn available_connections(&self) -> i64 {
        let reserved = if self.superuser {
            0
        } else {
            self.reserved_connections
        };
        self.max_connections - reserved - self.connections_in_use
    }
}

/// Settings every result shows as `current_setting()` does (see [`ServerInfo::settings`]).
pub const SNAPSHOT_SETTINGS: &[&str] = &[
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "effective_cache_size",
    "effective_io_concurrency",
    "max_connections",
    "superuser_reserved_connections",
    "synchronous_commit",
    "fsync",
    "full_page_writes",
    "wal_level",
    "wal_buffers",
    "wal_compression",
    "wal_writer_delay",
    "max_wal_size",
    "min_wal_size",
    "checkpoint_timeout",
    "checkpoint_completion_target",
    "random_page_cost",
    "seq_page_cost",
    "default_statistics_target",
    "jit",
    "huge_pages",
    "max_worker_processes",
    "max_parallel_workers",
    "max_parallel_workers_per_gather",
    "autovacuum",
    "autovacuum_naptime",
    "autovacuum_vacuum_scale_factor",
    "track_io_timing",
    "shared_preload_libraries",
    "statement_timeout",
    "default_transaction_isolation",
];

/// Reads version, connection limits, the tuning-relevant settings and the whole snapshot.
pub fn server_info(client: &mut Client) -> Result<ServerInfo, postgres::Error> {
    let row = client.query_one(
        "SELECT current_setting('server_version'),
                current_setting('server_version_num')::int,
                current_setting('max_connections')::bigint,
                current_setting('superuser_reserved_connections')::bigint
                  + coalesce((SELECT setting::bigint FROM pg_settings WHERE name = 'reserved_connections'), 0),
                (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
                (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
        &[],
    )?;
    let names: Vec<String> = SNAPSHOT_SETTINGS.iter().map(|s| s.to_string()).collect();
    let mut settings = BTreeMap::new();
    for r in client.query(
        "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY($1) ORDER BY name",
        &[&names],
    )? {
        settings.insert(r.get::<_, String>(0), r.get::<_, String>(1));
    }
    Ok(ServerInfo {
        server_version: row.get(0),
        server_version_num: row.get(1),
        max_connections: row.get(2),
        reserved_connections: row.get(3),
        connections_in_use: row.get(4),
        superuser: row.get::<_, Option<bool>>(5).unwrap_or(false),
        settings,
        snapshot: Some(crate::server_snapshot::read(client)?),
    })
}

/// Refuses a run needing `needed` more connections than the server has free (exit 3), naming the
/// setting to raise and the value to raise it to.
pub fn check_capacity(info: &ServerInfo, clients: u32, extra: u32, display: &str) -> Result<()> {
    let needed = clients as i64 + extra as i64;
    let available = info.available_connections();
    if needed <= available {
        return Ok(());
    }
    let reserved = if info.superuser {
        0
    } else {
        info.reserved_connections
    };
    let raise_to = needed + reserved + info.connections_in_use + 10;
    Err(error::target(format!(
        "{display} cannot hold this run: it needs {needed} connections ({clients} clients + {extra} \
         for pgstorm's own monitoring) but max_connections = {} leaves {available} free ({} reserved, \
         {} already in use); raise max_connections to at least {raise_to} in postgresql.conf and \
         restart the server, or lower -c",
        info.max_connections, reserved, info.connections_in_use
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn no_dsn_and_no_env_means_sandbox() {
        assert!(resolve_with_env(None, &env_of(&[])).unwrap().is_none());
    }

    #[test]
    fn env_fills_what_dsn_lacks_and_display_hides_password() {
        let t = resolve_with_env(
            Some("postgres://alice:s3cret@db1:6543/bench"),
            &env_of(&[("PGPASSWORD", "other")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(t.display, "postgres://alice@db1:6543/bench");
        assert_eq!(t.config.get_password(), Some(&b"s3cret"[..]));
        assert_eq!(t.source, TargetSource::Dsn);

        let t = resolve_with_env(
            None,
            &env_of(&[("PGHOST", "h"), ("PGUSER", "bob"), ("PGPASSWORD", "pw")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(t.display, "postgres://bob@h:5432/bob");
        assert_eq!(t.config.get_password(), Some(&b"pw"[..]));
        assert!(!format!("{t:?}").contains("pw"));
    }

    fn login(host: Option<&str>, port: Option<u16>, user: Option<&str>, db: Option<&str>) -> Login {
        Login {
            dsn: None,
            host: host.map(String::from),
            port,
            user: user.map(String::from),
            dbname: db.map(String::from),
        }
    }

    #[test]
    fn pgbench_style_host_port_user_and_dbname_name_the_target() {
        let l = login(Some("db1"), Some(6543), Some("o'brien"), Some("bench"));
        let dsn = l.dsn().unwrap().unwrap();
        assert_eq!(
            dsn,
            r"host='db1' port='6543' user='o\'brien' dbname='bench'"
        );
        let t = resolve_with_env(Some(&dsn), &env_of(&[("PGPASSWORD", "pw")]))
            .unwrap()
            .unwrap();
        assert_eq!(t.display, "postgres://o'brien@db1:6543/bench");
        assert_eq!(t.config.get_user(), Some("o'brien"));
        // What is not given comes from the environment, as libpq fills it.
        let only_host = login(Some("db2"), None, None, None).dsn().unwrap().unwrap();
        let t = resolve_with_env(
            Some(&only_host),
            &env_of(&[("PGPORT", "7777"), ("PGUSER", "carol"), ("PGDATABASE", "x")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(t.display, "postgres://carol@db2:7777/x");
        // Nothing given: PG* variables or a sandbox, as before.
        assert_eq!(Login::default().dsn().unwrap(), None);
    }

    #[test]
    fn a_trailing_connection_string_is_the_dsn_and_is_not_mixed_with_flags() {
        let url = login(None, None, None, Some("postgres://u@h/d"));
        assert_eq!(url.dsn().unwrap().as_deref(), Some("postgres://u@h/d"));
        let conninfo = login(None, None, None, Some("host=h dbname=d"));
        assert_eq!(conninfo.dsn().unwrap().as_deref(), Some("host=h dbname=d"));
        let mixed = login(Some("other"), None, None, Some("host=h dbname=d"));
        let e = mixed.dsn().unwrap_err().to_string();
        assert!(e.contains("-h given beside a connection string"), "{e}");
        let twice = Login {
            dsn: Some("host=a".into()),
            ..login(None, None, None, Some("host=b"))
        };
        assert!(twice
            .dsn()
            .unwrap_err()
            .to_string()
            .contains("give the target once"));
        let with_dsn = Login {
            dsn: Some("host=a".into()),
            ..login(None, Some(5), Some("u"), None)
        };
        let e = with_dsn.dsn().unwrap_err();
        assert_eq!(error::exit_kind(&e), error::ExitKind::Usage);
        assert!(e.to_string().contains("-p, -U"), "{e}");
    }

    #[test]
    fn conninfo_is_accepted() {
        let t = resolve_with_env(
            Some("host=127.0.0.1 port=5433 user=u dbname=d password='a b'"),
            &env_of(&[]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(t.display, "postgres://u@127.0.0.1:5433/d");
    }

    #[test]
    fn bad_dsn_is_a_usage_error_without_the_password() {
        let err =
            resolve_with_env(Some("postgres://u:hunter2@h:notaport/d"), &env_of(&[])).unwrap_err();
        assert_eq!(error::exit_kind(&err), error::ExitKind::Usage);
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn a_service_fills_what_the_dsn_leaves_and_the_dsn_wins() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("services");
        std::fs::write(
            &file,
            "[bench]\nhost=db1\nport=6543\nuser=svcuser\ndbname=svcdb\nsslmode=require\n",
        )
        .unwrap();
        let file = file.to_str().unwrap().to_string();
        let env = move |k: &str| (k == "PGSERVICEFILE").then(|| file.clone());
        let t = resolve_with_env(Some("service=bench user=mine sslmode=disable"), &env)
            .unwrap()
            .unwrap();
        assert_eq!(t.display, "postgres://mine@db1:6543/svcdb");
        assert_eq!(
            t.connector.settings().mode,
            crate::connector::SslMode::Disable
        );
        let t = resolve_with_env(Some("service=bench"), &env)
            .unwrap()
            .unwrap();
        assert_eq!(
            t.connector.settings().mode,
            crate::connector::SslMode::Require
        );
        let err = resolve_with_env(Some("service=nope"), &env).unwrap_err();
        assert_eq!(error::exit_kind(&err), error::ExitKind::Usage);
    }

    #[test]
    fn a_missing_password_comes_from_the_password_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(&file, "db1:5432:bench:alice:from-file\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let file = file.to_str().unwrap().to_string();
        let env = move |k: &str| (k == "PGPASSFILE").then(|| file.clone());
        let t = resolve_with_env(Some("postgres://alice@db1/bench"), &env)
            .unwrap()
            .unwrap();
        assert_eq!(t.config.get_password(), Some(&b"from-file"[..]));
        // A password in the DSN wins over the file.
        let t = resolve_with_env(Some("postgres://alice:given@db1/bench"), &env)
            .unwrap()
            .unwrap();
        assert_eq!(t.config.get_password(), Some(&b"given"[..]));
    }

    #[test]
    fn redact_masks_every_password_form() {
        assert_eq!(redact("postgres://u:pw@h/d"), "postgres://u:***@h/d");
        assert_eq!(
            redact("postgres://u@h/d?password=pw&x=1"),
            "postgres://u@h/d?password=***&x=1"
        );
        assert_eq!(
            redact("host=h password=pw user=u"),
            "host=h password=*** user=u"
        );
        assert_eq!(
            redact("host=h password = 'p w' user=u"),
            "host=h password =*** user=u"
        );
        assert_eq!(redact("host=h user=u"), "host=h user=u");
    }

    #[test]
    fn capacity_check_names_the_setting_and_value() {
        let info = ServerInfo {
            server_version: "15".into(),
            server_version_num: 150000,
            max_connections: 100,
            reserved_connections: 3,
            connections_in_use: 1,
            superuser: false,
            settings: BTreeMap::new(),
            snapshot: None,
        };
        assert!(check_capacity(&info, 90, 1, "t").is_ok());
        let err = check_capacity(&info, 500, 1, "t").unwrap_err();
        assert_eq!(error::exit_kind(&err), error::ExitKind::Target);
        let msg = err.to_string();
        assert!(
            msg.contains("max_connections") && msg.contains("515"),
            "{msg}"
        );
    }
}
