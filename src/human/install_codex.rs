//! `orchestrator install --codex`: OpenAI's Codex CLI. Hooks go to
//! `<project>/.codex/hooks.json` (Claude Code's hook model, one shell command each), the
//! MCP server to `[mcp_servers.orchestrator]` in `<project>/.codex/config.toml`.
//!
//! Codex skips hooks until they are trusted: a project's hooks load only in a trusted
//! project (`[projects."<dir>"] trust_level = "trusted"` in the user's config.toml), and
//! each handler only once reviewed (`[hooks.state."<file>:<event>:<group>:<handler>"]
//! trusted_hash`). Codex computes that hash itself, so install cannot vouch for it: it
//! says how to trust them, and `doctor` tells when they are present but untrusted.

use super::doctor::{Finding, Level};
use super::install_hooks::{apply_json, apply_text, group, hook_command, is_our_handler};
use anyhow::{Context, Result};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// Events wired, with the tool matcher (a regex) where one applies and the timeout in
/// seconds.
pub const WIRING: &[(&str, Option<&str>, u32)] = &[
    ("SessionStart", None, 10),
    ("UserPromptSubmit", None, 10),
    ("PreToolUse", Some("^(apply_patch|Bash)$"), 10),
    ("PostToolUse", None, 10),
    ("Stop", None, 10),
    ("StopFailure", None, 10),
    ("PreCompact", None, 10),
    ("SessionEnd", None, 2),
];

/// The `hooks` object of `.codex/hooks.json` for `bin`.
pub fn hooks_object(bin: &str) -> Map<String, Value> {
    WIRING
        .iter()
        .map(|(event, matcher, timeout)| {
            let handler = json!({
                "type": "command",
                "command": hook_command(bin, event, "codex"),
                "timeout": timeout,
            });
            ((*event).to_string(), json!([group(*matcher, handler)]))
        })
        .collect()
}

/// `config.toml` text with `[mcp_servers.orchestrator]` set to run `bin serve`, every
/// other setting (and comment) kept.
pub fn merge_config(before: Option<&str>, bin: &str) -> Result<String> {
    let mut doc: toml_edit::DocumentMut = before.unwrap_or("").parse().map_err(|e| {
        anyhow::anyhow!(
            ".codex/config.toml is not valid TOML ({e}); fix it, then run install again"
        )
    })?;
    let servers = doc
        .entry("mcp_servers")
        .or_insert_with(|| {
            let mut t = toml_edit::Table::new();
            t.set_implicit(true);
            toml_edit::Item::Table(t)
        })
        .as_table_mut()
        .context(
            ".codex/config.toml `mcp_servers` is not a table; fix it, then run install again",
        )?;
    let mut ours = toml_edit::Table::new();
    ours.insert("command", toml_edit::value(bin));
    let mut args = toml_edit::Array::new();
    args.push("serve");
    ours.insert("args", toml_edit::value(args));
    // Codex starts MCP servers with a short environment allow-list: settings the person
    // wants the server to see belong in an `env` table here, which is kept.
    if let Some(env) = servers
        .get("orchestrator")
        .and_then(|s| s.as_table_like())
        .and_then(|t| t.get("env"))
    {
        ours.insert("env", env.clone());
    }
    servers.insert("orchestrator", toml_edit::Item::Table(ours));
    Ok(doc.to_string())
}

/// Installs into `project` (default: the project root); returns how many files changed.
pub fn run(project: Option<&Path>, dry_run: bool) -> Result<usize> {
    let (root, bin) = super::install_hooks::target(project)?;
    let hooks = root.join(".codex/hooks.json");
    let config = root.join(".codex/config.toml");
    let ours = hooks_object(&bin);
    let mut changed = apply_json(&hooks, dry_run, |v| {
        super::install_hooks::merge_groups(v, &ours, ".codex/hooks.json")
    })?;
    changed += apply_text(&config, dry_run, |before| merge_config(before, &bin))?;
    if changed == 0 {
        println!("Codex CLI: already installed in {}", root.display());
    } else if !dry_run {
        println!("Codex CLI: installed into {}", root.display());
    }
    println!(
        "Codex CLI runs these hooks only once trusted: start `codex` in {}, trust the project \
         if it asks, and review the orchestrator hooks it lists as needing review (/hooks); until \
         then they are skipped (`orchestrator doctor` tells). Scripted runs: `codex exec \
         --dangerously-bypass-hook-trust`.",
        root.display()
    );
    Ok(changed)
}

/// Codex's home: `$CODEX_HOME`, else `~/.codex`.
fn codex_home() -> Option<PathBuf> {
    std::env::var_os("CODEX_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".codex")))
}

/// `SessionStart` → `session_start`, as Codex keys hook state.
fn snake(event: &str) -> String {
    let mut s = String::new();
    for (i, c) in event.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                s.push('_');
            }
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

/// Our handlers in a hooks.json value: (event, group index, handler index).
fn our_handlers(v: &Value) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    for (event, groups) in v
        .get("hooks")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        for (gi, g) in groups.as_array().into_iter().flatten().enumerate() {
            for (hi, h) in g
                .get("hooks")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                if is_our_handler(h) {
                    out.push((event.clone(), gi, hi));
                }
            }
        }
    }
    out
}

fn same_file(a: &str, b: &Path) -> bool {
    Path::new(a) == b
        || std::fs::canonicalize(a)
            .ok()
            .zip(std::fs::canonicalize(b).ok())
            .is_some_and(|(x, y)| x == y)
}

/// What `doctor` says about Codex CLI in this project: nothing when no orchestrator hook
/// is in `.codex/hooks.json`; else whether Codex will run them (project and hook trust).
pub fn findings(root: &Path) -> Vec<Finding> {
    let file = root.join(".codex/hooks.json");
    let Some(v) = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
    else {
        return Vec::new();
    };
    let ours = our_handlers(&v);
    if ours.is_empty() {
        return Vec::new();
    }
    let finding = |level, what: String, fix: Option<String>| Finding { level, what, fix };
    let mut out = Vec::new();
    let home = codex_home();
    let user = home.as_ref().map(|h| h.join("config.toml"));
    let doc: Option<toml_edit::DocumentMut> = user
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| t.parse().ok());
    let shown_user = user
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "~/.codex/config.toml".into());
    // The project itself: Codex loads project hooks and config only where it is trusted.
    let project_trusted = doc
        .as_ref()
        .and_then(|d| d.get("projects"))
        .and_then(|p| p.as_table_like())
        .is_some_and(|projects| {
            projects.iter().any(|(dir, t)| {
                same_file(dir, root)
                    && t.get("trust_level").and_then(|l| l.as_str()) == Some("trusted")
            })
        });
    if !project_trusted {
        out.push(finding(
            Level::Problem,
            format!(
                "Codex CLI does not trust {} yet: it loads no project hooks (nor the MCP server) there, so Codex sessions are invisible to siblings",
                root.display()
            ),
            Some(format!(
                "start `codex` in {} and trust the project when asked (it adds [projects.\"{}\"] trust_level = \"trusted\" to {shown_user})",
                root.display(),
                root.display()
            )),
        ));
    }
    let state = doc
        .as_ref()
        .and_then(|d| d.get("hooks"))
        .and_then(|h| h.get("state"))
        .and_then(|s| s.as_table_like());
    let mut untrusted = Vec::new();
    let mut disabled = Vec::new();
    for (event, gi, hi) in &ours {
        let suffix = format!(":{}:{gi}:{hi}", snake(event));
        let entry = state.and_then(|s| {
            s.iter()
                .find(|(k, _)| {
                    k.strip_suffix(&suffix)
                        .is_some_and(|p| same_file(p.strip_prefix("file:").unwrap_or(p), &file))
                })
                .map(|(_, v)| v)
        });
        if entry
            .and_then(|e| e.get("enabled"))
            .and_then(|e| e.as_bool())
            == Some(false)
        {
            disabled.push(event.clone());
        } else if entry
            .and_then(|e| e.get("trusted_hash"))
            .and_then(|h| h.as_str())
            .is_none()
        {
            untrusted.push(event.clone());
        }
    }
    if !disabled.is_empty() {
        out.push(finding(
            Level::Problem,
            format!(
                "Codex CLI has the orchestrator hook(s) for {} disabled ({shown_user})",
                disabled.join(", ")
            ),
            Some("enable them again in codex (/hooks)".into()),
        ));
    }
    if untrusted.is_empty() {
        out.push(finding(
            Level::Ok,
            format!(
                "Codex CLI hooks in {}: {} trusted (codex asks again if an entry changed)",
                file.display(),
                ours.len()
            ),
            None,
        ));
    } else {
        out.push(finding(
            Level::Problem,
            format!(
                "Codex CLI hooks in {} are present but {} of {} not trusted ({}): Codex skips them",
                file.display(),
                untrusted.len(),
                ours.len(),
                untrusted.join(", ")
            ),
            Some(format!(
                "start `codex` in {} and review the orchestrator hooks it lists as needing review (/hooks); scripted runs: codex exec --dangerously-bypass-hook-trust",
                root.display()
            )),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keeps_what_is_there_and_is_idempotent() -> Result<()> {
        let before = "# mine\nmodel = \"o3\"\n\n[mcp_servers.docs]\ncommand = \"docs-mcp\"\n\n[mcp_servers.orchestrator]\ncommand = \"/old/orchestrator\"\nenv = { ORCHESTRATOR_AGENT_NAME = \"api\" }\n";
        let once = merge_config(Some(before), "/new/orchestrator")?;
        assert!(
            once.contains("# mine") && once.contains("model = \"o3\""),
            "{once}"
        );
        assert!(once.contains("[mcp_servers.docs]"), "{once}");
        assert!(once.contains("command = \"/new/orchestrator\""), "{once}");
        assert!(!once.contains("/old/orchestrator"), "{once}");
        assert!(once.contains("ORCHESTRATOR_AGENT_NAME"), "{once}");
        assert_eq!(merge_config(Some(&once), "/new/orchestrator")?, once);
        let fresh = merge_config(None, "/bin/orchestrator")?;
        assert!(fresh.contains("[mcp_servers.orchestrator]"), "{fresh}");
        assert!(merge_config(Some("a = ["), "/b").is_err());
        Ok(())
    }

    #[test]
    fn hooks_merge_keeps_foreign_entries() -> Result<()> {
        let mut v = json!({"hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "lint.sh"}]}]}});
        let ours = hooks_object("/bin/orchestrator");
        super::super::install_hooks::merge_groups(&mut v, &ours, "x")?;
        let once = v.clone();
        super::super::install_hooks::merge_groups(&mut v, &ours, "x")?;
        assert_eq!(v, once);
        let pre = v["hooks"]["PreToolUse"].as_array().map(Vec::len);
        assert_eq!(pre, Some(2));
        assert_eq!(
            v["hooks"]["PreToolUse"][1]["hooks"][0]["command"],
            "/bin/orchestrator hook PreToolUse --agent codex"
        );
        assert_eq!(our_handlers(&v).len(), WIRING.len());
        for (event, _, _) in WIRING {
            assert!(
                crate::hooks::adapter::of(crate::core::identity::AgentCli::Codex)
                    .event(event)
                    .is_some(),
                "{event} is wired but Codex's adapter does not know it"
            );
        }
        Ok(())
    }

    #[test]
    fn snake_case_event_keys() {
        assert_eq!(snake("PreToolUse"), "pre_tool_use");
        assert_eq!(snake("SessionStart"), "session_start");
        assert_eq!(snake("Stop"), "stop");
    }
}
