//! How a run is asked to stop: a [`StopToken`], a cloneable handle that whoever starts a run (the
//! app layer, a test, a library caller) creates and hands in, and that every long-running loop
//! of that run checks.
//!
//! Why a token and not a process-wide flag: two runs in one process (tests, a library caller)
//! must not stop each other, and what stops a run is then visible in its signature. The app
//! layer's token is the one its Ctrl-C handler stops ([`crate::interrupt`]).
//!
//! Invariants: stopping is one-way (a stopped token stays stopped); [`StopToken::is_stopped`]
//! is one relaxed atomic load, cheap enough for a hot loop; [`StopToken::sleep`] returns as soon
//! as the token is stopped, so a sleeper does not delay the end of the run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A cloneable "stop this run" handle; clones share one state.
#[derive(Clone, Default)]
pub struct StopToken(Arc<Inner>);

#[derive(Default)]
struct Inner {
    stopped: AtomicBool,
    /// Sleepers wait here to be woken by [`StopToken::stop`].
    lock: Mutex<()>,
    wake: Condvar,
}

impl StopToken {
    /// A token not stopped yet.
    pub fn new() -> StopToken {
        StopToken::default()
    }

    /// Asks every holder of this token to stop, and wakes those sleeping on it.
    pub fn stop(&self) {
        self.0.stopped.store(true, Ordering::SeqCst);
        let _guard = self.0.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.0.wake.notify_all();
    }

    /// Whether [`StopToken::stop`] was called on this token or a clone of it.
    #[inline]
    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::Relaxed)
    }

    /// Sleeps for `d` or until the token is stopped, whichever comes first; whether it was
    /// stopped.
    pub fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut guard = self.0.lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.0.stopped.load(Ordering::SeqCst) {
                return true;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            guard = match self.0.wake.wait_timeout(guard, left) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }
}

impl std::fmt::Debug for StopToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StopToken")
            .field(&self.is_stopped())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_state_and_tokens_are_apart() {
        let a = StopToken::new();
        let b = StopToken::new();
        let a2 = a.clone();
        a2.stop();
        assert!(a.is_stopped());
        assert!(!b.is_stopped(), "stopping one token stopped another");
    }

    #[test]
    fn a_sleeper_wakes_when_stopped() {
        let t = StopToken::new();
        let t2 = t.clone();
        let t0 = Instant::now();
        let h = std::thread::spawn(move || t2.sleep(Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(50));
        t.stop();
        assert!(h.join().unwrap(), "the sleep did not report the stop");
        assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    }

    #[test]
    fn a_sleep_without_stop_lasts_its_duration() {
        let t = StopToken::new();
        let t0 = Instant::now();
        assert!(!t.sleep(Duration::from_millis(30)));
        assert!(t0.elapsed() >= Duration::from_millis(30));
    }
}
