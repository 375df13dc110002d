//! Shared fixtures for the integration tests: one sandbox cluster per test binary.
//!
//! The shared sandbox lives in a `static` and is never dropped; its guard process stops and
//! removes it when the test binary exits (see `pgstorm::sandbox`).

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use pgstorm::sandbox::{Sandbox, SandboxOptions};
use std::sync::OnceLock;

/// The test binary's shared sandbox (non-durable), started on first use.
pub fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        fresh_sandbox(&SandboxOptions {
            durable: false,
            ..SandboxOptions::default()
        })
    })
}

/// A new connection to the shared sandbox's database `pgstorm`.
pub fn client() -> postgres::Client {
    let sandbox = sandbox();
    sandbox
        .pg_config()
        .connect(postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect to the test sandbox at {}: {e}", sandbox.dsn()))
}

/// A sandbox of the caller's own, for tests that restart, stop or break their server.
pub fn fresh_sandbox(opts: &SandboxOptions) -> Sandbox {
    Sandbox::start(opts).unwrap_or_else(|e| panic!("start a test sandbox: {e}"))
}
