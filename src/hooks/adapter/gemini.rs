//! Google's Gemini CLI: its own event names (BeforeAgent, BeforeTool, …), edits through
//! `write_file` / `replace` (`file_path`), shell through `run_shell_command`, and a
//! different answer: a refusal is `{"decision": "deny", "reason": …}` at the top level
//! (Claude Code's `permissionDecision` is ignored there and the write happens).
//!
//! BeforeTool does not read `additionalContext`, so a warning before an edit is kept as
//! a notice for this session and arrives with AfterTool, beside the tool's result.
//! BeforeAgent and AfterAgent never carry a decision: at BeforeAgent it would discard
//! the person's prompt, at AfterAgent it would make the model answer again.

use super::{context_of, Adapter};
use crate::core::identity::AgentCli;
use crate::hooks::{Ctx, Envelope};
use anyhow::Result;
use serde_json::{json, Value};

/// Gemini CLI's events and the handler each runs.
pub const EVENTS: &[(&str, &str)] = &[
    ("SessionStart", "SessionStart"),
    ("BeforeAgent", "UserPromptSubmit"),
    ("BeforeTool", "PreToolUse"),
    ("AfterTool", "PostToolUse"),
    ("AfterAgent", "Stop"),
    ("PreCompress", "PreCompact"),
    ("Notification", "Notification"),
    ("SessionEnd", "SessionEnd"),
];

/// File-writing tools, all naming their file in `file_path`.
pub const EDIT_TOOLS: &[&str] = &["write_file", "replace"];
/// The shell tool (`command`, optionally `dir_path`).
pub const SHELL_TOOL: &str = "run_shell_command";

/// Events where Gemini reads `hookSpecificOutput.additionalContext`.
const CONTEXT_EVENTS: &[&str] = &["SessionStart", "BeforeAgent", "AfterTool"];

pub struct Gemini;

/// Event names no other CLI sends.
pub fn only_gemini(raw: &str) -> bool {
    matches!(
        raw,
        "BeforeAgent"
            | "AfterAgent"
            | "BeforeTool"
            | "AfterTool"
            | "PreCompress"
            | "BeforeModel"
            | "AfterModel"
            | "BeforeToolSelection"
    )
}

impl Adapter for Gemini {
    fn cli(&self) -> AgentCli {
        AgentCli::Gemini
    }

    fn event(&self, raw: &str) -> Option<&'static str> {
        EVENTS.iter().find(|(r, _)| *r == raw).map(|(_, e)| *e)
    }

    fn edits(&self, tool: &str, input: &Value) -> Option<Vec<String>> {
        if !EDIT_TOOLS.contains(&tool) {
            return None;
        }
        Some(
            input
                .get("file_path")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .into_iter()
                .collect(),
        )
    }

    fn is_shell(&self, tool: &str) -> bool {
        tool == SHELL_TOOL
    }

    fn settle(&self, ctx: &mut Ctx, env: &mut Envelope) -> Result<()> {
        // BeforeTool drops additionalContext: keep a warning for AfterTool (a notice to
        // this session, delivered with the tool's result). A refusal carries its reason.
        if ctx.event == "PreToolUse" && env.decision.is_none() && !env.context.is_empty() {
            for block in env.context.drain(..) {
                let body = block.strip_prefix("[orchestrator] ").unwrap_or(&block);
                ctx.store
                    .add_notice(ctx.id.as_str(), &body.replace('\n', " "))?;
            }
        }
        Ok(())
    }

    fn answer(&self, env: &Envelope, _event: &str, raw: &str) -> Option<Value> {
        if raw == "BeforeTool" {
            if let Some((d, reason)) = env.decision.as_ref() {
                let mut out = json!({"decision": d, "reason": reason});
                if *d == "ask" {
                    // What the person is shown when Gemini asks them.
                    out["systemMessage"] = json!(reason);
                }
                return Some(out);
            }
        }
        if !CONTEXT_EVENTS.contains(&raw) {
            return None;
        }
        let context = context_of(env)?;
        Some(json!({
            "hookSpecificOutput": {"hookEventName": raw, "additionalContext": context}
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_is_a_top_level_decision() {
        let env = Envelope {
            decision: Some(("deny", "[orchestrator] claimed".into())),
            ..Default::default()
        };
        let v = Gemini
            .answer(&env, "PreToolUse", "BeforeTool")
            .expect("answer");
        assert_eq!(
            v,
            json!({"decision": "deny", "reason": "[orchestrator] claimed"})
        );
        assert!(v.get("hookSpecificOutput").is_none());
    }

    #[test]
    fn no_decision_where_it_would_drop_a_prompt_or_force_a_retry() {
        let mut env = Envelope {
            decision: Some(("deny", "x".into())),
            ..Default::default()
        };
        env.push("[orchestrator] roster");
        for raw in ["BeforeAgent", "AfterTool", "SessionStart"] {
            let v = Gemini.answer(&env, "", raw).expect("context");
            assert!(v.get("decision").is_none(), "{raw}: {v}");
            assert_eq!(
                v["hookSpecificOutput"]["additionalContext"],
                "[orchestrator] roster"
            );
        }
        for raw in ["AfterAgent", "SessionEnd", "PreCompress", "Notification"] {
            assert!(Gemini.answer(&env, "", raw).is_none(), "{raw}");
        }
    }

    #[test]
    fn edits_and_shell() {
        let g = Gemini;
        assert_eq!(
            g.edits(
                "write_file",
                &json!({"file_path": "/p/a.rs", "content": "x"})
            ),
            Some(vec!["/p/a.rs".to_string()])
        );
        assert_eq!(
            g.edits("replace", &json!({"file_path": "b.rs"}))
                .map(|v| v.len()),
            Some(1)
        );
        assert_eq!(g.edits("read_file", &json!({"file_path": "b.rs"})), None);
        assert!(g.is_shell("run_shell_command") && !g.is_shell("Bash"));
    }
}
