//! The codes of the result document's warnings, one enum variant each, with the explanation a
//! reader needs next to it: what the warning means for the figures, whatever the numbers of the
//! run (those are in the warning's message).
//!
//! Invariants: a code's string form (`as_str`, the `code` field of run.json) never changes once
//! released, since archived results and dashboards match on it; the explanation is the variant's
//! doc comment, so the code, its documentation, the JSON Schema and the report never disagree. A
//! document from another pgstorm version may carry a code this one does not know: it reads as
//! [`WarningCode::Unknown`] instead of failing the whole document.

use std::borrow::Cow;
use std::fmt;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares the enum from `Variant = "code"` lines, each under its explanation (doc comment).
macro_rules! warning_codes {
    ($($(#[doc = $doc:literal])+ $variant:ident = $code:literal,)+) => {
        /// Why a measurement (or part of it) should be doubted: the `code` of a warning.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum WarningCode {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl WarningCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [WarningCode] = &[$(WarningCode::$variant,)+];

            /// The code as written in run.json.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(WarningCode::$variant => $code,)+
                }
            }

            /// What the warning means, in a sentence or two (the variant's doc comment).
            pub fn explanation(self) -> &'static str {
                match self {
                    $(WarningCode::$variant => concat!($($doc),+).trim_start(),)+
                }
            }
        }
    };
}

warning_codes! {
    /// The server stalled while every client waited on it; in closed loop the requests that
    /// would have queued behind the stall were never sent, so the percentiles understate latency
    /// (coordinated omission).
    ClosedLoopStall = "closed_loop_stall",
    /// pgstorm itself was paused (no CPU for it): every client's latency includes a wait the
    /// server did not cause.
    ClientPaused = "client_paused",
    /// pgstorm's load threads spent a large share of their time runnable but without a CPU (the
    /// load machine's run queue, as its kernel counts it): a transaction waited that long for the
    /// load machine whenever its thread did, so latencies and the pool's checkout wait include
    /// it. The CPU went to pgstorm's other threads or to other processes (a local server's
    /// backends among them).
    ClientRunQueue = "client_run_queue",
    /// In open loop, transactions started later than scheduled: the server or the client could
    /// not sustain the rate, and latencies include that queueing.
    ScheduleLag = "schedule_lag",
    /// pgstorm used most of the load machine's CPU: the client may be the bottleneck, and
    /// latencies include time waiting for it.
    ClientCpuSaturated = "client_cpu_saturated",
    /// The connection scenario's client used most of the host's CPU: connect and checkout times
    /// include time waiting for the client.
    ClientSaturated = "client_saturated",
    /// The load machine's CPU was saturated: latencies include waiting for a CPU.
    HostCpuSaturated = "host_cpu_saturated",
    /// Host memory was nearly all in use: the page cache was squeezed, so reads and latencies
    /// may not be typical.
    MemoryHigh = "memory_high",
    /// The host swapped during the load: any latency may include page faults.
    SwapInUse = "swap_in_use",
    /// Some transactions failed: their latency is not in the percentiles.
    FailedTransactions = "failed_transactions",
    /// The server counted a different number of transactions than pgstorm did: another client was
    /// active on the database, or the statistics were stale, so server-side figures are not
    /// pgstorm's load alone.
    ServerCountMismatch = "server_count_mismatch",
    /// Worker batches reached the collector after their interval closed: totals are exact, but
    /// those intervals' percentiles miss them.
    LateBatches = "late_batches",
    /// Histograms were kept with fewer significant digits to bound memory: percentiles are
    /// exact to about 1%.
    HistogramPrecision = "histogram_precision",
    /// The kernel clocksource is not tsc: reading the clock costs more and very short latencies
    /// are less precise.
    Clocksource = "clocksource",
    /// The TSC clock the load threads timed transactions with drifted from the monotonic clock
    /// beyond the limit over the run: every latency is off by that ratio (a wrong calibration,
    /// or a TSC that changed rate or jumped).
    ClockDrift = "clock_drift",
    /// The run was interrupted: the figures cover only the part that ran.
    Interrupted = "interrupted",
    /// The data the load touched fits in shared_buffers: every read is a buffer hit, so memory
    /// settings cannot show an effect on this dataset.
    DatasetFitsInSharedBuffers = "dataset_fits_in_shared_buffers",
    /// A resource sampler failed or saw only part of what it samples: the monitoring section is
    /// incomplete.
    MonitorIncomplete = "monitor_incomplete",
    /// Resource samples were dropped to keep the history bounded: summaries cover the newest
    /// samples only.
    HistoryTruncated = "history_truncated",
    /// A ramp step never reached its connection count: its figures describe a smaller pool.
    StepNotReached = "step_not_reached",
    /// The server dropped connections and had not recovered when the run ended: later figures
    /// measure an outage, not a load.
    NotRecovered = "not_recovered",
    /// Clients aborted as pgbench aborts them (an error the retry policy does not cover): the
    /// load ran with fewer clients than asked.
    ClientsAborted = "clients_aborted",
    /// The clients did not carry the same load: a few ended far more transactions than the
    /// others, or some far fewer, so the figures describe fewer, busier clients than asked (a
    /// client that waited on a lock or for a connection, lost its connection, or was served
    /// behind the others).
    UnevenClients = "uneven_clients",
    /// The target became unreachable and stayed so: the run ended there, and its rates cover
    /// only the time measured before.
    TargetLost = "target_lost",
    /// A load thread panicked: the run ended there and its figures are not to be trusted (a bug
    /// to report).
    LoadThreadPanicked = "load_thread_panicked",
    /// The isolation check classified a different number of deadlocks than the server counted:
    /// another session may have deadlocked in the same database meanwhile.
    DeadlockCountMismatch = "deadlock_count_mismatch",
    /// A positive control did not produce the anomaly it is built to produce: the checker's
    /// "no anomaly" verdicts at that level are unproven.
    PositiveControlMissed = "positive_control_missed",
    /// The advisor could not read the statistics after the load: there are no findings; the
    /// load's figures are unaffected.
    AnalysisFailed = "analysis_failed",
    /// A hygiene step before the run failed: this run may not start from the same state as the
    /// others of its set.
    HygieneStepFailed = "hygiene_step_failed",
    /// The --post-sql file failed after the run: the results are kept, but what it should have
    /// done was not (fully) done.
    PostSqlFailed = "post_sql_failed",
    /// The sweep stopped at a level that failed: the levels before it are kept, the rest are
    /// missing.
    SweepStopped = "sweep_stopped",
    /// The sweep's search for the highest sustainable rate stopped early: its result is a bound,
    /// not the limit.
    RateSearchStopped = "rate_search_stopped",
    /// The sweep's chart could not be drawn: the figures are in run.json and the CSVs.
    ChartFailed = "chart_failed",
    /// The USL model fits the measured levels poorly: its limit is rough.
    UslPoorFit = "usl_poor_fit",
    /// Throughput grew faster than linearly with clients: the low levels were held back, and the
    /// USL cannot follow that, so its parameters sit at their bounds.
    SuperlinearScaling = "superlinear_scaling",
    /// The USL's limit lies beyond the largest measured level: it is an extrapolation to confirm.
    UslExtrapolated = "usl_extrapolated",
    /// The merged runs started more than an interval apart: their loads did not fully overlap,
    /// so the sum is not one simultaneous load.
    MergeNotSimultaneous = "merge_not_simultaneous",
    /// The merged runs measured different servers (or databases): their sum describes no single
    /// server.
    MergeDifferentTargets = "merge_different_targets",
    /// The merge's per-interval schedule lag is the highest machine's, an upper bound; the total
    /// schedule lag is exact.
    MergeIntervalLag = "merge_interval_lag",
    /// A merged run had no latency.hlog: the merge's per-interval percentiles are the highest
    /// machine's, an upper bound; the totals' percentiles are exact.
    MergeIntervalPercentiles = "merge_interval_percentiles",
    /// A code this version of pgstorm does not know (written by another version); its message
    /// still says what was seen.
    Unknown = "unknown",
}

impl WarningCode {
    /// The code for `s`, [`WarningCode::Unknown`] for one this version does not know.
    pub fn parse(s: &str) -> WarningCode {
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .unwrap_or(WarningCode::Unknown)
    }
}

impl fmt::Display for WarningCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for WarningCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for WarningCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl Serialize for WarningCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for WarningCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Cow::<str>::deserialize(d)?;
        Ok(WarningCode::parse(&s))
    }
}

/// A string, one of the codes, each documented with its explanation.
impl JsonSchema for WarningCode {
    fn schema_name() -> Cow<'static, str> {
        "WarningCode".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let codes: Vec<serde_json::Value> = Self::ALL
            .iter()
            .map(|c| serde_json::json!({"const": c.as_str(), "description": c.explanation()}))
            .collect();
        json_schema!({
            "description": "Stable identifier of the warning; see each value's description.",
            "type": "string",
            "oneOf": codes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_explained() {
        let mut seen = std::collections::BTreeSet::new();
        for c in WarningCode::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'),
                "{s}"
            );
            let e = c.explanation();
            assert!(
                e.len() > 20 && !e.starts_with(' ') && e.ends_with('.'),
                "{s}: {e:?}"
            );
            assert!(!e.contains("  "), "{s}: doc lines joined badly: {e:?}");
        }
    }

    #[test]
    fn the_string_form_round_trips_and_an_unknown_code_still_reads() {
        for c in WarningCode::ALL {
            let json = serde_json::to_string(c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(serde_json::from_str::<WarningCode>(&json).unwrap(), *c);
        }
        let later: WarningCode = serde_json::from_str("\"a_code_from_a_later_version\"").unwrap();
        assert_eq!(later, WarningCode::Unknown);
        assert_eq!(WarningCode::ClosedLoopStall, "closed_loop_stall");
    }

    #[test]
    fn an_archived_runs_warnings_read_back_and_the_page_explains_them() {
        let text = include_str!("../../results/20261126T213200Z-sweep/run.json");
        let doc: crate::report::model::RunDocument = serde_json::from_str(text).unwrap();
        assert!(!doc.warnings.is_empty(), "the archived sweep has warnings");
        let page = crate::report::html::run_page(&doc);
        for w in &doc.warnings {
            assert_ne!(w.code, WarningCode::Unknown, "{}", w.message);
            let explained = crate::report::html::esc(w.code.explanation());
            assert!(page.contains(&explained), "{} not explained", w.code);
        }
    }
}
