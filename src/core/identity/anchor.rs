//! Identity anchors: `active-session-<pid>` files naming the session an agent process runs.
//!
//! Current format (one JSON line) records the pid's start time so a reused pid is detected;
//! the legacy format is a bare session id, judged by file age against the process.

use super::process::Probe;
use super::session_id::SessionId;
use super::AgentProcess;
use crate::core::clock;
use crate::core::paths::{ProjectPaths, ANCHOR_PREFIX};
use crate::core::private_fs;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Largest anchor file read; anything bigger is corrupt by definition.
const MAX_ANCHOR_BYTES: u64 = 4096;
/// Slack for comparing file times against process start (boot time has 1 s resolution).
const START_SLACK_MS: i64 = 1500;

/// What an anchor file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorContent {
    Current {
        session_id: SessionId,
        pid: i32,
        pid_start_ticks: u64,
    },
    Legacy {
        session_id: SessionId,
    },
}

impl AnchorContent {
    pub fn session_id(&self) -> &SessionId {
        match self {
            Self::Current { session_id, .. } | Self::Legacy { session_id } => session_id,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct AnchorJson {
    session_id: String,
    pid: i32,
    pid_start_ticks: u64,
    written_at: String,
}

/// Why an anchor cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaleReason {
    DeadPid,
    StartTimeMismatch { recorded: u64, actual: u64 },
    OlderThanProcess,
    PidMismatch { file_pid: i32, content_pid: i32 },
}

impl std::fmt::Display for StaleReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DeadPid => write!(f, "its process is not running"),
            Self::StartTimeMismatch { recorded, actual } => write!(
                f,
                "pid was reused (recorded start {recorded}, running process started {actual})"
            ),
            Self::OlderThanProcess => {
                write!(f, "file is older than the process it names (pid reused)")
            }
            Self::PidMismatch {
                file_pid,
                content_pid,
            } => write!(
                f,
                "file is named for pid {file_pid} but records pid {content_pid}"
            ),
        }
    }
}

/// The pid in an anchor file name, or `None` for any other file (including pid <= 0).
pub fn parse_anchor_name(name: &str) -> Option<i32> {
    let digits = name.strip_prefix(ANCHOR_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i32>().ok().filter(|p| *p > 0)
}

/// Writes `active-session-<pid>` atomically (temp file + rename) in the current format.
pub fn write_anchor(paths: &ProjectPaths, id: &SessionId, agent: &AgentProcess) -> Result<()> {
    let body = serde_json::to_string(&AnchorJson {
        session_id: id.to_string(),
        pid: agent.pid,
        pid_start_ticks: agent.start_ticks,
        written_at: clock::iso(clock::now_ms()),
    })?;
    write_atomic(&paths.anchor_path(agent.pid), body.as_bytes())
}

/// Writes the legacy single `active-session` file (bare id) atomically — unless it
/// already says exactly that and is younger than `agent` (its age is what readers judge
/// it by): replacing a file by rename makes the filesystem flush it, and this runs at
/// every session start.
pub fn write_legacy(
    paths: &ProjectPaths,
    id: &SessionId,
    agent: Option<&AgentProcess>,
) -> Result<()> {
    let path = paths.legacy_anchor_path();
    let body = format!("{id}\n");
    let started = agent.map_or(0, |a| super::process::start_unix_ms(a.start_ticks));
    let current = private_fs::read_capped(&path, MAX_ANCHOR_BYTES).is_ok_and(|(b, meta)| {
        b == body.as_bytes()
            && meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .is_some_and(|t| !older_than(t.as_millis() as i64, started))
    });
    if current {
        return Ok(());
    }
    write_atomic(&path, body.as_bytes())
}

fn write_atomic(path: &Path, body: &[u8]) -> Result<()> {
    private_fs::write_atomic(path, body)
}

/// Reads an anchor without following a symlink or blocking on a FIFO; returns the content
/// and the file's mtime.
pub fn read_anchor(path: &Path) -> Result<(AnchorContent, i64)> {
    let (bytes, meta) = private_fs::read_capped(path, MAX_ANCHOR_BYTES)
        .with_context(|| format!("cannot read anchor {}", path.display()))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let text = String::from_utf8(bytes)
        .with_context(|| format!("anchor {} is not UTF-8", path.display()))?;
    Ok((parse_anchor(&text)?, mtime))
}

/// Parses either format; the error says the anchor is corrupt and that `gc` removes it.
pub fn parse_anchor(text: &str) -> Result<AnchorContent> {
    let t = text.trim();
    if t.starts_with('{') {
        let j: AnchorJson = serde_json::from_str(t)
            .context("corrupt anchor (bad JSON); `orchestrator gc` removes it")?;
        let session_id = SessionId::parse(&j.session_id).map_err(anyhow::Error::msg)?;
        return Ok(AnchorContent::Current {
            session_id,
            pid: j.pid,
            pid_start_ticks: j.pid_start_ticks,
        });
    }
    let session_id = SessionId::parse(t)
        .map_err(|e| anyhow::anyhow!("corrupt legacy anchor: {e}; `orchestrator gc` removes it"))?;
    Ok(AnchorContent::Legacy { session_id })
}

/// Judges a per-pid anchor named for `file_pid` against the running process table.
pub fn judge(
    file_pid: i32,
    content: &AnchorContent,
    mtime_ms: i64,
    probe: &dyn Probe,
) -> std::result::Result<(), StaleReason> {
    let Some(live) = probe.process(file_pid) else {
        return Err(StaleReason::DeadPid);
    };
    match content {
        AnchorContent::Current {
            pid,
            pid_start_ticks,
            ..
        } => {
            if *pid != file_pid {
                return Err(StaleReason::PidMismatch {
                    file_pid,
                    content_pid: *pid,
                });
            }
            if *pid_start_ticks != live.start_ticks {
                return Err(StaleReason::StartTimeMismatch {
                    recorded: *pid_start_ticks,
                    actual: live.start_ticks,
                });
            }
            Ok(())
        }
        AnchorContent::Legacy { .. } => {
            if mtime_ms + START_SLACK_MS < live.start_unix_ms {
                Err(StaleReason::OlderThanProcess)
            } else {
                Ok(())
            }
        }
    }
}

/// True when a file with `mtime_ms` predates a process started at `start_unix_ms`.
pub fn older_than(mtime_ms: i64, start_unix_ms: i64) -> bool {
    mtime_ms + START_SLACK_MS < start_unix_ms
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::identity::ProcInfo;
    use std::collections::HashMap;

    struct FakeProbe(HashMap<i32, ProcInfo>);
    impl Probe for FakeProbe {
        fn process(&self, pid: i32) -> Option<ProcInfo> {
            self.0.get(&pid).copied()
        }
    }

    #[test]
    fn names() {
        assert_eq!(parse_anchor_name("active-session-123"), Some(123));
        for n in [
            "active-session",
            "active-session-",
            "active-session-0",
            "active-session--4",
            "active-session-foo",
            "active-session-12a",
            "other",
        ] {
            assert_eq!(parse_anchor_name(n), None, "{n}");
        }
    }

    #[test]
    fn judges_both_formats() {
        let id = SessionId::parse("abc").expect("valid");
        let probe = FakeProbe(HashMap::from([(
            7,
            ProcInfo {
                start_ticks: 50,
                start_unix_ms: 100_000,
            },
        )]));
        let cur = |ticks| AnchorContent::Current {
            session_id: id.clone(),
            pid: 7,
            pid_start_ticks: ticks,
        };
        assert_eq!(judge(7, &cur(50), 0, &probe), Ok(()));
        assert!(matches!(
            judge(7, &cur(49), 0, &probe),
            Err(StaleReason::StartTimeMismatch { .. })
        ));
        assert_eq!(judge(8, &cur(50), 0, &probe), Err(StaleReason::DeadPid));
        let leg = AnchorContent::Legacy { session_id: id };
        assert_eq!(judge(7, &leg, 100_500, &probe), Ok(()));
        assert_eq!(
            judge(7, &leg, 10_000, &probe),
            Err(StaleReason::OlderThanProcess)
        );
    }

    #[test]
    fn parses_and_rejects() {
        assert!(matches!(
            parse_anchor("abc-123\n"),
            Ok(AnchorContent::Legacy { .. })
        ));
        assert!(parse_anchor("../../etc/passwd").is_err());
        assert!(parse_anchor("{not json").is_err());
        assert!(parse_anchor("").is_err());
    }
}
