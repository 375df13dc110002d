//! `pgstorm analyze` (and the last step of `pgstorm run`): a query load bracketed by the advisor's
//! statistics snapshots, then the findings (and, for `run`, the success criteria) written into the
//! same result folder.
//!
//! Invariants: the "before" snapshot is taken after the dataset exists (seeding is not load); the
//! "after" snapshot waits for the load's connections to exit so their statistics are flushed; a
//! failing advisor never loses the measured load: it becomes a warning in the result.

use anyhow::Result;

use super::queries::{self, Outcome, QueriesOptions};
use super::session::Session;
use crate::analysis::{self, criteria, AdvisorOptions};
use crate::report::model::{Warning, WarningCode};

/// Options of the analyze step.
#[derive(Debug, Clone)]
pub struct AnalyzeOptions {
    /// The load to analyze.
    pub queries: QueriesOptions,
    /// Advisor scope.
    pub advisor: AdvisorOptions,
    /// Success criteria to evaluate (`None`: no verdict, as for `pgstorm analyze`).
    pub criteria: Option<criteria::Thresholds>,
}

/// Runs a new session's load with the advisor around it.
pub fn run(opts: &AnalyzeOptions) -> Result<Outcome> {
    crate::report::archive::probe(&opts.queries.archive.results_dir)?;
    let mut session = Session::open(&opts.queries.target)?;
    run_on(&mut session, opts, "analyze")
}

/// Runs the load on `session` with the advisor around it, archives one result folder whose
/// scenario is `scenario`.
pub fn run_on(session: &mut Session, opts: &AnalyzeOptions, scenario: &str) -> Result<Outcome> {
    run_with(session, opts, scenario, &mut |_, _| Ok(()))
}

/// [`run_on`] with `extra` run after the advisor's "after" snapshot and before the criteria, so a
/// scenario embedded in the same result (isolation) neither counts as load nor escapes the
/// criteria.
pub fn run_with(
    session: &mut Session,
    opts: &AnalyzeOptions,
    scenario: &str,
    extra: &mut dyn FnMut(&mut Session, &mut queries::Measured) -> Result<()>,
) -> Result<Outcome> {
    let mut say = |m: &str| eprintln!("pgstorm: {m}");
    crate::dataset::ensure_scale(
        &mut session.admin,
        opts.queries.wanted(session.target.is_local()),
        &mut say,
    )?;
    // The snapshot follows the run's vacuum and checkpoint, so their reads are not load.
    let mut before = None;
    let mut m = queries::measure_with(session, &opts.queries, &mut |session| {
        before = Some(
            analysis::begin(&mut session.admin, opts.advisor).map_err(|e| {
                crate::error::target(format!(
                    "cannot read the statistics views of {}: {}; the advisor needs pg_stat_* \
                     read access (e.g. GRANT pg_read_all_stats TO <role>)",
                    session.target.display,
                    crate::target::one_line(&e)
                ))
            })?,
        );
        Ok(())
    })?;
    let before =
        before.ok_or_else(|| anyhow::anyhow!("the load ran without the advisor's snapshot"))?;
    m.doc.scenario = scenario.to_string();
    if m.complete() {
        eprintln!("pgstorm: analyzing statistics and plans of the workload");
        match analysis::finish(&mut session.admin, before, &m.doc) {
            Ok(a) => m.doc.analysis = Some(a),
            Err(e) => m.doc.warnings.push(Warning {
                code: WarningCode::AnalysisFailed,
                message: format!(
                    "the advisor could not read the statistics after the load: {}; the load's \
                     figures are unaffected",
                    crate::target::one_line(&e)
                ),
            }),
        }
    }
    if m.complete() {
        extra(session, &mut m)?;
    }
    if let Some(t) = &opts.criteria {
        m.doc.criteria = Some(criteria::evaluate(&m.doc, t));
    }
    queries::finish(session, m, &opts.queries)
}
