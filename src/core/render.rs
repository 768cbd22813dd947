//! The text blocks agents and people read. Pure functions of their inputs.

use crate::core::clock;
use crate::core::store::SessionRow;
use crate::core::text::{self, inline};

/// Siblings listed in full before the block says how many more there are.
pub const MAX_SHOWN: usize = 8;
/// Longest task text shown in a roster line.
const TASK_CHARS: usize = 80;

/// A sibling as the block shows it: its row plus the files it touched recently.
#[derive(Debug, Clone)]
pub struct SiblingView<'a> {
    pub row: &'a SessionRow,
    pub files: Vec<String>,
}

/// `SA-1a2b3c4d` — how a session is addressed and named in text.
pub fn handle(row: &SessionRow) -> String {
    format!("SA-{}", text::id8(&row.id8))
}

/// How a session is called in text: its name, else its role.
pub fn called(row: &SessionRow) -> String {
    inline(row.name.as_deref().unwrap_or(&row.role), text::NAME).into_owned()
}

/// The coding-agent CLI a session runs (`claude`, `codex`, `gemini`), as text shows it.
pub fn cli(row: &SessionRow) -> Option<std::borrow::Cow<'_, str>> {
    row.agent_cli
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| inline(c, 16))
}

/// How we know what a session is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DoingKind {
    /// Set with `update_session_task` (always wins).
    Task,
    /// The title the client gave the session.
    Title,
    /// The gist of the person's latest prompt.
    Prompt,
}

/// What `row` is doing, and how we know: its set task, else its title, else the gist of
/// its latest prompt.
pub fn doing(row: &SessionRow) -> Option<(DoingKind, &str)> {
    fn set(s: &Option<String>) -> Option<&str> {
        s.as_deref().filter(|t| !t.trim().is_empty())
    }
    set(&row.current_task)
        .map(|t| (DoingKind::Task, t))
        .or_else(|| set(&row.title).map(|t| (DoingKind::Title, t)))
        .or_else(|| set(&row.prompt_gist).map(|t| (DoingKind::Prompt, t)))
}

/// [`doing`] as text: `parser rewrite`, `"fix login" (session title)`,
/// `"split the parser" (latest prompt, 4 min ago)`, or `(no task set)`.
pub fn doing_text(row: &SessionRow, now_ms: i64, max: usize) -> String {
    match doing(row) {
        Some((DoingKind::Task, t)) => inline(t, max).into_owned(),
        Some((DoingKind::Title, t)) => format!("\"{}\" (session title)", inline(t, max)),
        Some((DoingKind::Prompt, t)) => format!(
            "\"{}\" (latest prompt{})",
            inline(t, max),
            row.prompt_gist_at_ms
                .map(|at| format!(", {} ago", clock::age(now_ms - at)))
                .unwrap_or_default()
        ),
        None => "(no task set)".into(),
    }
}

/// A sibling's task as text shows it.
pub fn task(row: &SessionRow) -> String {
    doing_text(row, clock::now_ms(), text::TASK)
}

/// Paths as text shows them, comma-separated.
pub fn paths<S: AsRef<str>>(paths: &[S]) -> String {
    paths
        .iter()
        .map(|p| inline(p.as_ref(), text::PATH))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a session works, when that is not `here` (the reader's worktree):
/// ` in feat · .claude/worktrees/feat`.
pub fn place(row: &SessionRow, here: Option<&str>) -> String {
    // A session on another host (a shared server) works in another checkout: say where.
    let remote = row
        .host
        .as_deref()
        .filter(|h| *h != crate::core::identity::process::host_id().host);
    let host = remote.map_or(String::new(), |h| format!(" on {}", inline(h, text::NAME)));
    let Some(wt) = row
        .worktree
        .as_deref()
        .filter(|w| remote.is_some() || Some(*w) != here)
    else {
        return host;
    };
    let wt_text = if wt == "." {
        "main checkout".into()
    } else {
        inline(wt, text::PATH)
    };
    match row.branch.as_deref() {
        Some(b) => format!("{host} in {} · {wt_text}", inline(b, text::NAME)),
        None => format!("{host} in {wt_text}"),
    }
}

/// One roster line: handle, name, CLI and role, where (if elsewhere), task, turn state,
/// last seen, files: `- SA-1a2b3c4d "api" (codex, subordinate) — task · busy 2m · ...`.
pub fn session_line(row: &SessionRow, files: &[String], now_ms: i64, here: Option<&str>) -> String {
    let mut s = format!("- {}", handle(row));
    if let Some(n) = row.name.as_deref().filter(|n| !n.is_empty()) {
        s.push_str(&format!(" \"{}\"", inline(n, text::NAME)));
    }
    match cli(row) {
        Some(c) => s.push_str(&format!(" ({c}, {})", inline(&row.role, text::NAME))),
        None => s.push_str(&format!(" ({})", inline(&row.role, text::NAME))),
    }
    s.push_str(&place(row, here));
    s.push_str(&format!(" — {}", doing_text(row, now_ms, TASK_CHARS)));
    if let (Some(a), Some(since)) = (row.activity.as_deref(), row.activity_since.as_deref()) {
        if let Some(ms) = clock::parse_iso(since) {
            let a = inline(a, text::NAME);
            s.push_str(&format!(" · {a} {}", clock::age(now_ms - ms)));
        }
    }
    s.push_str(&format!(
        " · seen {} ago",
        clock::age(now_ms - row.heartbeat_ms())
    ));
    if !files.is_empty() {
        let shown = &files[..files.len().min(5)];
        s.push_str(&format!(" · files: {}", paths(shown)));
        if files.len() > shown.len() {
            s.push_str(&format!(" (+{})", files.len() - shown.len()));
        }
    }
    s
}

/// The sibling block; empty when there are no siblings. Never truncates silently. `here`
/// is the reader's worktree: siblings elsewhere say where they work.
pub fn sibling_block(siblings: &[SiblingView<'_>], now_ms: i64, here: Option<&str>) -> String {
    let total = siblings.len();
    if total == 0 {
        return String::new();
    }
    let noun = if total == 1 { "session" } else { "sessions" };
    let mut out = if total > MAX_SHOWN {
        format!(
            "[orchestrator] {MAX_SHOWN} of {total} sibling {noun} shown ({} more):\n",
            total - MAX_SHOWN
        )
    } else {
        format!("[orchestrator] {total} sibling {noun} active:\n")
    };
    for v in siblings.iter().take(MAX_SHOWN) {
        out.push_str(&session_line(v.row, &v.files, now_ms, here));
        out.push('\n');
    }
    out
}

/// A stable fingerprint of what the block would say (ids, names, roles, tasks, files), so
/// a hook can skip repeating an unchanged roster. Ages are left out on purpose.
pub fn roster_fingerprint(siblings: &[SiblingView<'_>]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |s: &str| {
        for b in s.bytes().chain(std::iter::once(0xff)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for v in siblings {
        feed(&v.row.session_id);
        feed(v.row.name.as_deref().unwrap_or(""));
        feed(&v.row.role);
        feed(v.row.current_task.as_deref().unwrap_or(""));
        feed(v.row.title.as_deref().unwrap_or(""));
        feed(v.row.prompt_gist.as_deref().unwrap_or(""));
        feed(v.row.worktree.as_deref().unwrap_or(""));
        feed(v.row.branch.as_deref().unwrap_or(""));
        for f in &v.files {
            feed(f);
        }
    }
    format!("{h:016x}:{}", siblings.len())
}
