//! Scenarios: what a subcommand does, composed from target, dataset, workload, engine, monitor and
//! report. Each returns a result document (already archived) so `run` can chain them.

pub mod analyze;
pub mod connections;
pub mod hygiene;
pub mod isolation;
pub mod queries;
pub mod session;
pub mod study;
pub mod suite;
pub mod sweep;
