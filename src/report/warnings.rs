//! Measurement-quality warnings derived from a result document: the report's way of saying "do
//! not trust this figure, and here is why".
//!
//! Invariant: each check reads only the document, so a run read back from disk gets the same
//! warnings. Each warning names what was seen, with numbers, and what to do.

use super::model::{ConnectionsResult, LoadResult, RunDocument, Warning};

fn w(code: &str, message: String) -> Warning {
    Warning {
        code: code.to_string(),
        message,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Warnings about a connection scenario's result.
pub fn connection_warnings(c: &ConnectionsResult) -> Vec<Warning> {
    let mut out = Vec::new();
    for s in &c.steps {
        if s.time_to_reach_s.is_none() && c.config.mode == "ramp" {
            out.push(w(
                "step_not_reached",
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
            "not_recovered",
            format!(
                "service dropped at {:.2} s and had not recovered when the run ended: the server \
                 stayed unreachable; later steps measured an outage, not a load",
                i.dropped_at_s
            ),
        ));
    }
    if c.client.cpu_share_of_host > 0.9 {
        out.push(w(
            "client_saturated",
            format!(
                "pgstorm used {:.0}% of the host's CPU: latencies include time waiting for the \
                 client; run pgstorm on another machine or use fewer workers",
                c.client.cpu_share_of_host * 100.0
            ),
        ));
    }
    out
}

/// Warnings about a load's measurement.
pub fn load_warnings(doc: &RunDocument, load: &LoadResult) -> Vec<Warning> {
    let mut out = Vec::new();
    let measured: Vec<_> = load.timeseries.iter().filter(|p| !p.warmup).collect();
    let closed = load.config.rate.is_none();
    if closed && measured.len() >= 3 {
        let med = median(measured.iter().map(|p| p.tps).collect());
        // Skip the last interval: it is usually cut short by the end of the run.
        let inner = &measured[..measured.len() - 1];
        let dip = inner
            .iter()
            .filter(|p| med > 0.0 && p.tps < 0.2 * med)
            .min_by(|a, b| a.tps.total_cmp(&b.tps));
        let p50 = load.summary.latency.p50_ms;
        let max = load.summary.latency.max_ms;
        let spike = max >= 100.0 && p50 > 0.0 && max > 100.0 * p50;
        if dip.is_some() || spike {
            let what = match dip {
                Some(p) => format!(
                    "throughput fell to {:.0} tx/s (median {:.0}) at t={:.0} s",
                    p.tps, med, p.t_s
                ),
                None => format!(
                    "the slowest transaction took {max:.0} ms against a median of {p50:.3} ms"
                ),
            };
            out.push(w(
                "closed_loop_stall",
                format!(
                    "{what}: the server stalled, and in closed loop the work that would have \
                     queued behind the stall is never sent, so the percentiles hide it \
                     (coordinated omission); rerun with -R <rate> to measure latency from the \
                     intended start"
                ),
            ));
        }
    }
    if let Some(lag) = &load.schedule_lag {
        if lag.p99_ms > 10.0 {
            out.push(w(
                "schedule_lag",
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
    if load.client.cpu_share_of_host > 0.9 {
        out.push(w(
            "client_cpu_saturated",
            format!(
                "pgstorm used {:.0}% of the host's CPU: the client may be the bottleneck; run it \
                 on a separate load machine or lower -c",
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
            "failed_transactions",
            format!(
                "{errors} transactions failed ({}); their latency is not in the percentiles",
                classes.join(", ")
            ),
        ));
    }
    if let Some(sc) = &load.server_check {
        if sc.client_transactions >= 100 && !(0.95..=1.05).contains(&sc.ratio) {
            out.push(w(
                "server_count_mismatch",
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
            "late_batches",
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
            "histogram_precision",
            format!(
                "{} clients × {} query types: worker histograms use {} significant digits to \
                 bound memory, so percentiles are exact to ~1%",
                load.config.clients,
                load.queries.len(),
                load.config.histogram_sigfig
            ),
        ));
    }
    if doc.host.clocksource != "tsc" && doc.host.clocksource != "unknown" {
        out.push(w(
            "clocksource",
            format!(
                "the kernel clocksource is '{}', not tsc: reading the clock costs more and \
                 sub-10 µs latencies are less precise",
                doc.host.clocksource
            ),
        ));
    }
    if doc.interrupted {
        out.push(w(
            "interrupted",
            "the run was interrupted: the figures cover only the part that ran".to_string(),
        ));
    }
    out
}
