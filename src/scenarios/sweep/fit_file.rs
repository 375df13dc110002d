//! `pgstorm sweep --fit FILE.csv`: the USL fit, its intervals and the pool-size report from
//! (N, throughput[, latency]) points measured by any tool, without running a load or contacting
//! a server. The output is the measured sweep's: the terminal summary, `sweep.json` (the file's
//! name, the sweep section as in run.json, the model's warnings), `sweep.csv` and `sweep.svg`, in
//! a result folder.
//!
//! Invariants: the whole file is validated before anything is fitted or written; every error is
//! one line naming the file (and the line at fault), a usage error (exit 2); nothing is written
//! on bad input. Latency from a file is a single figure per level, kept as the mean: the
//! percentiles of a level read from a file are unknown and stay 0 with `count` 0.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::ArchiveOptions;
use crate::analysis::pool_size::{self, Hardware};
use crate::report::model::{LatencySummary, SweepConfig, SweepLevel, SweepSection, Warning};
use crate::report::{archive, sweep_chart, sweep_out};

/// The columns a `--fit` file has, in order, after its header line.
pub const COLUMNS: &str = "N (clients), throughput (tx/s), optionally latency (ms)";

/// Significant digits of the empty histogram a file's level carries (it holds no values; 3 is the
/// engine's finest, so it merges with any measured level's).
const LATENCY_SIGFIG: u8 = 3;

/// Options of `sweep --fit`.
#[derive(Debug, Clone)]
pub struct FitOptions {
    /// The CSV file of points.
    pub file: PathBuf,
    /// Where to write.
    pub archive: ArchiveOptions,
    /// `--server-cores` / `--spindles`.
    pub hardware: Hardware,
    /// Bootstrap replicates for the intervals.
    pub bootstrap_replicates: usize,
    /// Print the summary to stdout.
    pub print_summary: bool,
}

/// `sweep.json` of a fit: the file, the sweep section as in run.json, and the model's warnings.
#[derive(serde::Serialize)]
struct FitDocument<'a> {
    source: String,
    sweep: &'a SweepSection,
    warnings: &'a [Warning],
}

/// One measured point of a `--fit` file.
#[derive(Debug, Clone, PartialEq)]
pub struct FilePoint {
    /// Concurrency.
    pub clients: u32,
    /// Throughput (tx/s).
    pub tps: f64,
    /// Latency (ms), when the file has a third column.
    pub latency_ms: Option<f64>,
}

/// Reads and validates a `--fit` file: a header line, then one point per line.
pub fn read_points(path: &Path) -> Result<Vec<FilePoint>> {
    let file = path.display();
    let usage = |line: Option<u64>, why: String| {
        let at = line.map(|l| format!(" line {l}")).unwrap_or_default();
        crate::error::usage(format!(
            "--fit {file}{at}: {why}; give a CSV file with a header line and the columns {COLUMNS}"
        ))
    };
    let text = std::fs::read(path).map_err(|e| usage(None, format!("cannot read it: {e}")))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_slice());
    let header = reader
        .headers()
        .map_err(|e| usage(Some(1), format!("{e}")))?
        .clone();
    if header
        .iter()
        .next()
        .is_some_and(|h| h.parse::<f64>().is_ok())
    {
        return Err(usage(Some(1), "is data, not a header line".into()));
    }
    let mut points = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line());
            usage(line, format!("{e}"))
        })?;
        let line = record.position().map(|p| p.line());
        if record.iter().all(str::is_empty) {
            continue;
        }
        if !(2..=3).contains(&record.len()) {
            return Err(usage(line, format!("has {} columns", record.len())));
        }
        let number = |i: usize, what: &str| -> Result<f64> {
            let field = &record[i];
            let v: f64 = field
                .parse()
                .map_err(|_| usage(line, format!("{what} '{field}' is not a number")))?;
            if !v.is_finite() {
                return Err(usage(line, format!("{what} '{field}' is not finite")));
            }
            if v < 0.0 {
                return Err(usage(line, format!("{what} '{field}' is negative")));
            }
            Ok(v)
        };
        let n = number(0, "N")?;
        if n < 1.0 || n.fract() != 0.0 || n > f64::from(crate::args::MAX_CLIENTS) {
            return Err(usage(
                line,
                format!(
                    "N '{}' is not a whole client count from 1 to {}",
                    &record[0],
                    crate::args::MAX_CLIENTS
                ),
            ));
        }
        let tps = number(1, "throughput")?;
        if tps == 0.0 {
            return Err(usage(
                line,
                "throughput is 0: the USL needs throughput above 0".into(),
            ));
        }
        let latency_ms = (record.len() == 3)
            .then(|| number(2, "latency"))
            .transpose()?;
        points.push(FilePoint {
            clients: n as u32,
            tps,
            latency_ms,
        });
    }
    let mut levels: Vec<u32> = points.iter().map(|p| p.clients).collect();
    levels.sort_unstable();
    levels.dedup();
    if levels.len() < 3 {
        return Err(usage(
            None,
            format!(
                "has {} distinct N, fewer than the 3 parameters of the USL",
                levels.len()
            ),
        ));
    }
    Ok(points)
}

/// A level of the sweep section from a file's point (no transactions were counted here).
fn level_of(p: &FilePoint) -> SweepLevel {
    SweepLevel {
        clients: p.clients,
        tps: p.tps,
        count: 0,
        errors: BTreeMap::new(),
        latency: LatencySummary {
            mean_ms: p.latency_ms.unwrap_or(0.0),
            ..crate::report::latency_summary(&crate::engine::stats::new_hist(LATENCY_SIGFIG))
        },
        per_query_tps: BTreeMap::new(),
        checkout_wait_p99_ms: 0.0,
        client_cpu_share: 0.0,
        meets_slo: None,
        usl_tps: None,
        warnings: Vec::new(),
        hygiene: None,
    }
}

/// Fits the file's points and writes the result folder; returns the section and the folder.
pub fn run_fit(opts: &FitOptions) -> Result<(SweepSection, PathBuf)> {
    let points = read_points(&opts.file)?;
    archive::probe(&opts.archive.results_dir)?;
    let xy: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (f64::from(p.clients), p.tps))
        .collect();
    let mut levels: Vec<SweepLevel> = points.iter().map(level_of).collect();
    let (usl, usl_error) = match pool_size::usl_model_of(&xy, opts.bootstrap_replicates) {
        Ok(m) => (Some(m), None),
        Err(e) => (None, Some(e.to_string())),
    };
    if let Some(m) = &usl {
        for l in &mut levels {
            l.usl_tps = Some(m.throughput(f64::from(l.clients)));
        }
    }
    let recommendation = pool_size::recommend(
        &levels,
        usl.as_ref(),
        None,
        &opts.hardware,
        pool_size::DEFAULT_RESERVED_CONNECTIONS,
    );
    let warnings = pool_size::model_warnings(&levels, usl.as_ref());
    let section = SweepSection {
        config: SweepConfig {
            clients: levels.iter().map(|l| l.clients).collect(),
            duration_s: 0.0,
            warmup_s: 0.0,
            protocol: format!("none: points read from {}", opts.file.display()),
            mix: Vec::new(),
            slo: None,
            bootstrap_replicates: opts.bootstrap_replicates,
        },
        levels,
        usl,
        usl_error,
        recommendation,
        rate_search: None,
    };
    let doc = FitDocument {
        source: opts.file.display().to_string(),
        sweep: &section,
        warnings: &warnings,
    };
    let mut files = vec![
        ("sweep.json".to_string(), serde_json::to_vec_pretty(&doc)?),
        ("sweep.csv".to_string(), sweep_out::levels_csv(&section)?),
    ];
    files.push((
        "sweep.svg".to_string(),
        sweep_chart::render(&section)?.into_bytes(),
    ));
    let id = archive::run_id(chrono::Utc::now(), &opts.archive.label);
    let dir = archive::write_files(&opts.archive.results_dir, &id, &files)?;
    if opts.print_summary {
        println!(
            "\nUSL fit of {} ({} points; no load was run)",
            opts.file.display(),
            points.len()
        );
        print!("{}", sweep_out::render_section(&section, &warnings));
        println!("result: {}", dir.display());
    }
    Ok((section, dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: &str) -> Result<Vec<FilePoint>> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("points.csv");
        std::fs::write(&file, body).unwrap();
        read_points(&file)
    }

    #[test]
    fn the_latency_column_is_optional_and_reaches_the_chart_as_the_mean() {
        let two = read("N,tps\n1,100\n\n2,190\n4,300\n").unwrap();
        assert!(two.iter().all(|p| p.latency_ms.is_none()), "{two:?}");
        let three = read("N,tps,latency_ms\n1,100,10\n2,190,10.5\n4,300,13.3\n").unwrap();
        assert_eq!(
            three.iter().map(|p| p.latency_ms).collect::<Vec<_>>(),
            vec![Some(10.0), Some(10.5), Some(13.3)]
        );
        let levels: Vec<SweepLevel> = three.iter().map(level_of).collect();
        assert_eq!(levels[2].latency.mean_ms, 13.3);
        assert_eq!(levels[2].latency.count, 0);
        let xy: Vec<(f64, f64)> = three
            .iter()
            .map(|p| (f64::from(p.clients), p.tps))
            .collect();
        let section = SweepSection {
            config: SweepConfig {
                clients: vec![1, 2, 4],
                duration_s: 0.0,
                warmup_s: 0.0,
                protocol: String::new(),
                mix: Vec::new(),
                slo: None,
                bootstrap_replicates: 0,
            },
            levels,
            usl: pool_size::usl_model_of(&xy, 0).ok(),
            usl_error: None,
            recommendation: pool_size::recommend(&[], None, None, &Hardware::default(), 0),
            rate_search: None,
        };
        let svg = sweep_chart::render(&section).unwrap();
        assert!(svg.contains("latency from the file (mean)"), "{svg:.300}");
        // Nothing is made up for levels without latency: the table leaves the cells blank.
        let table = sweep_out::render_section(&section, &[]);
        let rows: Vec<&str> = table.lines().skip(1).take(3).collect();
        assert!(rows.iter().all(|r| !r.contains("0.000")), "{table}");
    }

    #[test]
    fn a_point_with_too_many_columns_or_a_fractional_n_is_refused_naming_the_line() {
        for (body, says) in [
            ("N,tps\n1,100\n2,190,1,2\n4,300\n", "line 3: has 4 columns"),
            (
                "N,tps\n1,100\n2.5,190\n4,300\n",
                "line 3: N '2.5' is not a whole",
            ),
            ("N,tps\n1,100\n2,0\n4,300\n", "line 3: throughput is 0"),
        ] {
            let e = read(body).unwrap_err();
            assert_eq!(
                crate::error::exit_kind(&e),
                crate::error::ExitKind::Usage,
                "{e}"
            );
            assert!(e.to_string().contains(says), "{e}");
        }
    }
}
