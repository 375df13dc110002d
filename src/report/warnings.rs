//! Measurement-quality warnings derived from a result document: the report's way of saying "do
//! not trust this figure, and here is why".
//!
//! Invariant: each check reads only the document, so a run read back from disk gets the same
//! warnings. Each warning names what was seen, with numbers, and what to do.

use super::model::{
    ClientSpread, ConnectionsResult, LoadResult, RunDocument, Warning, WarningCode,
};
use crate::monitor::model::Monitoring;

fn w(code: WarningCode, message: String) -> Warning {
    Warning { code, message }
}

/// Warnings about a connection scenario's result.
pub fn connection_warnings(c: &ConnectionsResult) -> Vec<Warning> {
    let mut out = Vec::new();
    for s in &c.steps {
        if s.time_to_reach_s.is_none() && c.config.mode == "ramp" {
            out.push(w(
                WarningCode::StepNotReached,
                format!(
                    "the pool never reached {} connections in its step (at most {} open): its \
                     figures describe a smaller pool; see connect_failures and the server log",
                    s.target, s.peak_open
                ),
            ));
        }
    }
    if let Some(i) = c.incidents.iter().find(|i| !i.recovered) {
        out.push(w(
            WarningCode::NotRecovered,
            format!(
                "service dropped at {:.2} s and had not recovered when the run ended: the server \
                 stayed unreachable; later steps measured an outage, not a load",
                i.dropped_at_s
            ),
        ));
    }
    out.extend(
        c.client
            .run_queue
            .as_ref()
            .and_then(|rq| run_queue_warning(rq, ClientThreads::ConnectionWorkers)),
    );
    if c.client.cpu_share_of_host > 0.9 {
        out.push(w(
            WarningCode::ClientSaturated,
            format!(
                "pgstorm used {:.0}% of the host's CPU: latencies include time waiting for the \
                 client; run pgstorm on another machine or use fewer workers",
                c.client.cpu_share_of_host * 100.0
            ),
        ));
    }
    out
}

/// Below this share of the clients, the effective number of clients ((Σn)²/Σn² of their
/// transaction counts) says they did not carry the same load. Chance alone keeps it near
/// `1 / (1 + 1/m)` of them for a mean of `m` transactions per client: above 0.95 from m = 20.
const UNEVEN_EFFECTIVE_SHARE: f64 = 0.8;

/// Fewest transactions of the busiest client for the clients' spread to be judged at all.
const UNEVEN_MIN_MAX: u64 = 20;

/// The clients of a closed-loop load did not carry the same load (in open loop the arrivals
/// go to whichever client is free, so its clients need not). When the load `threads` also
/// waited for a CPU [`RUN_QUEUE_SHARE`] of their lifetime (`run_queue`), the load machine is
/// named as the first cause: a short CPU serves runnable threads unevenly, which is not the
/// server's doing.
fn uneven_clients_warning(
    s: &ClientSpread,
    open_loop: bool,
    run_queue: Option<&crate::proc_stats::RunQueueWait>,
    threads: ClientThreads,
) -> Option<Warning> {
    if open_loop
        || s.clients < 2
        || s.max < UNEVEN_MIN_MAX
        || s.effective >= UNEVEN_EFFECTIVE_SHARE * f64::from(s.clients)
    {
        return None;
    }
    let cause = match run_queue.filter(|rq| short_of_cpu(rq)) {
        Some(rq) => format!(
            "pgstorm's {} {} waited for a CPU {:.0}% of their lifetime (one of them {:.0}%): a \
             load machine short of CPU serves its threads unevenly, so look there first (see \
             client_run_queue), then for clients that waited on locks or for connections",
            rq.threads,
            threads.name(),
            rq.share * 100.0,
            rq.max_thread_share * 100.0
        ),
        None => "look for clients that waited on locks or for connections (stalls, the checkout \
                 wait), lost their connection, or were served behind the others"
            .to_string(),
    };
    Some(w(
        WarningCode::UnevenClients,
        format!(
            "the {} clients did not carry the same load: per-client transactions ranged from {} \
             to {} (median {}, p10 {}, p90 {}), {:.0} effective clients ((Σn)²/Σn²); the figures \
             describe fewer, busier clients than asked: {cause}",
            s.clients, s.min, s.max, s.p50, s.p10, s.p90, s.effective
        ),
    ))
}

/// Warnings about a load's measurement.
pub fn load_warnings(doc: &RunDocument, load: &LoadResult) -> Vec<Warning> {
    let mut out = Vec::new();
    out.extend(stall_warnings(load));
    let threads = ClientThreads::of_load(&load.config);
    let run_queue = load.client.run_queue.as_ref();
    out.extend(
        load.clients.as_ref().and_then(|s| {
            uneven_clients_warning(s, load.config.rate.is_some(), run_queue, threads)
        }),
    );
    out.extend(run_queue.and_then(|rq| run_queue_warning(rq, threads)));
    if let Some(lag) = &load.schedule_lag {
        if lag.p99_ms > 10.0 {
            out.push(w(
                WarningCode::ScheduleLag,
                format!(
                    "transactions started late (schedule lag p99 {:.1} ms): the server or the \
                     client could not sustain {:.0} tx/s with {} clients; latencies include that \
                     queueing, which is the point of open loop, but raise -c if the client is the limit",
                    lag.p99_ms,
                    load.config.rate.unwrap_or(0.0),
                    load.config.clients
                ),
            ));
        }
    }
    // Sampled client CPU catches a saturated stretch that the whole-run average dilutes.
    let client_p95 = doc
        .monitoring
        .as_ref()
        .and_then(|m| {
            Some((
                m.host.as_ref()?.summary.client_cpu_percent.p95,
                m.thresholds,
            ))
        })
        .filter(|(p95, th)| *p95 > th.client_cpu_percent);
    if load.client.cpu_share_of_host > 0.9 || client_p95.is_some() {
        let sampled = client_p95
            .map(|(p95, _)| format!(" (p95 of the samples {p95:.0}%)"))
            .unwrap_or_default();
        out.push(w(
            WarningCode::ClientCpuSaturated,
            format!(
                "pgstorm used {:.0}% of the host's CPU over the run{sampled}: the client may be \
                 the bottleneck; run it on a separate load machine or lower -c",
                load.client.cpu_share_of_host * 100.0
            ),
        ));
    }
    let errors: u64 = load.summary.errors.values().sum();
    if errors > 0 {
        let classes: Vec<String> = load
            .summary
            .errors
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        out.push(w(
            WarningCode::FailedTransactions,
            format!(
                "{errors} transactions failed ({}); their latency is not in the percentiles",
                classes.join(", ")
            ),
        ));
    }
    out.extend(data_size_warning(doc));
    out.extend(monitoring_warnings(doc, load));
    if let Some(sc) = &load.server_check {
        if sc.client_transactions >= 100 && !(0.95..=1.05).contains(&sc.ratio) {
            out.push(w(
                WarningCode::ServerCountMismatch,
                format!(
                    "the server counted {} transactions where pgstorm counted {} (ratio {:.3}): \
                     another client was active on this database, or statistics are stale",
                    sc.xact_commit + sc.xact_rollback,
                    sc.client_transactions,
                    sc.ratio
                ),
            ));
        }
    }
    if load.client.late_batches > 0 {
        out.push(w(
            WarningCode::LateBatches,
            format!(
                "{} worker batches reached the collector after their interval closed (a worker \
                 was blocked longer than statement_timeout + 2 intervals); totals are exact but \
                 those intervals' percentiles miss them",
                load.client.late_batches
            ),
        ));
    }
    if load.config.histogram_sigfig < 3 {
        out.push(w(
            WarningCode::HistogramPrecision,
            format!(
                "{} clients × {} query types: worker histograms use {} significant digits to \
                 bound memory, so percentiles are exact to ~1%",
                load.config.clients,
                load.queries.len(),
                load.config.histogram_sigfig
            ),
        ));
    }
    if let Some(c) = load.client.clock.as_ref().filter(|c| !c.passed) {
        out.push(w(
            WarningCode::ClockDrift,
            format!(
                "the TSC clock ({:.0} Hz as calibrated) drifted {:+.0} ppm from the monotonic \
                 clock over {:.1} s (limit ±{:.0} ppm): latencies are off by that much; check \
                 the host's TSC (dmesg 'tsc') and rerun",
                c.frequency_hz.unwrap_or(0.0),
                c.drift_ppm.unwrap_or(0.0),
                c.checked_over_s,
                c.limit_ppm
            ),
        ));
    }
    if doc.host.clocksource != "tsc" && doc.host.clocksource != "unknown" {
        out.push(w(
            WarningCode::Clocksource,
            format!(
                "the kernel clocksource is '{}', not tsc: reading the clock costs more and \
                 sub-10 µs latencies are less precise",
                doc.host.clocksource
            ),
        ));
    }
    if doc.interrupted {
        out.push(w(
            WarningCode::Interrupted,
            "the run was interrupted: the figures cover only the part that ran".to_string(),
        ));
    }
    out
}

/// A dataset that fits in shared_buffers: every read is a buffer hit whatever the memory
/// settings, so a study of shared_buffers, work_mem or effective_cache_size measures nothing.
pub fn data_size_warning(doc: &RunDocument) -> Option<Warning> {
    let size = doc
        .data_size
        .as_ref()
        .filter(|s| s.fits_in_shared_buffers())?;
    let mib = |b: i64| b as f64 / (1024.0 * 1024.0);
    Some(w(
        WarningCode::DatasetFitsInSharedBuffers,
        format!(
            "the tables and indexes the load touched take {:.1} MiB, less than shared_buffers \
             ({:.0} MiB): memory settings cannot show an effect on this dataset; seed one several \
             times larger than shared_buffers (-s N for the POS dataset, `pgstorm seed --pgbench \
             -s N` for pgbench's tables)",
            mib(size.total_bytes),
            mib(size.shared_buffers_bytes)
        ),
    ))
}

/// A stall of the server, said only with its evidence (many clients waiting at once, the client
/// not paused meanwhile), and a pause of pgstorm itself, which no figure of that moment survives.
fn stall_warnings(load: &LoadResult) -> Vec<Warning> {
    let mut out = Vec::new();
    let closed = load.config.rate.is_none();
    let server_side: Vec<_> = load.stalls.iter().filter(|s| !s.client_side).collect();
    if closed {
        if let Some(worst) = server_side
            .iter()
            .max_by(|a, b| a.duration_s.total_cmp(&b.duration_s))
        {
            let estimate = load
                .co_corrected
                .as_ref()
                .map(|c| {
                    format!(
                        "; had the requests been sent on schedule, p99 would be about {:.1} ms \
                         instead of {:.1} ms and p99.9 {:.1} ms instead of {:.1} ms (HdrHistogram's \
                         expected-interval correction)",
                        c.p99_ms,
                        load.summary.latency.p99_ms,
                        c.p999_ms,
                        load.summary.latency.p999_ms
                    )
                })
                .unwrap_or_default();
            out.push(w(
                WarningCode::ClosedLoopStall,
                format!(
                    "the server stalled {}: at t={:.1} s, {} of {} clients waited at once for \
                     {:.2} s, each on a transaction of at least {:.0} ms; in closed loop the work \
                     that would have queued behind the stall is never sent, so the percentiles \
                     hide it (coordinated omission){estimate}; rerun with -R <rate> to measure \
                     latency from the intended start",
                    if server_side.len() == 1 {
                        "once".to_string()
                    } else {
                        format!("{} times", server_side.len())
                    },
                    worst.start_s,
                    worst.clients_waiting,
                    load.config.clients,
                    worst.duration_s,
                    worst.threshold_ms
                ),
            ));
        }
    }
    let pause_ms = load.client.max_pause_ms;
    if pause_ms >= 100.0 || load.stalls.iter().any(|s| s.client_side) {
        out.push(w(
            WarningCode::ClientPaused,
            format!(
                "pgstorm itself was paused {} times for 10 ms or more, the longest {pause_ms:.0} ms \
                 (its CPU was taken by other processes or the hypervisor): every client waited \
                 then, and that wait is in the latencies although the server did not cause it; \
                 run the load on a quieter machine",
                load.client.pauses
            ),
        ));
    }
    out
}

/// The share of their time pgstorm's threads may wait for a CPU before it is worth a warning:
/// a tenth of every transaction's time is beyond what a reader would put down to noise.
pub const RUN_QUEUE_SHARE: f64 = 0.10;

/// Whether the load threads waited for a CPU [`RUN_QUEUE_SHARE`] of their lifetime or more: the
/// one test behind both warnings that name the load machine.
fn short_of_cpu(rq: &crate::proc_stats::RunQueueWait) -> bool {
    rq.share >= RUN_QUEUE_SHARE
}

/// Whose wait for a CPU a [`run_queue_warning`] is about: it decides what the wait is in and
/// what would shorten it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientThreads {
    /// The pool driver's workers, one per client.
    PoolWorkers,
    /// The `-j` driver's threads, each serving several clients.
    MuxThreads,
    /// The connection scenario's workers.
    ConnectionWorkers,
}

impl ClientThreads {
    /// The load threads of a run with `config`: the pool driver's, or the `-j` driver's.
    pub fn of_load(config: &crate::report::model::LoadConfig) -> ClientThreads {
        match config.threads {
            Some(_) => ClientThreads::MuxThreads,
            None => ClientThreads::PoolWorkers,
        }
    }

    /// What they are called in the summary, the report and the warning.
    pub fn name(self) -> &'static str {
        self.words().0
    }

    /// (what they are, where their wait shows, what would shorten it on a dedicated machine).
    fn words(self) -> (&'static str, &'static str, &'static str) {
        match self {
            ClientThreads::PoolWorkers => (
                "load threads",
                "the latencies and the pool's checkout wait",
                "run fewer threads per core (-j N drives many connections per thread) or use more \
                 cores",
            ),
            ClientThreads::MuxThreads => (
                "-j threads",
                "the latencies of all the clients they serve",
                "use a load machine with more cores",
            ),
            ClientThreads::ConnectionWorkers => (
                "connection workers",
                "the connect, checkout and operation times",
                "run fewer --workers or use more cores",
            ),
        }
    }
}

/// A warning when the client's `threads` waited for a CPU [`RUN_QUEUE_SHARE`] of their lifetime
/// or more.
pub fn run_queue_warning(
    rq: &crate::proc_stats::RunQueueWait,
    threads: ClientThreads,
) -> Option<Warning> {
    let (what, shows, remedy) = threads.words();
    short_of_cpu(rq).then(|| {
        w(
            WarningCode::ClientRunQueue,
            format!(
                "pgstorm's {} {what} were runnable but without a CPU {:.0}% of their lifetime \
                 ({:.1} s in all, one of them {:.0}%): the work they were in the middle of waited \
                 that long for the load machine's CPU, and that wait is in {shows}; on a machine \
                 shared with the server its backends take those CPUs, otherwise {remedy}",
                rq.threads,
                rq.share * 100.0,
                rq.wait_s,
                rq.max_thread_share * 100.0
            ),
        )
    })
}

/// Warnings from the resource samples: a saturated or swapping host, memory near its limit, a
/// server count that disagrees with the client's, and samplers that did not see everything.
fn monitoring_warnings(doc: &RunDocument, load: &LoadResult) -> Vec<Warning> {
    let mut out = Vec::new();
    let Some(m) = &doc.monitoring else {
        return out;
    };
    if let Some(u) = &m.under_load {
        if u.cpu_p95_percent > m.thresholds.cpu_percent {
            let split = match u.server_cpu_mean_percent {
                Some(pg) => format!(
                    " (mean: pgstorm {:.0}%, PostgreSQL {:.0}%, the rest other processes)",
                    u.client_cpu_mean_percent, pg
                ),
                None => format!(" (mean: pgstorm {:.0}%)", u.client_cpu_mean_percent),
            };
            out.push(w(
                WarningCode::HostCpuSaturated,
                format!(
                    "the load machine's CPU was {:.0}% busy at p95 under load{split}: latencies \
                     include waiting for a CPU; with a local server, client and server compete, so \
                     put them on separate machines or lower -c",
                    u.cpu_p95_percent
                ),
            ));
        }
        if u.memory_peak_percent > m.thresholds.memory_percent {
            out.push(w(
                WarningCode::MemoryHigh,
                format!(
                    "host memory in use peaked at {:.1}% under load (threshold {:.0}%): the page \
                     cache is being squeezed, so disk reads and latencies may not be typical",
                    u.memory_peak_percent, m.thresholds.memory_percent
                ),
            ));
        }
        if u.swap_pages > 0 {
            let used = m
                .host
                .as_ref()
                .map(|h| h.summary.swap_used_bytes.peak / (1024.0 * 1024.0))
                .unwrap_or(0.0);
            out.push(w(
                WarningCode::SwapInUse,
                format!(
                    "the host swapped {} pages in or out during the load ({used:.0} MiB of swap in \
                     use at peak): any latency figure may include page faults; free memory or \
                     lower -c / shared_buffers",
                    u.swap_pages
                ),
            ));
        }
    }
    if load.server_check.is_none() {
        if let Some(t) = m.server.as_ref().map(|s| &s.totals) {
            let client = load.summary.count + load.summary.errors.values().sum::<u64>();
            let server = t.xact_commit + t.xact_rollback;
            let ratio = server as f64 / client.max(1) as f64;
            if client >= 100 && !(0.95..=1.05).contains(&ratio) {
                out.push(w(
                    WarningCode::ServerCountMismatch,
                    format!(
                        "the server sampler counted {server} transactions where pgstorm counted \
                         {client} (ratio {ratio:.3}): another client was active on this \
                         database, or statistics are stale"
                    ),
                ));
            }
        }
    }
    out.extend(sampler_warnings(m));
    out
}

fn sampler_warnings(m: &Monitoring) -> Vec<Warning> {
    let mut out = Vec::new();
    if !m.errors.is_empty() {
        out.push(w(
            WarningCode::MonitorIncomplete,
            format!("resource monitoring is incomplete: {}", m.errors.join("; ")),
        ));
    }
    let dropped = m.host.as_ref().map(|h| h.dropped).unwrap_or(0)
        + m.server.as_ref().map(|s| s.dropped).unwrap_or(0);
    if dropped > 0 {
        out.push(w(
            WarningCode::HistoryTruncated,
            format!(
                "{dropped} resource samples were dropped to keep the history within {} points: \
                 the summaries cover the newest ones only; raise --history or --sample-interval",
                m.capacity
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proc_stats::RunQueueWait;

    #[test]
    fn the_run_queue_warning_starts_at_its_share_and_names_the_threads() {
        let rq = |share| RunQueueWait {
            threads: 8,
            wait_s: 4.0,
            share,
            max_thread_share: share,
        };
        let pool = ClientThreads::PoolWorkers;
        assert_eq!(run_queue_warning(&rq(RUN_QUEUE_SHARE * 0.99), pool), None);
        let w = run_queue_warning(&rq(RUN_QUEUE_SHARE), pool).expect("at the share");
        assert_eq!(w.code, WarningCode::ClientRunQueue);
        assert!(w.message.contains("8 load threads"), "{}", w.message);
        assert!(w.message.contains("-j N"), "{}", w.message);
        // Advice that fits: the connection scenario has no -j, the -j driver no pool.
        let conn = run_queue_warning(&rq(0.5), ClientThreads::ConnectionWorkers).unwrap();
        assert!(conn.message.contains("--workers") && !conn.message.contains("-j"));
        let mux = run_queue_warning(&rq(0.5), ClientThreads::MuxThreads).unwrap();
        assert!(!mux.message.contains("pool"), "{}", mux.message);
    }

    #[test]
    fn the_clients_spread_counts_effective_clients_and_ranks_percentiles() {
        let even = ClientSpread::of(&[100; 10]).unwrap();
        assert_eq!(
            (even.clients, even.active, even.min, even.max),
            (10, 10, 100, 100)
        );
        assert!((even.effective - 10.0).abs() < 1e-9);
        // Two clients carry most of the load, one ended none.
        let counts = [1000, 50, 50, 0, 50, 800, 50, 50, 50, 50];
        let s = ClientSpread::of(&counts).unwrap();
        assert_eq!((s.clients, s.active), (10, 9));
        // Sorted: 0, 50 x 7, 800, 1000 (nearest rank: the 1st, 5th and 9th).
        assert_eq!((s.min, s.p10, s.p50, s.p90, s.max), (0, 0, 50, 800, 1000));
        // (2150)^2 / (1000^2 + 800^2 + 7 * 50^2) = 2.739...
        assert!(
            (s.effective - 2150.0 * 2150.0 / 1_657_500.0).abs() < 1e-9,
            "{s:?}"
        );
        assert_eq!(ClientSpread::of(&[0, 0]), None);
        assert_eq!(ClientSpread::of(&[]), None);
    }

    #[test]
    fn uneven_clients_are_warned_of_in_closed_loop_once_the_busiest_did_enough() {
        let pool = ClientThreads::PoolWorkers;
        // The positive control: two of ten clients carry most of the load.
        let uneven = ClientSpread::of(&[1000, 50, 50, 0, 50, 800, 50, 50, 50, 50]).unwrap();
        let w = uneven_clients_warning(&uneven, false, None, pool).expect("warned");
        assert_eq!(w.code, WarningCode::UnevenClients);
        assert!(
            w.message.contains("from 0 to 1000") && w.message.contains("3 effective"),
            "{}",
            w.message
        );
        // Open loop hands arrivals to whichever client is free: no warning.
        assert_eq!(uneven_clients_warning(&uneven, true, None, pool), None);
        // Chance: 50 clients around a mean of 40 transactions (30..50) are not uneven.
        let noisy: Vec<u64> = (0..50).map(|i| 30 + (i * 7) % 21).collect();
        let s = ClientSpread::of(&noisy).unwrap();
        assert!(s.effective > 0.95 * 50.0, "{s:?}");
        assert_eq!(uneven_clients_warning(&s, false, None, pool), None);
        // Too few transactions to judge: the busiest client ended 10.
        let few = ClientSpread::of(&[10, 1, 1, 1]).unwrap();
        assert_eq!(uneven_clients_warning(&few, false, None, pool), None);
        // At the threshold: effective exactly at 0.8 of the clients is not uneven.
        let mut at = uneven.clone();
        at.effective = UNEVEN_EFFECTIVE_SHARE * f64::from(at.clients);
        assert_eq!(uneven_clients_warning(&at, false, None, pool), None);
    }

    #[test]
    fn uneven_clients_name_the_load_machine_when_its_threads_waited_for_a_cpu() {
        use crate::proc_stats::RunQueueWait;
        let uneven = ClientSpread::of(&[1000, 50, 50, 0, 50, 800, 50, 50, 50, 50]).unwrap();
        let rq = |share| RunQueueWait {
            threads: 10,
            wait_s: 3.0,
            share,
            max_thread_share: 0.6,
        };
        // The load threads waited for a CPU a third of their lifetime: the load machine first.
        let short = rq(0.3);
        let w = uneven_clients_warning(&uneven, false, Some(&short), ClientThreads::PoolWorkers)
            .expect("still warned");
        assert_eq!(w.code, WarningCode::UnevenClients);
        assert!(
            w.message.contains("10 load threads waited for a CPU 30%")
                && w.message.contains("one of them 60%")
                && w.message.contains("client_run_queue"),
            "{}",
            w.message
        );
        let mux = uneven_clients_warning(&uneven, false, Some(&short), ClientThreads::MuxThreads)
            .unwrap();
        assert!(
            mux.message.contains("10 -j threads waited"),
            "{}",
            mux.message
        );
        // Below the run-queue warning's share the load machine is not named.
        let quiet = rq(RUN_QUEUE_SHARE * 0.99);
        let w = uneven_clients_warning(&uneven, false, Some(&quiet), ClientThreads::PoolWorkers)
            .unwrap();
        assert!(
            !w.message.contains("waited for a CPU") && w.message.contains("locks"),
            "{}",
            w.message
        );
        // An even load is not warned of, however long its threads waited.
        let even = ClientSpread::of(&[100; 10]).unwrap();
        assert_eq!(
            uneven_clients_warning(&even, false, Some(&short), ClientThreads::PoolWorkers),
            None
        );
    }
}
