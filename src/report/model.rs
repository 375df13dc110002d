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
    /// The load machine.
    pub host: HostInfo,
    /// The server under test.
    pub target: TargetInfo,
    /// The seeded dataset, when one was used.
    pub dataset: Option<DatasetInfo>,
    /// The query load, when one ran.
    pub load: Option<LoadResult>,
    /// The concurrency sweep (`pgstorm sweep`), when one ran.
    #[serde(default)]
    pub sweep: Option<SweepSection>,
    /// Measurement-quality warnings: read them before trusting a figure.
    pub warnings: Vec<Warning>,
    /// When this result merges runs made at the same time on several load machines: the runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_from: Option<Vec<MergedRun>>,
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

/// The load machine.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct HostInfo {
    /// Host name.
    pub hostname: String,
    /// Operating system name and version.
    pub os: String,
    /// Kernel version.
    pub kernel: String,
    /// CPU model string.
    pub cpu_model: String,
    /// Logical CPUs.
    pub cpus: usize,
    /// Physical memory, bytes.
    pub memory_bytes: u64,
    /// Kernel clocksource (timing is cheapest and most precise with `tsc`).
    pub clocksource: String,
}

/// The server under test.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TargetInfo {
    /// `postgres://user@host:port/db`, never with a password.
    pub dsn: String,
    /// How the target was chosen.
    pub source: TargetSource,
    /// What preflight read from the server (version, limits, settings snapshot).
    pub server: ServerInfo,
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
    /// What the client itself cost.
    pub client: ClientCost,
    /// Server-side transaction counters over the load, to cross-check the client's count.
    pub server_check: Option<ServerCheck>,
}

/// How a load was driven.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LoadConfig {
    /// Concurrent clients (one thread and one pooled connection each).
    pub clients: u32,
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
    /// Successful executions per second of measured time.
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

/// A reason to doubt (part of) a measurement.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Warning {
    /// Stable identifier, e.g. `closed_loop_stall`.
    pub code: String,
    /// What was seen and what to do about it.
    pub message: String,
}

/// Default of [`LoadConfig::max_tries`] in documents written before retries existed.
fn one() -> u32 {
    1
}
