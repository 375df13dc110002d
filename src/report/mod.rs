//! The result document and everything written from it: run.json, CSVs, the interval log, the
//! index line, the terminal summary, and the JSON Schema of run.json.
//!
//! Report code reads [`model::RunDocument`] only, never engine internals, so a document read back
//! from disk renders exactly like one just measured.

pub mod advice;
pub mod archive;
pub mod csv_out;
pub mod findings;
pub mod hlog;
pub mod html;
pub mod hygiene;
pub mod index;
pub mod isolation;
pub mod merge;
pub mod model;
pub mod read;
pub mod set;
pub mod summary;
pub mod sweep_chart;
pub mod sweep_model;
pub mod sweep_out;
pub mod warning_code;
pub mod warnings;

use crate::hist::Hist;
use model::LatencySummary;

/// Summarizes a µs histogram into milliseconds, keeping the encoded histogram.
pub fn latency_summary(h: &Hist) -> LatencySummary {
    let ms = |us: u64| us as f64 / 1000.0;
    if h.is_empty() {
        return LatencySummary {
            count: 0,
            mean_ms: 0.0,
            stddev_ms: 0.0,
            min_ms: 0.0,
            p50_ms: 0.0,
            p90_ms: 0.0,
            p95_ms: 0.0,
            p99_ms: 0.0,
            p999_ms: 0.0,
            p9999_ms: 0.0,
            max_ms: 0.0,
            histogram: crate::hist::encode(h),
        };
    }
    LatencySummary {
        count: h.len(),
        mean_ms: h.mean() / 1000.0,
        stddev_ms: h.stdev() / 1000.0,
        min_ms: ms(h.min()),
        p50_ms: ms(h.value_at_quantile(0.5)),
        p90_ms: ms(h.value_at_quantile(0.9)),
        p95_ms: ms(h.value_at_quantile(0.95)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        p9999_ms: ms(h.value_at_quantile(0.9999)),
        max_ms: ms(h.max()),
        histogram: crate::hist::encode(h),
    }
}

/// The JSON Schema of run.json, as checked in under `schema/run.schema.json`.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(model::RunDocument);
    let mut s = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_percentiles_are_ordered_and_in_ms() {
        let mut h = crate::hist::new_hist(3);
        for v in 1..=10_000u64 {
            h.record(v).unwrap();
        }
        let s = latency_summary(&h);
        assert_eq!(s.count, 10_000);
        assert!((s.p50_ms - 5.0).abs() < 0.01);
        let seq = [
            s.min_ms, s.p50_ms, s.p90_ms, s.p95_ms, s.p99_ms, s.p999_ms, s.p9999_ms, s.max_ms,
        ];
        assert!(seq.windows(2).all(|w| w[0] <= w[1]), "{seq:?}");
    }

    #[test]
    fn checked_in_schema_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/run.schema.json");
        let current = json_schema();
        if std::env::var_os("PGSTORM_UPDATE_SCHEMA").is_some() {
            std::fs::write(path, &current).unwrap();
        }
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == current,
            "schema/run.schema.json is stale: run PGSTORM_UPDATE_SCHEMA=1 cargo test checked_in_schema"
        );
    }
}
