//! pgbench's `--verbose-errors`: a line on stderr for each failed try of a transaction that
//! pgbench retries or counts as failed (serialization and deadlock failures), saying which
//! client got which error where, then whether the transaction is tried again or given up.
//!
//! Other errors are not reported here: they abort the client (as in pgbench), and that is
//! printed at the end of the run with the client's message. Each line is written with one call
//! so the lines of concurrent clients do not interleave mid-line.

use crate::workload::ExecError;

/// Where a try failed: the client, its query type's name and index, and the script line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FailedAt<'a> {
    /// pgbench's client id.
    pub client: u32,
    /// Index of the query type (pgbench's script number).
    pub kind: usize,
    /// Its name.
    pub name: &'a str,
    /// The script line of the failed command (0: unknown, a built-in query type).
    pub line: usize,
}

/// The error line of a failed try, as pgbench's "client N got an error in command ...".
pub(crate) fn error_line(at: FailedAt<'_>, e: &ExecError) -> String {
    let (sqlstate, msg) = e.sqlstate_and_message();
    let state = sqlstate
        .map(|s| format!(" (SQLSTATE {s})"))
        .unwrap_or_default();
    let place = if at.line > 0 {
        format!(
            "command at line {} of script {} ({})",
            at.line, at.kind, at.name
        )
    } else {
        format!("script {} ({})", at.kind, at.name)
    };
    format!(
        "pgstorm: client {} got an error in {place}; {msg}{state}",
        at.client
    )
}

/// The decision line after a failed try, as pgbench's "client N repeats the transaction after
/// the error (try 1/10)" or "client N ends the failed transaction (try 10/10)";
/// `max_tries` 0 means no limit and is not printed.
pub(crate) fn decision_line(client: u32, retry: bool, tries: u32, max_tries: u32) -> String {
    let what = if retry {
        "repeats the transaction after the error"
    } else {
        "ends the failed transaction"
    };
    let limit = if max_tries > 0 {
        format!("/{max_tries}")
    } else {
        String::new()
    };
    format!("pgstorm: client {client} {what} (try {tries}{limit})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_like_pgbench() {
        let at = FailedAt {
            client: 3,
            kind: 0,
            name: "t.sql",
            line: 4,
        };
        let e = ExecError::Script("could not serialize access".into());
        assert_eq!(
            error_line(at, &e),
            "pgstorm: client 3 got an error in command at line 4 of script 0 (t.sql); could \
             not serialize access"
        );
        assert_eq!(
            decision_line(3, true, 1, 10),
            "pgstorm: client 3 repeats the transaction after the error (try 1/10)"
        );
        assert_eq!(
            decision_line(3, false, 7, 0),
            "pgstorm: client 3 ends the failed transaction (try 7)"
        );
    }
}
