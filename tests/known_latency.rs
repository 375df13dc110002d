//! Known-answer latency: every transaction sleeps a known time on the server (`pg_sleep`), sent
//! at a fixed rate well below capacity. The measured latency cannot be below the sleep, and a
//! punctual open loop adds little above it: the ground truth that agreement with pgbench alone
//! cannot give. Both drivers: one thread per client over the pool, and `-j 2`.

mod common;

use std::time::Duration;

use pgstorm::engine::Arrival;
use pgstorm::scenarios::queries::{self, QueriesOptions};
use pgstorm::scenarios::session::TargetOptions;
use pgstorm::workload::script::ScriptSource;

/// The server-side sleep of every transaction: long enough that the tens of milliseconds a loaded
/// 2-core machine can keep a reply waiting for a CPU stay a fraction of it.
const SLEEP_MS: f64 = 50.0;

#[test]
fn a_known_server_sleep_is_measured_just_above_itself_in_both_drivers() {
    for threads in [None, Some(2)] {
        let tmp = tempfile::tempdir().unwrap();
        let mut o = QueriesOptions {
            target: TargetOptions {
                dsn: Some(common::database("known_latency")),
                sandbox_max_connections: None,
                ..Default::default()
            },
            mix: String::new(),
            scripts: vec![ScriptSource {
                name: "sleep".into(),
                source_name: "sleep".into(),
                text: format!("SELECT pg_sleep({});\n", SLEEP_MS / 1000.0),
                weight: 1,
                builtin: false,
            }],
            ..QueriesOptions::default()
        };
        o.archive.results_dir = tmp.path().to_path_buf();
        o.archive.label = "known".into();
        o.print_summary = false;
        o.monitor = None;
        o.engine.pin = false;
        o.engine.threads = threads;
        o.engine.clients = 4;
        // 4 clients could serve 80 tx/s of 50 ms: 20 tx/s keeps them a quarter busy.
        o.engine.rate = Some(20.0);
        o.engine.arrival = Arrival::Poisson;
        o.engine.duration = Some(Duration::from_secs(6));
        let out = queries::run(&o).unwrap();
        let load = out.doc.load.as_ref().unwrap();
        let l = &load.summary.latency;
        eprintln!(
            "{threads:?}: {} tx, min {} p50 {} p99 {} ms, lag p99 {:?} ms",
            load.summary.count,
            l.min_ms,
            l.p50_ms,
            l.p99_ms,
            load.schedule_lag.as_ref().map(|s| s.p99_ms)
        );
        assert!(
            load.summary.count >= 60,
            "{threads:?}: {} tx",
            load.summary.count
        );
        // Nothing can return before the server's sleep is over.
        assert!(l.min_ms >= SLEEP_MS, "{threads:?}: min {} ms", l.min_ms);
        // The median sits just above it; the margins hold on a loaded 2-core machine, where a
        // reply can wait a few ms for a CPU.
        assert!(
            l.p50_ms <= SLEEP_MS * 1.2,
            "{threads:?}: p50 {} ms for a {SLEEP_MS} ms sleep",
            l.p50_ms
        );
        // The tail gets more: a loaded machine has held a reply for a whole sleep more (p99
        // 102 ms seen with `-j 2`). Three sleeps still catch a tail that counts a sleep twice.
        assert!(
            l.p99_ms <= SLEEP_MS * 3.0,
            "{threads:?}: p99 {} ms for a {SLEEP_MS} ms sleep (lag p99 {:?})",
            l.p99_ms,
            load.schedule_lag.as_ref().map(|s| s.p99_ms)
        );
    }
}
