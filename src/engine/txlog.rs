//! pgbench's transaction log (`-l`), in pgbench 15's own formats, so the tools people already
//! run on `pgbench_log.*` files read pgstorm's too.
//!
//! One file per load thread, named as pgbench names them: `<prefix>.<pid>` for thread 0 and
//! `<prefix>.<pid>.<n>` for thread n (the pool driver has a thread per client, like `pgbench
//! -j <clients>`). A line per transaction:
//! `client_id transaction_no time script_no time_epoch time_us [schedule_lag] [retries]`, where
//! `time` is the latency in µs, or `skipped`, or `failed` (`serialization`/`deadlock` with
//! `--failures-detailed`); `schedule_lag` only with `-R`, `retries` only with `--max-tries` other
//! than 1. With `--aggregate-interval N`, a line per N seconds instead:
//! `interval_start num_transactions sum_latency sum_latency_2 min_latency max_latency sum_lag
//! sum_lag_2 min_lag max_lag skipped retried retries serialization_failures deadlock_failures`,
//! always 15 columns as pgbench 15 writes them (lag columns 0 without `-R`, skipped 0 without
//! `-L`, retries 0 with `--max-tries 1`, failures 0 without `--failures-detailed`).
//! `--sampling-rate` keeps that fraction of the transactions (per-transaction log only).
//!
//! Invariants: the writer is the load thread's own (no lock); it writes through a buffer, so a
//! transaction costs a formatted line in memory and a write system call per buffer; a write
//! error is kept and reported once at the end instead of disturbing the measurement.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use super::stats::ErrorClass;
use crate::rng::Rng;

/// What `-l` asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct TxLogConfig {
    /// Folder the files are written to (the run's result folder takes them afterwards).
    pub dir: PathBuf,
    /// `--log-prefix` (default `pgbench_log`).
    pub prefix: String,
    /// `--sampling-rate`: fraction of transactions logged, in (0, 1].
    pub sampling_rate: Option<f64>,
    /// `--aggregate-interval`.
    pub aggregate: Option<Duration>,
    /// `--failures-detailed`: name serialization and deadlock failures.
    pub failures_detailed: bool,
    /// Whether `--max-tries` is other than 1 (pgbench then logs retries).
    pub retries: bool,
    /// Whether `-R` is set (pgbench then logs the schedule lag).
    pub open_loop: bool,
    /// Seed of the sampling draws.
    pub seed: u64,
}

/// pgbench's name of thread `thread`'s log file.
pub fn file_name(prefix: &str, pid: u32, thread: usize) -> String {
    if thread == 0 {
        format!("{prefix}.{pid}")
    } else {
        format!("{prefix}.{pid}.{thread}")
    }
}

/// One transaction as the log sees it.
#[derive(Debug, Clone, Copy)]
pub struct Logged {
    /// Client id (global).
    pub client: u32,
    /// Script (query type) index, from 0 as in pgbench's log.
    pub script: usize,
    /// Latency, or how it failed, or `None` when skipped.
    pub outcome: Option<Result<Duration, ErrorClass>>,
    /// Schedule lag (open loop).
    pub lag: Duration,
    /// Tries it took (1: no retry).
    pub tries: u32,
    /// When it completed.
    pub end: Instant,
}

/// Sums of one aggregation interval, as pgbench keeps them.
#[derive(Default)]
struct Agg {
    start_s: u64,
    cnt: u64,
    lat: Moments,
    lag: Moments,
    skipped: u64,
    retried: u64,
    retries: u64,
    serialization: u64,
    deadlock: u64,
}

#[derive(Default)]
struct Moments {
    sum: f64,
    sum2: f64,
    min: f64,
    max: f64,
}

impl Moments {
    fn add(&mut self, first: bool, v: f64) {
        self.sum += v;
        self.sum2 += v * v;
        if first || v < self.min {
            self.min = v;
        }
        if first || v > self.max {
            self.max = v;
        }
    }
}

/// A load thread's transaction log.
pub struct TxLog {
    cfg: TxLogConfig,
    out: BufWriter<File>,
    path: PathBuf,
    /// The run's start as an instant and as Unix time in µs.
    start: Instant,
    start_epoch_us: u64,
    /// Transactions per client so far (pgbench's transaction_no, from 1).
    counts: Vec<u64>,
    rng: Rng,
    agg: Option<Agg>,
    error: Option<std::io::Error>,
}

impl TxLog {
    /// Creates thread `thread`'s file for a run of `clients` clients that starts at `start`
    /// (`started_at` in wall-clock time).
    pub fn create(
        cfg: &TxLogConfig,
        thread: usize,
        clients: usize,
        start: Instant,
        started_at: SystemTime,
    ) -> Result<TxLog> {
        let path = cfg
            .dir
            .join(file_name(&cfg.prefix, std::process::id(), thread));
        let file = File::create(&path).with_context(|| {
            format!(
                "-l: cannot create the transaction log {}; check that the results folder is \
                 writable",
                path.display()
            )
        })?;
        let start_epoch_us = started_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_micros() as u64;
        Ok(TxLog {
            agg: cfg.aggregate.map(|_| Agg {
                start_s: start_epoch_us / 1_000_000,
                ..Agg::default()
            }),
            cfg: cfg.clone(),
            out: BufWriter::with_capacity(64 * 1024, file),
            path,
            start,
            start_epoch_us,
            counts: vec![0; clients],
            rng: Rng::stream(cfg.seed, 0x7106_0000 + thread as u64),
            error: None,
        })
    }

    fn epoch_us(&self, at: Instant) -> u64 {
        self.start_epoch_us + at.saturating_duration_since(self.start).as_micros() as u64
    }

    /// Logs one transaction (or adds it to the current aggregate).
    pub fn log(&mut self, t: Logged) {
        let n = self.counts.get_mut(t.client as usize).map(|c| {
            *c += 1;
            *c
        });
        if let Some(rate) = self.cfg.sampling_rate {
            if self.rng.next_f64() > rate {
                return;
            }
        }
        let now_us = self.epoch_us(t.end);
        let r = match self.cfg.aggregate {
            Some(every) => self.aggregate(t, now_us, every.as_secs().max(1)),
            None => self.line(t, n.unwrap_or(0), now_us),
        };
        if let Err(e) = r {
            self.error.get_or_insert(e);
        }
    }

    fn line(&mut self, t: Logged, n: u64, now_us: u64) -> std::io::Result<()> {
        let head = (t.client, n);
        match t.outcome {
            Some(Ok(lat)) => write!(self.out, "{} {} {}", head.0, head.1, lat.as_micros())?,
            other => {
                let what = match other {
                    None => "skipped",
                    Some(Err(ErrorClass::Serialization)) if self.cfg.failures_detailed => {
                        "serialization"
                    }
                    Some(Err(ErrorClass::Deadlock)) if self.cfg.failures_detailed => "deadlock",
                    _ => "failed",
                };
                write!(self.out, "{} {} {what}", head.0, head.1)?
            }
        }
        write!(
            self.out,
            " {} {} {}",
            t.script,
            now_us / 1_000_000,
            now_us % 1_000_000
        )?;
        if self.cfg.open_loop {
            let lag = if matches!(t.outcome, Some(Ok(_))) {
                t.lag.as_micros()
            } else {
                0
            };
            write!(self.out, " {lag}")?;
        }
        if self.cfg.retries {
            write!(self.out, " {}", t.tries.saturating_sub(1))?;
        }
        self.out.write_all(b"\n")
    }

    fn aggregate(&mut self, t: Logged, now_us: u64, every_s: u64) -> std::io::Result<()> {
        self.close_intervals_before(now_us / 1_000_000, every_s)?;
        let open_loop = self.cfg.open_loop;
        let detailed = self.cfg.failures_detailed;
        let Some(a) = self.agg.as_mut() else {
            return Ok(());
        };
        if t.tries > 1 {
            a.retried += 1;
            a.retries += u64::from(t.tries - 1);
        }
        match t.outcome {
            None => a.skipped += 1,
            Some(Ok(lat)) => {
                let first = a.cnt == 0;
                a.lat.add(first, lat.as_micros() as f64);
                if open_loop {
                    a.lag.add(first, t.lag.as_micros() as f64);
                }
                a.cnt += 1;
            }
            Some(Err(ErrorClass::Serialization)) if detailed => a.serialization += 1,
            Some(Err(ErrorClass::Deadlock)) if detailed => a.deadlock += 1,
            Some(Err(_)) => {}
        }
        Ok(())
    }

    /// Writes every interval that ended at or before `now_s` (empty ones too, as pgbench does
    /// at very low rates).
    fn close_intervals_before(&mut self, now_s: u64, every_s: u64) -> std::io::Result<()> {
        let retries = self.cfg.retries;
        while let Some(a) = self.agg.as_mut() {
            if a.start_s + every_s > now_s {
                break;
            }
            let next = a.start_s + every_s;
            let (retried, tries) = if retries {
                (a.retried, a.retries)
            } else {
                (0, 0)
            };
            writeln!(
                self.out,
                "{} {} {:.0} {:.0} {:.0} {:.0} {:.0} {:.0} {:.0} {:.0} {} {} {} {} {}",
                a.start_s,
                a.cnt,
                a.lat.sum,
                a.lat.sum2,
                a.lat.min,
                a.lat.max,
                a.lag.sum,
                a.lag.sum2,
                a.lag.min,
                a.lag.max,
                a.skipped,
                retried,
                tries,
                a.serialization,
                a.deadlock
            )?;
            *a = Agg {
                start_s: next,
                ..Agg::default()
            };
        }
        Ok(())
    }

    /// Writes what is buffered (and, aggregated, the interval in progress at `end` if it holds
    /// any transaction); returns the file, or the first write error.
    pub fn finish(mut self, end: Instant) -> Result<PathBuf> {
        if let Some(every) = self.cfg.aggregate {
            let every_s = every.as_secs().max(1);
            let now_s = self.epoch_us(end) / 1_000_000;
            let r = self.close_intervals_before(now_s, every_s).and_then(|()| {
                let pending = self
                    .agg
                    .as_ref()
                    .is_some_and(|a| a.cnt + a.skipped + a.serialization + a.deadlock > 0);
                if pending {
                    // The last, partial interval: closed as if it had run its length.
                    self.close_intervals_before(now_s + every_s, every_s)
                } else {
                    Ok(())
                }
            });
            if let Err(e) = r {
                self.error.get_or_insert(e);
            }
        }
        if let Err(e) = self.out.flush() {
            self.error.get_or_insert(e);
        }
        match self.error {
            Some(e) => {
                Err(anyhow::Error::new(e)
                    .context(format!("-l: cannot write {}", self.path.display())))
            }
            None => Ok(self.path),
        }
    }
}

/// Reads the log files of `dir` (named by [`file_name`]) as result-folder files, in thread
/// order, and removes the folder.
pub fn collect(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)
        .with_context(|| format!("-l: cannot read the transaction logs in {}", dir.display()))?
    {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes =
            std::fs::read(&path).with_context(|| format!("-l: cannot read {}", path.display()))?;
        files.push((name, bytes));
    }
    let _ = std::fs::remove_dir_all(dir);
    // Thread order: `<prefix>.<pid>`, then `.1`, `.2`, … (a longer name is a later thread).
    files.sort_by(|(a, _), (b, _)| (a.len(), a).cmp(&(b.len(), b)));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path) -> TxLogConfig {
        TxLogConfig {
            dir: dir.to_path_buf(),
            prefix: "pgbench_log".into(),
            sampling_rate: None,
            aggregate: None,
            failures_detailed: false,
            retries: false,
            open_loop: false,
            seed: 1,
        }
    }

    fn tx(client: u32, outcome: Option<Result<Duration, ErrorClass>>, end: Instant) -> Logged {
        Logged {
            client,
            script: 0,
            outcome,
            lag: Duration::from_micros(7),
            tries: 2,
            end,
        }
    }

    fn columns(text: &str) -> Vec<usize> {
        text.lines().map(|l| l.split(' ').count()).collect()
    }

    #[test]
    fn per_transaction_lines_have_pgbench_columns() {
        let dir = tempfile::tempdir().unwrap();
        let start = Instant::now();
        let mut c = cfg(dir.path());
        let mut log = TxLog::create(&c, 0, 2, start, SystemTime::now()).unwrap();
        log.log(tx(1, Some(Ok(Duration::from_micros(1234))), start));
        log.log(tx(1, Some(Err(ErrorClass::Serialization)), start));
        let text = std::fs::read_to_string(log.finish(start).unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("1 1 1234 0 "), "{text}");
        assert!(lines[1].starts_with("1 2 failed 0 "), "{text}");
        assert_eq!(columns(&text), vec![6, 6]);

        c.open_loop = true;
        c.retries = true;
        c.failures_detailed = true;
        c.prefix = "x".into();
        let mut log = TxLog::create(&c, 3, 2, start, SystemTime::now()).unwrap();
        log.log(tx(0, Some(Err(ErrorClass::Serialization)), start));
        log.log(tx(0, None, start));
        log.log(tx(0, Some(Ok(Duration::from_micros(5))), start));
        let path = log.finish(start).unwrap();
        assert!(path.ends_with(format!("x.{}.3", std::process::id())));
        let text = std::fs::read_to_string(path).unwrap();
        assert_eq!(columns(&text), vec![8, 8, 8]);
        let fields: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
        assert_eq!(fields[0][2], "serialization");
        assert_eq!(fields[1][2], "skipped");
        assert_eq!(
            (fields[2][6], fields[2][7]),
            ("7", "1"),
            "lag, retries: {text}"
        );
    }

    #[test]
    fn aggregates_have_fifteen_columns_and_sums() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cfg(dir.path());
        c.aggregate = Some(Duration::from_secs(1));
        c.open_loop = true;
        let start = Instant::now();
        let mut log = TxLog::create(&c, 0, 1, start, SystemTime::now()).unwrap();
        log.log(tx(0, Some(Ok(Duration::from_micros(100))), start));
        log.log(tx(0, Some(Ok(Duration::from_micros(300))), start));
        log.log(tx(0, None, start));
        // A transaction 2.5 s later closes the first interval and an empty second one.
        let later = start + Duration::from_millis(2500);
        log.log(tx(0, Some(Ok(Duration::from_micros(50))), later));
        let text = std::fs::read_to_string(log.finish(later).unwrap()).unwrap();
        let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
        assert!(rows.iter().all(|r| r.len() == 15), "{text}");
        assert!(rows.len() >= 3, "{text}");
        assert_eq!(
            &rows[0][1..6],
            ["2", "400", "100000", "100", "300"],
            "{text}"
        );
        assert_eq!(rows[0][10], "1", "skipped: {text}");
        assert_eq!(rows[1][1], "0", "an empty interval is written: {text}");
        assert_eq!(rows.last().unwrap()[1], "1", "{text}");
    }

    #[test]
    fn sampling_keeps_about_the_rate() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cfg(dir.path());
        c.sampling_rate = Some(0.25);
        let start = Instant::now();
        let mut log = TxLog::create(&c, 0, 1, start, SystemTime::now()).unwrap();
        for _ in 0..4000 {
            log.log(tx(0, Some(Ok(Duration::from_micros(1))), start));
        }
        let text = std::fs::read_to_string(log.finish(start).unwrap()).unwrap();
        let n = text.lines().count();
        assert!((800..1200).contains(&n), "{n} of 4000 at 25%");
        // Transaction numbers count every transaction, sampled or not (as pgbench).
        let last: u64 = text
            .lines()
            .last()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert!(last > 3000, "{last}");
    }
}
