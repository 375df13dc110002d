//! pgbench-compatible scripts as query types: `-f file.sql[@weight]` and `-b name[@weight]`.
//!
//! A script is parsed once ([`parse`]) into steps with variables resolved to slots; each client
//! (worker) keeps its own variable slots between transactions, as pgbench does. Execution is
//! allocation-light: SQL commands are prepared once per connection (protocol `prepared`), bound
//! with text-format parameters of unspecified type exactly like pgbench's `PQexecPrepared` (so any
//! column type works), and expressions evaluate on the stack. With `-M simple` the variables are
//! substituted as text into a reused buffer; with `-M extended` every command is sent unprepared
//! with its parameters in one round trip (`PQexecParams`).
//!
//! A failed SQL command inside an explicit transaction is followed by a ROLLBACK, so the
//! connection is clean for the next transaction (and for a retry, see the engine's `max_tries`).
//!
//! Failures follow pgbench 15: the engine retries or counts a serialization or deadlock failure,
//! and any other error (a server error, an expression error, `\gset` with the wrong row count, a
//! transaction block left open at the end of the script) aborts the client; [`Script::abort`]
//! keeps each aborted client's message, with its SQLSTATE, for the report. `\gset` stores the last
//! result of a compound command (`\;`), which must have exactly one row; `\aset` stores the last
//! row of every non-empty result. Pipeline mode runs on the multiplexed driver ([`resume`]).
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
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{to_sql_checked, Format, FromSql, IsNull, ToSql, Type};

use super::{ClientState, CommandStat, ExecCtx, ExecError, Protocol, QueryType};
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
    /// Per SQL command: (opens a transaction block, closes one).
    tx_bounds: Vec<(bool, bool)>,
    predefined: Predefined,
    aborts: Mutex<Vec<Abort>>,
    /// Whether an error pgbench aborts a client on ends the client (see [`Script::aborts_clients`]).
    aborts_clients: bool,
}

/// Per-client state: the variables, whether a transaction block is open, the line of the
/// command that failed last (for the abort message), and the client's pgbench random
/// generator with what a retry needs to draw the same values again.
pub struct ClientVars {
    slots: Vec<Slot>,
    in_tx: bool,
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
/// Why pipeline mode is refused beside built-in query types (they run over the `postgres` crate).
pub const PIPELINE_NEEDS_MUX: &str = "pipeline mode (\\startpipeline) runs on the project's \
     own connection, used when every query type is a script; drop --mix";
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

/// What a command does to the transaction block: (opens one, closes one), from the last
/// transaction-control statement of a compound command (`BEGIN \\; ... \\; COMMIT` closes).
fn block_effect(sql: &str) -> (bool, bool) {
    let mut effect = (false, false);
    for part in sql.split(';') {
        let word = first_word(part);
        let to_savepoint = part
            .split_whitespace()
            .nth(1)
            .is_some_and(|w| w.eq_ignore_ascii_case("to"));
        match word.as_str() {
            "BEGIN" | "START" => effect = (true, false),
            "COMMIT" | "END" | "ABORT" => effect = (false, true),
            "ROLLBACK" if !to_savepoint => effect = (false, true),
            _ => {}
        }
    }
    effect
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
        let mut tx_bounds = Vec::new();
        for c in &compiled.commands {
            if let Step::Sql { gset, pieces, .. } = &c.step {
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
                tx_bounds.push(block_effect(&pieces.concat()));
            }
        }
        Ok(Script {
            name: name.to_string(),
            compiled,
            gset_targets,
            tx_bounds,
            predefined,
            aborts: Mutex::new(Vec::new()),
            aborts_clients: true,
        })
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

    /// Line of the command at which a client's last transaction failed.
    pub fn failed_line(state: &ClientState) -> usize {
        state
            .as_ref()
            .and_then(|s| s.downcast_ref::<ClientVars>())
            .map_or(0, |v| v.failed_line)
    }

    /// The error of a script that ended inside a transaction block.
    pub fn unfinished(&self) -> ExecError {
        ExecError::Unfinished(format!("{}: {UNFINISHED}", self.name))
    }

    fn run_sql(
        &self,
        ctx: &mut ExecCtx<'_>,
        st: &mut ClientVars,
        cmd: &Command,
    ) -> Result<(), ExecError> {
        let Step::Sql {
            stmt,
            pieces,
            params,
            gset,
            aset,
        } = &cmd.step
        else {
            return Ok(());
        };
        let (opens, closes) = self.tx_bounds[*stmt];
        let gset_only = gset.is_some() && !aset;
        if ctx.protocol != Protocol::Simple {
            if let Some(&p) = params.iter().find(|&&p| !st.slots[p].is_set()) {
                return Err(self.fail(
                    cmd,
                    format!("undefined variable \"{}\"", self.compiled.vars.names()[p]),
                ));
            }
        }
        let outcome = match ctx.protocol {
            Protocol::Prepared | Protocol::Extended => {
                let slots = &st.slots;
                let binds = params.iter().map(|&p| TextParam(&slots[p]));
                let rows = if ctx.protocol == Protocol::Prepared {
                    ctx.client.query_raw(&ctx.prepared[*stmt], binds)
                } else {
                    ctx.client.query_typed_raw(
                        &self.compiled.statements[*stmt],
                        binds.map(|b| (b, Type::UNKNOWN)),
                    )
                };
                // Execution errors arrive while the rows stream in, not only at the call. One
                // statement, one result: `\gset` stores its only row, `\aset` its last.
                let fetched = rows.and_then(|mut it| {
                    let mut n = 0u64;
                    let mut store_err = None;
                    while let Some(row) = it.next()? {
                        n += 1;
                        if (n == 1 && gset_only) || *aset {
                            store_err = self.gset_row(&row, *stmt, &mut st.slots).err();
                        }
                    }
                    Ok((n, store_err))
                });
                match fetched {
                    Ok((n, store_err)) => match (store_err, gset_only && n != 1) {
                        (Some(e), _) => Err(e),
                        (None, true) => Err(format!("expected one row, got {n}")),
                        _ => Ok(()),
                    },
                    Err(e) => return self.after_failure(ctx, st, closes, e.into()),
                }
            }
            Protocol::Simple => {
                let buf = &mut *ctx.buf;
                buf.clear();
                for (i, piece) in pieces.iter().enumerate() {
                    buf.push_str(piece);
                    if let Some(&p) = params.get(i) {
                        if st.slots[p].is_set() {
                            st.slots[p].write_text(buf);
                        } else {
                            buf.push(':');
                            buf.push_str(&self.compiled.vars.names()[p]);
                        }
                    }
                }
                // Only `\gset`/`\aset` read rows: without them the replies are read and dropped,
                // not collected into the `Vec` of messages `simple_query` builds.
                let reply = match gset {
                    None => ctx.client.batch_execute(buf).map(|()| Vec::new()),
                    Some(_) => ctx.client.simple_query(buf),
                };
                match reply {
                    Ok(_) if gset.is_none() => Ok(()),
                    Ok(msgs) => self.store_results(&msgs, *stmt, *aset, &mut st.slots),
                    Err(e) => return self.after_failure(ctx, st, closes, e.into()),
                }
            }
        };
        if let Err(msg) = outcome {
            let e = self.fail(cmd, msg);
            return self.after_failure(ctx, st, closes, e);
        }
        if opens {
            st.in_tx = true;
        }
        if closes {
            st.in_tx = false;
        }
        Ok(())
    }

    /// Stores the results of a simple-protocol command as pgbench's readCommandResponse does:
    /// under `\aset` the last row of every result that has rows; under `\gset` the row of the
    /// last result, which must have exactly one (a compound command's earlier results are read
    /// and dropped).
    fn store_results(
        &self,
        msgs: &[postgres::SimpleQueryMessage],
        stmt: usize,
        aset: bool,
        slots: &mut [Slot],
    ) -> Result<(), String> {
        use postgres::SimpleQueryMessage as M;
        let mut rows = 0u64;
        let mut last_row = None;
        let mut last = (0u64, None);
        for m in msgs {
            match m {
                M::Row(row) => {
                    rows += 1;
                    last_row = Some(row);
                }
                M::CommandComplete(_) => {
                    if aset {
                        if let Some(row) = last_row {
                            self.gset_text_row(row, stmt, slots);
                        }
                    }
                    last = (rows, last_row.take());
                    rows = 0;
                }
                _ => {}
            }
        }
        if aset {
            return Ok(());
        }
        match last {
            (1, Some(row)) => {
                self.gset_text_row(row, stmt, slots);
                Ok(())
            }
            (n, _) => Err(format!("expected one row, got {n}")),
        }
    }

    /// Leaves the connection outside any transaction block, then returns `e`.
    fn after_failure(
        &self,
        ctx: &mut ExecCtx<'_>,
        st: &mut ClientVars,
        closes: bool,
        e: ExecError,
    ) -> Result<(), ExecError> {
        // A failed COMMIT/END already ended the block on the server.
        if st.in_tx && !closes && !ctx.client.is_closed() {
            let _ = ctx.client.batch_execute("ROLLBACK");
        }
        st.in_tx = false;
        Err(e)
    }

    fn gset_row(&self, row: &postgres::Row, stmt: usize, slots: &mut [Slot]) -> Result<(), String> {
        let targets = &self.gset_targets[stmt];
        for (i, col) in row.columns().iter().enumerate() {
            let Some(&(_, slot)) = targets.iter().find(|(n, _)| n == col.name()) else {
                continue;
            };
            let cell: Cell<'_> = row
                .try_get(i)
                .map_err(|e| format!("\\gset: column \"{}\": {e}", col.name()))?;
            let s = &mut slots[slot];
            match cell {
                Cell::Null => s.set_val(Val::Null),
                Cell::Int(v) => s.set_val(Val::Int(v)),
                Cell::Double(v) => s.set_val(Val::Double(v)),
                Cell::Bool(v) => s.set_val(Val::Bool(v)),
                Cell::Text(t) => s.set_text(t),
                Cell::Numeric(raw) => s.set_text_with(|out| numeric_text(raw, out)),
            }
        }
        Ok(())
    }

    fn gset_text_row(&self, row: &postgres::SimpleQueryRow, stmt: usize, slots: &mut [Slot]) {
        let targets = &self.gset_targets[stmt];
        for (i, col) in row.columns().iter().enumerate() {
            if let Some(&(_, slot)) = targets.iter().find(|(n, _)| n == col.name()) {
                match row.get(i) {
                    Some(t) => slots[slot].set_text(t),
                    None => slots[slot].set_val(Val::Null),
                }
            }
        }
    }
}

impl QueryType for Script {
    fn name(&self) -> &str {
        &self.name
    }

    fn statements(&self) -> Vec<String> {
        self.compiled.statements.clone()
    }

    fn client_state(&self, client_id: usize) -> ClientState {
        Some(Box::new(self.client_vars(client_id)))
    }

    fn as_script(&self) -> Option<&Script> {
        Some(self)
    }

    fn command_labels(&self) -> Vec<String> {
        self.compiled.labels.clone()
    }

    fn execute(&self, ctx: &mut ExecCtx<'_>) -> Result<(), ExecError> {
        let mut state = ctx.state.take();
        let result = match state.as_mut().and_then(|s| s.downcast_mut::<ClientVars>()) {
            Some(st) => self.run(ctx, st),
            None => Err(ExecError::Script(format!(
                "{}: the client state is missing",
                self.name
            ))),
        };
        *ctx.state = state;
        result
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
            in_tx: false,
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
    /// command semantics shared by the blocking path ([`Script::run`]) and the resumable one
    /// ([`resume`]), so both drivers interpret a script identically.
    pub(crate) fn step_local(
        &self,
        pc: usize,
        cmd: &Command,
        st: &mut ClientVars,
    ) -> Result<Flow, ExecError> {
        match &cmd.step {
            // The driver runs these itself: SQL, and the pipeline's ends (multiplexed driver).
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

    fn run(&self, ctx: &mut ExecCtx<'_>, st: &mut ClientVars) -> Result<(), ExecError> {
        let cmds = &self.compiled.commands;
        if let Some(stats) = ctx.commands.as_deref_mut() {
            if stats.len() < self.compiled.labels.len() {
                stats.resize(self.compiled.labels.len(), CommandStat::default());
            }
        }
        let timed = ctx.commands.is_some();
        st.start_transaction(ctx.rng);
        let mut pc = 0;
        while pc < cmds.len() {
            let cmd = &cmds[pc];
            let t0 = timed.then(Instant::now);
            let r = match &cmd.step {
                Step::Sql { .. } => self.run_sql(ctx, st, cmd).map(|()| pc + 1),
                // Refused before the run (queries' script checks): the blocking client cannot
                // have several commands in flight.
                Step::StartPipeline | Step::EndPipeline => Err(self.fail(cmd, PIPELINE_NEEDS_MUX)),
                _ => self.step_local(pc, cmd, st).map(|flow| match flow {
                    Flow::Next(next) => next,
                    Flow::Sleep(next, d) => {
                        if !d.is_zero() {
                            std::thread::sleep(d);
                        }
                        next
                    }
                }),
            };
            if let (Some(t0), Some(i), Some(stats)) = (t0, cmd.stat, ctx.commands.as_deref_mut()) {
                let s = &mut stats[i];
                match r {
                    Ok(_) => {
                        s.count += 1;
                        s.sum_ns += t0.elapsed().as_nanos() as u64;
                    }
                    Err(_) => s.failures += 1,
                }
            }
            match r {
                Ok(next) => pc = next,
                Err(e) => {
                    st.failed_line = cmd.line;
                    if !matches!(cmd.step, Step::Sql { .. }) && st.in_tx && !ctx.client.is_closed()
                    {
                        let _ = ctx.client.batch_execute("ROLLBACK");
                        st.in_tx = false;
                    }
                    return Err(e);
                }
            }
        }
        if st.in_tx {
            // As pgbench, the transaction counts and the client aborts; the connection goes back
            // to the pool outside any block.
            st.in_tx = false;
            if !ctx.client.is_closed() {
                let _ = ctx.client.batch_execute("ROLLBACK");
            }
            return Err(self.unfinished());
        }
        Ok(())
    }
}

/// A bind parameter sent as text with its type left to the server, like pgbench.
struct TextParam<'a>(&'a Slot);

impl std::fmt::Debug for TextParam<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        self.0.write_text(&mut s);
        f.write_str(&s)
    }
}

impl ToSql for TextParam<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        // NULL too is sent as its text, the word NULL, as pgbench binds it.
        self.0.write_text(out);
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

/// A result value `\gset` can store, borrowed from the row.
enum Cell<'a> {
    Null,
    Int(i64),
    Double(f64),
    Bool(bool),
    Text(&'a str),
    Numeric(&'a [u8]),
}

impl<'a> FromSql<'a> for Cell<'a> {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(match *ty {
            Type::INT2 => Cell::Int(i16::from_sql(ty, raw)? as i64),
            Type::INT4 => Cell::Int(i32::from_sql(ty, raw)? as i64),
            Type::INT8 => Cell::Int(i64::from_sql(ty, raw)?),
            Type::OID => Cell::Int(u32::from_sql(ty, raw)? as i64),
            Type::FLOAT4 => Cell::Double(f32::from_sql(ty, raw)? as f64),
            Type::FLOAT8 => Cell::Double(f64::from_sql(ty, raw)?),
            Type::BOOL => Cell::Bool(bool::from_sql(ty, raw)?),
            Type::NUMERIC => Cell::Numeric(raw),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                Cell::Text(std::str::from_utf8(raw)?)
            }
            _ => {
                return Err(format!(
                    "type {ty} cannot be stored by \\gset; cast it in the query, e.g. ::text"
                )
                .into())
            }
        })
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Cell::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Writes a binary `numeric` as its decimal text.
fn numeric_text(raw: &[u8], out: &mut String) {
    use std::fmt::Write as _;
    let word = |i: usize| -> i16 {
        raw.get(i * 2..i * 2 + 2)
            .map_or(0, |b| i16::from_be_bytes([b[0], b[1]]))
    };
    let (ndigits, weight, sign, dscale) = (
        word(0).max(0) as usize,
        word(1) as i32,
        word(2) as u16,
        word(3).max(0) as usize,
    );
    match sign {
        0xC000 => return out.push_str("NaN"),
        0xD000 => return out.push_str("Infinity"),
        0xF000 => return out.push_str("-Infinity"),
        0x4000 => out.push('-'),
        _ => {}
    }
    let digit = |g: i32| -> i16 {
        if g < 0 || g as usize >= ndigits {
            0
        } else {
            word(4 + g as usize)
        }
    };
    if weight < 0 {
        out.push('0');
    } else {
        for g in 0..=weight {
            let _ = if g == 0 {
                write!(out, "{}", digit(g))
            } else {
                write!(out, "{:04}", digit(g))
            };
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut written = 0;
        let mut g = weight + 1;
        while written < dscale {
            let group = format!("{:04}", digit(g));
            for ch in group.chars().take(dscale - written) {
                out.push(ch);
                written += 1;
            }
            g += 1;
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
    fn numeric_binary_renders_as_decimal_text() {
        // 12345.678: ndigits 3, weight 1, sign +, dscale 3, digits [1, 2345, 6780].
        let mut raw = Vec::new();
        for w in [3i16, 1, 0, 3, 1, 2345, 6780] {
            raw.extend_from_slice(&w.to_be_bytes());
        }
        let mut s = String::new();
        numeric_text(&raw, &mut s);
        assert_eq!(s, "12345.678");
        // -0.05: ndigits 1, weight -1, sign -, dscale 2, digits [500].
        let mut raw = Vec::new();
        for w in [1i16, -1, 0x4000, 2, 500] {
            raw.extend_from_slice(&w.to_be_bytes());
        }
        let mut s = String::new();
        numeric_text(&raw, &mut s);
        assert_eq!(s, "-0.05");
    }

    #[test]
    fn transaction_bounds_are_recognised_through_comments() {
        assert_eq!(first_word("-- x\n  begin;"), "BEGIN");
        assert_eq!(first_word("/* c */ END"), "END");
        assert_eq!(first_word("select 1"), "SELECT");
        assert_eq!(block_effect("BEGIN; SELECT 1"), (true, false));
        assert_eq!(block_effect("SELECT 1; COMMIT"), (false, true));
        assert_eq!(block_effect("ROLLBACK TO SAVEPOINT a"), (false, false));
        assert_eq!(block_effect("SELECT 1"), (false, false));
    }
}
