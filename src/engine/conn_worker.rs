//! Workers of the connection scenario: pooled (checkout → query → return, with checkout timeout,
//! direct fallback and back-off) or storm (connect → query → disconnect, like pgbench `-C`).
//! Connections are the project's wire connections, opened for a blocking owner
//! ([`wire_pool::connect_wire`]), and every query type is a script, run by the blocking form of
//! the executor both load drivers share ([`crate::workload::script::Script::run_blocking`]).
//!
//! Hot-path invariants: per operation a worker takes no lock of its own (r2d2's checkout is the
//! only one, and storm mode takes none), allocates nothing, records into its own [`WorkerStep`],
//! and publishes its phase and running totals to its [`Tracker`] slot with plain atomic stores.
//! A [`WorkerStep`] is handed to the monitor when the ramp moves to the next step (a few times per
//! run), not per operation.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::gated_pool::GatedManager;
use super::stats::{self, ErrorClass, Hist, N_CLASSES};
use super::tracker::{Counts, Tracker};
use super::wire_pool;
use crate::rng::Rng;
use crate::target::Target;
use crate::wire::WireConn;
use crate::workload::script::blocking::Ended;
use crate::workload::script::resume::Tx;
use crate::workload::{Scratch, Workload};

/// What one worker measured during one step.
pub struct WorkerStep {
    /// Connect time of storm-mode connections (empty in pooled mode: the pool connects).
    pub connect: Hist,
    /// Time waiting for a pool checkout.
    pub checkout_wait: Hist,
    /// Query latency of successful operations (from having a connection to the result).
    pub latency: Hist,
    /// Successful operations (pooled or fallback).
    pub ok: u64,
    /// Failed operations by [`ErrorClass`] index (a pool timeout counts here even when the
    /// fallback then succeeded).
    pub errors: [u64; N_CLASSES],
    /// Operations run on a direct connection after a checkout timeout, successfully.
    pub fallback_ok: u64,
    /// Direct fallback connections or their queries that failed.
    pub fallback_failed: u64,
}

impl WorkerStep {
    /// Empty measurements at `sigfig` digits.
    pub fn new(sigfig: u8) -> WorkerStep {
        WorkerStep {
            connect: stats::new_hist(sigfig),
            checkout_wait: stats::new_hist(sigfig),
            latency: stats::new_hist(sigfig),
            ok: 0,
            errors: [0; N_CLASSES],
            fallback_ok: 0,
            fallback_failed: 0,
        }
    }
}

/// A step's measurements from one worker: (step index, measurements).
pub type StepBatch = (usize, WorkerStep);

/// Everything the workers share with the monitor.
pub(crate) struct Shared {
    /// The pool (absent in storm mode).
    pub pool: Option<r2d2::Pool<GatedManager>>,
    /// The target with the load session's settings, for storm connects and the direct fallback.
    pub direct: Target,
    /// Every query type is a script (checked by [`super::connections::run`]).
    pub workload: Arc<Workload>,
    /// The names the statements are prepared under ([`wire_pool::statement_names`]).
    pub names: Vec<Vec<String>>,
    pub tracker: Tracker,
    /// Stop starting operations.
    pub stop: AtomicBool,
    /// Deliberately held connections may go back now.
    pub release: AtomicBool,
    /// Current step index.
    pub step: AtomicU32,
    /// Workers with an id below this run; the others are parked, each on its own thread, until
    /// the monitor unparks the ones `active` grows over (or the stop).
    pub active: AtomicU32,
    pub checkout_timeout: Duration,
    pub think: Duration,
    pub fallback_direct: bool,
    /// Workers below this id keep their first connection until the end (leak positive control).
    pub leakers: u32,
    pub seed: u64,
    pub sigfig: u8,
}

/// Longest back-off after a lost connection or a pool timeout.
/// A checkout waits in slices this long so a stop is noticed promptly.
const CHECKOUT_SLICE: Duration = Duration::from_millis(200);

/// One worker.
pub(crate) struct ConnWorker {
    id: usize,
    shared: Arc<Shared>,
    out: Sender<StepBatch>,
    rng: Rng,
    scratch: Scratch,
    /// The script executor's transaction state.
    tx: Tx,
    counts: Counts,
    checkouts: u64,
    backoff: Duration,
}

/// How an operation ended.
enum Op {
    Ok,
    Failed(ErrorClass),
    /// Stopped while waiting: not an operation.
    Abandoned,
}

impl ConnWorker {
    pub(crate) fn new(id: usize, shared: Arc<Shared>, out: Sender<StepBatch>) -> ConnWorker {
        let rng = Rng::stream(shared.seed, 0xC0_0000 + id as u64);
        let scratch = shared.workload.scratch(id);
        ConnWorker {
            id,
            shared,
            out,
            rng,
            scratch,
            tx: Tx::default(),
            counts: Counts::default(),
            checkouts: 0,
            backoff: Duration::ZERO,
        }
    }

    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed)
    }

    /// Sleeps `d` in short pieces; false if stopped meanwhile.
    fn pause(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        loop {
            if self.stopped() {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(50)));
        }
    }

    /// The worker's loop.
    pub(crate) fn run(mut self) {
        let sh = self.shared.clone();
        let mut cur = sh.step.load(Ordering::Acquire) as usize;
        let mut st = WorkerStep::new(sh.sigfig);
        while !self.stopped() {
            let step = sh.step.load(Ordering::Acquire) as usize;
            if step != cur {
                let done = std::mem::replace(&mut st, WorkerStep::new(sh.sigfig));
                let _ = self.out.send((cur, done));
                cur = step;
            }
            if self.id as u32 >= sh.active.load(Ordering::Acquire) {
                // Parked, not polling: hundreds of idle workers waking every few ms would eat
                // the CPU the ramp's connects need. Each parks on its own thread and is unparked
                // alone when `active` grows over it (`connections::set_active`): no lock shared by
                // hundreds, and a step wakes only the workers it starts. An unpark that comes
                // before the park is kept, so none is lost; the timeout is a backstop.
                std::thread::park_timeout(Duration::from_millis(500));
                continue;
            }
            let kind = sh.workload.pick(&mut self.rng);
            let op = match &sh.pool {
                Some(pool) => self.pooled(&sh, pool, kind, &mut st),
                None => self.storm(&sh, kind, &mut st),
            };
            let lost = match op {
                Op::Abandoned => break,
                Op::Ok => {
                    st.ok += 1;
                    self.counts.ok += 1;
                    false
                }
                Op::Failed(class) => {
                    st.errors[class as usize] += 1;
                    self.counts.failed += 1;
                    if class.is_connection_loss() {
                        self.counts.lost += 1;
                    }
                    class.is_connection_loss() || class == ErrorClass::PoolTimeout
                }
            };
            sh.tracker.publish(self.id, self.counts);
            if lost {
                // The server (or the pool) is in trouble: back off instead of spinning.
                self.backoff = super::worker::next_backoff(self.backoff);
                if !self.pause(self.backoff) {
                    break;
                }
            } else {
                self.backoff = Duration::ZERO;
                if !sh.think.is_zero() && !self.pause(sh.think) {
                    break;
                }
            }
        }
        sh.tracker.idle(self.id);
        let _ = self.out.send((cur, st));
    }

    /// Checkout, query, return; a checkout timeout may fall back to a direct connection.
    fn pooled(
        &mut self,
        sh: &Shared,
        pool: &r2d2::Pool<GatedManager>,
        kind: usize,
        st: &mut WorkerStep,
    ) -> Op {
        let t0 = Instant::now();
        sh.tracker.waiting(self.id, t0);
        let deadline = t0 + sh.checkout_timeout;
        let got = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break None;
            }
            match pool.get_timeout(left.min(CHECKOUT_SLICE)) {
                Ok(c) => break Some(c),
                Err(_) if self.stopped() => {
                    sh.tracker.idle(self.id);
                    return Op::Abandoned;
                }
                Err(_) => {}
            }
        };
        let t1 = Instant::now();
        stats::record(&mut st.checkout_wait, t1 - t0);
        let Some(mut conn) = got else {
            sh.tracker.idle(self.id);
            if sh.fallback_direct {
                match self.direct_op(sh, kind, st) {
                    Op::Ok => st.fallback_ok += 1,
                    _ => st.fallback_failed += 1,
                }
            }
            return Op::Failed(ErrorClass::PoolTimeout);
        };
        self.checkouts += 1;
        sh.tracker.holding(self.id, t1, kind, self.checkouts);
        let ended = self.run_script(sh, kind, &mut conn.conn);
        conn.reusable &= ended.reusable;
        let r = ended.result;
        let t2 = Instant::now();
        if (self.id as u32) < sh.leakers {
            // Positive control of leak detection: keep this connection out until the end.
            while !sh.release.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let op = match r {
            Ok(()) => {
                stats::record(&mut st.latency, t2 - t1);
                Op::Ok
            }
            Err(e) => Op::Failed(ErrorClass::of_exec(&e)),
        };
        drop(conn);
        sh.tracker.idle(self.id);
        op
    }

    /// A direct (unpooled) connection for one operation: the fallback after a pool timeout.
    fn direct_op(&mut self, sh: &Shared, kind: usize, st: &mut WorkerStep) -> Op {
        match self.connect_and_run(sh, kind) {
            Ok((_, latency)) => {
                stats::record(&mut st.latency, latency);
                Op::Ok
            }
            Err((class, _)) => Op::Failed(class),
        }
    }

    /// Storm mode: a new connection per operation, closed right after.
    fn storm(&mut self, sh: &Shared, kind: usize, st: &mut WorkerStep) -> Op {
        let r = self.connect_and_run(sh, kind);
        sh.tracker.idle(self.id);
        match r {
            Ok((connect, latency)) => {
                stats::record(&mut st.connect, connect);
                stats::record(&mut st.latency, latency);
                Op::Ok
            }
            Err((class, connected)) => {
                // A session that opened but whose query failed still counts as a connection.
                if let Some(c) = connected {
                    stats::record(&mut st.connect, c);
                }
                Op::Failed(class)
            }
        }
    }

    /// Runs one transaction of script `kind` on `conn`, blocking.
    fn run_script(&mut self, sh: &Shared, kind: usize, conn: &mut WireConn) -> Ended {
        let script = sh.workload.types[kind].script();
        script.run_blocking(
            &mut self.tx,
            &mut self.scratch.states[kind],
            &mut self.rng,
            sh.workload.protocol,
            &sh.names[kind],
            conn,
            None,
        )
    }

    /// Connects, prepares, runs query type `kind`, disconnects: (connect time, query time), or
    /// the failure's class and the connect time if the connection itself was made.
    fn connect_and_run(
        &mut self,
        sh: &Shared,
        kind: usize,
    ) -> Result<(Duration, Duration), (ErrorClass, Option<Duration>)> {
        let t0 = Instant::now();
        let mut conn = wire_pool::connect_wire(&sh.direct, "", &sh.workload, &sh.names)
            .map_err(|e| (wire_pool::class_of(&e), None))?;
        let t1 = Instant::now();
        self.checkouts += 1;
        sh.tracker.holding(self.id, t1, kind, self.checkouts);
        let r = self
            .run_script(sh, kind, &mut conn)
            .result
            .map_err(|e| (ErrorClass::of_exec(&e), Some(t1 - t0)));
        let t2 = Instant::now();
        // Dropping the connection closes its socket: the session ends.
        drop(conn);
        r.map(|()| (t1 - t0, t2 - t1))
    }
}
