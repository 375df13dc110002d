//! The guard process that cleans up a sandbox whose owner is gone (see the `sandbox` module doc).

use super::{os, Sandbox, SandboxError};
use std::io::Write;
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};

/// The cleanup process described in the module doc.
#[derive(Debug)]
pub(super) struct Guard {
    child: Child,
    stdin: Option<ChildStdin>,
}

/// `$1` pg_ctl, `$2` data dir, `$3` sandbox dir. A line "detach" means leave the cluster alone;
/// EOF (we exited, or dropped the pipe) means stop it and remove the directory.
const GUARD_SCRIPT: &str = r#"read -r cmd; [ "$cmd" = detach ] && exit 0
"$1" stop -D "$2" -m immediate -w -s -t 30 >/dev/null 2>&1
rm -rf -- "$3""#;

impl Guard {
    pub(super) fn spawn(sandbox: &Sandbox) -> Result<Guard, SandboxError> {
        let mut cmd = os::pg_command(
            Path::new("/bin/sh"),
            sandbox.run_as.as_ref(),
            Path::new("/"),
        );
        cmd.arg("-c")
            .arg(GUARD_SCRIPT)
            .arg("pgstorm-sandbox-guard")
            .arg(sandbox.bin_dir.join("pg_ctl"))
            .arg(&sandbox.data_dir)
            .arg(&sandbox.root)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().map_err(|source| SandboxError::Spawn {
            command: os::render(&cmd, sandbox.run_as.as_ref()),
            source,
        })?;
        let stdin = child.stdin.take();
        Ok(Guard { child, stdin })
    }

    /// Tells the guard to exit without touching the cluster.
    pub(super) fn detach(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"detach\n");
        }
        let _ = self.child.wait();
    }

    /// Lets the guard run its cleanup now and waits for it.
    pub(super) fn clean_up_now(mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}
