//! What the connection monitor derives from its ticks: service incidents (drop → recovery) and
//! leaks (connections held past a threshold, or still out at the end).
//!
//! Invariants:
//! - An incident opens on the first tick with connection-loss failures and closes once operations
//!   have succeeded without such failures for [`STABLE`] and the pool is back at its target; an
//!   incident still open at the end is reported unrecovered. Its failed operations are all
//!   failures (any class) between the drop and the close.
//! - A leak is one checkout (worker + its checkout number), reported once, its held time updated
//!   while it lasts; it is never double counted when it is also still out at the end.

use std::collections::HashMap;

use super::tracker::Held;

/// Healthy time needed before an incident counts as over.
pub const STABLE: f64 = 1.0;

/// One loss of service.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// When connection-loss failures began (s since the load started).
    pub dropped_s: f64,
    /// When operations first succeeded again with no more connection losses (s).
    pub service_restored_s: Option<f64>,
    /// When the pool was back at its target size (s).
    pub pool_restored_s: Option<f64>,
    /// Operations that failed between the drop and the end of the incident.
    pub failed_operations: u64,
    /// Of those, failures that were connection losses.
    pub lost_operations: u64,
    /// Lowest number of open connections seen during the incident.
    pub min_open: u32,
}

/// Incident bookkeeping across ticks.
#[derive(Debug, Default)]
pub struct Incidents {
    open: Option<Incident>,
    closed: Vec<Incident>,
}

/// One tick's view: deltas since the previous tick and the pool's size.
#[derive(Debug, Clone, Copy)]
pub struct Tick {
    /// End of the tick (s).
    pub t_s: f64,
    /// Start of the tick (s).
    pub prev_s: f64,
    /// Successful operations in the tick.
    pub ok: u64,
    /// Failed operations in the tick.
    pub failed: u64,
    /// Connection-loss failures in the tick.
    pub lost: u64,
    /// Open connections at the end of the tick.
    pub open: u32,
    /// The pool's target size.
    pub target: u32,
}

impl Incidents {
    /// Feeds one tick.
    pub fn tick(&mut self, t: Tick) {
        let Some(inc) = self.open.as_mut() else {
            if t.lost > 0 {
                self.open = Some(Incident {
                    dropped_s: t.prev_s,
                    service_restored_s: None,
                    pool_restored_s: None,
                    failed_operations: t.failed,
                    lost_operations: t.lost,
                    min_open: t.open,
                });
            }
            return;
        };
        inc.failed_operations += t.failed;
        inc.lost_operations += t.lost;
        inc.min_open = inc.min_open.min(t.open);
        if t.lost > 0 {
            inc.service_restored_s = None;
        } else if t.ok > 0 && inc.service_restored_s.is_none() {
            inc.service_restored_s = Some(t.t_s);
        }
        let full = t.open >= t.target;
        if full && inc.pool_restored_s.is_none() && inc.service_restored_s.is_some() {
            inc.pool_restored_s = Some(t.t_s);
        } else if !full {
            inc.pool_restored_s = None;
        }
        if let (Some(r), Some(_)) = (inc.service_restored_s, inc.pool_restored_s) {
            if t.t_s - r >= STABLE {
                self.closed.push(self.open.take().expect("checked above"));
            }
        }
    }

    /// Whether an incident is in progress.
    pub fn in_progress(&self) -> bool {
        self.open.is_some()
    }

    /// All incidents, the one in progress (if any) last.
    pub fn finish(mut self) -> Vec<Incident> {
        self.closed.extend(self.open.take());
        self.closed
    }
}

/// A connection held too long.
#[derive(Debug, Clone, PartialEq)]
pub struct Leak {
    /// Worker holding it.
    pub worker: usize,
    /// Query type index it was checked out for.
    pub kind: usize,
    /// Checkout time (s since the load started).
    pub since_s: f64,
    /// How long it was held when last seen (s).
    pub held_s: f64,
    /// Still checked out when the run ended.
    pub still_out_at_end: bool,
}

/// Leak bookkeeping across scans.
#[derive(Debug, Default)]
pub struct Leaks {
    seen: HashMap<(usize, u64), usize>,
    leaks: Vec<Leak>,
}

impl Leaks {
    /// Records connections held past the threshold as of `now_us`.
    pub fn scan(&mut self, held: &[Held], now_us: u64) {
        self.note(held, now_us, false);
    }

    /// Records connections still out at the end (leaks whatever their age).
    pub fn at_end(&mut self, held: &[Held], now_us: u64) {
        self.note(held, now_us, true);
    }

    fn note(&mut self, held: &[Held], now_us: u64, end: bool) {
        for h in held {
            let held_s = now_us.saturating_sub(h.since_us) as f64 / 1e6;
            match self.seen.get(&(h.worker, h.checkout)) {
                Some(&i) => {
                    let l = &mut self.leaks[i];
                    l.held_s = held_s;
                    l.still_out_at_end |= end;
                }
                None => {
                    self.seen.insert((h.worker, h.checkout), self.leaks.len());
                    self.leaks.push(Leak {
                        worker: h.worker,
                        kind: h.kind,
                        since_s: h.since_us as f64 / 1e6,
                        held_s,
                        still_out_at_end: end,
                    });
                }
            }
        }
    }

    /// Leaks found so far.
    pub fn count(&self) -> usize {
        self.leaks.len()
    }

    /// The leaks, in order of discovery.
    pub fn finish(self) -> Vec<Leak> {
        self.leaks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(t_s: f64, ok: u64, failed: u64, lost: u64, open: u32) -> Tick {
        Tick {
            t_s,
            prev_s: t_s - 0.1,
            ok,
            failed,
            lost,
            open,
            target: 10,
        }
    }

    #[test]
    fn incident_opens_on_loss_and_closes_after_stable_full_service() {
        let mut inc = Incidents::default();
        inc.tick(tick(1.0, 50, 0, 0, 10));
        assert!(!inc.in_progress());
        inc.tick(tick(1.1, 3, 7, 7, 10));
        inc.tick(tick(1.2, 0, 2, 1, 2));
        inc.tick(tick(1.3, 5, 0, 0, 6));
        inc.tick(tick(1.4, 5, 0, 0, 10));
        assert!(inc.in_progress());
        inc.tick(tick(2.5, 9, 0, 0, 10));
        assert!(!inc.in_progress());
        let all = inc.finish();
        assert_eq!(all.len(), 1);
        let i = &all[0];
        assert!((i.dropped_s - 1.0).abs() < 1e-9);
        assert_eq!(i.service_restored_s, Some(1.3));
        assert_eq!(i.pool_restored_s, Some(1.4));
        assert_eq!(
            (i.failed_operations, i.lost_operations, i.min_open),
            (9, 8, 2)
        );
    }

    #[test]
    fn clean_ticks_make_no_incident_and_an_open_one_is_reported_unrecovered() {
        let mut inc = Incidents::default();
        for k in 0..20 {
            inc.tick(tick(k as f64 * 0.1, 10, 1, 0, 10));
        }
        assert!(inc.finish().is_empty());
        let mut inc = Incidents::default();
        inc.tick(tick(1.0, 0, 5, 5, 0));
        let all = inc.finish();
        assert_eq!(all[0].service_restored_s, None);
    }

    #[test]
    fn a_leak_is_reported_once_and_marked_at_the_end() {
        let h = Held {
            worker: 3,
            kind: 1,
            since_us: 1_000_000,
            checkout: 7,
        };
        let mut l = Leaks::default();
        l.scan(&[h], 5_000_000);
        l.scan(&[h], 6_000_000);
        l.at_end(&[h], 7_000_000);
        let all = l.finish();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].worker, 3);
        assert!((all[0].held_s - 6.0).abs() < 1e-9);
        assert!(all[0].still_out_at_end);
    }
}
