//! `pgstorm seed --pgbench -s N`: pgbench's tables, initialized like `pgbench -i` (steps
//! `dtgvp`: drop, create, client-side generate with COPY, vacuum, primary keys).
//!
//! The tables are created unqualified, where pgbench creates them (the first schema of the
//! search_path, normally `public`): the one deliberate exception to "pgstorm only touches schema
//! pgstorm". pgbench's built-in scripts and users' existing scripts name `pgbench_accounts` etc.
//! without a schema, and the same tables must serve `pgbench` itself when the two tools are
//! compared; a copy inside schema `pgstorm` would need a search_path that pgbench does not set.
//! Like `pgbench -i`, this drops and recreates the four pgbench_* tables and nothing else.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use postgres::Client;

/// pgbench's sizes per unit of scale.
const BRANCHES: i64 = 1;
const TELLERS: i64 = 10;
const ACCOUNTS: i64 = 100_000;
/// Above this scale pgbench uses bigint account ids.
const SCALE_BIGINT: u32 = 20_000;

/// Rows created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgbenchRows {
    /// pgbench_branches rows.
    pub branches: i64,
    /// pgbench_tellers rows.
    pub tellers: i64,
    /// pgbench_accounts rows.
    pub accounts: i64,
}

/// Drops, creates and fills pgbench's tables at `scale`.
pub fn seed(client: &mut Client, scale: u32, progress: bool) -> Result<PgbenchRows> {
    if scale == 0 {
        return Err(crate::error::usage(
            "--pgbench -s 0: the scale must be at least 1",
        ));
    }
    let aid = if scale > SCALE_BIGINT {
        "bigint"
    } else {
        "int"
    };
    let s = scale as i64;
    let rows = PgbenchRows {
        branches: BRANCHES * s,
        tellers: TELLERS * s,
        accounts: ACCOUNTS * s,
    };
    let mut tx = client
        .transaction()
        .context("cannot start the pgbench seed")?;
    tx.batch_execute(&format!(
        "DROP TABLE IF EXISTS pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers;
         CREATE TABLE pgbench_history (tid int, bid int, aid {aid}, delta int, mtime timestamp, filler char(22));
         CREATE TABLE pgbench_tellers (tid int not null, bid int, tbalance int, filler char(84)) WITH (fillfactor=100);
         CREATE TABLE pgbench_accounts (aid {aid} not null, bid int, abalance int, filler char(84)) WITH (fillfactor=100);
         CREATE TABLE pgbench_branches (bid int not null, bbalance int, filler char(88)) WITH (fillfactor=100);
         INSERT INTO pgbench_branches (bid, bbalance) SELECT i, 0 FROM generate_series(1, {b}) i;
         INSERT INTO pgbench_tellers (tid, bid, tbalance) SELECT i, (i - 1) / {TELLERS} + 1, 0 FROM generate_series(1, {t}) i;",
        b = rows.branches,
        t = rows.tellers,
    ))
    .context("cannot create pgbench's tables")?;
    // Client-side generation, as pgbench's default `g` step: one COPY of all accounts, frozen
    // because the table was created in this transaction.
    let mut w = tx
        .copy_in("COPY pgbench_accounts (aid, bid, abalance, filler) FROM STDIN WITH (FREEZE)")
        .context("cannot start the COPY of pgbench_accounts")?;
    let mut buf = Vec::with_capacity(1 << 20);
    let mut last_report = Instant::now();
    for aid in 1..=rows.accounts {
        let _ = writeln!(buf, "{aid}\t{}\t0\t", (aid - 1) / ACCOUNTS + 1);
        if buf.len() >= 1 << 20 {
            w.write_all(&buf)
                .context("COPY of pgbench_accounts failed")?;
            buf.clear();
            if progress && last_report.elapsed() >= Duration::from_secs(1) {
                eprintln!(
                    "pgstorm: {aid} of {} pgbench_accounts rows ({:.0}%)",
                    rows.accounts,
                    aid as f64 * 100.0 / rows.accounts as f64
                );
                last_report = Instant::now();
            }
        }
    }
    w.write_all(&buf)
        .context("COPY of pgbench_accounts failed")?;
    w.finish().context("COPY of pgbench_accounts failed")?;
    tx.commit().context("cannot commit pgbench's tables")?;
    if progress {
        eprintln!("pgstorm: vacuum analyze and primary keys");
    }
    // One statement per call: VACUUM refuses the implicit transaction of a multi-statement query.
    for sql in [
        "VACUUM ANALYZE pgbench_branches, pgbench_tellers, pgbench_accounts, pgbench_history",
        "ALTER TABLE pgbench_branches ADD PRIMARY KEY (bid)",
        "ALTER TABLE pgbench_tellers ADD PRIMARY KEY (tid)",
        "ALTER TABLE pgbench_accounts ADD PRIMARY KEY (aid)",
    ] {
        client
            .batch_execute(sql)
            .with_context(|| format!("cannot finish pgbench's tables ({sql})"))?;
    }
    Ok(rows)
}
