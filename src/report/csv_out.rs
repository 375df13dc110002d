//! CSV files for spreadsheets: `summary.csv` (one row per query type + `all`) and
//! `timeseries.csv` (one row per interval). Columns are fixed; per-query-type columns of the time
//! series follow the mix order.

use anyhow::Result;

use super::model::{ConnectionsResult, LoadResult, QueryResult};

fn finish(w: csv::Writer<Vec<u8>>) -> Result<Vec<u8>> {
    w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
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
