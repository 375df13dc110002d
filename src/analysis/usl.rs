//! The Universal Scalability Law (Gunther): X(N) = λN / (1 + σ(N−1) + κN(N−1)), fitted to
//! measured (concurrency, throughput) points, with the concurrency limit it implies and a
//! bootstrap interval for that limit.
//!
//! Fitting: for fixed (σ, κ) the best λ is a closed-form linear least-squares solution, so the
//! search is two-dimensional: a coarse grid over σ ∈ [0, 1) and κ ∈ [0, 1) (κ on a log scale,
//! since real values span 1e-7..1e-1), then a projected Nelder–Mead refinement from the best grid
//! points, in (σ, √κ) so both coordinates have comparable scale. Written here rather than pulled
//! from an optimisation crate: the problem is small, bounded and smooth, and ~150 lines keep the
//! dependency tree light.
//!
//! Model choice: a retrograde region is only reported when the data show it. When the free fit
//! puts N* beyond the largest measured level, κ is not distinguishable from noise there, so the
//! model is refitted with κ = 0 (Amdahl's law) and the limit becomes the N reaching 95% of the
//! ceiling λ/σ.
//!
//! Invariants: σ and κ always lie in [0, 1) and λ > 0; a fit needs at least three distinct
//! concurrency levels with positive finite throughput; the bootstrap is deterministic for a seed
//! (one independent random stream per replicate, so the thread count changes nothing).

use rayon::prelude::*;

use crate::rng::Rng;

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
    /// κ was fixed at 0 because the free fit's N* lay beyond the largest measured level.
    pub kappa_fixed: bool,
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

/// Fits the USL to `(N, X)` points by bounded least squares on X, fixing κ at 0 when the free
/// fit's retrograde region lies beyond the measured levels (see the module doc).
pub fn fit(points: &[(f64, f64)]) -> Result<Fit, UslError> {
    let free = fit_free(points)?;
    let n_max = points.iter().map(|p| p.0).fold(1.0, f64::max);
    let p = free.params;
    if p.kappa > 0.0 && ((1.0 - p.sigma) / p.kappa).sqrt() > n_max {
        return Ok(fit_kappa_zero(points));
    }
    Ok(free)
}

/// R² of `sse` against the points' spread.
fn r2(points: &[(f64, f64)], sse: f64) -> f64 {
    let mean = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
    let sst: f64 = points.iter().map(|p| (p.1 - mean).powi(2)).sum();
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
    }
}

/// The unconstrained-shape fit (σ, κ both free within [0, 1)).
fn fit_free(points: &[(f64, f64)]) -> Result<Fit, UslError> {
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
    })
}

/// A bootstrap percentile interval for the limiting concurrency (before rounding).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// Lower bound.
    pub lower: f64,
    /// Upper bound; `None` when the upper tail of replicates showed no limit at all.
    pub upper: Option<f64>,
    /// Coverage, e.g. 0.95.
    pub level: f64,
    /// Replicates fitted.
    pub replicates: usize,
    /// Replicates whose model showed no limit (linear scaling).
    pub unbounded: usize,
}

/// Residual bootstrap: refit `replicates` synthetic data sets (fitted values plus resampled,
/// centred and variance-inflated residuals) and take the percentile interval of the limit's
/// concurrency ([`raw_limit`]: √((1−σ)/κ), or the 95%-of-ceiling N when a replicate has κ = 0).
/// `None` when the point estimate shows no limit.
pub fn bootstrap(
    points: &[(f64, f64)],
    fitted: &Fit,
    replicates: usize,
    level: f64,
    seed: u64,
) -> Option<Interval> {
    if replicates == 0 || limit(&fitted.params) == Limit::Linear {
        return None;
    }
    let k = points.len();
    let hat: Vec<f64> = points
        .iter()
        .map(|p| fitted.params.throughput(p.0))
        .collect();
    let raw: Vec<f64> = points.iter().zip(&hat).map(|(p, h)| p.1 - h).collect();
    let mean = raw.iter().sum::<f64>() / k as f64;
    // Least-squares residuals are smaller than the errors they estimate: inflate by √(n/(n−p)).
    let inflate = if k > 3 {
        (k as f64 / (k - 3) as f64).sqrt()
    } else {
        1.0
    };
    let resid: Vec<f64> = raw.iter().map(|r| (r - mean) * inflate).collect();
    let floor = hat.iter().cloned().fold(f64::INFINITY, f64::min) * 1e-3;
    let mut ns: Vec<f64> = (0..replicates)
        .into_par_iter()
        .map(|b| {
            let mut rng = Rng::stream(seed, b as u64);
            let sample: Vec<(f64, f64)> = points
                .iter()
                .zip(&hat)
                .map(|(p, h)| {
                    let r = resid[rng.range_i64(0, k as i64 - 1) as usize];
                    (p.0, (h + r).max(floor))
                })
                .collect();
            fit(&sample).map_or(f64::INFINITY, |f| raw_limit(&f.params))
        })
        .collect();
    ns.sort_by(f64::total_cmp);
    let quantile = |q: f64| ns[((q * (ns.len() - 1) as f64).round() as usize).min(ns.len() - 1)];
    let tail = (1.0 - level) / 2.0;
    let upper = quantile(1.0 - tail);
    Some(Interval {
        lower: quantile(tail),
        upper: upper.is_finite().then_some(upper),
        level,
        replicates,
        unbounded: ns.iter().filter(|v| v.is_infinite()).count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // The interval brackets the estimate and lies near the true √(0.95/0.0005) = 43.6.
        let ci = bootstrap(&points, &f, 300, 0.95, 7).unwrap();
        let (lo, hi) = (ci.lower, ci.upper.unwrap());
        let est = raw_limit(&p);
        assert!(lo < hi && lo <= est && est <= hi, "{ci:?} vs {est}");
        assert!(lo <= 43.6 * 1.1 && hi >= 43.6 * 0.9, "{ci:?}");
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
        let ci = bootstrap(&points, &f, 200, 0.95, 3).unwrap();
        assert!(ci.lower <= 171.0 * 1.1, "{ci:?}");
        assert!(ci.upper.is_none_or(|u| u >= 171.0 * 0.9), "{ci:?}");
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
        assert!(bootstrap(&points, &f, 50, 0.95, 1).is_none());
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
