//! The resources section of report.html: the monitor's samples as a few curated panels in human
//! units (CPU stacked by owner, memory in MiB, disk and network in MiB/s, the server's commit rate
//! with checkpoints and WAL rate overlaid, locks / deadlocks / temp files), the under-load summary,
//! alerts and sampler errors.
//!
//! Invariants: rendered from `monitoring` only; every value is converted to the unit its axis
//! names; constant series are left to the note of [`panels::render`].

use std::fmt::Write as _;

use super::charts::{Extras, Series};
use super::esc;
use super::panels::{self, human, series, Panel, MIB};
use crate::monitor::model::{HostSample, Monitoring, ServerHostSample, ServerSample};
use crate::report::model::RunDocument;

const X_LABEL: &str = "time since monitoring started (s)";

/// The section, or None without monitoring.
pub fn section(doc: &RunDocument) -> Option<String> {
    let m = doc.monitoring.as_ref()?;
    let mut s = String::from("<h2>Resources</h2>\n");
    if let Some(w) = &m.load_window {
        let _ = writeln!(
            s,
            "<p class=\"meta\">sampled every {} s; the measured load ran from {:.0} s to {:.0} s</p>",
            human(m.interval_s),
            w.start_s,
            w.end_s
        );
    }
    under_load(m, &mut s);
    let mut all: Vec<Panel> = Vec::new();
    if let Some(h) = &m.host {
        all.extend(host_panels(&h.samples));
    }
    if let Some(sv) = &m.server {
        all.extend(server_panels(&sv.samples));
    }
    if let Some(sh) = &m.server_host {
        all.extend(server_host_panels(&sh.samples));
    }
    s.push_str(&panels::render(all, X_LABEL));
    alerts(m, &mut s);
    Some(s)
}

fn under_load(m: &Monitoring, s: &mut String) {
    let Some(u) = &m.under_load else { return };
    let _ = write!(
        s,
        "<table><tr><th>under load ({} samples)</th><th>value</th></tr>\
         <tr><td>host CPU mean / p95 / peak</td><td>{:.0} / {:.0} / {:.0} %</td></tr>\
         <tr><td>pgstorm's own CPU, mean</td><td>{:.0} %</td></tr>",
        u.samples,
        u.cpu_mean_percent,
        u.cpu_p95_percent,
        u.cpu_peak_percent,
        u.client_cpu_mean_percent
    );
    if let Some(v) = u.server_cpu_mean_percent {
        let _ = write!(s, "<tr><td>PostgreSQL CPU, mean</td><td>{v:.0} %</td></tr>");
    }
    let _ = writeln!(
        s,
        "<tr><td>memory p95 / peak</td><td>{:.1} / {:.1} %</td></tr>\
         <tr><td>pages swapped</td><td>{}</td></tr></table>",
        u.memory_p95_percent, u.memory_peak_percent, u.swap_pages
    );
}

fn host_panels(h: &[HostSample]) -> Vec<Panel<'static>> {
    let mib =
        |name: &str, f: fn(&HostSample) -> f64| series(name, h, |x| Some((x.t_s, f(x) / MIB)));
    let has_server = h.iter().any(|x| x.server_cpu_percent.is_some());
    let mut cpu = vec![series("pgstorm", h, |x| {
        Some((x.t_s, x.client_cpu_percent))
    })];
    if has_server {
        cpu.push(series("PostgreSQL", h, |x| {
            Some((x.t_s, x.server_cpu_percent.unwrap_or(0.0)))
        }));
    }
    cpu.push(series("other", h, |x| {
        let own = x.client_cpu_percent + x.server_cpu_percent.unwrap_or(0.0);
        Some((x.t_s, (x.cpu_percent - own).max(0.0)))
    }));
    let mut memory = vec![
        mib("host used", |x| x.memory_used_bytes as f64),
        mib("swap used", |x| x.swap_used_bytes as f64),
    ];
    if h.iter().any(|x| x.server_memory_bytes.is_some()) {
        memory.push(series("PostgreSQL", h, |x| {
            x.server_memory_bytes.map(|b| (x.t_s, b as f64 / MIB))
        }));
    }
    vec![
        Panel {
            title: "CPU of the load host, by owner",
            y_label: "CPU (% of host)",
            unit: "%",
            series: cpu,
            extras: Extras {
                stacked: true,
                ..Extras::default()
            },
        },
        Panel {
            title: "Memory of the load host",
            y_label: "memory (MiB)",
            unit: "MiB",
            series: memory,
            extras: Extras::default(),
        },
        Panel {
            title: "Disk of the load host",
            y_label: "disk (MiB/s)",
            unit: "MiB/s",
            series: vec![
                mib("disk read", |x| x.disk_read_bytes_s),
                mib("disk write", |x| x.disk_write_bytes_s),
            ],
            extras: Extras::default(),
        },
        Panel {
            title: "Network of the load host",
            y_label: "network (MiB/s)",
            unit: "MiB/s",
            series: vec![
                mib("network received", |x| x.net_rx_bytes_s),
                mib("network sent", |x| x.net_tx_bytes_s),
                mib("loopback", |x| x.loopback_bytes_s),
            ],
            extras: Extras::default(),
        },
    ]
}

fn server_panels(sv: &[ServerSample]) -> Vec<Panel<'static>> {
    let count =
        |name: &str, f: fn(&ServerSample) -> i64| series(name, sv, |x| Some((x.t_s, f(x) as f64)));
    let checkpoints: Vec<f64> = sv
        .iter()
        .filter(|x| x.checkpoints > 0)
        .map(|x| x.t_s)
        .collect();
    let wal = series("WAL written", sv, |x| {
        x.wal_bytes_s.map(|b| (x.t_s, b / MIB))
    });
    vec![
        Panel {
            title: "Server throughput, checkpoints and WAL",
            y_label: "server commits (tx/s)",
            unit: "tx/s",
            series: vec![
                series("commits/s", sv, |x| Some((x.t_s, x.tps))),
                series("rollbacks/s", sv, |x| Some((x.t_s, x.rollbacks_s))),
            ],
            extras: Extras {
                secondary: Some(("WAL (MiB/s)", wal)),
                markers: Some(("checkpoint", checkpoints)),
                ..Extras::default()
            },
        },
        Panel {
            title: "Locks, deadlocks and temp files",
            y_label: "per sample (count)",
            unit: "per sample",
            series: vec![
                count("waiting for a lock", |x| x.waiting_locks),
                count("blocked backends", |x| x.blocked_backends),
                count("deadlocks", |x| x.deadlocks),
                count("temp files", |x| x.temp_files),
            ],
            extras: Extras::default(),
        },
    ]
}

fn server_host_panels(sh: &[ServerHostSample]) -> Vec<Panel<'static>> {
    let disk = |name: &str, f: fn(&crate::monitor::model::DiskRates) -> f64| -> Series {
        series(name, sh, |x| {
            Some((
                x.t_s,
                x.disks.iter().filter(|d| d.counted).map(f).sum::<f64>() / MIB,
            ))
        })
    };
    let iowait = series("iowait", sh, |x| {
        Some((x.t_s, x.cpu_modes.get("iowait").copied().unwrap_or(0.0)))
    });
    vec![
        Panel {
            title: "CPU of the database host",
            y_label: "CPU (% of host)",
            unit: "%",
            series: vec![series("busy", sh, |x| Some((x.t_s, x.cpu_percent))), iowait],
            extras: Extras {
                stacked: true,
                ..Extras::default()
            },
        },
        Panel {
            title: "Memory of the database host",
            y_label: "memory (MiB)",
            unit: "MiB",
            series: vec![series("used", sh, |x| {
                Some((x.t_s, x.memory_used_bytes as f64 / MIB))
            })],
            extras: Extras::default(),
        },
        Panel {
            title: "Disk of the database host",
            y_label: "disk (MiB/s)",
            unit: "MiB/s",
            series: vec![
                disk("db disk read", |d| d.read_bytes_s),
                disk("db disk write", |d| d.write_bytes_s),
            ],
            extras: Extras::default(),
        },
        Panel {
            title: "Network of the database host",
            y_label: "network (MiB/s)",
            unit: "MiB/s",
            series: vec![
                series("db network received", sh, |x| {
                    Some((x.t_s, x.net.iter().map(|n| n.rx_bytes_s).sum::<f64>() / MIB))
                }),
                series("db network sent", sh, |x| {
                    Some((x.t_s, x.net.iter().map(|n| n.tx_bytes_s).sum::<f64>() / MIB))
                }),
            ],
            extras: Extras::default(),
        },
    ]
}

fn alerts(m: &Monitoring, s: &mut String) {
    if !m.alerts.is_empty() {
        s.push_str(
            "<h3>Alerts</h3>\n<table><tr><th>at (s)</th><th>metric</th><th>state</th><th>value</th><th>threshold</th></tr>\n",
        );
        for a in &m.alerts {
            let _ = writeln!(
                s,
                "<tr><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                a.t_s,
                esc(&a.metric),
                esc(&a.state),
                human(a.value),
                human(a.threshold)
            );
        }
        s.push_str("</table>\n");
    }
    for e in &m.errors {
        let _ = writeln!(s, "<div class=\"warn\">sampler: {}</div>", esc(e));
    }
}
