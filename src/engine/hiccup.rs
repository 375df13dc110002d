//! The client's own pauses, measured as jHiccup does: a thread that asks to sleep 1 ms at a time
//! and records how much later than that it woke up.
//!
//! A pause of the whole pgstorm process (the load machine's CPU taken by something else, a VM
//! steal burst, memory pressure) delays every client at once and looks, from the clients' side,
//! exactly like a server stall. The stall detector ([`super::stall`]) uses these pauses to tell
//! the two apart, and every result reports the longest one.
//!
//! Invariants: the meter costs one short wakeup per millisecond and allocates only when it records
//! a pause (at least [`PAUSE_FLOOR`]); it stops within one period of being told to, and a meter
//! dropped without [`Meter::finish`] (a run that ended in an error) tells it to. It pins
//! itself to one core, the last this process may run on (the monitor core on hosts that keep one),
//! whether or not the load threads are pinned: left to float, its 1 kHz wakeups cost the pool
//! driver a quarter of its CPU per transaction at `-c 8` on a 2-core VM, pinned next to nothing
//! (docs/performance.md). Pinned, it constrains neither the load threads nor the server's backends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// The meter's sleep.
const PERIOD: Duration = Duration::from_millis(1);
/// The meter thread's name, as the kernel shows it.
pub const THREAD_NAME: &str = "pgstorm-hiccup";
/// Shortest oversleep recorded as a pause.
pub const PAUSE_FLOOR: Duration = Duration::from_millis(10);

/// One pause of the client: it started `start_us` after the run's start and lasted `dur_us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pause {
    /// Start, µs since the run's start.
    pub start_us: u64,
    /// Length beyond the requested sleep, µs.
    pub dur_us: u64,
}

/// A running meter.
pub struct Meter {
    stop: Arc<AtomicBool>,
    /// The meter thread; taken by [`Meter::finish`].
    handle: Option<JoinHandle<Vec<Pause>>>,
}

impl Meter {
    /// Starts measuring, pinned to the last core this process may run on; offsets are taken
    /// from `start`.
    pub fn start(start: Instant) -> Result<Meter> {
        let core = core_affinity::get_core_ids().and_then(|ids| ids.last().copied());
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .stack_size(64 * 1024)
            .spawn(move || {
                if let Some(c) = core {
                    core_affinity::set_for_current(c);
                }
                measure(start, &flag)
            })
            .context("cannot start the hiccup meter thread")?;
        Ok(Meter {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops the meter and returns the pauses it saw, in time order.
    pub fn finish(mut self) -> Vec<Pause> {
        self.stop.store(true, Ordering::Relaxed);
        let handle = self.handle.take().expect("only finish takes the thread");
        handle.join().unwrap_or_default()
    }
}

impl Drop for Meter {
    /// Tells the thread to stop without waiting for it: it ends at its next wakeup.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn measure(start: Instant, stop: &AtomicBool) -> Vec<Pause> {
    super::tight_timer_slack();
    let mut pauses = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let before = Instant::now();
        std::thread::sleep(PERIOD);
        let over = before.elapsed().saturating_sub(PERIOD);
        if over >= PAUSE_FLOOR {
            pauses.push(Pause {
                start_us: (before + PERIOD)
                    .saturating_duration_since(start)
                    .as_micros() as u64,
                dur_us: over.as_micros() as u64,
            });
        }
    }
    pauses
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_meter_dropped_without_finish_stops_its_thread() {
        let mut meter = Meter::start(Instant::now()).expect("the meter starts");
        let handle = meter.handle.take().expect("a started meter has its thread");
        drop(meter);
        // Without the drop's stop, the thread would sleep-loop until the test binary exits.
        let waited = Instant::now();
        while !handle.is_finished() {
            assert!(
                waited.elapsed() < Duration::from_secs(30),
                "the meter thread still runs 30 s after its meter was dropped"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
