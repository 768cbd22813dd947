//! The harness's own record of a live claude process: `~/.claude/sessions/<pid>.json`.
//!
//! Observed, not documented: read defensively (size cap, unknown fields ignored, id
//! validated) and reject a file older than the process (it belongs to a reused pid).

use super::anchor::older_than;
use super::process::ProcInfo;
use super::session_id::SessionId;
use crate::core::private_fs;
use std::path::PathBuf;

const MAX_BYTES: u64 = 64 * 1024;

/// `$CLAUDE_CONFIG_DIR/sessions`, else `$HOME/.claude/sessions`.
pub fn sessions_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("CLAUDE_CONFIG_DIR").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(d).join("sessions"));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| PathBuf::from(h).join(".claude").join("sessions"))
}

/// What the harness's file says about a live claude process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HarnessFile {
    pub session_id: Option<SessionId>,
    /// `messagingSocketPath`: the session's doorbell (not yet validated).
    pub messaging_socket: Option<String>,
    /// `status`: `idle` or `busy` (anything else is dropped).
    pub status: Option<String>,
}

/// The session id the harness recorded for `pid`, if the file is present, sane and fresh.
pub fn read_session_file(dir: &std::path::Path, pid: i32, proc: &ProcInfo) -> Option<SessionId> {
    read_harness_file(dir, pid, proc)?.session_id
}

/// The harness's file for `pid`, if present, sane and fresh.
pub fn read_harness_file(dir: &std::path::Path, pid: i32, proc: &ProcInfo) -> Option<HarnessFile> {
    let path = dir.join(format!("{pid}.json"));
    // A FIFO or device here must not hang serve, claim or doctor: never block, never
    // follow a link, read at most the cap.
    let (bytes, meta) = private_fs::read_capped(&path, MAX_BYTES).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis() as i64;
    if older_than(mtime, proc.start_unix_ms) {
        return None;
    }
    let text = String::from_utf8(bytes).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    if let Some(recorded) = v.get("pid").and_then(|p| p.as_i64()) {
        if recorded != pid as i64 {
            return None;
        }
    }
    let text = |k: &str| v.get(k).and_then(|x| x.as_str());
    Some(HarnessFile {
        session_id: text("sessionId").and_then(|s| SessionId::parse(s).ok()),
        messaging_socket: text("messagingSocketPath")
            .filter(|p| !p.is_empty() && p.len() <= 4096)
            .map(str::to_string),
        status: text("status")
            .filter(|s| matches!(*s, "idle" | "busy"))
            .map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn reads_defensively() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let now = crate::core::clock::now_ms();
        let fresh = ProcInfo {
            start_ticks: 1,
            start_unix_ms: now - 60_000,
        };
        fs::write(
            tmp.path().join("10.json"),
            r#"{"pid":10,"sessionId":"abc-1","extra":{"x":1}}"#,
        )?;
        assert_eq!(
            read_session_file(tmp.path(), 10, &fresh).map(|s| s.to_string()),
            Some("abc-1".into())
        );
        // Process started after the file was written: the file belongs to a reused pid.
        let later = ProcInfo {
            start_ticks: 1,
            start_unix_ms: now + 60_000,
        };
        assert_eq!(read_session_file(tmp.path(), 10, &later), None);
        fs::write(tmp.path().join("11.json"), r#"{"sessionId":"../x"}"#)?;
        assert_eq!(read_session_file(tmp.path(), 11, &fresh), None);
        fs::write(
            tmp.path().join("15.json"),
            r#"{"pid":15,"sessionId":"abc-1","messagingSocketPath":"/tmp/cc-socks/15.sock","status":"idle"}"#,
        )?;
        let f = read_harness_file(tmp.path(), 15, &fresh);
        assert_eq!(
            f.as_ref().and_then(|f| f.messaging_socket.as_deref()),
            Some("/tmp/cc-socks/15.sock")
        );
        assert_eq!(f.and_then(|f| f.status).as_deref(), Some("idle"));
        fs::write(tmp.path().join("12.json"), "not json")?;
        assert_eq!(read_session_file(tmp.path(), 12, &fresh), None);
        assert_eq!(read_session_file(tmp.path(), 13, &fresh), None);
        // A FIFO with no writer would block a plain open forever.
        let fifo = std::ffi::CString::new(tmp.path().join("14.json").to_string_lossy().as_bytes())?;
        // SAFETY: valid path string; mkfifo has no other preconditions.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert_eq!(read_session_file(tmp.path(), 14, &fresh), None);
        Ok(())
    }
}
