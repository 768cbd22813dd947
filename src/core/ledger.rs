//! The working-tree ledger: snapshots of what is changed in the checkout, so a write made
//! through a shell command (sed -i, mv, code generators) is attributed to the session whose
//! command ran. Git repositories use one `git status`; elsewhere file mtimes are compared.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Files examined at most when the project is not a git repository.
pub const MAX_WALK: usize = 20_000;

/// One snapshot: HEAD (commit and branch, git only) and every changed (git) or present
/// (no git) file with its status, mtime and size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeState {
    pub head: Option<String>,
    pub git: bool,
    pub entries: BTreeMap<String, (String, i64, u64)>,
    /// The checkout this snapshot is of (older rows have none: the project root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// Set instead of `entries` when the session's server keeps the picture: the command's
    /// window is asked of it by this key (see `treewatch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<String>,
}

/// One path's state in a snapshot: git status (`.M`, `??`, ...; empty without git), mtime
/// in ns and size.
pub type Stamp = (String, i64, u64);

/// Directory names the walk without git never enters.
pub fn walk_skips(name: &str) -> bool {
    matches!(
        name,
        ".git" | "target" | "node_modules" | crate::core::paths::STATE_DIR
    )
}

/// mtime (ns) and size of `root/rel`, without following a final symlink; (0, 0) if absent.
pub fn stamp(root: &Path, rel: &str) -> (i64, u64) {
    match std::fs::symlink_metadata(root.join(rel)) {
        Ok(m) => (m.mtime() * 1_000_000_000 + m.mtime_nsec(), m.size()),
        Err(_) => (0, 0),
    }
}

/// Takes a snapshot of the checkout at `root`.
pub fn snapshot(root: &Path) -> TreeState {
    if root.join(".git").exists() {
        if let Some(s) = git_snapshot(root) {
            return s;
        }
    }
    walk_snapshot(root)
}

fn git_snapshot(root: &Path) -> Option<TreeState> {
    git_status(root, &[])
}

/// `git status` of the checkout at `root`, limited to `paths` (literal pathspecs) when
/// some are given.
pub fn git_status(root: &Path, paths: &[&str]) -> Option<TreeState> {
    // `--no-optional-locks`: a plain `git status` refreshes the index under
    // `.git/index.lock`, and a sibling's `git commit` in the same checkout would then fail
    // with "index.lock: File exists". The ledger only reads.
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(root).args([
        "--no-optional-locks",
        "status",
        "--porcelain=v2",
        "--branch",
        "-z",
        "--untracked-files=all",
    ]);
    if !paths.is_empty() {
        cmd.arg("--")
            .args(paths.iter().map(|p| format!(":(literal){p}")));
    }
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut st = TreeState {
        git: true,
        ..TreeState::default()
    };
    let (mut oid, mut branch) = (String::new(), String::new());
    let mut fields = text.split('\0').peekable();
    while let Some(rec) = fields.next() {
        if let Some(v) = rec.strip_prefix("# branch.oid ") {
            oid = v.to_string();
        } else if let Some(v) = rec.strip_prefix("# branch.head ") {
            branch = v.to_string();
        } else if let Some(rest) = rec.strip_prefix("1 ") {
            // 1 XY sub mH mI mW hH hI path
            let parts: Vec<&str> = rest.splitn(8, ' ').collect();
            if let (Some(xy), Some(path)) = (parts.first(), parts.get(7)) {
                st.entries.insert(path.to_string(), entry(root, xy, path));
            }
        } else if let Some(rest) = rec.strip_prefix("2 ") {
            // 2 XY sub mH mI mW hH hI Xscore path \0 origPath
            let parts: Vec<&str> = rest.splitn(9, ' ').collect();
            if let (Some(xy), Some(path)) = (parts.first(), parts.get(8)) {
                st.entries.insert(path.to_string(), entry(root, xy, path));
            }
            fields.next();
        } else if let Some(path) = rec.strip_prefix("? ") {
            st.entries.insert(path.to_string(), entry(root, "??", path));
        } else if let Some(rest) = rec.strip_prefix("u ") {
            if let Some(path) = rest.splitn(10, ' ').nth(9) {
                st.entries.insert(path.to_string(), entry(root, "UU", path));
            }
        }
    }
    if !oid.is_empty() {
        st.head = Some(format!("{} ({branch})", oid.get(..12).unwrap_or(&oid)));
    }
    Some(st)
}

fn entry(root: &Path, xy: &str, path: &str) -> (String, i64, u64) {
    let (m, s) = stamp(root, path);
    (xy.to_string(), m, s)
}

fn walk_snapshot(root: &Path) -> TreeState {
    let mut st = TreeState::default();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            if st.entries.len() >= MAX_WALK {
                return st;
            }
            let name = e.file_name();
            if walk_skips(&name.to_string_lossy()) {
                continue;
            }
            let Ok(ft) = e.file_type() else { continue };
            let path = e.path();
            if ft.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(root) {
                let rel = rel.to_string_lossy().to_string();
                let (m, s) = stamp(root, &rel);
                st.entries.insert(rel, (String::new(), m, s));
            }
        }
    }
    st
}

/// Paths that changed from `before` to `after` (new, modified, or — without git — deleted).
pub fn changed(before: &TreeState, after: &TreeState) -> Vec<String> {
    let mut out: Vec<String> = after
        .entries
        .iter()
        .filter(|(p, v)| before.entries.get(*p) != Some(v))
        .map(|(p, _)| p.clone())
        .collect();
    if !after.git {
        out.extend(
            before
                .entries
                .keys()
                .filter(|p| !after.entries.contains_key(*p))
                .cloned(),
        );
    }
    out.sort();
    out
}

/// Paths with uncommitted changes (git only; empty otherwise).
pub fn dirty(state: &TreeState) -> Vec<&str> {
    if !state.git {
        return Vec::new();
    }
    state.entries.keys().map(String::as_str).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `git -C root <args>` as a test user; true on success. Shared by unit tests.
    pub(crate) fn git(root: &Path, args: &[&str]) -> bool {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(["-c", "user.email=t@example.com", "-c", "user.name=t"])
            .args(args)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// The ledger must never write the index: a sibling's git command would find it locked.
    #[test]
    fn snapshot_never_rewrites_the_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        assert!(git(root, &["init", "-q"]), "git is needed for this test");
        std::fs::write(root.join("a.txt"), "one\n").expect("write");
        assert!(git(root, &["add", "a.txt"]) && git(root, &["commit", "-qm", "init"]));
        // Same content, new mtime: the index entry is stat-dirty, which a plain
        // `git status` would refresh and write back.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(root.join("a.txt"), "one\n").expect("rewrite");
        let index = root.join(".git/index");
        let before = std::fs::metadata(&index)
            .expect("index")
            .modified()
            .expect("mtime");
        std::thread::sleep(std::time::Duration::from_millis(20));
        let st = snapshot(root);
        assert!(st.git && st.entries.is_empty(), "{st:?}");
        let after = std::fs::metadata(&index)
            .expect("index")
            .modified()
            .expect("mtime");
        assert_eq!(before, after, "git status rewrote .git/index");
    }
}
