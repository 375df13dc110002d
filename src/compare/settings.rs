//! The settings diff of a comparison: every setting whose value differs between the two sides,
//! grouped by `pg_settings` category and compared in base units, plus the server version and the
//! installed extensions; and the ways the two servers differ that make a comparison unfair.
//!
//! Invariants: with a whole snapshot on both sides no change is missed: a setting one side keeps at
//! its built-in default takes the other side's `boot_val` (which the boot digests vouch for, and a
//! warning says when they do not). A result archived before the whole snapshot existed is compared
//! on the tuning-relevant settings both sides hold, and a warning says so. A setting whose restart
//! is pending on one side only is listed even when its value in effect did not change, since the
//! change the user made is then not the one measured.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::units::Value;
use crate::server_snapshot::{ServerSnapshot, SettingRow};
use crate::target::ServerInfo;

/// The category of the server version line.
const VERSION: &str = "Version";
/// The category of extension lines.
const EXTENSIONS: &str = "Extensions";
/// The category of settings read from a result that holds only the tuning-relevant ones.
const OLDER: &str = "Settings (older result: tuning-relevant only)";
/// The category of a setting no stored row names (at its default on the only side that has it).
const OTHER: &str = "Other";
/// How a setting shows when it is at its built-in default and no row says what that is.
const DEFAULT: &str = "default";

/// A setting (or the server version, or an extension) that differs between the two sides.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SettingChange {
    /// Setting name (`server_version`, or the extension's name under `Extensions`).
    pub name: String,
    /// `pg_settings` category, `Version` or `Extensions`.
    pub category: String,
    /// Value on A in human units (null: A does not have it).
    pub a: Option<String>,
    /// Value on B.
    pub b: Option<String>,
    /// A has it changed in the configuration file but not in effect (restart pending).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pending_restart_a: bool,
    /// The same on B.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pending_restart_b: bool,
}

/// One side's value of a setting: none when its server has no such setting (`has`); else its own
/// row's value; else, being at the built-in default, the other side's `boot_val`.
fn side(has: bool, own: Option<&SettingRow>, other: Option<&SettingRow>) -> Option<Value> {
    if !has {
        return None;
    }
    Some(match (own, other) {
        (Some(r), _) => Value::from_row(r.setting.as_deref().unwrap_or(""), r.unit.as_deref()),
        (None, Some(o)) => Value::from_row(o.boot_val.as_deref().unwrap_or(""), o.unit.as_deref()),
        (None, None) => Value::from_shown(DEFAULT),
    })
}

fn same(a: &Option<Value>, b: &Option<Value>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => x.same(y),
        (None, None) => true,
        _ => false,
    }
}

/// The settings that differ between two whole snapshots.
fn whole(sa: &ServerSnapshot, sb: &ServerSnapshot) -> Vec<SettingChange> {
    let na: BTreeSet<&str> = sa.setting_names.iter().map(String::as_str).collect();
    let nb: BTreeSet<&str> = sb.setting_names.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    for name in na.union(&nb) {
        let (ra, rb) = (sa.settings.get(*name), sb.settings.get(*name));
        let (ia, ib) = (na.contains(name), nb.contains(name));
        if ia && ib && ra.is_none() && rb.is_none() {
            // At the built-in default on both sides (the boot digests vouch it is the same).
            continue;
        }
        let (va, vb) = (side(ia, ra, rb), side(ib, rb, ra));
        let pending = |r: Option<&SettingRow>| r.is_some_and(|r| r.pending_restart);
        let (pa, pb) = (pending(ra), pending(rb));
        if same(&va, &vb) && pa == pb {
            continue;
        }
        out.push(SettingChange {
            name: name.to_string(),
            category: ra.or(rb).map_or(OTHER.into(), |r| r.category.clone()),
            a: va.map(|v| v.human()),
            b: vb.map(|v| v.human()),
            pending_restart_a: pa,
            pending_restart_b: pb,
        });
    }
    out
}

/// The tuning-relevant settings that differ, as `current_setting()` showed them.
fn older(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<SettingChange> {
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    names
        .into_iter()
        .filter_map(|n| {
            let (va, vb) = (
                a.get(n).map(|v| Value::from_shown(v)),
                b.get(n).map(|v| Value::from_shown(v)),
            );
            (!same(&va, &vb)).then(|| SettingChange {
                name: n.clone(),
                category: OLDER.into(),
                a: va.map(|v| v.human()),
                b: vb.map(|v| v.human()),
                pending_restart_a: false,
                pending_restart_b: false,
            })
        })
        .collect()
}

/// Extensions whose presence or version differs.
fn extensions(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<SettingChange> {
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    names
        .into_iter()
        .filter(|n| a.get(*n) != b.get(*n))
        .map(|n| SettingChange {
            name: n.clone(),
            category: EXTENSIONS.into(),
            a: a.get(n).cloned(),
            b: b.get(n).cloned(),
            pending_restart_a: false,
            pending_restart_b: false,
        })
        .collect()
}

/// Everything that differs between two servers' configurations: the version first, then the
/// settings by category and name, then the extensions.
pub fn diff(a: &ServerInfo, b: &ServerInfo) -> Vec<SettingChange> {
    let mut out = Vec::new();
    if a.server_version != b.server_version {
        out.push(SettingChange {
            name: "server_version".into(),
            category: VERSION.into(),
            a: Some(a.server_version.clone()),
            b: Some(b.server_version.clone()),
            pending_restart_a: false,
            pending_restart_b: false,
        });
    }
    let mut settings = match (&a.snapshot, &b.snapshot) {
        (Some(sa), Some(sb)) => whole(sa, sb),
        _ => older(&a.settings, &b.settings),
    };
    settings.sort_by(|x, y| (&x.category, &x.name).cmp(&(&y.category, &y.name)));
    out.append(&mut settings);
    if let (Some(sa), Some(sb)) = (&a.snapshot, &b.snapshot) {
        out.append(&mut extensions(&sa.extensions, &sb.extensions));
    }
    out
}

/// `name version, ...`, or `none`.
fn listed(ext: &BTreeMap<String, String>) -> String {
    if ext.is_empty() {
        return "none".into();
    }
    ext.iter()
        .map(|(n, v)| format!("{n} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why comparing these two servers' runs may be unfair or blind, beyond the version (which the
/// caller checks): different extensions, a different cluster or host, different built-in
/// defaults, a restart pending, or a result too old to show every setting.
pub fn warnings(a: &ServerInfo, b: &ServerInfo) -> Vec<String> {
    let mut w = Vec::new();
    let (sa, sb) = match (&a.snapshot, &b.snapshot) {
        (Some(sa), Some(sb)) => (sa, sb),
        _ => {
            for (side, s) in [("A", a), ("B", b)] {
                if s.snapshot.is_none() {
                    w.push(format!(
                        "{side} was written by an older pgstorm: its snapshot holds only {} \
                         tuning-relevant settings, so a change to any other setting is not shown",
                        s.settings.len()
                    ));
                }
            }
            return w;
        }
    };
    if sa.extensions != sb.extensions {
        w.push(format!(
            "installed extensions differ: {} (A) vs {} (B): the two servers do not run the same \
             code; install the same extensions at the same versions on both",
            listed(&sa.extensions),
            listed(&sb.extensions)
        ));
    }
    if sa.boot_digest != sb.boot_digest {
        w.push(
            "the two servers' built-in defaults differ (different builds): a setting left at its \
             default on both sides may differ without being listed"
                .into(),
        );
    }
    let (ha, hb) = (&sa.host, &sb.host);
    let mut host = |what: &str, x: Option<String>, y: Option<String>| {
        if let (Some(x), Some(y)) = (x, y) {
            if x != y {
                w.push(format!("server {what} differs: {x} (A) vs {y} (B)"));
            }
        }
    };
    host(
        "cluster (system identifier)",
        ha.system_identifier.clone(),
        hb.system_identifier.clone(),
    );
    host(
        "CPUs",
        ha.cpus.map(|c| c.to_string()),
        hb.cpus.map(|c| c.to_string()),
    );
    host(
        "memory",
        ha.memory_total_bytes
            .map(|m| Value::from_row(&m.to_string(), Some("B")).human()),
        hb.memory_total_bytes
            .map(|m| Value::from_row(&m.to_string(), Some("B")).human()),
    );
    for (side, s) in [("A", sa), ("B", sb)] {
        for (name, _) in s.settings.iter().filter(|(_, r)| r.pending_restart) {
            w.push(format!(
                "{side}: {name} is changed in the configuration file but not in effect (restart \
                 pending): the runs measured the old value; restart the server and run again",
            ));
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server_snapshot::ServerHost;

    fn row(setting: &str, unit: Option<&str>, category: &str, boot: &str) -> SettingRow {
        SettingRow {
            setting: Some(setting.into()),
            unit: unit.map(String::from),
            vartype: "integer".into(),
            category: category.into(),
            source: "configuration file".into(),
            boot_val: Some(boot.into()),
            pending_restart: false,
        }
    }

    /// A server with the names `names` whose non-default rows are `rows`.
    fn server(names: &[&str], rows: Vec<(&str, SettingRow)>) -> ServerInfo {
        ServerInfo {
            server_version: "15.4".into(),
            server_version_num: 150004,
            max_connections: 100,
            reserved_connections: 3,
            connections_in_use: 1,
            superuser: true,
            settings: BTreeMap::new(),
            snapshot: Some(ServerSnapshot {
                version: "PostgreSQL 15.4".into(),
                setting_names: names.iter().map(|n| n.to_string()).collect(),
                settings: rows.into_iter().map(|(n, r)| (n.to_string(), r)).collect(),
                boot_digest: "d".into(),
                extensions: BTreeMap::new(),
                host: ServerHost::default(),
            }),
        }
    }

    const NAMES: [&str; 4] = [
        "bgwriter_delay",
        "shared_buffers",
        "synchronous_commit",
        "work_mem",
    ];

    fn buffers(pages: &str) -> SettingRow {
        row(pages, Some("8kB"), "Resource Usage / Memory", "16384")
    }

    #[test]
    fn an_unchanged_server_has_no_diff_and_no_warning() {
        let a = server(&NAMES, vec![("shared_buffers", buffers("32768"))]);
        assert!(diff(&a, &a.clone()).is_empty());
        assert!(warnings(&a, &a.clone()).is_empty());
    }

    #[test]
    fn a_setting_default_on_one_side_takes_the_other_sides_boot_value() {
        let delay = row(
            "50",
            Some("ms"),
            "Resource Usage / Background Writer",
            "200",
        );
        let mut sync = row("off", None, "Write-Ahead Log / Settings", "on");
        sync.vartype = "enum".into();
        let a = server(&NAMES, vec![]);
        let b = server(
            &NAMES,
            vec![("bgwriter_delay", delay), ("synchronous_commit", sync)],
        );
        let d = diff(&a, &b);
        let names: Vec<&str> = d.iter().map(|c| c.name.as_str()).collect();
        // Grouped: the background writer's category sorts before the WAL's.
        assert_eq!(names, ["bgwriter_delay", "synchronous_commit"]);
        assert_eq!(
            (d[0].a.as_deref(), d[0].b.as_deref()),
            (Some("200ms"), Some("50ms"))
        );
        assert_eq!(d[0].category, "Resource Usage / Background Writer");
        assert_eq!(
            (d[1].a.as_deref(), d[1].b.as_deref()),
            (Some("on"), Some("off"))
        );
        // And the other way round.
        let back = diff(&b, &a);
        assert_eq!(back[0].a.as_deref(), Some("50ms"));
        assert_eq!(back[0].b.as_deref(), Some("200ms"));
    }

    #[test]
    fn a_value_set_in_the_file_equal_to_the_default_is_no_change() {
        // 16384 pages = 128MB, the boot value, now written in the file: the same value.
        let a = server(&NAMES, vec![]);
        let b = server(&NAMES, vec![("shared_buffers", buffers("16384"))]);
        assert!(diff(&a, &b).is_empty());
    }

    #[test]
    fn a_pending_restart_is_listed_and_warned_even_when_the_value_in_effect_is_the_same() {
        let mut pending = buffers("16384");
        pending.pending_restart = true;
        let a = server(&NAMES, vec![("shared_buffers", buffers("16384"))]);
        let b = server(&NAMES, vec![("shared_buffers", pending)]);
        let d = diff(&a, &b);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].name, "shared_buffers");
        assert!(d[0].pending_restart_b && !d[0].pending_restart_a);
        assert_eq!(d[0].b.as_deref(), Some("128MB"));
        let w = warnings(&a, &b);
        assert!(
            w.iter().any(|w| w.starts_with(
                "B: shared_buffers is changed in the configuration \
                 file but not in effect"
            )),
            "{w:?}"
        );
    }

    #[test]
    fn a_setting_only_one_server_has_is_absent_on_the_other() {
        let a = server(&NAMES, vec![]);
        let mut pss = row("5000", None, "Customized Options", "5000");
        pss.source = "default".into();
        let b = server(
            &["pg_stat_statements.max", "work_mem"],
            vec![("pg_stat_statements.max", pss)],
        );
        let d = diff(&a, &b);
        let got = |n: &str| {
            let c = d
                .iter()
                .find(|c| c.name == n)
                .unwrap_or_else(|| panic!("{n}: {d:?}"));
            (c.category.as_str(), c.a.as_deref(), c.b.as_deref())
        };
        assert_eq!(
            got("pg_stat_statements.max"),
            ("Customized Options", None, Some("5000"))
        );
        // Only A has it, at its default, and no row names that default: still listed.
        assert_eq!(got("bgwriter_delay"), (OTHER, Some(DEFAULT), None));
        // Both have it at the default: nothing to show.
        assert!(d.iter().all(|c| c.name != "work_mem"), "{d:?}");
    }

    #[test]
    fn extensions_that_differ_are_listed_and_make_the_comparison_unfair() {
        let a = server(&NAMES, vec![]);
        let mut b = a.clone();
        b.snapshot
            .as_mut()
            .unwrap()
            .extensions
            .insert("citext".into(), "1.6".into());
        let d = diff(&a, &b);
        assert_eq!(d.len(), 1);
        assert_eq!(
            (
                d[0].category.as_str(),
                d[0].name.as_str(),
                d[0].a.as_deref(),
                d[0].b.as_deref()
            ),
            ("Extensions", "citext", None, Some("1.6"))
        );
        let w = warnings(&a, &b);
        assert!(
            w.iter()
                .any(|w| w.contains("installed extensions differ: none (A) vs citext 1.6 (B)")),
            "{w:?}"
        );
    }

    #[test]
    fn different_builds_and_hosts_are_warned() {
        let a = server(&NAMES, vec![]);
        let mut b = a.clone();
        let s = b.snapshot.as_mut().unwrap();
        s.boot_digest = "other".into();
        s.host.cpus = Some(8);
        s.host.system_identifier = Some("2".into());
        let mut a = a;
        let h = &mut a.snapshot.as_mut().unwrap().host;
        h.cpus = Some(4);
        h.system_identifier = Some("1".into());
        let w = warnings(&a, &b);
        assert!(
            w.iter().any(|w| w.contains("built-in defaults differ")),
            "{w:?}"
        );
        assert!(
            w.iter().any(|w| w == "server CPUs differs: 4 (A) vs 8 (B)"),
            "{w:?}"
        );
        assert!(w.iter().any(|w| w.contains("system identifier")), "{w:?}");
    }

    #[test]
    fn an_older_result_is_compared_on_its_settings_in_base_units() {
        // As results written before the whole snapshot hold them.
        let mut old = server(&NAMES, vec![]);
        old.snapshot = None;
        old.settings = [("shared_buffers", "128MB"), ("synchronous_commit", "on")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        let mut new = server(
            &NAMES,
            vec![("synchronous_commit", row("off", None, "WAL", "on"))],
        );
        new.settings = [("shared_buffers", "128MB"), ("synchronous_commit", "off")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        let d = diff(&old, &new);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].name, "synchronous_commit");
        assert_eq!(d[0].category, OLDER);
        let w = warnings(&old, &new);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("A was written by an older pgstorm"),
            "{w:?}"
        );
    }
}
