//! Small-sample tests whose error rate holds with 2–10 runs per side: an exact permutation test of
//! the difference of means of run-level values, an exact sign-flip test of the pair differences of
//! an interleaved study, the critical change each needs, the Benjamini–Hochberg adjustment across
//! many lines, and an exact Mann–Kendall trend test.
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
    upper_critical(stats, level)
}

/// Largest number of pairs whose 2^n sign flips are enumerated exactly (2^17 = 131,072).
const EXACT_FLIP_PAIRS: usize = 17;

/// The smallest two-sided p a sign-flip test can give with `n` pairs: all signs as observed, or
/// all reversed, out of 2^n.
pub fn smallest_sign_flip_p(n: usize) -> f64 {
    if n > EXACT_FLIP_PAIRS {
        1.0 / (1.0 + MONTE_CARLO_SPLITS as f64)
    } else {
        2.0 / 2f64.powi(n as i32)
    }
}

/// Calls `f` with |mean| of `d` under every assignment of signs (or [`MONTE_CARLO_SPLITS`]
/// seeded random ones); returns how many were visited.
fn each_flip(d: &[f64], seed: u64, f: &mut dyn FnMut(f64)) -> usize {
    let n = d.len() as f64;
    if d.len() <= EXACT_FLIP_PAIRS {
        let all = 1usize << d.len();
        for mask in 0..all {
            let s: f64 = d
                .iter()
                .enumerate()
                .map(|(i, x)| if mask >> i & 1 == 1 { -x } else { *x })
                .sum();
            f((s / n).abs());
        }
        return all;
    }
    let mut rng = Rng::new(seed);
    for _ in 0..MONTE_CARLO_SPLITS {
        let s: f64 = d
            .iter()
            .map(|x| if rng.next_u64() & 1 == 1 { -x } else { *x })
            .sum();
        f((s / n).abs());
    }
    MONTE_CARLO_SPLITS
}

/// Two-sided p of the mean pair difference `d` (B − A of each pair) when no change makes each
/// difference as likely negative as positive; None without a pair.
pub fn sign_flip_p(d: &[f64], seed: u64) -> Option<f64> {
    if d.is_empty() {
        return None;
    }
    let observed = (d.iter().sum::<f64>() / d.len() as f64).abs();
    let scale = d.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let bar = observed - TIE * scale;
    let mut hits = 0usize;
    let n = each_flip(d, seed, &mut |m| {
        if m >= bar {
            hits += 1;
        }
    });
    Some(if d.len() <= EXACT_FLIP_PAIRS {
        hits as f64 / n as f64
    } else {
        (1 + hits) as f64 / (1 + n) as f64
    })
}

/// The smallest |mean pair difference| the sign-flip test calls significant at `level` when the
/// differences scatter as they did here (around their own mean); None when no assignment of
/// signs can reach `level`.
pub fn sign_flip_critical(d: &[f64], level: f64, seed: u64) -> Option<f64> {
    if d.is_empty() || smallest_sign_flip_p(d.len()) > level {
        return None;
    }
    let m = d.iter().sum::<f64>() / d.len() as f64;
    let centred: Vec<f64> = d.iter().map(|x| x - m).collect();
    let mut stats = Vec::new();
    each_flip(&centred, seed, &mut |s| stats.push(s));
    upper_critical(stats, level)
}

/// The value at or beyond which at most `level` of the null statistics `stats` lie.
fn upper_critical(mut stats: Vec<f64>, level: f64) -> Option<f64> {
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
        assert!(smallest_p(4, 4) <= 0.05);
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
    fn sign_flips_are_exact_and_need_six_pairs_at_five_percent() {
        assert!((smallest_sign_flip_p(5) - 1.0 / 16.0).abs() < 1e-12);
        assert!((smallest_sign_flip_p(6) - 1.0 / 32.0).abs() < 1e-12);
        // Positive control: six pairs, every B above its A.
        let d = [1.0, 1.2, 0.9, 1.1, 1.0, 0.8];
        let p = sign_flip_p(&d, 1).unwrap();
        assert!((p - smallest_sign_flip_p(6)).abs() < 1e-12, "{p}");
        let c = sign_flip_critical(&d, 0.05, 1).unwrap();
        assert!(c > 0.0 && c < 1.0, "{c}");
        // Negative control: differences that cancel.
        let p = sign_flip_p(&[1.0, -1.0, 0.5, -0.5, 0.2, -0.2], 1).unwrap();
        assert_eq!(p, 1.0);
        assert!(sign_flip_critical(&d[..5], 0.05, 1).is_none());
        // Beyond 17 pairs a seeded estimate, the same for the same input.
        let many: Vec<f64> = (0..20).map(|i| f64::from(i % 3) - 0.9).collect();
        assert_eq!(sign_flip_p(&many, 4), sign_flip_p(&many, 4));
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
