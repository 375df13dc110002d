//! Will a seed fit on the server's disk? Checked before seeding, only when the server runs on this
//! machine (its data directory is then a path here).
//!
//! Invariants:
//! - The estimate is [`BYTES_PER_SCALE`] times the scale: the new dataset is loaded beside the old
//!   one (staging tables) and the old one is dropped only at the swap, so the whole new size must
//!   be free at once.
//! - Silence when anything cannot be read (data_directory needs superuser or
//!   pg_read_all_settings; the directory may belong to another user): the check refuses a seed
//!   only on evidence, never on a guess.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::{DatasetError, BYTES_PER_SCALE};

/// Free bytes for an unprivileged writer on the file system holding `path`, `None` when
/// `statvfs` fails.
fn free_bytes(path: &Path) -> Option<u64> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs the call fills.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

/// The free space of the server's data directory, `None` when it cannot be read.
pub fn data_directory_free(client: &mut postgres::Client) -> Option<(String, u64)> {
    let dir: String = client
        .query_one("SELECT current_setting('data_directory')", &[])
        .ok()?
        .get(0);
    let free = free_bytes(Path::new(&dir))?;
    Some((dir, free))
}

/// Refuses a seed of `scale` whose estimated size exceeds `free` bytes in `dir`.
pub fn check_fits(scale: u32, dir: &str, free: u64) -> Result<(), DatasetError> {
    let estimate = u64::from(scale) * BYTES_PER_SCALE;
    if estimate > free {
        return Err(DatasetError::NoRoom {
            scale,
            estimate,
            dir: dir.to_string(),
            free,
        });
    }
    Ok(())
}

/// [`check_fits`] against the server's data directory, when the server is `local` and its free
/// space can be read.
pub fn check(client: &mut postgres::Client, scale: u32, local: bool) -> Result<(), DatasetError> {
    if !local {
        return Ok(());
    }
    match data_directory_free(client) {
        Some((dir, free)) => check_fits(scale, &dir, free),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_bigger_than_the_free_space_is_refused_with_both_figures() {
        let gib = 1024 * 1024 * 1024;
        assert!(check_fits(100, "/data", gib).is_ok());
        let err = check_fits(10_000, "/data", gib).unwrap_err();
        assert_eq!(err.exit_kind(), crate::error::ExitKind::Usage);
        let msg = err.to_string();
        assert!(
            msg.contains("scale 10000") && msg.contains("4800.0 MB") && msg.contains("1073.7 MB"),
            "{msg}"
        );
        assert!(msg.contains("/data"), "{msg}");
    }

    #[test]
    fn free_space_of_an_existing_directory_is_read() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).is_some_and(|b| b > 0));
        assert!(free_bytes(Path::new("/nonexistent/pgstorm")).is_none());
    }
}
