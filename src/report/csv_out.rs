//! CSV files for spreadsheets: `summary.csv` (one row per query type + `all`),
//! `timeseries.csv` (one row per interval) and `resources.csv` (one row per sampling tick). Columns are fixed; per-query-type columns of the time
//! series follow the mix order; the per-core, and the server host's per-mode and per-device,
//! columns of `resources.csv` come last, in name order.
//!
//! Every CSV of a result folder ends with two more columns ([`stamp`]): `run_id`, so rows of
//! several runs can be concatenated, and `unix_s`, the row's Unix time in (fractional) seconds, so
//! they line up with server logs and dashboards: the interval's or sample's start for a row with
//! a `t_s`, the run's start otherwise. They are appended, so existing column positions hold.

use std::collections::BTreeMap;

use anyhow::Result;

use super::model::{ConnectionsResult, LoadResult, QueryResult};
use crate::monitor::model::{HostSample, Monitoring, ServerHostSample, ServerSample};

fn finish(w: csv::Writer<Vec<u8>>) -> Result<Vec<u8>> {
    w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}

/// Appends `run_id` and `unix_s` to every row of `csv` (a header and records, as the functions
/// here write them). `unix_s` is `unix_of(t_s)`, with the row's `t_s` cell when the file has that
/// column; an empty cell when it gives `None`.
pub fn stamp(
    csv: &[u8],
    run_id: &str,
    unix_of: impl Fn(Option<f64>) -> Option<f64>,
) -> Result<Vec<u8>> {
    let mut r = csv::ReaderBuilder::new().has_headers(true).from_reader(csv);
    let mut header = r.headers()?.clone();
    let t_col = header.iter().position(|h| h == "t_s");
    header.push_field("run_id");
    header.push_field("unix_s");
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&header)?;
    for rec in r.records() {
        let mut rec = rec?;
        let t_s = t_col
            .and_then(|i| rec.get(i))
            .and_then(|c| c.parse::<f64>().ok());
        let unix = unix_of(t_s).map(|u| format!("{u:.3}")).unwrap_or_default();
        rec.push_field(run_id);
        rec.push_field(&unix);
        w.write_record(&rec)?;
    }
    finish(w)
}

/// `summary.csv` contents.
pub fn summary(load: &LoadResult) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "query",
        "count",
        "errors",
        "tps",
        "mean_ms",
        "stddev_ms",
        "min_ms",
        "p50_ms",
        "p90_ms",
        "p95_ms",
        "p99_ms",
        "p99_9_ms",
        "p99_99_ms",
        "max_ms",
    ])?;
    let row = |q: &QueryResult| -> Vec<String> {
        let l = &q.latency;
        let mut r = vec![
            q.name.clone(),
            q.count.to_string(),
            q.errors.values().sum::<u64>().to_string(),
            format!("{:.3}", q.tps),
        ];
        r.extend(
            [
                l.mean_ms,
                l.stddev_ms,
                l.min_ms,
                l.p50_ms,
                l.p90_ms,
                l.p95_ms,
                l.p99_ms,
                l.p999_ms,
                l.p9999_ms,
                l.max_ms,
            ]
            .iter()
            .map(|v| format!("{v:.4}")),
        );
        r
    };
    for q in &load.queries {
        w.write_record(row(q))?;
    }
    w.write_record(row(&load.summary))?;
    finish(w)
}

/// `timeseries.csv` contents.
pub fn timeseries(load: &LoadResult) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let names: Vec<&str> = load.queries.iter().map(|q| q.name.as_str()).collect();
    let mut header: Vec<String> = [
        "t_s",
        "warmup",
        "tps",
        "errors",
        "p50_ms",
        "p99_ms",
        "max_ms",
        "lag_p99_ms",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    header.extend(names.iter().map(|n| format!("count_{n}")));
    w.write_record(&header)?;
    for p in &load.timeseries {
        let mut r = vec![
            format!("{:.3}", p.t_s),
            p.warmup.to_string(),
            format!("{:.3}", p.tps),
            p.errors.to_string(),
            format!("{:.4}", p.p50_ms),
            format!("{:.4}", p.p99_ms),
            format!("{:.4}", p.max_ms),
            format!("{:.4}", p.lag_p99_ms),
        ];
        r.extend(
            names
                .iter()
                .map(|n| p.per_query.get(*n).copied().unwrap_or(0).to_string()),
        );
        w.write_record(&r)?;
    }
    finish(w)
}

/// `resources.csv` contents: one row per sampling tick, host, server and server host
/// (`--server-metrics`, columns `server_host_*`) figures side by side (a cell is empty when that
/// sampler has no sample for the tick), with its phase: `before`, `load` or `after` the measured
/// load. Every row is kept so the idle baseline and the drain stay
/// visible; only `load` rows are the load's (the summaries in run.json use nothing else).
pub fn resources(m: &Monitoring) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let host: BTreeMap<u64, &HostSample> = m
        .host
        .iter()
        .flat_map(|h| &h.samples)
        .map(|s| (s.tick, s))
        .collect();
    let server: BTreeMap<u64, &ServerSample> = m
        .server
        .iter()
        .flat_map(|h| &h.samples)
        .map(|s| (s.tick, s))
        .collect();
    let agent: BTreeMap<u64, &ServerHostSample> = m
        .server_host
        .iter()
        .flat_map(|h| &h.samples)
        .map(|s| (s.tick, s))
        .collect();
    let cores = host.values().map(|s| s.per_core.len()).max().unwrap_or(0);
    let names = |f: fn(&ServerHostSample) -> Vec<&str>| -> Vec<String> {
        let set: std::collections::BTreeSet<&str> = agent.values().flat_map(|s| f(s)).collect();
        set.into_iter().map(str::to_string).collect()
    };
    let modes = names(|s| s.cpu_modes.keys().map(String::as_str).collect());
    let disks = names(|s| s.disks.iter().map(|d| d.device.as_str()).collect());
    let nics = names(|s| s.net.iter().map(|n| n.device.as_str()).collect());
    let mut header: Vec<String> = [
        "tick",
        "t_s",
        "phase",
        "cpu_percent",
        "memory_percent",
        "memory_used_bytes",
        "swap_used_bytes",
        "swap_pages_s",
        "load1",
        "disk_read_bytes_s",
        "disk_write_bytes_s",
        "net_rx_bytes_s",
        "net_tx_bytes_s",
        "loopback_bytes_s",
        "client_cpu_percent",
        "server_cpu_percent",
        "server_memory_bytes",
        "server_tps",
        "cache_hit_ratio",
        "active",
        "waiting_locks",
        "blocked_backends",
        "deadlocks",
        "temp_bytes",
        "checkpoints",
        "wal_bytes_s",
        "server_host_cpu_percent",
        "server_host_memory_percent",
        "server_host_load1",
        "server_host_disk_iops",
        "server_host_disk_read_bytes_s",
        "server_host_disk_write_bytes_s",
        "server_host_net_rx_bytes_s",
        "server_host_net_tx_bytes_s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    header.extend((0..cores).map(|i| format!("cpu{i}_percent")));
    header.extend(modes.iter().map(|m| format!("server_host_cpu_{m}_percent")));
    for d in &disks {
        header.extend(
            DISK_COLUMNS
                .iter()
                .map(|c| format!("server_host_disk_{d}_{c}")),
        );
    }
    for n in &nics {
        header.extend([
            format!("server_host_net_{n}_rx_bytes_s"),
            format!("server_host_net_{n}_tx_bytes_s"),
        ]);
    }
    w.write_record(&header)?;
    let f = |v: f64| format!("{v:.3}");
    let opt = |v: Option<String>| v.unwrap_or_default();
    let ticks: std::collections::BTreeSet<u64> = host
        .keys()
        .chain(server.keys())
        .chain(agent.keys())
        .copied()
        .collect();
    for tick in ticks {
        let h = host.get(&tick);
        let s = server.get(&tick);
        let a = agent.get(&tick);
        let t = h
            .map(|h| h.t_s)
            .or(s.map(|s| s.t_s))
            .or(a.map(|a| a.t_s))
            .unwrap_or(0.0);
        // The samplers' samples of a tick share one phase (`Monitor::stop`).
        let phase = h
            .map(|h| h.phase)
            .or(s.map(|s| s.phase))
            .or(a.map(|a| a.phase))
            .unwrap_or_default();
        let mut r = vec![tick.to_string(), f(t), phase.as_str().to_string()];
        r.extend([
            opt(h.map(|h| f(h.cpu_percent))),
            opt(h.map(|h| f(h.memory_percent))),
            opt(h.map(|h| h.memory_used_bytes.to_string())),
            opt(h.map(|h| h.swap_used_bytes.to_string())),
            opt(h.map(|h| f(h.swap_pages_s))),
            opt(h.map(|h| f(h.load[0]))),
            opt(h.map(|h| f(h.disk_read_bytes_s))),
            opt(h.map(|h| f(h.disk_write_bytes_s))),
            opt(h.map(|h| f(h.net_rx_bytes_s))),
            opt(h.map(|h| f(h.net_tx_bytes_s))),
            opt(h.map(|h| f(h.loopback_bytes_s))),
            opt(h.map(|h| f(h.client_cpu_percent))),
            opt(h.and_then(|h| h.server_cpu_percent).map(f)),
            opt(h.and_then(|h| h.server_memory_bytes).map(|b| b.to_string())),
            opt(s.map(|s| f(s.tps))),
            opt(s.and_then(|s| s.cache_hit_ratio).map(|v| format!("{v:.5}"))),
            opt(s.map(|s| s.by_state.get("active").unwrap_or(&0).to_string())),
            opt(s.map(|s| s.waiting_locks.to_string())),
            opt(s.map(|s| s.blocked_backends.to_string())),
            opt(s.map(|s| s.deadlocks.to_string())),
            opt(s.map(|s| s.temp_bytes.to_string())),
            opt(s.map(|s| s.checkpoints.to_string())),
            opt(s.and_then(|s| s.wal_bytes_s).map(f)),
            opt(a.map(|a| f(a.cpu_percent))),
            opt(a.map(|a| f(a.memory_percent))),
            opt(a.and_then(|a| a.load).map(|l| f(l[0]))),
            opt(a.map(|a| f(a.disk_iops()))),
            opt(a.map(|a| f(a.disk_read_bytes_s()))),
            opt(a.map(|a| f(a.disk_write_bytes_s()))),
            opt(a.map(|a| f(a.net_rx_bytes_s()))),
            opt(a.map(|a| f(a.net_tx_bytes_s()))),
        ]);
        r.extend((0..cores).map(|i| opt(h.and_then(|h| h.per_core.get(i)).map(|v| f(*v)))));
        r.extend(
            modes
                .iter()
                .map(|m| opt(a.and_then(|a| a.cpu_modes.get(m)).map(|v| f(*v)))),
        );
        for d in &disks {
            let rates = a.and_then(|a| a.disks.iter().find(|x| &x.device == d));
            r.extend([
                opt(rates.map(|x| f(x.reads_s))),
                opt(rates.map(|x| f(x.writes_s))),
                opt(rates.map(|x| f(x.read_bytes_s))),
                opt(rates.map(|x| f(x.write_bytes_s))),
                opt(rates.and_then(|x| x.await_ms).map(f)),
                opt(rates.map(|x| f(x.util_percent))),
            ]);
        }
        for n in &nics {
            let rates = a.and_then(|a| a.net.iter().find(|x| &x.device == n));
            r.extend([
                opt(rates.map(|x| f(x.rx_bytes_s))),
                opt(rates.map(|x| f(x.tx_bytes_s))),
            ]);
        }
        w.write_record(&r)?;
    }
    finish(w)
}

/// The columns of each server host disk in `resources.csv`, in the order the cells are written.
const DISK_COLUMNS: [&str; 6] = [
    "reads_s",
    "writes_s",
    "read_bytes_s",
    "write_bytes_s",
    "await_ms",
    "util_percent",
];

/// `pool_timeseries.csv`: the connection scenario's pool samples.
pub fn pool_timeseries(c: &ConnectionsResult) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "t_s",
        "target",
        "open",
        "idle",
        "checked_out",
        "waiters",
        "ok",
        "failed",
        "connects",
        "closed",
    ])?;
    for p in &c.pool_timeseries {
        w.write_record([
            format!("{:.3}", p.t_s),
            p.target.to_string(),
            p.open.to_string(),
            p.idle.to_string(),
            p.checked_out.to_string(),
            p.waiters.to_string(),
            p.ok.to_string(),
            p.failed.to_string(),
            p.connects.to_string(),
            p.closed.to_string(),
        ])?;
    }
    finish(w)
}

/// `connection_steps.csv`: one row per ramp step.
pub fn connection_steps(c: &ConnectionsResult) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "target",
        "workers",
        "time_to_reach_s",
        "peak_open",
        "connects",
        "connect_failures",
        "connect_p50_ms",
        "connect_p99_ms",
        "connect_max_ms",
        "checkout_wait_p99_ms",
        "query_p50_ms",
        "query_p99_ms",
        "ok",
        "failed",
        "ops_per_s",
        "fallback_direct",
    ])?;
    for s in &c.steps {
        w.write_record([
            s.target.to_string(),
            s.workers.to_string(),
            s.time_to_reach_s
                .map(|t| format!("{t:.3}"))
                .unwrap_or_default(),
            s.peak_open.to_string(),
            s.connect.count.to_string(),
            s.connect_failures.values().sum::<u64>().to_string(),
            format!("{:.4}", s.connect.p50_ms),
            format!("{:.4}", s.connect.p99_ms),
            format!("{:.4}", s.connect.max_ms),
            format!("{:.4}", s.checkout_wait.p99_ms),
            format!("{:.4}", s.query.p50_ms),
            format!("{:.4}", s.query.p99_ms),
            s.ok.to_string(),
            s.errors.values().sum::<u64>().to_string(),
            format!("{:.1}", s.ops_per_s),
            s.fallback_direct.to_string(),
        ])?;
    }
    finish(w)
}
