//! The isolation checks' tables in schema `pgstorm`: one per check, all of one shape
//! `(id integer PRIMARY KEY, grp integer, v bigint)`, reset before every phase.
//!
//! Invariant: tables are only created or dropped inside [`crate::dataset::claim_schema`]'s
//! transaction, so a foreign `pgstorm` schema is refused and never written to.

use postgres::Client;

use super::verify::Shape;
use super::Check;

/// A database error while pgstorm works on its own tables: the target refused us (exit 3).
fn db(step: &str, e: &postgres::Error) -> anyhow::Error {
    crate::error::target(format!("{step}: {}", crate::target::one_line(e)))
}

/// Qualified table name of a check.
pub fn table(check: Check) -> &'static str {
    match check {
        Check::Bank => "pgstorm.isolation_bank",
        Check::LostUpdate => "pgstorm.isolation_lost_update",
        Check::WriteSkew => "pgstorm.isolation_write_skew",
        Check::ReadSkew => "pgstorm.isolation_read_skew",
        Check::Deadlock => "pgstorm.isolation_deadlock",
    }
}

/// Drops and recreates the check's table with `shape`, committed before returning.
pub fn reset(admin: &mut Client, check: Check, shape: Shape) -> anyhow::Result<()> {
    let t = table(check);
    let mut tx = crate::dataset::claim_schema(admin)?;
    tx.batch_execute(&format!(
        "DROP TABLE IF EXISTS {t};
         CREATE TABLE {t} (id integer PRIMARY KEY, grp integer NOT NULL, v bigint NOT NULL);
         COMMENT ON TABLE {t} IS 'pgstorm isolation check {}: reset by every run';
         INSERT INTO {t} SELECT i, i / {}, {} FROM generate_series(0, {}) AS i;
         ANALYZE {t};",
        check.name(),
        shape.per_group.max(1),
        shape.initial,
        shape.rows as i64 - 1
    ))
    .map_err(|e| db(&format!("creating {t} for the {} check", check.name()), &e))?;
    tx.commit()
        .map_err(|e| db(&format!("committing {t}"), &e))?;
    Ok(())
}

/// Every row's value, by id.
pub fn final_values(admin: &mut Client, check: Check) -> anyhow::Result<Vec<i64>> {
    let t = table(check);
    let rows = admin
        .query(&format!("SELECT v FROM {t} ORDER BY id"), &[])
        .map_err(|e| db(&format!("reading {t}"), &e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Drops every isolation table (the schema and the dataset stay).
pub fn drop_all(admin: &mut Client) -> anyhow::Result<()> {
    let mut tx = crate::dataset::claim_schema(admin)?;
    for c in Check::ALL {
        tx.batch_execute(&format!("DROP TABLE IF EXISTS {}", table(c)))
            .map_err(|e| db(&format!("dropping {}", table(c)), &e))?;
    }
    tx.commit()
        .map_err(|e| db("dropping the isolation tables", &e))?;
    Ok(())
}

/// pg_stat_database.deadlocks of the current database, read fresh.
pub fn server_deadlocks(admin: &mut Client) -> Result<i64, postgres::Error> {
    admin.batch_execute("SELECT pg_stat_clear_snapshot()")?;
    Ok(admin
        .query_one(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )?
        .get(0))
}

/// Waits (bounded) until no backend named `application_name` is left, so their statistics
/// (deadlock counts) have been flushed to the shared counters.
pub fn wait_gone(admin: &mut Client, application_name: &str) -> Result<(), postgres::Error> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let n: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 \
                 AND datname = current_database() AND pid <> pg_backend_pid()",
                &[&application_name],
            )?
            .get(0);
        if n == 0 || std::time::Instant::now() >= deadline {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
