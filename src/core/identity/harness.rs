//! The harness's own record of a live claude process: `~/.claude/sessions/<pid>.json`.
//!
//! Observed, not documented: read defensively (size cap, unknown fields ignored, id
//! validated) and reject a file older than the process (it belongs to a reused pid).

use super::anchor::older_than;
use super::process::ProcInfo;
use super::session_id::SessionId;
use std::fs;
use std::io::Read;
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

/// The session id the harness recorded for `pid`, if the file is present, sane and fresh.
pub fn read_session_file(dir: &std::path::Path, pid: i32, proc: &ProcInfo) -> Option<SessionId> {
    let path = dir.join(format!("{pid}.json"));
    let mut f = fs::File::open(&path).ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() || meta.len() > MAX_BYTES {
        return None;
    }
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis() as i64;
    if older_than(mtime, proc.start_unix_ms) {
        return None;
    }
    let mut text = String::new();
    f.read_to_string(&mut text).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    if let Some(recorded) = v.get("pid").and_then(|p| p.as_i64()) {
        if recorded != pid as i64 {
            return None;
        }
    }
    SessionId::parse(v.get("sessionId")?.as_str()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        fs::write(tmp.path().join("12.json"), "not json")?;
        assert_eq!(read_session_file(tmp.path(), 12, &fresh), None);
        assert_eq!(read_session_file(tmp.path(), 13, &fresh), None);
        Ok(())
    }
}
