//! `orchestrator doctor`: explains identity for this project — anchors (valid or stale
//! and why), rows (live or dead and why), drift between them, database integrity and
//! schema, state-dir permissions, symlinks and writability, invalid settings — each
//! finding with its fix. Exit 1 when something is wrong.

use crate::core::clock;
use crate::core::fleet;
use crate::core::identity::anchor::{self, AnchorContent};
use crate::core::identity::resolver::{self, Inputs};
use crate::core::identity::{process, Probe, SystemProbe};
use crate::core::liveness::{self, Policy};
use crate::core::paths::{ProjectPaths, ANCHOR_PREFIX, LEGACY_ANCHOR};
use crate::core::private_fs;
use crate::core::settings;
use crate::core::store::repair::{self, Diagnosis};
use crate::core::store::Store;
use crate::core::text;
use anyhow::Result;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Severity of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Info,
    Problem,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Finding {
    pub level: Level,
    pub what: String,
    pub fix: Option<String>,
}

fn f(level: Level, what: impl Into<String>, fix: Option<&str>) -> Finding {
    Finding {
        level,
        what: what.into(),
        fix: fix.map(str::to_string),
    }
}

/// Examines the project; pure reads except that it narrows state files this user owns
/// to their private modes (and says so).
/// Which worktree this is, and a registry left in a linked worktree by a version that
/// kept one per directory (no longer read: every worktree shares the main checkout's).
fn worktree_findings(paths: &ProjectPaths, out: &mut Vec<Finding>) {
    let Some(w) = paths.worktree.as_ref() else {
        return;
    };
    out.push(f(
        Level::Info,
        format!(
            "git worktree {} (branch {}); registry shared by every worktree: {}",
            text::inline(&w.label(), text::PATH),
            text::inline(w.branch().as_deref().unwrap_or("?"), text::NAME),
            paths.state_dir.display()
        ),
        None,
    ));
    let old = w.root.join(crate::core::paths::STATE_DIR);
    if !w.is_main() && std::fs::symlink_metadata(&old).is_ok() {
        out.push(f(
            Level::Info,
            format!(
                "{} is a registry from before worktrees shared one; nothing reads it now",
                old.display()
            ),
            Some(&format!(
                "rm -r {} (this worktree's sessions register in {})",
                old.display(),
                paths.state_dir.display()
            )),
        ));
    }
}

pub fn examine(paths: &ProjectPaths, probe: &dyn Probe) -> Vec<Finding> {
    let mut out = Vec::new();
    out.push(f(
        Level::Info,
        format!("project root {}", paths.root.display()),
        None,
    ));
    settings_findings(&mut out);
    worktree_findings(paths, &mut out);
    fleet_findings(paths, &mut out);
    // Other CLIs wired here: will they run our hooks?
    out.extend(super::install_codex::findings(&paths.root));
    out.extend(super::install_gemini::findings(&paths.root));
    match std::fs::symlink_metadata(&paths.state_dir) {
        Err(_) => {
            out.push(f(
                Level::Info,
                "no state dir yet (no session has run here)",
                None,
            ));
            return out;
        }
        Ok(m) if m.file_type().is_symlink() => {
            out.push(f(
                Level::Problem,
                format!(
                    "state dir {} is a symlink; orchestrator never follows it",
                    paths.state_dir.display()
                ),
                Some(&format!(
                    "rm {} (a new one is created at the next session)",
                    paths.state_dir.display()
                )),
            ));
            return out;
        }
        Ok(_) => {}
    }
    let links = private_findings(paths, &mut out);
    if std::fs::symlink_metadata(paths.state_dir.join(".gitignore")).is_err() {
        out.push(f(
            Level::Problem,
            "state dir has no .gitignore; git may pick it up",
            Some("run any orchestrator hook or `orchestrator gc` to recreate it"),
        ));
    }
    // Database.
    let db = paths.db_path();
    let diagnosis = if links {
        out.push(f(
            Level::Info,
            "database not opened while a state path is a symlink (see above)",
            None,
        ));
        Diagnosis::Missing
    } else {
        repair::diagnose(paths)
    };
    let store = match diagnosis {
        Diagnosis::Missing if links => None,
        Diagnosis::Missing => {
            out.push(f(Level::Info, "no database yet", None));
            None
        }
        Diagnosis::Healthy(s) => {
            out.push(f(
                Level::Ok,
                format!(
                    "database ok (quick_check; schema v{})",
                    s.schema_version().unwrap_or(0)
                ),
                None,
            ));
            Some(s)
        }
        Diagnosis::Damaged(what) => {
            for w in what {
                out.push(f(
                    Level::Problem,
                    format!("database {} is corrupt: {w}", db.display()),
                    Some(REPAIR),
                ));
            }
            None
        }
        Diagnosis::Unopenable(e) => {
            out.push(f(Level::Problem, format!("{e:#}"), Some(REPAIR)));
            None
        }
        // The message names the cause and its fix (locked, read-only, a symlink).
        Diagnosis::Unusable(e) => {
            out.push(f(Level::Problem, format!("{e:#}"), None));
            None
        }
    };
    // Anchors.
    let rows = store
        .as_ref()
        .and_then(|s| s.all_sessions().ok())
        .unwrap_or_default();
    let mut names: Vec<String> = std::fs::read_dir(&paths.state_dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    // Per-pid anchors in pid order, then everything else by name.
    names.sort_by_key(|n| {
        (
            anchor::parse_anchor_name(n)
                .map(i64::from)
                .unwrap_or(i64::MAX),
            n.clone(),
        )
    });
    for name in &names {
        if name == LEGACY_ANCHOR {
            let p = paths.legacy_anchor_path();
            match anchor::read_anchor(&p) {
                Ok((c, mtime)) => out.push(f(
                    Level::Info,
                    format!("legacy anchor active-session names SA-{} (written {} ago; weakest evidence, last writer wins)", c.session_id().id8(), clock::age(clock::now_ms() - mtime)),
                    None,
                )),
                Err(e) => out.push(f(Level::Problem, format!("legacy anchor unreadable: {e:#}"), Some("delete it; the next SessionStart rewrites it"))),
            }
            continue;
        }
        if !name.starts_with(ANCHOR_PREFIX) {
            continue;
        }
        let path = paths.state_dir.join(name);
        let Some(pid) = anchor::parse_anchor_name(name) else {
            out.push(f(
                Level::Info,
                format!("{name}: not a per-pid anchor; ignored"),
                None,
            ));
            continue;
        };
        if is_symlink(&path) {
            out.push(f(
                Level::Problem,
                format!("{name} is a symlink; orchestrator never follows it"),
                Some(&format!("rm {}", path.display())),
            ));
            continue;
        }
        match anchor::read_anchor(&path) {
            Err(e) => out.push(f(
                Level::Problem,
                format!("{name}: unreadable ({e:#})"),
                Some("orchestrator gc (once its process is gone) or delete it"),
            )),
            Ok((content, mtime)) => match anchor::judge(pid, &content, mtime, probe) {
                Err(reason) => out.push(f(
                    Level::Problem,
                    format!(
                        "{name} names SA-{}: stale, {reason}",
                        content.session_id().id8()
                    ),
                    Some("orchestrator gc"),
                )),
                Ok(()) => {
                    let owned = rows
                        .iter()
                        .find(|r| r.agent_pid == Some(pid) && r.local_agent().is_some());
                    match owned {
                        Some(r) if r.session_id == content.session_id().as_str() => out.push(f(
                            Level::Ok,
                            format!("{name} names SA-{}: valid, matches its registry row", r.id8),
                            None,
                        )),
                        Some(r) => out.push(f(
                            Level::Problem,
                            format!("drift: {name} names SA-{} but agent pid {pid} owns row SA-{}", content.session_id().id8(), r.id8),
                            Some("the session's next SessionStart rewrites the anchor; or call a tool with session_id"),
                        )),
                        None => out.push(f(
                            Level::Info,
                            format!("{name} names SA-{}: valid, but its agent has no registry row yet", content.session_id().id8()),
                            None,
                        )),
                    }
                    if let AnchorContent::Legacy { .. } = content {
                        out.push(f(
                            Level::Info,
                            format!("{name} is in the legacy bare-id format"),
                            None,
                        ));
                    }
                }
            },
        }
    }
    // Rows.
    let now = clock::now_ms();
    // Row id → verdict, for explaining what is owed to sessions that are not live.
    let mut verdicts = std::collections::HashMap::new();
    for r in &rows {
        let v = liveness::verdict(r, now, probe, Policy::from_env());
        verdicts.insert(r.session_id.as_str(), v);
        let who = format!(
            "row SA-{} ({}, agent pid {})",
            r.id8,
            r.name.as_deref().unwrap_or("unnamed"),
            r.agent_pid
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into())
        );
        if v.is_live() {
            out.push(f(Level::Ok, format!("{who}: {}", v.as_str()), None));
        } else {
            out.push(f(
                Level::Problem,
                format!("{who}: {}", v.as_str()),
                Some("orchestrator gc"),
            ));
        }
    }
    if rows.is_empty() {
        out.push(f(Level::Info, "no registry rows", None));
    }
    if let Some(s) = store.as_ref() {
        owed_to_the_absent(s, &verdicts, &mut out);
    }
    ledger_findings(paths, &mut out);
    // Who am I, if run from inside an agent.
    if let Some(agent) = process::agent_process() {
        let inp = Inputs::from_env(None, Some(agent), paths, &SystemProbe);
        match resolver::resolve(&inp) {
            Ok(Some(r)) => out.push(f(
                Level::Info,
                format!(
                    "this terminal's agent (pid {}) resolves to SA-{} from {}{}",
                    agent.pid,
                    r.id.id8(),
                    r.evidence.as_str(),
                    if r.evidence.is_provisional() {
                        " (provisional)"
                    } else {
                        ""
                    }
                ),
                None,
            )),
            Ok(None) => out.push(f(
                Level::Info,
                format!(
                    "this terminal's agent (pid {}) has no session evidence yet",
                    agent.pid
                ),
                None,
            )),
            Err(e) => out.push(f(
                Level::Problem,
                e,
                Some("fix the session id in the environment"),
            )),
        }
    }
    out
}

/// What each session's server watches for the Bash ledger; a checkout it cannot watch
/// (the inotify watch limit, submodules) is said once, whichever servers hit it.
/// The shared PostgreSQL server, when the project uses one: where (password hidden),
/// under which project id, reachable or not, and whose sessions it holds.
fn fleet_findings(paths: &ProjectPaths, out: &mut Vec<Finding>) {
    let Some(url) = fleet::database_url(paths) else {
        return;
    };
    let shown = crate::core::store::db::pg::redact(&url);
    let from = if crate::core::settings::get().database_url.is_some() {
        "ORCHESTRATOR_DATABASE_URL".to_string()
    } else {
        fleet::url_file(paths).display().to_string()
    };
    let id = match fleet::project_id(paths) {
        Ok(id) => id,
        Err(e) => {
            out.push(f(Level::Problem, format!("{e:#}"), None));
            return;
        }
    };
    let target = crate::core::store::db::pg::Target {
        url,
        project_id: id.clone(),
    };
    match Store::open_pg(&target) {
        Ok(store) => {
            let rows = store.all_sessions().unwrap_or_default();
            let mut hosts: Vec<&str> = rows.iter().filter_map(|r| r.host.as_deref()).collect();
            hosts.sort_unstable();
            hosts.dedup();
            out.push(f(
                Level::Ok,
                format!(
                    "shared database {shown} (from {from}) reachable; project {} in schema {}; \
                     {} session row(s) from {} host(s); this host's clock is {} ms off the server's",
                    text::inline(&id, 80),
                    target.schema(),
                    rows.len(),
                    hosts.len(),
                    crate::core::clock::now_ms() - crate::core::clock::system_ms()
                ),
                None,
            ));
        }
        Err(e) => out.push(f(
            Level::Problem,
            format!("shared database {shown} (from {from}): {e:#}"),
            Some(
                "start the server or fix the URL (postgres://user:password@host:port/database); \
                 hooks stay quiet meanwhile and resume when it answers",
            ),
        )),
    }
}

fn ledger_findings(paths: &ProjectPaths, out: &mut Vec<Finding>) {
    let mut uncovered: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for r in crate::core::treewatch::client::info(&paths.state_dir) {
        for t in r.trees {
            match t.why {
                None => out.push(f(
                    Level::Ok,
                    format!(
                        "Bash ledger: server pid {} watches {} ({} directories, {} paths in \
                         its picture, {} command windows answered)",
                        r.pid, t.root, t.dirs, t.entries, t.answered
                    ),
                    None,
                )),
                Some(why) => uncovered
                    .entry(why)
                    .or_default()
                    .push(format!("{} (server pid {})", t.root, r.pid)),
            }
        }
    }
    for (why, wheres) in uncovered {
        let fix = why
            .contains("watch limit")
            .then_some("sysctl fs.inotify.max_user_watches=524288 (then restart the sessions)");
        out.push(f(
            Level::Info,
            format!(
                "Bash ledger cannot watch {}: {why}; Bash commands there use git status snapshots",
                wheres.join(", ")
            ),
            fix,
        ));
    }
}

const REPAIR: &str = "orchestrator repair (moves it aside as a .bak and rebuilds it with \
                      every row still readable)";

fn is_symlink(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

/// Invalid `ORCHESTRATOR_*` values (each fell back to its default) and unknown names.
fn settings_findings(out: &mut Vec<Finding>) {
    for p in &settings::get().problems {
        out.push(f(
            Level::Problem,
            format!("setting {p}"),
            Some(&format!("set {} to {} or unset it", p.name, p.accepted)),
        ));
    }
    for name in settings::unknown_names() {
        out.push(f(
            Level::Info,
            format!("{name} is not a setting orchestrator knows; ignored"),
            Some("check its spelling against the settings in the README"),
        ));
    }
}

/// The state dir's promise: narrows what this user owns and left wide (an older version
/// created files 0644), then reports what is still wide, a symlink, or not writable.
/// True when a path the database depends on is a symlink (nothing will open it).
fn private_findings(paths: &ProjectPaths, out: &mut Vec<Finding>) -> bool {
    let mut links = false;
    for (p, old) in paths.secure_existing() {
        out.push(f(
            Level::Info,
            format!("{} was mode {old:o}; narrowed to private", p.display()),
            None,
        ));
    }
    let db_dir = paths.db_dir();
    let mut state_dir_ok = true;
    for p in &paths.private_paths() {
        let name = p.strip_prefix(&paths.state_dir).unwrap_or(p);
        let Ok(m) = std::fs::symlink_metadata(p) else {
            continue; // removed meanwhile
        };
        if m.file_type().is_symlink() {
            // A symlinked anchor is reported with the anchors below.
            let anchor = name
                .to_str()
                .is_some_and(|n| n == LEGACY_ANCHOR || anchor::parse_anchor_name(n).is_some());
            if !anchor {
                links = true;
                out.push(f(
                    Level::Problem,
                    format!(
                        "{} is a symlink; orchestrator never follows it",
                        name.display()
                    ),
                    Some(&format!("rm {}", p.display())),
                ));
            }
            continue;
        }
        let mode = m.permissions().mode() & 0o777;
        let private = if m.is_dir() { 0o700 } else { 0o600 };
        if mode & !private != 0 {
            if p == &paths.state_dir {
                state_dir_ok = false;
            }
            out.push(f(
                Level::Problem,
                format!(
                    "{} is mode {mode:o}; other users can read session ids",
                    p.display()
                ),
                Some(&format!("chmod {private:o} {} (as its owner)", p.display())),
            ));
        }
        let must_write =
            p == &paths.state_dir || p == &db_dir || p.parent() == Some(db_dir.as_path());
        if must_write && !private_fs::writable(p) {
            if p == &paths.state_dir {
                state_dir_ok = false;
            }
            out.push(f(
                Level::Problem,
                format!("{} is not writable by this user", p.display()),
                Some("make it writable (chmod u+w as its owner, or remount read-write)"),
            ));
        }
    }
    if state_dir_ok {
        let mode = std::fs::metadata(&paths.state_dir)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        out.push(f(
            Level::Ok,
            format!("state dir private (mode {mode:o})"),
            None,
        ));
    }
    links
}

/// Mail waiting for sessions that are not live, and claims they still hold: neither is an
/// error (mail is kept for a resume; claims lapse at the next snapshot) but both explain
/// what a person sees.
fn owed_to_the_absent(
    s: &Store,
    verdicts: &std::collections::HashMap<&str, liveness::Verdict>,
    out: &mut Vec<Finding>,
) {
    let is_live = |id: &str| verdicts.get(id).is_some_and(|v| v.is_live());
    let how = |id: &str| match verdicts.get(id) {
        Some(v) => v.as_str().to_string(),
        None => s
            .ended_how(id)
            .ok()
            .flatten()
            .unwrap_or_else(|| "never registered".into()),
    };
    for (id, n) in s.queued_by_recipient().unwrap_or_default() {
        if is_live(&id) || id == "human" {
            continue;
        }
        out.push(f(
            Level::Info,
            format!(
                "{n} message(s) queued for SA-{}, which is not live ({}); kept for it",
                crate::core::identity::session_id::id8(&id),
                how(&id)
            ),
            Some(&format!(
                "`claude --resume {id}` delivers them at its first turn"
            )),
        ));
    }
    for c in s.all_claims().unwrap_or_default() {
        if is_live(&c.session_id) {
            continue;
        }
        out.push(f(
            Level::Info,
            format!(
                "claim on {} held by SA-{}, which is not live",
                c.pattern,
                crate::core::identity::session_id::id8(&c.session_id)
            ),
            Some("orchestrator gc (any hook turn also releases it)"),
        ));
    }
}

/// The report as text.
pub fn render(findings: &[Finding]) -> String {
    let mut s = String::new();
    for x in findings {
        let tag = match x.level {
            Level::Ok => "ok  ",
            Level::Info => "info",
            Level::Problem => "FAIL",
        };
        // Findings quote names, patterns and file names other sessions wrote.
        let _ = writeln!(s, "{tag} {}", text::inline(&x.what, text::LINE));
        if let Some(fix) = &x.fix {
            let _ = writeln!(s, "     fix: {}", text::inline(fix, text::LINE));
        }
    }
    let problems = findings
        .iter()
        .filter(|x| x.level == Level::Problem)
        .count();
    if problems == 0 {
        s.push_str("no problems found\n");
    } else {
        let _ = writeln!(s, "{problems} problem(s) found");
    }
    s
}

pub fn run() -> Result<i32> {
    let paths = ProjectPaths::resolve()?;
    let findings = examine(&paths, &SystemProbe);
    print!("{}", render(&findings));
    Ok(if findings.iter().any(|x| x.level == Level::Problem) {
        1
    } else {
        0
    })
}
