//! Which processes are the server on this host (whether it is on this host at all is
//! `Target::is_local`): the postmaster, found as the parent of our own backend (a sandbox's
//! postmaster is known directly, see `Session::local_server`).
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

/// Finds the postmaster of a local server (the caller checked [`crate::target::Target::is_local`])
/// through our own backend: `pg_backend_pid()` is a process of this host whose parent is the
/// postmaster. Checked by process name, so a server in another PID namespace (a container) whose
/// backend PID happens to exist here is not mistaken.
pub fn local_postmaster(client: &mut postgres::Client) -> Option<LocalServer> {
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
