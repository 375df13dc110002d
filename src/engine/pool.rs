//! The connection pool: r2d2 with settings chosen for a load tool, around a manager of wire
//! connections ([`super::wire_pool::WireManager`] for the pool driver,
//! [`super::gated_pool::GatedManager`] for the connection scenario).
//!
//! r2d2's defaults suit a web app, not a benchmark (DESIGN.md, known traps): no test query on
//! checkout (an extra round trip per query), no idle timeout or max lifetime (they would recycle
//! connections mid-run), enough connector threads to open hundreds of connections quickly, and a
//! non-blocking `build_unchecked` followed by an explicit, bounded wait for the connections.
//!
//! Each client has a pool of its own, holding its connection (its home): [`Pool::open`] builds
//! one r2d2 pool of one connection per client (one connector thread pool shared by all), and a
//! `checkout` takes the client's own connection when it is idle, and otherwise borrows one idle
//! in another client's pool, so a checkout finds an idle connection when it would in one pool of
//! all of them (while it waits, within its current wait: `BORROW_SLICE`). A checkout is still
//! made, and its wait measured, per transaction.
//!
//! Why a home per client (docs/performance.md): r2d2 hands out the connection checked in last,
//! usually by another client, so in one shared pool a server backend served a different client
//! thread at every transaction, and the kernel could not keep a backend and its client on one
//! core. On a 2-core host with the server beside pgstorm, client and backend then woke each other
//! across the cores by inter-processor interrupts, 0.03-0.16 times per transaction (the design's
//! floor, whose threads keep their connections: 0.005-0.05), and that was most of the pool
//! driver's CPU per transaction over the floor. Application pools keep the same affinity for the
//! same reason (HikariCP first offers a thread the connection it used last). With one pool per
//! client no mutex is shared by workers either: at `-c 500` one pool's mutex had become a convoy
//! (its holder preempted, the others parked behind it), which shards of 8 clients had broken up.
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
    pub fn new() -> PoolCounters {
        PoolCounters {
            connect: Mutex::new(stats::new_hist(3)),
            opened: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }
}

impl Default for PoolCounters {
    fn default() -> PoolCounters {
        PoolCounters::new()
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

/// A checkout that found no connection idle in any pool waits for its own this long at first,
/// then twice as long at each turn up to [`CHECKOUT_SLICE`], looking for one to borrow between
/// the waits: a connection checked in elsewhere is taken within 1, 2, 4 ... ms while a wait is
/// short (one connection lost, the others busy), and 500 clients waiting through a server
/// restart each look through the pools 10 times a second, not 1,000.
const BORROW_SLICE: Duration = Duration::from_millis(1);

/// An idle connection of another client's pool than `home`'s, looking from the next one on.
fn borrow<M: ManageConnection>(
    pools: &[r2d2::Pool<M>],
    home: usize,
) -> Option<r2d2::PooledConnection<M>> {
    #[cfg(test)]
    tests::SCANS.with(|c| c.set(c.get() + 1));
    let n = pools.len();
    (1..n).find_map(|k| pools[(home + k) % n].try_get())
}

/// Checks a connection out for client `home`: its own from `pools[home]` when idle, else one
/// idle in another client's pool, else its own as soon as it is idle (reopened, or given back
/// by a borrower) or one found idle elsewhere between the waits ([`BORROW_SLICE`]), waiting up
/// to `timeout` or until `stop` is set. A borrowed connection goes back to its own pool.
pub(crate) fn checkout<M: ManageConnection>(
    pools: &[r2d2::Pool<M>],
    home: usize,
    timeout: Duration,
    stop: &AtomicBool,
) -> Option<r2d2::PooledConnection<M>> {
    // The common case, the client's own connection idle, takes an uncontended mutex and reads no
    // clock here.
    if let Some(c) = pools[home].try_get() {
        return Some(c);
    }
    // Its own connection is out: lent to another client, or broken and being reopened.
    if let Some(c) = borrow(pools, home) {
        return Some(c);
    }
    let mut slice = if pools.len() > 1 {
        BORROW_SLICE
    } else {
        CHECKOUT_SLICE
    };
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stop.load(Ordering::Relaxed) {
            return None;
        }
        if let Ok(c) = pools[home].get_timeout(left.min(slice)) {
            return Some(c);
        }
        slice = (slice * 2).min(CHECKOUT_SLICE);
        if let Some(c) = borrow(pools, home) {
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

/// The pool a client checks out of first, its home, of a pool of `pools` pools.
pub fn home_of(client: usize, pools: usize) -> usize {
    client % pools
}

/// The pool, as one r2d2 pool of one connection per client, and its counters.
pub struct Pool<M: ManageConnection> {
    /// The r2d2 pools: client `i`'s own connection is in `homes[home_of(i, homes.len())]`.
    pub homes: Vec<r2d2::Pool<M>>,
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
        let homes: Vec<r2d2::Pool<M>> = (0..settings.size.max(1))
            .map(|_| {
                r2d2::Pool::builder()
                    .max_size(1)
                    .min_idle(Some(1))
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
            let open: u32 = homes.iter().map(|p| p.state().connections).sum();
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
        Ok(Pool { homes, counters })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    std::thread_local! {
        /// Looks through the other clients' pools ([`borrow`]) made by this thread.
        pub(super) static SCANS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }

    /// A connection that is only a number, for pools that need no server.
    #[derive(Clone)]
    struct Numbers(Arc<AtomicU64>);
    impl ManageConnection for Numbers {
        type Connection = u64;
        type Error = std::io::Error;
        fn connect(&self) -> Result<u64, std::io::Error> {
            Ok(self.0.fetch_add(1, Ordering::Relaxed))
        }
        fn is_valid(&self, _: &mut u64) -> Result<(), std::io::Error> {
            Ok(())
        }
        fn has_broken(&self, _: &mut u64) -> bool {
            false
        }
    }

    fn pools(n: u32) -> Vec<r2d2::Pool<Numbers>> {
        let manager = Numbers(Arc::new(AtomicU64::new(0)));
        let config = "host=127.0.0.1 port=1 user=x dbname=x"
            .parse()
            .expect("a config");
        let target = Target::new(config, crate::target::TargetSource::Dsn);
        let settings = PoolSettings {
            size: n,
            statement_timeout: Duration::from_secs(1),
            ready_timeout: Duration::from_secs(10),
            stop: StopToken::new(),
        };
        Pool::open(manager, Arc::new(PoolCounters::new()), &target, &settings)
            .expect("the pool opens")
            .homes
    }

    #[test]
    fn a_client_gets_its_own_connection_back_and_borrows_only_when_it_is_out() {
        let pools = pools(3);
        let stop = AtomicBool::new(false);
        let wait = Duration::from_millis(200);
        let own: Vec<u64> = (0..3)
            .map(|i| *checkout(&pools, i, wait, &stop).expect("its own"))
            .collect();
        // Checked in and out in turn, each client gets its own connection back (r2d2 alone
        // would hand each the one checked in last).
        for round in 0..3 {
            for (i, own) in own.iter().enumerate() {
                let c = checkout(&pools, i, wait, &stop).expect("a connection");
                assert_eq!(*c, *own, "round {round}, client {i}");
            }
        }
        // Client 0's connection is out: client 0 borrows client 1's, and client 1 then
        // borrows client 2's; the third checkout finds none idle and times out.
        let held = checkout(&pools, 0, wait, &stop).expect("its own");
        let borrowed = checkout(&pools, 0, wait, &stop).expect("a borrowed one");
        assert_eq!(*borrowed, own[1]);
        let next = checkout(&pools, 1, wait, &stop).expect("a borrowed one");
        assert_eq!(*next, own[2]);
        assert!(
            checkout(&pools, 2, wait, &stop).is_none(),
            "none idle: a timeout"
        );
        // A connection checked in while a client waits is taken, wherever it lives.
        std::thread::scope(|s| {
            let waiter = s.spawn(|| checkout(&pools, 2, Duration::from_secs(5), &stop).map(|c| *c));
            std::thread::sleep(Duration::from_millis(50));
            drop(borrowed);
            assert_eq!(waiter.join().expect("the waiter"), Some(own[1]));
        });
        drop((held, next));
    }

    #[test]
    fn a_long_wait_looks_through_the_other_pools_a_few_times_a_second_not_every_millisecond() {
        // The positive control is c172250's wait, which looked every millisecond: 500 clients
        // waiting through a server restart took both cores (docs/performance.md). With every
        // connection out, a checkout waits out its second and looks elsewhere about 17 times
        // (after 1, 2, 4 ... 64 ms, then every 100 ms); a slow host only makes it fewer.
        let pools = pools(3);
        let stop = AtomicBool::new(false);
        let wait = Duration::from_millis(200);
        let held: Vec<_> = (0..3)
            .map(|i| checkout(&pools, i, wait, &stop).expect("its own"))
            .collect();
        SCANS.with(|c| c.set(0));
        let began = Instant::now();
        assert!(checkout(&pools, 0, Duration::from_secs(1), &stop).is_none());
        assert!(
            began.elapsed() >= Duration::from_secs(1),
            "it waited its whole timeout"
        );
        let scans = SCANS.with(|c| c.get());
        assert!(
            (2..=20).contains(&scans),
            "{scans} looks through the other pools in a 1 s wait"
        );
        drop(held);
    }
}
