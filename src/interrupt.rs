//! Ctrl-C / SIGTERM handling: a process-wide flag that long-running loops poll.
//!
//! Invariant: the handler only sets a flag. Everything that must happen on interruption (stop the
//! workers, write the partial result, stop the sandbox) happens on the normal return path, so an
//! interrupted run still leaves a complete result folder and no server behind.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

static REQUESTED: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();

/// Installs the handler (idempotent).
pub fn install() {
    INSTALL.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if REQUESTED.swap(true, Ordering::SeqCst) {
                // A second Ctrl-C means "now": leave without cleaning up.
                std::process::exit(130);
            }
            eprintln!("pgstorm: interrupted; stopping workers and writing what was measured (Ctrl-C again to abort)");
        });
    });
}

/// Whether an interruption was requested.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// The error returned by a step that gave up because of an interruption (exit 130).
pub fn error() -> anyhow::Error {
    anyhow::Error::new(crate::error::Classified {
        kind: crate::error::ExitKind::Interrupted,
        message: "interrupted".into(),
    })
}
