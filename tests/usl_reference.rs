//! The USL fit against published data and fits, asserting σ, κ, λ and N* within 1 %:
//!
//! - `tests/corpus/usl/specsdm91.csv`: a Sun SPARCcenter 2000 in the SPEC SDM91 benchmark, the
//!   data set `specsdm91` of the R package `usl` (Stefan Moeding, github.com/smoeding/usl, from
//!   Gunther, *Guerrilla Capacity Planning*, Springer 2007). Published fit (the package's README
//!   and vignette): σ 0.0277285, κ 0.0001044, λ 89.995; `peak.scalability` N 96.5.
//! - `tests/corpus/usl/cisco.csv`: the Cisco benchmark of Baron Schwartz, *Practical Scalability
//!   Analysis with the Universal Scalability Law* (VividCortex, 2015), as used in the tests of
//!   codahale/usl4j (`ModelTest.java`). Book fit: σ 0.02671591, κ 7.690945e-4, λ 995.6486, N* 35.
//!
//! Regression: the Cisco data measured up to N = 32 with a peak at 35 used to be refitted with
//! κ = 0 because the peak lay beyond the measured levels, and reported "plateau at N = 277".

use std::path::Path;

use pgstorm::analysis::pool_size::usl_model_of;
use pgstorm::analysis::usl::{self, Limit};
use pgstorm::scenarios::sweep::read_points;

fn points(name: &str) -> Vec<(f64, f64)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus/usl")
        .join(name);
    read_points(&path)
        .unwrap()
        .iter()
        .map(|p| (f64::from(p.clients), p.tps))
        .collect()
}

fn within_1_percent(what: &str, got: f64, published: f64) {
    assert!(
        (got - published).abs() <= 0.01 * published.abs(),
        "{what}: got {got}, published {published}"
    );
}

#[test]
fn specsdm91_matches_the_r_package_usl() {
    let data = points("specsdm91.csv");
    assert_eq!(data.len(), 7);
    let f = usl::fit(&data).unwrap();
    assert!(!f.kappa_fixed, "{f:?}");
    within_1_percent("σ", f.params.sigma, 0.0277285);
    within_1_percent("κ", f.params.kappa, 0.0001044);
    within_1_percent("λ", f.params.lambda, 89.995);
    within_1_percent("peak N", usl::raw_limit(&f.params), 96.5);
    assert_eq!(usl::limit(&f.params).n(), Some(96));
}

#[test]
fn cisco_matches_the_book_and_reports_a_peak_near_35_with_an_interval_containing_it() {
    let data = points("cisco.csv");
    assert_eq!(data.len(), 32);
    let f = usl::fit(&data).unwrap();
    within_1_percent("σ", f.params.sigma, 0.02671591);
    within_1_percent("κ", f.params.kappa, 7.690945e-4);
    within_1_percent("λ", f.params.lambda, 995.6486);
    // κ is anything but noise: F ≈ 60 on (1, 29) degrees of freedom.
    let t = f.kappa_test.unwrap();
    assert_eq!(t.df, 29);
    assert!(t.f > 30.0 && t.p_value < 1e-4, "{t:?}");
    let Limit::Peak { n, .. } = usl::limit(&f.params) else {
        panic!("expected a peak, got {:?}", usl::limit(&f.params))
    };
    within_1_percent("N*", f64::from(n), 35.0);

    let m = usl_model_of(&data, 400).unwrap();
    assert_eq!((m.limit_kind.as_str(), m.limit_n), ("peak", Some(35)));
    let i = m.limit_interval.unwrap();
    let upper = i.upper.expect("a bounded interval");
    assert!(i.lower <= 35.0 && 35.0 <= upper, "{i:?}");
    assert_eq!(i.unbounded, 0, "{i:?}");
    // Each coefficient has its own interval around its estimate.
    let c = m.coefficient_intervals.unwrap();
    let k = c.kappa.expect("κ is in the model");
    for (what, lo, hi, est) in [
        ("λ", c.lambda.lower, c.lambda.upper, m.lambda),
        ("σ", c.sigma.lower, c.sigma.upper, m.sigma),
        ("κ", k.lower, k.upper, m.kappa),
    ] {
        assert!(lo < est && est < hi, "{what}: {lo} .. {hi} vs {est}");
    }
}
