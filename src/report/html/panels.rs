//! Curated chart panels: a few charts of related series in one unit, where a series that never
//! changes draws nothing and is named in a note under the panels instead.
//!
//! Invariants: a chart is drawn only when at least one of its series varies; every hidden series
//! appears once in the note with its constant value and unit; each chart sits in a
//! `<figure class="chart">` whose `data-series` lists the series it draws (`|`-separated), so a
//! reader (or a test) can tell what is on it without parsing the SVG.

use std::fmt::Write as _;

use super::charts::{panel_chart, ChartSpec, Extras, Series};
use super::esc;

/// Bytes in a MiB: resource figures are shown in MiB and MiB/s.
pub const MIB: f64 = 1024.0 * 1024.0;

/// One chart of a panel set.
pub struct Panel<'a> {
    /// Title above the chart.
    pub title: &'a str,
    /// Y axis description with its unit in parentheses, e.g. `CPU (% of host)`.
    pub y_label: &'a str,
    /// Unit of the values, as written after a constant value in the note.
    pub unit: &'a str,
    /// The series, in legend (and stacking) order.
    pub series: Vec<Series>,
    /// Stacking, secondary axis, markers.
    pub extras: Extras<'a>,
}

/// A series from a slice of samples.
pub fn series<T>(name: &str, samples: &[T], f: impl Fn(&T) -> Option<(f64, f64)>) -> Series {
    Series {
        name: name.to_string(),
        points: samples.iter().filter_map(f).collect(),
    }
}

/// The single value of a series that never changes (None when it varies or is empty).
pub fn constant_value(s: &Series) -> Option<f64> {
    let first = s.points.first()?.1;
    let tol = 1e-9 * first.abs().max(1.0);
    s.points
        .iter()
        .all(|p| (p.1 - first).abs() <= tol)
        .then_some(first)
}

/// The HTML of `panels` (x axis `x_label`): their charts, then one note naming every constant
/// series. Empty when there is nothing at all to show.
pub fn render(panels: Vec<Panel>, x_label: &str) -> String {
    let mut out = String::new();
    let mut hidden: Vec<String> = Vec::new();
    for p in panels {
        let mut unit_note = |s: &Series, v: f64| {
            hidden.push(format!(
                "<span class=\"series\" data-series=\"{}\">{}: {} {}</span>",
                esc(&s.name),
                esc(&s.name),
                human(v),
                esc(p.unit)
            ));
        };
        let mut shown: Vec<Series> = Vec::new();
        for s in p.series.into_iter().filter(|s| !s.points.is_empty()) {
            match constant_value(&s) {
                Some(v) => unit_note(&s, v),
                None => shown.push(s),
            }
        }
        let secondary = match p.extras.secondary {
            Some((label, s)) if !s.points.is_empty() => match constant_value(&s) {
                Some(v) => {
                    hidden.push(format!(
                        "<span class=\"series\" data-series=\"{}\">{}: {} ({})</span>",
                        esc(&s.name),
                        esc(&s.name),
                        human(v),
                        esc(label)
                    ));
                    None
                }
                None => Some((label, s)),
            },
            _ => None,
        };
        if shown.is_empty() {
            continue;
        }
        let mut names: Vec<&str> = shown.iter().map(|s| s.name.as_str()).collect();
        if let Some((_, s)) = &secondary {
            names.push(&s.name);
        }
        let names = names.join("|");
        let svg = panel_chart(
            &ChartSpec {
                title: p.title,
                x_label,
                y_label: p.y_label,
                log_x: false,
                log_y: false,
                x_fmt: None,
            },
            &shown,
            &Extras {
                stacked: p.extras.stacked,
                secondary,
                markers: p.extras.markers,
            },
        );
        out.push_str(&figure(&svg, &names));
    }
    if !hidden.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"constant meta\">Constant over the whole run, so not drawn: {}.</p>",
            hidden.join("; ")
        );
    }
    out
}

/// A chart in its figure, `names` being the `|`-separated series it draws.
pub fn figure(svg: &str, names: &str) -> String {
    if svg.is_empty() {
        return String::new();
    }
    format!(
        "<figure class=\"chart\" data-series=\"{}\">{svg}</figure>\n",
        esc(names)
    )
}

/// A number as people read it: no exponent, few decimals.
pub fn human(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str, ys: &[f64]) -> Series {
        Series {
            name: name.into(),
            points: ys.iter().enumerate().map(|(i, y)| (i as f64, *y)).collect(),
        }
    }

    #[test]
    fn a_constant_series_is_named_in_the_note_and_not_drawn() {
        let html = render(
            vec![
                Panel {
                    title: "Network",
                    y_label: "network (MiB/s)",
                    unit: "MiB/s",
                    series: vec![s("net rx", &[0.0, 0.0, 0.0]), s("disk", &[1.0, 3.0, 2.0])],
                    extras: Extras::default(),
                },
                Panel {
                    title: "Swap",
                    y_label: "swap (MiB)",
                    unit: "MiB",
                    series: vec![s("swap", &[0.0; 4])],
                    extras: Extras::default(),
                },
            ],
            "time (s)",
        );
        assert_eq!(html.matches("<svg").count(), 1, "{html}");
        assert!(html.contains("data-series=\"disk\""), "{html}");
        assert!(html.contains("net rx: 0 MiB/s") && html.contains("swap: 0 MiB"));
    }

    #[test]
    fn humans_read_no_exponents() {
        assert_eq!(human(25_000_000_000.0), "25000000000");
        assert_eq!(human(0.5), "0.500");
        assert_eq!(human(12.34), "12.3");
    }
}
