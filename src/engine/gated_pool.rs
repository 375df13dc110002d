//! A pool whose size is steered from outside: r2d2 with a connect gate that caps the connections
//! at a target (raised step by step) and paces new connects to a rate. Its connections are the
//! project's wire connections ([`super::wire_pool`]), the ones both load drivers use.
//!
//! r2d2 fixes `max_size`/`min_idle` at build time. The pool is built at the final size with
//! `min_idle = max_size`, so r2d2 always wants to open the missing connections (and replaces a
//! broken one as soon as it is dropped); every connect first passes the [`Gate`], which lets it
//! through only while fewer than `target` connections are alive and no sooner than the pace
//! allows. A burst of hundreds of connects can trip SYN-flood protection or the server's
//! `authentication_timeout`; the pace prevents that, and raising the target is how the ramp
//! grows the pool.
//!
//! Invariants:
//! - `live` = connections opened (or being opened) − connections released; it only changes under
//!   the gate's lock, from connector threads and r2d2's release hook, never on a worker's path.
//! - After [`Gate::close`], every waiting or new connect fails at once, so no connector thread
//!   outlives the run by more than one connect.
//! - Connect latency and connect failures by class are recorded per step (the gate's current
//!   step at the time the connect started).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use r2d2::ManageConnection;
use scheduled_thread_pool::ScheduledThreadPool;

use super::stats::{self, Hist, N_CLASSES};
use super::wire_pool::{self, PooledWire};
use crate::target::Target;
use crate::wire::WireError;
use crate::workload::Workload;

/// Connect measurements of one step.
#[derive(Clone)]
pub struct StepConnects {
    /// Time to open a connection (TCP + startup + auth), µs.
    pub latency: Hist,
    /// Failed connects by [`stats::ErrorClass`] index.
    pub failures: [u64; N_CLASSES],
}

struct GateState {
    target: u32,
    live: u32,
    step: usize,
    next_slot: Instant,
    closed: bool,
}

/// Caps and paces connects, and counts connects and releases.
pub struct Gate {
    state: Mutex<GateState>,
    cond: Condvar,
    /// Connect retries sleep here: only closing wakes them (not every freed place).
    retry: Condvar,
    gap: Option<Duration>,
    steps: Mutex<Vec<StepConnects>>,
    /// Connections opened successfully.
    pub opened: AtomicU64,
    /// Connections released (dropped as broken, or at the end).
    pub released: AtomicU64,
    /// Connect attempts that failed.
    pub failed: AtomicU64,
    /// The last connect error, redacted and on one line.
    pub last_error: Mutex<Option<String>>,
}

impl Gate {
    /// A gate with no connections allowed yet, pacing connects to `rate` per second (`None`:
    /// unpaced).
    pub fn new(rate: Option<f64>, steps: usize) -> Gate {
        Gate {
            state: Mutex::new(GateState {
                target: 0,
                live: 0,
                step: 0,
                next_slot: Instant::now(),
                closed: false,
            }),
            cond: Condvar::new(),
            retry: Condvar::new(),
            gap: rate
                .filter(|r| r.is_finite() && *r > 0.0)
                .map(|r| Duration::from_secs_f64(1.0 / r)),
            steps: Mutex::new(
                (0..steps.max(1))
                    .map(|_| StepConnects {
                        latency: stats::new_hist(3),
                        failures: [0; N_CLASSES],
                    })
                    .collect(),
            ),
            opened: AtomicU64::new(0),
            released: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// Allows up to `target` live connections from now on, attributed to step `step`.
    pub fn set_target(&self, target: u32, step: usize) {
        let mut s = self.state.lock();
        s.target = target;
        s.step = step;
        self.cond.notify_all();
    }

    /// Fails every waiting and future connect.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.cond.notify_all();
        self.retry.notify_all();
    }

    /// Connections alive or being opened.
    pub fn live(&self) -> u32 {
        self.state.lock().live
    }

    /// Per-step connect measurements.
    pub fn steps(&self) -> Vec<StepConnects> {
        self.steps.lock().clone()
    }

    /// Waits for permission to open one connection; returns its step, or `None` once closed.
    fn admit(&self) -> Option<usize> {
        let mut s = self.state.lock();
        loop {
            if s.closed {
                return None;
            }
            let now = Instant::now();
            if s.live < s.target {
                if now >= s.next_slot {
                    s.live += 1;
                    if let Some(gap) = self.gap {
                        // No catching up after a quiet spell: the pace holds from now on.
                        s.next_slot = s.next_slot.max(now) + gap;
                    }
                    return Some(s.step);
                }
                let until = s.next_slot;
                self.cond.wait_until(&mut s, until);
            } else {
                self.cond.wait_for(&mut s, Duration::from_millis(200));
            }
        }
    }

    /// Sleeps `d` unless the gate closes meanwhile; false if closed.
    fn sleep(&self, d: Duration) -> bool {
        let mut s = self.state.lock();
        if !s.closed {
            self.retry.wait_for(&mut s, d);
        }
        !s.closed
    }

    fn unadmit(&self) {
        let mut s = self.state.lock();
        s.live = s.live.saturating_sub(1);
        self.cond.notify_one();
    }
}

/// Why the gated manager gave no connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The server refused or the network failed.
    #[error("{0}")]
    Server(#[from] WireError),
    /// The run is over: the gate no longer admits connects.
    #[error("the run is over")]
    Closed,
}

/// First and longest pause between two failed connects of one connector thread.
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(1);

impl GatedManager {
    /// One connect: TCP + startup + auth (the connect time), then the workload's statements
    /// prepared.
    fn attempt(&self) -> Result<(PooledWire, Duration), WireError> {
        let t0 = Instant::now();
        let conn = wire_pool::connect_wire(&self.target, "", &self.workload, &self.names)?;
        let conn = PooledWire {
            conn,
            reusable: true,
        };
        Ok((conn, t0.elapsed()))
    }
}

/// r2d2 manager: gate, then connect (session settings travel in the startup packet) and prepare
/// the workload's statements under `names` ([`wire_pool::statement_names`]).
pub struct GatedManager {
    /// The target with the load session's settings (see [`session_target`]).
    target: Target,
    workload: Arc<Workload>,
    names: Vec<Vec<String>>,
    gate: Arc<Gate>,
}

impl ManageConnection for GatedManager {
    type Connection = PooledWire;
    type Error = ConnectError;

    fn connect(&self) -> Result<PooledWire, ConnectError> {
        // Retry here rather than return the error: r2d2 would retry too, but doubling its delay
        // up to half the checkout timeout (15 s by default), which would make a server that is
        // back after a second look down for many more. Each attempt goes through the gate again
        // (so the pace holds) and each failure is counted.
        let mut backoff = RETRY_MIN;
        loop {
            let step = self.gate.admit().ok_or(ConnectError::Closed)?;
            match self.attempt() {
                Ok((conn, connected)) => {
                    if let Some(s) = self.gate.steps.lock().get_mut(step) {
                        stats::record(&mut s.latency, connected);
                    }
                    self.gate.opened.fetch_add(1, Ordering::Relaxed);
                    return Ok(conn);
                }
                Err(e) => {
                    self.gate.unadmit();
                    self.gate.failed.fetch_add(1, Ordering::Relaxed);
                    if let Some(s) = self.gate.steps.lock().get_mut(step) {
                        s.failures[wire_pool::class_of(&e) as usize] += 1;
                    }
                    *self.gate.last_error.lock() = Some(e.to_string().replace('\n', " "));
                    if !self.gate.sleep(backoff) {
                        return Err(ConnectError::Server(e));
                    }
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
            }
        }
    }

    fn is_valid(&self, c: &mut PooledWire) -> Result<(), ConnectError> {
        wire_pool::ping(c).map_err(Into::into)
    }

    fn has_broken(&self, c: &mut PooledWire) -> bool {
        !c.reusable
    }
}

/// Counts connect errors in [`GatedManager`] instead of r2d2's logging.
#[derive(Debug)]
struct QuietErrors;
impl r2d2::HandleError<ConnectError> for QuietErrors {
    fn handle_error(&self, _error: ConnectError) {}
}

/// Settings of a gated pool.
#[derive(Debug, Clone)]
pub struct GatedSettings {
    /// The largest size the pool may reach.
    pub max_size: u32,
    /// Connects per second (`None`: as fast as the connector threads go).
    pub connect_rate: Option<f64>,
    /// Steps the connect measurements are split into.
    pub steps: usize,
    /// Default checkout timeout.
    pub checkout_timeout: Duration,
    /// `statement_timeout` of every connection.
    pub statement_timeout: Duration,
    /// Threads opening connections concurrently.
    pub connector_threads: usize,
}

/// The target with a load connection's settings: `application_name` and `statement_timeout` in
/// the startup packet (no extra round trip), and a connect timeout so a server that accepts TCP
/// but never answers cannot pin a thread forever.
pub fn session_target(target: &Target, statement_timeout: Duration) -> Target {
    let mut t = target.clone();
    let config = &mut t.config;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    let timeout = format!("-c statement_timeout={}", statement_timeout.as_millis());
    let options = match config.get_options() {
        Some(o) if !o.trim().is_empty() => format!("{o} {timeout}"),
        _ => timeout,
    };
    config.options(&options).application_name("pgstorm");
    t
}

/// Builds the pool; it opens nothing until [`Gate::set_target`] allows connections.
pub fn build(
    target: &Target,
    workload: Arc<Workload>,
    settings: &GatedSettings,
) -> (r2d2::Pool<GatedManager>, Arc<Gate>) {
    let gate = Arc::new(Gate::new(settings.connect_rate, settings.steps));
    let manager = GatedManager {
        target: session_target(target, settings.statement_timeout),
        names: wire_pool::statement_names(&workload),
        workload,
        gate: gate.clone(),
    };
    let size = settings.max_size.max(1);
    let pool = r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(size))
        .test_on_check_out(false)
        .idle_timeout(None)
        .max_lifetime(None)
        .connection_timeout(settings.checkout_timeout)
        .thread_pool(Arc::new(
            ScheduledThreadPool::builder()
                .num_threads(settings.connector_threads.max(1))
                .thread_name_pattern("pgstorm-connect-{}")
                .build(),
        ))
        .error_handler(Box::new(QuietErrors))
        .event_handler(Box::new(GateEvents(gate.clone())))
        .build_unchecked(manager);
    (pool, gate)
}

/// r2d2's release hook: a discarded connection frees a place at the gate. (Checkout timeouts are
/// counted by the workers: they wait in slices, so r2d2's timeout event fires per slice.)
struct GateEvents(Arc<Gate>);
impl std::fmt::Debug for GateEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GateEvents")
    }
}
impl r2d2::HandleEvent for GateEvents {
    fn handle_release(&self, _event: r2d2::event::ReleaseEvent) {
        self.0.released.fetch_add(1, Ordering::Relaxed);
        self.0.unadmit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_caps_paces_and_closes() {
        let gate = Arc::new(Gate::new(Some(100.0), 2));
        gate.set_target(3, 1);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(gate.admit(), Some(1));
        }
        // Three connects at 100/s: at least two gaps of 10 ms.
        assert!(
            t0.elapsed() >= Duration::from_millis(19),
            "{:?}",
            t0.elapsed()
        );
        assert_eq!(gate.live(), 3);
        let g = gate.clone();
        let waiter = std::thread::spawn(move || g.admit());
        std::thread::sleep(Duration::from_millis(50));
        gate.close();
        assert_eq!(waiter.join().unwrap(), None);
        gate.unadmit();
        assert_eq!(gate.live(), 2);
    }
}
