//! Error classes, per-type counts and the per-interval batch a worker hands to the collector.
//! The histograms themselves (bounds, recording, codec) are [`crate::hist`]'s, re-exported here
//! because they are the engine's recording vocabulary.
//!
//! Invariants:
//! - Workers record at [`worker_sigfig`] digits (3, or 2 when there are so many worker×type
//!   histograms that 3 digits would cost hundreds of MiB); the collector's totals use 3 digits.
//! - Latency of a failed query is not recorded (as pgbench); the failure is counted by class.

use postgres::error::SqlState;
use serde::{Deserialize, Serialize};

pub use crate::hist::{
    add_into, new_hist, new_worker_hist, record, record_ns, unused_hist, Hist, WorkerHist,
    WORKER_HIST_MAX,
};
pub use crate::workload::CommandStat;
use hdrhistogram::{Counter, Histogram};

/// Precision of the per-worker histograms: 3 digits unless `histograms` (all workers' histograms
/// of one interval: types, pool wait, and lag in open loop) is so large that 3 digits (34 KiB
/// each with u16 counts) would exceed ~16 MiB; then 2 digits (5 KiB each).
pub fn worker_sigfig(histograms: usize) -> u8 {
    if histograms <= 480 {
        3
    } else {
        2
    }
}

/// Failure classes, named by SQLSTATE class rather than by message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// 40001: serialization failure.
    Serialization,
    /// 40P01: deadlock detected.
    Deadlock,
    /// 57014: statement timeout / query canceled.
    StatementTimeout,
    /// 53300: too many connections.
    TooManyConnections,
    /// 08*, a closed connection or an I/O error: the connection is gone.
    Connection,
    /// 57P01..57P03: server shutting down / crash recovery.
    Shutdown,
    /// The pool gave no connection within the checkout timeout.
    PoolTimeout,
    /// Any other error.
    Other,
}

/// Number of [`ErrorClass`] variants.
pub const N_CLASSES: usize = 8;

impl ErrorClass {
    /// All classes, in index order.
    pub const ALL: [ErrorClass; N_CLASSES] = [
        ErrorClass::Serialization,
        ErrorClass::Deadlock,
        ErrorClass::StatementTimeout,
        ErrorClass::TooManyConnections,
        ErrorClass::Connection,
        ErrorClass::Shutdown,
        ErrorClass::PoolTimeout,
        ErrorClass::Other,
    ];

    /// Stable name used in results.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Serialization => "serialization",
            ErrorClass::Deadlock => "deadlock",
            ErrorClass::StatementTimeout => "statement_timeout",
            ErrorClass::TooManyConnections => "too_many_connections",
            ErrorClass::Connection => "connection",
            ErrorClass::Shutdown => "shutdown",
            ErrorClass::PoolTimeout => "pool_timeout",
            ErrorClass::Other => "other",
        }
    }

    /// Classifies a driver error by SQLSTATE (or by the connection being gone).
    pub fn of(e: &postgres::Error) -> ErrorClass {
        match e.code() {
            Some(c) => ErrorClass::of_sqlstate(c.code()),
            None if e.is_closed() => ErrorClass::Connection,
            // No SQLSTATE: an I/O or protocol failure; the connection cannot be trusted.
            None => ErrorClass::Connection,
        }
    }

    /// Classifies a failed execution: a query type's own failure counts as `Other`.
    pub fn of_exec(e: &crate::workload::ExecError) -> ErrorClass {
        match e {
            crate::workload::ExecError::Script(_) | crate::workload::ExecError::Unfinished(_) => {
                ErrorClass::Other
            }
            crate::workload::ExecError::Wire(e) => match e.sqlstate() {
                Some(code) => ErrorClass::of_sqlstate(code),
                None => ErrorClass::Connection,
            },
        }
    }

    /// Whether pgbench retries a transaction that failed this way (`--max-tries`).
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorClass::Serialization | ErrorClass::Deadlock)
    }

    /// Whether a script's client stops for good after a transaction that failed this way, as
    /// pgbench 15 aborts a client on any error but a serialization or deadlock failure (those
    /// are retried with `--max-tries`, else counted). Unlike pgbench, a lost connection is not
    /// an abort: the client reconnects, so a server restart shows as a recovery, not as a run
    /// of dead clients.
    pub fn aborts_script_client(self) -> bool {
        matches!(self, ErrorClass::Other | ErrorClass::StatementTimeout)
    }

    /// Classifies a five-character SQLSTATE.
    pub fn of_sqlstate(code: &str) -> ErrorClass {
        match code {
            c if c == SqlState::T_R_SERIALIZATION_FAILURE.code() => ErrorClass::Serialization,
            c if c == SqlState::T_R_DEADLOCK_DETECTED.code() => ErrorClass::Deadlock,
            c if c == SqlState::QUERY_CANCELED.code() => ErrorClass::StatementTimeout,
            c if c == SqlState::TOO_MANY_CONNECTIONS.code() => ErrorClass::TooManyConnections,
            c if c.starts_with("08") => ErrorClass::Connection,
            "57P01" | "57P02" | "57P03" => ErrorClass::Shutdown,
            _ => ErrorClass::Other,
        }
    }

    /// Whether this class means the connection must be discarded and the server may be down.
    pub fn is_connection_loss(self) -> bool {
        matches!(
            self,
            ErrorClass::Connection | ErrorClass::Shutdown | ErrorClass::TooManyConnections
        )
    }
}

/// Counts per query type: a load thread's of one interval (`TypeStats<u16>`, see
/// [`WorkerHist`]), or totals (`u64` counts).
#[derive(Clone)]
pub struct TypeStats<C: Counter = u64> {
    /// Latency of successful executions.
    pub latency: Histogram<C>,
    /// Successful executions.
    pub ok: u64,
    /// Failures by [`ErrorClass`] index (transactions that failed after all their tries).
    pub errors: [u64; N_CLASSES],
    /// Transactions that needed more than one try (pgbench's "retried").
    pub retried: u64,
    /// Tries beyond the first, summed (pgbench's "retries").
    pub retries: u64,
    /// Successful transactions slower than `-L` (pgbench's "above the latency limit").
    pub late: u64,
    /// Transactions not sent because they were already later than `-L` when due (`-R` only).
    pub skipped: u64,
    /// Per-command statistics (only for types that report commands, with `-r`).
    pub commands: Vec<CommandStat>,
}

impl TypeStats {
    /// Empty totals at `sigfig` precision.
    pub fn new(sigfig: u8) -> TypeStats {
        TypeStats::with_hist(new_hist(sigfig))
    }

    /// Adds `other` (totals, or a load thread's interval) into `self`.
    pub fn add<D: Counter>(&mut self, other: &TypeStats<D>) {
        add_into(&mut self.latency, &other.latency);
        self.ok += other.ok;
        for (a, b) in self.errors.iter_mut().zip(other.errors.iter()) {
            *a += *b;
        }
        self.retried += other.retried;
        self.retries += other.retries;
        self.late += other.late;
        self.skipped += other.skipped;
        if self.commands.len() < other.commands.len() {
            self.commands
                .resize(other.commands.len(), CommandStat::default());
        }
        for (a, b) in self.commands.iter_mut().zip(&other.commands) {
            a.count += b.count;
            a.sum_ns += b.sum_ns;
            a.failures += b.failures;
        }
    }
}

impl TypeStats<u16> {
    /// Empty stats of a load thread's interval at `sigfig` precision.
    pub fn for_worker(sigfig: u8) -> TypeStats<u16> {
        TypeStats::with_hist(new_worker_hist(sigfig))
    }
}

impl<C: Counter> TypeStats<C> {
    fn with_hist(latency: Histogram<C>) -> TypeStats<C> {
        TypeStats {
            latency,
            ok: 0,
            errors: [0; N_CLASSES],
            retried: 0,
            retries: 0,
            late: 0,
            skipped: 0,
            commands: Vec::new(),
        }
    }

    /// Clears for reuse, keeping the allocation.
    pub fn reset(&mut self) {
        self.latency.reset();
        self.ok = 0;
        self.errors = [0; N_CLASSES];
        self.retried = 0;
        self.retries = 0;
        self.late = 0;
        self.skipped = 0;
        // Keep the allocation: the worker refills the same commands next interval.
        self.commands.fill(CommandStat::default());
    }

    /// All failures.
    pub fn error_total(&self) -> u64 {
        self.errors.iter().sum()
    }
}

/// Shortest transaction kept as a [`SlowTx`]: the stall detector's own floor
/// ([`super::stall::threshold_us`] is never below it), so nothing kept is noise by construction.
pub const SLOW_FLOOR_NS: u64 = super::stall::THRESHOLD_FLOOR_US * 1_000;
/// Slow transactions a batch keeps per client it serves (the longest of its interval): a
/// multiplexing thread serving 125 clients must be able to show all of them stuck at once.
pub const SLOW_PER_CLIENT: usize = 8;

/// One slow transaction (successful, or failed after waiting, e.g. cancelled by
/// statement_timeout behind a lock): who waited, from when, how long. The stall detector
/// ([`super::stall`]) looks for many clients waiting at once in these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlowTx {
    /// Client (connection) index.
    pub client: u32,
    /// Start (intended start in open loop), µs since the run's start.
    pub start_us: u64,
    /// Latency, µs.
    pub dur_us: u64,
}

/// What one worker measured during one interval.
pub struct Batch {
    /// Worker index.
    pub worker: usize,
    /// Interval index (0 = the first interval after the start).
    pub interval: u32,
    /// Per query type.
    pub types: Vec<TypeStats<u16>>,
    /// Pool checkout wait.
    pub pool_wait: WorkerHist,
    /// Schedule lag (open loop only; empty otherwise).
    pub lag: WorkerHist,
    /// The longest transactions of at least [`SLOW_FLOOR_NS`] (at most `slow_cap`; the capacity is
    /// reserved, so keeping them never allocates).
    pub slow: Vec<SlowTx>,
    /// How many slow transactions the batch keeps: [`SLOW_PER_CLIENT`] per client served.
    pub slow_cap: usize,
    /// Whether this is the worker's last batch.
    pub last: bool,
    /// Transactions recorded: no histogram of the batch holds more values than this.
    recorded: u64,
    /// Transactions ended per client served, slot `k` being client `first_client + k *
    /// client_stride` (how the drivers hand out clients: the pool driver's worker `i` serves
    /// client `i`, the `-j` driver's thread `t` of `T` serves `t, t + T, ...`). Empty when the
    /// batch serves one client (every pool-driver worker): its count is then the batch's own
    /// (`recorded`), and a transaction touches no slot. Read them with [`Batch::client_counts`].
    client_tx: Vec<u32>,
    /// The first client served (the worker's index).
    first_client: u32,
    /// The distance between the ids of the clients served (at least 1); set with
    /// [`Batch::client_stride`].
    client_stride: u32,
}

impl Batch {
    /// An empty batch of a worker serving `clients` clients; its lag histogram is allocated only
    /// in open loop (`open_loop`), the only case it is recorded.
    pub fn new(
        worker: usize,
        n_types: usize,
        sigfig: u8,
        clients: usize,
        open_loop: bool,
    ) -> Batch {
        let slow_cap = SLOW_PER_CLIENT * clients.max(1);
        Batch {
            worker,
            interval: 0,
            types: (0..n_types)
                .map(|_| TypeStats::for_worker(sigfig))
                .collect(),
            pool_wait: new_worker_hist(sigfig),
            lag: match open_loop {
                true => new_worker_hist(sigfig),
                false => unused_hist(),
            },
            slow: Vec::with_capacity(slow_cap),
            slow_cap,
            last: false,
            recorded: 0,
            client_tx: match clients {
                0 | 1 => Vec::new(),
                n => vec![0; n],
            },
            first_client: u32::try_from(worker).unwrap_or(u32::MAX),
            client_stride: 1,
        }
    }

    /// The same batch for a thread whose clients' ids are `stride` apart (the `-j` driver).
    pub fn client_stride(mut self, stride: usize) -> Batch {
        self.client_stride = u32::try_from(stride.max(1)).unwrap_or(u32::MAX);
        self
    }

    /// Counts one ended transaction of `client` in its slot, when the batch serves several (an
    /// id below the first or past the last is not counted). A batch of one client has no slots
    /// and never calls this: its client's count is the batch's own.
    #[inline]
    fn count_client(&mut self, client: u32) {
        let offset = client.wrapping_sub(self.first_client);
        let slot = if self.client_stride > 1 {
            offset / self.client_stride
        } else {
            offset
        };
        if let Some(n) = self.client_tx.get_mut(slot as usize) {
            *n += 1;
        }
    }

    /// The id of the client counted in slot `k`.
    fn client_at(&self, k: usize) -> usize {
        self.first_client as usize + k * self.client_stride as usize
    }

    /// (client id, transactions it ended in this batch) for every client the batch serves.
    pub fn client_counts(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        let single = self
            .client_tx
            .is_empty()
            .then(|| (self.client_at(0), self.recorded));
        let slots =
            (self.client_tx.iter().enumerate()).map(|(k, &n)| (self.client_at(k), n.into()));
        single.into_iter().chain(slots)
    }

    /// Keeps `tx` if it is among the interval's `slow_cap` longest.
    #[inline]
    pub fn record_slow(&mut self, tx: SlowTx) {
        if self.slow.len() < self.slow_cap {
            self.slow.push(tx);
        } else if let Some(shortest) = self.slow.iter_mut().min_by_key(|s| s.dur_us) {
            if shortest.dur_us < tx.dur_us {
                *shortest = tx;
            }
        }
    }

    /// Counts one transaction of `client`, of type `kind`, that ended (success or final
    /// failure) after `tries` tries: its schedule lag (open loop), its latency when it succeeded,
    /// its failure class otherwise, the retries (lag and latency in nanoseconds, as the
    /// measurement path's clock gives them), and the client's own count. The one place both
    /// drivers count a transaction.
    #[inline]
    pub fn record_transaction(
        &mut self,
        client: u32,
        kind: usize,
        lag_ns: Option<u64>,
        tries: u32,
        outcome: Result<u64, ErrorClass>,
    ) {
        self.recorded += 1;
        if !self.client_tx.is_empty() {
            self.count_client(client);
        }
        if let Some(lag) = lag_ns {
            record_ns(&mut self.lag, lag);
        }
        let ts = &mut self.types[kind];
        if tries > 1 {
            ts.retried += 1;
            ts.retries += (tries - 1) as u64;
        }
        match outcome {
            Ok(latency) => {
                record_ns(&mut ts.latency, latency);
                ts.ok += 1;
            }
            Err(class) => ts.errors[class as usize] += 1,
        }
    }

    /// Whether the batch must be handed over before it records another transaction: one more
    /// could saturate a bucket of its u16 histograms ([`WORKER_HIST_MAX`]). Each transaction
    /// records at most one value per histogram (its latency, lag and pool wait).
    #[inline]
    pub fn full(&self) -> bool {
        self.recorded >= WORKER_HIST_MAX
    }

    /// Clears for reuse.
    pub fn reset(&mut self) {
        self.recorded = 0;
        for t in &mut self.types {
            t.reset();
        }
        self.pool_wait.reset();
        self.lag.reset();
        self.slow.clear();
        self.client_tx.fill(0);
        self.last = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sqlstates_map_to_named_classes() {
        assert_eq!(ErrorClass::of_sqlstate("40001"), ErrorClass::Serialization);
        assert_eq!(ErrorClass::of_sqlstate("40P01"), ErrorClass::Deadlock);
        assert_eq!(
            ErrorClass::of_sqlstate("57014"),
            ErrorClass::StatementTimeout
        );
        assert_eq!(
            ErrorClass::of_sqlstate("53300"),
            ErrorClass::TooManyConnections
        );
        assert_eq!(ErrorClass::of_sqlstate("08006"), ErrorClass::Connection);
        assert_eq!(ErrorClass::of_sqlstate("57P01"), ErrorClass::Shutdown);
        assert_eq!(ErrorClass::of_sqlstate("23505"), ErrorClass::Other);
        for (i, c) in ErrorClass::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
    }

    #[test]
    fn a_batch_counts_each_client_it_serves_in_its_own_slot_and_forgets_them_on_reset() {
        // The -j driver's thread 1 of 3 serves clients 1, 4 and 7.
        let mut b = Batch::new(1, 1, 2, 3, false).client_stride(3);
        for client in [1, 4, 4, 7, 7, 7, 0, 10] {
            b.record_transaction(client, 0, None, 1, Ok(1_000));
        }
        let counts = |b: &Batch| b.client_counts().collect::<Vec<_>>();
        assert_eq!(
            counts(&b),
            [(1, 1), (4, 2), (7, 3)],
            "0 and 10 are not this thread's"
        );
        b.reset();
        assert_eq!(counts(&b), [(1, 0), (4, 0), (7, 0)]);
        // The pool driver's worker 5 serves client 5: its count is the batch's, failures
        // included, with no slot to touch.
        let mut b = Batch::new(5, 1, 2, 1, false);
        assert!(b.client_tx.is_empty());
        b.record_transaction(5, 0, None, 1, Ok(1_000));
        b.record_transaction(5, 0, None, 1, Err(ErrorClass::Other));
        assert_eq!(counts(&b), [(5, 2)]);
        b.reset();
        assert_eq!(counts(&b), [(5, 0)]);
        // So is a -j thread's that serves one client (-c 2 -j 2: thread 1 serves client 1).
        let mut b = Batch::new(1, 1, 2, 1, false).client_stride(2);
        b.record_transaction(1, 0, None, 1, Ok(1_000));
        assert_eq!(counts(&b), [(1, 1)]);
    }

    #[test]
    fn a_batch_keeps_only_its_longest_slow_transactions() {
        let mut b = Batch::new(0, 1, 3, 1, false);
        for d in 0..20u64 {
            b.record_slow(SlowTx {
                client: 0,
                start_us: d,
                dur_us: 1000 * (d % 10) + d,
            });
        }
        let mut kept: Vec<u64> = b.slow.iter().map(|s| s.dur_us).collect();
        kept.sort();
        assert_eq!(kept, [6006, 6016, 7007, 7017, 8008, 8018, 9009, 9019]);
        assert_eq!(b.slow.len(), SLOW_PER_CLIENT);
    }

    #[test]
    fn a_batch_is_full_before_a_u16_count_can_saturate() {
        let mut b = Batch::new(0, 1, 2, 1, true);
        let mut n = 0u64;
        while !b.full() {
            // The worst case: every value in one bucket.
            record(&mut b.pool_wait, Duration::from_micros(100));
            b.record_transaction(0, 0, Some(5_000), 1, Ok(100_000));
            n += 1;
        }
        assert_eq!(n, WORKER_HIST_MAX);
        let mut total = TypeStats::new(3);
        total.add(&b.types[0]);
        assert_eq!(total.latency.len(), n);
        assert_eq!(total.latency.count_at(100), n);
        assert_eq!(b.pool_wait.len(), n);
        assert_eq!(b.lag.len(), n);
        b.reset();
        assert!(!b.full());
    }

    #[test]
    fn two_digit_worker_histograms_merge_into_three_digit_totals() {
        let mut total = TypeStats::new(3);
        let mut w = TypeStats::for_worker(2);
        for v in 1..=1000u64 {
            record(&mut w.latency, Duration::from_micros(v * 10));
        }
        w.ok = 1000;
        total.add(&w);
        assert_eq!(total.latency.len(), 1000);
        let p50 = total.latency.value_at_quantile(0.5) as f64;
        assert!((p50 / 5000.0 - 1.0).abs() < 0.02, "p50 {p50}");
    }
}
