//! `pgstorm connections`: does the server (and a pool in front of it) hold hundreds of concurrent
//! connections, and what happens when things go wrong: ramp and hold with a paced connect rate,
//! pool monitoring, leak detection, checkout timeouts with an optional direct fallback, recovery
//! after killed connections or a restart, and connection storms (a connection per operation).
//!
//! Invariants: preflight refuses a run the server cannot hold (max_connections minus reserved
//! slots minus connections in use) before the load opens a single connection, and names the
//! setting to raise and to what; in storm mode the server's own session counter is read around
//! the load and stored beside the client's count; an interrupted run still writes its (flagged)
//! result, then reports exit 130.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::error::usage;

use super::queries::{ArchiveOptions, Outcome};
use super::session::{Session, TargetOptions};
use crate::engine::connections::{self as engine, ConnConfig, ConnOutput};
use crate::engine::stats::{self, ErrorClass, N_CLASSES};
use crate::report::model::{
    ClientCost, ConnectionIncident, ConnectionStep, ConnectionsConfig, ConnectionsResult,
    LeakDetail, MixEntry, PoolPoint, SessionCheck,
};
use crate::report::{archive, csv_out, latency_summary};
use crate::workload::{self, builtin, DataRange, Protocol, Workload};

/// Options of the connection scenario.
#[derive(Debug, Clone)]
pub struct ConnectionsOptions {
    /// Where to connect.
    pub target: TargetOptions,
    /// Where to write.
    pub archive: ArchiveOptions,
    /// Seed scale 1 when the mix needs the dataset and none exists (false: error instead).
    pub seed_if_missing: bool,
    /// `--mix` (default `ping`: `SELECT 1`, no dataset needed).
    pub mix: String,
    /// `-M`.
    pub protocol: Protocol,
    /// The load.
    pub engine: ConnConfig,
    /// Print the summary to stdout.
    pub print_summary: bool,
}

/// The ramp ladder up to `max`: 10, 50, 100, 250, 500, 1000, ... below `max`, then `max`.
pub fn ramp_steps(max: u32) -> Vec<u32> {
    let mut steps: Vec<u32> = [10, 50, 100, 250, 500, 1000, 2000, 5000]
        .into_iter()
        .filter(|&s| s < max)
        .collect();
    steps.push(max.max(1));
    steps
}

/// How long a step may take to open its connections: twice the paced time, plus 30 s.
pub fn step_timeout(connections: u32, rate: Option<f64>) -> Duration {
    let paced = rate.map(|r| connections as f64 / r).unwrap_or(0.0);
    Duration::from_secs_f64(paced * 2.0 + 30.0)
}

impl Default for ConnectionsOptions {
    fn default() -> Self {
        ConnectionsOptions {
            target: TargetOptions::default(),
            archive: ArchiveOptions {
                results_dir: "results".into(),
                label: "connections".into(),
                command: Vec::new(),
            },
            seed_if_missing: true,
            mix: builtin::PING.into(),
            protocol: Protocol::Prepared,
            engine: ConnConfig {
                steps: ramp_steps(100),
                step_hold: Duration::from_secs(5),
                hold: Duration::from_secs(60),
                workers: None,
                connect_rate: Some(100.0),
                step_timeout: Duration::from_secs(60),
                checkout_timeout: Duration::from_secs(30),
                statement_timeout: Duration::from_secs(5),
                leak_threshold: Duration::from_secs(30),
                fallback_direct: false,
                think: Duration::ZERO,
                interval: Duration::from_secs(1),
                storm: false,
                inject_leaks: 0,
                seed: 1,
                progress: true,
            },
            print_summary: true,
        }
    }
}

/// Connections the run may open at once (pool or storm clients, plus direct fallbacks).
fn connections_needed(cfg: &ConnConfig) -> u32 {
    let max = cfg.steps.iter().copied().max().unwrap_or(0);
    let workers = cfg.workers.unwrap_or(max);
    if cfg.storm {
        workers
    } else if cfg.fallback_direct {
        max + workers
    } else {
        max
    }
}

/// Checks the options before any server is contacted.
pub fn validate(opts: &ConnectionsOptions) -> Result<()> {
    let cfg = &opts.engine;
    workload::parse_mix(&opts.mix, &known_types())?;
    if cfg.steps.is_empty() || cfg.steps.contains(&0) {
        return Err(usage(
            "--steps: every step needs at least 1 connection, e.g. --steps 10,50,100",
        ));
    }
    if cfg.steps.windows(2).any(|w| w[0] >= w[1]) {
        return Err(usage("--steps must grow, e.g. --steps 10,50,100,250,500"));
    }
    if cfg.workers == Some(0) {
        return Err(usage("--workers must be at least 1"));
    }
    if let Some(r) = cfg.connect_rate {
        if !(r.is_finite() && r > 0.0) {
            return Err(usage(format!(
                "--connect-rate {r} is not a positive rate; write e.g. 50/s"
            )));
        }
    }
    let workers = cfg.workers.unwrap_or(*cfg.steps.last().expect("checked"));
    if cfg.inject_leaks > workers {
        return Err(usage(format!(
            "--inject-leaks {} is more than the {workers} workers",
            cfg.inject_leaks
        )));
    }
    if cfg.storm && (cfg.fallback_direct || cfg.inject_leaks > 0) {
        return Err(usage(
            "--storm uses no pool: --fallback direct and --inject-leaks do not apply",
        ));
    }
    Ok(())
}

fn known_types() -> Vec<&'static str> {
    let mut k = vec![builtin::PING];
    k.extend(builtin::NAMES);
    k
}

/// Runs the scenario on a new session.
pub fn run(opts: &ConnectionsOptions) -> Result<Outcome> {
    validate(opts)?;
    crate::report::archive::probe(&opts.archive.results_dir)?;
    let mut session = Session::open(&opts.target)?;
    run_on(&mut session, opts)
}

/// Runs the scenario on an existing session (used by `pgstorm run`).
pub fn run_on(session: &mut Session, opts: &ConnectionsOptions) -> Result<Outcome> {
    validate(opts)?;
    let cfg = &opts.engine;
    // Preflight: before the load opens a single connection.
    crate::target::check_capacity(
        &session.server,
        connections_needed(cfg),
        1,
        &session.target.display,
    )
    .map_err(|e| {
        let hint = if cfg.storm { "-c" } else { "--max-connections" };
        crate::error::target(format!("{e:#}").replace("or lower -c", &format!("or lower {hint}")))
    })?;

    let mix = workload::parse_mix(&opts.mix, &known_types())?;
    let data = if mix.iter().any(|(n, _)| n != builtin::PING) {
        let mut say = |m: &str| eprintln!("pgstorm: {m}");
        let marker = crate::dataset::ensure(&mut session.admin, !opts.seed_if_missing, &mut say)?;
        DataRange {
            partners: marker.partners,
            orders: marker.orders,
            start_us: marker.data_start.timestamp_micros(),
            end_us: marker.data_end.timestamp_micros(),
        }
    } else {
        DataRange {
            partners: 1,
            orders: 1,
            start_us: 0,
            end_us: 1,
        }
    };
    let workload = Arc::new(Workload::new(
        builtin::from_mix(&mix, &data, cfg.seed)?,
        opts.protocol,
    )?);

    let started = chrono::Utc::now();
    let host = crate::monitor::host::host_info();
    let sessions_before = sessions(session);
    let out = engine::run(&session.target, workload.clone(), cfg, &session.stop)?;
    let _ = session.wait_pool_gone(Duration::from_secs(10));
    let sessions_after = sessions(session);

    let mut doc = session.document(
        "connections",
        &opts.archive.label,
        &opts.archive.command,
        started,
        host,
    );
    let mut result = connections_result(&out, &workload, opts, doc.host.cpus);
    if let (true, Some(b), Some(a)) = (cfg.storm, sessions_before, sessions_after) {
        let client = result.connections_opened;
        result.server_check = Some(SessionCheck {
            sessions: a - b,
            client_connections: client,
            ratio: if client > 0 {
                (a - b) as f64 / client as f64
            } else {
                0.0
            },
        });
    }
    doc.interrupted = out.interrupted;
    doc.finished_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    doc.warnings = crate::report::warnings::connection_warnings(&result);
    doc.connections = Some(result);
    let c = doc.connections.as_ref().expect("just set");
    let extra = vec![
        (
            "pool_timeseries.csv".to_string(),
            csv_out::pool_timeseries(c)?,
        ),
        (
            "connection_steps.csv".to_string(),
            csv_out::connection_steps(c)?,
        ),
    ];
    let dir = archive::write(&opts.archive.results_dir, &mut doc, &extra)?;
    if opts.print_summary {
        print!("{}", crate::report::summary::render(&doc));
        println!("result: {}", dir.display());
    }
    if out.interrupted {
        return Err(crate::interrupt::error());
    }
    Ok(Outcome { doc, dir })
}

/// `pg_stat_database.sessions` of the current database (PG 14+), fresh.
fn sessions(session: &mut Session) -> Option<i64> {
    if session.server.server_version_num < 140_000 {
        return None;
    }
    session
        .admin
        .batch_execute("SELECT pg_stat_clear_snapshot()")
        .ok()?;
    session
        .admin
        .query_one(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .ok()
        .map(|r| r.get(0))
}

fn by_class(counts: &[u64; N_CLASSES]) -> BTreeMap<String, u64> {
    ErrorClass::ALL
        .iter()
        .filter(|c| counts[**c as usize] > 0)
        .map(|c| (c.as_str().to_string(), counts[*c as usize]))
        .collect()
}

/// Turns engine measurements into the document's connections section.
pub fn connections_result(
    out: &ConnOutput,
    workload: &Workload,
    opts: &ConnectionsOptions,
    cpus: usize,
) -> ConnectionsResult {
    let cfg = &opts.engine;
    let mut errors = [0u64; N_CLASSES];
    let mut ok = 0u64;
    let mut fallback_ok = 0u64;
    let mut fallback_failed = 0u64;
    let mut connect = stats::new_hist(3);
    let steps: Vec<ConnectionStep> = out
        .steps
        .iter()
        .map(|s| {
            ok += s.ok;
            fallback_ok += s.fallback_ok;
            fallback_failed += s.fallback_failed;
            for (a, b) in errors.iter_mut().zip(s.errors) {
                *a += b;
            }
            connect.add(&s.connects.latency).expect("same bounds");
            let secs = (s.ended_s - s.started_s).max(0.0);
            ConnectionStep {
                target: s.target,
                workers: s.workers,
                started_s: s.started_s,
                time_to_reach_s: s.reached_s.map(|r| (r - s.started_s).max(0.0)),
                ended_s: s.ended_s,
                peak_open: s.peak_open,
                connect: latency_summary(&s.connects.latency),
                connect_failures: by_class(&s.connects.failures),
                checkout_wait: latency_summary(&s.checkout_wait),
                query: latency_summary(&s.latency),
                ok: s.ok,
                errors: by_class(&s.errors),
                ops_per_s: if secs > 0.0 { s.ok as f64 / secs } else { 0.0 },
                fallback_direct: s.fallback_ok,
            }
        })
        .collect();
    let failed: u64 = errors.iter().sum();
    let operations = ok + failed;
    let wall = out.wall.as_secs_f64();
    let cpu = (out.cpu.0 + out.cpu.1).as_secs_f64();
    let names = &out.names;
    ConnectionsResult {
        started_unix_s: Some(crate::scenarios::queries::unix_s(out.started_at)),
        config: ConnectionsConfig {
            mode: if cfg.storm { "storm" } else { "ramp" }.into(),
            steps: cfg.steps.clone(),
            workers: out.workers,
            connect_rate: if cfg.storm { None } else { cfg.connect_rate },
            step_hold_s: cfg.step_hold.as_secs_f64(),
            hold_s: cfg.hold.as_secs_f64(),
            checkout_timeout_ms: cfg.checkout_timeout.as_millis() as u64,
            statement_timeout_ms: cfg.statement_timeout.as_millis() as u64,
            leak_threshold_s: cfg.leak_threshold.as_secs_f64(),
            fallback: if cfg.fallback_direct {
                "direct"
            } else {
                "none"
            }
            .into(),
            think_ms: cfg.think.as_secs_f64() * 1000.0,
            protocol: workload.protocol.as_str().into(),
            mix: workload
                .names()
                .into_iter()
                .zip(&workload.weights)
                .map(|(name, w)| MixEntry { name, weight: *w })
                .collect(),
            inject_leaks: cfg.inject_leaks,
            seed: cfg.seed,
            histogram_sigfig: out.worker_sigfig,
        },
        connection_success_rate: if operations > 0 {
            (ok + fallback_ok) as f64 / operations as f64
        } else {
            0.0
        },
        operations,
        failed_operations: failed,
        errors: by_class(&errors),
        leaks: out.leaks.len() as u64,
        checkout_timeouts: errors[ErrorClass::PoolTimeout as usize],
        fallback_direct: fallback_ok,
        fallback_failed,
        connections_opened: out.connections_opened,
        connect_failures: out.connect_failures,
        connections_discarded: out.connections_closed,
        peak_open: out.steps.iter().map(|s| s.peak_open).max().unwrap_or(0),
        connections_per_s: if wall > 0.0 {
            out.connections_opened as f64 / wall
        } else {
            0.0
        },
        connect: latency_summary(&connect),
        steps,
        incidents: out
            .incidents
            .iter()
            .map(|i| ConnectionIncident {
                dropped_at_s: i.dropped_s,
                service_restored_at_s: i.service_restored_s,
                pool_restored_at_s: i.pool_restored_s,
                recovery_s: i.service_restored_s.map(|r| r - i.dropped_s),
                pool_recovery_s: i.pool_restored_s.map(|r| r - i.dropped_s),
                recovered: i.service_restored_s.is_some(),
                failed_operations: i.failed_operations,
                lost_operations: i.lost_operations,
                min_open: i.min_open,
            })
            .collect(),
        leak_details: out
            .leaks
            .iter()
            .map(|l| LeakDetail {
                worker: l.worker,
                query: names.get(l.kind).cloned().unwrap_or_default(),
                checked_out_at_s: l.since_s,
                held_s: l.held_s,
                still_out_at_end: l.still_out_at_end,
            })
            .collect(),
        pool_timeseries: out
            .samples
            .iter()
            .map(|p| PoolPoint {
                t_s: p.t_s,
                target: p.target,
                open: p.open,
                idle: p.idle,
                checked_out: p.checked_out,
                waiters: p.waiting,
                ok: p.ok,
                failed: p.failed,
                connects: p.connects,
                closed: p.closed,
            })
            .collect(),
        client: ClientCost {
            cpu_user_s: out.cpu.0.as_secs_f64(),
            cpu_system_s: out.cpu.1.as_secs_f64(),
            cpu_us_per_tx: if operations > 0 {
                cpu * 1e6 / operations as f64
            } else {
                0.0
            },
            cpu_share_of_host: if wall > 0.0 {
                (cpu / (wall * cpus.max(1) as f64)).min(1.0)
            } else {
                0.0
            },
            peak_rss_bytes: crate::proc_stats::peak_rss_bytes(),
            late_batches: 0,
            pauses: 0,
            max_pause_ms: 0.0,
            clock: None,
            run_queue: out.run_queue.clone(),
        },
        server_check: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramp_ladder_ends_at_the_maximum() {
        assert_eq!(ramp_steps(500), vec![10, 50, 100, 250, 500]);
        assert_eq!(ramp_steps(120), vec![10, 50, 100, 120]);
        assert_eq!(ramp_steps(5), vec![5]);
    }

    #[test]
    fn bad_options_are_usage_errors() {
        let bad = |f: &dyn Fn(&mut ConnectionsOptions)| {
            let mut o = ConnectionsOptions::default();
            f(&mut o);
            let e = validate(&o).unwrap_err();
            assert_eq!(
                crate::error::exit_kind(&e),
                crate::error::ExitKind::Usage,
                "{e}"
            );
        };
        bad(&|o| o.engine.steps = vec![50, 10]);
        bad(&|o| o.engine.steps = vec![0]);
        bad(&|o| o.engine.workers = Some(0));
        bad(&|o| o.engine.connect_rate = Some(-1.0));
        bad(&|o| o.mix = "nope".into());
        bad(&|o| {
            o.engine.storm = true;
            o.engine.fallback_direct = true;
        });
        assert!(validate(&ConnectionsOptions::default()).is_ok());
    }
}
