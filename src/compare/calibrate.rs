//! The calibration harness of compare: simulated pairs of sets whose truth is known (A/A, or B
//! changed by a known amount), judged by [`super::judge`], the same code `pgstorm compare` runs,
//! to measure the false-positive rate and the power at given run counts.
//!
//! Invariants: a simulation is deterministic for its seed (one random stream per trial, so the
//! thread count does not matter); every line carries the same true change, and the lines of one
//! run share part of their scatter (a slow run is slow in every query type), as real runs do. In
//! a paired scenario (an interleaved study) that shared part is the state of the target at the
//! time, so both runs of a pair share it.
//!
//! Besides the synthetic sets, [`resample`] draws comparisons from the runs of one real archived
//! set made with nothing changed: each trial splits a random choice of its runs into A and B, so
//! the scatter (its shape, its correlation across lines, its outliers) is the target's own, and
//! a known change is added to B's values.

use rayon::prelude::*;

use super::{judge, CompareOptions, Design, Metric, RunLine, Verdict};
use crate::report::model::{RunDocument, StudyMark};
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
    /// Judged as an interleaved study (pair by pair) instead of two independent sets.
    pub paired: bool,
    /// Drift: every line's true value changes by this much (in %) from one run to the next, in
    /// the order the runs were made (a host whose load changes over the study). Independent
    /// sets run all of A, then all of B; a study runs its pairs in its own order.
    pub drift_pct: f64,
    /// A study whose every pair ran A first, instead of `pgstorm study`'s counterbalanced order
    /// ([`StudyMark::a_runs_first`]). Only for showing what that order is for.
    pub a_always_first: bool,
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
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut Rng) -> f64 {
    let u1 = 1.0 - rng.next_f64();
    let u2 = rng.next_f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// One side's lines: `runs` values per line around `level`, the i-th run sharing `run_effects[i]`
/// across its lines and made `slots[i]`-th in the comparison's time order.
fn side(
    sc: &Scenario,
    level: f64,
    run_effects: &[f64],
    slots: &[usize],
    rng: &mut Rng,
) -> Vec<Vec<f64>> {
    let cv = sc.cv_pct / 100.0;
    (0..sc.lines)
        .map(|_| {
            run_effects
                .iter()
                .zip(slots)
                .map(|(r, &slot)| {
                    let z = sc.shared.sqrt() * r + (1.0 - sc.shared).sqrt() * normal(rng);
                    let level = level * (1.0 + sc.drift_pct / 100.0).powi(slot as i32);
                    match sc.noise {
                        Noise::Normal => level * (1.0 + cv * z),
                        Noise::LogNormal => level * (cv * z - cv * cv / 2.0).exp(),
                    }
                })
                .collect()
        })
        .collect()
}

/// When each run of A and of B was made (its index in the comparison's time order).
fn slots(sc: &Scenario) -> (Vec<usize>, Vec<usize>) {
    if !sc.paired {
        return ((0..sc.runs).collect(), (sc.runs..2 * sc.runs).collect());
    }
    (0..sc.runs)
        .map(|pair| {
            let a_first = sc.a_always_first || StudyMark::a_runs_first(pair as u32);
            let (first, second) = (2 * pair, 2 * pair + 1);
            if a_first {
                (first, second)
            } else {
                (second, first)
            }
        })
        .unzip()
}

/// Simulates `trials` comparisons of `sc` and judges them with `opts`.
pub fn simulate(sc: &Scenario, trials: usize, seed: u64, opts: &CompareOptions) -> Rates {
    let design = if sc.paired {
        Design::Paired
    } else {
        Design::Independent
    };
    let (sa, sb) = slots(sc);
    let per_trial: Vec<(bool, usize)> = (0..trials)
        .into_par_iter()
        .map(|t| {
            let mut rng = Rng::stream(seed, t as u64);
            let effects = |rng: &mut Rng| (0..sc.runs).map(|_| normal(rng)).collect::<Vec<_>>();
            let ea = effects(&mut rng);
            let eb = if sc.paired {
                ea.clone()
            } else {
                effects(&mut rng)
            };
            let a = side(sc, 100.0, &ea, &sa, &mut rng);
            let b = side(
                sc,
                100.0 * (1.0 + sc.effect_pct / 100.0),
                &eb,
                &sb,
                &mut rng,
            );
            let lines: Vec<RunLine> = a
                .into_iter()
                .zip(b)
                .map(|(va, vb)| (Metric::Tps, va, vb))
                .collect();
            let verdicts = judge(&lines, design, opts);
            let any = verdicts
                .iter()
                .any(|d| matches!(d.verdict, Verdict::Improved | Verdict::Regressed));
            let right = if sc.effect_pct < 0.0 {
                Verdict::Regressed
            } else {
                Verdict::Improved
            };
            (any, verdicts.iter().filter(|d| d.verdict == right).count())
        })
        .collect();
    let lines = (trials * sc.lines).max(1) as f64;
    Rates {
        trials,
        any_significant: per_trial.iter().filter(|t| t.0).count() as f64 / trials.max(1) as f64,
        detected: per_trial.iter().map(|t| t.1).sum::<usize>() as f64 / lines,
    }
}

/// The line values of a real run, in compare's order (each query type, then the whole mix;
/// every metric of each), or None for a run without a query load.
pub fn run_lines(doc: &RunDocument) -> Option<Vec<(Metric, f64)>> {
    let load = doc.load.as_ref()?;
    Some(
        load.queries
            .iter()
            .chain(std::iter::once(&load.summary))
            .flat_map(|q| Metric::ALL.iter().map(move |m| (*m, m.of(q))))
            .collect(),
    )
}

/// `value` moved by a true change of `effect_pct` that improves `metric` (throughput up,
/// latency down); the error rate, in percentage points, is left as it was.
fn improved(metric: Metric, value: f64, effect_pct: f64) -> f64 {
    let f = 1.0 + effect_pct / 100.0;
    match metric {
        Metric::ErrorRate => value,
        m if m.higher_is_better() => value * f,
        _ => value / f,
    }
}

/// Simulates `trials` comparisons of `per_side` runs against `per_side` others, drawn without
/// replacement from `runs` (the line values of real runs of one unchanged set, from
/// [`run_lines`]; all of the same shape), with B's values improved by `effect_pct`, judged as
/// independent sets. `detected` counts the lines that can carry the change (not the error
/// rate). Panics if fewer than `2 × per_side` runs are given.
pub fn resample(
    runs: &[Vec<(Metric, f64)>],
    per_side: usize,
    effect_pct: f64,
    trials: usize,
    seed: u64,
    opts: &CompareOptions,
) -> Rates {
    assert!(runs.len() >= 2 * per_side, "too few runs to resample");
    let lines = runs[0].len();
    let per_trial: Vec<(bool, usize, usize)> = (0..trials)
        .into_par_iter()
        .map(|t| {
            let mut rng = Rng::stream(seed, t as u64);
            // A partial Fisher–Yates shuffle: the first 2 × per_side indices are the draw.
            let mut idx: Vec<usize> = (0..runs.len()).collect();
            for i in 0..2 * per_side {
                let j = i + rng.range_i64(0, (runs.len() - i - 1) as i64) as usize;
                idx.swap(i, j);
            }
            let (a, b) = idx[..2 * per_side].split_at(per_side);
            let line_set: Vec<RunLine> = (0..lines)
                .map(|l| {
                    let metric = runs[a[0]][l].0;
                    let va = a.iter().map(|&r| runs[r][l].1).collect();
                    let vb = b
                        .iter()
                        .map(|&r| improved(metric, runs[r][l].1, effect_pct))
                        .collect();
                    (metric, va, vb)
                })
                .collect();
            let verdicts = judge(&line_set, Design::Independent, opts);
            let any = verdicts
                .iter()
                .any(|d| matches!(d.verdict, Verdict::Improved | Verdict::Regressed));
            let carrying = line_set
                .iter()
                .filter(|(m, _, _)| *m != Metric::ErrorRate)
                .count();
            let right = verdicts
                .iter()
                .filter(|d| d.metric != Metric::ErrorRate && d.verdict == Verdict::Improved)
                .count();
            (any, right, carrying)
        })
        .collect();
    Rates {
        trials,
        any_significant: per_trial.iter().filter(|t| t.0).count() as f64 / trials.max(1) as f64,
        detected: per_trial.iter().map(|t| t.1).sum::<usize>() as f64
            / per_trial.iter().map(|t| t.2).sum::<usize>().max(1) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(runs: usize, effect_pct: f64, noise: Noise, paired: bool) -> Scenario {
        Scenario {
            runs,
            lines: 49,
            cv_pct: 2.5,
            shared: 0.5,
            effect_pct,
            noise,
            paired,
            drift_pct: 0.0,
            a_always_first: false,
        }
    }

    #[test]
    fn a_over_a_stays_under_five_percent_and_a_real_change_is_found() {
        let opts = CompareOptions::default();
        for noise in [Noise::Normal, Noise::LogNormal] {
            // Negative control: nothing changed, 49 lines per comparison.
            let aa = simulate(&scenario(5, 0.0, noise, false), 200, 18, &opts);
            assert!(aa.any_significant <= 0.05, "{noise:?}: {aa:?}");
            // Positive control: a 10 % gain at 5 runs per side is seen on most lines.
            let gain = simulate(&scenario(5, 10.0, noise, false), 50, 18, &opts);
            assert!(gain.detected >= 0.8, "{noise:?}: {gain:?}");
            // And a 10 % loss the other way round.
            let loss = simulate(&scenario(5, -10.0, noise, false), 50, 18, &opts);
            assert!(loss.detected >= 0.8, "{noise:?}: {loss:?}");
        }
    }

    #[test]
    fn three_runs_per_side_or_three_pairs_keep_the_level_and_see_a_large_change() {
        let opts = CompareOptions::default();
        for paired in [false, true] {
            // Negative control: no exact test reaches 5 % here, so the t-tests answer; their
            // A/A rate must hold as the exact tests' does.
            let aa = simulate(&scenario(3, 0.0, Noise::LogNormal, paired), 200, 18, &opts);
            assert!(aa.any_significant <= 0.05, "paired {paired}: {aa:?}");
            // Positive control: a 10 % gain (four times the run-to-run scatter) is seen.
            let gain = simulate(&scenario(3, 10.0, Noise::LogNormal, paired), 50, 18, &opts);
            assert!(gain.detected >= 0.5, "paired {paired}: {gain:?}");
        }
    }

    /// The drift the study's order is for: a host getting faster by 5 % per run (a fresh
    /// clone's tests once met a 15 % difference between two sets of runs made one after the
    /// other). A study running A first in every pair reads it as B being faster; the
    /// counterbalanced order keeps the A/A level.
    #[test]
    fn a_study_in_counterbalanced_order_keeps_the_level_under_a_steady_drift() {
        let opts = CompareOptions::default();
        for pairs in [3, 4] {
            let drifting = |a_always_first: bool| Scenario {
                drift_pct: 5.0,
                a_always_first,
                ..scenario(pairs, 0.0, Noise::LogNormal, true)
            };
            // Positive control: with A first in every pair, the drift is called a change.
            let fixed = simulate(&drifting(true), 200, 18, &opts);
            assert!(fixed.any_significant >= 0.2, "{pairs} pairs: {fixed:?}");
            let balanced = simulate(&drifting(false), 200, 18, &opts);
            assert!(
                balanced.any_significant <= 0.05,
                "{pairs} pairs: {balanced:?}"
            );
        }
    }

    /// The line values of the runs of the archived A/A set in results/ (ten runs of the POS mix
    /// on a sandbox with nothing changed, made by the command in its COMMAND file).
    fn archived_runs() -> Vec<Vec<(Metric, f64)>> {
        let results = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
        let set = std::fs::read_dir(&results)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with("-calibration-aa-set"))
            .expect("an archived calibration-aa set in results/");
        let side = crate::compare::load_side(set.to_str().unwrap()).unwrap();
        side.runs.iter().filter_map(run_lines).collect()
    }

    #[test]
    fn comparisons_drawn_from_real_unchanged_runs_keep_the_level_and_see_a_known_change() {
        let runs = archived_runs();
        assert!(runs.len() >= 10, "{} runs", runs.len());
        let opts = CompareOptions::default();
        for per_side in [3, 5] {
            // Negative control: both sides are real runs of one unchanged target.
            let aa = resample(&runs, per_side, 0.0, 200, 7, &opts);
            assert!(aa.any_significant <= 0.05, "{per_side} per side: {aa:?}");
        }
        // Positive control: the same runs with B improved by 20 % are told apart on most lines.
        let gain = resample(&runs, 5, 20.0, 50, 7, &opts);
        assert!(gain.detected >= 0.5, "{gain:?}");
    }
}
