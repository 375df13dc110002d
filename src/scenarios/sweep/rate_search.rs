//! `--rate-search`: open-loop probes bisecting the arrival rate to find the highest one whose
//! chosen percentile (measured from the intended start, so free of coordinated omission) stays
//! under the SLO: the maximum sustainable throughput at a given pool size.
//!
//! The first probe offers the sweep's best closed-loop throughput. While every probe passes the
//! rate doubles; while none has, it halves; once a pass and a fail bracket the limit, it bisects
//! until the bracket is within the tolerance or the probe budget is spent. A probe passes when
//! the percentile meets the SLO, no transaction failed, and it completed its offered rate (a
//! server that falls behind would otherwise look fast by never starting the late work).

use super::Bench;
use crate::analysis::slo::Slo;
use crate::report::latency_summary;
use crate::report::model::{RateProbe, RateSearch};

/// Share of the offered transactions a probe must complete (less Poisson slack, see
/// [`required_count`]).
pub const MIN_COMPLETION: f64 = 0.9;

/// Below this rate (tx/s) halving stops: the server cannot meet the SLO at any useful rate.
const MIN_RATE: f64 = 1.0;

/// Options of the rate search.
#[derive(Debug, Clone)]
pub struct RateSearchOptions {
    /// Probe budget (`--rate-probes`).
    pub max_probes: u32,
    /// Stop when (fail − pass) / fail is at or below this.
    pub tolerance: f64,
    /// Pool size of the probes (default: the recommended pool size).
    pub clients: Option<u32>,
}

impl Default for RateSearchOptions {
    fn default() -> Self {
        RateSearchOptions {
            max_probes: 8,
            tolerance: 0.05,
            clients: None,
        }
    }
}

/// Transactions a probe offered `expected` must complete: [`MIN_COMPLETION`] of them, loosened by
/// three standard deviations of a Poisson count so short, slow probes do not fail on chance.
pub fn required_count(expected: f64) -> f64 {
    (expected * MIN_COMPLETION).min(expected - 3.0 * expected.sqrt())
}

/// The next rate to probe, or `None` when the search is done.
fn next_rate(pass: Option<f64>, fail: Option<f64>, tolerance: f64) -> Option<f64> {
    match (pass, fail) {
        (Some(p), None) => Some(p * 2.0),
        (None, Some(f)) => (f / 2.0 >= MIN_RATE).then_some(f / 2.0),
        (Some(p), Some(f)) => ((f - p) / f > tolerance).then_some((p + f) / 2.0),
        (None, None) => None,
    }
}

/// Runs the search with `clients` workers, starting at `ceiling` tx/s (the sweep's best
/// closed-loop throughput). Returns the search (the probes that ran), whether Ctrl-C cut it
/// short, and why a probe could not run, if one could not: the sweep's levels are kept either way.
pub(crate) fn run(
    bench: &mut Bench<'_>,
    opts: &RateSearchOptions,
    slo: &Slo,
    clients: u32,
    ceiling: f64,
) -> (RateSearch, bool, Option<String>) {
    let duration_s = bench
        .opts
        .engine
        .duration
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let mut probes = Vec::new();
    let (mut pass, mut fail): (Option<f64>, Option<f64>) = (None, None);
    let mut rate = Some(ceiling.max(MIN_RATE));
    let mut interrupted = false;
    let mut failure = None;
    while let Some(r) = rate {
        if probes.len() as u32 >= opts.max_probes {
            break;
        }
        if bench.session.stop.is_stopped() {
            interrupted = true;
            break;
        }
        eprintln!(
            "pgstorm: rate probe {}/{}: {r:.1} tx/s offered to {clients} clients",
            probes.len() + 1,
            opts.max_probes
        );
        let out = match bench.load(clients, Some(r)) {
            Ok((out, _)) => out,
            Err(e) if super::was_interrupted(&bench.session.stop, &e) => {
                interrupted = true;
                break;
            }
            Err(e) => {
                failure = Some(format!(
                    "the rate search stopped at {r:.1} tx/s: {e:#}; the probes before it are kept"
                ));
                break;
            }
        };
        let mut all = crate::engine::stats::TypeStats::new(3);
        for t in &out.totals {
            all.add(t);
        }
        let secs = out.measured.as_secs_f64();
        let latency = latency_summary(&all.latency);
        let errors = all.error_total();
        let expected = r * secs;
        let mut reasons = Vec::new();
        if !slo.met_by(&latency) {
            reasons.push(format!(
                "p{} {:.3} ms does not meet {slo}",
                slo.percentile,
                slo.value(&latency)
            ));
        }
        if errors > 0 {
            reasons.push(format!("{errors} failed transactions"));
        }
        if ((all.ok + errors) as f64) < required_count(expected) {
            reasons.push(format!(
                "completed {} of ~{expected:.0} offered transactions",
                all.ok + errors
            ));
        }
        let passed = reasons.is_empty();
        let probe = RateProbe {
            rate: r,
            achieved_tps: if secs > 0.0 {
                all.ok as f64 / secs
            } else {
                0.0
            },
            count: all.ok,
            errors,
            lag_p99_ms: latency_summary(&out.lag).p99_ms,
            latency,
            passed,
            reason: reasons.join("; "),
        };
        eprintln!(
            "pgstorm:   {:.1} tx/s achieved, p{} {:.3} ms: {}",
            probe.achieved_tps,
            slo.percentile,
            slo.value(&probe.latency),
            if passed {
                "pass"
            } else {
                probe.reason.as_str()
            }
        );
        probes.push(probe);
        if passed {
            pass = Some(pass.map_or(r, |p: f64| p.max(r)));
        } else {
            fail = Some(fail.map_or(r, |f: f64| f.min(r)));
        }
        if out.interrupted {
            interrupted = true;
            break;
        }
        rate = next_rate(pass, fail, opts.tolerance);
    }
    (
        RateSearch {
            clients,
            slo: super::slo_spec(slo),
            duration_s,
            min_completion: MIN_COMPLETION,
            probes,
            max_sustainable_rate: pass,
            lowest_failing_rate: fail,
        },
        interrupted,
        failure,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_doubles_halves_then_bisects_to_the_tolerance() {
        assert_eq!(next_rate(Some(100.0), None, 0.05), Some(200.0));
        assert_eq!(next_rate(None, Some(100.0), 0.05), Some(50.0));
        assert_eq!(next_rate(None, Some(1.5), 0.05), None);
        assert_eq!(next_rate(Some(100.0), Some(200.0), 0.05), Some(150.0));
        assert_eq!(next_rate(Some(96.0), Some(100.0), 0.05), None);
    }

    #[test]
    fn completion_allows_poisson_slack_only_at_small_counts() {
        assert_eq!(required_count(10_000.0), 9_000.0);
        assert!(required_count(50.0) < 45.0);
        assert!(required_count(50.0) > 25.0);
    }
}
