//! A git repository's layout read straight from the files git keeps — no `git` process on
//! the hook path. Every worktree of one repository shares one registry; this module finds
//! the worktree a path lives in, the repository's common git dir, and a worktree's branch.

use std::fs;
use std::path::{Path, PathBuf};

/// Longest `.git` file, `commondir` or `HEAD` read; real ones are a line.
const MAX_POINTER_BYTES: u64 = 4096;
/// Levels walked up looking for a `.git` entry.
const MAX_DEPTH: usize = 128;

/// One worktree of a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worktree {
    /// The worktree's top directory (holds its `.git` entry).
    pub root: PathBuf,
    /// The worktree's own git dir (`.git`, or `<common>/worktrees/<name>`).
    pub git_dir: PathBuf,
    /// The repository's common git dir, shared by all its worktrees.
    pub common_dir: PathBuf,
}

impl Worktree {
    /// The nearest worktree containing `path` (a file or directory, existing or not).
    pub fn containing(path: &Path) -> Option<Self> {
        let mut dir = Some(path);
        for _ in 0..MAX_DEPTH {
            let d = dir?;
            // As git does, the first `.git` entry decides: one that is no repository (a
            // pointer to a missing git dir) makes this no worktree, not its parent's.
            if fs::symlink_metadata(d.join(".git")).is_ok() {
                return Self::at(d);
            }
            dir = d.parent();
        }
        None
    }

    /// The worktree whose top directory is exactly `dir`, if `dir/.git` says so: a git dir
    /// with a `HEAD` file, and a common dir that is a directory. A `.git` file pointing
    /// anywhere else names no repository (git refuses it too), so nothing is ever created
    /// where it points.
    pub fn at(dir: &Path) -> Option<Self> {
        let dot_git = dir.join(".git");
        let meta = fs::symlink_metadata(&dot_git).ok()?;
        if meta.is_dir() {
            read_small(&dot_git.join("HEAD"))?;
            return Some(Self {
                root: dir.to_path_buf(),
                git_dir: dot_git.clone(),
                common_dir: dot_git,
            });
        }
        if !meta.is_file() {
            return None;
        }
        let text = read_small(&dot_git)?;
        let target = text.trim().strip_prefix("gitdir:")?.trim();
        let git_dir = absolute(dir, Path::new(target));
        // A linked worktree names its common dir; a submodule's git dir is its own.
        let common_dir = read_small(&git_dir.join("commondir"))
            .map(|c| absolute(&git_dir, Path::new(c.trim())))
            .unwrap_or_else(|| git_dir.clone());
        read_small(&git_dir.join("HEAD"))?;
        if !fs::metadata(&common_dir).is_ok_and(|m| m.is_dir()) {
            return None;
        }
        Some(Self {
            root: dir.to_path_buf(),
            git_dir,
            common_dir,
        })
    }

    /// The main checkout's top directory: the parent of a common dir named `.git`. `None`
    /// for a bare repository.
    pub fn main_root(&self) -> Option<PathBuf> {
        (self.common_dir.file_name()? == ".git")
            .then(|| self.common_dir.parent().map(Path::to_path_buf))?
    }

    /// True for the main checkout (its git dir is the common dir).
    pub fn is_main(&self) -> bool {
        self.git_dir == self.common_dir
    }

    /// What `HEAD` is: the branch name, or `detached@<short hash>`.
    pub fn branch(&self) -> Option<String> {
        head_name(&read_small(&self.git_dir.join("HEAD"))?)
    }

    /// How people name this worktree: its path relative to the main checkout when inside
    /// it (`.claude/worktrees/feat`), `.` for the main checkout itself, else its path.
    pub fn label(&self) -> String {
        if self.is_main() {
            return ".".into();
        }
        match self.main_root() {
            Some(main) => match self.root.strip_prefix(&main) {
                Ok(rel) if !rel.as_os_str().is_empty() => rel.to_string_lossy().into_owned(),
                _ => self.root.to_string_lossy().into_owned(),
            },
            None => self.root.to_string_lossy().into_owned(),
        }
    }
}

/// `ref: refs/heads/x` → `x`; a bare hash → `detached@<first 7>`.
pub fn head_name(head: &str) -> Option<String> {
    let head = head.trim();
    if let Some(r) = head.strip_prefix("ref:") {
        let r = r.trim();
        return Some(r.strip_prefix("refs/heads/").unwrap_or(r).to_string());
    }
    (head.len() >= 7 && head.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("detached@{}", &head[..7]))
}

/// The worktrees git knows for the repository with `common_dir`: the main checkout (when
/// not bare) and every `worktrees/<name>/gitdir` entry.
pub fn worktrees(common_dir: &Path) -> Vec<Worktree> {
    let mut out = Vec::new();
    if common_dir.file_name().is_some_and(|n| n == ".git") {
        if let Some(main) = common_dir.parent().and_then(Worktree::at) {
            out.push(main);
        }
    }
    let Ok(entries) = fs::read_dir(common_dir.join("worktrees")) else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pointer) = read_small(&e.path().join("gitdir")) else {
            continue;
        };
        let dot_git = absolute(&e.path(), Path::new(pointer.trim()));
        if let Some(wt) = dot_git.parent().and_then(Worktree::at) {
            out.push(wt);
        }
    }
    out
}

fn absolute(base: &Path, p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    fs::canonicalize(&joined).unwrap_or(joined)
}

/// Reads a small regular file (never a FIFO, a link or a huge file); `None` otherwise.
fn read_small(path: &Path) -> Option<String> {
    let (bytes, _) = crate::core::private_fs::read_capped(path, MAX_POINTER_BYTES).ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        assert_eq!(head_name("ref: refs/heads/feat/x\n"), Some("feat/x".into()));
        assert_eq!(
            head_name("0123456789abcdef0123456789abcdef01234567\n"),
            Some("detached@0123456".into())
        );
        assert_eq!(head_name("garbage"), None);
    }

    #[test]
    fn main_and_linked_worktrees_share_a_common_dir() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let main = fs::canonicalize(tmp.path())?;
        fs::create_dir_all(main.join(".git/worktrees/feat"))?;
        fs::write(main.join(".git/HEAD"), "ref: refs/heads/main\n")?;
        let wt = main.join(".claude/worktrees/feat");
        fs::create_dir_all(wt.join("src"))?;
        fs::write(
            wt.join(".git"),
            format!("gitdir: {}\n", main.join(".git/worktrees/feat").display()),
        )?;
        fs::write(main.join(".git/worktrees/feat/commondir"), "../..\n")?;
        fs::write(
            main.join(".git/worktrees/feat/HEAD"),
            "89abcdef0123456789abcdef0123456789abcdef\n",
        )?;
        fs::write(
            main.join(".git/worktrees/feat/gitdir"),
            format!("{}\n", wt.join(".git").display()),
        )?;
        let m = Worktree::containing(&main.join("src/a.rs")).expect("main");
        let f = Worktree::containing(&wt.join("src/a.rs")).expect("linked");
        assert_eq!(m.root, main);
        assert_eq!(f.root, wt);
        assert_eq!(m.common_dir, f.common_dir);
        assert_eq!(f.main_root(), Some(main.clone()));
        assert_eq!(m.label(), ".");
        assert_eq!(f.label(), ".claude/worktrees/feat");
        assert_eq!(m.branch().as_deref(), Some("main"));
        assert_eq!(f.branch().as_deref(), Some("detached@89abcde"));
        let all = worktrees(&m.common_dir);
        assert_eq!(all.len(), 2, "{all:?}");
        Ok(())
    }
}
