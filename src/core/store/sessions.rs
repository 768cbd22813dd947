//! Registry operations. The rule that makes drift impossible lives here: an agent process
//! owns at most one row, and registering a new id for it *moves* the row in one transaction.

use super::db::{Conn, Row};
use super::Store;
use crate::args;
use crate::core::clock;
use crate::core::identity::process::host_id;
use crate::core::identity::{AgentProcess, Evidence, SessionId};
use anyhow::Result;

/// One registry row.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SessionRow {
    pub session_id: String,
    pub id8: String,
    pub role: String,
    pub name: Option<String>,
    pub started_at: String,
    pub last_heartbeat_at: String,
    pub current_task: Option<String>,
    pub kind: Option<String>,
    pub agent_pid: Option<i32>,
    pub agent_started_at: Option<u64>,
    pub server_pid: Option<i32>,
    #[serde(skip)]
    pub server_token: Option<String>,
    pub host: Option<String>,
    #[serde(skip)]
    pub boot_id: Option<String>,
    pub evidence: Option<String>,
    pub activity: Option<String>,
    pub activity_since: Option<String>,
    pub last_tool: Option<String>,
    #[serde(skip)]
    pub roster_hash: Option<String>,
    /// The worktree the session works in (`.` = main checkout), and its branch.
    pub worktree: Option<String>,
    pub branch: Option<String>,
    /// The gist of the person's latest prompt, and when it was given.
    pub prompt_gist: Option<String>,
    pub prompt_gist_at_ms: Option<i64>,
    /// The title the client gave the session, if any.
    pub title: Option<String>,
    /// The coding-agent CLI the session runs: `claude`, `codex` or `gemini`.
    pub agent_cli: Option<String>,
}

impl SessionRow {
    /// The agent process that owns this row, if it is on this host and boot.
    pub fn local_agent(&self) -> Option<AgentProcess> {
        let h = host_id();
        if self.host.as_deref() != Some(h.host.as_str())
            || self.boot_id.as_deref() != Some(h.boot_id.as_str())
        {
            return None;
        }
        Some(AgentProcess {
            pid: self.agent_pid?,
            start_ticks: self.agent_started_at?,
        })
    }

    /// Heartbeat as epoch ms (0 when unparseable, which reads as ancient).
    pub fn heartbeat_ms(&self) -> i64 {
        clock::parse_iso(&self.last_heartbeat_at).unwrap_or(0)
    }
}

const COLS: &str = "session_id, id8, role, name, started_at, last_heartbeat_at, current_task, kind,
    agent_pid, agent_started_at, server_pid, server_token, host, boot_id, evidence, activity,
    activity_since, last_tool, roster_hash, worktree, branch, gist, gist_ms, title, agent_cli";

fn from_row(r: &Row) -> Result<SessionRow> {
    Ok(SessionRow {
        session_id: r.get(0)?,
        id8: r.get(1)?,
        role: r
            .get::<Option<String>>(2)?
            .unwrap_or_else(|| "subordinate".into()),
        name: r.get(3)?,
        started_at: r.get(4)?,
        last_heartbeat_at: r.get(5)?,
        current_task: r.get(6)?,
        kind: r.get(7)?,
        agent_pid: r.get(8)?,
        agent_started_at: r.get::<Option<i64>>(9)?.map(|v| v as u64),
        server_pid: r.get(10)?,
        server_token: r.get(11)?,
        host: r.get(12)?,
        boot_id: r.get(13)?,
        evidence: r.get(14)?,
        activity: r.get(15)?,
        activity_since: r.get(16)?,
        last_tool: r.get(17)?,
        roster_hash: r.get(18)?,
        worktree: r.get(19)?,
        branch: r.get(20)?,
        prompt_gist: r.get(21)?,
        prompt_gist_at_ms: r.get(22)?,
        title: r.get(23)?,
        agent_cli: r.get(24)?,
    })
}

/// A liveness test handed to the store, which cannot look at processes itself.
#[derive(Clone, Copy)]
pub struct LiveTest<'a>(pub &'a dyn Fn(&SessionRow) -> bool);

impl std::fmt::Debug for LiveTest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveTest")
    }
}

/// What a hook or server says about a session when registering it.
#[derive(Debug, Clone)]
pub struct Registration<'a> {
    pub id: &'a SessionId,
    pub evidence: Evidence,
    pub agent: Option<AgentProcess>,
    pub role: Option<&'a str>,
    /// Makes `role` a singleton: it is not taken while another row this test calls live
    /// holds it (the session registers as subordinate, and [`Registered::role_held_by`]
    /// names the holder). Checked inside the registering transaction, so two sessions
    /// asking at once cannot both get it.
    pub sole_role: Option<LiveTest<'a>>,
    pub name: Option<&'a str>,
    pub kind: Option<&'a str>,
    /// The CLI the agent process runs (`claude`, `codex`, `gemini`), when known.
    pub cli: Option<&'a str>,
    /// `(server pid, instance token)` when a server registers; hooks pass `None`.
    pub server: Option<(i32, &'a str)>,
}

impl<'a> Registration<'a> {
    pub fn new(id: &'a SessionId, evidence: Evidence) -> Self {
        Self {
            id,
            evidence,
            agent: None,
            role: None,
            sole_role: None,
            name: None,
            kind: None,
            cli: None,
            server: None,
        }
    }
}

/// What registering changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registered {
    /// Ids whose rows the same agent process held and that were moved to the new id.
    pub moved_from: Vec<String>,
    pub created: bool,
    /// What the moved rows handed over, and the id that handed it (only rows whose id is
    /// vouched for as this agent's own hand anything over).
    pub carried: Carried,
    pub carried_from: Option<String>,
    /// The live row that holds the singleton role asked for, which was therefore not taken.
    pub role_held_by: Option<SessionRow>,
}

impl Store {
    /// Upserts `reg.id` with a fresh heartbeat; any other row owned by the same agent
    /// process is moved to it in the same transaction (see [`carry_over`]).
    pub fn register(&mut self, reg: &Registration<'_>) -> Result<Registered> {
        let tx = self.conn.begin()?;
        let out = register_in(&tx, reg, None)?;
        tx.commit()?;
        Ok(out)
    }

    /// Moves `old`'s row to `reg.id`: delete, upsert, heartbeat and carry-over in one
    /// transaction, so no reader ever sees the session missing. Same id only heartbeats.
    pub fn rebind(&mut self, old: &str, reg: &Registration<'_>) -> Result<Registered> {
        if old == reg.id.as_str() {
            self.heartbeat(old)?;
            return Ok(Registered::default());
        }
        let tx = self.conn.begin()?;
        let old_row = row_in(&tx, old)?;
        let out = register_in(&tx, reg, old_row)?;
        tx.commit()?;
        Ok(out)
    }

    /// Refreshes `id`'s heartbeat; false when the row does not exist.
    pub fn heartbeat(&self, id: &str) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE sessions SET last_heartbeat_at=?2 WHERE session_id=?1",
            args![id, clock::iso(clock::now_ms())],
        )?;
        Ok(n > 0)
    }

    /// Refreshes the heartbeats of `ids`: a server vouching for its host's other live
    /// sessions on a shared server, whose hosts judge them by heartbeat. One statement
    /// per 500 ids and no transaction: a heartbeat checks nothing before it writes, so it
    /// never waits for (or holds up) the project's writers. On PostgreSQL a row another
    /// transaction holds is skipped, not waited for (SKIP LOCKED): its writer is busy
    /// with it, and two servers vouching for overlapping rows in different orders would
    /// otherwise deadlock. Returns how many rows were refreshed.
    pub fn heartbeat_all(&self, ids: &[String]) -> Result<usize> {
        let now = clock::iso(clock::now_ms());
        let mut n = 0;
        for chunk in ids.chunks(500) {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("?{}", i + 2)).collect();
            let marks = marks.join(",");
            let which = match self.conn {
                Conn::Pg(_) | Conn::Parked(_) => format!(
                    "SELECT session_id FROM sessions WHERE session_id IN ({marks})
                     ORDER BY session_id FOR UPDATE SKIP LOCKED"
                ),
                Conn::Sqlite(_) => marks,
            };
            let mut args: Vec<&dyn super::db::ToValue> = vec![&now];
            args.extend(chunk.iter().map(|id| id as &dyn super::db::ToValue));
            n += self.conn.execute(
                &format!("UPDATE sessions SET last_heartbeat_at=?1 WHERE session_id IN ({which})"),
                &args,
            )?;
        }
        Ok(n)
    }

    /// Every row whose agent process runs on this host (this boot), oldest first.
    pub fn host_sessions(&self) -> Result<Vec<SessionRow>> {
        let h = host_id();
        self.conn.query_map(
            &format!(
                "SELECT {COLS} FROM sessions WHERE host=?1 AND boot_id=?2 AND agent_pid IS NOT NULL
                 ORDER BY started_at, session_id"
            ),
            args![h.host, h.boot_id],
            from_row,
        )
    }

    /// The id of the row `agent` owns on this host, if any.
    pub fn owned_by(&self, agent: &AgentProcess) -> Result<Option<String>> {
        let h = host_id();
        self.conn.query_opt(
            "SELECT session_id FROM sessions WHERE host=?1 AND boot_id=?2 AND agent_pid=?3
             AND agent_started_at=?4",
            args![h.host, h.boot_id, agent.pid, agent.start_ticks as i64],
            |r| r.get(0),
        )
    }

    pub fn get(&self, id: &str) -> Result<Option<SessionRow>> {
        row_in(&self.conn, id)
    }

    /// Every row, live or not, oldest first.
    pub fn all_sessions(&self) -> Result<Vec<SessionRow>> {
        self.conn.query_map(
            &format!("SELECT {COLS} FROM sessions ORDER BY started_at, session_id"),
            args![],
            from_row,
        )
    }

    pub fn set_task(&self, id: &str, task: Option<&str>) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE sessions SET current_task=?2, last_heartbeat_at=?3 WHERE session_id=?1",
            args![id, task, clock::iso(clock::now_ms())],
        )? > 0)
    }

    pub fn set_name(&self, id: &str, name: Option<&str>) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE sessions SET name=?2 WHERE session_id=?1",
            args![id, name],
        )? > 0)
    }

    /// Sets `id`'s name unless another row has it (then false). The check and the write
    /// are one immediate transaction, so two sessions asking for one name cannot both
    /// get it.
    pub fn set_unique_name(&self, id: &str, name: &str) -> Result<bool> {
        self.atomically(|s| {
            let taken: bool = s.conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM sessions WHERE name=?1 AND session_id<>?2)",
                args![name, id],
                |r| r.get(0),
            )?;
            if !taken {
                s.set_name(id, Some(name))?;
            }
            Ok(!taken)
        })
    }

    pub fn set_role(&self, id: &str, role: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE sessions SET role=?2 WHERE session_id=?1",
            args![id, role],
        )? > 0)
    }

    /// Marks the turn state (`busy` / `idle`) and when it began; also a heartbeat.
    pub fn set_activity(&self, id: &str, activity: &str) -> Result<bool> {
        let now = clock::iso(clock::now_ms());
        Ok(self.conn.execute(
            "UPDATE sessions SET activity_since=CASE WHEN activity IS NOT DISTINCT FROM ?2 THEN activity_since ELSE ?3 END,
               activity=?2, last_heartbeat_at=?3 WHERE session_id=?1",
            args![id, activity, now],
        )? > 0)
    }

    /// Records the last tool used; also a heartbeat.
    pub fn set_last_tool(&self, id: &str, tool: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE sessions SET last_tool=?2, last_heartbeat_at=?3 WHERE session_id=?1",
            args![id, tool, clock::iso(clock::now_ms())],
        )? > 0)
    }

    /// Records the gist of the session's latest prompt (what it does without a set task).
    pub fn set_gist(&self, id: &str, gist: &str, at_ms: i64) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE sessions SET gist=?2, gist_ms=?3 WHERE session_id=?1",
            args![id, gist, at_ms],
        )? > 0)
    }

    /// Records the title the client gave the session.
    pub fn set_title(&self, id: &str, title: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE sessions SET title=?2 WHERE session_id=?1",
            args![id, title],
        )? > 0)
    }

    /// Records which CLI the session runs (`claude`, `codex`, `gemini`).
    pub fn set_agent_cli(&self, id: &str, cli: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE sessions SET agent_cli=?2 WHERE session_id=?1 AND agent_cli IS DISTINCT FROM ?2",
            args![id, cli],
        )? > 0)
    }

    /// Records where the session works now; writes only when that changed.
    pub fn set_place(&self, id: &str, worktree: &str, branch: Option<&str>) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE sessions SET worktree=?2, branch=?3
             WHERE session_id=?1 AND (worktree IS DISTINCT FROM ?2 OR branch IS DISTINCT FROM ?3)",
            args![id, worktree, branch],
        )? > 0)
    }

    /// Stores the fingerprint of the roster this session was last shown.
    pub fn set_roster_hash(&self, id: &str, hash: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE sessions SET roster_hash=?2 WHERE session_id=?1",
            args![id, hash],
        )?;
        Ok(())
    }

    /// Removes `id`'s row, remembering `how` it ended.
    pub fn end(&self, id: &str, how: &str) -> Result<bool> {
        self.end_where(id, None, how)
    }

    /// Removes `id` only while this server instance still owns it (a reloaded server's
    /// successor may have taken the row over).
    pub fn end_if_owned(&self, id: &str, token: &str, how: &str) -> Result<bool> {
        self.end_where(id, Some(token), how)
    }

    fn end_where(&self, id: &str, token: Option<&str>, how: &str) -> Result<bool> {
        let tx = self.conn.begin()?;
        tx.execute(
            &format!(
                "INSERT INTO ended_sessions
                   (session_id, id8, name, role, current_task, agent_pid, ended_at_ms, how)
                 SELECT session_id, id8, name, role, current_task, agent_pid,
                   CAST(?3 AS BIGINT), CAST(?4 AS TEXT)
                 FROM sessions WHERE session_id=?1 AND (CAST(?2 AS TEXT) IS NULL OR server_token=?2)
                 {ENDED_UPSERT}"
            ),
            args![id, token, clock::now_ms(), how],
        )?;
        let n = tx.execute(
            "DELETE FROM sessions WHERE session_id=?1 AND (CAST(?2 AS TEXT) IS NULL OR server_token=?2)",
            args![id, token],
        )?;
        if n > 0 {
            // A non-git checkout's snapshot can be large; nothing reads it after the end.
            tx.execute("DELETE FROM tree_snapshots WHERE session_id=?1", args![id])?;
        }
        tx.commit()?;
        Ok(n > 0)
    }

    /// How `id` ended, if it did (and its record is still kept).
    pub fn ended_how(&self, id: &str) -> Result<Option<String>> {
        self.conn.query_opt(
            "SELECT how FROM ended_sessions WHERE session_id=?1",
            args![id],
            |r| r.get(0),
        )
    }

    /// Sessions that ended since `since_ms`, newest first: (row-ish facts, ended_at, how).
    pub fn ended_since(&self, since_ms: i64) -> Result<Vec<EndedSession>> {
        self.conn.query_map(
            "SELECT session_id, id8, name, role, current_task, agent_pid, ended_at_ms, how
             FROM ended_sessions WHERE ended_at_ms>=?1 ORDER BY ended_at_ms DESC",
            args![since_ms],
            |r| {
                Ok(EndedSession {
                    session_id: r.get(0)?,
                    id8: r.get(1)?,
                    name: r.get(2)?,
                    role: r.get(3)?,
                    current_task: r.get(4)?,
                    agent_pid: r.get(5)?,
                    ended_at: clock::iso(r.get(6)?),
                    how: r.get(7)?,
                })
            },
        )
    }

    /// Drops this server instance's ownership of `id`, keeping the row.
    pub fn release_server(&self, id: &str, token: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE sessions SET server_pid=NULL, server_token=NULL
             WHERE session_id=?1 AND server_token=?2",
            args![id, token],
        )? > 0)
    }

    /// Takes server ownership of `id` (a new server instance for the same agent).
    pub fn claim_server(&self, id: &str, pid: i32, token: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE sessions SET server_pid=?2, server_token=?3 WHERE session_id=?1",
            args![id, pid, token],
        )? > 0)
    }
}

/// Registering on weak evidence named a row another agent process owns; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignSession {
    pub id8: String,
    pub owner_pid: Option<i32>,
}

impl std::fmt::Display for ForeignSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SA-{} is the session of agent pid {}; weak evidence does not take it",
            self.id8,
            self.owner_pid
                .map(|p| p.to_string())
                .unwrap_or_else(|| "?".into())
        )
    }
}

impl std::error::Error for ForeignSession {}

/// A session that is gone, and how it ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EndedSession {
    pub session_id: String,
    pub id8: String,
    pub name: Option<String>,
    pub role: Option<String>,
    pub current_task: Option<String>,
    pub agent_pid: Option<i32>,
    pub ended_at: String,
    pub how: String,
}

/// `ended_sessions` keeps one record per id: the latest end.
const ENDED_UPSERT: &str = "ON CONFLICT (session_id) DO UPDATE SET id8=excluded.id8,
    name=excluded.name, role=excluded.role, current_task=excluded.current_task,
    agent_pid=excluded.agent_pid, ended_at_ms=excluded.ended_at_ms, how=excluded.how";

fn record_end(tx: &Conn, row: &SessionRow, how: &str) -> Result<usize> {
    tx.execute(
        &format!(
            "INSERT INTO ended_sessions
               (session_id, id8, name, role, current_task, agent_pid, ended_at_ms, how)
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8) {ENDED_UPSERT}"
        ),
        args![
            row.session_id,
            row.id8,
            row.name,
            row.role,
            row.current_task,
            row.agent_pid,
            clock::now_ms(),
            how
        ],
    )
}

/// A stronger earlier evidence is kept only while the owner is unchanged.
fn existing_owner_matches(existing: Option<&SessionRow>, reg: &Registration<'_>) -> bool {
    match (existing, reg.agent) {
        (Some(e), Some(a)) => {
            e.agent_pid == Some(a.pid) && e.agent_started_at == Some(a.start_ticks)
        }
        (Some(_), None) => true,
        _ => false,
    }
}

/// `id`'s row as `tx` sees it.
fn row_in(tx: &Conn, id: &str) -> Result<Option<SessionRow>> {
    tx.query_opt(
        &format!("SELECT {COLS} FROM sessions WHERE session_id=?1"),
        args![id],
        from_row,
    )
}

/// Upserts `reg.id` inside `tx`, moving to it every other row of the same agent process
/// and `also` (a row a rebind names); the last moved row lends its name, role and kind.
fn register_in(tx: &Conn, reg: &Registration<'_>, also: Option<SessionRow>) -> Result<Registered> {
    let now = clock::iso(clock::now_ms());
    let h = host_id();
    if reg.evidence.is_provisional() {
        // Checked inside the write transaction: weak evidence never adopts a row another
        // agent process registered, even one registering at this very moment.
        if let Some(e) = row_in(tx, reg.id.as_str())?.filter(|e| e.agent_pid.is_some()) {
            let ours = reg.agent.is_some_and(|a| {
                e.agent_pid == Some(a.pid) && e.agent_started_at == Some(a.start_ticks)
            });
            if !ours {
                return Err(ForeignSession {
                    id8: e.id8,
                    owner_pid: e.agent_pid,
                }
                .into());
            }
        }
    }
    let mut out = Registered::default();
    let mut olds: Vec<SessionRow> = Vec::new();
    if let Some(a) = reg.agent {
        olds = tx.query_map(
            &format!(
                "SELECT {COLS} FROM sessions WHERE host=?1 AND boot_id=?2 AND agent_pid=?3
                 AND agent_started_at=?4 AND session_id<>?5"
            ),
            args![
                h.host,
                h.boot_id,
                a.pid,
                a.start_ticks as i64,
                reg.id.as_str()
            ],
            from_row,
        )?;
    }
    if let Some(row) = also {
        if row.session_id != reg.id.as_str() && !olds.iter().any(|o| o.session_id == row.session_id)
        {
            olds.push(row);
        }
    }
    for old in &olds {
        record_end(tx, old, &format!("moved to SA-{}", reg.id.id8()))?;
        tx.execute(
            "DELETE FROM sessions WHERE session_id=?1",
            args![old.session_id],
        )?;
        if vouched(old) {
            out.carried
                .add(carry_over(tx, &old.session_id, reg.id.as_str())?);
            out.carried_from = Some(old.session_id.clone());
        }
        out.moved_from.push(old.session_id.clone());
    }
    let carried = olds.pop();
    let existing = row_in(tx, reg.id.as_str())?;
    let evidence = existing
        .as_ref()
        .and_then(|e| e.evidence.as_deref().and_then(Evidence::parse))
        .filter(|prev| *prev > reg.evidence && existing_owner_matches(existing.as_ref(), reg))
        .unwrap_or(reg.evidence);
    let base = existing.as_ref().or(carried.as_ref());
    let pick = |new: Option<&str>, old: Option<&String>| -> Option<String> {
        new.map(str::to_string).or_else(|| old.cloned())
    };
    let mut role = pick(reg.role, base.map(|b| &b.role)).unwrap_or_else(|| "subordinate".into());
    if let (Some(wanted), Some(LiveTest(live))) = (reg.role, reg.sole_role) {
        let holders = tx.query_map(
            &format!("SELECT {COLS} FROM sessions WHERE role=?1 AND session_id<>?2"),
            args![wanted, reg.id.as_str()],
            from_row,
        )?;
        if let Some(h) = holders.into_iter().find(|h| live(h)) {
            role = "subordinate".into();
            out.role_held_by = Some(h);
        }
    }
    let name = pick(reg.name, base.and_then(|b| b.name.as_ref()));
    let kind = pick(reg.kind, base.and_then(|b| b.kind.as_ref()));
    let agent_cli = pick(reg.cli, base.and_then(|b| b.agent_cli.as_ref()));
    let (server_pid, server_token) = match reg.server {
        Some((pid, tok)) => (Some(pid), Some(tok.to_string())),
        None => (
            base.and_then(|b| b.server_pid),
            base.and_then(|b| b.server_token.clone()),
        ),
    };
    let (agent_pid, agent_start, host, boot) = match reg.agent {
        Some(a) => (
            Some(a.pid),
            Some(a.start_ticks as i64),
            Some(h.host.clone()),
            Some(h.boot_id.clone()),
        ),
        None => match existing.as_ref() {
            Some(e) => (
                e.agent_pid,
                e.agent_started_at.map(|v| v as i64),
                e.host.clone(),
                e.boot_id.clone(),
            ),
            None => (None, None, Some(h.host.clone()), Some(h.boot_id.clone())),
        },
    };
    // Another id may hold this owner slot only if it is this very row (checked above);
    // the unique index makes a second owner row impossible.
    if existing.is_some() {
        tx.execute(
            "UPDATE sessions SET role=?2, name=?3, kind=?4, last_heartbeat_at=?5,
               agent_pid=?6, agent_started_at=?7, host=?8, boot_id=?9, server_pid=?10,
               server_token=?11, evidence=?12, agent_cli=?13
             WHERE session_id=?1",
            args![
                reg.id.as_str(),
                role,
                name,
                kind,
                now,
                agent_pid,
                agent_start,
                host,
                boot,
                server_pid,
                server_token,
                evidence.as_str(),
                agent_cli
            ],
        )?;
    } else {
        // A row of a *different* agent process may own this slot only if that agent is
        // this one, which the move above already cleared.
        tx.execute(
            "INSERT INTO sessions (session_id, id8, role, name, started_at, last_heartbeat_at,
               current_task, kind, agent_pid, agent_started_at, server_pid, server_token, host,
               boot_id, evidence, activity, activity_since, agent_cli)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, NULL, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 'idle', ?5, ?14)",
            args![
                reg.id.as_str(),
                reg.id.id8(),
                role,
                name,
                now,
                kind,
                agent_pid,
                agent_start,
                server_pid,
                server_token,
                host,
                boot,
                evidence.as_str(),
                agent_cli
            ],
        )?;
        out.created = true;
    }
    Ok(out)
}

/// What a move handed from the old id to the new one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Carried {
    pub messages: usize,
    pub notices: usize,
    pub claims: usize,
    pub touches: usize,
}

impl Carried {
    fn add(&mut self, o: Carried) {
        self.messages += o.messages;
        self.notices += o.notices;
        self.claims += o.claims;
        self.touches += o.touches;
    }
}

/// Whether a row's id is known to be this agent's own: anything but the shared legacy
/// file, which may have named some other (since dead) session. Only such rows hand over
/// mail and claims when they move.
fn vouched(row: &SessionRow) -> bool {
    row.evidence.as_deref() != Some(Evidence::Legacy.as_str())
}

/// When an agent process's row moves (`/clear`, `/resume`, a late explicit id), what the
/// old id was owed or held moves too: the terminal is the same agent to its siblings, so
/// mail not yet in any context, pending notices, claims (its uncommitted files are still
/// there) and the file ledger follow the row instead of lapsing with the old id.
fn carry_over(tx: &Conn, old: &str, new: &str) -> Result<Carried> {
    // Where the new id already has a row of the same key, the old one stays behind (and
    // is deleted below): an upsert-free move both engines run alike.
    let messages = tx.execute(
        "UPDATE deliveries SET recipient_id=?2 WHERE recipient_id=?1 AND state='queued'
         AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id=deliveries.message_id
           AND d.recipient_id=?2)",
        args![old, new],
    )?;
    let notices = tx.execute(
        // Pending notices, leased ones too (a lease is a negative stamp; see messages.rs).
        "UPDATE notices SET session_id=?2 WHERE session_id=?1 AND (delivered_at_ms IS NULL OR delivered_at_ms < 0)",
        args![old, new],
    )?;
    // The new id may already hold a pattern the old one held: keep one, drop the other.
    let claims = tx.execute(
        "UPDATE claims SET session_id=?2 WHERE session_id=?1
         AND NOT EXISTS (SELECT 1 FROM claims c WHERE c.session_id=?2 AND c.pattern=claims.pattern)",
        args![old, new],
    )?;
    tx.execute("DELETE FROM claims WHERE session_id=?1", args![old])?;
    tx.execute(
        "UPDATE claim_waiters SET session_id=?2 WHERE session_id=?1
         AND NOT EXISTS (SELECT 1 FROM claim_waiters w WHERE w.session_id=?2
           AND w.claim_id=claim_waiters.claim_id)",
        args![old, new],
    )?;
    tx.execute("DELETE FROM claim_waiters WHERE session_id=?1", args![old])?;
    tx.execute(
        "UPDATE tree_snapshots SET session_id=?2 WHERE session_id=?1
         AND NOT EXISTS (SELECT 1 FROM tree_snapshots t WHERE t.session_id=?2)",
        args![old, new],
    )?;
    tx.execute("DELETE FROM tree_snapshots WHERE session_id=?1", args![old])?;
    let touches = tx.execute(
        "UPDATE touches SET session_id=?2 WHERE session_id=?1",
        args![old, new],
    )?;
    Ok(Carried {
        messages,
        notices,
        claims,
        touches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_evidence_never_adopts_another_agents_row() -> Result<()> {
        let mut store = Store::open_in_memory()?;
        let id = SessionId::parse("bbbbbbbb-owned").map_err(anyhow::Error::msg)?;
        let owner = AgentProcess {
            pid: 4242,
            start_ticks: 7,
        };
        let mut reg = Registration::new(&id, Evidence::Explicit);
        reg.agent = Some(owner);
        store.register(&reg)?;
        for ev in [Evidence::Legacy, Evidence::PidAnchor] {
            let mut weak = Registration::new(&id, ev);
            weak.agent = Some(AgentProcess {
                pid: 4343,
                start_ticks: 9,
            });
            let err = store.register(&weak).err();
            assert!(
                err.as_ref()
                    .is_some_and(|e| e.downcast_ref::<ForeignSession>().is_some()),
                "{err:?}"
            );
            // No agent at all is not the owner either.
            assert!(store.register(&Registration::new(&id, ev)).is_err());
        }
        let row = store.get(id.as_str())?;
        assert_eq!(row.and_then(|r| r.agent_pid), Some(4242), "row moved");
        // The owner itself may re-register on any evidence.
        let mut again = Registration::new(&id, Evidence::Legacy);
        again.agent = Some(owner);
        store.register(&again)?;
        Ok(())
    }
}
