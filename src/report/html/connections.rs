//! The connections scenario in report.html: its key figures (pgstorm's own cost among them), the
//! ramp steps, incidents and leaks as tables, and the pool over time as two curated panels
//! (connections, operations).
//!
//! Invariants: rendered from `connections` only; latency cells show `p50 / p99 ms`, never a
//! serialized summary; constant pool series go to the note of [`panels::render`].

use std::fmt::Write as _;

use super::charts::Extras;
use super::details::client_cost_rows;
use super::panels::{self, series, Panel};
use super::{esc, kv_rows};
use crate::report::model::{ClientCost, LatencySummary, RunDocument};
use crate::report::warnings::ClientThreads;

fn lat(l: &LatencySummary) -> String {
    if l.count == 0 {
        return "&ndash;".into();
    }
    format!("{:.2} / {:.2}", l.p50_ms, l.p99_ms)
}

fn errors(e: &std::collections::BTreeMap<String, u64>) -> String {
    if e.is_empty() {
        return "0".into();
    }
    esc(&e
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", "))
}

/// pgstorm's own cost in the scenario as table rows: its CPU per operation, its memory, and its
/// workers' wait for a CPU when the kernel counted it.
fn client_rows(cl: &ClientCost) -> String {
    let mut s = String::new();
    kv_rows(
        &mut s,
        client_cost_rows(cl, "operation", ClientThreads::ConnectionWorkers),
    );
    s
}

/// The section, or None without the connections scenario.
pub fn section(doc: &RunDocument) -> Option<String> {
    let c = doc.connections.as_ref()?;
    let cfg = &c.config;
    let mut s = format!(
        "<h2>Connections</h2>\n<p class=\"meta\">{} mode, steps {:?}, {} workers, connect rate {}</p>\n\
         <table><tr><th>figure</th><th>value</th></tr>\
         <tr><td>operations that succeeded</td><td>{:.2} % of {}</td></tr>\
         <tr><td>failed operations</td><td>{}</td></tr>\
         <tr><td>connections opened / failed / discarded</td><td>{} / {} / {}</td></tr>\
         <tr><td>most open at once</td><td>{}</td></tr>\
         <tr><td>connect time p50 / p99 (ms)</td><td>{}</td></tr>\
         <tr><td>leaks / checkout timeouts</td><td>{} / {}</td></tr>{}</table>\n",
        esc(&cfg.mode),
        cfg.steps,
        cfg.workers,
        cfg.connect_rate.map_or("unpaced".into(), |r| format!("{r:.0}/s")),
        c.connection_success_rate * 100.0,
        c.operations,
        errors(&c.errors),
        c.connections_opened,
        c.connect_failures,
        c.connections_discarded,
        c.peak_open,
        lat(&c.connect),
        c.leaks,
        c.checkout_timeouts,
        client_rows(&c.client)
    );
    if !c.steps.is_empty() {
        s.push_str("<table><tr><th>step (pool size)</th><th>time to reach (s)</th><th>peak open</th><th>connect p50 / p99 ms</th><th>checkout wait p50 / p99 ms</th><th>query p50 / p99 ms</th><th>ops/s</th><th>errors</th></tr>\n");
        for st in &c.steps {
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td></tr>",
                st.target,
                st.time_to_reach_s.map_or("never".into(), |t| format!("{t:.2}")),
                st.peak_open,
                lat(&st.connect),
                lat(&st.checkout_wait),
                lat(&st.query),
                st.ops_per_s,
                errors(&st.errors)
            );
        }
        s.push_str("</table>\n");
    }
    if !c.incidents.is_empty() {
        s.push_str("<table><tr><th>dropped at (s)</th><th>service back after (s)</th><th>pool back after (s)</th><th>failed ops</th><th>fewest open</th></tr>\n");
        for i in &c.incidents {
            let t = |v: Option<f64>| v.map_or("never".into(), |v| format!("{v:.2}"));
            let _ = writeln!(
                s,
                "<tr><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                i.dropped_at_s,
                t(i.recovery_s),
                t(i.pool_recovery_s),
                i.failed_operations,
                i.min_open
            );
        }
        s.push_str("</table>\n");
    }
    if !c.leak_details.is_empty() {
        s.push_str("<table><tr><th>leaked by worker</th><th>query</th><th>checked out at (s)</th><th>held (s)</th><th>still out at end</th></tr>\n");
        for l in &c.leak_details {
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td></tr>",
                l.worker,
                esc(&l.query),
                l.checked_out_at_s,
                l.held_s,
                if l.still_out_at_end { "yes" } else { "no" }
            );
        }
        s.push_str("</table>\n");
    }
    let p = &c.pool_timeseries;
    let n = |name: &str, f: fn(&crate::report::model::PoolPoint) -> f64| {
        series(name, p, |x| Some((x.t_s, f(x))))
    };
    s.push_str(&panels::render(
        vec![
            Panel {
                title: "Pool connections",
                y_label: "connections (count)",
                unit: "connections",
                series: vec![
                    n("target", |x| x.target as f64),
                    n("open", |x| x.open as f64),
                    n("checked out", |x| x.checked_out as f64),
                    n("idle", |x| x.idle as f64),
                    n("workers waiting", |x| x.waiters as f64),
                ],
                extras: Extras::default(),
            },
            Panel {
                title: "Pool operations per sample",
                y_label: "per sample (count)",
                unit: "per sample",
                series: vec![
                    n("succeeded", |x| x.ok as f64),
                    n("failed", |x| x.failed as f64),
                    n("connects", |x| x.connects as f64),
                    n("closed", |x| x.closed as f64),
                ],
                extras: Extras::default(),
            },
        ],
        "time since the load started (s)",
    ));
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_shows_pgstorms_cost_and_its_workers_wait_for_a_cpu() {
        // An archived connections run, given the figure it was written without.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("results/20261126T223202Z-quick-connections");
        let mut doc = crate::report::read::read_run(&dir).expect("the archived run reads");
        let without = section(&doc).expect("a connections section");
        assert!(without.contains("pgstorm&#39;s CPU</td><td>"), "{without}");
        assert!(without.contains("µs per operation"), "{without}");
        assert!(
            without.contains("pgstorm&#39;s peak memory</td><td>"),
            "{without}"
        );
        assert!(!without.contains("wait for a CPU"), "{without}");
        doc.connections
            .as_mut()
            .expect("connections")
            .client
            .run_queue = Some(crate::proc_stats::RunQueueWait {
            threads: 50,
            wait_s: 30.0,
            share: 0.6,
            max_thread_share: 0.7,
        });
        let with = section(&doc).expect("a connections section");
        assert!(
            with.contains("50 connection workers waited for a CPU 60.0% of their lifetime"),
            "{with}"
        );
    }
}
