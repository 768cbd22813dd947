//! The hook's JSON answer. Context is capped at the client's 10,000-character limit.

use serde_json::{json, Value};

/// The client drops context beyond this many characters.
pub const MAX_CONTEXT_CHARS: usize = 10_000;

/// What a handler wants to say; empty means print nothing at all.
#[derive(Debug, Default)]
pub struct Envelope {
    pub context: Vec<String>,
    /// PreToolUse only: `ask` or `deny`, with the reason shown to the model/person.
    pub decision: Option<(&'static str, String)>,
}

impl Envelope {
    pub fn push(&mut self, block: impl Into<String>) {
        let b = block.into();
        if !b.trim().is_empty() {
            self.context.push(b.trim_end().to_string());
        }
    }

    /// The stdout JSON for `event`, or `None` when there is nothing to say.
    pub fn to_json(&self, event: &str) -> Option<Value> {
        if self.context.is_empty() && self.decision.is_none() {
            return None;
        }
        let mut hso = serde_json::Map::new();
        hso.insert("hookEventName".into(), json!(event));
        if !self.context.is_empty() {
            hso.insert(
                "additionalContext".into(),
                json!(cap(&self.context.join("\n\n"))),
            );
        }
        if let Some((d, reason)) = &self.decision {
            hso.insert("permissionDecision".into(), json!(d));
            hso.insert("permissionDecisionReason".into(), json!(reason));
        }
        Some(json!({ "hookSpecificOutput": hso }))
    }
}

/// Cuts `s` to the context cap, saying so, on a char boundary.
pub fn cap(s: &str) -> String {
    if s.chars().count() <= MAX_CONTEXT_CHARS {
        return s.to_string();
    }
    let note = "\n[orchestrator] (cut at 10,000 characters; call the `roster` or `inbox` tool for the rest)";
    let keep = MAX_CONTEXT_CHARS - note.chars().count();
    let mut out: String = s.chars().take(keep).collect();
    out.push_str(note);
    out
}
