//! `pgstorm merge`: one result from runs made at the same time on several load machines against
//! the same server.
//!
//! Invariants: totals are exact: counts and errors are summed and every latency summary is
//! recomputed from the sum of the runs' serialized histograms (never by averaging percentiles).
//! Throughput adds up (the machines ran concurrently). Per-interval p50/p99/max of the merged
//! time series come from the runs' interval logs (latency.hlog), added interval by interval, and
//! the merged folder gets the merged log; without the logs they are the highest machine's value
//! (an upper bound, said in a warning). Sections this module does not know are kept from the
//! first run.

use std::collections::BTreeMap;

use anyhow::Result;

use super::hlog;
use super::latency_summary;
use super::model::{
    CommandResult, LatencySummary, LoadResult, MergedRun, QueryResult, RunDocument, Warning,
    WarningCode,
};
use crate::error;
use crate::hist::{self, Hist};

fn add_hist(into: &mut Option<Hist>, encoded: &str, what: &str) -> Result<()> {
    let h = hist::decode(encoded).map_err(|e| {
        error::usage(format!(
            "the {what} histogram cannot be read ({e}); the result folder is damaged"
        ))
    })?;
    match into {
        Some(acc) => acc
            .add(&h)
            .map_err(|e| error::usage(format!("the {what} histograms cannot be added ({e:?})")))?,
        None => *into = Some(h),
    }
    Ok(())
}

fn merged_summary(parts: &[&LatencySummary], what: &str) -> Result<LatencySummary> {
    let mut acc = None;
    for p in parts {
        add_hist(&mut acc, &p.histogram, what)?;
    }
    Ok(latency_summary(&acc.unwrap_or_else(|| hist::new_hist(3))))
}

fn merged_query(parts: &[&QueryResult]) -> Result<QueryResult> {
    let mut errors = BTreeMap::new();
    for q in parts {
        for (k, v) in &q.errors {
            *errors.entry(k.clone()).or_insert(0) += v;
        }
    }
    let lat: Vec<&LatencySummary> = parts.iter().map(|q| &q.latency).collect();
    Ok(QueryResult {
        name: parts[0].name.clone(),
        count: parts.iter().map(|q| q.count).sum(),
        errors,
        tps: parts.iter().map(|q| q.tps).sum(),
        latency: merged_summary(&lat, &parts[0].name)?,
        retried: parts.iter().map(|q| q.retried).sum(),
        retries: parts.iter().map(|q| q.retries).sum(),
        late: parts.iter().map(|q| q.late).sum(),
        skipped: parts.iter().map(|q| q.skipped).sum(),
        commands: merged_commands(parts),
    })
}

/// Per-command latencies of a script merged across runs: counts and failures add, means are
/// weighted by count. Only when every run reported the same commands.
fn merged_commands(parts: &[&QueryResult]) -> Option<Vec<CommandResult>> {
    let first = parts[0].commands.as_ref()?;
    let same = parts.iter().all(|q| {
        q.commands.as_ref().is_some_and(|c| {
            c.len() == first.len() && c.iter().zip(first).all(|(a, b)| a.command == b.command)
        })
    });
    if !same {
        return None;
    }
    Some(
        first
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let all = parts
                    .iter()
                    .filter_map(|q| q.commands.as_ref().map(|v| &v[i]));
                let (count, failures, weighted) = all.fold((0u64, 0u64, 0.0f64), |(n, f, w), x| {
                    (n + x.count, f + x.failures, w + x.mean_ms * x.count as f64)
                });
                CommandResult {
                    command: c.command.clone(),
                    count,
                    mean_ms: if count > 0 {
                        weighted / count as f64
                    } else {
                        0.0
                    },
                    failures,
                }
            })
            .collect(),
    )
}

fn query_names(l: &LoadResult) -> Vec<&str> {
    l.queries.iter().map(|q| q.name.as_str()).collect()
}

/// A merged result: the document and, when every run had one, the merged interval log.
pub struct Merged {
    /// The merged document.
    pub doc: RunDocument,
    /// The merged latency.hlog.
    pub log: Option<Vec<u8>>,
}

/// Reads an interval log into its entries (start relative to the log's base time).
pub fn read_log(bytes: &[u8]) -> Result<Vec<hlog::Entry>> {
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let mut out = Vec::new();
    for item in IntervalLogIterator::new(bytes) {
        match item {
            Ok(LogEntry::Interval(i)) => out.push(hlog::Entry {
                tag: i.tag().map(|t| t.as_str().to_string()).unwrap_or_default(),
                start_s: i.start_timestamp().as_secs_f64(),
                duration_s: i.duration().as_secs_f64(),
                encoded: i.encoded_histogram().to_string(),
            }),
            Ok(_) => {}
            Err(e) => {
                return Err(error::usage(format!(
                    "latency.hlog cannot be parsed ({e:?}); the result folder is damaged"
                )))
            }
        }
    }
    Ok(out)
}

/// Per interval index (start / interval length, rounded), the histogram of all query types.
pub fn interval_totals(entries: &[hlog::Entry], interval_s: f64) -> Result<BTreeMap<u64, Hist>> {
    let mut out: BTreeMap<u64, Option<Hist>> = BTreeMap::new();
    for e in entries {
        let i = (e.start_s / interval_s.max(f64::MIN_POSITIVE)).round() as u64;
        add_hist(out.entry(i).or_default(), &e.encoded, &e.tag)?;
    }
    Ok(out
        .into_iter()
        .filter_map(|(i, h)| h.map(|h| (i, h)))
        .collect())
}

/// Adds the logs' histograms per (interval, tag); also returns the all-types totals per interval.
fn merge_logs(
    logs: &[Vec<u8>],
    interval_s: f64,
    start_epoch_s: f64,
) -> Result<(Vec<u8>, BTreeMap<u64, Hist>)> {
    let mut by_key: BTreeMap<(u64, String), (f64, f64, Option<Hist>)> = BTreeMap::new();
    let mut all = Vec::new();
    for log in logs {
        for e in read_log(log)? {
            let i = (e.start_s / interval_s.max(f64::MIN_POSITIVE)).round() as u64;
            let slot = by_key
                .entry((i, e.tag.clone()))
                .or_insert((e.start_s, e.duration_s, None));
            add_hist(&mut slot.2, &e.encoded, &e.tag)?;
            all.push(e);
        }
    }
    let entries: Vec<hlog::Entry> = by_key
        .into_iter()
        .filter_map(|((_, tag), (start_s, duration_s, h))| {
            h.map(|h| hlog::Entry {
                tag,
                start_s,
                duration_s,
                encoded: hist::encode(&h),
            })
        })
        .collect();
    Ok((
        hlog::render(start_epoch_s, &entries)?,
        interval_totals(&all, interval_s)?,
    ))
}

/// Merges `runs` (documents, each with its interval log when it has one; at least two, each with
/// a query load of the same query types) into one result labelled `label`.
pub fn merge(
    runs: &[(RunDocument, Option<Vec<u8>>)],
    label: &str,
    command: &[String],
) -> Result<Merged> {
    let docs: Vec<&RunDocument> = runs.iter().map(|r| &r.0).collect();
    let logs: Option<Vec<Vec<u8>>> = runs.iter().map(|r| r.1.clone()).collect();
    let loads: Vec<&LoadResult> = docs
        .iter()
        .map(|d| {
            d.load
                .as_ref()
                .ok_or_else(|| error::usage(format!("run {} has no query load to merge", d.run_id)))
        })
        .collect::<Result<_>>()?;
    let names = query_names(loads[0]);
    for (d, l) in docs.iter().zip(&loads).skip(1) {
        if query_names(l) != names {
            return Err(error::usage(format!(
                "run {} ran query types {:?}, but {} ran {:?}: only runs of the same mix can be merged",
                d.run_id,
                query_names(l),
                docs[0].run_id,
                names
            )));
        }
    }
    let mut warnings = Vec::new();
    let mut warn = |code: WarningCode, message: String| warnings.push(Warning { code, message });
    let starts: Vec<chrono::DateTime<chrono::FixedOffset>> = docs
        .iter()
        .filter_map(|d| chrono::DateTime::parse_from_rfc3339(&d.started_at).ok())
        .collect();
    if let (Some(min), Some(max)) = (starts.iter().min(), starts.iter().max()) {
        let spread = (*max - *min).num_milliseconds() as f64 / 1000.0;
        let interval = loads[0].config.interval_s;
        if spread > interval {
            warn(
                WarningCode::MergeNotSimultaneous,
                format!(
                    "the merged runs started {spread:.1} s apart (more than one {interval} s interval): \
                     their load did not fully overlap; start them together with --start-at"
                ),
            );
        }
    }
    for d in &docs[1..] {
        if d.target.server.server_version != docs[0].target.server.server_version
            || d.target.dsn != docs[0].target.dsn
        {
            warn(
                WarningCode::MergeDifferentTargets,
                format!(
                    "run {} measured {} ({}) but {} measured {} ({}): a merge only makes sense against one server",
                    d.run_id,
                    d.target.dsn,
                    d.target.server.server_version,
                    docs[0].run_id,
                    docs[0].target.dsn,
                    docs[0].target.server.server_version
                ),
            );
        }
    }
    let interval_s = loads[0].config.interval_s;
    let merged_log = match &logs {
        Some(l) => {
            let first = starts
                .iter()
                .min()
                .map_or(0.0, |s| s.timestamp_millis() as f64 / 1000.0);
            Some(merge_logs(l, interval_s, first)?)
        }
        None => {
            warn(
                WarningCode::MergeIntervalPercentiles,
                "a run has no latency.hlog: per-interval p50/p99 of this merged result are the \
                 highest machine's (an upper bound); the totals' percentiles are exact"
                    .into(),
            );
            None
        }
    };
    if loads.iter().any(|l| l.schedule_lag.is_some()) {
        warn(
            WarningCode::MergeIntervalLag,
            "per-interval schedule lag p99 of this merged result is the highest machine's (an upper \
             bound); the total schedule lag is exact"
                .into(),
        );
    }

    let mut queries = Vec::new();
    for (i, _) in names.iter().enumerate() {
        let parts: Vec<&QueryResult> = loads.iter().map(|l| &l.queries[i]).collect();
        queries.push(merged_query(&parts)?);
    }
    let summaries: Vec<&QueryResult> = loads.iter().map(|l| &l.summary).collect();
    let mut load = loads[0].clone();
    load.summary = merged_query(&summaries)?;
    load.queries = queries;
    load.config.clients = loads.iter().map(|l| l.config.clients).sum();
    // The runs keep their clients' spread, not the counts: the merged clients' is unknown.
    load.clients = None;
    load.config.rate = loads.iter().map(|l| l.config.rate).sum::<Option<f64>>();
    let waits: Vec<&LatencySummary> = loads.iter().map(|l| &l.pool.checkout_wait).collect();
    let connects: Vec<&LatencySummary> = loads.iter().map(|l| &l.pool.connect).collect();
    load.pool.checkout_wait = merged_summary(&waits, "pool checkout")?;
    load.pool.connect = merged_summary(&connects, "connect")?;
    load.pool.connections_opened = loads.iter().map(|l| l.pool.connections_opened).sum();
    load.pool.connect_failures = loads.iter().map(|l| l.pool.connect_failures).sum();
    let lags: Option<Vec<&LatencySummary>> =
        loads.iter().map(|l| l.schedule_lag.as_ref()).collect();
    load.schedule_lag = match lags {
        Some(l) => Some(merged_summary(&l, "schedule lag")?),
        None => None,
    };
    merge_timeseries(&mut load, &loads);
    if let Some((_, totals)) = &merged_log {
        for p in &mut load.timeseries {
            let i = (p.t_s / interval_s.max(f64::MIN_POSITIVE)).round() as u64;
            if let Some(h) = totals.get(&i) {
                p.p50_ms = h.value_at_quantile(0.5) as f64 / 1000.0;
                p.p99_ms = h.value_at_quantile(0.99) as f64 / 1000.0;
                p.max_ms = h.max() as f64 / 1000.0;
            }
        }
    }
    merge_client(&mut load, &loads);

    let mut m = docs[0].clone();
    let started = starts
        .iter()
        .min()
        .map(|s| s.with_timezone(&chrono::Utc))
        .unwrap_or_else(chrono::Utc::now);
    m.run_id = super::archive::run_id(started, label);
    m.label = label.to_string();
    m.command = command.iter().map(|a| crate::target::redact(a)).collect();
    m.started_at = started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    m.finished_at = docs
        .iter()
        .map(|d| d.finished_at.clone())
        .max()
        .unwrap_or_default();
    m.interrupted = docs.iter().any(|d| d.interrupted);
    m.host.hostname = docs
        .iter()
        .map(|d| d.host.hostname.as_str())
        .collect::<Vec<_>>()
        .join("+");
    m.host.cpus = docs.iter().map(|d| d.host.cpus).sum();
    m.host.memory_bytes = docs.iter().map(|d| d.host.memory_bytes).sum();
    for d in &docs {
        for w in &d.warnings {
            warn(
                w.code,
                format!("{} ({}): {}", d.host.hostname, d.run_id, w.message),
            );
        }
    }
    m.warnings = warnings;
    m.merged_from = Some(
        docs.iter()
            .zip(&loads)
            .map(|(d, l)| MergedRun {
                run_id: d.run_id.clone(),
                hostname: d.host.hostname.clone(),
                started_at: d.started_at.clone(),
                count: l.summary.count,
            })
            .collect(),
    );
    m.load = Some(load);
    Ok(Merged {
        doc: m,
        log: merged_log.map(|(bytes, _)| bytes),
    })
}

/// Adds the time series interval by interval (same index = same time, given a common start).
fn merge_timeseries(load: &mut LoadResult, loads: &[&LoadResult]) {
    let len = loads.iter().map(|l| l.timeseries.len()).max().unwrap_or(0);
    load.timeseries = (0..len)
        .map(|i| {
            let pts: Vec<_> = loads.iter().filter_map(|l| l.timeseries.get(i)).collect();
            let mut p = pts[0].clone();
            p.tps = pts.iter().map(|x| x.tps).sum();
            p.errors = pts.iter().map(|x| x.errors).sum();
            p.p50_ms = pts.iter().map(|x| x.p50_ms).fold(0.0, f64::max);
            p.p99_ms = pts.iter().map(|x| x.p99_ms).fold(0.0, f64::max);
            p.max_ms = pts.iter().map(|x| x.max_ms).fold(0.0, f64::max);
            p.lag_p99_ms = pts.iter().map(|x| x.lag_p99_ms).fold(0.0, f64::max);
            p.per_query = BTreeMap::new();
            for x in &pts {
                for (k, v) in &x.per_query {
                    *p.per_query.entry(k.clone()).or_insert(0) += v;
                }
            }
            p
        })
        .collect();
}

/// Client cost adds up; per-transaction CPU is recomputed from the totals.
fn merge_client(load: &mut LoadResult, loads: &[&LoadResult]) {
    let c = &mut load.client;
    let cpu = |l: &LoadResult| l.client.cpu_user_s + l.client.cpu_system_s;
    let tx: f64 = loads
        .iter()
        .filter(|l| l.client.cpu_us_per_tx > 0.0)
        .map(|l| cpu(l) * 1e6 / l.client.cpu_us_per_tx)
        .sum();
    c.cpu_user_s = loads.iter().map(|l| l.client.cpu_user_s).sum();
    c.cpu_system_s = loads.iter().map(|l| l.client.cpu_system_s).sum();
    c.cpu_us_per_tx = if tx > 0.0 {
        (c.cpu_user_s + c.cpu_system_s) * 1e6 / tx
    } else {
        0.0
    };
    c.cpu_share_of_host = loads
        .iter()
        .map(|l| l.client.cpu_share_of_host)
        .fold(0.0, f64::max);
    c.peak_rss_bytes = loads
        .iter()
        .map(|l| l.client.peak_rss_bytes)
        .max()
        .unwrap_or(0);
    c.late_batches = loads.iter().map(|l| l.client.late_batches).sum();
    // The machine whose clock kept worst with its monotonic clock speaks for the merge.
    c.clock = loads
        .iter()
        .filter_map(|l| l.client.clock.clone())
        .max_by(|a, b| {
            let drift = |c: &crate::clock::ClockCheck| c.drift_ppm.unwrap_or(0.0).abs();
            (!a.passed, drift(a))
                .partial_cmp(&(!b.passed, drift(b)))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    // Each machine's server-side delta already covers every machine's load (one server):
    // the largest delta spans the whole merged load; the client counts add up.
    let checks: Option<Vec<_>> = loads.iter().map(|l| l.server_check.as_ref()).collect();
    load.server_check = checks.map(|cs| {
        let mut s = cs[0].clone();
        s.xact_commit = cs.iter().map(|x| x.xact_commit).max().unwrap_or(0);
        s.xact_rollback = cs.iter().map(|x| x.xact_rollback).max().unwrap_or(0);
        s.client_transactions = cs.iter().map(|x| x.client_transactions).sum();
        s.ratio = if s.client_transactions > 0 {
            (s.xact_commit + s.xact_rollback) as f64 / s.client_transactions as f64
        } else {
            0.0
        };
        s
    });
}
