//! The calibration table of `pgstorm compare` (docs/measurements.md, "Calibration of `pgstorm
//! compare`"): simulated pairs of sets judged by the same code as compare, at its default
//! settings. Prints a Markdown table of the share of A/A comparisons with any significant line
//! (the false-positive rate) and of lines that detect a true 5 % and 10 % change (the power), at
//! 2, 3, 5 and 10 runs per side, for independent sets and for the pairs of an interleaved study,
//! with the test each row used.
//!
//! Folders among the arguments are archived sets of unchanged runs (made with `--repeat`): each
//! adds rows whose comparisons are drawn from its real runs (`calibrate::resample`).
//!
//! Run it with `scripts/calibrate-compare.sh [trials] [set folder ...]`.

use pgstorm::compare::calibrate::{resample, run_lines, simulate, Noise, Scenario};
use pgstorm::compare::{CompareOptions, Design, Test};

/// Comparisons per cell unless given: the standard error of a 5 % rate is then 1 point.
const DEFAULT_TRIALS: usize = 500;
/// Lines per comparison: 7 metrics × (`all` + the six query types of the POS mix).
const LINES: usize = 49;
/// Run-to-run coefficient of variation of each line, in %.
const CV_PCT: f64 = 2.5;
/// Share of the run-to-run variance common to every line of a run.
const SHARED: f64 = 0.5;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not, and then one
    // comparison per cell only shows that the table still builds. A number among the arguments
    // sets the trials per cell.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let trials = if args.iter().any(|a| a == "--bench") {
        args.iter()
            .find_map(|a| a.parse::<usize>().ok())
            .unwrap_or(DEFAULT_TRIALS)
    } else {
        1
    };
    let opts = CompareOptions::default();
    println!(
        "{LINES} lines per comparison, run-to-run CV {CV_PCT} % ({:.0} % of it shared by the lines \
         of a run), level {}, noise floor {} %, {trials} simulated comparisons per cell\n",
        SHARED * 100.0,
        opts.level,
        opts.min_noise_pct
    );
    println!("| design | scatter | runs per side | test | A/A: comparisons with any significant line | power, 5 % change | power, 10 % change |");
    println!("|---|---|---:|---|---:|---:|---:|");
    for paired in [false, true] {
        for (noise, name) in [(Noise::Normal, "normal"), (Noise::LogNormal, "log-normal")] {
            for runs in [2, 3, 5, 10] {
                let rate = |effect_pct: f64, seed: u64| {
                    let sc = Scenario {
                        runs,
                        lines: LINES,
                        cv_pct: CV_PCT,
                        shared: SHARED,
                        effect_pct,
                        noise,
                        paired,
                        drift_pct: 0.0,
                        a_always_first: false,
                    };
                    simulate(&sc, trials, seed, &opts)
                };
                let (aa, p5, p10) = (rate(0.0, 1), rate(5.0, 2), rate(10.0, 3));
                let design = if paired {
                    Design::Paired
                } else {
                    Design::Independent
                };
                let test = Test::choose(design, runs, runs, opts.level);
                println!(
                    "| {} | {name} | {runs} | {} | {:.1} % | {:.1} % | {:.1} % |",
                    if paired {
                        "study (paired)"
                    } else {
                        "independent sets"
                    },
                    test.describe(),
                    aa.any_significant * 100.0,
                    p5.detected * 100.0,
                    p10.detected * 100.0
                );
            }
        }
    }
    for set in args.iter().filter(|a| std::path::Path::new(a).is_dir()) {
        real_set_rows(set, trials, &opts);
    }
}

/// Rows drawn from the real runs of the archived set `set`, at every run count it can split.
fn real_set_rows(set: &str, trials: usize, opts: &CompareOptions) {
    let side = match pgstorm::compare::load_side(set) {
        Ok(side) => side,
        Err(e) => {
            eprintln!("{set}: {e:#}");
            return;
        }
    };
    let runs: Vec<_> = side.runs.iter().filter_map(run_lines).collect();
    for per_side in [2, 3, 5].into_iter().filter(|n| 2 * n <= runs.len()) {
        let rate =
            |effect_pct: f64, seed: u64| resample(&runs, per_side, effect_pct, trials, seed, opts);
        let (aa, p5, p10) = (rate(0.0, 1), rate(5.0, 2), rate(10.0, 3));
        let test = Test::choose(Design::Independent, per_side, per_side, opts.level);
        println!(
            "| independent sets | {} real runs of {} | {per_side} | {} | {:.1} % | {:.1} % | {:.1} % |",
            runs.len(),
            set.trim_end_matches('/').rsplit('/').next().unwrap_or(set),
            test.describe(),
            aa.any_significant * 100.0,
            p5.detected * 100.0,
            p10.detected * 100.0
        );
    }
}
