//! Which samples belong to the load, and the summaries drawn from them: mean / p95 / peak of each
//! host and server figure, and the CPU and memory figures the stability criteria judge.
//!
//! Invariant: every summary, peak and alert reads only `load` samples, so nothing sampled while
//! the load's connections open or close (pg_stat counters flushed at disconnect land in a short
//! last interval as a spike ten times the load's rate) is taken for the load.

use std::collections::BTreeMap;

use super::alerts::Alerts;
use super::model::{
    AlertEvent, HostSample, HostSummary, Phase, ServerHostSample, ServerHostSummary, ServerSample,
    ServerSummary, Stat, Thresholds, UnderLoad, Window,
};

/// The seconds each sample covers, `(from, to]`: from the previous sample of its sampler, or for
/// the first from the sampler's start (`-inf` when older samples were dropped, so an unknown
/// span never counts as load).
fn spans(ts: impl Iterator<Item = (u64, f64)>, dropped: bool) -> Vec<(u64, f64, f64)> {
    let mut from = if dropped { f64::NEG_INFINITY } else { 0.0 };
    ts.map(|(tick, t)| {
        let span = (tick, from, t);
        from = t;
        span
    })
    .collect()
}

/// Sets each sample's phase against the load window (all `load` without one). The samples of one
/// tick (host, server, server host) get one phase, from the union of their spans, so a
/// resources.csv row and the summaries never disagree about it.
/// Each sampler's samples come with whether older ones were dropped.
pub(super) fn mark_phases(
    mut host: Option<(&mut [HostSample], bool)>,
    mut server: Option<(&mut [ServerSample], bool)>,
    mut server_host: Option<(&mut [ServerHostSample], bool)>,
    load: Option<Window>,
) {
    let Some(w) = load else {
        return;
    };
    let mut union: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    let host_spans = host.as_ref().map_or(Vec::new(), |(h, dropped)| {
        spans(h.iter().map(|s| (s.tick, s.t_s)), *dropped)
    });
    let server_spans = server.as_ref().map_or(Vec::new(), |(h, dropped)| {
        spans(h.iter().map(|s| (s.tick, s.t_s)), *dropped)
    });
    let agent_spans = server_host.as_ref().map_or(Vec::new(), |(h, dropped)| {
        spans(h.iter().map(|s| (s.tick, s.t_s)), *dropped)
    });
    for (tick, from, to) in host_spans
        .into_iter()
        .chain(server_spans)
        .chain(agent_spans)
    {
        let e = union.entry(tick).or_insert((from, to));
        *e = (e.0.min(from), e.1.max(to));
    }
    let phase = |tick: u64| {
        let (from, to) = union[&tick];
        w.phase(from, to)
    };
    for s in host.iter_mut().flat_map(|(h, _)| h.iter_mut()) {
        s.phase = phase(s.tick);
    }
    for s in server.iter_mut().flat_map(|(h, _)| h.iter_mut()) {
        s.phase = phase(s.tick);
    }
    for s in server_host.iter_mut().flat_map(|(h, _)| h.iter_mut()) {
        s.phase = phase(s.tick);
    }
}

/// The `load` samples.
fn in_load<T>(samples: &[T], phase: impl Fn(&T) -> Phase) -> Vec<&T> {
    samples.iter().filter(|s| phase(s) == Phase::Load).collect()
}

/// The threshold crossings of the `load` samples (`epoch`: wall-clock time of `t_s = 0`).
pub(super) fn load_alerts(
    samples: &[HostSample],
    th: &Thresholds,
    epoch: chrono::DateTime<chrono::Utc>,
) -> Vec<AlertEvent> {
    let mut state = Alerts::default();
    in_load(samples, |s| s.phase)
        .into_iter()
        .flat_map(|s| state.observe(s, th, epoch))
        .collect()
}

pub(super) fn host_summary(all: &[HostSample]) -> HostSummary {
    let s = in_load(all, |x| x.phase);
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

pub(super) fn server_summary(all: &[ServerSample]) -> ServerSummary {
    let s = in_load(all, |x| x.phase);
    ServerSummary {
        tps: Stat::of(s.iter().map(|x| x.tps)),
        active: Stat::of(
            s.iter()
                .map(|x| *x.by_state.get("active").unwrap_or(&0) as f64),
        ),
        blocked_backends: Stat::of(s.iter().map(|x| x.blocked_backends as f64)),
        wal_bytes_s: Stat::of(s.iter().filter_map(|x| x.wal_bytes_s)),
    }
}

pub(super) fn server_host_summary(all: &[ServerHostSample]) -> ServerHostSummary {
    let s = in_load(all, |x| x.phase);
    ServerHostSummary {
        samples: s.len(),
        cpu_percent: Stat::of(s.iter().map(|x| x.cpu_percent)),
        iowait_percent: Stat::of(
            s.iter()
                .map(|x| x.cpu_modes.get("iowait").copied().unwrap_or(0.0)),
        ),
        memory_percent: Stat::of(s.iter().map(|x| x.memory_percent)),
        load1: Stat::of(s.iter().filter_map(|x| x.load.map(|l| l[0]))),
        disk_iops: Stat::of(s.iter().map(|x| x.disk_iops())),
        disk_read_bytes_s: Stat::of(s.iter().map(|x| x.disk_read_bytes_s())),
        disk_write_bytes_s: Stat::of(s.iter().map(|x| x.disk_write_bytes_s())),
        net_rx_bytes_s: Stat::of(s.iter().map(|x| x.net_rx_bytes_s())),
        net_tx_bytes_s: Stat::of(s.iter().map(|x| x.net_tx_bytes_s())),
    }
}

/// Host CPU and memory over the `load` samples (`None` when there is none).
pub fn under_load(samples: &[HostSample], interval_s: f64) -> Option<UnderLoad> {
    let inside = in_load(samples, |s| s.phase);
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

    fn host(tick: u64, t_s: f64, cpu: f64) -> HostSample {
        HostSample::fixture(tick, t_s, cpu, 50.0)
    }

    fn server(tick: u64, t_s: f64, tps: f64) -> ServerSample {
        ServerSample {
            t_s,
            tick,
            phase: Phase::Load,
            tps,
            rollbacks_s: 0.0,
            cache_hit_ratio: None,
            tup_s: Default::default(),
            temp_files: 0,
            temp_bytes: 0,
            deadlocks: 0,
            conflicts: 0,
            by_state: BTreeMap::new(),
            by_wait_event_type: BTreeMap::new(),
            waiting_locks: 0,
            blocked_backends: 0,
            checkpoints: 0,
            wal_bytes_s: None,
        }
    }

    const WINDOW: Window = Window {
        start_s: 1.5,
        end_s: 6.0,
    };

    /// Ticks 1..=6 a second apart, the load from 1.5 s to 6.0 s, and the stop sample 0.2 s after
    /// the load ended with the disconnect flush in it: 10x the load's rate and a CPU burst.
    fn run() -> (Vec<HostSample>, Vec<ServerSample>) {
        let mut h: Vec<HostSample> = (1..=6).map(|k| host(k, k as f64, 50.0)).collect();
        let mut s: Vec<ServerSample> = (1..=6).map(|k| server(k, k as f64, 1000.0)).collect();
        h.push(host(7, 6.2, 99.0));
        s.push(server(7, 6.21, 10_000.0));
        (h, s)
    }

    fn phases<T>(v: &[T], phase: impl Fn(&T) -> Phase) -> Vec<&'static str> {
        v.iter().map(|x| phase(x).as_str()).collect()
    }

    #[test]
    fn a_sample_counts_as_load_only_when_its_span_lies_inside_the_window() {
        let (mut h, mut s) = run();
        mark_phases(
            Some((&mut h, false)),
            Some((&mut s, false)),
            None,
            Some(WINDOW),
        );
        let want = ["before", "before", "load", "load", "load", "load", "after"];
        assert_eq!(phases(&h, |x| x.phase), want);
        assert_eq!(phases(&s, |x| x.phase), want);
    }

    #[test]
    fn the_disconnect_spike_is_in_no_summary_peak_or_alert() {
        let (mut h, mut s) = run();
        mark_phases(
            Some((&mut h, false)),
            Some((&mut s, false)),
            None,
            Some(WINDOW),
        );
        assert_eq!(server_summary(&s).tps.peak, 1000.0);
        assert_eq!(host_summary(&h).cpu_percent.peak, 50.0);
        let u = under_load(&h, 1.0).unwrap();
        assert_eq!((u.samples, u.cpu_peak_percent), (4, 50.0));
        assert!(load_alerts(&h, &Thresholds::default(), chrono::Utc::now()).is_empty());
        // Positive control: the same samples without a load window all count, spike included.
        let (h, s) = run();
        assert_eq!(server_summary(&s).tps.peak, 10_000.0);
        let raised = load_alerts(&h, &Thresholds::default(), chrono::Utc::now());
        assert_eq!(raised.len(), 1, "{raised:?}");
        assert_eq!((raised[0].metric.as_str(), raised[0].t_s), ("cpu", 6.2));
    }

    #[test]
    fn one_tick_gets_one_phase_when_its_samples_straddle_the_stop() {
        let (mut h, mut s) = run();
        // The host sample of tick 6 just before the stop, the server's just after it.
        h[5].t_s = 5.99;
        s[5].t_s = 6.01;
        mark_phases(
            Some((&mut h, false)),
            Some((&mut s, false)),
            None,
            Some(WINDOW),
        );
        assert_eq!((h[5].phase, s[5].phase), (Phase::After, Phase::After));
        assert_eq!(h[4].phase, Phase::Load);
    }

    #[test]
    fn an_unknown_span_after_dropped_samples_is_not_load() {
        let (mut h, _) = run();
        let mut h = h.split_off(3);
        mark_phases(
            Some((&mut h, true)),
            None,
            None,
            Some(Window {
                start_s: 0.0,
                end_s: 6.0,
            }),
        );
        assert_eq!(phases(&h, |x| x.phase), ["before", "load", "load", "after"]);
    }

    #[test]
    fn stat_is_mean_p95_peak() {
        let s = Stat::of((1..=100).map(f64::from));
        assert_eq!((s.mean, s.p95, s.peak), (50.5, 95.0, 100.0));
        assert_eq!(Stat::of(std::iter::empty()), Stat::default());
    }
}
