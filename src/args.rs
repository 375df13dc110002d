//! Validated command-line values: every duration, rate, count and size is parsed once, with its
//! bounds and overflow checks, by a `from_str_fn` that argh calls (see `cli`).
//!
//! Invariants: a value that got past argh is in range, so nothing downstream re-validates it and
//! no arithmetic on it can panic. A duration is at most [`MAX_SECS`] (it fits `Instant` and
//! `Duration` arithmetic with room to spare); a rate is finite and positive, and with at most
//! [`MAX_CLIENTS`] clients its per-client gap is at most [`MAX_SECS`] too; a count is at most
//! what one machine can drive. A parse error is one line naming the value and the allowed range;
//! argh puts the flag in front of it and the process exits 2.

use std::time::Duration;

use crate::monitor::host_sampler::MIN_INTERVAL;

/// Longest duration any flag takes, in seconds (about 3 years).
pub const MAX_SECS: u64 = 100_000_000;
/// Most clients, connections or threads of one load machine.
pub const MAX_CLIENTS: u32 = 10_000;
/// Slowest open-loop or connect rate, per second (one event every 1,000 s).
pub const MIN_RATE: f64 = 1e-3;
/// Fastest open-loop or connect rate, per second.
pub const MAX_RATE: f64 = 1e9;
/// Most transactions per client (`-t`): with [`MAX_CLIENTS`] the total fits a `u64` by far.
pub const MAX_TRANSACTIONS: u64 = 1_000_000_000_000;
/// Most repetitions of a run.
pub const MAX_REPEAT: u32 = 1_000;
/// Most resource samples kept per sampler.
pub const MAX_HISTORY: usize = 10_000_000;
/// Most bootstrap replicates of the sweep's interval.
pub const MAX_BOOTSTRAP: usize = 1_000_000;
/// Most open-loop probes of the sweep's rate search.
pub const MAX_PROBES: u32 = 1_000;
/// Most CPU cores or spindles a server is described with.
pub const MAX_HARDWARE: u32 = 100_000;
/// Largest scale factor of the POS dataset and of pgbench's tables.
pub const MAX_SCALE: u32 = 100_000;
/// Most partitions of pgbench_accounts (`seed --pgbench --partitions`): far more than a load test
/// wants, and few enough that creating them stays a matter of seconds.
pub const MAX_PARTITIONS: u32 = 100_000;
/// PostgreSQL's own ceiling of `max_connections`.
pub const MAX_SERVER_CONNECTIONS: u32 = 262_143;

// The slowest rate shared by the most clients still gives each a gap within MAX_SECS.
const _: () = assert!((MAX_CLIENTS as f64 / MIN_RATE) <= MAX_SECS as f64);

const SECS_RANGE: &str = "about 3 years";

/// A whole number of seconds in `0..=MAX_SECS` (`-T`, `--warmup`, `-P`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Secs(u64);

impl Secs {
    /// `n` seconds; callers pass literal defaults within range.
    pub const fn new(n: u64) -> Secs {
        assert!(n <= MAX_SECS, "a default above MAX_SECS");
        Secs(n)
    }
    /// The seconds.
    pub fn get(self) -> u64 {
        self.0
    }
    /// As a `Duration`.
    pub fn duration(self) -> Duration {
        Duration::from_secs(self.0)
    }
}

/// Parses whole seconds of at least 1 (`-T`).
pub fn secs(s: &str) -> Result<Secs, String> {
    bounded(s, 1, MAX_SECS, "seconds").map(Secs)
}

/// Parses whole seconds, 0 allowed (`--warmup`; `-P 0` turns progress off).
pub fn secs_or_zero(s: &str) -> Result<Secs, String> {
    bounded(s, 0, MAX_SECS, "seconds").map(Secs)
}

/// A duration between 1 ms and [`MAX_SECS`] written with a unit (`5s`, `500ms`, `2m`, `1h`) or
/// as bare seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(Duration);

impl Span {
    /// `n` seconds; callers pass literal defaults within range.
    pub const fn secs(n: u64) -> Span {
        assert!(n >= 1 && n <= MAX_SECS, "a default out of range");
        Span(Duration::from_secs(n))
    }
    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

/// Parses a [`Span`].
pub fn span(s: &str) -> Result<Span, String> {
    let t = s.trim();
    let (num, unit_s) = [("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0)]
        .into_iter()
        .find_map(|(suffix, unit)| t.strip_suffix(suffix).map(|n| (n, unit)))
        .unwrap_or((t, 1.0));
    let range = format!("give 1ms to {MAX_SECS}s ({SECS_RANGE}), e.g. 5s, 500ms or 2m");
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a duration; {range}"))?;
    let secs = v * unit_s;
    // The range check also rejects NaN; rounding to whole microseconds keeps a value like
    // 0.001s from landing a hair below 1 ms.
    let micros = (secs * 1e6).round();
    if !(1_000.0..=MAX_SECS as f64 * 1e6).contains(&micros) {
        return Err(format!("'{s}' is out of range; {range}"));
    }
    Ok(Span(Duration::from_micros(micros as u64)))
}

/// The resource sampling interval: `None` turns sampling off (`0`, `0s`, `0ms`), otherwise a
/// [`Span`] of at least the host sampler's minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleInterval(pub Option<Span>);

/// Parses a [`SampleInterval`].
pub fn sample_interval(s: &str) -> Result<SampleInterval, String> {
    if matches!(s.trim(), "0" | "0s" | "0ms") {
        return Ok(SampleInterval(None));
    }
    let v = span(s)?;
    if v.get() < MIN_INTERVAL {
        return Err(format!(
            "'{s}' is below {} ms, too short for CPU usage to mean anything; use e.g. 1s, or 0 \
             to turn sampling off",
            MIN_INTERVAL.as_millis()
        ));
    }
    Ok(SampleInterval(Some(v)))
}

/// A rate in events per second, finite, in `MIN_RATE..=MAX_RATE`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Rate(f64);

impl Rate {
    /// Events per second.
    pub fn get(self) -> f64 {
        self.0
    }
}

/// Parses a [`Rate`], with an optional `/s` suffix (`-R 200`, `50/s`).
pub fn rate(s: &str) -> Result<Rate, String> {
    let num = s.trim().strip_suffix("/s").unwrap_or(s.trim()).trim();
    let range = format!("give a rate from {MIN_RATE} to {MAX_RATE:e} per second, e.g. 200");
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a rate; {range}"))?;
    if !(MIN_RATE..=MAX_RATE).contains(&v) {
        return Err(format!("'{s}' is out of range; {range}"));
    }
    Ok(Rate(v))
}

/// A connect rate: a [`Rate`], or `None` for `unlimited`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnectRate(pub Option<Rate>);

/// The connection scenario's default pace: 100 new connections per second.
pub const DEFAULT_CONNECT_RATE: ConnectRate = ConnectRate(Some(Rate(100.0)));

/// Parses a [`ConnectRate`]: `50/s`, `50`, or `unlimited` (also `none`).
pub fn connect_rate(s: &str) -> Result<ConnectRate, String> {
    match s.trim() {
        "unlimited" | "none" => Ok(ConnectRate(None)),
        _ => rate(s)
            .map(|r| ConnectRate(Some(r)))
            .map_err(|e| format!("{e}, or unlimited")),
    }
}

/// A number of clients, connections or threads in `1..=MAX_CLIENTS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Count(u32);

impl Count {
    /// `n`; callers pass literal defaults within range.
    pub const fn new(n: u32) -> Count {
        assert!(n >= 1 && n <= MAX_CLIENTS, "a default out of range");
        Count(n)
    }
    /// The count.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// Parses a [`Count`] (`-c`, `-j`, `--workers`, `--max-connections`).
pub fn count(s: &str) -> Result<Count, String> {
    bounded(s, 1, MAX_CLIENTS.into(), "clients, connections or threads").map(|n| Count(n as u32))
}

/// Parses a comma-separated list of [`Count`]s (`--steps`, the sweep's `--clients`).
pub fn counts(s: &str) -> Result<Vec<Count>, String> {
    s.split(',').map(count).collect()
}

/// Parses a number of workers that leak their connection on purpose, `0..=MAX_CLIENTS`.
pub fn leaks(s: &str) -> Result<u32, String> {
    bounded(s, 0, MAX_CLIENTS.into(), "workers").map(|n| n as u32)
}

/// Parses transactions per client or per worker (`-t`, `--transactions`).
pub fn transactions(s: &str) -> Result<u64, String> {
    bounded(s, 1, MAX_TRANSACTIONS, "transactions")
}

/// Parses a repetition count (`--repeat`).
pub fn repeat(s: &str) -> Result<u32, String> {
    bounded(s, 1, MAX_REPEAT.into(), "runs").map(|n| n as u32)
}

/// Parses the samples kept per sampler (`--history`).
pub fn history(s: &str) -> Result<usize, String> {
    bounded(s, 1, MAX_HISTORY as u64, "samples").map(|n| n as usize)
}

/// Parses the bootstrap replicates (`--bootstrap`).
pub fn bootstrap(s: &str) -> Result<usize, String> {
    bounded(s, 1, MAX_BOOTSTRAP as u64, "replicates").map(|n| n as usize)
}

/// Parses the most probes of a rate search (`--rate-probes`).
pub fn probes(s: &str) -> Result<u32, String> {
    bounded(s, 1, MAX_PROBES.into(), "probes").map(|n| n as u32)
}

/// Parses a server's CPU cores (`--server-cores`).
pub fn cores(s: &str) -> Result<u32, String> {
    bounded(s, 1, MAX_HARDWARE.into(), "cores").map(|n| n as u32)
}

/// Parses a server's effective spindles (`--spindles`).
pub fn spindles(s: &str) -> Result<u32, String> {
    bounded(s, 0, MAX_HARDWARE.into(), "spindles").map(|n| n as u32)
}

/// Parses a dataset scale factor (`seed -s`).
pub fn scale(s: &str) -> Result<u32, String> {
    bounded(s, 1, MAX_SCALE.into(), "scale").map(|n| n as u32)
}

/// Parses pgbench's `-F` fillfactor of the pgbench tables: 10 to 100 percent, as PostgreSQL
/// accepts it.
pub fn fillfactor(s: &str) -> Result<u32, String> {
    bounded(s, 10, 100, "percent").map(|n| n as u32)
}

/// Parses pgbench's `--partitions` (0: pgbench_accounts not partitioned).
pub fn partitions(s: &str) -> Result<u32, String> {
    bounded(s, 0, MAX_PARTITIONS.into(), "partitions").map(|n| n as u32)
}

/// Parses pgbench's `-L` latency limit: milliseconds, a positive number (fractions allowed).
pub fn latency_limit(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v <= MAX_SECS as f64 * 1000.0 => Ok(v),
        _ => Err(format!(
            "'{s}' is not a latency limit; give milliseconds above 0, e.g. 50 or 2.5"
        )),
    }
}

/// Parses pgbench's `--sampling-rate`: a fraction in (0, 1].
pub fn sampling_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1.0 => Ok(v),
        _ => Err(format!(
            "'{s}' is not a sampling rate; give a fraction in (0, 1], e.g. 0.01"
        )),
    }
}

/// Parses a sandbox's `max_connections`.
pub fn server_connections(s: &str) -> Result<u32, String> {
    bounded(s, 1, MAX_SERVER_CONNECTIONS.into(), "connections").map(|n| n as u32)
}

/// A percentage in `(0, 100]` (`--alert-cpu`, `--alert-memory`).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Percent(f64);

impl Percent {
    /// `p` percent; callers pass literal defaults within range.
    pub const fn new(p: f64) -> Percent {
        assert!(p > 0.0 && p <= 100.0, "a default out of range");
        Percent(p)
    }
    /// The percentage.
    pub fn get(self) -> f64 {
        self.0
    }
}

/// Parses a [`Percent`], with or without a `%` sign.
pub fn percent(s: &str) -> Result<Percent, String> {
    let num = s.trim().strip_suffix('%').unwrap_or(s.trim()).trim();
    match num.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 100.0 => Ok(Percent(v)),
        _ => Err(format!(
            "'{s}' is not a percentage; give a value in (0, 100], e.g. 90"
        )),
    }
}

/// A whole number in `lo..=hi`; `what` names the unit in the message.
fn bounded(s: &str, lo: u64, hi: u64, what: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        Ok(_) => Err(format!("{s} is out of range; give {lo} to {hi} {what}")),
        Err(_) => Err(format!(
            "'{s}' is not a whole number; give {lo} to {hi} {what}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_take_units_and_stay_in_range() {
        assert_eq!(span("5s").unwrap().get(), Duration::from_secs(5));
        assert_eq!(span("250ms").unwrap().get(), Duration::from_millis(250));
        assert_eq!(span("2m").unwrap().get(), Duration::from_secs(120));
        assert_eq!(span("1h").unwrap().get(), Duration::from_secs(3600));
        assert_eq!(span("3").unwrap().get(), Duration::from_secs(3));
        assert_eq!(span("0.001s").unwrap().get(), Duration::from_millis(1));
        for bad in [
            "", "abc", "-1s", "0", "1e20", "1e-300", "NaN", "inf", "0.5ms", "1e8h",
        ] {
            let e = span(bad).unwrap_err();
            assert!(e.contains("1ms to 100000000s"), "{bad}: {e}");
        }
    }

    #[test]
    fn rates_are_finite_positive_and_bounded() {
        assert_eq!(rate("200").unwrap().get(), 200.0);
        assert_eq!(rate("50/s").unwrap().get(), 50.0);
        for bad in ["0", "-5", "1e-300", "1e300", "NaN", "inf", "fast", ""] {
            assert!(rate(bad).is_err(), "{bad}");
        }
        assert_eq!(connect_rate("unlimited").unwrap(), ConnectRate(None));
        assert!(connect_rate("fast").unwrap_err().contains("unlimited"));
    }

    #[test]
    fn counts_name_their_range() {
        assert_eq!(count("10").unwrap().get(), 10);
        let e = count("4294967295").unwrap_err();
        assert!(e.contains("1 to 10000 clients"), "{e}");
        assert!(count("0").is_err());
        assert!(count("-1").is_err());
        assert_eq!(
            counts("1, 2,4").unwrap(),
            vec![Count(1), Count(2), Count(4)]
        );
        assert!(secs("18446744073709551615").is_err());
        assert_eq!(secs_or_zero("0").unwrap().get(), 0);
        assert!(secs("0").is_err());
    }

    #[test]
    fn sampling_can_be_turned_off_but_not_made_too_fine() {
        assert_eq!(sample_interval("0").unwrap(), SampleInterval(None));
        assert!(sample_interval("50ms").is_err());
        assert_eq!(
            sample_interval("500ms").unwrap().0.unwrap().get(),
            Duration::from_millis(500)
        );
        assert!(percent("150").is_err());
        assert_eq!(percent("80%").unwrap().get(), 80.0);
    }
}
