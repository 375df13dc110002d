//! `sweep.svg`: measured throughput per concurrency level with the fitted USL curve, the model's
//! limit and the recommended pool size marked (upper panel), and the latency at the SLO's
//! percentile (p99 without an SLO) per level against the SLO threshold (lower panel).
//!
//! Reads only the document's sweep section, so a sweep read back from disk draws the same chart.
//! Concurrency is on a log₂-spaced axis because sweep levels usually double.

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use super::model::SweepSection;

/// Size of the chart in pixels.
const SIZE: (u32, u32) = (900, 760);

/// Height of the throughput panel; the latency panel gets the rest.
const UPPER_PANEL: u32 = 500;

/// Chart errors carry the backend's error, which borrows nothing worth keeping: flatten to text.
fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("chart: {e}")
}

/// How far past the largest measured level the curve is drawn to show an extrapolated limit.
const MAX_EXTRAPOLATION: f64 = 4.0;

/// Renders the sweep chart as an SVG document.
pub fn render(sweep: &SweepSection) -> Result<String> {
    let measured: Vec<(f64, f64)> = sweep
        .levels
        .iter()
        .map(|l| (l.clients as f64, l.tps))
        .collect();
    if measured.is_empty() {
        return Err(anyhow!("no completed level to chart"));
    }
    let n_max = measured.iter().map(|p| p.0).fold(1.0, f64::max);
    let limit = sweep.usl.as_ref().and_then(|m| m.limit_n).map(f64::from);
    let x_hi = limit
        .map(|l| l.max(n_max).min(n_max * MAX_EXTRAPOLATION))
        .unwrap_or(n_max)
        * 1.3;
    let curve: Vec<(f64, f64)> = match &sweep.usl {
        Some(m) => (0..=240)
            .map(|i| {
                let n = x_hi.powf(i as f64 / 240.0).max(1.0);
                (n, m.throughput(n))
            })
            .collect(),
        None => Vec::new(),
    };
    let y_hi = measured
        .iter()
        .chain(&curve)
        .map(|p| p.1)
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.15;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (upper, lower) = root.split_vertically(UPPER_PANEL);
        let title = match &sweep.usl {
            Some(m) => format!(
                "USL fit: λ={:.1} tx/s, σ={:.4}, κ={:.6}, R²={:.3}",
                m.lambda, m.sigma, m.kappa, m.r2
            ),
            None => "throughput per concurrency level (no USL fit)".to_string(),
        };
        let mut chart = ChartBuilder::on(&upper)
            .caption(title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(75)
            .build_cartesian_2d((0.8f64..x_hi).log_scale(), 0f64..y_hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("clients (pool size)")
            .y_desc("throughput (tx/s)")
            .light_line_style(WHITE)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(err)?;
        if !curve.is_empty() {
            chart
                .draw_series(LineSeries::new(curve, BLUE.stroke_width(2)))
                .map_err(err)?
                .label("USL model")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        }
        chart
            .draw_series(measured.iter().map(|&p| Circle::new(p, 5, RED.filled())))
            .map_err(err)?
            .label("measured")
            .legend(|(x, y)| Circle::new((x + 10, y), 5, RED.filled()));
        let mut marker = |n: f64, color: RGBColor, label: String| -> Result<()> {
            if n > x_hi {
                return Ok(());
            }
            chart
                .draw_series(LineSeries::new(
                    vec![(n, 0.0), (n, y_hi)],
                    color.stroke_width(1),
                ))
                .map_err(err)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            Ok(())
        };
        if let (Some(m), Some(l)) = (&sweep.usl, limit) {
            let what = if m.limit_kind == "peak" {
                "N*"
            } else {
                "95% of λ/σ"
            };
            marker(l, RGBColor(0, 128, 0), format!("{what} = {l:.0}"))?;
        }
        if let Some(p) = sweep.recommendation.pool_size {
            marker(
                f64::from(p),
                RGBColor(200, 120, 0),
                format!("recommended pool = {p}"),
            )?;
        }
        chart
            .configure_series_labels()
            .position(legend_corner(&measured))
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .draw()
            .map_err(err)?;
        latency_panel(&lower, sweep, x_hi)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Where the legend hides no data: top left while throughput still climbs at the largest level
/// (the low-N corner is empty), top right once it has fallen from its peak.
fn legend_corner(measured: &[(f64, f64)]) -> SeriesLabelPosition {
    let best = measured.iter().map(|p| p.1).fold(0.0, f64::max);
    match measured.last() {
        Some(&(_, last)) if last < 0.8 * best => SeriesLabelPosition::UpperRight,
        _ => SeriesLabelPosition::UpperLeft,
    }
}

/// The lower panel: latency at the SLO's percentile per level (the file's mean latency for
/// `sweep --fit`), and the SLO threshold.
fn latency_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    sweep: &SweepSection,
    x_hi: f64,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let slo = sweep.config.slo.as_ref();
    let percentile = slo.map_or(99.0, |s| s.percentile);
    // Levels read from a file (`sweep --fit`) carry no latency distribution, only the mean the
    // file gave (if any): plot that, named as such, rather than percentiles of 0.
    let measured = sweep.levels.iter().any(|l| l.latency.count > 0);
    let (what, legend) = if measured {
        (
            format!("p{percentile} latency (ms)"),
            format!("measured p{percentile} (closed loop)"),
        )
    } else {
        (
            "mean latency (ms)".to_string(),
            "latency from the file (mean)".to_string(),
        )
    };
    let points: Vec<(f64, f64)> = sweep
        .levels
        .iter()
        .filter(|l| l.latency.count > 0 || (!measured && l.latency.mean_ms > 0.0))
        .map(|l| {
            let ms = if measured {
                l.latency.percentile_ms(percentile)
            } else {
                l.latency.mean_ms
            };
            (l.clients as f64, ms)
        })
        .collect();
    let y_hi = points
        .iter()
        .map(|p| p.1)
        .chain(slo.map(|s| s.threshold_ms))
        .fold(0.0, f64::max)
        .max(0.001)
        * 1.15;
    let mut chart = ChartBuilder::on(area)
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(75)
        .build_cartesian_2d((0.8f64..x_hi).log_scale(), 0f64..y_hi)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("clients (pool size)")
        .y_desc(what)
        .light_line_style(WHITE)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(err)?;
    let purple = RGBColor(120, 40, 160);
    chart
        .draw_series(LineSeries::new(points.clone(), purple.stroke_width(1)))
        .map_err(err)?;
    chart
        .draw_series(points.iter().map(|&p| Circle::new(p, 4, purple.filled())))
        .map_err(err)?
        .label(legend)
        .legend(move |(x, y)| Circle::new((x + 10, y), 4, purple.filled()));
    if let Some(s) = slo {
        chart
            .draw_series(LineSeries::new(
                vec![(0.8, s.threshold_ms), (x_hi, s.threshold_ms)],
                RED.stroke_width(1),
            ))
            .map_err(err)?
            .label(format!("SLO {}", s.text))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()
        .map_err(err)?;
    Ok(())
}
