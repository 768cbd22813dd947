//! `orchestrator doctor`: explains identity for this project — anchors (valid or stale
//! and why), rows (live or dead and why), drift between them, database integrity and
//! state-dir permissions — each finding with its fix. Exit 1 when something is wrong.

use crate::core::clock;
use crate::core::identity::anchor::{self, AnchorContent};
use crate::core::identity::resolver::{self, Inputs};
use crate::core::identity::{process, Probe, SystemProbe};
use crate::core::liveness::{self, Policy};
use crate::core::paths::{ProjectPaths, ANCHOR_PREFIX, LEGACY_ANCHOR};
use crate::core::store::Store;
use crate::core::text;
use anyhow::Result;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;

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

/// Examines the project; pure reads except that opening the store creates it if absent.
pub fn examine(paths: &ProjectPaths, probe: &dyn Probe) -> Vec<Finding> {
    let mut out = Vec::new();
    out.push(f(
        Level::Info,
        format!("project root {}", paths.root.display()),
        None,
    ));
    match std::fs::metadata(&paths.state_dir) {
        Err(_) => {
            out.push(f(
                Level::Info,
                "no state dir yet (no session has run here)",
                None,
            ));
            return out;
        }
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                out.push(f(
                    Level::Problem,
                    format!("state dir is mode {mode:o}; other users can read session ids"),
                    Some(&format!("chmod 700 {}", paths.state_dir.display())),
                ));
            } else {
                out.push(f(
                    Level::Ok,
                    format!("state dir private (mode {mode:o})"),
                    None,
                ));
            }
            if !paths.state_dir.join(".gitignore").exists() {
                out.push(f(
                    Level::Problem,
                    "state dir has no .gitignore; git may pick it up",
                    Some("run any orchestrator hook or `orchestrator gc` to recreate it"),
                ));
            }
        }
    }
    // Database.
    let store = match Store::open(paths) {
        Ok(s) => Some(s),
        Err(e) => {
            out.push(f(
                Level::Problem,
                format!("{e:#}"),
                Some("move the database aside (sessions re-register at their next hook)"),
            ));
            None
        }
    };
    if let Some(s) = store.as_ref() {
        match s.quick_check() {
            Ok(r) if r == "ok" => out.push(f(
                Level::Ok,
                format!(
                    "database ok (quick_check; schema v{})",
                    s.schema_version().unwrap_or(0)
                ),
                None,
            )),
            Ok(r) => out.push(f(
                Level::Problem,
                format!("database quick_check: {r}"),
                Some("move the database aside; sessions re-register at their next hook"),
            )),
            Err(e) => out.push(f(
                Level::Problem,
                format!("database quick_check failed: {e:#}"),
                Some("retry; if it persists move the database aside"),
            )),
        }
    }
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
        if std::fs::symlink_metadata(&path)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false)
        {
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
