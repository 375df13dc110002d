//! The upper tail of the F distribution with 1 numerator degree of freedom, for the nested-model
//! test that decides whether κ earns its place in the USL.
//!
//! P(F(1, d) > f) = I_{d/(d+f)}(d/2, 1/2), the regularised incomplete beta function, evaluated by
//! its continued fraction (modified Lentz). ln Γ comes from the Stirling series after shifting the
//! argument above [`STIRLING_FROM`] with Γ(x+1) = xΓ(x). Both are accurate to ~1e-12 in the
//! range used here (d up to a few thousand points, any f ≥ 0).
//!
//! Invariants: the result lies in [0, 1]; f = 0 gives 1, f = ∞ gives 0.

/// Smallest argument fed to the Stirling series: its truncation error is below 1e-13 there.
const STIRLING_FROM: f64 = 10.0;

/// Continued-fraction convergence: relative change of one step.
const EPS: f64 = 1e-15;

/// Guard against a zero denominator in Lentz's method.
const TINY: f64 = 1e-300;

/// Most continued-fraction steps; convergence takes O(√(a·b)) steps, far fewer than this.
const MAX_STEPS: usize = 10_000;

/// ln Γ(x) for x > 0.
fn ln_gamma(x: f64) -> f64 {
    let mut shift = 0.0;
    let mut z = x;
    while z < STIRLING_FROM {
        shift -= z.ln();
        z += 1.0;
    }
    // Stirling: ln Γ(z) ≈ (z − ½) ln z − z + ½ ln 2π + 1/(12z) − 1/(360z³) + 1/(1260z⁵) − 1/(1680z⁷).
    let z2 = z * z;
    let series = (1.0 / 12.0 - (1.0 / 360.0 - (1.0 / 1260.0 - 1.0 / (1680.0 * z2)) / z2) / z2) / z;
    shift + (z - 0.5) * z.ln() - z + 0.5 * (2.0 * std::f64::consts::PI).ln() + series
}

/// Continued fraction of the incomplete beta function (converges for x < (a+1)/(a+b+2)).
fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    let guard = |v: f64| if v.abs() < TINY { TINY } else { v };
    let mut c = 1.0;
    let mut d = 1.0 / guard(1.0 - (a + b) * x / (a + 1.0));
    let mut h = d;
    for m in 1..MAX_STEPS {
        let m = m as f64;
        let even = m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m));
        d = 1.0 / guard(1.0 + even * d);
        c = guard(1.0 + even / c);
        h *= d * c;
        let odd = -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0));
        d = 1.0 / guard(1.0 + odd * d);
        c = guard(1.0 + odd / c);
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// The regularised incomplete beta function I_x(a, b).
fn inc_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_fraction(b, a, 1.0 - x) / b
    }
}

/// P(F(1, d) > f): the p-value of an F statistic on (1, d) degrees of freedom.
pub fn upper_tail_1(f: f64, d: usize) -> f64 {
    upper_tail_1_real(f, d as f64)
}

/// [`upper_tail_1`] for real degrees of freedom d > 0 (Welch's approximation gives fractional
/// ones); with f = t², this is the two-sided p of Student's t on d degrees of freedom.
pub fn upper_tail_1_real(f: f64, d: f64) -> f64 {
    if f.is_nan() || f <= 0.0 {
        return 1.0;
    }
    if f.is_infinite() {
        return 0.0;
    }
    inc_beta(d / 2.0, 0.5, d / (d + f)).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_closed_forms_of_one_and_two_degrees_of_freedom() {
        // F(1, d) = T_d²: with d = 1, T is Cauchy, P(|T| > t) = 1 − (2/π) atan t; with d = 2,
        // P(|T| > t) = 1 − t / √(t² + 2).
        for f in [0.01, 0.5, 1.0, 4.0, 60.0, 1e4] {
            let t: f64 = f64::sqrt(f);
            let one = 1.0 - 2.0 / std::f64::consts::PI * t.atan();
            let two = 1.0 - t / (t * t + 2.0).sqrt();
            assert!((upper_tail_1(f, 1) - one).abs() < 1e-10, "f {f}");
            assert!((upper_tail_1(f, 2) - two).abs() < 1e-10, "f {f}");
        }
    }

    #[test]
    fn large_d_approaches_the_chi_square_tail_and_the_ends_hold() {
        // As d → ∞, F(1, d) → χ²(1): P(χ²₁ > 3.841459) = 0.05.
        assert!((upper_tail_1(3.841_459, 100_000) - 0.05).abs() < 1e-4);
        assert_eq!(upper_tail_1(0.0, 5), 1.0);
        assert_eq!(upper_tail_1(f64::INFINITY, 5), 0.0);
        // Monotone: a larger statistic is less likely.
        assert!(upper_tail_1(10.0, 29) < upper_tail_1(4.0, 29));
        // ln Γ at integers is ln((n−1)!).
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
    }
}
