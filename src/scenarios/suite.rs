//! `pgstorm run`: the whole suite with a profile, on one session, archived as one result folder.
//!
//! Profiles: `quick` (a smoke run of about a minute on whatever dataset is seeded, scale 1 when
//! none is) and `standard` (the full load on a dataset of [`STANDARD_SCALE`], larger than a
//! default shared_buffers: 100 clients for 5 minutes after a 30 s warmup; then the isolation checks with 20 workers x 50
//! transactions, the seed's sizes, in the query load's document; then the connection ramp to 500
//! held for 5 minutes). The connection scenario archives its own result folder (its label ends
//! in `-connections`). Scenarios added later plug in here, in order, on the same
//! session; the exit code is 1 when an evaluated success criterion fails. Each run of the query
//! load starts with the run hygiene (vacuum, checkpoint, `--pre-sql`) of `super::hygiene`.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Result;

use super::analyze::{self, AnalyzeOptions};
use super::connections::{self, ConnectionsOptions};
use super::hygiene::HygieneOptions;
use super::isolation::{self, IsolationOptions};
use super::queries::{self, ArchiveOptions, QueriesOptions};
use super::session::{Session, TargetOptions};
use crate::analysis::criteria::{self, Thresholds};
use crate::analysis::AdvisorOptions;

/// Dataset scale of the `standard` profile: about 470 MB of tables and indexes (see
/// `dataset::BYTES_PER_SCALE`), over three times PostgreSQL's default shared_buffers (128MB).
pub const STANDARD_SCALE: u32 = 1_000;

/// A named set of sizes for the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// About a minute.
    Quick,
    /// The full load.
    Standard,
}

impl FromStr for Profile {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Profile> {
        match s {
            "quick" => Ok(Profile::Quick),
            "standard" => Ok(Profile::Standard),
            other => Err(crate::error::usage(format!(
                "unknown profile '{other}'; use quick (about 1 minute) or standard (100 clients, 5 minutes)"
            ))),
        }
    }
}

impl Profile {
    /// Name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Quick => "quick",
            Profile::Standard => "standard",
        }
    }

    /// The dataset scale of this profile. `quick` takes whatever is seeded (scale 1 when
    /// nothing is), so a smoke run stays quick; `standard` seeds [`STANDARD_SCALE`], a dataset
    /// larger than a default shared_buffers, so a memory setting can show an effect.
    pub fn scale(self) -> Option<u32> {
        match self {
            Profile::Quick => None,
            Profile::Standard => Some(STANDARD_SCALE),
        }
    }

    /// Options of the query load for this profile.
    pub fn queries(
        self,
        target: TargetOptions,
        archive: ArchiveOptions,
        seed_if_missing: bool,
    ) -> QueriesOptions {
        let mut o = QueriesOptions {
            target,
            archive,
            seed_if_missing,
            scale: self.scale(),
            ..QueriesOptions::default()
        };
        let e = &mut o.engine;
        match self {
            Profile::Quick => {
                e.clients = 10;
                e.warmup = Duration::from_secs(5);
                e.duration = Some(Duration::from_secs(40));
                e.progress = Some(Duration::from_secs(5));
            }
            Profile::Standard => {
                e.clients = 100;
                e.warmup = Duration::from_secs(30);
                e.duration = Some(Duration::from_secs(300));
                e.progress = Some(Duration::from_secs(10));
            }
        }
        o
    }
}

impl Profile {
    /// Options of the isolation checks for this profile: every check at every level.
    pub fn isolation(self, target: TargetOptions, archive: ArchiveOptions) -> IsolationOptions {
        let (workers, transactions) = match self {
            Profile::Quick => (8, 20),
            Profile::Standard => (20, 50),
        };
        IsolationOptions {
            target,
            archive,
            workers,
            transactions: Some(transactions),
            print_summary: false,
            ..IsolationOptions::default()
        }
    }

    /// Options of the connection scenario for this profile: quick ramps to 50 connections and
    /// holds 5 s; standard is the full 10 → 500 ramp at 50 connects/s with 100 workers, held
    /// for 5 minutes.
    pub fn connections(self, target: TargetOptions, archive: ArchiveOptions) -> ConnectionsOptions {
        let mut o = ConnectionsOptions {
            target,
            archive,
            ..ConnectionsOptions::default()
        };
        let e = &mut o.engine;
        match self {
            Profile::Quick => {
                e.steps = vec![10, 50];
                e.step_hold = Duration::from_secs(2);
                e.hold = Duration::from_secs(5);
                e.connect_rate = Some(100.0);
                e.think = Duration::from_millis(5);
            }
            Profile::Standard => {
                e.steps = connections::ramp_steps(500);
                e.workers = Some(100);
                e.step_hold = Duration::from_secs(10);
                e.hold = Duration::from_secs(300);
                e.connect_rate = Some(50.0);
            }
        }
        let max = e.steps.iter().copied().max().unwrap_or(1);
        e.step_timeout = connections::step_timeout(max, e.connect_rate);
        o
    }
}

/// Options of `pgstorm run`.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// Sizes.
    pub profile: Profile,
    /// Where to connect.
    pub target: TargetOptions,
    /// Where to write.
    pub archive: ArchiveOptions,
    /// Seed when the dataset is missing.
    pub seed_if_missing: bool,
    /// Runs of the suite (`--repeat`): one result folder each, plus a set folder when above 1.
    pub repeat: u32,
    /// Hold the load until this moment (`--start-at`).
    pub start_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Overrides of the profile's load (`-c`, `-j`, `-T`, `--warmup`, `--mix`).
    pub overrides: LoadOverrides,
    /// Advisor scope.
    pub advisor: AdvisorOptions,
    /// Success-criteria thresholds.
    pub thresholds: Thresholds,
    /// Vacuum, checkpoint and resets before each run of the load, and the hooks around it.
    pub hygiene: HygieneOptions,
}

/// Changes to a profile's load given on the command line.
#[derive(Debug, Clone, Default)]
pub struct LoadOverrides {
    /// Clients.
    pub clients: Option<u32>,
    /// Threads of the multiplexed driver (`-j`) for the query load; `None`: the pool driver.
    pub threads: Option<u32>,
    /// Measured duration.
    pub duration: Option<Duration>,
    /// Warmup.
    pub warmup: Option<Duration>,
    /// Query mix.
    pub mix: Option<String>,
    /// The server host's node_exporter (`--server-metrics`).
    pub server_metrics: Option<crate::monitor::MetricsUrl>,
    /// Dataset scale (`-s`) instead of the profile's.
    pub scale: Option<u32>,
    /// `--progress-format ndjson`: progress lines as JSON objects.
    pub progress_ndjson: bool,
}

/// Runs the suite; returns the exit code (0 ok, 1 a criterion failed).
pub fn run(opts: &SuiteOptions) -> Result<i32> {
    crate::report::archive::probe(&opts.archive.results_dir)?;
    let mut session = Session::open(&opts.target)?;
    let mut q = opts.profile.queries(
        opts.target.clone(),
        opts.archive.clone(),
        opts.seed_if_missing,
    );
    q.print_summary = true;
    let o = &opts.overrides;
    if let Some(m) = &mut q.monitor {
        m.announce = true;
        m.server_metrics = o.server_metrics.clone();
    }
    if let Some(c) = o.clients {
        q.engine.clients = c;
    }
    if let Some(j) = o.threads {
        q.engine.threads = Some(j.min(q.engine.clients));
    }
    if let Some(d) = o.duration {
        q.engine.duration = Some(d);
    }
    if let Some(w) = o.warmup {
        q.engine.warmup = w;
    }
    if let Some(m) = &o.mix {
        q.mix = m.clone();
    }
    if o.scale.is_some() {
        q.scale = o.scale;
    }
    q.engine.progress_ndjson = o.progress_ndjson;
    q.start_at = opts.start_at;
    q.hygiene = opts.hygiene.clone();
    // The connection scenario runs first, once: it archives its own folder (pool time series,
    // ramp steps) and its section is embedded in the suite's document, where the connection
    // criteria read it.
    let mut archive = opts.archive.clone();
    archive.label = format!("{}-connections", opts.archive.label);
    let c = opts.profile.connections(opts.target.clone(), archive);
    let conn = connections::run_on(&mut session, &c)?;
    let conn_section = conn.doc.connections.clone();
    // The isolation checks and the connection section go with the first run of a set: their
    // verdicts are about the server's behaviour, not about run-to-run noise.
    let add_sections = |session: &mut Session, i: u32, m: &mut queries::Measured| {
        if i > 0 {
            return Ok(());
        }
        m.doc.connections = conn_section.clone();
        let iso = opts
            .profile
            .isolation(opts.target.clone(), opts.archive.clone());
        let (result, warnings) = isolation::measure(session, &iso)?;
        m.doc.warnings.extend(warnings);
        m.doc.isolation = Some(result);
        m.interrupted = session.stop.is_stopped();
        m.doc.interrupted = m.interrupted;
        if m.interrupted {
            m.doc.warnings.push(isolation::interrupted_warning());
        }
        m.doc.finished_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        Ok(())
    };
    let repeat = opts.repeat.max(1);
    let mut docs = Vec::new();
    let mut failed = Vec::new();
    for i in 0..repeat {
        if repeat > 1 {
            eprintln!("pgstorm: run {} of {repeat}", i + 1);
        }
        let mut a = AnalyzeOptions {
            queries: q.clone(),
            advisor: opts.advisor,
            criteria: Some(opts.thresholds.clone()),
        };
        // Only the first run waits for --start-at; the others follow it directly.
        if i > 0 {
            a.queries.start_at = None;
        }
        let outcome =
            analyze::run_with(&mut session, &a, "run", &mut |s, m| add_sections(s, i, m))?;
        let run = if repeat > 1 {
            format!("run {}: ", i + 1)
        } else {
            String::new()
        };
        failed.extend(
            outcome
                .doc
                .criteria
                .as_ref()
                .map(criteria::failures)
                .unwrap_or_default()
                .into_iter()
                .map(|f| format!("{run}{f}")),
        );
        docs.push(outcome.doc);
    }
    if repeat > 1 {
        let ids: Vec<String> = docs.iter().map(|d| d.run_id.clone()).collect();
        let refs: Vec<&crate::report::model::RunDocument> = docs.iter().collect();
        let drift = crate::compare::drift::of_set(&q.archive.label, &refs);
        let dir =
            crate::report::set::write(&q.archive.results_dir, &q.archive.label, &ids, &drift)?;
        println!("set of {repeat} runs: {}", dir.display());
    }
    for f in &failed {
        eprintln!("pgstorm: success criterion failed: {f}");
    }
    Ok(if failed.is_empty() {
        0
    } else {
        crate::error::ExitKind::CriteriaFailed.code()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_dataset_outgrows_a_default_shared_buffers_and_quick_seeds_nothing_big() {
        let default_shared_buffers = 128 * 1024 * 1024;
        let bytes = u64::from(Profile::Standard.scale().unwrap()) * crate::dataset::BYTES_PER_SCALE;
        assert!(bytes > 3 * default_shared_buffers, "{bytes}");
        assert_eq!(Profile::Quick.scale(), None);
    }

    #[test]
    fn standard_profile_runs_the_seeds_isolation_sizes_and_quick_a_smaller_one() {
        let archive = ArchiveOptions {
            results_dir: "results".into(),
            label: "t".into(),
            command: Vec::new(),
        };
        let std = Profile::Standard.isolation(TargetOptions::default(), archive.clone());
        assert_eq!((std.workers, std.transactions), (20, Some(50)));
        assert_eq!(std.checks.len(), 5);
        assert_eq!(std.levels.len(), 3);
        let quick = Profile::Quick.isolation(TargetOptions::default(), archive);
        assert!(u64::from(quick.workers) * quick.transactions.unwrap() < 20 * 50);
        isolation::validate(&quick).unwrap();
    }
}
