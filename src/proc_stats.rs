//! The client measuring itself: its own CPU time and peak memory (getrusage), and how long its
//! load threads waited for a CPU (the kernel's per-thread schedstat).
//!
//! Cheap enough to call around a run or a load thread's life (a syscall or two, one small file
//! read); never called per query.
//!
//! Invariants: a load thread's run-queue wait is the time it was runnable but not running, as
//! the kernel counts it (`/proc/thread-self/schedstat`, the second field); on a host that does
//! not count it (no such file, or "0 0 0": a kernel without schedstats or delay accounting),
//! [`RunQueueMeter::result`] is `None`, never a zero that would read as "no wait". A thread's
//! share is over its whole life, idle time included (parked, think time, open-loop gaps): for
//! its busy time it is a lower bound.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn rusage() -> libc::rusage {
    // SAFETY: getrusage fills the zeroed struct we pass; RUSAGE_SELF is always valid.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    }
}

fn tv(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
}

/// (user, system) CPU time consumed by this process so far, all threads.
pub fn cpu_time() -> (Duration, Duration) {
    let ru = rusage();
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

/// Peak resident set size of this process, bytes.
pub fn peak_rss_bytes() -> u64 {
    // Linux reports ru_maxrss in KiB.
    rusage().ru_maxrss.max(0) as u64 * 1024
}

/// How long the calling thread has been runnable but without a CPU (the run queue) so far, or
/// `None` where the kernel does not count it.
pub fn thread_run_queue() -> Option<Duration> {
    parse_schedstat(&std::fs::read_to_string("/proc/thread-self/schedstat").ok()?)
}

/// The run-queue time of schedstat's "on-CPU ns, run-queue ns, timeslices" line. A thread
/// reading it is on a CPU, so it has had a timeslice where the kernel counts them; none means it
/// does not count (it then writes "0 0 0"): `None`. (Not the time on a CPU: that can still read
/// 0 in a new thread, whose running slice is added when it ends.)
fn parse_schedstat(text: &str) -> Option<Duration> {
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    let _on_cpu = fields.next()??;
    let run_queue = Duration::from_nanos(fields.next()??);
    let timeslices = fields.next()??;
    (timeslices > 0).then_some(run_queue)
}

/// How long a run's load threads waited for a CPU, summed over them: what waiting for the load
/// machine's CPU added to the transactions those threads were in the middle of.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct RunQueueWait {
    /// Load threads measured.
    pub threads: u32,
    /// Their time runnable but without a CPU, summed (s).
    pub wait_s: f64,
    /// That wait over their lifetimes summed (0..1), idle time included (parked, think time,
    /// open-loop gaps), so for their busy time a lower bound; in closed loop, about the share of
    /// every client's time spent waiting for the client machine's CPU.
    pub share: f64,
    /// The largest share of one thread.
    pub max_thread_share: f64,
}

impl RunQueueWait {
    /// "N `threads` waited for a CPU x% of their lifetime (y s in all, at most z% for one)".
    pub fn describe(&self, threads: &str) -> String {
        format!(
            "{} {threads} waited for a CPU {:.1}% of their lifetime ({:.1} s in all, at most {:.1}% \
             for one)",
            self.threads,
            self.share * 100.0,
            self.wait_s,
            self.max_thread_share * 100.0
        )
    }
}

/// Sums the run-queue wait of load threads, each measuring its own life ([`RunQueueMeter::thread`]).
#[derive(Debug, Default)]
pub struct RunQueueMeter {
    threads: AtomicU64,
    lived_ns: AtomicU64,
    waited_ns: AtomicU64,
    /// The largest share of one thread, as the bits of a non-negative f64 (whose order is the
    /// numbers' order).
    max_share_bits: AtomicU64,
    /// A thread could not read its schedstat: the sums are incomplete.
    unavailable: AtomicBool,
}

impl RunQueueMeter {
    /// Runs `body` on the calling thread and adds how long it waited for a CPU meanwhile, also
    /// when `body` panics (the run reports the panic; its thread's wait still counts).
    pub fn thread<R>(&self, body: impl FnOnce() -> R) -> R {
        let _measured = Measured {
            meter: self,
            began: Instant::now(),
            before: thread_run_queue(),
        };
        body()
    }

    /// Adds one thread that lived `lived` and waited `waited` for a CPU.
    fn add(&self, lived: Duration, waited: Duration) {
        let (lived, waited) = (lived.as_nanos() as u64, waited.as_nanos() as u64);
        self.threads.fetch_add(1, Ordering::Relaxed);
        self.lived_ns.fetch_add(lived, Ordering::Relaxed);
        self.waited_ns.fetch_add(waited, Ordering::Relaxed);
        let share = (waited as f64 / lived.max(1) as f64).min(1.0);
        self.max_share_bits
            .fetch_max(share.to_bits(), Ordering::Relaxed);
    }

    /// The sums, once every thread measured is done; `None` if none was, or if one could not
    /// read its schedstat.
    pub fn result(&self) -> Option<RunQueueWait> {
        let threads = self.threads.load(Ordering::Relaxed);
        if threads == 0 || self.unavailable.load(Ordering::Relaxed) {
            return None;
        }
        let (lived, waited) = (
            self.lived_ns.load(Ordering::Relaxed),
            self.waited_ns.load(Ordering::Relaxed),
        );
        Some(RunQueueWait {
            threads: threads as u32,
            wait_s: waited as f64 / 1e9,
            share: (waited as f64 / lived.max(1) as f64).min(1.0),
            max_thread_share: f64::from_bits(self.max_share_bits.load(Ordering::Relaxed)),
        })
    }
}

/// One thread's measurement, taken when it ends: dropped at the end of [`RunQueueMeter::thread`]
/// or while its body unwinds.
struct Measured<'a> {
    meter: &'a RunQueueMeter,
    began: Instant,
    before: Option<Duration>,
}

impl Drop for Measured<'_> {
    fn drop(&mut self) {
        let (lived, after) = (self.began.elapsed(), thread_run_queue());
        match (self.before, after) {
            (Some(b), Some(a)) => self.meter.add(lived, a.saturating_sub(b)),
            _ => self.meter.unavailable.store(true, Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_lines_parse_and_garbage_does_not() {
        let s = parse_schedstat("2500000 750000000 12\n").expect("three fields");
        assert_eq!(s, Duration::from_millis(750));
        assert_eq!(parse_schedstat(""), None);
        assert_eq!(parse_schedstat("12 x 3"), None);
        assert_eq!(parse_schedstat("12 3"), None);
        assert_eq!(
            parse_schedstat("0 0 0\n"),
            None,
            "a kernel that does not count"
        );
        let new_thread = parse_schedstat("0 1200 1\n").expect("a new thread's first slice");
        assert_eq!(new_thread, Duration::from_nanos(1200));
    }

    #[test]
    fn a_thread_whose_body_panics_is_still_measured() {
        let meter = RunQueueMeter::default();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            meter.thread(|| panic!("the body fails"))
        }));
        assert!(r.is_err());
        assert_eq!(meter.result().map(|rq| rq.threads), Some(1));
    }

    #[test]
    fn a_meter_without_threads_or_with_an_unreadable_one_has_no_result() {
        let m = RunQueueMeter::default();
        assert_eq!(m.result(), None);
        m.add(Duration::from_secs(1), Duration::from_millis(250));
        m.add(Duration::from_secs(3), Duration::from_millis(750));
        let got = m.result().expect("two threads");
        assert_eq!(got.threads, 2);
        assert!((got.share - 0.25).abs() < 1e-9 && (got.wait_s - 1.0).abs() < 1e-9);
        assert_eq!(got.max_thread_share, 0.25);
        m.unavailable.store(true, Ordering::Relaxed);
        assert_eq!(m.result(), None);
    }

    #[test]
    fn cpu_time_grows_with_work() {
        let (u0, s0) = cpu_time();
        let mut x = 0u64;
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let (u1, s1) = cpu_time();
        assert!(u1 + s1 > u0 + s0);
        assert!(peak_rss_bytes() > 1024 * 1024);
    }
}
