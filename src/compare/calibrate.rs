//! The calibration harness of compare: simulated pairs of sets whose truth is known (A/A, or B
//! changed by a known amount), judged by [`super::judge`], the same code `pgstorm compare` runs,
//! to measure the false-positive rate and the power at given run counts.
//!
//! Invariants: a simulation is deterministic for its seed (one random stream per trial, so the
//! thread count does not matter); every line carries the same true change, and the lines of one
//! run share part of their scatter (a slow run is slow in every query type), as real runs do.

use rayon::prelude::*;

use super::{judge, CompareOptions, Metric, RunLine, Verdict};
use crate::rng::Rng;

/// How the run-level values scatter around their true value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noise {
    /// value × (1 + cv·z), z standard normal.
    Normal,
    /// value × exp(cv·z − cv²/2): skewed, with the same mean.
    LogNormal,
}

/// One simulated comparison design.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Runs per side.
    pub runs: usize,
    /// Lines compared (metrics × query types; 49 for the POS mix).
    pub lines: usize,
    /// Run-to-run coefficient of variation of each line, in %.
    pub cv_pct: f64,
    /// Share (0..1) of a line's run-to-run variance common to all lines of the run.
    pub shared: f64,
    /// True change of B in % (0 for an A/A comparison); a higher value is an improvement.
    pub effect_pct: f64,
    /// Shape of the scatter.
    pub noise: Noise,
}

/// What the simulated comparisons concluded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// Comparisons simulated.
    pub trials: usize,
    /// Share of comparisons with at least one significant line (with no true change: the
    /// family-wise false-positive rate).
    pub any_significant: f64,
    /// Share of lines called significant in the direction of the true change (the power).
    pub detected: f64,
    /// Share of lines whose verdict is "too few runs".
    pub too_few: f64,
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut Rng) -> f64 {
    let u1 = 1.0 - rng.next_f64();
    let u2 = rng.next_f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// One side's lines: `runs` values per line around `level`.
fn side(sc: &Scenario, level: f64, rng: &mut Rng) -> Vec<Vec<f64>> {
    let cv = sc.cv_pct / 100.0;
    let run_effects: Vec<f64> = (0..sc.runs).map(|_| normal(rng)).collect();
    (0..sc.lines)
        .map(|_| {
            run_effects
                .iter()
                .map(|r| {
                    let z = sc.shared.sqrt() * r + (1.0 - sc.shared).sqrt() * normal(rng);
                    match sc.noise {
                        Noise::Normal => level * (1.0 + cv * z),
                        Noise::LogNormal => level * (cv * z - cv * cv / 2.0).exp(),
                    }
                })
                .collect()
        })
        .collect()
}

/// Simulates `trials` comparisons of `sc` and judges them with `opts`.
pub fn simulate(sc: &Scenario, trials: usize, seed: u64, opts: &CompareOptions) -> Rates {
    let per_trial: Vec<(bool, usize, usize)> = (0..trials)
        .into_par_iter()
        .map(|t| {
            let mut rng = Rng::stream(seed, t as u64);
            let a = side(sc, 100.0, &mut rng);
            let b = side(sc, 100.0 * (1.0 + sc.effect_pct / 100.0), &mut rng);
            let lines: Vec<RunLine> = a
                .into_iter()
                .zip(b)
                .map(|(va, vb)| (Metric::Tps, va, vb))
                .collect();
            let verdicts = judge(&lines, opts);
            let any = verdicts
                .iter()
                .any(|d| matches!(d.verdict, Verdict::Improved | Verdict::Regressed));
            let right = if sc.effect_pct < 0.0 {
                Verdict::Regressed
            } else {
                Verdict::Improved
            };
            let detected = verdicts.iter().filter(|d| d.verdict == right).count();
            let too_few = verdicts
                .iter()
                .filter(|d| d.verdict == Verdict::TooFewRuns)
                .count();
            (any, detected, too_few)
        })
        .collect();
    let lines = (trials * sc.lines).max(1) as f64;
    Rates {
        trials,
        any_significant: per_trial.iter().filter(|t| t.0).count() as f64 / trials.max(1) as f64,
        detected: per_trial.iter().map(|t| t.1).sum::<usize>() as f64 / lines,
        too_few: per_trial.iter().map(|t| t.2).sum::<usize>() as f64 / lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(runs: usize, effect_pct: f64, noise: Noise) -> Scenario {
        Scenario {
            runs,
            lines: 49,
            cv_pct: 2.5,
            shared: 0.5,
            effect_pct,
            noise,
        }
    }

    #[test]
    fn a_over_a_stays_under_five_percent_and_a_real_change_is_found() {
        let opts = CompareOptions::default();
        for noise in [Noise::Normal, Noise::LogNormal] {
            // Negative control: nothing changed, 49 lines per comparison.
            let aa = simulate(&scenario(5, 0.0, noise), 200, 18, &opts);
            assert!(aa.any_significant <= 0.05, "{noise:?}: {aa:?}");
            // Positive control: a 10 % gain at 5 runs per side is seen on most lines.
            let gain = simulate(&scenario(5, 10.0, noise), 50, 18, &opts);
            assert!(gain.detected >= 0.8, "{noise:?}: {gain:?}");
            // And a 10 % loss the other way round.
            let loss = simulate(&scenario(5, -10.0, noise), 50, 18, &opts);
            assert!(loss.detected >= 0.8, "{noise:?}: {loss:?}");
        }
    }

    #[test]
    fn three_runs_per_side_never_guess() {
        let r = simulate(
            &scenario(3, 10.0, Noise::Normal),
            20,
            18,
            &CompareOptions::default(),
        );
        assert_eq!((r.any_significant, r.too_few), (0.0, 1.0), "{r:?}");
    }
}
