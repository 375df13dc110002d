//! SVG charts drawn with plotters' SVG backend: line charts with optional log axes, and the
//! HdrHistogram-style latency percentile spectrum.
//!
//! Invariant: every function returns a complete `<svg>` element (or an empty string when there is
//! nothing to draw), never panics on odd data: non-finite points are dropped and empty or
//! degenerate ranges are widened.

use plotters::prelude::*;

use crate::hist::Hist;

/// One named line.
pub struct Series {
    /// Legend text.
    pub name: String,
    /// (x, y) points.
    pub points: Vec<(f64, f64)>,
}

/// How a chart is drawn.
pub struct ChartSpec<'a> {
    /// Title above the plot.
    pub title: &'a str,
    /// X axis description.
    pub x_label: &'a str,
    /// Y axis description.
    pub y_label: &'a str,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// Formats an x tick (None: plain number).
    pub x_fmt: Option<fn(&f64) -> String>,
}

const SIZE: (u32, u32) = (880, 340);

fn range(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return if log { (1.0, 10.0) } else { (0.0, 1.0) };
    }
    if log {
        (lo / 1.5, hi * 1.5)
    } else {
        let lo = lo.min(0.0);
        let hi = if hi <= lo { lo + 1.0 } else { hi * 1.05 };
        (lo, hi)
    }
}

/// Colour of the i-th series.
pub fn colour(i: usize) -> RGBColor {
    const C: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 190, 207),
    ];
    C[i % C.len()]
}

/// A line chart of `series` as an SVG element.
pub fn line_chart(spec: &ChartSpec, series: &[Series]) -> String {
    let clean: Vec<Series> = series
        .iter()
        .map(|s| Series {
            name: s.name.clone(),
            points: s
                .points
                .iter()
                .copied()
                .filter(|(x, y)| {
                    x.is_finite()
                        && y.is_finite()
                        && (!spec.log_x || *x > 0.0)
                        && (!spec.log_y || *y > 0.0)
                })
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    if clean.is_empty() {
        return String::new();
    }
    let xr = range(
        clean.iter().flat_map(|s| s.points.iter().map(|p| p.0)),
        spec.log_x,
    );
    let yr = range(
        clean.iter().flat_map(|s| s.points.iter().map(|p| p.1)),
        spec.log_y,
    );
    let mut buf = String::new();
    let drawn = if spec.log_x || spec.log_y {
        draw(&mut buf, spec, &clean, xr, yr)
    } else {
        draw_panel(&mut buf, spec, &clean, &Extras::default(), xr, yr)
    };
    match drawn {
        Ok(()) => buf,
        Err(e) => format!(
            "<p class=\"err\">chart '{}' could not be drawn: {}</p>",
            super::esc(spec.title),
            super::esc(&e)
        ),
    }
}

fn draw(
    buf: &mut String,
    spec: &ChartSpec,
    series: &[Series],
    xr: (f64, f64),
    yr: (f64, f64),
) -> Result<(), String> {
    let root = SVGBackend::with_string(buf, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut b = ChartBuilder::on(&root);
    b.caption(spec.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(70);
    // plotters types a log axis differently from a linear one: four monomorphised arms.
    macro_rules! body {
        ($chart:expr) => {{
            let mut chart = $chart.map_err(|e| e.to_string())?;
            {
                let mut mesh = chart.configure_mesh();
                mesh.x_desc(spec.x_label)
                    .y_desc(spec.y_label)
                    .light_line_style(RGBColor(235, 235, 235));
                let f;
                if let Some(xf) = spec.x_fmt {
                    f = xf;
                    mesh.x_label_formatter(&f);
                }
                mesh.draw().map_err(|e| e.to_string())?;
            }
            for (i, s) in series.iter().enumerate() {
                let c = colour(i);
                chart
                    .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
                    .map_err(|e| e.to_string())?
                    .label(s.name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                    });
            }
            if series.len() > 1 || !series[0].name.is_empty() {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperLeft)
                    .background_style(WHITE.mix(0.85))
                    .border_style(RGBColor(200, 200, 200))
                    .draw()
                    .map_err(|e| e.to_string())?;
            }
        }};
    }
    let (x, y) = (xr.0..xr.1, yr.0..yr.1);
    // Linear charts go through `draw_panel` (see `line_chart`).
    match (spec.log_x, spec.log_y) {
        (true, false) => body!(b.build_cartesian_2d(x.log_scale(), y)),
        (false, true) => body!(b.build_cartesian_2d(x, y.log_scale())),
        _ => body!(b.build_cartesian_2d(x.log_scale(), y.log_scale())),
    }
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

/// What a resource panel adds to a linear line chart (each part optional).
#[derive(Default)]
pub struct Extras<'a> {
    /// Draw the series as stacked areas, the first series at the bottom.
    pub stacked: bool,
    /// One line on a second y axis at the right: its axis description (with unit) and points.
    pub secondary: Option<(&'a str, Series)>,
    /// Instants marked by a vertical line (e.g. checkpoints): legend text and x values.
    pub markers: Option<(&'a str, Vec<f64>)>,
}

/// A linear chart of `series` with `extras`, as an SVG element (empty when nothing to draw).
pub fn panel_chart(spec: &ChartSpec, series: &[Series], extras: &Extras) -> String {
    let finite = |pts: &[(f64, f64)]| -> Vec<(f64, f64)> {
        pts.iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect()
    };
    let mut clean: Vec<Series> = series
        .iter()
        .map(|s| Series {
            name: s.name.clone(),
            points: finite(&s.points),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    if clean.is_empty() {
        return String::new();
    }
    if extras.stacked {
        // Each series becomes the running total up to itself, point by point.
        for i in 1..clean.len() {
            let below = clean[i - 1].points.clone();
            let n = below.len().min(clean[i].points.len());
            clean[i].points.truncate(n);
            for (p, b) in clean[i].points.iter_mut().zip(&below) {
                p.1 += b.1;
            }
        }
    }
    let secondary = extras.secondary.as_ref().map(|(l, s)| {
        (
            *l,
            Series {
                name: s.name.clone(),
                points: finite(&s.points),
            },
        )
    });
    let xs = clean
        .iter()
        .chain(secondary.as_ref().map(|s| &s.1))
        .flat_map(|s| s.points.iter().map(|p| p.0));
    let xr = range(xs, false);
    let yr = range(
        clean.iter().flat_map(|s| s.points.iter().map(|p| p.1)),
        false,
    );
    let extras = Extras {
        stacked: extras.stacked,
        secondary,
        markers: extras.markers.clone(),
    };
    let mut buf = String::new();
    match draw_panel(&mut buf, spec, &clean, &extras, xr, yr) {
        Ok(()) => buf,
        Err(e) => format!(
            "<p class=\"err\">chart '{}' could not be drawn: {}</p>",
            super::esc(spec.title),
            super::esc(&e)
        ),
    }
}

fn draw_panel(
    buf: &mut String,
    spec: &ChartSpec,
    series: &[Series],
    extras: &Extras,
    xr: (f64, f64),
    yr: (f64, f64),
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let root = SVGBackend::with_string(buf, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut b = ChartBuilder::on(&root);
    b.caption(spec.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(70);
    if extras.secondary.is_some() {
        b.right_y_label_area_size(70);
    }
    let chart = b
        .build_cartesian_2d(xr.0..xr.1, yr.0..yr.1)
        .map_err(|e| err(&e))?;
    // The mesh, series and markers of the primary axis. With a secondary axis they are drawn on
    // the dual chart, whose primary no longer owns the right label area (plotters moves it to the
    // secondary), so the right axis shows the secondary's ticks only.
    macro_rules! primary {
        ($chart:expr) => {{
            {
                let mut mesh = $chart.configure_mesh();
                mesh.x_desc(spec.x_label)
                    .y_desc(spec.y_label)
                    .light_line_style(RGBColor(235, 235, 235));
                let f;
                if let Some(xf) = spec.x_fmt {
                    f = xf;
                    mesh.x_label_formatter(&f);
                }
                mesh.draw().map_err(|e| err(&e))?;
            }
            // Stacked: the running totals are drawn tallest first so each band shows its share.
            let order: Vec<usize> = if extras.stacked {
                (0..series.len()).rev().collect()
            } else {
                (0..series.len()).collect()
            };
            for i in order {
                let (s, c) = (&series[i], colour(i));
                let drawn = if extras.stacked {
                    $chart.draw_series(
                        AreaSeries::new(s.points.iter().copied(), 0.0, c.mix(0.45))
                            .border_style(c.stroke_width(1)),
                    )
                } else {
                    $chart.draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
                };
                drawn
                    .map_err(|e| err(&e))?
                    .label(s.name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(4))
                    });
            }
            if let Some((name, xs)) = extras.markers.as_ref().filter(|m| !m.1.is_empty()) {
                let grey = RGBColor(110, 110, 110);
                $chart
                    .draw_series(xs.iter().map(|x| {
                        PathElement::new(vec![(*x, yr.0), (*x, yr.1)], grey.stroke_width(1))
                    }))
                    .map_err(|e| err(&e))?
                    .label(*name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x + 9, y - 6), (x + 9, y + 6)], grey)
                    });
            }
        }};
    }
    let legend = series.len() > 1
        || !series[0].name.is_empty()
        || extras.markers.is_some()
        || extras.secondary.is_some();
    macro_rules! legend {
        ($chart:expr) => {
            if legend {
                $chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperLeft)
                    .background_style(WHITE.mix(0.85))
                    .border_style(RGBColor(200, 200, 200))
                    .draw()
                    .map_err(|e| err(&e))?;
            }
        };
    }
    match &extras.secondary {
        Some((label, s2)) => {
            let y2 = range(s2.points.iter().map(|p| p.1), false);
            let mut chart = chart.set_secondary_coord(xr.0..xr.1, y2.0..y2.1);
            primary!(chart);
            chart
                .configure_secondary_axes()
                .y_desc(*label)
                .draw()
                .map_err(|e| err(&e))?;
            let c = colour(series.len());
            chart
                .draw_secondary_series(LineSeries::new(
                    s2.points.iter().copied(),
                    c.stroke_width(2),
                ))
                .map_err(|e| err(&e))?
                .label(s2.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(4))
                });
            legend!(chart);
        }
        None => {
            let mut chart = chart;
            primary!(chart);
            legend!(chart);
        }
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Percentile spectrum points of a µs histogram: x = 1 / (1 - quantile) (so 10 = p90,
/// 100 = p99, ...), y = latency in ms. Empty for an empty histogram.
pub fn spectrum_points(h: &Hist) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut pts: Vec<(f64, f64)> = h
        .iter_quantiles(5)
        .filter_map(|v| {
            let q = v.quantile_iterated_to();
            (q < 1.0).then(|| (1.0 / (1.0 - q), v.value_iterated_to() as f64 / 1000.0))
        })
        .collect();
    // The maximum sits at quantile 1 (x = infinity): show it one decade past the last point.
    let last_x = pts.last().map_or(1.0, |p| p.0);
    pts.push((last_x * 10.0, h.max() as f64 / 1000.0));
    pts
}

/// Tick text of the spectrum's x axis: `90%`, `99%`, `99.9%` ...
pub fn percentile_tick(x: &f64) -> String {
    if *x <= 1.0 {
        return "0%".into();
    }
    let p = (1.0 - 1.0 / x) * 100.0;
    let digits = (x.log10().round() as usize).saturating_sub(2);
    format!("{p:.digits$}%")
}

/// The spectrum chart of several histograms.
pub fn spectrum(title: &str, hists: &[(String, Hist)]) -> String {
    let series: Vec<Series> = hists
        .iter()
        .map(|(n, h)| Series {
            name: n.clone(),
            points: spectrum_points(h),
        })
        .collect();
    line_chart(
        &ChartSpec {
            title,
            x_label: "percentile",
            y_label: "latency (ms, log)",
            log_x: true,
            log_y: true,
            x_fmt: Some(percentile_tick),
        },
        &series,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spectrum_is_monotonic_and_ends_at_the_max() {
        let mut h = crate::hist::new_hist(3);
        for v in 1..=100_000u64 {
            h.record(v).unwrap();
        }
        let pts = spectrum_points(&h);
        assert!(pts.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        assert!((pts.last().unwrap().1 - h.max() as f64 / 1000.0).abs() < 1e-9);
        assert_eq!(percentile_tick(&10.0), "90%");
        assert_eq!(percentile_tick(&1000.0), "99.9%");
    }

    #[test]
    fn charts_are_svg_and_survive_empty_or_odd_data() {
        let spec = ChartSpec {
            title: "t",
            x_label: "x",
            y_label: "y",
            log_x: false,
            log_y: true,
            x_fmt: None,
        };
        assert_eq!(line_chart(&spec, &[]), "");
        let odd = Series {
            name: "s".into(),
            points: vec![(0.0, 0.0), (1.0, f64::NAN), (2.0, 5.0)],
        };
        let svg = line_chart(&spec, &[odd]);
        assert!(
            svg.starts_with("<svg") && svg.contains("polyline") || svg.contains("path"),
            "{svg}"
        );
    }

    #[test]
    fn a_panel_overlays_a_second_axis_and_markers_and_keeps_the_right_axis_its_own() {
        let spec = ChartSpec {
            title: "t",
            x_label: "time (s)",
            y_label: "commits (tx/s)",
            log_x: false,
            log_y: false,
            x_fmt: None,
        };
        let s = |name: &str, k: f64| Series {
            name: name.into(),
            points: (0..5).map(|i| (i as f64, k * i as f64)).collect(),
        };
        let svg = panel_chart(
            &spec,
            &[s("commits/s", 1000.0)],
            &Extras {
                secondary: Some(("WAL (MiB/s)", s("WAL written", 0.1))),
                markers: Some(("checkpoint", vec![2.0])),
                ..Extras::default()
            },
        );
        let texts = |t: &str| svg.lines().filter(|l| l.trim() == t).count();
        assert_eq!(texts("WAL (MiB/s)"), 1, "{svg}");
        assert_eq!(
            texts("commits (tx/s)"),
            1,
            "the primary's description is not repeated on the right"
        );
        assert_eq!(
            texts("checkpoint") + texts("WAL written"),
            2,
            "both in the legend"
        );
    }
}
