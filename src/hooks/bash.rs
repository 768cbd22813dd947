//! Bash through the hooks: the working-tree ledger (attribute shell writes to the session
//! whose command ran) and shared-checkout hazards (git commands that move the tree under
//! siblings with uncommitted work).

use super::{live_snapshot, Ctx, Envelope};
use crate::core::ledger::{self, TreeState};
use crate::core::repo::Worktree;
use crate::core::text::{self, inline};
use crate::core::treewatch::{self, Window};
use crate::core::{claims, hazards, render, shell};
use anyhow::Result;
use std::path::{Path, PathBuf};

fn command(ctx: &Ctx) -> &str {
    ctx.input
        .tool_input
        .get("command")
        .and_then(|c| c.as_str())
        .unwrap_or("")
}

/// The checkout a command runs in: the worktree of the hook's `cwd` when it belongs to
/// this repository (a session that moved into another worktree works there), else the
/// project root.
struct Place {
    root: PathBuf,
    label: Option<String>,
    branch: Option<String>,
}

impl Place {
    fn of(ctx: &Ctx) -> Self {
        Self::at(ctx, &ctx.cwd())
    }

    fn at(ctx: &Ctx, dir: &Path) -> Self {
        let Some(mine) = ctx.paths.worktree.as_ref() else {
            return Self {
                root: ctx.paths.root.clone(),
                label: None,
                branch: None,
            };
        };
        let w = Worktree::containing(dir)
            .filter(|w| w.common_dir == mine.common_dir)
            .unwrap_or_else(|| mine.clone());
        Self {
            label: Some(w.label()),
            branch: w.branch(),
            root: w.root,
        }
    }
}

/// A command's window key: its session and tool call (two Bash calls may overlap).
fn window_key(ctx: &Ctx) -> String {
    format!(
        "{}:{}",
        ctx.id.as_str(),
        ctx.input.tool_use_id.as_deref().unwrap_or("")
    )
}

/// What the command changed: from the server's window, else from a second snapshot
/// compared with the first. If the server was asked at the start but is gone now, the
/// changed paths whose mtime is not older than the command are the best answer.
fn window(ctx: &Ctx, place: &Place, before: &TreeState, taken_at: i64) -> Result<Window> {
    if let Some(w) = treewatch::client::end(
        &ctx.paths.state_dir,
        ctx.agent,
        &place.root,
        &window_key(ctx),
    ) {
        return Ok(w);
    }
    let after = ledger::snapshot(&place.root);
    let changed = if before.watch.is_some() {
        let since_ns = taken_at.saturating_mul(1_000_000);
        after
            .entries
            .iter()
            .filter(|(_, (_, mtime, _))| *mtime >= since_ns)
            .map(|(p, _)| p.clone())
            .collect()
    } else {
        ledger::changed(before, &after)
    };
    let gone = before
        .entries
        .keys()
        .filter(|p| !after.entries.contains_key(*p))
        .cloned()
        .collect();
    let mut stored = after.clone();
    stored.root = Some(place.root.to_string_lossy().into_owned());
    ctx.store.put_tree_snapshot(
        ctx.id.as_str(),
        stored.head.as_deref(),
        &serde_json::to_string(&stored)?,
    )?;
    Ok(Window {
        git: after.git,
        changed,
        gone,
        head_before: before.head.clone(),
        head_after: after.head,
    })
}

/// Before a Bash command: open its window with the session's server (else snapshot the
/// tree); ask before a tree-moving git command while a live sibling has uncommitted changes.
pub fn pre(ctx: &mut Ctx) -> Result<Envelope> {
    let mut env = Envelope::default();
    // Commands that can only read (ls, grep, git status, ...) change nothing to attribute:
    // skip the two tree snapshots, the dominant cost on a large checkout.
    if shell::read_only(command(ctx)) {
        ctx.store.heartbeat(ctx.id.as_str())?;
        return Ok(env);
    }
    let place = Place::of(ctx);
    let mover = hazards::tree_mover_in(command(ctx));
    // The session's server keeps the picture: open a window with it (no tree walk);
    // otherwise snapshot the tree with git status as before.
    let (tree, dirty) = match treewatch::client::begin(
        &ctx.paths.state_dir,
        ctx.agent,
        &place.root,
        &window_key(ctx),
        mover.is_some(),
    ) {
        Some(b) => {
            let tree = TreeState {
                head: b.head,
                git: b.git,
                root: Some(place.root.to_string_lossy().into_owned()),
                watch: Some(window_key(ctx)),
                ..TreeState::default()
            };
            (tree, b.dirty)
        }
        None => {
            let mut tree = ledger::snapshot(&place.root);
            tree.root = Some(place.root.to_string_lossy().into_owned());
            let dirty = ledger::dirty(&tree).into_iter().map(String::from).collect();
            (tree, dirty)
        }
    };
    ctx.store.put_tree_snapshot(
        ctx.id.as_str(),
        tree.head.as_deref(),
        &serde_json::to_string(&tree)?,
    )?;
    ctx.store.heartbeat(ctx.id.as_str())?;
    if let Some(why) = pulled_from_under(ctx)? {
        env.decision = Some(("ask", why));
        return Ok(env);
    }
    let Some((git, dir)) = mover else {
        return Ok(env);
    };
    // The worktree that git call moves (`cd x && …`, `git -C x …`, or a cwd in another
    // worktree) and its uncommitted files, which may not be this session's checkout.
    let target = ctx.paths.worktree_at(&ctx.cwd().join(dir));
    let here = target
        .as_ref()
        .map(|w| w.label())
        .or_else(|| ctx.paths.place_of(Some(&ctx.cwd())).map(|(wt, _)| wt));
    let dirty: Vec<String> = match target.filter(|w| w.root != place.root) {
        Some(w) => ledger::dirty(&ledger::snapshot(&w.root))
            .into_iter()
            .map(String::from)
            .collect(),
        None => dirty,
    };
    if dirty.is_empty() {
        return Ok(env);
    }
    let snap = live_snapshot(ctx)?;
    let caller = ctx.caller();
    let mut affected = Vec::new();
    // Only siblings in this same worktree share the tree being moved.
    for s in snap
        .siblings(&caller)
        .into_iter()
        .filter(|s| here.is_none() || s.row.worktree.is_none() || s.row.worktree == here)
    {
        let mine = ctx
            .store
            .paths_of_session(&s.row.session_id, 0, 200)?
            .into_iter()
            .filter(|p| dirty.contains(p))
            .collect::<Vec<_>>();
        if !mine.is_empty() {
            affected.push(format!(
                "{} ({}) has uncommitted changes in {}",
                render::handle(s.row),
                render::task(s.row),
                render::paths(&mine[..mine.len().min(5)])
            ));
        }
    }
    if affected.is_empty() {
        return Ok(env);
    }
    env.decision = Some((
        "ask",
        format!(
            "[orchestrator] `{git}` changes the working tree this checkout shares with live sibling sessions: {}. \
             Ask them first (send_message), or use a separate git worktree.",
            affected.join("; ")
        ),
    ));
    Ok(env)
}

/// A `git worktree remove`/`prune` of a worktree a live sibling works in, or a branch
/// deletion/force-move of a branch a live sibling has checked out: the question to ask.
fn pulled_from_under(ctx: &Ctx) -> Result<Option<String>> {
    let pulls = hazards::pulls(command(ctx));
    if pulls.is_empty() {
        return Ok(None);
    }
    let snap = live_snapshot(ctx)?;
    let caller = ctx.caller();
    let sibs = snap.siblings(&caller);
    let main_root = ctx.paths.worktree.as_ref().and_then(|w| w.main_root());
    let mut hits = Vec::new();
    for pull in &pulls {
        for s in &sibs {
            let (Some(wt), who) = (s.row.worktree.as_deref(), render::handle(s.row)) else {
                continue;
            };
            let hit = match pull {
                hazards::Pull::RemoveWorktree { path, git } => {
                    let target = std::fs::canonicalize(ctx.cwd().join(path)).ok();
                    let label = target
                        .as_deref()
                        .and_then(crate::core::repo::Worktree::at)
                        .map(|w| w.label());
                    (label.as_deref() == Some(wt))
                        .then(|| format!("`{git}` removes worktree {wt}, where {who} works"))
                }
                hazards::Pull::PruneWorktrees { git } => {
                    let dir = match (&main_root, wt) {
                        (_, w) if std::path::Path::new(w).is_absolute() => Some(w.into()),
                        (Some(m), w) => Some(m.join(w)),
                        _ => None,
                    };
                    dir.filter(|d: &std::path::PathBuf| !d.exists()).map(|_| {
                        format!("`{git}` drops worktree {wt} (its directory is gone), where {who} works")
                    })
                }
                hazards::Pull::Branch { name, git } => (s.row.branch.as_deref()
                    == Some(name.as_str()))
                .then(|| format!("`{git}` deletes or moves branch {name}, which {who} has checked out in {wt}")),
            };
            hits.extend(hit);
        }
    }
    if hits.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!(
        "[orchestrator] {}. Ask them first (send_message to @SA-<id8>).",
        hits.join("; ")
    )))
}

/// A commit here took files that a live sibling is changing in another worktree: tell
/// that sibling once, while the coming merge conflict is still small.
fn base_moved(
    ctx: &Ctx,
    place: &Place,
    committed: &[String],
    snap: &crate::core::roster::Snapshot,
    caller: &crate::core::liveness::Caller,
) -> Result<()> {
    // Uncommitted before, clean after, with HEAD moved: committed (or reset away).
    if committed.is_empty() {
        return Ok(());
    }
    let here = place.label.clone();
    let branch = place.branch.clone();
    let since = crate::core::clock::now_ms() - crate::core::store::touches::RETAIN_MS;
    let mut per_sibling: std::collections::BTreeMap<&str, (String, Vec<&str>)> = Default::default();
    for p in committed {
        for t in ctx.store.touches_of_path(p, since, ctx.id.as_str())? {
            if t.worktree.is_none() || t.worktree == here {
                continue;
            }
            if let Some(row) = snap
                .live
                .iter()
                .find(|r| r.session_id == t.session_id && !caller.is_self(r))
            {
                let e = per_sibling
                    .entry(row.session_id.as_str())
                    .or_insert_with(|| (t.worktree.clone().unwrap_or_default(), Vec::new()));
                if !e.1.contains(&p.as_str()) {
                    e.1.push(p.as_str());
                }
            }
        }
    }
    for (sib, (wt, files)) in per_sibling {
        ctx.store.add_notice(
            sib,
            &format!(
                "SA-{} committed {} on branch {} — files you are changing in worktree {}. \
                 Merge or rebase soon, while the conflict is small.",
                ctx.id.id8(),
                render::paths(&files),
                inline(branch.as_deref().unwrap_or("?"), text::NAME),
                inline(&wt, text::PATH)
            ),
        )?;
    }
    Ok(())
}

/// After a Bash command: attribute what it changed; tell siblings if HEAD moved.
pub fn post(ctx: &mut Ctx, env: &mut Envelope) -> Result<()> {
    if shell::read_only(command(ctx)) {
        return Ok(());
    }
    let Some((before, taken_at)) = ctx.store.tree_snapshot(ctx.id.as_str())? else {
        return Ok(());
    };
    let before: TreeState = serde_json::from_str(&before).unwrap_or_default();
    let place = before
        .root
        .as_deref()
        .map(|r| Place::at(ctx, std::path::Path::new(r)))
        .unwrap_or_else(|| Place::of(ctx));
    let seen = window(ctx, &place, &before, taken_at)?;
    let mut changed = seen.changed;
    let wt = place.label.clone();
    // A path a sibling edited through its own tools meanwhile, in this same worktree, is
    // the sibling's change.
    let mut theirs = Vec::new();
    for p in &changed {
        if ctx
            .store
            .touches_of_path(p, taken_at, ctx.id.as_str())?
            .iter()
            .any(|t| t.worktree == wt)
        {
            theirs.push(p.clone());
        }
    }
    changed.retain(|p| !theirs.contains(p));
    for p in &changed {
        ctx.store
            .record_touch(ctx.id.as_str(), p, wt.as_deref(), Some("Bash"))?;
    }
    let (head_before, head_after) = (seen.head_before, seen.head_after);
    let moved = head_before.is_some() && head_before != head_after;
    if changed.is_empty() && !moved {
        return Ok(());
    }
    let snap = live_snapshot(ctx)?;
    let caller = ctx.caller();
    let all = claims::ClaimSet::new(ctx.store.all_claims()?);
    for p in &changed {
        if let Some((c, holder)) = all
            .conflicts(&snap.live, &caller, p, wt.as_deref())
            .into_iter()
            .find(|(c, _)| c.exclusive)
        {
            let (p, pattern) = (inline(p, text::PATH), inline(&c.pattern, text::PATH));
            env.push(format!(
                "[orchestrator] your command changed {p}, which is under an exclusive claim ({pattern}) by {}: tell them (send_message to @{}).",
                render::handle(holder),
                render::handle(holder)
            ));
            ctx.store.add_notice(
                &holder.session_id,
                &format!(
                    "SA-{} changed {p} (under your exclusive claim {pattern}) through a shell command.",
                    ctx.id.id8(),
                ),
            )?;
        }
    }
    if moved && seen.git {
        base_moved(ctx, &place, &seen.gone, &snap, &caller)?;
    }
    if moved {
        let cmd = inline(command(ctx), 120);
        // HEAD is per worktree: only siblings in this one had it moved under them.
        let here = place.label.clone();
        for s in snap
            .siblings(&caller)
            .into_iter()
            .filter(|s| here.is_none() || s.row.worktree.is_none() || s.row.worktree == here)
        {
            ctx.store.add_notice(
                &s.row.session_id,
                &format!(
                    "SA-{} ran `{cmd}` in the shared checkout: HEAD moved from {} to {}. Re-read files you had open.",
                    ctx.id.id8(),
                    inline(head_before.as_deref().unwrap_or("?"), 64),
                    inline(head_after.as_deref().unwrap_or("?"), 64)
                ),
            )?;
        }
    }
    Ok(())
}
