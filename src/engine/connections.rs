//! The connection load: a pool ramped in steps to hundreds of connections and held (or, in storm
//! mode, a new connection per operation), watched by a monitor thread.
//!
//! [`run`] starts one worker per requested worker, raises the pool's target step by step through
//! the connect [`Gate`](super::gated_pool::Gate), and from the calling thread samples every
//! [`TICK`]: the pool's r2d2 `State`, the workers' tracker slots (waiting / holding / counts),
//! the gate's counters. From those ticks it builds the pool time series, detects incidents
//! (service drop → recovery) and leaks, and after a connection-loss it checks the idle
//! connections so dead ones are discarded before a worker trips on them.
//!
//! Invariants: the per-operation path belongs to the workers (see `conn_worker`); the monitor only
//! reads atomics and the pool's state. The run always ends: workers are stopped, connections still
//! out after a grace period are reported as leaks, deliberately held ones are released, the gate
//! is closed so no connector thread waits, and every thread is joined.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};

use super::conn_monitor::{Monitor, StepAcc};
use super::conn_worker::{ConnWorker, Shared};
use super::gated_pool::{self, GatedSettings, StepConnects};
use super::stats::{self, Hist, N_CLASSES};
use super::tracker::Tracker;
use super::watch::{Incident, Incidents, Leak, Leaks};
use super::wire_pool;
use crate::stop::StopToken;
use crate::target::Target;
use crate::workload::Workload;

/// Resolution of the monitor (incident times are this precise).
pub const TICK: Duration = Duration::from_millis(50);

/// How to drive the connection load.
#[derive(Debug, Clone)]
pub struct ConnConfig {
    /// Pool sizes, ascending; the last is held for `hold`. Storm mode: one entry, the clients.
    pub steps: Vec<u32>,
    /// Time at each intermediate step once it is reached.
    pub step_hold: Duration,
    /// Time at the last step once it is reached.
    pub hold: Duration,
    /// Worker threads; `None` = one per connection of the last step. Each step runs one worker per
    /// connection (at most this many); more workers than the last step's size all run, contending
    /// for the pool.
    pub workers: Option<u32>,
    /// New connections per second (`None`: unpaced).
    pub connect_rate: Option<f64>,
    /// Longest a step may take to reach its size before the ramp moves on.
    pub step_timeout: Duration,
    /// Pool checkout timeout.
    pub checkout_timeout: Duration,
    /// `statement_timeout` of every connection.
    pub statement_timeout: Duration,
    /// A connection held longer than this is a leak.
    pub leak_threshold: Duration,
    /// On a checkout timeout, run the operation on a direct connection.
    pub fallback_direct: bool,
    /// Pause between a worker's operations.
    pub think: Duration,
    /// Pool time-series resolution.
    pub interval: Duration,
    /// Connect per operation instead of using a pool.
    pub storm: bool,
    /// Workers that keep their first connection to the end (leak detection's positive control).
    pub inject_leaks: u32,
    /// Seed of the workers' random streams.
    pub seed: u64,
    /// Print progress lines on stderr.
    pub progress: bool,
}

/// Measurements of one ramp step.
pub struct StepOutput {
    /// Target pool size (storm: concurrent clients).
    pub target: u32,
    /// Workers running during the step.
    pub workers: u32,
    /// Step start (s since the load started).
    pub started_s: f64,
    /// When the pool first had `target` connections open (s); `None` if never.
    pub reached_s: Option<f64>,
    /// Step end (s).
    pub ended_s: f64,
    /// Most connections open at once during the step.
    pub peak_open: u32,
    /// Connect latency and connect failures by class.
    pub connects: StepConnects,
    /// Checkout wait.
    pub checkout_wait: Hist,
    /// Query latency of successful operations.
    pub latency: Hist,
    /// Successful operations.
    pub ok: u64,
    /// Failed operations by class index.
    pub errors: [u64; N_CLASSES],
    /// Successful direct fallbacks.
    pub fallback_ok: u64,
    /// Failed direct fallbacks.
    pub fallback_failed: u64,
}

/// One sample of the pool time series.
#[derive(Debug, Clone, Default)]
pub struct PoolSample {
    /// Sample time (s since the load started).
    pub t_s: f64,
    /// Target size at that time.
    pub target: u32,
    /// Connections open (r2d2 `State::connections`; storm: connections held by workers).
    pub open: u32,
    /// Idle connections in the pool.
    pub idle: u32,
    /// Connections checked out by workers.
    pub checked_out: u32,
    /// Workers waiting for a checkout.
    pub waiting: u32,
    /// Successful operations since the previous sample.
    pub ok: u64,
    /// Failed operations since the previous sample.
    pub failed: u64,
    /// Connections opened since the previous sample.
    pub connects: u64,
    /// Connections closed (discarded) since the previous sample.
    pub closed: u64,
}

/// Raw measurements of a connection load.
pub struct ConnOutput {
    /// Query type names, index order.
    pub names: Vec<String>,
    /// Per step, in order.
    pub steps: Vec<StepOutput>,
    /// Pool time series.
    pub samples: Vec<PoolSample>,
    /// Service incidents.
    pub incidents: Vec<Incident>,
    /// Leaks.
    pub leaks: Vec<Leak>,
    /// Connections opened (pool connects or storm connects).
    pub connections_opened: u64,
    /// Connections the pool discarded or closed.
    pub connections_closed: u64,
    /// Failed connect attempts (pool connects; storm connects count as failed operations too).
    pub connect_failures: u64,
    /// Worker threads.
    pub workers: u32,
    /// Wall-clock start of the load.
    pub started_at: SystemTime,
    /// Wall time of the load.
    pub wall: Duration,
    /// Whether the stop token (Ctrl-C in the app) stopped it.
    pub interrupted: bool,
    /// Client CPU (user, system) during the load.
    pub cpu: (Duration, Duration),
    /// Precision of the workers' histograms.
    pub worker_sigfig: u8,
    /// How long the worker threads waited for a CPU; `None` where the kernel does not count it.
    pub run_queue: Option<crate::proc_stats::RunQueueWait>,
}

/// Lets workers below `n` run (`active`, the workers' [`Shared::active`]), unparking the ones it
/// grew over, and only those (a worker parks on its own thread while its id is not below it).
fn set_active(active: &AtomicU32, workers: &[std::thread::JoinHandle<()>], n: u32) {
    let was = active.swap(n, Ordering::AcqRel);
    for h in workers.iter().take(n as usize).skip(was as usize) {
        h.thread().unpark();
    }
}

/// Runs the connection load against `target` until its steps are done or `stop` is stopped.
pub fn run(
    target: &Target,
    workload: Arc<Workload>,
    cfg: &ConnConfig,
    stop: &StopToken,
) -> Result<ConnOutput> {
    anyhow::ensure!(!cfg.steps.is_empty(), "no connection steps");
    let max = *cfg.steps.iter().max().expect("non-empty");
    let workers = cfg.workers.unwrap_or(max).max(1);
    let sigfig = stats::worker_sigfig(workers as usize * 3);
    let (pool, gate) = if cfg.storm {
        (None, None)
    } else {
        let (p, g) = gated_pool::build(
            target,
            workload.clone(),
            &GatedSettings {
                max_size: max,
                connect_rate: cfg.connect_rate,
                steps: cfg.steps.len(),
                checkout_timeout: cfg.checkout_timeout,
                statement_timeout: cfg.statement_timeout,
                connector_threads: (max as usize).clamp(1, 16),
            },
        );
        (Some(p), Some(g))
    };
    let start = Instant::now() + Duration::from_millis(20);
    let shared = Arc::new(Shared {
        pool,
        direct: gated_pool::session_target(target, cfg.statement_timeout),
        names: wire_pool::statement_names(&workload),
        workload: workload.clone(),
        tracker: Tracker::new(workers as usize, start),
        stop: AtomicBool::new(false),
        release: AtomicBool::new(false),
        step: AtomicU32::new(0),
        active: AtomicU32::new(0),
        checkout_timeout: cfg.checkout_timeout,
        think: cfg.think,
        fallback_direct: cfg.fallback_direct,
        leakers: cfg.inject_leaks,
        seed: cfg.seed,
        sigfig,
    });
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut handles = Vec::with_capacity(workers as usize);
    let cpu_before = crate::proc_stats::cpu_time();
    let started_at = SystemTime::now() + start.saturating_duration_since(Instant::now());
    let run_queue = Arc::new(crate::proc_stats::RunQueueMeter::default());
    for id in 0..workers as usize {
        let w = ConnWorker::new(id, shared.clone(), tx.clone());
        let meter = run_queue.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("pgstorm-c{id}"))
            .stack_size(256 * 1024)
            .spawn(move || meter.thread(|| w.run()));
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                shared.stop.store(true, Ordering::SeqCst);
                shared.release.store(true, Ordering::SeqCst);
                if let Some(g) = &gate {
                    g.close();
                }
                for h in handles {
                    let _ = h.join();
                }
                return Err(anyhow::anyhow!(
                    "cannot start worker thread {id} of {workers}: {e}; lower --workers or raise \
                     the process/thread limits (ulimit -u)"
                ));
            }
        }
    }
    drop(tx);
    std::thread::sleep(start.saturating_duration_since(Instant::now()));

    let mut mon = Monitor {
        shared: &shared,
        gate: gate.as_deref(),
        cfg,
        rx,
        accs: cfg.steps.iter().map(|&s| StepAcc::new(s)).collect(),
        incidents: Incidents::default(),
        leaks: Leaks::default(),
        samples: Vec::new(),
        last_tick: (0.0, 0, 0, 0),
        last_sample: (0, 0, 0, 0),
        next_sample_s: 0.0,
        target: 0,
        step: 0,
        last_open: 0,
    };
    let mut interrupted = false;
    let mut steps_run = 0;
    'steps: for (i, &size) in cfg.steps.iter().enumerate() {
        steps_run = i + 1;
        let t_step = Instant::now();
        mon.step = i;
        mon.target = size;
        // Up to one worker per connection of the step; more workers than the largest pool were
        // asked for on purpose (to contend for it), so they all run.
        let active = if workers > max {
            workers
        } else {
            workers.min(size)
        };
        mon.accs[i].out.started_s = mon.now_s();
        mon.accs[i].out.workers = active;
        shared.step.store(i as u32, Ordering::Release);
        // While the pool grows, a new worker starts only when there is a connection for it:
        // hundreds of workers queueing on a half-built pool would only measure their own
        // contention (and starve the connector threads of CPU).
        let running = shared.active.load(Ordering::Acquire);
        if let Some(g) = &gate {
            g.set_target(size, i);
        } else {
            set_active(&shared.active, &handles, active);
            mon.accs[i].out.reached_s = Some(mon.now_s());
        }
        let hold = if i + 1 == cfg.steps.len() {
            cfg.hold
        } else {
            cfg.step_hold
        };
        let mut hold_until: Option<Instant> = None;
        loop {
            std::thread::sleep(TICK);
            mon.tick();
            if gate.is_some() {
                let grown = if hold_until.is_some() {
                    active
                } else {
                    active.min(running.max(mon.last_open))
                };
                set_active(&shared.active, &handles, grown);
            }
            if stop.is_stopped() {
                interrupted = true;
                break 'steps;
            }
            let now = Instant::now();
            if hold_until.is_none()
                && (mon.accs[i].out.reached_s.is_some() || now - t_step >= cfg.step_timeout)
            {
                if cfg.progress {
                    let o = &mon.accs[i].out;
                    match o.reached_s {
                        Some(r) => eprintln!(
                            "pgstorm: step {}/{}: {size} connections open after {:.2} s, holding {:?}",
                            i + 1,
                            cfg.steps.len(),
                            r - o.started_s,
                            hold
                        ),
                        None => eprintln!(
                            "pgstorm: step {}/{}: only {} of {size} connections open after {:?}; moving on",
                            i + 1,
                            cfg.steps.len(),
                            o.peak_open,
                            cfg.step_timeout
                        ),
                    }
                }
                hold_until = Some(now + hold);
            }
            if hold_until.is_some_and(|h| now >= h) {
                break;
            }
        }
        mon.accs[i].out.ended_s = mon.now_s();
    }

    // Stop; whatever is still checked out after a grace period is a leak.
    shared.stop.store(true, Ordering::SeqCst);
    for h in &handles {
        h.thread().unpark();
    }
    let grace_end = Instant::now() + cfg.statement_timeout.min(Duration::from_secs(5)) + TICK * 4;
    while Instant::now() < grace_end && !shared.tracker.holders().is_empty() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let now_us = shared.tracker.now_us();
    mon.leaks.at_end(&shared.tracker.holders(), now_us);
    let stopped_at = Instant::now();
    shared.release.store(true, Ordering::SeqCst);
    if let Some(g) = &gate {
        g.close();
    }
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("a connection worker thread panicked"))
            .context("connection load")?;
    }
    let cpu_after = crate::proc_stats::cpu_time();
    mon.drain();
    let last = mon.accs.len() - 1;
    mon.accs[mon.step.min(last)].out.ended_s = mon
        .now_s()
        .min(stopped_at.saturating_duration_since(start).as_secs_f64());

    let gate_steps = gate.as_ref().map(|g| g.steps());
    let Monitor {
        accs,
        incidents,
        leaks,
        samples,
        ..
    } = mon;
    // Steps an interrupt kept from starting are not reported (they measured nothing).
    let mut steps: Vec<StepOutput> = accs.into_iter().take(steps_run).map(|a| a.out).collect();
    if let Some(gs) = gate_steps {
        for (s, g) in steps.iter_mut().zip(gs) {
            s.connects = g;
        }
    }
    let (opened, closed, failed) = match &gate {
        Some(g) => (
            g.opened.load(Ordering::Relaxed),
            g.released.load(Ordering::Relaxed),
            g.failed.load(Ordering::Relaxed),
        ),
        None => {
            let opened: u64 = steps.iter().map(|s| s.connects.latency.len()).sum();
            (opened, opened, 0)
        }
    };
    drop(shared);
    Ok(ConnOutput {
        names: workload.names(),
        steps,
        samples,
        incidents: incidents.finish(),
        leaks: leaks.finish(),
        connections_opened: opened,
        connections_closed: closed,
        connect_failures: failed,
        workers,
        started_at,
        wall: stopped_at.saturating_duration_since(start),
        interrupted,
        cpu: (
            cpu_after.0.saturating_sub(cpu_before.0),
            cpu_after.1.saturating_sub(cpu_before.1),
        ),
        worker_sigfig: sigfig,
        run_queue: run_queue.result(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_unparks_the_workers_it_starts() {
        // Each thread parks before it looks at `active`, with a timeout far past the test's
        // bound: one that runs within the bound was unparked (a thread unparked before it parks
        // keeps the token, so none is lost however late it starts).
        let active = Arc::new(AtomicU32::new(0));
        let (ran_tx, ran) = crossbeam_channel::unbounded();
        let workers: Vec<_> = (0..6u32)
            .map(|id| {
                let (active, ran_tx) = (active.clone(), ran_tx.clone());
                std::thread::spawn(move || loop {
                    std::thread::park_timeout(Duration::from_secs(600));
                    if id < active.load(Ordering::Acquire) {
                        let _ = ran_tx.send(id);
                        break;
                    }
                })
            })
            .collect();
        let bound = Duration::from_secs(60);
        let woken = |n: usize| {
            let mut ids: Vec<u32> = (0..n)
                .map(|_| ran.recv_timeout(bound).expect("woken"))
                .collect();
            ids.sort_unstable();
            ids
        };
        set_active(&active, &workers, 2);
        assert_eq!(woken(2), [0, 1]);
        // Shrinking unparks nobody; growing again unparks the ones above the old value.
        set_active(&active, &workers, 1);
        set_active(&active, &workers, 6);
        assert_eq!(woken(4), [2, 3, 4, 5]);
        for w in workers {
            w.join().expect("the worker ends");
        }
    }
}
