//! Per-worker checkout tracking: one cache-line slot of atomics per worker, written only by its
//! worker and read by the monitor thread.
//!
//! This is how the connection scenario sees who waits for the pool, who holds a connection (and
//! for how long, with which query type: leak detection), and how many operations succeeded or
//! failed, without a lock or a shared counter on the per-query path.
//!
//! Invariants:
//! - Each slot has a single writer (its worker), so counters are plain stores of the worker's own
//!   running totals; no read-modify-write, no contention.
//! - A checkout is published as `since_us`, `kind`, then `phase` (release); a reader that sees
//!   `HOLDING` with the same `checkouts` before and after its reads has a consistent view.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

/// The worker is neither waiting for nor holding a connection.
pub const IDLE: u32 = 0;
/// The worker is waiting for a pool checkout.
pub const WAITING: u32 = 1;
/// The worker holds a connection.
pub const HOLDING: u32 = 2;

/// One worker's published state (a cache line of its own, so workers never share one).
#[repr(align(64))]
#[derive(Default)]
pub struct Slot {
    phase: AtomicU32,
    kind: AtomicU32,
    since_us: AtomicU64,
    checkouts: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    lost: AtomicU64,
}

/// Running totals a worker publishes after each operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Operations that succeeded.
    pub ok: u64,
    /// Operations that failed (any class).
    pub failed: u64,
    /// Failures that mean the connection or the server was lost.
    pub lost: u64,
}

/// A connection held since `since_us` by `worker`, running query type `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Worker index.
    pub worker: usize,
    /// Query type index.
    pub kind: usize,
    /// Checkout instant, µs since the tracker's start.
    pub since_us: u64,
    /// The worker's checkout sequence number (identifies this checkout).
    pub checkout: u64,
}

/// A summary of all slots at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    /// Workers waiting for a checkout.
    pub waiting: u32,
    /// Workers holding a connection.
    pub holding: u32,
    /// Sum of all workers' counts.
    pub counts: Counts,
}

/// The slots of all workers of a run.
pub struct Tracker {
    start: Instant,
    slots: Box<[Slot]>,
}

impl Tracker {
    /// Slots for `workers` workers; times are measured from `start`.
    pub fn new(workers: usize, start: Instant) -> Tracker {
        Tracker {
            start,
            slots: (0..workers).map(|_| Slot::default()).collect(),
        }
    }

    /// µs since the start (0 before it).
    #[inline]
    pub fn now_us(&self) -> u64 {
        self.us(Instant::now())
    }

    /// `at` in µs since the start (0 before it).
    #[inline]
    pub fn us(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_micros() as u64
    }

    /// Worker `w` starts waiting for a checkout at `at` (a time the worker read anyway).
    #[inline]
    pub fn waiting(&self, w: usize, at: Instant) {
        let s = &self.slots[w];
        s.since_us.store(self.us(at), Ordering::Relaxed);
        s.phase.store(WAITING, Ordering::Release);
    }

    /// Worker `w` got a connection at `at` for query type `kind`; `checkout` is its own
    /// sequence number.
    #[inline]
    pub fn holding(&self, w: usize, at: Instant, kind: usize, checkout: u64) {
        let s = &self.slots[w];
        s.checkouts.store(checkout, Ordering::Relaxed);
        s.since_us.store(self.us(at), Ordering::Relaxed);
        s.kind.store(kind as u32, Ordering::Relaxed);
        s.phase.store(HOLDING, Ordering::Release);
    }

    /// Worker `w` holds nothing and waits for nothing.
    #[inline]
    pub fn idle(&self, w: usize) {
        self.slots[w].phase.store(IDLE, Ordering::Release);
    }

    /// Publishes worker `w`'s running totals.
    #[inline]
    pub fn publish(&self, w: usize, c: Counts) {
        let s = &self.slots[w];
        s.ok.store(c.ok, Ordering::Relaxed);
        s.failed.store(c.failed, Ordering::Relaxed);
        s.lost.store(c.lost, Ordering::Relaxed);
    }

    /// Counts phases and sums counters over all slots.
    pub fn snapshot(&self) -> Snapshot {
        let mut snap = Snapshot::default();
        for s in self.slots.iter() {
            match s.phase.load(Ordering::Acquire) {
                WAITING => snap.waiting += 1,
                HOLDING => snap.holding += 1,
                _ => {}
            }
            snap.counts.ok += s.ok.load(Ordering::Relaxed);
            snap.counts.failed += s.failed.load(Ordering::Relaxed);
            snap.counts.lost += s.lost.load(Ordering::Relaxed);
        }
        snap
    }

    /// Connections checked out at or before `before_us` and still held.
    pub fn held_since(&self, before_us: u64) -> Vec<Held> {
        let mut out = Vec::new();
        for (worker, s) in self.slots.iter().enumerate() {
            let seq = s.checkouts.load(Ordering::Acquire);
            if s.phase.load(Ordering::Acquire) != HOLDING {
                continue;
            }
            let since_us = s.since_us.load(Ordering::Relaxed);
            let kind = s.kind.load(Ordering::Relaxed) as usize;
            // A new checkout between the reads: this one is fresh, not long-held.
            if s.checkouts.load(Ordering::Acquire) != seq || since_us > before_us {
                continue;
            }
            out.push(Held {
                worker,
                kind,
                since_us,
                checkout: seq,
            });
        }
        out
    }

    /// Workers still holding a connection.
    pub fn holders(&self) -> Vec<Held> {
        self.held_since(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_counts_and_long_holds_are_seen() {
        let t = Tracker::new(3, Instant::now());
        t.waiting(0, Instant::now());
        t.holding(1, Instant::now(), 4, 1);
        t.publish(
            1,
            Counts {
                ok: 5,
                failed: 2,
                lost: 1,
            },
        );
        t.publish(
            2,
            Counts {
                ok: 1,
                failed: 0,
                lost: 0,
            },
        );
        let s = t.snapshot();
        assert_eq!((s.waiting, s.holding), (1, 1));
        assert_eq!(
            s.counts,
            Counts {
                ok: 6,
                failed: 2,
                lost: 1
            }
        );
        let held = t.held_since(t.now_us());
        assert_eq!(held.len(), 1);
        assert_eq!((held[0].worker, held[0].kind, held[0].checkout), (1, 4, 1));
        assert!(t.held_since(0).is_empty() || held[0].since_us == 0);
        t.idle(1);
        assert!(t.holders().is_empty());
        assert_eq!(std::mem::align_of::<Slot>(), 64);
    }
}
