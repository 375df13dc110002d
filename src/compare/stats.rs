//! The statistics behind a verdict: medians, a bootstrap confidence interval of the difference of
//! medians (resampled in parallel with rayon), and the run-to-run noise floor.
//!
//! Invariants: the bootstrap is deterministic (seeded per resample), so the same two result sets
//! always give the same interval; nothing here assumes samples are normal or independent within a
//! run: callers pass one value per run (or, as a mere hint, one per interval).

use rayon::prelude::*;

use crate::rng::Rng;

/// Bootstrap resamples: enough that the 2.5/97.5 % bounds are stable to well under a percent.
pub const RESAMPLES: usize = 10_000;

/// Median of `xs` (mean of the two middle values for an even count); NaN when empty.
pub fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Value at quantile `q` (0..1) of sorted `v`, linear between neighbours.
fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    let pos = q * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// 95 % bootstrap percentile interval of `stat(median(a*), median(b*))` over resamples a*, b*
/// of each side (e.g. the relative change of the medians); None unless both sides have a sample
/// and some resample gives a finite value.
pub fn bootstrap_ci<F>(a: &[f64], b: &[f64], seed: u64, stat: F) -> Option<(f64, f64)>
where
    F: Fn(f64, f64) -> f64 + Sync,
{
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let mut values: Vec<f64> = (0..RESAMPLES)
        .into_par_iter()
        .map_init(
            || (Vec::with_capacity(a.len()), Vec::with_capacity(b.len())),
            |(ra, rb), i| {
                let mut rng = Rng::stream(seed, i as u64);
                ra.clear();
                rb.clear();
                ra.extend((0..a.len()).map(|_| a[pick(&mut rng, a.len())]));
                rb.extend((0..b.len()).map(|_| b[pick(&mut rng, b.len())]));
                stat(median(ra), median(rb))
            },
        )
        .filter(|v| v.is_finite())
        .collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some((
        quantile_sorted(&values, 0.025),
        quantile_sorted(&values, 0.975),
    ))
}

/// [`bootstrap_ci`] of the difference of medians, `median(b) - median(a)`.
pub fn bootstrap_median_diff(a: &[f64], b: &[f64], seed: u64) -> Option<(f64, f64)> {
    bootstrap_ci(a, b, seed, |ma, mb| mb - ma)
}

fn pick(rng: &mut Rng, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

/// Median absolute deviation from the median (0 with fewer than two samples).
pub fn mad(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let m = median(xs);
    let dev: Vec<f64> = xs.iter().map(|x| (x - m).abs()).collect();
    median(&dev)
}

/// Run-to-run noise of one side, in % of its median: the median absolute deviation relative to
/// the median. Zero with fewer than two samples or a zero median.
pub fn relative_mad_pct(xs: &[f64]) -> f64 {
    let m = median(xs);
    if xs.len() < 2 || m == 0.0 || !m.is_finite() {
        return 0.0;
    }
    let dev: Vec<f64> = xs.iter().map(|x| (x - m).abs()).collect();
    median(&dev) / m.abs() * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_handles_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn identical_samples_give_an_interval_around_zero() {
        let a = [10.0, 11.0, 9.5, 10.4, 10.1];
        let (lo, hi) = bootstrap_median_diff(&a, &a, 7).unwrap();
        assert!(lo <= 0.0 && hi >= 0.0, "({lo}, {hi})");
    }

    #[test]
    fn separated_samples_give_an_interval_excluding_zero() {
        let a = [10.0, 10.2, 9.9];
        let b = [12.0, 12.3, 11.8];
        let (lo, hi) = bootstrap_median_diff(&a, &b, 7).unwrap();
        assert!(lo > 0.0 && hi > lo, "({lo}, {hi})");
        assert_eq!(
            bootstrap_median_diff(&a, &b, 7),
            bootstrap_median_diff(&a, &b, 7)
        );
    }

    #[test]
    fn relative_change_interval_never_goes_below_minus_100() {
        let a = [100.0, 120.0, 80.0];
        let b = [1.0, 1.2, 0.8];
        let (lo, hi) = bootstrap_ci(&a, &b, 3, |ma, mb| (mb - ma) / ma * 100.0).unwrap();
        assert!(lo > -100.0 && hi < 0.0, "({lo}, {hi})");
    }

    #[test]
    fn noise_floor_is_relative_mad() {
        assert_eq!(relative_mad_pct(&[100.0]), 0.0);
        assert!((relative_mad_pct(&[90.0, 100.0, 110.0]) - 10.0).abs() < 1e-9);
    }
}
