//! pgbench-compatible scripts as query types: `-f file.sql[@weight]` and `-b name[@weight]`.
//!
//! A script is parsed once ([`parse`]) into steps with variables resolved to slots; each client
//! (worker) keeps its own variable slots between transactions, as pgbench does. One executor
//! runs every script on the project's wire connections ([`resume`]; [`blocking`] drives it for a
//! thread that owns its connection): SQL commands are prepared once per connection (protocol
//! `prepared`), bound with text-format parameters of unspecified type exactly like pgbench's
//! `PQexecPrepared` (so any column type works), and expressions evaluate on the stack. With `-M
//! simple` the variables are substituted as text; with `-M extended` every command is sent
//! unprepared with its parameters in one round trip (`PQexecParams`).
//!
//! A failed SQL command inside an explicit transaction is followed by a ROLLBACK, so the
//! connection is clean for the next transaction (and for a retry, see the engine's `max_tries`).
//!
//! Failures follow pgbench 15: the engine retries or counts a serialization or deadlock failure,
//! and any other error (a server error, an expression error, `\gset` with the wrong row count, a
//! transaction block left open at the end of the script) aborts the client; [`Script::abort`]
//! keeps each aborted client's message, with its SQLSTATE, for the report. `\gset` stores the last
//! result of a compound command (`\;`), which must have exactly one row; `\aset` stores the last
//! row of every non-empty result. Pipeline mode runs on both drivers.
//!
//! Each client's script functions draw from its own pgbench generator ([`prng`]), seeded as
//! pgbench seeds its clients, not from the engine's generator: the same seed gives pgbench's
//! values, and a retry draws the same values again.

pub mod blocking;
pub mod builtin;
pub mod expr;
pub mod parse;
pub mod prng;
pub mod resume;
pub mod vars;

use parking_lot::Mutex;
use std::time::Duration;

use super::{ExecError, QueryType};
use expr::{Env, Val};
use parse::{Command, Compiled, SleepArg, Step};
use vars::Slot;

/// Values of pgbench's predefined variables, shared by every client.
#[derive(Debug, Clone, Default)]
pub struct Predefined {
    /// `:scale`.
    pub scale: i64,
    /// The run's seed (pgbench's `--random-seed`, also `:random_seed`): it seeds each client's
    /// generator and `:default_seed` as pgbench does.
    pub seed: u64,
    /// Number of clients of the run: pgbench draws `:default_seed` after the clients' seeds.
    pub clients: usize,
    /// `-D name=value` definitions.
    pub defines: Vec<(String, String)>,
}

/// Where a script comes from, as given on the command line (`-f file[@w]`, `-b name[@w]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptSource {
    /// Query type name: the file's name or the built-in's name.
    pub name: String,
    /// For messages: the path as given, or the built-in's name.
    pub source_name: String,
    /// The script text.
    pub text: String,
    /// Weight in the mix.
    pub weight: u32,
    /// Whether it is one of pgbench's built-in scripts.
    pub builtin: bool,
}

fn split_weight(flag: &str, spec: &str) -> Result<(String, u32), String> {
    match spec.rsplit_once('@') {
        Some((name, w)) => match w.trim().parse::<u32>() {
            Ok(w) => Ok((name.to_string(), w)),
            Err(_) => Err(format!(
                "{flag} {spec}: weight '{w}' is not a whole number; write e.g. {flag} {name}@5"
            )),
        },
        None => Ok((spec.to_string(), 1)),
    }
}

impl ScriptSource {
    /// Reads `-f path[@weight]`.
    pub fn file(spec: &str) -> Result<ScriptSource, String> {
        let (path, weight) = split_weight("-f", spec)?;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("-f {path}: cannot read the script: {e}"))?;
        let name = std::path::Path::new(&path)
            .file_name()
            .map_or_else(|| path.clone(), |n| n.to_string_lossy().into_owned());
        Ok(ScriptSource {
            name,
            source_name: path,
            text,
            weight,
            builtin: false,
        })
    }

    /// Resolves `-b name[@weight]` (a unique prefix of a built-in name is enough).
    pub fn builtin(spec: &str) -> Result<ScriptSource, String> {
        let (name, weight) = split_weight("-b", spec)?;
        let (full, text) = builtin::lookup(&name).ok_or_else(|| {
            format!(
                "-b {name}: no such built-in script; use one of {}",
                builtin::NAMES.join(", ")
            )
        })?;
        Ok(ScriptSource {
            name: full.to_string(),
            source_name: full.to_string(),
            text: text.to_string(),
            weight,
            builtin: true,
        })
    }
}

/// A parsed script, ready to run as a query type.
pub struct Script {
    name: String,
    compiled: Compiled,
    /// For each SQL command with `\gset`: (column name, slot) of the variables it may set.
    gset_targets: Vec<Vec<(String, usize)>>,
    predefined: Predefined,
    aborts: Mutex<Vec<Abort>>,
    /// Whether an error pgbench aborts a client on ends the client (see [`Script::aborts_clients`]).
    aborts_clients: bool,
}

/// Per-client state: the variables, the line of the command that failed last (for the abort
/// message), and the client's pgbench random generator with what a retry needs to draw the same
/// values again.
pub struct ClientVars {
    slots: Vec<Slot>,
    failed_line: usize,
    rng: prng::PgPrng,
    retry: RetryMark,
}

/// How a script tells a retry from a new transaction without the engine's help: the engine
/// restores its own generator before a retry (both drivers do), so a transaction that starts
/// with the engine generator exactly as the previous one started is a retry, and the script
/// restores its generator too, as pgbench does. Each start draws once from the engine
/// generator so that two new transactions never look alike.
#[derive(Default)]
struct RetryMark {
    engine_at_start: Option<crate::rng::Rng>,
    script_at_start: Option<prng::PgPrng>,
}

impl ClientVars {
    /// Line of the command at which this client's last transaction failed.
    pub fn failed_line(&self) -> usize {
        self.failed_line
    }

    /// Called as a transaction starts, with the engine's generator for this client.
    fn start_transaction(&mut self, engine: &mut crate::rng::Rng) {
        let m = &mut self.retry;
        match (&m.engine_at_start, &m.script_at_start) {
            (Some(e), Some(saved)) if e == engine => self.rng = saved.clone(),
            _ => m.script_at_start = Some(self.rng.clone()),
        }
        m.engine_at_start = Some(engine.clone());
        engine.next_u64();
    }
}

/// A client that stopped for good, as pgbench aborts a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Abort {
    /// The client (pgbench's client id).
    pub client: u32,
    /// SQLSTATE of the server error, `None` for an error of the script's own making.
    pub sqlstate: Option<String>,
    /// `script:line: message`.
    pub message: String,
}

/// pgbench's message for a script that ends inside a transaction block.
pub const UNFINISHED: &str = "end of script reached without completing the last transaction";
/// pgbench's message for pipeline mode under `-M simple`.
pub const PIPELINE_SIMPLE: &str = "cannot use pipeline mode with the simple query protocol";
/// pgbench's message for a script that ends inside a pipeline.
pub const PIPELINE_OPEN: &str = "end of script reached with pipeline open";

/// A script that could not be read or parsed: names the source and the line.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}:{line}: {msg}")]
pub struct ScriptError {
    /// File name or built-in name.
    pub source_name: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

fn first_word(sql: &str) -> String {
    // Skip leading comments so `-- note\nBEGIN` is still a BEGIN.
    let mut rest = sql.trim_start();
    loop {
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map_or("", |(_, b)| b).trim_start();
        } else if rest.starts_with("/*") {
            rest = rest.split_once("*/").map_or("", |(_, b)| b).trim_start();
        } else {
            break;
        }
    }
    rest.split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

impl Script {
    /// Parses `src`; `name` is the query type's name, `source_name` the file for messages.
    pub fn parse(
        name: &str,
        source_name: &str,
        src: &str,
        predefined: Predefined,
    ) -> Result<Script, ScriptError> {
        let compiled = parse::parse(src).map_err(|e| ScriptError {
            source_name: source_name.to_string(),
            line: e.line,
            msg: e.msg,
        })?;
        let mut gset_targets = Vec::new();
        for c in &compiled.commands {
            if let Step::Sql { gset, .. } = &c.step {
                let targets = match gset {
                    Some(prefix) => compiled
                        .vars
                        .names()
                        .iter()
                        .enumerate()
                        .filter_map(|(i, n)| {
                            n.strip_prefix(prefix.as_str()).map(|s| (s.to_string(), i))
                        })
                        .filter(|(s, _)| !s.is_empty())
                        .collect(),
                    None => Vec::new(),
                };
                gset_targets.push(targets);
            }
        }
        Ok(Script {
            name: name.to_string(),
            compiled,
            gset_targets,
            predefined,
            aborts: Mutex::new(Vec::new()),
            aborts_clients: true,
        })
    }

    /// The query type's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This script with its clients going on after any error, counting it, instead of aborting
    /// as pgbench does: how the built-in POS types run.
    pub fn without_client_aborts(mut self) -> Script {
        self.aborts_clients = false;
        self
    }

    /// Whether a client of this script stops for good after an error pgbench aborts a client on
    /// (a pgbench script's, the default), or counts it and goes on (the built-in POS types).
    pub fn aborts_clients(&self) -> bool {
        self.aborts_clients
    }

    /// Line of the first command that is a COPY reading from or writing to the client
    /// (`FROM STDIN`, `TO STDOUT`): a script has no data to send, so the load refuses it.
    pub fn copy_with_client(&self) -> Option<usize> {
        self.compiled.commands.iter().find_map(|c| match &c.step {
            Step::Sql { stmt, .. } => {
                let sql = &self.compiled.statements[*stmt];
                let upper = sql.to_ascii_uppercase();
                (first_word(sql) == "COPY" && (upper.contains("STDIN") || upper.contains("STDOUT")))
                    .then_some(c.line)
            }
            _ => None,
        })
    }

    /// SQL of each statement, as it is prepared.
    pub fn statements_sql(&self) -> &[String] {
        &self.compiled.statements
    }

    /// The parsed commands.
    pub fn compiled(&self) -> &Compiled {
        &self.compiled
    }

    fn fail(&self, cmd: &Command, msg: impl std::fmt::Display) -> ExecError {
        ExecError::Script(format!("{}:{}: {msg}", self.name, cmd.line))
    }

    /// Line of the first `\startpipeline`, if the script uses pipeline mode.
    pub fn pipeline_line(&self) -> Option<usize> {
        self.compiled
            .commands
            .iter()
            .find(|c| c.step == Step::StartPipeline)
            .map(|c| c.line)
    }

    /// Keeps the abort of `client`, which failed with `e` at script line `line` (0: at the end).
    pub fn abort(&self, client: u32, line: usize, e: &ExecError) {
        let (sqlstate, msg) = e.sqlstate_and_message();
        let message = match e {
            ExecError::Script(_) | ExecError::Unfinished(_) => msg,
            _ => format!("{}:{line}: {msg}", self.name),
        };
        self.aborts.lock().push(Abort {
            client,
            sqlstate,
            message,
        });
    }

    /// The clients aborted so far.
    pub fn aborts(&self) -> Vec<Abort> {
        self.aborts.lock().clone()
    }

    /// The error of a script that ended inside a transaction block.
    pub fn unfinished(&self) -> ExecError {
        ExecError::Unfinished(format!("{}: {UNFINISHED}", self.name))
    }
}

impl QueryType for Script {
    fn script(&self) -> &Script {
        self
    }
}

impl Script {
    /// The variables of a fresh client `client_id`, with pgbench's predefined ones set.
    pub fn client_vars(&self, client_id: usize) -> ClientVars {
        let vars = &self.compiled.vars;
        let mut slots = vec![Slot::default(); vars.len()];
        let p = &self.predefined;
        let mut put = |name: &str, v: Val| {
            if let Some(i) = vars.get(name) {
                slots[i].set_val(v);
            }
        };
        put("scale", Val::Int(p.scale));
        put("client_id", Val::Int(client_id as i64));
        put(
            "default_seed",
            Val::Int(prng::default_seed(p.seed, p.clients.max(client_id + 1))),
        );
        put("random_seed", Val::Int(p.seed as i64));
        for (name, value) in &p.defines {
            if let Some(i) = vars.get(name) {
                slots[i].set_text(value);
            }
        }
        ClientVars {
            slots,
            failed_line: 0,
            rng: prng::client(p.seed, client_id),
            retry: RetryMark::default(),
        }
    }
}

/// Where a non-SQL command leaves the interpreter.
pub(crate) enum Flow {
    /// Continue at this command.
    Next(usize),
    /// Pause for this long, then continue at the command.
    Sleep(usize, Duration),
}

impl Script {
    /// The environment expressions evaluate in: a client's variables and random generator.
    fn env<'a>(&'a self, slots: &'a [Slot], rng: &'a mut prng::PgPrng, pc: usize) -> Env<'a> {
        Env {
            vars: slots,
            rng,
            names: self.compiled.vars.names(),
            origin: (&self.name, pc + 1),
        }
    }

    /// Runs the non-SQL command `cmd` at `pc` (`\set`, `\sleep`'s argument, `\if`, jumps): the
    /// command semantics of the executor ([`resume`]).
    pub(crate) fn step_local(
        &self,
        pc: usize,
        cmd: &Command,
        st: &mut ClientVars,
    ) -> Result<Flow, ExecError> {
        match &cmd.step {
            // The executor runs these itself: SQL, and the pipeline's ends.
            Step::Sql { .. } | Step::StartPipeline | Step::EndPipeline => Ok(Flow::Next(pc)),
            Step::Set { slot, expr } => {
                match expr::eval(expr, &mut self.env(&st.slots, &mut st.rng, pc)) {
                    Ok(v) => {
                        st.slots[*slot].set_val(v);
                        Ok(Flow::Next(pc + 1))
                    }
                    Err(m) => Err(self.fail(cmd, m)),
                }
            }
            Step::Sleep { arg, unit_us } => {
                let n = match arg {
                    SleepArg::Const(n) => *n,
                    // pgbench reads the variable's text with atoi().
                    SleepArg::Var(s) => {
                        let slot = &st.slots[*s];
                        if !slot.is_set() {
                            return Err(self.fail(
                                cmd,
                                format!(
                                    "sleep: undefined variable \"{}\"",
                                    self.compiled.vars.names()[*s]
                                ),
                            ));
                        }
                        slot.sleep_amount()
                    }
                };
                let us = n.saturating_mul(*unit_us).max(0) as u64;
                Ok(Flow::Sleep(pc + 1, Duration::from_micros(us)))
            }
            Step::Branch { cond, target } => {
                match expr::eval(cond, &mut self.env(&st.slots, &mut st.rng, pc)).map(expr::truth) {
                    Ok(true) => Ok(Flow::Next(pc + 1)),
                    Ok(false) => Ok(Flow::Next(*target)),
                    Err(m) => Err(self.fail(cmd, m)),
                }
            }
            Step::Jump(target) => Ok(Flow::Next(*target)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_draws_the_same_values_and_a_new_transaction_does_not() {
        let script = Script::parse(
            "r",
            "r",
            "\\set x random(1, 1000000000)\n",
            Predefined {
                seed: 5,
                clients: 1,
                ..Predefined::default()
            },
        )
        .unwrap();
        let mut st = script.client_vars(0);
        let mut engine = crate::rng::Rng::new(9);
        let draw = |st: &mut ClientVars, engine: &mut crate::rng::Rng| {
            st.start_transaction(engine);
            st.rng.next_u64()
        };
        let before = engine.clone();
        let first = draw(&mut st, &mut engine);
        // The engine retries: it restores its generator, so the script restores its own.
        engine = before;
        assert_eq!(draw(&mut st, &mut engine), first);
        // A new transaction goes on from where the last one stopped.
        let next = draw(&mut st, &mut engine);
        assert_ne!(next, first);
        assert_eq!(next, {
            let mut fresh = prng::client(5, 0);
            fresh.next_u64();
            fresh.next_u64()
        });
    }

    #[test]
    fn transaction_bounds_are_recognised_through_comments() {
        assert_eq!(first_word("-- x\n  begin;"), "BEGIN");
        assert_eq!(first_word("/* c */ END"), "END");
        assert_eq!(first_word("select 1"), "SELECT");
    }
}
