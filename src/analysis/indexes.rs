//! Index rules: unused, duplicate and invalid indexes, and the per-index usage table.
//!
//! Invariants: an index that enforces something (primary key, unique, exclusion constraint) is
//! never called unused or redundant; "unused" means no scan during the analysis window and says
//! what the cumulative counter shows, so a DBA does not drop an index a nightly job needs.

use serde_json::json;

use super::snapshot::{IndexStat, Snapshot};
use super::{ev, quote_ident, Inputs};
use crate::report::findings::{Finding, IndexUsage, Severity};

fn window(after: &IndexStat, before: Option<&IndexStat>) -> (i64, i64, i64) {
    let b = |f: fn(&IndexStat) -> i64| before.map_or(0, f);
    (
        after.idx_scan - b(|i| i.idx_scan),
        after.idx_tup_read - b(|i| i.idx_tup_read),
        after.idx_tup_fetch - b(|i| i.idx_tup_fetch),
    )
}

/// Per-index usage over the window, in name order.
pub fn usage(before: &Snapshot, after: &Snapshot) -> Vec<IndexUsage> {
    after
        .indexes
        .iter()
        .map(|(k, a)| {
            let (scans, read, fetch) = window(a, before.indexes.get(k));
            IndexUsage {
                index: k.clone(),
                table: a.table_qualified(),
                idx_scan: scans,
                idx_tup_read: read,
                idx_tup_fetch: fetch,
                efficiency: (read > 0).then(|| fetch as f64 / read as f64),
                size_bytes: a.size_bytes,
            }
        })
        .collect()
}

/// All index findings.
pub fn findings(inp: &Inputs<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    unused(inp, &mut out);
    duplicates(inp.after, &mut out);
    invalid(inp.after, &mut out);
    out
}

fn unused(inp: &Inputs<'_>, out: &mut Vec<Finding>) {
    for (k, a) in &inp.after.indexes {
        if a.unique || a.primary || a.backs_constraint || !a.valid {
            continue;
        }
        let (scans, _, _) = window(a, inp.before.indexes.get(k));
        if scans != 0 {
            continue;
        }
        let never = a.idx_scan == 0;
        let mut evidence = ev(&[
            ("idx_scan_during_run", json!(scans)),
            ("idx_scan_cumulative", json!(a.idx_scan)),
            ("size_bytes", json!(a.size_bytes)),
            ("definition", json!(a.definition)),
        ]);
        if let Some(reset) = &inp.after.database.stats_reset {
            evidence.insert("stats_reset".into(), json!(reset));
        }
        let mut action = if never {
            "no scan during the run nor since the statistics were last reset: every write still \
             maintains it; drop it unless a job outside this workload needs it"
                .to_string()
        } else {
            "not used by this run's workload, though it was used before (see \
             idx_scan_cumulative): drop it only if no other job needs it"
                .to_string()
        };
        if let Some(fk) = &a.supports_fk {
            evidence.insert("supports_foreign_key".into(), json!(fk));
            action.push_str(&format!(
                "; it leads with the referencing column of foreign key {fk}, so without it \
                 deletes and key updates on the referenced table scan this table"
            ));
        }
        out.push(Finding {
            code: "unused_index".into(),
            severity: if never {
                Severity::Warning
            } else {
                Severity::Info
            },
            object: k.clone(),
            title: format!(
                "index {k} ({}) was not scanned during the run",
                human_bytes(a.size_bytes)
            ),
            evidence,
            threshold: "idx_scan = 0 during the run, index not unique, not a primary key, not \
                        backing a constraint"
                .into(),
            source: "PgHero unused indexes / check_postgres index_usage".into(),
            action,
            sql: Some(format!(
                "DROP INDEX CONCURRENTLY {}.{};",
                quote_ident(&a.schema),
                quote_ident(&a.name)
            )),
            plan: None,
        });
    }
}

/// Whether `a` is made redundant by `b`: same table, method, expressions and predicate, and `a`'s
/// key columns (with their operator classes) a leading prefix of `b`'s (btree), or equal (other
/// methods, whose column order does not give prefix lookups).
pub fn covered_by(a: &IndexStat, b: &IndexStat) -> bool {
    if a.qualified() == b.qualified()
        || a.table_qualified() != b.table_qualified()
        || a.method != b.method
        || a.predicate != b.predicate
        || a.expressions != b.expressions
        || !a.valid
        || !b.valid
        || a.unique
        || a.keys.len() > b.keys.len()
    {
        return false;
    }
    let prefix = b.keys[..a.keys.len()] == a.keys[..];
    let same_len = a.keys.len() == b.keys.len();
    if !prefix || (a.method != "btree" && !same_len) {
        return false;
    }
    // Operator classes, collations and options must match on the shared columns.
    let split = |s: &str| -> Vec<Vec<String>> {
        s.split('/')
            .map(|p| p.split_whitespace().map(str::to_string).collect())
            .collect()
    };
    let (oa, ob) = (split(&a.opclasses), split(&b.opclasses));
    if oa.len() != ob.len()
        || oa
            .iter()
            .zip(&ob)
            .any(|(x, y)| x.len() > y.len() || y[..x.len()] != x[..])
    {
        return false;
    }
    // Two identical indexes cover each other: report only one of the pair, the one created
    // later (usually the accidental copy), and never one that backs a constraint.
    if same_len && !b.unique && !b.backs_constraint && !a.backs_constraint {
        return a.oid > b.oid;
    }
    !a.backs_constraint
}

fn duplicates(after: &Snapshot, out: &mut Vec<Finding>) {
    for (k, a) in &after.indexes {
        let Some(b) = after.indexes.values().find(|b| covered_by(a, b)) else {
            continue;
        };
        let cols = |i: &IndexStat| {
            i.key_names
                .iter()
                .map(|c| c.clone().unwrap_or_else(|| "(expression)".into()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push(Finding {
            code: "duplicate_index".into(),
            severity: Severity::Warning,
            object: k.clone(),
            title: format!(
                "index {k} ({}) is a duplicate of {}: its columns ({}) lead {} ({})",
                human_bytes(a.size_bytes),
                b.qualified(),
                cols(a),
                b.name,
                cols(b)
            ),
            evidence: ev(&[
                ("index", json!(a.definition)),
                ("covered_by", json!(b.definition)),
                ("size_bytes", json!(a.size_bytes)),
                ("idx_scan_cumulative", json!(a.idx_scan)),
            ]),
            threshold: "key columns a leading prefix of another valid index on the same table \
                        with the same method, operator classes and predicate; not unique"
                .into(),
            source: "PgHero duplicate indexes".into(),
            action: format!(
                "drop it: {} answers the same lookups, and every write maintains both",
                b.qualified()
            ),
            sql: Some(format!(
                "DROP INDEX CONCURRENTLY {}.{};",
                quote_ident(&a.schema),
                quote_ident(&a.name)
            )),
            plan: None,
        });
    }
}

fn invalid(after: &Snapshot, out: &mut Vec<Finding>) {
    for (k, a) in after.indexes.iter().filter(|(_, a)| !a.valid) {
        out.push(Finding {
            code: "invalid_index".into(),
            severity: Severity::Critical,
            object: k.clone(),
            title: format!(
                "index {k} is invalid (a failed or interrupted CREATE INDEX CONCURRENTLY): \
                 writes maintain it, queries never use it"
            ),
            evidence: ev(&[
                ("definition", json!(a.definition)),
                ("size_bytes", json!(a.size_bytes)),
            ]),
            threshold: "pg_index.indisvalid = false".into(),
            source: "check_postgres invalid indexes / PostgreSQL docs (CREATE INDEX CONCURRENTLY)"
                .into(),
            action: "drop it, fix the cause (e.g. duplicate values for a unique index), then \
                     build it again"
                .into(),
            sql: Some(format!(
                "DROP INDEX CONCURRENTLY {}.{};\n{};",
                quote_ident(&a.schema),
                quote_ident(&a.name),
                a.definition
                    .replacen("CREATE INDEX", "CREATE INDEX CONCURRENTLY", 1)
                    .replacen("CREATE UNIQUE INDEX", "CREATE UNIQUE INDEX CONCURRENTLY", 1)
            )),
            plan: None,
        });
    }
}

/// `12.3 MiB`.
pub fn human_bytes(b: i64) -> String {
    let b = b as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} GiB", b / (1024.0 * 1024.0 * 1024.0))
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else {
        format!("{:.0} kB", b / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(name: &str, keys: &[i16]) -> IndexStat {
        IndexStat {
            oid: name.bytes().map(i64::from).sum(),
            schema: "pgstorm".into(),
            table: "pos_order".into(),
            name: name.into(),
            valid: true,
            method: "btree".into(),
            keys: keys.to_vec(),
            key_names: keys.iter().map(|k| Some(format!("c{k}"))).collect(),
            opclasses: format!(
                "{}/{}/{}",
                keys.iter().map(|_| "3124").collect::<Vec<_>>().join(" "),
                keys.iter().map(|_| "0").collect::<Vec<_>>().join(" "),
                keys.iter().map(|_| "0").collect::<Vec<_>>().join(" ")
            ),
            ..IndexStat::default()
        }
    }

    #[test]
    fn a_leading_prefix_is_covered_and_the_wider_index_is_not() {
        let a = idx("a", &[3]);
        let b = idx("b", &[3, 4]);
        assert!(covered_by(&a, &b));
        assert!(!covered_by(&b, &a));
        let c = idx("c", &[4, 3]);
        assert!(!covered_by(&a, &c));
    }

    #[test]
    fn identical_pairs_are_reported_once_and_unique_or_partial_ones_never() {
        let a = idx("a", &[3]);
        let b = idx("b", &[3]);
        assert!(covered_by(&b, &a) ^ covered_by(&a, &b));
        let mut u = idx("u", &[3]);
        u.unique = true;
        assert!(!covered_by(&u, &idx("w", &[3, 4])));
        let mut p = idx("p", &[3]);
        p.predicate = Some("(state = 'draft'::text)".into());
        assert!(!covered_by(&p, &idx("w", &[3, 4])));
        let mut h = idx("h", &[3]);
        h.method = "hash".into();
        assert!(!covered_by(&h, &idx("w", &[3, 4])));
    }
}
