//! Error kinds shared by the whole tool and their mapping to process exit codes.
//!
//! Invariant: every error that reaches `main` is classified into exactly one [`ExitKind`], so the
//! exit code tells a script what went wrong without parsing text. Messages never contain a password.

use std::fmt;

/// Process exit codes, as documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// 1: the run completed but a success criterion failed.
    CriteriaFailed,
    /// 2: bad command line or bad input file.
    Usage,
    /// 2: clients of a pgbench script aborted at run time, as pgbench exits 2 then (the result
    /// is written, with the messages).
    ClientsAborted,
    /// 3: the target could not be reached, refused us, or cannot take the requested load.
    Target,
    /// 130: interrupted by Ctrl-C / SIGTERM (partial results are still written).
    Interrupted,
    /// 4: anything else (a bug or an environment problem such as a full disk).
    Internal,
}

impl ExitKind {
    /// The numeric exit code for this kind.
    pub fn code(self) -> i32 {
        match self {
            ExitKind::CriteriaFailed => 1,
            ExitKind::Usage | ExitKind::ClientsAborted => 2,
            ExitKind::Target => 3,
            ExitKind::Interrupted => 130,
            ExitKind::Internal => 4,
        }
    }
}

/// An error carrying its exit classification; wrap it in `anyhow::Error` at the edges.
#[derive(Debug)]
pub struct Classified {
    /// How the process should exit.
    pub kind: ExitKind,
    /// One line: what failed, with which input, and what to do next.
    pub message: String,
}

impl fmt::Display for Classified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Classified {}

/// A usage / input error (exit 2).
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Classified {
        kind: ExitKind::Usage,
        message: message.into(),
    })
}

/// A target error (exit 3).
pub fn target(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Classified {
        kind: ExitKind::Target,
        message: message.into(),
    })
}

/// The exit kind of an error chain: the first [`Classified`] found, else `Internal`.
pub fn exit_kind(err: &anyhow::Error) -> ExitKind {
    err.chain()
        .find_map(|e| {
            e.downcast_ref::<Classified>().map(|c| c.kind).or_else(|| {
                e.downcast_ref::<crate::dataset::DatasetError>()
                    .map(|d| d.exit_kind())
            })
        })
        .unwrap_or(ExitKind::Internal)
}
