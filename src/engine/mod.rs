//! The measured hot path: pool, workers, schedule, collector, statistics.
//!
//! [`run`] opens the connections before the clock starts (so connecting never pollutes query
//! latency), starts the load threads (pinned round robin; on hosts of 4+ cores the last core is
//! left to the collector and the samplers: [`worker_cores`]) and the collector, stops them after
//! the duration (or transaction count, or the stop token), and returns raw measurements
//! ([`EngineOutput`]). Two drivers share that frame (`RunClock`, `Collector`,
//! `spawn_load_threads`): one thread per client checking the project's wire connections
//! ([`wire_pool`]) out of the r2d2 pool and running scripts on the executor the `-j` driver runs
//! ([`worker`]), or `-j` threads each serving several clients' connections without blocking
//! ([`mux`]). Every query type is a pgbench script on both. It knows nothing of scenarios,
//! reports or the CLI.
//!
//! How a run ends is decided in one place, `Collector::finish`, for both drivers: the duration
//! (or every load thread done with `-t`), the caller's [`StopToken`] (the app stops its token on
//! Ctrl-C; the engine reads no process-wide flag, so two runs in one process stop apart), a lost target ([`lost`]: no connection open
//! and reconnects failing for the grace period), or a load thread that panicked. Every load
//! thread's join result is checked, and a panic's message is part of the output, never dropped.

pub mod collector;
pub mod conn_monitor;
pub mod conn_worker;
pub mod connections;
pub mod gated_pool;
pub mod hiccup;
pub mod lost;
pub mod mux;
pub mod pool;
pub mod schedule;
pub mod stall;
pub mod stats;
pub mod tracker;
pub mod txlog;
pub mod verbose;
pub mod watch;
pub mod wire_pool;
pub mod worker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};

pub use collector::{IntervalRecord, LogEntry};
pub use lost::TargetLost;
use stats::{Hist, TypeStats};
pub use worker::Arrival;

use crate::proc_stats::{RunQueueMeter, RunQueueWait};
use crate::rng::Rng;
use crate::stop::StopToken;
use crate::target::Target;
use crate::workload::Workload;

/// How to drive the load.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Clients: connections, and worker threads unless `threads` is set.
    pub clients: u32,
    /// Threads of the multiplexed driver (`-j`), each serving its share of
    /// the clients' connections; `None`: one thread per client over the pool.
    pub threads: Option<u32>,
    /// Measured duration (after warmup); `None` with a transaction limit.
    pub duration: Option<Duration>,
    /// Transactions per client (`-t`).
    pub transactions_per_client: Option<u64>,
    /// Excluded from the totals (rounded up to whole intervals).
    pub warmup: Duration,
    /// Time-series resolution.
    pub interval: Duration,
    /// Total arrival rate (open loop), or closed loop when `None`.
    pub rate: Option<f64>,
    /// Arrival process in open loop.
    pub arrival: Arrival,
    /// Pin workers to cores.
    pub pin: bool,
    /// Print a progress line this often.
    pub progress: Option<Duration>,
    /// Seed of the workers' random streams.
    pub seed: u64,
    /// Pool checkout timeout.
    pub checkout_timeout: Duration,
    /// `statement_timeout` on every connection.
    pub statement_timeout: Duration,
    /// Tries per transaction on serialization and deadlock failures, like pgbench's
    /// `--max-tries` (1: no retry; 0: retry until the run ends).
    pub max_tries: u32,
    /// How long no load connection may be open, with reconnects failing, before the run ends
    /// as lost ([`lost`]).
    pub lost_grace: Duration,
    /// pgbench's `-L`: latency limit for the late and skipped counts.
    pub latency_limit: Option<Duration>,
    /// pgbench's `-l`: the transaction log ([`txlog`]).
    pub txlog: Option<txlog::TxLogConfig>,
    /// pgbench's `-C`: a new connection for every transaction, closed after it (both drivers).
    pub connect_each: bool,
    /// pgbench's `--progress-timestamp`: progress lines carry Unix time, not time since start.
    pub progress_timestamp: bool,
    /// `--progress-format ndjson`: each progress line is one JSON object (Unix time, elapsed,
    /// interval tps, p50/p99, failures, clients) instead of pgbench's text.
    pub progress_ndjson: bool,
    /// pgbench's `--verbose-errors`: print each failed try of a retryable failure ([`verbose`]).
    pub verbose_errors: bool,
}

/// Raw measurements of one load run.
pub struct EngineOutput {
    /// Query type names, index order.
    pub names: Vec<String>,
    /// Post-warmup totals per type.
    pub totals: Vec<TypeStats>,
    /// Pool checkout wait (post-warmup).
    pub pool_wait: Hist,
    /// Schedule lag (open loop, post-warmup).
    pub lag: Hist,
    /// Connect time of the pool's connections.
    pub connect: Hist,
    /// Connections opened / failed by the pool.
    pub connections_opened: u64,
    /// Failed connection attempts.
    pub connect_failures: u64,
    /// Per-interval time series.
    pub intervals: Vec<IntervalRecord>,
    /// HdrHistogram interval log entries.
    pub log: Vec<LogEntry>,
    /// Batches that arrived after their interval closed.
    pub late_batches: u64,
    /// The load threads' clock, checked against the monotonic clock at the end of the run.
    pub clock: crate::clock::ClockCheck,
    /// Wall-clock start of the load (after the pool was ready).
    pub started_at: SystemTime,
    /// Measured (post-warmup) wall time.
    pub measured: Duration,
    /// Warmup actually excluded (the requested one rounded up to whole intervals).
    pub warmup: Duration,
    /// Wall time of the whole load, warmup included (the span the CPU time covers).
    pub wall: Duration,
    /// Whether the run's stop token (Ctrl-C in the app) ended the run early.
    pub interrupted: bool,
    /// When and why the target was lost, if it was (the run then ended early).
    pub target_lost: Option<TargetLost>,
    /// Panic messages of load threads that panicked (the run then ended early).
    pub panics: Vec<String>,
    /// Client CPU time (user, system) during the load.
    pub cpu: (Duration, Duration),
    /// Histogram precision of the workers.
    pub worker_sigfig: u8,
    /// Post-warmup slow transactions (for the stall detector).
    pub slow: Vec<stats::SlowTx>,
    /// Post-warmup transactions ended (successes and failures) per client, by client id: how
    /// evenly the clients carried the load.
    pub client_tx: Vec<u64>,
    /// Pauses of pgstorm itself during the load, warmup included (the hiccup meter).
    pub pauses: Vec<hiccup::Pause>,
    /// How long the load threads waited for a CPU, warmup included; `None` where the kernel
    /// does not count it.
    pub run_queue: Option<RunQueueWait>,
}

impl EngineOutput {
    /// Every transaction attempted (successes and failures), warmup included.
    pub fn transactions_attempted(&self) -> u64 {
        self.intervals
            .iter()
            .map(|r| r.ok.iter().sum::<u64>() + r.errors.iter().sum::<u64>())
            .sum()
    }
}

/// Caps glibc's malloc arenas. By default glibc gives up to 8 arenas per core to a process with
/// many threads, and each keeps its freed memory: with 500 workers that was tens of MiB of peak
/// RSS for nothing. Workers allocate almost nothing per query, so arena contention does not
/// matter here.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; M_ARENA_MAX is a valid parameter.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Fewest cores at which one is kept free of workers for the samplers and the collector. Below
/// it, reserving a core takes half (or all) of the workers' CPU for threads that use a few ms
/// per second: on 2 cores, select-only at -c 8 fell from 0.82x to 0.62x of pgbench's TPS.
const MIN_CORES_TO_RESERVE: usize = 4;

/// Cores the workers are pinned to (round robin): all but the last on hosts with at least
/// `MIN_CORES_TO_RESERVE` cores, so the samplers and the collector keep a core of their own
/// ([`monitor_core`]); all of them on smaller hosts; empty without pinning.
pub fn worker_cores(pin: bool) -> Vec<core_affinity::CoreId> {
    if !pin {
        return Vec::new();
    }
    let mut cores = core_affinity::get_core_ids().unwrap_or_default();
    if cores.len() >= MIN_CORES_TO_RESERVE {
        cores.pop();
    }
    cores
}

/// The core left free of workers when pinning on a host of at least `MIN_CORES_TO_RESERVE`
/// cores, for the samplers.
pub fn monitor_core(pin: bool) -> Option<core_affinity::CoreId> {
    if !pin {
        return None;
    }
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    if cores.len() >= MIN_CORES_TO_RESERVE {
        cores.last().copied()
    } else {
        None
    }
}

/// Where the pool driver's workers get their connections: the project's wire connections (so
/// scripts run on the executor the `-j` driver runs, pipeline mode included), pooled, or one per
/// transaction with `-C`.
fn pool_source(
    target: &Target,
    workload: &Arc<Workload>,
    cfg: &EngineConfig,
    stop: &StopToken,
) -> Result<(worker::Source, Arc<pool::PoolCounters>)> {
    let counters = Arc::new(pool::PoolCounters::new());
    let manager = wire_pool::WireManager::new(
        target,
        workload.clone(),
        cfg.statement_timeout,
        counters.clone(),
    );
    let source = if cfg.connect_each {
        worker::Source::ConnectEach(Box::new(manager), counters.clone())
    } else {
        let settings = pool::PoolSettings {
            size: cfg.clients.max(1),
            statement_timeout: cfg.statement_timeout,
            ready_timeout: Duration::from_secs(60).max(Duration::from_millis(50) * cfg.clients),
            stop: stop.clone(),
        };
        let names = wire_pool::statement_names(workload);
        let pool = pool::Pool::open(manager, counters.clone(), target, &settings)?;
        worker::Source::Pool(pool.homes, names)
    };
    Ok((source, counters))
}

/// Runs the load described by `cfg` against `target`: over the pool with one thread per client,
/// or with `cfg.threads` set on the multiplexed driver ([`mux`]). Stopping `stop` ends the run
/// early as interrupted (what was measured until then is the output); a run reads no other
/// stop request.
pub fn run(
    target: &Target,
    workload: Arc<Workload>,
    cfg: &EngineConfig,
    stop: &StopToken,
) -> Result<EngineOutput> {
    if cfg.threads.is_some() {
        return mux::run(target, workload, cfg, stop);
    }
    let clients = cfg.clients.max(1) as usize;
    let n_types = workload.types.len();
    let per_worker = n_types + 1 + usize::from(cfg.rate.is_some());
    let sigfig = stats::worker_sigfig(clients * per_worker);
    limit_malloc_arenas();
    let (source, counters) = pool_source(target, &workload, cfg, stop)?;

    let clock = RunClock::new(cfg, clients);
    let halt = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(worker::Shared {
        source,
        checkout_timeout: cfg.checkout_timeout,
        workload: workload.clone(),
        stop: halt.clone(),
        start: clock.start,
        end: clock.end,
        tx_limit: cfg.transactions_per_client,
        arrivals: cfg.rate.map(|r| {
            let mut rng = Rng::stream(cfg.seed, worker::ARRIVAL_STREAM.wrapping_sub(1));
            schedule::Arrivals::new(r, cfg.arrival, Duration::ZERO, &mut rng)
        }),
        seed: cfg.seed,
        max_tries: cfg.max_tries,
        verbose_errors: cfg.verbose_errors,
    });
    let mut txlogs = open_txlogs(cfg, clients, clients, &clock)?;
    let collector = Collector::spawn(&workload, cfg, &clock, clients)?;
    let cpu_before = crate::proc_stats::cpu_time();
    let handles = spawn_load_threads(
        cfg.pin,
        clients,
        &halt,
        "worker thread",
        clock.start,
        &collector.run_queue,
        |id| {
            let rec = collector.recorder(id, 1, 1, n_types, sigfig, &clock, cfg, txlogs[id].take());
            let w = worker::Worker::new(shared.clone(), rec);
            (format!("pgstorm-w{id}"), move || w.run())
        },
    )?;
    let finish = collector.finish(&clock, handles, &halt, stop, &counters, cpu_before)?;
    // Read after the run: r2d2 replaces broken connections while it goes on.
    Ok(finish.output(workload.names(), &counters, sigfig))
}

/// The transaction logs of `threads` load threads serving `clients` clients (`-l`), one per
/// thread, or `None`s without `-l`.
pub(crate) fn open_txlogs(
    cfg: &EngineConfig,
    threads: usize,
    clients: usize,
    clock: &RunClock,
) -> Result<Vec<Option<txlog::TxLog>>> {
    (0..threads)
        .map(|t| {
            cfg.txlog
                .as_ref()
                .map(|c| txlog::TxLog::create(c, t, clients, clock.start, clock.started_at))
                .transpose()
        })
        .collect()
}

/// Starts `n` load threads made by `make` (name, body), pinned round robin to
/// [`worker_cores`], each held until `start` (the run clock's, set to leave time to spawn them
/// all) and adding its wait for a CPU from then on to `meter`; if one cannot start, stops and
/// joins those already running. Without the gate each
/// thread began its load as soon as it was spawned, and at `-c 500` on 2 cores the running ones
/// took the CPU from the thread spawning the rest: the workers' loops began over 7.9-20.5 s, so
/// a 10 s run had a tenth of its clients idle or missing (docs/performance.md).
pub(crate) fn spawn_load_threads<F>(
    pin: bool,
    n: usize,
    stop: &AtomicBool,
    what: &str,
    start: Instant,
    meter: &Arc<RunQueueMeter>,
    mut make: impl FnMut(usize) -> (String, F),
) -> Result<Vec<std::thread::JoinHandle<()>>>
where
    F: FnOnce() + Send + 'static,
{
    let cores = worker_cores(pin);
    let mut handles = Vec::with_capacity(n);
    for id in 0..n {
        let (name, body) = make(id);
        let core = (!cores.is_empty()).then(|| cores[id % cores.len()]);
        let meter = meter.clone();
        let spawned = std::thread::Builder::new()
            .name(name)
            .stack_size(512 * 1024)
            .spawn(move || {
                if let Some(c) = core {
                    core_affinity::set_for_current(c);
                }
                tight_timer_slack();
                // The gate: each thread sleeps on its own timer, so 500 threads share no lock
                // to pass it (behind one channel they still began over 6-10 s).
                if let Some(wait) = start.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                meter.thread(body)
            });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                stop.store(true, Ordering::SeqCst);
                for h in handles {
                    let _ = h.join();
                }
                return Err(anyhow::anyhow!(
                    "cannot start {what} {id} of {n}: {e}; lower -c/-j or raise the \
                     process/thread limits (ulimit -u)"
                ));
            }
        }
    }
    let now = Instant::now();
    if now > start {
        eprintln!(
            "pgstorm: warning: the last of the {n} {what}s started {:.0} ms after the run's \
             start: the first interval is short of load (a busy load machine?)",
            now.duration_since(start).as_secs_f64() * 1e3
        );
    }
    Ok(handles)
}

/// Lets the kernel wake this thread within 1 µs of the time it asked for instead of the default
/// 50 µs of slack, so an open-loop transaction starts when it was due rather than charging the
/// server for the client's late wakeup.
pub(crate) fn tight_timer_slack() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and only affects the calling thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
}

/// Time allowed per load thread between the run clock's creation and its start, for its
/// recorder and its spawn: 500 threads took 45-47 ms on the 2-core VM (docs/performance.md), a
/// fifth of what this allows; a host slower than that gets a warning, not a wrong clock.
const SPAWN_ALLOWANCE: Duration = Duration::from_micros(500);

/// Start, warmup and end of a run, fixed before any worker starts.
pub(crate) struct RunClock {
    pub start: Instant,
    pub end: Option<Instant>,
    pub interval: Duration,
    pub warmup: Duration,
    pub warmup_intervals: u32,
    pub started_at: SystemTime,
    pub lost_grace: Duration,
}

impl RunClock {
    /// The clock of a run on `threads` load threads, starting once they can all have been
    /// spawned ([`spawn_load_threads`] holds them until then), so interval 0 is not short.
    pub(crate) fn new(cfg: &EngineConfig, threads: usize) -> RunClock {
        let interval = cfg.interval.max(Duration::from_millis(10));
        let warmup_intervals = (cfg.warmup.as_secs_f64() / interval.as_secs_f64()).ceil() as u32;
        let warmup = interval * warmup_intervals;
        // The load threads' clock is calibrated before the run, not by the first transaction.
        crate::clock::global();
        let start = Instant::now() + Duration::from_millis(20) + SPAWN_ALLOWANCE * threads as u32;
        RunClock {
            start,
            end: cfg.duration.map(|d| start + warmup + d),
            interval,
            warmup,
            warmup_intervals,
            started_at: SystemTime::now() + start.saturating_duration_since(Instant::now()),
            lost_grace: cfg.lost_grace,
        }
    }
}

/// The collector thread and the channels the load threads hand their batches through.
pub(crate) struct Collector {
    pub tx: crossbeam_channel::Sender<stats::Batch>,
    /// Each load thread's return channel (index = its id, see [`collector::Returns`]).
    pub returned: Vec<crossbeam_channel::Receiver<stats::Batch>>,
    /// Where the load threads merge their own batches when they can (see [`collector`]).
    pub sink: collector::Sink,
    handle: std::thread::JoinHandle<collector::Collected>,
    hiccups: hiccup::Meter,
    /// The load threads' wait for a CPU ([`spawn_load_threads`] hands it to each).
    pub run_queue: Arc<RunQueueMeter>,
}

/// What a finished run measured, before the connection counters are added.
pub(crate) struct Finished {
    collected: collector::Collected,
    clock_warmup: Duration,
    started_at: SystemTime,
    measured: Duration,
    wall: Duration,
    interrupted: bool,
    target_lost: Option<TargetLost>,
    panics: Vec<String>,
    cpu: (Duration, Duration),
    pauses: Vec<hiccup::Pause>,
    run_queue: Option<RunQueueWait>,
}

impl Collector {
    /// Starts the collector for `workers` load threads (each hands one batch per interval).
    pub(crate) fn spawn(
        workload: &Workload,
        cfg: &EngineConfig,
        clock: &RunClock,
        workers: usize,
    ) -> Result<Collector> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (returns, returned) = collector::Returns::new(workers);
        let collector_cfg = collector::CollectorConfig {
            names: workload.names(),
            workers,
            clients: cfg.clients as usize,
            start: clock.start,
            interval: clock.interval,
            warmup_intervals: clock.warmup_intervals,
            grace: cfg.statement_timeout + clock.interval * 2,
            progress: cfg.progress,
            progress_epoch: cfg.progress_timestamp.then(|| {
                clock
                    .started_at
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64()
            }),
            progress_json: cfg.progress_ndjson.then(|| collector::JsonProgress {
                start_unix_s: clock
                    .started_at
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64(),
                clients: cfg.clients,
            }),
            open_loop: cfg.rate.is_some(),
            last_interval: cfg.duration.map(|d| {
                let n = (d.as_secs_f64() / clock.interval.as_secs_f64())
                    .ceil()
                    .max(1.0) as u32;
                clock.warmup_intervals + n - 1
            }),
        };
        let collector_core = monitor_core(cfg.pin);
        let sink = collector::Merged::sink(&collector_cfg);
        let collector_sink = sink.clone();
        let handle = std::thread::Builder::new()
            .name("pgstorm-collector".into())
            .spawn(move || {
                if let Some(c) = collector_core {
                    core_affinity::set_for_current(c);
                }
                collector::run_with(collector_cfg, rx, returns, collector_sink)
            })
            .context("cannot start the collector thread")?;
        Ok(Collector {
            tx,
            returned,
            sink,
            handle,
            hiccups: hiccup::Meter::start(clock.start)?,
            run_queue: Arc::default(),
        })
    }

    /// The measurement path of load thread `id` serving `clients` clients whose ids are
    /// `stride` apart from `id` on (closed or open loop and `-L` as `cfg` says, `txlog` its `-l`
    /// log): it hands its batches to this collector, merges them into the sink itself while the
    /// collector thread is behind, and owns
    /// [`worker::SPARE_BATCHES`] emptied batches, allocated here (while the load threads are
    /// spawned) and given back to it by the collector. Both drivers take their recorders here,
    /// so neither can leave that out.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn recorder(
        &self,
        id: usize,
        clients: usize,
        stride: usize,
        n_types: usize,
        sigfig: u8,
        clock: &RunClock,
        cfg: &EngineConfig,
        txlog: Option<txlog::TxLog>,
    ) -> worker::Recorder {
        worker::Recorder::new(
            id,
            n_types,
            sigfig,
            clock.start,
            clock.interval,
            self.tx.clone(),
            self.returned[id].clone(),
        )
        .absorbing(self.sink.clone())
        .open_loop(cfg.rate.is_some())
        .pgbench_options(cfg.latency_limit, txlog)
        .serving(clients, stride)
        .stocked(worker::SPARE_BATCHES)
    }

    /// Waits for the end of the run (duration, the caller's `stop` token, every load thread
    /// done with `-t`, the target lost according to the driver's connection `counters`, or a
    /// load thread that panicked), raises `halt` to stop the load threads, joins every one of
    /// them, and collects.
    pub(crate) fn finish(
        self,
        clock: &RunClock,
        handles: Vec<std::thread::JoinHandle<()>>,
        halt: &AtomicBool,
        stop: &StopToken,
        counters: &pool::PoolCounters,
        cpu_before: (Duration, Duration),
    ) -> Result<Finished> {
        drop(self.tx);
        let mut handles: Vec<Option<std::thread::JoinHandle<()>>> =
            handles.into_iter().map(Some).collect();
        let mut panics = Vec::new();
        let mut watch = lost::LostWatch::new(clock.lost_grace);
        let mut lost_at = None;
        let mut interrupted = false;
        loop {
            if stop.is_stopped() {
                interrupted = true;
                break;
            }
            // Threads that ended are joined now, so a panic ends the run at once.
            for slot in handles
                .iter_mut()
                .filter(|h| h.as_ref().is_some_and(|h| h.is_finished()))
            {
                panics.extend(join_load_thread(slot.take()));
            }
            if !panics.is_empty() || handles.iter().all(Option::is_none) {
                break;
            }
            let now = Instant::now();
            if clock.end.is_some_and(|end| now >= end) {
                break;
            }
            if let Some(at) = watch.observe(now, lost::Reading::of(counters)) {
                lost_at = Some(at);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let stopped_at = Instant::now();
        halt.store(true, Ordering::SeqCst);
        for slot in &mut handles {
            panics.extend(join_load_thread(slot.take()));
        }
        let cpu_after = crate::proc_stats::cpu_time();
        let pauses = self.hiccups.finish();
        let collected = self.handle.join().map_err(|p| {
            anyhow::anyhow!("the collector thread panicked: {}", panic_message(&*p))
        })?;
        let target_lost = lost_at.map(|at| TargetLost {
            at: at.saturating_duration_since(clock.start),
            reason: counters.last_error.lock().as_ref().map_or_else(
                || "no connection could be opened".to_string(),
                |(_, m)| m.clone(),
            ),
        });
        // Rates cover the time the target served the run: up to the end, or to its loss.
        let measured_end = stopped_at
            .min(clock.end.unwrap_or(stopped_at))
            .min(lost_at.unwrap_or(stopped_at));
        Ok(Finished {
            collected,
            clock_warmup: clock.warmup,
            started_at: clock.started_at,
            measured: measured_end.saturating_duration_since(clock.start + clock.warmup),
            wall: stopped_at.saturating_duration_since(clock.start),
            interrupted,
            target_lost,
            panics,
            cpu: (
                cpu_after.0.saturating_sub(cpu_before.0),
                cpu_after.1.saturating_sub(cpu_before.1),
            ),
            pauses,
            // Every load thread was joined above: each has added its wait.
            run_queue: self.run_queue.result(),
        })
    }
}

/// Joins a load thread (if not joined yet); the message of its panic, if it panicked, prefixed
/// with the thread's name.
fn join_load_thread(handle: Option<std::thread::JoinHandle<()>>) -> Option<String> {
    let h = handle?;
    let name = h.thread().name().unwrap_or("load thread").to_string();
    h.join()
        .err()
        .map(|p| format!("{name}: {}", panic_message(&*p)))
}

/// The text of a panic payload (`panic!` with a literal or with formatting).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

impl Finished {
    /// The engine's output, with the connections the driver opened (`counters`).
    pub(crate) fn output(
        self,
        names: Vec<String>,
        counters: &pool::PoolCounters,
        worker_sigfig: u8,
    ) -> EngineOutput {
        let c = self.collected;
        let connect = counters.connect.lock().clone();
        let connections_opened = counters.opened.load(Ordering::Relaxed);
        let connect_failures = counters.failed.load(Ordering::Relaxed);
        EngineOutput {
            names,
            totals: c.totals,
            pool_wait: c.pool_wait,
            lag: c.lag,
            connect,
            connections_opened,
            connect_failures,
            intervals: c.intervals,
            log: c.log,
            late_batches: c.late_batches,
            clock: crate::clock::global().check(),
            started_at: self.started_at,
            measured: self.measured,
            warmup: self.clock_warmup,
            wall: self.wall,
            interrupted: self.interrupted,
            target_lost: self.target_lost,
            panics: self.panics,
            cpu: self.cpu,
            worker_sigfig,
            slow: c.slow,
            client_tx: c.client_tx,
            pauses: self.pauses,
            run_queue: self.run_queue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::warning_code::WarningCode;
    use crate::workload::script::{Predefined, Script};
    use crate::workload::{Protocol, QueryType};

    #[test]
    fn no_load_thread_begins_before_the_runs_start() {
        let n = 40;
        let start = Instant::now() + Duration::from_millis(300);
        let began = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let stop = AtomicBool::new(false);
        let meter = Arc::new(RunQueueMeter::default());
        let handles = spawn_load_threads(false, n, &stop, "test thread", start, &meter, |id| {
            let began = began.clone();
            (format!("t{id}"), move || began.lock().push(Instant::now()))
        })
        .expect("40 threads start");
        for h in handles {
            h.join().expect("the thread ends");
        }
        let began = began.lock();
        assert_eq!(began.len(), n);
        assert!(began.iter().all(|&t| t >= start), "a thread began early");
    }

    #[test]
    fn load_threads_that_share_a_core_are_reported_waiting_for_a_cpu() {
        // The run-queue measure's positive control through the spawn path both drivers use:
        // four load threads crowd one core; they wait, are measured, and warned about.
        let meter = Arc::new(RunQueueMeter::default());
        let stop = AtomicBool::new(false);
        let start = Instant::now() + Duration::from_millis(50);
        let handles = spawn_load_threads(false, 4, &stop, "test thread", start, &meter, |id| {
            (format!("t{id}"), crowd_first_core)
        })
        .expect("4 threads start");
        for h in handles {
            h.join().expect("the thread ends");
        }
        let rq = meter
            .result()
            .expect("this Linux host counts the run-queue wait");
        assert_eq!(rq.threads, 4);
        assert!(
            rq.share > 0.3 && rq.wait_s > 0.3,
            "four threads on one core: {rq:?}"
        );
        assert!(rq.max_thread_share >= rq.share, "{rq:?}");
        let pool = crate::report::warnings::ClientThreads::PoolWorkers;
        let w = crate::report::warnings::run_queue_warning(&rq, pool).expect("warned");
        assert_eq!(w.code, WarningCode::ClientRunQueue);
    }

    /// Run by each of the four threads of the positive control above: pinned to the first
    /// core, it spins for 300 ms of wall time. Four of them can each have the core a quarter of
    /// that time and wait runnable the rest; on a host busy with other work they wait more,
    /// never less.
    fn crowd_first_core() {
        let core = core_affinity::get_core_ids()
            .and_then(|c| c.first().copied())
            .expect("this host lists a core");
        assert!(core_affinity::set_for_current(core), "pinned");
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(300) {
            std::hint::spin_loop();
        }
    }

    /// Both drivers take their load threads' recorders from `Collector::recorder`; the
    /// recorder's unit tests show what one with a sink does while the collector thread is behind
    /// (it merges its own batches). This pins that every recorder handed out has the sink: it
    /// fails if `recorder` leaves `absorbing` out, for either driver.
    #[test]
    fn every_recorder_the_collector_hands_out_can_merge_into_its_sink() {
        let script = Script::parse("t", "t", "SELECT 1;\n", Predefined::default()).unwrap();
        let workload = Workload::new(
            vec![(Box::new(script) as Box<dyn QueryType>, 1)],
            Protocol::Prepared,
        )
        .unwrap();
        let cfg = crate::scenarios::queries::QueriesOptions::default().engine;
        let clock = RunClock::new(&cfg, 2);
        let collector = Collector::spawn(&workload, &cfg, &clock, 2).unwrap();
        for (id, open_loop) in [(0, false), (1, true)] {
            let cfg = EngineConfig {
                rate: open_loop.then_some(100.0),
                ..cfg.clone()
            };
            let rec = collector.recorder(id, 1, 1, 1, 2, &clock, &cfg, None);
            assert!(rec.absorbs(), "recorder {id} has no sink");
        }
    }
}
