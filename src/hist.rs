//! Latency histograms: their fixed bounds, recording, the exchange codec (HdrHistogram V2 +
//! deflate, base64) and the coordinated-omission correction.
//!
//! Below the engine, the report and the analysis: the engine records into these histograms, the
//! result document carries them encoded, and report/analysis/compare decode them, so nothing that
//! reads a result needs the engine.
//!
//! Invariants:
//! - Every histogram has the same fixed bounds (1 µs .. 60 s) so recording never allocates and any
//!   two can be added, whatever their precision. Values are microseconds; anything above the
//!   bound saturates just under 60 s.
//! - Histograms travel encoded ([`encode`]/[`decode`]), never as percentiles.
//! - A load thread's per-interval histograms ([`WorkerHist`]) count in `u16`, a quarter of the
//!   memory of the totals' `u64` (hundreds of them are alive at once with hundreds of clients):
//!   their owner hands a batch over before any of its histograms holds [`WORKER_HIST_MAX`]
//!   values, so no count saturates. They are added into `u64` totals with [`add_into`], which
//!   gives what `Histogram::add` gives.

use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use hdrhistogram::{Counter, Histogram};

/// Latency histogram: microseconds, u64 counts.
pub type Hist = Histogram<u64>;

/// A load thread's histogram of one interval: the same bounds, u16 counts.
pub type WorkerHist = Histogram<u16>;

/// Values a [`WorkerHist`] may hold: below this no bucket can saturate.
pub const WORKER_HIST_MAX: u64 = u16::MAX as u64;

/// Lowest value tracked (µs).
pub const HIST_LOW_US: u64 = 1;
/// Highest value tracked (µs): 60 s.
pub const HIST_HIGH_US: u64 = 60_000_000;
/// Values are clamped here, a little under the bound, so a 2-digit histogram's top bucket still
/// fits inside a 3-digit one when they are added.
pub const SATURATE_US: u64 = 59_000_000;

/// A histogram with the standard bounds at `sigfig` significant digits.
pub fn new_hist(sigfig: u8) -> Hist {
    Histogram::new_with_bounds(HIST_LOW_US, HIST_HIGH_US, sigfig).expect("static bounds are valid")
}

/// A [`WorkerHist`] with the standard bounds at `sigfig` significant digits.
pub fn new_worker_hist(sigfig: u8) -> WorkerHist {
    Histogram::new_with_bounds(HIST_LOW_US, HIST_HIGH_US, sigfig).expect("static bounds are valid")
}

/// A histogram that holds nothing useful and costs a few bytes: the schedule lag of a closed-loop
/// batch, which is never recorded (it still adds into full-size totals).
pub fn unused_hist<C: Counter>() -> Histogram<C> {
    Histogram::new_with_bounds(1, 2, 0).expect("static bounds are valid")
}

/// Adds `src` (any counter type, any precision, the standard bounds) into `dst`: every recorded
/// bucket at its lowest equivalent value, as `Histogram::add` does for histograms of another
/// precision. Counts saturate instead of failing.
pub fn add_into<C: Counter>(dst: &mut Hist, src: &Histogram<C>) {
    if src.is_empty() {
        return;
    }
    for v in src.iter_recorded() {
        let value = src.lowest_equivalent(v.value_iterated_to());
        dst.saturating_record_n(value, v.count_at_value().as_u64());
    }
}

/// Records a duration, saturating above the bound (never allocates, never panics).
#[inline]
pub fn record<C: Counter>(h: &mut Histogram<C>, d: Duration) {
    record_ns(h, u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
}

/// [`record`] of `ns` nanoseconds: what the measurement path records, its clock's stamps being
/// nanoseconds (one division by a constant, no `Duration`).
#[inline]
pub fn record_ns<C: Counter>(h: &mut Histogram<C>, ns: u64) {
    h.saturating_record((ns / 1000).clamp(HIST_LOW_US, SATURATE_US));
}

/// Serializes a histogram as HdrHistogram V2 + deflate, base64: the exchange format.
pub fn encode(h: &Hist) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .expect("serializing to a Vec cannot fail");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Parses [`encode`]'s output.
pub fn decode(s: &str) -> anyhow::Result<Hist> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(s.trim())?;
    let mut d = hdrhistogram::serialization::Deserializer::new();
    let h: Hist = d.deserialize(&mut bytes.as_slice())?;
    Ok(h)
}

/// HdrHistogram's expected-interval correction, applied after the fact: for every recorded value
/// `v` above `interval_us`, the values `v - interval_us`, `v - 2·interval_us`, … down to
/// `interval_us` are added, the latencies the requests that a closed-loop client did not send
/// while it waited would have seen. Work is bounded: a value that implies more than 10,000
/// missing requests adds them in evenly spaced groups of equal weight (the histogram's own
/// resolution is coarser than that spacing).
pub fn co_corrected(h: &Hist, interval_us: u64) -> Hist {
    let mut out = h.clone();
    if interval_us == 0 {
        return out;
    }
    for v in h.iter_recorded() {
        let value = h.highest_equivalent(v.value_iterated_to());
        let count = v.count_at_value();
        if value <= interval_us {
            continue;
        }
        let missing = (value - interval_us) / interval_us;
        let stride = missing.div_ceil(10_000).max(1);
        let mut k = 1;
        while k <= missing {
            let weight = count.saturating_mul(stride.min(missing - k + 1));
            out.saturating_record_n(value - k * interval_us, weight);
            k += stride;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanoseconds_record_as_their_duration_does() {
        let (mut a, mut b) = (new_hist(3), new_hist(3));
        for ns in [
            0,
            999,
            1_000,
            1_999,
            2_500_000,
            123_456_789,
            3_600_000_000_000,
            u64::MAX,
        ] {
            record(&mut a, Duration::from_nanos(ns));
            record_ns(&mut b, ns);
        }
        assert_eq!(a, b);
        assert_eq!(b.len(), 8);
        assert_eq!(b.count_at(HIST_LOW_US), 4, "below 2 µs: the 1 µs floor");
        assert!(b.max() >= SATURATE_US && b.max() < HIST_HIGH_US);
    }

    #[test]
    fn record_saturates_and_encoding_round_trips() {
        let mut h = new_hist(3);
        record(&mut h, Duration::from_secs(3600));
        record(&mut h, Duration::from_nanos(10));
        record(&mut h, Duration::from_micros(1500));
        assert_eq!(h.len(), 3);
        assert!(h.max() >= SATURATE_US);
        let mut two = new_hist(2);
        record(&mut two, Duration::from_secs(3600));
        h.add(&two).unwrap();
        let back = decode(&encode(&h)).unwrap();
        assert_eq!(back.len(), 4);
        assert_eq!(h.len(), 4);
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
    }

    #[test]
    fn a_worker_histogram_adds_into_totals_as_add_would() {
        let mut w = new_worker_hist(2);
        let mut same = new_hist(2);
        for v in [1u64, 7, 150, 1_234, 98_765, 2_000_000, 3_600_000_000] {
            for _ in 0..v % 5 + 1 {
                record(&mut w, Duration::from_micros(v));
                record(&mut same, Duration::from_micros(v));
            }
        }
        let (mut via_add, mut via_into) = (new_hist(3), new_hist(3));
        record(&mut via_add, Duration::from_micros(42));
        record(&mut via_into, Duration::from_micros(42));
        via_add.add(&same).unwrap();
        add_into(&mut via_into, &w);
        assert_eq!(via_into.len(), via_add.len());
        assert_eq!(via_into.max(), via_add.max());
        assert_eq!(via_into.min(), via_add.min());
        for q in [0.1, 0.5, 0.9, 0.99, 0.999] {
            assert_eq!(
                via_into.value_at_quantile(q),
                via_add.value_at_quantile(q),
                "q {q}"
            );
        }
        // Nothing recorded adds nothing.
        add_into(&mut via_into, &new_worker_hist(2));
        assert_eq!(via_into.len(), via_add.len());
    }

    #[test]
    fn co_correction_fills_in_the_requests_a_stall_kept_from_being_sent() {
        // 1,000 transactions of 1 ms, then one that waited 100 ms: a closed-loop client would
        // have sent ~99 more requests during it, seeing 99 ms, 98 ms, ... 1 ms.
        let mut h = new_hist(3);
        for _ in 0..1000 {
            record(&mut h, Duration::from_millis(1));
        }
        record(&mut h, Duration::from_millis(100));
        let c = co_corrected(&h, 1000);
        assert!((1098..=1100).contains(&c.len()), "{}", c.len());
        assert!(h.value_at_quantile(0.99) < 1100);
        // The 99 filled in are spread over 1..99 ms: the top 1% of the 1,100 samples (11) are
        // the stalled one and the 10 filled-in values from 90 ms up, so p99 is about 89 ms.
        let p99 = c.value_at_quantile(0.99);
        assert!((87_000..=91_000).contains(&p99), "corrected p99 {p99} µs");
        assert_eq!(c.max(), h.max());
        // Nothing to correct: the same histogram.
        let flat = co_corrected(&h, 200_000);
        assert_eq!(flat.len(), h.len());
    }

    #[test]
    fn co_correction_of_a_huge_gap_is_bounded_and_keeps_the_weight() {
        let mut h = new_hist(3);
        record(&mut h, Duration::from_secs(50));
        let c = co_corrected(&h, 1);
        // 50 s at 1 µs spacing: ~50 million missing requests, added in ~10,000 groups.
        let added = c.len() - 1;
        assert!(
            (49_000_000..=50_100_000).contains(&added),
            "{added} samples added"
        );
        let p50 = c.value_at_quantile(0.5) as f64;
        assert!((p50 / 25e6 - 1.0).abs() < 0.02, "p50 {p50}");
    }
}
