//! The samplers' bookkeeping: a bounded history ring and the cost of each sample (wall time and
//! the sampler thread's CPU time).
//!
//! Invariant: the ring never holds more than its capacity; `taken` counts every push, so
//! `dropped` is exact.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A bounded history: keeps the newest `capacity` items and counts what it dropped.
#[derive(Debug)]
pub struct Ring<T> {
    items: VecDeque<T>,
    capacity: usize,
    taken: u64,
}

impl<T> Ring<T> {
    /// An empty ring holding at most `capacity` (≥ 1) items.
    pub fn new(capacity: usize) -> Ring<T> {
        let capacity = capacity.max(1);
        Ring {
            items: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
            taken: 0,
        }
    }

    /// Adds an item, dropping the oldest when full.
    pub fn push(&mut self, item: T) {
        if self.items.len() == self.capacity {
            self.items.pop_front();
        }
        self.items.push_back(item);
        self.taken += 1;
    }

    /// Items pushed in total.
    pub fn taken(&self) -> u64 {
        self.taken
    }

    /// Items dropped to stay within capacity.
    pub fn dropped(&self) -> u64 {
        self.taken - self.items.len() as u64
    }

    /// The kept items, oldest first.
    pub fn into_vec(self) -> Vec<T> {
        self.items.into()
    }
}

/// CPU time consumed so far by the calling thread.
pub(super) fn thread_cpu() -> Duration {
    // SAFETY: clock_gettime writes into the zeroed timespec we pass; the clock id is valid.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
        ts
    };
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// Cost of the samples taken: wall time (waits for the CPU and the server included) and the
/// sampler thread's own CPU time, µs.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Cost {
    wall_sum_us: f64,
    pub(super) wall_max_us: f64,
    cpu_sum_us: f64,
    n: u64,
}

/// Start of one sample's cost measurement.
pub(super) struct CostStart {
    wall: Instant,
    cpu: Duration,
}

impl Cost {
    pub(super) fn start() -> CostStart {
        CostStart {
            wall: Instant::now(),
            cpu: thread_cpu(),
        }
    }

    pub(super) fn add(&mut self, s: &CostStart) {
        let us = s.wall.elapsed().as_secs_f64() * 1e6;
        self.wall_sum_us += us;
        self.wall_max_us = self.wall_max_us.max(us);
        self.cpu_sum_us += thread_cpu().saturating_sub(s.cpu).as_secs_f64() * 1e6;
        self.n += 1;
    }

    fn mean(sum: f64, n: u64) -> f64 {
        if n == 0 {
            0.0
        } else {
            sum / n as f64
        }
    }

    pub(super) fn wall_mean(&self) -> f64 {
        Cost::mean(self.wall_sum_us, self.n)
    }

    pub(super) fn cpu_mean(&self) -> f64 {
        Cost::mean(self.cpu_sum_us, self.n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_newest_and_counts_drops() {
        let mut r = Ring::new(3);
        for i in 0..5 {
            r.push(i);
        }
        assert_eq!((r.taken(), r.dropped()), (5, 2));
        assert_eq!(r.into_vec(), vec![2, 3, 4]);
    }

    #[test]
    fn cost_counts_cpu_and_wall_time() {
        let mut c = Cost::default();
        let s = Cost::start();
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(5) {}
        c.add(&s);
        assert!(c.wall_mean() >= 5000.0 && c.cpu_mean() > 0.0, "{c:?}");
    }
}
