//! Cost per query of pgstorm's measurement path: two clock reads, recording pool wait and query
//! latency into the worker's own histograms, the interval-boundary check, and the amortized
//! hand-off of a batch per interval to the real collector thread (which merges it).
//!
//! Run: `cargo bench --bench measurement_path`. The figure in docs/measurements.md comes from here.
//! Goal: ≤ 50 ns per query on the load machine.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pgstorm::engine::collector::{self, CollectorConfig};
use pgstorm::engine::stats;
use pgstorm::engine::worker::Recorder;

fn measurement_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("measurement_path");
    group.throughput(Throughput::Elements(1));
    for (label, interval) in [
        ("interval_1ms", Duration::from_millis(1)),
        ("interval_1s", Duration::from_secs(1)),
    ] {
        group.bench_function(label, |b| {
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
                open_loop: false,
                last_interval: None,
            };
            let collector = std::thread::spawn(move || collector::run(cfg, rx, rtx));
            let mut rec =
                Recorder::new(0, names.len(), 3, start, interval, tx, rrx).open_loop(false);
            let mut kind = 0usize;
            b.iter(|| {
                let t0 = Instant::now();
                let t1 = Instant::now();
                // The query itself would run here.
                let t2 = Instant::now();
                rec.maybe_flush(t2);
                let batch = &mut rec.batch;
                stats::record(&mut batch.pool_wait, t1 - t0);
                let ts = &mut batch.types[kind];
                stats::record(&mut ts.latency, t2 - t1 + Duration::from_micros(300));
                ts.ok += 1;
                kind = if kind == 5 { 0 } else { kind + 1 };
                black_box(&rec.batch);
            });
            rec.flush(Instant::now(), true);
            drop(rec);
            let collected = collector.join().unwrap();
            black_box(collected.totals.len());
        });
    }
    group.finish();
}

/// The floor under the path above: one monotonic clock read (the path makes three per query:
/// before checkout, after checkout, at completion).
fn clock_read(c: &mut Criterion) {
    c.bench_function("clock_read", |b| b.iter(|| black_box(Instant::now())));
}

criterion_group!(benches, measurement_path, clock_read);
criterion_main!(benches);
