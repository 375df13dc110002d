//! Threshold alerts over host samples: one `raised` event when a figure goes above its threshold
//! and one `cleared` event when it comes back, so a long excursion is one alert, not one per
//! sample.
//!
//! Invariant: evaluation is a pure function of the samples in order, so the same samples always
//! produce the same events (the tests feed synthetic series).

use chrono::{DateTime, Utc};

use super::model::{AlertEvent, HostSample, Thresholds};

/// Tracks which thresholds are currently exceeded.
#[derive(Debug, Default)]
pub struct Alerts {
    above: [bool; 3],
}

impl Alerts {
    /// Feeds one sample; returns the events it causes. `epoch` is the wall-clock time of t_s = 0.
    pub fn observe(
        &mut self,
        s: &HostSample,
        th: &Thresholds,
        epoch: DateTime<Utc>,
    ) -> Vec<AlertEvent> {
        let checks = [
            ("cpu", s.cpu_percent, th.cpu_percent),
            ("memory", s.memory_percent, th.memory_percent),
            ("client_cpu", s.client_cpu_percent, th.client_cpu_percent),
        ];
        let mut out = Vec::new();
        for (i, (metric, value, threshold)) in checks.into_iter().enumerate() {
            let above = value > threshold;
            if above != self.above[i] {
                self.above[i] = above;
                let at = epoch + chrono::Duration::microseconds((s.t_s * 1e6) as i64);
                out.push(AlertEvent {
                    t_s: s.t_s,
                    at: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    metric: metric.to_string(),
                    state: if above { "raised" } else { "cleared" }.to_string(),
                    value,
                    threshold,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_s: f64, cpu: f64, mem: f64) -> HostSample {
        HostSample::fixture(t_s as u64, t_s, cpu, mem)
    }

    fn run(series: &[(f64, f64)]) -> Vec<AlertEvent> {
        let mut a = Alerts::default();
        let th = Thresholds::default();
        series
            .iter()
            .enumerate()
            .flat_map(|(i, (c, m))| a.observe(&sample(i as f64, *c, *m), &th, Utc::now()))
            .collect()
    }

    #[test]
    fn a_calm_series_raises_nothing() {
        assert!(run(&[(10.0, 40.0), (89.9, 60.0), (90.0, 95.0), (50.0, 50.0)]).is_empty());
    }

    #[test]
    fn one_excursion_is_one_raise_and_one_clear() {
        let ev = run(&[
            (50.0, 50.0),
            (95.0, 50.0),
            (99.0, 50.0),
            (97.0, 96.0),
            (20.0, 50.0),
        ]);
        let seen: Vec<(&str, &str, f64)> = ev
            .iter()
            .map(|e| (e.metric.as_str(), e.state.as_str(), e.t_s))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("cpu", "raised", 1.0),
                ("memory", "raised", 3.0),
                ("cpu", "cleared", 4.0),
                ("memory", "cleared", 4.0)
            ]
        );
        assert_eq!(ev[0].value, 95.0);
        assert_eq!(ev[0].threshold, 90.0);
    }
}
