//! Sharing one registry across machines: which PostgreSQL server (if any) a project uses,
//! the project's key there, and how a hook reports an unreachable server without nagging.
//!
//! Checkouts of one repository live at different paths on different hosts, so the key
//! is `ORCHESTRATOR_PROJECT_ID` if set, else the repository's root commit, which every
//! clone shares.

use crate::core::paths::ProjectPaths;
use crate::core::private_fs;
use crate::core::settings;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The project's file naming its shared server (one line, a `postgres://` URL), written
/// by `orchestrator install --database-url`; private to the owner like the state dir.
pub fn url_file(paths: &ProjectPaths) -> PathBuf {
    paths.state_dir.join("database.url")
}

/// Where the derived project id is remembered (deriving it runs git once).
fn id_file(paths: &ProjectPaths) -> PathBuf {
    paths.state_dir.join("project-id")
}

/// The shared server this project uses: `ORCHESTRATOR_DATABASE_URL`, else the project's
/// `database.url` file; `None` keeps the SQLite file.
pub fn database_url(paths: &ProjectPaths) -> Option<String> {
    if let Some(url) = settings::get().database_url.clone() {
        return Some(url);
    }
    let (bytes, _) = private_fs::read_capped(&url_file(paths), 4096).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(line.to_string())
}

/// Records `url` as the project's shared server (an empty `url` forgets it).
pub fn set_database_url(paths: &ProjectPaths, url: &str) -> Result<()> {
    paths.ensure_state_dir()?;
    let file = url_file(paths);
    if url.is_empty() {
        return match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove {}", file.display()))
            }
            _ => Ok(()),
        };
    }
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        bail!("--database-url must start with postgres:// or postgresql://");
    }
    private_fs::write_atomic(&file, format!("{url}\n").as_bytes())
}

/// The project's key on a shared server.
pub fn project_id(paths: &ProjectPaths) -> Result<String> {
    if let Some(id) = settings::get().project_id.clone() {
        return Ok(id);
    }
    if let Ok((bytes, _)) = private_fs::read_capped(&id_file(paths), 256) {
        let id = String::from_utf8_lossy(&bytes).trim().to_string();
        if !id.is_empty() {
            return Ok(id);
        }
    }
    let id = root_commit(&paths.root)?;
    // Remembered for the next hook; a failure to write only costs the next one a git run.
    let _ = private_fs::write_atomic(&id_file(paths), id.as_bytes());
    Ok(id)
}

/// The repository's root commit (the smallest, when unrelated histories were merged).
fn root_commit(dir: &Path) -> Result<String> {
    let out = std::process::Command::new("git")
        .args(["rev-list", "--max-parents=0", "HEAD"])
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .output()
        .with_context(|| {
            "cannot run git to derive the project id; set ORCHESTRATOR_PROJECT_ID".to_string()
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut roots: Vec<&str> = text.split_whitespace().collect();
    roots.sort_unstable();
    match roots.first() {
        Some(r) if out.status.success() => Ok(format!("git:{r}")),
        _ => bail!(
            "{} has no git commit to name the project on a shared database; commit once, \
             or set ORCHESTRATOR_PROJECT_ID to one name every checkout uses",
            dir.display()
        ),
    }
}

/// How often a hook may say the shared server is unreachable.
pub const SAY_UNREACHABLE_EVERY: Duration = Duration::from_secs(60);

/// Whether a hook should print that the server is unreachable now: true at most once per
/// [`SAY_UNREACHABLE_EVERY`] per project (a stamp file in the state dir remembers).
pub fn should_say_unreachable(paths: &ProjectPaths) -> bool {
    let stamp = paths.state_dir.join("database-unreachable");
    let recent = std::fs::symlink_metadata(&stamp)
        .ok()
        .and_then(|m| m.modified().ok())
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age < SAY_UNREACHABLE_EVERY);
    if recent {
        return false;
    }
    let _ = private_fs::write_atomic(&stamp, b"");
    true
}
