//! Blocking execution of a pgbench script on a [`WireConn`] that one thread owns for the
//! transaction (the pool driver, one thread per client): the resumable executor of
//! [`super::resume`], the one the `-j` driver runs, driven to the end of the transaction by
//! sending each step and waiting on the socket until the step's ReadyForQuery. One executor
//! for both drivers, so a script (pipeline mode included) means the same on either.
//!
//! Invariants: a transaction that fails inside a transaction block is rolled back here before
//! the connection goes back to its pool; a connection that cannot be left idle (lost, a
//! pipeline left open, a failed ROLLBACK) is reported as not reusable, and the driver drops it.

use std::time::Instant;

use super::resume::{Action, Tx};
use super::{ClientVars, Script};
use crate::rng::Rng;
use crate::wire::WireConn;
use crate::workload::{CommandStat, ExecError, Protocol};

/// How one try of a transaction ended on the connection.
#[derive(Debug)]
pub struct Ended {
    /// The transaction's outcome.
    pub result: Result<(), ExecError>,
    /// Whether the connection is idle and clean for the next transaction.
    pub reusable: bool,
}

impl Script {
    /// Runs one try of a transaction from its first command on `conn`, blocking. `names` are
    /// the names the statements were prepared under (protocol `prepared`); `stats` (with `-r`)
    /// receives each command's count and time.
    #[allow(clippy::too_many_arguments)]
    pub fn run_blocking(
        &self,
        tx: &mut Tx,
        st: &mut ClientVars,
        rng: &mut Rng,
        protocol: Protocol,
        names: &[String],
        conn: &mut WireConn,
        mut stats: Option<&mut Vec<CommandStat>>,
    ) -> Ended {
        tx.restart();
        let mut status = b'I';
        let result = self.steps(tx, st, rng, protocol, names, conn, &mut stats, &mut status);
        let Err(e) = result else {
            return Ended {
                result,
                reusable: true,
            };
        };
        st.failed_line = self.line_at(tx);
        let lost = matches!(&e, ExecError::Wire(w) if w.sqlstate().is_none())
            || crate::engine::stats::ErrorClass::of_exec(&e).is_connection_loss();
        let mut reusable = !lost && !tx.in_pipeline() && !conn.wants_write();
        if reusable && status != b'I' {
            conn.queue_query_with(|w| w.push_bytes(b"ROLLBACK"));
            reusable = matches!(conn.exchange_blocking(|_| {}), Ok(b'I'));
        }
        Ended {
            result: Err(e),
            reusable,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn steps(
        &self,
        tx: &mut Tx,
        st: &mut ClientVars,
        rng: &mut Rng,
        protocol: Protocol,
        names: &[String],
        conn: &mut WireConn,
        stats: &mut Option<&mut Vec<CommandStat>>,
        status: &mut u8,
    ) -> Result<(), ExecError> {
        loop {
            match self.resume(tx, st, rng, stats.as_deref_mut())? {
                Action::Sql => {
                    let stat = self.stat_index(tx);
                    let t0 = stats.is_some().then(Instant::now);
                    let wait = self.queue_sql(tx, st, protocol, names, conn)?;
                    if !wait {
                        // Queued in a pipeline: its time is the \endpipeline's, as in pgbench.
                        self.command_stat(stats, stat, Some(Instant::now()), true);
                        continue;
                    }
                    *status = self.await_ready(tx, st, conn)?;
                    let r = self.finish_sql(tx, st);
                    self.command_stat(stats, stat, t0, r.is_ok());
                    r?;
                }
                Action::Sleep(d) => std::thread::sleep(d),
                Action::Done if *status != b'I' => return Err(self.unfinished()),
                Action::Done => return Ok(()),
            }
        }
    }

    /// Sends what is queued and feeds the reply to the executor up to its ReadyForQuery.
    fn await_ready(
        &self,
        tx: &mut Tx,
        st: &mut ClientVars,
        conn: &mut WireConn,
    ) -> Result<u8, ExecError> {
        loop {
            conn.await_reply()?;
            let r = conn.read_available(|msg| self.on_reply(tx, st, msg))?;
            if tx.take_copy_request() {
                conn.queue_copy_fail("pgstorm scripts cannot send COPY data");
            }
            if let Some(status) = r {
                return Ok(status);
            }
        }
    }

    /// Counts an SQL command's execution started at `t0` into `stats` (`-r`).
    fn command_stat(
        &self,
        stats: &mut Option<&mut Vec<CommandStat>>,
        stat: Option<usize>,
        t0: Option<Instant>,
        ok: bool,
    ) {
        let (Some(s), Some(i), Some(t0)) = (stats.as_deref_mut(), stat, t0) else {
            return;
        };
        if s.len() < self.stat_len() {
            s.resize(self.stat_len(), CommandStat::default());
        }
        if ok {
            s[i].count += 1;
            s[i].sum_ns += t0.elapsed().as_nanos() as u64;
        } else {
            s[i].failures += 1;
        }
    }
}
