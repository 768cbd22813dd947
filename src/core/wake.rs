//! Waking an idle recipient, per CLI. Claude Code has its doorbell (the session's
//! messaging socket, rung elsewhere); an idle Codex CLI session is woken natively by
//! `codex queue --thread <session id> --message <text>` (a new turn in 0.3–8 s, observed);
//! Gemini CLI has no native wake: its sessions get their mail at their next turn.
//!
//! `doorbell::plan` asks [`how`] for a recipient without a socket: a Codex session is rung
//! with [`wake_codex_with`] (the fixed notice only, claimed once per burst like a doorbell
//! ring); the hook on the turn it starts delivers the body.

use crate::core::identity::{AgentCli, SessionId};
use crate::core::store::SessionRow;
use crate::core::text;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a `codex queue` may run before it is killed (it normally hands the message
/// to the running session and exits).
pub const CODEX_QUEUE_LIMIT: Duration = Duration::from_secs(30);

/// How a session of some CLI is woken when mail arrives while it is idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Claude Code's cross-session doorbell (its messaging socket).
    Doorbell,
    /// `codex queue --thread <session id> --message <text>`.
    CodexQueue,
    /// No wake: the mail waits for the session's next turn (prompt or tool call).
    NextTurn,
}

/// The wake for a session whose row says it runs `cli` (unknown: Claude Code's doorbell,
/// which fails harmlessly where there is no socket).
pub fn how(cli: Option<&str>) -> Wake {
    match cli.and_then(AgentCli::parse) {
        Some(AgentCli::Codex) => Wake::CodexQueue,
        Some(AgentCli::Gemini) => Wake::NextTurn,
        Some(AgentCli::Claude) | None => Wake::Doorbell,
    }
}

/// What a sender is told about a queued message to a session of `cli`, where it differs
/// from "it will be woken".
pub fn delivery_note(cli: Option<&str>) -> Option<&'static str> {
    match how(cli) {
        Wake::NextTurn => Some(
            "Gemini CLI cannot be woken: the message arrives with its next turn (a prompt or a tool call)",
        ),
        _ => None,
    }
}

/// Rings an idle Codex CLI session: `codex queue --thread <session_id> --message <text>`,
/// with `codex` from PATH. Returns once the command started; it is reaped (and killed
/// after [`CODEX_QUEUE_LIMIT`]) in the background.
pub fn wake_codex(session_id: &str, text: &str) -> Result<()> {
    wake_codex_with(Path::new("codex"), session_id, text)
}

/// [`wake_codex`] for the session of `row`, with the very binary its agent process runs
/// when it is on this host (`/proc/<pid>/exe`), else `codex` from PATH.
pub fn wake_codex_for(row: &SessionRow, text: &str) -> Result<()> {
    wake_codex_with(&codex_program(row), &row.session_id, text)
}

/// The codex binary `row`'s agent process runs (`/proc/<pid>/exe`), else `codex`.
pub fn codex_program(row: &SessionRow) -> PathBuf {
    row.local_agent()
        .and_then(|a| std::fs::read_link(format!("/proc/{}/exe", a.pid)).ok())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("codex"))
        })
        .unwrap_or_else(|| PathBuf::from("codex"))
}

/// [`wake_codex`] with `program` as the codex binary.
pub fn wake_codex_with(program: &Path, session_id: &str, text: &str) -> Result<()> {
    let id = SessionId::parse(session_id).map_err(|e| anyhow::anyhow!("cannot wake: {e}"))?;
    // One line, no control characters; `=` forms so a leading `-` is never an option.
    let text = text::inline(text, text::LINE);
    let mut child = Command::new(program)
        .arg("queue")
        .arg(format!("--thread={id}"))
        .arg(format!("--message={text}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {} queue", program.display()))?;
    std::thread::spawn(move || {
        let deadline = Instant::now() + CODEX_QUEUE_LIMIT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cli_has_its_wake() {
        assert_eq!(how(Some("codex")), Wake::CodexQueue);
        assert_eq!(how(Some("gemini")), Wake::NextTurn);
        assert_eq!(how(Some("claude")), Wake::Doorbell);
        assert_eq!(how(None), Wake::Doorbell);
        assert!(delivery_note(Some("gemini")).is_some());
        assert!(delivery_note(Some("codex")).is_none());
    }

    #[test]
    fn codex_queue_gets_the_thread_and_one_line() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let out = dir.path().join("args");
        let fake = dir.path().join("codex");
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > {}.tmp\nmv {}.tmp {}\n",
                out.display(),
                out.display(),
                out.display()
            ),
        )?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755))?;
        // Another test thread forking while the script was open for writing makes it
        // briefly busy (ETXTBSY): try again.
        let mut tries = 0;
        while let Err(e) = wake_codex_with(&fake, "019a8f3c-7b2e", "-you have\nmail") {
            tries += 1;
            assert!(tries < 200, "{e:#}");
            std::thread::sleep(Duration::from_millis(10));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !out.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let args = std::fs::read_to_string(&out)?;
        assert_eq!(
            args.lines().collect::<Vec<_>>(),
            vec![
                "queue",
                "--thread=019a8f3c-7b2e",
                "--message=-you have mail"
            ]
        );
        assert!(wake_codex_with(&fake, "../etc", "x").is_err());
        Ok(())
    }
}
