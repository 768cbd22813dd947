//! A snapshot of the live fleet with each session's recent files: the one input the hook
//! block, the MCP `roster` tool and `status` all render from, so they always agree.

use crate::core::clock;
use crate::core::identity::{AgentProcess, Probe};
use crate::core::liveness::{self, Caller, Policy, Verdict};
use crate::core::render::SiblingView;
use crate::core::store::{SessionRow, Store};
use crate::core::{claims, hygiene};
use anyhow::Result;
use std::collections::HashMap;

/// How far back "files touched recently" looks.
pub const FILES_WINDOW_MS: i64 = 15 * 60 * 1000;
/// Files kept per session in a snapshot.
const FILES_PER_SESSION: usize = 8;

/// Live rows at one instant plus their recent files.
pub struct Snapshot {
    pub now_ms: i64,
    pub live: Vec<SessionRow>,
    pub files: HashMap<String, Vec<String>>,
}

impl Snapshot {
    /// Reads every row, keeps the live ones, and loads their recent files. Rows whose
    /// agent process is confirmed dead are buried on the way (see `hygiene::bury`).
    pub fn load(store: &Store, probe: &dyn Probe, policy: Policy) -> Result<Self> {
        let mut snap = Self::load_live(store, probe, policy)?;
        let ids: Vec<&str> = snap.live.iter().map(|r| r.session_id.as_str()).collect();
        snap.files =
            store.recent_files(&ids, snap.now_ms - files_window_ms(), FILES_PER_SESSION)?;
        Ok(snap)
    }

    /// Live rows only (no files): what an edit-time check needs.
    pub fn load_live(store: &Store, probe: &dyn Probe, policy: Policy) -> Result<Self> {
        let now_ms = clock::now_ms();
        let mut live = Vec::new();
        let mut dead = Vec::new();
        for row in store.all_sessions()? {
            match liveness::verdict(&row, now_ms, probe, policy) {
                v if v.is_live() => live.push(row),
                Verdict::DeadProcess | Verdict::Rebooted => dead.push(row),
                _ => {}
            }
        }
        if !dead.is_empty() {
            hygiene::bury(store, &dead)?;
        }
        claims::expire(store, &live, now_ms)?;
        Ok(Self {
            now_ms,
            live,
            files: HashMap::new(),
        })
    }

    /// The caller's siblings, rendered-ready, in registry order.
    pub fn siblings(&self, caller: &Caller) -> Vec<SiblingView<'_>> {
        liveness::siblings(&self.live, caller)
            .into_iter()
            .map(|row| SiblingView {
                row,
                files: self.files.get(&row.session_id).cloned().unwrap_or_default(),
            })
            .collect()
    }

    /// The worktree `id` works in, as its live row says.
    pub fn worktree_of(&self, id: &str) -> Option<&str> {
        self.live
            .iter()
            .find(|r| r.session_id == id)
            .and_then(|r| r.worktree.as_deref())
    }

    pub fn files_of(&self, id: &str) -> &[String] {
        self.files.get(id).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// The owner (agent pid, or `(remote)`) of `id`'s row when that row is live and belongs
/// to an agent process other than `agent`: an id nobody but that session may act as.
pub fn held_by_another(
    store: &Store,
    id: &str,
    agent: Option<AgentProcess>,
    probe: &dyn Probe,
) -> Result<Option<String>> {
    Ok(store.get(id)?.and_then(|row| {
        liveness::owned_by_another(&row, agent, clock::now_ms(), probe, Policy::from_env())
    }))
}

/// `ORCHESTRATOR_FILE_WINDOW_SECS` (see `settings`) overrides the 15 min window.
pub fn files_window_ms() -> i64 {
    crate::core::settings::get().files_window_ms
}
