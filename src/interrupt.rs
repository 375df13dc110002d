//! Ctrl-C / SIGTERM handling for the app layer: the handler stops the app's [`StopToken`], which
//! the app hands to the scenarios and through them to the engine. Nothing below the app layer
//! reads this module's state; library callers and tests make their own tokens.
//!
//! Invariant: the handler only stops the token. Everything that must happen on interruption
//! (stop the workers, write the partial result, stop the sandbox) happens on the normal return
//! path, so an interrupted run still leaves a complete result folder and no server behind.

use std::sync::OnceLock;

use crate::stop::StopToken;

/// The token the handler stops (one handler per process: `ctrlc` allows no second one).
static TOKEN: OnceLock<StopToken> = OnceLock::new();

/// Installs the handler (idempotent) and returns the token it stops.
pub fn install() -> StopToken {
    TOKEN
        .get_or_init(|| {
            let token = StopToken::new();
            let handled = token.clone();
            let _ = ctrlc::set_handler(move || {
                if handled.is_stopped() {
                    // A second Ctrl-C means "now": leave without cleaning up.
                    std::process::exit(130);
                }
                handled.stop();
                eprintln!("pgstorm: interrupted; stopping workers and writing what was measured (Ctrl-C again to abort)");
            });
            token
        })
        .clone()
}

/// The error returned by a step that gave up because of an interruption (exit 130).
pub fn error() -> anyhow::Error {
    anyhow::Error::new(crate::error::Classified {
        kind: crate::error::ExitKind::Interrupted,
        message: "interrupted".into(),
    })
}
