//! `orchestrator status`: the fleet for a person — a table (colored on a terminal) or
//! `--json`; `--all` adds sessions that are gone and how they ended.

use crate::core::identity::Probe;
use crate::core::identity::SystemProbe;
use crate::core::liveness::{self, Policy};
use crate::core::paths::ProjectPaths;
use crate::core::store::sessions::EndedSession;
use crate::core::store::wake::WakeRow;
use crate::core::store::{SessionRow, Store};
use crate::core::text::{self, inline};
use crate::core::{clock, ledger, render, roster, treewatch};
use anyhow::Result;
use std::io::IsTerminal;

/// How far back `--all` shows ended sessions.
pub const ENDED_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// One line of the table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    pub session_id: String,
    pub id8: String,
    pub name: Option<String>,
    pub role: String,
    /// The coding-agent CLI the session runs: `claude`, `codex` or `gemini`.
    pub agent_cli: Option<String>,
    pub current_task: Option<String>,
    /// What the session does: its set task, else its title, else its latest prompt's gist.
    pub doing: Option<String>,
    /// Which of the three `doing` is: `task`, `title` or `prompt`.
    pub doing_kind: Option<render::DoingKind>,
    pub last_heartbeat_at: Option<String>,
    pub agent_pid: Option<i32>,
    /// The host its agent process runs on (hostname), as its row records it: on a shared
    /// server a fleet spans machines, and `agent_pid` means something only there.
    pub host: Option<String>,
    /// The worktree the session works in (`.` = main checkout) and its branch.
    pub worktree: Option<String>,
    pub branch: Option<String>,
    pub live: bool,
    /// busy/idle and since when, for live rows; how it ended, for gone ones.
    pub state: String,
    pub files: Vec<String>,
    /// Files this session changed that are still uncommitted (git projects).
    pub uncommitted_files: Vec<String>,
    pub unacked_messages: i64,
    /// How a message wakes it (live rows): `doorbell`, `doorbell (held: bypass mode)`,
    /// `wait hook`, or `next turn (no doorbell)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wake: Option<String>,
    /// Since when a ring for it is pending (it has not taken that mail yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring_pending_since: Option<String>,
    /// Messages to it not yet in its context.
    #[serde(skip)]
    pub queued: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    #[serde(skip)]
    pub seen_ms: Option<i64>,
}

/// Collects the entries `status` shows.
pub fn collect(store: &Store, all: bool) -> Result<Vec<Entry>> {
    collect_in(store, all, None)
}

/// The paths with uncommitted changes in the checkout at `paths.root`: from a session's
/// server watching it (its picture is what `git status` says), else from `git status`.
pub fn uncommitted(paths: &ProjectPaths) -> Vec<String> {
    if let Some(d) = treewatch::client::dirty(&paths.state_dir, &paths.root) {
        return d;
    }
    let tree = ledger::snapshot(&paths.root);
    ledger::dirty(&tree).into_iter().map(String::from).collect()
}

/// [`collect`], also computing uncommitted files when `paths` is given.
pub fn collect_in(store: &Store, all: bool, paths: Option<&ProjectPaths>) -> Result<Vec<Entry>> {
    let now = clock::now_ms();
    let dirty: std::collections::HashSet<String> = paths
        .map(uncommitted)
        .unwrap_or_default()
        .into_iter()
        .collect();
    let policy = Policy::from_env();
    let files = {
        let rows = store.all_sessions()?;
        let ids: Vec<&str> = rows.iter().map(|r| r.session_id.as_str()).collect();
        store.recent_files(&ids, now - roster::files_window_ms(), 8)?
    };
    let inbound = paths.and_then(|p| crate::core::doorbell::inbound_setting(&p.root));
    let queued: std::collections::HashMap<String, i64> =
        store.queued_by_recipient()?.into_iter().collect();
    let mut out = Vec::new();
    for r in store.all_sessions()? {
        let v = liveness::verdict(&r, now, &SystemProbe, policy);
        if !v.is_live() && !all {
            continue;
        }
        let state = if v.is_live() {
            activity(&r, now)
        } else {
            v.as_str().to_string()
        };
        let uncommitted = if dirty.is_empty() {
            Vec::new()
        } else {
            store
                .paths_of_session(&r.session_id, 0, 500)?
                .into_iter()
                .filter(|p| dirty.contains(p))
                .collect()
        };
        let (doing_kind, doing) = render::doing(&r)
            .map(|(k, t)| (Some(k), Some(t.to_string())))
            .unwrap_or((None, None));
        let wake = if v.is_live() {
            store.wake_of(&r.session_id)?
        } else {
            None
        };
        out.push(Entry {
            ring_pending_since: wake.as_ref().and_then(|w| w.rung_at_ms).map(clock::iso),
            wake: wake
                .as_ref()
                .map(|w| wake_word(w, inbound.as_deref(), store.is_shared())),
            queued: queued.get(&r.session_id).copied().unwrap_or(0),
            uncommitted_files: uncommitted,
            files: files.get(&r.session_id).cloned().unwrap_or_default(),
            unacked_messages: store.unacked_count(&r.session_id)?,
            live: v.is_live(),
            state,
            seen_ms: Some(now - r.heartbeat_ms()),
            session_id: r.session_id,
            id8: r.id8,
            name: r.name,
            role: r.role,
            agent_cli: r.agent_cli,
            doing,
            doing_kind,
            current_task: r.current_task,
            last_heartbeat_at: Some(r.last_heartbeat_at),
            agent_pid: r.agent_pid,
            host: r.host,
            worktree: r.worktree,
            branch: r.branch,
            ended_at: None,
        });
    }
    if all {
        for e in store.ended_since(now - ENDED_WINDOW_MS)? {
            if out.iter().any(|x| x.session_id == e.session_id) {
                continue;
            }
            out.push(ended(store, e)?);
        }
    }
    Ok(out)
}

fn ended(store: &Store, e: EndedSession) -> Result<Entry> {
    Ok(Entry {
        unacked_messages: store.unacked_count(&e.session_id)?,
        session_id: e.session_id,
        id8: e.id8,
        name: e.name,
        role: e.role.unwrap_or_else(|| "subordinate".into()),
        agent_cli: None,
        doing: e.current_task.clone(),
        doing_kind: e.current_task.as_ref().map(|_| render::DoingKind::Task),
        current_task: e.current_task,
        last_heartbeat_at: None,
        agent_pid: e.agent_pid,
        host: None,
        worktree: None,
        branch: None,
        live: false,
        state: format!("ended: {}", e.how),
        files: Vec::new(),
        uncommitted_files: Vec::new(),
        wake: None,
        ring_pending_since: None,
        queued: 0,
        seen_ms: clock::parse_iso(&e.ended_at).map(|t| clock::now_ms() - t),
        ended_at: Some(e.ended_at),
    })
}

/// How a message wakes a live session, in a word or three. On a shared server a session
/// on another host is rung by its own server there, as its recorded doorbell says;
/// this host cannot check that socket or its waiter.
fn wake_word(w: &WakeRow, inbound: Option<&str>, shared: bool) -> String {
    if shared && w.elsewhere {
        return match (&w.doorbell, w.waiter) {
            (Some(_), _) => "doorbell (rung on its host)".into(),
            (None, Some(_)) => "wait hook (on its host)".into(),
            (None, None) => "next turn (no doorbell)".into(),
        };
    }
    let bell = w.local_agent.is_some()
        && w.doorbell
            .as_deref()
            .is_some_and(|d| crate::core::doorbell::validate(d).is_ok());
    let waiter = w
        .waiter
        .is_some_and(|x| SystemProbe.is_alive(x.pid, x.start_ticks));
    match (bell, inbound) {
        (true, Some("refuse")) => "next turn (crossSessionInbound: refuse)".into(),
        (true, Some("hold")) => "doorbell (held: crossSessionInbound hold)".into(),
        (true, i) if w.bypass() && i != Some("accept") => "doorbell (held: bypass mode)".into(),
        (true, _) => "doorbell".into(),
        (false, _) if waiter => "wait hook".into(),
        (false, _) => "next turn (no doorbell)".into(),
    }
}

/// A line under the table for each live session with mail waiting that no ring can
/// bring now.
pub fn wake_notes(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e.live && e.queued > 0)
        .filter_map(|e| {
            let w = e.wake.as_deref()?;
            let id = format!("SA-{}", text::id8(&e.id8));
            let n = e.queued;
            if w.starts_with("next turn") {
                Some(format!(
                    "{id}: {n} message(s) wait for its next turn ({})",
                    w.trim_start_matches("next turn (").trim_end_matches(')')
                ))
            } else if w.contains("held: bypass") {
                Some(format!(
                    "{id}: {n} message(s) wait; it runs in bypass mode, so its ring waits for \
                     approval in its terminal (\"crossSessionInbound\": \"accept\" in \
                     ~/.claude/settings.json lets rings through; see README)"
                ))
            } else if w.contains("held") {
                Some(format!(
                    "{id}: {n} message(s) wait; its crossSessionInbound setting holds rings for \
                     approval in its terminal"
                ))
            } else {
                None
            }
        })
        .collect()
}

/// Recent files, uncommitted ones marked `*`, then uncommitted older ones.
fn files_cell(e: &Entry) -> String {
    let mut v: Vec<String> = e
        .files
        .iter()
        .map(|f| {
            let star = if e.uncommitted_files.contains(f) {
                "*"
            } else {
                ""
            };
            format!("{}{star}", inline(f, text::PATH))
        })
        .collect();
    v.extend(
        e.uncommitted_files
            .iter()
            .filter(|f| !e.files.contains(f))
            .map(|f| format!("{}*", inline(f, text::PATH))),
    );
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

fn activity(r: &SessionRow, now: i64) -> String {
    match (
        r.activity.as_deref(),
        r.activity_since.as_deref().and_then(clock::parse_iso),
    ) {
        (Some(a), Some(t)) => format!("{a} {}", clock::age(now - t)),
        _ => "-".into(),
    }
}

/// The TASK cell: a set task as is; a title or prompt gist in quotes (not set by anyone).
pub fn doing_cell(e: &Entry, max: usize) -> String {
    match (e.doing.as_deref(), e.doing_kind) {
        (Some(t), Some(render::DoingKind::Task)) | (Some(t), None) => inline(t, max).into_owned(),
        (Some(t), Some(_)) => format!("\"{}\"", inline(t, max.saturating_sub(2))),
        (None, _) => "-".into(),
    }
}

/// `branch` plus the worktree when it is not the main checkout: `feat · .claude/worktrees/feat`.
pub fn place(e: &Entry) -> String {
    match (e.branch.as_deref(), e.worktree.as_deref()) {
        (Some(b), Some(w)) if w != "." => format!("{b} · {w}"),
        (Some(b), _) => b.to_string(),
        (None, Some(w)) => w.to_string(),
        (None, None) => "-".into(),
    }
}

/// The table as text; `color` adds ANSI bold for live ids and dim for gone rows.
pub fn render_table(entries: &[Entry], color: bool) -> String {
    if entries.is_empty() {
        return "no live sessions\n".into();
    }
    // Where each session works, only when sessions work in more than one place.
    let places: Vec<String> = entries.iter().map(place).collect();
    let show_place = places.iter().any(|p| p != &places[0]);
    let place_col = |p: &str| {
        if show_place {
            format!("{:<24} ", inline(p, 24))
        } else {
            String::new()
        }
    };
    // Which machine each session runs on, only when the fleet spans more than one (a
    // shared server): the PID column means something only there.
    let hosts: Vec<&str> = entries
        .iter()
        .map(|e| e.host.as_deref().unwrap_or("-"))
        .collect();
    let show_host = {
        let known: std::collections::HashSet<&str> =
            entries.iter().filter_map(|e| e.host.as_deref()).collect();
        known.len() > 1
    };
    let host_col = |h: &str| {
        if show_host {
            format!("{:<12} ", inline(h, 12))
        } else {
            String::new()
        }
    };
    let mut s = format!(
        "{:<11} {}{}{:<10} {:<6} {:<11} {:<30} {:<12} {:<7} {:<7} {:<4} FILES\n",
        "SESSION",
        host_col("HOST"),
        place_col("WHERE"),
        "NAME",
        "AGENT",
        "ROLE",
        "TASK",
        "STATE",
        "SEEN",
        "PID",
        "MSGS"
    );
    for ((e, p), h) in entries.iter().zip(&places).zip(&hosts) {
        let line = format!(
            "{:<11} {}{}{:<10} {:<6} {:<11} {:<30} {:<12} {:<7} {:<7} {:<4} {}",
            format!("SA-{}", text::id8(&e.id8)),
            host_col(h),
            place_col(p),
            inline(e.name.as_deref().unwrap_or("-"), 10),
            inline(e.agent_cli.as_deref().unwrap_or("-"), 6),
            inline(&e.role, 11),
            doing_cell(e, 30),
            inline(&e.state, if e.live { 12 } else { 80 }),
            e.seen_ms.map(clock::age).unwrap_or_else(|| "-".into()),
            e.agent_pid
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            e.unacked_messages,
            files_cell(e)
        );
        let line = line.trim_end();
        if color && !e.live {
            s.push_str(&format!("\x1b[2m{line}\x1b[0m\n"));
        } else if let (true, Some(head), Some(tail)) = (color, line.get(..11), line.get(11..)) {
            s.push_str(&format!("\x1b[1m{head}\x1b[0m{tail}\n"));
        } else {
            s.push_str(line);
            s.push('\n');
        }
    }
    s
}

pub fn run(json: bool, all: bool) -> Result<i32> {
    let Some((paths, store)) = super::open_existing()? else {
        println!("{}", if json { "[]" } else { "no live sessions" });
        return Ok(0);
    };
    let entries = collect_in(&store, all, Some(&paths))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else {
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        print!("{}", render_table(&entries, color));
        if entries.iter().any(|e| !e.uncommitted_files.is_empty()) {
            println!("(* = changed by that session and still uncommitted)");
        }
        for note in wake_notes(&entries) {
            println!("{note}");
        }
    }
    Ok(0)
}
