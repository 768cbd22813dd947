//! The server's identity state: which session it is bound to, on what evidence, every id
//! it has held, and the moves (rebinds) that keep its one row following the real session.

use crate::core::identity::profile::EnvProfile;
use crate::core::identity::resolver::{self, Inputs};
use crate::core::identity::{AgentProcess, Evidence, Probe, SessionId, SystemProbe};
use crate::core::liveness::Caller;
use crate::core::paths::ProjectPaths;
use crate::core::store::{ForeignSession, Registration, Store};
use crate::core::{roles, roster};
use anyhow::Result;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The current binding.
#[derive(Debug, Clone)]
pub struct Binding {
    pub id: SessionId,
    pub evidence: Evidence,
}

/// Everything a server instance knows; shared by the tool handlers and the heartbeat task.
pub struct ServerState {
    pub paths: ProjectPaths,
    store: Mutex<Store>,
    pub agent: Option<AgentProcess>,
    /// Instance token: a server deletes only a row it still owns.
    pub token: String,
    pub pid: i32,
    binding: Mutex<Option<Binding>>,
    self_ids: Mutex<HashSet<String>>,
    profile: EnvProfile,
    /// Set once the "weak evidence names someone else's session" line was logged.
    refused_foreign: AtomicBool,
}

fn log(msg: &str) {
    crate::core::log::info(msg);
}

impl ServerState {
    pub fn new(paths: ProjectPaths, store: Store, agent: Option<AgentProcess>) -> Self {
        let pid = std::process::id() as i32;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Self {
            paths,
            store: Mutex::new(store),
            agent,
            token: format!("{pid:x}-{nanos:x}"),
            pid,
            binding: Mutex::new(None),
            self_ids: Mutex::new(HashSet::new()),
            profile: EnvProfile::from_env(),
            refused_foreign: AtomicBool::new(false),
        }
    }

    /// The store, even if a panicking thread poisoned the lock (its data is in SQLite).
    /// Closes the store's idle connection to a shared server (see `Store::park`).
    pub fn park_store(&self) {
        self.store.lock().unwrap_or_else(|p| p.into_inner()).park();
    }

    /// The store, reconnected first when a shared server's connection broke (the error,
    /// if the server is still away, surfaces from the operation itself).
    pub fn store(&self) -> MutexGuard<'_, Store> {
        let mut guard = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let _ = guard.reconnect_if_broken();
        guard
    }

    pub fn binding(&self) -> Option<Binding> {
        self.binding
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_binding(&self, b: Binding) {
        self.self_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(b.id.to_string());
        *self.binding.lock().unwrap_or_else(|p| p.into_inner()) = Some(b);
    }

    /// Every id this process has been bound to.
    pub fn self_ids(&self) -> HashSet<String> {
        self.self_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The caller for sibling computation: bound id, all held ids, our agent process.
    pub fn caller(&self) -> Caller {
        let mut c = Caller::new(
            self.binding().map(|b| b.id.to_string()).as_deref(),
            self.agent,
        );
        c.self_ids = self.self_ids();
        c
    }

    fn registration<'a>(&'a self, id: &'a SessionId, evidence: Evidence) -> Registration<'a> {
        let mut reg = Registration::new(id, evidence);
        reg.agent = self.agent;
        // Prime is a singleton, checked as the row is written (a hook registering the same
        // session has told it when another live session holds prime).
        if let Some(wanted) = self.profile.role.as_deref() {
            roles::ask(&mut reg, wanted);
        }
        reg.name = self.profile.name.as_deref();
        reg.kind = self.profile.kind.as_deref();
        reg.cli = self
            .agent
            .and_then(crate::core::identity::process::cli_of)
            .map(crate::core::identity::AgentCli::as_str);
        reg.server = Some((self.pid, &self.token));
        reg
    }

    /// Tries to bind: the row a hook registered for our agent process wins (it carries the
    /// harness's current id), then the resolver's ranked evidence. Registers on success.
    pub fn try_bind(&self) -> Result<Option<Binding>> {
        let hooked = match self.agent {
            Some(a) => self.store().owned_by(&a)?,
            None => None,
        };
        let found = match hooked.as_deref().and_then(|h| SessionId::parse(h).ok()) {
            Some(id) => Some(Binding {
                id,
                evidence: Evidence::Explicit,
            }),
            None => {
                let inp = Inputs::from_env(None, self.agent, &self.paths, &SystemProbe);
                resolver::resolve(&inp)
                    .map_err(anyhow::Error::msg)?
                    .map(|r| Binding {
                        id: r.id,
                        evidence: r.evidence,
                    })
            }
        };
        let Some(mut b) = found else { return Ok(None) };
        // The environment is the launcher's word, and a sibling's Bash may launch a server
        // with anyone's id in it: like a hook, a server never takes the session another
        // live agent process owns (unless this agent's own harness file names it).
        if hooked.is_none() && !b.evidence.is_provisional() {
            let row = self.store().get(b.id.as_str())?;
            if let Err(why) = crate::core::identity::trust::may_act_for(
                row.as_ref(),
                self.agent,
                crate::core::clock::now_ms(),
                &SystemProbe,
                crate::core::liveness::Policy::from_env(),
            ) {
                self.log_foreign(&format!("{} names {why}", b.evidence.as_str()));
                return Ok(None);
            }
        }
        // Weak evidence (a per-PID anchor, the shared legacy file) may name a session of
        // *another* process — the legacy file is last-writer-wins across terminals. Taking
        // that id would make two agents one session, or bring a dead one back as a phantom
        // sibling; wait for a hook or tool call instead.
        if b.evidence.is_provisional() {
            if let Some(whose) = self.someone_elses(b.id.as_str())? {
                self.log_foreign(&format!(
                    "{} names SA-{}, which is {whose}",
                    b.evidence.as_str(),
                    b.id.id8()
                ));
                return Ok(None);
            }
        }
        let reg = self.registration(&b.id, b.evidence);
        if let Err(e) = self.store().register(&reg) {
            return match e.downcast_ref::<ForeignSession>() {
                Some(f) => {
                    self.log_foreign(&f.to_string());
                    Ok(None)
                }
                None => Err(e),
            };
        }
        // A hook may have registered the same id explicitly meanwhile: the row keeps the
        // strongest evidence seen for this owner, and so does the binding.
        b.evidence = b.evidence.max(self.row_evidence(b.id.as_str()));
        let note = if b.evidence.is_provisional() {
            " (provisional: a hook or tool call will confirm or move it)"
        } else {
            ""
        };
        log(&format!(
            "bound to session SA-{} from {}{note}",
            b.id.id8(),
            b.evidence.as_str()
        ));
        self.set_binding(b.clone());
        Ok(Some(b))
    }

    /// Logs, once per server, why weak evidence was not taken.
    fn log_foreign(&self, why: &str) {
        if !self.refused_foreign.swap(true, Ordering::Relaxed) {
            log(&format!(
                "{why}; not taking it (waiting for a hook or tool call to name this session)"
            ));
        }
    }

    /// Our provisional id turned out to be another agent's session: forget it entirely, so
    /// that sibling is not hidden from our roster as "an id we once held".
    fn yield_binding(&self, id: &str, why: &str) {
        *self.binding.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.self_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        log(&format!("gave up provisional binding: {why}"));
    }

    /// Why `id` is not ours to adopt on weak evidence: its row is owned by another agent
    /// process (live or gone) or lives elsewhere, or the session already ended. `None` when
    /// there is no such session or the row is ours.
    fn someone_elses(&self, id: &str) -> Result<Option<String>> {
        let store = self.store();
        if let Some(row) = store.get(id)? {
            let owner = row.local_agent();
            if owner.is_some() && owner == self.agent {
                return Ok(None);
            }
            return Ok(Some(match (owner, row.agent_pid) {
                (Some(o), _) if SystemProbe.is_alive(o.pid, o.start_ticks) => {
                    format!("the session of live agent pid {}", o.pid)
                }
                (Some(o), _) => format!("the session of agent pid {}, which is gone", o.pid),
                (None, Some(pid)) => format!("the session of agent pid {pid} on another host"),
                (None, None) => "a session with no agent process".to_string(),
            }));
        }
        Ok(store
            .ended_how(id)?
            .map(|how| format!("a session that already ended ({how})")))
    }

    /// Moves our row to `id` (explicit evidence from a tool call or hook). Same id: a
    /// heartbeat. Logs one line naming both id8s.
    pub fn rebind(&self, id: SessionId, evidence: Evidence) -> Result<()> {
        let cur = self.binding();
        match cur.as_ref() {
            Some(c) if c.id == id => {
                self.store().heartbeat(id.as_str())?;
                if evidence > c.evidence {
                    self.set_binding(Binding { id, evidence });
                }
                return Ok(());
            }
            Some(c) => {
                let reg = self.registration(&id, evidence);
                self.store().rebind(c.id.as_str(), &reg)?;
                log(&format!(
                    "rebound SA-{} -> SA-{} ({})",
                    c.id.id8(),
                    id.id8(),
                    evidence.as_str()
                ));
            }
            None => {
                let reg = self.registration(&id, evidence);
                self.store().register(&reg)?;
                log(&format!(
                    "bound to session SA-{} from {}",
                    id.id8(),
                    evidence.as_str()
                ));
            }
        }
        self.set_binding(Binding { id, evidence });
        Ok(())
    }

    /// The evidence recorded on `id`'s row (weakest when unknown).
    fn row_evidence(&self, id: &str) -> Evidence {
        self.store()
            .get(id)
            .ok()
            .flatten()
            .and_then(|r| r.evidence.as_deref().and_then(Evidence::parse))
            .unwrap_or(Evidence::Legacy)
    }

    /// A tool call named `session_id`: treat it as explicit evidence.
    pub fn apply_explicit(&self, session_id: Option<&str>) -> Result<(), String> {
        if let Some(raw) = session_id.filter(|s| !s.is_empty()) {
            let id =
                SessionId::parse(raw).map_err(|e| format!("invalid session_id argument: {e}"))?;
            // A tool argument is the model's word, and a message can try to put words in
            // its mouth: it never takes over a session another live agent process owns.
            if let Some(pid) =
                roster::held_by_another(&self.store(), id.as_str(), self.agent, &SystemProbe)
                    .map_err(|e| format!("{e:#}"))?
            {
                return Err(format!(
                    "session_id {id} belongs to another live session (agent pid {pid}); \
                     pass your own session_id (it is in your SessionStart context) or omit it"
                ));
            }
            self.rebind(id, Evidence::Explicit)
                .map_err(|e| format!("{e:#}"))?;
        } else {
            self.follow_row().map_err(|e| format!("{e:#}"))?;
        }
        Ok(())
    }

    /// One heartbeat: follow a row a hook moved, re-create a row that vanished, refresh.
    pub fn follow_row(&self) -> Result<()> {
        let Some(b) = self.binding() else {
            self.try_bind()?;
            return Ok(());
        };
        if let Some(a) = self.agent {
            let owned = self.store().owned_by(&a)?;
            match owned {
                Some(o) if o == b.id.as_str() => {
                    self.store().heartbeat(&o)?;
                    let ev = self.row_evidence(&o);
                    if ev > b.evidence {
                        self.set_binding(Binding {
                            id: b.id,
                            evidence: ev,
                        });
                    }
                }
                Some(o) => {
                    // A hook registered a new id for our agent process (e.g. /clear): the
                    // row already moved; adopt it and remember the old id as ours.
                    if let Ok(id) = SessionId::parse(&o) {
                        log(&format!(
                            "rebound SA-{} -> SA-{} (hook registered a new id for agent pid {})",
                            b.id.id8(),
                            id.id8(),
                            a.pid
                        ));
                        self.store()
                            .claim_server(id.as_str(), self.pid, &self.token)?;
                        self.store().heartbeat(id.as_str())?;
                        self.set_binding(Binding {
                            id,
                            evidence: Evidence::Explicit,
                        });
                    }
                }
                None => {
                    let reg = self.registration(&b.id, b.evidence);
                    if let Err(e) = self.store().register(&reg) {
                        match e.downcast_ref::<ForeignSession>() {
                            Some(f) => self.yield_binding(b.id.as_str(), &f.to_string()),
                            None => return Err(e),
                        }
                    }
                }
            }
        } else if !self.store().heartbeat(b.id.as_str())? {
            let reg = self.registration(&b.id, b.evidence);
            self.store().register(&reg)?;
        }
        Ok(())
    }

    /// On a shared server, other hosts judge this host's sessions by heartbeat alone:
    /// refresh every row whose agent process runs here (the process table is the truth
    /// on this host), so a session whose own server is gone or busy stays live to them.
    /// Rows refreshed within the last half interval are left alone: every server on the
    /// host vouches, and one write per row per interval is enough (N servers rewriting
    /// every row would be N² writes). Returns how many were refreshed. SQLite: nothing to
    /// do (one host).
    pub fn vouch_for_host(&self) -> Result<usize> {
        let store = self.store();
        if !store.is_shared() {
            return Ok(0);
        }
        let mine = self.binding().map(|b| b.id.as_str().to_string());
        let half = crate::core::settings::get().heartbeat.as_millis() as i64 / 2;
        let now = crate::core::clock::now_ms();
        let due: Vec<String> = store
            .host_sessions()?
            .into_iter()
            .filter(|r| Some(&r.session_id) != mine.as_ref())
            .filter(|r| now - r.heartbeat_ms() >= half)
            .filter(|r| {
                r.local_agent()
                    .is_some_and(|a| SystemProbe.is_alive(a.pid, a.start_ticks))
            })
            .map(|r| r.session_id)
            .collect();
        store.heartbeat_all(&due)
    }

    /// On the way out: delete our row only if this instance still owns it.
    pub fn shutdown(&self, why: &str) {
        let agent_alive = self
            .agent
            .is_some_and(|a| SystemProbe.is_alive(a.pid, a.start_ticks));
        if agent_alive {
            // A plugin reload or MCP restart stops the server, not the session: its row,
            // claims and mail stay while the agent process runs; liveness follows the
            // process, and the next server or hook picks the row up.
            if let Some(b) = self.binding() {
                if let Err(e) = self.store().release_server(b.id.as_str(), &self.token) {
                    crate::core::log::warn(&format!("could not hand the row back on exit: {e:#}"));
                }
                log(&format!(
                    "agent process still runs; session SA-{} stays registered",
                    b.id.id8()
                ));
            }
            return;
        }
        if let Some(b) = self.binding() {
            let how = format!("clean exit (server stopped: {why})");
            match self.store().end_if_owned(b.id.as_str(), &self.token, &how) {
                Ok(true) => log(&format!("session SA-{} ended; row removed", b.id.id8())),
                Ok(false) => {}
                Err(e) => crate::core::log::warn(&format!("could not remove row on exit: {e:#}")),
            }
        }
        if let Some(a) = self.agent {
            let _ = std::fs::remove_file(self.paths.anchor_path(a.pid));
        }
    }
}
