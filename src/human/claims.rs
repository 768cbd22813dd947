//! `orchestrator claim | release | claims | guard`: claims from the command line (a
//! session's Bash, or the person with --session) and the git pre-commit guard.

use crate::core::clock::SystemClock;
use crate::core::identity::resolver::{self, Inputs};
use crate::core::identity::{process, trust, Evidence, SessionId, SystemProbe};
use crate::core::liveness::{self, Caller, Policy};
use crate::core::paths::ProjectPaths;
use crate::core::store::claims::Request;
use crate::core::store::Store;
use crate::core::text::{self, inline};
use crate::core::{address, claims, clock, render, roster};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;

/// The session a CLI call acts for: `--session`, else as the server would resolve it
/// (the row this terminal's agent process owns, then the ranked evidence).
pub fn resolve_session(
    store: &Store,
    paths: &ProjectPaths,
    explicit: Option<&str>,
) -> Result<String> {
    let agent = process::agent_process();
    if let Some(s) = explicit {
        // What the person sees or types: a full id, SA-<id8>, @SA-<id8>, a prefix, @name.
        let rows = store.all_sessions()?;
        let id = match address::one_session(s, &rows) {
            Ok(id) => id,
            // A plain id that matches nothing at all is taken as given (it may be about
            // to start); anything ambiguous or in the SA-/@ forms must match.
            Err(_)
                if !s.starts_with('@')
                    && !s.starts_with("SA-")
                    && !rows
                        .iter()
                        .any(|r| r.session_id.starts_with(s) || r.name.as_deref() == Some(s)) =>
            {
                s.to_string()
            }
            Err(e) => bail!("--session: {e}"),
        };
        let id = SessionId::parse(&id).map_err(anyhow::Error::msg)?;
        trust::may_act_for(
            store.get(id.as_str())?.as_ref(),
            agent,
            clock::now_ms(),
            &SystemProbe,
            Policy::from_env(),
        )
        .map_err(|e| anyhow::anyhow!("--session {}: {e}", id.id8()))?;
        return Ok(id.to_string());
    }
    if let Some(a) = agent {
        if let Some(id) = store.owned_by(&a)? {
            return Ok(id);
        }
    }
    let inp = Inputs::from_env(None, agent, paths, &SystemProbe);
    match resolver::resolve(&inp).map_err(anyhow::Error::msg)? {
        // The legacy file is last-writer-wins across terminals: never act on it alone.
        Some(r) if r.evidence == Evidence::Legacy => bail!(
            "only the shared legacy active-session file names a session here (SA-{}), and it may \
             be another terminal's: pass --session ID",
            r.id.id8()
        ),
        Some(r) if r.evidence.is_provisional() => {
            match roster::held_by_another(store, r.id.as_str(), agent, &SystemProbe)? {
                Some(pid) => bail!(
                    "the {} names SA-{}, which is another live session (agent pid {pid}): pass --session ID",
                    r.evidence.as_str(),
                    r.id.id8()
                ),
                None => Ok(r.id.to_string()),
            }
        }
        Some(r) => Ok(r.id.to_string()),
        None => bail!("cannot tell which session this is (not run inside a Claude Code session): pass --session ID"),
    }
}

fn cwd() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
}

/// What `orchestrator claim` was asked.
pub struct ClaimOpts<'a> {
    pub session: Option<&'a str>,
    pub exclusive: bool,
    pub ttl: Option<&'a str>,
    pub reason: Option<&'a str>,
    /// Scope the claim to this worktree instead of the whole repository.
    pub worktree_only: bool,
}

pub fn claim(opts: &ClaimOpts<'_>, paths_in: &[String]) -> Result<i32> {
    let ClaimOpts {
        session,
        exclusive,
        ttl,
        reason,
        worktree_only,
    } = *opts;
    let (paths, store) = super::open_registry()?;
    let me = resolve_session(&store, &paths, session)?;
    let ttl = ttl
        .map(claims::parse_ttl)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let pats = claims::patterns(&paths.root, &cwd(), paths_in).map_err(anyhow::Error::msg)?;
    let scope = match (worktree_only, paths.place_of(Some(&cwd()))) {
        (false, _) => None,
        (true, Some((wt, _))) => Some(wt),
        (true, None) => bail!("--worktree scopes a claim to a git worktree, and this project is not in git: leave it out"),
    };
    let live = liveness::live(
        store.all_sessions()?,
        clock::now_ms(),
        &SystemProbe,
        Policy::from_env(),
    );
    if !live.iter().any(|r| r.session_id == me) {
        bail!("session {me} is not live: claims live only while their session does");
    }
    let req = Request {
        session_id: &me,
        patterns: &pats,
        exclusive,
        reason,
        ttl_ms: ttl,
        worktree: scope.as_deref(),
    };
    match claims::claim(&store, &req, &SystemProbe, &SystemClock)? {
        Ok(()) => {
            println!(
                "{} claim for SA-{} on {}",
                if exclusive { "exclusive" } else { "shared" },
                text::id8(&me),
                render::paths(&pats)
            );
            Ok(0)
        }
        Err(e) => bail!("{e}"),
    }
}

pub fn release(session: Option<&str>, paths_in: &[String]) -> Result<i32> {
    let (paths, store) = super::open_registry()?;
    let me = resolve_session(&store, &paths, session)?;
    match claims::release(&store, &me, &paths.root, &cwd(), paths_in)? {
        Ok(r) if r.is_empty() => println!("no claims held"),
        Ok(r) => println!("released: {}", render::paths(&r)),
        Err(e) => bail!("{e}"),
    }
    Ok(0)
}

pub fn list(json: bool) -> Result<i32> {
    let Some((_paths, store)) = super::open_existing()? else {
        println!("{}", if json { "[]" } else { "no claims" });
        return Ok(0);
    };
    let snap = crate::core::roster::Snapshot::load(&store, &SystemProbe, Policy::from_env())?;
    let all = store.all_claims()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(0);
    }
    if all.is_empty() {
        println!("no claims");
    }
    for c in &all {
        println!(
            "{}",
            claims::describe(
                c,
                snap.live.iter().find(|r| r.session_id == c.session_id),
                snap.now_ms
            )
        );
    }
    Ok(0)
}

/// Environment variable that lets a commit through the guard.
pub const OVERRIDE: &str = "ORCHESTRATOR_GUARD_OVERRIDE";

pub fn guard_install() -> Result<i32> {
    let paths = ProjectPaths::resolve()?;
    let out = Command::new("git")
        .arg("-C")
        .arg(&paths.root)
        .args(["rev-parse", "--git-path", "hooks"])
        .output()
        .context("cannot run git")?;
    if !out.status.success() {
        bail!(
            "{} is not a git repository: run `git init` first",
            paths.root.display()
        );
    }
    let dir = paths.root.join(String::from_utf8_lossy(&out.stdout).trim());
    std::fs::create_dir_all(&dir)?;
    let hook = dir.join("pre-commit");
    let exe = std::env::current_exe()?;
    let body = format!(
        "#!/bin/sh\n# installed by `orchestrator guard install`: refuses commits touching paths under\n# another live session's exclusive claim ({OVERRIDE}=1 overrides).\nexec \"{}\" guard pre-commit\n",
        exe.display()
    );
    if let Ok(existing) = std::fs::read_to_string(&hook) {
        if existing == body {
            println!("guard already installed at {}", hook.display());
            return Ok(0);
        }
        if !existing.contains("orchestrator guard pre-commit") {
            bail!(
                "{} exists and is not ours: add `\"{}\" guard pre-commit` to it yourself",
                hook.display(),
                exe.display()
            );
        }
    }
    std::fs::write(&hook, body)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))?;
    println!("installed {}", hook.display());
    Ok(0)
}

/// The pre-commit check: staged paths under another live session's exclusive claim.
pub fn guard_pre_commit() -> Result<i32> {
    // No registry, no claims: nothing to refuse, and nothing to create.
    let Some((paths, store)) = super::open_existing_quietly()? else {
        return Ok(0);
    };
    let out = Command::new("git")
        .arg("-C")
        .arg(&paths.root)
        .args(["diff", "--cached", "--name-only", "-z"])
        .output()
        .context("cannot run git")?;
    let staged: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split('\0')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let snap = crate::core::roster::Snapshot::load(&store, &SystemProbe, Policy::from_env())?;
    let me = resolve_session(&store, &paths, None).ok();
    let caller = Caller::new(me.as_deref(), process::agent_process());
    let all = claims::ClaimSet::new(store.all_claims()?);
    let here = paths.place_of(Some(&cwd())).map(|(wt, _)| wt);
    let mut blocked = Vec::new();
    for p in &staged {
        if let Some((c, h)) = all
            .conflicts(&snap.live, &caller, p, here.as_deref())
            .into_iter()
            .find(|(c, _)| c.exclusive)
        {
            blocked.push(format!(
                "{} (exclusive claim {} by {}, {})",
                inline(p, text::PATH),
                inline(&c.pattern, text::PATH),
                render::handle(h),
                render::task(h)
            ));
        }
    }
    if blocked.is_empty() {
        return Ok(0);
    }
    if crate::core::settings::get().guard_override {
        eprintln!(
            "orchestrator guard: committing despite claims ({OVERRIDE}=1): {}",
            blocked.join("; ")
        );
        return Ok(0);
    }
    eprintln!(
        "orchestrator guard: commit refused: {}. Ask the holder to release, or set {OVERRIDE}=1 to commit anyway.",
        blocked.join("; ")
    );
    Ok(1)
}
