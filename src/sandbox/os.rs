//! Operating-system plumbing for the sandbox: locating the server binaries, the unprivileged user
//! the server runs as when we are root, and running PostgreSQL's tools with a clean environment.
//!
//! Invariant: every child started from here gets its own process group, `LC_ALL=C` (so server
//! messages we match on are English) and no inherited `PG*` variables (so a user's `PGPORT` or
//! `PGDATA` cannot redirect `pg_ctl` to another cluster).

use super::SandboxError;
use std::ffi::{CString, OsStr};
use std::fs;
use std::io;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The unprivileged account the server runs as when pgstorm itself runs as root.
#[derive(Debug, Clone)]
pub(super) struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// `None` when we are not root (run the tools as ourselves), else `postgres`, falling back to
/// `nobody`: initdb and postgres refuse to run as root.
pub(super) fn run_as() -> Result<Option<RunAs>, SandboxError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    ["postgres", "nobody"]
        .iter()
        .find_map(|name| lookup_user(name))
        .map(Some)
        .ok_or(SandboxError::NoUnprivilegedUser)
}

fn lookup_user(name: &str) -> Option<RunAs> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: passwd is plain old data; getpwnam_r only writes into it and into `buf`, and we
    // read the numeric fields before `buf` goes away (the re-entrant call avoids getpwnam's
    // static buffer, which other threads could overwrite).
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return None;
    }
    Some(RunAs {
        name: name.to_string(),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
    })
}

/// Our effective uid.
pub(super) fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether a process with this pid exists (EPERM still means it exists, just not ours).
pub(super) fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission; nothing is delivered.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

const SERVER_BINARIES: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

fn has_server_binaries(dir: &Path) -> bool {
    SERVER_BINARIES.iter().all(|b| is_executable(&dir.join(b)))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`, found on `PATH` first, then in the
/// highest-numbered `/usr/lib/postgresql/<major>/bin` (Debian's layout, which is not on `PATH`).
pub fn find_bin_dir() -> Result<PathBuf, SandboxError> {
    let path_dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for dir in &path_dirs {
        if !is_executable(&dir.join("initdb")) {
            continue;
        }
        // Symlinks such as /usr/local/bin/initdb point into the real bin dir; use that, since
        // the three tools must come from the same installation.
        if let Some(real) = fs::canonicalize(dir.join("initdb"))
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
        {
            if has_server_binaries(&real) {
                return Ok(real);
            }
        }
        if has_server_binaries(dir) {
            return Ok(dir.clone());
        }
    }
    let debian = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir(debian)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, e.path().join("bin")))
        })
        .filter(|(_, bin)| has_server_binaries(bin))
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| SandboxError::NoBinaries {
            searched: "PATH and /usr/lib/postgresql/*/bin".to_string(),
        })
}

/// A command for one of PostgreSQL's tools with the invariants of this module applied.
pub(super) fn pg_command(program: &Path, run_as: Option<&RunAs>, cwd: &Path) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("PG")) {
            cmd.env_remove(key);
        }
    }
    cmd.env("LC_ALL", "C")
        .current_dir(cwd)
        .stdin(Stdio::null())
        .process_group(0);
    if let Some(user) = run_as {
        cmd.uid(user.uid).gid(user.gid);
    }
    cmd
}

/// Runs to completion; a failure names the command line and the tail of what it printed.
pub(super) fn run(cmd: &mut Command, run_as: Option<&RunAs>) -> Result<Output, SandboxError> {
    let output = cmd.output().map_err(|source| SandboxError::Spawn {
        command: render(cmd, run_as),
        source,
    })?;
    if output.status.success() {
        return Ok(output);
    }
    let text = if output.stderr.trim_ascii().is_empty() {
        &output.stdout
    } else {
        &output.stderr
    };
    Err(SandboxError::Command {
        command: render(cmd, run_as),
        status: output.status.to_string(),
        output_tail: tail(&String::from_utf8_lossy(text), 15),
    })
}

/// A shell-like rendering of a command for error messages.
pub(super) fn render(cmd: &Command, run_as: Option<&RunAs>) -> String {
    let mut words = vec![quote(cmd.get_program())];
    words.extend(cmd.get_args().map(quote));
    let line = words.join(" ");
    match run_as {
        Some(user) => format!("{line} (as user {})", user.name),
        None => line,
    }
}

fn quote(word: &OsStr) -> String {
    let s = word.to_string_lossy();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The last `lines` lines of `text`, trimmed.
pub(super) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The last `lines` lines of a file, or a note saying why it could not be read.
pub(super) fn file_tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => tail(&String::from_utf8_lossy(&bytes), lines),
        Err(e) => format!("(could not read {}: {e})", path.display()),
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (the caller retries if it is taken by the
/// time the server binds it).
pub(super) fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Hands a path we created to the server's user, so the server can write there.
pub(super) fn give_to(path: &Path, run_as: Option<&RunAs>) -> Result<(), SandboxError> {
    if let Some(user) = run_as {
        std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
            .map_err(|e| SandboxError::io("chown to the server's user", path, e))?;
    }
    Ok(())
}

/// Fails when `user` cannot traverse every ancestor of `dir` (e.g. TMPDIR under /root), which
/// would otherwise surface as an obscure "permission denied" from initdb.
pub(super) fn check_reachable(dir: &Path, user: &RunAs) -> Result<(), SandboxError> {
    for ancestor in dir.ancestors().skip(1) {
        let meta = fs::metadata(ancestor)
            .map_err(|e| SandboxError::io("inspect directory", ancestor, e))?;
        let mode = meta.mode();
        let ok = mode & 0o001 != 0
            || (meta.uid() == user.uid && mode & 0o100 != 0)
            || (meta.gid() == user.gid && mode & 0o010 != 0);
        if !ok {
            return Err(SandboxError::DirNotReachable {
                path: ancestor.to_path_buf(),
                user: user.name.clone(),
            });
        }
    }
    Ok(())
}

/// `postgres --version` → "15.18".
pub(super) fn server_version(bin_dir: &Path) -> Result<String, SandboxError> {
    let mut cmd = pg_command(&bin_dir.join("postgres"), None, Path::new("/"));
    cmd.arg("--version");
    let out = run(&mut cmd, None)?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(parse_version(&text))
}

fn parse_version(text: &str) -> String {
    let mut words = text.split_whitespace();
    words
        .by_ref()
        .find(|w| *w == "(PostgreSQL)")
        .and_then(|_| words.next())
        .unwrap_or_else(|| text.trim())
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_the_word_after_the_product_name() {
        assert_eq!(
            parse_version("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            "15.18"
        );
        assert_eq!(parse_version("postgres (PostgreSQL) 17devel"), "17devel");
        assert_eq!(parse_version("something else"), "something else");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
        assert_eq!(tail("", 5), "");
    }

    #[test]
    fn render_quotes_only_what_needs_it() {
        let mut cmd = Command::new("/usr/bin/pg_ctl");
        cmd.args(["start", "-D", "/tmp/a b", "it's"]);
        assert_eq!(
            render(&cmd, None),
            r"/usr/bin/pg_ctl start -D '/tmp/a b' 'it'\''s'"
        );
    }
}
