//! The load's connections: the project's own wire connection ([`WireConn`]) opened and prepared
//! for a workload, and the pool driver's r2d2 manager of them, so every driver runs scripts with
//! the resumable executor they share, pipeline mode included.
//!
//! Each connection is opened through the target's connector (TLS as configured), gets the
//! session SQL and, with protocol `prepared`, every script statement prepared under the same
//! names on every connection ([`statement_names`]). There are two ways to open one, by who waits
//! on it: [`connect_wire`] for a thread that owns the connection and blocks on it (the pool
//! driver, the connection scenario's pool, its storm connections and its direct fallback), which
//! puts a plain socket in blocking mode so that the wait for a reply is the read itself, one
//! system call, no poll (TLS stays polling: see [`WireConn::block_on_reads`]); and
//! [`connect_polled`] for the `-j` driver, whose threads poll many nonblocking connections. No
//! caller sets the mode itself. `counted` counts opens and failures in the run's
//! [`PoolCounters`]. A connection the executor could not leave idle is marked not reusable and
//! r2d2 drops (and replaces) it at checkin.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use r2d2::ManageConnection;

use super::pool::{session_sql, PoolCounters};
use super::stats::{self, ErrorClass};
use crate::target::Target;
use crate::wire::{WireConn, WireError};
use crate::workload::{Protocol, Workload};

/// A pooled wire connection and whether it can serve another transaction.
#[derive(Debug)]
pub struct PooledWire {
    /// The connection.
    pub conn: WireConn,
    /// False once it was left in a state the next transaction must not see (lost, in a block).
    pub reusable: bool,
}

/// Names of the prepared statements, `[type][statement]`.
pub fn statement_names(workload: &Workload) -> Vec<Vec<String>> {
    (0..workload.types.len())
        .map(|k| {
            let n = workload.types[k].script().statements_sql().len();
            (0..n).map(|i| format!("pgstorm_{k}_{i}")).collect()
        })
        .collect()
}

/// Opens one connection to `target` for `workload` and prepares its statements under `names`
/// (protocol `prepared`), for a thread that polls it among others (the `-j` driver): the socket
/// stays nonblocking. Counts nothing (see `counted`).
pub fn connect_polled(
    target: &Target,
    session_sql: &str,
    workload: &Workload,
    names: &[Vec<String>],
) -> Result<WireConn, WireError> {
    let mut c = WireConn::connect(&target.config, &target.connector, session_sql)?;
    if workload.protocol == Protocol::Prepared {
        for (kind, names) in names.iter().enumerate() {
            let script = workload.types[kind].script();
            for (name, sql) in names.iter().zip(script.statements_sql()) {
                c.prepare_blocking(name, sql)?;
            }
        }
    }
    Ok(c)
}

/// [`connect_polled`] for a thread that owns the connection and only blocks on it: a plain
/// socket is put in blocking mode, so the wait for a reply is the read itself (a TLS one keeps
/// polling). Every blocking user opens its connections here.
pub fn connect_wire(
    target: &Target,
    session_sql: &str,
    workload: &Workload,
    names: &[Vec<String>],
) -> Result<WireConn, WireError> {
    let mut c = connect_polled(target, session_sql, workload, names)?;
    c.block_on_reads()?;
    Ok(c)
}

/// The error class of a failed connect or query on a wire connection (no SQLSTATE: the
/// connection itself failed).
pub(crate) fn class_of(e: &WireError) -> ErrorClass {
    e.sqlstate()
        .map_or(ErrorClass::Connection, ErrorClass::of_sqlstate)
}

/// Checks that an idle connection still answers (an empty query); marks it not reusable if not.
pub(crate) fn ping(conn: &mut PooledWire) -> Result<(), WireError> {
    conn.conn.queue_query_with(|w| w.push_bytes(b""));
    let r = conn.conn.exchange_blocking(|_| {}).map(drop);
    if r.is_err() {
        conn.reusable = false;
    }
    r
}

/// Runs `connect` (timing it) and counts the connection it opens, or its failure, in
/// `counters`.
pub(crate) fn counted(
    counters: &PoolCounters,
    connect: impl FnOnce() -> Result<WireConn, WireError>,
) -> Result<WireConn, WireError> {
    let t0 = Instant::now();
    let r = connect();
    match &r {
        Ok(_) => {
            stats::record(&mut counters.connect.lock(), t0.elapsed());
            counters.opened.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            *counters.last_error.lock() = Some((class_of(e), e.to_string()));
        }
    }
    r
}

/// r2d2 manager of [`PooledWire`] connections (cloned into the pool of every client of the pool
/// driver: [`super::pool::Pool`]).
#[derive(Clone)]
pub struct WireManager {
    target: Target,
    workload: Arc<Workload>,
    session_sql: String,
    names: Vec<Vec<String>>,
    counters: Arc<PoolCounters>,
}

impl WireManager {
    /// A manager opening connections to `target` for `workload`, counting them in `counters`.
    pub(crate) fn new(
        target: &Target,
        workload: Arc<Workload>,
        statement_timeout: Duration,
        counters: Arc<PoolCounters>,
    ) -> WireManager {
        WireManager {
            target: target.clone(),
            names: statement_names(&workload),
            workload,
            session_sql: session_sql(statement_timeout),
            counters,
        }
    }

    /// The prepared statement names of query type `kind`.
    pub(crate) fn names(&self, kind: usize) -> &[String] {
        &self.names[kind]
    }
}

impl ManageConnection for WireManager {
    type Connection = PooledWire;
    type Error = WireError;

    fn connect(&self) -> Result<PooledWire, WireError> {
        let conn = counted(&self.counters, || {
            connect_wire(&self.target, &self.session_sql, &self.workload, &self.names)
        })?;
        Ok(PooledWire {
            conn,
            reusable: true,
        })
    }

    fn is_valid(&self, conn: &mut PooledWire) -> Result<(), WireError> {
        ping(conn)
    }

    fn has_broken(&self, conn: &mut PooledWire) -> bool {
        !conn.reusable
    }
}
