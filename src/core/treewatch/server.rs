//! The watcher thread `serve` starts: takes the first picture of its checkout, then binds
//! `<state>/ledger/<agent pid>-<start ticks>.sock` (0600 in a 0700 directory) and runs one
//! poll loop over the socket and each checkout's inotify descriptor. No timer runs while
//! nothing happens: an idle server sleeps in `poll`.

use super::tree::Tree;
use super::{my_uid, peer_uid, socket_path, with_short_path, Reply, Request, TreeInfo};
use crate::core::identity::AgentProcess;
use crate::core::paths::ProjectPaths;
use crate::core::repo::Worktree;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Checkouts one server watches at most (its own and worktrees its session moves into).
const MAX_TREES: usize = 4;
/// Events are examined once the tree has been quiet this long...
const SETTLE: Duration = Duration::from_millis(30);
/// ...or this long after the first unexamined one.
const SETTLE_MAX: Duration = Duration::from_millis(300);
/// Longest request read.
const MAX_REQUEST: u64 = 64 * 1024;

/// The running watcher: removes its socket on [`Handle::remove`] (only while the socket
/// there is still this server's).
pub struct Handle {
    path: PathBuf,
    bound: Arc<Mutex<Option<(u64, u64)>>>,
}

impl Handle {
    pub fn remove(&self) {
        let ident = *self.bound.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some((dev, ino)), Ok(m)) = (ident, std::fs::symlink_metadata(&self.path)) {
            if m.dev() == dev && m.ino() == ino {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Starts the watcher for `paths.root` when this server runs under an agent process and
/// `ORCHESTRATOR_LEDGER_WATCH` allows it.
pub fn spawn(paths: &ProjectPaths, agent: Option<AgentProcess>) -> Option<Handle> {
    let a = agent?;
    if !crate::core::settings::get().ledger_watch {
        return None;
    }
    let path = socket_path(&paths.state_dir, a.pid, a.start_ticks);
    let bound = Arc::new(Mutex::new(None));
    let (p, b) = (path.clone(), bound.clone());
    let (root, wt) = (paths.root.clone(), paths.worktree.clone());
    let skip = vec![paths.state_dir.clone()];
    std::thread::Builder::new()
        .name("ledger".into())
        .spawn(move || run(&p, &b, &root, wt, skip))
        .ok()?;
    Some(Handle { path, bound })
}

fn open(root: &Path, wt: Option<&Worktree>, skip: Vec<PathBuf>) -> Tree {
    let t = Tree::open(
        root,
        wt.map(|w| w.git_dir.as_path()),
        wt.map(|w| w.common_dir.as_path()),
        skip,
    );
    match &t.uncovered {
        Some(why) => crate::core::log::warn(&format!(
            "Bash ledger: not watching {}: {why}; its commands use git status snapshots",
            root.display()
        )),
        // An ordinary line: Claude Code files every line of a server's stderr as an error.
        None => crate::core::log::info(&format!(
            "Bash ledger: watching {} ({} directories)",
            root.display(),
            t.dirs()
        )),
    }
    t
}

/// Removes the sockets of servers whose agent process is gone (killed without cleanup).
fn sweep(dir: &Path) {
    use crate::core::identity::{Probe, SystemProbe};
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((pid, ticks)) = name
            .strip_suffix(".sock")
            .and_then(|n| n.split_once('-'))
            .and_then(|(p, t)| Some((p.parse::<i32>().ok()?, t.parse::<u64>().ok()?)))
        else {
            continue;
        };
        let is_socket = e.file_type().is_ok_and(|t| t.is_socket());
        if is_socket && !SystemProbe.is_alive(pid, ticks) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn bind(path: &Path) -> Result<(UnixListener, (u64, u64)), String> {
    let dir = path.parent().ok_or("socket path has no directory")?;
    crate::core::private_fs::ensure_dir(dir).map_err(|e| format!("{e:#}"))?;
    sweep(dir);
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            let _ = std::fs::remove_file(path);
        }
        Ok(_) => {
            return Err(format!(
                "{} exists and is not a socket: remove it",
                path.display()
            ))
        }
        Err(_) => {}
    }
    let l = with_short_path(path, |p| UnixListener::bind(p))
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    let m = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if !m.file_type().is_socket() {
        return Err(format!("{} is not our socket", path.display()));
    }
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok((l, (m.dev(), m.ino())))
}

fn run(
    path: &Path,
    bound: &Mutex<Option<(u64, u64)>>,
    root: &Path,
    wt: Option<Worktree>,
    skip: Vec<PathBuf>,
) {
    let mut trees = vec![open(root, wt.as_ref(), skip.clone())];
    let common = wt.map(|w| w.common_dir);
    let (listener, ident) = match bind(path) {
        Ok(x) => x,
        Err(e) => {
            return crate::core::log::warn(&format!(
                "Bash ledger: {e}; Bash commands use git status snapshots"
            ))
        }
    };
    *bound.lock().unwrap_or_else(|p| p.into_inner()) = Some(ident);
    let mut since: Option<(Instant, Instant)> = None;
    loop {
        let mut fds = vec![libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let watched: Vec<usize> = (0..trees.len())
            .filter(|i| trees[*i].fd().is_some())
            .collect();
        for i in &watched {
            fds.push(libc::pollfd {
                fd: trees[*i].fd().unwrap_or(-1),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let timeout = match since {
            None => -1,
            Some((first, last)) => {
                let due = (last + SETTLE).min(first + SETTLE_MAX);
                due.saturating_duration_since(Instant::now()).as_millis() as i32
            }
        };
        // SAFETY: a valid array of pollfds and its length.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return crate::core::log::warn(&format!("Bash ledger stopped: poll failed: {e}"));
            }
            continue;
        }
        let now = Instant::now();
        for (k, i) in watched.iter().enumerate() {
            if fds[k + 1].revents != 0 && trees[*i].read_events() {
                since = Some((since.map_or(now, |s| s.0), now));
            }
        }
        if fds[0].revents != 0 {
            loop {
                match listener.accept() {
                    Ok((s, _)) => {
                        if let Some(new_root) = answer(&mut trees, s, common.as_deref()) {
                            let wt = Worktree::at(&new_root);
                            trees.push(open(&new_root, wt.as_ref(), skip.clone()));
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
        }
        if let Some((first, last)) = since {
            let now = Instant::now();
            if now >= last + SETTLE || now >= first + SETTLE_MAX {
                for t in trees.iter_mut().filter(|t| t.has_pending()) {
                    t.resolve();
                }
                since = None;
            }
        }
    }
}

fn info(t: &Tree) -> TreeInfo {
    TreeInfo {
        root: t.root.to_string_lossy().into_owned(),
        covered: t.uncovered.is_none(),
        why: t.uncovered.clone(),
        dirs: t.dirs(),
        entries: t.entries(),
        answered: t.answered,
        full_runs: t.full_runs,
        path_runs: t.path_runs,
    }
}

/// Answers one connection; returns a checkout to start watching afterwards.
fn answer(trees: &mut [Tree], s: UnixStream, common: Option<&Path>) -> Option<PathBuf> {
    if s.set_nonblocking(false).is_err() || peer_uid(s.as_raw_fd()) != Some(my_uid()) {
        return None;
    }
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let mut line = Vec::new();
    let mut reader = BufReader::new((&s).take(MAX_REQUEST));
    reader.read_until(b'\n', &mut line).ok()?;
    let (reply, start) = match serde_json::from_slice::<Request>(&line) {
        Ok(req) => handle(trees, &req, common),
        Err(e) => (Reply::no(format!("bad request: {e}")), None),
    };
    let mut out = serde_json::to_vec(&reply).ok()?;
    out.push(b'\n');
    let _ = (&s).write_all(&out);
    start
}

fn handle(trees: &mut [Tree], req: &Request, common: Option<&Path>) -> (Reply, Option<PathBuf>) {
    if req.op == "info" {
        let r = Reply {
            ok: true,
            trees: trees.iter().map(info).collect(),
            pid: std::process::id(),
            ..Reply::default()
        };
        return (r, None);
    }
    let root = std::fs::canonicalize(&req.root).unwrap_or_else(|_| PathBuf::from(&req.root));
    let Some(t) = trees.iter_mut().find(|t| t.root == root) else {
        if req.op != "begin" {
            return (Reply::no("this checkout is not watched here"), None);
        }
        // Another worktree of this repository that the session moved into.
        let same_repo =
            Worktree::at(&root).is_some_and(|w| common.is_some_and(|c| w.common_dir == c));
        if !same_repo {
            return (Reply::no("not a worktree of this repository"), None);
        }
        if trees.len() >= MAX_TREES {
            return (Reply::no("watching as many checkouts as allowed"), None);
        }
        return (Reply::no("starting to watch this checkout"), Some(root));
    };
    t.read_events();
    if let Some(why) = &t.uncovered {
        return (Reply::no(why.clone()), None);
    }
    let mut r = Reply {
        ok: true,
        git: t.is_git(),
        ..Reply::default()
    };
    match req.op.as_str() {
        "begin" => {
            t.begin(&req.key);
            r.head = t.head();
            if req.dirty {
                r.dirty = Some(t.dirty());
            }
        }
        "end" => match t.end(&req.key) {
            Some(w) => r.window = Some(w),
            None => return (Reply::no("no such window (server restarted?)"), None),
        },
        "dirty" => r.dirty = Some(t.dirty()),
        other => return (Reply::no(format!("unknown op {other:?}")), None),
    }
    (r, None)
}
