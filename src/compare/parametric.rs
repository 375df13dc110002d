//! t-tests for the run counts at which no exact test can reach the level: Welch's t-test of two
//! independent sides (2 or 3 runs per side) and the paired t-test of pair differences (2 to 5
//! pairs of an interleaved study), with the critical difference each needs (the minimum
//! detectable change).
//!
//! Assumption, stated because the exact tests make none: the values tested (logarithms of
//! run-level figures for relative metrics) scatter normally from run to run. A run-level figure
//! is a mean or a percentile over thousands of transactions, so its own sampling error is close
//! to normal; what remains is the run-to-run variation of the target, which the calibration
//! harness (`compare::calibrate`) checks with normal and skewed (log-normal) scatter.
//!
//! Invariants: a side without two values gives no test; zero scatter gives p = 1 for equal
//! means and p = 0 otherwise (the difference is certain); p lies in [0, 1].

use crate::analysis::usl::ftest::upper_tail_1_real;

/// A t statistic's parts: the difference of means, its standard error and degrees of freedom.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TTest {
    /// Mean of B minus mean of A (or the mean pair difference).
    pub diff: f64,
    /// Standard error of `diff`.
    pub se: f64,
    /// Degrees of freedom (fractional for Welch).
    pub df: f64,
}

/// Two-sided p of Student's t on `df` degrees of freedom: P(|T| > |t|) = P(F(1, df) > t²).
pub fn t_p(t: f64, df: f64) -> f64 {
    upper_tail_1_real(t * t, df)
}

/// The |t| whose two-sided p is `alpha`, by bisection on [`t_p`] (monotone in |t|).
pub fn t_critical(alpha: f64, df: f64) -> f64 {
    let mut hi = 1.0;
    while t_p(hi, df) > alpha && hi < 1e12 {
        hi *= 2.0;
    }
    let mut lo = 0.0;
    // 100 halvings take any bracket below a relative 1e-15.
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if t_p(mid, df) > alpha {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// Mean and sample variance (n − 1 in the denominator).
fn mean_var(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
    (m, v)
}

impl TTest {
    /// Two-sided p of the difference.
    pub fn p(&self) -> f64 {
        if self.se > 0.0 {
            t_p(self.diff / self.se, self.df)
        } else if self.diff == 0.0 {
            1.0
        } else {
            0.0
        }
    }

    /// The smallest |difference| called significant at `level` with this scatter.
    pub fn critical_difference(&self, level: f64) -> f64 {
        self.se * t_critical(level, self.df)
    }
}

/// Welch's t-test of `b` against `a` (unequal variances, Satterthwaite's degrees of freedom);
/// None unless both sides have two values.
pub fn welch(a: &[f64], b: &[f64]) -> Option<TTest> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let ((ma, va), (mb, vb)) = (mean_var(a), mean_var(b));
    let (wa, wb) = (va / a.len() as f64, vb / b.len() as f64);
    let s2 = wa + wb;
    let denominator = wa * wa / (a.len() - 1) as f64 + wb * wb / (b.len() - 1) as f64;
    let df = if denominator > 0.0 {
        s2 * s2 / denominator
    } else {
        (a.len() + b.len() - 2) as f64
    };
    Some(TTest {
        diff: mb - ma,
        se: s2.sqrt(),
        df,
    })
}

/// The paired t-test of pair differences `d` (B − A of each pair); None with fewer than two.
pub fn paired(d: &[f64]) -> Option<TTest> {
    if d.len() < 2 {
        return None;
    }
    let (m, v) = mean_var(d);
    Some(TTest {
        diff: m,
        se: (v / d.len() as f64).sqrt(),
        df: (d.len() - 1) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_the_tables() {
        // Two-sided 5 % points of Student's t (any statistics table).
        for (df, t) in [(1.0, 12.706), (2.0, 4.303), (4.0, 2.776), (10.0, 2.228)] {
            assert!((t_critical(0.05, df) - t).abs() < 1e-3, "df {df}");
            assert!((t_p(t, df) - 0.05).abs() < 1e-4, "df {df}");
        }
    }

    #[test]
    fn welch_matches_a_hand_computation_and_separates_what_differs() {
        // a: mean 2, var 1; b: mean 5, var 4; se² = 1/3 + 4/3; df = (5/3)² / ((1/3)²/2 + (4/3)²/2).
        let t = welch(&[1.0, 2.0, 3.0], &[3.0, 5.0, 7.0]).unwrap();
        assert!((t.diff - 3.0).abs() < 1e-12);
        assert!((t.se - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((t.df - (25.0 / 9.0) / (17.0 / 18.0)).abs() < 1e-12, "{t:?}");
        // Negative control: the same values on both sides.
        assert_eq!(welch(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]).unwrap().p(), 1.0);
        // Positive control: three runs per side 10 % apart with 1 % scatter.
        let p = welch(&[100.0, 101.0, 99.0], &[110.0, 111.0, 109.0])
            .unwrap()
            .p();
        assert!(p < 0.001, "{p}");
        assert!(welch(&[1.0], &[1.0, 2.0]).is_none());
    }

    #[test]
    fn paired_differences_and_zero_scatter() {
        let t = paired(&[1.0, 2.0, 3.0]).unwrap();
        assert_eq!((t.diff, t.df), (2.0, 2.0));
        assert!((t.p() - t_p(2.0 / (1.0f64 / 3.0).sqrt(), 2.0)).abs() < 1e-12);
        assert_eq!(paired(&[0.5, 0.5]).unwrap().p(), 0.0);
        assert_eq!(paired(&[0.0, 0.0]).unwrap().p(), 1.0);
        assert!(paired(&[1.0]).is_none());
    }
}
