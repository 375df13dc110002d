//! The server host's own figures, from the Prometheus node_exporter DBAs already run on it
//! (`--server-metrics URL`): CPU by mode, memory, load averages, disk and network rates.
//!
//! A scrape's text is parsed by `prometheus-parse` into a [`Reading`] of cumulative counters and
//! gauges; a sample is the difference of two readings. The [`NodeSampler`] keeps the last good
//! reading, so a failed scrape leaves a gap whose rates the next good one covers.
//!
//! Invariants: rates divide by the agent's own clock (`node_time_seconds`) when it exports it, else
//! by the time between the two answers here, so network jitter does not bend them; CPU shares
//! divide by the CPU seconds that passed (all modes), so they add up to 100 whatever the clock; a
//! counter that went backwards (the agent restarted) yields no sample, and the new reading is the
//! next baseline; a page without node_exporter's CPU and memory families is an error, never a
//! sample of zeros.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use prometheus_parse::{Scrape, Value};

use super::model::{DiskRates, NetRates, Phase, ServerHostSample};
use super::scrape::{MetricsUrl, Scraper};

/// Cumulative counters of one block device.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Disk {
    reads: f64,
    writes: f64,
    read_bytes: f64,
    written_bytes: f64,
    read_time_s: f64,
    write_time_s: f64,
    io_time_s: f64,
}

/// What one scrape said: cumulative counters and gauges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    time_s: Option<f64>,
    /// CPU seconds by mode, summed over CPUs.
    cpu_modes: BTreeMap<String, f64>,
    cpus: usize,
    mem_total: f64,
    mem_available: f64,
    load: Option<[f64; 3]>,
    disks: BTreeMap<String, Disk>,
    /// (received, sent) bytes by interface.
    net: BTreeMap<String, (f64, f64)>,
}

impl Reading {
    /// Reads node_exporter's text exposition format.
    pub fn parse(text: &str) -> Result<Reading, String> {
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .map_err(|e| format!("unreadable body: {e}"))?;
        let mut r = Reading::default();
        let mut cpus = std::collections::BTreeSet::new();
        let (mut total, mut available) = (None, None);
        let mut load = [None; 3];
        for s in &scrape.samples {
            let v = match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                Value::Histogram(_) | Value::Summary(_) => continue,
            };
            let label = |name: &str| s.labels.get(name).unwrap_or("").to_string();
            match s.metric.as_str() {
                "node_time_seconds" => r.time_s = Some(v),
                "node_cpu_seconds_total" => {
                    cpus.insert(label("cpu"));
                    *r.cpu_modes.entry(label("mode")).or_default() += v;
                }
                "node_memory_MemTotal_bytes" => total = Some(v),
                "node_memory_MemAvailable_bytes" => available = Some(v),
                "node_load1" => load[0] = Some(v),
                "node_load5" => load[1] = Some(v),
                "node_load15" => load[2] = Some(v),
                "node_network_receive_bytes_total" if label("device") != "lo" => {
                    r.net.entry(label("device")).or_default().0 = v
                }
                "node_network_transmit_bytes_total" if label("device") != "lo" => {
                    r.net.entry(label("device")).or_default().1 = v
                }
                name => {
                    let field: fn(&mut Disk) -> &mut f64 = match name {
                        "node_disk_reads_completed_total" => |d| &mut d.reads,
                        "node_disk_writes_completed_total" => |d| &mut d.writes,
                        "node_disk_read_bytes_total" => |d| &mut d.read_bytes,
                        "node_disk_written_bytes_total" => |d| &mut d.written_bytes,
                        "node_disk_read_time_seconds_total" => |d| &mut d.read_time_s,
                        "node_disk_write_time_seconds_total" => |d| &mut d.write_time_s,
                        "node_disk_io_time_seconds_total" => |d| &mut d.io_time_s,
                        _ => continue,
                    };
                    *field(r.disks.entry(label("device")).or_default()) = v;
                }
            }
        }
        let missing = |what: &str| {
            format!(
                "the page has no {what}: is this node_exporter's /metrics, with its cpu and \
                 meminfo collectors on?"
            )
        };
        if r.cpu_modes.is_empty() {
            return Err(missing("node_cpu_seconds_total"));
        }
        r.cpus = cpus.len();
        r.mem_total = total.ok_or_else(|| missing("node_memory_MemTotal_bytes"))?;
        r.mem_available = available.ok_or_else(|| missing("node_memory_MemAvailable_bytes"))?;
        r.load = match load {
            [Some(a), Some(b), Some(c)] => Some([a, b, c]),
            _ => None,
        };
        Ok(r)
    }

    /// Logical CPUs.
    pub fn cpus(&self) -> usize {
        self.cpus
    }

    /// MemTotal (bytes).
    pub fn memory_bytes(&self) -> u64 {
        self.mem_total as u64
    }

    /// The sample covering `prev` → `self`; `local_dt` is the time between the two answers here,
    /// used when the agent exports no clock. `None` when a counter went backwards.
    pub fn since(
        &self,
        prev: &Reading,
        local_dt: f64,
        t_s: f64,
        tick: u64,
    ) -> Option<ServerHostSample> {
        let dt = match (prev.time_s, self.time_s) {
            (Some(a), Some(b)) if b > a => b - a,
            _ => local_dt,
        }
        .max(1e-3);
        let delta = |a: f64, b: f64| (b >= a).then_some(b - a);
        let mut modes = BTreeMap::new();
        for (mode, now) in &self.cpu_modes {
            modes.insert(mode.clone(), delta(*prev.cpu_modes.get(mode)?, *now)?);
        }
        let cpu_total: f64 = modes.values().sum();
        if cpu_total <= 0.0 {
            return None;
        }
        let share = |secs: f64| secs * 100.0 / cpu_total;
        let idle =
            modes.get("idle").copied().unwrap_or(0.0) + modes.get("iowait").copied().unwrap_or(0.0);
        let mut disks = Vec::new();
        for (device, d) in &self.disks {
            let Some(p) = prev.disks.get(device) else {
                continue;
            };
            let reads = delta(p.reads, d.reads)?;
            let writes = delta(p.writes, d.writes)?;
            let ops = reads + writes;
            let wait =
                delta(p.read_time_s, d.read_time_s)? + delta(p.write_time_s, d.write_time_s)?;
            disks.push(DiskRates {
                device: device.clone(),
                counted: super::procfs::counts_as_disk(device),
                reads_s: reads / dt,
                writes_s: writes / dt,
                read_bytes_s: delta(p.read_bytes, d.read_bytes)? / dt,
                write_bytes_s: delta(p.written_bytes, d.written_bytes)? / dt,
                await_ms: (ops > 0.0).then(|| wait * 1000.0 / ops),
                util_percent: (delta(p.io_time_s, d.io_time_s)? * 100.0 / dt).min(100.0),
            });
        }
        let mut net = Vec::new();
        for (device, (rx, tx)) in &self.net {
            let Some((prx, ptx)) = prev.net.get(device) else {
                continue;
            };
            net.push(NetRates {
                device: device.clone(),
                rx_bytes_s: delta(*prx, *rx)? / dt,
                tx_bytes_s: delta(*ptx, *tx)? / dt,
            });
        }
        let used = (self.mem_total - self.mem_available).max(0.0);
        Some(ServerHostSample {
            t_s,
            tick,
            // Known once the load has ended (`Monitor::stop`).
            phase: Phase::Load,
            cpu_percent: share(cpu_total - idle),
            cpu_modes: modes.into_iter().map(|(m, s)| (m, share(s))).collect(),
            memory_used_bytes: used as u64,
            memory_available_bytes: self.mem_available as u64,
            memory_percent: if self.mem_total > 0.0 {
                used * 100.0 / self.mem_total
            } else {
                0.0
            },
            load: self.load,
            disks,
            net,
        })
    }
}

/// Scrapes node_exporter and turns consecutive good readings into samples.
pub struct NodeSampler {
    scraper: Scraper,
    prev: Option<(Instant, Reading)>,
}

/// What one scrape gave.
pub enum Scraped {
    /// A sample (rates since the previous good reading).
    Sample(ServerHostSample),
    /// A baseline only: the first good reading, or the first after a counter reset.
    Baseline,
}

impl NodeSampler {
    /// A sampler of `url` whose scrapes give up after `timeout` (keep it below the interval).
    pub fn new(url: MetricsUrl, timeout: Duration) -> NodeSampler {
        NodeSampler {
            scraper: Scraper::new(url, timeout),
            prev: None,
        }
    }

    /// The URL scraped.
    pub fn url(&self) -> &MetricsUrl {
        self.scraper.url()
    }

    /// The last good reading.
    pub fn last(&self) -> Option<&Reading> {
        self.prev.as_ref().map(|(_, r)| r)
    }

    /// Scrapes once; the sample is stamped with `tick` and the seconds since `epoch` at which
    /// the answer came.
    pub fn sample(&mut self, epoch: Instant, tick: u64) -> Result<Scraped, String> {
        let reading = Reading::parse(&self.scraper.get()?)?;
        let now = Instant::now();
        let t_s = now.duration_since(epoch).as_secs_f64();
        let out = match &self.prev {
            Some((at, prev)) => reading
                .since(prev, now.duration_since(*at).as_secs_f64(), t_s, tick)
                .map_or(Scraped::Baseline, Scraped::Sample),
            None => Scraped::Baseline,
        };
        self.prev = Some((now, reading));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: &str = include_str!("../../tests/corpus/node_exporter/first.prom");
    const SECOND: &str = include_str!("../../tests/corpus/node_exporter/second.prom");

    #[test]
    fn a_recorded_page_parses_into_cpu_memory_load_disks_and_network() {
        let r = Reading::parse(FIRST).unwrap();
        assert_eq!(r.cpus(), 2);
        assert_eq!(r.memory_bytes(), 25_276_502_016);
        assert_eq!(r.load, Some([6.53, 3.4, 3.29]));
        assert_eq!(r.cpu_modes.len(), 8, "{:?}", r.cpu_modes);
        assert!((r.cpu_modes["user"] - (6603.2 + 6608.81)).abs() < 1e-6);
        assert_eq!(r.disks.keys().collect::<Vec<_>>(), ["vda", "zram0"]);
        assert_eq!(r.disks["vda"].reads, 1_375_356.0);
        assert_eq!(r.net.keys().collect::<Vec<_>>(), ["eth0", "ifb0", "ifb1"]);
        assert!(r.time_s.is_some());
    }

    #[test]
    fn two_recorded_pages_give_shares_that_add_up_and_plausible_rates() {
        let (a, b) = (
            Reading::parse(FIRST).unwrap(),
            Reading::parse(SECOND).unwrap(),
        );
        // A local time far from the agent's clock: the agent's clock must win.
        let s = b.since(&a, 100.0, 1.0, 1).unwrap();
        let sum: f64 = s.cpu_modes.values().sum();
        assert!((sum - 100.0).abs() < 1e-9, "{:?}", s.cpu_modes);
        let idle = s.cpu_modes["idle"] + s.cpu_modes["iowait"];
        assert!((s.cpu_percent - (100.0 - idle)).abs() < 1e-9);
        assert!((0.0..=100.0).contains(&s.memory_percent));
        let vda = s.disks.iter().find(|d| d.device == "vda").unwrap();
        assert!(
            vda.counted && vda.writes_s > 0.0 && vda.await_ms.unwrap() > 0.0,
            "{vda:?}"
        );
        assert!(
            !s.disks
                .iter()
                .find(|d| d.device == "zram0")
                .unwrap()
                .counted
        );
        // The agent's clock moved ~1.1 s: 100 s would make every rate ~90 times smaller.
        let dt = b.time_s.unwrap() - a.time_s.unwrap();
        let writes = b.disks["vda"].writes - a.disks["vda"].writes;
        assert!((vda.writes_s - writes / dt).abs() < 1e-9);
    }

    #[test]
    fn a_counter_that_went_backwards_gives_no_sample() {
        let (a, b) = (
            Reading::parse(FIRST).unwrap(),
            Reading::parse(SECOND).unwrap(),
        );
        assert!(a.since(&b, 1.0, 1.0, 1).is_none());
        assert!(b.since(&a, 1.0, 1.0, 1).is_some());
    }

    #[test]
    fn a_page_that_is_not_node_exporter_is_an_error_naming_what_is_missing() {
        let e = Reading::parse("# HELP up whatever\nup 1\n").unwrap_err();
        assert!(e.contains("node_cpu_seconds_total"), "{e}");
        let no_memory: String = FIRST
            .lines()
            .filter(|l| !l.contains("MemAvailable"))
            .map(|l| format!("{l}\n"))
            .collect();
        let e = Reading::parse(&no_memory).unwrap_err();
        assert!(e.contains("MemAvailable"), "{e}");
        assert!(Reading::parse("<html>404 page not found</html>").is_err());
    }
}
