//! Cost per query of pgstorm's measurement path in closed loop, as both drivers run it: two clock
//! reads per transaction on the drivers' clock ([`pgstorm::clock::stamp`]: the end of one
//! transaction is the start of the next), then [`Recorder::end_transaction`] (the interval-boundary
//! check, the pool wait and the transaction recorded into the worker's histograms, the
//! slow-transaction check), with the amortized hand-off of a batch per interval to the real
//! collector thread, wired to its sink as the drivers are (the worker merges a batch itself only
//! while the collector is behind).
//!
//! Beside it, in the same run for the ratios: `measurement_path_monotonic`, the same path on the
//! monotonic clock (the stamps the drivers' clock gives where it falls back to `Instant::now`),
//! and `measurement_path_three_reads`, on the monotonic clock with a read at each of the
//! transaction's three boundaries (before the boundaries were shared). `clock_read/*` is one read
//! of each clock: the drivers' stamp, the drivers' clock as an `Instant`, and `Instant::now`.
//!
//! Run: `cargo bench --bench measurement_path`. The figures in docs/measurements.md come from here.
//! Goal: ≤ 50 ns per query on the load machine.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pgstorm::clock::{self, Stamp};
use pgstorm::engine::collector::{self, CollectorConfig};
use pgstorm::engine::worker::{Recorder, SPARE_BATCHES};

fn measurement_path(c: &mut Criterion) {
    // Calibrated before measuring, as a run does before it starts.
    eprintln!("drivers' clock: {:?}", clock::global().check());
    let monotonic = || clock::global().stamp_of(Instant::now());
    group(c, "measurement_path", clock::stamp, false);
    group(c, "measurement_path_monotonic", monotonic, false);
    group(c, "measurement_path_three_reads", monotonic, true);
}

/// The path on clock `now` (a direct call, inlined as in the drivers) at two interval lengths.
fn group(c: &mut Criterion, name: &str, now: impl Fn() -> Stamp + Copy, three_reads: bool) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    for (label, interval) in [
        ("interval_1ms", Duration::from_millis(1)),
        ("interval_1s", Duration::from_secs(1)),
    ] {
        group.bench_function(label, |b| bench_path(b, now, three_reads, interval));
    }
    group.finish();
}

/// One closed-loop transaction's measurement on clock `now`: the reads (per boundary, or three
/// with `three_reads`), then what the workers call once a transaction ended.
fn bench_path(
    b: &mut criterion::Bencher,
    now: impl Fn() -> Stamp,
    three_reads: bool,
    interval: Duration,
) {
    let names: Vec<String> = (0..6).map(|i| format!("q{i}")).collect();
    let (tx, rx) = crossbeam_channel::unbounded();
    let (returns, mut returned) = collector::Returns::new(1);
    let start = Instant::now();
    let cfg = CollectorConfig {
        names: names.clone(),
        workers: 1,
        clients: 1,
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
    let sink = collector::Merged::sink(&cfg);
    let collector_sink = sink.clone();
    let collector =
        std::thread::spawn(move || collector::run_with(cfg, rx, returns, collector_sink));
    let mut rec = Recorder::new(0, names.len(), 3, start, interval, tx, returned.remove(0))
        .absorbing(sink)
        .open_loop(false)
        .stocked(SPARE_BATCHES);
    let mut kind = 0usize;
    let mut last_end = now();
    b.iter(|| {
        let t0 = if three_reads { now() } else { last_end };
        // The checkout would happen here.
        let t1 = now();
        // The query itself would run here.
        let t2 = now();
        rec.end_transaction(Some(t1.nanos_since(t0)), 0, kind, None, 1, Ok(()), t1, t2);
        last_end = t2;
        kind = if kind == 5 { 0 } else { kind + 1 };
        black_box(&rec.batch);
    });
    rec.flush(clock::stamp(), true);
    drop(rec);
    let collected = collector.join().unwrap();
    black_box(collected.totals.len());
}

/// The floor under the paths above: one read of each clock (the paths make two per query).
fn clock_read(c: &mut Criterion) {
    let mut group = c.benchmark_group("clock_read");
    group.bench_function("drivers_clock", |b| b.iter(|| black_box(clock::stamp())));
    group.bench_function("drivers_clock_instant", |b| {
        b.iter(|| black_box(clock::now()))
    });
    group.bench_function("monotonic", |b| b.iter(|| black_box(Instant::now())));
    group.finish();
}

criterion_group!(benches, measurement_path, clock_read);
criterion_main!(benches);
