//! PreToolUse / PostToolUse: the file-touch ledger and sibling-edit warnings.

use super::{live_snapshot, Ctx, Envelope};
use crate::core::paths::Located;
use crate::core::text::{self, inline};
use crate::core::{claims, clock, render, roster};
use anyhow::Result;

/// Tools that write files and so enter the ledger.
pub const EDIT_TOOLS: &[&str] = &["Write", "Edit", "MultiEdit", "NotebookEdit"];

/// The file an edit tool is about to write: its worktree and worktree-relative path.
fn edited_path(ctx: &Ctx) -> Option<Located> {
    let tool = ctx.input.tool_name.as_deref()?;
    if !EDIT_TOOLS.contains(&tool) {
        return None;
    }
    let file = ctx.input.file_path()?;
    Some(ctx.paths.locate(&ctx.cwd(), file))
}

pub fn pre(ctx: &mut Ctx) -> Result<Envelope> {
    super::ensure_registered(ctx)?;
    if ctx.input.tool_name.as_deref() == Some("Bash") {
        return super::bash::pre(ctx);
    }
    let mut env = Envelope::default();
    let Some(loc) = edited_path(ctx) else {
        ctx.store.heartbeat(ctx.id.as_str())?;
        return Ok(env);
    };
    // Editing inside another worktree moves the session there.
    if let Some(wt) = loc.worktree.as_deref() {
        ctx.store
            .set_place(ctx.id.as_str(), wt, loc.branch.as_deref())?;
    }
    let path = loc.path.clone();
    let wt = loc.worktree.as_deref();
    let ask = crate::core::settings::get().file_guard_ask;
    let now = clock::now_ms();
    // Only the claims covering this path matter; keep them for the check below.
    let covering = ctx.store.claims_covering(&path, claims::matches)?;
    let others =
        ctx.store
            .touches_of_path(&path, now - roster::files_window_ms(), ctx.id.as_str())?;
    if covering.is_empty() && others.is_empty() {
        ctx.store
            .record_touch(ctx.id.as_str(), &path, wt, ctx.input.tool_name.as_deref())?;
        return Ok(env);
    }
    let snap = live_snapshot(ctx)?; // also lapses expired claims and drops dead holders'
    let caller = ctx.caller();
    // The snapshot dropped lapsed claims and those of dead holders; drop them here too.
    let all = claims::ClaimSet::new(
        covering
            .into_iter()
            .filter(|c| c.expires_at_ms.is_none_or(|t| t > snap.now_ms))
            .collect(),
    );
    let hits = all.conflicts(&snap.live, &caller, &path, wt);
    // Everything below that a sibling wrote is shown through `text`; so is `path`.
    let shown = inline(&path, text::PATH);
    if let Some((c, holder)) = hits.iter().find(|(c, _)| c.exclusive) {
        let reason = format!(
            "[orchestrator] {shown} is under an exclusive claim ({}) by {} ({}) — task: {}{}. \
             Ask them first: send_message(to: \"@{}\", body: \"...\"); you will be told when it is released.",
            inline(&c.pattern, text::PATH),
            render::handle(holder),
            render::called(holder),
            render::task(holder),
            claims::why(c, " — reason: ", ""),
            render::handle(holder)
        );
        ctx.store.add_waiter(c.id, ctx.id.as_str())?;
        ctx.store.add_notice(
            &holder.session_id,
            &format!(
                "SA-{} was {} editing {shown} because of your exclusive claim on {}.",
                ctx.id.id8(),
                if ask { "asked before" } else { "refused" },
                inline(&c.pattern, text::PATH)
            ),
        )?;
        env.decision = Some((if ask { "ask" } else { "deny" }, reason));
        return Ok(env);
    }
    ctx.store
        .record_touch(ctx.id.as_str(), &path, wt, ctx.input.tool_name.as_deref())?;
    let mut lines = Vec::new();
    let mut merge_risk = Vec::new();
    let mut touched_here = false;
    for (c, holder) in &hits {
        ctx.store.add_waiter(c.id, ctx.id.as_str())?;
        lines.push(format!(
            "{} holds a shared claim on {}{}",
            render::handle(holder),
            inline(&c.pattern, text::PATH),
            claims::why(c, " (", ")")
        ));
    }
    for t in &others {
        if let Some(row) = snap
            .live
            .iter()
            .find(|r| r.session_id == t.session_id && !caller.is_self(r))
        {
            if t.worktree.as_deref() == wt {
                touched_here = true;
                lines.push(format!(
                    "{} ({}) touched {shown} {} ago — task: {}",
                    render::handle(row),
                    render::called(row),
                    clock::age(now - t.at_ms),
                    render::task(row)
                ));
            } else {
                merge_risk.push(format!(
                    "{} changed {shown} in worktree {}{} {} ago — task: {}",
                    render::handle(row),
                    inline(t.worktree.as_deref().unwrap_or("?"), 80),
                    row.branch
                        .as_deref()
                        .map(|b| format!(" (branch {})", inline(b, 60)))
                        .unwrap_or_default(),
                    clock::age(now - t.at_ms),
                    render::task(row)
                ));
            }
        }
    }
    if !merge_risk.is_empty() {
        env.push(format!(
            "[orchestrator] merge conflict likely: {}. The same file is changing on two \
             branches; agree with them who changes what before both merge (message @SA-<id8>).",
            merge_risk.join("; ")
        ));
    }
    if lines.is_empty() {
        return Ok(env);
    }
    let msg = format!(
        "[orchestrator] sibling edit warning: {}. Coordinate before editing (message @SA-<id8>).",
        lines.join("; ")
    );
    if ask && touched_here {
        env.decision = Some(("ask", msg.clone()));
    }
    env.push(msg);
    Ok(env)
}

/// Records activity and, so a long autonomous run still hears, injects due messages.
pub fn post(ctx: &mut Ctx) -> Result<Envelope> {
    super::ensure_registered(ctx)?;
    let mut env = Envelope::default();
    if ctx.input.tool_name.as_deref() == Some("Bash") {
        super::bash::post(ctx, &mut env)?;
    }
    if let Some(tool) = ctx.input.tool_name.as_deref() {
        ctx.store
            .set_last_tool(ctx.id.as_str(), &inline(tool, 64))?;
    } else {
        ctx.store.heartbeat(ctx.id.as_str())?;
    }
    ctx.deliver_due(&mut env)?;
    Ok(env)
}
