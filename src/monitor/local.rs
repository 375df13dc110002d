//! Is the server on this host, and which processes are it: the postmaster, found as the parent
//! of our own backend (a sandbox's postmaster is known directly, see `Session::local_server`).
//!
//! Invariant: a process is taken for PostgreSQL only when both our backend and its parent are
//! named like PostgreSQL processes, so a PID that means something else here is never measured.

/// A PostgreSQL running on this host: its postmaster and how it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalServer {
    /// Postmaster PID.
    pub pid: u32,
    /// `sandbox` or `backend_parent`.
    pub source: &'static str,
}

/// Whether every host of `config` is this machine (a Unix socket or a loopback address).
pub fn is_local(config: &postgres::Config) -> bool {
    let hosts = config.get_hosts();
    !hosts.is_empty()
        && hosts.iter().all(|h| match h {
            postgres::config::Host::Unix(_) => true,
            postgres::config::Host::Tcp(name) => {
                name == "localhost"
                    || name
                        .parse::<std::net::IpAddr>()
                        .map(|ip| ip.is_loopback())
                        .unwrap_or(false)
            }
        })
}

/// Finds the postmaster of a local server through our own backend: `pg_backend_pid()` is a
/// process of this host whose parent is the postmaster. Checked by process name, so a server in
/// another PID namespace (a container) whose backend PID happens to exist here is not mistaken.
pub fn local_postmaster(
    client: &mut postgres::Client,
    config: &postgres::Config,
) -> Option<LocalServer> {
    if !is_local(config) {
        return None;
    }
    let backend: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .ok()?
        .get(0);
    let backend = u32::try_from(backend).ok()?;
    let is_postgres = |pid| {
        super::procfs::comm(pid)
            .map(|c| c.starts_with("postgres") || c.starts_with("postmaster"))
            .unwrap_or(false)
    };
    let parent = super::procfs::parent_pid(backend)?;
    (is_postgres(backend) && is_postgres(parent)).then_some(LocalServer {
        pid: parent,
        source: "backend_parent",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_sockets_are_local_remote_hosts_are_not() {
        let local = |s: &str| is_local(&s.parse::<postgres::Config>().unwrap());
        assert!(local("host=127.0.0.1 user=x"));
        assert!(local("host=localhost user=x"));
        assert!(local("host=/tmp user=x"));
        assert!(local("postgres://x@[::1]:5432/db"));
        assert!(!local("host=db.example.com user=x"));
        assert!(!local("host=10.1.2.3 user=x"));
    }
}
