//! The collector thread: merges the workers' interval batches into run totals, a per-interval
//! time series, an HdrHistogram interval log, and a pgbench-style progress line.
//!
//! Invariants:
//! - Totals are exact: every batch is added to them (unless its interval is in the warmup), even
//!   one that arrives after its interval was finalized (counted in `late_batches`). A batch is
//!   walked once: into its interval's accumulator, which is added to the totals when the interval
//!   is finalized, or, if late, straight into the totals.
//! - An interval is finalized (percentiles computed, histograms encoded for the log, memory
//!   released) once `grace` has passed after its end, so a worker stuck in a long query can still
//!   deliver; a progress line is printed shortly after the end, from what has arrived by then.
//! - Emptied batches go back to the worker that filled them ([`Returns`]): in the steady state
//!   a batch circulates between its worker and the collector, and nobody allocates or frees one.
//! - Everything merged lives in one [`Merged`] behind a mutex (the [`Sink`]), shared with the
//!   workers. A worker sends its batch through the channel while the collector thread keeps up;
//!   once [`super::worker::MERGE_BACKLOG`] batches wait in the channel, it merges its batch into
//!   the sink itself if the lock is free at that instant, and otherwise keeps it aside and tries
//!   again after each transaction; a batch still unmerged at the next boundary (or a worker's
//!   last one) is sent. With hundreds of load threads on two cores the scheduler gives one
//!   collector thread about one thread's share, too little to merge a batch per worker and
//!   interval (at `-c 500` it fell seconds behind, its memory grew with the run, progress lines
//!   came out wrong and interval percentiles missed the late batches); the load threads then
//!   take over. No worker waits for the lock: a holder is often preempted there, and a waiting
//!   worker would pay its run-queue wait in the next transaction's pool wait. Workers that merge
//!   all the time cost about a tenth of the throughput at `-c 500` (docs/performance.md), so
//!   they do only while the collector is behind. A batch is merged exactly once, by whichever
//!   side got it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;

use super::stats::{self, Batch, Hist, TypeStats};

/// One finalized interval of the time series.
#[derive(Debug, Clone)]
pub struct IntervalRecord {
    /// Interval index.
    pub index: u32,
    /// Start, seconds since the run's start.
    pub start_s: f64,
    /// Whether the interval lies in the warmup.
    pub warmup: bool,
    /// Successful executions per query type.
    pub ok: Vec<u64>,
    /// Failed executions per query type.
    pub errors: Vec<u64>,
    /// p99 latency per query type, µs (0 when none).
    pub p99_us: Vec<u64>,
    /// All types merged: p50, p99, max latency, µs.
    pub all_p50_us: u64,
    /// All types merged p99, µs.
    pub all_p99_us: u64,
    /// All types merged max, µs.
    pub all_max_us: u64,
    /// p99 schedule lag (open loop), µs.
    pub lag_p99_us: u64,
}

/// One HdrHistogram interval-log entry (already encoded).
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// Tag (query type name).
    pub tag: String,
    /// Start, seconds since the run's start.
    pub start_s: f64,
    /// Duration in seconds.
    pub duration_s: f64,
    /// Max value in µs.
    pub max_us: u64,
    /// V2 + deflate, base64.
    pub encoded: String,
}

/// What the collector hands back at the end.
pub struct Collected {
    /// Post-warmup totals per query type.
    pub totals: Vec<TypeStats>,
    /// Post-warmup pool checkout wait.
    pub pool_wait: Hist,
    /// Post-warmup schedule lag.
    pub lag: Hist,
    /// The time series, in interval order.
    pub intervals: Vec<IntervalRecord>,
    /// The interval log.
    pub log: Vec<LogEntry>,
    /// Batches that arrived after their interval was finalized.
    pub late_batches: u64,
    /// Post-warmup slow transactions of every client (at most [`MAX_SLOW`]).
    pub slow: Vec<stats::SlowTx>,
    /// Post-warmup transactions ended (successes and failures) per client, by client id.
    pub client_tx: Vec<u64>,
}

/// Slow transactions the collector keeps for the stall detector: with 8 per worker and interval
/// this is hours of a run in which every transaction is slow, and 2.4 MB.
pub const MAX_SLOW: usize = 100_000;

struct Acc {
    types: Vec<TypeStats>,
    pool_wait: Hist,
    lag: Hist,
    printed: bool,
}

/// The merged state the workers and the collector thread share (see the module's invariants).
pub type Sink = Arc<Mutex<Merged>>;

/// Everything merged so far: the run's totals, the open intervals and the finalized ones.
pub struct Merged {
    n_types: usize,
    warmup_intervals: u32,
    last_interval: Option<u32>,
    totals: Vec<TypeStats>,
    pool_wait: Hist,
    lag: Hist,
    open: BTreeMap<u32, Acc>,
    intervals: Vec<IntervalRecord>,
    late: u64,
    slow: Vec<stats::SlowTx>,
    client_tx: Vec<u64>,
    finalized_below: u32,
    finished: usize,
}

impl Merged {
    /// An empty state for the run `cfg` describes.
    pub fn new(cfg: &CollectorConfig) -> Merged {
        let n = cfg.names.len();
        Merged {
            n_types: n,
            warmup_intervals: cfg.warmup_intervals,
            last_interval: cfg.last_interval,
            totals: (0..n).map(|_| TypeStats::new(3)).collect(),
            pool_wait: stats::new_hist(3),
            lag: stats::new_hist(3),
            open: BTreeMap::new(),
            intervals: Vec::new(),
            late: 0,
            slow: Vec::new(),
            client_tx: vec![0; cfg.clients],
            finalized_below: 0,
            finished: 0,
        }
    }

    /// A [`Sink`] holding [`Merged::new`].
    pub fn sink(cfg: &CollectorConfig) -> Sink {
        Arc::new(Mutex::new(Merged::new(cfg)))
    }

    /// Adds one worker's batch into its interval, or, when that interval was already finalized
    /// (a late batch), into its record's counts and straight into the totals (outside the
    /// warmup). An interval reaches the totals once, when it is finalized (`Merged::fold`), so
    /// a batch is walked once.
    pub fn absorb(&mut self, batch: &Batch) {
        let i = self
            .last_interval
            .map_or(batch.interval, |l| batch.interval.min(l));
        let counted = i >= self.warmup_intervals;
        if counted {
            let room = MAX_SLOW.saturating_sub(self.slow.len());
            self.slow.extend(batch.slow.iter().take(room));
            for (client, n) in batch.client_counts() {
                if let Some(total) = self.client_tx.get_mut(client) {
                    *total += n;
                }
            }
        }
        if i < self.finalized_below {
            self.late += 1;
            if let Some(rec) = self.intervals.iter_mut().find(|r| r.index == i) {
                for (k, b) in batch.types.iter().enumerate() {
                    rec.ok[k] += b.ok;
                    rec.errors[k] += b.error_total();
                }
            }
            if counted {
                for (t, b) in self.totals.iter_mut().zip(&batch.types) {
                    t.add(b);
                }
                stats::add_into(&mut self.pool_wait, &batch.pool_wait);
                stats::add_into(&mut self.lag, &batch.lag);
            }
        } else {
            let n = self.n_types;
            let acc = self.open.entry(i).or_insert_with(|| Acc {
                types: (0..n).map(|_| TypeStats::new(3)).collect(),
                pool_wait: stats::new_hist(3),
                lag: stats::new_hist(3),
                printed: false,
            });
            for (t, b) in acc.types.iter_mut().zip(&batch.types) {
                t.add(b);
            }
            stats::add_into(&mut acc.pool_wait, &batch.pool_wait);
            stats::add_into(&mut acc.lag, &batch.lag);
        }
        if batch.last {
            self.finished += 1;
        }
    }

    /// Adds a finalized interval's accumulator into the totals, unless it lies in the warmup.
    fn fold(&mut self, i: u32, acc: &Acc) {
        if i < self.warmup_intervals {
            return;
        }
        for (t, a) in self.totals.iter_mut().zip(&acc.types) {
            t.add(a);
        }
        stats::add_into(&mut self.pool_wait, &acc.pool_wait);
        stats::add_into(&mut self.lag, &acc.lag);
    }
}

/// Collector configuration.
pub struct CollectorConfig {
    /// Query type names.
    pub names: Vec<String>,
    /// Workers that will each send a last batch.
    pub workers: usize,
    /// Clients of the run (ids `0..clients`), counted one by one.
    pub clients: usize,
    /// Start of interval 0.
    pub start: Instant,
    /// Interval length.
    pub interval: Duration,
    /// Intervals excluded from totals.
    pub warmup_intervals: u32,
    /// How long after its end an interval stays open for late batches.
    pub grace: Duration,
    /// Progress line period.
    pub progress: Option<Duration>,
    /// `--progress-timestamp`: the Unix time of `start` in seconds; progress lines then show
    /// Unix time instead of seconds since the start.
    pub progress_epoch: Option<f64>,
    /// `--progress-format ndjson`: progress lines are JSON objects (see [`JsonProgress`]).
    pub progress_json: Option<JsonProgress>,
    /// Whether lag is meaningful.
    pub open_loop: bool,
    /// The last interval of a timed run: transactions that complete after the end (they were in
    /// flight when it came) count in it, instead of forming a misleading stub interval.
    pub last_interval: Option<u32>,
}

/// What a JSON progress line needs beyond the interval's figures.
#[derive(Debug, Clone, Copy)]
pub struct JsonProgress {
    /// Unix time (s) of the run's start (interval 0).
    pub start_unix_s: f64,
    /// Clients of the run.
    pub clients: u32,
}

struct Progress {
    every: u32,
    since_print: u32,
    ok: u64,
    errors: u64,
    lat: Hist,
    lag: Hist,
}

/// The progress line of the `span` seconds ending `end` seconds after the start: pgbench's
/// text, or one JSON object (`--progress-format ndjson`).
fn progress_line(cfg: &CollectorConfig, p: &Progress, end: f64, span: f64, warmup: bool) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    let tps = p.ok as f64 / span;
    let (p50, p99) = (
        ms(p.lat.value_at_quantile(0.5)),
        ms(p.lat.value_at_quantile(0.99)),
    );
    let lag_p99 = cfg.open_loop.then(|| ms(p.lag.value_at_quantile(0.99)));
    if let Some(j) = cfg.progress_json {
        let mut o = serde_json::json!({
            "unix_s": j.start_unix_s + end,
            "elapsed_s": end,
            "interval_s": span,
            "tps": tps,
            "p50_ms": p50,
            "p99_ms": p99,
            "failed": p.errors,
            "clients": j.clients,
            "warmup": warmup,
        });
        if let Some(lag) = lag_p99 {
            o["lag_p99_ms"] = lag.into();
        }
        return o.to_string();
    }
    let mut line = format!(
        "progress: {} s, {tps:.1} tps, lat p50 {p50:.3} ms p99 {p99:.3} ms, {} failed",
        match cfg.progress_epoch {
            Some(epoch) => format!("{:.3}", epoch + end),
            None => format!("{end:.1}"),
        },
        p.errors
    );
    if let Some(lag) = lag_p99 {
        line.push_str(&format!(", lag p99 {lag:.3} ms"));
    }
    if warmup {
        line.push_str(" (warmup)");
    }
    line
}

/// Where the collector gives emptied batches back: a channel per worker, to the worker that
/// filled the batch ([`Batch::worker`]). A batch that finds its worker's channel full (the
/// worker allocated more while the collector was behind) is dropped here, on the collector's
/// thread, not at a load thread's boundary.
pub struct Returns(Vec<Sender<Batch>>);

/// Batches a worker's return channel holds: every batch a stocked recorder owns
/// ([`super::worker::SPARE_BATCHES`] and the one it fills), and one more.
pub const RETURN_DEPTH: usize = super::worker::SPARE_BATCHES + 2;

impl Returns {
    /// Return channels for `workers` workers: the collector's side, and each worker's receiving
    /// end (index = worker id).
    pub fn new(workers: usize) -> (Returns, Vec<Receiver<Batch>>) {
        let (senders, receivers) = (0..workers)
            .map(|_| crossbeam_channel::bounded(RETURN_DEPTH))
            .unzip();
        (Returns(senders), receivers)
    }

    /// Gives an emptied batch back to its worker, or drops it.
    fn give_back(&self, batch: Batch) {
        if let Some(to) = self.0.get(batch.worker) {
            let _ = to.try_send(batch);
        }
    }
}

/// Runs the collector until every worker sent its last batch, with a [`Sink`] of its own (the
/// workers then hand every batch over through `rx`).
pub fn run(cfg: CollectorConfig, rx: Receiver<Batch>, returns: Returns) -> Collected {
    let sink = Merged::sink(&cfg);
    run_with(cfg, rx, returns, sink)
}

/// Runs the collector until every worker's last batch was merged, into `sink` (shared with the
/// workers, see the module's invariants), or until every worker's sender is gone.
pub fn run_with(
    cfg: CollectorConfig,
    rx: Receiver<Batch>,
    returns: Returns,
    sink: Sink,
) -> Collected {
    let mut log = Vec::new();
    let mut progress = cfg.progress.map(|p| Progress {
        every: ((p.as_secs_f64() / cfg.interval.as_secs_f64()).round() as u32).max(1),
        since_print: 0,
        ok: 0,
        errors: 0,
        lat: stats::new_hist(3),
        lag: stats::new_hist(3),
    });
    let interval_s = cfg.interval.as_secs_f64();

    loop {
        let msg = rx.recv_timeout(Duration::from_millis(50));
        let mut guard = sink.lock();
        let m = &mut *guard;
        let mut merge = |mut batch: Batch| {
            m.absorb(&batch);
            batch.reset();
            returns.give_back(batch);
        };
        match msg {
            Ok(batch) => {
                merge(batch);
                // Everything else already queued too, so a progress line or an interval
                // finalized below counts it.
                while let Ok(batch) = rx.try_recv() {
                    merge(batch);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => m.finished = cfg.workers,
        }
        // Printed once the lock is released: a slow stderr must not hold the workers' merges.
        let mut lines = Vec::new();
        let all_done = m.finished >= cfg.workers;
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(cfg.start).as_secs_f64();

        // Progress: print each interval shortly after its end, from what has arrived.
        if let Some(p) = progress.as_mut() {
            for (&i, acc) in m.open.iter_mut() {
                let end = (i + 1) as f64 * interval_s;
                if acc.printed || (elapsed < end + 0.1 && !all_done) {
                    continue;
                }
                acc.printed = true;
                for t in &acc.types {
                    p.ok += t.ok;
                    p.errors += t.error_total();
                    p.lat.add(&t.latency).expect("same bounds");
                }
                p.lag.add(&acc.lag).expect("same bounds");
                p.since_print += 1;
                if p.since_print >= p.every || all_done {
                    let span = p.since_print as f64 * interval_s;
                    let warmup = i < cfg.warmup_intervals;
                    lines.push(progress_line(&cfg, p, end, span, warmup));
                    p.since_print = 0;
                    p.ok = 0;
                    p.errors = 0;
                    p.lat.reset();
                    p.lag.reset();
                }
            }
        }

        // Finalize intervals whose grace period has passed (all of them at the end).
        let ready: Vec<u32> = m
            .open
            .keys()
            .copied()
            .filter(|&i| {
                all_done || elapsed >= (i + 1) as f64 * interval_s + cfg.grace.as_secs_f64()
            })
            .collect();
        for i in ready {
            let acc = m.open.remove(&i).expect("key listed above");
            let rec = finalize(&cfg, i, &acc, &mut log);
            m.fold(i, &acc);
            m.intervals.push(rec);
            m.finalized_below = m.finalized_below.max(i + 1);
        }
        drop(guard);
        for line in lines {
            eprintln!("{line}");
        }
        if all_done {
            break;
        }
    }
    let mut m = sink.lock();
    let mut intervals = std::mem::take(&mut m.intervals);
    intervals.sort_by_key(|r| r.index);
    Collected {
        totals: std::mem::take(&mut m.totals),
        pool_wait: std::mem::replace(&mut m.pool_wait, stats::new_hist(1)),
        lag: std::mem::replace(&mut m.lag, stats::new_hist(1)),
        intervals,
        log,
        late_batches: m.late,
        slow: std::mem::take(&mut m.slow),
        client_tx: std::mem::take(&mut m.client_tx),
    }
}

fn finalize(cfg: &CollectorConfig, i: u32, acc: &Acc, log: &mut Vec<LogEntry>) -> IntervalRecord {
    let interval_s = cfg.interval.as_secs_f64();
    let mut all = stats::new_hist(3);
    let mut rec = IntervalRecord {
        index: i,
        start_s: i as f64 * interval_s,
        warmup: i < cfg.warmup_intervals,
        ok: Vec::with_capacity(acc.types.len()),
        errors: Vec::with_capacity(acc.types.len()),
        p99_us: Vec::with_capacity(acc.types.len()),
        all_p50_us: 0,
        all_p99_us: 0,
        all_max_us: 0,
        lag_p99_us: acc.lag.value_at_quantile(0.99),
    };
    for (name, t) in cfg.names.iter().zip(&acc.types) {
        rec.ok.push(t.ok);
        rec.errors.push(t.error_total());
        rec.p99_us.push(if t.latency.is_empty() {
            0
        } else {
            t.latency.value_at_quantile(0.99)
        });
        all.add(&t.latency).expect("same bounds");
        if !t.latency.is_empty() {
            log.push(LogEntry {
                tag: name.clone(),
                start_s: rec.start_s,
                duration_s: interval_s,
                max_us: t.latency.max(),
                encoded: crate::hist::encode(&t.latency),
            });
        }
    }
    if !all.is_empty() {
        rec.all_p50_us = all.value_at_quantile(0.5);
        rec.all_p99_us = all.value_at_quantile(0.99);
        rec.all_max_us = all.max();
    }
    rec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock;
    use crate::engine::worker::Recorder;

    #[test]
    fn a_late_batch_and_the_warmup_reach_the_totals_as_before_workers_merged_their_own() {
        // 100 s intervals, the first in the warmup, the run started 250 s ago with no grace: the
        // collector finalizes intervals 0 and 1 at once, and interval 2 ends 50 s from now, a
        // margin that a loaded 2-core VM does not use up before the last flush.
        let start = Instant::now()
            .checked_sub(Duration::from_secs(250))
            .expect("the monotonic clock is more than 250 s past its origin");
        let cfg = CollectorConfig {
            names: vec!["q".into()],
            workers: 2,
            clients: 2,
            start,
            interval: Duration::from_secs(100),
            warmup_intervals: 1,
            grace: Duration::ZERO,
            progress: None,
            progress_epoch: None,
            progress_json: None,
            open_loop: false,
            last_interval: None,
        };
        let sink = Merged::sink(&cfg);
        let (tx, rx) = crossbeam_channel::unbounded();
        let (returns, returned) = Returns::new(2);
        let recorder = |id: usize| {
            Recorder::new(
                id,
                1,
                2,
                start,
                cfg.interval,
                tx.clone(),
                returned[id].clone(),
            )
            .absorbing(sink.clone())
            .open_loop(false)
        };
        let (mut early, mut late) = (recorder(0), recorder(1));
        drop((tx, returned));
        let t0 = clock::global().stamp_of(start);
        early.record_ms(3, t0, 50_000); // interval 0: the warmup
        early.record_ms(2, t0, 150_000); // interval 1
        early.record_ms(1, t0, 250_000); // interval 2: hands interval 1 over
        let collector_sink = sink.clone();
        let collector = std::thread::spawn(move || run_with(cfg, rx, returns, collector_sink));
        let waited = Instant::now();
        while sink.lock().finalized_below < 2 {
            assert!(
                waited.elapsed() < Duration::from_secs(40),
                "intervals 0 and 1 finalized"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        late.record_ms(4, t0, 160_000); // interval 1, after it was finalized
        late.flush(t0 + Duration::from_millis(160_000), true);
        early.flush(t0 + Duration::from_millis(250_000), true);
        drop((early, late));
        let got = collector.join().expect("the collector ends");
        // Both of the late worker's batches: its empty one of interval 0, then interval 1's.
        assert_eq!(got.late_batches, 2);
        assert_eq!(got.totals[0].ok, 2 + 4 + 1, "all but the warmup's 3");
        assert_eq!(got.totals[0].latency.len(), 7);
        let per_interval: Vec<(u32, u64)> =
            got.intervals.iter().map(|r| (r.index, r.ok[0])).collect();
        assert_eq!(per_interval, [(0, 3), (1, 2 + 4), (2, 1)]);
        // Per client, as the totals: the late batch counted, the warmup not.
        assert_eq!(got.client_tx, [2 + 1, 4]);
    }
}
