//! From parsed arguments to a validated configuration to one scenario call per subcommand, and from
//! the outcome to an exit code. `main` only calls [`main`].
//!
//! Invariant: all input is validated (durations, protocol, mix, profile) before a server is
//! contacted, and every error reaching the user is one line with its exit code (see `error`).

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::args::{Count, Rate, Secs, Span};

use crate::cli::{self, Command};
use crate::engine::Arrival;
use crate::error::{self, ExitKind};
use crate::monitor::model::Thresholds;
use crate::monitor::MonitorConfig;
use crate::scenarios::queries::{self, ArchiveOptions, QueriesOptions};
use crate::scenarios::session::TargetOptions;
use crate::workload::builtin;
use crate::workload::script::{Predefined, Script, ScriptSource};

/// The one connection string of a command's `--dsn`, `-h`, `-p`, `-U` and trailing database
/// name (every command that connects has the same five fields).
macro_rules! dsn_of {
    ($a:expr) => {
        crate::target::Login {
            dsn: $a.dsn.clone(),
            host: $a.host.clone(),
            port: $a.port,
            user: $a.username.clone(),
            dbname: $a.dbname.clone(),
        }
        .dsn()
    };
}

/// Parses `args` (without the program name), runs, and returns the process exit code.
pub fn main<S: AsRef<OsStr>>(args: &[S]) -> i32 {
    let args = match utf8_args(args) {
        Ok(a) => a,
        Err(e) => return report(&e),
    };
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let plan = match plan(&strs) {
        Ok(Plan::Help(text)) => {
            println!("{text}");
            return 0;
        }
        Ok(p) => p,
        Err(e) => return report(&e),
    };
    crate::interrupt::install();
    match execute(plan) {
        Ok(code) => code,
        Err(e) => report(&e),
    }
}

/// Prints `e` as one line (unless the user interrupted) and returns its exit code.
fn report(e: &anyhow::Error) -> i32 {
    let kind = error::exit_kind(e);
    if kind != ExitKind::Interrupted {
        // `{:#}` prints the chain on one line: "context: cause".
        eprintln!("pgstorm: error: {e:#}");
    }
    kind.code()
}

/// The arguments as text; one that is not UTF-8 is a usage error naming its position.
fn utf8_args<S: AsRef<OsStr>>(args: &[S]) -> Result<Vec<String>> {
    args.iter()
        .enumerate()
        .map(|(i, a)| {
            let a = a.as_ref();
            a.to_str().map(str::to_string).ok_or_else(|| {
                error::usage(format!(
                    "argument {} ({:?}) is not valid UTF-8; pgstorm takes flags, names and paths \
                     as UTF-8 text",
                    i + 1,
                    a.to_string_lossy()
                ))
            })
        })
        .collect()
}

/// A command line, validated: what to run, with every option checked and in range.
// Built once per process: the size of the biggest variant does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Plan {
    /// `--help` or `help`: the text to print.
    Help(String),
    /// `pgstorm queries`, run this many times.
    Queries(QueriesOptions, u32),
    /// `pgstorm connections`.
    Connections(crate::scenarios::connections::ConnectionsOptions),
    /// `pgstorm isolation`.
    Isolation(crate::scenarios::isolation::IsolationOptions),
    /// `pgstorm run`.
    Suite(crate::scenarios::suite::SuiteOptions),
    /// `pgstorm analyze`.
    Analyze(crate::scenarios::analyze::AnalyzeOptions),
    /// `pgstorm sweep`.
    Sweep(crate::scenarios::sweep::SweepOptions),
    /// `pgstorm sweep --fit FILE`.
    SweepFit(crate::scenarios::sweep::FitOptions),
    /// `pgstorm study`.
    Study(crate::scenarios::study::StudyOptions),
    /// `pgstorm seed`.
    Seed(cli::SeedArgs),
    /// `pgstorm clean`.
    Clean(cli::CleanArgs),
    /// `pgstorm sandbox`.
    Sandbox(cli::SandboxArgs),
    /// `pgstorm schema`.
    Schema,
    /// `pgstorm compare` (its thresholds are checked before any folder is read).
    Compare(cli::CompareArgs),
    /// `pgstorm report`.
    Report(cli::ReportArgs),
    /// `pgstorm list`.
    List(cli::ListArgs),
    /// `pgstorm merge`, with the command line for the merged document.
    Merge(cli::MergeArgs, Vec<String>),
}

/// Parses and validates `args` (without the program name) into a [`Plan`] without contacting
/// any server: every input error surfaces here, as a usage error (exit 2).
pub fn plan(args: &[&str]) -> Result<Plan> {
    let cli = match <cli::Cli as argh::FromArgs>::from_args(&["pgstorm"], args) {
        Ok(c) => c,
        Err(early) => {
            return match early.status {
                Ok(()) => Ok(Plan::Help(early.output)),
                Err(()) => Err(error::usage(format!(
                    "{}; run pgstorm help for usage",
                    early
                        .output
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                ))),
            };
        }
    };
    let mut argv = vec!["pgstorm".to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    Ok(match cli.command {
        Command::Queries(a) => Plan::Queries(queries_options(&a, &argv)?, a.repeat),
        Command::Connections(a) => Plan::Connections(connections_options(&a, &argv)?),
        Command::Isolation(a) => Plan::Isolation(isolation_options(&a, &argv)?),
        Command::Run(a) => Plan::Suite(suite_options(&a, &argv)?),
        Command::Analyze(a) => Plan::Analyze(analyze_options(&a, &argv)?),
        Command::Sweep(a) if a.fit.is_some() => Plan::SweepFit(sweep_fit_options(&a, &argv)?),
        Command::Sweep(a) => Plan::Sweep(sweep_options(&a, &argv)?),
        Command::Study(a) => Plan::Study(study_options(&a, &argv)?),
        Command::Seed(a) => Plan::Seed(a),
        Command::Clean(a) => Plan::Clean(a),
        Command::Sandbox(a) => Plan::Sandbox(a),
        Command::Schema(_) => Plan::Schema,
        Command::Compare(a) => Plan::Compare(a),
        Command::Report(a) => Plan::Report(a),
        Command::List(a) => Plan::List(a),
        Command::Merge(a) => Plan::Merge(a, argv),
    })
}

/// Runs a validated plan; returns the exit code.
fn execute(plan: Plan) -> Result<i32> {
    match plan {
        Plan::Help(_) => Ok(0),
        Plan::Queries(opts, repeat) => {
            queries::run_repeated(&opts, repeat)?;
            Ok(0)
        }
        Plan::Connections(opts) => {
            crate::scenarios::connections::run(&opts)?;
            Ok(0)
        }
        Plan::Isolation(opts) => {
            let out = crate::scenarios::isolation::run(&opts)?;
            let violations = out.doc.isolation.as_ref().map_or(0, |i| i.violations);
            Ok(if violations > 0 {
                ExitKind::CriteriaFailed.code()
            } else {
                0
            })
        }
        Plan::Suite(opts) => crate::scenarios::suite::run(&opts),
        Plan::Analyze(opts) => {
            crate::scenarios::analyze::run(&opts)?;
            Ok(0)
        }
        Plan::Sweep(opts) => {
            crate::scenarios::sweep::run(&opts)?;
            Ok(0)
        }
        Plan::SweepFit(opts) => {
            crate::scenarios::sweep::run_fit(&opts)?;
            Ok(0)
        }
        Plan::Study(opts) => {
            crate::scenarios::study::run(&opts)?;
            Ok(0)
        }
        Plan::Seed(a) if a.pgbench => {
            let mut session =
                crate::scenarios::session::Session::open_existing(dsn_of!(a)?.as_deref())?;
            let t0 = std::time::Instant::now();
            let rows = crate::dataset::pgbench::seed(&mut session.admin, a.scale, true)?;
            println!(
                "pgbench tables initialized at scale {} in {:.1} s: {} accounts, {} tellers, {} branches in {}",
                a.scale,
                t0.elapsed().as_secs_f64(),
                rows.accounts,
                rows.tellers,
                rows.branches,
                session.target.display
            );
            Ok(0)
        }
        Plan::Seed(a) => {
            let scale = a.scale;
            let mut session =
                crate::scenarios::session::Session::open_existing(dsn_of!(a)?.as_deref())?;
            let marker = crate::dataset::seed(
                &mut session.admin,
                &crate::dataset::SeedOptions {
                    scale,
                    seed: a.seed,
                    progress: true,
                },
            )?;
            println!(
                "seeded scale {} (seed {}): {} partners, {} orders, {} order lines in schema pgstorm of {}",
                marker.scale, marker.seed, marker.partners, marker.orders, marker.lines, session.target.display
            );
            Ok(0)
        }
        Plan::Clean(a) => {
            let mut session =
                crate::scenarios::session::Session::open_existing(dsn_of!(a)?.as_deref())?;
            if crate::dataset::clean(&mut session.admin)? {
                println!("dropped schema pgstorm in {}", session.target.display);
            } else {
                println!(
                    "no schema pgstorm in {}: nothing to do",
                    session.target.display
                );
            }
            Ok(0)
        }
        Plan::Sandbox(a) => sandbox_command(&a),
        Plan::Schema => {
            print!("{}", crate::report::json_schema());
            Ok(0)
        }
        Plan::Compare(a) => crate::results_app::compare(&a),
        Plan::Report(a) => crate::results_app::report(&a),
        Plan::List(a) => crate::results_app::list(&a),
        Plan::Merge(a, argv) => crate::results_app::merge(&a, &argv),
    }
}

fn sandbox_command(a: &cli::SandboxArgs) -> Result<i32> {
    use crate::sandbox;
    let map = |e: sandbox::SandboxError| error::target(e.to_string());
    match a.action.as_str() {
        "start" => {
            let opts = sandbox::SandboxOptions {
                max_connections: a.max_connections,
                ..Default::default()
            };
            let info = sandbox::start_persistent(&opts).map_err(map)?;
            println!("sandbox PostgreSQL {} running: {}", info.version, info.dsn);
            println!(
                "pgstorm commands without --dsn now use it; stop it with: pgstorm sandbox stop"
            );
            Ok(0)
        }
        "stop" => {
            if sandbox::stop_persistent().map_err(map)? {
                println!("sandbox stopped and removed");
            } else {
                println!("no sandbox was running");
            }
            Ok(0)
        }
        "status" => match sandbox::status_persistent().map_err(map)? {
            Some(info) => {
                println!(
                    "running: PostgreSQL {} at {} (pid {})",
                    info.version, info.dsn, info.pid
                );
                Ok(0)
            }
            None => {
                println!("no sandbox running");
                Ok(3)
            }
        },
        other => Err(error::usage(format!(
            "unknown sandbox action '{other}'; use start, stop or status"
        ))),
    }
}

/// Parses `--start-at` (RFC 3339, e.g. 2025-06-01T12:00:00Z).
pub fn parse_start_at(s: Option<&str>) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    s.map(|t| {
        chrono::DateTime::parse_from_rfc3339(t.trim())
            .map(|d| d.with_timezone(&chrono::Utc))
            .map_err(|e| {
                error::usage(format!(
                    "--start-at '{t}' is not an RFC 3339 time ({e}); write e.g. 2025-06-01T12:00:00Z"
                ))
            })
    })
    .transpose()
}

/// Target options of a `--dsn` flag (a sandbox, when one is started, gets the default size).
fn target_options(dsn: Option<String>) -> TargetOptions {
    TargetOptions {
        dsn,
        sandbox_max_connections: None,
    }
}

/// `--mix`, or the default mix, checked against the built-in query types.
fn checked_mix(mix: &Option<String>) -> Result<String> {
    let mix = mix
        .clone()
        .unwrap_or_else(|| builtin::DEFAULT_MIX.to_string());
    crate::workload::parse_mix(&mix, &builtin::NAMES)?;
    Ok(mix)
}

fn archive(results_dir: &str, label: &str, argv: &[String]) -> ArchiveOptions {
    ArchiveOptions {
        results_dir: PathBuf::from(results_dir),
        label: label.to_string(),
        command: argv.to_vec(),
    }
}

/// Validates `pgstorm queries` arguments into scenario options.
pub fn queries_options(a: &cli::QueriesArgs, argv: &[String]) -> Result<QueriesOptions> {
    if a.time.is_some() && a.transactions.is_some() {
        return Err(error::usage(
            "give either -T (seconds) or -t (transactions per client), not both",
        ));
    }
    let protocol = a.protocol.parse()?;
    let arrival = match a.arrival.as_str() {
        "poisson" => Arrival::Poisson,
        "uniform" => Arrival::Uniform,
        other => {
            return Err(error::usage(format!(
                "--arrival '{other}': use poisson or uniform"
            )))
        }
    };
    let mut scripts = Vec::new();
    for f in &a.file {
        scripts.push(ScriptSource::file(f).map_err(error::usage)?);
    }
    for b in &a.builtin {
        scripts.push(ScriptSource::builtin(b).map_err(error::usage)?);
    }
    // A script that does not parse is an input error: exit 2 before any server is contacted.
    for src in &scripts {
        Script::parse(
            &src.name,
            &src.source_name,
            &src.text,
            Predefined::default(),
        )
        .map_err(|e| error::usage(e.to_string()))?;
    }
    let mut defines = Vec::new();
    for d in &a.define {
        match d.split_once('=') {
            Some((k, v)) if !k.is_empty() => defines.push((k.to_string(), v.to_string())),
            _ => return Err(error::usage(format!("-D {d}: write -D name=value"))),
        }
    }
    // With scripts and no --mix, only the scripts run.
    let mix = match (&a.mix, scripts.is_empty()) {
        (Some(m), _) => m.clone(),
        (None, true) => builtin::DEFAULT_MIX.to_string(),
        (None, false) => String::new(),
    };
    if !mix.is_empty() {
        crate::workload::parse_mix(&mix, &builtin::NAMES)?;
    }
    let mut o = QueriesOptions {
        start_at: parse_start_at(a.start_at.as_deref())?,
        target: target_options(dsn_of!(a)?),
        archive: archive(&a.results_dir, &a.label, argv),
        seed_if_missing: !a.no_seed,
        mix,
        protocol,
        scripts,
        per_command: a.report_per_command,
        scale: a.scale,
        defines,
        ..QueriesOptions::default()
    };
    if a.jobs.is_some() && (!o.mix.is_empty() || o.scripts.is_empty()) {
        return Err(error::usage(
            "-j: the multiplexed driver runs pgbench scripts (-f/-b) only; drop -j (and \
                 --mix) to run the built-in query types with one thread per client",
        ));
    }
    let e = &mut o.engine;
    e.clients = a.clients.get();
    e.threads = a.jobs.map(|j| j.min(a.clients).get());
    e.duration = match (a.time, a.transactions) {
        (_, Some(_)) => None,
        (Some(t), None) => Some(t.duration()),
        (None, None) => Some(Duration::from_secs(10)),
    };
    e.transactions_per_client = a.transactions;
    e.warmup = a.warmup.duration();
    e.interval = a.interval.get();
    e.rate = a.rate.map(Rate::get);
    e.arrival = arrival;
    e.pin = !a.no_pin;
    e.progress = progress(a.progress);
    e.seed = a.seed;
    e.statement_timeout = a.statement_timeout.get();
    e.checkout_timeout = a.checkout_timeout.get();
    e.lost_grace = a.lost_grace.get();
    e.max_tries = a.max_tries;
    if a.max_tries == 0 && a.transactions.is_some() {
        return Err(error::usage(
            "--max-tries 0 (retry until the run ends) needs -T, not -t",
        ));
    }
    o.monitor = monitor_options(a);
    Ok(o)
}

/// `-P`: a progress line every N seconds; 0 or none turns it off.
fn progress(p: Option<Secs>) -> Option<Duration> {
    p.filter(|p| p.get() > 0).map(Secs::duration)
}

/// The resource monitor settings of `pgstorm queries`, or `None` when sampling is off.
fn monitor_options(a: &cli::QueriesArgs) -> Option<MonitorConfig> {
    let interval = a.sample_interval.0.filter(|_| !a.no_monitor)?;
    Some(MonitorConfig {
        interval: interval.get(),
        capacity: a.history,
        thresholds: Thresholds {
            cpu_percent: a.alert_cpu.get(),
            memory_percent: a.alert_memory.get(),
            ..Thresholds::default()
        },
        core: None,
        announce: true,
    })
}

/// Validates `pgstorm study` arguments: the two sides (their files read), and the load after
/// `--` exactly as `pgstorm queries` validates it, less the flags the study sets itself.
pub fn study_options(
    a: &cli::StudyArgs,
    argv: &[String],
) -> Result<crate::scenarios::study::StudyOptions> {
    use crate::scenarios::study::{parse_side, StudyOptions};
    let rest: Vec<&str> = a.queries.iter().map(String::as_str).collect();
    let q = <cli::QueriesArgs as argh::FromArgs>::from_args(&["pgstorm", "study --"], &rest)
        .map_err(|early| {
            error::usage(format!(
                "the load options after --: {}; they are those of pgstorm queries --help",
                early
                    .output
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            ))
        })?;
    for (given, flag) in [
        (q.repeat != 1, "--repeat"),
        (q.label != "queries", "--label"),
    ] {
        if given {
            return Err(error::usage(format!(
                "study: {flag} after -- is the study's to set: use --pairs for the runs and the \
                 labels of --a and --b"
            )));
        }
    }
    let (side_a, side_b) = (parse_side("--a", &a.a)?, parse_side("--b", &a.b)?);
    if side_a.label == side_b.label {
        return Err(error::usage(format!(
            "--a and --b are both labelled '{}'; give each side its own label",
            side_a.label
        )));
    }
    Ok(StudyOptions {
        queries: queries_options(&q, argv)?,
        a: side_a,
        b: side_b,
        pairs: a.pairs,
    })
}

/// Validates `pgstorm sweep` arguments into scenario options.
pub fn sweep_options(
    a: &cli::SweepArgs,
    argv: &[String],
) -> Result<crate::scenarios::sweep::SweepOptions> {
    use crate::scenarios::sweep::{self, RateSearchOptions, SweepOptions};
    let levels = sweep::parse_levels(&a.clients)?;
    let slo = a
        .slo
        .as_deref()
        .map(str::parse::<crate::analysis::slo::Slo>)
        .transpose()?;
    if a.rate_search && slo.is_none() {
        return Err(error::usage(
            "--rate-search needs --slo, e.g. --slo 'p99<20ms': it searches the highest rate meeting it",
        ));
    }
    let mix = checked_mix(&a.mix)?;
    let mut o = SweepOptions {
        target: target_options(dsn_of!(a)?),
        archive: archive(&a.results_dir, &a.label, argv),
        seed_if_missing: !a.no_seed,
        mix,
        protocol: a.protocol.parse()?,
        levels,
        slo,
        rate_search: a.rate_search.then(|| RateSearchOptions {
            max_probes: a.rate_probes,
            clients: a.rate_clients.map(Count::get),
            ..RateSearchOptions::default()
        }),
        bootstrap_replicates: a.bootstrap,
        ..SweepOptions::default()
    };
    o.hardware.server_cores = a.server_cores;
    o.hardware.spindles = a.spindles;
    let e = &mut o.engine;
    e.duration = Some(a.time.duration());
    e.warmup = a.warmup.duration();
    e.pin = !a.no_pin;
    e.progress = progress(a.progress);
    e.seed = a.seed;
    e.statement_timeout = a.statement_timeout.get();
    e.checkout_timeout = a.checkout_timeout.get();
    e.lost_grace = a.lost_grace.get();
    Ok(o)
}

/// Validates `pgstorm sweep --fit FILE` arguments: the flags of a load (target, SLO, rate
/// search) have nothing to act on and are refused rather than ignored.
pub fn sweep_fit_options(
    a: &cli::SweepArgs,
    argv: &[String],
) -> Result<crate::scenarios::sweep::FitOptions> {
    let file = a.fit.clone().unwrap_or_default();
    for (given, flag) in [
        (
            dsn_of!(a)?.is_some(),
            "a target (--dsn, -h, -p, -U or a database name)",
        ),
        (a.slo.is_some(), "--slo"),
        (a.rate_search, "--rate-search"),
    ] {
        if given {
            return Err(error::usage(format!(
                "--fit {file} fits points already measured, so {flag} has nothing to act on; \
                 drop {flag}, or drop --fit to run a sweep"
            )));
        }
    }
    Ok(crate::scenarios::sweep::FitOptions {
        file: PathBuf::from(file),
        archive: archive(&a.results_dir, &a.label, argv),
        hardware: crate::analysis::pool_size::Hardware {
            server_cores: a.server_cores,
            spindles: a.spindles,
            ..Default::default()
        },
        bootstrap_replicates: a.bootstrap,
        print_summary: true,
    })
}

/// Validates `pgstorm connections` arguments into scenario options.
pub fn connections_options(
    a: &cli::ConnectionsArgs,
    argv: &[String],
) -> Result<crate::scenarios::connections::ConnectionsOptions> {
    use crate::scenarios::connections::{ramp_steps, step_timeout, validate, ConnectionsOptions};
    let fallback_direct = match a.fallback.as_str() {
        "none" => false,
        "direct" => true,
        other => {
            return Err(error::usage(format!(
                "--fallback '{other}': use none or direct"
            )))
        }
    };
    if a.clients.is_some() && !a.storm {
        return Err(error::usage(
            "-c is the storm's client count; without --storm use --max-connections (pool size) \
             and --workers",
        ));
    }
    let mut o = ConnectionsOptions {
        target: target_options(dsn_of!(a)?),
        archive: archive(&a.results_dir, &a.label, argv),
        seed_if_missing: !a.no_seed,
        protocol: a.protocol.parse()?,
        print_summary: true,
        ..ConnectionsOptions::default()
    };
    if let Some(m) = &a.mix {
        o.mix = m.clone();
    }
    let e = &mut o.engine;
    e.storm = a.storm;
    e.steps = if a.storm {
        if a.steps.is_some() || a.workers.is_some() {
            return Err(error::usage(
                "--storm runs -c clients without a pool: --steps and --workers do not apply",
            ));
        }
        vec![a.clients.map_or(10, Count::get)]
    } else {
        match &a.steps {
            Some(list) => list.iter().map(|c| c.get()).collect(),
            None => ramp_steps(a.max_connections.get()),
        }
    };
    e.workers = if a.storm {
        Some(e.steps[0])
    } else {
        a.workers.map(Count::get)
    };
    e.hold = a.time.duration();
    e.step_hold = a.step_hold.get();
    e.connect_rate = a.connect_rate.0.map(Rate::get);
    e.checkout_timeout = a.checkout_timeout.get();
    e.leak_threshold = a.leak_threshold.get();
    e.statement_timeout = a.statement_timeout.get();
    e.interval = a.interval.get();
    e.think = a.think.map_or(Duration::ZERO, Span::get);
    e.fallback_direct = fallback_direct;
    e.inject_leaks = a.inject_leaks;
    e.seed = a.seed;
    e.progress = !a.quiet;
    let max = e.steps.iter().copied().max().unwrap_or(1);
    e.step_timeout = step_timeout(max, e.connect_rate);
    // A throwaway sandbox (no target given) is sized for the run.
    let needed = if e.fallback_direct { max * 2 } else { max };
    o.target.sandbox_max_connections = Some(needed.saturating_add(100).max(600));
    validate(&o)?;
    Ok(o)
}

/// Validates `pgstorm isolation` arguments into scenario options.
pub fn isolation_options(
    a: &cli::IsolationArgs,
    argv: &[String],
) -> Result<crate::scenarios::isolation::IsolationOptions> {
    use crate::scenarios::isolation::{self as iso, Check, IsolationOptions, Level};
    if a.time.is_some() && a.transactions.is_some() {
        return Err(error::usage(
            "give either -T (seconds per check and level) or --transactions (per worker), not both",
        ));
    }
    let opts = IsolationOptions {
        target: target_options(dsn_of!(a)?),
        archive: archive(&a.results_dir, &a.label, argv),
        checks: iso::parse_list::<Check>(&a.check, &Check::ALL)?,
        levels: iso::parse_list::<Level>(&a.level, &Level::ALL)?,
        workers: a.workers.get(),
        transactions: match (a.transactions, a.time) {
            (Some(t), _) => Some(t),
            (None, Some(_)) => None,
            (None, None) => Some(50),
        },
        duration: a.time.map(Secs::duration),
        max_tries: a.max_tries,
        seed: a.seed,
        print_summary: true,
    };
    iso::validate(&opts)?;
    Ok(opts)
}

fn suite_options(
    a: &cli::RunArgs,
    argv: &[String],
) -> Result<crate::scenarios::suite::SuiteOptions> {
    let profile: crate::scenarios::suite::Profile = a.profile.parse()?;
    let start_at = parse_start_at(a.start_at.as_deref())?;
    let mut thresholds = crate::analysis::criteria::Thresholds::default();
    if let Some(f) = &a.criteria {
        thresholds.apply_file(std::path::Path::new(f))?;
    }
    for c in &a.criterion {
        thresholds.apply_flag(c)?;
    }
    if let Some(m) = &a.mix {
        crate::workload::parse_mix(m, &builtin::NAMES)?;
    }
    Ok(crate::scenarios::suite::SuiteOptions {
        repeat: a.repeat,
        start_at,
        overrides: crate::scenarios::suite::LoadOverrides {
            clients: a.clients.map(Count::get),
            duration: a.time.map(Secs::duration),
            warmup: a.warmup.map(Secs::duration),
            mix: a.mix.clone(),
        },
        advisor: advisor_options(a.all_schemas),
        thresholds,
        profile,
        target: target_options(dsn_of!(a)?),
        archive: archive(
            &a.results_dir,
            a.label.as_deref().unwrap_or(profile.as_str()),
            argv,
        ),
        seed_if_missing: !a.no_seed,
    })
}

fn advisor_options(all_schemas: bool) -> crate::analysis::AdvisorOptions {
    crate::analysis::AdvisorOptions {
        scope: if all_schemas {
            crate::analysis::snapshot::Scope::AllSchemas
        } else {
            crate::analysis::snapshot::Scope::Pgstorm
        },
    }
}

fn analyze_options(
    a: &cli::AnalyzeArgs,
    argv: &[String],
) -> Result<crate::scenarios::analyze::AnalyzeOptions> {
    let mix = checked_mix(&a.mix)?;
    let mut q = QueriesOptions {
        target: target_options(dsn_of!(a)?),
        archive: archive(&a.results_dir, &a.label, argv),
        seed_if_missing: !a.no_seed,
        mix,
        protocol: a.protocol.parse()?,
        ..QueriesOptions::default()
    };
    q.engine.clients = a.clients.get();
    q.engine.duration = Some(a.time.duration());
    Ok(crate::scenarios::analyze::AnalyzeOptions {
        queries: q,
        advisor: advisor_options(a.all_schemas),
        criteria: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_flags_turn_the_monitor_on_off_and_tune_it() {
        let parse = |v: &[&str]| {
            let cli = <cli::Cli as argh::FromArgs>::from_args(&["pgstorm"], v).unwrap();
            let Command::Queries(a) = cli.command else {
                unreachable!()
            };
            queries_options(&a, &[]).unwrap().monitor
        };
        let default = parse(&["queries"]).unwrap();
        assert_eq!(default.interval, Duration::from_secs(1));
        assert_eq!(default.capacity, 1000);
        assert_eq!(default.thresholds, Thresholds::default());
        assert!(parse(&["queries", "--no-monitor"]).is_none());
        assert!(parse(&["queries", "--sample-interval", "0"]).is_none());
        let tuned = parse(&[
            "queries",
            "--sample-interval",
            "500ms",
            "--history",
            "50",
            "--alert-cpu",
            "80",
        ])
        .unwrap();
        assert_eq!(tuned.interval, Duration::from_millis(500));
        assert_eq!(tuned.capacity, 50);
        assert_eq!(tuned.thresholds.cpu_percent, 80.0);
    }

    #[test]
    fn study_input_is_checked_before_any_server_is_contacted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("side.sql");
        std::fs::write(&file, "ALTER SYSTEM SET work_mem = '8MB';").unwrap();
        let side = |label: &str| format!("label={label},sql={}", file.display());
        let (x, y) = (side("x"), side("y"));
        let missing = format!("label=y,sql={}", dir.path().join("missing.sql").display());
        for bad in [
            vec!["study", "--a", &x, "--b", &x],
            vec!["study", "--a", &x, "--b", &missing],
            vec!["study", "--a", &x, "--b", &y, "--pairs", "0"],
            vec!["study", "--a", &x, "--b", &y, "--", "--repeat", "3"],
            vec!["study", "--a", &x, "--b", &y, "--", "--label", "z"],
            vec!["study", "--a", &x, "--b", &y, "--", "--bogus"],
            vec!["study", "--a", &x, "--b", &y, "--", "-T", "5", "-t", "5"],
        ] {
            assert_eq!(main(&bad), 2, "{bad:?}");
        }
        let Ok(Plan::Study(o)) = plan(&["study", "--a", &x, "--b", &y, "--", "-c", "3"]) else {
            panic!("a valid study does not plan");
        };
        assert_eq!((o.pairs, o.queries.engine.clients), (3, 3));
        assert_eq!((o.a.label.as_str(), o.b.label.as_str()), ("x", "y"));
        assert!(o.a.reload && o.b.reload);
    }

    #[test]
    fn bad_flags_exit_2_without_contacting_a_server() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(main(&args(&["queries", "--bogus"])), 2);
        assert_eq!(main(&args(&["queries", "--mix", "point=1,nope=2"])), 2);
        assert_eq!(main(&args(&["queries", "-M", "telepathy"])), 2);
        assert_eq!(main(&args(&["queries", "-T", "5", "-t", "5"])), 2);
        assert_eq!(main(&args(&["run", "--profile", "huge"])), 2);
        assert_eq!(main(&args(&["queries", "--sample-interval", "50ms"])), 2);
        assert_eq!(main(&args(&["queries", "--sample-interval", "soon"])), 2);
        assert_eq!(main(&args(&["queries", "--alert-cpu", "150"])), 2);
        assert_eq!(main(&args(&["queries", "--history", "0"])), 2);
        assert_eq!(main(&args(&["run", "--criterion", "nope=1"])), 2);
        assert_eq!(main(&args(&["run", "--criterion", "mean_latency_ms"])), 2);
        assert_eq!(
            main(&args(&["run", "--criteria", "/nonexistent/c.json"])),
            2
        );
        assert_eq!(main(&args(&["analyze", "--mix", "nope=1"])), 2);
        assert_eq!(main(&args(&["isolation", "--check", "phantom"])), 2);
        assert_eq!(main(&args(&["isolation", "--level", "chaos"])), 2);
        assert_eq!(main(&args(&["isolation", "--workers", "0"])), 2);
        assert_eq!(main(&args(&["isolation", "--max-tries", "0"])), 2);
        assert_eq!(
            main(&args(&["isolation", "-T", "5", "--transactions", "5"])),
            2
        );
        assert_eq!(main(&args(&["sweep", "--clients", "1,2"])), 2);
        assert_eq!(main(&args(&["sweep", "--slo", "p99>20ms"])), 2);
        assert_eq!(main(&args(&["sweep", "--rate-search"])), 2);
        assert_eq!(main(&args(&["sweep", "--mix", "nope=1"])), 2);
        assert_eq!(main(&args(&["connections", "--steps", "50,10"])), 2);
        assert_eq!(main(&args(&["connections", "--connect-rate", "fast"])), 2);
        assert_eq!(main(&args(&["connections", "--fallback", "pray"])), 2);
        assert_eq!(main(&args(&["connections", "-c", "5"])), 2);
        assert_eq!(
            main(&args(&["connections", "--storm", "--inject-leaks", "1"])),
            2
        );
    }
}
