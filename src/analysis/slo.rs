//! Latency service-level objectives such as `p99<20ms`: parsing, and checking a measured latency
//! summary against one.
//!
//! Invariant: a parsed [`Slo`] always names a percentile the result document stores and a finite
//! positive threshold, so checking it can never fail.

use std::fmt;
use std::str::FromStr;

use crate::report::model::LatencySummary;

/// Percentiles an SLO may name: the ones every latency summary carries.
const PERCENTILES: [(&str, f64); 7] = [
    ("p50", 50.0),
    ("p90", 90.0),
    ("p95", 95.0),
    ("p99", 99.0),
    ("p99.9", 99.9),
    ("p999", 99.9),
    ("p99.99", 99.99),
];

/// A latency objective: the chosen percentile must stay under (or at, with `<=`) a threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slo {
    /// The percentile, e.g. 99.0.
    pub percentile: f64,
    /// The threshold in milliseconds.
    pub threshold_ms: f64,
    /// `<=` rather than `<`.
    pub inclusive: bool,
}

fn bad(s: &str, why: &str) -> anyhow::Error {
    crate::error::usage(format!(
        "--slo '{s}': {why}; write it as p99<20ms (percentile p50, p90, p95, p99, p99.9 or p99.99, \
         then < or <=, then a time in us, ms or s)"
    ))
}

impl FromStr for Slo {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Slo> {
        let t: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let Some(op) = t.find('<') else {
            return Err(bad(s, "no '<' between the percentile and the threshold"));
        };
        let (name, rest) = t.split_at(op);
        let (inclusive, value) = match rest.strip_prefix("<=") {
            Some(v) => (true, v),
            None => (false, &rest[1..]),
        };
        let name = name.to_ascii_lowercase();
        let percentile = PERCENTILES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| *p)
            .ok_or_else(|| bad(s, &format!("unknown percentile '{name}'")))?;
        let (num, to_ms) = if let Some(n) = value.strip_suffix("ms") {
            (n, 1.0)
        } else if let Some(n) = value
            .strip_suffix("us")
            .or_else(|| value.strip_suffix("µs"))
        {
            (n, 1e-3)
        } else if let Some(n) = value.strip_suffix('s') {
            (n, 1e3)
        } else {
            return Err(bad(s, "the threshold needs a unit"));
        };
        let v: f64 = num
            .parse()
            .map_err(|_| bad(s, &format!("'{num}' is not a number")))?;
        if !(v.is_finite() && v > 0.0) {
            return Err(bad(s, "the threshold must be above zero"));
        }
        Ok(Slo {
            percentile,
            threshold_ms: v * to_ms,
            inclusive,
        })
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Below a millisecond in µs, so `p50<1us` reads back as written.
        let (v, unit) = if self.threshold_ms < 1.0 {
            (self.threshold_ms * 1000.0, "us")
        } else {
            (self.threshold_ms, "ms")
        };
        let v = format!("{v:.6}");
        write!(
            f,
            "p{}{}{}{unit}",
            self.percentile,
            if self.inclusive { "<=" } else { "<" },
            v.trim_end_matches('0').trim_end_matches('.')
        )
    }
}

impl Slo {
    /// The summary's value at this SLO's percentile (ms).
    pub fn value(&self, l: &LatencySummary) -> f64 {
        l.percentile_ms(self.percentile)
    }

    /// Whether a measured summary meets the objective (an empty one never does).
    pub fn met_by(&self, l: &LatencySummary) -> bool {
        let v = self.value(l);
        l.count > 0
            && if self.inclusive {
                v <= self.threshold_ms
            } else {
                v < self.threshold_ms
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_percentiles_operators_and_units() {
        let s: Slo = "p99<20ms".parse().unwrap();
        assert_eq!(
            (s.percentile, s.threshold_ms, s.inclusive),
            (99.0, 20.0, false)
        );
        let s: Slo = " P99.9 <= 1.5s ".parse().unwrap();
        assert_eq!(
            (s.percentile, s.threshold_ms, s.inclusive),
            (99.9, 1500.0, true)
        );
        let s: Slo = "p50<500us".parse().unwrap();
        assert!((s.threshold_ms - 0.5).abs() < 1e-12);
        for text in ["p99<20ms", "p50<1us", "p99.9<=1500ms", "p95<0.5ms"] {
            let back = text.parse::<Slo>().unwrap().to_string();
            assert_eq!(
                back.parse::<Slo>().unwrap(),
                text.parse::<Slo>().unwrap(),
                "{back}"
            );
        }
        assert_eq!("p50<1us".parse::<Slo>().unwrap().to_string(), "p50<1us");
    }

    #[test]
    fn bad_input_is_a_usage_error_naming_the_input() {
        for bad in [
            "", "p99", "p98<20ms", "p99<20", "p99<-3ms", "p99<xms", "p99>20ms", "p99<0ms",
        ] {
            let e = bad.parse::<Slo>().unwrap_err();
            assert_eq!(
                crate::error::exit_kind(&e),
                crate::error::ExitKind::Usage,
                "{bad}"
            );
            assert!(e.to_string().contains(&format!("'{bad}'")), "{e}");
        }
    }
}
