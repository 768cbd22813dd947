//! Reading and validating the hook JSON Claude Code writes to stdin.

use crate::core::identity::SessionId;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::io::Read;

/// Largest payload accepted (a Write of a big file can carry its whole content).
pub const MAX_PAYLOAD: u64 = 1024 * 1024;

/// The fields any handler uses; unknown fields are ignored.
#[derive(Debug, Deserialize, Default)]
pub struct HookInput {
    pub session_id: Option<String>,
    pub hook_event_name: Option<String>,
    pub cwd: Option<String>,
    pub source: Option<String>,
    pub prompt: Option<String>,
    pub tool_name: Option<String>,
    #[serde(default)]
    pub tool_input: serde_json::Value,
    pub reason: Option<String>,
    /// SessionStart: the title the client gave the session, if any.
    pub session_title: Option<String>,
    /// `default`, `acceptEdits`, `plan`, `bypassPermissions`, ... (all events but
    /// SessionStart/SessionEnd). Only reported, so a value of another type is ignored
    /// rather than failing the hook (see [`HookInput::permission_mode`]).
    #[serde(default, rename = "permission_mode")]
    pub permission_mode_raw: serde_json::Value,
    /// Codex CLI only: the turn a hook belongs to (a hint of who is asking).
    pub turn_id: Option<serde_json::Value>,
    /// Pre/PostToolUse: pairs a tool call's two hooks (the Bash ledger's window key).
    pub tool_use_id: Option<String>,
}

/// Reads at most [`MAX_PAYLOAD`] bytes from `r` and parses them.
pub fn read(r: impl Read) -> Result<HookInput> {
    let mut buf = Vec::new();
    r.take(MAX_PAYLOAD + 1)
        .read_to_end(&mut buf)
        .context("cannot read hook input from stdin")?;
    if buf.len() as u64 > MAX_PAYLOAD {
        bail!("hook input exceeds 1 MiB; payload ignored (nothing was recorded)");
    }
    parse(&buf)
}

/// Parses a payload; errors name what is wrong.
pub fn parse(buf: &[u8]) -> Result<HookInput> {
    if buf.iter().all(u8::is_ascii_whitespace) {
        bail!("hook input is empty: expected Claude Code's hook JSON on stdin");
    }
    let v: serde_json::Value = serde_json::from_slice(buf).map_err(|e| {
        anyhow::anyhow!(
            "hook input is not valid JSON ({e}); expected Claude Code's hook JSON on stdin"
        )
    })?;
    if !v.is_object() {
        bail!("hook input is JSON but not an object; expected Claude Code's hook JSON on stdin");
    }
    serde_json::from_value(v)
        .map_err(|e| anyhow::anyhow!("hook input has a field of the wrong type ({e})"))
}

impl HookInput {
    /// The payload's session id, validated (never used in a path otherwise).
    pub fn session(&self) -> Result<SessionId> {
        let raw = self
            .session_id
            .as_deref()
            .context("hook input has no session_id; is this hook wired to a coding-agent CLI (Claude Code, Codex, Gemini)?")?;
        SessionId::parse(raw).map_err(|e| anyhow::anyhow!("hook input rejected: {e}"))
    }

    /// The permission mode the client reports, if it is a string.
    pub fn permission_mode(&self) -> Option<&str> {
        self.permission_mode_raw.as_str()
    }

    /// The file a Write/Edit/MultiEdit/NotebookEdit is about to touch.
    pub fn file_path(&self) -> Option<&str> {
        ["file_path", "notebook_path", "path"]
            .iter()
            .find_map(|k| self.tool_input.get(*k).and_then(|v| v.as_str()))
            .filter(|s| !s.is_empty())
    }
}
