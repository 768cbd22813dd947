//! The hook and MCP wiring orchestrator needs, as JSON, for a plugin or a project's settings.

use serde_json::{json, Value};

/// Events wired, with the tool matcher where one applies and the timeout in seconds.
pub const WIRING: &[(&str, Option<&str>, u32)] = &[
    ("SessionStart", None, 10),
    ("UserPromptSubmit", None, 10),
    (
        "PreToolUse",
        Some("Write|Edit|MultiEdit|NotebookEdit|Bash"),
        10,
    ),
    ("PostToolUse", None, 10),
    ("Stop", None, 10),
    ("StopFailure", None, 10),
    ("PreCompact", None, 10),
    ("SessionEnd", None, 2),
];

/// Events that also start the background waiter (`orchestrator wait`, an `asyncRewake`
/// hook): the fallback that wakes an idle session without a doorbell.
pub const WAITER_EVENTS: &[&str] = &["SessionStart", "Stop"];
/// The waiter's hook timeout in seconds, and the `--max-secs` it exits 0 at (before the
/// client would kill it); the next Stop starts a new one.
pub const WAITER_TIMEOUT: u32 = 86_400;
pub const WAITER_MAX_SECS: u32 = WAITER_TIMEOUT - 60;

/// The waiter's hook entry.
pub fn waiter_entry(bin: &str) -> Value {
    json!({
        "type": "command",
        "command": bin,
        "args": ["wait", "--max-secs", WAITER_MAX_SECS.to_string()],
        "timeout": WAITER_TIMEOUT,
        "asyncRewake": true,
        "rewakeMessage": "[orchestrator] mail arrived for this session while it was idle:",
        "rewakeSummary": "orchestrator: new message"
    })
}

/// One hook entry running `<bin> hook <event>` without a shell.
pub fn hook_entry(bin: &str, event: &str, timeout: u32) -> Value {
    json!({"type": "command", "command": bin, "args": ["hook", event], "timeout": timeout})
}

/// The `hooks` object for `bin`.
pub fn hooks_object(bin: &str) -> Value {
    let mut hooks = serde_json::Map::new();
    for (event, matcher, timeout) in WIRING {
        let mut group = serde_json::Map::new();
        if let Some(m) = matcher {
            group.insert("matcher".into(), json!(m));
        }
        let mut entries = vec![hook_entry(bin, event, *timeout)];
        if WAITER_EVENTS.contains(event) {
            entries.push(waiter_entry(bin));
        }
        group.insert("hooks".into(), Value::Array(entries));
        hooks.insert((*event).into(), json!([Value::Object(group)]));
    }
    Value::Object(hooks)
}

/// The `mcpServers` entry for `bin`.
pub fn mcp_server(bin: &str) -> Value {
    json!({"command": bin, "args": ["serve"]})
}

/// True when a hook entry is one of ours (any path to a binary named orchestrator).
pub fn is_our_hook(entry: &Value) -> bool {
    let cmd = entry.get("command").and_then(Value::as_str).unwrap_or("");
    let first_arg = entry
        .get("args")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str);
    (cmd.ends_with("/orchestrator") || cmd == "orchestrator")
        && matches!(first_arg, Some("hook" | "wait"))
        || cmd.contains("orchestrator hook ")
        || cmd.contains("orchestrator wait")
}

/// True when an `mcpServers` entry runs `orchestrator serve` (any path to it).
pub fn is_our_mcp_server(entry: &Value) -> bool {
    let cmd = entry.get("command").and_then(Value::as_str).unwrap_or("");
    let first_arg = entry
        .get("args")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str);
    (cmd.ends_with("/orchestrator") || cmd == "orchestrator") && first_arg == Some("serve")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_hooks_json_matches_the_wiring() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/plugin/hooks/hooks.json");
        let text = std::fs::read_to_string(path).expect("plugin/hooks/hooks.json exists");
        let v: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(
            v["hooks"],
            hooks_object("${CLAUDE_PLUGIN_ROOT}/bin/orchestrator")
        );
        for (event, _, _) in WIRING {
            assert!(
                crate::hooks::EVENTS.contains(event),
                "{event} is wired but not handled"
            );
        }
    }
}
