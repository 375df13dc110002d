//! Residual bootstrap of a USL fit: percentile intervals for λ, σ, κ and the concurrency limit.
//!
//! Every replicate is refitted with the model chosen on the full data (κ free, or κ fixed at 0),
//! never reselected, so all replicates estimate the same quantity: the interval of a peak holds
//! only peaks, that of a plateau only plateaus.
//!
//! Invariants: deterministic for a seed (one independent random stream per replicate, so the
//! thread count changes nothing); a replicate whose κ lands on 0 under the free model has no
//! peak, and counts as an unbounded limit rather than being dropped or switched to a plateau.

use rayon::prelude::*;

use super::{fit_model, limit, raw_limit, Fit, Limit, Params};
use crate::rng::Rng;

/// A percentile interval of one coefficient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
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
    /// Replicates whose model showed no limit (κ and σ at 0, or κ at 0 under the free model).
    pub unbounded: usize,
}

/// The intervals of one bootstrap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bootstrap {
    /// λ.
    pub lambda: Bounds,
    /// σ.
    pub sigma: Bounds,
    /// κ; `None` when the selected model fixes κ at 0.
    pub kappa: Option<Bounds>,
    /// The limit's concurrency; `None` when the point estimate shows no limit.
    pub limit: Option<Interval>,
}

/// Residual bootstrap: refit `replicates` synthetic data sets (fitted values plus resampled,
/// centred and variance-inflated residuals) with the model `fitted` selected, and take percentile
/// intervals of the coefficients and of the limit's concurrency ([`raw_limit`]). `None` when
/// `replicates` is 0.
pub fn bootstrap(
    points: &[(f64, f64)],
    fitted: &Fit,
    replicates: usize,
    level: f64,
    seed: u64,
) -> Option<Bootstrap> {
    if replicates == 0 {
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
    let free = if fitted.kappa_fixed { 2 } else { 3 };
    let inflate = if k > free {
        (k as f64 / (k - free) as f64).sqrt()
    } else {
        1.0
    };
    let resid: Vec<f64> = raw.iter().map(|r| (r - mean) * inflate).collect();
    let floor = hat.iter().cloned().fold(f64::INFINITY, f64::min) * 1e-3;
    let fits: Vec<Params> = (0..replicates)
        .into_par_iter()
        .filter_map(|b| {
            let mut rng = Rng::stream(seed, b as u64);
            let sample: Vec<(f64, f64)> = points
                .iter()
                .zip(&hat)
                .map(|(p, h)| {
                    let r = resid[rng.range_i64(0, k as i64 - 1) as usize];
                    (p.0, (h + r).max(floor))
                })
                .collect();
            fit_model(&sample, fitted.kappa_fixed)
                .ok()
                .map(|f| f.params)
        })
        .collect();
    if fits.is_empty() {
        return None;
    }
    let tail = (1.0 - level) / 2.0;
    let bounds = |get: fn(&Params) -> f64| {
        let v = sorted(fits.iter().map(get).collect());
        Bounds {
            lower: quantile(&v, tail),
            upper: quantile(&v, 1.0 - tail),
        }
    };
    let limit = (limit(&fitted.params) != Limit::Linear).then(|| {
        // Under the free model the limit is the peak: a replicate with κ = 0 has none.
        let peak_or_plateau = |p: &Params| {
            if fitted.kappa_fixed || p.kappa > 0.0 {
                raw_limit(p)
            } else {
                f64::INFINITY
            }
        };
        let ns = sorted(fits.iter().map(peak_or_plateau).collect());
        let upper = quantile(&ns, 1.0 - tail);
        Interval {
            lower: quantile(&ns, tail),
            upper: upper.is_finite().then_some(upper),
            level,
            replicates: ns.len(),
            unbounded: ns.iter().filter(|v| v.is_infinite()).count(),
        }
    });
    Some(Bootstrap {
        lambda: bounds(|p| p.lambda),
        sigma: bounds(|p| p.sigma),
        kappa: (!fitted.kappa_fixed).then(|| bounds(|p| p.kappa)),
        limit,
    })
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// The `q` quantile of sorted values (nearest rank).
fn quantile(v: &[f64], q: f64) -> f64 {
    v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)]
}
