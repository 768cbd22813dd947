//! Bash through the hooks: the working-tree ledger (attribute shell writes to the session
//! whose command ran) and shared-checkout hazards (git commands that move the tree under
//! siblings with uncommitted work).

use super::{live_snapshot, Ctx, Envelope};
use crate::core::ledger::{self, TreeState};
use crate::core::text::{self, inline};
use crate::core::{claims, hazards, render, shell};
use anyhow::Result;

fn command(ctx: &Ctx) -> &str {
    ctx.input
        .tool_input
        .get("command")
        .and_then(|c| c.as_str())
        .unwrap_or("")
}

/// Before a Bash command: snapshot the tree; ask before a tree-moving git command while a
/// live sibling has uncommitted changes.
pub fn pre(ctx: &mut Ctx) -> Result<Envelope> {
    let mut env = Envelope::default();
    // Commands that can only read (ls, grep, git status, ...) change nothing to attribute:
    // skip the two tree snapshots, the dominant cost on a large checkout.
    if shell::read_only(command(ctx)) {
        ctx.store.heartbeat(ctx.id.as_str())?;
        return Ok(env);
    }
    let tree = ledger::snapshot(&ctx.paths.root);
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
    let Some((git, dir)) = hazards::tree_mover_in(command(ctx)) else {
        return Ok(env);
    };
    // The worktree that git call moves (`cd x && …`, `git -C x …`, or a cwd in another
    // worktree) and its uncommitted files, which may not be this session's checkout.
    let target = ctx.paths.worktree_at(&ctx.cwd().join(dir));
    let here = target
        .as_ref()
        .map(|w| w.label())
        .or_else(|| ctx.paths.place_of(Some(&ctx.cwd())).map(|(wt, _)| wt));
    let theirs = target
        .filter(|w| w.root != ctx.paths.root)
        .map(|w| ledger::snapshot(&w.root));
    let dirty = ledger::dirty(theirs.as_ref().unwrap_or(&tree));
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
            .filter(|p| dirty.contains(&p.as_str()))
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
    before: &TreeState,
    after: &TreeState,
    snap: &crate::core::roster::Snapshot,
    caller: &crate::core::liveness::Caller,
) -> Result<()> {
    // Uncommitted before, clean after, with HEAD moved: committed (or reset away).
    let committed: Vec<&String> = before
        .entries
        .keys()
        .filter(|p| !after.entries.contains_key(*p))
        .collect();
    if committed.is_empty() {
        return Ok(());
    }
    let here = ctx.paths.worktree.as_ref().map(|w| w.label());
    let branch = ctx.paths.worktree.as_ref().and_then(|w| w.branch());
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
    let after = ledger::snapshot(&ctx.paths.root);
    let mut changed = ledger::changed(&before, &after);
    let wt = ctx.paths.worktree.as_ref().map(|w| w.label());
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
    ctx.store.put_tree_snapshot(
        ctx.id.as_str(),
        after.head.as_deref(),
        &serde_json::to_string(&after)?,
    )?;
    let moved = before.head.is_some() && before.head != after.head;
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
    if moved && after.git {
        base_moved(ctx, &before, &after, &snap, &caller)?;
    }
    if moved {
        let cmd = inline(command(ctx), 120);
        // HEAD is per worktree: only siblings in this one had it moved under them.
        let here = ctx.paths.worktree.as_ref().map(|w| w.label());
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
                    inline(before.head.as_deref().unwrap_or("?"), 64),
                    inline(after.head.as_deref().unwrap_or("?"), 64)
                ),
            )?;
        }
    }
    Ok(())
}
