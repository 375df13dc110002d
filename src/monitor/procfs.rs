//! Linux `/proc` readers the host sampler needs and sysinfo does not give cheaply: disk I/O of
//! whole block devices, network bytes, swap activity, and the CPU time and memory of one process tree (the
//! PostgreSQL postmaster and its children).
//!
//! Invariants: every reader returns `None` (never panics) when a file is missing or malformed, so
//! a host without `/proc` (or a server on another host) simply yields no figure. Counters are
//! cumulative; callers take deltas. [`tree_usage`] reads two files per backend (a thousand per
//! sample at 500 connections) into one reused buffer, without allocating or asking for sizes.

use std::fs;

/// Cumulative bytes read and written by whole block devices (`/proc/diskstats`).
///
/// Partitions and the devices [`counts_as_disk`] rejects are skipped: they would count the same
/// I/O twice (a partition inside its disk, a dm device over its disk) or are not disks at all.
pub fn disk_bytes() -> Option<(u64, u64)> {
    let text = fs::read_to_string("/proc/diskstats").ok()?;
    let mut read = 0u64;
    let mut written = 0u64;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 {
            continue;
        }
        let name = f[2];
        // Whole devices have a directory in /sys/block; partitions do not.
        if !counts_as_disk(name) || !std::path::Path::new("/sys/block").join(name).exists() {
            continue;
        }
        let sectors = |i: usize| f[i].parse::<u64>().unwrap_or(0);
        // Fields 6 and 10 (1-based) are sectors read / written; a sector here is always 512 bytes.
        read += sectors(5) * 512;
        written += sectors(9) * 512;
    }
    Some((read, written))
}

/// Whether a block device's I/O counts in a whole-disk total: loop, ram/zram and device-mapper/md
/// devices do not (they are not disks, or their I/O is counted again on the disks beneath them).
pub fn counts_as_disk(device: &str) -> bool {
    !["loop", "ram", "zram", "dm-", "md"]
        .iter()
        .any(|p| device.starts_with(p))
}

/// Cumulative network bytes: (received, sent) over all interfaces but loopback, and loopback
/// received, from `/proc/net/dev` (one file; sysinfo reads several files per interface).
pub fn net_bytes() -> Option<(u64, u64, u64)> {
    let text = fs::read_to_string("/proc/net/dev").ok()?;
    let (mut rx, mut tx, mut lo) = (0u64, 0u64, 0u64);
    // Two header lines, then `iface: rx_bytes rx_packets ... (8 rx fields) tx_bytes ...`.
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        if f.len() < 9 {
            continue;
        }
        if name.trim() == "lo" {
            lo += f[0];
        } else {
            rx += f[0];
            tx += f[8];
        }
    }
    Some((rx, tx, lo))
}

/// Cumulative pages swapped in and out (`pswpin`, `pswpout` of `/proc/vmstat`).
pub fn swap_pages() -> Option<(u64, u64)> {
    let text = fs::read_to_string("/proc/vmstat").ok()?;
    let mut pin = None;
    let mut pout = None;
    for line in text.lines() {
        let mut it = line.split_whitespace();
        match (it.next(), it.next()) {
            (Some("pswpin"), Some(v)) => pin = v.parse().ok(),
            (Some("pswpout"), Some(v)) => pout = v.parse().ok(),
            _ => {}
        }
        if pin.is_some() && pout.is_some() {
            break;
        }
    }
    Some((pin?, pout?))
}

/// Fields of `/proc/<pid>/stat` after the command name (which may contain spaces and parentheses),
/// so index 0 is the state (field 3 of proc(5)).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Parent pid of `pid`.
pub fn parent_pid(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// Command name of `pid` (`/proc/<pid>/comm`).
pub fn comm(pid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Clock ticks per second of the CPU times in `/proc/<pid>/stat`.
pub fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

/// CPU and memory of a process tree at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TreeUsage {
    /// CPU ticks of the root and its live children, plus the children it already reaped
    /// (`cutime`/`cstime`), so a backend that exits between two samples is still counted.
    pub cpu_ticks: u64,
    /// Resident memory: the root's RSS plus each child's private RSS (RSS minus shared pages), so
    /// shared memory (shared_buffers) is counted once, not once per backend.
    pub memory_bytes: u64,
    /// Live processes (root included).
    pub processes: u32,
}

/// The most of one `/proc/<pid>/<file>` read: `stat` and `statm` are a few hundred bytes.
const READ_LIMIT: u64 = 64 * 1024;

/// Reads small `/proc` files into one reused buffer: no allocation per file once the buffer has
/// grown, and no `statx` for a size hint (`fs::read_to_string` makes one per file). At 500
/// backends a sample reads a thousand files.
struct ProcReader {
    path: String,
    buf: Vec<u8>,
}

impl ProcReader {
    fn new() -> ProcReader {
        ProcReader {
            path: String::with_capacity(48),
            buf: Vec::with_capacity(1024),
        }
    }

    /// The text of `/proc/<pid>/<file>`, or `None` when it cannot be read (the process is gone).
    fn read(&mut self, pid: u32, file: &str) -> Option<&str> {
        use std::fmt::Write as _;
        use std::io::Read;
        self.path.clear();
        let _ = write!(self.path, "/proc/{pid}/{file}");
        // Through `Take`, `read_to_end` reads into the buffer's spare capacity until EOF; a
        // plain `File::read_to_end` would first ask the file's size, one more system call
        // per file for a size procfs reports as 0.
        let f = fs::File::open(&self.path).ok()?;
        self.buf.clear();
        f.take(READ_LIMIT).read_to_end(&mut self.buf).ok()?;
        std::str::from_utf8(&self.buf).ok()
    }

    /// utime + stime (and, with `reaped`, cutime + cstime) of `pid`, in clock ticks: fields 14-17
    /// of proc(5)'s `/proc/<pid>/stat`, counted after the command name (which may hold spaces
    /// and parentheses).
    fn cpu_ticks(&mut self, pid: u32, reaped: bool) -> Option<u64> {
        let text = self.read(pid, "stat")?;
        let rest = &text[text.rfind(')')? + 1..];
        // After the name, the state is field 3: utime is the 12th word.
        let mut it = rest.split_ascii_whitespace().skip(11);
        let mut sum = 0u64;
        for _ in 0..if reaped { 4 } else { 2 } {
            sum += it.next()?.parse::<u64>().ok()?;
        }
        Some(sum)
    }

    /// Resident and shared pages of `pid` (`/proc/<pid>/statm`).
    fn statm_pages(&mut self, pid: u32) -> Option<(u64, u64)> {
        let text = self.read(pid, "statm")?;
        let mut it = text.split_ascii_whitespace().skip(1);
        let resident = it.next()?.parse().ok()?;
        let shared = it.next()?.parse().ok()?;
        Some((resident, shared))
    }
}

fn children(pid: u32) -> Vec<u32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// CPU ticks and memory of `root` and its direct children (the postmaster forks every backend and
/// auxiliary process directly). `None` when `root` is gone. A child that exits between the
/// listing and its reads is skipped (its time shows in the root's `cutime`/`cstime` once reaped).
pub fn tree_usage(root: u32) -> Option<TreeUsage> {
    let mut r = ProcReader::new();
    let mut cpu = r.cpu_ticks(root, true)?;
    let page = page_size();
    let mut memory = r.statm_pages(root).map(|(res, _)| res * page).unwrap_or(0);
    let mut processes = 1;
    for child in children(root) {
        if let Some(ticks) = r.cpu_ticks(child, false) {
            cpu += ticks;
            processes += 1;
            if let Some((res, shared)) = r.statm_pages(child) {
                memory += res.saturating_sub(shared) * page;
            }
        }
    }
    Some(TreeUsage {
        cpu_ticks: cpu,
        memory_bytes: memory,
        processes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_tree_is_readable() {
        let me = std::process::id();
        let u = tree_usage(me).expect("own /proc entry");
        assert!(u.memory_bytes > 1024 * 1024);
        assert!(u.processes >= 1);
        assert!(parent_pid(me).is_some());
        assert!(comm(me).is_some());
        assert!(tree_usage(u32::MAX).is_none());
    }

    /// A shell with two sleeping children and one spinning: the tree counts all three, their
    /// private memory, and CPU time that grows while the spinner runs.
    #[test]
    fn a_process_tree_counts_its_children_and_their_cpu() {
        let mut shell = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30 & (while :; do :; done) & wait"])
            .spawn()
            .expect("sh");
        let root = shell.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let first = loop {
            let u = tree_usage(root).expect("the shell is alive");
            if u.processes == 4 || std::time::Instant::now() > deadline {
                break u;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        // The children's CPU grows: poll, since a loaded host may give the spinner little time.
        let mut later = first;
        while later.cpu_ticks <= first.cpu_ticks && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
            later = tree_usage(root).expect("the shell is alive");
        }
        for child in children(root) {
            // SAFETY: kill(2) with a pid this test's shell forked; no memory is involved.
            unsafe { libc::kill(child as libc::pid_t, libc::SIGKILL) };
        }
        let _ = shell.kill();
        let _ = shell.wait();
        assert_eq!(
            first.processes, 4,
            "the shell and its three children: {first:?}"
        );
        assert!(first.memory_bytes > 0, "{first:?}");
        assert!(
            later.cpu_ticks > first.cpu_ticks,
            "a spinning child adds CPU ticks: {first:?} then {later:?}"
        );
    }

    #[test]
    fn system_counters_parse() {
        assert!(disk_bytes().is_some());
        assert!(swap_pages().is_some());
        assert!(net_bytes().is_some());
        assert!(clock_ticks() > 0.0);
    }
}
