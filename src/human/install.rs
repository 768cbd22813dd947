//! `orchestrator install` / `uninstall`: merge our hooks and MCP server into Claude Code's
//! settings, or take exactly them out again, without touching anything else there.
//!
//! Two scopes. The project's `.claude/settings.json` and `.mcp.json` are shared with the
//! team, so they name the command `orchestrator`, found on each person's PATH (an absolute
//! path only with `--absolute`). `--user` writes the person's own `~/.claude/settings.json`
//! (hooks) and `~/.claude.json` (`mcpServers`, Claude Code's user scope), for every
//! project; `CLAUDE_CONFIG_DIR` moves both, as it does for Claude Code.
//!
//! Idempotent (our entries are replaced, never duplicated), prints a diff with context,
//! and backs every changed file up outside the project tree:
//! `${XDG_STATE_HOME:-~/.local/state}/orchestrator/backups/<time>/<absolute path>`.
//! A symlinked settings file (dotfiles) is edited where it points, the link kept.

use super::plugin_config::{hooks_object, is_our_hook, is_our_mcp_server, mcp_server};
use crate::core::{clock, private_fs};
use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The command line's choices.
pub struct Options<'a> {
    pub project: Option<&'a Path>,
    pub user: bool,
    pub absolute: bool,
    pub dry_run: bool,
}

/// The two files of one scope.
struct Scope {
    settings: PathBuf,
    mcp: PathBuf,
    /// How the scope is named in messages.
    label: String,
    /// Project files that only held our entries are removed by uninstall; user files,
    /// which Claude Code owns, never are.
    remove_when_empty: bool,
    user: bool,
}

fn scope(opts: &Options) -> Result<Scope> {
    if opts.user {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        let config_dir = std::env::var_os("CLAUDE_CONFIG_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from);
        let (settings, mcp) = match (config_dir, home) {
            (Some(dir), _) => (dir.join("settings.json"), dir.join(".claude.json")),
            (None, Some(home)) => (
                home.join(".claude/settings.json"),
                home.join(".claude.json"),
            ),
            (None, None) => bail!("HOME is not set: cannot find your Claude Code settings"),
        };
        return Ok(Scope {
            settings,
            mcp,
            label: "your user settings (every project)".into(),
            remove_when_empty: false,
            user: true,
        });
    }
    let root = match opts.project {
        Some(p) => p.to_path_buf(),
        None => crate::core::paths::ProjectPaths::resolve()?.root,
    };
    if !root.is_dir() {
        bail!(
            "project directory {} does not exist: pass an existing one as --project DIR",
            root.display()
        );
    }
    let root = fs::canonicalize(&root).unwrap_or(root);
    Ok(Scope {
        settings: root.join(".claude/settings.json"),
        mcp: root.join(".mcp.json"),
        label: root.display().to_string(),
        remove_when_empty: true,
        user: false,
    })
}

pub fn install(opts: &Options) -> Result<i32> {
    let scope = scope(opts)?;
    let bin = if opts.absolute {
        let exe = std::env::current_exe().context("cannot locate this orchestrator binary")?;
        fs::canonicalize(&exe).unwrap_or(exe).display().to_string()
    } else {
        "orchestrator".to_string()
    };
    let mut run = Run::new(opts.dry_run);
    let mut changed = 0;
    changed += run.apply(&scope.settings, false, |v| merge_hooks(v, &bin))?;
    changed += run.apply(&scope.mcp, false, |v| merge_mcp(v, &bin))?;
    if !opts.absolute {
        path_note();
    }
    if changed == 0 {
        println!("already installed: nothing to change in {}", scope.label);
    } else if opts.dry_run {
        println!("dry run: {changed} file(s) would change; run without --dry-run to write them");
    } else {
        println!(
            "installed into {}: restart Claude Code sessions to pick it up",
            scope.label
        );
        if !scope.user {
            println!(
                "Claude Code asks each person once to approve the project's MCP server \
                 `orchestrator` (at the next `claude` start, or in /mcp); `claude mcp list` \
                 shows \"Pending approval\" until then. Commit .claude/settings.json and \
                 .mcp.json to share them."
            );
        }
    }
    Ok(0)
}

/// `install --database-url`: records (or, given "", forgets) the project's shared
/// PostgreSQL server in its private state dir, after checking it answers.
pub fn set_database_url(project: Option<&Path>, url: &str, dry_run: bool) -> Result<()> {
    use crate::core::store::db::pg;
    let paths = match project {
        Some(p) => crate::core::paths::ProjectPaths::from_root(p)?,
        None => crate::core::paths::ProjectPaths::resolve()?,
    };
    let file = crate::core::fleet::url_file(&paths);
    if url.is_empty() {
        if !dry_run {
            crate::core::fleet::set_database_url(&paths, "")?;
        }
        println!(
            "shared database forgotten ({}): this project uses its SQLite file",
            file.display()
        );
        return Ok(());
    }
    let target = pg::Target {
        url: url.to_string(),
        project_id: crate::core::fleet::project_id(&paths)?,
    };
    // Checked before it is written: a typo would otherwise split the fleet at the next hook.
    crate::core::store::Store::open_pg(&target)?;
    if !dry_run {
        crate::core::fleet::set_database_url(&paths, url)?;
    }
    println!(
        "{} {} in {}: project {} (schema {}); every machine's checkout needs the same URL",
        if dry_run { "would record" } else { "recorded" },
        pg::redact(url),
        file.display(),
        target.project_id,
        target.schema()
    );
    Ok(())
}

pub fn uninstall(opts: &Options) -> Result<i32> {
    let scope = scope(opts)?;
    let mut run = Run::new(opts.dry_run);
    let mut changed = 0;
    changed += run.apply(&scope.settings, scope.remove_when_empty, remove_hooks)?;
    changed += run.apply(&scope.mcp, scope.remove_when_empty, remove_mcp)?;
    if changed == 0 {
        println!("not installed: nothing to change in {}", scope.label);
    } else if opts.dry_run {
        println!("dry run: {changed} file(s) would change; run without --dry-run to write them");
    } else {
        println!(
            "removed from {}: restart Claude Code sessions to drop it",
            scope.label
        );
    }
    Ok(0)
}

/// Where `orchestrator` resolves on this PATH, and a note when that is not this binary.
fn path_note() {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .filter(|d| d.is_absolute())
            .map(|d| d.join("orchestrator"))
            .find(|c| {
                fs::metadata(c).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    });
    let me = std::env::current_exe()
        .ok()
        .and_then(|e| fs::canonicalize(e).ok());
    match found {
        None => println!(
            "note: `orchestrator` is not on your PATH, where Claude Code looks for it: run \
             `cargo install --locked --path <the orchestrator repository>` (or install with \
             --absolute to write this binary's path, for you alone)"
        ),
        Some(c) if fs::canonicalize(&c).ok() != me => println!(
            "note: `orchestrator` on your PATH is {}, not this binary{}",
            c.display(),
            me.map(|m| format!(" ({})", m.display()))
                .unwrap_or_default()
        ),
        Some(_) => {}
    }
}

/// One install or uninstall: the dry-run switch and the backup directory, made on first use.
struct Run {
    dry_run: bool,
    backups: Option<PathBuf>,
}

impl Run {
    fn new(dry_run: bool) -> Self {
        Self {
            dry_run,
            backups: None,
        }
    }

    /// Reads `path` (or `{}`), applies `f`, prints the diff, backs up and writes if changed.
    /// With `remove_when_empty` (project files), a result of `{}` removes the file instead,
    /// and a new file is created 0644 rather than 0600.
    fn apply(
        &mut self,
        path: &Path,
        remove_when_empty: bool,
        f: impl Fn(&mut Value) -> Result<()>,
    ) -> Result<usize> {
        // A symlinked settings file (dotfiles) is edited where it points; the link stays.
        let real = match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => fs::canonicalize(path).with_context(|| {
                format!(
                    "{} is a symlink to nothing; fix or remove it",
                    path.display()
                )
            })?,
            _ => std::path::absolute(path)
                .with_context(|| format!("cannot make {} absolute", path.display()))?,
        };
        let before_text = match fs::read_to_string(&real) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => bail!("cannot read {}: {e}", path.display()),
        };
        let mut v: Value = match before_text.as_deref() {
            Some(t) if !t.trim().is_empty() => serde_json::from_str(t).map_err(|e| {
                anyhow::anyhow!(
                    "{} is not valid JSON ({e}); fix or move it, then run this again",
                    path.display()
                )
            })?,
            _ => Value::Object(Map::new()),
        };
        if !v.is_object() {
            bail!(
                "{} is not a JSON object; fix or move it, then run this again",
                path.display()
            );
        }
        let before = serde_json::to_string_pretty(&v)?;
        f(&mut v)?;
        let after = serde_json::to_string_pretty(&v)?;
        if before == after {
            return Ok(0);
        }
        let remove = remove_when_empty && v.as_object().is_some_and(Map::is_empty);
        let shown_before = if before_text.is_some() { &before } else { "" };
        if remove {
            println!(
                "--- {}\n+++ (removed: it held only orchestrator's entries)",
                path.display()
            );
            print!("{}", diff(shown_before, ""));
        } else {
            println!("--- {}\n+++ {}", path.display(), path.display());
            print!("{}", diff(shown_before, &after));
        }
        if self.dry_run {
            return Ok(1);
        }
        let old_mode = fs::metadata(&real)
            .ok()
            .map(|m| m.permissions().mode() & 0o7777);
        if let Some(t) = before_text.as_deref() {
            let bak = self.backup(&real, t)?;
            println!("backup: {}", bak.display());
        }
        if remove {
            fs::remove_file(&real).with_context(|| format!("cannot remove {}", path.display()))?;
            return Ok(1);
        }
        let dir = real
            .parent()
            .context("settings file has no parent directory")?;
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let name = real.file_name().map(|n| n.to_string_lossy().to_string());
        let tmp = dir.join(format!(
            ".{}.orchestrator-tmp-{}",
            name.unwrap_or_default(),
            std::process::id()
        ));
        let write = || -> std::io::Result<()> {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)?;
            file.write_all(format!("{after}\n").as_bytes())?;
            file.sync_all()?;
            // Keep the file's mode; a new project file is readable as committed files
            // are, a new user config private.
            let mode = old_mode.unwrap_or(if remove_when_empty { 0o644 } else { 0o600 });
            fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
            fs::rename(&tmp, &real)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            anyhow::anyhow!("cannot write {}: {e}", path.display())
        })?;
        Ok(1)
    }

    /// Copies `text` (the file at `real` before the change) into this run's backup dir.
    fn backup(&mut self, real: &Path, text: &str) -> Result<PathBuf> {
        let dir = match &self.backups {
            Some(d) => d.clone(),
            None => {
                let stamp: String = clock::iso(clock::now_ms())
                    .chars()
                    .filter(|c| !matches!(c, '-' | ':'))
                    .collect();
                let d = backup_root()?.join(format!("{stamp}-{}", std::process::id()));
                self.backups = Some(d.clone());
                d
            }
        };
        let rel: PathBuf = real.components().skip(1).collect();
        let bak = dir.join(rel);
        let parent = bak.parent().context("backup path has no parent")?;
        private_fs::ensure_dir(parent)?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(private_fs::FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&bak)
            .with_context(|| format!("cannot write backup {}", bak.display()))?;
        f.write_all(text.as_bytes())
            .with_context(|| format!("cannot write backup {}", bak.display()))?;
        Ok(bak)
    }
}

/// `${XDG_STATE_HOME:-$HOME/.local/state}/orchestrator/backups`.
fn backup_root() -> Result<PathBuf> {
    let xdg = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = match (xdg, home) {
        (Some(x), _) => x,
        (None, Some(h)) => h.join(".local/state"),
        (None, None) => bail!("cannot place backups: set HOME or XDG_STATE_HOME"),
    };
    Ok(base.join("orchestrator/backups"))
}

/// Replaces our hook entries per event, keeping every other entry and setting.
pub fn merge_hooks(v: &mut Value, bin: &str) -> Result<()> {
    let root = v.as_object_mut().context("settings is not an object")?;
    let hooks = root
        .entry("hooks")
        .or_insert_with(|| Value::Object(Map::new()));
    let hooks = hooks
        .as_object_mut()
        .context("settings.json `hooks` is not an object; fix it, then run install again")?;
    let ours = hooks_object(bin);
    for (event, groups) in ours.as_object().into_iter().flatten() {
        let list = hooks
            .entry(event.clone())
            .or_insert_with(|| Value::Array(vec![]));
        let Some(list) = list.as_array_mut() else {
            bail!("settings.json hooks.{event} is not an array; fix it, then run install again");
        };
        strip_ours(list);
        list.extend(groups.as_array().cloned().unwrap_or_default());
    }
    Ok(())
}

/// Removes our hook entries, and the groups, events and `hooks` object they leave empty.
pub fn remove_hooks(v: &mut Value) -> Result<()> {
    let root = v.as_object_mut().context("settings is not an object")?;
    let Some(hooks) = root.get_mut("hooks").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let mut emptied = Vec::new();
    for (event, list) in hooks.iter_mut() {
        if let Some(list) = list.as_array_mut() {
            if strip_ours(list) && list.is_empty() {
                emptied.push(event.clone());
            }
        }
    }
    for event in &emptied {
        hooks.remove(event);
    }
    if !emptied.is_empty() && hooks.is_empty() {
        root.remove("hooks");
    }
    Ok(())
}

/// Drops our entries from a list of hook groups, and the groups that held only ours.
/// True when anything was removed.
fn strip_ours(list: &mut Vec<Value>) -> bool {
    let before = list.len();
    let mut removed = false;
    list.retain_mut(|g| {
        let Some(hs) = g.get_mut("hooks").and_then(Value::as_array_mut) else {
            return true;
        };
        let n = hs.len();
        hs.retain(|h| !is_our_hook(h));
        if hs.len() == n {
            return true;
        }
        removed = true;
        !hs.is_empty()
    });
    removed || list.len() != before
}

/// Sets `mcpServers.orchestrator`, leaving other servers alone.
pub fn merge_mcp(v: &mut Value, bin: &str) -> Result<()> {
    let root = v.as_object_mut().context("MCP config is not an object")?;
    let servers = root
        .entry("mcpServers")
        .or_insert_with(|| Value::Object(Map::new()));
    let servers = servers
        .as_object_mut()
        .context("`mcpServers` is not an object; fix it, then run install again")?;
    servers.insert("orchestrator".into(), mcp_server(bin));
    Ok(())
}

/// Removes `mcpServers.orchestrator` when it is ours (and `mcpServers` if left empty).
pub fn remove_mcp(v: &mut Value) -> Result<()> {
    let root = v.as_object_mut().context("MCP config is not an object")?;
    let Some(servers) = root.get_mut("mcpServers").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    if !servers.get("orchestrator").is_some_and(is_our_mcp_server) {
        return Ok(());
    }
    servers.remove("orchestrator");
    if servers.is_empty() {
        root.remove("mcpServers");
    }
    Ok(())
}

/// Lines of context around each change in [`diff`].
const CONTEXT: usize = 3;

/// A unified line diff of `a` → `b`: `@@ -l,n +l,n @@` hunks with [`CONTEXT`] lines of
/// context, ` `/`-`/`+` prefixes.
pub fn diff(a: &str, b: &str) -> String {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    let ops = edit_script(&a, &b);
    // Ops as (kind, line in a, line in b); kind: ' ', '-', '+'.
    let mut out = String::new();
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k].0 != ' ').collect();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(CONTEXT);
        let mut end = changed[k];
        // Extend the hunk while the next change is within two contexts.
        while k + 1 < changed.len() && changed[k + 1] <= end + 2 * CONTEXT + 1 {
            k += 1;
            end = changed[k];
        }
        let end = (end + CONTEXT + 1).min(ops.len());
        let hunk = &ops[start..end];
        let a_len = hunk.iter().filter(|o| o.0 != '+').count();
        let b_len = hunk.iter().filter(|o| o.0 != '-').count();
        let a_start = hunk.first().map_or(0, |o| o.1);
        let b_start = hunk.first().map_or(0, |o| o.2);
        let first = |s: usize, len: usize| if len == 0 { s } else { s + 1 };
        out.push_str(&format!(
            "@@ -{},{a_len} +{},{b_len} @@\n",
            first(a_start, a_len),
            first(b_start, b_len)
        ));
        for (kind, i, j) in hunk {
            let line = if *kind == '+' { b[*j] } else { a[*i] };
            out.push_str(&format!("{kind}{line}\n"));
        }
        k += 1;
    }
    out
}

/// The edit script turning `a` into `b`: common prefix and suffix kept, LCS in between
/// (or, when that middle is huge, all of it replaced). Each op is (kind, index in a,
/// index in b), the indexes being where the op stands.
fn edit_script(a: &[&str], b: &[&str]) -> Vec<(char, usize, usize)> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (am, bm) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let mut ops: Vec<(char, usize, usize)> = (0..prefix).map(|i| (' ', i, i)).collect();
    let (n, m) = (am.len(), bm.len());
    if n.saturating_mul(m) > 4_000_000 {
        ops.extend((0..n).map(|i| ('-', prefix + i, prefix)));
        ops.extend((0..m).map(|j| ('+', prefix + n, prefix + j)));
    } else {
        let mut l = vec![vec![0u32; m + 1]; n + 1];
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                l[i][j] = if am[i] == bm[j] {
                    l[i + 1][j + 1] + 1
                } else {
                    l[i + 1][j].max(l[i][j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n || j < m {
            if i < n && j < m && am[i] == bm[j] {
                ops.push((' ', prefix + i, prefix + j));
                i += 1;
                j += 1;
            } else if i < n && (j == m || l[i + 1][j] >= l[i][j + 1]) {
                ops.push(('-', prefix + i, prefix + j));
                i += 1;
            } else {
                ops.push(('+', prefix + i, prefix + j));
                j += 1;
            }
        }
    }
    let (ae, be) = (a.len() - suffix, b.len() - suffix);
    ops.extend((0..suffix).map(|k| (' ', ae + k, be + k)));
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_keeps_foreign_entries_and_is_idempotent() -> Result<()> {
        let mut v = json!({
            "model": "opus",
            "hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type":"command","command":"lint.sh"}]}]}
        });
        merge_hooks(&mut v, "orchestrator")?;
        let once = v.clone();
        merge_hooks(&mut v, "orchestrator")?;
        assert_eq!(v, once, "idempotent");
        assert_eq!(v["model"], "opus");
        let pre = v["hooks"]["PreToolUse"].as_array().expect("arr");
        assert_eq!(pre.len(), 2);
        assert_eq!(pre[0]["hooks"][0]["command"], "lint.sh");
        // Another command (an old absolute path) replaces ours, not adds.
        merge_hooks(&mut v, "/home/me/.cargo/bin/orchestrator")?;
        let pre = v["hooks"]["PreToolUse"].as_array().expect("arr");
        assert_eq!(pre.len(), 2);
        assert_eq!(
            pre[1]["hooks"][0]["command"],
            "/home/me/.cargo/bin/orchestrator"
        );
        Ok(())
    }

    #[test]
    fn remove_takes_out_exactly_what_merge_put_in() -> Result<()> {
        let original = json!({
            "model": "opus",
            "hooks": {
                "PreToolUse": [{"matcher": "Bash", "hooks": [{"type":"command","command":"lint.sh"}]}],
                "Stop": [{"hooks": []}]
            }
        });
        let mut v = original.clone();
        merge_hooks(&mut v, "orchestrator")?;
        remove_hooks(&mut v)?;
        assert_eq!(v, original, "a foreign empty group stays too");
        remove_hooks(&mut v)?;
        assert_eq!(v, original, "idempotent");

        let mut v = json!({});
        merge_hooks(&mut v, "orchestrator")?;
        remove_hooks(&mut v)?;
        assert_eq!(v, json!({}));

        let original = json!({"mcpServers": {"db": {"command": "db-mcp"}}});
        let mut v = original.clone();
        merge_mcp(&mut v, "orchestrator")?;
        remove_mcp(&mut v)?;
        assert_eq!(v, original);
        let mut v = json!({});
        merge_mcp(&mut v, "orchestrator")?;
        remove_mcp(&mut v)?;
        assert_eq!(v, json!({}));
        // Someone else's server under our name is left alone.
        let theirs = json!({"mcpServers": {"orchestrator": {"command": "kubectl-orch"}}});
        let mut v = theirs.clone();
        remove_mcp(&mut v)?;
        assert_eq!(v, theirs);
        Ok(())
    }

    #[test]
    fn diff_has_hunks_with_context() {
        assert_eq!(diff("a\nb\n", "a\nc\n"), "@@ -1,2 +1,2 @@\n a\n-b\n+c\n");
        let lines = |f: &dyn Fn(usize) -> String| -> String {
            (1..=20).map(|i| format!("{}\n", f(i))).collect()
        };
        let a = lines(&|i| i.to_string());
        let b = a.replace("\n10\n", "\n10\nnew\n");
        assert_eq!(
            diff(&a, &b),
            "@@ -8,6 +8,7 @@\n 8\n 9\n 10\n+new\n 11\n 12\n 13\n"
        );
        // Far-apart changes make two hunks.
        let b = lines(&|i| match i {
            2 => "two".into(),
            19 => "nineteen".into(),
            _ => i.to_string(),
        });
        let d = diff(&a, &b);
        assert_eq!(d.matches("@@ -").count(), 2, "{d}");
        // A new file is all additions.
        assert_eq!(diff("", "x\ny\n"), "@@ -0,0 +1,2 @@\n+x\n+y\n");
        assert_eq!(diff("x\n", ""), "@@ -1,1 +0,0 @@\n-x\n");
        assert_eq!(diff("same\n", "same\n"), "");
    }
}
