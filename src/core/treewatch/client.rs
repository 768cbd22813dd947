//! The asking side: hooks open and close command windows, `status` asks for uncommitted
//! files, `doctor` for what each server watches. Every failure is `None`: the caller falls
//! back to `git status` snapshots, as where no server runs.

use super::{my_uid, peer_uid, socket_path, with_short_path, Reply, Request, Window, SOCKET_DIR};
use crate::core::identity::AgentProcess;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest reply read (a dirty list of a very changed checkout).
const MAX_REPLY: u64 = 64 * 1024 * 1024;
/// How long an answer may take: a refresh after a commit runs one `git status`, as the
/// fallback would.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `req` to the server at `path`; its reply, or `None` (no server, not ours, slow).
pub fn ask(path: &Path, req: &Request, timeout: Duration) -> Option<Reply> {
    // Never through a link, never to a socket another user made.
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.file_type().is_socket() || meta.uid() != my_uid() {
        return None;
    }
    let mut s = with_short_path(path, |p| UnixStream::connect(p)).ok()?;
    if peer_uid(s.as_raw_fd()) != Some(my_uid()) {
        return None;
    }
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut line = serde_json::to_vec(req).ok()?;
    line.push(b'\n');
    s.write_all(&line).ok()?;
    let mut buf = Vec::new();
    BufReader::new(s.take(MAX_REPLY))
        .read_until(b'\n', &mut buf)
        .ok()?;
    serde_json::from_slice(&buf).ok()
}

fn mine(state_dir: &Path, agent: Option<AgentProcess>) -> Option<PathBuf> {
    let a = agent?;
    Some(socket_path(state_dir, a.pid, a.start_ticks))
}

/// What `begin` answered: the picture's HEAD, git or not, and the dirty paths if asked.
pub struct Begun {
    pub head: Option<String>,
    pub git: bool,
    pub dirty: Vec<String>,
}

/// Opens the window `key` on the checkout at `root` with this agent's server.
pub fn begin(
    state_dir: &Path,
    agent: Option<AgentProcess>,
    root: &Path,
    key: &str,
    want_dirty: bool,
) -> Option<Begun> {
    let req = Request {
        op: "begin".into(),
        root: root.to_string_lossy().into_owned(),
        key: key.into(),
        dirty: want_dirty,
    };
    let r = ask(&mine(state_dir, agent)?, &req, ANSWER_TIMEOUT)?;
    r.ok.then(|| Begun {
        head: r.head,
        git: r.git,
        dirty: r.dirty.unwrap_or_default(),
    })
}

/// Closes the window `key`: what changed in it.
pub fn end(
    state_dir: &Path,
    agent: Option<AgentProcess>,
    root: &Path,
    key: &str,
) -> Option<Window> {
    let req = Request {
        op: "end".into(),
        root: root.to_string_lossy().into_owned(),
        key: key.into(),
        dirty: false,
    };
    let r = ask(&mine(state_dir, agent)?, &req, ANSWER_TIMEOUT)?;
    if r.ok {
        r.window
    } else {
        None
    }
}

/// Every server socket in the registry.
pub fn sockets(state_dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(state_dir.join(SOCKET_DIR)) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sock"))
        .collect();
    v.sort();
    v
}

/// The uncommitted paths of the checkout at `root`, from any server watching it.
pub fn dirty(state_dir: &Path, root: &Path) -> Option<Vec<String>> {
    let req = Request {
        op: "dirty".into(),
        root: root.to_string_lossy().into_owned(),
        ..Request::default()
    };
    sockets(state_dir).iter().find_map(|s| {
        let r = ask(s, &req, ANSWER_TIMEOUT)?;
        (r.ok && r.git).then_some(r.dirty?)
    })
}

/// What each server watches, for `doctor`.
pub fn info(state_dir: &Path) -> Vec<Reply> {
    let req = Request {
        op: "info".into(),
        ..Request::default()
    };
    sockets(state_dir)
        .iter()
        .filter_map(|s| ask(s, &req, Duration::from_secs(5)))
        .collect()
}
