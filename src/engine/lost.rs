//! Deciding that the target is gone, so a run against a dead server ends instead of measuring
//! nothing for the rest of its duration.
//!
//! The one rule, for both drivers (read from their [`PoolCounters`] by the run-end wait loop):
//! the target is lost when no load connection has been open for the grace period and at least
//! one attempt to reopen one failed meanwhile. With no connection open no transaction can
//! succeed, so the moment the last one closed is when the target stopped serving the run; rates
//! are computed up to it. A connection that opens again (a restart within the grace period)
//! resets the watch: the run goes on and counts as recovered.
//!
//! Invariant: only connection counters are read (a few atomics every poll); nothing is added
//! to the per-query path.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::pool::PoolCounters;

/// Grace period when none is given (`--lost-grace`): longer than a fast restart takes (about a
/// second on the sandbox), short enough that a dead server does not eat the run.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// Why and when a run lost its target.
#[derive(Debug, Clone)]
pub struct TargetLost {
    /// When the last load connection closed, measured from the run's start (warmup included).
    pub at: Duration,
    /// The last connection failure, redacted and on one line (SQLSTATE or OS error text).
    pub reason: String,
}

/// The counters the watch reads, at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reading {
    /// Connections opened so far.
    pub opened: u64,
    /// Connections closed or dropped as broken so far.
    pub closed: u64,
    /// Failed connection attempts so far.
    pub failed: u64,
}

impl Reading {
    /// The counters of `c` now.
    pub(crate) fn of(c: &PoolCounters) -> Reading {
        Reading {
            opened: c.opened.load(Ordering::Relaxed),
            closed: c.closed.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
        }
    }
}

/// The watch: fed a [`Reading`] every poll, says when the target is lost.
pub(crate) struct LostWatch {
    grace: Duration,
    seen_opened: u64,
    /// Since when no connection is open, and the failed-attempt count at that moment.
    none_open: Option<(Instant, u64)>,
}

impl LostWatch {
    /// A watch that declares the target lost after `grace` without an open connection.
    pub(crate) fn new(grace: Duration) -> LostWatch {
        LostWatch {
            grace,
            seen_opened: 0,
            none_open: None,
        }
    }

    /// Takes the reading `r` made at `now`; returns the moment the last connection closed once
    /// the target counts as lost.
    pub(crate) fn observe(&mut self, now: Instant, r: Reading) -> Option<Instant> {
        let reopened = r.opened > self.seen_opened;
        self.seen_opened = r.opened;
        if r.opened > r.closed {
            self.none_open = None;
            return None;
        }
        // A connection that opened and closed again since the last poll shows the server
        // answering: the grace period starts over.
        if reopened || self.none_open.is_none() {
            self.none_open = Some((now, r.failed));
        }
        let (since, failed_then) = self.none_open?;
        (now.saturating_duration_since(since) >= self.grace && r.failed > failed_then)
            .then_some(since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(opened: u64, closed: u64, failed: u64) -> Reading {
        Reading {
            opened,
            closed,
            failed,
        }
    }

    const GRACE: Duration = Duration::from_secs(5);

    #[test]
    fn every_connection_gone_and_reconnects_failing_for_the_grace_is_lost() {
        let t0 = Instant::now();
        let s = |x: f64| t0 + Duration::from_secs_f64(x);
        let mut w = LostWatch::new(GRACE);
        assert_eq!(w.observe(s(0.0), reading(4, 0, 0)), None);
        assert_eq!(w.observe(s(1.0), reading(4, 3, 1)), None);
        assert_eq!(w.observe(s(1.5), reading(4, 4, 2)), None);
        assert_eq!(w.observe(s(6.0), reading(4, 4, 9)), None);
        // Lost at the moment the last connection closed, once the grace has passed since.
        assert_eq!(w.observe(s(6.5), reading(4, 4, 10)), Some(s(1.5)));
    }

    #[test]
    fn a_server_back_within_the_grace_is_not_lost() {
        let t0 = Instant::now();
        let s = |x: f64| t0 + Duration::from_secs_f64(x);
        let mut w = LostWatch::new(GRACE);
        assert_eq!(w.observe(s(0.0), reading(4, 4, 3)), None);
        assert_eq!(w.observe(s(3.0), reading(8, 4, 6)), None);
        assert_eq!(w.observe(s(20.0), reading(8, 4, 6)), None);
    }

    #[test]
    fn some_connections_open_while_others_fail_is_not_lost() {
        let t0 = Instant::now();
        let mut w = LostWatch::new(GRACE);
        for i in 0..100 {
            let now = t0 + Duration::from_millis(100 * i);
            assert_eq!(w.observe(now, reading(4, 3, i)), None);
        }
    }

    #[test]
    fn no_failed_reconnect_is_not_lost() {
        // Nothing open but nothing tried either (e.g. every client finished its -t count).
        let t0 = Instant::now();
        let mut w = LostWatch::new(GRACE);
        assert_eq!(w.observe(t0, reading(4, 4, 0)), None);
        assert_eq!(w.observe(t0 + GRACE * 3, reading(4, 4, 0)), None);
    }

    #[test]
    fn a_connection_that_opens_and_dies_between_polls_restarts_the_grace() {
        let t0 = Instant::now();
        let s = |x: f64| t0 + Duration::from_secs_f64(x);
        let mut w = LostWatch::new(GRACE);
        assert_eq!(w.observe(s(0.0), reading(4, 4, 1)), None);
        assert_eq!(w.observe(s(4.0), reading(5, 5, 2)), None);
        assert_eq!(w.observe(s(8.0), reading(5, 5, 3)), None);
        assert_eq!(w.observe(s(9.0), reading(5, 5, 4)), Some(s(4.0)));
    }
}
