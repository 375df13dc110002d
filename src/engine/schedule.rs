//! Open-loop arrivals: the intended start times of transactions at a fixed total rate (`-R`).
//!
//! One [`Arrivals`] stream is shared by the clients that draw from it, and the next arrival goes
//! to whichever client is free first, as pgbench does per thread (`throttle_trigger`). A stream
//! per client would make a transaction wait behind its own client's previous one whenever two
//! arrivals of that client fall closer than the service time: at `-R 200 -c 4` and 2 ms per
//! transaction that was about one transaction in ten starting up to 2 ms late, charged to the
//! server's latency (the client bias open loop exists to remove).
//!
//! Invariants: taking an arrival is lock-free (one compare-and-swap on the hot path, retried only
//! when another client took one at the same moment); the arrivals of a stream are handed out in
//! time order and each exactly once; gaps are drawn from the taker's own random stream, never from
//! the workload's, so scripts draw the same values with and without `-R`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::worker::Arrival;
use crate::rng::Rng;

/// A stream of intended start times, as offsets from the run's start.
pub struct Arrivals {
    /// Offset of the next arrival not yet taken, nanoseconds.
    next_ns: AtomicU64,
    mean_gap_ns: f64,
    arrival: Arrival,
}

impl Arrivals {
    /// A stream of `rate` arrivals per second; the first one is at `phase` (uniform) or one
    /// random gap after it (Poisson). Several uniform streams that together make one rate are
    /// phase-shifted so that their arrivals interleave instead of coming in bursts.
    pub fn new(rate: f64, arrival: Arrival, phase: Duration, rng: &mut Rng) -> Arrivals {
        let mut a = Arrivals {
            next_ns: AtomicU64::new(0),
            mean_gap_ns: 1e9 / rate,
            arrival,
        };
        let phase_ns = u64::try_from(phase.as_nanos()).unwrap_or(u64::MAX);
        let first = match arrival {
            Arrival::Uniform => phase_ns,
            Arrival::Poisson => phase_ns.saturating_add(a.gap_ns(rng)),
        };
        *a.next_ns.get_mut() = first;
        a
    }

    fn gap_ns(&self, rng: &mut Rng) -> u64 {
        let gap = match self.arrival {
            Arrival::Uniform => self.mean_gap_ns,
            Arrival::Poisson => rng.exp(self.mean_gap_ns),
        };
        // A gap that does not fit (an absurdly low rate) ends the stream instead of wrapping.
        if gap.is_finite() && gap < u64::MAX as f64 {
            gap.round() as u64
        } else {
            u64::MAX
        }
    }

    /// Takes the next arrival: its offset from the run's start.
    #[inline]
    pub fn take(&self, rng: &mut Rng) -> Duration {
        let gap = self.gap_ns(rng);
        let mut cur = self.next_ns.load(Ordering::Relaxed);
        loop {
            match self.next_ns.compare_exchange_weak(
                cur,
                cur.saturating_add(gap),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Duration::from_nanos(cur),
                Err(now) => cur = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_arrivals_are_evenly_spaced_at_the_rate() {
        let mut rng = Rng::new(1);
        let a = Arrivals::new(100.0, Arrival::Uniform, Duration::ZERO, &mut rng);
        let t: Vec<Duration> = (0..4).map(|_| a.take(&mut rng)).collect();
        assert_eq!(
            t,
            [0, 10, 20, 30].map(Duration::from_millis).to_vec(),
            "{t:?}"
        );
    }

    #[test]
    fn phase_shifted_uniform_streams_interleave_into_one_even_rate() {
        // Two threads sharing 100 tx/s: 50 each, the second shifted by one total gap (10 ms).
        let mut rng = Rng::new(1);
        let a = Arrivals::new(50.0, Arrival::Uniform, Duration::ZERO, &mut rng);
        let b = Arrivals::new(50.0, Arrival::Uniform, Duration::from_millis(10), &mut rng);
        let mut all: Vec<Duration> = (0..3)
            .flat_map(|_| [a.take(&mut rng), b.take(&mut rng)])
            .collect();
        all.sort();
        assert_eq!(
            all,
            [0, 10, 20, 30, 40, 50].map(Duration::from_millis).to_vec()
        );
    }

    #[test]
    fn poisson_arrivals_have_the_requested_rate() {
        let mut rng = Rng::new(9);
        let a = Arrivals::new(1000.0, Arrival::Poisson, Duration::ZERO, &mut rng);
        let mut last = Duration::ZERO;
        for _ in 0..20_000 {
            last = a.take(&mut rng);
        }
        // 20,000 arrivals at 1000/s take ~20 s.
        assert!(
            (last.as_secs_f64() / 20.0 - 1.0).abs() < 0.03,
            "last {last:?}"
        );
    }

    #[test]
    fn clients_sharing_a_stream_take_each_arrival_once_and_in_order() {
        let a = Arrivals::new(1e6, Arrival::Uniform, Duration::ZERO, &mut Rng::new(1));
        let taken: Vec<Vec<Duration>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|i| {
                    let a = &a;
                    s.spawn(move || {
                        let mut rng = Rng::new(i);
                        (0..10_000).map(|_| a.take(&mut rng)).collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for own in &taken {
            assert!(own.windows(2).all(|w| w[0] < w[1]));
        }
        let mut all: Vec<Duration> = taken.into_iter().flatten().collect();
        all.sort();
        let expected: Vec<Duration> = (0..40_000).map(Duration::from_micros).collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn a_rate_too_low_to_represent_ends_the_stream_instead_of_wrapping() {
        let mut rng = Rng::new(3);
        let a = Arrivals::new(1e-300, Arrival::Uniform, Duration::ZERO, &mut rng);
        assert_eq!(a.take(&mut rng), Duration::ZERO);
        assert_eq!(a.take(&mut rng), Duration::from_nanos(u64::MAX));
        assert_eq!(a.take(&mut rng), Duration::from_nanos(u64::MAX));
    }
}
