//! Server sampler: pg_stat_database deltas (server-side TPS, cache hit ratio, rows, temp files,
//! deadlocks, conflicts), pg_stat_activity by state and wait event type, waiting and blocked
//! locks, checkpoints and WAL, on a dedicated connection (never one of the pool's).
//!
//! Invariants: each sample runs in one transaction, so the statistics snapshot is consistent and
//! fresh per sample, and the sampler adds exactly one transaction per sample to the database's
//! counters (subtracted from the reported TPS); the statements are prepared once at connect; the
//! checkpoint view is chosen by `server_version_num` (`pg_stat_checkpointer` from 17 on).

use std::collections::BTreeMap;

use postgres::{Client, Statement};

use super::model::{Phase, ServerSample, ServerTotals, TupleRates};

/// `server_version_num` from which checkpoint counters live in `pg_stat_checkpointer`.
const CHECKPOINTER_VIEW_SINCE: i32 = 170_000;

/// The checkpoint view and the SQL reading (timed + requested checkpoints) from it.
pub fn checkpoint_source(server_version_num: i32) -> (&'static str, &'static str) {
    if server_version_num >= CHECKPOINTER_VIEW_SINCE {
        (
            "pg_stat_checkpointer",
            "(SELECT num_timed + num_requested FROM pg_stat_checkpointer)",
        )
    } else {
        (
            "pg_stat_bgwriter",
            "(SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter)",
        )
    }
}

const DATABASE_SQL: &str = "SELECT xact_commit, xact_rollback, blks_read, blks_hit, \
     tup_returned, tup_fetched, tup_inserted, tup_updated, tup_deleted, \
     temp_files, temp_bytes, deadlocks, conflicts \
     FROM pg_stat_database WHERE datname = current_database()";

const ACTIVITY_SQL: &str = "SELECT coalesce(state, 'unknown'), coalesce(wait_event_type, 'none'), \
     count(*) FROM pg_stat_activity \
     WHERE datname = current_database() AND backend_type = 'client backend' \
     AND pid <> pg_backend_pid() GROUP BY 1, 2";

/// Cumulative counters of one sample.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Counters {
    xact_commit: i64,
    xact_rollback: i64,
    blks_read: i64,
    blks_hit: i64,
    tup: [i64; 5],
    temp_files: i64,
    temp_bytes: i64,
    deadlocks: i64,
    conflicts: i64,
    checkpoints: i64,
    wal: Option<i64>,
}

/// Takes server samples on its own connection.
pub struct ServerSampler {
    client: Client,
    database: Statement,
    activity: Statement,
    scalars: Statement,
    /// `server_version_num` of the server.
    pub server_version_num: i32,
    /// The checkpoint view in use.
    pub checkpoint_view: &'static str,
    first: Option<(f64, Counters)>,
    prev: Option<(f64, Counters)>,
    samples: i64,
}

impl ServerSampler {
    /// Connects to `target` (application_name `pgstorm-sampler`) and prepares the statements.
    pub fn connect(target: &crate::target::Target) -> Result<ServerSampler, postgres::Error> {
        let mut cfg = target.config.clone();
        cfg.application_name("pgstorm-sampler");
        let mut client = target.connect_with(&cfg)?;
        let version: i32 = client
            .query_one("SELECT current_setting('server_version_num')::int", &[])?
            .get(0);
        let (view, checkpoints) = checkpoint_source(version);
        let scalars_sql = format!(
            "SELECT (SELECT count(*) FROM pg_locks WHERE NOT granted), \
             (SELECT count(*) FROM pg_stat_activity WHERE cardinality(pg_blocking_pids(pid)) > 0), \
             {checkpoints}, \
             CASE WHEN pg_is_in_recovery() THEN NULL \
                  ELSE (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint END"
        );
        let database = client.prepare(DATABASE_SQL)?;
        let activity = client.prepare(ACTIVITY_SQL)?;
        let scalars = client.prepare(&scalars_sql)?;
        Ok(ServerSampler {
            client,
            database,
            activity,
            scalars,
            server_version_num: version,
            checkpoint_view: view,
            first: None,
            prev: None,
            samples: 0,
        })
    }

    /// Reads everything in one transaction; returns a sample of the span since the previous call,
    /// or `None` for the first call (it only sets the baseline).
    pub fn sample(&mut self, t_s: f64, tick: u64) -> Result<Option<ServerSample>, postgres::Error> {
        let mut tx = self.client.transaction()?;
        let db = tx.query_one(&self.database, &[])?;
        let activity = tx.query(&self.activity, &[])?;
        let sc = tx.query_one(&self.scalars, &[])?;
        tx.commit()?;
        self.samples += 1;
        let g = |i: usize| db.get::<_, Option<i64>>(i).unwrap_or(0);
        let now = Counters {
            xact_commit: g(0),
            xact_rollback: g(1),
            blks_read: g(2),
            blks_hit: g(3),
            tup: [g(4), g(5), g(6), g(7), g(8)],
            temp_files: g(9),
            temp_bytes: g(10),
            deadlocks: g(11),
            conflicts: g(12),
            checkpoints: sc.get::<_, Option<i64>>(2).unwrap_or(0),
            wal: sc.get(3),
        };
        let mut by_state = BTreeMap::new();
        let mut by_wait = BTreeMap::new();
        for r in &activity {
            let n: i64 = r.get(2);
            *by_state.entry(r.get::<_, String>(0)).or_insert(0) += n;
            *by_wait.entry(r.get::<_, String>(1)).or_insert(0) += n;
        }
        let prev = self.prev.replace((t_s, now));
        if self.first.is_none() {
            self.first = Some((t_s, now));
        }
        let Some((t0, p)) = prev else {
            return Ok(None);
        };
        let dt = (t_s - t0).max(1e-3);
        // Counters only grow; a drop means pg_stat_reset(), so count from zero instead.
        let d = |a: i64, b: i64| if b >= a { b - a } else { b };
        let per_s = |a: i64, b: i64| d(a, b) as f64 / dt;
        // The previous sample's own transaction landed in this interval.
        let commits = (d(p.xact_commit, now.xact_commit) - 1).max(0);
        let rollbacks = d(p.xact_rollback, now.xact_rollback);
        let reads = d(p.blks_read, now.blks_read);
        let hits = d(p.blks_hit, now.blks_hit);
        Ok(Some(ServerSample {
            t_s,
            tick,
            // Known once the load has ended (`Monitor::stop`).
            phase: Phase::Load,
            tps: (commits + rollbacks) as f64 / dt,
            rollbacks_s: rollbacks as f64 / dt,
            cache_hit_ratio: (reads + hits > 0).then(|| hits as f64 / (reads + hits) as f64),
            tup_s: TupleRates {
                returned: per_s(p.tup[0], now.tup[0]),
                fetched: per_s(p.tup[1], now.tup[1]),
                inserted: per_s(p.tup[2], now.tup[2]),
                updated: per_s(p.tup[3], now.tup[3]),
                deleted: per_s(p.tup[4], now.tup[4]),
            },
            temp_files: d(p.temp_files, now.temp_files),
            temp_bytes: d(p.temp_bytes, now.temp_bytes),
            deadlocks: d(p.deadlocks, now.deadlocks),
            conflicts: d(p.conflicts, now.conflicts),
            by_state,
            by_wait_event_type: by_wait,
            waiting_locks: sc.get(0),
            blocked_backends: sc.get(1),
            checkpoints: d(p.checkpoints, now.checkpoints),
            wal_bytes_s: match (p.wal, now.wal) {
                (Some(a), Some(b)) => Some(per_s(a, b)),
                _ => None,
            },
        }))
    }

    /// Counter deltas between the first and the latest sample.
    pub fn totals(&self) -> ServerTotals {
        let (Some((t0, a)), Some((t1, b))) = (self.first, self.prev) else {
            return ServerTotals::default();
        };
        // Every sample but the last committed before the last read.
        let own = (self.samples - 1).max(0);
        let d = |x: i64, y: i64| (y - x).max(0);
        let reads = d(a.blks_read, b.blks_read);
        let hits = d(a.blks_hit, b.blks_hit);
        ServerTotals {
            span_s: t1 - t0,
            xact_commit: (d(a.xact_commit, b.xact_commit) - own).max(0),
            xact_rollback: d(a.xact_rollback, b.xact_rollback),
            sampler_xacts: own,
            deadlocks: d(a.deadlocks, b.deadlocks),
            conflicts: d(a.conflicts, b.conflicts),
            temp_files: d(a.temp_files, b.temp_files),
            temp_bytes: d(a.temp_bytes, b.temp_bytes),
            checkpoints: d(a.checkpoints, b.checkpoints),
            wal_bytes: match (a.wal, b.wal) {
                (Some(x), Some(y)) => Some(d(x, y)),
                _ => None,
            },
            cache_hit_ratio: (reads + hits > 0).then(|| hits as f64 / (reads + hits) as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::checkpoint_source;

    #[test]
    fn checkpoint_view_follows_the_server_version() {
        assert_eq!(checkpoint_source(150_004).0, "pg_stat_bgwriter");
        assert_eq!(checkpoint_source(160_002).0, "pg_stat_bgwriter");
        assert_eq!(checkpoint_source(170_000).0, "pg_stat_checkpointer");
        assert!(checkpoint_source(180_001).1.contains("num_requested"));
    }
}
