//! Seeding: generate the rows in parallel and stream them to the server with binary COPY (no text
//! for the server to parse; see `generate`), one table per
//! connection, into staging tables; then build their indexes, VACUUM (ANALYZE) them and add
//! their keys, each step on whichever of the (up to `--jobs`) connections is free (see `tasks`),
//! and swap them in by one short transaction. Each phase is timed.
//!
//! Invariants:
//! - Memory is bounded whatever the scale: a producer thread generates a window of `WINDOW`
//!   chunks at a time on the rayon pool and hands each table it feeds its part of the window over
//!   a channel of capacity one, so at most about three windows of COPY data per table exist at
//!   once while the server ingests the previous one.
//! - Each COPY table is described once: its statement by `TableDdl::copy_in`, its chunk writer
//!   by `FEEDS`. With two streams or more, one producer generates each order chunk once for both
//!   the orders and the lines streams (the two then advance together, at the pace of the slower);
//!   one stream loads them one after the other, each from a generation of its own.
//! - Chunks are written in chunk order, so the load order (and with it the physical layout) is the
//!   same on every run; generation order across threads does not matter (see `generate`). A table
//!   is therefore never split over connections: concurrent COPYs into one table interleave their
//!   blocks, which would change index correlation, and with it plans, with `--jobs`. The tables,
//!   and their index builds, run in parallel instead.
//! - Line ids are contiguous 1..=lines: the producer numbers each window's lines in chunk order
//!   once the window is generated, before encoding it, so no counting pass is needed.
//! - Each staging table is created in its loading transaction, so `COPY ... FREEZE` leaves its
//!   rows frozen and all-visible (the VACUUM after it finds nothing to do in the heap); readers
//!   keep the previous dataset until the swap commits, and a seed cut short leaves only staging
//!   tables, dropped by the next seed.
//! - A session-level advisory lock is held from the first step to the swap, so two seeds never
//!   load or drop each other's staging tables.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use crate::stop::StopToken;

use rayon::prelude::*;

use super::generate::{
    write_lines, write_orders, write_partners, OrderChunk, Plan, COPY_BINARY_HEADER,
    COPY_BINARY_TRAILER,
};
use super::schema::{self, Ownership, TABLES};
use super::tasks::{Board, Task};
use super::{
    data_end, data_start, validate_scale, DatasetError, Marker, SeedOptions, Step, DATA_END_UNIX,
    WINDOW_DAYS,
};

/// Chunks generated per window. Affects memory and overlap only, never the data.
const WINDOW: u64 = 64;
/// Minimum time between two progress reports.
const REPORT_EVERY: Duration = Duration::from_secs(1);
/// How often the coordinating thread looks at the loaders' counters.
const POLL: Duration = Duration::from_millis(100);
/// `pg_advisory_lock` key of schema pgstorm's writers (the same as `schema`'s transaction lock).
const LOCK_KEY: i64 = 0x7067_7374_6f72_6d00;

/// Opens one more connection to the seed's target, for a parallel loading stream.
pub type Connect<'a> = dyn Fn() -> Result<postgres::Client, postgres::Error> + Sync + 'a;

/// A progress report while seeding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// What is being done, e.g. "loading pos_order" or "creating index pos_order_create_date_idx".
    pub step: &'static str,
    /// Rows sent to the server so far, all tables together.
    pub rows_loaded: u64,
    /// Rows to send in total.
    pub rows_total: u64,
    /// Time since the seed started.
    pub elapsed: Duration,
}

impl Progress {
    /// Average load rate since the start.
    pub fn rows_per_sec(&self) -> f64 {
        self.rows_loaded as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Share of the rows sent, 0..=1.
    fn fraction(&self) -> f64 {
        (self.rows_loaded as f64 / self.rows_total.max(1) as f64).min(1.0)
    }

    /// A one-line bar for a terminal: `[#####.....]  50% ...`.
    pub fn bar(&self) -> String {
        const WIDTH: usize = 30;
        let filled = (self.fraction() * WIDTH as f64).round() as usize;
        format!(
            "seed [{}{}] {:3.0}% {:.0} rows/s {:.1} s  {}",
            "#".repeat(filled),
            ".".repeat(WIDTH - filled),
            100.0 * self.fraction(),
            self.rows_per_sec(),
            self.elapsed.as_secs_f64(),
            self.step
        )
    }
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed: {}: {}/{} rows ({:.0}%), {:.0} rows/s, {:.1} s",
            self.step,
            self.rows_loaded,
            self.rows_total,
            100.0 * self.fraction(),
            self.rows_per_sec(),
            self.elapsed.as_secs_f64()
        )
    }
}

/// What the loading streams share with the coordinating thread: rows sent, the latest step, and
/// a stop flag raised by the first stream that fails, and the seed's [`StopToken`] (Ctrl-C).
struct Shared {
    rows: AtomicU64,
    step: Mutex<&'static str>,
    stop: AtomicBool,
    /// [`SeedOptions::stop`].
    token: StopToken,
    /// When the seed started: phases are timed from here.
    start: Instant,
    /// Each finished phase, in the order they finished.
    phases: Mutex<Vec<Phase>>,
    /// Rows loaded per table of [`TABLES`], once its COPY has committed.
    loaded: [AtomicU64; 3],
}

impl Shared {
    /// The start of a phase, to give to [`Shared::end`].
    fn begin(&self) -> Duration {
        self.start.elapsed()
    }

    /// Records phase `step`, begun at `began`, as finished now.
    fn end(&self, step: &'static str, began: Duration) {
        let phase = Phase {
            step,
            start: began,
            end: self.start.elapsed(),
        };
        self.phases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(phase);
    }

    fn step(&self, step: &'static str) {
        *self.step.lock().unwrap_or_else(|e| e.into_inner()) = step;
    }

    /// Whether loading must stop: another stream failed or the user interrupted.
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.token.is_stopped()
    }
}

/// Calls the progress callback with the shared counters at most every [`REPORT_EVERY`] (and at
/// each step of the coordinating thread).
struct Meter<'a> {
    start: Instant,
    last: Instant,
    rows_total: u64,
    shared: &'a Shared,
    report: &'a mut dyn FnMut(&Progress),
}

impl Meter<'_> {
    fn emit(&mut self) {
        self.last = Instant::now();
        let p = Progress {
            step: *self.shared.step.lock().unwrap_or_else(|e| e.into_inner()),
            rows_loaded: self.shared.rows.load(Ordering::Relaxed),
            rows_total: self.rows_total,
            elapsed: self.start.elapsed(),
        };
        (self.report)(&p);
    }

    fn step(&mut self, step: &'static str) {
        self.shared.step(step);
        self.emit();
    }

    fn tick(&mut self) {
        if self.last.elapsed() >= REPORT_EVERY {
            self.emit();
        }
    }
}

/// One timed phase of a seed: a table's COPY, an index build, a VACUUM, the keys, the swap.
/// Phases on different connections overlap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Phase {
    /// What was done, e.g. "loading pos_order" or "creating index pos_order_create_date_idx".
    pub step: &'static str,
    /// When it started, from the start of the seed.
    pub start: Duration,
    /// When it ended, from the start of the seed.
    pub end: Duration,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed phase: {:6.2} s from {:6.2} to {:6.2} s  {}",
            (self.end - self.start).as_secs_f64(),
            self.start.as_secs_f64(),
            self.end.as_secs_f64(),
            self.step
        )
    }
}

/// Tells the seed's coordinator that a loader's thread is ending, however it ends (an error or a
/// panic included), by sending on drop.
struct Finished(mpsc::Sender<()>);

impl Drop for Finished {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// One generated chunk of binary COPY tuples.
struct Piece {
    bytes: Vec<u8>,
    rows: u64,
}

/// The window-sized pieces of one table, handed from a producer to the COPY stream of the table.
type Windows = mpsc::Receiver<Vec<Piece>>;

/// Which chunk sequence a table's rows are cut from, and how one chunk becomes COPY tuples.
#[derive(Clone, Copy)]
enum Feed {
    /// The partner chunks.
    Partners,
    /// The order chunks (shared by the orders and their lines): writes a chunk's tuples, given
    /// the id of its first line.
    Orders(fn(&OrderChunk, i64) -> Piece),
}

/// How each table of [`TABLES`] (same order) is fed; its COPY statement is
/// [`schema::TableDdl::copy_in`].
const FEEDS: [Feed; 3] = [
    Feed::Partners,
    Feed::Orders(|chunk, _| {
        let mut bytes = Vec::with_capacity(chunk.orders.len() * 48);
        write_orders(chunk, &mut bytes);
        Piece {
            bytes,
            rows: chunk.orders.len() as u64,
        }
    }),
    Feed::Orders(|chunk, first_line| {
        let mut bytes = Vec::with_capacity(chunk.lines.len() * 40);
        write_lines(chunk, first_line, &mut bytes);
        Piece {
            bytes,
            rows: chunk.lines.len() as u64,
        }
    }),
];

/// Index of `pos_order` in [`TABLES`].
const ORDERS: usize = 1;
/// Index of `pos_order_line` in [`TABLES`].
const LINES: usize = 2;

/// Generates the COPY data of the tables in `outputs` (the partners alone, or tables cut from the
/// order chunks) a window of `WINDOW` chunks at a time, in chunk order, and hands each table's
/// pieces of the window to its sender: one generation of a chunk feeds every table cut from it.
/// Line ids are numbered here, in chunk order, so they are contiguous without a counting pass.
/// Returns when done, when a receiver is gone (its stream failed), or when the seed stops.
fn produce(plan: &Plan, outputs: &[(usize, mpsc::SyncSender<Vec<Piece>>)], shared: &Shared) {
    let partners = outputs
        .iter()
        .all(|&(t, _)| matches!(FEEDS[t], Feed::Partners));
    let chunks = if partners {
        plan.partner_chunks()
    } else {
        plan.order_chunks()
    };
    let mut next_line = 1i64;
    let mut k = 0;
    while k < chunks {
        let end = (k + WINDOW).min(chunks);
        let windows: Vec<Vec<Piece>> = if partners {
            let window = (k..end)
                .into_par_iter()
                .map(|k| {
                    let partners = plan.partner_chunk(k);
                    let mut bytes = Vec::with_capacity(partners.len() * 80);
                    write_partners(&partners, &mut bytes);
                    Piece {
                        bytes,
                        rows: partners.len() as u64,
                    }
                })
                .collect();
            vec![window]
        } else {
            let generated: Vec<OrderChunk> = (k..end)
                .into_par_iter()
                .map(|k| plan.order_chunk(k))
                .collect();
            let first_lines: Vec<i64> = generated
                .iter()
                .map(|c| {
                    let first = next_line;
                    next_line += c.lines.len() as i64;
                    first
                })
                .collect();
            outputs
                .iter()
                .map(|&(t, _)| match FEEDS[t] {
                    Feed::Orders(write) => generated
                        .par_iter()
                        .zip(&first_lines)
                        .map(|(c, &first)| write(c, first))
                        .collect(),
                    // Not cut from the order chunks: nothing, which its stream reports.
                    Feed::Partners => Vec::new(),
                })
                .collect()
        };
        for ((_, send), window) in outputs.iter().zip(windows) {
            if !hand_over(send, window, shared) {
                return;
            }
        }
        k = end;
    }
}

/// Sends `window` once its stream has room; `false` when the stream is gone or the seed stops
/// (so a producer feeding two streams never waits forever on one that failed or never started).
fn hand_over(send: &mpsc::SyncSender<Vec<Piece>>, window: Vec<Piece>, shared: &Shared) -> bool {
    let mut window = window;
    loop {
        match send.try_send(window) {
            Ok(()) => return true,
            Err(mpsc::TrySendError::Disconnected(_)) => return false,
            Err(mpsc::TrySendError::Full(back)) => {
                if shared.stopped() {
                    return false;
                }
                window = back;
                std::thread::sleep(HAND_OVER_WAIT);
            }
        }
    }
}

/// How long a producer whose stream is full waits before trying again.
const HAND_OVER_WAIT: Duration = Duration::from_millis(1);

/// Streams the windows of `receive` into table `t`'s `COPY ... FROM STDIN`, in chunk order;
/// returns the rows sent.
fn copy_windows(
    tx: &mut postgres::Transaction<'_>,
    t: usize,
    receive: Windows,
    shared: &Shared,
) -> Result<u64, DatasetError> {
    let step = COPY_STEPS[t];
    shared.step(step);
    let mut writer = tx.copy_in(&TABLES[t].copy_in()).step(step)?;
    writer
        .write_all(COPY_BINARY_HEADER)
        .map_err(|source| DatasetError::Copy { step, source })?;
    let mut rows = 0;
    for window in receive {
        if shared.stopped() {
            return Err(DatasetError::Stopped);
        }
        for piece in window {
            writer
                .write_all(&piece.bytes)
                .map_err(|source| DatasetError::Copy { step, source })?;
            rows += piece.rows;
            shared.rows.fetch_add(piece.rows, Ordering::Relaxed);
        }
    }
    // The producer also ends early when the seed stops: never commit a partial table.
    if shared.stopped() {
        return Err(DatasetError::Stopped);
    }
    writer
        .write_all(COPY_BINARY_TRAILER)
        .map_err(|source| DatasetError::Copy { step, source })?;
    let copied = writer.finish().step(step)?;
    if copied != rows {
        return Err(DatasetError::Inconsistent(format!(
            "{step}: generated {rows} rows, server copied {copied}"
        )));
    }
    Ok(rows)
}

/// COPY steps, per table of [`TABLES`].
const COPY_STEPS: [&str; 3] = [
    "loading res_partner",
    "loading pos_order",
    "loading pos_order_line",
];

/// Seeds the dataset over the one connection `client` (see [`seed_with`]); progress goes to
/// stderr when `opts.progress` is set or stderr is a terminal, and with it, at the end, the time
/// of each phase.
pub fn seed(client: &mut postgres::Client, opts: &SeedOptions) -> Result<Marker, DatasetError> {
    with_progress(opts, |report| run(client, None, 1, opts, report))
}

/// [`seed`] with up to `jobs` connections loading tables and building indexes at once, the
/// extra ones opened by `connect`.
pub fn seed_parallel(
    client: &mut postgres::Client,
    connect: &Connect<'_>,
    jobs: u32,
    opts: &SeedOptions,
) -> Result<Marker, DatasetError> {
    with_progress(opts, |report| {
        run(client, Some(connect), jobs, opts, report)
    })
}

/// Runs `f` with the progress display: a bar redrawn in place on a terminal, one line a second
/// with `opts.progress` elsewhere, nothing otherwise; then the phases of a seed that succeeded,
/// in the order they started, where the progress went.
fn with_progress(
    opts: &SeedOptions,
    f: impl FnOnce(&mut dyn FnMut(&Progress)) -> Result<(Marker, Vec<Phase>), DatasetError>,
) -> Result<Marker, DatasetError> {
    let tty = std::io::stderr().is_terminal();
    let out = if tty {
        let out = f(&mut |p| {
            let mut e = std::io::stderr().lock();
            let _ = write!(e, "\r\x1b[2K{}", p.bar());
            let _ = e.flush();
        });
        eprintln!();
        out
    } else if opts.progress {
        f(&mut |p| eprintln!("{p}"))
    } else {
        f(&mut |_| {})
    };
    let (marker, mut phases) = out?;
    if tty || opts.progress {
        phases.sort_by_key(|p| p.start);
        for p in &phases {
            eprintln!("{p}");
        }
    }
    Ok(marker)
}

/// Builds the dataset over one connection: staging tables loaded, indexed, VACUUM ANALYZEd and
/// linked, then swapped in for the previous dataset. `report` is called at each step and at
/// most once a second while loading.
pub fn seed_with(
    client: &mut postgres::Client,
    opts: &SeedOptions,
    report: &mut dyn FnMut(&Progress),
) -> Result<Marker, DatasetError> {
    run(client, None, 1, opts, report).map(|(marker, _)| marker)
}

/// Releases the session-level advisory lock when the seed ends, however it ends.
struct SeedLock<'a>(&'a mut postgres::Client);

impl Drop for SeedLock<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]);
    }
}

fn run(
    client: &mut postgres::Client,
    connect: Option<&Connect<'_>>,
    jobs: u32,
    opts: &SeedOptions,
    report: &mut dyn FnMut(&Progress),
) -> Result<(Marker, Vec<Phase>), DatasetError> {
    validate_scale(opts.scale)?;
    let plan = Plan::new(opts.scale, opts.seed, DATA_END_UNIX, WINDOW_DAYS);
    let now = Instant::now();
    let shared = Shared {
        rows: AtomicU64::new(0),
        step: Mutex::new("starting"),
        stop: AtomicBool::new(false),
        token: opts.stop.clone(),
        start: now,
        phases: Mutex::new(Vec::new()),
        loaded: [0, 0, 0].map(AtomicU64::new),
    };
    let mut meter = Meter {
        start: now,
        last: now,
        // Three lines an order, their mean, until the lines are loaded and counted.
        rows_total: plan.partners + plan.orders * 4,
        shared: &shared,
        report,
    };
    meter.step("waiting for another pgstorm process working on schema pgstorm");
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .step("waiting for another pgstorm process working on schema pgstorm")?;
    let lock = SeedLock(client);
    let client = &mut *lock.0;

    let mut tx = client.transaction().step("starting the seed")?;
    if schema::ownership(&mut tx)? == Ownership::Foreign {
        return Err(DatasetError::ForeignSchema);
    }
    let dropped = schema::prepare(&mut tx)?;
    tx.commit().step("committing the seed's preparation")?;
    if dropped > 0 {
        meter.step("dropped the staging tables of an interrupted seed");
    }
    let settings = task_settings(client)?;

    // The order lines are counted as they are generated.
    let expected = [Some(plan.partners), Some(plan.orders), None];

    let streams = match connect {
        Some(_) => jobs.clamp(1, MAX_STREAMS),
        None => 1,
    };
    // With two streams or more, the orders and the lines load side by side from one generation
    // of each order chunk: the board hands their COPYs out first, so two connections take them
    // at once. One stream loads them one after the other, each generating its own.
    let (orders_send, orders_feed) = mpsc::sync_channel(1);
    let (lines_send, lines_feed) = mpsc::sync_channel(1);
    let shared_feed = streams >= 2;
    let feeds: Mutex<[Option<Windows>; 3]> = Mutex::new(if shared_feed {
        [None, Some(orders_feed), Some(lines_feed)]
    } else {
        [None, None, None]
    });

    let board = Board::new();
    let work = |c: &mut postgres::Client| -> Result<(), DatasetError> {
        while let Some(task) = board.next(&|| shared.stopped()) {
            let began = shared.begin();
            let step = run_task(c, task, &settings, &plan, &feeds, &expected, &shared)?;
            shared.end(step, began);
            board.done(task);
        }
        if shared.stopped() {
            return Err(DatasetError::Stopped);
        }
        Ok(())
    };
    let result = std::thread::scope(|s| -> Result<(), DatasetError> {
        if shared_feed {
            let (plan, shared) = (&plan, &shared);
            s.spawn(move || produce(plan, &[(ORDERS, orders_send), (LINES, lines_send)], shared));
        } else {
            drop((orders_send, lines_send));
        }
        // Each loader says when it is done, so the swap starts at once rather than at the
        // coordinator's next progress tick (up to `POLL` later).
        let (finished, wake) = mpsc::channel::<()>();
        let extra: Vec<_> = (1..streams)
            .map(|_| {
                let (work, shared, finished) = (&work, &shared, finished.clone());
                s.spawn(move || -> Result<(), DatasetError> {
                    let _done = Finished(finished);
                    let connect = connect.expect("streams above 1 only with a connector");
                    let mut c = connect().step("opening a loading connection")?;
                    work(&mut c).inspect_err(|_| shared.stop.store(true, Ordering::Relaxed))
                })
            })
            .collect();
        let own = {
            let (work, shared, client) = (&work, &shared, &mut *client);
            s.spawn(move || {
                let _done = Finished(finished);
                work(client).inspect_err(|_| shared.stop.store(true, Ordering::Relaxed))
            })
        };
        while !(own.is_finished() && extra.iter().all(|h| h.is_finished())) {
            match wake.recv_timeout(POLL) {
                // A loader's thread ends just after its guard's message: wait for that.
                Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::yield_now(),
            }
            let lines = shared.loaded[LINES].load(Ordering::Relaxed);
            if lines > 0 {
                meter.rows_total = plan.partners + plan.orders + lines;
            }
            meter.tick();
        }
        let mut first: Option<DatasetError> = None;
        for h in std::iter::once(own).chain(extra) {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    // The stream that failed first says why; the others only stopped.
                    if first.is_none() || matches!(first, Some(DatasetError::Stopped)) {
                        first = Some(e);
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        first.map_or(Ok(()), Err)
    });
    result?;
    let lines = shared.loaded[LINES].load(Ordering::Relaxed);

    meter.step("swapping the new dataset in");
    let swapping = shared.begin();
    let mut tx = client.transaction().step("starting the swap")?;
    if schema::ownership(&mut tx)? == Ownership::Foreign {
        return Err(DatasetError::ForeignSchema);
    }
    schema::swap_in(&mut tx)?;
    let marker = schema::write_marker(
        &mut tx,
        &Marker {
            pgstorm_version: env!("CARGO_PKG_VERSION").to_string(),
            scale: opts.scale,
            seed: opts.seed,
            created_at: chrono::Utc::now(),
            data_start: data_start(),
            data_end: data_end(),
            partners: plan.partners as i64,
            orders: plan.orders as i64,
            lines: lines as i64,
        },
    )?;
    tx.commit().step("committing the seed")?;
    shared.end("swapping the new dataset in", swapping);
    meter.step("done");
    drop(lock);
    let phases = shared
        .phases
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    Ok((marker, phases))
}

/// Most connections a seed uses: one per index build of the widest table set is already more
/// than a server's cores are likely to take.
const MAX_STREAMS: u32 = 8;

/// The `SET LOCAL` statements every seeding transaction starts with: a seed can run for hours at
/// large scales, so no timeout of the caller's session may cut it, and index builds go much
/// faster with more than the 64 MB default maintenance_work_mem.
fn task_settings(client: &mut postgres::Client) -> Result<String, DatasetError> {
    let mwm_kb: i64 = client
        .query_one(
            "SELECT setting::bigint FROM pg_catalog.pg_settings WHERE name = 'maintenance_work_mem'",
            &[],
        )
        .step("reading maintenance_work_mem")?
        .get(0);
    Ok(format!(
        "SET LOCAL statement_timeout = 0; SET LOCAL idle_in_transaction_session_timeout = 0;{}",
        if mwm_kb < 256 * 1024 {
            " SET LOCAL maintenance_work_mem = '256MB';"
        } else {
            ""
        }
    ))
}

/// `VACUUM (ANALYZE)` steps, per table of [`TABLES`].
const VACUUM_STEPS: [&str; 3] = [
    "vacuum analyze res_partner",
    "vacuum analyze pos_order",
    "vacuum analyze pos_order_line",
];

/// Key steps, per table of [`TABLES`].
const LINK_STEPS: [&str; 3] = [
    "adding the keys of res_partner",
    "adding the keys of pos_order",
    "adding the keys of pos_order_line",
];

/// Runs one task on `c`; returns its step.
fn run_task(
    c: &mut postgres::Client,
    task: Task,
    settings: &str,
    plan: &Plan,
    feeds: &Mutex<[Option<Windows>; 3]>,
    expected: &[Option<u64>; 3],
    shared: &Shared,
) -> Result<&'static str, DatasetError> {
    match task {
        Task::Copy(t) => {
            let mut tx = c.transaction().step("starting a loading transaction")?;
            tx.batch_execute(settings)
                .step("setting the seed session's timeouts")?;
            let feed = feeds.lock().unwrap_or_else(|e| e.into_inner())[t].take();
            let (step, rows) = copy_table(&mut tx, t, plan, feed, shared)?;
            if let Some(want) = expected[t].filter(|&want| want != rows) {
                return Err(DatasetError::Inconsistent(format!(
                    "loading {}: sent {rows} rows, expected {want}",
                    TABLES[t].name
                )));
            }
            tx.commit().step("committing a loaded staging table")?;
            shared.loaded[t].store(rows, Ordering::Relaxed);
            Ok(step)
        }
        Task::Index(t, i) => {
            shared.step(TABLES[t].indexes[i].0);
            let mut tx = c.transaction().step("starting an index build")?;
            tx.batch_execute(settings)
                .step("setting the seed session's timeouts")?;
            let step = TABLES[t].build_index(&mut tx, i)?;
            tx.commit().step(step)?;
            Ok(step)
        }
        Task::Vacuum(t) => {
            // Outside a transaction (VACUUM cannot run in one): statistics for the planner, and
            // the visibility map for index-only scans.
            let step = VACUUM_STEPS[t];
            shared.step(step);
            c.batch_execute(&format!("VACUUM (ANALYZE) {}", TABLES[t].staging()))
                .step(step)?;
            Ok(step)
        }
        Task::Link(t) => {
            let step = LINK_STEPS[t];
            shared.step(step);
            let mut tx = c.transaction().step(step)?;
            tx.batch_execute(settings)
                .step("setting the seed session's timeouts")?;
            schema::link_staging(&mut tx, t)?;
            tx.commit().step(step)?;
            Ok(step)
        }
    }
}

/// Creates staging table `TABLES[t]` in `tx` and COPYs its rows in, from `feed` when a
/// producer already feeds it (see [`produce`]), else from a producer of its own; returns the step
/// and the rows sent.
fn copy_table(
    tx: &mut postgres::Transaction<'_>,
    t: usize,
    plan: &Plan,
    feed: Option<Windows>,
    shared: &Shared,
) -> Result<(&'static str, u64), DatasetError> {
    TABLES[t].create_staging(tx)?;
    let rows = match feed {
        Some(receive) => copy_windows(tx, t, receive, shared)?,
        None => std::thread::scope(|s| {
            let (send, receive) = mpsc::sync_channel(1);
            s.spawn(move || produce(plan, &[(t, send)], shared));
            copy_windows(tx, t, receive, shared)
        })?,
    };
    Ok((COPY_STEPS[t], rows))
}
