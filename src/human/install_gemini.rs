//! `orchestrator install --gemini`: Google's Gemini CLI. Hooks (its own event names,
//! timeouts in milliseconds) and the MCP server go to `<project>/.gemini/settings.json`.
//!
//! Gemini loads a project's hooks only in a trusted folder (when folder trust is on) and
//! warns once about hooks it has not seen before, then runs them.

use super::doctor::{Finding, Level};
use super::install_hooks::{apply_json, group, hook_command, is_our_handler};
use anyhow::{Context, Result};
use serde_json::{json, Map, Value};
use std::path::Path;

/// Events wired, with the tool matcher (a regex) where one applies and the timeout in
/// **milliseconds** (Gemini's unit).
pub const WIRING: &[(&str, Option<&str>, u32)] = &[
    ("SessionStart", None, 10_000),
    ("BeforeAgent", None, 10_000),
    (
        "BeforeTool",
        Some("^(write_file|replace|run_shell_command)$"),
        10_000,
    ),
    ("AfterTool", None, 10_000),
    ("AfterAgent", None, 10_000),
    ("PreCompress", None, 10_000),
    ("SessionEnd", None, 2_000),
];

/// The `hooks` object of `.gemini/settings.json` for `bin`.
pub fn hooks_object(bin: &str) -> Map<String, Value> {
    WIRING
        .iter()
        .map(|(event, matcher, timeout_ms)| {
            let handler = json!({
                "type": "command",
                "name": "orchestrator",
                "command": hook_command(bin, event, "gemini"),
                "timeout": timeout_ms,
            });
            ((*event).to_string(), json!([group(*matcher, handler)]))
        })
        .collect()
}

/// Sets our hooks and `mcpServers.orchestrator` in a settings value, keeping the rest.
pub fn merge_settings(v: &mut Value, bin: &str) -> Result<()> {
    super::install_hooks::merge_groups(v, &hooks_object(bin), ".gemini/settings.json")?;
    let root = v
        .as_object_mut()
        .context(".gemini/settings.json is not an object")?;
    let servers = root
        .entry("mcpServers")
        .or_insert_with(|| Value::Object(Map::new()));
    let servers = servers.as_object_mut().context(
        ".gemini/settings.json `mcpServers` is not an object; fix it, then run install again",
    )?;
    let mut ours = json!({"command": bin, "args": ["serve"]});
    // Settings the person gave the server (`env`) are kept.
    if let Some(env) = servers.get("orchestrator").and_then(|s| s.get("env")) {
        ours["env"] = env.clone();
    }
    servers.insert("orchestrator".into(), ours);
    Ok(())
}

/// Installs into `project` (default: the project root); returns how many files changed.
pub fn run(project: Option<&Path>, dry_run: bool) -> Result<usize> {
    let (root, bin) = super::install_hooks::target(project)?;
    let settings = root.join(".gemini/settings.json");
    let changed = apply_json(&settings, dry_run, |v| merge_settings(v, &bin))?;
    if changed == 0 {
        println!("Gemini CLI: already installed in {}", root.display());
    } else if !dry_run {
        println!(
            "Gemini CLI: installed into {}: restart Gemini CLI sessions there (it names the new \
             project hooks once, then runs them; with folder trust on, trust the folder)",
            root.display()
        );
    }
    Ok(changed)
}

/// What `doctor` says about Gemini CLI in this project: nothing when no orchestrator hook
/// is in `.gemini/settings.json`; else whether hooks are switched off.
pub fn findings(root: &Path) -> Vec<Finding> {
    let file = root.join(".gemini/settings.json");
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
    };
    let Some(v) = read(&file) else {
        return Vec::new();
    };
    let ours = v
        .get("hooks")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, groups)| {
            groups.as_array().into_iter().flatten().any(|g| {
                g.get("hooks")
                    .and_then(Value::as_array)
                    .is_some_and(|hs| hs.iter().any(is_our_handler))
            })
        })
        .count();
    if ours == 0 {
        return Vec::new();
    }
    let user = std::env::var_os("HOME").map(|h| Path::new(&h).join(".gemini/settings.json"));
    let off = [Some(v.clone()), user.as_deref().and_then(read)]
        .into_iter()
        .flatten()
        .any(|s| {
            s.pointer("/hooksConfig/enabled") == Some(&Value::Bool(false))
                || s.pointer("/hooks/enabled") == Some(&Value::Bool(false))
        });
    if off {
        return vec![Finding {
            level: Level::Problem,
            what: format!(
                "Gemini CLI hooks are in {} but hooks are switched off (hooksConfig.enabled = false)",
                file.display()
            ),
            fix: Some("set hooksConfig.enabled to true (or remove it) in .gemini/settings.json and ~/.gemini/settings.json".into()),
        }];
    }
    vec![Finding {
        level: Level::Ok,
        what: format!("Gemini CLI hooks in {}: {ours} event(s)", file.display()),
        fix: None,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_merge_keeps_foreign_entries_and_uses_milliseconds() -> Result<()> {
        let mut v = json!({
            "theme": "dark",
            "hooks": {"BeforeTool": [{"matcher": "run_shell_command", "hooks": [{"type": "command", "command": "audit.sh"}]}]},
            "mcpServers": {"docs": {"command": "docs-mcp"}, "orchestrator": {"command": "/old/orchestrator", "args": ["serve"], "env": {"ORCHESTRATOR_AGENT_NAME": "ui"}}}
        });
        merge_settings(&mut v, "/bin/orchestrator")?;
        let once = v.clone();
        merge_settings(&mut v, "/bin/orchestrator")?;
        assert_eq!(v, once, "idempotent");
        assert_eq!(v["theme"], "dark");
        assert_eq!(v["hooks"]["BeforeTool"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            v["hooks"]["BeforeTool"][0]["hooks"][0]["command"],
            "audit.sh"
        );
        let ours = &v["hooks"]["BeforeTool"][1]["hooks"][0];
        assert_eq!(
            ours["command"],
            "/bin/orchestrator hook BeforeTool --agent gemini"
        );
        assert_eq!(ours["timeout"], 10_000, "Gemini timeouts are milliseconds");
        assert_eq!(v["mcpServers"]["docs"]["command"], "docs-mcp");
        assert_eq!(
            v["mcpServers"]["orchestrator"]["command"],
            "/bin/orchestrator"
        );
        assert_eq!(
            v["mcpServers"]["orchestrator"]["env"]["ORCHESTRATOR_AGENT_NAME"],
            "ui"
        );
        for (event, _, _) in WIRING {
            assert!(
                crate::hooks::adapter::of(crate::core::identity::AgentCli::Gemini)
                    .event(event)
                    .is_some(),
                "{event} is wired but Gemini's adapter does not know it"
            );
        }
        Ok(())
    }
}
