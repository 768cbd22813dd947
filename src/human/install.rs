//! `orchestrator install`: merge our hooks and MCP server into a project's
//! `.claude/settings.json` and `.mcp.json` without clobbering anything else.
//!
//! Idempotent (our entries are replaced, never duplicated), backs each changed file up
//! to `<file>.orchestrator.bak`, and prints the diff.

use super::plugin_config::{hooks_object, is_our_hook, mcp_server};
use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};
use std::fs;
use std::path::{Path, PathBuf};

pub fn run(project: Option<&Path>, dry_run: bool) -> Result<i32> {
    let root = match project {
        Some(p) => p.to_path_buf(),
        None => crate::core::paths::ProjectPaths::resolve()?.root,
    };
    if !root.is_dir() {
        bail!(
            "project directory {} does not exist: pass an existing one as --project DIR",
            root.display()
        );
    }
    let bin = std::env::current_exe()
        .context("cannot locate this orchestrator binary")?
        .to_string_lossy()
        .to_string();
    let settings = root.join(".claude/settings.json");
    let mcp = root.join(".mcp.json");
    let mut changed = 0;
    changed += apply(&settings, dry_run, |v| merge_hooks(v, &bin))?;
    changed += apply(&mcp, dry_run, |v| merge_mcp(v, &bin))?;
    if changed == 0 {
        println!("already installed: nothing to change in {}", root.display());
    } else if dry_run {
        println!("dry run: {changed} file(s) would change; run without --dry-run to write them");
    } else {
        println!(
            "installed into {}: restart Claude Code sessions there to pick it up",
            root.display()
        );
    }
    Ok(0)
}

/// Reads `path` (or `{}`), applies `f`, prints the diff, backs up and writes if changed.
fn apply(path: &Path, dry_run: bool, f: impl Fn(&mut Value) -> Result<()>) -> Result<usize> {
    let before_text = match fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => bail!("cannot read {}: {e}", path.display()),
    };
    let mut v: Value = match before_text.as_deref() {
        Some(t) if !t.trim().is_empty() => serde_json::from_str(t).map_err(|e| {
            anyhow::anyhow!(
                "{} is not valid JSON ({e}); fix or move it, then run install again",
                path.display()
            )
        })?,
        _ => Value::Object(Map::new()),
    };
    if !v.is_object() {
        bail!(
            "{} is not a JSON object; fix or move it, then run install again",
            path.display()
        );
    }
    let before = serde_json::to_string_pretty(&v)?;
    f(&mut v)?;
    let after = serde_json::to_string_pretty(&v)?;
    if before_text.is_some() && before == after {
        return Ok(0);
    }
    println!("--- {}", path.display());
    print!(
        "{}",
        diff(if before_text.is_some() { &before } else { "" }, &after)
    );
    if !dry_run {
        if let Some(t) = before_text.as_deref() {
            let bak = PathBuf::from(format!("{}.orchestrator.bak", path.display()));
            fs::write(&bak, t).with_context(|| format!("cannot write backup {}", bak.display()))?;
        }
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let tmp = PathBuf::from(format!("{}.tmp-{}", path.display(), std::process::id()));
        fs::write(&tmp, format!("{after}\n"))
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    }
    Ok(1)
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
        // Drop our old entries (and groups they leave empty), then add the current ones.
        for g in list.iter_mut() {
            if let Some(hs) = g.get_mut("hooks").and_then(Value::as_array_mut) {
                hs.retain(|h| !is_our_hook(h));
            }
        }
        list.retain(|g| {
            g.get("hooks")
                .and_then(Value::as_array)
                .is_none_or(|a| !a.is_empty())
        });
        list.extend(groups.as_array().cloned().unwrap_or_default());
    }
    Ok(())
}

/// Sets `mcpServers.orchestrator`, leaving other servers alone.
pub fn merge_mcp(v: &mut Value, bin: &str) -> Result<()> {
    let root = v.as_object_mut().context(".mcp.json is not an object")?;
    let servers = root
        .entry("mcpServers")
        .or_insert_with(|| Value::Object(Map::new()));
    let servers = servers
        .as_object_mut()
        .context(".mcp.json `mcpServers` is not an object; fix it, then run install again")?;
    servers.insert("orchestrator".into(), mcp_server(bin));
    Ok(())
}

/// A minimal line diff (LCS) with `-`/`+`/` ` prefixes.
pub fn diff(a: &str, b: &str) -> String {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    let (n, m) = (a.len(), b.len());
    let mut l = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            l[i][j] = if a[i] == b[j] {
                l[i + 1][j + 1] + 1
            } else {
                l[i + 1][j].max(l[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < m && (i == n || l[i][j + 1] >= l[i + 1][j]) {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        }
    }
    out
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
        merge_hooks(&mut v, "/bin/orchestrator")?;
        let once = v.clone();
        merge_hooks(&mut v, "/bin/orchestrator")?;
        assert_eq!(v, once, "idempotent");
        assert_eq!(v["model"], "opus");
        let pre = v["hooks"]["PreToolUse"].as_array().expect("arr");
        assert_eq!(pre.len(), 2);
        assert_eq!(pre[0]["hooks"][0]["command"], "lint.sh");
        // A new binary path replaces ours, not adds.
        merge_hooks(&mut v, "/new/orchestrator")?;
        let pre = v["hooks"]["PreToolUse"].as_array().expect("arr");
        assert_eq!(pre.len(), 2);
        assert_eq!(pre[1]["hooks"][0]["command"], "/new/orchestrator");
        Ok(())
    }

    #[test]
    fn diff_marks_changes() {
        assert_eq!(diff("a\nb\n", "a\nc\n"), "+ c\n- b\n");
    }
}
