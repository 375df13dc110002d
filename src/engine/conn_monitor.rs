//! The connection load's monitor: every tick it reads the pool's r2d2 `State`, the workers'
//! tracker slots and the gate's counters, and from them builds the pool time series, feeds
//! incident and leak detection, merges the workers' per-step measurements, and after a
//! connection loss checks idle connections so dead ones are discarded.
//!
//! Invariant: it only reads atomics and the pool's state (and, during an incident, borrows idle
//! connections for a health check); it never touches a worker's measurements before the worker
//! hands them over.

use std::sync::atomic::Ordering;

use super::conn_worker::{Shared, StepBatch, WorkerStep};
use super::connections::{ConnConfig, PoolSample, StepOutput};
use super::gated_pool::{Gate, StepConnects};
use super::stats::{self, N_CLASSES};
use super::watch::{Incidents, Leaks, Tick};

/// One step's measurements, merged from the workers' hand-offs.
pub(crate) struct StepAcc {
    pub(crate) out: StepOutput,
}

impl StepAcc {
    pub(crate) fn new(target: u32) -> StepAcc {
        StepAcc {
            out: StepOutput {
                target,
                workers: 0,
                started_s: 0.0,
                reached_s: None,
                ended_s: 0.0,
                peak_open: 0,
                connects: StepConnects {
                    latency: stats::new_hist(3),
                    failures: [0; N_CLASSES],
                },
                checkout_wait: stats::new_hist(3),
                latency: stats::new_hist(3),
                ok: 0,
                errors: [0; N_CLASSES],
                fallback_ok: 0,
                fallback_failed: 0,
            },
        }
    }

    fn add(&mut self, w: &WorkerStep) {
        let o = &mut self.out;
        o.connects.latency.add(&w.connect).expect("same bounds");
        o.checkout_wait.add(&w.checkout_wait).expect("same bounds");
        o.latency.add(&w.latency).expect("same bounds");
        o.ok += w.ok;
        for (a, b) in o.errors.iter_mut().zip(w.errors) {
            *a += b;
        }
        o.fallback_ok += w.fallback_ok;
        o.fallback_failed += w.fallback_failed;
    }
}

/// The monitor's state between ticks.
pub(crate) struct Monitor<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) gate: Option<&'a Gate>,
    pub(crate) cfg: &'a ConnConfig,
    pub(crate) rx: crossbeam_channel::Receiver<StepBatch>,
    pub(crate) accs: Vec<StepAcc>,
    pub(crate) incidents: Incidents,
    pub(crate) leaks: Leaks,
    pub(crate) samples: Vec<PoolSample>,
    pub(crate) last_tick: (f64, u64, u64, u64),
    pub(crate) last_sample: (u64, u64, u64, u64),
    pub(crate) next_sample_s: f64,
    pub(crate) target: u32,
    pub(crate) step: usize,
    /// Open connections at the last tick.
    pub(crate) last_open: u32,
}

impl Monitor<'_> {
    pub(crate) fn now_s(&self) -> f64 {
        self.shared.tracker.now_us() as f64 / 1e6
    }

    /// Open and idle connections (storm: connections held by workers, none idle).
    fn pool_state(&self, holding: u32) -> (u32, u32) {
        match &self.shared.pool {
            Some(p) => {
                let s = p.state();
                (s.connections, s.idle_connections)
            }
            None => (holding, 0),
        }
    }

    pub(crate) fn drain(&mut self) {
        while let Ok((step, w)) = self.rx.try_recv() {
            if let Some(acc) = self.accs.get_mut(step) {
                acc.add(&w);
            }
        }
    }

    pub(crate) fn tick(&mut self) {
        self.drain();
        let snap = self.shared.tracker.snapshot();
        let (open, idle) = self.pool_state(snap.holding);
        self.last_open = open;
        let t_s = self.now_s();
        let c = snap.counts;
        let (prev_s, ok0, failed0, lost0) = self.last_tick;
        let tick = Tick {
            t_s,
            prev_s,
            ok: c.ok - ok0,
            failed: c.failed - failed0,
            lost: c.lost - lost0,
            open,
            target: self.target,
        };
        self.last_tick = (t_s, c.ok, c.failed, c.lost);
        let was = self.incidents.in_progress();
        self.incidents.tick(tick);
        if self.cfg.progress && !was && self.incidents.in_progress() {
            eprintln!(
                "pgstorm: {t_s:.1} s: connections lost ({} failed operations in {:.0} ms): service dropped",
                tick.failed,
                (t_s - prev_s) * 1000.0
            );
        }
        // Keep checking while the incident lasts: a backend signalled to terminate may still
        // answer the first check, and with fewer workers than connections the pool's LIFO order
        // would leave a dead connection at the bottom unused (and uncounted) indefinitely.
        if tick.lost > 0 || self.incidents.in_progress() {
            self.sweep(idle);
        }
        let acc = &mut self.accs[self.step].out;
        acc.peak_open = acc.peak_open.max(open);
        if acc.reached_s.is_none() && open >= self.target {
            acc.reached_s = Some(t_s);
        }
        let now_us = self.shared.tracker.now_us();
        let threshold = self.cfg.leak_threshold.as_micros() as u64;
        if now_us > threshold {
            let before = self.leaks.count();
            self.leaks
                .scan(&self.shared.tracker.held_since(now_us - threshold), now_us);
            if self.cfg.progress && self.leaks.count() > before {
                eprintln!(
                    "pgstorm: {t_s:.1} s: {} connection(s) held longer than {:?} (leak)",
                    self.leaks.count() - before,
                    self.cfg.leak_threshold
                );
            }
        }
        if t_s >= self.next_sample_s {
            self.sample(t_s, open, idle, snap.holding, snap.waiting, c.ok, c.failed);
            self.next_sample_s += self.cfg.interval.as_secs_f64();
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn sample(
        &mut self,
        t_s: f64,
        open: u32,
        idle: u32,
        holding: u32,
        waiting: u32,
        ok: u64,
        failed: u64,
    ) {
        let (opened, closed) = match self.gate {
            Some(g) => (
                g.opened.load(Ordering::Relaxed),
                g.released.load(Ordering::Relaxed),
            ),
            // Storm: every successful operation opened and closed one connection.
            None => (ok, ok),
        };
        let (ok0, failed0, opened0, closed0) = self.last_sample;
        self.samples.push(PoolSample {
            t_s,
            target: self.target,
            open,
            idle,
            checked_out: holding,
            waiting,
            ok: ok - ok0,
            failed: failed - failed0,
            connects: opened - opened0,
            closed: closed - closed0,
        });
        self.last_sample = (ok, failed, opened, closed);
    }

    /// After a connection loss, the idle connections may be dead too (a terminated backend is
    /// only noticed when used): check them now so workers do not each trip over one.
    fn sweep(&self, idle: u32) {
        let Some(pool) = &self.shared.pool else {
            return;
        };
        let mut held = Vec::with_capacity(idle as usize);
        for _ in 0..idle {
            let Some(mut c) = pool.try_get() else { break };
            let _ = super::wire_pool::ping(&mut c);
            held.push(c);
        }
    }
}
