//! What the load machine and the server were doing: host facts now; samplers over time later.

pub mod host;
