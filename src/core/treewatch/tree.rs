//! One watched checkout: inotify on its directories (ignored ones and `.git` skipped), the
//! picture of what `git status` would say (every changed path with its status, mtime and
//! size), and a log of the picture's changes so a command's window — "what changed since
//! my command started" — is answered in work proportional to what changed.
//!
//! The picture is kept exact: a path an event names is re-examined (the native index says
//! tracked or not; stat data, or `git hash-object` when stat data cannot tell, says
//! modified or not; `.gitignore` says whether an untracked file shows). What cannot be
//! decided natively (type changes, nested repositories) asks `git status` for those paths
//! alone, and what changes statuses without touching the files — the index's objects,
//! HEAD, a `.gitignore`, lost events — refreshes the whole picture with one `git status`.

use super::index::{Index, MODE_EXEC, MODE_LINK};
use crate::core::ledger::{self, Stamp, TreeState};
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Picture changes kept for open windows; past this the oldest windows are dropped (their
/// commands fall back to `git status`).
const MAX_LOG: usize = 500_000;
/// Open windows kept (a PreToolUse whose PostToolUse never came).
const MAX_WINDOWS: usize = 64;
/// A window older than this is dropped.
const WINDOW_TTL: Duration = Duration::from_secs(6 * 3600);
/// Files a checkout without git may hold: its picture lists every file (the walk it
/// replaces stops at `ledger::MAX_WALK`).
const MAX_PLAIN_FILES: usize = 200_000;
/// Paths handed to one `git` command line.
const BATCH: usize = 500;

const DIR_MASK: u32 = libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_MODIFY
    | libc::IN_CLOSE_WRITE
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_ATTRIB
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF
    | libc::IN_ONLYDIR
    | libc::IN_DONT_FOLLOW
    | libc::IN_EXCL_UNLINK;
const GIT_MASK: u32 =
    libc::IN_MOVED_TO | libc::IN_CLOSE_WRITE | libc::IN_ONLYDIR | libc::IN_DONT_FOLLOW;

/// What a command's window saw: the answer PostToolUse needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    pub git: bool,
    /// Changed from before to after, as `ledger::changed` would say.
    pub changed: Vec<String>,
    /// In the picture before, not after (committed, reverted or deleted untracked).
    pub gone: Vec<String>,
    pub head_before: Option<String>,
    pub head_after: Option<String>,
}

struct Git {
    git_dir: PathBuf,
    common_dir: PathBuf,
    index: Index,
    /// Why the index cannot be read natively now (a merge in progress, sparse checkout,
    /// ...): meanwhile every path is asked of `git status`.
    index_problem: Option<String>,
    hash_len: usize,
    filemode: bool,
    /// HEAD, its loose ref and the packed-refs stat: a change means HEAD may have moved.
    head_key: String,
}

struct Opened {
    seq: u64,
    head: Option<String>,
    at: Instant,
}

/// A watched checkout and its picture.
pub struct Tree {
    pub root: PathBuf,
    /// Directories never entered: the registry (when it lies inside this checkout).
    skip: Vec<PathBuf>,
    git: Option<Git>,
    fd: Option<OwnedFd>,
    wd_dir: HashMap<i32, (String, Kind)>,
    dir_wd: HashMap<String, i32>,
    git_wd: Option<i32>,
    /// `.gitignore` matchers by directory, then `info/exclude` and the global excludes.
    ignores: HashMap<String, Gitignore>,
    excludes: Vec<Gitignore>,
    picture: HashMap<String, Stamp>,
    head: Option<String>,
    seq: u64,
    log: VecDeque<(u64, String, Option<Stamp>)>,
    windows: HashMap<String, Opened>,
    pending: BTreeSet<String>,
    full: bool,
    index_stale: bool,
    /// Why this checkout is not covered (then every command falls back to `git status`).
    pub uncovered: Option<String>,
    pub answered: u64,
    /// Whole `git status` runs (start, HEAD or index objects moved, `.gitignore`, lost
    /// events) and path-limited ones: the work that is not proportional to the change.
    pub full_runs: u64,
    pub path_runs: u64,
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn parent(rel: &str) -> &str {
    rel.rfind('/').map(|i| &rel[..i]).unwrap_or("")
}

fn git_out(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn read_small(p: &Path) -> String {
    crate::core::private_fs::read_capped(p, 4096)
        .map(|(b, _)| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The watch limit's value, for the message that says it was reached.
fn watch_limit() -> String {
    std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

impl Tree {
    /// Starts watching `root` (a git worktree, or a plain directory when `git_dir` is
    /// `None`) and takes the first picture. A tree that cannot be covered says why in
    /// [`Tree::uncovered`].
    pub fn open(
        root: &Path,
        git_dir: Option<&Path>,
        common_dir: Option<&Path>,
        skip: Vec<PathBuf>,
    ) -> Self {
        let mut t = Tree {
            root: root.to_path_buf(),
            skip,
            git: None,
            fd: None,
            wd_dir: HashMap::new(),
            dir_wd: HashMap::new(),
            git_wd: None,
            ignores: HashMap::new(),
            excludes: Vec::new(),
            picture: HashMap::new(),
            head: None,
            seq: 0,
            log: VecDeque::new(),
            windows: HashMap::new(),
            pending: BTreeSet::new(),
            full: false,
            index_stale: false,
            uncovered: None,
            answered: 0,
            full_runs: 0,
            path_runs: 0,
        };
        if let (Some(g), Some(c)) = (git_dir, common_dir) {
            let hash_len = match git_out(root, &["rev-parse", "--show-object-format"])
                .as_deref()
                .map(str::trim)
            {
                Some("sha256") => 32,
                _ => 20,
            };
            let filemode = git_out(root, &["config", "--bool", "core.fileMode"])
                .map(|v| v.trim() != "false")
                .unwrap_or(true);
            let mut ex = GitignoreBuilder::new(root);
            ex.add(c.join("info/exclude"));
            if let Ok(gi) = ex.build() {
                t.excludes.push(gi);
            }
            let (global, _) = Gitignore::global();
            t.excludes.push(global);
            t.git = Some(Git {
                git_dir: g.to_path_buf(),
                common_dir: c.to_path_buf(),
                index: Index::default(),
                index_problem: None,
                hash_len,
                filemode,
                head_key: String::new(),
            });
        }
        t.rebuild();
        t
    }

    fn uncover(&mut self, why: String) {
        if self.uncovered.is_none() {
            self.uncovered = Some(why);
        }
        self.fd = None;
        self.wd_dir.clear();
        self.dir_wd.clear();
        self.windows.clear();
        self.log.clear();
        self.pending.clear();
    }

    /// The inotify descriptor to poll (none once uncovered).
    pub fn fd(&self) -> Option<i32> {
        self.fd.as_ref().map(|f| f.as_raw_fd())
    }

    pub fn dirs(&self) -> usize {
        self.dir_wd.len()
    }

    pub fn entries(&self) -> usize {
        self.picture.len()
    }

    pub fn is_git(&self) -> bool {
        self.git.is_some()
    }

    /// True when events wait to be examined.
    pub fn has_pending(&self) -> bool {
        self.uncovered.is_none() && (!self.pending.is_empty() || self.full || self.index_stale)
    }

    /// Fresh watches on every directory and a whole new picture (start, lost events, a
    /// changed `.gitignore`). Picture changes are logged, so open windows stay exact.
    fn rebuild(&mut self) {
        if self.uncovered.is_some() {
            return;
        }
        // SAFETY: inotify_init1 takes flags only; a negative return is an error.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            let why = if e.raw_os_error() == Some(libc::EMFILE) {
                "the inotify instance limit (fs.inotify.max_user_instances) is reached".into()
            } else {
                format!("inotify unavailable: {e}")
            };
            return self.uncover(why);
        }
        // SAFETY: a fresh descriptor nobody else owns.
        self.fd = Some(unsafe { OwnedFd::from_raw_fd(fd) });
        self.wd_dir.clear();
        self.dir_wd.clear();
        self.ignores.clear();
        self.pending.clear();
        self.full = false;
        self.index_stale = false;
        if let Some(g) = self.git.as_ref() {
            let dir = g.git_dir.clone();
            self.git_wd = self.add_watch(&dir, GIT_MASK).ok();
        }
        if let Err(why) = self.load_index() {
            return self.uncover(why);
        }
        let mut found = Vec::new();
        if let Err(why) = self.scan("", false, &mut found) {
            return self.uncover(why);
        }
        let now = if self.git.is_some() {
            self.full_runs += 1;
            match ledger::git_status(&self.root, &[]) {
                Some(s) => s,
                None => return self.uncover("git status failed in this checkout".into()),
            }
        } else {
            let mut st = TreeState::default();
            for rel in found {
                let (m, s) = ledger::stamp(&self.root, &rel);
                st.entries.insert(rel, (String::new(), m, s));
            }
            st
        };
        let mut keys: BTreeSet<String> = self.picture.keys().cloned().collect();
        keys.extend(now.entries.keys().cloned());
        for k in keys {
            let v = now.entries.get(&k).cloned();
            self.set(&k, v);
        }
        self.head = now.head;
        self.head_key_changed();
    }

    /// Rereads the index; true when its objects changed (statuses may have). Submodules
    /// are an error: changes inside them make no event here.
    fn load_index(&mut self) -> Result<bool, String> {
        let Some(g) = self.git.as_mut() else {
            return Ok(false);
        };
        match Index::load(&g.git_dir, g.hash_len) {
            Ok(fresh) => {
                let same = g.index_problem.is_none() && fresh.same_objects(&g.index);
                g.index = fresh;
                g.index_problem = None;
                Ok(!same)
            }
            Err(e) if e.contains("submodule") => Err(format!(
                "{e}, whose changes it cannot watch; the ledger uses git status here"
            )),
            Err(e) => {
                g.index = Index::default();
                g.index_problem = Some(e);
                Ok(true)
            }
        }
    }

    /// True when HEAD (or the branch it names) may have moved since the last look.
    fn head_key_changed(&mut self) -> bool {
        let Some(g) = self.git.as_mut() else {
            return false;
        };
        let head = read_small(&g.git_dir.join("HEAD"));
        let common = g.common_dir.clone();
        let loose = head
            .trim()
            .strip_prefix("ref:")
            .map(|r| read_small(&common.join(r.trim())))
            .unwrap_or_default();
        let packed = std::fs::metadata(common.join("packed-refs"))
            .map(|m| format!("{}.{}:{}", m.mtime(), m.mtime_nsec(), m.size()))
            .unwrap_or_default();
        let key = format!("{head}|{loose}|{packed}");
        let changed = key != g.head_key;
        g.head_key = key;
        changed
    }

    fn add_watch(&mut self, abs: &Path, mask: u32) -> Result<i32, String> {
        let Some(fd) = self.fd.as_ref().map(|f| f.as_raw_fd()) else {
            return Err("not watching".into());
        };
        let c = CString::new(abs.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
        // SAFETY: a valid inotify fd and a NUL-terminated path.
        let wd = unsafe { libc::inotify_add_watch(fd, c.as_ptr(), mask) };
        // Debug builds only: a test sets a tiny watch limit without touching the machine's.
        #[cfg(debug_assertions)]
        let wd = match std::env::var("ORCHESTRATOR_DEBUG_MAX_WATCHES")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
        {
            Some(max) if self.dir_wd.len() >= max && mask == DIR_MASK => {
                // SAFETY: sets this thread's errno, as a failing call would.
                unsafe { *libc::__errno_location() = libc::ENOSPC };
                -1
            }
            _ => wd,
        };
        if wd < 0 {
            let e = std::io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::ENOSPC) {
                format!(
                    "the inotify watch limit is reached (fs.inotify.max_user_watches = {}); \
                     raise it with `sysctl fs.inotify.max_user_watches=524288`",
                    watch_limit()
                )
            } else {
                format!("cannot watch {}: {e}", abs.display())
            });
        }
        Ok(wd)
    }

    fn is_skipped(&self, abs: &Path) -> bool {
        self.skip.iter().any(|s| s == abs)
    }

    /// Whether an untracked `rel` is ignored by git's rules (its directories are known not
    /// to be, or they would not be watched).
    fn ignored(&self, rel: &str, is_dir: bool) -> bool {
        if self.git.is_none() {
            return rel.rsplit('/').next().is_some_and(ledger::walk_skips);
        }
        let abs = self.root.join(rel);
        let mut dir = parent(rel);
        loop {
            if let Some(gi) = self.ignores.get(dir) {
                let m = gi.matched(&abs, is_dir);
                if !m.is_none() {
                    return m.is_ignore();
                }
            }
            if dir.is_empty() {
                break;
            }
            dir = parent(dir);
        }
        for gi in &self.excludes {
            let m = gi.matched(&abs, is_dir);
            if !m.is_none() {
                return m.is_ignore();
            }
        }
        false
    }

    fn is_tracked(&self, rel: &str) -> bool {
        self.git
            .as_ref()
            .is_some_and(|g| g.index_problem.is_some() || g.index.get(rel).is_some())
    }

    fn has_tracked_under(&self, rel: &str) -> bool {
        self.git.as_ref().is_some_and(|g| g.index.has_under(rel))
    }

    /// Watches `rel` and the directories under it that git (or, without git, the walk)
    /// looks into; files found go to `found`. `ignored`: `rel` itself is ignored (watched
    /// only for the tracked files under it).
    fn scan(&mut self, rel: &str, ignored: bool, found: &mut Vec<String>) -> Result<(), String> {
        let mut stack = vec![(rel.to_string(), ignored)];
        while let Some((dir, ign)) = stack.pop() {
            let abs = if dir.is_empty() {
                self.root.clone()
            } else {
                self.root.join(&dir)
            };
            if self.dir_wd.contains_key(&dir) {
                continue;
            }
            let wd = match self.add_watch(&abs, DIR_MASK) {
                Ok(wd) => wd,
                Err(e) if e.contains("watch limit") => return Err(e),
                // Vanished meanwhile (or not a directory any more): its parent's events say.
                Err(_) => continue,
            };
            let kind = if ign { Kind::Ignored } else { Kind::Plain };
            self.wd_dir.insert(wd, (dir.clone(), kind));
            self.dir_wd.insert(dir.clone(), wd);
            if self.git.is_some() {
                let gi_path = abs.join(".gitignore");
                if gi_path.is_file() {
                    let (gi, _) = Gitignore::new(&gi_path);
                    self.ignores.insert(dir.clone(), gi);
                }
            }
            let Ok(rd) = std::fs::read_dir(&abs) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name == ".git" {
                    continue;
                }
                let child = join(&dir, &name);
                let Ok(ft) = e.file_type() else { continue };
                if ft.is_dir() {
                    let cabs = abs.join(&name);
                    if self.is_skipped(&cabs) || (self.git.is_none() && ledger::walk_skips(&name)) {
                        continue;
                    }
                    let cign = ign || (self.git.is_some() && self.ignored(&child, true));
                    if self.git.is_some() && cabs.join(".git").exists() {
                        if !cign {
                            self.watch_nested(&child)?;
                            found.push(format!("{child}/"));
                        }
                        continue;
                    }
                    if cign && !self.has_tracked_under(&child) {
                        continue;
                    }
                    stack.push((child, cign));
                } else if self.git.is_none() && ledger::walk_skips(&name) {
                    continue;
                } else if !ign || self.is_tracked(&child) {
                    found.push(child);
                    if self.git.is_none() && self.picture.len() + found.len() > MAX_PLAIN_FILES {
                        return Err(format!(
                            "more than {MAX_PLAIN_FILES} files and no git repository"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Watches the top of a nested repository (not below: git does not look there).
    fn watch_nested(&mut self, rel: &str) -> Result<(), String> {
        if self.dir_wd.contains_key(rel) {
            return Ok(());
        }
        match self.add_watch(&self.root.join(rel), DIR_MASK) {
            Ok(wd) => {
                self.wd_dir.insert(wd, (rel.to_string(), Kind::Nested));
                self.dir_wd.insert(rel.to_string(), wd);
                Ok(())
            }
            Err(e) if e.contains("watch limit") => Err(e),
            Err(_) => Ok(()),
        }
    }

    fn unwatch_under(&mut self, rel: &str) {
        let prefix = format!("{rel}/");
        let gone: Vec<String> = self
            .dir_wd
            .keys()
            .filter(|d| *d == rel || d.starts_with(&prefix))
            .cloned()
            .collect();
        for d in gone {
            if let Some(wd) = self.dir_wd.remove(&d) {
                self.wd_dir.remove(&wd);
                if let Some(fd) = self.fd.as_ref() {
                    // SAFETY: valid fd; an already-removed wd only returns EINVAL.
                    unsafe { libc::inotify_rm_watch(fd.as_raw_fd(), wd) };
                }
            }
            self.ignores.remove(&d);
        }
    }

    /// Reads every queued event; returns whether any was read.
    pub fn read_events(&mut self) -> bool {
        let Some(fd) = self.fd() else { return false };
        let mut buf = vec![0u8; 64 * 1024];
        let mut any = false;
        loop {
            // SAFETY: reading into a buffer of the stated length.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return any;
            }
            any = true;
            let n = n as usize;
            let head = std::mem::size_of::<libc::inotify_event>();
            let mut at = 0;
            while at + head <= n {
                // SAFETY: the kernel wrote a whole inotify_event header at `at`; read
                // unaligned into a local copy.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf[at..].as_ptr().cast()) };
                let len = ev.len as usize;
                let raw = buf.get(at + head..at + head + len).unwrap_or(&[]);
                let name = raw.split(|&b| b == 0).next().unwrap_or(&[]);
                let name = String::from_utf8_lossy(name).into_owned();
                self.event(ev.wd, ev.mask, &name);
                at += head + len;
            }
        }
    }

    fn event(&mut self, wd: i32, mask: u32, name: &str) {
        if mask & libc::IN_Q_OVERFLOW != 0 {
            self.full = true;
            return;
        }
        if Some(wd) == self.git_wd {
            if name == "index" {
                self.index_stale = true;
            }
            return;
        }
        let Some((dir, kind)) = self.wd_dir.get(&wd).cloned() else {
            return;
        };
        let ign = kind == Kind::Ignored;
        if mask & libc::IN_IGNORED != 0 {
            self.wd_dir.remove(&wd);
            if self.dir_wd.get(&dir) == Some(&wd) {
                self.dir_wd.remove(&dir);
            }
            return;
        }
        if mask & (libc::IN_DELETE_SELF | libc::IN_MOVE_SELF) != 0 {
            if dir.is_empty() {
                self.uncover("the checkout was removed or moved".into());
            }
            return;
        }
        if name.is_empty() {
            return;
        }
        if kind == Kind::Nested {
            self.pending.insert(format!("{dir}/"));
            return;
        }
        if self.git.is_none() && ledger::walk_skips(name) {
            return;
        }
        let rel = join(&dir, name);
        if name == ".git" {
            // A repository appeared or vanished inside this one: what git shows changes
            // shape; take a new picture.
            if !dir.is_empty() {
                self.full = true;
            }
            return;
        }
        if self.is_skipped(&self.root.join(&rel)) {
            return;
        }
        if name == ".gitignore" && self.git.is_some() {
            self.full = true;
            return;
        }
        if mask & libc::IN_ISDIR != 0 {
            if mask & (libc::IN_CREATE | libc::IN_MOVED_TO) != 0 {
                let cign = ign || (self.git.is_some() && self.ignored(&rel, true));
                if self.git.is_some() && self.root.join(&rel).join(".git").exists() {
                    if !cign {
                        if let Err(why) = self.watch_nested(&rel) {
                            return self.uncover(why);
                        }
                        self.pending.insert(format!("{rel}/"));
                    }
                    return;
                }
                if cign && !self.has_tracked_under(&rel) {
                    return;
                }
                let mut found = Vec::new();
                if let Err(why) = self.scan(&rel, cign, &mut found) {
                    return self.uncover(why);
                }
                self.pending.extend(found);
            } else if mask & (libc::IN_DELETE | libc::IN_MOVED_FROM) != 0 {
                self.unwatch_under(&rel);
                let prefix = format!("{rel}/");
                let mut gone: Vec<String> = self
                    .picture
                    .keys()
                    .filter(|k| k.starts_with(&prefix))
                    .cloned()
                    .collect();
                if let Some(g) = self.git.as_ref() {
                    gone.extend(g.index.under(&rel).map(|e| e.path.to_string()));
                }
                self.pending.extend(gone);
            }
            return;
        }
        // In a directory watched only for its tracked files, an untracked file is ignored.
        if ign && !self.is_tracked(&rel) {
            return;
        }
        self.pending.insert(rel);
    }

    fn set(&mut self, path: &str, v: Option<Stamp>) {
        let old = match &v {
            Some(v) => match self.picture.get(path) {
                Some(o) if o == v => return,
                _ => self.picture.insert(path.to_string(), v.clone()),
            },
            None => match self.picture.remove(path) {
                Some(o) => Some(o),
                None => return,
            },
        };
        self.seq += 1;
        if !self.windows.is_empty() {
            self.log.push_back((self.seq, path.to_string(), old));
        }
    }

    /// Brings the picture up to date with every event read so far.
    pub fn resolve(&mut self) {
        if self.uncovered.is_some() {
            return;
        }
        if self.full {
            return self.rebuild();
        }
        let mut refresh = self.head_key_changed();
        if self.index_stale {
            self.index_stale = false;
            match self.load_index() {
                Ok(changed) => refresh |= changed,
                Err(why) => return self.uncover(why),
            }
        }
        if refresh {
            self.pending.clear();
            return self.refresh();
        }
        let pending = std::mem::take(&mut self.pending);
        if self.git.is_none() {
            for p in pending {
                let v = std::fs::symlink_metadata(self.root.join(&p))
                    .ok()
                    .filter(|m| !m.is_dir())
                    .map(|m| {
                        (
                            String::new(),
                            m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                            m.size(),
                        )
                    });
                self.set(&p, v);
            }
            return;
        }
        let mut hash = Vec::new();
        let mut ask_git = Vec::new();
        for p in pending {
            match self.native(&p) {
                Native::Known(v) => self.set(&p, v),
                Native::Hash(x, stamp) => hash.push((p, x, stamp)),
                Native::AskGit => ask_git.push(p),
            }
        }
        for chunk in hash.chunks(BATCH) {
            let names: Vec<&str> = chunk.iter().map(|(p, _, _)| p.as_str()).collect();
            match self.hash_objects(&names) {
                Some(oids) => {
                    for ((p, x, stamp), oid) in chunk.iter().zip(oids) {
                        let same = self.git.as_ref().is_some_and(|g| {
                            g.index.get(p).is_some_and(|e| e.oid(g.hash_len) == oid)
                        });
                        let xy = format!("{x}{}", if same { '.' } else { 'M' });
                        let v = (xy != "..").then_some((xy, stamp.0, stamp.1));
                        self.set(p, v);
                    }
                }
                None => ask_git.extend(names.iter().map(|s| s.to_string())),
            }
        }
        for chunk in ask_git.chunks(BATCH) {
            let names: Vec<&str> = chunk.iter().map(String::as_str).collect();
            self.ask_git(&names);
        }
    }

    /// One whole `git status` (HEAD or the index's objects moved): log what differs.
    fn refresh(&mut self) {
        self.full_runs += 1;
        let Some(now) = ledger::git_status(&self.root, &[]) else {
            return self.uncover("git status failed in this checkout".into());
        };
        let mut keys: BTreeSet<String> = self.picture.keys().cloned().collect();
        keys.extend(now.entries.keys().cloned());
        for k in keys {
            self.set(&k, now.entries.get(&k).cloned());
        }
        self.head = now.head;
    }

    /// `git status` limited to `paths` (what the native reading leaves to git).
    fn ask_git(&mut self, paths: &[&str]) {
        self.path_runs += 1;
        let specs: Vec<&str> = paths.iter().map(|p| p.trim_end_matches('/')).collect();
        let Some(now) = ledger::git_status(&self.root, &specs) else {
            return self.uncover("git status failed in this checkout".into());
        };
        for (p, spec) in paths.iter().zip(&specs) {
            let prefix = format!("{spec}/");
            let stale: Vec<String> = self
                .picture
                .keys()
                .filter(|k| k.as_str() == *spec || k.as_str() == *p || k.starts_with(&prefix))
                .filter(|k| !now.entries.contains_key(*k))
                .cloned()
                .collect();
            for k in stale {
                self.set(&k, None);
            }
        }
        for (k, v) in now.entries {
            self.set(&k, Some(v));
        }
    }

    fn hash_objects(&self, paths: &[&str]) -> Option<Vec<Vec<u8>>> {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.root)
            .args(["hash-object", "--"])
            .args(paths)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let oids: Vec<Vec<u8>> = text
            .lines()
            .map(|l| {
                (0..l.len() / 2)
                    .filter_map(|i| u8::from_str_radix(l.get(2 * i..2 * i + 2)?, 16).ok())
                    .collect()
            })
            .collect();
        (oids.len() == paths.len()).then_some(oids)
    }

    /// What git status says of `rel`, decided from the index and the file where possible.
    fn native(&self, rel: &str) -> Native {
        let Some(g) = self.git.as_ref() else {
            return Native::AskGit;
        };
        if g.index_problem.is_some() || rel.ends_with('/') || rel.contains('\n') {
            return Native::AskGit;
        }
        let abs = self.root.join(rel);
        let meta = match std::fs::symlink_metadata(&abs) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => None,
            Err(_) => return Native::AskGit,
        };
        let old = self.picture.get(rel);
        let stamp = |m: &std::fs::Metadata| (m.mtime() * 1_000_000_000 + m.mtime_nsec(), m.size());
        let Some(e) = g.index.get(rel) else {
            // Untracked. A staged deletion of this path stays listed as such.
            let staged_delete = old.filter(|o| o.0.starts_with('D'));
            return match meta {
                None => Native::Known(staged_delete.map(|o| (o.0.clone(), 0, 0))),
                Some(m) if m.is_dir() => Native::Known(None),
                Some(m) => {
                    let (mt, sz) = stamp(&m);
                    if !self.ignored(rel, false) {
                        Native::Known(Some(("??".into(), mt, sz)))
                    } else {
                        Native::Known(staged_delete.map(|o| (o.0.clone(), mt, sz)))
                    }
                }
            };
        };
        let x = old
            .and_then(|o| o.0.chars().next())
            .filter(|c| *c != '?')
            .unwrap_or('.');
        let Some(m) = meta else {
            return Native::Known(Some((format!("{x}D"), 0, 0)));
        };
        let is_link = e.mode == MODE_LINK;
        if m.is_dir() || is_link != m.file_type().is_symlink() || (!is_link && !m.is_file()) {
            return Native::AskGit;
        }
        let (mt, sz) = stamp(&m);
        let known = |y: char| {
            let xy = format!("{x}{y}");
            Native::Known((xy != "..").then_some((xy, mt, sz)))
        };
        if !is_link && g.filemode && ((m.mode() & 0o100 != 0) != (e.mode == MODE_EXEC)) {
            return known('M');
        }
        let stat_same = m.mtime() as u32 == e.mtime.0
            && m.mtime_nsec() as u32 == e.mtime.1
            && m.ctime() as u32 == e.ctime.0
            && m.ctime_nsec() as u32 == e.ctime.1
            && m.ino() as u32 == e.ino
            && m.size() as u32 == e.size;
        let racy = (i64::from(e.mtime.0), e.mtime.1) >= g.index.mtime;
        if stat_same && !racy {
            return known('.');
        }
        if e.size != 0 && m.size() as u32 != e.size {
            return known('M');
        }
        if is_link {
            return Native::AskGit;
        }
        Native::Hash(x, (mt, sz))
    }

    /// Opens a command's window under `key`; returns its sequence number.
    pub fn begin(&mut self, key: &str) -> u64 {
        self.resolve();
        self.answered += 1;
        let now = Instant::now();
        self.windows
            .retain(|_, w| now.duration_since(w.at) < WINDOW_TTL);
        while self.windows.len() >= MAX_WINDOWS {
            let Some(oldest) = self.oldest_window() else {
                break;
            };
            self.windows.remove(&oldest);
        }
        self.windows.insert(
            key.to_string(),
            Opened {
                seq: self.seq,
                head: self.head.clone(),
                at: now,
            },
        );
        self.trim();
        self.seq
    }

    /// Closes the window `key`: what changed since it opened.
    pub fn end(&mut self, key: &str) -> Option<Window> {
        self.resolve();
        let opened = self.windows.remove(key)?;
        self.answered += 1;
        let mut before: HashMap<&str, &Option<Stamp>> = HashMap::new();
        for (s, p, old) in &self.log {
            if *s > opened.seq {
                before.entry(p.as_str()).or_insert(old);
            }
        }
        let git = self.git.is_some();
        let mut w = Window {
            git,
            head_before: opened.head,
            head_after: self.head.clone(),
            ..Window::default()
        };
        for (p, old) in before {
            let now = self.picture.get(p);
            if now.is_some() && now != old.as_ref() || (!git && now.is_none() && old.is_some()) {
                w.changed.push(p.to_string());
            }
            if now.is_none() && old.is_some() {
                w.gone.push(p.to_string());
            }
        }
        w.changed.sort();
        w.gone.sort();
        self.trim();
        Some(w)
    }

    /// The key of the window opened first.
    fn oldest_window(&self) -> Option<String> {
        self.windows
            .iter()
            .min_by_key(|(_, w)| w.seq)
            .map(|(k, _)| k.clone())
    }

    /// Paths with uncommitted changes now (git only).
    pub fn dirty(&mut self) -> Vec<String> {
        self.resolve();
        if self.git.is_none() {
            return Vec::new();
        }
        let mut v: Vec<String> = self.picture.keys().cloned().collect();
        v.sort();
        v
    }

    pub fn head(&self) -> Option<String> {
        self.head.clone()
    }

    fn trim(&mut self) {
        while self.log.len() > MAX_LOG {
            let Some(oldest) = self.oldest_window() else {
                break;
            };
            self.windows.remove(&oldest);
            let floor = self.windows.values().map(|w| w.seq).min();
            self.drop_log_through(floor);
        }
        let floor = self.windows.values().map(|w| w.seq).min();
        self.drop_log_through(floor);
    }

    fn drop_log_through(&mut self, floor: Option<u64>) {
        match floor {
            None => self.log.clear(),
            Some(f) => {
                while self.log.front().is_some_and(|(s, _, _)| *s <= f) {
                    self.log.pop_front();
                }
            }
        }
    }
}

/// Why a directory is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Git looks into it.
    Plain,
    /// Ignored, but holds tracked files (only those are looked at).
    Ignored,
    /// A nested repository or worktree: git shows it as one `dir/` entry, whose mtime
    /// changes with its top-level entries.
    Nested,
}

enum Native {
    Known(Option<Stamp>),
    /// Stat data cannot tell: hash the file (X column, stamp).
    Hash(char, (i64, u64)),
    AskGit,
}
