//! pgstorm: a PostgreSQL load tool built as a library so that the binary, the integration tests and
//! the benchmarks all drive the same code.
//!
//! Dependencies point one way: `cli`/`main` → `scenarios`, `analysis`, `report` → `engine`,
//! `monitor`, `workload`, `dataset`, `target` → `hist` and `clock` (the load threads' clock). The
//! engine knows nothing of scenarios or reports, and report/analysis/compare read histograms
//! through `hist`, never through the engine.

pub mod analysis;
pub mod app;
pub mod args;
pub mod cli;
pub mod clock;
pub mod compare;
pub mod connector;
pub mod dataset;
pub mod engine;
pub mod error;
pub mod hist;
pub mod interrupt;
pub mod monitor;
pub mod output;
pub mod proc_stats;
pub mod report;
pub mod results_app;
pub mod rng;
pub mod sandbox;
pub mod scenarios;
pub mod server_snapshot;
pub mod stop;
pub mod target;
pub mod wire;
pub mod workload;
