//! The supporting parts of report.html: the load's own health (client cost, schedule lag, stalls,
//! aborted clients, the server's view of the transaction count) after the latency charts, and at
//! the end the run's context (command, hosts, dataset, data size, what pgstorm did to the server
//! before the run) with the server settings snapshot collapsed.
//!
//! Invariants: rendered from the document only; every figure is text with its unit, never JSON.

use std::fmt::Write as _;

use super::panels::{human, MIB};
use super::{esc, kv_rows};
use crate::report::hygiene::StepStatus;
use crate::report::model::{ClientCost, RunDocument};
use crate::report::warnings::ClientThreads;

/// pgstorm's own cost as (figure, value) rows: its CPU per `unit` of work, its peak memory and,
/// when the kernel counted it, the wait of its `threads` for a CPU. The load's health and the
/// connection scenario's key figures both show these rows.
pub fn client_cost_rows(
    c: &ClientCost,
    unit: &str,
    threads: ClientThreads,
) -> Vec<(String, String)> {
    let mut rows = vec![
        (
            "pgstorm's CPU".to_string(),
            format!(
                "{:.2} s user + {:.2} s system, {:.1} µs per {unit}, {:.0} % of the host",
                c.cpu_user_s,
                c.cpu_system_s,
                c.cpu_us_per_tx,
                c.cpu_share_of_host * 100.0
            ),
        ),
        (
            "pgstorm's peak memory".into(),
            format!("{:.0} MiB", c.peak_rss_bytes as f64 / MIB),
        ),
    ];
    if let Some(rq) = &c.run_queue {
        rows.push((
            "pgstorm's wait for a CPU".into(),
            rq.describe(threads.name()),
        ));
    }
    rows
}

/// The load's own health, or None without a query load.
pub fn load_health(doc: &RunDocument) -> Option<String> {
    let l = doc.load.as_ref()?;
    let c = &l.client;
    let mut rows = client_cost_rows(c, "transaction", ClientThreads::of_load(&l.config));
    rows.insert(
        2,
        (
            "measured".into(),
            format!("{:.1} s, {} clients", l.measured_s, l.config.clients),
        ),
    );
    if let Some(sl) = &l.schedule_lag {
        rows.push((
            "schedule lag p50 / p99 / max".into(),
            format!("{:.3} / {:.3} / {:.3} ms", sl.p50_ms, sl.p99_ms, sl.max_ms),
        ));
    }
    if let Some(co) = &l.co_corrected {
        rows.push((
            "latency corrected for coordinated omission p50 / p99".into(),
            format!("{:.3} / {:.3} ms", co.p50_ms, co.p99_ms),
        ));
    }
    if let Some(sc) = &l.server_check {
        rows.push((
            "server commits + rollbacks vs client transactions".into(),
            format!(
                "{} + {} vs {} (ratio {:.3})",
                sc.xact_commit, sc.xact_rollback, sc.client_transactions, sc.ratio
            ),
        ));
    }
    for st in &l.stalls {
        rows.push((
            format!("stall at {:.1} s", st.start_s),
            format!(
                "{:.2} s, {} of {} clients waiting > {:.0} ms{}",
                st.duration_s,
                st.clients_waiting,
                st.clients_required,
                st.threshold_ms,
                if st.client_side {
                    " (the client itself paused)"
                } else {
                    ""
                }
            ),
        ));
    }
    for a in &l.aborted {
        rows.push((
            format!("{} client(s) aborted", a.clients),
            format!(
                "{}{}",
                a.sqlstate
                    .as_ref()
                    .map(|s| format!("SQLSTATE {s}: "))
                    .unwrap_or_default(),
                a.message
            ),
        ));
    }
    let mut s = String::from("<h3>Load health</h3>\n<table>");
    kv_rows(&mut s, rows);
    s.push_str("</table>\n");
    Some(s)
}

/// Command, hosts, dataset, hygiene and the settings snapshot.
pub fn run_context(doc: &RunDocument) -> Option<String> {
    let h = &doc.host;
    let mut s = format!(
        "<h2>Run details</h2>\n<table class=\"kv\"><tr><td>command</td><td class=\"sql\"><code>{}</code></td></tr>\
         <tr><td>pgstorm</td><td>{} ({})</td></tr>\
         <tr><td>load host</td><td>{}, {} &middot; {} CPUs ({}) &middot; {:.0} MiB RAM &middot; clock {}</td></tr>\
         <tr><td>server</td><td>PostgreSQL {} &middot; max_connections {} &middot; target from {}</td></tr>",
        esc(&doc.command.join(" ")),
        esc(&doc.pgstorm.version),
        esc(&doc.pgstorm.git_commit),
        esc(&h.hostname),
        esc(&h.os),
        h.cpus,
        esc(&h.cpu_model),
        h.memory_bytes as f64 / MIB,
        esc(&h.clocksource),
        esc(&doc.target.server.server_version),
        doc.target.server.max_connections,
        esc(&format!("{:?}", doc.target.source).to_lowercase())
    );
    if let Some(d) = &doc.dataset {
        let _ = write!(
            s,
            "<tr><td>dataset</td><td>scale {} (seed {}): {} partners, {} orders, {} lines</td></tr>",
            d.scale, d.seed, d.partners, d.orders, d.lines
        );
    }
    if let Some(ds) = &doc.data_size {
        let tables: Vec<String> = ds
            .tables
            .iter()
            .map(|t| format!("{} {} MiB", t.name, human(t.bytes as f64 / MIB)))
            .collect();
        let _ = write!(
            s,
            "<tr><td>data size</td><td>{} MiB ({}) vs shared_buffers {} MiB</td></tr>",
            human(ds.total_bytes as f64 / MIB),
            esc(&tables.join(", ")),
            human(ds.shared_buffers_bytes as f64 / MIB)
        );
    }
    if let Some(st) = &doc.study {
        let _ = write!(
            s,
            "<tr><td>study</td><td>{} side {}, pair {} of {}</td></tr>",
            esc(&st.id),
            esc(&st.side),
            st.pair,
            st.pairs
        );
    }
    s.push_str("</table>\n");
    if let Some(hy) = &doc.hygiene {
        s.push_str(
            "<h3>Before the run</h3>\n<table><tr><th>action</th><th>result</th><th>ms</th></tr>",
        );
        for st in &hy.steps {
            let result = match st.status {
                StepStatus::Done => "done".to_string(),
                StepStatus::Skipped => format!("skipped: {}", st.reason.as_deref().unwrap_or("")),
                StepStatus::Failed => format!("failed: {}", st.reason.as_deref().unwrap_or("")),
            };
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{:.0}</td></tr>",
                esc(&st.action),
                esc(&result),
                st.duration_ms
            );
        }
        for (name, hook) in [("--pre-sql", &hy.pre_sql), ("--post-sql", &hy.post_sql)] {
            if let Some(k) = hook {
                let _ = write!(
                    s,
                    "<tr><td>{name} {}</td><td>{}</td><td>{:.0}</td></tr>",
                    esc(&k.file),
                    esc(&k.error.clone().unwrap_or_else(|| "ok".into())),
                    k.duration_ms
                );
            }
        }
        s.push_str("</table>\n");
    }
    let settings = &doc.target.server.settings;
    if !settings.is_empty() {
        let _ = write!(
            s,
            "<details><summary>Server settings snapshot ({} settings)</summary><table><tr><th>setting</th><th>value</th></tr>",
            settings.len()
        );
        kv_rows(&mut s, settings);
        s.push_str("</table></details>\n");
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_health_shows_the_threads_wait_for_a_cpu() {
        // An archived pool-driver run, given the figure it was written without.
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results/20261126T223209Z-quick");
        let mut doc = crate::report::read::read_run(&dir).expect("the archived run reads");
        let without = load_health(&doc).expect("a load");
        assert!(!without.contains("wait for a CPU"), "{without}");
        doc.load.as_mut().expect("a load").client.run_queue =
            Some(crate::proc_stats::RunQueueWait {
                threads: 4,
                wait_s: 2.5,
                share: 0.25,
                max_thread_share: 0.3,
            });
        let with = load_health(&doc).expect("a load");
        assert!(
            with.contains("4 load threads waited for a CPU 25.0% of their lifetime"),
            "{with}"
        );
    }
}
