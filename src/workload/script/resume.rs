//! Resumable execution of a pgbench script, for a driver that serves many clients on one thread
//! (the engine's multiplexed driver, `-j`): instead of blocking on the server, the interpreter
//! stops at every SQL command and every `\sleep`; the driver sends the command
//! ([`Script::queue_sql`]), feeds the reply back message by message ([`Script::on_reply`]),
//! closes the command at ReadyForQuery ([`Script::finish_sql`]) and resumes ([`Script::resume`]).
//!
//! Invariants: non-SQL commands run through [`Script::step_local`], the code the blocking path
//! runs, so both drivers interpret a script identically. A transaction's position and reply live
//! in a reused [`Tx`]: nothing is allocated per query once the `\gset` column map has grown
//! (errors allocate their message). Parameters are bound as text of unspecified type and results
//! come back as text, exactly like pgbench's libpq calls, so `\gset` stores the server's text.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::expr::Val;
use super::parse::Step;
use super::{ClientVars, Flow, Script};
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
    rows: u64,
    /// Variable slot of each result column of a `\gset` command (`None`: not stored).
    gset_cols: Vec<Option<usize>>,
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
    /// Back to the first command (a new transaction, or a retry).
    pub fn restart(&mut self) {
        self.pc = 0;
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
            if matches!(cmd.step, Step::Sql { .. }) {
                return Ok(Action::Sql);
            }
            let t0 = stats.is_some().then(Instant::now);
            let flow = self.step_local(tx.pc, cmd, st);
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
        Ok(Action::Done)
    }

    /// Queues the SQL command at the current position on `conn` (not flushed). `names` are the
    /// names this script's statements were prepared under (protocol `prepared`).
    pub fn queue_sql(
        &self,
        tx: &mut Tx,
        st: &ClientVars,
        protocol: Protocol,
        names: &[String],
        conn: &mut WireConn,
    ) -> Result<(), ExecError> {
        let cmd = &self.compiled.commands[tx.pc];
        let Step::Sql {
            stmt,
            pieces,
            params,
            gset,
        } = &cmd.step
        else {
            return Err(self.fail(cmd, "internal: not an SQL command"));
        };
        tx.rows = 0;
        tx.error = None;
        tx.gset_err = None;
        tx.copy_requested = false;
        tx.copy_refused = false;
        tx.gset_cols.clear();
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
            return Ok(());
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
        conn.queue_sync();
        Ok(())
    }

    /// Takes one message of the reply to the command at the current position.
    pub fn on_reply(&self, tx: &mut Tx, st: &mut ClientVars, msg: Msg<'_>) {
        let Some(cmd) = self.compiled.commands.get(tx.pc) else {
            return;
        };
        let Step::Sql { stmt, gset, .. } = &cmd.step else {
            return;
        };
        match msg {
            Msg::RowDescription(desc) if gset.is_some() => {
                let targets = &self.gset_targets[*stmt];
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
                if tx.rows == 1 && gset.is_some() {
                    for (value, col) in row.values().zip(&tx.gset_cols) {
                        let Some(slot) = *col else { continue };
                        match value.map(std::str::from_utf8) {
                            None => st.slots[slot].set_val(Val::Null),
                            Some(Ok(text)) => st.slots[slot].set_text(text),
                            Some(Err(_)) => {
                                tx.gset_err = Some(format!(
                                    "\\gset: the value for \"{}\" is not valid UTF-8",
                                    self.compiled.vars.names()[slot]
                                ))
                            }
                        }
                    }
                }
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

    /// Closes the SQL command at the current position once its ReadyForQuery arrived: a server
    /// error or a `\gset` that got no single row is the command's failure; success moves on.
    pub fn finish_sql(&self, tx: &mut Tx) -> Result<(), ExecError> {
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
        if matches!(&cmd.step, Step::Sql { gset: Some(_), .. }) && tx.rows != 1 {
            return Err(self.fail(cmd, format!("\\gset expected one row, got {}", tx.rows)));
        }
        tx.pc += 1;
        Ok(())
    }
}
