//! One worker thread: schedule → checkout → query → record, and a batch per interval.
//!
//! Hot-path invariants: no allocation and no lock per query except r2d2's checkout; all recording
//! goes into the worker's own [`Batch`], handed to the collector when an interval boundary is
//! crossed (checked against the completion time, so a query is attributed to the interval in which
//! it finished). In open loop the latency is measured from the *intended* start, so a stall shows
//! in the percentiles; the schedule lag (actual − intended start) is recorded on its own.
//! pgbench's options live here too, for both drivers: `-L` (late and skipped counts, in the
//! batch), `-l` (the thread's own [`TxLog`]), and `-C` (`Source::ConnectEach`: a connection
//! per transaction instead of a checkout); a `Lease` hides which. Every query type runs over wire
//! connections ([`super::wire_pool`]) on the blocking form of the `-j` driver's executor.
//! Transaction boundaries are read on [`crate::clock`] (a calibrated TSC where it can be
//! trusted) as [`Stamp`]s, and the measurement path works in their nanoseconds: no `Instant` or
//! `Duration` arithmetic per transaction; `Instant`s only at the edges (the run's start, the
//! transaction log).
//!
//! The engine core both drivers share lives here too, one of each: the measurement path
//! ([`Recorder`]), the retry policy (`may_retry`), the backoff after a lost connection
//! (`next_backoff`), each client's random streams (`client_rng`, `ARRIVAL_STREAM`) and the
//! open-loop schedule cut-off (`intended_start`); the `-j` driver ([`super::mux`]) differs only
//! in how one thread drives its connections.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use r2d2::ManageConnection;

use super::collector::Sink;
use super::pool;
use super::schedule::Arrivals;
use super::stats::{self, Batch, ErrorClass};
use super::txlog::{Logged, TxLog};
use super::verbose;
use super::wire_pool::{PooledWire, WireManager};
use crate::clock::{self, Stamp};
use crate::rng::Rng;
use crate::workload::script::resume::Tx;
use crate::workload::{CommandStat, ExecError, Scratch, Workload};

/// Batches waiting in the collector thread's channel from which on a worker merges its own
/// batch into the collector's sink instead of adding to them (see [`super::collector`]).
pub const MERGE_BACKLOG: usize = 16;

/// Emptied batches a recorder owns besides the one it fills: one the collector may still hold
/// from the last boundary, and one kept aside while the sink was busy. Allocated up front and
/// given back by the collector to the worker that filled them ([`super::collector::Returns`]),
/// so an interval boundary neither allocates nor frees in the steady state: at `-c 500` every
/// worker reaches the boundary at the same instant, and a malloc there stalled on the few
/// arenas glibc shares among 500 threads (docs/performance.md).
pub const SPARE_BATCHES: usize = 2;

/// How arrivals are spaced in open loop.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    /// Evenly spaced.
    Uniform,
    /// Exponential gaps (Poisson process), like pgbench `-R`.
    Poisson,
}

/// Where a worker's wire connections ([`super::wire_pool`]) come from.
pub(crate) enum Source {
    /// Checked out of the pool, one r2d2 pool per client (client `i`'s own connection is in
    /// `pools[pool::home_of(i, pools.len())]`: [`pool::Pool`]) and returned after each
    /// transaction, with the prepared statement names.
    Pool(Vec<r2d2::Pool<WireManager>>, Vec<Vec<String>>),
    /// Opened for each transaction and closed after it (pgbench's `-C`); the connect time goes
    /// into the connect histogram, not into the pool wait.
    ConnectEach(Box<WireManager>, Arc<pool::PoolCounters>),
}

impl Source {
    /// Whether connections are checked out of a pool (their wait is recorded).
    fn pooled(&self) -> bool {
        matches!(self, Source::Pool(..))
    }

    /// The names query type `kind`'s statements are prepared under.
    fn names(&self, kind: usize) -> &[String] {
        match self {
            Source::Pool(_, names) => &names[kind],
            Source::ConnectEach(m, _) => m.names(kind),
        }
    }

    /// The pool holding client `client`'s own connection (0 without a pool): picked once per
    /// worker, so a checkout indexes its pool and divides nothing.
    fn home_of(&self, client: usize) -> usize {
        match self {
            Source::Pool(pools, _) => pool::home_of(client, pools.len()),
            Source::ConnectEach(..) => 0,
        }
    }

    /// The counters of connections opened per transaction (`-C`), which count their closes.
    fn closes_counted(&self) -> Option<&pool::PoolCounters> {
        match self {
            Source::ConnectEach(_, c) => Some(c),
            Source::Pool(..) => None,
        }
    }
}

/// A connection for one transaction, from any [`Source`].
enum Lease {
    Pooled(r2d2::PooledConnection<WireManager>),
    Own(PooledWire),
}

impl Lease {
    /// Checks a connection out of `source` for the client whose own pool is `home`
    /// ([`Source::home_of`]), or opens one from it.
    fn take(
        source: &Source,
        home: usize,
        timeout: Duration,
        stop: &AtomicBool,
    ) -> Result<Lease, ErrorClass> {
        match source {
            Source::Pool(pools, _) => pool::checkout(pools, home, timeout, stop)
                .map(Lease::Pooled)
                .ok_or(ErrorClass::PoolTimeout),
            Source::ConnectEach(m, _) => m
                .connect()
                .map(Lease::Own)
                .map_err(|e| super::wire_pool::class_of(&e)),
        }
    }

    fn conn(&mut self) -> &mut PooledWire {
        match self {
            Lease::Pooled(c) => c,
            Lease::Own(c) => c,
        }
    }

    /// Runs one try of query type `kind` on the connection. A connection the script could not
    /// leave idle is marked so that the pool drops it.
    fn execute(
        &mut self,
        shared: &Shared,
        kind: usize,
        rng: &mut Rng,
        scratch: &mut Scratch,
        tx: &mut Tx,
        commands: &mut Vec<CommandStat>,
    ) -> Result<(), ExecError> {
        let w = &shared.workload;
        let wired = self.conn();
        let ended = w.types[kind].script().run_blocking(
            tx,
            &mut scratch.states[kind],
            rng,
            w.protocol,
            shared.source.names(kind),
            &mut wired.conn,
            w.per_command.then_some(commands),
        );
        wired.reusable &= ended.reusable;
        ended.result
    }

    /// Marks the connection for dropping (the client aborts: pgbench closes its connection).
    fn discard(&mut self) {
        self.conn().reusable = false;
    }
}

/// Everything a worker shares with the engine.
pub(crate) struct Shared {
    pub source: Source,
    /// How long a checkout may wait for a connection.
    pub checkout_timeout: Duration,
    pub workload: Arc<Workload>,
    pub stop: Arc<AtomicBool>,
    pub start: Instant,
    /// No intended start at or after this instant is scheduled.
    pub end: Option<Instant>,
    pub tx_limit: Option<u64>,
    /// Open loop: the arrivals all workers draw from (closed loop: `None`).
    pub arrivals: Option<Arrivals>,
    pub seed: u64,
    /// Tries per transaction on serialization/deadlock failures (0: until the run ends).
    pub max_tries: u32,
    /// `--verbose-errors`.
    pub verbose_errors: bool,
}

/// A worker's measurement path: its own batch, the interval clock, and the hand-off to the
/// collector. Public so the benchmark measures exactly the code the workers run.
pub struct Recorder {
    id: usize,
    start: Stamp,
    /// The interval length (ns, at least 1).
    interval_ns: u64,
    sigfig: u8,
    out: Sender<Batch>,
    /// This worker's own batches, emptied by the collector and given back.
    returned: Receiver<Batch>,
    /// The collector's merged state: while [`MERGE_BACKLOG`] or more batches wait in `out`, a
    /// batch is merged into it in place if its lock is free at that instant (see [`super::collector`]'s
    /// invariants); without one, or while the collector keeps up, every batch goes through `out`.
    sink: Option<Sink>,
    /// A finished batch the sink was too busy to take: tried again after each transaction, sent
    /// to the collector thread at the next boundary at the latest.
    pending: Option<Batch>,
    /// Emptied batches to go on with ([`SPARE_BATCHES`] at the start, see
    /// [`Recorder::stocked`]; the capacity is reserved, so keeping one never allocates).
    free: Vec<Batch>,
    /// Batches allocated at a boundary because none of this recorder's own was free.
    allocated: u64,
    /// The batch being filled.
    pub batch: Batch,
    interval: u32,
    boundary: Stamp,
    disconnected: bool,
    open_loop: bool,
    /// Clients this recorder's thread serves (sizes the batches' slow lists and client counts).
    clients: usize,
    /// The distance between the ids of the clients this recorder's thread serves.
    client_stride: usize,
    /// `-L` (ns): a successful transaction slower than this is late; in open loop one due longer
    /// ago than this is skipped.
    latency_limit: Option<u64>,
    /// `-l`: this thread's transaction log.
    txlog: Option<TxLog>,
}

impl Recorder {
    /// A recorder for worker `id` of a run that started at `start`, closed loop unless
    /// [`Recorder::open_loop`] says otherwise.
    pub fn new(
        id: usize,
        n_types: usize,
        sigfig: u8,
        start: Instant,
        interval_len: Duration,
        out: Sender<Batch>,
        returned: Receiver<Batch>,
    ) -> Recorder {
        let start = clock::global().stamp_of(start);
        Recorder {
            id,
            start,
            interval_ns: nanos(interval_len).max(1),
            sigfig,
            out,
            returned,
            sink: None,
            pending: None,
            free: Vec::new(),
            allocated: 0,
            batch: Batch::new(id, n_types, sigfig, 1, false),
            interval: 0,
            boundary: start + interval_len,
            disconnected: false,
            open_loop: false,
            clients: 1,
            client_stride: 1,
            latency_limit: None,
            txlog: None,
        }
    }

    /// A recorder that counts transactions slower than `limit` as late (`-L`) and writes the
    /// transaction log `txlog` (`-l`).
    pub fn pgbench_options(mut self, limit: Option<Duration>, txlog: Option<TxLog>) -> Recorder {
        self.latency_limit = limit.map(nanos);
        self.txlog = txlog;
        self
    }

    /// A recorder that merges its own batches into `sink` (the collector's) while the collector
    /// thread is behind, when the lock is free, never waiting for it (see [`super::collector`]'s
    /// invariants), and hands them over through the channel otherwise.
    pub fn absorbing(mut self, sink: Sink) -> Recorder {
        self.sink = Some(sink);
        self
    }

    /// Whether a transaction due at `intended` is skipped because `now` is already past it by
    /// more than `-L` (pgbench's rule under `-R`: even an instant reply would be late). A
    /// skipped transaction is counted (and logged) here, for query type `kind`.
    #[inline]
    pub fn skip_late(&mut self, client: u32, kind: usize, intended: Stamp, now: Stamp) -> bool {
        let Some(limit) = self.latency_limit else {
            return false;
        };
        if now.nanos_since(intended) <= limit {
            return false;
        }
        self.batch.types[kind].skipped += 1;
        if let Some(log) = self.txlog.as_mut() {
            log.log(Logged {
                client,
                script: kind,
                outcome: None,
                lag: Duration::ZERO,
                tries: 1,
                end: clock::global().instant(now),
            });
        }
        true
    }

    /// Finishes the transaction log, if any: the first write error, if one happened.
    fn finish_txlog(&mut self, end: Stamp) -> anyhow::Result<()> {
        match self.txlog.take() {
            Some(log) => log.finish(clock::global().instant(end)).map(drop),
            None => Ok(()),
        }
    }

    /// Whether this recorder merges into a collector's sink while the collector is behind.
    #[cfg(test)]
    pub(crate) fn absorbs(&self) -> bool {
        self.sink.is_some()
    }

    /// Records `n` successful transactions of query type 0 of the recorder's own client (the
    /// pool driver's), each of 1 ms and ending `end_ms` after `t0`: the tests' way to put
    /// transactions into chosen intervals.
    #[cfg(test)]
    pub(crate) fn record_ms(&mut self, n: u64, t0: Stamp, end_ms: u64) {
        let (began, end) = (
            t0 + Duration::from_millis(end_ms - 1),
            t0 + Duration::from_millis(end_ms),
        );
        let client = self.id as u32;
        for _ in 0..n {
            self.end_transaction(None, client, 0, None, 1, Ok(()), began, end);
        }
    }

    /// Whether schedule lag is recorded; a closed-loop recorder keeps no lag histogram (not even
    /// for a moment), which matters with hundreds of workers (500 × 5 KiB × 2 batches).
    pub fn open_loop(mut self, yes: bool) -> Recorder {
        if yes != self.open_loop {
            self.open_loop = yes;
            self.batch.lag = match yes {
                true => stats::new_worker_hist(self.sigfig),
                false => stats::unused_hist(),
            };
        }
        self
    }

    /// A recorder for a thread serving `clients` clients whose ids are `stride` apart, the
    /// first being the recorder's id (the multiplexed driver): its batches keep room for every
    /// one of them to show up slow in one interval, and count each one's transactions.
    pub fn serving(mut self, clients: usize, stride: usize) -> Recorder {
        self.clients = clients.max(1);
        self.client_stride = stride.max(1);
        self.batch = self.blank_batch();
        self
    }

    /// A recorder that owns `spares` emptied batches besides the one it fills, shaped like it:
    /// the last step of building one ([`Recorder::serving`] and [`Recorder::open_loop`] change
    /// the shape), taken while the load threads are being spawned, not at their first boundary.
    pub fn stocked(mut self, spares: usize) -> Recorder {
        self.free = Vec::with_capacity(spares + 1);
        for _ in 0..spares {
            self.free.push(self.blank_batch());
        }
        self
    }

    /// A new empty batch shaped like the current one.
    fn blank_batch(&self) -> Batch {
        Batch::new(
            self.id,
            self.batch.types.len(),
            self.sigfig,
            self.clients,
            self.open_loop,
        )
        .client_stride(self.client_stride)
    }

    /// Batches allocated at a boundary because none of this recorder's own was free.
    pub fn allocated(&self) -> u64 {
        self.allocated
    }

    /// This recorder's emptied batches ready to go on with, its own or given back.
    #[cfg(test)]
    pub(crate) fn idle_batches(&self) -> usize {
        self.free.len() + self.returned.len()
    }

    /// Hands the current batch over if `now` is past the interval boundary.
    #[inline]
    pub fn maybe_flush(&mut self, now: Stamp) {
        if now >= self.boundary {
            self.flush(now, false);
        }
    }

    /// Hands the current batch over now (`last`: the worker is done): merges it into the sink
    /// and keeps it, or sends it to the collector and goes on with one of its own emptied ones.
    pub fn flush(&mut self, now: Stamp, last: bool) {
        if last {
            // The worker is done: its transaction log is complete. A write error is reported,
            // not fatal: the measurement itself is intact.
            if let Err(e) = self.finish_txlog(now) {
                eprintln!("pgstorm: warning: {e:#}");
            }
        }
        // The previous interval's batch waits no longer: merged now, or sent.
        if let Some(pending) = self.pending.take() {
            if self.try_merge(&pending) {
                self.keep_spare(pending);
            } else {
                self.send(pending);
            }
        }
        self.batch.interval = self.interval;
        self.batch.last = last;
        // The collector thread is behind when this many batches wait for it: then the worker
        // merges the batch itself if the lock is free, or keeps it for a later try (never the
        // last one: nothing would try it again).
        let behind = self.sink.is_some() && self.out.len() >= MERGE_BACKLOG;
        if behind && self.try_merge(&self.batch) {
            self.batch.reset();
        } else if behind && !last {
            let fresh = self.fresh_batch();
            self.pending = Some(std::mem::replace(&mut self.batch, fresh));
        } else {
            let fresh = self.fresh_batch();
            let full = std::mem::replace(&mut self.batch, fresh);
            self.send(full);
        }
        self.interval = (now.nanos_since(self.start) / self.interval_ns) as u32;
        let next = (self.interval as u64 + 1).saturating_mul(self.interval_ns);
        self.boundary = self.start + Duration::from_nanos(next);
    }

    /// Merges `batch` into the sink if its lock is free this instant (never waits: a lock
    /// holder the scheduler preempted must not stall the load threads or lengthen the next
    /// transaction's pool wait).
    fn try_merge(&self, batch: &Batch) -> bool {
        match self.sink.as_ref().and_then(|sink| sink.try_lock()) {
            Some(mut m) => {
                m.absorb(batch);
                true
            }
            None => false,
        }
    }

    /// Tries the pending batch again (after a transaction).
    #[cold]
    fn retry_pending(&mut self) {
        if let Some(pending) = self.pending.take() {
            if self.try_merge(&pending) {
                self.keep_spare(pending);
            } else {
                self.pending = Some(pending);
            }
        }
    }

    /// Keeps a merged batch, emptied, to go on with next time.
    fn keep_spare(&mut self, mut batch: Batch) {
        batch.reset();
        self.free.push(batch);
    }

    /// Sends a finished batch to the collector thread.
    fn send(&mut self, batch: Batch) {
        if self.out.send(batch).is_err() {
            self.disconnected = true;
        }
    }

    /// An empty batch to go on with: one of this recorder's own, kept or given back by the
    /// collector, or a new one when none is free (the collector is more than
    /// [`SPARE_BATCHES`] boundaries behind, or the recorder was not [`Recorder::stocked`]).
    fn fresh_batch(&mut self) -> Batch {
        if let Some(b) = self.free.pop() {
            return b;
        }
        match self.returned.try_recv() {
            Ok(b) => b,
            Err(_) => {
                self.allocated += 1;
                self.blank_batch()
            }
        }
    }

    /// The measurement of one transaction as both drivers make it once it ended at `end`: the
    /// interval check ([`Recorder::maybe_flush`]), the pool wait (ns) when the connection was
    /// checked out of a pool, and [`Recorder::record_transaction`].
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn end_transaction(
        &mut self,
        pool_wait_ns: Option<u64>,
        client: u32,
        kind: usize,
        lag_ns: Option<u64>,
        tries: u32,
        outcome: Result<(), ErrorClass>,
        began: Stamp,
        end: Stamp,
    ) {
        self.maybe_flush(end);
        if self.pending.is_some() {
            self.retry_pending();
        }
        if let Some(wait) = pool_wait_ns {
            stats::record_ns(&mut self.batch.pool_wait, wait);
        }
        self.record_transaction(client, kind, lag_ns, tries, outcome, began, end);
    }

    /// Counts one transaction of `client` that began at `began` (its intended start in open
    /// loop) and ended at `end`, as [`Batch::record_transaction`] does, and keeps a slow one,
    /// successful or not (a statement cancelled after waiting behind a lock waited all the same),
    /// for the stall detector.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn record_transaction(
        &mut self,
        client: u32,
        kind: usize,
        lag_ns: Option<u64>,
        tries: u32,
        outcome: Result<(), ErrorClass>,
        began: Stamp,
        end: Stamp,
    ) {
        let elapsed = end.nanos_since(began);
        self.batch
            .record_transaction(client, kind, lag_ns, tries, outcome.map(|()| elapsed));
        if outcome.is_ok() && self.latency_limit.is_some_and(|l| elapsed > l) {
            self.batch.types[kind].late += 1;
        }
        if let Some(log) = self.txlog.as_mut() {
            log.log(Logged {
                client,
                script: kind,
                outcome: Some(outcome.map(|()| Duration::from_nanos(elapsed))),
                lag: Duration::from_nanos(lag_ns.unwrap_or_default()),
                tries,
                end: clock::global().instant(end),
            });
        }
        if elapsed >= stats::SLOW_FLOOR_NS {
            self.batch.record_slow(stats::SlowTx {
                client,
                start_us: began.nanos_since(self.start) / 1_000,
                dur_us: elapsed / 1_000,
            });
        }
        if self.batch.full() {
            // Its u16 histograms could saturate with one more: hand it over early (the collector
            // adds any number of batches of one interval).
            self.flush(end, false);
        }
    }

    /// The next interval boundary.
    pub fn boundary(&self) -> Stamp {
        self.boundary
    }

    /// Whether the collector has gone away.
    pub fn disconnected(&self) -> bool {
        self.disconnected
    }

    /// The worker (and client) this recorder measures.
    pub fn id(&self) -> usize {
        self.id
    }
}

/// `d` in nanoseconds, saturating (584 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Per-worker state.
pub(crate) struct Worker {
    /// The client this worker runs: its recorder's id.
    id: usize,
    /// The pool holding its own connection ([`Source::home_of`]).
    home: usize,
    shared: Arc<Shared>,
    rec: Recorder,
}

/// Random stream of a client's arrival gaps, apart from its workload stream.
pub(crate) const ARRIVAL_STREAM: u64 = 0xA221_0000;

/// First random stream of the clients' workloads (client `id` draws from this plus `id`).
const CLIENT_STREAM: u64 = 0x5EED_0000;

/// Client `id`'s workload random stream, the same on both drivers, so a seed gives the same
/// draws whichever driver runs the clients.
pub(crate) fn client_rng(seed: u64, id: usize) -> Rng {
    Rng::stream(seed, CLIENT_STREAM + id as u64)
}

/// The retry policy of both drivers (pgbench's `--max-tries`): a failure of retryable `class`
/// after `tries` tries is tried again when tries remain (`max_tries` 0: no limit), the run is not
/// `stopping`, and `now` is before its `end`.
pub(crate) fn may_retry<T: PartialOrd>(
    class: ErrorClass,
    tries: u32,
    max_tries: u32,
    stopping: bool,
    end: Option<T>,
    now: T,
) -> bool {
    class.is_retryable()
        && (max_tries == 0 || tries < max_tries)
        && !stopping
        && end.is_none_or(|end| now < end)
}

/// The instant of an arrival `offset` after `start`, or `None` when it falls at or after the end
/// of the run (or beyond what an `Instant` can hold): no transaction is due then.
pub(crate) fn intended_start(
    start: Instant,
    end: Option<Instant>,
    offset: Duration,
) -> Option<Instant> {
    start
        .checked_add(offset)
        .filter(|at| end.is_none_or(|end| *at < end))
}

/// The next wait after a lost connection or a pool timeout: doubling from 10 ms up to 1 s, so a
/// client neither spins against a server in trouble nor sleeps long after it is back.
pub(crate) fn next_backoff(previous: Duration) -> Duration {
    (previous * 2).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

impl Worker {
    /// The worker of `rec`'s client, measuring through `rec` (the collector's:
    /// `Collector::recorder`).
    pub(crate) fn new(shared: Arc<Shared>, rec: Recorder) -> Worker {
        let id = rec.id();
        let home = shared.source.home_of(id);
        Worker {
            id,
            home,
            shared,
            rec,
        }
    }

    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed) || self.rec.disconnected()
    }

    /// Sleeps until `until`, flushing at boundaries; false if stopped meanwhile.
    fn wait_until(&mut self, until: Stamp) -> bool {
        loop {
            let now = clock::stamp();
            self.rec.maybe_flush(now);
            if now >= until {
                return true;
            }
            if self.stopped() {
                return false;
            }
            let wake = until
                .min(self.rec.boundary())
                .min(now + Duration::from_millis(100));
            std::thread::sleep(wake.saturating_duration_since(now));
        }
    }

    /// Whether a script's client ends here after failing with `e`, as pgbench aborts a client
    /// (see [`ErrorClass::aborts_script_client`]); if so the script keeps its message.
    fn abort_if_pgbench_would(&self, kind: usize, e: &ExecError, scratch: &Scratch) -> bool {
        let script = self.shared.workload.types[kind].script();
        if !script.aborts_clients() {
            return false;
        }
        let aborts =
            matches!(e, ExecError::Unfinished(_)) || ErrorClass::of_exec(e).aborts_script_client();
        if aborts {
            script.abort(self.id as u32, scratch.states[kind].failed_line(), e);
        }
        aborts
    }

    /// `--verbose-errors`: the failed try and what follows it, on stderr.
    fn report_failed_try(
        &self,
        kind: usize,
        e: &ExecError,
        scratch: &Scratch,
        retry: bool,
        tries: u32,
    ) {
        let t = &self.shared.workload.types[kind];
        let at = verbose::FailedAt {
            client: self.id as u32,
            kind,
            name: t.name(),
            line: scratch.states[kind].failed_line(),
        };
        eprintln!(
            "{}\n{}",
            verbose::error_line(at, e),
            verbose::decision_line(at.client, retry, tries, self.shared.max_tries)
        );
    }

    /// The worker's main loop.
    pub(crate) fn run(mut self) {
        let shared = self.shared.clone();
        let mut rng = client_rng(shared.seed, self.id);
        let mut gaps = Rng::stream(shared.seed, ARRIVAL_STREAM + self.id as u64);
        let mut scratch = shared.workload.scratch(self.id);
        let mut tx = Tx::default();
        let mut done: u64 = 0;
        let mut backoff = Duration::ZERO;
        // Closed loop: the previous transaction's end, when the next one starts right away (one
        // clock read per boundary). The pool wait then includes the check-in of the previous
        // connection and this loop's bookkeeping: under 1 µs per transaction, but at an interval
        // boundary the recorder's flush, which on an oversubscribed host took up to seconds while
        // it allocated (docs/performance.md, "The checkout wait's tail at `-c 500`"). So the pool
        // wait is the client's whole dead time between two transactions, the checkout's included.
        let mut last_end: Option<Stamp> = None;
        let clock = clock::global();
        loop {
            if self.stopped() || shared.tx_limit.is_some_and(|n| done >= n) {
                break;
            }
            let intended = match shared.arrivals.as_ref() {
                Some(a) => match intended_start(shared.start, shared.end, a.take(&mut gaps)) {
                    Some(at) if self.wait_until(clock.stamp_of(at)) => Some(clock.stamp_of(at)),
                    _ => break,
                },
                None => None,
            };
            let kind = shared.workload.pick(&mut rng);
            if let Some(at) = intended {
                if self.rec.skip_late(self.id as u32, kind, at, clock.stamp()) {
                    done += 1;
                    continue;
                }
            }
            let t0 = last_end.take().unwrap_or_else(|| clock.stamp());
            let checkout = Lease::take(
                &shared.source,
                self.home,
                shared.checkout_timeout,
                &shared.stop,
            );
            let t1 = clock.stamp();
            if checkout.is_err() && self.stopped() {
                // The run ended while this worker waited: nothing was attempted.
                break;
            }
            let mut tries: u32 = 0;
            let mut aborted = false;
            let mut now = t1;
            let result = match checkout {
                Ok(mut conn) => {
                    // pgbench retries with the same random draws: restore the stream each try.
                    let saved = rng.clone();
                    let r = loop {
                        tries += 1;
                        let commands = &mut self.rec.batch.types[kind].commands;
                        let r =
                            conn.execute(&shared, kind, &mut rng, &mut scratch, &mut tx, commands);
                        let Err(e) = r else { break r };
                        let class = ErrorClass::of_exec(&e);
                        if !class.is_retryable() {
                            break Err(e);
                        }
                        let retry = may_retry(
                            class,
                            tries,
                            shared.max_tries,
                            self.stopped(),
                            shared.end,
                            Instant::now(),
                        );
                        if shared.verbose_errors {
                            self.report_failed_try(kind, &e, &scratch, retry, tries);
                        }
                        if !retry {
                            break Err(e);
                        }
                        rng = saved.clone();
                    };
                    let t2 = clock.stamp();
                    now = t2;
                    if let Some(counters) = shared.source.closes_counted() {
                        counters.closed.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Err(e) = &r {
                        aborted = self.abort_if_pgbench_would(kind, e, &scratch);
                        if aborted {
                            conn.discard();
                        }
                    }
                    drop(conn);
                    match r {
                        // The transaction ran to its end: it counts before the abort.
                        Ok(()) | Err(ExecError::Unfinished(_)) => Ok(()),
                        Err(e) => Err(ErrorClass::of_exec(&e)),
                    }
                }
                Err(class) => Err(class),
            };
            self.rec.end_transaction(
                shared.source.pooled().then(|| t1.nanos_since(t0)),
                self.id as u32,
                kind,
                intended.map(|at| t0.nanos_since(at)),
                tries,
                result,
                intended.unwrap_or(t1),
                now,
            );
            if aborted {
                break;
            }
            last_end = intended.is_none().then_some(now);
            match result {
                Ok(()) => backoff = Duration::ZERO,
                Err(class) => {
                    if class.is_connection_loss() || class == ErrorClass::PoolTimeout {
                        last_end = None;
                        // The server (or the pool) is in trouble: back off instead of spinning,
                        // and let r2d2 replace the broken connection meanwhile.
                        backoff = next_backoff(backoff);
                        let until = clock.stamp() + backoff;
                        if !self.wait_until(until) {
                            break;
                        }
                    }
                }
            }
            done += 1;
        }
        self.rec.flush(clock.stamp(), true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::collector;

    #[test]
    fn retry_policy_of_both_drivers() {
        let now = Instant::now();
        let later = Some(now + Duration::from_secs(1));
        let dl = ErrorClass::Deadlock;
        assert!(may_retry(dl, 1, 2, false, later, now));
        assert!(!may_retry(dl, 2, 2, false, later, now), "tries used up");
        assert!(may_retry(dl, 99, 0, false, None, now), "0: no limit");
        assert!(!may_retry(dl, 1, 2, true, later, now), "stopping");
        assert!(!may_retry(dl, 1, 2, false, Some(now), now), "run over");
        let timeout = ErrorClass::StatementTimeout;
        assert!(!may_retry(timeout, 1, 0, false, None, now), "not retryable");
    }

    #[test]
    fn clients_draw_apart_and_reproducibly() {
        let (mut a, mut a2, mut b) = (client_rng(7, 0), client_rng(7, 0), client_rng(7, 1));
        let (x, x2, y) = (a.next_u64(), a2.next_u64(), b.next_u64());
        assert_eq!(x, x2);
        assert_ne!(x, y);
    }

    #[test]
    fn a_recorder_hands_a_full_batch_over_before_its_counts_can_saturate() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (_returns, mut returned) = collector::Returns::new(1);
        let start = Instant::now();
        let mut rec = Recorder::new(
            0,
            1,
            2,
            start,
            Duration::from_secs(3600),
            tx,
            returned.remove(0),
        )
        .open_loop(false);
        let extra = 5;
        let began = clock::global().stamp_of(start);
        let end = began + Duration::from_millis(1);
        for _ in 0..stats::WORKER_HIST_MAX + extra {
            // Every value in one bucket: the worst case for a u16 count.
            stats::record(&mut rec.batch.pool_wait, Duration::from_micros(3));
            rec.record_transaction(0, 0, None, 1, Ok(()), began, end);
        }
        let first = rx.try_recv().expect("a full batch was handed over");
        assert!(!first.last);
        assert_eq!(first.interval, 0);
        assert_eq!(first.types[0].ok, stats::WORKER_HIST_MAX);
        assert_eq!(first.types[0].latency.len(), stats::WORKER_HIST_MAX);
        assert_eq!(first.pool_wait.len(), stats::WORKER_HIST_MAX);
        assert!(rx.try_recv().is_err(), "one early hand-over");
        rec.flush(end, true);
        let second = rx.try_recv().expect("the last batch");
        assert!(second.last);
        assert_eq!(second.interval, 0);
        assert_eq!(second.types[0].latency.len(), extra);
        let mut total = stats::TypeStats::new(3);
        total.add(&first.types[0]);
        total.add(&second.types[0]);
        assert_eq!(total.latency.len(), stats::WORKER_HIST_MAX + extra);
    }

    /// A one-type, one-worker collector configuration with 1 s intervals from `start`.
    fn collector_cfg(start: Instant) -> collector::CollectorConfig {
        collector::CollectorConfig {
            names: vec!["q".into()],
            workers: 1,
            clients: 1,
            start,
            interval: Duration::from_secs(1),
            warmup_intervals: 0,
            grace: Duration::from_secs(2),
            progress: None,
            progress_epoch: None,
            progress_json: None,
            open_loop: false,
            last_interval: None,
        }
    }

    /// A recorder merging into a collector's sink whose thread has not started, and what that
    /// thread will take: its configuration, the sink, the channel's receiving end. With
    /// `behind`, [`MERGE_BACKLOG`] empty batches already wait in the channel: the collector
    /// thread is behind.
    struct Rig {
        cfg: collector::CollectorConfig,
        sink: Sink,
        rx: Receiver<Batch>,
        returns: collector::Returns,
        rec: Recorder,
        t0: Stamp,
    }

    fn rig(behind: bool) -> Rig {
        let start = Instant::now();
        let cfg = collector_cfg(start);
        let sink = collector::Merged::sink(&cfg);
        let (tx, rx) = crossbeam_channel::unbounded();
        for _ in 0..if behind { MERGE_BACKLOG } else { 0 } {
            tx.send(Batch::new(1, 1, 2, 1, false))
                .expect("the receiver is alive");
        }
        let (returns, mut returned) = collector::Returns::new(1);
        let rec = Recorder::new(0, 1, 2, start, cfg.interval, tx, returned.remove(0))
            .absorbing(sink.clone())
            .open_loop(false)
            .stocked(SPARE_BATCHES);
        let t0 = clock::global().stamp_of(start);
        Rig {
            cfg,
            sink,
            rx,
            returns,
            rec,
            t0,
        }
    }

    impl Rig {
        /// Ends the load (the recorder's last batch at `end_ms`) and runs the collector to the
        /// end: its totals' count and each interval's.
        fn collect(mut self, end_ms: u64) -> (collector::Collected, Vec<(u32, u64)>) {
            self.rec
                .flush(self.t0 + Duration::from_millis(end_ms), true);
            drop(self.rec);
            let got = collector::run_with(self.cfg, self.rx, self.returns, self.sink);
            let per_interval = got.intervals.iter().map(|r| (r.index, r.ok[0])).collect();
            (got, per_interval)
        }
    }

    #[test]
    fn a_recorder_merges_its_own_batches_while_the_collector_thread_is_behind() {
        // The collector thread starts only after the load is over: the extreme of a collector
        // the scheduler starves. Once its queue is long, every batch is merged by the worker.
        let mut r = rig(true);
        r.rec.record_ms(3, r.t0, 500);
        r.rec.record_ms(2, r.t0, 1500);
        r.rec.record_ms(4, r.t0, 2500);
        assert_eq!(
            r.rx.len(),
            MERGE_BACKLOG,
            "no batch went through the channel"
        );
        let (got, per_interval) = r.collect(2600);
        assert_eq!(got.totals[0].ok, 9);
        assert_eq!(got.totals[0].latency.len(), 9);
        assert_eq!(per_interval, [(0, 3), (1, 2), (2, 4)]);
        assert_eq!(got.late_batches, 0);
    }

    #[test]
    fn a_recorder_sends_its_batches_while_the_collector_thread_keeps_up() {
        let mut r = rig(false);
        r.rec.record_ms(3, r.t0, 500);
        r.rec.record_ms(2, r.t0, 1500);
        assert_eq!(r.rx.len(), 1, "interval 0's batch went through the channel");
        let (got, per_interval) = r.collect(1600);
        assert_eq!(got.totals[0].ok, 5);
        assert_eq!(per_interval, [(0, 3), (1, 2)]);
    }

    #[test]
    fn a_workers_batches_come_back_to_it_and_its_boundaries_allocate_none() {
        let r = rig(false);
        let (mut rec, t0) = (r.rec, r.t0);
        let (cfg, rx, returns, sink) = (r.cfg, r.rx, r.returns, r.sink);
        let collector = std::thread::spawn(move || collector::run_with(cfg, rx, returns, sink));
        for i in 0..20 {
            // Interval i's transaction; from i = 1 on, it hands interval i - 1's batch over.
            rec.record_ms(1, t0, i * 1000 + 500);
            // The collector thread gives it back: every batch but the one being filled is idle.
            let waited = Instant::now();
            while rec.idle_batches() < SPARE_BATCHES {
                assert!(
                    waited.elapsed() < Duration::from_secs(60),
                    "interval {i}'s batch given back"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        assert_eq!(
            rec.allocated(),
            0,
            "20 boundaries on the recorder's own batches"
        );
        rec.flush(t0 + Duration::from_millis(19_600), true);
        drop(rec);
        let got = collector.join().expect("the collector ends");
        assert_eq!(got.totals[0].ok, 20);
        assert_eq!(got.intervals.len(), 20);
    }

    #[test]
    fn a_recorder_allocates_a_batch_once_its_own_are_all_away() {
        // No collector thread: nothing comes back. The stock lasts SPARE_BATCHES boundaries.
        let mut r = rig(false);
        for i in 0..=SPARE_BATCHES as u64 {
            r.rec.record_ms(1, r.t0, i * 1000 + 500);
        }
        assert_eq!(r.rec.allocated(), 0, "the stock lasted");
        r.rec
            .record_ms(1, r.t0, (SPARE_BATCHES as u64 + 1) * 1000 + 500);
        assert_eq!(r.rec.allocated(), 1, "one boundary past the stock");
        assert_eq!(r.rx.len(), SPARE_BATCHES + 1, "every full batch was sent");
    }

    #[test]
    fn a_batch_the_sink_is_busy_for_waits_for_a_later_transaction_or_the_next_boundary() {
        let mut r = rig(true);
        r.rec.record_ms(3, r.t0, 500);
        {
            // Another holder (a preempted worker, the collector finalizing) keeps the lock.
            let _held = r.sink.lock();
            r.rec.record_ms(2, r.t0, 1500); // interval 0's batch: kept aside
        }
        r.rec.record_ms(1, r.t0, 1600); // the lock is free: interval 0 merged after this one
        assert_eq!(
            r.rx.len(),
            MERGE_BACKLOG,
            "merged by the worker, nothing sent"
        );
        {
            let _held = r.sink.lock();
            r.rec.record_ms(1, r.t0, 2500); // interval 1's batch (3 transactions): kept aside
            r.rec.record_ms(1, r.t0, 2600); // tried again, still held
            r.rec.record_ms(1, r.t0, 3500); // the next boundary: interval 1's is sent
        }
        assert_eq!(r.rx.len(), MERGE_BACKLOG + 1);
        let (got, per_interval) = r.collect(3600);
        assert_eq!(got.totals[0].ok, 9, "each transaction counted once");
        assert_eq!(per_interval, [(0, 3), (1, 3), (2, 2), (3, 1)]);
    }
}
