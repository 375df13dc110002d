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
use crate::dataset::pgbench::InitOptions;
use crate::engine::txlog::TxLogConfig;
use crate::engine::Arrival;
use crate::error::{self, ExitKind};
use crate::monitor::model::Thresholds;
use crate::monitor::{MetricsUrl, MonitorConfig};
use crate::output::{JsonStdout, OutputFormat, ProgressFormat};
use crate::scenarios::hygiene::{HygieneOptions, SqlFile};
use crate::scenarios::queries::{self, ArchiveOptions, QueriesOptions};
use crate::scenarios::session::TargetOptions;
use crate::stop::StopToken;
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
    let (plan, output) = match plan_with_output(&strs) {
        Ok((Plan::Help(text), _)) => {
            println!("{text}");
            return 0;
        }
        Ok(p) => p,
        Err(e) => return report(&e),
    };
    let json = match output {
        OutputFormat::Json => match JsonStdout::capture() {
            Ok(j) => Some(j),
            Err(e) => return report(&e),
        },
        OutputFormat::Text => None,
    };
    // `run` also archives its connection scenario's folder; its own document is the result.
    let only = matches!(plan, Plan::Suite(_)).then_some("run");
    let stop = crate::interrupt::install();
    let code = match execute(plan, &stop) {
        Ok(code) => code,
        Err(e) => report(&e),
    };
    // Whatever the outcome, the documents that were archived are the output (an interrupted
    // or failing run still wrote its result).
    match json.map(|j| j.emit(&crate::report::archive::take_written(), only)) {
        Some(Err(e)) => report(&e).max(code),
        _ => code,
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
    /// `pgstorm seed --pgbench` (`-i`), with pgbench's init options.
    SeedPgbench(cli::SeedArgs, InitOptions),
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
    /// `pgstorm trend`.
    Trend(cli::TrendArgs),
    /// `pgstorm merge`, with the command line for the merged document.
    Merge(cli::MergeArgs, Vec<String>),
}

/// Parses and validates `args` (without the program name) into a [`Plan`] without contacting
/// any server: every input error surfaces here, as a usage error (exit 2).
pub fn plan(args: &[&str]) -> Result<Plan> {
    plan_with_output(args).map(|(p, _)| p)
}

/// [`plan`], and what the command prints on stdout (`--output-format`).
fn plan_with_output(args: &[&str]) -> Result<(Plan, OutputFormat)> {
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
            }
            .map(|p| (p, OutputFormat::Text));
        }
    };
    let output = match &cli.command {
        Command::Queries(a) => a.output_format,
        Command::Connections(a) => a.output_format,
        Command::Isolation(a) => a.output_format,
        Command::Run(a) => a.output_format,
        Command::Analyze(a) => a.output_format,
        Command::Sweep(a) => a.output_format,
        Command::Study(a) => a.output_format,
        _ => OutputFormat::Text,
    };
    let mut argv = vec!["pgstorm".to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    let plan = match cli.command {
        Command::Queries(a) => match pgbench_info(&a)? {
            Some(text) => Plan::Help(text),
            None => Plan::Queries(queries_options(&a, &argv)?, a.repeat),
        },
        Command::Connections(a) => Plan::Connections(connections_options(&a, &argv)?),
        Command::Isolation(a) => Plan::Isolation(isolation_options(&a, &argv)?),
        Command::Run(a) => Plan::Suite(suite_options(&a, &argv)?),
        Command::Analyze(a) => Plan::Analyze(analyze_options(&a, &argv)?),
        Command::Sweep(a) if a.fit.is_some() => Plan::SweepFit(sweep_fit_options(&a, &argv)?),
        Command::Sweep(a) => Plan::Sweep(sweep_options(&a, &argv)?),
        Command::Study(a) => Plan::Study(study_options(&a, &argv)?),
        Command::Seed(a) => match pgbench_init_options(&a)? {
            Some(init) => Plan::SeedPgbench(a, init),
            None => Plan::Seed(a),
        },
        Command::Clean(a) => Plan::Clean(a),
        Command::Sandbox(a) => Plan::Sandbox(a),
        Command::Schema(_) => Plan::Schema,
        Command::Compare(a) => Plan::Compare(a),
        Command::Report(a) => Plan::Report(a),
        Command::List(a) => Plan::List(a),
        Command::Trend(a) => Plan::Trend(a),
        Command::Merge(a) => Plan::Merge(a, argv),
    };
    Ok((plan, output))
}

/// Runs a validated plan until it ends or `stop` is stopped (Ctrl-C); returns the exit code.
fn execute(mut plan: Plan, stop: &StopToken) -> Result<i32> {
    hand_in(&mut plan, stop);
    match plan {
        Plan::Help(_) => Ok(0),
        Plan::Queries(opts, repeat) => {
            let (outcomes, _) = queries::run_repeated(&opts, repeat)?;
            let mut aborted = false;
            for o in &outcomes {
                aborted |= queries::print_aborted(&o.doc, &o.dir);
            }
            Ok(if aborted {
                ExitKind::ClientsAborted.code()
            } else {
                0
            })
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
        Plan::SeedPgbench(a, init) => {
            let mut session =
                crate::scenarios::session::Session::open_existing(dsn_of!(a)?.as_deref(), stop)?;
            let t0 = std::time::Instant::now();
            let rows = crate::dataset::pgbench::init(&mut session.admin, &init, !a.quiet)?;
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
                crate::scenarios::session::Session::open_existing(dsn_of!(a)?.as_deref(), stop)?;
            let jobs = a.jobs.map_or_else(
                || std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
                Count::get,
            );
            crate::dataset::disk::check(&mut session.admin, scale, session.target.is_local())?;
            let target = &session.target;
            let connect = || target.connect_with(&target.config);
            let t0 = std::time::Instant::now();
            let marker = crate::dataset::seed_parallel(
                &mut session.admin,
                &connect,
                jobs,
                &crate::dataset::SeedOptions {
                    scale,
                    seed: a.seed,
                    progress: !a.quiet,
                    stop: stop.clone(),
                },
            )?;
            let secs = t0.elapsed().as_secs_f64();
            let rows = marker.partners + marker.orders + marker.lines;
            println!(
                "seeded scale {} (seed {}): {} partners, {} orders, {} order lines in schema pgstorm of {} in {secs:.1} s ({:.0} rows/s)",
                marker.scale, marker.seed, marker.partners, marker.orders, marker.lines, session.target.display,
                rows as f64 / secs.max(1e-9)
            );
            Ok(0)
        }
        Plan::Clean(a) => {
            let mut session =
                crate::scenarios::session::Session::open_existing(dsn_of!(a)?.as_deref(), stop)?;
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
        Plan::Trend(a) => crate::results_app::trend(&a),
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

/// Gives the scenario of `plan` the app's stop token (through its target options, which every
/// scenario's session is opened from).
fn hand_in(plan: &mut Plan, stop: &StopToken) {
    let target = match plan {
        Plan::Queries(o, _) => &mut o.target,
        Plan::Connections(o) => &mut o.target,
        Plan::Isolation(o) => &mut o.target,
        Plan::Suite(o) => &mut o.target,
        Plan::Analyze(o) => &mut o.queries.target,
        Plan::Sweep(o) => &mut o.target,
        Plan::Study(o) => &mut o.queries.target,
        _ => return,
    };
    target.stop = stop.clone();
}

/// Target options of a `--dsn` flag (a sandbox, when one is started, gets the default size).
fn target_options(dsn: Option<String>) -> TargetOptions {
    TargetOptions {
        dsn,
        sandbox_max_connections: None,
        stop: StopToken::new(),
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

/// `--no-vacuum`, `--pre-sql`, `--post-sql`: the hook files are read now, so an unreadable one
/// is an input error (exit 2) before any server is contacted.
fn hygiene_options(
    no_vacuum: bool,
    pre_sql: &Option<String>,
    post_sql: &Option<String>,
) -> Result<HygieneOptions> {
    Ok(HygieneOptions {
        vacuum: !no_vacuum,
        vacuum_pgbench: false,
        pre_sql: pre_sql
            .as_deref()
            .map(|f| SqlFile::read("--pre-sql", f))
            .transpose()?,
        post_sql: post_sql
            .as_deref()
            .map(|f| SqlFile::read("--post-sql", f))
            .transpose()?,
    })
}

fn archive(results_dir: &str, label: &str, argv: &[String]) -> ArchiveOptions {
    ArchiveOptions {
        results_dir: PathBuf::from(results_dir),
        label: label.to_string(),
        command: argv.to_vec(),
    }
}

/// pgbench's init options of `seed --pgbench` (`None` without `--pgbench`); pgbench's init flags
/// without `--pgbench` are a usage error, since the POS dataset has no such knobs.
fn pgbench_init_options(a: &cli::SeedArgs) -> Result<Option<InitOptions>> {
    if !a.pgbench {
        let given = [
            (a.init_steps.is_some(), "-I"),
            (a.fillfactor.is_some(), "-F"),
            (a.partitions.is_some(), "--partitions"),
            (a.partition_method.is_some(), "--partition-method"),
            (a.foreign_keys, "--foreign-keys"),
            (a.unlogged_tables, "--unlogged-tables"),
            (a.no_vacuum, "-n"),
        ];
        if let Some((_, flag)) = given.iter().find(|(on, _)| *on) {
            return Err(error::usage(format!(
                "seed {flag}: that is a pgbench -i option; add --pgbench (or -i) to initialize \
                 pgbench's tables"
            )));
        }
        return Ok(None);
    }
    InitOptions::new(
        a.scale,
        a.init_steps.as_deref(),
        a.fillfactor.unwrap_or(100),
        a.partitions.unwrap_or(0),
        a.partition_method.as_deref(),
        a.foreign_keys,
        a.no_vacuum,
        a.unlogged_tables,
    )
    .map(Some)
}

/// What pgbench prints and exits on instead of running: `-V`, `-b list`, `--show-script NAME`.
fn pgbench_info(a: &cli::QueriesArgs) -> Result<Option<String>> {
    if a.version {
        return Ok(Some(format!("pgstorm {}", env!("CARGO_PKG_VERSION"))));
    }
    if a.builtin.iter().any(|b| b == "list") {
        let mut text = String::from("Available builtin scripts:");
        for name in crate::workload::script::builtin::NAMES {
            text.push_str(&format!("\n{name:>15}"));
        }
        return Ok(Some(text));
    }
    match &a.show_script {
        Some(name) => match crate::workload::script::builtin::lookup(name) {
            Some((full, text)) => Ok(Some(format!("-- {full}\n{}", text.trim_end()))),
            None => Err(error::usage(format!(
                "--show-script {name}: no such built-in script; use one of {}",
                crate::workload::script::builtin::NAMES.join(", ")
            ))),
        },
        None => Ok(None),
    }
}

/// pgbench options pgstorm refuses, each with what to use instead.
fn refused_pgbench_options(a: &cli::QueriesArgs) -> Result<()> {
    let refused = [
        (
            a.debug,
            "-d (debug output): pgstorm has no protocol trace; read the server log \
             (log_statement) instead",
        ),
        (
            a.exit_on_abort,
            "--exit-on-abort: pgbench 15 has no such option (it came with pgbench 16), and \
             pgstorm follows pgbench 15: the other clients finish, and a run in which a client \
             aborted exits 2",
        ),
    ];
    match refused.iter().find(|(on, _)| *on) {
        Some((_, why)) => Err(error::usage(format!("{why}; drop the option"))),
        None => Ok(()),
    }
}

/// The transaction log of `-l` and its options, checked as pgbench checks them.
fn txlog_options(a: &cli::QueriesArgs) -> Result<Option<TxLogConfig>> {
    if !a.log {
        let needs_log = [
            (a.log_prefix.is_some(), "--log-prefix"),
            (a.sampling_rate.is_some(), "--sampling-rate"),
            (a.aggregate_interval.is_some(), "--aggregate-interval"),
        ];
        if let Some((_, flag)) = needs_log.iter().find(|(on, _)| *on) {
            return Err(error::usage(format!(
                "{flag} applies to the transaction log: add -l"
            )));
        }
        return Ok(None);
    }
    if a.sampling_rate.is_some() && a.aggregate_interval.is_some() {
        return Err(error::usage(
            "--sampling-rate and --aggregate-interval cannot be used together (as in \
             pgbench); drop one",
        ));
    }
    if let (Some(every), Some(t)) = (a.aggregate_interval, a.time) {
        if t.get() % every.get() != 0 {
            return Err(error::usage(format!(
                "-T {} must be a multiple of --aggregate-interval {} (as in pgbench)",
                t.get(),
                every.get()
            )));
        }
    }
    let prefix = a.log_prefix.clone().unwrap_or_else(|| "pgbench_log".into());
    if prefix.is_empty() || prefix.contains(['/', '\\']) || prefix.starts_with('.') {
        return Err(error::usage(format!(
            "--log-prefix '{prefix}': give a file name (no folder, not hidden); the logs go \
             into the result folder"
        )));
    }
    Ok(Some(TxLogConfig {
        dir: PathBuf::from(&a.results_dir),
        prefix,
        sampling_rate: a.sampling_rate,
        aggregate: a.aggregate_interval.map(Secs::duration),
        failures_detailed: a.failures_detailed,
        retries: a.max_tries != 1,
        open_loop: a.rate.is_some(),
        seed: a.seed,
    }))
}

/// Most scripts one run takes (pgbench's MAX_SCRIPTS).
const MAX_SCRIPTS: usize = 128;

/// The run's seed from `--seed` and pgbench's `--random-seed` (an integer, `time` or `rand`,
/// as pgbench reads it); giving both with different values is refused.
fn random_seed(seed: u64, random_seed: Option<&str>) -> Result<u64> {
    let Some(spec) = random_seed else {
        return Ok(seed);
    };
    let chosen = match spec {
        "time" => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64),
        "rand" => {
            use std::hash::{BuildHasher, Hasher};
            // std's hasher keys come from the operating system's random source.
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        }
        n => n.parse().map_err(|_| {
            error::usage(format!(
                "--random-seed {n}: unrecognized random seed; use an integer, time or rand"
            ))
        })?,
    };
    if seed != 1 && seed != chosen {
        return Err(error::usage(format!(
            "--seed {seed} and --random-seed {spec} disagree; give one of them"
        )));
    }
    eprintln!("pgstorm: setting random seed to {chosen}");
    Ok(chosen)
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
    refused_pgbench_options(a)?;
    let txlog = txlog_options(a)?;
    // pgbench's -S and -N are its built-in scripts by another name.
    for (on, name) in [
        (a.select_only, "select-only"),
        (a.skip_some_updates, "simple-update"),
    ] {
        if on {
            scripts.push(ScriptSource::builtin(name).map_err(error::usage)?);
        }
    }
    // pgbench's limit (its MAX_SCRIPTS), refused the same way.
    if scripts.len() > MAX_SCRIPTS {
        return Err(error::usage(format!(
            "at most {MAX_SCRIPTS} SQL scripts are allowed ({} given)",
            scripts.len()
        )));
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
        hygiene: hygiene_options(a.no_vacuum, &a.pre_sql, &a.post_sql)?,
        ..QueriesOptions::default()
    };
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
    e.seed = random_seed(a.seed, a.random_seed.as_deref())?;
    e.statement_timeout = a.statement_timeout.get();
    e.checkout_timeout = a.checkout_timeout.get();
    e.lost_grace = a.lost_grace.get();
    e.max_tries = a.max_tries;
    e.latency_limit = a
        .latency_limit
        .map(|ms| Duration::from_secs_f64(ms / 1000.0));
    e.txlog = txlog;
    e.progress_timestamp = a.progress_timestamp;
    e.progress_ndjson = a.progress_format == ProgressFormat::Ndjson;
    e.verbose_errors = a.verbose_errors;
    e.connect_each = a.connect;
    if a.max_tries == 0 && a.transactions.is_some() {
        return Err(error::usage(
            "--max-tries 0 (retry until the run ends) needs -T, not -t",
        ));
    }
    o.hygiene.vacuum_pgbench = a.vacuum_all;
    o.monitor = monitor_options(a)?;
    Ok(o)
}

/// `-P`: a progress line every N seconds; 0 or none turns it off.
fn progress(p: Option<Secs>) -> Option<Duration> {
    p.filter(|p| p.get() > 0).map(Secs::duration)
}

/// The resource monitor settings of `pgstorm queries`, or `None` when sampling is off.
fn monitor_options(a: &cli::QueriesArgs) -> Result<Option<MonitorConfig>> {
    let server_metrics = server_metrics(a.server_metrics.as_deref())?;
    let Some(interval) = a.sample_interval.0.filter(|_| !a.no_monitor) else {
        if server_metrics.is_some() {
            return Err(error::usage(
                "--server-metrics is scraped at each resource sample, and sampling is off: drop \
                 --no-monitor / --sample-interval 0, or drop --server-metrics",
            ));
        }
        return Ok(None);
    };
    Ok(Some(MonitorConfig {
        interval: interval.get(),
        capacity: a.history,
        thresholds: Thresholds {
            cpu_percent: a.alert_cpu.get(),
            memory_percent: a.alert_memory.get(),
            ..Thresholds::default()
        },
        core: None,
        announce: true,
        server_metrics,
    }))
}

/// `--server-metrics`, validated (the URL as given is never echoed: it may hold a password).
fn server_metrics(given: Option<&str>) -> Result<Option<MetricsUrl>> {
    given.map(MetricsUrl::parse).transpose()
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
    for (given, flag, instead) in [
        (q.repeat != 1, "--repeat", "use --pairs for the runs"),
        (
            q.label != "queries",
            "--label",
            "use the labels of --a and --b",
        ),
        (
            q.output_format != OutputFormat::Text,
            "--output-format",
            "give it before --",
        ),
    ] {
        if given {
            return Err(error::usage(format!(
                "study: {flag} after -- is the study's to set: {instead}"
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
        scale: a.scale,
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
        hygiene: hygiene_options(a.no_vacuum, &a.pre_sql, &a.post_sql)?,
        ..SweepOptions::default()
    };
    o.hardware.server_cores = a.server_cores;
    o.hardware.spindles = a.spindles;
    let e = &mut o.engine;
    e.duration = Some(a.time.duration());
    e.warmup = a.warmup.duration();
    e.pin = !a.no_pin;
    e.progress = progress(a.progress);
    e.progress_ndjson = a.progress_format == ProgressFormat::Ndjson;
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
        (a.no_vacuum, "--no-vacuum"),
        (a.pre_sql.is_some(), "--pre-sql"),
        (a.post_sql.is_some(), "--post-sql"),
        (
            a.output_format == OutputFormat::Json,
            "--output-format json (it prints a run's result document)",
        ),
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
            threads: a.jobs.map(Count::get),
            duration: a.time.map(Secs::duration),
            warmup: a.warmup.map(Secs::duration),
            mix: a.mix.clone(),
            server_metrics: server_metrics(a.server_metrics.as_deref())?,
            scale: a.scale,
            progress_ndjson: a.progress_format == ProgressFormat::Ndjson,
        },
        advisor: advisor_options(a.all_schemas),
        thresholds,
        hygiene: hygiene_options(a.no_vacuum, &a.pre_sql, &a.post_sql)?,
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
        scale: a.scale,
        mix,
        protocol: a.protocol.parse()?,
        hygiene: hygiene_options(a.no_vacuum, &a.pre_sql, &a.post_sql)?,
        ..QueriesOptions::default()
    };
    q.engine.clients = a.clients.get();
    q.engine.duration = Some(a.time.duration());
    if let Some(m) = &mut q.monitor {
        m.server_metrics = server_metrics(a.server_metrics.as_deref())?;
    }
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
        assert_eq!(main(&args(&["run", "-s", "0"])), 2);
        assert_eq!(main(&args(&["queries", "-s", "100001"])), 2);
        assert_eq!(main(&args(&["sweep", "--scale", "lots"])), 2);
        assert_eq!(main(&args(&["analyze", "-s", "-3"])), 2);
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
