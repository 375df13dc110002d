//! The whole configuration of the server under test, as one run saw it: every `pg_settings` row
//! that is not at its built-in default, the names of all the others, the installed extensions, the
//! server's version string, and what SQL can tell of the server's host.
//!
//! Invariants: a setting left out of [`ServerSnapshot::settings`] is exactly its built-in default
//! (`source = 'default'`, `setting = boot_val`, no restart pending), so a comparison can take its
//! value from the other side's `boot_val` and never miss a change; [`ServerSnapshot::boot_digest`]
//! says whether that reconstruction holds (the two servers' built-in defaults agree). Host facts are
//! read only where the role is allowed to read them: a missing privilege leaves a field empty and
//! is never an error. No password or passphrase reaches the snapshot.

use std::collections::BTreeMap;

use postgres::Client;
use serde::{Deserialize, Serialize};

/// A `pg_settings` row that is not at its built-in default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SettingRow {
    /// `setting`: the value in the base unit of `unit` (null for a few unset strings).
    pub setting: Option<String>,
    /// `unit`, e.g. `8kB`, `kB`, `ms`, `s` (null for unitless settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// `vartype`: bool, enum, integer, real or string.
    pub vartype: String,
    /// `category`, e.g. `Resource Usage / Memory`.
    pub category: String,
    /// `source`: where the value came from (configuration file, database, client, ...).
    pub source: String,
    /// `boot_val`: the built-in default, in the same unit as `setting`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_val: Option<String>,
    /// `pending_restart`: changed in the configuration file but not in effect until a restart.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending_restart: bool,
}

/// What SQL can tell of the server's host. Every field is empty when the role may not read it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServerHost {
    /// `pg_control_system().system_identifier`: the cluster's identity (changes with `initdb`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_identifier: Option<String>,
    /// `pg_postmaster_start_time()` (RFC 3339, UTC): when the server last started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// Logical CPUs of the server's host (`/proc/cpuinfo`, superuser or pg_read_server_files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// `MemTotal` of the server's host in bytes (`/proc/meminfo`, same privilege).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_total_bytes: Option<u64>,
    /// `MemAvailable` of the server's host in bytes when the snapshot was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_available_bytes: Option<u64>,
    /// 1, 5 and 15 minute load averages of the server's host (`/proc/loadavg`, same privilege).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_average: Option<[f64; 3]>,
}

/// The server's whole configuration at the start of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServerSnapshot {
    /// `version()`: version, platform and compiler.
    pub version: String,
    /// Every name in `pg_settings`, sorted.
    pub setting_names: Vec<String>,
    /// The rows not at their built-in default, by name; any other name is at its `boot_val`.
    pub settings: BTreeMap<String, SettingRow>,
    /// SHA-256 (hex) of every `name=boot_val` line: equal digests mean equal built-in defaults,
    /// so a setting missing from `settings` on one side has the other side's `boot_val`.
    pub boot_digest: String,
    /// Extensions installed in the target database: name → version.
    pub extensions: BTreeMap<String, String>,
    /// The server's host, as far as the role may read it.
    pub host: ServerHost,
}

/// String settings whose value may hold a secret (a command that prints a passphrase, an
/// extension's password): masked whole. Only strings: `password_encryption` is an enum to keep.
fn is_secret(name: &str, vartype: &str) -> bool {
    let n = name.to_ascii_lowercase();
    vartype == "string"
        && ["password", "passphrase", "secret"]
            .iter()
            .any(|w| n.contains(w))
}

/// A setting's value as it may be stored: secrets masked whole, passwords inside a connection
/// string (e.g. `primary_conninfo`) masked as everywhere else.
fn masked(name: &str, vartype: &str, value: Option<String>) -> Option<String> {
    value.map(|v| {
        if is_secret(name, vartype) && !v.is_empty() {
            "***".to_string()
        } else if vartype == "string" {
            crate::target::redact(&v)
        } else {
            v
        }
    })
}

/// Hex SHA-256 of `name=boot_val` lines.
fn digest<'a>(lines: impl Iterator<Item = (&'a str, Option<&'a str>)>) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for (name, boot) in lines {
        h.update(name.as_bytes());
        h.update(b"=");
        h.update(boot.unwrap_or("\u{0}").as_bytes());
        h.update(b"\n");
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads the snapshot over `client` (any role: `pg_settings` and `pg_extension` are readable by
/// all; the host facts are read only where permitted).
pub fn read(client: &mut Client) -> Result<ServerSnapshot, postgres::Error> {
    let version: String = client.query_one("SELECT version()", &[])?.get(0);
    let rows = client.query(
        "SELECT name, setting, unit, vartype, category, source, boot_val, pending_restart
           FROM pg_settings ORDER BY name",
        &[],
    )?;
    let mut setting_names = Vec::with_capacity(rows.len());
    let mut settings = BTreeMap::new();
    let mut boots = Vec::with_capacity(rows.len());
    for r in &rows {
        let name: String = r.get(0);
        let setting: Option<String> = r.get(1);
        let source: String = r.get(5);
        let boot_val: Option<String> = r.get(6);
        let pending_restart: bool = r.get(7);
        boots.push((name.clone(), boot_val.clone()));
        // The invariant of the module: anything that is not exactly the built-in default is kept.
        if source != "default" || setting != boot_val || pending_restart {
            let vartype: String = r.get(3);
            settings.insert(
                name.clone(),
                SettingRow {
                    setting: masked(&name, &vartype, setting),
                    unit: r.get(2),
                    category: r.get(4),
                    source,
                    boot_val: masked(&name, &vartype, boot_val),
                    vartype,
                    pending_restart,
                },
            );
        }
        setting_names.push(name);
    }
    let boot_digest = digest(boots.iter().map(|(n, b)| (n.as_str(), b.as_deref())));
    let extensions = client
        .query("SELECT extname::text, extversion FROM pg_extension", &[])?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(ServerSnapshot {
        version,
        setting_names,
        settings,
        boot_digest,
        extensions,
        host: read_host(client),
    })
}

/// The host facts the role may read; each is left empty when it may not (or the server is not on
/// Linux). The privilege checks come first so that a refused read leaves no error in the server log.
fn read_host(client: &mut Client) -> ServerHost {
    let mut host = ServerHost::default();
    let may = |client: &mut Client, sql: &str| {
        client
            .query_one(sql, &[])
            .ok()
            .and_then(|r| r.get::<_, Option<bool>>(0))
            .unwrap_or(false)
    };
    if let Ok(r) = client.query_one(
        "SELECT to_char(pg_postmaster_start_time() AT TIME ZONE 'UTC',
                        'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
        &[],
    ) {
        host.started_at = r.get(0);
    }
    if may(
        client,
        "SELECT has_function_privilege('pg_control_system()', 'EXECUTE')",
    ) {
        if let Ok(r) = client.query_one(
            "SELECT system_identifier::text FROM pg_control_system()",
            &[],
        ) {
            host.system_identifier = r.get(0);
        }
    }
    // Reading a file outside the data directory takes a superuser or pg_read_server_files (11+);
    // CASE keeps pg_has_role from being asked about a role an older server does not have.
    let may_read_files = may(
        client,
        "SELECT CASE
                  WHEN (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN true
                  WHEN NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pg_read_server_files')
                    THEN false
                  ELSE pg_has_role('pg_read_server_files', 'MEMBER')
                END
                AND has_function_privilege('pg_read_file(text, bigint, bigint, boolean)', 'EXECUTE')",
    );
    if !may_read_files {
        return host;
    }
    // /proc files report a size of 0, so each read names a length; only the figures cross the wire.
    if let Ok(r) = client.query_one(
        "SELECT (SELECT count(*) FROM regexp_split_to_table(
                   pg_read_file('/proc/cpuinfo', 0, 16777216, true), E'\\n') l
                 WHERE l ~ '^processor\\s*:')::int,
                pg_read_file('/proc/meminfo', 0, 1048576, true),
                pg_read_file('/proc/loadavg', 0, 4096, true)",
        &[],
    ) {
        host.cpus = r
            .get::<_, Option<i32>>(0)
            .filter(|n| *n > 0)
            .map(|n| n as u32);
        if let Some(meminfo) = r.get::<_, Option<String>>(1) {
            host.memory_total_bytes = meminfo_bytes(&meminfo, "MemTotal");
            host.memory_available_bytes = meminfo_bytes(&meminfo, "MemAvailable");
        }
        host.load_average = r.get::<_, Option<String>>(2).and_then(|l| loadavg(&l));
    }
    host
}

/// A `/proc/meminfo` field (given in kB) in bytes.
fn meminfo_bytes(meminfo: &str, field: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
        Some(kb * 1024)
    })
}

/// The three load averages of `/proc/loadavg`.
fn loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_whitespace().map(|x| x.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse_and_garbage_gives_nothing() {
        let meminfo = "MemTotal:        8000000 kB\nMemFree:  1 kB\nMemAvailable:    4000000 kB\n";
        assert_eq!(meminfo_bytes(meminfo, "MemTotal"), Some(8_000_000 * 1024));
        assert_eq!(
            meminfo_bytes(meminfo, "MemAvailable"),
            Some(4_000_000 * 1024)
        );
        assert_eq!(meminfo_bytes(meminfo, "Mem"), None);
        assert_eq!(meminfo_bytes("garbage", "MemTotal"), None);
        assert_eq!(
            loadavg("3.21 2.44 2.99 10/159 26666\n"),
            Some([3.21, 2.44, 2.99])
        );
        assert_eq!(loadavg("3.21 x"), None);
    }

    #[test]
    fn secrets_never_reach_the_snapshot() {
        let conninfo = Some("host=primary user=rep password=hunter2".to_string());
        let kept = masked("primary_conninfo", "string", conninfo).unwrap();
        assert!(
            !kept.contains("hunter2") && kept.contains("host=primary"),
            "{kept}"
        );
        let cmd = Some("echo hunter2".to_string());
        assert_eq!(
            masked("ssl_passphrase_command", "string", cmd).as_deref(),
            Some("***")
        );
        assert_eq!(
            masked("ssl_passphrase_command", "string", Some(String::new())).as_deref(),
            Some("")
        );
        assert_eq!(
            masked("password_encryption", "enum", Some("md5".into())).as_deref(),
            Some("md5")
        );
        assert_eq!(
            masked("work_mem", "integer", Some("4096".into())).as_deref(),
            Some("4096")
        );
    }

    #[test]
    fn the_boot_digest_sees_any_default_that_differs() {
        let a = digest([("a", Some("1")), ("b", None)].into_iter());
        let same = digest([("a", Some("1")), ("b", None)].into_iter());
        let other = digest([("a", Some("1")), ("b", Some(""))].into_iter());
        assert_eq!(a, same);
        assert_ne!(a, other);
        assert_eq!(a.len(), 64);
    }
}
