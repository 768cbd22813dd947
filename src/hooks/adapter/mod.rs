//! One adapter per coding-agent CLI at the hook boundary. Each says which of its events
//! stands for which handler (Claude Code's event names are the handlers' names), which
//! tool calls write which files, which tools run shell commands, and how an answer is
//! written so that CLI honours it. Behind the adapters every CLI is handled alike:
//! claims, touches, overlap and hazard warnings do not know which CLI asked.

mod claude;
mod codex;
mod gemini;

pub use codex::patch_paths;

use super::{Ctx, Envelope, HookInput};
use crate::core::identity::AgentCli;
use anyhow::Result;
use serde_json::Value;

/// What differs between the CLIs at the hook boundary.
pub trait Adapter: Sync {
    fn cli(&self) -> AgentCli;

    /// The handler event (a Claude Code event name) this CLI's `raw` event stands for;
    /// `None` when this CLI has no such event.
    fn event(&self, raw: &str) -> Option<&'static str>;

    /// The files `tool` is about to write, as the tool names them (relative to the
    /// session's cwd or absolute); `None` when the tool is not a file edit.
    fn edits(&self, tool: &str, input: &Value) -> Option<Vec<String>>;

    /// Whether `tool` runs a shell command (`tool_input.command`): the Bash ledger and
    /// checkout hazards apply.
    fn is_shell(&self, tool: &str) -> bool;

    /// Reshapes a handler's envelope into what this CLI reads, before it is written
    /// (e.g. context a CLI drops at this event is kept for the next one).
    fn settle(&self, _ctx: &mut Ctx, _env: &mut Envelope) -> Result<()> {
        Ok(())
    }

    /// The stdout JSON answering `raw` (handled as `event`), or `None` for nothing.
    fn answer(&self, env: &Envelope, event: &str, raw: &str) -> Option<Value>;
}

/// The adapter for `cli`.
pub fn of(cli: AgentCli) -> &'static dyn Adapter {
    match cli {
        AgentCli::Claude => &claude::Claude,
        AgentCli::Codex => &codex::Codex,
        AgentCli::Gemini => &gemini::Gemini,
    }
}

/// Every event name some CLI sends, for error messages.
pub fn known_events() -> Vec<&'static str> {
    let mut all: Vec<&'static str> = Vec::new();
    for names in [claude::EVENTS, codex::EVENTS, gemini::EVENTS] {
        for (raw, _) in names {
            if !all.contains(raw) {
                all.push(raw);
            }
        }
    }
    all
}

/// Which CLI is asking, strongest evidence first: the installed hook command says so
/// (`--agent`); an event name only Gemini CLI sends; the agent process above the hook;
/// Gemini's hook environment (`GEMINI_SESSION_ID`); a Codex-only payload field
/// (`turn_id`); else Claude Code.
pub fn detect(
    raw_event: &str,
    explicit: Option<AgentCli>,
    input: &HookInput,
    agent: Option<AgentCli>,
) -> AgentCli {
    if let Some(c) = explicit {
        return c;
    }
    if gemini::only_gemini(raw_event) {
        return AgentCli::Gemini;
    }
    if let Some(c) = agent {
        return c;
    }
    if std::env::var_os("GEMINI_SESSION_ID").is_some_and(|v| !v.is_empty()) {
        return AgentCli::Gemini;
    }
    if input.turn_id.as_ref().is_some_and(|t| !t.is_null()) {
        return AgentCli::Codex;
    }
    AgentCli::Claude
}

/// Claude Code's answer envelope (Codex reads the same one): `hookSpecificOutput` with
/// `additionalContext` and, for PreToolUse, `permissionDecision` + reason.
pub fn hook_specific(
    event: &str,
    context: Option<String>,
    decision: Option<(&str, &str)>,
) -> Option<Value> {
    if context.is_none() && decision.is_none() {
        return None;
    }
    let mut hso = serde_json::Map::new();
    hso.insert("hookEventName".into(), Value::from(event));
    if let Some(c) = context {
        hso.insert("additionalContext".into(), Value::from(c));
    }
    if let Some((d, reason)) = decision {
        hso.insert("permissionDecision".into(), Value::from(d));
        hso.insert("permissionDecisionReason".into(), Value::from(reason));
    }
    Some(serde_json::json!({ "hookSpecificOutput": hso }))
}

/// The envelope's context as one capped string, if any.
pub fn context_of(env: &Envelope) -> Option<String> {
    (!env.context.is_empty()).then(|| super::output::cap(&env.context.join("\n\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cli_maps_its_events_to_handled_ones() {
        for cli in AgentCli::ALL {
            let a = of(cli);
            assert_eq!(a.cli(), cli);
            for raw in known_events() {
                if let Some(e) = a.event(raw) {
                    assert!(super::super::EVENTS.contains(&e), "{cli}: {raw} -> {e}");
                }
            }
        }
        assert_eq!(of(AgentCli::Gemini).event("BeforeTool"), Some("PreToolUse"));
        assert_eq!(
            of(AgentCli::Gemini).event("BeforeAgent"),
            Some("UserPromptSubmit")
        );
        assert_eq!(of(AgentCli::Gemini).event("AfterAgent"), Some("Stop"));
        assert_eq!(of(AgentCli::Gemini).event("PreToolUse"), None);
        assert_eq!(
            of(AgentCli::Codex).event("PermissionRequest"),
            Some("PermissionRequest")
        );
        assert_eq!(of(AgentCli::Claude).event("BeforeTool"), None);
    }

    #[test]
    fn detection_prefers_what_is_certain() {
        let plain = HookInput::default();
        let codexish = HookInput {
            turn_id: Some(serde_json::json!("t1")),
            ..Default::default()
        };
        assert_eq!(
            detect("BeforeTool", None, &plain, Some(AgentCli::Claude)),
            AgentCli::Gemini
        );
        assert_eq!(
            detect(
                "PreToolUse",
                Some(AgentCli::Codex),
                &plain,
                Some(AgentCli::Claude)
            ),
            AgentCli::Codex
        );
        assert_eq!(
            detect("PreToolUse", None, &plain, Some(AgentCli::Codex)),
            AgentCli::Codex
        );
        assert_eq!(
            detect("PreToolUse", None, &codexish, Some(AgentCli::Claude)),
            AgentCli::Claude
        );
    }
}
