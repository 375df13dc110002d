//! The checks and isolation levels: names on the command line and in results, and which level
//! permits which anomaly (as PostgreSQL documents it: READ COMMITTED permits lost updates, read
//! skew and write skew; REPEATABLE READ, being snapshot isolation, permits write skew; SERIALIZABLE
//! permits none).

use std::str::FromStr;

use anyhow::Result;

/// One isolation check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    /// Transfers with in-place updates; audits read the total.
    Bank,
    /// Client-side read-modify-write of counters.
    LostUpdate,
    /// A cross-row rule (checking + savings >= 0) checked in the client.
    WriteSkew,
    /// A two-statement reader against transfers.
    ReadSkew,
    /// Rows locked in opposite orders.
    Deadlock,
}

impl Check {
    /// Every check, in run order.
    pub const ALL: [Check; 5] = [
        Check::Bank,
        Check::LostUpdate,
        Check::WriteSkew,
        Check::ReadSkew,
        Check::Deadlock,
    ];

    /// Name on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Check::Bank => "bank",
            Check::LostUpdate => "lost-update",
            Check::WriteSkew => "write-skew",
            Check::ReadSkew => "read-skew",
            Check::Deadlock => "deadlock",
        }
    }

    /// The anomaly the check looks for, in words.
    pub fn anomaly(self) -> &'static str {
        match self {
            Check::Bank => "broken balance total",
            Check::LostUpdate => "lost update",
            Check::WriteSkew => "write skew",
            Check::ReadSkew => "read skew",
            Check::Deadlock => "lost increment",
        }
    }

    /// Whether `level` permits the check's anomaly (PostgreSQL's documented behaviour).
    pub fn permitted(self, level: Level) -> bool {
        match self {
            Check::Bank | Check::Deadlock => false,
            Check::LostUpdate | Check::ReadSkew => level == Level::ReadCommitted,
            Check::WriteSkew => level != Level::Serializable,
        }
    }

    /// Why a level that permits the anomaly does, and what a DBA does about it.
    pub fn why_permitted(self) -> &'static str {
        match self {
            Check::LostUpdate => {
                "a read-modify-write can overwrite a concurrent commit; use an in-place UPDATE, \
                 SELECT ... FOR UPDATE, or REPEATABLE READ"
            }
            Check::WriteSkew => {
                "two transactions can each check a rule on rows the other one changes; only \
                 SERIALIZABLE (or SELECT ... FOR UPDATE on the rows checked) prevents it"
            }
            Check::ReadSkew => {
                "each statement gets a new snapshot, so a multi-statement read can mix data from \
                 before and after a commit; use REPEATABLE READ for consistent reads"
            }
            Check::Bank | Check::Deadlock => "no level permits it",
        }
    }
}

impl FromStr for Check {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Check> {
        let n = s.trim().to_ascii_lowercase().replace('_', "-");
        Check::ALL
            .into_iter()
            .find(|c| c.name() == n)
            .ok_or_else(|| {
                crate::error::usage(format!(
                    "--check '{s}' is not a check; use bank, lost-update, write-skew, read-skew or deadlock"
                ))
            })
    }
}

/// A transaction isolation level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    /// READ COMMITTED (PostgreSQL's default).
    ReadCommitted,
    /// REPEATABLE READ (snapshot isolation).
    RepeatableRead,
    /// SERIALIZABLE (serializable snapshot isolation).
    Serializable,
}

impl Level {
    /// Every level, weakest first.
    pub const ALL: [Level; 3] = [
        Level::ReadCommitted,
        Level::RepeatableRead,
        Level::Serializable,
    ];

    /// Name in results (`read committed`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Level::ReadCommitted => "read committed",
            Level::RepeatableRead => "repeatable read",
            Level::Serializable => "serializable",
        }
    }

    /// Name in prose (`READ COMMITTED`, ...).
    pub fn title(self) -> &'static str {
        match self {
            Level::ReadCommitted => "READ COMMITTED",
            Level::RepeatableRead => "REPEATABLE READ",
            Level::Serializable => "SERIALIZABLE",
        }
    }

    /// The statement that opens a transaction at this level.
    pub fn begin_sql(self) -> &'static str {
        match self {
            Level::ReadCommitted => "BEGIN ISOLATION LEVEL READ COMMITTED",
            Level::RepeatableRead => "BEGIN ISOLATION LEVEL REPEATABLE READ",
            Level::Serializable => "BEGIN ISOLATION LEVEL SERIALIZABLE",
        }
    }
}

impl FromStr for Level {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Level> {
        match s.trim().to_ascii_lowercase().replace(['-', '_'], " ").as_str() {
            "read committed" | "rc" => Ok(Level::ReadCommitted),
            "repeatable read" | "rr" => Ok(Level::RepeatableRead),
            "serializable" | "ser" => Ok(Level::Serializable),
            _ => Err(crate::error::usage(format!(
                "--level '{s}' is not an isolation level; use read-committed, repeatable-read or serializable"
            ))),
        }
    }
}

/// Parses a comma-separated list (`all` or empty = everything), keeping order, dropping repeats.
pub fn parse_list<T: FromStr<Err = anyhow::Error> + PartialEq + Copy>(
    s: &str,
    all: &[T],
) -> Result<Vec<T>> {
    if s.trim().is_empty() || s.trim().eq_ignore_ascii_case("all") {
        return Ok(all.to_vec());
    }
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let v: T = part.parse()?;
        if !out.contains(&v) {
            out.push(v);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_in_order_without_repeats_and_reject_unknown_names() {
        assert_eq!(parse_list("all", &Check::ALL).unwrap(), Check::ALL.to_vec());
        assert_eq!(
            parse_list::<Check>("deadlock, lost_update,deadlock", &Check::ALL).unwrap(),
            vec![Check::Deadlock, Check::LostUpdate]
        );
        assert_eq!(
            parse_list::<Level>("serializable,RR,read-committed", &Level::ALL).unwrap(),
            vec![
                Level::Serializable,
                Level::RepeatableRead,
                Level::ReadCommitted
            ]
        );
        for bad in ["phantom", "bank,nope"] {
            let e = parse_list::<Check>(bad, &Check::ALL).unwrap_err();
            assert_eq!(crate::error::exit_kind(&e), crate::error::ExitKind::Usage);
        }
        let e = parse_list::<Level>("snapshot", &Level::ALL).unwrap_err();
        assert!(e.to_string().contains("repeatable-read"), "{e}");
    }

    #[test]
    fn permitted_anomalies_follow_postgresql_documentation() {
        use Level::*;
        let permitted = |c: Check| {
            Level::ALL
                .into_iter()
                .filter(|l| c.permitted(*l))
                .collect::<Vec<_>>()
        };
        assert_eq!(permitted(Check::LostUpdate), vec![ReadCommitted]);
        assert_eq!(permitted(Check::ReadSkew), vec![ReadCommitted]);
        assert_eq!(
            permitted(Check::WriteSkew),
            vec![ReadCommitted, RepeatableRead]
        );
        assert!(permitted(Check::Bank).is_empty());
        assert!(permitted(Check::Deadlock).is_empty());
    }
}
