//! Query types, mixes and protocols: *what* a worker sends, never *how it is measured*.
//!
//! A [`Workload`] is a weighted set of [`QueryType`]s. Every query type is a pgbench script
//! ([`script`]): the built-in POS types ([`builtin`]) are scripts built in code, `-f`/`-b` scripts
//! are parsed, and the one script executor runs every type on the project's wire connections, on
//! both drivers and in the connection scenario. The engine prepares a type's statements once per
//! connection (protocol `prepared`).
//!
//! A library caller's own query type is a [`Script`] (`Script::parse` of its SQL and
//! meta-commands), or a type of its own that wraps one and hands it out from
//! [`QueryType::script`]: the drivers ask for the script on their load threads as they run it, so
//! a wrapper can observe the load there (the tests make a load thread panic that way). There is
//! no other way to run a query: a type cannot send queries of its own. [`Param`] and
//! [`render_simple`] give the advisor the built-in statements with representative values to
//! `EXPLAIN`.

pub mod builtin;
mod param;
pub mod script;

use std::fmt::Write as _;
use std::str::FromStr;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::error;
use crate::rng::Rng;
pub use param::Param;
use script::{ClientVars, Script};

/// The wire protocol used for queries (pgbench's `-M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Simple query protocol, parameters rendered as literals.
    Simple,
    /// Extended protocol with an unnamed statement parsed on every execution.
    Extended,
    /// Extended protocol with statements prepared once per connection.
    Prepared,
}

impl FromStr for Protocol {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "simple" => Ok(Protocol::Simple),
            "extended" => Ok(Protocol::Extended),
            "prepared" => Ok(Protocol::Prepared),
            other => Err(error::usage(format!(
                "unknown protocol '{other}' for -M; use simple, extended or prepared"
            ))),
        }
    }
}

impl Protocol {
    /// The name used on the command line and in results.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Simple => "simple",
            Protocol::Extended => "extended",
            Protocol::Prepared => "prepared",
        }
    }
}

/// Bounds of the seeded data, so random parameters hit existing rows.
#[derive(Debug, Clone, Copy)]
pub struct DataRange {
    /// Partner ids are 1..=partners.
    pub partners: i64,
    /// Order ids are 1..=orders.
    pub orders: i64,
    /// First order timestamp, microseconds since the Unix epoch.
    pub start_us: i64,
    /// End of the order window (exclusive), microseconds since the Unix epoch.
    pub end_us: i64,
}

/// Time and outcome of one command of a query type (pgbench `-r`), summed over executions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommandStat {
    /// Executions that completed.
    pub count: u64,
    /// Their summed latency, nanoseconds.
    pub sum_ns: u64,
    /// Executions that failed at this command.
    pub failures: u64,
}

/// Why an execution failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The query type itself failed (a script's expression error, a bad `\gset` result).
    #[error("{0}")]
    Script(String),
    /// The server or the connection reported an error.
    #[error(transparent)]
    Wire(#[from] crate::wire::WireError),
    /// The transaction completed but left a block open (a script without its COMMIT): it
    /// counts, and the client aborts, as in pgbench.
    #[error("{0}")]
    Unfinished(String),
}

impl ExecError {
    /// The SQLSTATE of a server error (`None` for an error of the script's own making) and the
    /// message without the driver's wrapping, as pgbench prints it.
    pub fn sqlstate_and_message(&self) -> (Option<String>, String) {
        match self {
            ExecError::Script(m) | ExecError::Unfinished(m) => (None, m.clone()),
            ExecError::Wire(w) => (
                w.sqlstate().map(str::to_string),
                match w {
                    crate::wire::WireError::Server { message, .. } => message.clone(),
                    other => other.to_string(),
                },
            ),
        }
    }
}

/// A worker's per-client state: each type's script variables for this client.
pub struct Scratch {
    /// Client state of each query type.
    pub states: Vec<ClientVars>,
}

/// Renders `sql` with `$n` placeholders replaced by literals into `buf` (cleared first).
pub fn render_simple(buf: &mut String, sql: &str, params: &[Param]) {
    buf.clear();
    let bytes = sql.as_bytes();
    let mut i = 0;
    let mut last = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() && bytes[i + 1].is_ascii_digit() {
            let mut j = i + 1;
            let mut n = 0usize;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                n = n * 10 + (bytes[j] - b'0') as usize;
                j += 1;
            }
            buf.push_str(&sql[last..i]);
            match params.get(n.wrapping_sub(1)) {
                Some(p) => p.write_literal(buf),
                None => {
                    let _ = write!(buf, "${n}");
                }
            }
            i = j;
            last = j;
        } else {
            i += 1;
        }
    }
    buf.push_str(&sql[last..]);
}

/// A kind of transaction a worker can run; one line in the results. Every query type is a
/// pgbench script: a [`Script`] itself, or a caller's type wrapping one (see the module doc).
pub trait QueryType: Send + Sync {
    /// The script the drivers run for this type, asked for on the load threads as they run it.
    fn script(&self) -> &Script;
    /// The name used in `--mix` and in results.
    fn name(&self) -> &str {
        self.script().name()
    }
    /// SQL of each statement, as it is prepared.
    fn statements(&self) -> Vec<String> {
        self.script().statements_sql().to_vec()
    }
    /// A fresh per-client state for worker `client_id`.
    fn client_state(&self, client_id: usize) -> ClientVars {
        self.script().client_vars(client_id)
    }
    /// Labels of the commands the per-command statistics (`-r`) count, in order.
    fn command_labels(&self) -> Vec<String> {
        self.script().compiled().labels.clone()
    }
}

/// A weighted set of query types.
pub struct Workload {
    /// The query types, in mix order.
    pub types: Vec<Box<dyn QueryType>>,
    /// Weight of each type.
    pub weights: Vec<u32>,
    cumulative: Vec<u64>,
    /// Protocol for every statement.
    pub protocol: Protocol,
    /// Time each command of the types that report commands (pgbench `-r`).
    pub per_command: bool,
}

impl Workload {
    /// Builds a workload from (type, weight) pairs; weights of 0 are dropped.
    pub fn new(entries: Vec<(Box<dyn QueryType>, u32)>, protocol: Protocol) -> Result<Workload> {
        let entries: Vec<_> = entries.into_iter().filter(|(_, w)| *w > 0).collect();
        if entries.is_empty() {
            return Err(error::usage(
                "the mix has no query type with a weight above 0",
            ));
        }
        let mut cumulative = Vec::with_capacity(entries.len());
        let mut acc = 0u64;
        let mut types = Vec::new();
        let mut weights = Vec::new();
        for (t, w) in entries {
            acc += w as u64;
            cumulative.push(acc);
            types.push(t);
            weights.push(w);
        }
        Ok(Workload {
            types,
            weights,
            cumulative,
            protocol,
            per_command: false,
        })
    }

    /// A worker's scratch space, with every type's client state for worker `client_id`.
    pub fn scratch(&self, client_id: usize) -> Scratch {
        Scratch {
            states: self
                .types
                .iter()
                .map(|t| t.client_state(client_id))
                .collect(),
        }
    }

    /// Picks a query type index by weight.
    #[inline]
    pub fn pick(&self, rng: &mut Rng) -> usize {
        if self.types.len() == 1 {
            return 0;
        }
        let total = *self.cumulative.last().expect("non-empty");
        let r = ((rng.next_u64() as u128 * total as u128) >> 64) as u64;
        self.cumulative.partition_point(|&c| c <= r)
    }

    /// Names of the query types, in index order.
    pub fn names(&self) -> Vec<String> {
        self.types.iter().map(|t| t.name().to_string()).collect()
    }
}

/// Parses `--mix name=weight,...` into (name, weight) pairs, checking names against `known`.
pub fn parse_mix(spec: &str, known: &[&str]) -> Result<Vec<(String, u32)>> {
    let mut out: Vec<(String, u32)> = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = match part.split_once('=') {
            Some((n, w)) => {
                let w: u32 = w.trim().parse().map_err(|_| {
                    error::usage(format!(
                        "--mix: weight '{w}' of '{n}' is not a whole number; write e.g. --mix point=10,join=1"
                    ))
                })?;
                (n.trim(), w)
            }
            None => (part, 1),
        };
        if !known.contains(&name) {
            return Err(error::usage(format!(
                "--mix: unknown query type '{name}'; known types: {}",
                known.join(", ")
            )));
        }
        if out.iter().any(|(n, _)| n == name) {
            return Err(error::usage(format!("--mix: '{name}' is named twice")));
        }
        out.push((name.to_string(), weight));
    }
    if out.iter().all(|(_, w)| *w == 0) {
        return Err(error::usage(
            "--mix: no query type has a weight above 0; write e.g. --mix point=1",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parsing_accepts_defaults_and_rejects_unknown_names() {
        let known = ["a", "b"];
        assert_eq!(
            parse_mix("a=3, b", &known).unwrap(),
            vec![("a".to_string(), 3), ("b".to_string(), 1)]
        );
        let err = parse_mix("a=1,zzz=2", &known).unwrap_err();
        assert_eq!(error::exit_kind(&err), error::ExitKind::Usage);
        assert!(err.to_string().contains("zzz"));
        assert!(parse_mix("a=x", &known).is_err());
        assert!(parse_mix("a=0", &known).is_err());
        assert!(parse_mix("a=1,a=2", &known).is_err());
    }

    #[test]
    fn simple_rendering_substitutes_literals() {
        let mut buf = String::new();
        render_simple(
            &mut buf,
            "SELECT $1, $2, $10x",
            &[Param::I64(-5), Param::F64(2.5)],
        );
        assert_eq!(buf, "SELECT -5, 2.5, $10x");
    }

    fn named(name: &str) -> Box<dyn QueryType> {
        let predefined = script::Predefined::default();
        Box::new(Script::parse(name, name, "SELECT 1;\n", predefined).unwrap())
    }

    #[test]
    fn pick_follows_weights() {
        let w = Workload::new(
            vec![(named("a"), 1), (named("b"), 0), (named("c"), 3)],
            Protocol::Prepared,
        )
        .unwrap();
        assert_eq!(w.names(), vec!["a", "c"]);
        let mut rng = Rng::new(3);
        let mut counts = [0u32; 2];
        for _ in 0..40_000 {
            counts[w.pick(&mut rng)] += 1;
        }
        let share = counts[1] as f64 / 40_000.0;
        assert!((share - 0.75).abs() < 0.02, "share {share}");
    }
}
