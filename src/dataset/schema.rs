//! The dataset's DDL, the ownership check and the marker table.
//!
//! Invariants:
//! - Ownership is decided in one place, [`ownership`]: schema `pgstorm` absent, ours (it holds
//!   `pgstorm.pgstorm_meta`), or foreign. Every write path takes the pgstorm advisory lock first,
//!   then checks ownership inside the same transaction, so two pgstorm processes cannot interleave
//!   a seed and a clean, and a foreign schema is never written to.
//! - Tables are created bare (no primary key, foreign key or index) so COPY appends without index
//!   maintenance; [`finish_tables`] adds them afterwards, with the exact index names the workloads
//!   and the advisor refer to.

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

/// Creates the schema and marker table if needed, drops the previous dataset tables (only those)
/// and creates them again, bare. The caller holds the lock and has checked ownership.
pub(crate) fn create_tables(tx: &mut postgres::Transaction<'_>) -> Result<(), DatasetError> {
    tx.batch_execute(SCHEMA_DDL)
        .step("creating schema pgstorm and its marker table")?;
    tx.batch_execute("DELETE FROM pgstorm.pgstorm_meta")
        .step("emptying the dataset marker")?;
    tx.batch_execute(&format!(
        "DROP TABLE IF EXISTS {} CASCADE",
        DATASET_TABLES.join(", ")
    ))
    .step("dropping the previous dataset tables")?;
    tx.batch_execute(
        "CREATE TABLE pgstorm.res_partner (
             id bigint GENERATED BY DEFAULT AS IDENTITY,
             name text,
             email text,
             city text,
             create_date timestamptz
         );
         CREATE TABLE pgstorm.pos_order (
             id bigint GENERATED BY DEFAULT AS IDENTITY,
             partner_id bigint,
             create_date timestamptz NOT NULL,
             amount_total numeric(12, 2) NOT NULL,
             state text
         );
         CREATE TABLE pgstorm.pos_order_line (
             id bigint GENERATED BY DEFAULT AS IDENTITY,
             order_id bigint,
             product_id integer,
             qty numeric(10, 2),
             price_unit numeric(12, 2),
             price_subtotal numeric(12, 2)
         );",
    )
    .step("creating the dataset tables")?;
    Ok(())
}

/// Adds keys and indexes after the load and moves the id sequences past the loaded ids, so rows
/// inserted by workloads get fresh ids.
pub(crate) fn finish_tables(
    tx: &mut postgres::Transaction<'_>,
    say: &mut dyn FnMut(&'static str),
) -> Result<(), DatasetError> {
    let steps: [(&'static str, &str); 8] = [
        (
            "adding primary keys",
            "ALTER TABLE pgstorm.res_partner ADD PRIMARY KEY (id);
             ALTER TABLE pgstorm.pos_order ADD PRIMARY KEY (id);
             ALTER TABLE pgstorm.pos_order_line ADD PRIMARY KEY (id);",
        ),
        (
            "creating index pos_order_create_date_idx",
            "CREATE INDEX pos_order_create_date_idx ON pgstorm.pos_order (create_date)",
        ),
        (
            "creating index pos_order_partner_id_idx",
            "CREATE INDEX pos_order_partner_id_idx ON pgstorm.pos_order (partner_id)",
        ),
        (
            "creating index pos_order_amount_total_idx",
            "CREATE INDEX pos_order_amount_total_idx ON pgstorm.pos_order (amount_total)",
        ),
        (
            "creating index pos_order_line_order_id_idx",
            "CREATE INDEX pos_order_line_order_id_idx ON pgstorm.pos_order_line (order_id)",
        ),
        (
            "adding foreign key pos_order.partner_id",
            "ALTER TABLE pgstorm.pos_order ADD CONSTRAINT pos_order_partner_id_fkey \
             FOREIGN KEY (partner_id) REFERENCES pgstorm.res_partner (id)",
        ),
        (
            "adding foreign key pos_order_line.order_id",
            "ALTER TABLE pgstorm.pos_order_line ADD CONSTRAINT pos_order_line_order_id_fkey \
             FOREIGN KEY (order_id) REFERENCES pgstorm.pos_order (id)",
        ),
        (
            "moving the id sequences past the loaded ids",
            "SELECT setval(pg_get_serial_sequence('pgstorm.res_partner', 'id'), \
                           (SELECT coalesce(max(id), 0) + 1 FROM pgstorm.res_partner), false);
             SELECT setval(pg_get_serial_sequence('pgstorm.pos_order', 'id'), \
                           (SELECT coalesce(max(id), 0) + 1 FROM pgstorm.pos_order), false);
             SELECT setval(pg_get_serial_sequence('pgstorm.pos_order_line', 'id'), \
                           (SELECT coalesce(max(id), 0) + 1 FROM pgstorm.pos_order_line), false);",
        ),
    ];
    for (step, sql) in steps {
        say(step);
        tx.batch_execute(sql).step(step)?;
    }
    Ok(())
}

/// Writes the marker row (the table was emptied by [`create_tables`]) and returns it as stored.
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
