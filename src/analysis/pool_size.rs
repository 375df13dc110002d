//! From a sweep's levels to a fitted scalability model and a pool-size recommendation:
//! pool = min(USL limit, largest measured level meeting the SLO), shown beside the
//! cores × 2 + spindles rule of thumb, with the max_connections to pair with it.
//!
//! Invariants: works on the result document's sweep levels only, so a sweep read back from disk
//! gets the same advice; every recommendation carries its basis in words; no pool size is
//! recommended that no measurement or model supports.

use super::usl::{self, Limit};
use crate::report::model::{
    Bounds, CoefficientIntervals, Heuristic, KappaTest, LimitInterval, Recommendation, SloSpec,
    SweepLevel, UslModel, Warning, WarningCode,
};

/// Coverage of the bootstrap interval of the limit.
pub const INTERVAL_LEVEL: f64 = 0.95;

/// Seed of the bootstrap's random streams (fixed: the same levels give the same interval).
const BOOTSTRAP_SEED: u64 = 0x5eed_b007;

/// Fits the USL to the levels that completed transactions and derives the limit and its interval.
pub fn usl_model(levels: &[SweepLevel], replicates: usize) -> Result<UslModel, usl::UslError> {
    let points: Vec<(f64, f64)> = levels
        .iter()
        .filter(|l| l.count > 0)
        .map(|l| (l.clients as f64, l.tps))
        .collect();
    usl_model_of(&points, replicates)
}

/// Fits the USL to `(N, X)` points: the selected model, its limit, and bootstrap intervals of
/// the coefficients and the limit.
pub fn usl_model_of(points: &[(f64, f64)], replicates: usize) -> Result<UslModel, usl::UslError> {
    let fit = usl::fit(points)?;
    let n_max = points.iter().map(|p| p.0).fold(1.0, f64::max);
    let limit = usl::limit(&fit.params);
    let boot = usl::bootstrap(points, &fit, replicates, INTERVAL_LEVEL, BOOTSTRAP_SEED);
    let (kind, n, tps, asymptote) = match limit {
        Limit::Peak { n, throughput } => ("peak", Some(n), Some(throughput), None),
        Limit::Plateau {
            n,
            throughput,
            asymptote,
        } => ("plateau", Some(n), Some(throughput), Some(asymptote)),
        Limit::Linear => ("linear", None, None, None),
    };
    let bounds = |b: usl::Bounds| Bounds {
        lower: b.lower,
        upper: b.upper,
    };
    Ok(UslModel {
        lambda: fit.params.lambda,
        sigma: fit.params.sigma,
        kappa: fit.params.kappa,
        r2: fit.r2,
        points: points.len(),
        kappa_fixed: fit.kappa_fixed,
        kappa_test: fit.kappa_test.map(|t| KappaTest {
            f: t.f,
            df: t.df,
            p_value: t.p_value,
            level: usl::KAPPA_TEST_LEVEL,
            sse_without_kappa: t.sse_without,
            sse_with_kappa: t.sse_with,
        }),
        coefficient_intervals: boot.map(|b| CoefficientIntervals {
            level: INTERVAL_LEVEL,
            lambda: bounds(b.lambda),
            sigma: bounds(b.sigma),
            kappa: b.kappa.map(bounds),
        }),
        limit_kind: kind.into(),
        limit_n: n,
        limit_tps: tps,
        asymptote_tps: asymptote,
        extrapolated: n.is_some_and(|n| n as f64 > n_max),
        limit_interval: boot.and_then(|b| b.limit).map(|i| LimitInterval {
            level: i.level,
            lower: i.lower,
            upper: i.upper,
            replicates: i.replicates,
            unbounded: i.unbounded,
            method: "residual bootstrap of the unrounded limit (levels fixed, centred residuals \
                     inflated by √(n/(n−p)) resampled onto the fitted curve, each replicate \
                     refitted with the model selected on the full data), percentile interval"
                .into(),
        }),
    })
}

/// Where the server's core and spindle counts come from.
#[derive(Debug, Clone, Default)]
pub struct Hardware {
    /// `--server-cores`.
    pub server_cores: Option<u32>,
    /// `--spindles`.
    pub spindles: Option<u32>,
    /// The server runs on this host (a sandbox or a loopback address).
    pub server_is_local: bool,
    /// Physical cores of this host, when known.
    pub host_physical_cores: Option<u32>,
    /// Logical CPUs of this host.
    pub host_logical_cpus: u32,
}

/// The cores × 2 + spindles rule, or `None` when the server's cores are unknown.
pub fn heuristic(hw: &Hardware) -> Option<Heuristic> {
    let (cores, core_src) = match (hw.server_cores, hw.server_is_local) {
        (Some(c), _) => (c, format!("{c} server cores from --server-cores")),
        (None, true) => match hw.host_physical_cores {
            Some(p) => (
                p,
                format!(
                    "the server runs on this host: {p} physical cores ({} logical CPUs)",
                    hw.host_logical_cpus
                ),
            ),
            None => (
                hw.host_logical_cpus,
                format!(
                    "the server runs on this host: {} logical CPUs (physical count unknown)",
                    hw.host_logical_cpus
                ),
            ),
        },
        (None, false) => return None,
    };
    let (spindles, sp_src) = match hw.spindles {
        Some(s) => (s, format!("{s} spindles from --spindles")),
        None => (
            0,
            "0 effective spindles assumed (data set cached in RAM or on SSD; give --spindles)"
                .to_string(),
        ),
    };
    Some(Heuristic {
        cores,
        spindles,
        pool_size: cores * 2 + spindles,
        assumption: format!("{core_src}; {sp_src}"),
    })
}

/// PostgreSQL's default `superuser_reserved_connections` (and `reserved_connections` 0): assumed
/// when no server was asked, as with `sweep --fit`.
pub const DEFAULT_RESERVED_CONNECTIONS: i64 = 3;

/// Headroom beside the pool for administration, monitoring and maintenance sessions: 10% of the
/// pool, at least 3, so a DBA can still connect when the pool is full.
fn headroom(pool: u32) -> u32 {
    pool.div_ceil(10).max(3)
}

/// The recommendation for these levels and model.
pub fn recommend(
    levels: &[SweepLevel],
    model: Option<&UslModel>,
    slo: Option<&SloSpec>,
    hw: &Hardware,
    reserved_connections: i64,
) -> Recommendation {
    let usl_limit = model.and_then(|m| m.limit_n);
    let slo_limit = levels
        .iter()
        .filter(|l| l.meets_slo == Some(true))
        .map(|l| l.clients)
        .max();
    let max_level = levels.iter().map(|l| l.clients).max().unwrap_or(0);
    let usl_words = |m: &UslModel, n: u32| {
        let what = if m.limit_kind == "peak" {
            format!("USL peak N* = {n}")
        } else {
            format!("USL plateau (95% of λ/σ) at N = {n}")
        };
        if m.extrapolated {
            format!("{what}, extrapolated beyond the largest measured level {max_level}")
        } else {
            what
        }
    };
    let (pool_size, basis) = match (model, usl_limit, slo, slo_limit) {
        (Some(m), Some(u), Some(s), Some(l)) => (
            Some(u.min(l)),
            format!(
                "min({}, largest measured level meeting {} = {l})",
                usl_words(m, u),
                s.text
            ),
        ),
        (_, _, Some(s), None) => (
            None,
            format!(
                "no measured level met {} (without errors): the server cannot meet that objective \
                 at any tested concurrency",
                s.text
            ),
        ),
        (Some(m), Some(u), None, _) => (
            Some(u),
            format!(
                "{}; no --slo given, so latency was not considered",
                usl_words(m, u)
            ),
        ),
        (Some(_), None, Some(s), Some(l)) => (
            Some(l),
            format!(
                "throughput still scales linearly up to {max_level} clients (no USL limit), so the \
                 largest measured level meeting {} = {l}",
                s.text
            ),
        ),
        (Some(_), None, None, _) => (
            None,
            format!(
                "throughput still scales linearly up to {max_level} clients: no limit found; \
                 extend --clients beyond {max_level} or give --slo"
            ),
        ),
        (None, _, Some(s), Some(l)) => (
            Some(l),
            format!(
                "no USL model; largest measured level meeting {} = {l}",
                s.text
            ),
        ),
        (None, _, None, _) => (
            None,
            "no USL model and no --slo: nothing to base a pool size on".to_string(),
        ),
    };
    let max_connections = pool_size.map(|p| {
        let reserved = reserved_connections.max(0) as u32;
        (
            p + reserved + headroom(p),
            format!(
                "pool {p} + {reserved} reserved slots (superuser_reserved_connections + \
                 reserved_connections) + {} for administration and monitoring; with several \
                 application instances, count the pool once per instance",
                headroom(p)
            ),
        )
    });
    Recommendation {
        pool_size,
        basis,
        usl_limit,
        slo_limit,
        heuristic: heuristic(hw),
        max_connections: max_connections.as_ref().map(|m| m.0),
        max_connections_basis: max_connections.map(|m| m.1),
    }
}

/// Below this R² the model explains too little of the measured variation to trust its limit.
pub const MIN_R2: f64 = 0.9;

/// A level scaling more than this factor above linear (X(N) > f · N · X(1)) is superlinear.
pub const SUPERLINEAR: f64 = 1.1;

/// Reasons to doubt the model: a poor fit, superlinear scaling (which the USL, with σ ≥ 0, cannot
/// follow), and a limit extrapolated beyond the measured levels.
pub fn model_warnings(levels: &[SweepLevel], model: Option<&UslModel>) -> Vec<Warning> {
    let mut out = Vec::new();
    let Some(m) = model else {
        return out;
    };
    if m.r2 < MIN_R2 {
        out.push(Warning {
            code: WarningCode::UslPoorFit,
            message: format!(
                "the USL fit has R² {:.3} (below {MIN_R2}): throughput varied in ways the model \
                 does not explain, so treat its limit as rough; lengthen -T, add levels, or run \
                 on a quieter machine",
                m.r2
            ),
        });
    }
    let single = levels.iter().find(|l| l.clients == 1 && l.tps > 0.0);
    if let Some(one) = single {
        let worst = levels
            .iter()
            .map(|l| (l.clients, l.tps / (l.clients as f64 * one.tps)))
            .filter(|(_, r)| *r > SUPERLINEAR)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((n, ratio)) = worst {
            out.push(Warning {
                code: WarningCode::SuperlinearScaling,
                message: format!(
                    "at {n} clients throughput was {ratio:.2}× what {n} independent single clients \
                     gave: the single-client level was held back (client or OS scheduling, a \
                     cold cache, a busy host), and the USL (σ ≥ 0) cannot follow it, so σ sits \
                     at its bound; rerun with a warmup and on a quieter host"
                ),
            });
        }
    }
    if m.extrapolated {
        out.push(Warning {
            code: WarningCode::UslExtrapolated,
            message: format!(
                "the model's limit N = {} lies beyond the largest measured level: extend \
                 --clients past it to confirm",
                m.limit_n.unwrap_or(0)
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hist::new_hist;
    use crate::report::latency_summary;

    fn level(clients: u32, tps: f64, meets: Option<bool>) -> SweepLevel {
        let mut h = new_hist(2);
        h.record(1000).unwrap();
        SweepLevel {
            clients,
            tps,
            count: (tps * 10.0) as u64,
            errors: Default::default(),
            latency: latency_summary(&h),
            per_query_tps: Default::default(),
            checkout_wait_p99_ms: 0.0,
            client_cpu_share: 0.1,
            meets_slo: meets,
            usl_tps: None,
            warnings: Vec::new(),
            hygiene: None,
        }
    }

    fn usl_levels(meets_up_to: u32) -> Vec<SweepLevel> {
        let p = usl::Params {
            lambda: 1000.0,
            sigma: 0.05,
            kappa: 0.002,
        };
        [1, 2, 4, 8, 16, 32, 64]
            .iter()
            .map(|&n| level(n, p.throughput(n as f64), Some(n <= meets_up_to)))
            .collect()
    }

    fn slo() -> SloSpec {
        SloSpec {
            text: "p99<20ms".into(),
            percentile: 99.0,
            threshold_ms: 20.0,
            inclusive: false,
        }
    }

    #[test]
    fn pool_is_the_smaller_of_the_peak_and_the_slo_limit() {
        let levels = usl_levels(16);
        let m = usl_model(&levels, 100).unwrap();
        // N* = floor(sqrt(0.95 / 0.002)) = 21.
        assert_eq!(m.limit_kind, "peak");
        assert_eq!(m.limit_n, Some(21));
        let hw = Hardware {
            server_is_local: true,
            host_physical_cores: Some(4),
            host_logical_cpus: 8,
            ..Hardware::default()
        };
        let r = recommend(&levels, Some(&m), Some(&slo()), &hw, 3);
        assert_eq!(
            (r.usl_limit, r.slo_limit, r.pool_size),
            (Some(21), Some(16), Some(16))
        );
        assert_eq!(r.max_connections, Some(16 + 3 + 3));
        let h = r.heuristic.unwrap();
        assert_eq!((h.cores, h.spindles, h.pool_size), (4, 0, 8));

        let loose = usl_levels(64);
        let r = recommend(&loose, Some(&m), Some(&slo()), &hw, 3);
        assert_eq!(r.pool_size, Some(21));
    }

    #[test]
    fn no_level_meeting_the_slo_gives_no_pool_and_says_why() {
        let levels = usl_levels(0);
        let m = usl_model(&levels, 50).unwrap();
        let r = recommend(&levels, Some(&m), Some(&slo()), &Hardware::default(), 3);
        assert_eq!(r.pool_size, None);
        assert!(r.basis.contains("p99<20ms"), "{}", r.basis);
        assert!(r.max_connections.is_none());
        // A remote server without --server-cores: no heuristic, rather than a guess.
        assert!(r.heuristic.is_none());
    }

    #[test]
    fn linear_scaling_defers_to_the_slo_or_recommends_nothing() {
        let levels: Vec<SweepLevel> = [1, 2, 4, 8]
            .iter()
            .map(|&n| level(n, 100.0 * n as f64, Some(n <= 4)))
            .collect();
        let m = usl_model(&levels, 20).unwrap();
        assert_eq!((m.limit_kind.as_str(), m.limit_n), ("linear", None));
        assert!(m.limit_interval.is_none());
        let r = recommend(&levels, Some(&m), Some(&slo()), &Hardware::default(), 3);
        assert_eq!(r.pool_size, Some(4));
        assert!(r.basis.contains("linearly"), "{}", r.basis);
        let r = recommend(&levels, Some(&m), None, &Hardware::default(), 3);
        assert_eq!(r.pool_size, None);
        assert!(r.basis.contains("extend --clients beyond 8"), "{}", r.basis);
    }

    #[test]
    fn a_plateau_recommends_the_95_percent_point() {
        let p = usl::Params {
            lambda: 1000.0,
            sigma: 0.1,
            kappa: 0.0,
        };
        let levels: Vec<SweepLevel> = [1, 2, 4, 8, 16, 32, 64, 128, 256]
            .iter()
            .map(|&n| level(n, p.throughput(n as f64), None))
            .collect();
        let m = usl_model(&levels, 20).unwrap();
        assert_eq!(m.limit_kind, "plateau");
        assert!(m.kappa_fixed);
        // ceil(19 × 0.9 / 0.1) = 171, inside the measured range.
        assert_eq!(m.limit_n, Some(171));
        assert!(!m.extrapolated);
        assert!((m.asymptote_tps.unwrap() - 10_000.0).abs() < 1.0);
        let r = recommend(&levels, Some(&m), None, &Hardware::default(), 3);
        assert_eq!(r.pool_size, Some(171));
        assert!(r.basis.contains("no --slo"), "{}", r.basis);
    }

    #[test]
    fn model_warnings_flag_poor_fits_superlinearity_and_extrapolation_only() {
        // Negative control: clean USL data draw no warning.
        let clean = usl_levels(64);
        let m = usl_model(&clean, 20).unwrap();
        assert!(model_warnings(&clean, Some(&m)).is_empty());
        // Positive control: a held-back single client and a noisy middle.
        let noisy: Vec<SweepLevel> = [(1, 100.0), (2, 450.0), (4, 300.0), (8, 900.0), (16, 200.0)]
            .iter()
            .map(|&(n, x)| level(n, x, None))
            .collect();
        let m = usl_model(&noisy, 20).unwrap();
        let codes: Vec<WarningCode> = model_warnings(&noisy, Some(&m))
            .into_iter()
            .map(|w| w.code)
            .collect();
        assert!(codes.contains(&WarningCode::UslPoorFit), "{codes:?}");
        assert!(
            codes.contains(&WarningCode::SuperlinearScaling),
            "{codes:?}"
        );
        // A plateau beyond the last level is an extrapolation.
        let p = usl::Params {
            lambda: 1000.0,
            sigma: 0.02,
            kappa: 0.0,
        };
        let short: Vec<SweepLevel> = [1, 2, 4, 8, 16]
            .iter()
            .map(|&n| level(n, p.throughput(n as f64), None))
            .collect();
        let m = usl_model(&short, 20).unwrap();
        assert!(m.extrapolated, "{m:?}");
        let w = model_warnings(&short, Some(&m));
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].code, "usl_extrapolated");
    }

    #[test]
    fn explicit_server_cores_and_spindles_win() {
        let hw = Hardware {
            server_cores: Some(16),
            spindles: Some(4),
            server_is_local: true,
            host_physical_cores: Some(2),
            host_logical_cpus: 2,
        };
        let h = heuristic(&hw).unwrap();
        assert_eq!(h.pool_size, 36);
        assert!(h.assumption.contains("--server-cores"));
    }
}
