//! Resource monitoring against a real sandbox PostgreSQL: samples present and plausible during a
//! load (server-side TPS agrees with the client's count), the statistics backends flush as the
//! load's connections close counted in no summary or peak, a CPU burn raises the CPU alerts while a
//! calm span raises none, a forced deadlock is counted, and the warnings built on the samples
//! fire on doctored documents and stay quiet on a clean one (the clock check's too, with a TSC
//! calibrated wrong); an unreachable server leaves an error (no password) and the host samples.

mod common;

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use pgstorm::monitor::model::{Monitoring, Phase, Thresholds};
use pgstorm::monitor::{Monitor, MonitorConfig};
use pgstorm::report::model::RunDocument;
use pgstorm::scenarios::queries::{self, QueriesOptions};
use pgstorm::scenarios::session::TargetOptions;
use pgstorm::target::{Target, TargetSource};

const INTERVAL: Duration = Duration::from_millis(250);

fn monitor_config(thresholds: Thresholds) -> MonitorConfig {
    MonitorConfig {
        interval: INTERVAL,
        thresholds,
        ..MonitorConfig::default()
    }
}

fn read_doc(dir: &Path) -> RunDocument {
    serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap()
}

fn codes(doc: &RunDocument) -> Vec<String> {
    let load = doc.load.as_ref().unwrap();
    pgstorm::report::warnings::load_warnings(doc, load)
        .into_iter()
        .map(|w| w.code.to_string())
        .collect()
}

/// A closed-loop load of `clients` for `secs` on database `db`, archived under `results`.
fn load_options(
    results: &Path,
    db: &str,
    clients: u32,
    secs: u64,
    monitor: Option<MonitorConfig>,
) -> QueriesOptions {
    let mut o = QueriesOptions {
        target: TargetOptions {
            dsn: Some(common::database(db)),
            sandbox_max_connections: None,
            ..Default::default()
        },
        monitor,
        ..QueriesOptions::default()
    };
    o.archive.results_dir = results.to_path_buf();
    o.archive.label = db.into();
    o.print_summary = false;
    o.engine.clients = clients;
    o.engine.duration = Some(Duration::from_secs(secs));
    o.engine.pin = false;
    o
}

#[test]
fn a_sandbox_run_records_plausible_host_and_server_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let o = load_options(
        tmp.path(),
        "mon_e2e",
        4,
        3,
        Some(monitor_config(Thresholds::default())),
    );
    let out = queries::run(&o).unwrap();
    let doc = read_doc(&out.dir);
    let load = doc.load.as_ref().unwrap();
    let m = doc.monitoring.as_ref().expect("monitoring section");
    assert!(m.errors.is_empty(), "{:?}", m.errors);

    // Host samples: one per tick over ~3 s of load plus setup, each plausible.
    let host = m.host.as_ref().expect("host samples");
    assert!(
        host.samples.len() >= 8,
        "{} host samples",
        host.samples.len()
    );
    assert_eq!(host.dropped, 0);
    assert_eq!(host.postgres_source.as_deref(), Some("backend_parent"));
    for s in &host.samples {
        assert!((0.0..=100.0).contains(&s.cpu_percent), "{s:?}");
        assert_eq!(s.per_core.len(), doc.host.cpus);
        assert!(s.memory_percent > 0.0 && s.memory_percent <= 100.0, "{s:?}");
        assert!(s.client_cpu_percent <= s.cpu_percent + 10.0, "{s:?}");
        // Postmaster + 4 pooled backends + admin + sampler + auxiliary processes.
        assert!(s.server_processes.unwrap() >= 5, "{s:?}");
    }
    assert!(host.samples.iter().any(|s| s.client_cpu_percent > 0.0));
    assert!(host
        .samples
        .iter()
        .any(|s| s.server_cpu_percent.unwrap() > 0.0));
    assert!(host.samples.iter().any(|s| s.loopback_bytes_s > 0.0));
    assert!(host.cost_us_mean > 0.0);
    let under = m.under_load.expect("under-load summary");
    assert!(under.samples >= 6, "{under:?}");
    assert!(under.cpu_peak_percent >= under.cpu_p95_percent);
    assert!(under.server_cpu_mean_percent.unwrap() > 0.0);
    assert!(
        !m.alerts.iter().any(|a| a.metric == "client_cpu"),
        "{:?}",
        m.alerts
    );

    // Server samples: the sampler's count agrees with the client's within a few percent. The
    // only other transactions in this database are the pool's connection setup (a SET and one
    // prepare per query type on each connection, each its own transaction) and the admin
    // connection's few queries around the load: allowed for explicitly, so the check holds
    // however slow a busy machine makes the load.
    let server = m.server.as_ref().expect("server samples");
    assert_eq!(server.checkpoint_view, "pg_stat_bgwriter");
    assert!(server.samples.len() >= 6, "{}", server.samples.len());
    let client = load.server_check.as_ref().unwrap().client_transactions as f64;
    let t = &server.totals;
    let counted = (t.xact_commit + t.xact_rollback) as f64;
    let setup = f64::from(o.engine.clients) * (load.queries.len() as f64 + 2.0) + 50.0;
    assert!(
        counted >= client * 0.99 && counted <= client * 1.03 + setup,
        "server sampler counted {counted} transactions, client {client}"
    );
    // The `transaction` query type rolls back; nothing deadlocks in this mix.
    assert!(t.xact_rollback > 0);
    assert_eq!(t.deadlocks, 0);
    assert!(t.wal_bytes.unwrap() > 0);
    assert!(t.cache_hit_ratio.unwrap() > 0.5);
    assert!(server
        .samples
        .iter()
        .any(|s| s.by_state.get("active").copied().unwrap_or(0)
            + s.by_state.get("idle").copied().unwrap_or(0)
            >= 4));
    assert!(server.cost_us_mean > 0.0);

    // resources.csv: a header and one row per tick.
    let csv = std::fs::read_to_string(out.dir.join("resources.csv")).unwrap();
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("tick,t_s,phase,cpu_percent,memory_percent"));
    assert!(lines.count() >= host.samples.len());

    // The archived document still matches the checked-in schema.
    common::assert_run_json_matches_schema(&out.dir);

    let summary = pgstorm::report::summary::render(&doc);
    assert!(summary.contains("host under load: CPU mean"), "{summary}");
    assert!(summary.contains("server sampler:"), "{summary}");

    warnings_follow_the_samples(&doc);
}

/// Regression: backends flush their pg_stat_database counters about once a second and when they
/// disconnect, so the sample `Monitor::stop` takes after the pool closed covers a fraction of a
/// second holding up to a second of every backend's transactions. Before samples had phases,
/// three sandbox runs (8 clients, 8 s, 1 s samples) gave that last sample 11.6x, 8.0x and 2.9x the
/// median server_tps of the load's samples, and it became the server summary's peak.
#[test]
fn the_disconnect_flush_after_the_load_counts_in_no_summary_or_peak() {
    let tmp = tempfile::tempdir().unwrap();
    let mut o = load_options(
        tmp.path(),
        "mon_edges",
        8,
        6,
        Some(MonitorConfig::default()),
    );
    o.mix = "point=1".into();
    let out = queries::run(&o).unwrap();
    let doc = read_doc(&out.dir);
    let m = doc.monitoring.as_ref().unwrap();
    let w = m.load_window.expect("load window");
    let server = m.server.as_ref().unwrap();

    // Which samples lie inside the load, from their times alone: each covers the span since the
    // previous one of its sampler, and the host and server samples of one tick share a phase, so
    // a tick is inside when both its spans are (the two samplers read their sources a moment
    // apart, and the load can end between them).
    let host = m.host.as_ref().unwrap();
    let mut spans: std::collections::BTreeMap<u64, (f64, f64)> = Default::default();
    for series in [
        host.samples
            .iter()
            .map(|s| (s.tick, s.t_s))
            .collect::<Vec<_>>(),
        server.samples.iter().map(|s| (s.tick, s.t_s)).collect(),
    ] {
        let mut from = 0.0;
        for (tick, t) in series {
            let e = spans.entry(tick).or_insert((from, t));
            *e = (e.0.min(from), e.1.max(t));
            from = t;
        }
    }
    let inside: Vec<f64> = server
        .samples
        .iter()
        .filter(|s| {
            let (from, to) = spans[&s.tick];
            from >= w.start_s && to <= w.end_s
        })
        .map(|s| s.tps)
        .collect();
    assert!(inside.len() >= 3, "{} samples inside {w:?}", inside.len());
    let mut sorted = inside.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let last = server.samples.last().unwrap();
    eprintln!(
        "load median {median:.0} tx/s; last sample (t={:.3}s, load ended at {:.3}s) {:.0} tx/s, \
         {:.1}x the median",
        last.t_s,
        w.end_s,
        last.tps,
        last.tps / median
    );

    // The stop sample is taken after the pool's backends exited: never the load's.
    assert!(last.t_s > w.end_s);
    assert_eq!(last.phase, Phase::After);
    let counted: Vec<f64> = server
        .samples
        .iter()
        .filter(|s| s.phase == Phase::Load)
        .map(|s| s.tps)
        .collect();
    assert_eq!(counted, inside);
    // The summary is the inside samples' (mean, p95 and peak), and its peak is one of the load's
    // own intervals: lumpy (each backend flushes about once a second) but far from the flush.
    let want = pgstorm::monitor::model::Stat::of(inside.iter().copied());
    assert_eq!(server.summary.tps, want);
    assert!(
        server.summary.tps.peak <= 4.0 * median,
        "peak {} vs median {median}",
        server.summary.tps.peak
    );
    // Host samples of one tick share its phase, and the under-load summary counts the same ticks.
    let load_ticks = |v: Vec<(u64, Phase)>| -> Vec<u64> {
        v.into_iter()
            .filter(|(_, p)| *p == Phase::Load)
            .map(|(t, _)| t)
            .collect()
    };
    let host_ticks = load_ticks(host.samples.iter().map(|s| (s.tick, s.phase)).collect());
    let server_ticks = load_ticks(server.samples.iter().map(|s| (s.tick, s.phase)).collect());
    assert_eq!(host_ticks, server_ticks);
    assert_eq!(m.under_load.unwrap().samples, host_ticks.len());
    assert!(m.alerts.iter().all(|a| host
        .samples
        .iter()
        .any(|s| s.t_s == a.t_s && s.phase == Phase::Load)));

    // resources.csv keeps every row, each marked with its phase.
    let csv = std::fs::read_to_string(out.dir.join("resources.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.last().unwrap()[2], "after");
    assert_eq!(
        rows.iter().filter(|r| r[2] == "load").count(),
        host_ticks.len()
    );
    assert!(rows
        .iter()
        .all(|r| ["before", "load", "after"].contains(&r[2])));
    common::assert_run_json_matches_schema(&out.dir);
}

#[test]
fn no_monitor_means_no_samples_and_no_resources_file() {
    let tmp = tempfile::tempdir().unwrap();
    let o = load_options(tmp.path(), "mon_off", 2, 1, None);
    let out = queries::run(&o).unwrap();
    assert!(read_doc(&out.dir).monitoring.is_none());
    assert!(!out.dir.join("resources.csv").exists());
    assert!(out.dir.join("run.json").is_file());
}

/// Negative control on the real document, positive controls on doctored copies of it.
fn warnings_follow_the_samples(doc: &RunDocument) {
    let monitoring_codes = [
        "swap_in_use",
        "memory_high",
        "server_count_mismatch",
        "history_truncated",
        "monitor_incomplete",
    ];
    let clean = codes(doc);
    for c in monitoring_codes {
        assert!(
            !clean.iter().any(|x| x == c),
            "{c} on a clean run: {clean:?}"
        );
    }
    let doctor = |f: &dyn Fn(&mut RunDocument)| {
        let mut d = doc.clone();
        f(&mut d);
        codes(&d)
    };
    let got = doctor(&|d| mon(d).under_load.as_mut().unwrap().swap_pages = 12);
    assert!(got.iter().any(|c| c == "swap_in_use"), "{got:?}");
    let got = doctor(&|d| mon(d).under_load.as_mut().unwrap().memory_peak_percent = 99.0);
    assert!(got.iter().any(|c| c == "memory_high"), "{got:?}");
    let got = doctor(&|d| {
        d.load.as_mut().unwrap().server_check = None;
        mon(d).server.as_mut().unwrap().totals.xact_commit *= 2;
    });
    assert!(got.iter().any(|c| c == "server_count_mismatch"), "{got:?}");
    let got = doctor(&|d| d.load.as_mut().unwrap().server_check = None);
    assert!(!got.iter().any(|c| c == "server_count_mismatch"), "{got:?}");
    let got = doctor(&|d| mon(d).host.as_mut().unwrap().dropped = 5);
    assert!(got.iter().any(|c| c == "history_truncated"), "{got:?}");
    let got = doctor(&|d| mon(d).errors.push("server sampler: lost".into()));
    assert!(got.iter().any(|c| c == "monitor_incomplete"), "{got:?}");
    let got = doctor(&|d| {
        let u = mon(d).under_load.as_mut().unwrap();
        u.cpu_p95_percent = 99.0;
    });
    assert!(got.iter().any(|c| c == "host_cpu_saturated"), "{got:?}");
    // The load threads' clock: checked over the real run, and a TSC calibrated 1 % wrong (the
    // process's own calibration, injected off) fails the check and raises the warning.
    let clock = doc.load.as_ref().unwrap().client.clock.as_ref();
    let clock = clock.expect("the clock check is recorded");
    assert!(clock.passed, "{clock:?}");
    assert!(!clean.iter().any(|c| c == "clock_drift"), "{clean:?}");
    assert_eq!(clock.source, pgstorm::clock::global().source());
    if clock.source == pgstorm::clock::ClockSource::Tsc {
        assert!(clock.checked_over_s > 1.0, "{clock:?}");
        let wrong = pgstorm::clock::global().miscalibrated(1.01).check();
        assert!(!wrong.passed, "{wrong:?}");
        let got = doctor(&|d| d.load.as_mut().unwrap().client.clock = Some(wrong.clone()));
        assert!(got.iter().any(|c| c == "clock_drift"), "{got:?}");
    }
}

fn mon(d: &mut RunDocument) -> &mut Monitoring {
    d.monitoring.as_mut().unwrap()
}

fn spin_for(d: Duration) {
    let t = Instant::now();
    let mut x = 0u64;
    while t.elapsed() < d {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
    }
    std::hint::black_box(x);
}

#[test]
fn a_cpu_burn_raises_the_cpu_alerts_and_a_calm_span_does_not() {
    // Client CPU threshold low enough that our burn crosses it even on a machine shared with
    // other busy processes (the burn gets only its fair share of the CPUs there), and far above
    // what an idle process uses.
    let th = Thresholds {
        client_cpu_percent: 5.0,
        ..Thresholds::default()
    };
    let calm = Monitor::start(monitor_config(th), None, None);
    std::thread::sleep(Duration::from_millis(1300));
    let calm = calm.stop(None);
    let host = calm.host.as_ref().unwrap();
    assert!(host.samples.len() >= 4, "{}", host.samples.len());
    assert!(
        !calm.alerts.iter().any(|a| a.metric == "client_cpu"),
        "calm span raised {:?}",
        calm.alerts
    );
    // Other processes may load the host; the host CPU alert must then follow the samples exactly.
    let busy = host.samples.iter().any(|s| s.cpu_percent > th.cpu_percent);
    assert_eq!(busy, calm.alerts.iter().any(|a| a.metric == "cpu"));

    let cpus = std::thread::available_parallelism().unwrap().get();
    let burn = Monitor::start(monitor_config(th), None, None);
    let spinners: Vec<_> = (0..cpus * 4)
        .map(|_| std::thread::spawn(|| spin_for(Duration::from_millis(1500))))
        .collect();
    for s in spinners {
        s.join().unwrap();
    }
    let burn = burn.stop(None);
    let samples = &burn.host.as_ref().unwrap().samples;
    let peak = samples.iter().map(|s| s.cpu_percent).fold(0.0, f64::max);
    assert!(peak > th.cpu_percent, "host CPU peaked at {peak}%");
    let raised = |m: &str| {
        burn.alerts
            .iter()
            .any(|a| a.metric == m && a.state == "raised")
    };
    assert!(raised("cpu"), "{:?}", burn.alerts);
    assert!(raised("client_cpu"), "{:?}", burn.alerts);
    let a = burn.alerts.iter().find(|a| a.metric == "cpu").unwrap();
    assert!(a.value > a.threshold && a.at.ends_with('Z'), "{a:?}");
}

#[test]
fn a_forced_deadlock_is_counted_and_its_lock_wait_seen() {
    let dsn = common::database("mon_deadlock");
    let mut setup = common::client_of("mon_deadlock");
    setup
        .batch_execute(
            "DROP TABLE IF EXISTS dl; CREATE TABLE dl (id int PRIMARY KEY, v int); \
             INSERT INTO dl VALUES (1, 0), (2, 0);",
        )
        .unwrap();
    drop(setup);
    let config: postgres::Config = dsn.parse().unwrap();
    let target = Target::new(config.clone(), TargetSource::Dsn);
    let monitor = Monitor::start(monitor_config(Thresholds::default()), Some(&target), None);

    // Two transactions lock the rows in opposite order; after deadlock_timeout (1 s) the server
    // cancels one of them with SQLSTATE 40P01.
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = [(1, 2), (2, 1)]
        .into_iter()
        .map(|(first, second)| {
            let (barrier, config) = (barrier.clone(), config.clone());
            std::thread::spawn(move || {
                let mut c = config.connect(postgres::NoTls).unwrap();
                let mut tx = c.transaction().unwrap();
                tx.execute("UPDATE dl SET v = v + 1 WHERE id = $1", &[&first])
                    .unwrap();
                barrier.wait();
                let r = tx.execute("UPDATE dl SET v = v + 1 WHERE id = $1", &[&second]);
                match r {
                    Ok(_) => {
                        tx.commit().unwrap();
                        false
                    }
                    Err(e) => e.code() == Some(&postgres::error::SqlState::T_R_DEADLOCK_DETECTED),
                }
            })
        })
        .collect();
    let deadlocked: Vec<bool> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(deadlocked.iter().filter(|d| **d).count(), 1);

    // The backends flush their statistics when they exit: wait for that before the last sample.
    let mut c = config.connect(postgres::NoTls).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND application_name NOT LIKE 'pgstorm%' AND pid <> pg_backend_pid()",
                &[],
            )
            .unwrap()
            .get(0);
        if n == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(c);
    let m = monitor.stop(None);
    let server = m.server.as_ref().expect("server samples");
    assert_eq!(server.totals.deadlocks, 1, "{:?}", server.totals);
    assert_eq!(server.samples.iter().map(|s| s.deadlocks).sum::<i64>(), 1);
    // The sampler saw the two transactions waiting on each other's row lock.
    assert!(
        server
            .samples
            .iter()
            .any(|s| s.waiting_locks >= 1 && s.blocked_backends >= 1),
        "no lock wait seen in {:?}",
        server
            .samples
            .iter()
            .map(|s| (s.waiting_locks, s.blocked_backends))
            .collect::<Vec<_>>()
    );
    assert!(server
        .samples
        .iter()
        .any(|s| s.by_wait_event_type.get("Lock").copied().unwrap_or(0) >= 1));
}

#[test]
fn an_unreachable_server_leaves_an_error_and_the_host_samples() {
    let config: postgres::Config = "host=127.0.0.1 port=1 user=u password=sekrit dbname=d \
                                    connect_timeout=2"
        .parse()
        .unwrap();
    let target = Target::new(config, TargetSource::Dsn);
    let m = Monitor::start(monitor_config(Thresholds::default()), Some(&target), None);
    std::thread::sleep(Duration::from_millis(600));
    let m = m.stop(None);
    assert!(m.server.is_none());
    assert_eq!(m.errors.len(), 1, "{:?}", m.errors);
    assert!(m.errors[0].starts_with("server sampler: cannot connect"));
    assert!(!m.errors[0].contains("sekrit"), "{}", m.errors[0]);
    assert!(!m.host.unwrap().samples.is_empty());
}
