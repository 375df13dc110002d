//! Seeding: generate the rows in parallel and stream them to the server with COPY, in one
//! transaction.
//!
//! Invariants:
//! - Memory is bounded whatever the scale: a producer thread generates a window of `WINDOW`
//!   chunks at a time on the rayon pool and hands it over a channel of capacity one, so at most
//!   about three windows of COPY text exist at once while the server ingests the previous one.
//! - Chunks are written in chunk order, so the load order (and with it the physical layout) is the
//!   same on every run; generation order across threads does not matter (see `generate`).
//! - Line ids are contiguous 1..=lines: the orders pass records each chunk's line count and the
//!   lines pass regenerates the chunks (cheap next to COPY) and numbers their lines from the prefix
//!   sum, so no chunk's lines have to be kept between the two passes.
//! - Everything up to the marker row commits atomically; `COPY ... FREEZE` is allowed because the
//!   tables are created in the same transaction, and leaves the rows frozen and all-visible.

use std::io::Write;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::generate::{write_lines, write_orders, write_partners, Plan};
use super::schema::{self, Ownership};
use super::{
    data_end, data_start, validate_scale, DatasetError, Marker, SeedOptions, Step, DATA_END_UNIX,
    WINDOW_DAYS,
};

/// Chunks generated per window. Affects memory and overlap only, never the data.
const WINDOW: u64 = 64;
/// Minimum time between two progress reports.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// A progress report while seeding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// What is being done, e.g. "loading pos_order" or "creating index pos_order_create_date_idx".
    pub step: &'static str,
    /// Rows sent to the server so far, all tables together.
    pub rows_loaded: u64,
    /// Rows to send in total (the line count is an estimate until the orders are loaded).
    pub rows_total: u64,
    /// Time since the seed started.
    pub elapsed: Duration,
}

impl Progress {
    /// Average load rate since the start.
    pub fn rows_per_sec(&self) -> f64 {
        self.rows_loaded as f64 / self.elapsed.as_secs_f64().max(1e-9)
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
            100.0 * self.rows_loaded as f64 / self.rows_total.max(1) as f64,
            self.rows_per_sec(),
            self.elapsed.as_secs_f64()
        )
    }
}

/// Counts rows and calls the progress callback at most every [`REPORT_EVERY`] (and at each step).
struct Meter<'a> {
    start: Instant,
    last: Instant,
    step: &'static str,
    rows_loaded: u64,
    rows_total: u64,
    report: &'a mut dyn FnMut(&Progress),
}

impl Meter<'_> {
    fn progress(&self) -> Progress {
        Progress {
            step: self.step,
            rows_loaded: self.rows_loaded,
            rows_total: self.rows_total,
            elapsed: self.start.elapsed(),
        }
    }

    fn emit(&mut self) {
        self.last = Instant::now();
        let p = self.progress();
        (self.report)(&p);
    }

    fn step(&mut self, step: &'static str) {
        self.step = step;
        self.emit();
    }

    fn add(&mut self, rows: u64) {
        self.rows_loaded += rows;
        if self.last.elapsed() >= REPORT_EVERY {
            self.emit();
        }
    }
}

/// One generated chunk of COPY text.
struct Piece {
    bytes: Vec<u8>,
    rows: u64,
    /// Order chunks: how many lines the chunk's orders have.
    lines: u64,
}

/// Streams `chunks` generated chunks into `COPY ... FROM STDIN`, in chunk order, overlapping
/// generation of the next window with the sending of the current one. Returns the pieces' `lines`
/// in chunk order.
fn copy_chunks(
    tx: &mut postgres::Transaction<'_>,
    step: &'static str,
    sql: &str,
    chunks: u64,
    expected_rows: Option<u64>,
    generate: &(dyn Fn(u64) -> Piece + Sync),
    meter: &mut Meter<'_>,
) -> Result<Vec<u64>, DatasetError> {
    meter.step(step);
    let mut writer = tx.copy_in(sql).step(step)?;
    let mut lines = Vec::with_capacity(chunks as usize);
    let mut rows = 0;
    std::thread::scope(|s| -> Result<(), DatasetError> {
        let (send, receive) = mpsc::sync_channel::<Vec<Piece>>(1);
        s.spawn(move || {
            let mut k = 0;
            while k < chunks {
                let end = (k + WINDOW).min(chunks);
                let window: Vec<Piece> = (k..end).into_par_iter().map(generate).collect();
                // The receiver is gone only when sending failed: stop generating.
                if send.send(window).is_err() {
                    return;
                }
                k = end;
            }
        });
        for window in receive {
            for piece in window {
                writer
                    .write_all(&piece.bytes)
                    .map_err(|source| DatasetError::Copy { step, source })?;
                rows += piece.rows;
                lines.push(piece.lines);
                meter.add(piece.rows);
            }
        }
        Ok(())
    })?;
    let copied = writer.finish().step(step)?;
    if copied != rows || expected_rows.is_some_and(|e| e != rows) {
        return Err(DatasetError::Inconsistent(format!(
            "{step}: generated {rows} rows, expected {expected_rows:?}, server copied {copied}"
        )));
    }
    Ok(lines)
}

/// Seeds the dataset (see [`seed_with`]); progress goes to stderr when `opts.progress` is set.
pub fn seed(client: &mut postgres::Client, opts: &SeedOptions) -> Result<Marker, DatasetError> {
    if opts.progress {
        seed_with(client, opts, &mut |p| eprintln!("{p}"))
    } else {
        seed_with(client, opts, &mut |_| {})
    }
}

/// (Re)creates the dataset tables and marker in one transaction, replacing a previous pgstorm
/// dataset, then VACUUM ANALYZEs them. `report` is called at each step and at most once a second
/// while loading.
pub fn seed_with(
    client: &mut postgres::Client,
    opts: &SeedOptions,
    report: &mut dyn FnMut(&Progress),
) -> Result<Marker, DatasetError> {
    validate_scale(opts.scale)?;
    let plan = Plan::new(opts.scale, opts.seed, DATA_END_UNIX, WINDOW_DAYS);
    let now = Instant::now();
    let mut meter = Meter {
        start: now,
        last: now,
        step: "starting",
        rows_loaded: 0,
        rows_total: plan.partners + plan.orders * 4,
        report,
    };

    let mut tx = client.transaction().step("starting the seed transaction")?;
    schema::lock(&mut tx)?;
    if schema::ownership(&mut tx)? == Ownership::Foreign {
        return Err(DatasetError::ForeignSchema);
    }
    let mwm_kb: i64 = tx
        .query_one(
            "SELECT setting::bigint FROM pg_catalog.pg_settings WHERE name = 'maintenance_work_mem'",
            &[],
        )
        .step("reading maintenance_work_mem")?
        .get(0);
    // A seed can run for hours at large scales: no timeout of the caller's session may cut it,
    // and index builds go much faster with more than the 64 MB default (this transaction only).
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = 0; SET LOCAL idle_in_transaction_session_timeout = 0;{}",
        if mwm_kb < 256 * 1024 {
            " SET LOCAL maintenance_work_mem = '256MB';"
        } else {
            ""
        }
    ))
    .step("setting the seed session's timeouts")?;
    schema::create_tables(&mut tx)?;

    copy_chunks(
        &mut tx,
        "loading res_partner",
        "COPY pgstorm.res_partner (id, name, email, city, create_date) FROM STDIN WITH (FREEZE)",
        plan.partner_chunks(),
        Some(plan.partners),
        &|k| {
            let partners = plan.partner_chunk(k);
            let mut bytes = Vec::with_capacity(partners.len() * 80);
            write_partners(&partners, &mut bytes);
            Piece {
                bytes,
                rows: partners.len() as u64,
                lines: 0,
            }
        },
        &mut meter,
    )?;

    let line_counts = copy_chunks(
        &mut tx,
        "loading pos_order",
        "COPY pgstorm.pos_order (id, partner_id, create_date, amount_total, state) \
         FROM STDIN WITH (FREEZE)",
        plan.order_chunks(),
        Some(plan.orders),
        &|k| {
            let chunk = plan.order_chunk(k);
            let mut bytes = Vec::with_capacity(chunk.orders.len() * 48);
            write_orders(&chunk, &mut bytes);
            Piece {
                bytes,
                rows: chunk.orders.len() as u64,
                lines: chunk.lines.len() as u64,
            }
        },
        &mut meter,
    )?;

    let first_line_ids: Vec<u64> = line_counts
        .iter()
        .scan(1, |next, n| {
            let first = *next;
            *next += n;
            Some(first)
        })
        .collect();
    let lines: u64 = line_counts.iter().sum();
    meter.rows_total = plan.partners + plan.orders + lines;
    copy_chunks(
        &mut tx,
        "loading pos_order_line",
        "COPY pgstorm.pos_order_line (id, order_id, product_id, qty, price_unit, price_subtotal) \
         FROM STDIN WITH (FREEZE)",
        plan.order_chunks(),
        Some(lines),
        &|k| {
            let chunk = plan.order_chunk(k);
            let mut bytes = Vec::with_capacity(chunk.lines.len() * 40);
            write_lines(&chunk, first_line_ids[k as usize] as i64, &mut bytes);
            Piece {
                bytes,
                rows: chunk.lines.len() as u64,
                lines: 0,
            }
        },
        &mut meter,
    )?;

    schema::finish_tables(&mut tx, &mut |step| meter.step(step))?;
    meter.step("writing the marker and committing");
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

    // Outside the transaction (VACUUM cannot run in one): statistics for the planner, and the
    // visibility map for index-only scans.
    meter.step("vacuum analyze");
    client
        .batch_execute(&format!(
            "VACUUM (ANALYZE) {}",
            schema::DATASET_TABLES.join(", ")
        ))
        .step("vacuum analyze of the dataset tables")?;
    meter.step("done");
    Ok(marker)
}
