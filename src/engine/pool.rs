//! The connection pool: r2d2 with settings chosen for a load tool, around a manager of wire
//! connections ([`super::wire_pool::WireManager`] for the pool driver,
//! [`super::gated_pool::GatedManager`] for the connection scenario).
//!
//! r2d2's defaults suit a web app, not a benchmark (DESIGN.md, known traps): no test query on
//! checkout (an extra round trip per query), no idle timeout or max lifetime (they would recycle
//! connections mid-run), enough connector threads to open hundreds of connections quickly, and a
//! non-blocking `build_unchecked` followed by an explicit, bounded wait for the connections.
//!
//! The pool is sharded: [`Pool::open`] builds one r2d2 pool per [`SHARD_SIZE`] clients (one
//! connector thread pool shared by all), and client `i` checks out of shard `i % shards`, whose
//! size is the number of clients it serves, so a checkout finds an idle connection exactly when
//! it would in one pool of all of them. r2d2 guards each pool with one mutex, taken at every
//! checkout and check-in: at `-c 500` on two cores, one pool's mutex became a convoy (its holder
//! preempted, the others parked behind it): checkout waits of 18-112 ms at p99 with a connection
//! idle for every client, and 1/1.44 of the throughput with shards (docs/performance.md). A
//! shard's mutex is shared by at most [`SHARD_SIZE`] threads. A checkout is still made, and its
//! wait measured, per transaction.
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

/// Clients served by one shard of the pool (the last shards may serve one fewer).
pub const SHARD_SIZE: u32 = 8;

/// The shard of a pool of `shards` shards that client `client` checks out of.
pub fn shard_of(client: usize, shards: usize) -> usize {
    client % shards
}

/// The sizes of the shards of a pool of `size` connections: shard `s` serves the clients `i`
/// with [`shard_of`]`(i, shards) == s`, so the sizes differ by at most one and add up to `size`.
pub fn shard_sizes(size: u32) -> Vec<u32> {
    let size = size.max(1);
    let shards = size.div_ceil(SHARD_SIZE);
    (0..shards).map(|s| (size - s).div_ceil(shards)).collect()
}

/// The pool, as its shards, and its counters.
pub struct Pool<M: ManageConnection> {
    /// The r2d2 pools, one per shard: client `i` checks out of `shards[shard_of(i, shards.len())]`.
    pub shards: Vec<r2d2::Pool<M>>,
    /// Connect counters.
    pub counters: Arc<PoolCounters>,
}

impl<M: ManageConnection + Clone> Pool<M> {
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
        let connectors = Arc::new(ScheduledThreadPool::new(connector_threads));
        let shards: Vec<r2d2::Pool<M>> = shard_sizes(settings.size)
            .into_iter()
            .map(|size| {
                r2d2::Pool::builder()
                    .max_size(size)
                    .min_idle(Some(size))
                    .test_on_check_out(false)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connection_timeout(RECONNECT_MAX_WAIT * 2)
                    .thread_pool(connectors.clone())
                    .error_handler(Box::new(QuietErrors))
                    .event_handler(Box::new(CountReleases(counters.clone())))
                    .build_unchecked(manager.clone())
            })
            .collect();
        let deadline = Instant::now() + settings.ready_timeout;
        loop {
            let open: u32 = shards.iter().map(|p| p.state().connections).sum();
            if open >= settings.size.max(1) {
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
        Ok(Pool { shards, counters })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_shard_holds_one_connection_per_client_it_serves() {
        for size in [1, 2, 7, 8, 9, 16, 17, 100, 500, 501] {
            let sizes = shard_sizes(size);
            assert_eq!(sizes.len() as u32, size.div_ceil(SHARD_SIZE), "size {size}");
            assert_eq!(sizes.iter().sum::<u32>(), size, "size {size}");
            for (s, &n) in sizes.iter().enumerate() {
                let served = (0..size as usize)
                    .filter(|&i| shard_of(i, sizes.len()) == s)
                    .count();
                assert_eq!(n as usize, served, "size {size}, shard {s}");
                assert!(n <= SHARD_SIZE, "size {size}, shard {s}: {n}");
            }
        }
        assert_eq!(shard_sizes(0), vec![1]);
    }
}
