//! Resumable execution of a pgbench script, for a driver that serves many clients on one thread
//! (the engine's multiplexed driver, `-j`): instead of blocking on the server, the interpreter
//! stops at every SQL command and every `\sleep`; the driver sends the command
//! ([`Script::queue_sql`]), feeds the reply back message by message ([`Script::on_reply`]),
//! closes the command at ReadyForQuery ([`Script::finish_sql`]) and resumes ([`Script::resume`]).
//!
//! Pipeline mode (`\startpipeline` .. `\endpipeline`, pgbench 15's commands) lives here: inside
//! a pipeline an SQL command is queued without a Sync and the interpreter goes on at once; the
//! `\endpipeline` queues the one Sync and waits for every reply, so a pipeline costs one round
//! trip. As in pgbench, `\gset`/`\aset` are refused inside a pipeline and a script that ends with
//! one open aborts the client.
//!
//! Invariants: non-SQL commands run through `Script::step_local`, the code the blocking path
//! runs, so both drivers interpret a script identically. A transaction's position and reply live
//! in a reused [`Tx`]: nothing is allocated per query once the `\gset` column map has grown
//! (errors allocate their message). Parameters are bound as text of unspecified type and results
//! come back as text, exactly like pgbench's libpq calls, so `\gset` stores the server's text.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::expr::Val;
use super::parse::Step;
use super::{ClientVars, Flow, Script, PIPELINE_OPEN, PIPELINE_SIMPLE};
use crate::rng::Rng;
use crate::wire::{Msg, WireConn, WireError};
use crate::workload::{CommandStat, ExecError, Protocol};

/// Why a COPY that reads from or writes to the client fails in a script.
pub const COPY_REFUSED: &str = "COPY ... FROM STDIN / TO STDOUT exchanges data with the \
     client, which a script cannot do (pgbench cannot either); COPY from or to a server file, or \
     use INSERT / SELECT";

/// What the driver must do next for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send the SQL command at the current position ([`Script::queue_sql`]).
    Sql,
    /// Wait this long, then [`Script::resume`] again.
    Sleep(Duration),
    /// The transaction (one pass through the script) is complete.
    Done,
}

/// A client's position in its current transaction and the reply being read.
#[derive(Debug, Default)]
pub struct Tx {
    pc: usize,
    /// Rows of the result being read.
    rows: u64,
    /// Rows of the last complete result.
    last_rows: u64,
    /// Whether the result being read has a RowDescription.
    described: bool,
    /// Inside `\startpipeline` .. `\endpipeline`.
    pipeline: bool,
    /// Variable slot of each result column of a `\gset` command (`None`: not stored).
    gset_cols: Vec<Option<usize>>,
    /// `\gset`: the first row of the latest result, stored only once it proves to be the last
    /// result (slot, value range in `pending_text`, `None` for NULL).
    pending: Vec<(usize, Option<std::ops::Range<usize>>)>,
    pending_text: String,
    /// The first server error of the reply.
    error: Option<WireError>,
    /// A `\gset` value that could not be stored.
    gset_err: Option<String>,
    /// The server asked for COPY data (CopyInResponse) and has not been refused yet.
    copy_requested: bool,
    /// The command was a COPY FROM STDIN, refused with CopyFail.
    copy_refused: bool,
    /// The transaction has begun (the client's generator is marked for a retry).
    started: bool,
}

impl Tx {
    /// Whether a `\startpipeline` is open.
    pub fn in_pipeline(&self) -> bool {
        self.pipeline
    }

    /// Back to the first command (a new transaction, or a retry).
    pub fn restart(&mut self) {
        self.pc = 0;
        self.pipeline = false;
        self.started = false;
    }

    /// Whether the server asked for COPY data the driver must refuse (CopyFail), once.
    pub fn take_copy_request(&mut self) -> bool {
        let asked = std::mem::take(&mut self.copy_requested);
        self.copy_refused |= asked;
        asked
    }

    /// SQLSTATE of the server error the reply carried so far, if any (a FATAL before the
    /// connection closes tells why it closed).
    pub fn server_sqlstate(&self) -> Option<&str> {
        self.error.as_ref().and_then(WireError::sqlstate)
    }
}

impl Script {
    /// Statistics index (`-r`) of the command at the current position.
    pub fn stat_index(&self, tx: &Tx) -> Option<usize> {
        self.compiled.commands.get(tx.pc).and_then(|c| c.stat)
    }

    /// Number of per-command statistics this script keeps.
    pub fn stat_len(&self) -> usize {
        self.compiled.labels.len()
    }

    /// Runs the non-SQL commands from the current position until an SQL command, a `\sleep` or
    /// the end. `stats` (with `-r`) receives the local commands' counts and times.
    pub fn resume(
        &self,
        tx: &mut Tx,
        st: &mut ClientVars,
        rng: &mut Rng,
        mut stats: Option<&mut Vec<CommandStat>>,
    ) -> Result<Action, ExecError> {
        if !tx.started {
            st.start_transaction(rng);
            tx.started = true;
        }
        let cmds = &self.compiled.commands;
        while let Some(cmd) = cmds.get(tx.pc) {
            match cmd.step {
                Step::Sql { .. } => return Ok(Action::Sql),
                Step::EndPipeline if !tx.pipeline => {
                    return Err(self.fail(cmd, "not in pipeline mode"))
                }
                Step::EndPipeline => return Ok(Action::Sql),
                _ => {}
            }
            let t0 = stats.is_some().then(Instant::now);
            let flow = match cmd.step {
                Step::StartPipeline if tx.pipeline => {
                    Err(self.fail(cmd, "already in pipeline mode"))
                }
                Step::StartPipeline => {
                    tx.pipeline = true;
                    Ok(Flow::Next(tx.pc + 1))
                }
                _ => self.step_local(tx.pc, cmd, st),
            };
            if let (Some(t0), Some(i), Some(s)) = (t0, cmd.stat, stats.as_deref_mut()) {
                if s.len() < self.stat_len() {
                    s.resize(self.stat_len(), CommandStat::default());
                }
                match (&flow, &mut s[i]) {
                    (Ok(Flow::Sleep(_, d)), c) => {
                        c.count += 1;
                        c.sum_ns += d.as_nanos() as u64;
                    }
                    (Ok(_), c) => {
                        c.count += 1;
                        c.sum_ns += t0.elapsed().as_nanos() as u64;
                    }
                    (Err(_), c) => c.failures += 1,
                }
            }
            match flow? {
                Flow::Next(next) => tx.pc = next,
                Flow::Sleep(next, d) => {
                    tx.pc = next;
                    if !d.is_zero() {
                        return Ok(Action::Sleep(d));
                    }
                }
            }
        }
        if tx.pipeline {
            return Err(ExecError::Script(format!("{}: {PIPELINE_OPEN}", self.name)));
        }
        Ok(Action::Done)
    }

    /// Script line of the command at the current position (0 past the end).
    pub fn line_at(&self, tx: &Tx) -> usize {
        self.compiled.commands.get(tx.pc).map_or(0, |c| c.line)
    }

    /// Queues the SQL command at the current position on `conn` (not flushed). `names` are the
    /// names this script's statements were prepared under (protocol `prepared`). Returns whether
    /// the driver must wait for the reply: inside a pipeline a command is queued without a Sync,
    /// the position moves on and the replies are read at the `\endpipeline`.
    pub fn queue_sql(
        &self,
        tx: &mut Tx,
        st: &ClientVars,
        protocol: Protocol,
        names: &[String],
        conn: &mut WireConn,
    ) -> Result<bool, ExecError> {
        let cmd = &self.compiled.commands[tx.pc];
        // Replies are read only once the driver waits, so resetting per queued command is
        // also right inside a pipeline.
        tx.rows = 0;
        tx.last_rows = 0;
        tx.described = false;
        tx.error = None;
        tx.gset_err = None;
        tx.copy_requested = false;
        tx.copy_refused = false;
        tx.gset_cols.clear();
        tx.pending.clear();
        if cmd.step == Step::EndPipeline {
            conn.queue_sync();
            return Ok(true);
        }
        let Step::Sql {
            stmt,
            pieces,
            params,
            gset,
            aset,
        } = &cmd.step
        else {
            return Err(self.fail(cmd, "internal: not an SQL command"));
        };
        if tx.pipeline {
            if gset.is_some() {
                let what = if *aset { "aset" } else { "gset" };
                return Err(self.fail(cmd, format!("\\{what} is not allowed in pipeline mode")));
            }
            if protocol == Protocol::Simple {
                return Err(self.fail(cmd, PIPELINE_SIMPLE));
            }
        }
        let names_of_vars = self.compiled.vars.names();
        if protocol == Protocol::Simple {
            conn.queue_query_with(|w| {
                for (i, piece) in pieces.iter().enumerate() {
                    let _ = w.write_str(piece);
                    if let Some(&p) = params.get(i) {
                        if st.slots[p].is_set() {
                            st.slots[p].write_text(w);
                        } else {
                            let _ = write!(w, ":{}", names_of_vars[p]);
                        }
                    }
                }
            });
            return Ok(true);
        }
        if let Some(&p) = params.iter().find(|&&p| !st.slots[p].is_set()) {
            return Err(self.fail(cmd, format!("undefined variable \"{}\"", names_of_vars[p])));
        }
        let name = if protocol == Protocol::Prepared {
            names[*stmt].as_str()
        } else {
            conn.queue_parse("", &self.compiled.statements[*stmt]);
            ""
        };
        conn.begin_bind(name, params.len() as u16);
        for &p in params {
            // NULL too is bound as its text, the word NULL, as pgbench binds it.
            let slot = &st.slots[p];
            conn.bind_text(|w| slot.write_text(w));
        }
        conn.end_bind();
        if gset.is_some() {
            // Column names arrive only with a Describe: needed to match `\gset` variables.
            conn.queue_describe_portal();
        }
        conn.queue_execute();
        if tx.pipeline {
            tx.pc += 1;
            return Ok(false);
        }
        conn.queue_sync();
        Ok(true)
    }

    /// Takes one message of the reply to the command at the current position (at an
    /// `\endpipeline`: the replies to every command of the pipeline).
    pub fn on_reply(&self, tx: &mut Tx, st: &mut ClientVars, msg: Msg<'_>) {
        let Some(cmd) = self.compiled.commands.get(tx.pc) else {
            return;
        };
        let (stmt, gset, aset) = match &cmd.step {
            Step::Sql {
                stmt, gset, aset, ..
            } => (*stmt, gset.is_some(), *aset),
            _ => (0, false, false),
        };
        match msg {
            Msg::RowDescription(desc) if gset => {
                let targets = &self.gset_targets[stmt];
                tx.described = true;
                tx.pending.clear();
                tx.gset_cols.clear();
                tx.gset_cols.extend(desc.names().map(|col| {
                    targets
                        .iter()
                        .find(|(n, _)| n == col)
                        .map(|&(_, slot)| slot)
                }));
            }
            Msg::DataRow(row) => {
                tx.rows += 1;
                // `\aset` keeps the last row of every result: store each as it comes. `\gset`
                // keeps the first row of a result until the reply shows it was the last one.
                if aset || (gset && tx.rows == 1) {
                    tx.pending.clear();
                    tx.pending_text.clear();
                    for (value, col) in row.values().zip(&tx.gset_cols) {
                        let Some(slot) = *col else { continue };
                        match value.map(std::str::from_utf8) {
                            None => tx.pending.push((slot, None)),
                            Some(Ok(text)) => {
                                let start = tx.pending_text.len();
                                tx.pending_text.push_str(text);
                                tx.pending.push((slot, Some(start..tx.pending_text.len())));
                            }
                            Some(Err(_)) => {
                                tx.gset_err = Some(format!(
                                    "the value for \"{}\" is not valid UTF-8",
                                    self.compiled.vars.names()[slot]
                                ))
                            }
                        }
                    }
                    if aset {
                        tx.store_pending(st);
                    }
                }
            }
            Msg::CommandComplete(_) | Msg::EmptyQuery => {
                if !tx.described {
                    // A result without rows (e.g. an UPDATE in a compound command) is the last
                    // result so far: nothing of an earlier one may be stored by `\gset`.
                    tx.pending.clear();
                }
                tx.last_rows = std::mem::take(&mut tx.rows);
                tx.described = false;
            }
            // CopyInResponse / CopyBothResponse: the server waits for data a script cannot send.
            Msg::Other(b'G' | b'W') => tx.copy_requested = true,
            Msg::Error { sqlstate, message } if tx.error.is_none() => {
                tx.error = Some(WireError::Server {
                    sqlstate: sqlstate.to_string(),
                    message: message.to_string(),
                });
            }
            _ => {}
        }
    }

    /// Closes the command at the current position once its ReadyForQuery arrived: a server
    /// error or a `\gset` whose last result had not exactly one row is the command's failure;
    /// success stores `\gset`'s row (or ends the pipeline) and moves on.
    pub fn finish_sql(&self, tx: &mut Tx, st: &mut ClientVars) -> Result<(), ExecError> {
        let cmd = &self.compiled.commands[tx.pc];
        if std::mem::take(&mut tx.copy_refused) {
            tx.error = None;
            return Err(self.fail(cmd, COPY_REFUSED));
        }
        if let Some(e) = tx.error.take() {
            return Err(ExecError::Wire(e));
        }
        if let Some(m) = tx.gset_err.take() {
            return Err(self.fail(cmd, m));
        }
        match &cmd.step {
            Step::Sql {
                gset: Some(_),
                aset: false,
                ..
            } => {
                if tx.last_rows != 1 {
                    return Err(self.fail(cmd, format!("expected one row, got {}", tx.last_rows)));
                }
                tx.store_pending(st);
            }
            Step::EndPipeline => tx.pipeline = false,
            _ => {}
        }
        tx.pc += 1;
        Ok(())
    }
}

impl Tx {
    /// Stores the row kept in `pending` into the client's variables.
    fn store_pending(&mut self, st: &mut ClientVars) {
        for (slot, value) in self.pending.drain(..) {
            match value {
                None => st.slots[slot].set_val(Val::Null),
                Some(r) => st.slots[slot].set_text(&self.pending_text[r]),
            }
        }
    }
}
