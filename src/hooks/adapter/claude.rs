//! Claude Code: the handlers' own event names and answer envelope.

use super::{context_of, hook_specific, Adapter};
use crate::core::identity::AgentCli;
use crate::hooks::Envelope;
use serde_json::Value;

/// Claude Code's events and the handler each runs (its own name).
pub const EVENTS: &[(&str, &str)] = &[
    ("SessionStart", "SessionStart"),
    ("UserPromptSubmit", "UserPromptSubmit"),
    ("PreToolUse", "PreToolUse"),
    ("PostToolUse", "PostToolUse"),
    ("PermissionRequest", "PermissionRequest"),
    ("Stop", "Stop"),
    ("StopFailure", "StopFailure"),
    ("SubagentStop", "SubagentStop"),
    ("PreCompact", "PreCompact"),
    ("PostCompact", "PostCompact"),
    ("Notification", "Notification"),
    ("SessionEnd", "SessionEnd"),
];

/// Tools that write files and so enter the ledger.
pub const EDIT_TOOLS: &[&str] = &["Write", "Edit", "MultiEdit", "NotebookEdit"];

pub struct Claude;

/// The file a Write/Edit/MultiEdit/NotebookEdit names.
pub fn file_path(input: &Value) -> Option<String> {
    ["file_path", "notebook_path", "path"]
        .iter()
        .find_map(|k| input.get(*k).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl Adapter for Claude {
    fn cli(&self) -> AgentCli {
        AgentCli::Claude
    }

    fn event(&self, raw: &str) -> Option<&'static str> {
        EVENTS.iter().find(|(r, _)| *r == raw).map(|(_, e)| *e)
    }

    fn edits(&self, tool: &str, input: &Value) -> Option<Vec<String>> {
        if !EDIT_TOOLS.contains(&tool) {
            return None;
        }
        Some(file_path(input).into_iter().collect())
    }

    fn is_shell(&self, tool: &str) -> bool {
        tool == "Bash"
    }

    fn answer(&self, env: &Envelope, event: &str, _raw: &str) -> Option<Value> {
        hook_specific(
            event,
            context_of(env),
            env.decision.as_ref().map(|(d, r)| (*d, r.as_str())),
        )
    }
}
