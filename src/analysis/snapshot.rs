//! Snapshots of the cumulative statistics views, taken before and after a load, so the advisor
//! judges what the load did rather than everything since the last statistics reset.
//!
//! Invariants: each snapshot starts with `pg_stat_clear_snapshot()` so it reads fresh counters, not
//! the values cached earlier in the same transaction; the scope filter (schema `pgstorm`, or every
//! user schema) is applied here, once, so no rule can look outside it by accident.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use postgres::Client;

/// Which objects the advisor looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// Only schema `pgstorm` (the tool's own tables): the default.
    #[default]
    Pgstorm,
    /// Every user schema (`--all-schemas`).
    AllSchemas,
}

impl Scope {
    /// As written in the analysis section.
    pub fn describe(self) -> &'static str {
        match self {
            Scope::Pgstorm => "schema pgstorm",
            Scope::AllSchemas => "all schemas",
        }
    }
    fn all(self) -> bool {
        self == Scope::AllSchemas
    }
}

/// One table's counters (pg_stat_user_tables + pg_statio_user_tables).
#[derive(Debug, Clone, Default)]
pub struct TableStat {
    /// Schema.
    pub schema: String,
    /// Table name.
    pub name: String,
    /// Sequential scans.
    pub seq_scan: i64,
    /// Rows read by sequential scans.
    pub seq_tup_read: i64,
    /// Index scans on any of its indexes.
    pub idx_scan: i64,
    /// Rows inserted.
    pub n_tup_ins: i64,
    /// Rows updated.
    pub n_tup_upd: i64,
    /// Rows HOT-updated.
    pub n_tup_hot_upd: i64,
    /// Rows deleted.
    pub n_tup_del: i64,
    /// Estimated live rows: pg_class.reltuples, as the planner sees them (n_live_tup only when the
    /// table was never vacuumed or analyzed, because n_live_tup drifts when a bulk load's insert
    /// counts are flushed after the VACUUM that set it).
    pub n_live_tup: i64,
    /// Estimated dead rows.
    pub n_dead_tup: i64,
    /// Last vacuum, manual or auto (the later).
    pub last_vacuum: Option<DateTime<Utc>>,
    /// Last analyze, manual or auto (the later).
    pub last_analyze: Option<DateTime<Utc>>,
    /// Heap blocks read from outside shared buffers.
    pub heap_blks_read: i64,
    /// Heap blocks found in shared buffers.
    pub heap_blks_hit: i64,
    /// Index blocks read from outside shared buffers.
    pub idx_blks_read: i64,
    /// Index blocks found in shared buffers.
    pub idx_blks_hit: i64,
    /// Table size with TOAST (bytes).
    pub size_bytes: i64,
    /// Column names in attribute order (for reading plan filters).
    pub columns: Vec<String>,
}

impl TableStat {
    /// `schema.table`.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// One index's counters and definition.
#[derive(Debug, Clone, Default)]
pub struct IndexStat {
    /// Schema.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Index name.
    pub name: String,
    /// OID (a larger one was created later).
    pub oid: i64,
    /// Index scans.
    pub idx_scan: i64,
    /// Index entries returned.
    pub idx_tup_read: i64,
    /// Heap rows fetched by plain index scans.
    pub idx_tup_fetch: i64,
    /// Size (bytes).
    pub size_bytes: i64,
    /// UNIQUE.
    pub unique: bool,
    /// PRIMARY KEY.
    pub primary: bool,
    /// Valid (false after a failed CREATE INDEX CONCURRENTLY).
    pub valid: bool,
    /// Backs a constraint (primary key, unique, exclusion).
    pub backs_constraint: bool,
    /// Access method (btree, hash, gin, ...).
    pub method: String,
    /// Key columns as attribute numbers (0 = expression), key columns only.
    pub keys: Vec<i16>,
    /// Key column names (`None` for an expression).
    pub key_names: Vec<Option<String>>,
    /// Operator classes and collations of the key columns, as text (must match for a duplicate).
    pub opclasses: String,
    /// Expressions (null for plain columns).
    pub expressions: Option<String>,
    /// Partial-index predicate.
    pub predicate: Option<String>,
    /// `CREATE INDEX ...` as pg_get_indexdef gives it.
    pub definition: String,
    /// Foreign key whose referencing column leads this index (dropping it slows deletes/updates
    /// on the referenced table).
    pub supports_fk: Option<String>,
}

impl IndexStat {
    /// `schema.index`.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
    /// `schema.table`.
    pub fn table_qualified(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

/// Database-wide counters of the connected database.
#[derive(Debug, Clone, Default)]
pub struct DatabaseStat {
    /// Temp files created.
    pub temp_files: i64,
    /// Bytes written to temp files.
    pub temp_bytes: i64,
    /// Blocks read from outside shared buffers.
    pub blks_read: i64,
    /// Blocks found in shared buffers.
    pub blks_hit: i64,
    /// Deadlocks.
    pub deadlocks: i64,
    /// When the database's statistics were last reset (RFC 3339).
    pub stats_reset: Option<String>,
}

/// Cluster-wide checkpoint counters (pg_stat_bgwriter ≤ 16, pg_stat_checkpointer ≥ 17).
#[derive(Debug, Clone, Default)]
pub struct CheckpointStat {
    /// Checkpoints started by checkpoint_timeout.
    pub timed: i64,
    /// Checkpoints requested (max_wal_size reached, CHECKPOINT, ...).
    pub requested: i64,
    /// The view the counters came from.
    pub view: &'static str,
}

/// One pg_stat_statements entry.
#[derive(Debug, Clone, Default)]
pub struct StatementStat {
    /// Normalized text.
    pub query: String,
    /// Calls.
    pub calls: i64,
    /// Total execution time (ms).
    pub total_ms: f64,
    /// Rows.
    pub rows: i64,
    /// Temp blocks written.
    pub temp_blks_written: i64,
}

/// Whether pg_stat_statements can be read in this database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementsSource {
    /// Created in schema `.0`: readable.
    Available(String),
    /// Preloaded, but `CREATE EXTENSION` was not run in this database.
    NotCreated,
    /// Not in shared_preload_libraries.
    NotPreloaded,
}

/// Everything read at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// When (monotonic), for the window length.
    pub at: Instant,
    /// Tables in scope, by `schema.table`.
    pub tables: BTreeMap<String, TableStat>,
    /// Indexes in scope, by `schema.index`.
    pub indexes: BTreeMap<String, IndexStat>,
    /// The connected database.
    pub database: DatabaseStat,
    /// Checkpoints (cluster-wide).
    pub checkpoints: CheckpointStat,
    /// pg_stat_statements of this database by (userid, queryid), when readable.
    pub statements: Option<BTreeMap<(i64, i64), StatementStat>>,
    /// Whether pg_stat_statements was readable.
    pub statements_source: StatementsSource,
}

const TABLES_SQL: &str = "SELECT t.schemaname::text, t.relname::text, t.seq_scan, t.seq_tup_read, \
        coalesce(t.idx_scan, 0), t.n_tup_ins, t.n_tup_upd, t.n_tup_hot_upd, t.n_tup_del, \
        CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint ELSE t.n_live_tup END, t.n_dead_tup, \
        greatest(t.last_vacuum, t.last_autovacuum), greatest(t.last_analyze, t.last_autoanalyze), \
        coalesce(io.heap_blks_read, 0), coalesce(io.heap_blks_hit, 0), \
        coalesce(io.idx_blks_read, 0), coalesce(io.idx_blks_hit, 0), pg_table_size(t.relid), \
        array(SELECT a.attname::text FROM pg_catalog.pg_attribute a WHERE a.attrelid = t.relid \
              AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) \
     FROM pg_catalog.pg_stat_user_tables t \
     JOIN pg_catalog.pg_statio_user_tables io USING (relid) \
     JOIN pg_catalog.pg_class c ON c.oid = t.relid \
     WHERE $1 OR t.schemaname = 'pgstorm'";

const INDEXES_SQL: &str = "SELECT s.schemaname::text, s.relname::text, s.indexrelname::text, \
        s.idx_scan, s.idx_tup_read, s.idx_tup_fetch, pg_relation_size(s.indexrelid), \
        s.indexrelid::bigint, \
        i.indisunique, i.indisprimary, i.indisvalid, \
        EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conindid = s.indexrelid \
                AND c.contype IN ('p', 'u', 'x')), \
        am.amname::text, \
        (i.indkey::int2[])[0:i.indnkeyatts - 1], \
        array(SELECT a.attname::text FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) \
                WITH ORDINALITY k(attnum, ord) \
              LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
              ORDER BY k.ord), \
        i.indclass::text || '/' || i.indcollation::text || '/' || i.indoption::text, \
        pg_catalog.pg_get_expr(i.indexprs, i.indrelid), \
        pg_catalog.pg_get_expr(i.indpred, i.indrelid), \
        pg_catalog.pg_get_indexdef(s.indexrelid), \
        (SELECT c.conname::text FROM pg_catalog.pg_constraint c WHERE c.contype = 'f' \
           AND c.conrelid = i.indrelid AND c.conkey[1] = i.indkey[0] LIMIT 1) \
     FROM pg_catalog.pg_stat_user_indexes s \
     JOIN pg_catalog.pg_index i ON i.indexrelid = s.indexrelid \
     JOIN pg_catalog.pg_class ic ON ic.oid = s.indexrelid \
     JOIN pg_catalog.pg_am am ON am.oid = ic.relam \
     WHERE $1 OR s.schemaname = 'pgstorm'";

/// Takes a snapshot on `client` (which should not be one of the load's connections).
pub fn take(client: &mut Client, scope: Scope) -> Result<Snapshot, postgres::Error> {
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])?
        .get(0);
    if version >= 150_000 {
        // This connection may have just seeded the dataset: its counters wait in the backend
        // (flushed at most once a second) and would otherwise land inside the window.
        client.batch_execute("SELECT pg_catalog.pg_stat_force_next_flush()")?;
    }
    client.batch_execute("SELECT pg_catalog.pg_stat_clear_snapshot()")?;
    let at = Instant::now();
    let all = scope.all();
    let mut tables = BTreeMap::new();
    for r in client.query(TABLES_SQL, &[&all])? {
        let t = TableStat {
            schema: r.get(0),
            name: r.get(1),
            seq_scan: r.get(2),
            seq_tup_read: r.get(3),
            idx_scan: r.get(4),
            n_tup_ins: r.get(5),
            n_tup_upd: r.get(6),
            n_tup_hot_upd: r.get(7),
            n_tup_del: r.get(8),
            n_live_tup: r.get(9),
            n_dead_tup: r.get(10),
            last_vacuum: r.get(11),
            last_analyze: r.get(12),
            heap_blks_read: r.get(13),
            heap_blks_hit: r.get(14),
            idx_blks_read: r.get(15),
            idx_blks_hit: r.get(16),
            size_bytes: r.get(17),
            columns: r.get(18),
        };
        tables.insert(t.qualified(), t);
    }
    let mut indexes = BTreeMap::new();
    for r in client.query(INDEXES_SQL, &[&all])? {
        let i = IndexStat {
            schema: r.get(0),
            table: r.get(1),
            name: r.get(2),
            idx_scan: r.get(3),
            idx_tup_read: r.get(4),
            idx_tup_fetch: r.get(5),
            size_bytes: r.get(6),
            oid: r.get(7),
            unique: r.get(8),
            primary: r.get(9),
            valid: r.get(10),
            backs_constraint: r.get(11),
            method: r.get(12),
            keys: r.get(13),
            key_names: r.get(14),
            opclasses: r.get(15),
            expressions: r.get(16),
            predicate: r.get(17),
            definition: r.get(18),
            supports_fk: r.get(19),
        };
        indexes.insert(i.qualified(), i);
    }
    let d = client.query_one(
        "SELECT temp_files, temp_bytes, blks_read, blks_hit, deadlocks, stats_reset::text \
         FROM pg_catalog.pg_stat_database WHERE datname = current_database()",
        &[],
    )?;
    let database = DatabaseStat {
        temp_files: d.get(0),
        temp_bytes: d.get(1),
        blks_read: d.get(2),
        blks_hit: d.get(3),
        deadlocks: d.get(4),
        stats_reset: d.get(5),
    };
    let checkpoints = if version >= 170_000 {
        let r = client.query_one(
            "SELECT num_timed, num_requested FROM pg_catalog.pg_stat_checkpointer",
            &[],
        )?;
        CheckpointStat {
            timed: r.get(0),
            requested: r.get(1),
            view: "pg_stat_checkpointer",
        }
    } else {
        let r = client.query_one(
            "SELECT checkpoints_timed, checkpoints_req FROM pg_catalog.pg_stat_bgwriter",
            &[],
        )?;
        CheckpointStat {
            timed: r.get(0),
            requested: r.get(1),
            view: "pg_stat_bgwriter",
        }
    };
    let statements_source = statements_source(client)?;
    let statements = match &statements_source {
        StatementsSource::Available(schema) if version >= 130_000 => {
            Some(read_statements(client, schema, all)?)
        }
        _ => None,
    };
    Ok(Snapshot {
        at,
        tables,
        indexes,
        database,
        checkpoints,
        statements,
        statements_source,
    })
}

fn statements_source(client: &mut Client) -> Result<StatementsSource, postgres::Error> {
    let r = client.query_one(
        "SELECT (SELECT n.nspname::text FROM pg_catalog.pg_extension e \
                 JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace \
                 WHERE e.extname = 'pg_stat_statements'), \
                current_setting('shared_preload_libraries') ~ '(^|[ ,])pg_stat_statements($|[ ,])'",
        &[],
    )?;
    Ok(match (r.get::<_, Option<String>>(0), r.get::<_, bool>(1)) {
        (Some(schema), true) => StatementsSource::Available(schema),
        (_, false) => StatementsSource::NotPreloaded,
        (None, true) => StatementsSource::NotCreated,
    })
}

fn read_statements(
    client: &mut Client,
    schema: &str,
    all: bool,
) -> Result<BTreeMap<(i64, i64), StatementStat>, postgres::Error> {
    // Scoped to statements naming schema pgstorm: the tool's own monitoring queries and other
    // applications' statements are not the workload's.
    let sql = format!(
        "SELECT userid::bigint, queryid, query, calls, total_exec_time, rows, temp_blks_written \
         FROM \"{}\".pg_stat_statements \
         WHERE dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) \
           AND queryid IS NOT NULL AND ($1 OR query ILIKE '%pgstorm.%')",
        schema.replace('"', "\"\"")
    );
    let mut out: BTreeMap<(i64, i64), StatementStat> = BTreeMap::new();
    for r in client.query(sql.as_str(), &[&all])? {
        let e = out.entry((r.get(0), r.get(1))).or_default();
        e.query = r.get(2);
        e.calls += r.get::<_, i64>(3);
        e.total_ms += r.get::<_, f64>(4);
        e.rows += r.get::<_, i64>(5);
        e.temp_blks_written += r.get::<_, i64>(6);
    }
    Ok(out)
}
