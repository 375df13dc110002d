//! The Universal Scalability Law (Gunther): X(N) = λN / (1 + σ(N−1) + κN(N−1)), fitted to
//! measured (concurrency, throughput) points, with the concurrency limit it implies and bootstrap
//! intervals for the coefficients and that limit (`bootstrap`).
//!
//! Fitting: for fixed (σ, κ) the best λ is a closed-form linear least-squares solution, so the
//! search is two-dimensional: a coarse grid over σ ∈ [0, 1) and κ ∈ [0, 1) (κ on a log scale,
//! since real values span 1e-7..1e-1), then a projected Nelder–Mead refinement from the best grid
//! points, in (σ, √κ) so both coordinates have comparable scale. Written here rather than pulled
//! from an optimisation crate: the problem is small, bounded and smooth, and ~150 lines keep the
//! dependency tree light.
//!
//! Model choice on evidence: the full model and the nested one with κ = 0 (Amdahl's law) are both
//! fitted, and κ is kept unless the F-test of the residual sums of squares,
//! F = (SSE₀ − SSE₁) / (SSE₁ / (n − 3)) on (1, n − 3) degrees of freedom, finds its improvement
//! insignificant at [`KAPPA_TEST_LEVEL`]. Where the peak √((1−σ)/κ) falls plays no part: a peak
//! beyond the measured levels is reported as an extrapolation, not replaced by another model.
//! With only three points no degree of freedom is left to test, and the full model stands.
//!
//! Invariants: σ and κ always lie in [0, 1) and λ > 0; a fit needs at least three distinct
//! concurrency levels with positive finite throughput.

mod bootstrap;
// Also the t distribution of compare's small-sample tests.
pub(crate) mod ftest;

pub use bootstrap::{bootstrap, Bootstrap, Bounds, Interval};

/// Significance level of the F-test that decides whether κ stays in the model.
pub const KAPPA_TEST_LEVEL: f64 = 0.05;

/// An improvement of the residual sum of squares below this share of the data's total sum of
/// squares is rounding, not signal (exact data fit both models to within it).
const NEGLIGIBLE_SSE: f64 = 1e-12;

/// Largest value σ and κ may take: the model's bound is the open interval [0, 1).
const UPPER: f64 = 1.0 - 1e-9;

/// Below this σ (with negligible κ) throughput is linear: no plateau within any useful N.
const NEGLIGIBLE_CONTENTION: f64 = 1e-6;

/// Why a fit cannot be made.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UslError {
    /// Three parameters need at least three distinct concurrency levels.
    #[error(
        "the USL needs at least 3 distinct concurrency levels with throughput above 0 (got {0})"
    )]
    TooFewLevels(usize),
    /// A point with N < 1 or a non-finite or non-positive throughput.
    #[error("level N={n} has an unusable throughput {x}")]
    BadPoint {
        /// Concurrency.
        n: f64,
        /// Throughput.
        x: f64,
    },
}

/// The three USL coefficients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Throughput of one client (tx/s): the slope at N = 1 without contention.
    pub lambda: f64,
    /// Contention (serialised share of the work), in [0, 1).
    pub sigma: f64,
    /// Coherency (cost of keeping shared state consistent between pairs), in [0, 1).
    pub kappa: f64,
}

impl Params {
    /// Modelled throughput at concurrency `n`.
    pub fn throughput(&self, n: f64) -> f64 {
        self.lambda * shape(self.sigma, self.kappa, n)
    }
}

/// X(N)/λ for given σ, κ.
fn shape(sigma: f64, kappa: f64, n: f64) -> f64 {
    n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))
}

/// A fitted model and its goodness of fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// The coefficients.
    pub params: Params,
    /// Coefficient of determination 1 − SSres/SStot (1 is a perfect fit).
    pub r2: f64,
    /// Residual sum of squares.
    pub sse: f64,
    /// κ was fixed at 0: the F-test found it adds nothing.
    pub kappa_fixed: bool,
    /// The F-test of κ; `None` when three points leave no degree of freedom to test with.
    pub kappa_test: Option<KappaTest>,
}

/// The nested-model F-test of κ: full model (λ, σ, κ) against κ = 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KappaTest {
    /// F = (SSE₀ − SSE₁) / (SSE₁ / df).
    pub f: f64,
    /// Denominator degrees of freedom, n − 3 (the numerator has 1).
    pub df: usize,
    /// P(F(1, df) > f).
    pub p_value: f64,
    /// Residual sum of squares with κ = 0.
    pub sse_without: f64,
    /// Residual sum of squares with κ free.
    pub sse_with: f64,
}

/// The concurrency limit a model implies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// Retrograde region: throughput peaks at N* = floor(√((1−σ)/κ)) and falls after it.
    Peak {
        /// N*.
        n: u32,
        /// Modelled X(N*).
        throughput: f64,
    },
    /// κ ≈ 0: throughput approaches λ/σ; `n` is the first N reaching 95% of it.
    Plateau {
        /// First N with X(N) ≥ 0.95 λ/σ.
        n: u32,
        /// Modelled X(n).
        throughput: f64,
        /// λ/σ.
        asymptote: f64,
    },
    /// σ ≈ 0 and κ ≈ 0: throughput grows linearly over the measured range; no limit is visible.
    Linear,
}

impl Limit {
    /// The limiting concurrency, if any.
    pub fn n(&self) -> Option<u32> {
        match self {
            Limit::Peak { n, .. } | Limit::Plateau { n, .. } => Some(*n),
            Limit::Linear => None,
        }
    }
}

/// The limit's concurrency before rounding: √((1−σ)/κ) for a peak, 19(1−σ)/σ (where X reaches
/// 95% of λ/σ) without coherency, infinity when linear.
pub fn raw_limit(p: &Params) -> f64 {
    if p.kappa > 0.0 {
        ((1.0 - p.sigma) / p.kappa).sqrt()
    } else if p.sigma >= NEGLIGIBLE_CONTENTION {
        // κ = 0: X(N) ≥ 0.95 λ/σ  ⇔  N ≥ 19(1−σ)/σ.
        19.0 * (1.0 - p.sigma) / p.sigma
    } else {
        f64::INFINITY
    }
}

/// The limit implied by a fitted model.
pub fn limit(p: &Params) -> Limit {
    let raw = raw_limit(p);
    if !raw.is_finite() {
        return Limit::Linear;
    }
    if p.kappa > 0.0 {
        let n = raw.floor().max(1.0);
        return Limit::Peak {
            n: clamp_u32(n),
            throughput: p.throughput(n),
        };
    }
    let n = raw.ceil().max(1.0);
    Limit::Plateau {
        n: clamp_u32(n),
        throughput: p.throughput(n),
        asymptote: p.lambda / p.sigma,
    }
}

fn clamp_u32(v: f64) -> u32 {
    v.min(u32::MAX as f64) as u32
}

/// Best λ for fixed (σ, κ) and the resulting residual sum of squares.
fn lambda_sse(points: &[(f64, f64)], sigma: f64, kappa: f64) -> (f64, f64) {
    let (mut xg, mut gg) = (0.0, 0.0);
    for &(n, x) in points {
        let g = shape(sigma, kappa, n);
        xg += x * g;
        gg += g * g;
    }
    let lambda = if gg > 0.0 {
        (xg / gg).max(1e-12)
    } else {
        1e-12
    };
    let sse = points
        .iter()
        .map(|&(n, x)| {
            let r = x - lambda * shape(sigma, kappa, n);
            r * r
        })
        .sum();
    (lambda, sse)
}

/// Search coordinates (σ, √κ) projected into the feasible box.
fn project(v: [f64; 2]) -> [f64; 2] {
    [v[0].clamp(0.0, UPPER), v[1].clamp(0.0, UPPER.sqrt())]
}

/// Projected Nelder–Mead on the SSE over (σ, √κ).
fn nelder_mead(points: &[(f64, f64)], start: [f64; 2]) -> ([f64; 2], f64) {
    let f = |v: [f64; 2]| lambda_sse(points, v[0], v[1] * v[1]).1;
    let s0 = project(start);
    let step = [0.05_f64.max(0.2 * s0[0]), 1e-3_f64.max(0.3 * s0[1])];
    let mut simplex: Vec<([f64; 2], f64)> = [
        s0,
        project([s0[0] + step[0], s0[1]]),
        project([s0[0], s0[1] + step[1]]),
    ]
    .into_iter()
    .map(|v| (v, f(v)))
    .collect();
    for _ in 0..500 {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (best, worst) = (simplex[0].1, simplex[2].1);
        if (worst - best).abs() <= 1e-12 * best.abs().max(1e-300) {
            break;
        }
        let c = [
            (simplex[0].0[0] + simplex[1].0[0]) / 2.0,
            (simplex[0].0[1] + simplex[1].0[1]) / 2.0,
        ];
        let w = simplex[2].0;
        let at = |t: f64| project([c[0] + t * (w[0] - c[0]), c[1] + t * (w[1] - c[1])]);
        let r = at(-1.0);
        let fr = f(r);
        if fr < simplex[0].1 {
            let e = at(-2.0);
            let fe = f(e);
            simplex[2] = if fe < fr { (e, fe) } else { (r, fr) };
        } else if fr < simplex[1].1 {
            simplex[2] = (r, fr);
        } else {
            let k = if fr < simplex[2].1 { at(-0.5) } else { at(0.5) };
            let fk = f(k);
            if fk < simplex[2].1.min(fr) {
                simplex[2] = (k, fk);
            } else {
                let b = simplex[0].0;
                for v in simplex.iter_mut().skip(1) {
                    let s = project([(v.0[0] + b[0]) / 2.0, (v.0[1] + b[1]) / 2.0]);
                    *v = (s, f(s));
                }
            }
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    simplex[0]
}

/// Fits the USL to `(N, X)` points by bounded least squares on X, keeping κ unless the F-test
/// says it adds nothing (see the module doc).
pub fn fit(points: &[(f64, f64)]) -> Result<Fit, UslError> {
    let full = fit_free(points)?;
    let reduced = fit_kappa_zero(points);
    let Some(test) = kappa_test(points, &reduced, &full) else {
        return Ok(full);
    };
    let chosen = if test.p_value > KAPPA_TEST_LEVEL {
        reduced
    } else {
        full
    };
    Ok(Fit {
        kappa_test: Some(test),
        ..chosen
    })
}

/// Fits the model already selected: κ free, or κ fixed at 0 (the bootstrap refits this way, so
/// every replicate estimates the same quantity).
pub fn fit_model(points: &[(f64, f64)], kappa_fixed: bool) -> Result<Fit, UslError> {
    if kappa_fixed {
        check(points)?;
        Ok(fit_kappa_zero(points))
    } else {
        fit_free(points)
    }
}

/// The F-test of κ, or `None` with no residual degree of freedom.
fn kappa_test(points: &[(f64, f64)], reduced: &Fit, full: &Fit) -> Option<KappaTest> {
    let df = points.len().checked_sub(3).filter(|&d| d > 0)?;
    let sst = sum_of_squares(points);
    let gain = (reduced.sse - full.sse).max(0.0);
    let f = if gain <= NEGLIGIBLE_SSE * sst {
        0.0
    } else if full.sse <= NEGLIGIBLE_SSE * sst {
        f64::INFINITY
    } else {
        gain / (full.sse / df as f64)
    };
    Some(KappaTest {
        f,
        df,
        p_value: ftest::upper_tail_1(f, df),
        sse_without: reduced.sse,
        sse_with: full.sse,
    })
}

/// Total sum of squares of the throughputs about their mean.
fn sum_of_squares(points: &[(f64, f64)]) -> f64 {
    let mean = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
    points.iter().map(|p| (p.1 - mean).powi(2)).sum()
}

/// R² of `sse` against the points' spread.
fn r2(points: &[(f64, f64)], sse: f64) -> f64 {
    let sst = sum_of_squares(points);
    if sst > 0.0 {
        1.0 - sse / sst
    } else {
        1.0
    }
}

/// Best fit with κ = 0: a log grid over σ, then golden-section search around the best cell.
fn fit_kappa_zero(points: &[(f64, f64)]) -> Fit {
    let sse = |sigma: f64| lambda_sse(points, sigma, 0.0).1;
    let grid: Vec<f64> = std::iter::once(0.0)
        .chain((0..400).map(|i| 1e-6 * (UPPER / 1e-6).powf(i as f64 / 399.0)))
        .collect();
    let best = (0..grid.len())
        .min_by(|&a, &b| sse(grid[a]).total_cmp(&sse(grid[b])))
        .expect("the grid is never empty");
    let (mut a, mut b) = (
        grid[best.saturating_sub(1)],
        grid[(best + 1).min(grid.len() - 1)],
    );
    let g = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..100 {
        let (c, d) = (b - g * (b - a), a + g * (b - a));
        if sse(c) < sse(d) {
            b = d;
        } else {
            a = c;
        }
    }
    let sigma = [grid[best], (a + b) / 2.0]
        .into_iter()
        .min_by(|x, y| sse(*x).total_cmp(&sse(*y)))
        .expect("two candidates");
    let (lambda, sse) = lambda_sse(points, sigma, 0.0);
    Fit {
        params: Params {
            lambda,
            sigma,
            kappa: 0.0,
        },
        r2: r2(points, sse),
        sse,
        kappa_fixed: true,
        kappa_test: None,
    }
}

/// Refuses points no fit can use: N < 1, a non-positive or non-finite throughput, or fewer than
/// three distinct levels.
fn check(points: &[(f64, f64)]) -> Result<(), UslError> {
    for &(n, x) in points {
        if !(n >= 1.0 && n.is_finite() && x.is_finite() && x > 0.0) {
            return Err(UslError::BadPoint { n, x });
        }
    }
    let mut distinct: Vec<f64> = points.iter().map(|p| p.0).collect();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    if distinct.len() < 3 {
        return Err(UslError::TooFewLevels(distinct.len()));
    }
    Ok(())
}

/// The unconstrained-shape fit (σ, κ both free within [0, 1)).
fn fit_free(points: &[(f64, f64)]) -> Result<Fit, UslError> {
    check(points)?;

    let log_grid = |lo: f64, hi: f64, steps: usize| {
        std::iter::once(0.0)
            .chain((0..steps).map(move |i| lo * (hi / lo).powf(i as f64 / (steps - 1) as f64)))
    };
    let mut starts: Vec<([f64; 2], f64)> = Vec::new();
    for sigma in log_grid(1e-4, 0.99, 40) {
        for kappa in log_grid(1e-8, 0.99, 60) {
            starts.push(([sigma, kappa.sqrt()], lambda_sse(points, sigma, kappa).1));
        }
    }
    starts.sort_by(|a, b| a.1.total_cmp(&b.1));
    let (best, _) = starts
        .iter()
        .take(3)
        .map(|s| nelder_mead(points, s.0))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("the grid is never empty");
    let (sigma, kappa) = (best[0], best[1] * best[1]);
    let (lambda, sse) = lambda_sse(points, sigma, kappa);
    Ok(Fit {
        params: Params {
            lambda,
            sigma,
            kappa,
        },
        r2: r2(points, sse),
        sse,
        kappa_fixed: false,
        kappa_test: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    const LEVELS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

    /// Points of the true model with multiplicative noise of ±`noise` (deterministic).
    fn synthetic(truth: Params, noise: f64, seed: u64) -> Vec<(f64, f64)> {
        let mut rng = Rng::new(seed);
        LEVELS
            .iter()
            .map(|&n| {
                let e = (rng.next_f64() * 2.0 - 1.0) * noise;
                (n, truth.throughput(n) * (1.0 + e))
            })
            .collect()
    }

    fn close(got: f64, want: f64, rel: f64) -> bool {
        (got - want).abs() <= rel * want.abs()
    }

    #[test]
    fn recovers_known_coefficients_with_a_retrograde_region() {
        let truth = Params {
            lambda: 1000.0,
            sigma: 0.05,
            kappa: 0.0005,
        };
        let points = synthetic(truth, 0.02, 11);
        let f = fit(&points).unwrap();
        let p = f.params;
        assert!(close(p.lambda, truth.lambda, 0.05), "{p:?}");
        assert!(close(p.sigma, truth.sigma, 0.25), "{p:?}");
        assert!(close(p.kappa, truth.kappa, 0.25), "{p:?}");
        assert!(f.r2 > 0.98, "r2 {}", f.r2);
        // True N* = floor(sqrt(0.95 / 0.0005)) = 43.
        assert!(!f.kappa_fixed);
        let Limit::Peak { n, throughput } = limit(&p) else {
            panic!("expected a peak, got {:?}", limit(&p))
        };
        assert!((38..=49).contains(&n), "N* {n}");
        assert!(close(throughput, truth.throughput(43.0), 0.05));
        // κ is far from noise here: the F-test keeps it.
        assert!(f.kappa_test.unwrap().p_value < 1e-3, "{f:?}");
        // The interval brackets the estimate and lies near the true √(0.95/0.0005) = 43.6.
        let b = bootstrap(&points, &f, 300, 0.95, 7).unwrap();
        let ci = b.limit.unwrap();
        let (lo, hi) = (ci.lower, ci.upper.unwrap());
        let est = raw_limit(&p);
        assert!(lo < hi && lo <= est && est <= hi, "{ci:?} vs {est}");
        assert!(lo <= 43.6 * 1.1 && hi >= 43.6 * 0.9, "{ci:?}");
        // Each coefficient's interval brackets its estimate and lies near the truth (one noisy
        // data set: a 95% interval need not contain the truth, but must not be far from it).
        let k = b.kappa.unwrap();
        for (what, iv, est, truth) in [
            ("λ", b.lambda, p.lambda, truth.lambda),
            ("σ", b.sigma, p.sigma, truth.sigma),
            ("κ", k, p.kappa, truth.kappa),
        ] {
            assert!(
                iv.lower <= est && est <= iv.upper,
                "{what}: {iv:?} vs {est}"
            );
            assert!(
                iv.lower <= truth * 1.25 && iv.upper >= truth * 0.75,
                "{what}: {iv:?} vs {truth}"
            );
        }
    }

    #[test]
    fn no_retrograde_region_reports_the_plateau() {
        let truth = Params {
            lambda: 500.0,
            sigma: 0.1,
            kappa: 0.0,
        };
        let points = synthetic(truth, 0.02, 5);
        let f = fit(&points).unwrap();
        let p = f.params;
        assert!(close(p.lambda, truth.lambda, 0.05), "{p:?}");
        assert!(close(p.sigma, truth.sigma, 0.2), "{p:?}");
        assert!(f.kappa_fixed && p.kappa == 0.0, "{f:?}");
        // True: 95% of λ/σ = 5000 is reached at N = ceil(19 × 0.9 / 0.1) = 171.
        match limit(&p) {
            Limit::Plateau {
                n,
                throughput,
                asymptote,
            } => {
                assert!((130..=220).contains(&n), "N95 {n}");
                assert!(close(asymptote, 5000.0, 0.2), "asymptote {asymptote}");
                assert!(throughput >= 0.95 * asymptote * 0.999);
            }
            other => panic!("expected a plateau, got {other:?}"),
        }
        let b = bootstrap(&points, &f, 200, 0.95, 3).unwrap();
        // Every replicate was fitted as a plateau: no κ interval, and the limit's interval is of
        // the 95%-of-ceiling N only.
        assert!(b.kappa.is_none(), "{b:?}");
        let ci = b.limit.unwrap();
        assert!(ci.lower <= 171.0 * 1.1, "{ci:?}");
        assert!(ci.upper.is_none_or(|u| u >= 171.0 * 0.9), "{ci:?}");
    }

    #[test]
    fn a_peak_beyond_the_measured_levels_keeps_kappa_and_is_reported_as_a_peak() {
        // Regression: κ used to be dropped whenever √((1−σ)/κ) lay beyond the largest level.
        // True N* = floor(√(0.98 / 0.0002)) = 70, measured only up to 32.
        let truth = Params {
            lambda: 1000.0,
            sigma: 0.02,
            kappa: 0.0002,
        };
        let points: Vec<(f64, f64)> = synthetic(truth, 0.005, 4)
            .into_iter()
            .filter(|p| p.0 <= 32.0)
            .collect();
        let f = fit(&points).unwrap();
        assert!(!f.kappa_fixed, "{f:?}");
        assert!(f.kappa_test.unwrap().p_value <= KAPPA_TEST_LEVEL, "{f:?}");
        let Limit::Peak { n, .. } = limit(&f.params) else {
            panic!("expected a peak, got {:?}", limit(&f.params))
        };
        assert!((56..=84).contains(&n), "N* {n}");
    }

    #[test]
    fn exact_data_is_fitted_exactly_and_bounds_hold() {
        let truth = Params {
            lambda: 2000.0,
            sigma: 0.2,
            kappa: 0.01,
        };
        let f = fit(&synthetic(truth, 0.0, 1)).unwrap();
        assert!(f.r2 > 0.9999, "{f:?}");
        assert!(close(f.params.kappa, 0.01, 0.01), "{f:?}");
        // Superlinear data would want σ < 0: the bound holds it at 0.
        let superlinear: Vec<(f64, f64)> = LEVELS.iter().map(|&n| (n, 100.0 * n * n)).collect();
        let g = fit(&superlinear).unwrap();
        assert!(g.params.sigma >= 0.0 && g.params.kappa >= 0.0, "{g:?}");
        assert!(g.params.sigma < 1.0 && g.params.kappa < 1.0);
    }

    #[test]
    fn linear_scaling_has_no_limit_and_no_interval() {
        let points: Vec<(f64, f64)> = LEVELS[..5].iter().map(|&n| (n, 300.0 * n)).collect();
        let f = fit(&points).unwrap();
        assert_eq!(limit(&f.params), Limit::Linear);
        let b = bootstrap(&points, &f, 50, 0.95, 1).unwrap();
        assert!(b.limit.is_none(), "{b:?}");
        assert!(bootstrap(&points, &f, 0, 0.95, 1).is_none());
    }

    #[test]
    fn too_few_or_bad_points_are_refused() {
        assert_eq!(
            fit(&[(1.0, 10.0), (2.0, 19.0), (2.0, 18.0)]),
            Err(UslError::TooFewLevels(2))
        );
        assert!(matches!(
            fit(&[(1.0, 10.0), (2.0, 0.0), (4.0, 30.0)]),
            Err(UslError::BadPoint { .. })
        ));
    }

    #[test]
    fn bootstrap_is_deterministic_for_a_seed() {
        let truth = Params {
            lambda: 1000.0,
            sigma: 0.05,
            kappa: 0.001,
        };
        let points = synthetic(truth, 0.03, 2);
        let f = fit(&points).unwrap();
        assert_eq!(
            bootstrap(&points, &f, 100, 0.9, 9),
            bootstrap(&points, &f, 100, 0.9, 9)
        );
    }
}
