//! The connection pool: r2d2 with settings chosen for a load tool, and a manager that keeps each
//! connection's prepared statements with it.
//!
//! r2d2's defaults suit a web app, not a benchmark (DESIGN.md, known traps): no test query on
//! checkout (an extra round trip per query), no idle timeout or max lifetime (they would recycle
//! connections mid-run), enough connector threads to open hundreds of connections quickly, and a
//! non-blocking `build_unchecked` followed by an explicit, bounded wait for the connections.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use parking_lot::Mutex;
use r2d2::ManageConnection;
use scheduled_thread_pool::ScheduledThreadPool;

use super::stats::{self, ErrorClass, Hist};
use crate::target::{one_line, Target};
use crate::workload::{Conn, Workload};

/// Counters the pool updates from its connector threads (never on a worker's hot path).
pub struct PoolCounters {
    /// Time to open a connection (TCP + startup + auth), µs.
    pub connect: Mutex<Hist>,
    /// Connections opened successfully.
    pub opened: AtomicU64,
    /// Connection attempts that failed.
    pub failed: AtomicU64,
    /// The last connect error, redacted and on one line.
    pub last_error: Mutex<Option<(ErrorClass, String)>>,
}

impl PoolCounters {
    /// Zeroed counters.
    pub(crate) fn new() -> PoolCounters {
        PoolCounters {
            connect: Mutex::new(stats::new_hist(3)),
            opened: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }
}

/// r2d2 manager producing [`Conn`]s with the workload's statements prepared, connecting through
/// the target's connector (TLS as configured).
pub struct ConnManager {
    target: Target,
    workload: Arc<Workload>,
    session_sql: String,
    counters: Arc<PoolCounters>,
}

impl ManageConnection for ConnManager {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        let t0 = Instant::now();
        let result = self
            .target
            .connect_with(&self.target.config)
            .and_then(|mut client| {
                let connected = t0.elapsed();
                client.batch_execute(&self.session_sql)?;
                let prepared = self.workload.prepare(&mut client)?;
                Ok((Conn { client, prepared }, connected))
            });
        match result {
            Ok((conn, connected)) => {
                stats::record(&mut self.counters.connect.lock(), connected);
                self.counters.opened.fetch_add(1, Ordering::Relaxed);
                Ok(conn)
            }
            Err(e) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                *self.counters.last_error.lock() = Some((ErrorClass::of(&e), one_line(&e)));
                Err(e)
            }
        }
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(drop)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.client.is_closed()
    }
}

/// Silences r2d2's default logging of connect errors: [`ConnManager`] counts them instead.
#[derive(Debug)]
struct QuietErrors;
impl r2d2::HandleError<postgres::Error> for QuietErrors {
    fn handle_error(&self, _error: postgres::Error) {}
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Connections kept open (= max size = min idle).
    pub size: u32,
    /// How long `get()` may wait for a free connection.
    pub checkout_timeout: Duration,
    /// `statement_timeout` set on every connection.
    pub statement_timeout: Duration,
    /// How long to wait for all connections at start-up.
    pub ready_timeout: Duration,
}

/// The settings every load connection gets, whichever driver opens it.
pub(crate) fn session_sql(statement_timeout: Duration) -> String {
    format!(
        "SET statement_timeout = {}; SET application_name = 'pgstorm'",
        statement_timeout.as_millis()
    )
}

/// The pool and its counters.
pub struct Pool {
    /// The r2d2 pool.
    pub pool: r2d2::Pool<ConnManager>,
    /// Connect counters.
    pub counters: Arc<PoolCounters>,
}

impl Pool {
    /// Builds the pool and waits until all `size` connections are open (or fails with the last
    /// connect error, classified as a target error).
    pub fn open(target: &Target, workload: Arc<Workload>, settings: &PoolSettings) -> Result<Pool> {
        let counters = Arc::new(PoolCounters::new());
        let manager = ConnManager {
            target: target.clone(),
            workload,
            session_sql: session_sql(settings.statement_timeout),
            counters: counters.clone(),
        };
        let connector_threads = (settings.size as usize).clamp(1, 32);
        let pool = r2d2::Pool::builder()
            .max_size(settings.size.max(1))
            .min_idle(Some(settings.size.max(1)))
            .test_on_check_out(false)
            .idle_timeout(None)
            .max_lifetime(None)
            .connection_timeout(settings.checkout_timeout)
            .thread_pool(Arc::new(ScheduledThreadPool::new(connector_threads)))
            .error_handler(Box::new(QuietErrors))
            .build_unchecked(manager);
        let deadline = Instant::now() + settings.ready_timeout;
        loop {
            let open = pool.state().connections;
            if open >= settings.size {
                break;
            }
            if crate::interrupt::requested() {
                return Err(crate::interrupt::error());
            }
            if Instant::now() >= deadline {
                let last = counters
                    .last_error
                    .lock()
                    .clone()
                    .map(|(_, m)| format!("; last error: {m}"))
                    .unwrap_or_default();
                return Err(crate::error::target(format!(
                    "only {open} of {} connections to {} opened within {:?}{last}",
                    settings.size, target.display, settings.ready_timeout
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Pool { pool, counters })
    }
}
