//! The hook's JSON answer. Context is capped at the client's 10,000-character limit.
//! Mail it carries is confirmed only once the answer is written.

use crate::core::store::messages::Lease;
use crate::core::store::Store;
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::io::Write;

/// The client drops context beyond this many characters.
pub const MAX_CONTEXT_CHARS: usize = 10_000;

/// What a handler wants to say; empty means print nothing at all.
#[derive(Debug, Default)]
pub struct Envelope {
    pub context: Vec<String>,
    /// PreToolUse only: `ask` or `deny`, with the reason shown to the model/person.
    pub decision: Option<(&'static str, String)>,
    /// The notices and messages `context` carries, leased until the answer is written.
    pub lease: Lease,
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

/// What a hook prints, and the store to confirm its deliveries in once it is printed.
/// Dropped unsent (an error, a panic), it releases them.
pub struct Answer {
    pub json: Option<Value>,
    pub delivered: Option<(Store, Lease)>,
}

impl Answer {
    /// The answer to `env`, holding on to `store` when it carries deliveries.
    pub fn new(env: Envelope, event: &str, store: Store) -> Self {
        let json = env.to_json(event);
        Self::with_json(json, env.lease, store)
    }

    /// The answer `json` (as a CLI's adapter wrote it), carrying the deliveries `lease`.
    pub fn with_json(json: Option<Value>, lease: Lease, store: Store) -> Self {
        let delivered = (!lease.is_empty()).then_some((store, lease));
        Self { json, delivered }
    }

    /// Writes and flushes the answer, then confirms the deliveries it carries; if the
    /// write fails they are released, due again for the next answer.
    pub fn send(mut self, out: &mut impl Write) -> Result<()> {
        let written = match &self.json {
            Some(json) => writeln!(out, "{json}").and_then(|_| out.flush()),
            None => Ok(()),
        };
        if let Some((mut store, lease)) = self.delivered.take() {
            match (&written, &self.json) {
                (Ok(()), Some(_)) => store.confirm(&lease, "hook").context(
                    "the answer was written but not recorded as delivered; its messages may be shown again",
                )?,
                // Should the release fail too, the lease lapses after LEASE_MS.
                _ => {
                    let _ = store.release(&lease);
                }
            }
        }
        written.context("cannot write the answer to stdout; its messages stay due")
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if let Some((mut store, lease)) = self.delivered.take() {
            // Best effort: a lease not released lapses after LEASE_MS anyway.
            let _ = store.release(&lease);
        }
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
