//! The multiplexed driver (`-j N`): N pinned threads, each serving its share of the clients'
//! connections through nonblocking sockets and one `ppoll(2)` per round, as pgbench does.
//!
//! Why: with one blocking thread per connection every query costs a sleep and a wakeup (a context
//! switch) on the client, and on a host shared with the server that CPU is taken from the server.
//! A thread that serves several connections sends the next client's query while the server works
//! on the previous one and finds several replies ready per wakeup.
//!
//! Scope: every query type, since each is a pgbench script (`-f`/`-b`, and the built-in POS types
//! of [`crate::workload::builtin`]), run resumably ([`crate::workload::script::resume`]);
//! connections are opened nonblocking ([`super::wire_pool::connect_polled`]) and belong to their
//! thread for the whole run (there is no pool, so no checkout wait is recorded). Measurement is
//! the pool engine's: each thread records into its own [`super::worker::Recorder`], taken from
//! the collector as the pool driver's workers take theirs (one batch per interval to the
//! collector); in open loop the latency runs from the intended start and the schedule lag is
//! recorded on its own. A completion's timestamp is read once and serves as the next
//! transaction's start in closed loop.
//!
//! Invariants: nothing allocates per query (wire buffers, `Tx` and the pollfd array are reused);
//! a transaction that fails inside a transaction block is followed by a ROLLBACK before the
//! client goes on; a lost connection is replaced with backoff (blocking the thread for the
//! connect, which is rare); at the end in-flight transactions finish (up to the statement
//! timeout) and are counted, as in the pool engine.
//!
//! Layout: this module sets the run up (checks, shared state, every connection opened before the
//! clock starts) and hands the connections out; `thread` is the per-thread event loop that drives
//! them. They are apart because the loop is the measured hot path and the setup is not.

mod thread;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use self::thread::Thread;
use super::pool::{session_sql, PoolCounters};
use super::stats;
use super::wire_pool::{connect_polled, counted, statement_names};
use super::{Collector, EngineConfig, EngineOutput, RunClock};
use crate::stop::StopToken;
use crate::target::Target;
use crate::wire::{WireConn, WireError};
use crate::workload::script::Script;
use crate::workload::Workload;

/// What the threads share.
struct Shared {
    workload: Arc<Workload>,
    /// Prepared statement names, `[type][statement]` (protocol `prepared`).
    names: Vec<Vec<String>>,
    target: Target,
    session_sql: String,
    counters: Arc<PoolCounters>,
    stop: Arc<AtomicBool>,
    start: Instant,
    end: Option<Instant>,
    tx_limit: Option<u64>,
    rate: Option<(f64, super::Arrival)>,
    seed: u64,
    clients: usize,
    max_tries: u32,
    statement_timeout: Duration,
    /// `-C`: a new connection per transaction.
    connect_each: bool,
    /// `--verbose-errors`.
    verbose_errors: bool,
}

impl Shared {
    fn script(&self, kind: usize) -> &Script {
        self.workload.types[kind].script()
    }

    /// Opens and prepares one nonblocking connection, counting it.
    fn connect(&self) -> Result<WireConn, WireError> {
        counted(&self.counters, || {
            connect_polled(&self.target, &self.session_sql, &self.workload, &self.names)
        })
    }
}

/// Runs the load on `cfg.threads` multiplexing threads.
pub fn run(
    target: &Target,
    workload: Arc<Workload>,
    cfg: &EngineConfig,
    stop: &StopToken,
) -> Result<EngineOutput> {
    let clients = cfg.clients.max(1) as usize;
    let threads = (cfg.threads.unwrap_or(1).max(1) as usize).min(clients);
    let n_types = workload.types.len();
    let per_thread = n_types + 1 + usize::from(cfg.rate.is_some());
    let sigfig = stats::worker_sigfig(threads * per_thread);
    let names = statement_names(&workload);
    let halt = Arc::new(AtomicBool::new(false));
    let mut shared = Shared {
        workload: workload.clone(),
        names,
        target: with_connect_timeout(target),
        session_sql: session_sql(cfg.statement_timeout),
        counters: Arc::new(PoolCounters::new()),
        stop: halt.clone(),
        start: Instant::now(),
        end: None,
        tx_limit: cfg.transactions_per_client,
        rate: cfg.rate.map(|r| (r, cfg.arrival)),
        seed: cfg.seed,
        clients,
        max_tries: cfg.max_tries,
        statement_timeout: cfg.statement_timeout,
        connect_each: cfg.connect_each,
        verbose_errors: cfg.verbose_errors,
    };
    let conns = open_all(&shared, clients, stop)?;

    let clock = RunClock::new(cfg, threads);
    shared.start = clock.start;
    shared.end = clock.end;
    let shared = Arc::new(shared);
    let mut txlogs = super::open_txlogs(cfg, threads, clients, &clock)?;
    let collector = Collector::spawn(&workload, cfg, &clock, threads)?;
    let cpu_before = crate::proc_stats::cpu_time();
    let mut per_thread: Vec<Vec<(usize, WireConn)>> = (0..threads).map(|_| Vec::new()).collect();
    for (id, conn) in conns.into_iter().enumerate() {
        per_thread[id % threads].push((id, conn));
    }
    let mut per_thread = per_thread.into_iter();
    let handles = super::spawn_load_threads(
        cfg.pin,
        threads,
        &halt,
        "load thread",
        clock.start,
        &collector.run_queue,
        |tid| {
            let (sh, mine) = (shared.clone(), per_thread.next().unwrap_or_default());
            // Thread `tid` serves clients tid, tid + threads, ... (the loop above).
            let rec = collector.recorder(
                tid,
                mine.len(),
                threads,
                n_types,
                sigfig,
                &clock,
                cfg,
                txlogs[tid].take(),
            );
            (format!("pgstorm-j{tid}"), move || {
                Thread::new(&sh, rec, mine).run(&sh)
            })
        },
    )?;
    let finish = collector.finish(&clock, handles, &halt, stop, &shared.counters, cpu_before)?;
    Ok(finish.output(workload.names(), &shared.counters, sigfig))
}

/// The target with a connect timeout when it has none: a thread reconnects a lost client
/// synchronously, and without a bound a host that drops packets would stall its other clients
/// for the kernel's TCP timeout (minutes).
fn with_connect_timeout(target: &Target) -> Target {
    let mut t = target.clone();
    if t.config.get_connect_timeout().is_none() {
        t.config.connect_timeout(CONNECT_TIMEOUT);
    }
    t
}

/// Connect timeout of the driver's connections when the target sets none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens every client's connection before the clock starts, several at a time; stopping `stop`
/// abandons the opening as interrupted.
fn open_all(shared: &Shared, clients: usize, stop: &StopToken) -> Result<Vec<WireConn>> {
    let openers = clients.clamp(1, 16);
    let mut slots: Vec<Option<Result<WireConn, WireError>>> = (0..clients).map(|_| None).collect();
    std::thread::scope(|s| {
        for (i, chunk) in slots.chunks_mut(clients.div_ceil(openers)).enumerate() {
            let _ = i;
            s.spawn(move || {
                for slot in chunk {
                    if stop.is_stopped() {
                        return;
                    }
                    *slot = Some(shared.connect());
                }
            });
        }
    });
    if stop.is_stopped() {
        return Err(crate::interrupt::error());
    }
    let mut conns = Vec::with_capacity(clients);
    for (i, slot) in slots.into_iter().enumerate() {
        match slot {
            Some(Ok(c)) => conns.push(c),
            Some(Err(e)) => {
                let hint = if e.sqlstate() == Some("53300") {
                    "; raise the server's max_connections or lower -c"
                } else {
                    ""
                };
                return Err(crate::error::target(format!(
                    "connection {} of {clients} to {} failed: {e}{hint}",
                    i + 1,
                    shared.target.display
                )));
            }
            None => return Err(crate::interrupt::error()),
        }
    }
    Ok(conns)
}
