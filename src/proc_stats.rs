//! The client measuring itself: its own CPU time and peak memory (getrusage).
//!
//! Cheap enough to call around a run (two syscalls); never called per query.

use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;

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
