//! Small-sample tests whose error rate holds with 2–10 runs per side: an exact permutation test of
//! the difference of means of run-level values, the critical change it needs, the
//! Benjamini–Hochberg adjustment across many lines, and an exact Mann–Kendall trend test.
//!
//! Invariants: with at most [`EXACT_SPLITS`] splits every split is enumerated, so a p-value is
//! exact and no data set can reach below [`smallest_p`]; beyond that a seeded Monte Carlo estimate
//! `(1 + hits) / (1 + draws)` is used, which never understates p and is the same for the same
//! input. Nothing here assumes normal data.

use crate::rng::Rng;

/// Largest number of A/B splits enumerated exactly (10 + 10 runs give 184,756).
pub const EXACT_SPLITS: f64 = 200_000.0;

/// Random splits drawn when there are more than [`EXACT_SPLITS`].
pub const MONTE_CARLO_SPLITS: usize = 100_000;

/// `n` choose `k` as a float (exact for the sizes used here).
pub fn binomial(n: usize, k: usize) -> f64 {
    (0..k.min(n - k)).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// The smallest two-sided p an exact permutation test can give with `na` and `nb` runs: the most
/// extreme split (and, with equal sides, its mirror) over all splits.
pub fn smallest_p(na: usize, nb: usize) -> f64 {
    let splits = binomial(na + nb, na);
    if splits > EXACT_SPLITS {
        1.0 / (1.0 + MONTE_CARLO_SPLITS as f64)
    } else if na == nb {
        2.0 / splits
    } else {
        1.0 / splits
    }
}

/// Fewest runs per side (equal sides) at which [`smallest_p`] reaches `level`.
pub fn runs_needed(level: f64) -> usize {
    (2..).find(|&n| smallest_p(n, n) <= level).unwrap_or(2)
}

/// Calls `f` with the sum of the B part of every split of `pooled` into `na` A values and `nb` B
/// values (or of [`MONTE_CARLO_SPLITS`] seeded random splits); returns how many were visited.
fn each_split(pooled: &[f64], nb: usize, seed: u64, f: &mut dyn FnMut(f64)) -> usize {
    fn rec(x: &[f64], start: usize, left: usize, sum: f64, f: &mut dyn FnMut(f64)) -> usize {
        if left == 0 {
            f(sum);
            return 1;
        }
        (start..=x.len() - left)
            .map(|i| rec(x, i + 1, left - 1, sum + x[i], f))
            .sum()
    }
    if binomial(pooled.len(), nb) <= EXACT_SPLITS {
        return rec(pooled, 0, nb, 0.0, f);
    }
    let mut rng = Rng::new(seed);
    let mut v = pooled.to_vec();
    for _ in 0..MONTE_CARLO_SPLITS {
        // A partial Fisher–Yates shuffle: the first nb places are a uniform random subset.
        for i in 0..nb {
            let j = i + (rng.next_u64() % (v.len() - i) as u64) as usize;
            v.swap(i, j);
        }
        f(v[..nb].iter().sum());
    }
    MONTE_CARLO_SPLITS
}

/// |mean(B) − mean(A)| of a split, from the B sum.
fn spread(total: f64, sum_b: f64, na: usize, nb: usize) -> f64 {
    (sum_b / nb as f64 - (total - sum_b) / na as f64).abs()
}

/// Relative tolerance under which two split statistics count as tied (float sums of the same
/// values in another order).
const TIE: f64 = 1e-9;

/// Two-sided p of the difference of means of `a` and `b` under exchangeability (no change);
/// None unless both sides have a value.
pub fn permutation_p(a: &[f64], b: &[f64], seed: u64) -> Option<f64> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let pooled: Vec<f64> = a.iter().chain(b).copied().collect();
    let total: f64 = pooled.iter().sum();
    let (na, nb) = (a.len(), b.len());
    let observed = spread(total, b.iter().sum(), na, nb);
    let scale = pooled.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let bar = observed - TIE * scale;
    let mut hits = 0usize;
    let n = each_split(&pooled, nb, seed, &mut |s| {
        if spread(total, s, na, nb) >= bar {
            hits += 1;
        }
    });
    Some(if binomial(na + nb, nb) <= EXACT_SPLITS {
        hits as f64 / n as f64
    } else {
        (1 + hits) as f64 / (1 + n) as f64
    })
}

/// The smallest |mean(B) − mean(A)| the permutation test calls significant at `level` when the
/// runs scatter as they did here (each side's deviations from its own mean, pooled): the
/// minimum detectable difference, met about half the time by a true change of that size. None
/// when no split can reach `level`.
pub fn critical_difference(a: &[f64], b: &[f64], level: f64, seed: u64) -> Option<f64> {
    if a.is_empty() || b.is_empty() || smallest_p(a.len(), b.len()) > level {
        return None;
    }
    let centred = |xs: &[f64]| {
        let m = xs.iter().sum::<f64>() / xs.len() as f64;
        xs.iter().map(move |x| x - m).collect::<Vec<_>>()
    };
    let pooled: Vec<f64> = centred(a).into_iter().chain(centred(b)).collect();
    let total: f64 = pooled.iter().sum();
    let (na, nb) = (a.len(), b.len());
    let mut stats = Vec::new();
    each_split(&pooled, nb, seed, &mut |s| {
        stats.push(spread(total, s, na, nb))
    });
    // At most `allowed` splits may be at or beyond the critical value.
    let allowed = (level * stats.len() as f64).floor() as usize;
    if allowed == 0 {
        return None;
    }
    let k = stats.len() - allowed;
    let (_, v, _) = stats.select_nth_unstable_by(k, f64::total_cmp);
    Some(*v)
}

/// Benjamini–Hochberg adjusted p-values (q-values), in the order given: a line is a discovery
/// at false-discovery rate `q` when its value is at most `q`.
pub fn benjamini_hochberg(ps: &[f64]) -> Vec<f64> {
    let m = ps.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| ps[i].total_cmp(&ps[j]));
    let mut q = vec![1.0; m];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(ps[i] * m as f64 / (rank + 1) as f64);
        q[i] = running.min(1.0);
    }
    q
}

/// A Mann–Kendall trend test of values in time order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    /// S: later-minus-earlier pairs that rise, minus those that fall.
    pub s: i64,
    /// Two-sided p of |S| under no trend (exact: every ordering equally likely).
    pub p: f64,
}

/// Exact Mann–Kendall test; None with fewer than two values. Ties count zero in S and the
/// no-tie null distribution is used, which makes ties conservative.
pub fn mann_kendall(xs: &[f64]) -> Option<Trend> {
    let n = xs.len();
    if n < 2 {
        return None;
    }
    let s: i64 = (0..n)
        .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
        .map(|(i, j)| match xs[j].total_cmp(&xs[i]) {
            std::cmp::Ordering::Greater => 1,
            std::cmp::Ordering::Less => -1,
            std::cmp::Ordering::Equal => 0,
        })
        .sum();
    // Orderings of n distinct values by inversion count (Mahonian numbers); S = pairs − 2·inversions.
    let pairs = n * (n - 1) / 2;
    let mut counts = vec![1.0f64];
    for k in 2..=n {
        let mut next = vec![0.0; counts.len() + k - 1];
        for (inv, c) in counts.iter().enumerate() {
            for slot in next.iter_mut().skip(inv).take(k) {
                *slot += c;
            }
        }
        counts = next;
    }
    let total: f64 = counts.iter().sum();
    let extreme: f64 = counts
        .iter()
        .enumerate()
        .filter(|(inv, _)| (pairs as i64 - 2 * *inv as i64).abs() >= s.abs())
        .map(|(_, c)| c)
        .sum();
    Some(Trend {
        s,
        p: extreme / total,
    })
}

/// The smallest two-sided Mann–Kendall p with `n` values: the two monotone orderings of n!.
pub fn smallest_trend_p(n: usize) -> f64 {
    2.0 / (1..=n).map(|k| k as f64).product::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_against_three_cannot_go_below_one_in_ten() {
        assert_eq!(binomial(6, 3), 20.0);
        assert!((smallest_p(3, 3) - 0.1).abs() < 1e-12);
        let p = permutation_p(&[1.0, 2.0, 3.0], &[10.0, 11.0, 12.0], 1).unwrap();
        assert!((p - 0.1).abs() < 1e-12, "{p}");
        assert!(critical_difference(&[1.0, 2.0, 3.0], &[10.0, 11.0, 12.0], 0.05, 1).is_none());
        assert_eq!(runs_needed(0.05), 4);
    }

    #[test]
    fn identical_sides_give_p_one_and_separated_sides_the_smallest_p() {
        let a = [10.0, 10.2, 9.9, 10.1, 10.0];
        assert_eq!(permutation_p(&a, &a, 1), Some(1.0));
        let b = [11.0, 11.2, 10.9, 11.1, 11.0];
        let p = permutation_p(&a, &b, 1).unwrap();
        assert!((p - smallest_p(5, 5)).abs() < 1e-12, "{p}");
        // The critical difference lies between the spread and the observed shift.
        let c = critical_difference(&a, &b, 0.05, 1).unwrap();
        assert!(c > 0.0 && c < 1.0, "{c}");
    }

    #[test]
    fn large_sides_fall_back_to_a_seeded_estimate_that_does_not_understate_p() {
        let a: Vec<f64> = (0..12).map(f64::from).collect();
        let b: Vec<f64> = (0..12).map(|i| f64::from(i) + 0.5).collect();
        let p = permutation_p(&a, &b, 3).unwrap();
        assert_eq!(Some(p), permutation_p(&a, &b, 3));
        assert!(p > 0.5, "{p}");
        assert!(smallest_p(12, 12) > 0.0);
    }

    #[test]
    fn benjamini_hochberg_matches_the_step_up_rule() {
        // Ranked 0.01, 0.03, 0.04, 0.5: raw p·m/rank 0.04, 0.06, 0.053, 0.5; the step-up keeps
        // the running minimum from the top, so 0.03 takes 0.04's 0.053.
        let q = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.5]);
        let want = [0.04, 0.16 / 3.0, 0.16 / 3.0, 0.5];
        for (got, want) in q.iter().zip(want) {
            assert!((got - want).abs() < 1e-12, "{q:?}");
        }
    }

    #[test]
    fn mann_kendall_is_exact_for_small_n_and_sees_a_monotone_drift() {
        // Positive control: five runs, each 2 % below the last.
        let drift = [100.0, 98.0, 96.1, 94.0, 92.3];
        let t = mann_kendall(&drift).unwrap();
        assert_eq!(t.s, -10);
        assert!((t.p - 2.0 / 120.0).abs() < 1e-12, "{t:?}");
        // Negative control: scatter without a trend.
        let t = mann_kendall(&[100.0, 98.0, 101.0, 97.5, 100.5]).unwrap();
        assert!(t.p > 0.5, "{t:?}");
        // Three runs can never show a trend at 5 %.
        assert!((smallest_trend_p(3) - 1.0 / 3.0).abs() < 1e-12);
        assert!(mann_kendall(&[1.0]).is_none());
    }
}
