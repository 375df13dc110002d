//! The hiccup meter against a real pause of the process: SIGSTOP, then SIGCONT from a child.
//!
//! In a test binary of its own because stopping the process stops every test running in it.

use std::time::{Duration, Instant};

use pgstorm::engine::hiccup::Meter;

#[test]
fn a_stopped_process_is_seen_as_one_pause_of_about_that_length() {
    let meter = Meter::start(Instant::now()).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // A stopped process cannot continue itself: a child sends SIGCONT after 300 ms.
    let pid = std::process::id().to_string();
    let mut cont = std::process::Command::new("sh")
        .args(["-c", &format!("sleep 0.3; kill -CONT {pid}")])
        .spawn()
        .unwrap();
    // SAFETY: stops this process; the child above continues it.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGSTOP);
    }
    cont.wait().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let pauses = meter.finish();
    let longest = pauses.iter().map(|p| p.dur_us).max().unwrap_or(0);
    assert!(
        longest >= 200_000,
        "a 300 ms SIGSTOP was measured as {longest} µs: {pauses:?}"
    );
}
