//! The design's floor: the least a blocking thread-per-connection client can do on pgstorm's own
//! wire layer, to tell what the pool driver's design costs (one thread per connection, a context
//! switch per query on a host with fewer cores than clients) from what pgstorm adds to it (the
//! pool checkout, the recorder, the collector, the samplers, the pause meter).
//!
//! One thread per connection, each running pgbench's built-in `select-only` with `-M prepared`:
//! a statement prepared once, then Bind/Execute/Sync of a random `aid` per transaction, read up to
//! ReadyForQuery on a blocking socket. Two clock reads per transaction (before the send, after
//! the reply), nothing else: no pool, no histogram, no collector, no pinning. The threads start
//! together once every connection is open and prepared, and stop together `-T` seconds after that
//! start (one end for all: with an end of its own per thread, the threads woke from the start
//! over seconds at `-c 500`, and `-T 10` windows ran 10.4-13.7 s with fewer clients at their
//! edges). The last line printed is the result, `floor: clients C tx N errors E seconds S tps X
//! mean_latency_ms L`, which `scripts/bench-vs-pgbench.sh` (cases `c8floor` and `c500floor`)
//! reads.
//!
//! With `--postgres-crate` the same loop runs through the `postgres` crate instead of the wire
//! layer: `Client::query_one` of the prepared statement, whose synchronous client hands each query
//! to tokio-postgres's connection future and drives both on the calling thread (a nonblocking
//! socket, a readiness wait in the runtime's reactor, a `Row` per reply). The two floors side by
//! side are the evidence for the load running on its own wire connection (case `c8floor`); the
//! result line then starts `floor-postgres:`.
//!
//! Two options add one part of what pgstorm's pool driver does per transaction, to split its cost
//! over the floor (case `c500floor` and docs/performance.md): `--hist` records each transaction's
//! latency and the gap before it (where the pool driver records the checkout wait) into the
//! client's own two histograms, as the pool driver's recorder does (u16 counts, the precision its
//! workers use for that many clients); `--r2d2` checks the client's connection out of an r2d2 pool
//! of one, its own, for every transaction and back in after it, as the pool driver's checkout does
//! on its common path (the pools are the pool driver's own, built by its `Pool::open`).
//!
//! `--touch PAGES,LINES` calibrates what memory costs a client when hundreds of threads take
//! turns on a few cores (docs/performance.md): after each reply the client adds one to a byte of
//! LINES cache lines in each of PAGES pages of its own page-aligned buffer, memory no other
//! thread touches and that has gone cold since its last transaction, in address order (a
//! stride the hardware prefetcher can follow). `--chase PAGES` touches one line in each of PAGES
//! pages as a chain in a random order, each page holding the index of the next, so that each
//! load waits for the one before: what the pool driver does reaching its pool's state, its
//! batch's histograms or its script's variables through one pointer after another.
//!
//! Usage: `cargo run --release --example floor -- --dsn CONNINFO [-c 8] [-T 10] [--scale 1]
//! [--postgres-crate] [--hist] [--r2d2] [--touch PAGES,LINES | --chase PAGES]` (without
//! `--dsn`, the PG* environment variables name the server).

use std::process::ExitCode;
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use pgstorm::engine::pool::{Pool, PoolCounters, PoolSettings};
use pgstorm::engine::stats::{worker_sigfig, ErrorClass};
use pgstorm::hist::{new_worker_hist, record_ns, WorkerHist};
use pgstorm::rng::Rng;
use pgstorm::stop::StopToken;
use pgstorm::target::{self, Target};
use pgstorm::wire::{Msg, WireConn, WireError};

/// pgbench's select-only statement; `aid` is drawn from `1..=100000 * scale`, as pgbench does.
const SELECT_ONLY: &str = "SELECT abalance FROM pgbench_accounts WHERE aid = $1";

/// The command line.
struct Args {
    dsn: Option<String>,
    clients: usize,
    seconds: u64,
    scale: i64,
    postgres_crate: bool,
    hist: bool,
    r2d2: bool,
    /// `--touch PAGES,LINES` or `--chase PAGES`: the pages of the client's own buffer touched
    /// after each reply, and how.
    touch: Option<(usize, Walk)>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        dsn: None,
        clients: 8,
        seconds: 10,
        scale: 1,
        postgres_crate: false,
        hist: false,
        r2d2: false,
        touch: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<u64>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{flag} wants a positive integer, got {v:?}"))
        };
        match flag.as_str() {
            "--dsn" => args.dsn = Some(value()?),
            "-c" => args.clients = number(value()?)? as usize,
            "-T" => args.seconds = number(value()?)?,
            "--scale" | "-s" => {
                args.scale = i64::try_from(number(value()?)?).map_err(|e| e.to_string())?
            }
            "--postgres-crate" => args.postgres_crate = true,
            "--hist" => args.hist = true,
            "--r2d2" => args.r2d2 = true,
            "--touch" | "--chase" if args.touch.is_some() => {
                return Err("--touch and --chase share one buffer: give one of them, once".into());
            }
            "--touch" => {
                let v = value()?;
                let parsed = v.split_once(',').and_then(|(p, l)| {
                    let (p, l) = (p.parse::<usize>().ok()?, l.parse::<usize>().ok()?);
                    (p > 0 && (1..=64).contains(&l)).then_some((p, Walk::InOrder(l)))
                });
                args.touch = Some(parsed.ok_or_else(|| {
                    format!(
                        "--touch wants PAGES,LINES (PAGES at least 1, LINES 1 to 64), got {v:?}"
                    )
                })?);
            }
            "--chase" => args.touch = Some((number(value()?)? as usize, Walk::Chase)),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.r2d2 && args.postgres_crate {
        return Err("--r2d2 pools the wire layer's connections: leave out --postgres-crate".into());
    }
    Ok(args)
}

/// What one client did in the measured window.
#[derive(Default)]
struct Tally {
    tx: u64,
    errors: u64,
    busy: Duration,
}

/// One client's connection, prepared: the wire layer's or the `postgres` crate's.
enum Conn {
    Wire(WireConn),
    Crate(postgres::Client, postgres::Statement),
}

/// Opens and prepares one client's connection. A wire socket blocks on reads (one read per
/// reply); the `postgres` crate's stays as the crate keeps it.
fn open(target: &Target, postgres_crate: bool) -> Result<Conn, String> {
    if postgres_crate {
        let mut client = target.connect().map_err(|e| format!("{e:#}"))?;
        let statement = client.prepare(SELECT_ONLY).map_err(|e| e.to_string())?;
        return Ok(Conn::Crate(client, statement));
    }
    let open = || -> Result<WireConn, WireError> {
        let mut conn = WireConn::connect(&target.config, &target.connector, "")?;
        conn.prepare_blocking("floor", SELECT_ONLY)?;
        conn.block_on_reads()?;
        Ok(conn)
    };
    open().map(Conn::Wire).map_err(|e| e.to_string())
}

impl Conn {
    /// One transaction: the statement with `aid` bound, its row read. Ok(false) is an error the
    /// server reported; Err ends the client.
    fn select(&mut self, aid: i64) -> Result<bool, String> {
        match self {
            Conn::Wire(conn) => {
                conn.begin_bind("floor", 1);
                conn.bind_text(|w| w.push_i64(aid));
                conn.end_bind();
                conn.queue_execute();
                conn.queue_sync();
                let mut failed = false;
                conn.exchange_blocking(|m| failed |= matches!(m, Msg::Error { .. }))
                    .map(|_| !failed)
                    .map_err(|e| e.to_string())
            }
            Conn::Crate(client, statement) => {
                // pgbench's aid is an integer column: the statement's parameter is int4.
                let aid = i32::try_from(aid).map_err(|_| format!("aid {aid} is not an int4"))?;
                match client.query_one(&*statement, &[&aid]) {
                    Ok(row) => Ok(row.try_get::<_, i32>(0).is_ok()),
                    Err(e) if e.as_db_error().is_some() => Ok(false),
                    Err(e) => Err(e.to_string()),
                }
            }
        }
    }
}

/// `--r2d2`: opens the floor's wire connections for the pool driver's own pools
/// ([`Pool::open`]: one pool of one per client), and leaves a failed connect's message where
/// `Pool::open` reports it from.
#[derive(Clone)]
struct Manager(Target, Arc<PoolCounters>);

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = std::io::Error;
    fn connect(&self) -> Result<Conn, std::io::Error> {
        open(&self.0, false).map_err(|e| {
            *self.1.last_error.lock() = Some((ErrorClass::Other, e.clone()));
            std::io::Error::other(e)
        })
    }
    fn is_valid(&self, _: &mut Conn) -> Result<(), std::io::Error> {
        Ok(())
    }
    fn has_broken(&self, _: &mut Conn) -> bool {
        false
    }
}

/// Where a client's connection is between transactions.
enum Home {
    Owned(Box<Conn>),
    Pooled(r2d2::Pool<Manager>),
}

/// `--hist`: a client's two histograms.
struct Hists {
    latency: WorkerHist,
    gap: WorkerHist,
}

/// A page of a client's `--touch` buffer.
#[repr(align(4096))]
struct Page([u8; 4096]);

/// How a transaction walks a client's `--touch` or `--chase` pages.
#[derive(Clone, Copy)]
enum Walk {
    /// `--touch`: this many lines of each page, the pages in address order.
    InOrder(usize),
    /// `--chase`: one line of each page, as a chain in a random order; the pages' first four
    /// bytes hold the index of the next page of the cycle.
    Chase,
}

/// `--touch` and `--chase`: a client's own pages, and how a transaction touches them.
struct Touch {
    pages: Vec<Page>,
    walk: Walk,
}

impl Touch {
    fn new(pages: usize, walk: Walk, rng: &mut Rng) -> Touch {
        let mut t = Touch {
            pages: (0..pages).map(|_| Page([0; 4096])).collect(),
            walk,
        };
        if let Walk::Chase = walk {
            // A random cycle through every page: shuffle the order, link each to the next.
            let mut order: Vec<usize> = (0..pages).collect();
            for i in (1..pages).rev() {
                order.swap(i, rng.range_i64(0, i as i64) as usize);
            }
            for (k, &p) in order.iter().enumerate() {
                let next = order[(k + 1) % pages] as u32;
                t.pages[p].0[..4].copy_from_slice(&next.to_ne_bytes());
            }
        }
        t
    }

    /// Adds one to a byte of each touched line: a load and a store per line; with `--chase`,
    /// the next page is known only once this one's index is loaded.
    fn run(&mut self) {
        match self.walk {
            Walk::InOrder(lines) => {
                for page in &mut self.pages {
                    for line in 0..lines {
                        let b = &mut page.0[line * 64];
                        *b = b.wrapping_add(1);
                    }
                }
            }
            Walk::Chase => {
                let mut p = 0;
                for _ in 0..self.pages.len() {
                    let page = &mut self.pages[p].0;
                    page[8] = page[8].wrapping_add(1);
                    p = u32::from_ne_bytes([page[0], page[1], page[2], page[3]]) as usize;
                }
                std::hint::black_box(p);
            }
        }
        std::hint::black_box(&self.pages);
    }
}

/// One client's loop until `end`: a transaction is one Bind/Execute/Sync exchange.
#[allow(clippy::too_many_arguments)]
fn client(
    mut home: Home,
    mut hists: Option<Hists>,
    mut touch: Option<Touch>,
    id: u64,
    scale: i64,
    start: &Barrier,
    end: &OnceLock<Instant>,
) -> Tally {
    let mut rng = Rng::stream(0xF1_00, id);
    let mut tally = Tally::default();
    start.wait();
    let end = *end.get().expect("set before the start");
    let mut last = Instant::now();
    loop {
        let aid = rng.range_i64(1, 100_000 * scale);
        let t0 = Instant::now();
        let r = match &mut home {
            Home::Owned(conn) => conn.select(aid),
            Home::Pooled(pool) => match pool.get() {
                Ok(mut conn) => conn.select(aid),
                Err(e) => Err(e.to_string()),
            },
        };
        let t1 = Instant::now();
        tally.busy += t1 - t0;
        if let Some(t) = touch.as_mut() {
            t.run();
        }
        if let Some(h) = hists.as_mut() {
            record_ns(&mut h.latency, (t1 - t0).as_nanos() as u64);
            record_ns(&mut h.gap, (t0 - last).as_nanos() as u64);
            last = t1;
        }
        match r {
            Ok(true) => tally.tx += 1,
            Ok(false) => tally.errors += 1,
            Err(e) => {
                eprintln!("floor: client {id}: {e}");
                tally.errors += 1;
                return tally;
            }
        }
        if t1 >= end {
            return tally;
        }
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "floor: {e}\nusage: floor [--dsn CONNINFO] [-c CLIENTS] [-T SECONDS] [--scale N] \
                 [--postgres-crate] [--hist] [--r2d2] [--touch PAGES,LINES | --chase PAGES]"
            );
            return ExitCode::from(2);
        }
    };
    let target = match target::resolve(args.dsn.as_deref()) {
        Ok(Some(t)) => t,
        Ok(None) => {
            eprintln!("floor: no server: give --dsn or set the PG* environment variables");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("floor: {e:#}");
            return ExitCode::from(2);
        }
    };
    let mut homes = Vec::with_capacity(args.clients);
    if args.r2d2 {
        // The pool driver's own pools: one of one connection per client.
        let settings = PoolSettings {
            size: args.clients as u32,
            statement_timeout: Duration::ZERO,
            ready_timeout: Duration::from_secs(30),
            stop: StopToken::new(),
        };
        let counters = Arc::new(PoolCounters::new());
        let manager = Manager(target.clone(), counters.clone());
        match Pool::open(manager, counters, &target, &settings) {
            Ok(pool) => homes.extend(pool.homes.into_iter().map(Home::Pooled)),
            Err(e) => {
                eprintln!("floor: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        for _ in 0..args.clients {
            match open(&target, args.postgres_crate) {
                Ok(c) => homes.push(Home::Owned(Box::new(c))),
                Err(e) => {
                    eprintln!("floor: cannot connect to {}: {e}", target.display);
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    // The pool driver's workers record at this precision for that many histograms.
    let sigfig = worker_sigfig(2 * args.clients);
    let start = Arc::new(Barrier::new(args.clients + 1));
    let end = Arc::new(OnceLock::new());
    let threads: Vec<_> = homes
        .into_iter()
        .enumerate()
        .map(|(id, home)| {
            let start = start.clone();
            let (scale, end) = (args.scale, end.clone());
            let hists = args.hist.then(|| Hists {
                latency: new_worker_hist(sigfig),
                gap: new_worker_hist(sigfig),
            });
            let touch = args
                .touch
                .map(|(pages, walk)| Touch::new(pages, walk, &mut Rng::stream(0xC4A5E, id as u64)));
            std::thread::spawn(move || client(home, hists, touch, id as u64, scale, &start, &end))
        })
        .collect();
    // One end for every client, so they stop together however late the start wakes each.
    let t0 = Instant::now();
    let _ = end.set(t0 + Duration::from_secs(args.seconds));
    start.wait();
    let mut total = Tally::default();
    for t in threads {
        let Ok(one) = t.join() else {
            eprintln!("floor: a client thread panicked");
            return ExitCode::FAILURE;
        };
        total.tx += one.tx;
        total.errors += one.errors;
        total.busy += one.busy;
    }
    let secs = t0.elapsed().as_secs_f64();
    let done = (total.tx + total.errors).max(1);
    println!(
        "{}: clients {} tx {} errors {} seconds {:.3} tps {:.1} mean_latency_ms {:.4}",
        if args.postgres_crate {
            "floor-postgres"
        } else {
            "floor"
        },
        args.clients,
        total.tx,
        total.errors,
        secs,
        total.tx as f64 / secs,
        total.busy.as_secs_f64() * 1e3 / done as f64
    );
    if total.errors > 0 {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
