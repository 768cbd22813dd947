//! Who may act for a session. A hook or command running under agent process C acts for
//! the session C owns; a session another *live* agent process owns explicitly is off
//! limits, unless C's own harness file names it (the same conversation resumed in a second
//! terminal). A person's shell, with no agent ancestor, may act for any session.

use super::resolver::Evidence;
use super::{harness, AgentProcess, Probe};
use crate::core::liveness::{self, Policy};
use crate::core::store::SessionRow;

/// `Ok` when a process under `agent` may act for `row`'s session; otherwise one line that
/// says whose session it is and what to do instead.
pub fn may_act_for(
    row: Option<&SessionRow>,
    agent: Option<AgentProcess>,
    now_ms: i64,
    probe: &dyn Probe,
    policy: Policy,
) -> Result<(), String> {
    let (Some(row), Some(me)) = (row, agent) else {
        return Ok(());
    };
    // A row with no agent process (written by a person's shell or a tool that records
    // none) has no owner to protect.
    if row.agent_pid.is_none() {
        return Ok(());
    }
    let Some(owner) = liveness::owned_by_another(row, Some(me), now_ms, probe, policy) else {
        return Ok(());
    };
    // A row bound on weak evidence (an anchor) is a guess; the real session's own hook
    // must be able to take it back.
    let weak = row
        .evidence
        .as_deref()
        .and_then(Evidence::parse)
        .is_some_and(Evidence::is_provisional);
    if weak || harness_names(me, &row.session_id, probe) {
        return Ok(());
    }
    Err(format!(
        "session SA-{} belongs to live agent process {owner}, not to this one (pid {}): \
         a session acts only for itself; use your own session_id",
        row.id8, me.pid
    ))
}

/// True when the harness's own file for `agent` names `id`.
fn harness_names(agent: AgentProcess, id: &str, probe: &dyn Probe) -> bool {
    let Some(info) = probe
        .process(agent.pid)
        .filter(|p| p.start_ticks == agent.start_ticks)
    else {
        return false;
    };
    harness::sessions_dir()
        .and_then(|dir| harness::read_session_file(&dir, agent.pid, &info))
        .is_some_and(|named| named.as_str() == id)
}
