//! Summaries of the host samples: mean / p95 / peak of each figure over the kept samples, and the
//! CPU and memory figures over the load window that the stability criteria judge.

use super::model::{HostSample, HostSummary, Stat, UnderLoad, Window};

pub(super) fn host_summary(s: &[HostSample]) -> HostSummary {
    let local = s.iter().any(|x| x.server_cpu_percent.is_some());
    HostSummary {
        cpu_percent: Stat::of(s.iter().map(|x| x.cpu_percent)),
        memory_percent: Stat::of(s.iter().map(|x| x.memory_percent)),
        swap_used_bytes: Stat::of(s.iter().map(|x| x.swap_used_bytes as f64)),
        load1: Stat::of(s.iter().map(|x| x.load[0])),
        disk_read_bytes_s: Stat::of(s.iter().map(|x| x.disk_read_bytes_s)),
        disk_write_bytes_s: Stat::of(s.iter().map(|x| x.disk_write_bytes_s)),
        net_rx_bytes_s: Stat::of(s.iter().map(|x| x.net_rx_bytes_s)),
        net_tx_bytes_s: Stat::of(s.iter().map(|x| x.net_tx_bytes_s)),
        client_cpu_percent: Stat::of(s.iter().map(|x| x.client_cpu_percent)),
        server_cpu_percent: local.then(|| Stat::of(s.iter().filter_map(|x| x.server_cpu_percent))),
        server_memory_bytes: local.then(|| {
            Stat::of(
                s.iter()
                    .filter_map(|x| x.server_memory_bytes.map(|b| b as f64)),
            )
        }),
    }
}

/// Host CPU and memory over the samples whose covered span lies mostly inside `w`.
pub fn under_load(samples: &[HostSample], w: Window, interval_s: f64) -> Option<UnderLoad> {
    let inside: Vec<&HostSample> = samples
        .iter()
        .filter(|s| {
            let mid = s.t_s - interval_s / 2.0;
            mid >= w.start_s && mid <= w.end_s
        })
        .collect();
    if inside.is_empty() {
        return None;
    }
    let cpu = Stat::of(inside.iter().map(|s| s.cpu_percent));
    let mem = Stat::of(inside.iter().map(|s| s.memory_percent));
    let server: Vec<f64> = inside.iter().filter_map(|s| s.server_cpu_percent).collect();
    Some(UnderLoad {
        samples: inside.len(),
        cpu_mean_percent: cpu.mean,
        cpu_p95_percent: cpu.p95,
        cpu_peak_percent: cpu.peak,
        memory_p95_percent: mem.p95,
        memory_peak_percent: mem.peak,
        client_cpu_mean_percent: Stat::of(inside.iter().map(|s| s.client_cpu_percent)).mean,
        server_cpu_mean_percent: (!server.is_empty()).then(|| Stat::of(server).mean),
        swap_pages: inside
            .iter()
            .map(|s| (s.swap_pages_s * interval_s).round() as u64)
            .sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_mean_p95_peak() {
        let s = Stat::of((1..=100).map(f64::from));
        assert_eq!((s.mean, s.p95, s.peak), (50.5, 95.0, 100.0));
        assert_eq!(Stat::of(std::iter::empty()), Stat::default());
    }
}
