//! One multiplexing thread of the `-j` driver: its clients (connection, variables, random stream,
//! transaction in progress), each a small state machine ([`Phase`]), and the loop that advances
//! them and waits for all their sockets in one `ppoll(2)` per round.
//!
//! Split from the run's setup in the parent module because this is the measured hot path.
//!
//! Invariants (the driver's): nothing allocates per query (wire buffers, `Tx` and the pollfd array
//! are reused); a transaction that fails inside a transaction block is followed by a ROLLBACK
//! before the client goes on; a lost connection is replaced with backoff (blocking the thread for
//! the connect, which is rare); at the end in-flight transactions finish (up to the statement
//! timeout) and are counted; a completion's timestamp is read once and serves as the next
//! transaction's start in closed loop (read on [`crate::clock`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::Shared;
use crate::clock::{self, Stamp};
use crate::engine::pool::PoolCounters;
use crate::engine::schedule::Arrivals;
use crate::engine::stats::ErrorClass;
use crate::engine::verbose;
use crate::engine::worker::{
    client_rng, intended_start, may_retry, next_backoff, Recorder, ARRIVAL_STREAM,
};
use crate::rng::Rng;
use crate::wire::{WireConn, WireError};
use crate::workload::script::resume::{Action, Tx};
use crate::workload::script::ClientVars;
use crate::workload::ExecError;

/// Longest single wait in the poll loop, so a stop request is seen promptly.
const MAX_WAIT: Duration = Duration::from_millis(100);
/// Least time in-flight transactions get to finish after the stop (without a statement timeout).
const DRAIN: Duration = Duration::from_secs(5);

/// Where a client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between transactions; in open loop waiting for the next intended start (`wake`).
    Idle,
    /// Inside a transaction, ready to run the next command.
    Running,
    /// Waiting for the reply to an SQL command.
    Waiting,
    /// In a script's `\sleep` until `wake`.
    Sleeping,
    /// Waiting for the reply to the ROLLBACK after a failure.
    RollingBack,
    /// Without a connection until `wake`, then reconnecting.
    Down,
    /// Done (stop, end of schedule or `-t` reached).
    Finished,
}

/// One client: its connection, variables, random stream and current transaction.
struct Client {
    /// The client's index in the run.
    id: u32,
    conn: Option<WireConn>,
    rng: Rng,
    saved_rng: Rng,
    /// The next intended start (open loop), once drawn.
    next_at: Option<Stamp>,
    vars: Vec<ClientVars>,
    tx: Tx,
    phase: Phase,
    kind: usize,
    intended: Option<Stamp>,
    started: Stamp,
    cmd_started: Stamp,
    /// Statistics index of the SQL command in flight (`-r`).
    answered_stat: Option<usize>,
    tries: u32,
    done: u64,
    /// Transaction status of the last ReadyForQuery ('I' idle, 'T' in a block, 'E' failed block).
    status: u8,
    wake: Stamp,
    /// The failure being rolled back.
    failure: Option<ErrorClass>,
    backoff: Duration,
}

/// One multiplexing thread.
///
/// The run's [`Shared`] is passed to each method by reference rather than kept as an `Arc`
/// field: cloning the `Arc` to get around `&mut self` would bounce its reference count between
/// the threads' cores on every query.
pub(super) struct Thread {
    rec: Recorder,
    /// The run's connection counters (a lost connection is counted as closed), held here so a
    /// loss costs no reference-count traffic.
    counters: Arc<PoolCounters>,
    clients: Vec<Client>,
    /// Open loop: the arrivals this thread's clients share.
    arrivals: Option<Arrivals>,
    /// Random stream of the arrival gaps.
    gaps: Rng,
    per_command: bool,
    /// pgbench's `-C`: each client closes its connection after every transaction and opens a
    /// new one (synchronously, as pgbench does) before the next.
    connect_each: bool,
    stopping: bool,
    /// The run's end (`-T`), on the clock's stamps.
    end: Option<Stamp>,
}

impl Thread {
    pub(super) fn new(shared: &Shared, rec: Recorder, conns: Vec<(usize, WireConn)>) -> Thread {
        let now = clock::stamp();
        // The thread's share of the rate follows its share of the clients.
        let share = conns.len() as f64 / shared.clients.max(1) as f64;
        let first = conns.first().map_or(0, |(id, _)| *id);
        let clients = conns
            .into_iter()
            .map(|(id, conn)| {
                let rng = client_rng(shared.seed, id);
                let vars = (0..shared.workload.types.len())
                    .map(|k| shared.script(k).client_vars(id))
                    .collect();
                Client {
                    id: id as u32,
                    conn: Some(conn),
                    saved_rng: rng.clone(),
                    rng,
                    next_at: None,
                    vars,
                    tx: Tx::default(),
                    phase: Phase::Idle,
                    kind: 0,
                    intended: None,
                    started: now,
                    cmd_started: now,
                    answered_stat: None,
                    tries: 0,
                    done: 0,
                    status: b'I',
                    wake: clock::global().stamp_of(shared.start),
                    failure: None,
                    backoff: Duration::ZERO,
                }
            })
            .collect();
        let mut gaps = Rng::stream(shared.seed, ARRIVAL_STREAM + first as u64);
        // As pgbench's per-thread throttle: the thread's clients share one stream of the
        // thread's share of the rate, and the next arrival goes to the first idle client.
        // Thread t's first client is client t: shifting its uniform stream by t total gaps
        // interleaves the threads' arrivals.
        let arrivals = shared.rate.map(|(rate, arrival)| {
            let phase = Duration::from_secs_f64(first as f64 / rate).min(Duration::from_secs(1));
            Arrivals::new(rate * share, arrival, phase, &mut gaps)
        });
        Thread {
            counters: shared.counters.clone(),
            per_command: shared.workload.per_command,
            connect_each: shared.connect_each,
            rec,
            clients,
            arrivals,
            gaps,
            stopping: false,
            end: shared.end.map(|e| clock::global().stamp_of(e)),
        }
    }

    pub(super) fn run(mut self, shared: &Shared) {
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(self.clients.len());
        let mut owners: Vec<usize> = Vec::with_capacity(self.clients.len());
        let mut drain_until: Option<Stamp> = None;
        // Nothing starts before the run's start.
        let wait = shared
            .start
            .saturating_duration_since(std::time::Instant::now());
        std::thread::sleep(wait);
        loop {
            let mut now = clock::stamp();
            if !self.stopping && (shared.stop.load(Ordering::Relaxed) || self.rec.disconnected()) {
                self.stopping = true;
                // In-flight transactions get the statement timeout (at least DRAIN) to finish.
                drain_until =
                    Some(now + shared.statement_timeout.max(DRAIN) + Duration::from_secs(1));
            }
            if drain_until.is_some_and(|d| now >= d) {
                break;
            }
            self.rec.maybe_flush(now);
            let mut next_wake = self.rec.boundary().min(now + MAX_WAIT);
            for i in 0..self.clients.len() {
                let c = &self.clients[i];
                match c.phase {
                    Phase::Idle | Phase::Sleeping | Phase::Down | Phase::Running => {
                        if c.wake <= now || self.stopping || c.phase == Phase::Running {
                            self.drive(shared, i, now);
                            now = clock::stamp();
                        }
                        let c = &self.clients[i];
                        if matches!(c.phase, Phase::Idle | Phase::Sleeping | Phase::Down) {
                            next_wake = next_wake.min(c.wake);
                        }
                    }
                    _ => {}
                }
            }
            fds.clear();
            owners.clear();
            let mut buffered = false;
            for (i, c) in self.clients.iter().enumerate() {
                if !matches!(c.phase, Phase::Waiting | Phase::RollingBack) {
                    continue;
                }
                if let Some(conn) = &c.conn {
                    buffered |= conn.has_buffered_message();
                    let mut events = libc::POLLIN;
                    if conn.wants_write() {
                        events |= libc::POLLOUT;
                    }
                    fds.push(libc::pollfd {
                        fd: conn.as_raw_fd(),
                        events,
                        revents: 0,
                    });
                    owners.push(i);
                }
            }
            if fds.is_empty() {
                if self.clients.iter().all(|c| c.phase == Phase::Finished) {
                    break;
                }
                let d = next_wake.saturating_duration_since(clock::stamp());
                if !d.is_zero() {
                    std::thread::sleep(d);
                }
                continue;
            }
            let timeout = if buffered {
                Duration::ZERO
            } else {
                next_wake.saturating_duration_since(now)
            };
            let ts = libc::timespec {
                tv_sec: timeout.as_secs() as libc::time_t,
                tv_nsec: timeout.subsec_nanos() as libc::c_long,
            };
            // SAFETY: `fds` is a valid, initialised array of `fds.len()` pollfds that outlives
            // the call; the timespec is valid; no signal mask is passed.
            let n = unsafe {
                libc::ppoll(
                    fds.as_mut_ptr(),
                    fds.len() as libc::nfds_t,
                    &ts,
                    std::ptr::null(),
                )
            };
            if n < 0 && !buffered {
                // EINTR (a signal, e.g. Ctrl-C): go round and look at the stop flag.
                continue;
            }
            for k in 0..fds.len() {
                let i = owners[k];
                let ready = fds[k].revents != 0
                    || self.clients[i]
                        .conn
                        .as_ref()
                        .is_some_and(|c| c.has_buffered_message());
                if ready {
                    self.on_ready(shared, i);
                }
            }
        }
        self.rec.flush(clock::stamp(), true);
    }

    /// Reads what a client's socket has and advances it.
    fn on_ready(&mut self, shared: &Shared, i: usize) {
        loop {
            let c = &mut self.clients[i];
            let Some(conn) = c.conn.as_mut() else { return };
            if conn.wants_write() {
                if let Err(e) = conn.flush() {
                    self.lost(i, e, clock::stamp());
                    return;
                }
            }
            let script = shared.script(c.kind);
            let (tx, vars) = (&mut c.tx, &mut c.vars[c.kind]);
            let waiting = c.phase == Phase::Waiting;
            let r = conn.read_available(|msg| {
                if waiting {
                    script.on_reply(tx, vars, msg);
                }
            });
            if c.tx.take_copy_request() {
                conn.queue_copy_fail("pgstorm scripts cannot send COPY data");
                if let Err(e) = conn.flush() {
                    self.lost(i, e, clock::stamp());
                    return;
                }
            }
            match r {
                Ok(Some(status)) => {
                    let now = clock::stamp();
                    c.status = status;
                    match c.phase {
                        Phase::Waiting => {
                            let r = script.finish_sql(&mut c.tx, &mut c.vars[c.kind]);
                            if self.per_command {
                                self.command_stat(i, now, r.is_ok());
                            }
                            match r {
                                Ok(()) => self.clients[i].phase = Phase::Running,
                                Err(e) => self.fail(shared, i, e, now),
                            }
                            self.drive(shared, i, now);
                        }
                        Phase::RollingBack => {
                            let class = self.clients[i].failure.take().unwrap_or(ErrorClass::Other);
                            self.end_failure(shared, i, class, now);
                            self.drive(shared, i, now);
                        }
                        _ => {}
                    }
                    let c = &self.clients[i];
                    let more = c.conn.as_ref().is_some_and(|c| c.has_buffered_message());
                    if !(more && matches!(c.phase, Phase::Waiting | Phase::RollingBack)) {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    self.lost(i, e, clock::stamp());
                    return;
                }
            }
        }
    }

    /// Per-command time of the SQL command just answered (`-r`).
    fn command_stat(&mut self, i: usize, now: Stamp, ok: bool) {
        let c = &self.clients[i];
        let Some(idx) = c.answered_stat else { return };
        let stats = &mut self.rec.batch.types[c.kind].commands;
        if stats.len() <= idx {
            stats.resize(idx + 1, Default::default());
        }
        let s = &mut stats[idx];
        if ok {
            s.count += 1;
            s.sum_ns += now.nanos_since(c.cmd_started);
        } else {
            s.failures += 1;
        }
    }

    /// Advances client `i` as far as it goes without waiting for the server or a timer. It may
    /// end the transaction in flight and start the next one at once (as pgbench does), but a
    /// client whose transactions end without waiting (a failing or SQL-free script) yields to
    /// the others and to the stop flag after its second.
    fn drive(&mut self, shared: &Shared, i: usize, mut now: Stamp) {
        let done_before = self.clients[i].done;
        loop {
            let c = &mut self.clients[i];
            match c.phase {
                Phase::Idle => {
                    if self.stopping || shared.tx_limit.is_some_and(|n| c.done >= n) {
                        c.phase = Phase::Finished;
                        return;
                    }
                    if c.done > done_before + 1 {
                        c.wake = now;
                        return;
                    }
                    if let Some(a) = self.arrivals.as_ref() {
                        let at = match c.next_at {
                            Some(at) => at,
                            None => {
                                let offset = a.take(&mut self.gaps);
                                let at = intended_start(shared.start, shared.end, offset);
                                let Some(at) = at.map(|at| clock::global().stamp_of(at)) else {
                                    c.phase = Phase::Finished;
                                    return;
                                };
                                c.next_at = Some(at);
                                at
                            }
                        };
                        if at > now {
                            c.wake = at;
                            return;
                        }
                        c.next_at = None;
                        c.intended = Some(at);
                        c.kind = shared.workload.pick(&mut c.rng);
                        if self.rec.skip_late(c.id, c.kind, at, now) {
                            c.done += 1;
                            continue;
                        }
                    } else {
                        c.intended = None;
                        c.kind = shared.workload.pick(&mut c.rng);
                    }
                    c.started = now;
                    c.saved_rng = c.rng.clone();
                    c.tries = 1;
                    c.tx.restart();
                    c.phase = Phase::Running;
                }
                Phase::Sleeping => {
                    // Also when stopping: cutting a `\sleep` short would shorten the latency of
                    // the transaction that is counted.
                    if c.wake > now {
                        return;
                    }
                    c.phase = Phase::Running;
                }
                Phase::Running => {
                    let script = shared.script(c.kind);
                    let stats = self
                        .per_command
                        .then_some(&mut self.rec.batch.types[c.kind].commands);
                    let kind = c.kind;
                    match script.resume(&mut c.tx, &mut c.vars[kind], &mut c.rng, stats) {
                        Ok(Action::Sql) => {
                            let Some(conn) = c.conn.as_mut() else {
                                c.phase = Phase::Down;
                                return;
                            };
                            let queued = script.queue_sql(
                                &mut c.tx,
                                &c.vars[kind],
                                shared.workload.protocol,
                                &shared.names[kind],
                                conn,
                            );
                            let stat = script.stat_index(&c.tx);
                            match queued {
                                Err(e) => {
                                    self.fail(shared, i, e, now);
                                    continue;
                                }
                                Ok(false) => {
                                    // Queued in a pipeline: its time is the \endpipeline's, as
                                    // in pgbench.
                                    c.answered_stat = stat;
                                    c.cmd_started = now;
                                    if self.per_command {
                                        self.command_stat(i, now, true);
                                    }
                                    continue;
                                }
                                Ok(true) => {}
                            }
                            c.answered_stat = stat;
                            if self.per_command {
                                c.cmd_started = clock::stamp();
                            }
                            c.phase = Phase::Waiting;
                            if let Err(e) = conn.flush() {
                                self.lost(i, e, now);
                            }
                            return;
                        }
                        Ok(Action::Sleep(d)) => {
                            c.wake = now + d;
                            c.phase = Phase::Sleeping;
                            return;
                        }
                        Ok(Action::Done) if c.status != b'I' => {
                            // As pgbench: the transaction counts, then the client aborts.
                            self.record(i, Ok(()), now);
                            let e = script.unfinished();
                            script.abort(self.clients[i].id, 0, &e);
                            self.drop_connection(i, now);
                            self.clients[i].phase = Phase::Finished;
                            return;
                        }
                        Ok(Action::Done) => {
                            self.record(i, Ok(()), now);
                        }
                        Err(e) => self.fail(shared, i, e, now),
                    }
                }
                Phase::Down => {
                    // A client done with its -t transactions opens no connection (-C).
                    if self.stopping || shared.tx_limit.is_some_and(|n| c.done >= n) {
                        c.phase = Phase::Finished;
                        return;
                    }
                    if c.wake > now {
                        return;
                    }
                    match shared.connect() {
                        Ok(conn) => {
                            c.conn = Some(conn);
                            c.status = b'I';
                            c.phase = Phase::Idle;
                            now = clock::stamp();
                        }
                        Err(_) => {
                            c.backoff = next_backoff(c.backoff);
                            c.wake = clock::stamp() + c.backoff;
                            return;
                        }
                    }
                }
                Phase::Waiting | Phase::RollingBack | Phase::Finished => return,
            }
        }
    }

    /// A command of client `i`'s transaction failed: roll back if a block is open, then retry
    /// or count the failure. Only sets the client's state; the caller drives it on.
    fn fail(&mut self, shared: &Shared, i: usize, e: ExecError, now: Stamp) {
        let class = ErrorClass::of_exec(&e);
        if class.is_connection_loss() {
            self.record(i, Err(class), now);
            self.drop_connection(i, now);
            return;
        }
        let c = &self.clients[i];
        let script = shared.script(c.kind);
        if class.aborts_script_client() && script.aborts_clients() {
            // As pgbench: the client ends, and its connection with it (which also ends any
            // transaction block or pipeline it left open).
            script.abort(c.id, script.line_at(&c.tx), &e);
            self.record(i, Err(class), now);
            self.drop_connection(i, now);
            self.clients[i].phase = Phase::Finished;
            return;
        }
        if class.is_retryable() && shared.verbose_errors {
            let c = &self.clients[i];
            let script = shared.script(c.kind);
            let at = verbose::FailedAt {
                client: c.id,
                kind: c.kind,
                name: shared.workload.types[c.kind].name(),
                line: script.line_at(&c.tx),
            };
            eprintln!("{}", verbose::error_line(at, &e));
        }
        let c = &mut self.clients[i];
        if c.status != b'I' {
            if let Some(conn) = c.conn.as_mut() {
                conn.queue_query_with(|w| w.push_bytes(b"ROLLBACK"));
                c.failure = Some(class);
                c.phase = Phase::RollingBack;
                if let Err(e) = conn.flush() {
                    self.lost(i, e, now);
                }
                return;
            }
        }
        self.end_failure(shared, i, class, now);
    }

    /// After a failure (and its ROLLBACK): retry like pgbench (same random draws), or count it.
    /// Leaves the client Running (retry) or Idle; the caller drives it on.
    fn end_failure(&mut self, shared: &Shared, i: usize, class: ErrorClass, now: Stamp) {
        let c = &mut self.clients[i];
        let may_retry = may_retry(
            class,
            c.tries,
            shared.max_tries,
            self.stopping,
            self.end,
            now,
        );
        if class.is_retryable() && shared.verbose_errors {
            eprintln!(
                "{}",
                verbose::decision_line(c.id, may_retry, c.tries, shared.max_tries)
            );
        }
        if may_retry {
            c.rng = c.saved_rng.clone();
            c.tries += 1;
            c.tx.restart();
            c.phase = Phase::Running;
        } else {
            self.record(i, Err(class), now);
        }
    }

    /// The connection of client `i` broke while it was busy.
    fn lost(&mut self, i: usize, e: WireError, now: Stamp) {
        let c = &self.clients[i];
        if matches!(
            c.phase,
            Phase::Waiting | Phase::RollingBack | Phase::Running
        ) {
            // A FATAL that arrived before the close (57P01 on pg_terminate_backend or a
            // shutdown) says why; the socket error itself has no SQLSTATE.
            let fatal = (c.phase == Phase::Waiting)
                .then(|| c.tx.server_sqlstate())
                .flatten()
                .filter(|s| crate::wire::is_connection_loss_state(s));
            let class = fatal
                .or(e.sqlstate())
                .map_or(ErrorClass::Connection, ErrorClass::of_sqlstate);
            let class = if class.is_connection_loss() {
                class
            } else {
                ErrorClass::Connection
            };
            self.record(i, Err(class), now);
        }
        self.drop_connection(i, now);
    }

    fn drop_connection(&mut self, i: usize, now: Stamp) {
        let c = &mut self.clients[i];
        if c.conn.take().is_some() {
            self.counters.closed.fetch_add(1, Ordering::Relaxed);
        }
        c.failure = None;
        c.backoff = next_backoff(c.backoff);
        c.wake = now + c.backoff;
        c.phase = if self.stopping {
            Phase::Finished
        } else {
            Phase::Down
        };
    }

    /// Counts client `i`'s transaction (success or final failure) and makes it idle.
    fn record(&mut self, i: usize, outcome: Result<(), ErrorClass>, now: Stamp) {
        let c = &mut self.clients[i];
        self.rec.end_transaction(
            None,
            c.id,
            c.kind,
            c.intended.map(|at| c.started.nanos_since(at)),
            c.tries,
            outcome,
            c.intended.unwrap_or(c.started),
            now,
        );
        if outcome.is_ok() {
            c.backoff = Duration::ZERO;
        }
        c.done += 1;
        c.tries = 0;
        c.phase = Phase::Idle;
        if self.connect_each {
            if c.conn.take().is_some() {
                self.counters.closed.fetch_add(1, Ordering::Relaxed);
            }
            c.phase = Phase::Down;
            c.wake = now;
        }
    }
}
