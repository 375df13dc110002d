//! Static facts about the load machine, recorded in every result so a figure is never read
//! without knowing what produced it.
//!
//! Uses sysinfo with only the refresh kinds it needs (a full refresh costs milliseconds).

use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

use super::model::HostInfo;

/// Reads host name, OS, kernel, CPU model and count, memory and the clocksource.
pub fn host_info() -> HostInfo {
    let sys = System::new_with_specifics(
        RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing())
            .with_memory(MemoryRefreshKind::nothing().with_ram()),
    );
    let cpu_model = sys
        .cpus()
        .first()
        .map(|c| c.brand().trim().to_string())
        .unwrap_or_default();
    HostInfo {
        hostname: System::host_name().unwrap_or_default(),
        os: System::long_os_version().unwrap_or_default(),
        kernel: System::kernel_version().unwrap_or_default(),
        cpu_model,
        cpus: sys.cpus().len().max(1),
        memory_bytes: sys.total_memory(),
        clocksource: clocksource(),
    }
}

/// The kernel's current clocksource (`tsc`, `hpet`, `kvm-clock`, ...), or "unknown".
pub fn clocksource() -> String {
    crate::clock::kernel_clocksource()
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_facts_are_plausible() {
        let h = super::host_info();
        assert!(h.cpus >= 1);
        assert!(h.memory_bytes > 64 * 1024 * 1024);
        assert!(!h.clocksource.is_empty());
    }
}
