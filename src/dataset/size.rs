//! How big the data a workload touches is, next to shared_buffers: a memory setting can only
//! show an effect on a dataset that does not already fit in memory.
//!
//! Invariants:
//! - The tables are found from the workload's own SQL text: every word (or `schema.name` pair)
//!   that names a table visible to the session, or a table by its qualified name, counts. That
//!   covers the POS statements (qualified `pgstorm.*`), pgbench's scripts and users' scripts
//!   alike without parsing SQL; a word that happens to name an unrelated table only adds it.
//! - A table's bytes are `pg_total_relation_size` (heap, indexes, TOAST); a partitioned table's
//!   are the sum over its partitions, since the parent itself holds nothing.
//! - System catalogs never count: a script reading `pg_class` is not the dataset.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The tables a load touched and their size, with the server's shared_buffers beside them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DataSize {
    /// Each table the workload's statements name, largest first.
    pub tables: Vec<TableSize>,
    /// Sum of the tables' bytes (heap, indexes and TOAST).
    pub total_bytes: i64,
    /// `shared_buffers` of the server in bytes when the sizes were read.
    pub shared_buffers_bytes: i64,
}

/// One table and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TableSize {
    /// Schema-qualified name.
    pub name: String,
    /// `pg_total_relation_size` (summed over partitions for a partitioned table).
    pub bytes: i64,
}

impl DataSize {
    /// Whether the whole dataset fits in shared_buffers, so memory settings cannot matter.
    pub fn fits_in_shared_buffers(&self) -> bool {
        self.total_bytes < self.shared_buffers_bytes
    }
}

/// The lowercased words and `schema.name` pairs of `statements` that could name a table.
fn candidate_names(statements: &[String]) -> Vec<String> {
    let mut names = BTreeSet::new();
    for sql in statements {
        let lower = sql.to_ascii_lowercase();
        for token in lower.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')) {
            let token = token.trim_matches('.');
            if token.is_empty() || token.starts_with(|c: char| c.is_ascii_digit()) {
                continue;
            }
            names.insert(token.to_string());
            if let Some((_, name)) = token.rsplit_once('.') {
                names.insert(name.to_string());
            }
        }
    }
    names.into_iter().collect()
}

/// Reads the sizes of the tables `statements` name, and shared_buffers.
pub fn measure(
    client: &mut postgres::Client,
    statements: &[String],
) -> Result<DataSize, postgres::Error> {
    let names = candidate_names(statements);
    let rows = client.query(
        "SELECT format('%I.%I', n.nspname, c.relname),
                CASE WHEN c.relkind = 'p'
                     THEN (SELECT coalesce(sum(pg_total_relation_size(t.relid)), 0)::bigint
                           FROM pg_partition_tree(c.oid) t)
                     ELSE pg_total_relation_size(c.oid) END AS bytes
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'm') AND NOT c.relispartition
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\\_toast%'
           AND (n.nspname || '.' || c.relname = ANY($1)
                OR (c.relname = ANY($1) AND pg_table_is_visible(c.oid)))
         ORDER BY bytes DESC, 1",
        &[&names],
    )?;
    let tables: Vec<TableSize> = rows
        .iter()
        .map(|r| TableSize {
            name: r.get(0),
            bytes: r.get(1),
        })
        .collect();
    let shared_buffers_bytes: i64 = client
        .query_one(
            "SELECT pg_size_bytes(current_setting('shared_buffers'))",
            &[],
        )?
        .get(0);
    Ok(DataSize {
        total_bytes: tables.iter().map(|t| t.bytes).sum(),
        tables,
        shared_buffers_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_words_and_qualified_pairs() {
        let names = candidate_names(&[
            "SELECT abalance FROM pgbench_accounts WHERE aid = $1".into(),
            "UPDATE pgstorm.pos_order SET state = 'paid' WHERE id = 42".into(),
        ]);
        for n in [
            "pgbench_accounts",
            "pgstorm.pos_order",
            "pos_order",
            "abalance",
        ] {
            assert!(names.contains(&n.to_string()), "{n} in {names:?}");
        }
        assert!(
            !names.iter().any(|n| n == "42" || n.is_empty()),
            "{names:?}"
        );
    }
}
