//! The collector thread: merges the workers' interval batches into run totals, a per-interval
//! time series, an HdrHistogram interval log, and a pgbench-style progress line.
//!
//! Invariants:
//! - Totals are exact: every batch is added to them (unless its interval is in the warmup), even
//!   one that arrives after its interval was finalized (counted in `late_batches`).
//! - An interval is finalized (percentiles computed, histograms encoded for the log, memory
//!   released) once `grace` has passed after its end, so a worker stuck in a long query can still
//!   deliver; a progress line is printed shortly after the end, from what has arrived by then.
//! - Emptied batches go back to the workers through the recycle channel: no steady-state
//!   allocation.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

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
}

/// Slow transactions the collector keeps for the stall detector: with 8 per worker and interval
/// this is hours of a run in which every transaction is slow, and 2.4 MB.
pub const MAX_SLOW: usize = 100_000;

struct Acc {
    types: Vec<TypeStats>,
    lag: Hist,
    printed: bool,
}

/// Collector configuration.
pub struct CollectorConfig {
    /// Query type names.
    pub names: Vec<String>,
    /// Workers that will each send a last batch.
    pub workers: usize,
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

/// Runs the collector until every worker sent its last batch.
pub fn run(cfg: CollectorConfig, rx: Receiver<Batch>, recycle: Sender<Batch>) -> Collected {
    let n = cfg.names.len();
    let mut totals: Vec<TypeStats> = (0..n).map(|_| TypeStats::new(3)).collect();
    let mut pool_wait = stats::new_hist(3);
    let mut lag_total = stats::new_hist(3);
    let mut open: BTreeMap<u32, Acc> = BTreeMap::new();
    let mut intervals: Vec<IntervalRecord> = Vec::new();
    let mut log = Vec::new();
    let mut late = 0u64;
    let mut slow = Vec::new();
    let mut finalized_below = 0u32;
    let mut finished = 0usize;
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
        match msg {
            Ok(mut batch) => {
                let i = cfg
                    .last_interval
                    .map_or(batch.interval, |l| batch.interval.min(l));
                let in_warmup = i < cfg.warmup_intervals;
                if !in_warmup {
                    for (t, b) in totals.iter_mut().zip(&batch.types) {
                        t.add(b);
                    }
                    stats::add_into(&mut pool_wait, &batch.pool_wait);
                    stats::add_into(&mut lag_total, &batch.lag);
                    let room = MAX_SLOW.saturating_sub(slow.len());
                    slow.extend(batch.slow.iter().take(room));
                }
                if i < finalized_below {
                    late += 1;
                    if let Some(rec) = intervals.iter_mut().find(|r| r.index == i) {
                        for (k, b) in batch.types.iter().enumerate() {
                            rec.ok[k] += b.ok;
                            rec.errors[k] += b.error_total();
                        }
                    }
                } else {
                    let acc = open.entry(i).or_insert_with(|| Acc {
                        types: (0..n).map(|_| TypeStats::new(3)).collect(),
                        lag: stats::new_hist(3),
                        printed: false,
                    });
                    for (t, b) in acc.types.iter_mut().zip(&batch.types) {
                        t.add(b);
                    }
                    stats::add_into(&mut acc.lag, &batch.lag);
                }
                if batch.last {
                    finished += 1;
                }
                batch.reset();
                let _ = recycle.try_send(batch);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => finished = cfg.workers,
        }
        let all_done = finished >= cfg.workers;
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(cfg.start).as_secs_f64();

        // Progress: print each interval shortly after its end, from what has arrived.
        if let Some(p) = progress.as_mut() {
            for (&i, acc) in open.iter_mut() {
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
                    eprintln!("{}", progress_line(&cfg, p, end, span, warmup));
                    p.since_print = 0;
                    p.ok = 0;
                    p.errors = 0;
                    p.lat.reset();
                    p.lag.reset();
                }
            }
        }

        // Finalize intervals whose grace period has passed (all of them at the end).
        let ready: Vec<u32> = open
            .keys()
            .copied()
            .filter(|&i| {
                all_done || elapsed >= (i + 1) as f64 * interval_s + cfg.grace.as_secs_f64()
            })
            .collect();
        for i in ready {
            let acc = open.remove(&i).expect("key listed above");
            let rec = finalize(&cfg, i, &acc, &mut log);
            intervals.push(rec);
            finalized_below = finalized_below.max(i + 1);
        }
        if all_done {
            break;
        }
    }
    intervals.sort_by_key(|r| r.index);
    Collected {
        totals,
        pool_wait,
        lag: lag_total,
        intervals,
        log,
        late_batches: late,
        slow,
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
