//! Ranks identity evidence and picks the session id, reporting how strong the pick is.

use super::anchor;
use super::process::Probe;
use super::session_id::SessionId;
use super::{harness, AgentProcess};
use crate::core::paths::ProjectPaths;
use std::path::PathBuf;

/// Where an id came from, weakest first. Below [`Evidence::HarnessFile`] a binding is
/// provisional: a later hook or tool call may move it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Evidence {
    Legacy = 1,
    PidAnchor = 2,
    HarnessFile = 3,
    Environment = 4,
    Explicit = 5,
}

impl Evidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Legacy => "legacy-anchor",
            Self::PidAnchor => "pid-anchor",
            Self::HarnessFile => "harness-session-file",
            Self::Environment => "environment",
            Self::Explicit => "explicit",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Legacy,
            Self::PidAnchor,
            Self::HarnessFile,
            Self::Environment,
            Self::Explicit,
        ]
        .into_iter()
        .find(|e| e.as_str() == s)
    }

    /// Anchors are guesses about the past; anything from them may be wrong now.
    pub fn is_provisional(self) -> bool {
        self <= Self::PidAnchor
    }
}

/// A resolved id with the evidence behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub id: SessionId,
    pub evidence: Evidence,
}

/// Everything the resolver may look at; tests fill it by hand.
pub struct Inputs<'a> {
    pub explicit: Option<&'a str>,
    pub env_id: Option<String>,
    pub agent: Option<AgentProcess>,
    pub paths: &'a ProjectPaths,
    pub harness_dir: Option<PathBuf>,
    pub probe: &'a dyn Probe,
}

impl<'a> Inputs<'a> {
    /// Inputs from this process's environment.
    pub fn from_env(
        explicit: Option<&'a str>,
        agent: Option<AgentProcess>,
        paths: &'a ProjectPaths,
        probe: &'a dyn Probe,
    ) -> Self {
        let env_id = ["CLAUDE_CODE_SESSION_ID", "CLAUDE_SESSION_ID"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
        Self {
            explicit,
            env_id,
            agent,
            paths,
            harness_dir: harness::sessions_dir(),
            probe,
        }
    }
}

/// Picks the strongest valid evidence. An invalid *explicit* id is an error (the caller
/// named it); invalid weaker evidence is skipped.
pub fn resolve(inp: &Inputs<'_>) -> Result<Option<Resolved>, String> {
    if let Some(e) = inp.explicit {
        let id = SessionId::parse(e)?;
        return Ok(Some(Resolved {
            id,
            evidence: Evidence::Explicit,
        }));
    }
    if let Some(id) = inp.env_id.as_deref().and_then(|e| SessionId::parse(e).ok()) {
        return Ok(Some(Resolved {
            id,
            evidence: Evidence::Environment,
        }));
    }
    let agent_info = inp.agent.and_then(|a| {
        inp.probe
            .process(a.pid)
            .filter(|p| p.start_ticks == a.start_ticks)
    });
    if let (Some(a), Some(info), Some(dir)) = (inp.agent, agent_info, inp.harness_dir.as_deref()) {
        if let Some(id) = harness::read_session_file(dir, a.pid, &info) {
            return Ok(Some(Resolved {
                id,
                evidence: Evidence::HarnessFile,
            }));
        }
    }
    if let Some(a) = inp.agent {
        let path = inp.paths.anchor_path(a.pid);
        if let Ok((content, mtime)) = anchor::read_anchor(&path) {
            if anchor::judge(a.pid, &content, mtime, inp.probe).is_ok() {
                return Ok(Some(Resolved {
                    id: content.session_id().clone(),
                    evidence: Evidence::PidAnchor,
                }));
            }
        }
    }
    if let Ok((content, mtime)) = anchor::read_anchor(&inp.paths.legacy_anchor_path()) {
        // The legacy file has no pid; it is only believable if written after our agent
        // process started (otherwise it is some earlier session's).
        let fresh = match agent_info {
            Some(info) => !anchor::older_than(mtime, info.start_unix_ms),
            None => true,
        };
        if fresh {
            return Ok(Some(Resolved {
                id: content.session_id().clone(),
                evidence: Evidence::Legacy,
            }));
        }
    }
    Ok(None)
}
