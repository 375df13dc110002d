//! Cost per query of pgstorm's measurement path in closed loop: the clock reads at the transaction's
//! boundaries (two per transaction, the end of one being the start of the next), recording pool
//! wait and the transaction through the workers' own [`Recorder`], the interval-boundary check,
//! and the amortized hand-off of a batch per interval to the real collector thread (which merges
//! it). `measurement_path_three_reads` is the same path with a clock read per boundary of each
//! transaction instead (three), measured in the same run for the ratio.
//!
//! Run: `cargo bench --bench measurement_path`. The figure in docs/measurements.md comes from here.
//! Goal: ≤ 50 ns per query on the load machine.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pgstorm::engine::collector::{self, CollectorConfig};
use pgstorm::engine::stats;
use pgstorm::engine::worker::Recorder;

/// How a worker reads the clock around one closed-loop transaction.
#[derive(Clone, Copy)]
enum Clock {
    /// One read per boundary: the previous transaction's end is this one's checkout start, then
    /// one read when the connection is in hand and one at completion (the workers' path).
    PerBoundary,
    /// Three reads per transaction: before checkout, after checkout, at completion (the path
    /// before the boundaries were shared), kept for a side-by-side ratio in one run.
    ThreeReads,
}

fn measurement_path(c: &mut Criterion) {
    for (group_name, clock) in [
        ("measurement_path", Clock::PerBoundary),
        ("measurement_path_three_reads", Clock::ThreeReads),
    ] {
        let mut group = c.benchmark_group(group_name);
        group.throughput(Throughput::Elements(1));
        for (label, interval) in [
            ("interval_1ms", Duration::from_millis(1)),
            ("interval_1s", Duration::from_secs(1)),
        ] {
            group.bench_function(label, |b| bench_path(b, clock, interval));
        }
        group.finish();
    }
}

/// One closed-loop transaction's measurement: clock reads per `clock`, the interval check, the
/// pool wait and the transaction recorded exactly as the pool driver's workers record them.
fn bench_path(b: &mut criterion::Bencher, clock: Clock, interval: Duration) {
    let names: Vec<String> = (0..6).map(|i| format!("q{i}")).collect();
    let (tx, rx) = crossbeam_channel::unbounded();
    let (rtx, rrx) = crossbeam_channel::bounded(4);
    let start = Instant::now();
    let cfg = CollectorConfig {
        names: names.clone(),
        workers: 1,
        start,
        interval,
        warmup_intervals: 0,
        grace: interval * 2,
        progress: None,
        progress_epoch: None,
        progress_json: None,
        open_loop: false,
        last_interval: None,
    };
    let collector = std::thread::spawn(move || collector::run(cfg, rx, rtx));
    let mut rec = Recorder::new(0, names.len(), 3, start, interval, tx, rrx).open_loop(false);
    let mut kind = 0usize;
    let mut last_end = Instant::now();
    b.iter(|| {
        let t0 = match clock {
            Clock::PerBoundary => last_end,
            Clock::ThreeReads => Instant::now(),
        };
        let t1 = Instant::now();
        // The query itself would run here.
        let t2 = Instant::now();
        rec.maybe_flush(t2);
        stats::record(&mut rec.batch.pool_wait, t1 - t0);
        rec.record_transaction(0, kind, None, 1, Ok(()), t1, t2);
        last_end = t2;
        kind = if kind == 5 { 0 } else { kind + 1 };
        black_box(&rec.batch);
    });
    rec.flush(Instant::now(), true);
    drop(rec);
    let collected = collector.join().unwrap();
    black_box(collected.totals.len());
}

/// The floor under the path above: one monotonic clock read (the path makes two per query: after
/// checkout and at completion, the previous completion serving as the checkout start).
fn clock_read(c: &mut Criterion) {
    c.bench_function("clock_read", |b| b.iter(|| black_box(Instant::now())));
}

criterion_group!(benches, measurement_path, clock_read);
criterion_main!(benches);
