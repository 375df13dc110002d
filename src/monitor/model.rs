//! The monitoring section of run.json: host and server samples over time, their summaries, the
//! alert events and the samplers' own cost.
//!
//! Invariants: CPU figures are percent of the whole host's capacity (0..100; per-core figures are
//! percent of one core), so pgstorm's and PostgreSQL's shares add up to at most the host total;
//! rates are per second of the interval actually elapsed between two samples, never of the
//! nominal interval; `t_s` is seconds since the monitor started.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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

/// What the machine and the server were doing during a run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Monitoring {
    /// Wall-clock time of `t_s = 0` (RFC 3339, UTC).
    pub started_at: String,
    /// Nominal seconds between samples (`--sample-interval`).
    pub interval_s: f64,
    /// Most samples kept per sampler (`--history`); older ones are dropped first.
    pub capacity: usize,
    /// The span during which the measured load ran (post-warmup), seconds since `started_at`,
    /// from its start to the instant the load threads were told to stop. Samples covering only
    /// this span have phase `load`; every summary, peak and alert is drawn from those.
    pub load_window: Option<Window>,
    /// Alert thresholds in force.
    pub thresholds: Thresholds,
    /// Host CPU and memory over the `load` samples: the figures the stability criteria judge.
    pub under_load: Option<UnderLoad>,
    /// Host samples and their summary (absent when the host sampler could not run).
    pub host: Option<HostSeries>,
    /// Server samples and their summary (absent when the sampler could not connect).
    pub server: Option<ServerSeries>,
    /// The server host's CPU, memory, load, disks and network scraped from its node_exporter
    /// (`--server-metrics`; absent without it).
    #[serde(default)]
    pub server_host: Option<ServerHostSeries>,
    /// Threshold crossings over the `load` samples, in time order.
    pub alerts: Vec<AlertEvent>,
    /// Problems the samplers met (e.g. a lost connection); the run itself went on.
    pub errors: Vec<String>,
}

/// A span of time, seconds since the monitor started.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Window {
    /// Start (s).
    pub start_s: f64,
    /// End (s).
    pub end_s: f64,
}

impl Window {
    /// The phase of a sample covering `(from_s, to_s]`: one taken after the stop instant is
    /// `after` whatever it covers, so the statistics backends flush as their connections close
    /// never count as load.
    pub fn phase(&self, from_s: f64, to_s: f64) -> Phase {
        if to_s > self.end_s {
            Phase::After
        } else if from_s < self.start_s {
            Phase::Before
        } else {
            Phase::Load
        }
    }
}

/// Where a sample lies relative to the measured load.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Covers time before the measured load began (setup, connecting, warmup).
    Before,
    /// Covers only time inside the measured load (documents written before phases existed
    /// counted every sample, hence the default).
    #[default]
    Load,
    /// Taken after the load threads were told to stop: connections closing, and the counters
    /// their backends flush at disconnect, which belong to no interval of the load.
    After,
}

impl Phase {
    /// As written in run.json and resources.csv.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Before => "before",
            Phase::Load => "load",
            Phase::After => "after",
        }
    }
}

/// Alert thresholds (percent).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Thresholds {
    /// Host CPU busy above this raises `cpu` (default 90).
    pub cpu_percent: f64,
    /// Host memory in use (total − available) above this raises `memory` (default 95).
    pub memory_percent: f64,
    /// pgstorm's own CPU (share of the host) above this raises `client_cpu` (default 90).
    pub client_cpu_percent: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            cpu_percent: 90.0,
            memory_percent: 95.0,
            client_cpu_percent: 90.0,
        }
    }
}

/// Host CPU and memory over the load window.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct UnderLoad {
    /// Host samples inside the window.
    pub samples: usize,
    /// Mean host CPU busy (%).
    pub cpu_mean_percent: f64,
    /// 95th percentile host CPU busy (%).
    pub cpu_p95_percent: f64,
    /// Peak host CPU busy (%).
    pub cpu_peak_percent: f64,
    /// 95th percentile host memory in use (%).
    pub memory_p95_percent: f64,
    /// Peak host memory in use (%).
    pub memory_peak_percent: f64,
    /// Mean CPU of pgstorm itself (% of host).
    pub client_cpu_mean_percent: f64,
    /// Mean CPU of the PostgreSQL processes (% of host), when the server is local.
    pub server_cpu_mean_percent: Option<f64>,
    /// Pages swapped in or out during the window.
    pub swap_pages: u64,
}

/// Mean, 95th percentile and peak of one figure.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
pub struct Stat {
    /// Mean.
    pub mean: f64,
    /// 95th percentile (nearest rank).
    pub p95: f64,
    /// Maximum.
    pub peak: f64,
}

impl Stat {
    /// Summary of `values` (all zero when empty).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Stat {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Stat::default();
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let rank = ((0.95 * v.len() as f64).ceil() as usize).clamp(1, v.len());
        Stat {
            mean: v.iter().sum::<f64>() / v.len() as f64,
            p95: v[rank - 1],
            peak: v[v.len() - 1],
        }
    }
}

/// Host samples.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct HostSeries {
    /// How the PostgreSQL processes were found (`sandbox`, `backend_parent`), or null when the
    /// server is not on this host (then no server-process figures exist).
    pub postgres_source: Option<String>,
    /// PID of the postmaster whose process tree is measured.
    pub postmaster_pid: Option<u32>,
    /// Samples taken in total (kept + dropped).
    pub taken: u64,
    /// Oldest samples dropped to stay within `capacity`.
    pub dropped: u64,
    /// Mean wall time of taking one host sample (µs; waiting for a CPU included).
    pub cost_us_mean: f64,
    /// Worst wall time of one host sample (µs).
    pub cost_us_max: f64,
    /// Mean CPU time the sampler thread spent per host sample (µs): its cost to the client.
    pub cpu_us_mean: f64,
    /// Summary over the kept `load` samples.
    pub summary: HostSummary,
    /// The kept samples, oldest first.
    pub samples: Vec<HostSample>,
}

/// Mean / p95 / peak of the host figures over the kept `load` samples.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Default)]
pub struct HostSummary {
    /// Host CPU busy (%).
    pub cpu_percent: Stat,
    /// Host memory in use (%).
    pub memory_percent: Stat,
    /// Swap in use (bytes).
    pub swap_used_bytes: Stat,
    /// 1-minute load average.
    pub load1: Stat,
    /// Disk reads (bytes/s).
    pub disk_read_bytes_s: Stat,
    /// Disk writes (bytes/s).
    pub disk_write_bytes_s: Stat,
    /// Network received, loopback excluded (bytes/s).
    pub net_rx_bytes_s: Stat,
    /// Network sent, loopback excluded (bytes/s).
    pub net_tx_bytes_s: Stat,
    /// pgstorm's own CPU (% of host).
    pub client_cpu_percent: Stat,
    /// PostgreSQL processes' CPU (% of host), when local.
    pub server_cpu_percent: Option<Stat>,
    /// PostgreSQL processes' memory (bytes), when local.
    pub server_memory_bytes: Option<Stat>,
}

/// One host sample, covering the time since the previous one.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct HostSample {
    /// Seconds since the monitor started (end of the covered span).
    pub t_s: f64,
    /// Tick number (`t_s` ≈ tick × interval); host and server samples of one tick share it.
    pub tick: u64,
    /// Where the sample lies relative to the load (host and server samples of one tick share it).
    #[serde(default)]
    pub phase: Phase,
    /// Host CPU busy, all cores (%).
    pub cpu_percent: f64,
    /// CPU busy per logical core (% of that core).
    pub per_core: Vec<f64>,
    /// Memory in use: total − available (bytes).
    pub memory_used_bytes: u64,
    /// Memory available to new work (bytes).
    pub memory_available_bytes: u64,
    /// Memory in use (% of total).
    pub memory_percent: f64,
    /// Swap in use (bytes).
    pub swap_used_bytes: u64,
    /// Pages swapped in + out per second (any is a sign of memory pressure).
    pub swap_pages_s: f64,
    /// Load average over 1, 5, 15 minutes.
    pub load: [f64; 3],
    /// Disk reads, whole devices (bytes/s).
    pub disk_read_bytes_s: f64,
    /// Disk writes, whole devices (bytes/s).
    pub disk_write_bytes_s: f64,
    /// Network received, loopback excluded (bytes/s).
    pub net_rx_bytes_s: f64,
    /// Network sent, loopback excluded (bytes/s).
    pub net_tx_bytes_s: f64,
    /// Loopback traffic (bytes/s, one direction): client ↔ local server traffic shows here.
    pub loopback_bytes_s: f64,
    /// pgstorm's own CPU, all threads (% of host).
    pub client_cpu_percent: f64,
    /// PostgreSQL processes' CPU (% of host), when the server is local.
    pub server_cpu_percent: Option<f64>,
    /// PostgreSQL processes' memory (bytes; shared memory counted once), when local.
    pub server_memory_bytes: Option<u64>,
    /// Live PostgreSQL processes, when local.
    pub server_processes: Option<u32>,
}

#[cfg(test)]
impl HostSample {
    /// A sample of `cpu`% and `memory`% (everything else idle) for the unit tests.
    pub(crate) fn fixture(tick: u64, t_s: f64, cpu: f64, memory: f64) -> HostSample {
        HostSample {
            t_s,
            tick,
            phase: Phase::Load,
            cpu_percent: cpu,
            per_core: vec![cpu],
            memory_used_bytes: 1,
            memory_available_bytes: 1,
            memory_percent: memory,
            swap_used_bytes: 0,
            swap_pages_s: 0.0,
            load: [0.0; 3],
            disk_read_bytes_s: 0.0,
            disk_write_bytes_s: 0.0,
            net_rx_bytes_s: 0.0,
            net_tx_bytes_s: 0.0,
            loopback_bytes_s: 0.0,
            client_cpu_percent: 1.0,
            server_cpu_percent: None,
            server_memory_bytes: None,
            server_processes: None,
        }
    }
}

/// Server samples.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ServerSeries {
    /// `server_version_num` of the sampled server.
    pub server_version_num: i32,
    /// Where checkpoint counters came from (`pg_stat_bgwriter` before 17, `pg_stat_checkpointer`
    /// from 17).
    pub checkpoint_view: String,
    /// Samples taken in total (kept + dropped).
    pub taken: u64,
    /// Oldest samples dropped to stay within `capacity`.
    pub dropped: u64,
    /// Mean wall time of one server sample (µs; round trips and a busy server's delay included).
    pub cost_us_mean: f64,
    /// Worst wall time of one server sample (µs).
    pub cost_us_max: f64,
    /// Mean CPU time the sampler thread spent per server sample on the client (µs).
    pub cpu_us_mean: f64,
    /// Counter deltas between the first and the last sample (the whole monitored span).
    pub totals: ServerTotals,
    /// Summary over the kept `load` samples.
    pub summary: ServerSummary,
    /// The kept samples, oldest first.
    pub samples: Vec<ServerSample>,
}

/// Counter deltas of the whole monitored span (current database; checkpoints and WAL server-wide).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Default, PartialEq)]
pub struct ServerTotals {
    /// Seconds between the first and last sample.
    pub span_s: f64,
    /// Committed transactions, the sampler's own excluded.
    pub xact_commit: i64,
    /// Rolled back transactions.
    pub xact_rollback: i64,
    /// The sampler's own transactions (one per sample), subtracted from `xact_commit`.
    pub sampler_xacts: i64,
    /// Deadlocks detected.
    pub deadlocks: i64,
    /// Queries cancelled by recovery conflicts (standbys).
    pub conflicts: i64,
    /// Temporary files written.
    pub temp_files: i64,
    /// Bytes written to temporary files.
    pub temp_bytes: i64,
    /// Checkpoints (timed + requested).
    pub checkpoints: i64,
    /// WAL generated (bytes; null on a standby).
    pub wal_bytes: Option<i64>,
    /// Buffer cache hit ratio over the span (0..1), when any block was read.
    pub cache_hit_ratio: Option<f64>,
}

/// Mean / p95 / peak of the server figures over the kept `load` samples.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Default)]
pub struct ServerSummary {
    /// Transactions per second (commit + rollback).
    pub tps: Stat,
    /// Client backends in state `active`.
    pub active: Stat,
    /// Backends blocked by another's lock.
    pub blocked_backends: Stat,
    /// WAL bytes per second.
    pub wal_bytes_s: Stat,
}

/// One server sample: counter deltas per second since the previous sample, and gauges now.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct ServerSample {
    /// Seconds since the monitor started.
    pub t_s: f64,
    /// Tick number (see [`HostSample::tick`]).
    pub tick: u64,
    /// Where the sample lies relative to the load (see [`HostSample::phase`]).
    #[serde(default)]
    pub phase: Phase,
    /// Server-side transactions per second (xact_commit + xact_rollback deltas, the sampler's own
    /// excluded). Backends flush these counters about once a second, so single intervals are
    /// lumpy; the totals are exact.
    pub tps: f64,
    /// Rollbacks per second.
    pub rollbacks_s: f64,
    /// Buffer cache hit ratio of the interval (0..1), when any block was read.
    pub cache_hit_ratio: Option<f64>,
    /// Rows returned / fetched / inserted / updated / deleted per second.
    pub tup_s: TupleRates,
    /// Temporary files created in the interval.
    pub temp_files: i64,
    /// Temporary bytes written in the interval.
    pub temp_bytes: i64,
    /// Deadlocks in the interval.
    pub deadlocks: i64,
    /// Recovery conflicts in the interval.
    pub conflicts: i64,
    /// Client backends of this database by state (`active`, `idle`, `idle in transaction`, ...).
    pub by_state: BTreeMap<String, i64>,
    /// Client backends of this database by wait event type (`none` when not waiting).
    pub by_wait_event_type: BTreeMap<String, i64>,
    /// Lock requests not granted (pg_locks, whole server).
    pub waiting_locks: i64,
    /// Backends blocked by another backend (pg_blocking_pids non-empty).
    pub blocked_backends: i64,
    /// Checkpoints in the interval (timed + requested).
    pub checkpoints: i64,
    /// WAL bytes per second (null on a standby).
    pub wal_bytes_s: Option<f64>,
}

/// Row rates of pg_stat_database.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Default)]
pub struct TupleRates {
    /// tup_returned per second.
    pub returned: f64,
    /// tup_fetched per second.
    pub fetched: f64,
    /// tup_inserted per second.
    pub inserted: f64,
    /// tup_updated per second.
    pub updated: f64,
    /// tup_deleted per second.
    pub deleted: f64,
}

/// A threshold crossing.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct AlertEvent {
    /// Seconds since the monitor started.
    pub t_s: f64,
    /// Wall-clock time (RFC 3339, UTC).
    pub at: String,
    /// `cpu`, `memory` or `client_cpu`.
    pub metric: String,
    /// `raised` (went above the threshold) or `cleared` (back at or below it).
    pub state: String,
    /// The sampled value (%).
    pub value: f64,
    /// The threshold (%).
    pub threshold: f64,
}

/// Samples of the server's host from the node_exporter it runs (`--server-metrics`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ServerHostSeries {
    /// The scraped URL, without any user name or password it was given with.
    pub source: String,
    /// Logical CPUs of the server host (distinct `cpu` labels of the last good scrape).
    pub cpus: usize,
    /// Memory of the server host (MemTotal, bytes) at the last good scrape.
    pub memory_bytes: u64,
    /// Samples taken in total (kept + dropped).
    pub taken: u64,
    /// Oldest samples dropped to stay within `capacity`.
    pub dropped: u64,
    /// Scrapes tried (the first one is the baseline the first sample's rates start from).
    pub scrapes: u64,
    /// Scrapes that failed (no answer, an HTTP error, a body that is not node_exporter's); the
    /// next good scrape's rates span the gap.
    pub failed: u64,
    /// Mean wall time of one scrape (µs; the network round trip included).
    pub cost_us_mean: f64,
    /// Worst wall time of one scrape (µs).
    pub cost_us_max: f64,
    /// Mean CPU time the sampler thread spent per scrape on the client (µs).
    pub cpu_us_mean: f64,
    /// Summary over the kept `load` samples: what the stability criteria judge.
    pub summary: ServerHostSummary,
    /// The kept samples, oldest first.
    pub samples: Vec<ServerHostSample>,
}

/// Mean / p95 / peak of the server host's figures over the kept `load` samples.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, Default)]
pub struct ServerHostSummary {
    /// `load` samples summarized.
    pub samples: usize,
    /// CPU busy, all modes but idle and iowait (% of the host).
    pub cpu_percent: Stat,
    /// CPU waiting for I/O (% of the host).
    pub iowait_percent: Stat,
    /// Memory in use: MemTotal − MemAvailable (%).
    pub memory_percent: Stat,
    /// 1-minute load average.
    pub load1: Stat,
    /// Disk operations per second, whole disks.
    pub disk_iops: Stat,
    /// Disk reads (bytes/s), whole disks.
    pub disk_read_bytes_s: Stat,
    /// Disk writes (bytes/s), whole disks.
    pub disk_write_bytes_s: Stat,
    /// Network received, loopback excluded (bytes/s).
    pub net_rx_bytes_s: Stat,
    /// Network sent, loopback excluded (bytes/s).
    pub net_tx_bytes_s: Stat,
}

/// One sample of the server host: counter deltas per second of the agent's clock since the
/// previous good scrape, and gauges at this one.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct ServerHostSample {
    /// Seconds since the monitor started (when the scrape answered).
    pub t_s: f64,
    /// Tick number (see [`HostSample::tick`]).
    pub tick: u64,
    /// Where the sample lies relative to the load (see [`HostSample::phase`]).
    #[serde(default)]
    pub phase: Phase,
    /// CPU busy, all modes but idle and iowait (% of the host).
    pub cpu_percent: f64,
    /// CPU time by mode (`user`, `system`, `iowait`, `steal`, ...; % of the host, adding up to 100).
    pub cpu_modes: BTreeMap<String, f64>,
    /// Memory in use: MemTotal − MemAvailable (bytes).
    pub memory_used_bytes: u64,
    /// MemAvailable (bytes).
    pub memory_available_bytes: u64,
    /// Memory in use (% of MemTotal).
    pub memory_percent: f64,
    /// Load average over 1, 5, 15 minutes (null when the loadavg collector is off).
    pub load: Option<[f64; 3]>,
    /// Per block device as node_exporter lists them (its default skips partitions).
    pub disks: Vec<DiskRates>,
    /// Per network interface, loopback excluded.
    pub net: Vec<NetRates>,
}

/// One block device's rates over a sample.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct DiskRates {
    /// Device name (`sda`, `nvme0n1`, `dm-0`, ...).
    pub device: String,
    /// Whether it counts in the whole-disk totals: device-mapper and md devices do not, their I/O
    /// is already counted on the disks beneath them.
    pub counted: bool,
    /// Reads completed per second.
    pub reads_s: f64,
    /// Writes completed per second.
    pub writes_s: f64,
    /// Bytes read per second.
    pub read_bytes_s: f64,
    /// Bytes written per second.
    pub write_bytes_s: f64,
    /// Mean time an I/O took, queueing included (ms; iostat's await: read + write time over
    /// reads + writes), when any completed.
    pub await_ms: Option<f64>,
    /// Share of the time the device was busy (%; iostat's %util).
    pub util_percent: f64,
}

/// One network interface's rates over a sample.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct NetRates {
    /// Interface name.
    pub device: String,
    /// Bytes received per second.
    pub rx_bytes_s: f64,
    /// Bytes sent per second.
    pub tx_bytes_s: f64,
}

impl ServerHostSample {
    /// Disk operations per second over the counted devices.
    pub fn disk_iops(&self) -> f64 {
        self.counted_disks().map(|d| d.reads_s + d.writes_s).sum()
    }

    /// Bytes read per second over the counted devices.
    pub fn disk_read_bytes_s(&self) -> f64 {
        self.counted_disks().map(|d| d.read_bytes_s).sum()
    }

    /// Bytes written per second over the counted devices.
    pub fn disk_write_bytes_s(&self) -> f64 {
        self.counted_disks().map(|d| d.write_bytes_s).sum()
    }

    /// Network bytes received per second, all interfaces.
    pub fn net_rx_bytes_s(&self) -> f64 {
        self.net.iter().map(|n| n.rx_bytes_s).sum()
    }

    /// Network bytes sent per second, all interfaces.
    pub fn net_tx_bytes_s(&self) -> f64 {
        self.net.iter().map(|n| n.tx_bytes_s).sum()
    }

    fn counted_disks(&self) -> impl Iterator<Item = &DiskRates> {
        self.disks.iter().filter(|d| d.counted)
    }
}
