//! The concurrent load phase of one (check, level): worker threads on their own connections run
//! the check's transaction, classify every attempt by SQLSTATE, retry 40001/40P01 up to
//! `max_tries` (as pgbench), and keep the committed history the invariant check needs.
//!
//! Invariants: a transaction's records enter the history only once its COMMIT succeeded; a failed
//! attempt is rolled back before the next; latency runs from the first attempt to the commit.
//! All workers start together (a barrier) so they contend from the first transaction.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::Result;
use postgres::{Client, Statement};

use super::verify::{Record, Shape};
use super::{tables, Check, Level};
use crate::engine::stats::{self, ErrorClass, Hist, N_CLASSES};
use crate::rng::Rng;
use crate::stop::StopToken;
use crate::target::Target;

/// `application_name` of the workers' and interleaving sessions' connections.
pub const APPLICATION_NAME: &str = "pgstorm-isolation";

/// How one load phase is driven.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Concurrent workers.
    pub workers: u32,
    /// Transactions per worker (None: run for `duration`).
    pub transactions: Option<u64>,
    /// Duration (used when `transactions` is None).
    pub duration: Duration,
    /// Attempts per transaction (1 = no retry).
    pub max_tries: u32,
    /// `deadlock_timeout` to set on each connection, when the server allows it.
    pub deadlock_timeout: Option<String>,
    /// Random seed.
    pub seed: u64,
    /// What stops the phase early (the session's token: Ctrl-C in the app).
    pub stop: StopToken,
}

/// What a load phase measured.
pub struct LoadOutcome {
    /// Wall time.
    pub wall: Duration,
    /// Transactions started.
    pub transactions: u64,
    /// Transactions committed.
    pub committed: u64,
    /// Abandoned transactions by the class of their last error.
    pub failed: [u64; N_CLASSES],
    /// Failed attempts by class.
    pub attempt_errors: [u64; N_CLASSES],
    /// Attempts beyond the first.
    pub retries: u64,
    /// Committed transactions that needed a retry.
    pub retried_transactions: u64,
    /// Latency of committed transactions (µs).
    pub latency: Hist,
    /// The committed history of every worker.
    pub records: Vec<Record>,
    /// Ctrl-C stopped the phase early.
    pub interrupted: bool,
}

/// The table a check's load phase uses, sized for `spec`.
pub fn shape(check: Check, spec: &LoadSpec) -> Shape {
    match check {
        Check::Bank => Shape {
            rows: 10,
            per_group: 10,
            initial: 10_000,
        },
        Check::LostUpdate => Shape {
            rows: 4,
            per_group: 1,
            initial: 0,
        },
        // One customer per transaction index, so every worker's j-th transaction contends for
        // customer j at about the same moment: the edge where write skew happens.
        Check::WriteSkew => Shape {
            rows: 2 * spec.transactions.unwrap_or(100).clamp(1, 1000) as usize,
            per_group: 2,
            initial: 50,
        },
        Check::ReadSkew => Shape {
            rows: 8,
            per_group: 2,
            initial: 500,
        },
        // One pair of rows per couple of workers (2k, 2k+1), locked in opposite orders: deadlocks
        // are forced between two sessions at a time, couples in parallel, instead of a 20-way
        // lock queue where every transaction waits out deadlock_timeout.
        Check::Deadlock => Shape {
            rows: 2 * (spec.workers as usize / 2).max(1),
            per_group: 2,
            initial: 0,
        },
    }
}

/// Opens a connection for the isolation sessions, with timeouts that keep a stuck phase bounded.
pub fn connect(target: &Target, deadlock_timeout: Option<&str>) -> Result<Client> {
    let mut cfg = target.config.clone();
    cfg.application_name(APPLICATION_NAME);
    let mut c = target
        .connect_with(&cfg)
        .map_err(|e| crate::target::connect_error(&target.display, &e))?;
    let mut setup = String::from("SET statement_timeout = '60s';");
    if let Some(t) = deadlock_timeout {
        setup.push_str(&format!("SET deadlock_timeout = '{t}';"));
    }
    c.batch_execute(&setup).map_err(|e| {
        crate::error::target(format!(
            "setting up an isolation session on {}: {}",
            target.display,
            crate::target::one_line(&e)
        ))
    })?;
    Ok(c)
}

/// The statements of a check's transaction, prepared once per connection.
fn prepare(c: &mut Client, check: Check) -> Result<Vec<Statement>, postgres::Error> {
    let t = tables::table(check);
    let add = format!("UPDATE {t} SET v = v + $2 WHERE id = $1");
    let sqls: Vec<String> = match check {
        Check::Bank => vec![add, format!("SELECT sum(v)::bigint FROM {t}")],
        Check::LostUpdate => vec![
            format!("SELECT v FROM {t} WHERE id = $1"),
            format!("UPDATE {t} SET v = $2 WHERE id = $1"),
        ],
        Check::WriteSkew => vec![
            add,
            format!("SELECT sum(v)::bigint FROM {t} WHERE grp = $1"),
        ],
        Check::ReadSkew => vec![add, format!("SELECT v FROM {t} WHERE id = $1")],
        Check::Deadlock => vec![add],
    };
    sqls.iter().map(|s| c.prepare(s)).collect()
}

/// Where a worker is: its index, its transaction index, and its random stream.
struct Ctx<'a> {
    worker: usize,
    j: u64,
    rng: &'a mut Rng,
}

/// One attempt of the check's transaction body (between BEGIN and COMMIT); pushes its effects and
/// observations onto `out`.
fn body(
    check: Check,
    c: &mut Client,
    st: &[Statement],
    shape: Shape,
    cx: &mut Ctx<'_>,
    out: &mut Vec<Record>,
) -> Result<(), postgres::Error> {
    let id = |i: usize| i as i32;
    match check {
        Check::Bank => {
            if cx.rng.next_f64() < 0.25 {
                let total: i64 = c.query_one(&st[1], &[])?.get(0);
                out.push(Record::Sum { group: None, total });
            } else {
                let a = cx.rng.range_i64(0, shape.rows as i64 - 1) as usize;
                let b = (a + cx.rng.range_i64(1, shape.rows as i64 - 1) as usize) % shape.rows;
                let amount = cx.rng.range_i64(1, 100);
                // Lower id first: transfers never deadlock each other (that is the deadlock
                // check's job), so this check isolates the in-place update semantics.
                let (first, second) = if a < b {
                    ((a, -amount), (b, amount))
                } else {
                    ((b, amount), (a, -amount))
                };
                for (row, delta) in [first, second] {
                    c.execute(&st[0], &[&id(row), &delta])?;
                    out.push(Record::Add { row, delta });
                }
            }
        }
        Check::LostUpdate => {
            let row = cx.rng.range_i64(0, shape.rows as i64 - 1) as usize;
            let v: i64 = c.query_one(&st[0], &[&id(row)])?.get(0);
            // Read-modify-write computed in the client: the pattern lost updates come from.
            c.execute(&st[1], &[&id(row), &(v + 1)])?;
            out.push(Record::Add { row, delta: 1 });
        }
        Check::WriteSkew => {
            let customer = (cx.j % shape.groups() as u64) as usize;
            let amount = cx.rng.range_i64(60, 90);
            let balance: Option<i64> = c.query_one(&st[1], &[&id(customer)])?.get(0);
            // The rule "checking + savings stays >= 0" is checked here, in the client, on what
            // this transaction read: the write skew pattern.
            if balance.unwrap_or(0) >= amount {
                let row = 2 * customer + cx.rng.range_i64(0, 1) as usize;
                c.execute(&st[0], &[&id(row), &-amount])?;
                out.push(Record::Add {
                    row,
                    delta: -amount,
                });
            }
        }
        Check::ReadSkew => {
            let pair = cx.rng.range_i64(0, shape.groups() as i64 - 1) as usize;
            let (x, y) = (2 * pair, 2 * pair + 1);
            if (cx.worker as u64 + cx.j).is_multiple_of(2) {
                let amount = cx.rng.range_i64(-50, 50);
                for (row, delta) in [(x, -amount), (y, amount)] {
                    c.execute(&st[0], &[&id(row), &delta])?;
                    out.push(Record::Add { row, delta });
                }
            } else {
                // Two statements: at READ COMMITTED each gets its own snapshot.
                let vx: i64 = c.query_one(&st[1], &[&id(x)])?.get(0);
                let vy: i64 = c.query_one(&st[1], &[&id(y)])?.get(0);
                out.push(Record::Sum {
                    group: Some(pair),
                    total: vx + vy,
                });
            }
        }
        Check::Deadlock => {
            let pair = (cx.worker / 2) % shape.groups();
            let (a, b) = (2 * pair, 2 * pair + 1);
            // Odd workers lock the same two rows in the opposite order: a lock cycle.
            let order = if cx.worker.is_multiple_of(2) {
                [a, b]
            } else {
                [b, a]
            };
            for row in order {
                c.execute(&st[0], &[&id(row), &1i64])?;
                out.push(Record::Add { row, delta: 1 });
            }
        }
    }
    Ok(())
}

/// One worker's tallies.
struct WorkerOut {
    transactions: u64,
    committed: u64,
    failed: [u64; N_CLASSES],
    attempt_errors: [u64; N_CLASSES],
    retries: u64,
    retried_transactions: u64,
    latency: Hist,
    records: Vec<Record>,
}

#[allow(clippy::too_many_arguments)]
fn worker(
    mut c: Client,
    check: Check,
    level: Level,
    shape: Shape,
    spec: &LoadSpec,
    w: usize,
    barrier: &Barrier,
    deadline: Instant,
) -> Result<WorkerOut> {
    let prepared = prepare(&mut c, check);
    // Wait at the barrier even when preparing failed, so the other workers are not stuck.
    barrier.wait();
    let st = prepared.map_err(|e| {
        crate::error::target(format!(
            "preparing the {} transaction: {}",
            check.name(),
            crate::target::one_line(&e)
        ))
    })?;
    let mut rng = Rng::stream(spec.seed, w as u64);
    let mut o = WorkerOut {
        transactions: 0,
        committed: 0,
        failed: [0; N_CLASSES],
        attempt_errors: [0; N_CLASSES],
        retries: 0,
        retried_transactions: 0,
        latency: stats::new_hist(3),
        records: Vec::with_capacity(2 * spec.transactions.unwrap_or(1000) as usize),
    };
    let begin = level.begin_sql();
    let mut j = 0u64;
    loop {
        let more = match spec.transactions {
            Some(n) => j < n,
            None => Instant::now() < deadline,
        };
        if !more || spec.stop.is_stopped() {
            break;
        }
        o.transactions += 1;
        let start = Instant::now();
        let mut tries = 0;
        loop {
            tries += 1;
            let mark = o.records.len();
            let mut cx = Ctx {
                worker: w,
                j,
                rng: &mut rng,
            };
            let result = c
                .batch_execute(begin)
                .and_then(|()| body(check, &mut c, &st, shape, &mut cx, &mut o.records))
                .and_then(|()| c.batch_execute("COMMIT"));
            match result {
                Ok(()) => {
                    o.committed += 1;
                    if tries > 1 {
                        o.retried_transactions += 1;
                    }
                    stats::record(&mut o.latency, start.elapsed());
                    break;
                }
                Err(e) => {
                    o.records.truncate(mark);
                    let class = ErrorClass::of(&e);
                    o.attempt_errors[class as usize] += 1;
                    if class.is_connection_loss() {
                        return Err(crate::error::target(format!(
                            "an isolation worker lost its connection during the {} check: {}",
                            check.name(),
                            crate::target::one_line(&e)
                        )));
                    }
                    // A failed COMMIT has already ended the transaction; ROLLBACK then only warns.
                    let _ = c.batch_execute("ROLLBACK");
                    let retryable =
                        matches!(class, ErrorClass::Serialization | ErrorClass::Deadlock);
                    if retryable && tries < spec.max_tries && !spec.stop.is_stopped() {
                        o.retries += 1;
                        continue;
                    }
                    o.failed[class as usize] += 1;
                    break;
                }
            }
        }
        j += 1;
    }
    Ok(o)
}

/// Runs the load phase of `check` at `level` on a freshly reset table.
pub fn run(
    target: &Target,
    admin: &mut Client,
    check: Check,
    level: Level,
    spec: &LoadSpec,
) -> Result<LoadOutcome> {
    let shape = shape(check, spec);
    tables::reset(admin, check, shape)?;
    let n = spec.workers as usize;
    // Connect everyone before the clock starts, so connection set-up is not measured.
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(connect(target, spec.deadlock_timeout.as_deref())?);
    }
    let barrier = Arc::new(Barrier::new(n));
    let started = Instant::now();
    let deadline = started + spec.duration;
    let results: Vec<Result<WorkerOut>> = std::thread::scope(|s| {
        let handles: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(w, c)| {
                let barrier = barrier.clone();
                std::thread::Builder::new()
                    .name(format!("pgstorm-iso-{w}"))
                    .spawn_scoped(s, move || {
                        worker(c, check, level, shape, spec, w, &barrier, deadline)
                    })
                    .expect("spawning a worker thread")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("an isolation worker panicked")))
            })
            .collect()
    });
    let wall = started.elapsed();
    let mut out = LoadOutcome {
        wall,
        transactions: 0,
        committed: 0,
        failed: [0; N_CLASSES],
        attempt_errors: [0; N_CLASSES],
        retries: 0,
        retried_transactions: 0,
        latency: stats::new_hist(3),
        records: Vec::new(),
        interrupted: spec.stop.is_stopped(),
    };
    for r in results {
        let w = r?;
        out.transactions += w.transactions;
        out.committed += w.committed;
        out.retries += w.retries;
        out.retried_transactions += w.retried_transactions;
        for i in 0..N_CLASSES {
            out.failed[i] += w.failed[i];
            out.attempt_errors[i] += w.attempt_errors[i];
        }
        out.latency.add(&w.latency).expect("same bounds everywhere");
        out.records.extend(w.records);
    }
    Ok(out)
}
