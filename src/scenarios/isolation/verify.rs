//! The invariant checkers: from a committed history and the final table state to a [`Finding`],
//! and from findings to a verdict with its one-line explanation.
//!
//! Invariants: these functions read only their arguments (no database), so a fabricated history
//! tests them exactly as a measured one; an anomaly the level permits is never a violation, while
//! an integrity break (committed work missing or invented, totals drifting) is one at every level.

use super::{Check, Level};
use crate::report::isolation::Verdict;

/// One effect or observation of a committed transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// The transaction added `delta` to row `row` (a transfer is two of these).
    Add {
        /// Row id.
        row: usize,
        /// Signed amount.
        delta: i64,
    },
    /// The transaction read a total: of every row (`group` = None) or of one group of rows.
    Sum {
        /// The group read, or None for the whole table.
        group: Option<usize>,
        /// What it saw.
        total: i64,
    },
}

/// The table a check works on: `rows` rows of `initial`, in groups of `per_group` consecutive ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Number of rows (ids 0..rows).
    pub rows: usize,
    /// Rows per group (row `i` is in group `i / per_group`).
    pub per_group: usize,
    /// Starting value of every row.
    pub initial: i64,
}

impl Shape {
    /// Number of groups.
    pub fn groups(&self) -> usize {
        self.rows / self.per_group.max(1)
    }
}

/// What an invariant check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Anomalies of the check's own kind (permitted at some levels).
    pub anomalies: u64,
    /// Broken integrity invariants (forbidden at every level).
    pub integrity_breaks: u64,
    /// What was compared, in one line.
    pub detail: String,
}

/// Checks a committed history against the final state for `check`.
///
/// `final_values[i]` is row `i` after the phase; `records` are the effects and observations of
/// committed transactions only.
pub fn check(check: Check, shape: Shape, records: &[Record], final_values: &[i64]) -> Finding {
    let mut expected = vec![shape.initial; shape.rows];
    let mut adds = 0u64;
    for r in records {
        if let Record::Add { row, delta } = *r {
            if let Some(e) = expected.get_mut(row) {
                *e += delta;
                adds += 1;
            }
        }
    }
    let missing_rows = shape.rows.abs_diff(final_values.len()) as u64;
    let value = |i: usize| final_values.get(i).copied().unwrap_or(0);
    // Rows whose final value is below / above what the committed writes add up to.
    let (mut short_rows, mut short_by, mut over_rows) = (0u64, 0i64, 0u64);
    for (i, e) in expected.iter().enumerate() {
        let v = value(i);
        if v < *e {
            short_rows += 1;
            short_by += e - v;
        } else if v > *e {
            over_rows += 1;
        }
    }
    let group_sum = |g: usize| -> i64 {
        (g * shape.per_group..(g + 1) * shape.per_group)
            .map(value)
            .sum()
    };
    let group_total = shape.initial * shape.per_group as i64;
    let table_total = shape.initial * shape.rows as i64;
    let drifted_groups = (0..shape.groups())
        .filter(|g| group_sum(*g) != group_total)
        .count() as u64;
    let sums = records.iter().filter_map(|r| match *r {
        Record::Sum { group, total } => Some((group, total)),
        Record::Add { .. } => None,
    });
    match check {
        Check::Bank => {
            let audits = sums.clone().filter(|(g, _)| g.is_none()).count() as u64;
            let bad_audits = sums
                .filter(|(g, t)| g.is_none() && *t != table_total)
                .count() as u64;
            let final_total: i64 = (0..shape.rows).map(value).sum();
            let bad_final = u64::from(final_total != table_total);
            Finding {
                anomalies: 0,
                integrity_breaks: bad_audits + bad_final + short_rows + over_rows + missing_rows,
                detail: format!(
                    "{} accounts holding {table_total}: {bad_audits} of {audits} concurrent audits \
                     saw another total, final total {final_total}; {} of {} accounts differ from \
                     their start plus {adds} committed transfer legs",
                    shape.rows,
                    short_rows + over_rows,
                    shape.rows
                ),
            }
        }
        Check::LostUpdate => Finding {
            anomalies: short_by as u64,
            integrity_breaks: over_rows + missing_rows,
            detail: format!(
                "{adds} committed increments, counters hold {} ({short_by} lost{})",
                (0..shape.rows).map(value).sum::<i64>() - shape.initial * shape.rows as i64,
                if over_rows > 0 {
                    format!(", {over_rows} counters above their committed increments")
                } else {
                    String::new()
                }
            ),
        },
        Check::WriteSkew => {
            let overdrawn = (0..shape.groups()).filter(|g| group_sum(*g) < 0).count() as u64;
            let withdrawals = records
                .iter()
                .filter(|r| matches!(r, Record::Add { delta, .. } if *delta < 0))
                .count();
            Finding {
                anomalies: overdrawn,
                integrity_breaks: short_rows + over_rows + missing_rows,
                detail: format!(
                    "{overdrawn} of {} customers overdrawn (checking + savings < 0) after \
                     {withdrawals} committed withdrawals each checked against the balance; {} \
                     accounts differ from their committed history",
                    shape.groups(),
                    short_rows + over_rows
                ),
            }
        }
        Check::ReadSkew => {
            let reads = sums.clone().filter(|(g, _)| g.is_some()).count() as u64;
            let skewed = sums
                .filter(|(g, t)| g.is_some() && *t != group_total)
                .count() as u64;
            Finding {
                anomalies: skewed,
                integrity_breaks: drifted_groups + short_rows + over_rows + missing_rows,
                detail: format!(
                    "{skewed} of {reads} two-statement reads saw a pair total other than \
                     {group_total}; {drifted_groups} pairs drifted, {} rows differ from their \
                     committed transfers",
                    short_rows + over_rows
                ),
            }
        }
        Check::Deadlock => Finding {
            anomalies: 0,
            integrity_breaks: short_rows + over_rows + missing_rows,
            detail: format!(
                "{adds} committed increments, rows hold {} ({} rows differ from their committed \
                 increments)",
                (0..shape.rows).map(value).sum::<i64>() - shape.initial * shape.rows as i64,
                short_rows + over_rows
            ),
        },
    }
}

/// Conflict counts that explain an `ok` (how the server prevented the anomaly).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Conflicts {
    /// 40001 serialization failures (both phases).
    pub serialization: u64,
    /// 40P01 deadlocks (both phases).
    pub deadlocks: u64,
    /// pg_stat_database.deadlocks delta over the phases, when read.
    pub server_deadlocks: Option<i64>,
}

/// The verdict of one (check, level) from its phases' findings, with its one-line explanation.
pub fn verdict(
    check: Check,
    level: Level,
    load: Option<&Finding>,
    interleaving: Option<&Finding>,
    conflicts: Conflicts,
) -> (Verdict, String) {
    let phases = [("load", load), ("interleaving", interleaving)];
    let integrity: Vec<&str> = phases
        .iter()
        .filter(|(_, f)| f.is_some_and(|f| f.integrity_breaks > 0))
        .map(|(n, _)| *n)
        .collect();
    let anomalous: Vec<(&str, &Finding)> = phases
        .iter()
        .filter_map(|(n, f)| f.filter(|f| f.anomalies > 0).map(|f| (*n, f)))
        .collect();
    let lvl = level.title();
    if let Some(f) = phases
        .iter()
        .filter_map(|(_, f)| *f)
        .find(|f| f.integrity_breaks > 0)
    {
        return (
            Verdict::Violation,
            format!(
                "VIOLATION in the {} phase: {}; no isolation level allows committed work to \
                 vanish or totals to drift",
                integrity.join(" and "),
                f.detail
            ),
        );
    }
    let seen_in = anomalous
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(" and ");
    if let Some((_, f)) = anomalous.first() {
        if !check.permitted(level) {
            return (
                Verdict::Violation,
                format!(
                    "VIOLATION: {} at {lvl}, which forbids it ({seen_in} phase): {}",
                    check.anomaly(),
                    f.detail
                ),
            );
        }
        return (
            Verdict::AnomalyPermitted,
            format!(
                "{} produced and detected ({seen_in} phase: {}); {lvl} permits it: {}",
                check.anomaly(),
                f.detail,
                check.why_permitted()
            ),
        );
    }
    let detail = load
        .or(interleaving)
        .map(|f| f.detail.as_str())
        .unwrap_or("");
    let how = match (conflicts.serialization, conflicts.deadlocks) {
        (0, 0) => String::new(),
        (s, 0) => format!("; the server aborted {s} conflicting attempts with 40001"),
        (0, d) => format!("; the server broke {d} deadlocks with 40P01"),
        (s, d) => {
            format!("; the server aborted {s} conflicting attempts with 40001 and broke {d} deadlocks with 40P01")
        }
    };
    let explanation = match check {
        Check::Bank => format!("balances always added up ({detail}){how}"),
        Check::Deadlock => {
            let server = match conflicts.server_deadlocks {
                Some(n) => format!("; pg_stat_database counted {n}"),
                None => String::new(),
            };
            format!(
                "{} deadlocks forced, each detected (40P01) and rolled back, the victim retried up \
                 to --max-tries{server}; no increment lost ({detail})",
                conflicts.deadlocks
            )
        }
        _ if check.permitted(level) => format!(
            "no {} seen although {lvl} permits it ({detail}){how}",
            check.anomaly()
        ),
        _ => format!("no {} ({detail}): {lvl} prevents it{how}", check.anomaly()),
    };
    (Verdict::Ok, explanation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(row: usize, delta: i64) -> Record {
        Record::Add { row, delta }
    }

    fn total(total: i64) -> Record {
        Record::Sum { group: None, total }
    }

    fn pair(group: usize, total: i64) -> Record {
        Record::Sum {
            group: Some(group),
            total,
        }
    }

    /// Runs a fabricated history at a level that forbids the anomaly.
    fn judge(c: Check, shape: Shape, records: &[Record], finals: &[i64]) -> Verdict {
        let f = check(c, shape, records, finals);
        verdict(c, Level::Serializable, Some(&f), None, Conflicts::default()).0
    }

    #[test]
    fn bank_checker_sees_a_drifting_total_and_passes_a_clean_history() {
        let shape = Shape {
            rows: 2,
            per_group: 2,
            initial: 100,
        };
        let clean = [add(0, -10), add(1, 10), total(200)];
        assert_eq!(judge(Check::Bank, shape, &clean, &[90, 110]), Verdict::Ok);
        // An audit saw money in flight.
        let bad_audit = [add(0, -10), add(1, 10), total(190)];
        assert_eq!(
            judge(Check::Bank, shape, &bad_audit, &[90, 110]),
            Verdict::Violation
        );
        // A committed transfer leg vanished.
        assert_eq!(
            judge(Check::Bank, shape, &clean, &[100, 110]),
            Verdict::Violation
        );
    }

    #[test]
    fn lost_update_checker_counts_lost_increments() {
        let shape = Shape {
            rows: 1,
            per_group: 1,
            initial: 0,
        };
        let h = [add(0, 1), add(0, 1), add(0, 1)];
        assert_eq!(judge(Check::LostUpdate, shape, &h, &[3]), Verdict::Ok);
        let f = check(Check::LostUpdate, shape, &h, &[2]);
        assert_eq!((f.anomalies, f.integrity_breaks), (1, 0));
        assert_eq!(
            judge(Check::LostUpdate, shape, &h, &[2]),
            Verdict::Violation
        );
        let (v, why) = verdict(
            Check::LostUpdate,
            Level::ReadCommitted,
            Some(&f),
            None,
            Conflicts::default(),
        );
        assert_eq!(v, Verdict::AnomalyPermitted, "{why}");
        // More than was committed is never acceptable.
        let (v, _) = verdict(
            Check::LostUpdate,
            Level::ReadCommitted,
            Some(&check(Check::LostUpdate, shape, &h, &[4])),
            None,
            Conflicts::default(),
        );
        assert_eq!(v, Verdict::Violation);
    }

    #[test]
    fn write_skew_checker_sees_an_overdrawn_customer() {
        let shape = Shape {
            rows: 4,
            per_group: 2,
            initial: 50,
        };
        let clean = [add(0, -70)];
        assert_eq!(
            judge(Check::WriteSkew, shape, &clean, &[-20, 50, 50, 50]),
            Verdict::Ok
        );
        let skewed = [add(0, -70), add(1, -70)];
        assert_eq!(
            judge(Check::WriteSkew, shape, &skewed, &[-20, -20, 50, 50]),
            Verdict::Violation
        );
        let f = check(Check::WriteSkew, shape, &skewed, &[-20, -20, 50, 50]);
        let (v, _) = verdict(
            Check::WriteSkew,
            Level::RepeatableRead,
            Some(&f),
            None,
            Conflicts::default(),
        );
        assert_eq!(v, Verdict::AnomalyPermitted);
    }

    #[test]
    fn read_skew_checker_sees_a_torn_read() {
        let shape = Shape {
            rows: 2,
            per_group: 2,
            initial: 500,
        };
        let clean = [add(0, -100), add(1, 100), pair(0, 1000)];
        assert_eq!(
            judge(Check::ReadSkew, shape, &clean, &[400, 600]),
            Verdict::Ok
        );
        let torn = [add(0, -100), add(1, 100), pair(0, 1100)];
        assert_eq!(
            judge(Check::ReadSkew, shape, &torn, &[400, 600]),
            Verdict::Violation
        );
        let f = check(Check::ReadSkew, shape, &torn, &[400, 600]);
        let (v, why) = verdict(
            Check::ReadSkew,
            Level::ReadCommitted,
            None,
            Some(&f),
            Conflicts::default(),
        );
        assert_eq!(v, Verdict::AnomalyPermitted);
        assert!(why.contains("interleaving"), "{why}");
    }

    #[test]
    fn deadlock_checker_sees_a_lost_increment() {
        let shape = Shape {
            rows: 2,
            per_group: 1,
            initial: 0,
        };
        let h = [add(0, 1), add(1, 1), add(1, 1), add(0, 1)];
        assert_eq!(judge(Check::Deadlock, shape, &h, &[2, 2]), Verdict::Ok);
        assert_eq!(
            judge(Check::Deadlock, shape, &h, &[2, 1]),
            Verdict::Violation
        );
        // Integrity breaks fail even at the weakest level.
        let f = check(Check::Deadlock, shape, &h, &[2, 1]);
        let (v, why) = verdict(
            Check::Deadlock,
            Level::ReadCommitted,
            Some(&f),
            None,
            Conflicts::default(),
        );
        assert_eq!(v, Verdict::Violation);
        assert!(why.starts_with("VIOLATION"), "{why}");
    }
}
