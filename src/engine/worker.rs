//! One worker thread: schedule → checkout → query → record, and a batch per interval.
//!
//! Hot-path invariants: no allocation and no lock per query except r2d2's checkout; all recording
//! goes into the worker's own [`Batch`], handed to the collector when an interval boundary is
//! crossed (checked against the completion time, so a query is attributed to the interval in which
//! it finished). In open loop the latency is measured from the *intended* start, so a stall shows
//! in the percentiles; the schedule lag (actual − intended start) is recorded on its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::pool::{self, ConnManager};
use super::stats::{self, Batch, ErrorClass};
use crate::rng::Rng;
use crate::workload::Workload;

/// How arrivals are spaced in open loop.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    /// Evenly spaced.
    Uniform,
    /// Exponential gaps (Poisson process), like pgbench `-R`.
    Poisson,
}

/// The per-worker open-loop schedule.
pub(crate) struct Schedule {
    next_s: f64,
    mean_gap_s: f64,
    arrival: Arrival,
}

impl Schedule {
    /// Worker `id` of `n` sharing `rate` tx/s in total; independent Poisson streams of rate R/n
    /// add up to a Poisson stream of rate R, and uniform streams are phase-shifted.
    pub(crate) fn new(rate: f64, id: usize, n: usize, arrival: Arrival, rng: &mut Rng) -> Schedule {
        let mean_gap_s = n as f64 / rate;
        let first = match arrival {
            Arrival::Uniform => mean_gap_s * id as f64 / n as f64,
            Arrival::Poisson => rng.exp(mean_gap_s),
        };
        Schedule {
            next_s: first,
            mean_gap_s,
            arrival,
        }
    }

    /// Offset of the next intended start from the run's start, then advances.
    pub(crate) fn take(&mut self, rng: &mut Rng) -> f64 {
        let t = self.next_s;
        self.next_s += match self.arrival {
            Arrival::Uniform => self.mean_gap_s,
            Arrival::Poisson => rng.exp(self.mean_gap_s),
        };
        t
    }
}

/// Everything a worker shares with the engine.
pub(crate) struct Shared {
    pub pool: r2d2::Pool<ConnManager>,
    /// How long a checkout may wait for a connection.
    pub checkout_timeout: Duration,
    pub workload: Arc<Workload>,
    pub stop: Arc<AtomicBool>,
    pub start: Instant,
    /// No intended start at or after this instant is scheduled.
    pub end: Option<Instant>,
    pub interval: Duration,
    pub tx_limit: Option<u64>,
    pub rate: Option<(f64, Arrival)>,
    pub seed: u64,
    pub sigfig: u8,
    pub clients: usize,
    /// Tries per transaction on serialization/deadlock failures (0: until the run ends).
    pub max_tries: u32,
}

/// A worker's measurement path: its own batch, the interval clock, and the hand-off to the
/// collector. Public so the benchmark measures exactly the code the workers run.
pub struct Recorder {
    id: usize,
    start: Instant,
    interval_len: Duration,
    sigfig: u8,
    out: Sender<Batch>,
    recycle: Receiver<Batch>,
    /// The batch being filled.
    pub batch: Batch,
    interval: u32,
    boundary: Instant,
    disconnected: bool,
    open_loop: bool,
}

impl Recorder {
    /// A recorder for worker `id` of a run that started at `start`.
    pub fn new(
        id: usize,
        n_types: usize,
        sigfig: u8,
        start: Instant,
        interval_len: Duration,
        out: Sender<Batch>,
        recycle: Receiver<Batch>,
    ) -> Recorder {
        Recorder {
            id,
            start,
            interval_len,
            sigfig,
            out,
            recycle,
            batch: Batch::new(id, n_types, sigfig),
            interval: 0,
            boundary: start + interval_len,
            disconnected: false,
            open_loop: true,
        }
    }

    /// Whether schedule lag is recorded; a closed-loop recorder keeps no lag histogram, which
    /// matters with hundreds of workers (500 × 20 KiB × 2 batches).
    pub fn open_loop(mut self, yes: bool) -> Recorder {
        self.open_loop = yes;
        if !yes {
            self.batch.lag = stats::unused_hist();
        }
        self
    }

    /// Hands the current batch over if `now` is past the interval boundary.
    #[inline]
    pub fn maybe_flush(&mut self, now: Instant) {
        if now >= self.boundary {
            self.flush(now, false);
        }
    }

    /// Hands the current batch over now (`last`: the worker is done).
    pub fn flush(&mut self, now: Instant, last: bool) {
        let fresh = match self.recycle.try_recv() {
            Ok(mut b) => {
                b.worker = self.id;
                b
            }
            Err(_) => {
                let mut b = Batch::new(self.id, self.batch.types.len(), self.sigfig);
                if !self.open_loop {
                    b.lag = stats::unused_hist();
                }
                b
            }
        };
        let mut full = std::mem::replace(&mut self.batch, fresh);
        full.interval = self.interval;
        full.last = last;
        if self.out.send(full).is_err() {
            self.disconnected = true;
        }
        let since = now.saturating_duration_since(self.start);
        self.interval = (since.as_nanos() / self.interval_len.as_nanos()) as u32;
        self.boundary = self.start + self.interval_len * (self.interval + 1);
    }

    /// The next interval boundary.
    pub fn boundary(&self) -> Instant {
        self.boundary
    }

    /// Whether the collector has gone away.
    pub fn disconnected(&self) -> bool {
        self.disconnected
    }
}

/// Per-worker state.
pub(crate) struct Worker {
    id: usize,
    shared: Arc<Shared>,
    rec: Recorder,
}

/// The next wait after a lost connection or a pool timeout: doubling from 10 ms up to 1 s, so a
/// client neither spins against a server in trouble nor sleeps long after it is back.
pub(crate) fn next_backoff(previous: Duration) -> Duration {
    (previous * 2).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

impl Worker {
    pub(crate) fn new(
        id: usize,
        shared: Arc<Shared>,
        out: Sender<Batch>,
        recycle: Receiver<Batch>,
    ) -> Worker {
        let rec = Recorder::new(
            id,
            shared.workload.types.len(),
            shared.sigfig,
            shared.start,
            shared.interval,
            out,
            recycle,
        )
        .open_loop(shared.rate.is_some());
        Worker { id, shared, rec }
    }

    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed) || self.rec.disconnected()
    }

    /// Sleeps until `until`, flushing at boundaries; false if stopped meanwhile.
    fn wait_until(&mut self, until: Instant) -> bool {
        loop {
            let now = Instant::now();
            self.rec.maybe_flush(now);
            if now >= until {
                return true;
            }
            if self.stopped() {
                return false;
            }
            let wake = until
                .min(self.rec.boundary())
                .min(now + Duration::from_millis(100));
            std::thread::sleep(wake.saturating_duration_since(now));
        }
    }

    /// The worker's main loop.
    pub(crate) fn run(mut self) {
        let shared = self.shared.clone();
        let mut rng = Rng::stream(shared.seed, 0x5EED_0000 + self.id as u64);
        let mut schedule = shared
            .rate
            .map(|(rate, arrival)| Schedule::new(rate, self.id, shared.clients, arrival, &mut rng));
        let mut scratch = shared.workload.scratch(self.id);
        let mut done: u64 = 0;
        let mut backoff = Duration::ZERO;
        loop {
            if self.stopped() || shared.tx_limit.is_some_and(|n| done >= n) {
                break;
            }
            let intended = match schedule.as_mut() {
                Some(s) => {
                    let at = shared.start + Duration::from_secs_f64(s.take(&mut rng));
                    if shared.end.is_some_and(|end| at >= end) || !self.wait_until(at) {
                        break;
                    }
                    Some(at)
                }
                None => None,
            };
            let kind = shared.workload.pick(&mut rng);
            let t0 = Instant::now();
            let checkout = pool::checkout(&shared.pool, shared.checkout_timeout, &shared.stop);
            let t1 = Instant::now();
            if checkout.is_none() && self.stopped() {
                // The run ended while this worker waited: nothing was attempted.
                break;
            }
            let mut tries: u32 = 0;
            let result = match checkout {
                Some(mut conn) => {
                    // pgbench retries with the same random draws: restore the stream each try.
                    let saved = rng.clone();
                    let r = loop {
                        tries += 1;
                        let commands = &mut self.rec.batch.types[kind].commands;
                        let r = shared
                            .workload
                            .execute(kind, &mut conn, &mut rng, &mut scratch, commands)
                            .map_err(|e| ErrorClass::of_exec(&e));
                        match r {
                            Err(c)
                                if c.is_retryable()
                                    && (shared.max_tries == 0 || tries < shared.max_tries)
                                    && !self.stopped()
                                    && shared.end.is_none_or(|end| Instant::now() < end) =>
                            {
                                rng = saved.clone();
                            }
                            r => break r,
                        }
                    };
                    let t2 = Instant::now();
                    drop(conn);
                    r.map(|()| t2)
                }
                None => Err(ErrorClass::PoolTimeout),
            };
            let now = match result {
                Ok(t2) => t2,
                Err(_) => Instant::now(),
            };
            self.rec.maybe_flush(now);
            let batch = &mut self.rec.batch;
            stats::record(&mut batch.pool_wait, t1 - t0);
            batch.record_transaction(
                kind,
                intended.map(|at| t0.saturating_duration_since(at)),
                tries,
                result.map(|t2| t2 - intended.unwrap_or(t1)),
            );
            match result {
                Ok(_) => backoff = Duration::ZERO,
                Err(class) => {
                    if class.is_connection_loss() || class == ErrorClass::PoolTimeout {
                        // The server (or the pool) is in trouble: back off instead of spinning,
                        // and let r2d2 replace the broken connection meanwhile.
                        backoff = next_backoff(backoff);
                        let until = Instant::now() + backoff;
                        if !self.wait_until(until) {
                            break;
                        }
                    }
                }
            }
            done += 1;
        }
        self.rec.flush(Instant::now(), true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_schedule_spreads_workers_and_keeps_the_rate() {
        let mut rng = Rng::new(1);
        let mut a = Schedule::new(100.0, 0, 4, Arrival::Uniform, &mut rng);
        let mut b = Schedule::new(100.0, 2, 4, Arrival::Uniform, &mut rng);
        assert_eq!(a.take(&mut rng), 0.0);
        assert!((b.take(&mut rng) - 0.02).abs() < 1e-12);
        assert!((a.take(&mut rng) - 0.04).abs() < 1e-12);
    }

    #[test]
    fn poisson_schedule_has_the_requested_rate() {
        let mut rng = Rng::new(9);
        let mut s = Schedule::new(1000.0, 0, 10, Arrival::Poisson, &mut rng);
        let mut last = 0.0;
        for _ in 0..20_000 {
            last = s.take(&mut rng);
        }
        // 20,000 arrivals at 100/s per worker take ~200 s.
        assert!((last / 200.0 - 1.0).abs() < 0.03, "last {last}");
    }
}
