//! The connection pool: r2d2 with settings chosen for a load tool, around a manager of wire
//! connections ([`super::wire_pool::WireManager`] for the pool driver,
//! [`super::gated_pool::GatedManager`] for the connection scenario).
//!
//! r2d2's defaults suit a web app, not a benchmark (DESIGN.md, known traps): no test query on
//! checkout (an extra round trip per query), no idle timeout or max lifetime (they would recycle
//! connections mid-run), enough connector threads to open hundreds of connections quickly, and a
//! non-blocking `build_unchecked` followed by an explicit, bounded wait for the connections.
//!
//! [`PoolCounters`] are the driver-neutral record of connections opened, closed and failed that
//! the engine's lost-target watch reads ([`super::lost`]); the `-j` driver keeps the same ones.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use parking_lot::Mutex;
use r2d2::ManageConnection;
use scheduled_thread_pool::ScheduledThreadPool;

use super::stats::{self, ErrorClass, Hist};
use crate::stop::StopToken;
use crate::target::Target;

/// Counters the pool updates from its connector threads (never on a worker's hot path).
pub struct PoolCounters {
    /// Time to open a connection (TCP + startup + auth), µs.
    pub connect: Mutex<Hist>,
    /// Connections opened successfully.
    pub opened: AtomicU64,
    /// Connection attempts that failed.
    pub failed: AtomicU64,
    /// Connections closed or found broken and dropped (opened − closed are open now).
    pub closed: AtomicU64,
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
            closed: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }
}

/// Silences r2d2's default logging of connect errors: the manager counts them instead.
#[derive(Debug)]
struct QuietErrors;
impl<E> r2d2::HandleError<E> for QuietErrors {
    fn handle_error(&self, _error: E) {}
}

/// Counts the connections r2d2 drops (found broken at checkin) into [`PoolCounters::closed`].
struct CountReleases(Arc<PoolCounters>);
impl std::fmt::Debug for CountReleases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CountReleases")
    }
}
impl r2d2::HandleEvent for CountReleases {
    fn handle_release(&self, _event: r2d2::event::ReleaseEvent) {
        self.0.closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Longest wait between r2d2's attempts to reopen a lost connection. r2d2 doubles the wait
/// after each failed attempt up to half its `connection_timeout`, so that timeout is set to
/// twice this: a server back from a restart is reconnected within a second (well inside the
/// lost-target grace), not after up to half the checkout timeout. Checkouts carry their own
/// timeout ([`checkout`]).
const RECONNECT_MAX_WAIT: Duration = Duration::from_secs(1);

/// A checkout waits in slices this long, so a stopped run is noticed promptly.
const CHECKOUT_SLICE: Duration = Duration::from_millis(100);

/// Checks a connection out of `pool`, waiting up to `timeout`, or until `stop` is set.
pub(crate) fn checkout<M: ManageConnection>(
    pool: &r2d2::Pool<M>,
    timeout: Duration,
    stop: &AtomicBool,
) -> Option<r2d2::PooledConnection<M>> {
    // The common case, a connection idle in the pool, reads no clock here.
    if let Some(c) = pool.try_get() {
        return Some(c);
    }
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stop.load(Ordering::Relaxed) {
            return None;
        }
        if let Ok(c) = pool.get_timeout(left.min(CHECKOUT_SLICE)) {
            return Some(c);
        }
    }
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Connections kept open (= max size = min idle).
    pub size: u32,
    /// `statement_timeout` set on every connection.
    pub statement_timeout: Duration,
    /// How long to wait for all connections at start-up.
    pub ready_timeout: Duration,
    /// The run's stop token: stopping it abandons the start-up as interrupted.
    pub stop: StopToken,
}

/// The settings every load connection gets, whichever driver opens it.
pub(crate) fn session_sql(statement_timeout: Duration) -> String {
    format!(
        "SET statement_timeout = {}; SET application_name = 'pgstorm'",
        statement_timeout.as_millis()
    )
}

/// The pool and its counters.
pub struct Pool<M: ManageConnection> {
    /// The r2d2 pool.
    pub pool: r2d2::Pool<M>,
    /// Connect counters.
    pub counters: Arc<PoolCounters>,
}

impl<M: ManageConnection> Pool<M> {
    /// Builds the pool of the connections `manager` opens, counted in `counters`, and waits
    /// until all `settings.size` are open (or fails with the last connect error, classified as a
    /// target error).
    pub fn open(
        manager: M,
        counters: Arc<PoolCounters>,
        target: &Target,
        settings: &PoolSettings,
    ) -> Result<Pool<M>> {
        let connector_threads = (settings.size as usize).clamp(1, 32);
        let pool = r2d2::Pool::builder()
            .max_size(settings.size.max(1))
            .min_idle(Some(settings.size.max(1)))
            .test_on_check_out(false)
            .idle_timeout(None)
            .max_lifetime(None)
            .connection_timeout(RECONNECT_MAX_WAIT * 2)
            .thread_pool(Arc::new(ScheduledThreadPool::new(connector_threads)))
            .error_handler(Box::new(QuietErrors))
            .event_handler(Box::new(CountReleases(counters.clone())))
            .build_unchecked(manager);
        let deadline = Instant::now() + settings.ready_timeout;
        loop {
            let open = pool.state().connections;
            if open >= settings.size {
                break;
            }
            if settings.stop.is_stopped() {
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
