//! The HdrHistogram interval log (`latency.hlog`): one tagged histogram per query type per
//! interval, readable by HdrHistogram's own log tools (HistogramLogProcessor, HdrHistogram
//! plotters) and by [`hdrhistogram::serialization::interval_log::IntervalLogIterator`].
//!
//! Values are microseconds; the max column is divided by 1000 so it reads in milliseconds.

use std::time::Duration;

use anyhow::{anyhow, Result};
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;

use crate::hist;

/// One interval histogram, already encoded (V2 + deflate, base64).
pub struct Entry {
    /// Tag: the query type.
    pub tag: String,
    /// Start, seconds after the log's start time.
    pub start_s: f64,
    /// Interval length, seconds.
    pub duration_s: f64,
    /// The encoded histogram.
    pub encoded: String,
}

/// Renders a complete log whose timestamps are relative to `start_epoch_s`.
pub fn render(start_epoch_s: f64, entries: &[Entry]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    {
        let start = std::time::UNIX_EPOCH + Duration::from_secs_f64(start_epoch_s.max(0.0));
        let mut writer = IntervalLogWriterBuilder::new()
            .add_comment("pgstorm latency log: values in microseconds, max column in milliseconds")
            .with_start_time(start)
            .with_base_time(start)
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut out, &mut serializer)?;
        for e in entries {
            let h = hist::decode(&e.encoded)?;
            let tag = Tag::new(&e.tag)
                .ok_or_else(|| anyhow!("query type name '{}' cannot be a log tag", e.tag))?;
            writer
                .write_histogram(
                    &h,
                    Duration::from_secs_f64(e.start_s.max(0.0)),
                    Duration::from_secs_f64(e.duration_s.max(0.0)),
                    Some(tag),
                )
                .map_err(|e| anyhow!("cannot write the interval log: {e}"))?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    #[test]
    fn log_round_trips_through_the_reference_reader() {
        let mut h = hist::new_hist(3);
        for v in [100u64, 200, 300_000] {
            h.record(v).unwrap();
        }
        let entries = vec![
            Entry {
                tag: "point".into(),
                start_s: 0.0,
                duration_s: 1.0,
                encoded: hist::encode(&h),
            },
            Entry {
                tag: "join".into(),
                start_s: 1.0,
                duration_s: 1.0,
                encoded: hist::encode(&h),
            },
        ];
        let bytes = render(1_700_000_000.0, &entries).unwrap();
        // The unit is in the header, for a reader that never saw pgstorm's docs.
        let first = bytes.split(|b| *b == b'\n').next().unwrap();
        assert_eq!(
            first,
            b"#pgstorm latency log: values in microseconds, max column in milliseconds"
        );
        let mut seen = Vec::new();
        for item in IntervalLogIterator::new(&bytes) {
            if let Ok(LogEntry::Interval(i)) = item {
                seen.push((i.tag().map(|t| t.as_str().to_string()), i.max()));
            }
        }
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].0.as_deref(), Some("point"));
        assert!((seen[0].1 - 300.0).abs() < 1.0, "max in ms: {}", seen[0].1);
    }
}
