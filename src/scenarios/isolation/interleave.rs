//! The deterministic phase: one scripted interleaving of two sessions (three for bank) per
//! check, run step by step
//! the way PostgreSQL's isolation tester runs a permutation, so an anomaly a level permits is
//! produced every time, not by luck.
//!
//! Each session is a thread with its own connection. The controller sends a step and waits until
//! it completes or the session is seen waiting for a lock (`pg_blocking_pids`); a waiting step is
//! left pending and the schedule moves on, so the other session can release (or deadlock on) the
//! lock. A session's next step is only sent once its pending one has finished. After an error the
//! session's transaction is over: its remaining steps are skipped.
//!
//! Invariant: a session's records join the committed history only when its COMMIT step succeeded.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Result;
use postgres::Client;

use super::verify::{Record, Shape};
use super::{tables, Check, Level};
use crate::engine::stats::ErrorClass;
use crate::target::Target;

/// What a step may use and produce: the values this session read, and its effects.
#[derive(Default)]
struct State {
    reads: Vec<i64>,
    records: Vec<Record>,
}

type Action = Box<dyn FnOnce(&mut Client, &mut State) -> Result<String, postgres::Error> + Send>;

/// One step of the schedule.
struct Step {
    session: usize,
    label: String,
    commit: bool,
    action: Action,
}

/// What a session thread reports for a step.
enum Reply {
    Done(String),
    Failed(ErrorClass, String),
    Skipped,
}

enum Msg {
    Run(Action, bool),
    Finish,
}

/// What the interleaving produced.
pub struct InterleavingOutcome {
    /// The schedule as run.
    pub steps: Vec<String>,
    /// The committed history of both sessions.
    pub records: Vec<Record>,
    /// 40P01 received.
    pub deadlocks: u64,
    /// 40001 received.
    pub serialization_failures: u64,
}

/// The table of a check's interleaving.
pub fn shape(check: Check) -> Shape {
    match check {
        Check::Bank => Shape {
            rows: 2,
            per_group: 2,
            initial: 1000,
        },
        Check::LostUpdate | Check::Deadlock => Shape {
            rows: 2,
            per_group: 1,
            initial: 0,
        },
        Check::WriteSkew => Shape {
            rows: 2,
            per_group: 2,
            initial: 50,
        },
        Check::ReadSkew => Shape {
            rows: 2,
            per_group: 2,
            initial: 500,
        },
    }
}

fn begin(session: usize, level: Level) -> Step {
    Step {
        session,
        label: level.begin_sql().to_string(),
        commit: false,
        action: Box::new(move |c, _| c.batch_execute(level.begin_sql()).map(|()| "ok".into())),
    }
}

fn commit(session: usize) -> Step {
    Step {
        session,
        label: "COMMIT".into(),
        commit: true,
        action: Box::new(|c, _| c.batch_execute("COMMIT").map(|()| "ok".into())),
    }
}

/// `UPDATE t SET v = v + delta WHERE id = row`.
fn add(session: usize, t: &'static str, row: usize, delta: i64) -> Step {
    Step {
        session,
        label: if delta < 0 {
            format!("UPDATE {t} SET v = v - {} WHERE id = {row}", -delta)
        } else {
            format!("UPDATE {t} SET v = v + {delta} WHERE id = {row}")
        },
        commit: false,
        action: Box::new(move |c, s| {
            c.execute(
                &format!("UPDATE {t} SET v = v + $2 WHERE id = $1"),
                &[&(row as i32), &delta],
            )?;
            s.records.push(Record::Add { row, delta });
            Ok("ok".into())
        }),
    }
}

/// Reads one row's value into the session's reads.
fn read(session: usize, t: &'static str, row: usize) -> Step {
    Step {
        session,
        label: format!("SELECT v FROM {t} WHERE id = {row}"),
        commit: false,
        action: Box::new(move |c, s| {
            let v: i64 = c
                .query_one(
                    &format!("SELECT v FROM {t} WHERE id = $1"),
                    &[&(row as i32)],
                )?
                .get(0);
            s.reads.push(v);
            Ok(format!("v = {v}"))
        }),
    }
}

/// Reads the whole table's total (`group` None) or one group's, recording the observation.
fn sum(session: usize, t: &'static str, group: Option<usize>) -> Step {
    let label = match group {
        None => format!("SELECT sum(v) FROM {t}"),
        Some(g) => format!("SELECT sum(v) FROM {t} WHERE grp = {g}"),
    };
    Step {
        session,
        label,
        commit: false,
        action: Box::new(move |c, s| {
            let row = match group {
                None => c.query_one(&format!("SELECT sum(v)::bigint FROM {t}"), &[])?,
                Some(g) => c.query_one(
                    &format!("SELECT sum(v)::bigint FROM {t} WHERE grp = $1"),
                    &[&(g as i32)],
                )?,
            };
            let total: i64 = row.get::<_, Option<i64>>(0).unwrap_or(0);
            s.reads.push(total);
            s.records.push(Record::Sum { group, total });
            Ok(format!("sum = {total}"))
        }),
    }
}

/// The schedule of a check: the classic two-session permutation that exhibits its anomaly.
fn script(check: Check, level: Level) -> Vec<Step> {
    let t = tables::table(check);
    match check {
        // An auditor reads the total while a transfer is half done, then after it commits; a
        // second transfer on the same account waits for the row lock (READ COMMITTED re-applies
        // its in-place update to the new row version, the stronger levels abort it with 40001),
        // so totals always add up.
        Check::Bank => vec![
            begin(0, level),
            begin(1, level),
            begin(2, level),
            add(0, t, 0, -100),
            sum(1, t, None),
            add(2, t, 0, 30),
            add(0, t, 1, 100),
            commit(0),
            sum(1, t, None),
            add(2, t, 1, -30),
            commit(2),
            commit(1),
        ],
        // Both read the counter, both write back what they read plus one.
        Check::LostUpdate => vec![
            begin(0, level),
            read(0, t, 0),
            begin(1, level),
            read(1, t, 0),
            write_back(0, t),
            commit(0),
            write_back(1, t),
            commit(1),
        ],
        // Both check "checking + savings >= 70" on the same snapshot, then each withdraws 70
        // from a different account.
        Check::WriteSkew => vec![
            begin(0, level),
            sum(0, t, Some(0)),
            begin(1, level),
            sum(1, t, Some(0)),
            withdraw(0, t, 0, 70),
            withdraw(1, t, 1, 70),
            commit(0),
            commit(1),
        ],
        // A reader reads x, a transfer from x to y commits, the reader reads y.
        Check::ReadSkew => vec![
            begin(0, level),
            read(0, t, 0),
            begin(1, level),
            add(1, t, 0, -100),
            add(1, t, 1, 100),
            commit(1),
            read(0, t, 1),
            pair_total(0),
            commit(0),
        ],
        // Opposite lock order on two rows: a cycle the server must break.
        Check::Deadlock => vec![
            begin(0, level),
            begin(1, level),
            add(0, t, 0, 1),
            add(1, t, 1, 1),
            add(0, t, 1, 1),
            add(1, t, 0, 1),
            commit(0),
            commit(1),
        ],
    }
}

/// Sessions a check's script uses (the bank script adds an auditor to its two transfers).
fn script_sessions(check: Check) -> usize {
    match check {
        Check::Bank => 3,
        _ => 2,
    }
}

/// Writes back the last value read plus one (a client-side read-modify-write of row 0).
fn write_back(session: usize, t: &'static str) -> Step {
    Step {
        session,
        label: format!("UPDATE {t} SET v = <value read + 1> WHERE id = 0"),
        commit: false,
        action: Box::new(move |c, s| {
            let v = s.reads.last().copied().unwrap_or(0) + 1;
            c.execute(&format!("UPDATE {t} SET v = $1 WHERE id = 0"), &[&v])?;
            s.records.push(Record::Add { row: 0, delta: 1 });
            Ok(format!("v := {v}"))
        }),
    }
}

/// Withdraws `amount` from `row` if the last total read covers it (the client-side rule).
fn withdraw(session: usize, t: &'static str, row: usize, amount: i64) -> Step {
    Step {
        session,
        label: format!(
            "if the total read >= {amount}: UPDATE {t} SET v = v - {amount} WHERE id = {row}"
        ),
        commit: false,
        action: Box::new(move |c, s| {
            if s.reads.last().copied().unwrap_or(0) < amount {
                return Ok("declined".into());
            }
            c.execute(
                &format!("UPDATE {t} SET v = v - $2 WHERE id = $1"),
                &[&(row as i32), &amount],
            )?;
            s.records.push(Record::Add {
                row,
                delta: -amount,
            });
            Ok("withdrawn".into())
        }),
    }
}

/// Records the reader's x + y (its last two reads) as its view of pair 0.
fn pair_total(session: usize) -> Step {
    Step {
        session,
        label: "(client) x + y".into(),
        commit: false,
        action: Box::new(|_, s| {
            let n = s.reads.len();
            let total = s.reads[n.saturating_sub(2)..].iter().sum();
            s.records.push(Record::Sum {
                group: Some(0),
                total,
            });
            Ok(format!("x + y = {total}"))
        }),
    }
}

/// A session thread: runs the steps it is sent, in order, on its own connection.
fn session_thread(
    mut c: Client,
    rx: mpsc::Receiver<Msg>,
    tx: mpsc::Sender<Reply>,
) -> (bool, Vec<Record>) {
    let mut state = State::default();
    let mut failed = false;
    let mut committed = false;
    while let Ok(msg) = rx.recv() {
        let (action, is_commit) = match msg {
            Msg::Run(a, is_commit) => (a, is_commit),
            Msg::Finish => break,
        };
        if failed {
            let _ = tx.send(Reply::Skipped);
            continue;
        }
        let reply = match action(&mut c, &mut state) {
            Ok(s) => {
                committed |= is_commit;
                Reply::Done(s)
            }
            Err(e) => {
                failed = true;
                let _ = c.batch_execute("ROLLBACK");
                Reply::Failed(ErrorClass::of(&e), crate::target::one_line(&e))
            }
        };
        if tx.send(reply).is_err() {
            break;
        }
    }
    let _ = c.batch_execute("ROLLBACK");
    (committed && !failed, state.records)
}

/// Whether backend `pid` is waiting for a lock held by another backend.
fn blocked(admin: &mut Client, pid: i32) -> Result<bool, postgres::Error> {
    Ok(admin
        .query_one("SELECT cardinality(pg_blocking_pids($1)) > 0", &[&pid])?
        .get(0))
}

/// Runs the check's interleaving at `level` on a freshly reset table.
pub fn run(
    target: &Target,
    admin: &mut Client,
    check: Check,
    level: Level,
    deadlock_timeout: Option<&str>,
) -> Result<InterleavingOutcome> {
    tables::reset(admin, check, shape(check))?;
    let mut senders = Vec::new();
    let mut replies = Vec::new();
    let mut pids = Vec::new();
    let mut handles = Vec::new();
    let sessions = script_sessions(check);
    for _ in 0..sessions {
        let mut c = super::load::connect(target, deadlock_timeout)?;
        pids.push(
            c.query_one("SELECT pg_backend_pid()", &[])?
                .get::<_, i32>(0),
        );
        let (tx, rx) = mpsc::channel();
        let (rtx, rrx) = mpsc::channel();
        handles.push(std::thread::spawn(move || session_thread(c, rx, rtx)));
        senders.push(tx);
        replies.push(rrx);
    }
    let mut out = InterleavingOutcome {
        steps: Vec::new(),
        records: Vec::new(),
        deadlocks: 0,
        serialization_failures: 0,
    };
    let mut pending: Vec<Option<String>> = vec![None; sessions];
    let long = Duration::from_secs(60);
    let note = |out: &mut InterleavingOutcome, who: usize, label: &str, r: Reply, late: bool| {
        let outcome = match r {
            Reply::Done(s) => s,
            Reply::Skipped => "skipped (transaction already aborted)".into(),
            Reply::Failed(class, msg) => {
                match class {
                    ErrorClass::Deadlock => out.deadlocks += 1,
                    ErrorClass::Serialization => out.serialization_failures += 1,
                    _ => {}
                }
                msg
            }
        };
        let when = if late { " (after waiting)" } else { "" };
        out.steps
            .push(format!("s{}: {label} -> {outcome}{when}", who + 1));
    };
    let result = (|| -> Result<()> {
        for step in script(check, level) {
            let s = step.session;
            if let Some(label) = pending[s].take() {
                let r = replies[s].recv_timeout(long).map_err(|_| {
                    anyhow::anyhow!("session s{} stayed blocked on: {label}", s + 1)
                })?;
                note(&mut out, s, &label, r, true);
            }
            senders[s]
                .send(Msg::Run(step.action, step.commit))
                .map_err(|_| anyhow::anyhow!("session s{} ended early", s + 1))?;
            let deadline = Instant::now() + long;
            loop {
                match replies[s].recv_timeout(Duration::from_millis(5)) {
                    Ok(r) => {
                        note(&mut out, s, &step.label, r, false);
                        break;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        anyhow::bail!("session s{} ended early", s + 1)
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                }
                if blocked(admin, pids[s])? {
                    out.steps
                        .push(format!("s{}: {} -> waiting for a lock", s + 1, step.label));
                    pending[s] = Some(step.label);
                    break;
                }
                if Instant::now() > deadline {
                    anyhow::bail!("step s{}: {} did not finish", s + 1, step.label);
                }
            }
            for (o, p) in pending.iter_mut().enumerate() {
                if o == s || p.is_none() {
                    continue;
                }
                // The other session may have been released (or chosen as deadlock victim).
                if let Ok(r) = replies[o].recv_timeout(Duration::from_millis(20)) {
                    let label = p.take().unwrap_or_default();
                    note(&mut out, o, &label, r, true);
                }
            }
        }
        for (s, p) in pending.iter_mut().enumerate() {
            if let Some(label) = p.take() {
                let r = replies[s].recv_timeout(long).map_err(|_| {
                    anyhow::anyhow!("session s{} stayed blocked on: {label}", s + 1)
                })?;
                note(&mut out, s, &label, r, true);
            }
        }
        Ok(())
    })();
    for tx in &senders {
        let _ = tx.send(Msg::Finish);
    }
    for h in handles {
        let (committed, records) = h
            .join()
            .map_err(|_| anyhow::anyhow!("an interleaving session panicked"))?;
        if committed {
            out.records.extend(records);
        }
    }
    result.map_err(|e| {
        e.context(format!(
            "the {} interleaving at {}",
            check.name(),
            level.title()
        ))
    })?;
    Ok(out)
}
