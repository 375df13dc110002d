//! The dataset's DDL, the ownership check and the marker table.
//!
//! Invariants:
//! - Ownership is decided in one place, [`ownership`]: schema `pgstorm` absent, ours (it holds
//!   `pgstorm.pgstorm_meta`), or foreign. Every write path takes the pgstorm advisory lock first,
//!   then checks ownership inside the same transaction, so two pgstorm processes cannot interleave
//!   a seed and a clean, and a foreign schema is never written to.
//! - A seed loads staging tables (`pgstorm.seed_*`, [`STAGING_PREFIX`]), each created bare in
//!   its own loading transaction so COPY can FREEZE and append without index maintenance, then
//!   indexed after that commits, one index per transaction (so they can build side by side on
//!   several connections); one short transaction ([`swap_in`]) replaces the previous dataset
//!   with them.
//!   Readers see the old dataset or the new one; staging tables left by an interrupted seed are
//!   dropped by the next one ([`prepare`]).

use postgres::GenericClient;

use super::{DatasetError, Marker, Step};

/// `pg_advisory_xact_lock` key serialising pgstorm's writers to the schema ("pgstorm" in ASCII).
const LOCK_KEY: i64 = 0x7067_7374_6f72_6d00;

/// The three dataset tables, children first (drop order).
pub(crate) const DATASET_TABLES: [&str; 3] = [
    "pgstorm.pos_order_line",
    "pgstorm.pos_order",
    "pgstorm.res_partner",
];

/// Who owns schema `pgstorm` in the connected database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ownership {
    /// No schema `pgstorm`.
    Absent,
    /// Schema `pgstorm` with its marker table: created by pgstorm.
    Ours,
    /// Schema `pgstorm` without a marker table: someone else's.
    Foreign,
}

/// Decides [`Ownership`] from the catalogs.
pub(crate) fn ownership(client: &mut impl GenericClient) -> Result<Ownership, DatasetError> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'pgstorm'), \
                    EXISTS (SELECT 1 FROM pg_catalog.pg_class c \
                            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                            WHERE n.nspname = 'pgstorm' AND c.relname = 'pgstorm_meta' \
                              AND c.relkind = 'r')",
            &[],
        )
        .step("checking whether schema pgstorm exists and is pgstorm's")?;
    Ok(match (row.get::<_, bool>(0), row.get::<_, bool>(1)) {
        (false, _) => Ownership::Absent,
        (true, true) => Ownership::Ours,
        (true, false) => Ownership::Foreign,
    })
}

/// Takes the transaction-scoped pgstorm advisory lock.
pub(crate) fn lock(tx: &mut postgres::Transaction<'_>) -> Result<(), DatasetError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .step("waiting for another pgstorm process working on schema pgstorm")?;
    Ok(())
}

/// The dataset's marker, `None` when there is no schema `pgstorm` or it holds no dataset yet
/// (ours, but the marker row is missing); [`DatasetError::ForeignSchema`] when it is not ours.
pub fn status(client: &mut postgres::Client) -> Result<Option<Marker>, DatasetError> {
    match ownership(client)? {
        Ownership::Absent => Ok(None),
        Ownership::Foreign => Err(DatasetError::ForeignSchema),
        Ownership::Ours => read_marker(client),
    }
}

fn read_marker(client: &mut impl GenericClient) -> Result<Option<Marker>, DatasetError> {
    let row = client
        .query_opt(
            "SELECT pgstorm_version, scale, seed::text, created_at, data_start, data_end, \
                    partners, orders, lines \
             FROM pgstorm.pgstorm_meta",
            &[],
        )
        .step("reading the dataset marker pgstorm.pgstorm_meta")?;
    let Some(row) = row else { return Ok(None) };
    let scale: i32 = row.get(1);
    let seed: String = row.get(2);
    let bad = |what: &str| {
        DatasetError::Inconsistent(format!(
            "pgstorm.pgstorm_meta holds an invalid {what}: re-seed with `pgstorm seed`"
        ))
    };
    Ok(Some(Marker {
        pgstorm_version: row.get(0),
        scale: u32::try_from(scale).map_err(|_| bad("scale"))?,
        seed: seed.parse().map_err(|_| bad("seed"))?,
        created_at: row.get(3),
        data_start: row.get(4),
        data_end: row.get(5),
        partners: row.get(6),
        orders: row.get(7),
        lines: row.get(8),
    }))
}

/// Creates schema `pgstorm` and its (empty) marker table if they do not exist: what makes the
/// schema recognisably pgstorm's.
const SCHEMA_DDL: &str = "CREATE SCHEMA IF NOT EXISTS pgstorm;
         COMMENT ON SCHEMA pgstorm IS 'created and owned by pgstorm (load-testing tool); \
            see pgstorm.pgstorm_meta. Drop with `pgstorm clean`.';
         CREATE TABLE IF NOT EXISTS pgstorm.pgstorm_meta (
             singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
             pgstorm_version text NOT NULL,
             scale integer NOT NULL,
             seed numeric(20, 0) NOT NULL,
             created_at timestamptz NOT NULL,
             data_start timestamptz NOT NULL,
             data_end timestamptz NOT NULL,
             partners bigint NOT NULL,
             orders bigint NOT NULL,
             lines bigint NOT NULL
         );";

/// Prefix of the staging relations a seed loads before [`swap_in`] renames them: tables,
/// their indexes and identity sequences. Whatever carries it is a seed's work in progress, and a
/// leftover of an interrupted one when no seed holds the lock.
pub(crate) const STAGING_PREFIX: &str = "seed_";

/// One dataset table: its columns, and the keys and indexes added after its load, written with
/// `{t}` for the table's (staging) name and `{p}` for the staging prefix of index names.
pub(crate) struct TableDdl {
    /// Final name, without schema.
    pub(crate) name: &'static str,
    /// Column list of CREATE TABLE.
    columns: &'static str,
    /// The columns the seed's binary COPY sends, in the order its tuples carry them.
    copy_columns: &'static str,
    /// Foreign key `(constraint, column, referenced table's index in TABLES)`, referencing that
    /// table's `id`.
    pub(crate) references: Option<(&'static str, &'static str, usize)>,
    /// (step, statement) of each index built after the load, each in its own transaction; the
    /// first is the unique index that [`link_staging`] turns into the primary key.
    pub(crate) indexes: &'static [(&'static str, &'static str)],
}

/// The dataset tables in load order, with the exact index names the workloads and the advisor
/// refer to.
pub(crate) const TABLES: [TableDdl; 3] = [
    TableDdl {
        name: "res_partner",
        columns: "id bigint GENERATED BY DEFAULT AS IDENTITY, name text, email text, city text, \
                  create_date timestamptz",
        copy_columns: "id, name, email, city, create_date",
        references: None,
        indexes: &[(
            "creating index res_partner_pkey",
            "CREATE UNIQUE INDEX {p}res_partner_pkey ON {t} (id)",
        )],
    },
    TableDdl {
        name: "pos_order",
        columns: "id bigint GENERATED BY DEFAULT AS IDENTITY, partner_id bigint, \
                  create_date timestamptz NOT NULL, amount_total numeric(12, 2) NOT NULL, \
                  state text",
        copy_columns: "id, partner_id, create_date, amount_total, state",
        references: Some(("pos_order_partner_id_fkey", "partner_id", 0)),
        indexes: &[
            (
                "creating index pos_order_pkey",
                "CREATE UNIQUE INDEX {p}pos_order_pkey ON {t} (id)",
            ),
            (
                "creating index pos_order_create_date_idx",
                "CREATE INDEX {p}pos_order_create_date_idx ON {t} (create_date)",
            ),
            (
                "creating index pos_order_partner_id_idx",
                "CREATE INDEX {p}pos_order_partner_id_idx ON {t} (partner_id)",
            ),
            (
                "creating index pos_order_amount_total_idx",
                "CREATE INDEX {p}pos_order_amount_total_idx ON {t} (amount_total)",
            ),
        ],
    },
    TableDdl {
        name: "pos_order_line",
        columns:
            "id bigint GENERATED BY DEFAULT AS IDENTITY, order_id bigint, product_id integer, \
                  qty numeric(10, 2), price_unit numeric(12, 2), price_subtotal numeric(12, 2)",
        copy_columns: "id, order_id, product_id, qty, price_unit, price_subtotal",
        references: Some(("pos_order_line_order_id_fkey", "order_id", 1)),
        indexes: &[
            (
                "creating index pos_order_line_pkey",
                "CREATE UNIQUE INDEX {p}pos_order_line_pkey ON {t} (id)",
            ),
            (
                "creating index pos_order_line_order_id_idx",
                "CREATE INDEX {p}pos_order_line_order_id_idx ON {t} (order_id)",
            ),
        ],
    },
];

impl TableDdl {
    /// `pgstorm.seed_<name>`.
    pub(crate) fn staging(&self) -> String {
        format!("pgstorm.{STAGING_PREFIX}{}", self.name)
    }

    /// Creates the bare staging table (no key or index, so COPY appends without index
    /// maintenance) in the loading transaction, which lets COPY use FREEZE.
    pub(crate) fn create_staging(
        &self,
        tx: &mut postgres::Transaction<'_>,
    ) -> Result<(), DatasetError> {
        tx.batch_execute(&format!(
            "CREATE TABLE {} ({})",
            self.staging(),
            self.columns
        ))
        .step("creating a staging table of the seed")
    }

    /// The seed's `COPY ... FROM STDIN` into the staging table: binary tuples, frozen (the
    /// staging table is created in the same transaction).
    pub(crate) fn copy_in(&self) -> String {
        format!(
            "COPY {} ({}) FROM STDIN WITH (FORMAT binary, FREEZE)",
            self.staging(),
            self.copy_columns
        )
    }

    /// Builds index `i` of [`TableDdl::indexes`] on the loaded staging table; returns its step.
    pub(crate) fn build_index(
        &self,
        tx: &mut postgres::Transaction<'_>,
        i: usize,
    ) -> Result<&'static str, DatasetError> {
        let (step, sql) = self.indexes[i];
        tx.batch_execute(
            &sql.replace("{t}", &self.staging())
                .replace("{p}", STAGING_PREFIX),
        )
        .step(step)?;
        Ok(step)
    }
}

/// Creates schema `pgstorm` and its marker table if needed and drops the staging relations an
/// interrupted seed left behind; returns how many tables it dropped. The caller holds the lock
/// (so no other seed is loading) and has checked ownership.
pub(crate) fn prepare(tx: &mut postgres::Transaction<'_>) -> Result<usize, DatasetError> {
    tx.batch_execute(SCHEMA_DDL)
        .step("creating schema pgstorm and its marker table")?;
    let leftovers = staging_tables(tx)?;
    if !leftovers.is_empty() {
        tx.batch_execute(&format!("DROP TABLE {} CASCADE", leftovers.join(", ")))
            .step("dropping the staging tables of an interrupted seed")?;
    }
    Ok(leftovers.len())
}

/// Qualified names of the staging tables in schema pgstorm.
fn staging_tables(tx: &mut impl GenericClient) -> Result<Vec<String>, DatasetError> {
    Ok(tx
        .query(
            "SELECT format('pgstorm.%I', c.relname) FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'pgstorm' AND c.relkind = 'r' AND starts_with(c.relname, $1) \
             ORDER BY 1",
            &[&STAGING_PREFIX],
        )
        .step("listing staging tables of schema pgstorm")?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Links loaded staging table `TABLES[t]`: its primary key from its unique index (catalog work:
/// the id is an identity column, hence NOT NULL, and the index is already built), its foreign key
/// validated here, outside the short swap (the referenced table must be linked already), and its
/// id sequence moved past the loaded ids, so rows inserted by workloads get fresh ids.
pub(crate) fn link_staging(
    tx: &mut postgres::Transaction<'_>,
    t: usize,
) -> Result<(), DatasetError> {
    let table = &TABLES[t];
    let staging = table.staging();
    tx.batch_execute(&format!(
        "ALTER TABLE {staging} ADD CONSTRAINT {STAGING_PREFIX}{name}_pkey \
             PRIMARY KEY USING INDEX {STAGING_PREFIX}{name}_pkey",
        name = table.name
    ))
    .step("adding a primary key")?;
    if let Some((constraint, column, parent)) = table.references {
        // The server validates the new key with one anti-join of the two tables, planned with
        // this transaction's settings. By now both key columns have their btree index and both
        // tables are all-visible (VACUUM ran), so a merge anti-join of two index-only scans reads
        // them in key order with no hash table to build: at scale 500 the order lines' key took
        // 0.19-0.24 s that way against 0.33-0.52 s by the hash join the planner picks itself.
        tx.batch_execute(&format!(
            "SET LOCAL enable_hashjoin = off; \
             ALTER TABLE {staging} ADD CONSTRAINT {constraint} \
                 FOREIGN KEY ({column}) REFERENCES {} (id)",
            TABLES[parent].staging()
        ))
        .step("adding a foreign key")?;
    }
    tx.batch_execute(&format!(
        "SELECT setval(pg_get_serial_sequence('{staging}', 'id'), \
                       (SELECT coalesce(max(id), 0) + 1 FROM {staging}), false)"
    ))
    .step("moving an id sequence past the loaded ids")?;
    Ok(())
}

/// Replaces the previous dataset with the staging one: drops the old tables and the marker row,
/// then strips the staging prefix from every staging relation (tables, indexes with their
/// constraints, sequences). Catalog work only, so the transaction holding the lock stays short.
pub(crate) fn swap_in(tx: &mut postgres::Transaction<'_>) -> Result<(), DatasetError> {
    tx.batch_execute("DELETE FROM pgstorm.pgstorm_meta")
        .step("emptying the dataset marker")?;
    tx.batch_execute(&format!(
        "DROP TABLE IF EXISTS {} CASCADE",
        DATASET_TABLES.join(", ")
    ))
    .step("dropping the previous dataset tables")?;
    let renames: Vec<(String, String)> = tx
        .query(
            "SELECT CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'i' THEN 'INDEX' \
                                   ELSE 'SEQUENCE' END, c.relname \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'pgstorm' AND c.relkind IN ('r', 'i', 'S') \
               AND starts_with(c.relname, $1)",
            &[&STAGING_PREFIX],
        )
        .step("listing the staging relations")?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (kind, name) in renames {
        let fin = &name[STAGING_PREFIX.len()..];
        tx.batch_execute(&format!(
            "ALTER {kind} pgstorm.\"{name}\" RENAME TO \"{fin}\""
        ))
        .step("renaming the staging relations into place")?;
    }
    Ok(())
}

/// Writes the marker row (the table was emptied by [`swap_in`]) and returns it as stored.
pub(crate) fn write_marker(
    tx: &mut postgres::Transaction<'_>,
    marker: &Marker,
) -> Result<Marker, DatasetError> {
    let scale =
        i32::try_from(marker.scale).map_err(|_| DatasetError::InvalidScale(marker.scale))?;
    tx.execute(
        "INSERT INTO pgstorm.pgstorm_meta (pgstorm_version, scale, seed, created_at, data_start, \
                                           data_end, partners, orders, lines) \
         VALUES ($1, $2, $3::text::numeric, clock_timestamp(), $4, $5, $6, $7, $8)",
        &[
            &marker.pgstorm_version,
            &scale,
            &marker.seed.to_string(),
            &marker.data_start,
            &marker.data_end,
            &marker.partners,
            &marker.orders,
            &marker.lines,
        ],
    )
    .step("writing the dataset marker")?;
    read_marker(tx)?.ok_or_else(|| {
        DatasetError::Inconsistent("the dataset marker vanished right after it was written".into())
    })
}

/// A transaction holding the pgstorm advisory lock in which schema `pgstorm` exists and is
/// pgstorm's: created (with its empty marker table) when absent, refused when foreign. Other
/// scenarios create their own tables in it and commit; the dataset is not touched.
pub fn claim_schema(
    client: &mut postgres::Client,
) -> Result<postgres::Transaction<'_>, DatasetError> {
    let mut tx = client
        .transaction()
        .step("starting the transaction that claims schema pgstorm")?;
    lock(&mut tx)?;
    match ownership(&mut tx)? {
        Ownership::Foreign => return Err(DatasetError::ForeignSchema),
        Ownership::Ours => {}
        Ownership::Absent => tx
            .batch_execute(SCHEMA_DDL)
            .step("creating schema pgstorm and its marker table")?,
    }
    Ok(tx)
}

/// Drops schema `pgstorm` with everything in it, if it is ours; `false` when there was none.
pub fn clean(client: &mut postgres::Client) -> Result<bool, DatasetError> {
    let mut tx = client
        .transaction()
        .step("starting the clean transaction")?;
    lock(&mut tx)?;
    match ownership(&mut tx)? {
        Ownership::Absent => return Ok(false),
        Ownership::Foreign => return Err(DatasetError::ForeignSchema),
        Ownership::Ours => {}
    }
    tx.batch_execute("DROP SCHEMA pgstorm CASCADE")
        .step("dropping schema pgstorm")?;
    tx.commit().step("committing the drop of schema pgstorm")?;
    Ok(true)
}

/// Exact row counts `(res_partner, pos_order, pos_order_line)`.
pub fn table_counts(client: &mut postgres::Client) -> Result<(i64, i64, i64), DatasetError> {
    match ownership(client)? {
        Ownership::Absent => return Err(DatasetError::NotSeeded),
        Ownership::Foreign => return Err(DatasetError::ForeignSchema),
        Ownership::Ours => {}
    }
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM pgstorm.res_partner), \
                    (SELECT count(*) FROM pgstorm.pos_order), \
                    (SELECT count(*) FROM pgstorm.pos_order_line)",
            &[],
        )
        .step("counting the dataset's rows")?;
    Ok((row.get(0), row.get(1), row.get(2)))
}
