//! OpenAI's Codex CLI: Claude Code's events and envelope almost 1:1, but file edits
//! arrive as `apply_patch` with the patch text in `tool_input.command`, and a PreToolUse
//! answer may not ask (Codex rejects `permissionDecision: "ask"`), so a question becomes
//! a refusal that says what to ask.

use super::{context_of, hook_specific, Adapter};
use crate::core::identity::AgentCli;
use crate::hooks::Envelope;
use serde_json::Value;

/// Codex's events and the handler each runs.
pub const EVENTS: &[(&str, &str)] = &[
    ("SessionStart", "SessionStart"),
    ("UserPromptSubmit", "UserPromptSubmit"),
    ("PreToolUse", "PreToolUse"),
    ("PermissionRequest", "PermissionRequest"),
    ("PostToolUse", "PostToolUse"),
    ("PreCompact", "PreCompact"),
    ("PostCompact", "PostCompact"),
    ("Stop", "Stop"),
    ("StopFailure", "StopFailure"),
    ("SessionEnd", "SessionEnd"),
];

/// Events whose answer Codex reads `hookSpecificOutput` from.
const ANSWERED: &[&str] = &[
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
];

/// Most paths taken from one patch (a payload is at most 1 MiB anyway).
const MAX_PATHS: usize = 1000;

pub struct Codex;

/// Every path a Codex patch adds, updates, deletes or moves to, in order, once each.
pub fn patch_paths(patch: &str) -> Vec<String> {
    const MARKERS: [&str; 4] = [
        "*** Add File:",
        "*** Update File:",
        "*** Delete File:",
        "*** Move to:",
    ];
    let mut out: Vec<String> = Vec::new();
    for line in patch.lines() {
        let line = line.trim();
        let Some(path) = MARKERS.iter().find_map(|m| line.strip_prefix(m)) else {
            continue;
        };
        let path = path.trim();
        if path.is_empty() || out.iter().any(|p| p == path) {
            continue;
        }
        out.push(path.to_string());
        if out.len() >= MAX_PATHS {
            break;
        }
    }
    out
}

/// The patch text of an `apply_patch` call, wherever this version put it.
fn patch_text(input: &Value) -> Option<&str> {
    input.as_str().or_else(|| {
        ["command", "patch", "input"]
            .iter()
            .find_map(|k| input.get(*k).and_then(Value::as_str))
    })
}

impl Adapter for Codex {
    fn cli(&self) -> AgentCli {
        AgentCli::Codex
    }

    fn event(&self, raw: &str) -> Option<&'static str> {
        EVENTS.iter().find(|(r, _)| *r == raw).map(|(_, e)| *e)
    }

    fn edits(&self, tool: &str, input: &Value) -> Option<Vec<String>> {
        match tool {
            "apply_patch" => Some(patch_text(input).map(patch_paths).unwrap_or_default()),
            // `apply_patch <<'EOF' … EOF` through the shell is the same edit.
            "Bash" => {
                let cmd = input.get("command").and_then(Value::as_str)?;
                if !cmd.contains("*** Begin Patch") {
                    return None;
                }
                Some(patch_paths(cmd)).filter(|p| !p.is_empty())
            }
            _ => None,
        }
    }

    fn is_shell(&self, tool: &str) -> bool {
        tool == "Bash"
    }

    fn answer(&self, env: &Envelope, event: &str, _raw: &str) -> Option<Value> {
        if !ANSWERED.contains(&event) {
            return None;
        }
        let decision = env.decision.as_ref().map(|(d, r)| match *d {
            "ask" => (
                "deny",
                format!(
                    "{r} (Codex cannot ask the person from a hook, so this was refused: \
                     ask them, and if they agree they can run it themselves.)"
                ),
            ),
            d => (d, r.clone()),
        });
        hook_specific(
            event,
            context_of(env),
            decision.as_ref().map(|(d, r)| (*d, r.as_str())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_of_a_patch() {
        let patch =
            "*** Begin Patch\n*** Add File: src/new.rs\n+fn a() {}\n*** Update File: src/lib.rs\n\
                     *** Move to: src/core/lib.rs\n@@\n-old\n+new\n*** Delete File: docs/old.md\n\
                     *** Update File: src/lib.rs\n@@\n+*** Add File: not/a/marker\n*** End Patch\n";
        assert_eq!(
            patch_paths(patch),
            vec!["src/new.rs", "src/lib.rs", "src/core/lib.rs", "docs/old.md"]
        );
        assert!(patch_paths("no patch here").is_empty());
        let c = Codex;
        assert_eq!(
            c.edits("apply_patch", &serde_json::json!({"command": patch}))
                .map(|v| v.len()),
            Some(4)
        );
        assert_eq!(c.edits("Bash", &serde_json::json!({"command": "ls"})), None);
        assert_eq!(
            c.edits(
                "Bash",
                &serde_json::json!({"command": format!("apply_patch <<'EOF'\n{patch}EOF")})
            )
            .map(|v| v.len()),
            Some(4)
        );
        assert_eq!(
            c.edits("Write", &serde_json::json!({"file_path": "a"})),
            None
        );
    }

    #[test]
    fn ask_becomes_a_refusal_with_the_question() {
        let env = Envelope {
            decision: Some(("ask", "[orchestrator] sibling edit warning".into())),
            ..Default::default()
        };
        let v = Codex
            .answer(&env, "PreToolUse", "PreToolUse")
            .expect("answer");
        assert_eq!(v["hookSpecificOutput"]["permissionDecision"], "deny");
        let reason = v["hookSpecificOutput"]["permissionDecisionReason"]
            .as_str()
            .unwrap_or("");
        assert!(
            reason.starts_with("[orchestrator] sibling edit warning"),
            "{reason}"
        );
        assert!(Codex
            .answer(&env, "PermissionRequest", "PermissionRequest")
            .is_none());
    }
}
