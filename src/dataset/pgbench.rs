//! `pgstorm seed --pgbench -s N` (or `seed -i`): pgbench's tables, initialized like `pgbench -i`
//! with the same options: the steps of `-I` (default `dtgvp`: drop, create, client-side
//! generate with COPY, vacuum, primary keys; also `G` server-side generation and `f` foreign
//! keys), `-F` fillfactor, `--partitions`/`--partition-method` of pgbench_accounts,
//! `--foreign-keys`, `--unlogged-tables`, `-n` (no vacuum).
//!
//! The tables are created unqualified, where pgbench creates them (the first schema of the
//! search_path, normally `public`): the one deliberate exception to "pgstorm only touches schema
//! pgstorm". pgbench's built-in scripts and users' existing scripts name `pgbench_accounts` etc.
//! without a schema, and the same tables must serve `pgbench` itself when the two tools are
//! compared; a copy inside schema `pgstorm` would need a search_path that pgbench does not set.
//! Like `pgbench -i`, this drops and recreates the four pgbench_* tables (and the partitions of
//! pgbench_accounts) and nothing else.
//!
//! Invariant: [`InitOptions`] is validated before any server is contacted ([`InitOptions::new`]);
//! the DDL it produces is pgbench 15's, so a table initialized here and one initialized by
//! `pgbench -i` with the same options have the same shape (storage options, partitions, keys).

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
/// pgbench's default `-I`.
pub const DEFAULT_STEPS: &str = "dtgvp";
/// Every step `-I` knows, in pgbench's words.
const STEP_HELP: &str = "d (drop), t (create tables), g (generate data client-side), \
                         G (generate data server-side), v (vacuum), p (primary keys), \
                         f (foreign keys)";

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

/// How pgbench_accounts is partitioned (`--partition-method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionMethod {
    /// `range`: pgbench's default, contiguous aid ranges.
    Range,
    /// `hash`: by hash of aid.
    Hash,
}

/// The options of `pgbench -i`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitOptions {
    /// `-s`.
    pub scale: u32,
    /// `-I` after `--foreign-keys` and `-n` were applied: the steps in order.
    pub steps: String,
    /// `-F` (100: pgbench's default).
    pub fillfactor: u32,
    /// `--partitions` (0: not partitioned) and `--partition-method`.
    pub partitions: Option<(u32, PartitionMethod)>,
    /// `--unlogged-tables`.
    pub unlogged: bool,
}

impl InitOptions {
    /// pgbench's defaults at `scale`.
    pub fn defaults(scale: u32) -> InitOptions {
        InitOptions {
            scale,
            steps: DEFAULT_STEPS.to_string(),
            fillfactor: 100,
            partitions: None,
            unlogged: false,
        }
    }

    /// Validates pgbench's init options as pgbench 15 does: `steps` (`-I`, default
    /// [`DEFAULT_STEPS`]) may hold only known steps, each run in turn (both `g` and `G` too:
    /// each generation step truncates first);
    /// `--partition-method` needs `--partitions`; `foreign_keys` adds `f` and `no_vacuum` drops
    /// `v`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        scale: u32,
        steps: Option<&str>,
        fillfactor: u32,
        partitions: u32,
        partition_method: Option<&str>,
        foreign_keys: bool,
        no_vacuum: bool,
        unlogged: bool,
    ) -> Result<InitOptions> {
        let mut steps: String = steps
            .unwrap_or(DEFAULT_STEPS)
            .chars()
            .filter(|c| *c != ' ')
            .collect();
        if let Some(bad) = steps.chars().find(|c| !"dtgGvpf".contains(*c)) {
            return Err(crate::error::usage(format!(
                "-I {steps}: unknown initialization step '{bad}'; the steps are {STEP_HELP}"
            )));
        }
        if foreign_keys && !steps.contains('f') {
            steps.push('f');
        }
        if no_vacuum {
            steps.retain(|c| c != 'v');
        }
        let method = match partition_method {
            None | Some("range") => PartitionMethod::Range,
            Some("hash") => PartitionMethod::Hash,
            Some(other) => {
                return Err(crate::error::usage(format!(
                    "--partition-method {other}: use range or hash"
                )))
            }
        };
        if partition_method.is_some() && partitions == 0 {
            return Err(crate::error::usage(
                "--partition-method needs --partitions N (N at least 1)",
            ));
        }
        Ok(InitOptions {
            scale,
            steps,
            fillfactor,
            partitions: (partitions > 0).then_some((partitions, method)),
            unlogged,
        })
    }

    fn rows(&self) -> PgbenchRows {
        let s = i64::from(self.scale);
        PgbenchRows {
            branches: BRANCHES * s,
            tellers: TELLERS * s,
            accounts: ACCOUNTS * s,
        }
    }

    /// `CREATE [UNLOGGED] TABLE`.
    fn create(&self) -> &'static str {
        if self.unlogged {
            "CREATE UNLOGGED TABLE"
        } else {
            "CREATE TABLE"
        }
    }

    /// The statements of step `t`, as pgbench 15 writes them: fillfactor on every table but
    /// history (on the partitions of pgbench_accounts, not on the partitioned table).
    fn create_tables(&self) -> Vec<String> {
        let aid = if self.scale > SCALE_BIGINT {
            "bigint"
        } else {
            "int"
        };
        let ff = format!(" WITH (fillfactor={})", self.fillfactor);
        let create = self.create();
        let accounts_tail = match self.partitions {
            Some((_, PartitionMethod::Range)) => " PARTITION BY RANGE (aid)".to_string(),
            Some((_, PartitionMethod::Hash)) => " PARTITION BY HASH (aid)".to_string(),
            None => ff.clone(),
        };
        let mut sql = vec![
            format!("{create} pgbench_history (tid int, bid int, aid {aid}, delta int, mtime timestamp, filler char(22))"),
            format!("{create} pgbench_tellers (tid int not null, bid int, tbalance int, filler char(84)){ff}"),
            format!("{create} pgbench_accounts (aid {aid} not null, bid int, abalance int, filler char(84)){accounts_tail}"),
            format!("{create} pgbench_branches (bid int not null, bbalance int, filler char(88)){ff}"),
        ];
        if let Some((n, method)) = self.partitions {
            let size = (self.rows().accounts + i64::from(n) - 1) / i64::from(n);
            for p in 1..=n {
                let bounds = match method {
                    PartitionMethod::Range => {
                        let lo = if p == 1 {
                            "MINVALUE".to_string()
                        } else {
                            (i64::from(p - 1) * size + 1).to_string()
                        };
                        let hi = if p == n {
                            "MAXVALUE".to_string()
                        } else {
                            (i64::from(p) * size + 1).to_string()
                        };
                        format!("FOR VALUES FROM ({lo}) TO ({hi})")
                    }
                    PartitionMethod::Hash => {
                        format!("FOR VALUES WITH (MODULUS {n}, REMAINDER {})", p - 1)
                    }
                };
                sql.push(format!(
                    "{create} pgbench_accounts_{p} PARTITION OF pgbench_accounts {bounds}{ff}"
                ));
            }
        }
        sql
    }
}

/// Drops, creates and fills pgbench's tables at `scale` with pgbench's default steps.
pub fn seed(client: &mut Client, scale: u32, progress: bool) -> Result<PgbenchRows> {
    init(client, &InitOptions::defaults(scale), progress)
}

/// Runs the steps of `opts` in order, as `pgbench -i` does.
pub fn init(client: &mut Client, opts: &InitOptions, progress: bool) -> Result<PgbenchRows> {
    if opts.scale == 0 {
        return Err(crate::error::usage(
            "--pgbench -s 0: the scale must be at least 1",
        ));
    }
    let rows = opts.rows();
    for step in opts.steps.chars() {
        match step {
            'd' => client
                .batch_execute(
                    "DROP TABLE IF EXISTS pgbench_accounts, pgbench_branches, pgbench_history, \
                     pgbench_tellers",
                )
                .context("cannot drop pgbench's tables")?,
            't' => {
                for sql in opts.create_tables() {
                    client
                        .batch_execute(&sql)
                        .with_context(|| format!("cannot create pgbench's tables ({sql})"))?;
                }
            }
            'g' => generate_client_side(client, opts, rows, progress)?,
            'G' => generate_server_side(client, rows)?,
            'v' => {
                if progress {
                    eprintln!("pgstorm: vacuum analyze");
                }
                // One statement per call: VACUUM refuses the implicit transaction of a
                // multi-statement query.
                for t in [
                    "pgbench_branches",
                    "pgbench_tellers",
                    "pgbench_accounts",
                    "pgbench_history",
                ] {
                    client
                        .batch_execute(&format!("VACUUM ANALYZE {t}"))
                        .with_context(|| format!("cannot vacuum {t}"))?;
                }
            }
            'p' => client
                .batch_execute(
                    "ALTER TABLE pgbench_branches ADD PRIMARY KEY (bid);
                     ALTER TABLE pgbench_tellers ADD PRIMARY KEY (tid);
                     ALTER TABLE pgbench_accounts ADD PRIMARY KEY (aid);",
                )
                .context("cannot add pgbench's primary keys (step p; did step t run?)")?,
            'f' => client
                .batch_execute(
                    "ALTER TABLE pgbench_tellers ADD CONSTRAINT pgbench_tellers_bid_fkey FOREIGN KEY (bid) REFERENCES pgbench_branches;
                     ALTER TABLE pgbench_accounts ADD CONSTRAINT pgbench_accounts_bid_fkey FOREIGN KEY (bid) REFERENCES pgbench_branches;
                     ALTER TABLE pgbench_history ADD CONSTRAINT pgbench_history_bid_fkey FOREIGN KEY (bid) REFERENCES pgbench_branches;
                     ALTER TABLE pgbench_history ADD CONSTRAINT pgbench_history_tid_fkey FOREIGN KEY (tid) REFERENCES pgbench_tellers;
                     ALTER TABLE pgbench_history ADD CONSTRAINT pgbench_history_aid_fkey FOREIGN KEY (aid) REFERENCES pgbench_accounts;",
                )
                .context(
                    "cannot add pgbench's foreign keys (step f needs the primary keys of step p)",
                )?,
            other => {
                return Err(crate::error::usage(format!(
                    "-I: unknown initialization step '{other}'; the steps are {STEP_HELP}"
                )))
            }
        }
    }
    Ok(rows)
}

/// The TRUNCATE both generation steps start with, so they also refill existing tables.
const TRUNCATE: &str =
    "TRUNCATE TABLE pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers";

/// Step `g`: one COPY of all accounts in the transaction that truncated the tables, so it can be
/// frozen (pgbench does not freeze a partitioned pgbench_accounts: COPY FREEZE refuses it).
fn generate_client_side(
    client: &mut Client,
    opts: &InitOptions,
    rows: PgbenchRows,
    progress: bool,
) -> Result<()> {
    let mut tx = client
        .transaction()
        .context("cannot start the pgbench seed")?;
    tx.batch_execute(&format!(
        "{TRUNCATE};
         INSERT INTO pgbench_branches (bid, bbalance) SELECT i, 0 FROM generate_series(1, {b}) i;
         INSERT INTO pgbench_tellers (tid, bid, tbalance) SELECT i, (i - 1) / {TELLERS} + 1, 0 FROM generate_series(1, {t}) i;",
        b = rows.branches,
        t = rows.tellers,
    ))
    .context("cannot fill pgbench_branches and pgbench_tellers (step g; did step t run?)")?;
    let freeze = if opts.partitions.is_none() {
        " WITH (FREEZE)"
    } else {
        ""
    };
    let mut w = tx
        .copy_in(&format!(
            "COPY pgbench_accounts (aid, bid, abalance, filler) FROM STDIN{freeze}"
        ))
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
    Ok(())
}

/// Step `G`: the server generates the rows itself (`INSERT … SELECT generate_series`), as
/// pgbench's server-side generation, with nothing sent over the wire.
fn generate_server_side(client: &mut Client, rows: PgbenchRows) -> Result<()> {
    let mut tx = client
        .transaction()
        .context("cannot start the pgbench seed")?;
    tx.batch_execute(&format!(
        "{TRUNCATE};
         INSERT INTO pgbench_branches (bid, bbalance) SELECT bid, 0 FROM generate_series(1, {b}) AS bid;
         INSERT INTO pgbench_tellers (tid, bid, tbalance) SELECT tid, (tid - 1) / {TELLERS} + 1, 0 FROM generate_series(1, {t}) AS tid;
         INSERT INTO pgbench_accounts (aid, bid, abalance, filler) SELECT aid, (aid - 1) / {ACCOUNTS} + 1, 0, '' FROM generate_series(1, {a}) AS aid;",
        b = rows.branches,
        t = rows.tellers,
        a = rows.accounts,
    ))
    .context("cannot generate pgbench's rows on the server (step G; did step t run?)")?;
    tx.commit().context("cannot commit pgbench's tables")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(steps: Option<&str>, partitions: u32, method: Option<&str>) -> Result<InitOptions> {
        InitOptions::new(1, steps, 100, partitions, method, false, false, false)
    }

    #[test]
    fn steps_are_checked_like_pgbench() {
        assert_eq!(opts(None, 0, None).unwrap().steps, "dtgvp");
        assert_eq!(opts(Some("dt G"), 0, None).unwrap().steps, "dtG");
        let e = opts(Some("dtx"), 0, None).unwrap_err().to_string();
        assert!(e.contains("'x'") && e.contains("-I dtx"), "{e}");
        assert_eq!(opts(Some("dtgG"), 0, None).unwrap().steps, "dtgG");
        let fk = InitOptions::new(1, None, 100, 0, None, true, true, false).unwrap();
        assert_eq!(fk.steps, "dtgpf");
    }

    #[test]
    fn partitions_follow_pgbench() {
        let e = opts(None, 0, Some("hash")).unwrap_err().to_string();
        assert!(e.contains("--partitions"), "{e}");
        let e = opts(None, 2, Some("list")).unwrap_err().to_string();
        assert!(e.contains("--partition-method list"), "{e}");
        let range = opts(None, 3, None).unwrap().create_tables();
        assert_eq!(range.len(), 7);
        assert!(
            range[2].ends_with("PARTITION BY RANGE (aid)"),
            "{}",
            range[2]
        );
        // 100,000 accounts in 3 parts of 33,334: open-ended first and last bounds.
        assert!(
            range[4].contains("FROM (MINVALUE) TO (33335)"),
            "{}",
            range[4]
        );
        assert!(range[5].contains("FROM (33335) TO (66669)"), "{}", range[5]);
        assert!(
            range[6].contains("FROM (66669) TO (MAXVALUE)"),
            "{}",
            range[6]
        );
        let hash = opts(None, 2, Some("hash")).unwrap().create_tables();
        assert!(hash[5].contains("(MODULUS 2, REMAINDER 1)"), "{}", hash[5]);
    }

    #[test]
    fn fillfactor_and_unlogged_reach_the_ddl() {
        let o = InitOptions::new(1, None, 80, 2, None, false, false, true).unwrap();
        let sql = o.create_tables();
        assert!(sql.iter().all(|s| s.starts_with("CREATE UNLOGGED TABLE")));
        assert!(sql[1].ends_with("WITH (fillfactor=80)"), "{}", sql[1]);
        assert!(
            !sql[0].contains("fillfactor"),
            "history has none: {}",
            sql[0]
        );
        assert!(sql[4].ends_with("WITH (fillfactor=80)"), "{}", sql[4]);
        let parts = opts(None, 2, Some("hash")).unwrap().create_tables();
        assert!(parts[4].ends_with("WITH (fillfactor=100)"), "{}", parts[4]);
        let plain = InitOptions::defaults(1).create_tables();
        assert!(plain[2].ends_with("WITH (fillfactor=100)"), "{}", plain[2]);
    }
}
