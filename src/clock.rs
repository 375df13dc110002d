//! The load threads' clock: the CPU's time-stamp counter, calibrated against the monotonic clock,
//! where that is safe, and the monotonic clock itself elsewhere.
//!
//! Both drivers read the clock at every transaction boundary; a vDSO `clock_gettime` costs
//! 20-35 ns on a VM, a TSC read a fraction of it. The load threads read it as a [`Stamp`]
//! ([`stamp`]): nanoseconds since the clock's base, one multiply-shift from the TSC, so comparing
//! and subtracting boundaries on the measurement path is integer arithmetic. [`now`] gives an
//! [`Instant`] on the same clock, and [`Clock::instant`] / [`Clock::stamp_of`] convert at the edges
//! (the run's start, deadlines, the transaction log).
//!
//! Invariants:
//! - The TSC is used only on x86_64 when the CPU reports an invariant TSC (constant rate, not
//!   stopped in deep C-states: CPUID 0x8000_0007 EDX bit 8) and, on Linux, the kernel still uses
//!   it as its clocksource (it switches away from a TSC it finds unsynchronized between CPUs).
//!   Otherwise [`now`] is [`Instant::now`], and the result says why.
//! - The calibration is made once per process, the first time [`global`] is called, by timing
//!   the TSC against the monotonic clock over [`CALIBRATION`]; each pair of readings is the
//!   tightest of a few tries, so a preemption between the two reads cannot skew it.
//! - A [`Stamp`] and the [`Instant`] it converts to are the same moment: both count from the
//!   clock's base, an `Instant` read when the clock was made (the calibration's first reading).
//! - Every result carries a [`ClockCheck`]: the TSC against the monotonic clock over the whole
//!   run. A drift beyond [`DRIFT_LIMIT_PPM`] fails the check (the result warns about it).

use std::ops::Add;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How long the TSC is timed against the monotonic clock to learn its frequency.
pub const CALIBRATION: Duration = Duration::from_millis(20);

/// Largest drift of the TSC against the monotonic clock a run may show (ppm): half the resolution
/// of the 3-significant-digit histograms (1,000 ppm), and the most NTP slews the monotonic clock
/// itself (500 ppm), so a passing clock changes no recorded figure.
pub const DRIFT_LIMIT_PPM: f64 = 500.0;

/// Tries per reading pair; the one whose monotonic reads bracket the TSC read most tightly wins.
const PAIR_TRIES: usize = 7;

/// Which clock the load threads read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClockSource {
    /// The CPU's time-stamp counter, calibrated against the monotonic clock.
    Tsc,
    /// The operating system's monotonic clock (`Instant::now`).
    Monotonic,
}

/// The load threads' clock and how far it kept with the monotonic clock over a run, as recorded
/// in the result.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct ClockCheck {
    /// The clock the load threads read.
    pub source: ClockSource,
    /// Why the TSC was not used (null when it was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// The TSC's calibrated frequency (Hz; null for the monotonic clock).
    pub frequency_hz: Option<f64>,
    /// How much faster the TSC clock ran than the monotonic clock from the calibration to the end
    /// of the run (ppm; null for the monotonic clock).
    pub drift_ppm: Option<f64>,
    /// Over how long the clocks were compared (s).
    pub checked_over_s: f64,
    /// The drift allowed ([`DRIFT_LIMIT_PPM`]).
    pub limit_ppm: f64,
    /// Whether the drift stayed within the limit (always true for the monotonic clock).
    pub passed: bool,
}

/// A TSC calibrated against the monotonic clock: `(tsc - base_tsc) · ns_per_tick` nanoseconds
/// after the clock's base.
#[derive(Debug, Clone, Copy)]
struct Tsc {
    base_tsc: u64,
    /// Nanoseconds per tick, 32.32 fixed point.
    ns_per_tick_q32: u64,
    hz: f64,
}

/// A clock for the load threads: see the module documentation.
#[derive(Debug, Clone)]
pub struct Clock {
    /// The moment stamps count from.
    base: Instant,
    tsc: Option<Tsc>,
    fallback_reason: Option<String>,
}

/// The process's clock, calibrated the first time it is asked for.
pub fn global() -> &'static Clock {
    static CLOCK: OnceLock<Clock> = OnceLock::new();
    CLOCK.get_or_init(Clock::calibrated)
}

/// The current time on the process's clock (see [`global`]).
#[inline]
pub fn now() -> Instant {
    global().now()
}

/// The current time on the process's clock as a [`Stamp`]: the measurement path's read.
#[inline]
pub fn stamp() -> Stamp {
    global().stamp()
}

/// A reading of a [`Clock`]: nanoseconds since its base (u64: 584 years). Cheap to take, compare
/// and subtract; readings of one clock only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Stamp(u64);

impl Stamp {
    /// Nanoseconds from `earlier` to this stamp, 0 if `earlier` is later.
    #[inline]
    pub fn nanos_since(self, earlier: Stamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// [`Stamp::nanos_since`] as a duration (as [`Instant::saturating_duration_since`]).
    #[inline]
    pub fn saturating_duration_since(self, earlier: Stamp) -> Duration {
        Duration::from_nanos(self.nanos_since(earlier))
    }
}

impl Add<Duration> for Stamp {
    type Output = Stamp;

    /// `d` later (saturating at the end of time rather than overflowing).
    #[inline]
    fn add(self, d: Duration) -> Stamp {
        Stamp(
            self.0
                .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        )
    }
}

impl Clock {
    /// The TSC calibrated now over [`CALIBRATION`] if it can be trusted, else the monotonic
    /// clock.
    pub fn calibrated() -> Clock {
        match tsc_unusable() {
            Some(reason) => Clock {
                base: Instant::now(),
                tsc: None,
                fallback_reason: Some(reason),
            },
            None => {
                let (base, base_tsc) = reading_pair();
                std::thread::sleep(CALIBRATION);
                let (later, later_tsc) = reading_pair();
                let ns = later.duration_since(base).as_nanos() as f64;
                let hz = later_tsc.wrapping_sub(base_tsc) as f64 * 1e9 / ns;
                Clock::tsc_at(base, base_tsc, hz)
            }
        }
    }

    /// The monotonic clock.
    pub fn monotonic() -> Clock {
        Clock {
            base: Instant::now(),
            tsc: None,
            fallback_reason: Some("chosen".into()),
        }
    }

    /// This clock with its TSC frequency taken as `factor` times the calibrated one (a clock
    /// wrongly calibrated, for the check's positive control); the monotonic clock unchanged.
    pub fn miscalibrated(&self, factor: f64) -> Clock {
        match self.tsc {
            Some(t) => Clock::tsc_at(self.base, t.base_tsc, t.hz * factor),
            None => self.clone(),
        }
    }

    fn tsc_at(base: Instant, base_tsc: u64, hz: f64) -> Clock {
        Clock {
            base,
            tsc: Some(Tsc {
                base_tsc,
                ns_per_tick_q32: (1e9 / hz * 4_294_967_296.0).round() as u64,
                hz,
            }),
            fallback_reason: None,
        }
    }

    /// Which clock this is.
    pub fn source(&self) -> ClockSource {
        if self.tsc.is_some() {
            ClockSource::Tsc
        } else {
            ClockSource::Monotonic
        }
    }

    /// The current time.
    #[inline]
    pub fn now(&self) -> Instant {
        match &self.tsc {
            Some(t) => self.instant(Stamp(t.nanos(read_tsc()))),
            None => Instant::now(),
        }
    }

    /// The current time as a [`Stamp`]: on the TSC a read and one multiply-shift.
    #[inline]
    pub fn stamp(&self) -> Stamp {
        match &self.tsc {
            Some(t) => Stamp(t.nanos(read_tsc())),
            None => self.stamp_of(Instant::now()),
        }
    }

    /// The instant of `stamp`.
    pub fn instant(&self, stamp: Stamp) -> Instant {
        self.base + Duration::from_nanos(stamp.0)
    }

    /// The stamp of `at` (an instant before the clock's base maps to the base).
    #[inline]
    pub fn stamp_of(&self, at: Instant) -> Stamp {
        let ns = at.saturating_duration_since(self.base).as_nanos();
        Stamp(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// How far this clock kept with the monotonic clock since its calibration, now.
    pub fn check(&self) -> ClockCheck {
        match &self.tsc {
            None => ClockCheck {
                source: ClockSource::Monotonic,
                fallback_reason: self.fallback_reason.clone(),
                frequency_hz: None,
                drift_ppm: None,
                checked_over_s: 0.0,
                limit_ppm: DRIFT_LIMIT_PPM,
                passed: true,
            },
            Some(t) => {
                let (mono, tsc) = reading_pair();
                let real = mono.saturating_duration_since(self.base).as_nanos() as f64;
                let ours = t.nanos(tsc) as f64;
                let drift_ppm = if real > 0.0 {
                    (ours - real) / real * 1e6
                } else {
                    0.0
                };
                ClockCheck {
                    source: ClockSource::Tsc,
                    fallback_reason: None,
                    frequency_hz: Some(t.hz),
                    drift_ppm: Some(drift_ppm),
                    checked_over_s: real / 1e9,
                    limit_ppm: DRIFT_LIMIT_PPM,
                    passed: drift_ppm.abs() <= DRIFT_LIMIT_PPM,
                }
            }
        }
    }
}

impl Tsc {
    /// Nanoseconds from the calibration's start to TSC reading `tsc` (readings before it map to
    /// its start).
    #[inline]
    fn nanos(&self, tsc: u64) -> u64 {
        let ticks = tsc.saturating_sub(self.base_tsc);
        ((ticks as u128 * self.ns_per_tick_q32 as u128) >> 32) as u64
    }
}

/// A monotonic reading and a TSC reading taken together: of [`PAIR_TRIES`] tries, the one whose
/// two monotonic reads around the TSC read are closest, at their midpoint.
fn reading_pair() -> (Instant, u64) {
    let mut best: Option<(Duration, Instant, u64)> = None;
    for _ in 0..PAIR_TRIES {
        let a = Instant::now();
        let tsc = read_tsc();
        let b = Instant::now();
        let width = b.duration_since(a);
        if best.is_none_or(|(w, _, _)| width < w) {
            best = Some((width, a + width / 2, tsc));
        }
    }
    let (_, mid, tsc) = best.expect("PAIR_TRIES > 0");
    (mid, tsc)
}

/// Why the TSC cannot serve as the clock here, or `None` if it can.
fn tsc_unusable() -> Option<String> {
    #[cfg(target_arch = "x86_64")]
    {
        let max_ext = std::arch::x86_64::__cpuid(0x8000_0000).eax;
        let invariant =
            max_ext >= 0x8000_0007 && std::arch::x86_64::__cpuid(0x8000_0007).edx & (1 << 8) != 0;
        if !invariant {
            return Some("the CPU does not report an invariant TSC".into());
        }
        if cfg!(target_os = "linux") {
            let source = kernel_clocksource();
            if source != "tsc" {
                return Some(format!(
                    "the kernel's clocksource is '{source}', not tsc (it may have found the TSC \
                     unreliable)"
                ));
            }
        }
        None
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Some("the TSC clock exists on x86_64 only".into())
    }
}

/// The kernel's current clocksource (`tsc`, `hpet`, `kvm-clock`, ...), or "unknown".
pub fn kernel_clocksource() -> String {
    std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The CPU's time-stamp counter (0 where there is none; never read then).
#[inline]
fn read_tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC exists on every x86_64 CPU and has no side effects.
        unsafe { std::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_keeps_time_with_the_monotonic_clock_and_its_check_passes() {
        let clock = Clock::calibrated();
        let (a, ta) = (Instant::now(), clock.now());
        std::thread::sleep(Duration::from_millis(30));
        let (b, tb) = (Instant::now(), clock.now());
        let real = b.duration_since(a).as_secs_f64();
        let ours = tb.duration_since(ta).as_secs_f64();
        // Generous for a loaded VM: a preemption between the paired reads skews one pair.
        assert!(
            (ours / real - 1.0).abs() < 0.05,
            "{ours} s against {real} s"
        );
        let check = clock.check();
        assert_eq!(check.source, clock.source());
        assert!(check.passed, "{check:?}");
        match clock.source() {
            ClockSource::Tsc => {
                assert!(check.frequency_hz.unwrap() > 1e6);
                assert!(check.drift_ppm.unwrap().abs() <= DRIFT_LIMIT_PPM);
                assert!(check.checked_over_s >= 0.03);
            }
            ClockSource::Monotonic => assert!(check.fallback_reason.is_some()),
        }
    }

    #[test]
    fn a_wrongly_calibrated_tsc_fails_the_check() {
        let clock = Clock::calibrated();
        if clock.source() != ClockSource::Tsc {
            // Nothing to miscalibrate: the monotonic clock is its own reference.
            assert!(clock.miscalibrated(1.01).check().passed);
            return;
        }
        // 1 % off in frequency: the clock runs 1 % slow, 10,000 ppm.
        let wrong = clock.miscalibrated(1.01);
        std::thread::sleep(Duration::from_millis(20));
        let check = wrong.check();
        assert!(!check.passed, "{check:?}");
        let drift = check.drift_ppm.unwrap();
        assert!((-11_000.0..=-9_000.0).contains(&drift), "drift {drift} ppm");
    }

    #[test]
    fn stamps_and_instants_of_one_clock_are_the_same_moments() {
        for clock in [Clock::calibrated(), Clock::monotonic()] {
            let (a, sa) = (Instant::now(), clock.stamp());
            std::thread::sleep(Duration::from_millis(5));
            let (sb, b) = (clock.stamp(), Instant::now());
            assert!(sb > sa, "{:?}: {sb:?} after {sa:?}", clock.source());
            // The stamps' span lies within the monotonic reads around them (1 % for the TSC's
            // calibration, 1 ms for a preemption between paired reads on a loaded VM).
            let ours = sb.nanos_since(sa) as f64;
            let real = b.duration_since(a).as_nanos() as f64;
            assert!(ours <= real * 1.01 + 1e6, "{ours} ns in {real} ns");
            assert_eq!(sa.nanos_since(sb), 0, "saturates");
            // Round trips at the edges: instant -> stamp -> instant is exact to the nanosecond.
            let s = clock.stamp_of(b);
            assert_eq!(clock.stamp_of(clock.instant(s)), s);
            assert_eq!(clock.instant(s), b);
            let later = s + Duration::from_millis(3);
            assert_eq!(later.saturating_duration_since(s), Duration::from_millis(3));
            // An instant before the clock was made maps to its base.
            let before = clock.instant(Stamp::default()) - Duration::from_millis(1);
            assert_eq!(clock.stamp_of(before), Stamp::default());
        }
    }

    #[test]
    fn the_monotonic_clock_passes_and_says_it_was_chosen() {
        let c = Clock::monotonic().check();
        assert_eq!(c.source, ClockSource::Monotonic);
        assert!(c.passed);
        assert_eq!(c.drift_ppm, None);
    }
}
