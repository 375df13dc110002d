//! Host sampler: CPU (total and per core), memory, swap, load average, disk and network rates,
//! pgstorm's own CPU, and the CPU and memory of a local PostgreSQL's processes.
//!
//! sysinfo gives CPU and memory; `/proc` (see [`procfs`]) gives disk, network, swap activity and
//! the PostgreSQL process tree, each from one file read where sysinfo would read many.
//!
//! Invariants: sysinfo's `System` is built with only CPU usage and RAM/swap refresh kinds and
//! refreshed with exactly those (never `refresh_all`, which costs milliseconds); two samples are
//! at least [`MIN_INTERVAL`] apart because sysinfo's CPU usage is meaningless over shorter spans;
//! every rate divides by the time actually elapsed since the previous sample.

use std::time::{Duration, Instant};

use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

use super::model::{HostSample, Phase};
use super::procfs;

/// Shortest span sysinfo's CPU usage is meaningful over.
pub const MIN_INTERVAL: Duration = Duration::from_millis(200);

/// Cumulative counters read at one sample, to take deltas from.
#[derive(Clone, Copy)]
struct Counters {
    at: Instant,
    own_cpu: Duration,
    disk: Option<(u64, u64)>,
    net: Option<(u64, u64, u64)>,
    swap: Option<(u64, u64)>,
    server: Option<procfs::TreeUsage>,
}

/// Takes host samples; owns the sysinfo state between them.
pub struct HostSampler {
    sys: System,
    cpus: usize,
    clock_ticks: f64,
    postmaster: Option<u32>,
    prev: Counters,
}

fn cpu_kinds() -> RefreshKind {
    RefreshKind::nothing()
        .with_cpu(CpuRefreshKind::nothing().with_cpu_usage())
        .with_memory(MemoryRefreshKind::nothing().with_ram().with_swap())
}

impl HostSampler {
    /// A sampler; `postmaster` is the PID of a PostgreSQL on this host whose processes to measure.
    /// The first sample should come at least [`MIN_INTERVAL`] later.
    pub fn new(postmaster: Option<u32>) -> HostSampler {
        let sys = System::new_with_specifics(cpu_kinds());
        let cpus = sys.cpus().len().max(1);
        HostSampler {
            sys,
            cpus,
            clock_ticks: procfs::clock_ticks(),
            postmaster,
            prev: Self::counters(postmaster),
        }
    }

    fn counters(postmaster: Option<u32>) -> Counters {
        let (u, s) = crate::proc_stats::cpu_time();
        Counters {
            at: Instant::now(),
            own_cpu: u + s,
            disk: procfs::disk_bytes(),
            net: procfs::net_bytes(),
            swap: procfs::swap_pages(),
            server: postmaster.and_then(procfs::tree_usage),
        }
    }

    /// Logical CPUs of the host.
    pub fn cpus(&self) -> usize {
        self.cpus
    }

    /// Whether the measured PostgreSQL is still running.
    pub fn server_alive(&self) -> bool {
        self.prev.server.is_some()
    }

    /// Samples the span since the previous call (or since `new`).
    pub fn sample(&mut self, t_s: f64, tick: u64) -> HostSample {
        self.sys.refresh_specifics(cpu_kinds());
        let now = Self::counters(self.postmaster);
        let dt = now
            .at
            .saturating_duration_since(self.prev.at)
            .as_secs_f64()
            .max(1e-3);
        let rate = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => b.saturating_sub(a) as f64 / dt,
            _ => 0.0,
        };
        let total = self.sys.total_memory();
        let available = self.sys.available_memory();
        let used = total.saturating_sub(available);
        let host_capacity_s = dt * self.cpus as f64;
        let server = match (self.prev.server, now.server) {
            (Some(a), Some(b)) => Some((a, b)),
            _ => None,
        };
        let load = System::load_average();
        let sample = HostSample {
            t_s,
            tick,
            // Known once the load has ended (`Monitor::stop`).
            phase: Phase::Load,
            cpu_percent: f64::from(self.sys.global_cpu_usage()),
            per_core: self
                .sys
                .cpus()
                .iter()
                .map(|c| f64::from(c.cpu_usage()))
                .collect(),
            memory_used_bytes: used,
            memory_available_bytes: available,
            memory_percent: if total > 0 {
                used as f64 * 100.0 / total as f64
            } else {
                0.0
            },
            swap_used_bytes: self.sys.used_swap(),
            swap_pages_s: rate(
                self.prev.swap.map(|s| s.0 + s.1),
                now.swap.map(|s| s.0 + s.1),
            ),
            load: [load.one, load.five, load.fifteen],
            disk_read_bytes_s: rate(self.prev.disk.map(|d| d.0), now.disk.map(|d| d.0)),
            disk_write_bytes_s: rate(self.prev.disk.map(|d| d.1), now.disk.map(|d| d.1)),
            net_rx_bytes_s: rate(self.prev.net.map(|n| n.0), now.net.map(|n| n.0)),
            net_tx_bytes_s: rate(self.prev.net.map(|n| n.1), now.net.map(|n| n.1)),
            loopback_bytes_s: rate(self.prev.net.map(|n| n.2), now.net.map(|n| n.2)),
            client_cpu_percent: (now.own_cpu.saturating_sub(self.prev.own_cpu).as_secs_f64()
                / host_capacity_s
                * 100.0)
                .min(100.0),
            server_cpu_percent: server.map(|(a, b)| {
                (b.cpu_ticks.saturating_sub(a.cpu_ticks) as f64
                    / self.clock_ticks
                    / host_capacity_s
                    * 100.0)
                    .min(100.0)
            }),
            server_memory_bytes: now.server.map(|u| u.memory_bytes),
            server_processes: now.server.map(|u| u.processes),
        };
        self.prev = now;
        sample
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_plausible_and_sees_own_cpu() {
        let mut s = HostSampler::new(Some(std::process::id()));
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(250) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let h = s.sample(0.25, 1);
        assert_eq!(h.per_core.len(), s.cpus());
        assert!((0.0..=100.0).contains(&h.cpu_percent), "{}", h.cpu_percent);
        assert!(h.memory_used_bytes > 0 && h.memory_percent > 0.0 && h.memory_percent <= 100.0);
        // The machine may be busy, so only "it saw our spinning" is certain, both through
        // getrusage (client) and through /proc (our own process standing in for the server).
        assert!(h.client_cpu_percent > 0.0, "{h:?}");
        assert!(h.server_cpu_percent.unwrap() > 0.0, "{h:?}");
        assert!(h.server_memory_bytes.unwrap() > 0);
    }
}
