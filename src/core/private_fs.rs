//! The state dir's promise, by construction: directories 0700, files 0600, no symlink
//! ever followed, and no read that a FIFO or a huge file can hang.
//!
//! Session ids in these files let anyone who reads them act as that session, and a
//! symlink planted in the state dir (or committed to the repository) would make us read or
//! create files outside it. Every create, read and check of state files goes through here.

use anyhow::{bail, Result};
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// What an existing path's mode was before [`tighten`] narrowed it.
pub type Widened = Option<u32>;

/// `lstat`, refusing a symlink with an error that names the path and the fix.
/// `None` when nothing is there.
pub fn lstat_no_link(path: &Path) -> Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => bail!(
            "{} is a symlink; orchestrator never follows links in its state dir: \
             remove it (rm {}) and retry",
            path.display(),
            path.display()
        ),
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => bail!("cannot inspect {}: {e}", path.display()),
    }
}

/// Narrows `path` to `mode` if it grants more and this user owns it (only the owner or
/// root may chmod; root leaves other users' files alone). Returns the old mode if changed.
pub fn tighten(path: &Path, meta: &fs::Metadata, mode: u32) -> Widened {
    let old = meta.permissions().mode() & 0o777;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if old & !mode == 0 || meta.uid() != me {
        return None;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(old & mode))
        .ok()
        .map(|_| old)
}

/// Ensures a private directory at `path` (parents created as needed): refuses a symlink
/// or a non-directory there, creates it 0700, narrows a wider one we own.
pub fn ensure_dir(path: &Path) -> Result<Widened> {
    if let Some(m) = lstat_no_link(path)? {
        if !m.is_dir() {
            bail!(
                "{} exists but is not a directory: move that file away and retry",
                path.display()
            );
        }
        return Ok(tighten(path, &m, DIR_MODE));
    }
    let created = fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path);
    match created {
        Ok(()) => {}
        // Another process created it at the same moment; check what it is.
        Err(_) if fs::symlink_metadata(path).is_ok() => return ensure_dir(path),
        Err(e) => bail!(
            "cannot create {}: {e}; check that its parent directory is writable",
            path.display()
        ),
    }
    // The umask may have narrowed 0700 further; never wider. Nothing to report.
    Ok(None)
}

/// Ensures a private regular file at `path`: refuses a symlink or anything else there,
/// creates it empty with 0600 (so files SQLite derives from it, `-wal` and `-shm`, get
/// 0600 too), narrows a wider one we own.
pub fn ensure_file(path: &Path, initial: &[u8]) -> Result<Widened> {
    if let Some(m) = lstat_no_link(path)? {
        return regular(path, &m).map(|()| tighten(path, &m, FILE_MODE));
    }
    let created = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path);
    match created {
        Ok(mut f) => {
            f.write_all(initial)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            Ok(None)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => match lstat_no_link(path)? {
            Some(m) => regular(path, &m).map(|()| None),
            None => bail!("{} vanished while being created; retry", path.display()),
        },
        Err(e) => bail!(
            "cannot create {}: {e}; check that the state dir is writable",
            path.display()
        ),
    }
}

/// Narrows an existing file or directory we own to the private mode; refuses a symlink.
/// Missing is fine.
pub fn secure_existing(path: &Path) -> Result<Widened> {
    Ok(match lstat_no_link(path)? {
        Some(m) if m.is_dir() => tighten(path, &m, DIR_MODE),
        Some(m) => {
            regular(path, &m)?;
            tighten(path, &m, FILE_MODE)
        }
        None => None,
    })
}

fn regular(path: &Path, m: &fs::Metadata) -> Result<()> {
    if !m.is_file() {
        bail!(
            "{} is not a regular file: move it away and retry",
            path.display()
        );
    }
    Ok(())
}

/// Reads a regular file of at most `cap` bytes without following a symlink and without
/// blocking on a FIFO or device; returns its bytes and metadata. The cap holds even for
/// a file that grows while read.
pub fn read_capped(path: &Path, cap: u64) -> std::io::Result<(Vec<u8>, fs::Metadata)> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                std::io::Error::other(format!(
                    "{} is a symlink, which orchestrator never follows: remove it",
                    path.display()
                ))
            } else {
                e
            }
        })?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    if meta.len() > cap {
        return Err(std::io::Error::other(format!(
            "{} is larger than {cap} bytes",
            path.display()
        )));
    }
    let mut buf = Vec::new();
    f.take(cap + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > cap {
        return Err(std::io::Error::other(format!(
            "{} is larger than {cap} bytes",
            path.display()
        )));
    }
    Ok((buf, meta))
}

/// Replaces `path` atomically (temp file + rename) with a private file holding `body`.
/// Refuses when `path` is a symlink or not a regular file.
pub fn write_atomic(path: &Path, body: &[u8]) -> Result<()> {
    if let Some(m) = lstat_no_link(path)? {
        regular(path, &m)?;
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        bail!("{} has no parent directory", path.display());
    };
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        name.to_string_lossy()
    ));
    let write = || -> std::io::Result<()> {
        // A temp file left by a crashed process of the same pid is replaced, not reused.
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(body)?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        anyhow::anyhow!(
            "cannot write {}: {e}; check that the state dir is writable",
            path.display()
        )
    })
}

/// True when this process may write to `path` (`access(2)`: a read-only mount fails even
/// for root; permission bits do not bind root).
pub fn writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    }

    #[test]
    fn creates_private_and_narrows_wide() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let d = tmp.path().join("a/b");
        assert_eq!(ensure_dir(&d)?, None);
        assert_eq!(mode(&d), 0o700);
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755))?;
        assert_eq!(ensure_dir(&d)?, Some(0o755));
        assert_eq!(mode(&d), 0o700);
        let f = d.join("f");
        assert_eq!(ensure_file(&f, b"x")?, None);
        assert_eq!(mode(&f), 0o600);
        assert_eq!(fs::read(&f)?, b"x");
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644))?;
        assert_eq!(ensure_file(&f, b"y")?, Some(0o644));
        assert_eq!(mode(&f), 0o600);
        assert_eq!(fs::read(&f)?, b"x", "an existing file is not rewritten");
        write_atomic(&d.join("g"), b"body")?;
        assert_eq!(mode(&d.join("g")), 0o600);
        Ok(())
    }

    #[test]
    fn never_follows_a_link() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let outside = tmp.path().join("outside");
        let link = tmp.path().join("link");
        symlink(&outside, &link)?;
        for r in [
            ensure_dir(&link).map(|_| ()),
            ensure_file(&link, b"").map(|_| ()),
            write_atomic(&link, b"").map(|_| ()),
            secure_existing(&link).map(|_| ()),
        ] {
            let e = r.err().map(|e| format!("{e:#}")).unwrap_or_default();
            assert!(e.contains("is a symlink") && e.contains("rm "), "{e}");
        }
        assert!(read_capped(&link, 10).is_err());
        assert!(!outside.exists(), "nothing created through the link");
        Ok(())
    }

    #[test]
    fn reads_only_small_regular_files() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let f = tmp.path().join("f");
        fs::write(&f, b"12345")?;
        assert_eq!(read_capped(&f, 5)?.0, b"12345");
        assert!(read_capped(&f, 4).is_err());
        let fifo = tmp.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes())?;
        // SAFETY: valid path string; mkfifo has no other preconditions.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Would block forever without O_NONBLOCK (no writer).
        assert!(read_capped(&fifo, 10).is_err());
        assert!(read_capped(tmp.path(), 10).is_err());
        Ok(())
    }
}
