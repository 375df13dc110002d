//! The hiccup meter against a real pause of the process: SIGSTOP, then SIGCONT from a child.
//!
//! In a test binary of its own because stopping the process stops every test running in it.
//! The meter is started as the engine starts it, so the control covers the configuration that runs,
//! and the test fails if the meter stops pinning itself to the last core the process may use.

use std::time::{Duration, Instant};

use pgstorm::engine::hiccup::{Meter, THREAD_NAME};

/// The CPUs the kernel lets this process's thread named `name` run on, as in /proc.
fn allowed_cpus(name: &str) -> Option<String> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        if comm.trim_end() == name {
            let status = std::fs::read_to_string(dir.join("status")).ok()?;
            return status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map(|v| v.trim().to_string());
        }
    }
    None
}

#[test]
fn a_stopped_process_is_seen_as_one_pause_of_about_that_length() {
    let core = *core_affinity::get_core_ids().unwrap().last().unwrap();
    let meter = Meter::start(Instant::now()).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        allowed_cpus(THREAD_NAME).as_deref(),
        Some(core.id.to_string().as_str()),
        "the meter thread is not pinned to core {}",
        core.id
    );
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
