//! What the Codex CLI and Gemini CLI installers share: hook commands as one shell string
//! (both CLIs run a hook's `command` through a shell), recognising our own entries, and
//! writing a config file idempotently with a backup and a diff (or only the diff).

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use std::fs;
use std::path::{Path, PathBuf};

/// `s` quoted for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@%,".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The hook command `<bin> hook <event> --agent <cli>`.
pub fn hook_command(bin: &str, event: &str, cli: &str) -> String {
    format!("{} hook {event} --agent {cli}", shell_quote(bin))
}

/// The first shell word of `s` (quotes and backslashes undone) and the rest.
fn first_word(s: &str) -> (String, &str) {
    let s = s.trim_start();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => return (word, &s[i..]),
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '\\') | (Some('"'), '\\') => {
                if let Some((_, n)) = chars.next() {
                    word.push(n);
                }
            }
            (_, c) => word.push(c),
        }
    }
    (word, "")
}

/// True when `command` runs some orchestrator binary's `hook` subcommand.
pub fn is_our_command(command: &str) -> bool {
    let (first, rest) = first_word(command);
    let base = first.rsplit('/').next().unwrap_or(&first);
    base == "orchestrator" && rest.split_whitespace().next() == Some("hook")
}

/// Whether a hook handler object is one of ours.
pub fn is_our_handler(h: &Value) -> bool {
    h.get("command")
        .and_then(Value::as_str)
        .is_some_and(is_our_command)
}

/// Replaces our handlers under `hooks.<event>` with `ours` (event → groups), keeping every
/// other group and handler; groups we leave empty are dropped.
pub fn merge_groups(root: &mut Value, ours: &Map<String, Value>, file: &str) -> Result<()> {
    let obj = root
        .as_object_mut()
        .with_context(|| format!("{file} is not a JSON object"))?;
    let hooks = obj
        .entry("hooks")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(hooks) = hooks.as_object_mut() else {
        bail!("{file} `hooks` is not an object; fix it, then run install again");
    };
    for (event, groups) in ours {
        let list = hooks
            .entry(event.clone())
            .or_insert_with(|| Value::Array(vec![]));
        let Some(list) = list.as_array_mut() else {
            bail!("{file} hooks.{event} is not an array; fix it, then run install again");
        };
        for g in list.iter_mut() {
            if let Some(hs) = g.get_mut("hooks").and_then(Value::as_array_mut) {
                hs.retain(|h| !is_our_handler(h));
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

/// One matcher group with one command handler.
pub fn group(matcher: Option<&str>, handler: Value) -> Value {
    match matcher {
        Some(m) => json!({"matcher": m, "hooks": [handler]}),
        None => json!({"hooks": [handler]}),
    }
}

/// Reads `path` (absent: `None`), lets `f` produce the new text, and when it differs
/// prints the diff and (unless `dry_run`) backs the old file up to
/// `<file>.orchestrator.bak` and replaces it atomically. Returns 1 when it changed.
pub fn apply_text(
    path: &Path,
    dry_run: bool,
    f: impl FnOnce(Option<&str>) -> Result<String>,
) -> Result<usize> {
    let before = match fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => bail!("cannot read {}: {e}", path.display()),
    };
    let after = f(before.as_deref())?;
    if before.as_deref() == Some(after.as_str()) {
        return Ok(0);
    }
    println!("--- {}", path.display());
    print!(
        "{}",
        super::install::diff(before.as_deref().unwrap_or(""), &after)
    );
    if !dry_run {
        if let Some(t) = before.as_deref() {
            let bak = PathBuf::from(format!("{}.orchestrator.bak", path.display()));
            fs::write(&bak, t).with_context(|| format!("cannot write backup {}", bak.display()))?;
        }
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let tmp = PathBuf::from(format!("{}.tmp-{}", path.display(), std::process::id()));
        fs::write(&tmp, &after).with_context(|| format!("cannot write {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    }
    Ok(1)
}

/// [`apply_text`] for a JSON object file: `f` edits the parsed value; an unchanged
/// value leaves the file as it is, whatever its formatting.
pub fn apply_json(
    path: &Path,
    dry_run: bool,
    f: impl FnOnce(&mut Value) -> Result<()>,
) -> Result<usize> {
    apply_text(path, dry_run, |before| {
        let mut v: Value = match before {
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
        let old = v.clone();
        f(&mut v)?;
        match before {
            Some(t) if old == v => Ok(t.to_string()),
            _ => Ok(format!("{}\n", serde_json::to_string_pretty(&v)?)),
        }
    })
}

/// The project directory to install into and this binary's path.
pub fn target(project: Option<&Path>) -> Result<(PathBuf, String)> {
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
    Ok((root, bin))
}

/// `orchestrator install`: Claude Code unless other CLIs are named (`--codex`,
/// `--gemini`; `--claude` adds Claude Code to them).
pub fn run_for(
    opts: &super::install::Options<'_>,
    claude: bool,
    codex: bool,
    gemini: bool,
) -> Result<i32> {
    if !codex && !gemini {
        return super::install::install(opts);
    }
    if opts.user {
        anyhow::bail!("--user installs for Claude Code only; wire Codex or Gemini per project (leave out --user)");
    }
    if claude {
        super::install::install(opts)?;
    }
    let (project, dry_run) = (opts.project, opts.dry_run);
    let mut changed = 0;
    if codex {
        changed += super::install_codex::run(project, dry_run)?;
    }
    if gemini {
        changed += super::install_gemini::run(project, dry_run)?;
    }
    if dry_run && changed > 0 {
        println!("dry run: {changed} file(s) would change; run without --dry-run to write them");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_quoted_and_recognised() {
        assert_eq!(
            shell_quote("/usr/bin/orchestrator"),
            "/usr/bin/orchestrator"
        );
        assert_eq!(shell_quote("/a b/it's"), "'/a b/it'\\''s'");
        let c = hook_command("/opt/my tools/orchestrator", "BeforeTool", "gemini");
        assert_eq!(
            c,
            "'/opt/my tools/orchestrator' hook BeforeTool --agent gemini"
        );
        assert!(is_our_command(&c));
        assert!(is_our_command("orchestrator hook Stop"));
        assert!(!is_our_command("lint.sh hook"));
        assert!(!is_our_command("/bin/orchestrator serve"));
        assert!(is_our_command(&hook_command(
            "/it's/orchestrator",
            "Stop",
            "codex"
        )));
    }
}
