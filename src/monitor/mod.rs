//! What the load machine and the server were doing: static host facts ([`host`]), and the
//! [`Monitor`]: a host sampler, a server sampler and (with `--server-metrics`) a sampler of the
//! server host's node_exporter, each on its own thread, sampling on a shared tick grid into
//! bounded histories, with threshold alerts.
//!
//! Invariants: the samplers never touch the engine's pool or hot path (the server sampler has its
//! own connection, the node_exporter sampler its own HTTP connection and a timeout below the
//! interval); they run on the core the engine leaves free when workers are pinned
//! ([`crate::engine::monitor_core`]); a failing sampler records an error in the result instead of
//! failing the run (a failing scrape is announced once and counted, and scraping goes on); `stop` takes a last sample, so counters cover the load up to the moment the
//! caller chose (after the pool's backends exited and flushed their statistics), and marks each
//! sample's phase against the load window: only `load` samples feed summaries, peaks and alerts.

pub mod alerts;
pub mod history;
pub mod host;
pub mod host_sampler;
pub mod local;
pub mod model;
pub mod node_exporter;
pub mod procfs;
pub mod scrape;
pub mod server;
pub mod summary;

use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use history::{Cost, Ring};
pub use local::{local_postmaster, LocalServer};
use model::{
    HostSample, HostSeries, HostSummary, Monitoring, ServerHostSample, ServerHostSeries,
    ServerSample, ServerSeries, ServerSummary, Thresholds, Window,
};
use node_exporter::{NodeSampler, Scraped};
pub use scrape::MetricsUrl;
pub use summary::under_load;
use summary::{host_summary, load_alerts, mark_phases, server_host_summary, server_summary};

/// Default number of samples kept per sampler.
pub const DEFAULT_CAPACITY: usize = 1000;

/// How to monitor.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// Time between samples (at least [`host_sampler::MIN_INTERVAL`]).
    pub interval: Duration,
    /// Samples kept per sampler; the oldest are dropped first.
    pub capacity: usize,
    /// Alert thresholds.
    pub thresholds: Thresholds,
    /// Core to pin the sampler threads to (the one the workers leave free).
    pub core: Option<core_affinity::CoreId>,
    /// Print alerts, and the first failed scrape of `server_metrics`, to stderr as they happen.
    pub announce: bool,
    /// The server host's node_exporter to scrape every tick (`--server-metrics`).
    pub server_metrics: Option<MetricsUrl>,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            interval: Duration::from_secs(1),
            capacity: DEFAULT_CAPACITY,
            thresholds: Thresholds::default(),
            core: None,
            announce: false,
            server_metrics: None,
        }
    }
}

struct HostOutcome {
    ring: Ring<HostSample>,
    cost: Cost,
}

struct AgentOutcome {
    ring: Ring<ServerHostSample>,
    cost: Cost,
    scrapes: u64,
    failed: u64,
    first_error: Option<String>,
    cpus: usize,
    memory_bytes: u64,
}

struct ServerOutcome {
    ring: Ring<ServerSample>,
    cost: Cost,
    version: i32,
    view: &'static str,
    totals: model::ServerTotals,
    error: Option<String>,
}

/// Sleeps until tick `k` of the grid, or returns false when told to stop.
fn wait_tick(stop: &Receiver<()>, epoch: Instant, interval: Duration, k: u64) -> bool {
    let at = epoch + interval * k as u32;
    match stop.recv_timeout(at.saturating_duration_since(Instant::now())) {
        Err(RecvTimeoutError::Timeout) => true,
        Ok(()) | Err(RecvTimeoutError::Disconnected) => false,
    }
}

/// The tick after `k`, skipping ticks already past (a slow sample or a stalled server), so two
/// samples are never taken back to back to catch up.
fn next_tick(epoch: Instant, interval: Duration, k: u64) -> u64 {
    let elapsed = (epoch.elapsed().as_secs_f64() / interval.as_secs_f64()) as u64;
    (k + 1).max(elapsed + 1)
}

fn pin(core: Option<core_affinity::CoreId>) {
    if let Some(c) = core {
        core_affinity::set_for_current(c);
    }
}

/// Running samplers; [`Monitor::stop`] ends them and returns the document section.
pub struct Monitor {
    cfg: MonitorConfig,
    epoch: Instant,
    epoch_wall: chrono::DateTime<chrono::Utc>,
    local: Option<LocalServer>,
    stop: Vec<Sender<()>>,
    host: Option<JoinHandle<HostOutcome>>,
    server: Option<JoinHandle<ServerOutcome>>,
    agent: Option<(String, JoinHandle<AgentOutcome>)>,
    errors: Vec<String>,
}

impl Monitor {
    /// Starts the host sampler and, with `server`, the server sampler on its own connection.
    /// `local` is the PostgreSQL on this host whose processes the host sampler measures.
    pub fn start(
        cfg: MonitorConfig,
        server: Option<&crate::target::Target>,
        local: Option<LocalServer>,
    ) -> Monitor {
        let cfg = MonitorConfig {
            interval: cfg.interval.max(host_sampler::MIN_INTERVAL),
            ..cfg
        };
        let epoch = Instant::now();
        let epoch_wall = chrono::Utc::now();
        let mut m = Monitor {
            cfg: cfg.clone(),
            epoch,
            epoch_wall,
            local,
            stop: Vec::new(),
            host: None,
            server: None,
            agent: None,
            errors: Vec::new(),
        };

        let (tx, rx) = crossbeam_channel::bounded(1);
        let c = cfg.clone();
        let spawned = std::thread::Builder::new()
            .name("pgstorm-host-sampler".into())
            .spawn(move || {
                pin(c.core);
                let mut sampler = host_sampler::HostSampler::new(local.map(|l| l.pid));
                let mut out = HostOutcome {
                    ring: Ring::new(c.capacity),
                    cost: Cost::default(),
                };
                // Announced as they happen; the document's alerts are re-derived at `stop` from
                // the load's samples alone.
                let mut alerts = alerts::Alerts::default();
                let mut last = Instant::now();
                let mut k = 1u64;
                loop {
                    let go_on = wait_tick(&rx, epoch, c.interval, k);
                    if !go_on && last.elapsed() < host_sampler::MIN_INTERVAL {
                        break;
                    }
                    let t0 = Instant::now();
                    let cost = Cost::start();
                    let s = sampler.sample(t0.duration_since(epoch).as_secs_f64(), k);
                    out.cost.add(&cost);
                    last = t0;
                    if c.announce {
                        for e in alerts.observe(&s, &c.thresholds, epoch_wall) {
                            eprintln!(
                                "pgstorm: alert {} {} at t={:.1}s: {:.1}% (threshold {:.0}%)",
                                e.metric, e.state, e.t_s, e.value, e.threshold
                            );
                        }
                    }
                    out.ring.push(s);
                    if !go_on {
                        break;
                    }
                    k = next_tick(epoch, c.interval, k);
                }
                out
            });
        match spawned {
            Ok(h) => {
                m.host = Some(h);
                m.stop.push(tx);
            }
            Err(e) => m
                .errors
                .push(format!("cannot start the host sampler thread: {e}")),
        }

        if let Some(url) = cfg.server_metrics.clone() {
            m.start_agent(url);
        }
        if let Some(target) = server {
            match server::ServerSampler::connect(target) {
                Ok(sampler) => m.start_server(sampler),
                Err(e) => m.errors.push(format!(
                    "server sampler: cannot connect: {}",
                    crate::target::one_line(&e)
                )),
            }
        }
        m
    }

    fn start_server(&mut self, mut sampler: server::ServerSampler) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let (epoch, c) = (self.epoch, self.cfg.clone());
        let spawned = std::thread::Builder::new()
            .name("pgstorm-server-sampler".into())
            .spawn(move || {
                pin(c.core);
                let mut out = ServerOutcome {
                    ring: Ring::new(c.capacity),
                    cost: Cost::default(),
                    version: sampler.server_version_num,
                    view: sampler.checkpoint_view,
                    totals: model::ServerTotals::default(),
                    error: None,
                };
                let mut k = 0u64;
                loop {
                    let go_on = k == 0 || wait_tick(&rx, epoch, c.interval, k);
                    let t0 = Instant::now();
                    let cost = Cost::start();
                    match sampler.sample(t0.duration_since(epoch).as_secs_f64(), k) {
                        Ok(s) => {
                            out.cost.add(&cost);
                            if let Some(s) = s {
                                out.ring.push(s);
                            }
                        }
                        Err(e) => {
                            out.error = Some(format!(
                                "server sampler stopped at t={:.1}s: {}",
                                t0.duration_since(epoch).as_secs_f64(),
                                crate::target::one_line(&e)
                            ));
                            break;
                        }
                    }
                    if !go_on {
                        break;
                    }
                    k = next_tick(epoch, c.interval, k);
                }
                out.totals = sampler.totals();
                out
            });
        match spawned {
            Ok(h) => {
                self.server = Some(h);
                self.stop.push(tx);
            }
            Err(e) => self
                .errors
                .push(format!("cannot start the server sampler thread: {e}")),
        }
    }

    /// Scrapes `url` on the tick grid; the first good scrape (at tick 0) is the baseline. A
    /// failed scrape is counted, the first one announced, and the next tick tries again.
    fn start_agent(&mut self, url: MetricsUrl) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let (epoch, c) = (self.epoch, self.cfg.clone());
        // A scrape that outlived the interval would push the next one off the grid.
        let mut sampler = NodeSampler::new(url, c.interval.mul_f64(0.75));
        let shown = sampler.url().shown().to_string();
        let spawned = std::thread::Builder::new()
            .name("pgstorm-agent-sampler".into())
            .spawn(move || {
                pin(c.core);
                let mut out = AgentOutcome {
                    ring: Ring::new(c.capacity),
                    cost: Cost::default(),
                    scrapes: 0,
                    failed: 0,
                    first_error: None,
                    cpus: 0,
                    memory_bytes: 0,
                };
                let mut k = 0u64;
                loop {
                    let go_on = k == 0 || wait_tick(&rx, epoch, c.interval, k);
                    let cost = Cost::start();
                    out.scrapes += 1;
                    match sampler.sample(epoch, k) {
                        Ok(Scraped::Sample(s)) => out.ring.push(s),
                        Ok(Scraped::Baseline) => {}
                        Err(e) => {
                            out.failed += 1;
                            if out.first_error.is_none() && c.announce {
                                eprintln!(
                                    "pgstorm: warning: cannot scrape server metrics from {}: {e}; \
                                     the run goes on, further failures are only counted",
                                    sampler.url().shown()
                                );
                            }
                            out.first_error.get_or_insert(e);
                        }
                    }
                    out.cost.add(&cost);
                    if !go_on {
                        break;
                    }
                    k = next_tick(epoch, c.interval, k);
                }
                if let Some(r) = sampler.last() {
                    out.cpus = r.cpus();
                    out.memory_bytes = r.memory_bytes();
                }
                out
            });
        match spawned {
            Ok(h) => {
                self.agent = Some((shown, h));
                self.stop.push(tx);
            }
            Err(e) => self.errors.push(format!(
                "cannot start the server metrics sampler thread: {e}"
            )),
        }
    }

    /// Seconds since the monitor started at wall-clock time `t` (negative if before).
    pub fn seconds_at(&self, t: SystemTime) -> f64 {
        let epoch: SystemTime = self.epoch_wall.into();
        match t.duration_since(epoch) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        }
    }

    /// Takes a last sample, stops the samplers and summarizes; `load` is the measured span, from
    /// the load's start to the instant its threads were told to stop (`None`: everything sampled
    /// is the load).
    pub fn stop(mut self, load: Option<Window>) -> Monitoring {
        for tx in self.stop.drain(..) {
            let _ = tx.send(());
        }
        let mut errors = std::mem::take(&mut self.errors);
        let host = self.host.take().and_then(|h| match h.join() {
            Ok(o) => Some(o),
            Err(_) => {
                errors.push("the host sampler thread panicked".into());
                None
            }
        });
        let server = self.server.take().and_then(|h| match h.join() {
            Ok(o) => Some(o),
            Err(_) => {
                errors.push("the server sampler thread panicked".into());
                None
            }
        });
        let agent = self.agent.take().and_then(|(source, h)| match h.join() {
            Ok(o) => Some((source, o)),
            Err(_) => {
                errors.push("the server metrics sampler thread panicked".into());
                None
            }
        });
        let interval_s = self.cfg.interval.as_secs_f64();
        let mut host = host.map(|o| HostSeries {
            postgres_source: self.local.map(|l| l.source.to_string()),
            postmaster_pid: self.local.map(|l| l.pid),
            taken: o.ring.taken(),
            dropped: o.ring.dropped(),
            cost_us_mean: o.cost.wall_mean(),
            cost_us_max: o.cost.wall_max_us,
            cpu_us_mean: o.cost.cpu_mean(),
            summary: HostSummary::default(),
            samples: o.ring.into_vec(),
        });
        let mut server = server.map(|o| {
            errors.extend(o.error);
            ServerSeries {
                server_version_num: o.version,
                checkpoint_view: o.view.to_string(),
                taken: o.ring.taken(),
                dropped: o.ring.dropped(),
                cost_us_mean: o.cost.wall_mean(),
                cost_us_max: o.cost.wall_max_us,
                cpu_us_mean: o.cost.cpu_mean(),
                totals: o.totals,
                summary: ServerSummary::default(),
                samples: o.ring.into_vec(),
            }
        });
        let mut server_host = agent.map(|(source, o)| {
            if let Some(e) = o.first_error {
                errors.push(format!(
                    "server metrics from {source}: {} of {} scrapes failed, the first: {e}",
                    o.failed, o.scrapes
                ));
            }
            ServerHostSeries {
                source,
                cpus: o.cpus,
                memory_bytes: o.memory_bytes,
                taken: o.ring.taken(),
                dropped: o.ring.dropped(),
                scrapes: o.scrapes,
                failed: o.failed,
                cost_us_mean: o.cost.wall_mean(),
                cost_us_max: o.cost.wall_max_us,
                cpu_us_mean: o.cost.cpu_mean(),
                summary: Default::default(),
                samples: o.ring.into_vec(),
            }
        });
        mark_phases(
            host.as_mut().map(|h| (&mut h.samples[..], h.dropped > 0)),
            server.as_mut().map(|s| (&mut s.samples[..], s.dropped > 0)),
            server_host
                .as_mut()
                .map(|s| (&mut s.samples[..], s.dropped > 0)),
            load,
        );
        let mut alerts = Vec::new();
        let mut under = None;
        if let Some(h) = &mut host {
            h.summary = host_summary(&h.samples);
            alerts = load_alerts(&h.samples, &self.cfg.thresholds, self.epoch_wall);
            under = load.and_then(|_| under_load(&h.samples, interval_s));
        }
        if let Some(s) = &mut server {
            s.summary = server_summary(&s.samples);
        }
        if let Some(s) = &mut server_host {
            s.summary = server_host_summary(&s.samples);
        }
        Monitoring {
            started_at: self
                .epoch_wall
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            interval_s,
            capacity: self.cfg.capacity,
            load_window: load,
            thresholds: self.cfg.thresholds,
            under_load: under,
            host,
            server,
            server_host,
            alerts,
            errors,
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        // Dropped without `stop` (an error path): end the threads, discard their results.
        for tx in self.stop.drain(..) {
            let _ = tx.send(());
        }
    }
}
