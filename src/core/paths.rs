//! Where a project's state lives: root resolution and the `.orchestrator-state` layout.

use crate::core::private_fs;
use crate::core::repo::Worktree;
use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Component, Path, PathBuf};

/// Name of the per-project state directory.
pub const STATE_DIR: &str = ".orchestrator-state";
/// Prefix of per-agent-process identity anchors.
pub const ANCHOR_PREFIX: &str = "active-session-";
/// The legacy single-file anchor (last writer wins; weakest evidence).
pub const LEGACY_ANCHOR: &str = "active-session";
/// The registry's directory inside a bare repository's git dir.
pub const BARE_STATE_DIR: &str = "orchestrator-state";

/// A path as the ledger and claims store it: the worktree (label) and the path relative
/// to that worktree's root (absolute when outside every worktree).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub worktree: Option<String>,
    pub path: String,
    /// The branch checked out in that worktree.
    pub branch: Option<String>,
}

/// The resolved project root and the files under its state directory.
#[derive(Debug, Clone)]
pub struct ProjectPaths {
    /// The worktree (or plain directory) this process works in; paths are relative to it.
    pub root: PathBuf,
    /// The registry: one per repository, shared by all its worktrees.
    pub state_dir: PathBuf,
    /// The git worktree `root` is, when it is one.
    pub worktree: Option<Worktree>,
}

impl ProjectPaths {
    /// Root = `ORCHESTRATOR_PROJECT_ROOT` > `CLAUDE_PROJECT_DIR` > the working directory.
    pub fn resolve() -> Result<Self> {
        let from_env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        for key in ["ORCHESTRATOR_PROJECT_ROOT", "CLAUDE_PROJECT_DIR"] {
            if let Some(p) = from_env(key) {
                if !p.is_dir() {
                    bail!(
                        "{key}={} is not a directory: point it at your project (or unset it)",
                        p.display()
                    );
                }
                return Self::from_root(&p);
            }
        }
        let cwd = std::env::current_dir().context(
            "cannot read the working directory: pass --project DIR or set ORCHESTRATOR_PROJECT_ROOT",
        )?;
        // As git does: from a subdirectory, the project is the nearest enclosing repository
        // (from_root finds it) or the nearest directory that already has a registry.
        if Worktree::containing(&cwd).is_none() {
            if let Some(dir) = enclosing_registry(&cwd) {
                return Self::from_root(&dir);
            }
        }
        Self::from_root(&cwd)
    }

    /// True when this project's registry database exists (nothing is created to find out),
    /// or the project keeps it on a shared server (which other hosts may have filled).
    pub fn has_registry(&self) -> bool {
        fs::symlink_metadata(self.db_path()).is_ok()
            || crate::core::fleet::database_url(self).is_some()
    }

    /// Lays out the state paths for `root`, refusing a root inside a plugin cache.
    pub fn from_root(root: &Path) -> Result<Self> {
        let root = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        if is_in_plugin_cache(&root) {
            bail!(
                "project root {} is inside a Claude Code plugin cache (.claude/plugins/cache); \
                 set ORCHESTRATOR_PROJECT_ROOT or CLAUDE_PROJECT_DIR to your project",
                root.display()
            );
        }
        // In a git repository every worktree shares the main checkout's registry (a bare
        // repository keeps it in its common dir); elsewhere the directory has its own.
        let worktree = Worktree::containing(&root);
        let (root, state_dir) = match worktree.as_ref() {
            Some(w) => (
                w.root.clone(),
                w.main_root()
                    .map(|m| m.join(STATE_DIR))
                    .unwrap_or_else(|| w.common_dir.join(BARE_STATE_DIR)),
            ),
            None => (root.clone(), root.join(STATE_DIR)),
        };
        Ok(Self {
            root,
            state_dir,
            worktree,
        })
    }

    /// Where `file` (as a tool named it, relative to `cwd`) lives: the worktree of this
    /// repository that contains it, and its path relative to that worktree's root. A path
    /// under another worktree (`.claude/worktrees/x/src/a.rs`) belongs to that worktree.
    pub fn locate(&self, cwd: &Path, file: &str) -> Located {
        let here = || Located {
            worktree: self.worktree.as_ref().map(Worktree::label),
            path: relativize(&self.root, cwd, file),
            branch: self.worktree.as_ref().and_then(Worktree::branch),
        };
        let Some(mine) = self.worktree.as_ref() else {
            return here();
        };
        // Where the write lands: symlinks resolved (the last one too), `..` after them.
        let abs = physical(&cwd.join(file));
        match Worktree::containing(abs.parent().unwrap_or(&abs)) {
            Some(w) if w.common_dir == mine.common_dir && w.root != mine.root => Located {
                path: relativize(&w.root, cwd, file),
                worktree: Some(w.label()),
                branch: w.branch(),
            },
            _ => here(),
        }
    }

    /// The worktree a session whose working directory is `cwd` is in: its label and
    /// branch. `None` outside git.
    pub fn place_of(&self, cwd: Option<&Path>) -> Option<(String, Option<String>)> {
        let mine = self.worktree.as_ref()?;
        let w = cwd
            .and_then(|d| self.worktree_at(d))
            .unwrap_or_else(|| mine.clone());
        Some((w.label(), w.branch()))
    }

    /// The worktree of this repository that contains `dir` (resolved physically: a
    /// worktree reached through a symlink is that worktree). `None` outside git or in
    /// another repository.
    pub fn worktree_at(&self, dir: &Path) -> Option<Worktree> {
        let mine = self.worktree.as_ref()?;
        let dir = physical(dir);
        // Every hook asks for its own cwd, nearly always this worktree's top: known already.
        if dir == mine.root {
            return Some(mine.clone());
        }
        Worktree::containing(&dir).filter(|w| w.common_dir == mine.common_dir)
    }

    /// Creates the state dir (0700) with a `.gitignore` of `*`; idempotent. Refuses a
    /// symlinked state dir or `.gitignore` and narrows a wider state dir we own to 0700.
    pub fn ensure_state_dir(&self) -> Result<()> {
        private_fs::ensure_dir(&self.state_dir)?;
        private_fs::ensure_file(&self.state_dir.join(".gitignore"), b"*\n")?;
        Ok(())
    }

    /// Every path of ours that exists now and must stay private: the state dir, its
    /// `.gitignore` and anchors, the servers' socket directory, the database directory,
    /// the database and its companions.
    /// Other names in the state dir are not ours and are left alone.
    pub fn private_paths(&self) -> Vec<PathBuf> {
        let mut out = vec![self.state_dir.clone(), self.state_dir.join(".gitignore")];
        if let Ok(entries) = fs::read_dir(&self.state_dir) {
            let mut anchors: Vec<PathBuf> = entries
                .flatten()
                .filter(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    name == LEGACY_ANCHOR
                        || crate::core::identity::anchor::parse_anchor_name(&name).is_some()
                })
                .map(|e| e.path())
                .collect();
            anchors.sort();
            out.extend(anchors);
        }
        out.extend([
            self.state_dir.join(crate::core::treewatch::SOCKET_DIR),
            self.db_dir(),
            self.db_path(),
        ]);
        out.extend(self.db_companions());
        out.retain(|p| fs::symlink_metadata(p).is_ok());
        out
    }

    /// Narrows every path in [`Self::private_paths`] this user owns to its private mode;
    /// returns what was wider and how wide. A symlink or another user's file is left for
    /// `doctor` to report.
    pub fn secure_existing(&self) -> Vec<(PathBuf, u32)> {
        self.private_paths()
            .into_iter()
            .filter_map(|p| match private_fs::secure_existing(&p) {
                Ok(Some(old)) => Some((p, old)),
                _ => None,
            })
            .collect()
    }

    pub fn db_dir(&self) -> PathBuf {
        self.state_dir.join("agent-channel")
    }

    pub fn db_path(&self) -> PathBuf {
        self.db_dir().join("agent_channel.db")
    }

    /// The files SQLite keeps beside the database: its write-ahead log and shared memory.
    pub fn db_companions(&self) -> [PathBuf; 2] {
        let with = |suffix: &str| {
            let mut s = self.db_path().into_os_string();
            s.push(suffix);
            PathBuf::from(s)
        };
        [with("-wal"), with("-shm")]
    }

    pub fn anchor_path(&self, pid: i32) -> PathBuf {
        self.state_dir.join(format!("{ANCHOR_PREFIX}{pid}"))
    }

    pub fn legacy_anchor_path(&self) -> PathBuf {
        self.state_dir.join(LEGACY_ANCHOR)
    }
}

/// The nearest directory at or above `dir` holding a registry. The walk stops below a
/// directory this user does not own or anyone may write (`/tmp`): a registry planted there
/// by someone else is never taken for this project's.
fn enclosing_registry(dir: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    for d in dir.ancestors() {
        let Ok(meta) = fs::metadata(d) else { break };
        if meta.uid() != me || meta.mode() & 0o002 != 0 {
            break;
        }
        if fs::symlink_metadata(d.join(STATE_DIR)).is_ok_and(|m| m.is_dir()) {
            return Some(d.to_path_buf());
        }
    }
    None
}

/// True when `path` lies under a `.claude/plugins/cache` directory.
pub fn is_in_plugin_cache(path: &Path) -> bool {
    let parts: Vec<&std::ffi::OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s),
            _ => None,
        })
        .collect();
    parts
        .windows(3)
        .any(|w| w[0] == ".claude" && w[1] == "plugins" && w[2] == "cache")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn plugin_cache_is_refused() {
        assert!(is_in_plugin_cache(Path::new(
            "/home/u/.claude/plugins/cache/x/y"
        )));
        assert!(!is_in_plugin_cache(Path::new("/home/u/.claude/plugins/x")));
        let err = ProjectPaths::from_root(Path::new("/nonexistent/.claude/plugins/cache/p"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("ORCHESTRATOR_PROJECT_ROOT"), "{err}");
    }

    #[test]
    fn state_dir_is_private_and_ignored() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let p = ProjectPaths::from_root(tmp.path())?;
        p.ensure_state_dir()?;
        p.ensure_state_dir()?;
        let mode = |p: &Path| -> Result<u32> { Ok(fs::metadata(p)?.permissions().mode() & 0o777) };
        assert_eq!(mode(&p.state_dir)?, 0o700);
        let gi = p.state_dir.join(".gitignore");
        assert_eq!(fs::read_to_string(&gi)?, "*\n");
        assert_eq!(mode(&gi)?, 0o600);
        // An existing wide state dir (and .gitignore) is narrowed on the next open.
        fs::set_permissions(&p.state_dir, fs::Permissions::from_mode(0o755))?;
        fs::set_permissions(&gi, fs::Permissions::from_mode(0o644))?;
        p.ensure_state_dir()?;
        assert_eq!(mode(&p.state_dir)?, 0o700);
        assert_eq!(mode(&gi)?, 0o600);
        // Other files an older version left wide are narrowed by secure_existing.
        let anchor = p.anchor_path(1);
        fs::write(&anchor, "x")?;
        fs::set_permissions(&anchor, fs::Permissions::from_mode(0o644))?;
        assert_eq!(p.secure_existing(), vec![(anchor.clone(), 0o644)]);
        assert_eq!(mode(&anchor)?, 0o600);
        Ok(())
    }
}

/// A file path as the ledger stores it: relative to the project root when inside it
/// (symlinked parents resolved), else absolute. `cwd` anchors relative inputs.
pub fn relativize(root: &Path, cwd: &Path, file: &str) -> String {
    let p = Path::new(file);
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    };
    // Resolve symlinks so `link/a.rs`, `real/a.rs` and a symlink to `real/a.rs` agree:
    // the file the write lands in is what claims and touches compare.
    let resolved = physical(&abs);
    let abs = normalize(&abs);
    for cand in [&resolved, &abs] {
        if let Ok(rel) = cand.strip_prefix(root) {
            let s = rel.to_string_lossy().to_string();
            if !s.is_empty() {
                return s;
            }
        }
    }
    resolved.to_string_lossy().to_string()
}

/// The path the kernel would write for `p`: its longest existing prefix canonicalized
/// (every symlink resolved, the last component's too, and `..` after a symlink taken as
/// the kernel takes it), the part that does not exist yet appended lexically.
pub fn physical(p: &Path) -> PathBuf {
    let parts: Vec<Component> = p.components().collect();
    for k in (1..=parts.len()).rev() {
        let head: PathBuf = parts[..k].iter().collect();
        if let Ok(real) = fs::canonicalize(&head) {
            let mut out = real;
            for c in &parts[k..] {
                match c {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::CurDir => {}
                    other => out.push(other.as_os_str()),
                }
            }
            return out;
        }
    }
    normalize(p)
}

/// The root of the worktree `path` lies in, when that is another worktree of the
/// repository `root` is a worktree of.
pub fn other_worktree(root: &Path, path: &Path) -> Option<PathBuf> {
    let mine = Worktree::containing(root)?;
    let w = Worktree::containing(&physical(path))?;
    (w.common_dir == mine.common_dir && w.root != mine.root).then_some(w.root)
}

/// Lexically removes `.` and `..` components.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod relativize_tests {
    use super::*;

    #[test]
    fn relative_absolute_and_outside() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let root = fs::canonicalize(tmp.path())?;
        fs::create_dir_all(root.join("src"))?;
        std::os::unix::fs::symlink(root.join("src"), root.join("link"))?;
        let abs = root.join("src/a.rs");
        assert_eq!(relativize(&root, &root, &abs.to_string_lossy()), "src/a.rs");
        assert_eq!(relativize(&root, &root, "src/a.rs"), "src/a.rs");
        assert_eq!(relativize(&root, &root, "./src/../src/a.rs"), "src/a.rs");
        assert_eq!(relativize(&root, &root.join("src"), "a.rs"), "src/a.rs");
        assert_eq!(relativize(&root, &root, "link/a.rs"), "src/a.rs");
        assert_eq!(relativize(&root, &root, "/etc/hosts"), "/etc/hosts");
        // The last component a symlink: the file it names.
        fs::write(root.join("src/b.rs"), "")?;
        std::os::unix::fs::symlink("src/b.rs", root.join("alias.rs"))?;
        assert_eq!(relativize(&root, &root, "alias.rs"), "src/b.rs");
        // `..` after a symlink is the link target's parent, as the kernel sees it.
        fs::create_dir_all(root.join("src/sub"))?;
        std::os::unix::fs::symlink(root.join("src/sub"), root.join("deep"))?;
        assert_eq!(relativize(&root, &root, "deep/../b.rs"), "src/b.rs");
        assert_eq!(relativize(&root, &root, "deep/../new/c.rs"), "src/new/c.rs");
        Ok(())
    }
}
