//! Who is live, and who a caller's siblings are.
//!
//! For a row owned by a process on this host the process is the truth (alive with the
//! recorded start time = live, however old the heartbeat); elsewhere the heartbeat is.

use crate::core::identity::process::host_id;
use crate::core::identity::{AgentProcess, Probe};
use crate::core::store::SessionRow;
use std::collections::HashSet;

/// Default heartbeat interval of a server.
pub const HEARTBEAT_MS: i64 = 30_000;
/// Default age after which a heartbeat-only row is stale.
pub const STALE_AFTER_MS: i64 = 90_000;

/// Liveness thresholds.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub stale_after_ms: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            stale_after_ms: STALE_AFTER_MS,
        }
    }
}

impl Policy {
    /// `ORCHESTRATOR_STALE_SECS` (see `settings`) overrides the 90 s default.
    pub fn from_env() -> Self {
        Self {
            stale_after_ms: crate::core::settings::get().stale_after_ms,
        }
    }
}

/// Why a row is or is not live; `doctor` and `status --all` print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    LiveProcess,
    LiveHeartbeat,
    DeadProcess,
    Rebooted,
    StaleHeartbeat,
}

impl Verdict {
    pub fn is_live(self) -> bool {
        matches!(self, Self::LiveProcess | Self::LiveHeartbeat)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::LiveProcess => "live (agent process running)",
            Self::LiveHeartbeat => "live (fresh heartbeat)",
            Self::DeadProcess => "dead (agent process gone or pid reused)",
            Self::Rebooted => "dead (host rebooted since)",
            Self::StaleHeartbeat => "stale (no heartbeat within the threshold)",
        }
    }
}

/// Judges one row.
pub fn verdict(row: &SessionRow, now_ms: i64, probe: &dyn Probe, policy: Policy) -> Verdict {
    if let Some(a) = row.local_agent() {
        return if probe.is_alive(a.pid, a.start_ticks) {
            Verdict::LiveProcess
        } else {
            Verdict::DeadProcess
        };
    }
    let fresh = now_ms - row.heartbeat_ms() <= policy.stale_after_ms;
    let h = host_id();
    // Same name, another boot: this host before a reboot — or, with a fresh heartbeat,
    // another machine or container of the same name on a shared server, which only its
    // heartbeat can judge from here.
    if row.agent_pid.is_some()
        && row.host.as_deref() == Some(h.host.as_str())
        && row.boot_id.as_deref() != Some(h.boot_id.as_str())
        && !fresh
    {
        return Verdict::Rebooted;
    }
    if fresh {
        Verdict::LiveHeartbeat
    } else {
        Verdict::StaleHeartbeat
    }
}

/// The live rows among `rows`.
pub fn live(
    rows: Vec<SessionRow>,
    now_ms: i64,
    probe: &dyn Probe,
    policy: Policy,
) -> Vec<SessionRow> {
    rows.into_iter()
        .filter(|r| verdict(r, now_ms, probe, policy).is_live())
        .collect()
}

/// When `row` is live and owned by an agent process other than `agent`, its owner (the
/// pid, or `(remote)`). Weak evidence — a per-PID anchor, the shared last-writer-wins
/// legacy file — that names such a row names a sibling, never the caller.
pub fn owned_by_another(
    row: &SessionRow,
    agent: Option<AgentProcess>,
    now_ms: i64,
    probe: &dyn Probe,
    policy: Policy,
) -> Option<String> {
    let owner = row.local_agent();
    if owner.is_some() && owner == agent {
        return None;
    }
    verdict(row, now_ms, probe, policy).is_live().then(|| {
        row.agent_pid
            .map(|p| p.to_string())
            .unwrap_or_else(|| "(remote)".into())
    })
}

/// Who is asking: its id, every id its server has held, and its agent process.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub id: Option<String>,
    pub self_ids: HashSet<String>,
    pub agent: Option<AgentProcess>,
}

impl Caller {
    pub fn new(id: Option<&str>, agent: Option<AgentProcess>) -> Self {
        Self {
            id: id.map(str::to_string),
            self_ids: HashSet::new(),
            agent,
        }
    }

    /// True when `row` is the caller itself by any of the three rules.
    pub fn is_self(&self, row: &SessionRow) -> bool {
        if self.id.as_deref() == Some(row.session_id.as_str())
            || self.self_ids.contains(&row.session_id)
        {
            return true;
        }
        match (self.agent, row.local_agent()) {
            (Some(me), Some(owner)) => me == owner,
            _ => false,
        }
    }
}

/// Live rows minus the caller, whatever drift happened. The full list: truncation is the
/// renderer's job, and it always states the true total.
pub fn siblings<'a>(live_rows: &'a [SessionRow], caller: &Caller) -> Vec<&'a SessionRow> {
    live_rows.iter().filter(|r| !caller.is_self(r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::clock;
    use crate::core::identity::SystemProbe;

    fn row(host: &str, boot: &str, heartbeat_ms: i64) -> SessionRow {
        SessionRow {
            session_id: "aaaaaaaa-x".into(),
            last_heartbeat_at: clock::iso(heartbeat_ms),
            agent_pid: Some(1),
            agent_started_at: Some(1),
            host: Some(host.into()),
            boot_id: Some(boot.into()),
            ..SessionRow::default()
        }
    }

    #[test]
    fn another_boot_of_this_host_name_is_judged_by_heartbeat() {
        let now = clock::now_ms();
        let me = host_id().host.clone();
        let p = Policy::default();
        let judge = |r: &SessionRow| verdict(r, now, &SystemProbe, p);
        // A past boot of this host: its heartbeat stopped with it.
        assert_eq!(
            judge(&row(&me, "old-boot", now - STALE_AFTER_MS - 1)),
            Verdict::Rebooted
        );
        // A machine or container of the same name on a shared server, heartbeating.
        assert_eq!(judge(&row(&me, "other-boot", now)), Verdict::LiveHeartbeat);
        // Another host entirely: heartbeat only.
        assert_eq!(judge(&row("elsewhere", "b", now)), Verdict::LiveHeartbeat);
        assert_eq!(
            judge(&row("elsewhere", "b", now - STALE_AFTER_MS - 1)),
            Verdict::StaleHeartbeat
        );
    }
}
