//! Stalls: episodes in which many clients waited at once, told apart from outliers and from
//! pauses of the client itself.
//!
//! One slow transaction is an outlier; a busy 2-core machine makes them all the time. A stall of
//! the server (a lock, a checkpoint storm, a frozen disk) makes *many* clients wait *at the same
//! time*. So an episode needs at least [`min_clients`] distinct clients inside transactions of at
//! least [`threshold_us`] at one instant, for at least half that threshold. When pgstorm itself was
//! paused for a good part of the episode (the hiccup meter, [`super::hiccup`]), the clients waited
//! on their own process, not on the server, and the episode says so.
//!
//! Invariants: pure functions of the recorded slow transactions and pauses, so the verdict can be
//! recomputed and tested without a server; a client counts once at any instant however many of
//! its transactions overlap there (they cannot, but warmup cut-offs and clock reads at interval
//! boundaries must not make one client look like two).

use super::hiccup::Pause;
use super::stats::SlowTx;

/// Absolute floor of the slow threshold: below it, nothing is called a stall.
pub const THRESHOLD_FLOOR_US: u64 = 200_000;
/// The slow threshold as a multiple of the median latency.
const THRESHOLD_TIMES_MEDIAN: u64 = 50;
/// Share of an episode during which pgstorm was paused that makes it the client's.
const CLIENT_SHARE: f64 = 0.25;

/// One episode of many clients waiting at once.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    /// Start of the span in which enough clients were waiting, µs since the run's start.
    pub start_us: u64,
    /// Length of that span, µs.
    pub dur_us: u64,
    /// Most clients waiting at one instant in it.
    pub clients_waiting: u32,
    /// Time pgstorm itself was paused during the span, µs.
    pub client_paused_us: u64,
}

impl Episode {
    /// Whether the client's own pauses explain the episode.
    pub fn is_client_pause(&self) -> bool {
        self.client_paused_us as f64 >= CLIENT_SHARE * self.dur_us as f64
    }
}

/// A transaction counts as waiting in a stall when it took at least this long: 200 ms, or 50
/// times the median latency when that is longer (a workload of 100 ms reports is not stalled by a
/// 300 ms one).
pub fn threshold_us(median_us: u64) -> u64 {
    median_us
        .saturating_mul(THRESHOLD_TIMES_MEDIAN)
        .max(THRESHOLD_FLOOR_US)
}

/// Clients that must wait at once: three in four of them, and at least two. A stall of the
/// server (a lock, a frozen disk) holds nearly every client; a CPU-starved host delays a few
/// backends at a time, and on a busy 2-core VM two of four clients did wait together.
pub fn min_clients(clients: u32) -> u32 {
    (clients.saturating_mul(3)).div_ceil(4).max(2)
}

/// The episodes in `slow` (transactions of every client) for a run of `clients` clients whose
/// median latency was `median_us`, with the client's own `pauses`.
pub fn episodes(slow: &[SlowTx], pauses: &[Pause], clients: u32, median_us: u64) -> Vec<Episode> {
    let threshold = threshold_us(median_us);
    let need = min_clients(clients);
    // Sweep over start (+1) and end (-1) events of each client's merged waiting spans.
    let mut spans: Vec<(u32, u64, u64)> = slow
        .iter()
        .filter(|s| s.dur_us >= threshold)
        .map(|s| (s.client, s.start_us, s.start_us + s.dur_us))
        .collect();
    spans.sort_unstable();
    let mut events: Vec<(u64, i32)> = Vec::new();
    let mut i = 0;
    while i < spans.len() {
        let (client, start, mut end) = spans[i];
        i += 1;
        while i < spans.len() && spans[i].0 == client && spans[i].1 <= end {
            end = end.max(spans[i].2);
            i += 1;
        }
        events.push((start, 1));
        events.push((end, -1));
    }
    // Ends before starts at the same instant: touching spans do not overlap.
    events.sort_unstable();
    let mut out = Vec::new();
    let mut waiting: i32 = 0;
    let mut open: Option<(u64, u32)> = None;
    for (t, delta) in events {
        waiting += delta;
        match open {
            None if waiting >= need as i32 => open = Some((t, waiting as u32)),
            Some((from, peak)) if waiting < need as i32 => {
                open = None;
                let dur = t - from;
                if dur >= threshold / 2 {
                    out.push(Episode {
                        start_us: from,
                        dur_us: dur,
                        clients_waiting: peak,
                        client_paused_us: overlap(pauses, from, t),
                    });
                }
            }
            Some((from, peak)) => open = Some((from, peak.max(waiting as u32))),
            None => {}
        }
    }
    out
}

fn overlap(pauses: &[Pause], from: u64, to: u64) -> u64 {
    pauses
        .iter()
        .map(|p| {
            let (a, b) = (p.start_us.max(from), (p.start_us + p.dur_us).min(to));
            b.saturating_sub(a)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(client: u32, start_ms: u64, dur_ms: u64) -> SlowTx {
        SlowTx {
            client,
            start_us: start_ms * 1000,
            dur_us: dur_ms * 1000,
        }
    }

    #[test]
    fn one_slow_transaction_is_an_outlier_not_a_stall() {
        let slow = [tx(0, 1000, 900), tx(1, 3000, 150), tx(2, 5000, 30)];
        assert!(episodes(&slow, &[], 4, 300).is_empty());
    }

    #[test]
    fn slow_transactions_of_different_clients_at_different_times_are_no_stall() {
        let slow = [tx(0, 1000, 400), tx(1, 2000, 400), tx(2, 3000, 400)];
        assert!(episodes(&slow, &[], 4, 300).is_empty());
    }

    #[test]
    fn two_of_four_clients_delayed_together_are_no_stall() {
        // What a CPU-starved host does: a few backends wait for a CPU at the same time.
        let slow = [tx(0, 1000, 400), tx(1, 1050, 400)];
        assert!(episodes(&slow, &[], 4, 300).is_empty());
        // The same two are all the clients of a two-client run: then they are a stall.
        assert_eq!(episodes(&slow, &[], 2, 300).len(), 1);
    }

    #[test]
    fn clients_blocked_together_are_a_stall_with_its_span_and_width() {
        // A 1 s lock: all four clients block on it, entering at slightly different times.
        let slow = [
            tx(0, 1500, 1000),
            tx(1, 1501, 999),
            tx(2, 1502, 998),
            tx(3, 1510, 990),
        ];
        let e = episodes(&slow, &[], 4, 300);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].start_us, 1_502_000);
        assert_eq!(e[0].dur_us, 998_000);
        assert_eq!(e[0].clients_waiting, 4);
        assert!(!e[0].is_client_pause());
    }

    #[test]
    fn a_pause_of_pgstorm_itself_explains_the_episode() {
        let slow = [tx(0, 1000, 500), tx(1, 1000, 500), tx(2, 1000, 500)];
        let pause = [Pause {
            start_us: 1_050_000,
            dur_us: 400_000,
        }];
        let e = episodes(&slow, &pause, 4, 300);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].client_paused_us, 400_000);
        assert!(e[0].is_client_pause());
    }

    #[test]
    fn the_threshold_follows_a_slow_median_and_one_client_counts_once() {
        // Median 10 ms: 300 ms is only 30 times it, no stall.
        let slow = [tx(0, 0, 300), tx(1, 0, 300)];
        assert!(episodes(&slow, &[], 2, 10_000).is_empty());
        assert_eq!(episodes(&slow, &[], 2, 1000).len(), 1);
        // Two overlapping records of one client are one waiting client.
        let same = [tx(0, 0, 300), tx(0, 100, 300)];
        assert!(episodes(&same, &[], 2, 1000).is_empty());
        assert_eq!(min_clients(1), 2);
        assert_eq!(min_clients(4), 3);
        assert_eq!(min_clients(500), 375);
    }
}
