//! `pgstorm sweep`: closed-loop loads at increasing concurrency on one session and one dataset,
//! the Universal Scalability Law fitted to them, a pool-size recommendation, and optionally an
//! open-loop search for the highest arrival rate that meets a latency SLO. One result folder.
//!
//! Invariants: all input is validated and preflight passes for the largest level before the first
//! load; each level (and each rate probe) gets its own pool, opened before its clock starts and
//! gone before the next opens; a level that cannot run ends the sweep but keeps the levels that
//! did; an interrupted sweep still writes what ran, then reports exit 130. Each level starts
//! vacuumed and checkpointed (as pgbench-tools starts each client count), so a level does not
//! inherit the dead rows of the one before; the `--pre-sql` hook runs before the first level and
//! `--post-sql` after the last load (rate probes included).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use super::hygiene::{self, HygieneOptions};
use super::queries::{self, ArchiveOptions, Outcome, QueriesOptions};
use super::session::{Session, TargetOptions};
use crate::analysis::pool_size::{self, Hardware};
use crate::analysis::slo::Slo;
use crate::engine::{self, EngineConfig, EngineOutput};
use crate::report::model::{
    DatasetInfo, MixEntry, RunDocument, SloSpec, SweepConfig, SweepLevel, SweepSection, Warning,
    WarningCode,
};
use crate::report::{archive, sweep_chart, sweep_out};
use crate::stop::StopToken;
use crate::workload::{self, builtin, DataRange, Protocol, Workload};

mod fit_file;
mod rate_search;

pub use fit_file::{read_points, run_fit, FilePoint, FitOptions};
pub use rate_search::RateSearchOptions;

/// Options of the sweep.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Where to connect.
    pub target: TargetOptions,
    /// Where to write.
    pub archive: ArchiveOptions,
    /// Seed scale 1 when no dataset exists (false: error instead).
    pub seed_if_missing: bool,
    /// `-s`: the POS dataset's scale (reseeded when the seeded one differs); `None`: the seeded
    /// dataset whatever its scale.
    pub scale: Option<u32>,
    /// `--mix`.
    pub mix: String,
    /// `-M`.
    pub protocol: Protocol,
    /// Concurrency levels, strictly increasing (`--clients`).
    pub levels: Vec<u32>,
    /// Engine settings of every level; `clients` and `rate` are set per level.
    pub engine: EngineConfig,
    /// Latency objective (`--slo`).
    pub slo: Option<Slo>,
    /// Open-loop rate search (`--rate-search`); needs an SLO.
    pub rate_search: Option<RateSearchOptions>,
    /// `--server-cores` / `--spindles` (the rest of [`Hardware`] is filled in from the session).
    pub hardware: Hardware,
    /// Bootstrap replicates for the limit's interval.
    pub bootstrap_replicates: usize,
    /// Print the sweep table to stdout.
    pub print_summary: bool,
    /// Vacuum and checkpoint before each level, and the `--pre-sql`/`--post-sql` hooks.
    pub hygiene: HygieneOptions,
}

impl Default for SweepOptions {
    fn default() -> Self {
        let q = QueriesOptions::default();
        let mut engine = q.engine;
        engine.warmup = Duration::from_secs(1);
        SweepOptions {
            target: q.target,
            archive: ArchiveOptions {
                label: "sweep".into(),
                ..q.archive
            },
            seed_if_missing: true,
            scale: None,
            mix: q.mix,
            protocol: q.protocol,
            levels: vec![1, 2, 4, 8, 16, 32, 64, 128],
            engine,
            slo: None,
            rate_search: None,
            hardware: Hardware::default(),
            bootstrap_replicates: 1000,
            print_summary: true,
            hygiene: HygieneOptions::default(),
        }
    }
}

/// Parses `--clients 1,2,4,8`: at least three distinct levels (the USL has three parameters),
/// each at least 1, in increasing order.
pub fn parse_levels(s: &str) -> Result<Vec<u32>> {
    let bad = |why: &str| {
        crate::error::usage(format!(
            "--clients '{s}': {why}; give at least 3 increasing client counts, e.g. 1,2,4,8,16"
        ))
    };
    let levels = s
        .split(',')
        .map(|p| {
            crate::args::count(p)
                .map(crate::args::Count::get)
                .map_err(|e| bad(&e))
        })
        .collect::<Result<Vec<u32>>>()?;
    if levels.windows(2).any(|w| w[0] >= w[1]) {
        return Err(bad("levels not in increasing order"));
    }
    if levels.len() < 3 {
        return Err(bad("fewer than 3 levels"));
    }
    Ok(levels)
}

/// The document's form of an SLO.
pub fn slo_spec(s: &Slo) -> SloSpec {
    SloSpec {
        text: s.to_string(),
        percentile: s.percentile,
        threshold_ms: s.threshold_ms,
        inclusive: s.inclusive,
    }
}

/// Runs the sweep on a new session.
pub fn run(opts: &SweepOptions) -> Result<Outcome> {
    archive::probe(&opts.archive.results_dir)?;
    let mut session = Session::open(&opts.target)?;
    run_on(&mut session, opts)
}

/// Everything a level or probe needs, built once per sweep.
pub(crate) struct Bench<'a> {
    pub session: &'a mut Session,
    pub workload: Arc<Workload>,
    pub opts: &'a SweepOptions,
    pub cpus: usize,
}

impl Bench<'_> {
    /// One engine run with `clients` and `rate`, its pool gone afterwards.
    pub fn load(
        &mut self,
        clients: u32,
        rate: Option<f64>,
    ) -> Result<(EngineOutput, QueriesOptions)> {
        let mut q = QueriesOptions {
            protocol: self.opts.protocol,
            engine: self.opts.engine.clone(),
            ..QueriesOptions::default()
        };
        q.engine.clients = clients;
        q.engine.rate = rate;
        let out = engine::run(
            &self.session.target,
            self.workload.clone(),
            &q.engine,
            &self.session.stop,
        )?;
        // A level cut short by a panic or a lost target measured nothing to model.
        if let Some(p) = out.panics.first() {
            return Err(anyhow::anyhow!(
                "a load thread panicked ({p}); please report this as a bug"
            ));
        }
        if let Some(l) = &out.target_lost {
            return Err(crate::error::target(format!(
                "lost the target {} {:.1} s into the load at {clients} clients: {}",
                self.session.target.display,
                l.at.as_secs_f64(),
                l.reason
            )));
        }
        let _ = self.session.wait_pool_gone(Duration::from_secs(5));
        Ok((out, q))
    }
}

/// Runs the sweep on an existing session.
pub fn run_on(session: &mut Session, opts: &SweepOptions) -> Result<Outcome> {
    let mix = workload::parse_mix(&opts.mix, &builtin::NAMES)?;
    if opts.levels.len() < 3 || opts.levels.windows(2).any(|w| w[0] >= w[1]) || opts.levels[0] == 0
    {
        return Err(crate::error::usage(
            "a sweep needs at least 3 increasing client counts of 1 or more, e.g. --clients 1,2,4,8",
        ));
    }
    if opts.rate_search.is_some() && opts.slo.is_none() {
        return Err(crate::error::usage(
            "--rate-search needs --slo, e.g. --slo 'p99<20ms': it searches the highest rate meeting it",
        ));
    }
    let max_level = *opts.levels.last().expect("at least 3 levels");
    let probe_clients = opts
        .rate_search
        .as_ref()
        .and_then(|r| r.clients)
        .unwrap_or(0);
    crate::target::check_capacity(
        &session.server,
        max_level.max(probe_clients),
        1,
        &session.target.display,
    )?;

    let mut say = |m: &str| eprintln!("pgstorm: {m}");
    let marker = crate::dataset::ensure_scale(
        &mut session.admin,
        crate::dataset::Wanted {
            scale: opts.scale,
            no_seed: !opts.seed_if_missing,
            local: session.target.is_local(),
            stop: session.stop.clone(),
        },
        &mut say,
    )?;
    let data = DataRange {
        partners: marker.partners,
        orders: marker.orders,
        start_us: marker.data_start.timestamp_micros(),
        end_us: marker.data_end.timestamp_micros(),
    };
    let workload = Arc::new(Workload::new(
        builtin::from_mix(&mix, &data, opts.engine.seed)?,
        opts.protocol,
    )?);

    let started = chrono::Utc::now();
    let host = crate::monitor::host::host_info();
    let mut doc = session.document(
        "sweep",
        &opts.archive.label,
        &opts.archive.command,
        started,
        host,
    );
    doc.dataset = Some(DatasetInfo {
        scale: marker.scale,
        seed: marker.seed,
        partners: marker.partners,
        orders: marker.orders,
        lines: marker.lines,
    });
    let statements: Vec<String> = workload.types.iter().flat_map(|t| t.statements()).collect();
    doc.data_size = crate::dataset::size::measure(&mut session.admin, &statements).ok();
    let hardware = Hardware {
        server_is_local: session.target.is_local(),
        host_physical_cores: sysinfo::System::physical_core_count().map(|c| c as u32),
        host_logical_cpus: doc.host.cpus as u32,
        ..opts.hardware.clone()
    };
    let mut bench = Bench {
        session,
        workload: workload.clone(),
        opts,
        cpus: doc.host.cpus,
    };

    let tables = hygiene::workload_tables(true, false);
    let mut first_hygiene = None;
    let mut levels = Vec::new();
    let mut interrupted = false;
    let mut stopped: Option<Warning> = None;
    for (i, &n) in opts.levels.iter().enumerate() {
        if bench.session.stop.is_stopped() {
            interrupted = true;
            break;
        }
        eprintln!(
            "pgstorm: sweep level {}/{}: {n} clients, {:.0} s warmup + {:.0} s",
            i + 1,
            opts.levels.len(),
            opts.engine.warmup.as_secs_f64(),
            opts.engine.duration.map(|d| d.as_secs_f64()).unwrap_or(0.0)
        );
        let level_hygiene = HygieneOptions {
            pre_sql: opts.hygiene.pre_sql.clone().filter(|_| i == 0),
            post_sql: None,
            ..opts.hygiene.clone()
        };
        let prepared = hygiene::before_run(bench.session, &level_hygiene, &tables);
        let (section, (out, q)) = match prepared.and_then(|s| Ok((s, bench.load(n, None)?))) {
            Ok(r) => r,
            Err(e) if !levels.is_empty() && was_interrupted(&bench.session.stop, &e) => {
                interrupted = true;
                break;
            }
            Err(e) if !levels.is_empty() => {
                stopped = Some(Warning {
                    code: WarningCode::SweepStopped,
                    message: format!(
                        "the sweep stopped at {n} clients: {e:#}; the levels before it are kept"
                    ),
                });
                eprintln!(
                    "pgstorm: {}",
                    stopped.as_ref().map(|w| w.message.as_str()).unwrap_or("")
                );
                break;
            }
            Err(e) => return Err(e),
        };
        let mut level = level_of(&doc, &out, &workload, &q, bench.cpus, opts.slo.as_ref());
        level.warnings.extend(hygiene::step_warnings(&section));
        if i == 0 {
            first_hygiene = Some(section);
        } else {
            level.hygiene = Some(section);
        }
        eprintln!("pgstorm:   {}", sweep_out::level_line(&level));
        levels.push(level);
        if out.interrupted {
            interrupted = true;
            break;
        }
    }

    let (usl, usl_error) = match pool_size::usl_model(&levels, opts.bootstrap_replicates) {
        Ok(m) => (Some(m), None),
        Err(e) => (None, Some(e.to_string())),
    };
    if let Some(m) = &usl {
        for l in &mut levels {
            l.usl_tps = Some(m.throughput(l.clients as f64));
        }
    }
    let slo = opts.slo.as_ref().map(slo_spec);
    let recommendation = pool_size::recommend(
        &levels,
        usl.as_ref(),
        slo.as_ref(),
        &hardware,
        bench.session.server.reserved_connections,
    );

    let mut rate_stopped = None;
    let rate_search = match (&opts.rate_search, &opts.slo, interrupted) {
        (Some(rs), Some(s), false) => {
            let clients = rs
                .clients
                .or(recommendation.pool_size)
                .or(recommendation.slo_limit)
                .unwrap_or(max_level);
            let ceiling = levels.iter().map(|l| l.tps).fold(0.0, f64::max);
            let (search, stop, failure) = rate_search::run(&mut bench, rs, s, clients, ceiling);
            interrupted |= stop;
            if let Some(e) = failure {
                eprintln!("pgstorm: {e}");
                rate_stopped = Some(Warning {
                    code: WarningCode::RateSearchStopped,
                    message: e,
                });
            }
            Some(search)
        }
        _ => None,
    };

    let mut warnings = merge_level_warnings(&levels);
    warnings.extend(pool_size::model_warnings(&levels, usl.as_ref()));
    warnings.extend(stopped);
    warnings.extend(rate_stopped);
    if interrupted {
        warnings.push(Warning {
            code: WarningCode::Interrupted,
            message: "the sweep was interrupted: only the levels and probes that ran are included"
                .into(),
        });
    }
    doc.sweep = Some(SweepSection {
        config: SweepConfig {
            clients: opts.levels.clone(),
            duration_s: opts.engine.duration.map(|d| d.as_secs_f64()).unwrap_or(0.0),
            warmup_s: opts.engine.warmup.as_secs_f64(),
            protocol: workload.protocol.as_str().into(),
            mix: workload
                .names()
                .into_iter()
                .zip(&workload.weights)
                .map(|(name, w)| MixEntry { name, weight: *w })
                .collect(),
            slo,
            bootstrap_replicates: opts.bootstrap_replicates,
        },
        levels,
        usl,
        usl_error,
        recommendation,
        rate_search,
    });
    doc.interrupted = interrupted;
    doc.finished_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);

    let sweep = doc.sweep.as_ref().expect("set above");
    let mut extra = vec![("sweep.csv".to_string(), sweep_out::levels_csv(sweep)?)];
    if let Some(rs) = &sweep.rate_search {
        extra.push(("rate_search.csv".to_string(), sweep_out::probes_csv(rs)?));
    }
    match sweep_chart::render(sweep) {
        Ok(svg) => extra.push(("sweep.svg".to_string(), svg.into_bytes())),
        Err(e) => warnings.push(Warning {
            code: WarningCode::ChartFailed,
            message: format!("sweep.svg could not be drawn: {e:#}"),
        }),
    }
    doc.warnings = warnings;
    doc.hygiene = first_hygiene;
    hygiene::after_run(bench.session, &opts.hygiene, &mut doc);
    let dir = archive::write(&opts.archive.results_dir, &mut doc, &extra)?;
    if opts.print_summary {
        print!("{}", sweep_out::render(&doc));
        println!("result: {}", dir.display());
    }
    if interrupted {
        return Err(crate::interrupt::error());
    }
    Ok(Outcome { doc, dir })
}

/// Whether a failed load failed because `stop` was stopped (Ctrl-C, e.g. while its pool was
/// opening).
pub(crate) fn was_interrupted(stop: &StopToken, e: &anyhow::Error) -> bool {
    stop.is_stopped() || crate::error::exit_kind(e) == crate::error::ExitKind::Interrupted
}

/// One level's figures from the engine's output.
fn level_of(
    doc: &RunDocument,
    out: &EngineOutput,
    workload: &Workload,
    q: &QueriesOptions,
    cpus: usize,
    slo: Option<&Slo>,
) -> SweepLevel {
    let load = queries::load_result(out, workload, q, cpus);
    let warnings = crate::report::warnings::load_warnings(doc, &load);
    let errors: u64 = load.summary.errors.values().sum();
    SweepLevel {
        clients: q.engine.clients,
        tps: load.summary.tps,
        count: load.summary.count,
        meets_slo: slo.map(|s| errors == 0 && s.met_by(&load.summary.latency)),
        errors: load.summary.errors,
        latency: load.summary.latency,
        per_query_tps: load
            .queries
            .iter()
            .map(|r| (r.name.clone(), r.tps))
            .collect(),
        checkout_wait_p99_ms: load.pool.checkout_wait.p99_ms,
        client_cpu_share: load.client.cpu_share_of_host,
        usl_tps: None,
        warnings,
        hygiene: None,
    }
}

/// The levels' warnings folded into the document's: one per code, naming the levels it hit.
fn merge_level_warnings(levels: &[SweepLevel]) -> Vec<Warning> {
    let mut by_code: BTreeMap<&str, (Vec<u32>, &str)> = BTreeMap::new();
    for l in levels {
        for w in &l.warnings {
            by_code
                .entry(w.code.as_str())
                .or_insert_with(|| (Vec::new(), w.message.as_str()))
                .0
                .push(l.clients);
        }
    }
    by_code
        .into_iter()
        .map(|(code, (ns, first))| Warning {
            code: WarningCode::parse(code),
            message: format!(
                "at {} clients: {first}",
                ns.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_bad_lists_are_usage_errors() {
        assert_eq!(parse_levels("1, 2,4,8").unwrap(), vec![1, 2, 4, 8]);
        for bad in ["", "1,2", "1,2,x", "0,1,2", "4,2,8", "1,1,2", "1,-2,4"] {
            let e = parse_levels(bad).unwrap_err();
            assert_eq!(
                crate::error::exit_kind(&e),
                crate::error::ExitKind::Usage,
                "{bad}"
            );
            assert!(e.to_string().contains(&format!("'{bad}'")), "{e}");
        }
    }
}
