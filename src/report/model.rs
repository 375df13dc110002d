//! The result document (`run.json`): versioned, self-describing, and the only thing report,
//! compare and merge read.
//!
//! Invariants: every field is documented (the checked-in JSON Schema is generated from these doc
//! comments); latencies are milliseconds as f64; each latency summary carries its serialized
//! histogram so runs can be merged or re-analysed exactly, never by averaging percentiles; a new
//! optional section bumps nothing, a changed meaning bumps [`SCHEMA_VERSION`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::connector::SessionSecurity;
use crate::target::{ServerInfo, TargetSource};

pub use super::sweep_model::*;

/// Version of the run.json layout.
pub const SCHEMA_VERSION: u32 = 1;

/// One archived run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunDocument {
    /// Layout version of this document.
    pub schema_version: u32,
    /// The tool that produced it.
    pub pgstorm: ToolInfo,
    /// Result folder name (UTC timestamp + label).
    pub run_id: String,
    /// User label (`--label`).
    pub label: String,
    /// The subcommand that ran (`queries`, `run`, ...).
    pub scenario: String,
    /// Command line, passwords masked.
    pub command: Vec<String>,
    /// Start of the run (RFC 3339, UTC).
    pub started_at: String,
    /// End of the run (RFC 3339, UTC).
    pub finished_at: String,
    /// True when Ctrl-C stopped the run early: the figures cover only the part that ran.
    pub interrupted: bool,
    /// Set when the target was lost mid-run (no load connection open and reconnects failing
    /// for the grace period): the run ended there, and its rates cover the time before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_lost_at: Option<TargetLostAt>,
    /// Panic messages of load threads that panicked: the run ended early and its figures are
    /// not to be trusted (pgstorm exits 4).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_thread_panics: Vec<String>,
    /// The load machine.
    pub host: HostInfo,
    /// The server under test.
    pub target: TargetInfo,
    /// The seeded dataset, when one was used.
    pub dataset: Option<DatasetInfo>,
    /// Bytes of the tables (and their indexes) the load's statements name, read before the load,
    /// with shared_buffers beside them; absent when they could not be read or no load ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_size: Option<crate::dataset::DataSize>,
    /// The query load, when one ran.
    pub load: Option<LoadResult>,
    /// The transaction isolation checks, when they ran.
    #[serde(default)]
    pub isolation: Option<super::isolation::IsolationResult>,
    /// The connection scenario, when it ran.
    #[serde(default)]
    pub connections: Option<ConnectionsResult>,
    /// The concurrency sweep (`pgstorm sweep`), when one ran.
    #[serde(default)]
    pub sweep: Option<SweepSection>,
    /// Vacuum, checkpoint, resets and `--pre-sql`/`--post-sql` hooks around the run, when any
    /// were considered (absent in documents written before run hygiene existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hygiene: Option<super::hygiene::HygieneSection>,
    /// Measurement-quality warnings: read them before trusting a figure.
    pub warnings: Vec<Warning>,
    /// Host and server resource samples over the run, their summaries and alerts (absent with
    /// `--no-monitor`).
    #[serde(default)]
    pub monitoring: Option<crate::monitor::model::Monitoring>,
    /// The advisor's findings over the load window, when it ran.
    #[serde(default)]
    pub analysis: Option<super::findings::AnalysisSection>,
    /// The success criteria and the verdict, when they were evaluated (`pgstorm run`).
    #[serde(default)]
    pub criteria: Option<super::findings::CriteriaSection>,
    /// When this result merges runs made at the same time on several load machines: the runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_from: Option<Vec<MergedRun>>,
    /// When this run is one side of one pair of an interleaved study (`pgstorm study`): which.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub study: Option<StudyMark>,
}

/// The place of a run in an interleaved study: A and B run alternately, pair after pair, in a
/// counterbalanced order (A B, B A, A B, ...; see [`StudyMark::a_runs_first`]), so drift hits
/// both sides alike and compare can test pair by pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StudyMark {
    /// The study's id (the same in every run of the study).
    pub id: String,
    /// `a` (baseline) or `b` (candidate).
    pub side: String,
    /// The pair's index, from 0; an even pair ran A then B, an odd one B then A.
    pub pair: u32,
    /// Pairs planned in the study.
    pub pairs: u32,
}

impl StudyMark {
    /// Whether pair `pair` of a study runs A before B: even pairs do, odd pairs run B first.
    /// With one order in every pair, a drift over the study (a host whose load changes, a
    /// server that warms up or bloats) would add the same difference to every pair's B − A and
    /// read as an effect of B; counterbalanced, a drift linear in time adds +d to one pair and
    /// −d to the next, and cancels over every two pairs.
    pub fn a_runs_first(pair: u32) -> bool {
        pair.is_multiple_of(2)
    }
}

/// When and why a run lost its target.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TargetLostAt {
    /// When the last load connection closed, seconds since the load started (warmup included).
    pub seconds: f64,
    /// The same moment (RFC 3339, UTC).
    pub time: String,
    /// The last connection failure: the server's message and SQLSTATE, or the OS error.
    pub reason: String,
    /// How long reconnects kept failing with no connection open before the run ended (s).
    pub grace_s: f64,
}

/// One load machine's run inside a merged result.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct MergedRun {
    /// The run's folder name.
    pub run_id: String,
    /// The load machine.
    pub hostname: String,
    /// Its start (RFC 3339, UTC).
    pub started_at: String,
    /// Its successful executions.
    pub count: u64,
}

/// Producer of the document.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ToolInfo {
    /// pgstorm version.
    pub version: String,
    /// Git commit pgstorm was built from ("unknown" outside a checkout).
    pub git_commit: String,
}

/// The load machine (part of the monitor's model; the document carries it).
pub use crate::monitor::model::HostInfo;

/// The server under test.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TargetInfo {
    /// `postgres://user@host:port/db`, never with a password.
    pub dsn: String,
    /// How the target was chosen.
    pub source: TargetSource,
    /// The server runs on the load machine (every host a Unix socket, a loopback address or one
    /// of this machine's own): the host's RAM, disks and CPU figures are then also the server's.
    #[serde(default)]
    pub local: bool,
    /// What preflight read from the server (version, limits, settings snapshot).
    pub server: ServerInfo,
    /// How pgstorm's sessions were protected (sslmode, TLS version and cipher or "none"), as
    /// the server's `pg_stat_ssl` showed the admin session; absent in results of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<SessionSecurity>,
}

/// The seeded POS dataset.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DatasetInfo {
    /// Scale factor (1 = 100 partners, 1,000 orders, ~3,000 lines).
    pub scale: u32,
    /// Generator seed.
    pub seed: u64,
    /// res_partner rows.
    pub partners: i64,
    /// pos_order rows.
    pub orders: i64,
    /// pos_order_line rows.
    pub lines: i64,
}

/// Configuration and results of a measured query load.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LoadResult {
    /// How the load was driven.
    pub config: LoadConfig,
    /// All query types together.
    pub summary: QueryResult,
    /// Per query type, in mix order.
    pub queries: Vec<QueryResult>,
    /// Pool checkout wait and connection opening.
    pub pool: PoolResult,
    /// Actual minus intended start of each transaction (open loop only).
    pub schedule_lag: Option<LatencySummary>,
    /// Per-interval time series (warmup intervals included, flagged).
    pub timeseries: Vec<IntervalPoint>,
    /// Measured time the rates are computed over (s, warmup excluded): the requested duration,
    /// or less when the run was interrupted or lost its target.
    #[serde(default)]
    pub measured_s: f64,
    /// What the client itself cost.
    pub client: ClientCost,
    /// Server-side transaction counters over the load, to cross-check the client's count.
    pub server_check: Option<ServerCheck>,
    /// Episodes in which many clients waited at once: the evidence behind a stall warning.
    #[serde(default)]
    pub stalls: Vec<Stall>,
    /// Closed loop: the latency had the requests that waiting clients did not send been sent on
    /// schedule (HdrHistogram's expected-interval correction at the median latency), an estimate
    /// of what coordinated omission hides; null in open loop, which measures it directly.
    #[serde(default)]
    pub co_corrected: Option<LatencySummary>,
    /// Clients of pgbench scripts that stopped for good, as pgbench aborts a client (an error
    /// other than a serialization or deadlock failure, or a script that ends inside a transaction
    /// block or a pipeline), grouped by SQLSTATE and message, most clients first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aborted: Vec<AbortedClients>,
    /// Unix time (s) of the time series' `t_s = 0`, so intervals line up with server logs and
    /// dashboards; absent in documents written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_unix_s: Option<f64>,
    /// How evenly the clients carried the load; absent in documents written before it was
    /// recorded, and when no transaction ended after the warmup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<ClientSpread>,
}

/// How evenly the clients carried the load: the spread of their post-warmup transaction counts
/// (successes and failures). A client that starves, waits on a lock or lost its connection shows
/// as a count far below the others, and a few clients served ahead of the rest as a few far
/// above.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct ClientSpread {
    /// Clients of the run.
    pub clients: u32,
    /// Clients that ended at least one transaction.
    pub active: u32,
    /// The fewest transactions a client ended.
    pub min: u64,
    /// 10th percentile of the per-client counts (nearest rank).
    pub p10: u64,
    /// Median per-client count.
    pub p50: u64,
    /// 90th percentile of the per-client counts.
    pub p90: u64,
    /// The most transactions a client ended.
    pub max: u64,
    /// The effective number of clients, (Σn)²/Σn² of the per-client counts: `clients` when all
    /// carried the same load, fewer when some carried more (1 when one carried it all).
    pub effective: f64,
}

impl ClientSpread {
    /// The spread of `counts` (transactions per client, by client id); `None` when they sum to
    /// zero.
    pub fn of(counts: &[u64]) -> Option<ClientSpread> {
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let mut v = counts.to_vec();
        v.sort_unstable();
        let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        let squares: f64 = v.iter().map(|&n| (n as f64) * (n as f64)).sum();
        Some(ClientSpread {
            clients: u32::try_from(v.len()).unwrap_or(u32::MAX),
            active: u32::try_from(v.iter().filter(|&&n| n > 0).count()).unwrap_or(u32::MAX),
            min: v[0],
            p10: rank(0.1),
            p50: rank(0.5),
            p90: rank(0.9),
            max: v[v.len() - 1],
            effective: (total as f64) * (total as f64) / squares,
        })
    }
}

/// Clients that aborted with the same error.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct AbortedClients {
    /// SQLSTATE of the server's error; null for an error of the script's own making.
    pub sqlstate: Option<String>,
    /// `script:line: message` (the server's message for a server error).
    pub message: String,
    /// How many clients aborted with it.
    pub clients: u64,
}

/// An episode in which many clients waited at once.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Stall {
    /// Start, seconds since the start of the load.
    pub start_s: f64,
    /// How long at least the required number of clients waited together (s).
    pub duration_s: f64,
    /// Most clients waiting at one instant.
    pub clients_waiting: u32,
    /// Clients that had to wait at once for an episode to count (three in four, at least two).
    pub clients_required: u32,
    /// A waiting transaction took at least this long (ms): 200 ms or 50 times the median.
    pub threshold_ms: f64,
    /// Time pgstorm itself was paused during the episode (ms): when it is a good part of it, the
    /// clients waited on the load machine, not on the server.
    pub client_paused_ms: f64,
    /// Whether the client's own pauses explain the episode.
    pub client_side: bool,
}

/// How a load was driven.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LoadConfig {
    /// Concurrent clients (one connection each).
    pub clients: u32,
    /// Threads of the multiplexed driver (`-j`), each serving several clients' connections
    /// without a pool; null: one thread and one pooled connection per client.
    #[serde(default)]
    pub threads: Option<u32>,
    /// Measured duration requested (s), excluding warmup; null with a transaction count.
    pub duration_s: Option<f64>,
    /// Transactions per client (`-t`), when used.
    pub transactions_per_client: Option<u64>,
    /// Warmup excluded from totals (s).
    pub warmup_s: f64,
    /// Time-series interval (s).
    pub interval_s: f64,
    /// Target total rate (tx/s) in open loop; null for closed loop.
    pub rate: Option<f64>,
    /// Arrival process in open loop (`uniform` or `poisson`).
    pub arrival: Option<String>,
    /// Where latency is measured from: `intended_start` (open loop, free of coordinated omission)
    /// or `actual_start` (closed loop).
    pub latency_from: String,
    /// Wire protocol (`simple`, `extended`, `prepared`).
    pub protocol: String,
    /// Query types and weights.
    pub mix: Vec<MixEntry>,
    /// statement_timeout on every connection (ms).
    pub statement_timeout_ms: u64,
    /// Pool checkout timeout (ms).
    pub checkout_timeout_ms: u64,
    /// Workers pinned to cores.
    pub pinned: bool,
    /// Random seed of the workers.
    pub seed: u64,
    /// Significant digits of the workers' histograms (2 when many workers × types).
    pub histogram_sigfig: u8,
    /// Tries per transaction on serialization/deadlock failures (1: no retry, 0: unlimited).
    #[serde(default = "one")]
    pub max_tries: u32,
    /// pgbench's `-L` (ms): successful transactions slower than this count as late, and in open
    /// loop a transaction already this late when due is skipped; null without `-L`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_limit_ms: Option<f64>,
}

/// One mix entry.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct MixEntry {
    /// Query type name.
    pub name: String,
    /// Relative weight.
    pub weight: u32,
}

/// Results of one query type (or of all together).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct QueryResult {
    /// Query type name (`all` for the summary).
    pub name: String,
    /// Successful executions.
    pub count: u64,
    /// Failed executions by class (serialization, deadlock, statement_timeout, ...).
    pub errors: BTreeMap<String, u64>,
    /// Successful executions per second of measured time (`LoadResult::measured_s`).
    pub tps: f64,
    /// Latency of successful executions.
    pub latency: LatencySummary,
    /// Transactions that succeeded or failed only after more than one try (`--max-tries`).
    #[serde(default)]
    pub retried: u64,
    /// Tries beyond the first, summed over all transactions.
    #[serde(default)]
    pub retries: u64,
    /// Per-command latencies of a script (`-r`), in script order.
    /// Successful transactions slower than `-L` (pgbench's "above the latency limit").
    #[serde(default)]
    pub late: u64,
    /// Transactions skipped under `-R` with `-L`: already later than the limit when due.
    #[serde(default)]
    pub skipped: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<Vec<CommandResult>>,
}

/// One command of a script with `-r` (pgbench's per-statement report).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CommandResult {
    /// Line in the script and the command, shortened (`"5: UPDATE pgbench_accounts ..."`).
    pub command: String,
    /// Completed executions.
    pub count: u64,
    /// Mean latency of completed executions, milliseconds.
    pub mean_ms: f64,
    /// Executions that failed at this command.
    pub failures: u64,
}

/// A latency distribution.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LatencySummary {
    /// Number of values.
    pub count: u64,
    /// Mean (ms).
    pub mean_ms: f64,
    /// Standard deviation (ms).
    pub stddev_ms: f64,
    /// Minimum (ms).
    pub min_ms: f64,
    /// Median (ms).
    pub p50_ms: f64,
    /// 90th percentile (ms).
    pub p90_ms: f64,
    /// 95th percentile (ms).
    pub p95_ms: f64,
    /// 99th percentile (ms).
    pub p99_ms: f64,
    /// 99.9th percentile (ms).
    pub p999_ms: f64,
    /// 99.99th percentile (ms).
    pub p9999_ms: f64,
    /// Maximum (ms).
    pub max_ms: f64,
    /// The histogram (µs values), HdrHistogram V2 + deflate, base64.
    pub histogram: String,
}

/// Pool behaviour.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PoolResult {
    /// Time waiting for a connection from the pool, per transaction.
    pub checkout_wait: LatencySummary,
    /// Time to open a connection (TCP + startup + authentication).
    pub connect: LatencySummary,
    /// Connections opened.
    pub connections_opened: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
}

/// One interval of the time series.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct IntervalPoint {
    /// Start of the interval, seconds since the load started.
    pub t_s: f64,
    /// Inside the warmup (excluded from totals).
    pub warmup: bool,
    /// Successful executions per second.
    pub tps: f64,
    /// Failed executions in the interval.
    pub errors: u64,
    /// Median latency, all types (ms).
    pub p50_ms: f64,
    /// 99th percentile latency, all types (ms).
    pub p99_ms: f64,
    /// Max latency, all types (ms).
    pub max_ms: f64,
    /// 99th percentile schedule lag (ms; open loop).
    pub lag_p99_ms: f64,
    /// Successful executions per query type.
    pub per_query: BTreeMap<String, u64>,
}

/// What the client cost while measuring.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ClientCost {
    /// User CPU seconds of pgstorm during the load.
    pub cpu_user_s: f64,
    /// System CPU seconds of pgstorm during the load.
    pub cpu_system_s: f64,
    /// Client CPU per transaction (µs).
    pub cpu_us_per_tx: f64,
    /// Share of the host's CPU capacity pgstorm used (0..1).
    pub cpu_share_of_host: f64,
    /// Peak resident memory of pgstorm (bytes).
    pub peak_rss_bytes: u64,
    /// Batches that reached the collector after their interval closed.
    pub late_batches: u64,
    /// Pauses of pgstorm itself of at least 10 ms (a thread that sleeps 1 ms at a time and
    /// records how late it woke up): the load machine, not the server, made every client wait.
    #[serde(default)]
    pub pauses: u64,
    /// The longest of those pauses (ms).
    #[serde(default)]
    pub max_pause_ms: f64,
    /// The clock the load threads timed transactions with, and how far it kept with the
    /// monotonic clock over the run; absent in documents written before it was recorded and in
    /// connection scenarios, which time with the monotonic clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<crate::clock::ClockCheck>,
    /// How long pgstorm's load threads were runnable but without a CPU (the kernel's count):
    /// latency the load machine added, as pauses are for the whole process. Absent where the
    /// kernel does not count it, and in documents written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_queue: Option<crate::proc_stats::RunQueueWait>,
}

/// The server's own transaction counters against the client's count.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ServerCheck {
    /// pg_stat_database.xact_commit delta over the load.
    pub xact_commit: i64,
    /// pg_stat_database.xact_rollback delta over the load.
    pub xact_rollback: i64,
    /// Transactions the client counted (successes + failures) over the same span, warmup included.
    pub client_transactions: u64,
    /// (commit + rollback) / client count.
    pub ratio: f64,
}

pub use super::warning_code::WarningCode;

/// A reason to doubt (part of) a measurement.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Warning {
    /// Stable identifier, e.g. `closed_loop_stall`: its string form never changes.
    pub code: WarningCode,
    /// What was seen and what to do about it.
    pub message: String,
}

/// Default of [`LoadConfig::max_tries`] in documents written before retries existed.
fn one() -> u32 {
    1
}

/// Results of the connection scenario (`pgstorm connections`): ramp and hold, or storm.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ConnectionsResult {
    /// How the load was driven.
    pub config: ConnectionsConfig,
    /// Unix time (s) of the pool time series' `t_s = 0`; absent in documents written before it
    /// was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_unix_s: Option<f64>,
    /// Operations that got a connection (pooled, direct fallback, or storm connect) and ran their
    /// query, over operations attempted (0..1). The success criterion compares this.
    pub connection_success_rate: f64,
    /// Operations attempted (successes + failures).
    pub operations: u64,
    /// Operations that failed.
    pub failed_operations: u64,
    /// Failed operations by class (connection, shutdown, too_many_connections, pool_timeout, ...).
    pub errors: BTreeMap<String, u64>,
    /// Leaks: connections held longer than the leak threshold, or still checked out at the end.
    pub leaks: u64,
    /// Pool checkouts that timed out (each also counted under `errors.pool_timeout`).
    pub checkout_timeouts: u64,
    /// Operations run on a direct connection after a checkout timeout, successfully.
    pub fallback_direct: u64,
    /// Direct fallbacks that failed.
    pub fallback_failed: u64,
    /// Connections opened (by the pool, or one per storm operation).
    pub connections_opened: u64,
    /// Connection attempts that failed (pool connects; storm connect failures are in `errors`).
    pub connect_failures: u64,
    /// Connections the pool discarded as broken during the run.
    pub connections_discarded: u64,
    /// Most connections open at once.
    pub peak_open: u32,
    /// Connections opened per second of load (storm: the connection rate sustained).
    pub connections_per_s: f64,
    /// Connect time over the whole run (TCP + startup + authentication).
    pub connect: LatencySummary,
    /// Per ramp step, in order (storm: one step).
    pub steps: Vec<ConnectionStep>,
    /// Losses of service (connections killed, server restarted) and how they recovered.
    pub incidents: Vec<ConnectionIncident>,
    /// Each leaked connection with the worker and query type holding it.
    pub leak_details: Vec<LeakDetail>,
    /// Pool time series: open / idle / checked out / waiting, operations and connects.
    pub pool_timeseries: Vec<PoolPoint>,
    /// What the client itself cost.
    pub client: ClientCost,
    /// The server's own session counter against the client's connects (storm mode, PG 14+).
    pub server_check: Option<SessionCheck>,
}

/// How the connection load was driven.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ConnectionsConfig {
    /// `ramp` (pool grown in steps, then held) or `storm` (a new connection per operation).
    pub mode: String,
    /// Pool size of each step (storm: the concurrent clients).
    pub steps: Vec<u32>,
    /// Worker threads.
    pub workers: u32,
    /// New connections per second allowed (null: unpaced).
    pub connect_rate: Option<f64>,
    /// Time held at each intermediate step (s).
    pub step_hold_s: f64,
    /// Time held at the last step (s).
    pub hold_s: f64,
    /// Pool checkout timeout (ms).
    pub checkout_timeout_ms: u64,
    /// statement_timeout on every connection (ms).
    pub statement_timeout_ms: u64,
    /// A connection held longer than this is a leak (s).
    pub leak_threshold_s: f64,
    /// What a checkout timeout falls back to: `none` or `direct`.
    pub fallback: String,
    /// Pause between a worker's operations (ms).
    pub think_ms: f64,
    /// Wire protocol.
    pub protocol: String,
    /// Query types and weights.
    pub mix: Vec<MixEntry>,
    /// Workers told to keep their connection to the end (leak detection's positive control).
    pub inject_leaks: u32,
    /// Random seed of the workers.
    pub seed: u64,
    /// Significant digits of the workers' histograms.
    pub histogram_sigfig: u8,
}

/// One ramp step.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ConnectionStep {
    /// Target pool size (storm: concurrent clients).
    pub target: u32,
    /// Workers running during the step.
    pub workers: u32,
    /// Step start (s since the load started).
    pub started_s: f64,
    /// Time from the step's start until `target` connections were open (s); null if never.
    pub time_to_reach_s: Option<f64>,
    /// Step end (s since the load started).
    pub ended_s: f64,
    /// Most connections open at once during the step.
    pub peak_open: u32,
    /// Connect time of the connections opened during the step.
    pub connect: LatencySummary,
    /// Failed connects by class.
    pub connect_failures: BTreeMap<String, u64>,
    /// Pool checkout wait.
    pub checkout_wait: LatencySummary,
    /// Query latency of successful operations.
    pub query: LatencySummary,
    /// Successful operations.
    pub ok: u64,
    /// Failed operations by class.
    pub errors: BTreeMap<String, u64>,
    /// Successful operations per second of the step.
    pub ops_per_s: f64,
    /// Successful direct fallbacks.
    pub fallback_direct: u64,
}

/// A loss of service and its recovery.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ConnectionIncident {
    /// When connections started failing (s since the load started, ±0.05 s).
    pub dropped_at_s: f64,
    /// When operations succeeded again with no more connection losses (s); null if never.
    pub service_restored_at_s: Option<f64>,
    /// When the pool was back at its target size (s); null if never.
    pub pool_restored_at_s: Option<f64>,
    /// Service restored minus dropped (s): how long the service was out.
    pub recovery_s: Option<f64>,
    /// Pool restored minus dropped (s): how long until full capacity.
    pub pool_recovery_s: Option<f64>,
    /// Whether the service came back before the run ended.
    pub recovered: bool,
    /// Operations that failed during the incident.
    pub failed_operations: u64,
    /// Of those, connection losses (connection, shutdown, too_many_connections).
    pub lost_operations: u64,
    /// Fewest connections open during the incident.
    pub min_open: u32,
}

/// One leaked connection.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LeakDetail {
    /// Worker (thread) index holding it.
    pub worker: usize,
    /// Query type it was checked out for.
    pub query: String,
    /// Checkout time (s since the load started).
    pub checked_out_at_s: f64,
    /// How long it was held when last seen (s).
    pub held_s: f64,
    /// Still checked out when the run ended.
    pub still_out_at_end: bool,
}

/// One sample of the pool time series.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PoolPoint {
    /// Sample time (s since the load started).
    pub t_s: f64,
    /// Target pool size at that time.
    pub target: u32,
    /// Connections open (r2d2 State; storm: connections held).
    pub open: u32,
    /// Idle connections in the pool.
    pub idle: u32,
    /// Connections checked out by workers.
    pub checked_out: u32,
    /// Workers waiting for a checkout.
    pub waiters: u32,
    /// Successful operations since the previous sample.
    pub ok: u64,
    /// Failed operations since the previous sample.
    pub failed: u64,
    /// Connections opened since the previous sample.
    pub connects: u64,
    /// Connections closed or discarded since the previous sample.
    pub closed: u64,
}

/// The server's session counter against the client's count of connections.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SessionCheck {
    /// pg_stat_database.sessions delta over the load (the target database).
    pub sessions: i64,
    /// Connections the client opened over the same span.
    pub client_connections: u64,
    /// sessions / client connections.
    pub ratio: f64,
}
