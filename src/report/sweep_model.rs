//! The `sweep` section of run.json: one closed-loop load per concurrency level, the Universal
//! Scalability Law fitted to them, the pool-size recommendation, and the optional open-loop
//! search for the highest rate that meets a latency SLO.
//!
//! Kept beside `model` (and re-exported from it) so the sweep's many types do not crowd the core
//! document; the same rules hold: every field documented, latencies in ms.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::model::{LatencySummary, MixEntry, Warning};

/// A concurrency sweep and what was learned from it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SweepSection {
    /// How the levels were driven.
    pub config: SweepConfig,
    /// One entry per completed level, in the order run.
    pub levels: Vec<SweepLevel>,
    /// The fitted model; null when it could not be fitted (see `usl_error`).
    pub usl: Option<UslModel>,
    /// Why no model was fitted (too few levels, no throughput, ...).
    pub usl_error: Option<String>,
    /// The pool size to use and how it was chosen.
    pub recommendation: Recommendation,
    /// The open-loop rate search (`--rate-search`), when it ran.
    pub rate_search: Option<RateSearch>,
}

/// Settings shared by every level.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SweepConfig {
    /// Concurrency levels requested (`--clients`), in order.
    pub clients: Vec<u32>,
    /// Measured seconds per level, after the warmup.
    pub duration_s: f64,
    /// Warmup seconds per level, excluded from its figures.
    pub warmup_s: f64,
    /// Wire protocol.
    pub protocol: String,
    /// Query types and weights.
    pub mix: Vec<MixEntry>,
    /// The latency objective (`--slo`), as given; null without one.
    pub slo: Option<SloSpec>,
    /// Bootstrap replicates for the interval of the concurrency limit.
    pub bootstrap_replicates: usize,
}

/// A latency objective.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct SloSpec {
    /// As written, e.g. `p99<20ms`.
    pub text: String,
    /// Percentile checked (e.g. 99.0).
    pub percentile: f64,
    /// Threshold (ms).
    pub threshold_ms: f64,
    /// Whether the threshold itself still meets the objective (`<=`).
    pub inclusive: bool,
}

/// One closed-loop level.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SweepLevel {
    /// Concurrent clients = pool size of this level.
    pub clients: u32,
    /// Successful transactions per second of measured time.
    pub tps: f64,
    /// Successful transactions.
    pub count: u64,
    /// Failed transactions by class.
    pub errors: BTreeMap<String, u64>,
    /// Latency of successful transactions, all query types (from the actual start: closed loop).
    pub latency: LatencySummary,
    /// Per query type: name → successful transactions per second.
    pub per_query_tps: BTreeMap<String, f64>,
    /// 99th percentile pool checkout wait (ms).
    pub checkout_wait_p99_ms: f64,
    /// Share of the host's CPU pgstorm itself used (0..1): near 1 means the client, not the
    /// server, may have been the limit.
    pub client_cpu_share: f64,
    /// Whether the level met the SLO with no failed transaction (null without an SLO).
    pub meets_slo: Option<bool>,
    /// Modelled throughput at this level (null without a model).
    pub usl_tps: Option<f64>,
    /// Measurement-quality warnings of this level.
    pub warnings: Vec<Warning>,
    /// Vacuum and checkpoint before this level, from the second level on (the first level's,
    /// with the `--pre-sql` hook, is the document's `hygiene`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hygiene: Option<super::hygiene::HygieneSection>,
}

/// The fitted Universal Scalability Law X(N) = λN / (1 + σ(N−1) + κN(N−1)).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct UslModel {
    /// λ: throughput of one client without contention (tx/s).
    pub lambda: f64,
    /// σ: contention, in [0, 1).
    pub sigma: f64,
    /// κ: coherency, in [0, 1).
    pub kappa: f64,
    /// Coefficient of determination of the fit.
    pub r2: f64,
    /// Levels the fit used.
    pub points: usize,
    /// κ was fixed at 0 (Amdahl's law): the F-test in `kappa_test` found that it does not
    /// improve the fit significantly.
    pub kappa_fixed: bool,
    /// The nested-model F-test that kept or dropped κ; null when three points left no degree of
    /// freedom to test with (the full model then stands).
    #[serde(default)]
    pub kappa_test: Option<KappaTest>,
    /// Bootstrap intervals of λ, σ and κ, from the same replicates as `limit_interval`; null
    /// without replicates.
    #[serde(default)]
    pub coefficient_intervals: Option<CoefficientIntervals>,
    /// `peak` (retrograde region: N* = floor(√((1−σ)/κ))), `plateau` (κ ≈ 0: first N reaching 95%
    /// of λ/σ) or `linear` (no limit visible).
    pub limit_kind: String,
    /// N* (peak) or the 95%-of-asymptote N (plateau); null when linear.
    pub limit_n: Option<u32>,
    /// Modelled throughput at `limit_n` (tx/s).
    pub limit_tps: Option<f64>,
    /// λ/σ, the throughput ceiling when κ ≈ 0 (tx/s).
    pub asymptote_tps: Option<f64>,
    /// Whether `limit_n` lies beyond the largest measured level (an extrapolation).
    pub extrapolated: bool,
    /// Bootstrap interval of `limit_n`; null when there is no limit.
    pub limit_interval: Option<LimitInterval>,
}

/// The F-test of κ: the full model against the nested one with κ = 0.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct KappaTest {
    /// F = (SSE without κ − SSE with κ) / (SSE with κ / df).
    pub f: f64,
    /// Denominator degrees of freedom (points − 3); the numerator has 1.
    pub df: usize,
    /// P(F(1, df) > f).
    pub p_value: f64,
    /// Significance level: κ is kept when `p_value` is at most this.
    pub level: f64,
    /// Residual sum of squares with κ fixed at 0.
    pub sse_without_kappa: f64,
    /// Residual sum of squares with κ free.
    pub sse_with_kappa: f64,
}

/// Bootstrap percentile intervals of the coefficients, every replicate refitted with the
/// selected model.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CoefficientIntervals {
    /// Coverage, e.g. 0.95.
    pub level: f64,
    /// λ (tx/s).
    pub lambda: Bounds,
    /// σ.
    pub sigma: Bounds,
    /// κ; null when κ is fixed at 0.
    pub kappa: Option<Bounds>,
}

/// Lower and upper bound of an interval.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Bounds {
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
}

/// A bootstrap percentile interval of the limit before rounding (√((1−σ)/κ), or 19(1−σ)/σ).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LimitInterval {
    /// Coverage, e.g. 0.95.
    pub level: f64,
    /// Lower bound.
    pub lower: f64,
    /// Upper bound; null when too many replicates showed no limit to bound it.
    pub upper: Option<f64>,
    /// Replicates fitted.
    pub replicates: usize,
    /// Replicates without a limit of the same kind.
    pub unbounded: usize,
    /// How the replicates were made.
    pub method: String,
}

/// The pool size to configure, and the figures it was chosen from.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Recommendation {
    /// Recommended pool size (connections per application instance); null when none can be
    /// justified (see `basis`).
    pub pool_size: Option<u32>,
    /// How `pool_size` was chosen, in words.
    pub basis: String,
    /// The model's limit (N* or the 95%-of-asymptote N).
    pub usl_limit: Option<u32>,
    /// Largest measured level meeting the SLO (null without an SLO or when none met it).
    pub slo_limit: Option<u32>,
    /// The rule of thumb cores × 2 + spindles, for comparison.
    pub heuristic: Option<Heuristic>,
    /// max_connections to pair with the pool: pool + reserved slots + headroom for
    /// administration and monitoring sessions.
    pub max_connections: Option<u32>,
    /// How `max_connections` was computed.
    pub max_connections_basis: Option<String>,
}

/// The cores × 2 + spindles rule of thumb.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Heuristic {
    /// Server CPU cores used.
    pub cores: u32,
    /// Effective spindles used.
    pub spindles: u32,
    /// cores × 2 + spindles.
    pub pool_size: u32,
    /// Where the core and spindle counts came from.
    pub assumption: String,
}

/// The open-loop search for the highest arrival rate meeting the SLO.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RateSearch {
    /// Clients (pool size) of every probe.
    pub clients: u32,
    /// The objective each probe is checked against.
    pub slo: SloSpec,
    /// Measured seconds per probe, after the warmup.
    pub duration_s: f64,
    /// Share of the offered rate a probe must complete to pass (a server that falls behind fails).
    pub min_completion: f64,
    /// Probes in the order run.
    pub probes: Vec<RateProbe>,
    /// Highest probed rate that passed (tx/s); null when none did.
    pub max_sustainable_rate: Option<f64>,
    /// Lowest probed rate that failed (tx/s), the other end of the bracket.
    pub lowest_failing_rate: Option<f64>,
}

/// One open-loop probe.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RateProbe {
    /// Offered rate (tx/s, Poisson arrivals).
    pub rate: f64,
    /// Completed successful transactions per second.
    pub achieved_tps: f64,
    /// Successful transactions.
    pub count: u64,
    /// Failed transactions.
    pub errors: u64,
    /// Latency from the intended start (free of coordinated omission).
    pub latency: LatencySummary,
    /// 99th percentile schedule lag (ms).
    pub lag_p99_ms: f64,
    /// Whether the probe met the SLO, completed its rate and had no errors.
    pub passed: bool,
    /// Why it failed (empty when it passed).
    pub reason: String,
}

impl UslModel {
    /// Modelled throughput at concurrency `n` (tx/s).
    pub fn throughput(&self, n: f64) -> f64 {
        self.lambda * n / (1.0 + self.sigma * (n - 1.0) + self.kappa * n * (n - 1.0))
    }
}

impl LatencySummary {
    /// The stored percentile nearest at or above `p` (50, 90, 95, 99, 99.9, 99.99), in ms.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        match p {
            p if p <= 50.0 => self.p50_ms,
            p if p <= 90.0 => self.p90_ms,
            p if p <= 95.0 => self.p95_ms,
            p if p <= 99.0 => self.p99_ms,
            p if p <= 99.9 => self.p999_ms,
            _ => self.p9999_ms,
        }
    }
}
