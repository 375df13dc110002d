//! A run stops when, and only when, its own stop token is stopped: on both drivers (the pool
//! driver and the multiplexed `-j` driver) a stopped token ends a long run promptly with the
//! "interrupted" outcome and what was measured until then, and a second run in the same process
//! with a token of its own goes on meanwhile (the token decides, not a process-wide flag).

mod common;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pgstorm::engine::{self, EngineConfig, EngineOutput};
use pgstorm::scenarios::queries::QueriesOptions;
use pgstorm::stop::StopToken;
use pgstorm::target::{Target, TargetSource};
use pgstorm::workload::script::{Predefined, Script};
use pgstorm::workload::{Protocol, QueryType, Workload};

/// Far longer than the test: a run that ends did so because its token was stopped.
const LONG: Duration = Duration::from_secs(600);
/// How long a stopped run may take to end on a loaded 2-core machine (it polls every 10 ms;
/// in-flight `SELECT 1`s finish in microseconds).
const PROMPT: Duration = Duration::from_secs(20);

/// Starts a `SELECT 1` run of 2 clients on the database of `dsn` (`threads`: the `-j` driver)
/// that only `stop` can end.
fn start(dsn: &str, threads: Option<u32>, stop: &StopToken) -> JoinHandle<EngineOutput> {
    let target = Target::new(dsn.parse().unwrap(), TargetSource::Dsn);
    let script = Script::parse("one", "one", "SELECT 1;\n", Predefined::default()).unwrap();
    let workload = Workload::new(
        vec![(Box::new(script) as Box<dyn QueryType>, 1)],
        Protocol::Prepared,
    )
    .unwrap();
    let cfg = EngineConfig {
        clients: 2,
        threads,
        duration: Some(LONG),
        pin: false,
        ..QueriesOptions::default().engine
    };
    let stop = stop.clone();
    std::thread::spawn(move || engine::run(&target, Arc::new(workload), &cfg, &stop).unwrap())
}

/// Successful transactions of a run.
fn ok(out: &EngineOutput) -> u64 {
    out.totals.iter().map(|t| t.ok).sum()
}

/// Waits until `h` ended, for at most `limit`; whether it ended.
fn ends_within(h: &JoinHandle<EngineOutput>, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !h.is_finished() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Runs a (`first`) and b (`second`) side by side with tokens of their own, stops a's, checks a
/// ended promptly as interrupted while b still runs, then stops b's and checks the same of b.
fn two_runs_stop_apart(db: &str, first: Option<u32>, second: Option<u32>) {
    let (stop_a, stop_b) = (StopToken::new(), StopToken::new());
    // Both databases first: a CREATE DATABASE can take seconds on a loaded machine, and made
    // between the two starts it would start b that much later than a (see the last check).
    let (dsn_a, dsn_b) = (
        common::database(&format!("{db}_a")),
        common::database(&format!("{db}_b")),
    );
    let a = start(&dsn_a, first, &stop_a);
    let b = start(&dsn_b, second, &stop_b);
    // Let both connect and run for a moment.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !a.is_finished() && !b.is_finished(),
        "a run ended unstopped"
    );

    let t0 = Instant::now();
    stop_a.stop();
    assert!(
        ends_within(&a, PROMPT),
        "run a ({first:?}) did not end within {PROMPT:?} of its stop"
    );
    let out_a = a.join().unwrap();
    eprintln!("a ({first:?}) ended {:?} after its stop", t0.elapsed());
    assert!(out_a.interrupted, "a ({first:?}) not marked interrupted");
    assert!(
        ok(&out_a) > 0,
        "a ({first:?}) measured nothing before its stop"
    );

    // The positive control of the separation: b's token was not stopped and b goes on, for
    // longer than any lag between the two runs' starts, so b's window outlasts a's.
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        !b.is_finished(),
        "stopping a's token ended b ({second:?}) too"
    );
    assert!(!stop_b.is_stopped());
    stop_b.stop();
    assert!(
        ends_within(&b, PROMPT),
        "run b ({second:?}) did not end within {PROMPT:?} of its stop"
    );
    let out_b = b.join().unwrap();
    assert!(out_b.interrupted, "b ({second:?}) not marked interrupted");
    assert!(
        out_b.wall > out_a.wall,
        "b ({:?}) ran no longer than a ({:?})",
        out_b.wall,
        out_a.wall
    );
}

#[test]
fn the_pool_driver_stops_by_its_token_and_a_multiplexed_run_goes_on() {
    two_runs_stop_apart("stop_pool_first", None, Some(1));
}

#[test]
fn the_multiplexed_driver_stops_by_its_token_and_a_pool_run_goes_on() {
    two_runs_stop_apart("stop_mux_first", Some(1), None);
}
