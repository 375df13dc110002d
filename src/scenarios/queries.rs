//! `pgstorm queries`: latency and throughput of each query type under load, closed loop or at a
//! fixed rate, archived as a result folder.
//!
//! Invariants: the results folder is proven writable before the server is contacted; preflight
//! refuses a run the server cannot hold before any worker connects; the server's own
//! transaction counters are read around the load and stored beside the client's count; a run
//! cut short still writes its (flagged) result first, then reports its exit code: 4 when a
//! load thread panicked, 3 when the target was lost, 130 when interrupted. Every run, each of a
//! `--repeat` set included, starts with the run hygiene of [`super::hygiene`] (vacuum,
//! checkpoint, the `--pre-sql` hook) and ends with its `--post-sql` hook before it is archived.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use super::hygiene::{self, HygieneOptions};
use super::session::{Session, TargetOptions};
use crate::engine::{self, Arrival, EngineConfig, EngineOutput};
use crate::monitor::model::Window;
use crate::monitor::{Monitor, MonitorConfig};
use crate::report::model::{
    AbortedClients, ClientCost, ClientSpread, CommandResult, DatasetInfo, IntervalPoint,
    LoadConfig, LoadResult, MixEntry, PoolResult, QueryResult, RunDocument, ServerCheck, Stall,
    TargetLostAt, WarningCode,
};
use crate::report::{archive, hlog, latency_summary};
use crate::stop::StopToken;
use crate::workload::script::{Predefined, Script, ScriptSource};
use crate::workload::{self, builtin, DataRange, Protocol, QueryType, Workload};

/// Where and how results are archived.
#[derive(Debug, Clone)]
pub struct ArchiveOptions {
    /// Folder holding result folders and index.csv.
    pub results_dir: PathBuf,
    /// Label in the folder name and index.
    pub label: String,
    /// The command line (redacted before writing).
    pub command: Vec<String>,
}

/// Options of the queries scenario.
#[derive(Debug, Clone)]
pub struct QueriesOptions {
    /// Where to connect.
    pub target: TargetOptions,
    /// Where to write.
    pub archive: ArchiveOptions,
    /// Seed scale 1 when no dataset exists (false: error instead).
    pub seed_if_missing: bool,
    /// `--mix`.
    pub mix: String,
    /// `-M`.
    pub protocol: Protocol,
    /// The engine settings.
    pub engine: EngineConfig,
    /// Print the summary table to stdout.
    pub print_summary: bool,
    /// pgbench-style scripts (`-f`, `-b`), each one query type; with scripts and an empty
    /// `mix`, only the scripts run (and the POS dataset is not needed).
    pub scripts: Vec<ScriptSource>,
    /// Report per-command latencies of scripts (`-r`).
    pub per_command: bool,
    /// `-s`: the POS dataset's scale (reseeded when the seeded one differs), and, as in
    /// pgbench, `:scale` of custom scripts (1 when not given); built-in scripts count
    /// pgbench_branches instead. `None`: the seeded dataset whatever its scale.
    pub scale: Option<u32>,
    /// `-D name=value` script variables.
    pub defines: Vec<(String, String)>,
    /// Host and server samplers during the load (`None`: `--no-monitor`).
    pub monitor: Option<MonitorConfig>,
    /// Hold the load until this moment (`--start-at`), so several load machines start together.
    pub start_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Vacuum, checkpoint and resets before each run, and the `--pre-sql`/`--post-sql` hooks.
    pub hygiene: HygieneOptions,
    /// The run's place in an interleaved study (`pgstorm study`), recorded in its document.
    pub study: Option<crate::report::model::StudyMark>,
}

impl QueriesOptions {
    /// The POS dataset this load asks for (`-s`, `--no-seed`) on a server that is `local` or not.
    pub fn wanted(&self, local: bool) -> crate::dataset::Wanted {
        crate::dataset::Wanted {
            scale: self.scale,
            no_seed: !self.seed_if_missing,
            local,
            stop: self.target.stop.clone(),
        }
    }
}

/// What a scenario produced.
pub struct Outcome {
    /// The archived document.
    pub doc: RunDocument,
    /// Its folder.
    pub dir: PathBuf,
}

impl Default for QueriesOptions {
    fn default() -> Self {
        QueriesOptions {
            target: TargetOptions::default(),
            archive: ArchiveOptions {
                results_dir: PathBuf::from("results"),
                label: "queries".into(),
                command: Vec::new(),
            },
            seed_if_missing: true,
            mix: builtin::DEFAULT_MIX.into(),
            protocol: Protocol::Prepared,
            engine: EngineConfig {
                clients: 10,
                threads: None,
                duration: Some(Duration::from_secs(10)),
                transactions_per_client: None,
                warmup: Duration::ZERO,
                interval: Duration::from_secs(1),
                rate: None,
                arrival: Arrival::Poisson,
                pin: true,
                progress: None,
                seed: 1,
                checkout_timeout: Duration::from_secs(30),
                statement_timeout: Duration::from_secs(5),
                max_tries: 1,
                lost_grace: engine::lost::DEFAULT_GRACE,
                latency_limit: None,
                txlog: None,
                progress_timestamp: false,
                progress_ndjson: false,
                verbose_errors: false,
                connect_each: false,
            },
            print_summary: true,
            scripts: Vec::new(),
            per_command: false,
            scale: None,
            defines: Vec::new(),
            monitor: Some(MonitorConfig::default()),
            start_at: None,
            hygiene: HygieneOptions::default(),
            study: None,
        }
    }
}

/// Runs the scenario on a new session.
pub fn run(opts: &QueriesOptions) -> Result<Outcome> {
    archive::probe(&opts.archive.results_dir)?;
    let mut session = Session::open(&opts.target)?;
    run_on(&mut session, opts)
}

/// Runs the scenario `repeat` times on one session, one result folder each; with more than one
/// run, also writes a set folder naming them (what `compare` takes as samples).
pub fn run_repeated(opts: &QueriesOptions, repeat: u32) -> Result<(Vec<Outcome>, Option<PathBuf>)> {
    archive::probe(&opts.archive.results_dir)?;
    let mut session = Session::open(&opts.target)?;
    repeat_on(&mut session, opts, repeat)
}

/// [`run_repeated`] on an existing session.
pub fn repeat_on(
    session: &mut Session,
    opts: &QueriesOptions,
    repeat: u32,
) -> Result<(Vec<Outcome>, Option<PathBuf>)> {
    repeat_with(session, opts, repeat, &mut |_, _, _| Ok(()))
}

/// What a caller adds to run `i` of a set before it is archived (e.g. the suite's other
/// scenarios): called with the session, the run index and the measured document.
pub type Extend<'a> = dyn FnMut(&mut Session, u32, &mut Measured) -> Result<()> + 'a;

/// [`repeat_on`] with `extend` called on each run's document before it is archived.
pub fn repeat_with(
    session: &mut Session,
    opts: &QueriesOptions,
    repeat: u32,
    extend: &mut Extend<'_>,
) -> Result<(Vec<Outcome>, Option<PathBuf>)> {
    let mut outcomes = Vec::new();
    for i in 0..repeat.max(1) {
        if repeat > 1 {
            eprintln!("pgstorm: run {} of {repeat}", i + 1);
        }
        let mut o = opts.clone();
        // Only the first run waits for --start-at; the others follow it directly.
        if i > 0 {
            o.start_at = None;
        }
        let mut m = measure(session, &o)?;
        if m.complete() {
            extend(session, i, &mut m)?;
        }
        outcomes.push(finish(session, m, &o)?);
    }
    let set = if repeat > 1 {
        Some(write_set(opts, &outcomes)?)
    } else {
        None
    };
    Ok((outcomes, set))
}

/// Writes the set folder of `outcomes` (runs of `opts`), with its drift warnings, and names it
/// on stdout when the summary is printed.
pub fn write_set(opts: &QueriesOptions, outcomes: &[Outcome]) -> Result<PathBuf> {
    let ids: Vec<String> = outcomes.iter().map(|o| o.doc.run_id.clone()).collect();
    let docs: Vec<&RunDocument> = outcomes.iter().map(|o| &o.doc).collect();
    let drift = crate::compare::drift::of_set(&opts.archive.label, &docs);
    let dir =
        crate::report::set::write(&opts.archive.results_dir, &opts.archive.label, &ids, &drift)?;
    if opts.print_summary {
        println!("set of {} runs: {}", outcomes.len(), dir.display());
    }
    Ok(dir)
}

/// Sleeps until `at` (returns at once when it has passed); stopping `stop` (Ctrl-C) cuts the
/// wait short.
fn wait_until(at: chrono::DateTime<chrono::Utc>, stop: &StopToken) -> Result<()> {
    let wait = (at - chrono::Utc::now()).to_std().unwrap_or_default();
    if wait.is_zero() {
        eprintln!(
            "pgstorm: --start-at {} has passed: starting now",
            at.to_rfc3339()
        );
        return Ok(());
    }
    eprintln!(
        "pgstorm: waiting {:.1} s for --start-at {}",
        wait.as_secs_f64(),
        at.to_rfc3339()
    );
    if stop.sleep(wait) {
        return Err(crate::interrupt::error());
    }
    Ok(())
}

/// How many distinct abort messages the terminal shows (run.json has them all).
const ABORTS_SHOWN: usize = 3;

/// Prints the run's aborted clients on stderr, the most frequent messages first, as pgbench
/// prints each abort; returns whether any client aborted.
pub fn print_aborted(doc: &RunDocument, dir: &Path) -> bool {
    let Some(load) = doc.load.as_ref().filter(|l| !l.aborted.is_empty()) else {
        return false;
    };
    for a in load.aborted.iter().take(ABORTS_SHOWN) {
        eprintln!("pgstorm: aborted: {}", aborted_line(a));
    }
    if load.aborted.len() > ABORTS_SHOWN {
        eprintln!(
            "pgstorm: {} more abort messages in {}",
            load.aborted.len() - ABORTS_SHOWN,
            dir.join("run.json").display()
        );
    }
    let clients: u64 = load.aborted.iter().map(|a| a.clients).sum();
    eprintln!(
        "pgstorm: {clients} of {} clients aborted, so the run is incomplete (as pgbench: exit \
         code 2); fix the script or the database and run again",
        load.config.clients
    );
    true
}

/// One group of aborted clients on one line, as the terminal and the warning show it.
pub fn aborted_line(a: &AbortedClients) -> String {
    let clients = if a.clients == 1 { "client" } else { "clients" };
    match &a.sqlstate {
        Some(code) => format!("{} {clients}: {} (SQLSTATE {code})", a.clients, a.message),
        None => format!("{} {clients}: {}", a.clients, a.message),
    }
}

/// Runs the scenario on an existing session (used by `pgstorm run` to chain scenarios).
pub fn run_on(session: &mut Session, opts: &QueriesOptions) -> Result<Outcome> {
    let measured = measure(session, opts)?;
    finish(session, measured, opts)
}

/// Runs the `--post-sql` hook after a measured run, then archives it ([`archive_and_print`]).
pub fn finish(session: &mut Session, mut m: Measured, opts: &QueriesOptions) -> Result<Outcome> {
    hygiene::after_run(session, &opts.hygiene, &mut m.doc);
    archive_and_print(m, opts)
}

/// A measured load whose document is not archived yet, so later steps (the advisor, the
/// criteria) can add their sections first.
pub struct Measured {
    /// The document, load section filled in.
    pub doc: RunDocument,
    /// The rendered HdrHistogram interval log.
    pub log: Vec<u8>,
    /// pgbench's transaction logs (`-l`): file name and contents.
    pub txlogs: Vec<archive::ExtraFile>,
    /// Ctrl-C stopped the load early.
    pub interrupted: bool,
}

impl Measured {
    /// Whether the load ran its course: not interrupted, target not lost, no load thread
    /// panicked. Later steps that need the server (advisor, isolation checks) run only then.
    pub fn complete(&self) -> bool {
        !self.interrupted
            && self.doc.target_lost_at.is_none()
            && self.doc.load_thread_panics.is_empty()
    }
}

/// Runs the load and builds its document, without archiving it.
pub fn measure(session: &mut Session, opts: &QueriesOptions) -> Result<Measured> {
    measure_with(session, opts, &mut |_| Ok(()))
}

/// [`measure`] with `before_load` called after the run's hygiene and pre-sql hook, right before
/// the load, so a caller's "before" reading (the advisor's snapshot) sees neither.
pub fn measure_with(
    session: &mut Session,
    opts: &QueriesOptions,
    before_load: &mut dyn FnMut(&mut Session) -> Result<()>,
) -> Result<Measured> {
    let unpinned;
    let opts = if opts.engine.pin && session.target.is_local() {
        // Measured on a 2-core host (scripts/bench-vs-pgbench.sh, 7 alternating repetitions):
        // pinned load threads reached 0.98x pgbench's select-only TPS, unpinned 1.03x; the pool
        // driver 0.77x vs 0.82x. A pinned thread cannot move to the core a backend just left.
        eprintln!(
            "pgstorm: the server runs on this host: load threads are not pinned to cores, so \
             the scheduler can share the cores with its backends"
        );
        unpinned = QueriesOptions {
            engine: EngineConfig {
                pin: false,
                ..opts.engine.clone()
            },
            ..opts.clone()
        };
        &unpinned
    } else {
        opts
    };
    // Validate input before touching the server.
    let mix = if opts.mix.trim().is_empty() && !opts.scripts.is_empty() {
        Vec::new()
    } else {
        workload::parse_mix(&opts.mix, &builtin::NAMES)?
    };
    for src in &opts.scripts {
        Script::parse(
            &src.name,
            &src.source_name,
            &src.text,
            Predefined::default(),
        )
        .map_err(|e| crate::error::usage(e.to_string()))?;
    }
    if opts.engine.clients == 0 {
        return Err(crate::error::usage("-c must be at least 1"));
    }
    if let Some(r) = opts.engine.rate {
        if !(r.is_finite() && r > 0.0) {
            return Err(crate::error::usage(format!(
                "-R {r} is not a positive rate; give transactions per second, e.g. -R 1000"
            )));
        }
    }
    // The admin connection, plus the server sampler's own.
    let extra = 1 + u32::from(opts.monitor.is_some());
    crate::target::check_capacity(
        &session.server,
        opts.engine.clients,
        extra,
        &session.target.display,
    )?;

    let mut say = |m: &str| eprintln!("pgstorm: {m}");
    // Scripts alone need no POS dataset: they bring their own tables (pgbench's, usually).
    let marker = if mix.is_empty() {
        None
    } else {
        Some(crate::dataset::ensure_scale(
            &mut session.admin,
            opts.wanted(session.target.is_local()),
            &mut say,
        )?)
    };
    let data = marker.as_ref().map_or(
        DataRange {
            partners: 0,
            orders: 0,
            start_us: 0,
            end_us: 0,
        },
        |m| DataRange {
            partners: m.partners,
            orders: m.orders,
            start_us: m.data_start.timestamp_micros(),
            end_us: m.data_end.timestamp_micros(),
        },
    );
    let mut entries = builtin::from_mix(&mix, &data, opts.engine.seed)?;
    entries.extend(load_scripts(session, opts)?);
    let mut workload = Workload::new(entries, opts.protocol)?;
    workload.per_command = opts.per_command;
    let tables = hygiene::workload_tables(
        !mix.is_empty(),
        !opts.scripts.is_empty() || opts.hygiene.vacuum_pgbench,
    );
    let section = hygiene::before_run(session, &opts.hygiene, &tables)?;
    before_load(session)?;
    let mut m = measure_workload(session, opts, Arc::new(workload))?;
    m.doc.warnings.extend(hygiene::step_warnings(&section));
    m.doc.hygiene = Some(section);
    m.doc.dataset = marker.map(|marker| DatasetInfo {
        scale: marker.scale,
        seed: marker.seed,
        partners: marker.partners,
        orders: marker.orders,
        lines: marker.lines,
    });
    Ok(m)
}

/// Runs the load of a ready `workload` (its tables in place, its options checked) and builds
/// its document, without archiving it; [`measure`] is this after validating the options and
/// making the workload.
pub fn measure_workload(
    session: &mut Session,
    opts: &QueriesOptions,
    workload: Arc<Workload>,
) -> Result<Measured> {
    if let Some(at) = opts.start_at {
        wait_until(at, &session.stop)?;
    }
    // Read before the load (and its connections) start: the size the load found, and a catalog
    // query that never competes with it.
    let statements: Vec<String> = workload.types.iter().flat_map(|t| t.statements()).collect();
    let data_size = crate::dataset::size::measure(&mut session.admin, &statements).ok();
    let started = chrono::Utc::now();
    let host = crate::monitor::host::host_info();
    // Samplers start before the load and stop after the pool's backends exited (and so flushed
    // their statistics), on the core the pinned workers leave free.
    let monitor = match &opts.monitor {
        Some(cfg) => {
            let local = session.local_server();
            let cfg = MonitorConfig {
                core: engine::monitor_core(opts.engine.pin),
                ..cfg.clone()
            };
            Some(Monitor::start(cfg, Some(&session.target), local))
        }
        None => None,
    };
    // `-l`: the load threads write their logs into a hidden folder beside the result folders;
    // the result folder takes them when it is written.
    let mut engine_cfg = opts.engine.clone();
    let txlog_dir = match engine_cfg.txlog.as_mut() {
        Some(c) => {
            let dir = c.dir.join(format!(
                ".txlog-{}-{}",
                std::process::id(),
                started.timestamp_micros()
            ));
            std::fs::create_dir_all(&dir).with_context(|| {
                format!(
                    "-l: cannot create {}; pass --results-dir to a writable folder",
                    dir.display()
                )
            })?;
            c.dir = dir.clone();
            Some(dir)
        }
        None => None,
    };
    let before = session.xact_counters().ok();
    let run = engine::run(
        &session.target,
        workload.clone(),
        &engine_cfg,
        &session.stop,
    );
    let txlogs = match &txlog_dir {
        Some(dir) => engine::txlog::collect(dir)?,
        None => Vec::new(),
    };
    let out = run?;
    let _ = session.wait_pool_gone(Duration::from_secs(30));
    let after = session.xact_counters().ok();
    let monitoring = monitor.map(|m| {
        let start_s = m.seconds_at(out.started_at) + out.warmup.as_secs_f64();
        m.stop(Some(Window {
            start_s,
            end_s: start_s + out.measured.as_secs_f64(),
        }))
    });

    let mut doc = session.document(
        "queries",
        &opts.archive.label,
        &opts.archive.command,
        started,
        host,
    );
    let mut load = load_result(&out, &workload, opts, doc.host.cpus);
    if let (Some(b), Some(a)) = (before, after) {
        let client = out.transactions_attempted();
        let (commit, rollback) = (a.0 - b.0, a.1 - b.1);
        load.server_check = Some(ServerCheck {
            xact_commit: commit,
            xact_rollback: rollback,
            client_transactions: client,
            ratio: if client > 0 {
                (commit + rollback) as f64 / client as f64
            } else {
                0.0
            },
        });
    }
    doc.interrupted = out.interrupted;
    doc.target_lost_at = out.target_lost.as_ref().map(|l| {
        let time: chrono::DateTime<chrono::Utc> = (out.started_at + l.at).into();
        TargetLostAt {
            seconds: l.at.as_secs_f64(),
            time: time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            reason: l.reason.clone(),
            grace_s: opts.engine.lost_grace.as_secs_f64(),
        }
    });
    doc.load_thread_panics = out.panics.clone();
    doc.study = opts.study.clone();
    doc.finished_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    doc.monitoring = monitoring;
    doc.data_size = data_size;
    doc.warnings = crate::report::warnings::load_warnings(&doc, &load);
    if let Some(first) = load.aborted.first() {
        let clients: u64 = load.aborted.iter().map(|a| a.clients).sum();
        doc.warnings.push(crate::report::model::Warning {
            code: WarningCode::ClientsAborted,
            message: format!(
                "{clients} of {} clients aborted as pgbench aborts them, so the load ran with \
                 fewer clients than asked; first: {}",
                opts.engine.clients,
                aborted_line(first)
            ),
        });
    }
    if let Some(l) = &doc.target_lost_at {
        doc.warnings.push(crate::report::model::Warning {
            code: WarningCode::TargetLost,
            message: format!(
                "the target was lost {:.1} s into the run (no load connection open, reconnects \
                 failing for {:.0} s; last failure: {}): the run ended there and its rates cover \
                 the {:.1} s measured before",
                l.seconds, l.grace_s, l.reason, load.measured_s
            ),
        });
    }
    for p in &doc.load_thread_panics {
        doc.warnings.push(crate::report::model::Warning {
            code: WarningCode::LoadThreadPanicked,
            message: format!(
                "a load thread panicked ({p}): the run ended there and its figures are not to be \
                 trusted; please report it as a bug"
            ),
        });
    }
    doc.load = Some(load);

    let entries: Vec<hlog::Entry> = out
        .log
        .iter()
        .map(|e| hlog::Entry {
            tag: e.tag.clone(),
            start_s: e.start_s,
            duration_s: e.duration_s,
            encoded: e.encoded.clone(),
        })
        .collect();
    let log = hlog::render(unix_s(out.started_at), &entries)?;
    Ok(Measured {
        doc,
        log,
        txlogs,
        interrupted: out.interrupted,
    })
}

/// Archives a measured document, prints its summary when asked, and after the result is
/// written reports a run cut short: a load thread's panic (exit 4), a lost target (exit 3), an
/// interruption (exit 130).
pub fn archive_and_print(m: Measured, opts: &QueriesOptions) -> Result<Outcome> {
    let Measured {
        mut doc,
        log,
        txlogs,
        interrupted,
    } = m;
    let mut extra = vec![("latency.hlog".to_string(), log)];
    extra.extend(txlogs);
    // A result kept in the fallback folder is still a result: the run's own outcome (a panic, a
    // lost target, an interruption) decides the exit code first, and the write failure after.
    let (dir, elsewhere) = match archive::write(&opts.archive.results_dir, &mut doc, &extra) {
        Ok(dir) => (dir, None),
        Err(e) => match e.downcast::<archive::WrittenElsewhere>() {
            Ok(w) => (w.written.clone(), Some(w)),
            Err(e) => return Err(e),
        },
    };
    if opts.print_summary {
        print!("{}", crate::report::summary::render(&doc));
        println!("result: {}", dir.display());
    }
    if let Some(p) = doc.load_thread_panics.first() {
        return Err(anyhow::anyhow!(
            "a load thread panicked ({p}); the result up to then is in {}; please report this \
             as a bug",
            dir.display()
        ));
    }
    if let Some(l) = &doc.target_lost_at {
        return Err(crate::error::target(format!(
            "lost the target {} {:.1} s into the run: {}; no connection could be opened for \
             {:.0} s; the result up to then is in {}",
            doc.target.dsn,
            l.seconds,
            l.reason,
            l.grace_s,
            dir.display()
        )));
    }
    if interrupted {
        return Err(crate::interrupt::error());
    }
    if let Some(w) = elsewhere {
        return Err(w.into());
    }
    Ok(Outcome { doc, dir })
}

/// Parses the scripts with the run's predefined variables, names them uniquely, and checks every
/// SQL command against the server (prepared and extended protocols) so a script that does not fit
/// the database fails before the load, naming its line.
fn load_scripts(
    session: &mut Session,
    opts: &QueriesOptions,
) -> Result<Vec<(Box<dyn QueryType>, u32)>> {
    if opts.scripts.is_empty() {
        return Ok(Vec::new());
    }
    let scale = if opts.scripts.iter().any(|s| s.builtin) {
        // As pgbench: built-in scripts take the scale from pgbench_branches.
        let n: i64 = session
            .admin
            .query_one("SELECT count(*) FROM pgbench_branches", &[])
            .map_err(|e| {
                crate::error::usage(format!(
                    "the built-in pgbench scripts need pgbench's tables: {}; create them with \
                     `pgstorm seed --pgbench -s 1` (or pgbench -i)",
                    crate::target::one_line(&e)
                ))
            })?
            .get(0);
        if opts.scale.is_some_and(|s| i64::from(s) != n) {
            eprintln!(
                "pgstorm: -s ignored: the built-in scripts use the scale of pgbench_branches ({n})"
            );
        }
        n
    } else {
        opts.scale.map_or(1, i64::from)
    };
    let predefined = Predefined {
        scale,
        seed: opts.engine.seed,
        clients: opts.engine.clients as usize,
        defines: opts.defines.clone(),
    };
    let mut out: Vec<(Box<dyn QueryType>, u32)> = Vec::new();
    let mut names: Vec<String> = builtin::NAMES.iter().map(|s| s.to_string()).collect();
    for src in &opts.scripts {
        let mut name = src.name.clone();
        let mut k = 2;
        while names.contains(&name) {
            name = format!("{}#{k}", src.name);
            k += 1;
        }
        names.push(name.clone());
        let script = Script::parse(&name, &src.source_name, &src.text, predefined.clone())
            .map_err(|e| crate::error::usage(e.to_string()))?;
        if let Some(line) = script.copy_with_client() {
            return Err(crate::error::usage(format!(
                "{}:{line}: {}",
                src.source_name,
                crate::workload::script::resume::COPY_REFUSED
            )));
        }
        if let Some(line) = script.pipeline_line() {
            // pgbench aborts every client at the \startpipeline under -M simple; refusing before
            // the run says the same once.
            if opts.protocol == Protocol::Simple {
                return Err(crate::error::usage(format!(
                    "{}:{line}: {}",
                    src.source_name,
                    crate::workload::script::PIPELINE_SIMPLE
                )));
            }
        }
        if opts.protocol != Protocol::Simple {
            for c in &script.compiled().commands {
                if let crate::workload::script::parse::Step::Sql { stmt, .. } = &c.step {
                    let sql = &script.compiled().statements[*stmt];
                    if let Err(e) = session.admin.prepare(sql) {
                        return Err(crate::error::usage(format!(
                            "{}:{}: the server rejects this command: {}{}",
                            src.source_name,
                            c.line,
                            crate::target::one_line(&e),
                            if sql.contains("pgbench_") {
                                "; create pgbench's tables with `pgstorm seed --pgbench -s N`"
                            } else {
                                ""
                            }
                        )));
                    }
                }
            }
        }
        out.push((Box::new(script), src.weight));
    }
    Ok(out)
}

fn query_result(name: &str, t: &engine::stats::TypeStats, secs: f64) -> QueryResult {
    let errors = engine::stats::ErrorClass::ALL
        .iter()
        .filter(|c| t.errors[**c as usize] > 0)
        .map(|c| (c.as_str().to_string(), t.errors[*c as usize]))
        .collect();
    QueryResult {
        name: name.to_string(),
        count: t.ok,
        errors,
        tps: if secs > 0.0 { t.ok as f64 / secs } else { 0.0 },
        latency: latency_summary(&t.latency),
        retried: t.retried,
        retries: t.retries,
        late: t.late,
        skipped: t.skipped,
        commands: None,
    }
}

/// pgbench `-r`: mean latency and failures of each command of a type that reports commands.
fn command_results(labels: &[String], t: &engine::stats::TypeStats) -> Option<Vec<CommandResult>> {
    if labels.is_empty() || t.commands.is_empty() {
        return None;
    }
    Some(
        labels
            .iter()
            .enumerate()
            .map(|(i, label)| {
                let c = t.commands.get(i).copied().unwrap_or_default();
                CommandResult {
                    command: label.clone(),
                    count: c.count,
                    mean_ms: if c.count > 0 {
                        c.sum_ns as f64 / c.count as f64 / 1e6
                    } else {
                        0.0
                    },
                    failures: c.failures,
                }
            })
            .collect(),
    )
}

/// The episodes of many clients waiting at once, with their offsets from the end of the warmup.
fn stalls(out: &EngineOutput, clients: u32, latency: &engine::stats::Hist) -> Vec<Stall> {
    let median = latency.value_at_quantile(0.5);
    let threshold_ms = engine::stall::threshold_us(median) as f64 / 1000.0;
    let warmup_s = out.warmup.as_secs_f64();
    engine::stall::episodes(&out.slow, &out.pauses, clients, median)
        .into_iter()
        .map(|e| Stall {
            start_s: e.start_us as f64 / 1e6 - warmup_s,
            duration_s: e.dur_us as f64 / 1e6,
            clients_waiting: e.clients_waiting,
            clients_required: engine::stall::min_clients(clients),
            threshold_ms,
            client_paused_ms: e.client_paused_us as f64 / 1000.0,
            client_side: e.is_client_pause(),
        })
        .collect()
}

/// Turns engine measurements into the document's load section.
pub fn load_result(
    out: &EngineOutput,
    workload: &Workload,
    opts: &QueriesOptions,
    cpus: usize,
) -> LoadResult {
    let secs = out.measured.as_secs_f64();
    let mut all = engine::stats::TypeStats::new(3);
    for t in &out.totals {
        all.add(t);
    }
    let queries: Vec<QueryResult> = out
        .names
        .iter()
        .zip(&out.totals)
        .zip(&workload.types)
        .map(|((n, t), ty)| {
            let mut q = query_result(n, t, secs);
            q.commands = command_results(&ty.command_labels(), t);
            q
        })
        .collect();
    // CPU time covers the whole load, warmup included: divide by everything it paid for.
    let total_tx = out.transactions_attempted();
    let wall = out.wall.as_secs_f64();
    let cpu = out.cpu.0 + out.cpu.1;
    let cfg = &opts.engine;
    let interval_s = cfg.interval.as_secs_f64();
    let timeseries = out
        .intervals
        .iter()
        .map(|r| IntervalPoint {
            t_s: r.start_s,
            warmup: r.warmup,
            tps: r.ok.iter().sum::<u64>() as f64 / interval_s,
            errors: r.errors.iter().sum(),
            p50_ms: r.all_p50_us as f64 / 1000.0,
            p99_ms: r.all_p99_us as f64 / 1000.0,
            max_ms: r.all_max_us as f64 / 1000.0,
            lag_p99_ms: r.lag_p99_us as f64 / 1000.0,
            per_query: out
                .names
                .iter()
                .cloned()
                .zip(r.ok.iter().copied())
                .collect(),
        })
        .collect();
    LoadResult {
        config: LoadConfig {
            clients: cfg.clients,
            threads: cfg.threads,
            duration_s: cfg.duration.map(|d| d.as_secs_f64()),
            transactions_per_client: cfg.transactions_per_client,
            warmup_s: cfg.warmup.as_secs_f64(),
            interval_s,
            rate: cfg.rate,
            arrival: cfg.rate.map(|_| {
                match cfg.arrival {
                    Arrival::Uniform => "uniform",
                    Arrival::Poisson => "poisson",
                }
                .to_string()
            }),
            latency_from: if cfg.rate.is_some() {
                "intended_start"
            } else {
                "actual_start"
            }
            .into(),
            protocol: workload.protocol.as_str().into(),
            mix: workload
                .names()
                .into_iter()
                .zip(&workload.weights)
                .map(|(name, w)| MixEntry { name, weight: *w })
                .collect(),
            statement_timeout_ms: cfg.statement_timeout.as_millis() as u64,
            checkout_timeout_ms: cfg.checkout_timeout.as_millis() as u64,
            pinned: cfg.pin,
            seed: cfg.seed,
            histogram_sigfig: out.worker_sigfig,
            max_tries: cfg.max_tries,
            latency_limit_ms: cfg.latency_limit.map(|l| l.as_secs_f64() * 1000.0),
        },
        summary: query_result("all", &all, secs),
        queries,
        pool: PoolResult {
            checkout_wait: latency_summary(&out.pool_wait),
            connect: latency_summary(&out.connect),
            connections_opened: out.connections_opened,
            connect_failures: out.connect_failures,
        },
        schedule_lag: cfg.rate.map(|_| latency_summary(&out.lag)),
        timeseries,
        measured_s: secs,
        client: ClientCost {
            cpu_user_s: out.cpu.0.as_secs_f64(),
            cpu_system_s: out.cpu.1.as_secs_f64(),
            cpu_us_per_tx: if total_tx > 0 {
                cpu.as_secs_f64() * 1e6 / total_tx as f64
            } else {
                0.0
            },
            cpu_share_of_host: if wall > 0.0 {
                (cpu.as_secs_f64() / (wall * cpus.max(1) as f64)).min(1.0)
            } else {
                0.0
            },
            peak_rss_bytes: crate::proc_stats::peak_rss_bytes(),
            late_batches: out.late_batches,
            pauses: out.pauses.len() as u64,
            max_pause_ms: out.pauses.iter().map(|p| p.dur_us).max().unwrap_or(0) as f64 / 1000.0,
            clock: Some(out.clock.clone()),
            run_queue: out.run_queue.clone(),
        },
        server_check: None,
        stalls: stalls(out, cfg.clients, &all.latency),
        co_corrected: cfg.rate.is_none().then(|| {
            latency_summary(&crate::hist::co_corrected(
                &all.latency,
                all.latency.value_at_quantile(0.5),
            ))
        }),
        aborted: aborted_clients(workload),
        started_unix_s: Some(unix_s(out.started_at)),
        clients: ClientSpread::of(&out.client_tx),
    }
}

/// Seconds since the Unix epoch (0 for a clock set before it).
pub fn unix_s(t: std::time::SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The aborted clients of every script, grouped by SQLSTATE and message, most clients first.
fn aborted_clients(workload: &Workload) -> Vec<AbortedClients> {
    let mut groups: Vec<AbortedClients> = Vec::new();
    for a in workload.types.iter().flat_map(|t| t.script().aborts()) {
        match groups
            .iter_mut()
            .find(|g| g.sqlstate == a.sqlstate && g.message == a.message)
        {
            Some(g) => g.clients += 1,
            None => groups.push(AbortedClients {
                sqlstate: a.sqlstate,
                message: a.message,
                clients: 1,
            }),
        }
    }
    // Stable: equal counts keep the order in which they were first seen.
    groups.sort_by_key(|g| std::cmp::Reverse(g.clients));
    groups
}
