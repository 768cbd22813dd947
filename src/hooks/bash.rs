//! Bash through the hooks: the working-tree ledger (attribute shell writes to the session
//! whose command ran) and shared-checkout hazards (git commands that move the tree under
//! siblings with uncommitted work).

use super::{live_snapshot, Ctx, Envelope};
use crate::core::ledger::{self, TreeState};
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
    let Some(git) = hazards::tree_mover(command(ctx)) else {
        return Ok(env);
    };
    let dirty = ledger::dirty(&tree);
    if dirty.is_empty() {
        return Ok(env);
    }
    let snap = live_snapshot(ctx)?;
    let caller = ctx.caller();
    let mut affected = Vec::new();
    for s in snap.siblings(&caller) {
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
                s.row.current_task.as_deref().unwrap_or("no task set"),
                mine.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
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
    // A path a sibling edited through its own tools meanwhile is the sibling's change.
    let mut theirs = Vec::new();
    for p in &changed {
        if !ctx
            .store
            .touches_of_path(p, taken_at, ctx.id.as_str())?
            .is_empty()
        {
            theirs.push(p.clone());
        }
    }
    changed.retain(|p| !theirs.contains(p));
    for p in &changed {
        ctx.store.record_touch(ctx.id.as_str(), p, Some("Bash"))?;
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
            .conflicts(&snap.live, &caller, p)
            .into_iter()
            .find(|(c, _)| c.exclusive)
        {
            env.push(format!(
                "[orchestrator] your command changed {p}, which is under an exclusive claim ({}) by {}: tell them (send_message to @SA-{}).",
                c.pattern,
                render::handle(holder),
                holder.id8
            ));
            ctx.store.add_notice(
                &holder.session_id,
                &format!(
                    "SA-{} changed {p} (under your exclusive claim {}) through a shell command.",
                    ctx.id.id8(),
                    c.pattern
                ),
            )?;
        }
    }
    if moved {
        let cmd: String = command(ctx).chars().take(120).collect();
        for s in snap.siblings(&caller) {
            ctx.store.add_notice(
                &s.row.session_id,
                &format!(
                    "SA-{} ran `{cmd}` in the shared checkout: HEAD moved from {} to {}. Re-read files you had open.",
                    ctx.id.id8(),
                    before.head.as_deref().unwrap_or("?"),
                    after.head.as_deref().unwrap_or("?")
                ),
            )?;
        }
    }
    Ok(())
}
