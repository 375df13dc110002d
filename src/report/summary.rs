//! The terminal summary printed at the end of a run: one aligned row per query type, then the
//! totals, the client's own cost, and the warnings.

use std::fmt::Write as _;

use super::model::{ConnectionsResult, QueryResult, RunDocument};
use super::warnings::ClientThreads;
use crate::monitor::model::Monitoring;

/// Renders the summary table of a document.
pub fn render(doc: &RunDocument) -> String {
    let mut s = String::new();
    if let Some(c) = &doc.connections {
        connections(&mut s, doc, c);
    }
    let Some(load) = &doc.load else {
        // The connection section above stays; isolation() adds the warnings and the advice.
        s.push_str(&isolation(doc));
        return s;
    };
    let c = &load.config;
    let _ = writeln!(
        s,
        "\n{} on {} ({}), {} clients{}, {}, protocol {}, latency from {}",
        doc.scenario,
        doc.target.dsn,
        server_label(&doc.target),
        c.clients,
        c.threads
            .map(|j| format!(" on {j} threads (-j)"))
            .unwrap_or_default(),
        match c.rate {
            Some(r) => format!("open loop at {r:.0} tx/s"),
            None => "closed loop".to_string(),
        },
        c.protocol,
        c.latency_from.replace('_', " ")
    );
    let _ = writeln!(
        s,
        "{:<14} {:>10} {:>8} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "query",
        "count",
        "errors",
        "tps",
        "mean ms",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms"
    );
    let mut row = |q: &QueryResult| {
        let l = &q.latency;
        let _ = writeln!(
            s,
            "{:<14} {:>10} {:>8} {:>10.1} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            q.name,
            q.count,
            q.errors.values().sum::<u64>(),
            q.tps,
            l.mean_ms,
            l.p50_ms,
            l.p95_ms,
            l.p99_ms,
            l.p999_ms,
            l.max_ms
        );
    };
    for q in &load.queries {
        row(q);
    }
    row(&load.summary);
    let retried: u64 = load.queries.iter().map(|q| q.retried).sum();
    if retried > 0 || c.max_tries != 1 {
        let _ = writeln!(
            s,
            "retries (max tries {}): {} transactions retried, {} retries in all",
            c.max_tries,
            retried,
            load.queries.iter().map(|q| q.retries).sum::<u64>()
        );
    }
    if let Some(limit) = c.latency_limit_ms {
        // pgbench's two lines: skipped only exists in open loop, late among the successes.
        let all = &load.summary;
        if c.rate.is_some() {
            let attempted = all.count + all.errors.values().sum::<u64>() + all.skipped;
            let _ = writeln!(
                s,
                "number of transactions skipped: {} ({:.3}%)",
                all.skipped,
                percent(all.skipped, attempted)
            );
        }
        let _ = writeln!(
            s,
            "number of transactions above the {limit:.1} ms latency limit: {}/{} ({:.3}%)",
            all.late,
            all.count,
            percent(all.late, all.count)
        );
    }
    for q in &load.queries {
        if let Some(cmds) = &q.commands {
            let _ = writeln!(s, "per-command latencies of {} (ms, failures):", q.name);
            for cmd in cmds {
                let _ = writeln!(
                    s,
                    "  {:>9.3} {:>8}  {}",
                    cmd.mean_ms, cmd.failures, cmd.command
                );
            }
        }
    }
    let p = &load.pool;
    let driver = match load.config.threads {
        Some(j) => format!("{j} threads share the connections (-j), no pool"),
        None => format!("pool: checkout wait p99 {:.3} ms", p.checkout_wait.p99_ms),
    };
    let _ = writeln!(
        s,
        "{driver}; {} connections opened (connect p50 {:.2} ms, max {:.2} ms), {} failed",
        p.connections_opened, p.connect.p50_ms, p.connect.max_ms, p.connect_failures
    );
    if let Some(lag) = &load.schedule_lag {
        let _ = writeln!(
            s,
            "schedule lag: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            lag.p50_ms, lag.p99_ms, lag.max_ms
        );
    }
    let cl = &load.client;
    let _ = writeln!(
        s,
        "client: {:.1} µs CPU per transaction, {:.0}% of the host's CPU, peak RSS {:.1} MiB",
        cl.cpu_us_per_tx,
        cl.cpu_share_of_host * 100.0,
        cl.peak_rss_bytes as f64 / (1024.0 * 1024.0)
    );
    run_queue_line(&mut s, cl.run_queue.as_ref(), ClientThreads::of_load(c));
    if let Some(sp) = &load.clients {
        let _ = writeln!(
            s,
            "clients: {} ({} active), transactions per client p10 {}, p50 {}, p90 {} (min {}, \
             max {}), {:.0} effective",
            sp.clients, sp.active, sp.p10, sp.p50, sp.p90, sp.min, sp.max, sp.effective
        );
    }
    if let Some(sc) = &load.server_check {
        let _ = writeln!(
            s,
            "server: {} commits + {} rollbacks for {} client transactions (ratio {:.3})",
            sc.xact_commit, sc.xact_rollback, sc.client_transactions, sc.ratio
        );
    }
    if let Some(m) = &doc.monitoring {
        resources(&mut s, m);
    }
    s.push_str(&isolation(doc));
    s
}

/// The isolation section: one row per (check, level) with its verdict, the transaction classes,
/// and the explanation on the line below; then the warnings.
fn isolation(doc: &RunDocument) -> String {
    let mut s = String::new();
    if let Some(iso) = &doc.isolation {
        let c = &iso.config;
        let _ = writeln!(
            s,
            "\nisolation on {} ({}), {} workers x {}, max tries {}, deadlock_timeout {}",
            doc.target.dsn,
            server_label(&doc.target),
            c.workers,
            match (c.transactions_per_worker, c.duration_s) {
                (Some(t), _) => format!("{t} transactions"),
                (None, Some(d)) => format!("{d:.0} s"),
                (None, None) => "?".to_string(),
            },
            c.max_tries,
            c.deadlock_timeout
        );
        let _ = writeln!(
            s,
            "{:<12} {:<16} {:>9} {:>7} {:>7} {:>6} {:>7} {:>8} {:>8}  verdict",
            "check", "level", "committed", "40001", "40P01", "other", "failed", "p50 ms", "p99 ms"
        );
        for case in &iso.cases {
            let (committed, ser, dl, other, failed, p50, p99) = match &case.load {
                Some(l) => {
                    let get = |k: &str| l.attempt_errors.get(k).copied().unwrap_or(0);
                    let other: u64 = l
                        .attempt_errors
                        .iter()
                        .filter(|(k, _)| *k != "serialization" && *k != "deadlock")
                        .map(|(_, v)| v)
                        .sum();
                    (
                        l.committed,
                        get("serialization"),
                        get("deadlock"),
                        other,
                        l.failed.values().sum::<u64>(),
                        l.latency.p50_ms,
                        l.latency.p99_ms,
                    )
                }
                None => (0, 0, 0, 0, 0, 0.0, 0.0),
            };
            let _ = writeln!(
                s,
                "{:<12} {:<16} {:>9} {:>7} {:>7} {:>6} {:>7} {:>8.2} {:>8.2}  {}",
                case.check,
                case.level,
                committed,
                ser,
                dl,
                other,
                failed,
                p50,
                p99,
                case.verdict.label()
            );
            let _ = writeln!(s, "    {}", case.explanation);
        }
        let _ = writeln!(
            s,
            "isolation: {} of {} cases VIOLATION",
            iso.violations,
            iso.cases.len()
        );
    }
    for w in &doc.warnings {
        let _ = writeln!(s, "WARNING [{}]: {}", w.code, w.message);
    }
    s.push_str(&super::advice::render(doc));
    s
}

/// The connection scenario's section: one row per step, then incidents, leaks and totals.
fn connections(s: &mut String, doc: &RunDocument, c: &ConnectionsResult) {
    let cf = &c.config;
    let _ = writeln!(
        s,
        "\nconnections ({}) on {} ({}), {} workers, connect rate {}, checkout timeout {} ms",
        cf.mode,
        doc.target.dsn,
        server_label(&doc.target),
        cf.workers,
        cf.connect_rate
            .map(|r| format!("{r:.0}/s"))
            .unwrap_or_else(|| "unpaced".into()),
        cf.checkout_timeout_ms
    );
    let _ = writeln!(
        s,
        "{:>7} {:>9} {:>10} {:>9} {:>9} {:>11} {:>10} {:>10} {:>8} {:>10}",
        "step",
        "reach s",
        "connects",
        "conn p50",
        "conn p99",
        "wait p99 ms",
        "query p99",
        "ok",
        "failed",
        "ops/s"
    );
    for st in &c.steps {
        let _ = writeln!(
            s,
            "{:>7} {:>9} {:>10} {:>9.2} {:>9.2} {:>11.3} {:>10.3} {:>10} {:>8} {:>10.1}",
            st.target,
            st.time_to_reach_s
                .map(|t| format!("{t:.2}"))
                .unwrap_or_else(|| "never".into()),
            st.connect.count,
            st.connect.p50_ms,
            st.connect.p99_ms,
            st.checkout_wait.p99_ms,
            st.query.p99_ms,
            st.ok,
            st.errors.values().sum::<u64>(),
            st.ops_per_s
        );
    }
    let _ = writeln!(
        s,
        "success rate {:.2}% ({} of {} operations failed{}), {} checkout timeouts ({} direct fallbacks), \
         {} leaks, peak {} open, {} opened ({:.1}/s), {} connect failures, {} discarded",
        c.connection_success_rate * 100.0,
        c.failed_operations,
        c.operations,
        if c.errors.is_empty() {
            String::new()
        } else {
            format!(
                ": {}",
                c.errors
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        c.checkout_timeouts,
        c.fallback_direct,
        c.leaks,
        c.peak_open,
        c.connections_opened,
        c.connections_per_s,
        c.connect_failures,
        c.connections_discarded
    );
    for i in &c.incidents {
        let _ = writeln!(
            s,
            "incident: service dropped at {:.2} s, {}, pool full again {}; {} operations failed",
            i.dropped_at_s,
            match i.recovery_s {
                Some(r) => format!("back after {r:.2} s"),
                None => "never came back".into(),
            },
            match i.pool_recovery_s {
                Some(r) => format!("after {r:.2} s"),
                None => "never".into(),
            },
            i.failed_operations
        );
    }
    for l in &c.leak_details {
        let _ = writeln!(
            s,
            "leak: worker {} held a connection for {} for {:.1} s{}",
            l.worker,
            l.query,
            l.held_s,
            if l.still_out_at_end {
                " (still out at the end)"
            } else {
                ""
            }
        );
    }
    let cl = &c.client;
    let _ = writeln!(
        s,
        "client: {:.1} µs CPU per operation, {:.0}% of the host's CPU, peak RSS {:.1} MiB",
        cl.cpu_us_per_tx,
        cl.cpu_share_of_host * 100.0,
        cl.peak_rss_bytes as f64 / (1024.0 * 1024.0)
    );
    run_queue_line(s, cl.run_queue.as_ref(), ClientThreads::ConnectionWorkers);
    if let Some(sc) = &c.server_check {
        let _ = writeln!(
            s,
            "server: {} new sessions for {} client connections (ratio {:.3})",
            sc.sessions, sc.client_connections, sc.ratio
        );
    }
}

fn resources(s: &mut String, m: &Monitoring) {
    if let Some(u) = &m.under_load {
        let server = u
            .server_cpu_mean_percent
            .map(|p| format!(", PostgreSQL {p:.0}%"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "host under load: CPU mean {:.0}%, p95 {:.0}%, peak {:.0}% (pgstorm {:.0}%{server}); \
             memory p95 {:.1}%, peak {:.1}%",
            u.cpu_mean_percent,
            u.cpu_p95_percent,
            u.cpu_peak_percent,
            u.client_cpu_mean_percent,
            u.memory_p95_percent,
            u.memory_peak_percent
        );
    }
    if let Some(h) = &m.server_host {
        let u = &h.summary;
        let mib = |b: f64| b / (1024.0 * 1024.0);
        let _ = if u.samples == 0 {
            writeln!(
                s,
                "server host ({}): no sample under load ({} of {} scrapes failed)",
                h.source, h.failed, h.scrapes
            )
        } else {
            writeln!(
                s,
                "server host ({}): CPU mean {:.0}%, p95 {:.0}%, peak {:.0}% (iowait {:.0}%); memory \
                 p95 {:.1}%; load1 peak {:.2}; disks {:.0} IO/s, read {:.1} MiB/s, write {:.1} \
                 MiB/s; network rx {:.1} MiB/s, tx {:.1} MiB/s (means)",
                h.source,
                u.cpu_percent.mean,
                u.cpu_percent.p95,
                u.cpu_percent.peak,
                u.iowait_percent.mean,
                u.memory_percent.p95,
                u.load1.peak,
                u.disk_iops.mean,
                mib(u.disk_read_bytes_s.mean),
                mib(u.disk_write_bytes_s.mean),
                mib(u.net_rx_bytes_s.mean),
                mib(u.net_tx_bytes_s.mean)
            )
        };
    }
    if let Some(sv) = &m.server {
        let t = &sv.totals;
        let _ = writeln!(
            s,
            "server sampler: {:.1} tx/s over {:.1} s, cache hit {}, {} deadlocks, {} temp files, \
             {} checkpoints, {} WAL",
            (t.xact_commit + t.xact_rollback) as f64 / t.span_s.max(1e-9),
            t.span_s,
            t.cache_hit_ratio
                .map(|r| format!("{:.2}%", r * 100.0))
                .unwrap_or_else(|| "n/a".into()),
            t.deadlocks,
            t.temp_files,
            t.checkpoints,
            t.wal_bytes
                .map(|b| format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)))
                .unwrap_or_else(|| "n/a".into()),
        );
    }
    let raised: Vec<String> = m
        .alerts
        .iter()
        .filter(|a| a.state == "raised")
        .map(|a| format!("{} {:.0}% at t={:.1}s", a.metric, a.value, a.t_s))
        .collect();
    if !raised.is_empty() {
        let _ = writeln!(s, "alerts: {}", raised.join(", "));
    }
}

/// The client's `threads` waiting for a CPU, when the kernel counted it.
fn run_queue_line(
    s: &mut String,
    rq: Option<&crate::proc_stats::RunQueueWait>,
    threads: ClientThreads,
) {
    if let Some(rq) = rq {
        let _ = writeln!(s, "client run queue: {}", rq.describe(threads.name()));
    }
}

/// "15.18, TLS 1.3" / "15.18, plaintext": the server version and how the sessions were protected.
fn server_label(t: &crate::report::model::TargetInfo) -> String {
    match &t.security {
        Some(sec) => format!("{}, {}", t.server.server_version, sec.label()),
        None => t.server.server_version.clone(),
    }
}

/// `part` of `whole` in percent (0 when `whole` is 0).
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_run_prints_its_steps_and_client() {
        // An archived run of the connection scenario alone (no load section).
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("results/20261126T223202Z-quick-connections");
        let mut doc = crate::report::read::read_run(&dir).expect("the archived run reads");
        assert!(doc.load.is_none() && doc.connections.is_some());
        doc.warnings.push(crate::report::model::Warning {
            code: crate::report::warning_code::WarningCode::ClientRunQueue,
            message: "added by the test".into(),
        });
        let text = render(&doc);
        for line in ["\nconnections (", "reach s", "client: "] {
            assert!(text.contains(line), "{line:?} missing from:\n{text}");
        }
        // Each warning once: the connection section and the closing one both printed them.
        assert_eq!(
            text.matches("WARNING [").count(),
            doc.warnings.len(),
            "{text}"
        );
    }

    #[test]
    fn a_load_run_prints_how_evenly_its_clients_carried_the_load() {
        // An archived load run from before the spread was recorded: no `clients:` line.
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results/20261126T223209Z-quick");
        let mut doc = crate::report::read::read_run(&dir).expect("the archived run reads");
        let load = doc
            .load
            .as_mut()
            .expect("the archived run has a load section");
        assert!(load.clients.is_none());
        assert!(!render(&doc).contains("\nclients: "), "{}", render(&doc));

        // With a spread (pgbench -j 2's at -c 500, two clients that never ended a transaction).
        doc.load.as_mut().unwrap().clients = Some(crate::report::model::ClientSpread {
            clients: 500,
            active: 498,
            min: 0,
            p10: 277,
            p50: 445,
            p90: 810,
            max: 4847,
            effective: 346.4,
        });
        let text = render(&doc);
        let line = "\nclients: 500 (498 active), transactions per client p10 277, p50 445, \
                    p90 810 (min 0, max 4847), 346 effective\n";
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
        assert_eq!(text.matches("\nclients: ").count(), 1, "{text}");
    }
}
