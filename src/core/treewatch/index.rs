//! The git index (`.git/index`), read natively: paths, modes, object ids and the stat data
//! git compares, so a changed file's status is known without a `git` process loading the
//! whole index. Versions 2, 3 and 4; SHA-1 or SHA-256. What this reader does not model
//! (split or sparse indexes, skip-worktree, assume-unchanged, intent-to-add, submodules)
//! makes [`Index::load`] say so, and the watcher leaves such a tree to `git status`.

use std::path::Path;

/// One stage-0 entry: what deciding "modified or not" needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: Box<str>,
    pub mode: u32,
    /// The object id, zero-padded to 32 bytes (SHA-1 uses 20): inline, no allocation.
    oid: [u8; 32],
    pub ctime: (u32, u32),
    pub mtime: (u32, u32),
    pub ino: u32,
    pub size: u32,
}

impl Entry {
    /// The object id's bytes (20 for SHA-1, 32 for SHA-256).
    pub fn oid(&self, hash_len: usize) -> &[u8] {
        &self.oid[..hash_len.min(32)]
    }

    /// Same content and mode as `o` (stat data may differ: a refresh rewrites only that).
    pub fn same_object(&self, o: &Entry) -> bool {
        self.path == o.path && self.mode == o.mode && self.oid == o.oid
    }
}

/// The index: stage-0 entries sorted by path, and the index file's own mtime (git's
/// "racily clean" test compares against it).
#[derive(Debug, Default, Clone)]
pub struct Index {
    pub entries: Vec<Entry>,
    pub mtime: (i64, u32),
}

/// Mode of a regular file (either permission), symlink and gitlink in the index.
pub const MODE_FILE: u32 = 0o100644;
pub const MODE_EXEC: u32 = 0o100755;
pub const MODE_LINK: u32 = 0o120000;

impl Index {
    /// Reads `git_dir/index` (absent: an empty index, as in a fresh repository).
    pub fn load(git_dir: &Path, hash_len: usize) -> Result<Self, String> {
        use std::os::unix::fs::MetadataExt;
        let path = git_dir.join("index");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let meta = std::fs::metadata(&path).map_err(|e| e.to_string())?;
        let mut idx = parse(&bytes, hash_len)?;
        idx.mtime = (meta.mtime(), meta.mtime_nsec() as u32);
        Ok(idx)
    }

    /// The stage-0 entry for `path`.
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.path.as_ref().cmp(path))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Entries at or under directory `dir` (relative, no trailing slash).
    pub fn under<'a>(&'a self, dir: &str) -> impl Iterator<Item = &'a Entry> + 'a {
        let prefix = format!("{dir}/");
        let start = self
            .entries
            .partition_point(|e| e.path.as_ref() < prefix.as_str());
        self.entries[start..]
            .iter()
            .take_while(move |e| e.path.starts_with(&prefix))
    }

    /// True when some entry lies under `dir`.
    pub fn has_under(&self, dir: &str) -> bool {
        self.under(dir).next().is_some()
    }

    /// Same paths, modes and objects as `o`: statuses cannot differ between the two.
    pub fn same_objects(&self, o: &Index) -> bool {
        self.entries.len() == o.entries.len()
            && self
                .entries
                .iter()
                .zip(&o.entries)
                .all(|(a, b)| a.same_object(b))
    }
}

fn be32(b: &[u8], at: usize) -> Result<u32, String> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| "index is truncated".to_string())
}

fn be16(b: &[u8], at: usize) -> Result<u16, String> {
    b.get(at..at + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .ok_or_else(|| "index is truncated".to_string())
}

/// git's offset varint (index v4 path prefix lengths).
fn varint(b: &[u8], at: &mut usize) -> Result<usize, String> {
    let mut c = *b.get(*at).ok_or("index is truncated")?;
    *at += 1;
    let mut val = (c & 127) as usize;
    while c & 128 != 0 {
        c = *b.get(*at).ok_or("index is truncated")?;
        *at += 1;
        val = val
            .checked_add(1)
            .and_then(|v| v.checked_mul(128))
            .ok_or("index varint overflows")?
            + (c & 127) as usize;
    }
    Ok(val)
}

/// Parses index bytes. Errors name what this reader does not model.
pub fn parse(b: &[u8], hash_len: usize) -> Result<Index, String> {
    if b.get(..4) != Some(b"DIRC") {
        return Err("index has no DIRC signature".into());
    }
    let version = be32(b, 4)?;
    if !(2..=4).contains(&version) {
        return Err(format!("index version {version} is not supported"));
    }
    let count = be32(b, 8)? as usize;
    let mut at = 12;
    let mut entries = Vec::with_capacity(count.min(b.len() / 62));
    let mut prev: Vec<u8> = Vec::new();
    for _ in 0..count {
        let start = at;
        let f = |i: usize| be32(b, start + 4 * i);
        let (ctime, mtime) = ((f(0)?, f(1)?), (f(2)?, f(3)?));
        let (ino, mode, size) = (f(5)?, f(6)?, f(9)?);
        let oid_at = start + 40;
        let oid = b
            .get(oid_at..oid_at + hash_len.min(32))
            .ok_or("index is truncated")?;
        let flags = be16(b, oid_at + hash_len)?;
        at = oid_at + hash_len + 2;
        if flags & 0x4000 != 0 {
            if version < 3 {
                return Err("index v2 entry with extended flags".into());
            }
            let ext = be16(b, at)?;
            at += 2;
            if ext & 0x4000 != 0 {
                return Err("the index has skip-worktree entries (sparse checkout)".into());
            }
            if ext & 0x2000 != 0 {
                return Err("the index has intent-to-add entries (git add -N)".into());
            }
        }
        if flags & 0x8000 != 0 {
            return Err("the index has assume-unchanged entries".into());
        }
        let stage = (flags >> 12) & 3;
        let name = if version == 4 {
            let strip = varint(b, &mut at)?;
            let end = b[at..]
                .iter()
                .position(|&c| c == 0)
                .ok_or("index is truncated")?;
            let keep = prev.len().checked_sub(strip).ok_or("index v4 bad prefix")?;
            prev.truncate(keep);
            prev.extend_from_slice(&b[at..at + end]);
            at += end + 1;
            prev.clone()
        } else {
            let end = b[at..]
                .iter()
                .position(|&c| c == 0)
                .ok_or("index is truncated")?;
            let name = b[at..at + end].to_vec();
            // Entries are padded with 1-8 NULs to a multiple of 8 bytes from their start.
            let len = at + end - start;
            at = start + ((len + 8) & !7);
            name
        };
        match mode & 0o170000 {
            0o160000 => return Err("the index has submodules".into()),
            0o040000 => return Err("the index is sparse (directory entries)".into()),
            _ => {}
        }
        if stage != 0 {
            // A merge in progress: left to git status (conflicts are rare and short).
            return Err("the index has unmerged entries".into());
        }
        entries.push(Entry {
            path: String::from_utf8_lossy(&name).into(),
            mode,
            oid: {
                let mut o = [0u8; 32];
                o[..oid.len()].copy_from_slice(oid);
                o
            },
            ctime,
            mtime,
            ino,
            size,
        });
    }
    // Extensions: a 4-byte signature and a 4-byte length each, then the trailing hash.
    while at + 8 <= b.len().saturating_sub(hash_len) {
        let sig = &b[at..at + 4];
        let len = be32(b, at + 4)? as usize;
        match sig {
            b"link" => return Err("the index is split (core.splitIndex)".into()),
            b"sdir" => return Err("the index is sparse".into()),
            _ => {}
        }
        at = at.checked_add(8 + len).ok_or("index extension overflows")?;
    }
    if !entries.windows(2).all(|w| w[0].path < w[1].path) {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        entries.dedup_by(|a, b| a.path == b.path);
    }
    Ok(Index {
        entries,
        mtime: (0, 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    use crate::core::ledger::tests::git;

    fn ls_files(root: &Path) -> Vec<(String, String)> {
        let out = Command::new("git")
            .arg("-C")
            .arg(root)
            .args(["ls-files", "-s", "-z"])
            .output()
            .expect("git ls-files");
        String::from_utf8_lossy(&out.stdout)
            .split('\0')
            .filter(|r| !r.is_empty())
            .filter_map(|r| {
                let (meta, path) = r.split_once('\t')?;
                let oid = meta.split(' ').nth(1)?;
                Some((path.to_string(), oid.to_string()))
            })
            .collect()
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// Every version git writes reads back as `git ls-files` lists it.
    #[test]
    fn versions_2_3_4_agree_with_git() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        assert!(git(root, &["init", "-q"]), "git is needed for this test");
        for (i, p) in [
            "a.txt",
            "src/deep/er/b.rs",
            "src/deep/c.rs",
            "z y.md",
            "é.txt",
        ]
        .iter()
        .enumerate()
        {
            let path = root.join(p);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, format!("{i}\n")).expect("write");
        }
        assert!(git(root, &["add", "-A"]));
        for v in ["2", "3", "4"] {
            assert!(git(root, &["update-index", "--index-version", v]));
            let idx = Index::load(&root.join(".git"), 20).expect("parse");
            let ours: Vec<(String, String)> = idx
                .entries
                .iter()
                .map(|e| (e.path.to_string(), hex(e.oid(20))))
                .collect();
            assert_eq!(ours, ls_files(root), "index v{v}");
            assert!(idx.get("src/deep/c.rs").is_some());
            assert_eq!(idx.under("src/deep").count(), 2);
            assert_eq!(idx.under("src/dee").count(), 0);
        }
    }

    #[test]
    fn what_is_not_modelled_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        assert!(git(root, &["init", "-q"]));
        std::fs::write(root.join("a"), "a\n").expect("write");
        assert!(git(root, &["add", "a"]));
        assert!(git(root, &["update-index", "--assume-unchanged", "a"]));
        let e = Index::load(&root.join(".git"), 20).expect_err("assume-unchanged");
        assert!(e.contains("assume-unchanged"), "{e}");
        assert!(parse(b"XXXX", 20).is_err());
        assert!(parse(b"DIRC\0\0\0\x02\0\0\0\x05", 20).is_err(), "truncated");
    }
}
