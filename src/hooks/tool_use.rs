//! PreToolUse / PostToolUse: the file-touch ledger and sibling-edit warnings.

use super::{live_snapshot, Ctx, Envelope};
use crate::core::{claims, clock, paths, render, roster};
use anyhow::Result;

/// Tools that write files and so enter the ledger.
pub const EDIT_TOOLS: &[&str] = &["Write", "Edit", "MultiEdit", "NotebookEdit"];

fn edited_path(ctx: &Ctx) -> Option<String> {
    let tool = ctx.input.tool_name.as_deref()?;
    if !EDIT_TOOLS.contains(&tool) {
        return None;
    }
    let file = ctx.input.file_path()?;
    let cwd = ctx
        .input
        .cwd
        .as_deref()
        .map(|c| ctx.paths.root.join(c))
        .unwrap_or_else(|| ctx.paths.root.clone());
    Some(paths::relativize(&ctx.paths.root, &cwd, file))
}

pub fn pre(ctx: &mut Ctx) -> Result<Envelope> {
    super::ensure_registered(ctx)?;
    if ctx.input.tool_name.as_deref() == Some("Bash") {
        return super::bash::pre(ctx);
    }
    let mut env = Envelope::default();
    let Some(path) = edited_path(ctx) else {
        ctx.store.heartbeat(ctx.id.as_str())?;
        return Ok(env);
    };
    let ask = std::env::var("ORCHESTRATOR_FILE_GUARD").as_deref() == Ok("ask");
    let now = clock::now_ms();
    // Only the claims covering this path matter; keep them for the check below.
    let covering = ctx.store.claims_covering(&path, claims::matches)?;
    let others =
        ctx.store
            .touches_of_path(&path, now - roster::files_window_ms(), ctx.id.as_str())?;
    if covering.is_empty() && others.is_empty() {
        ctx.store
            .record_touch(ctx.id.as_str(), &path, ctx.input.tool_name.as_deref())?;
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
    let hits = all.conflicts(&snap.live, &caller, &path);
    if let Some((c, holder)) = hits.iter().find(|(c, _)| c.exclusive) {
        let task = holder.current_task.as_deref().unwrap_or("(no task set)");
        let reason = format!(
            "[orchestrator] {path} is under an exclusive claim ({}) by {} ({}) — task: {task}{}. \
             Ask them first: send_message(to: \"@SA-{}\", body: \"...\"); you will be told when it is released.",
            c.pattern,
            render::handle(holder),
            holder.name.as_deref().unwrap_or(&holder.role),
            c.reason.as_deref().map(|r| format!(" — reason: {r}")).unwrap_or_default(),
            holder.id8
        );
        ctx.store.add_waiter(c.id, ctx.id.as_str())?;
        ctx.store.add_notice(
            &holder.session_id,
            &format!(
                "SA-{} was {} editing {path} because of your exclusive claim on {}.",
                ctx.id.id8(),
                if ask { "asked before" } else { "refused" },
                c.pattern
            ),
        )?;
        env.decision = Some((if ask { "ask" } else { "deny" }, reason));
        return Ok(env);
    }
    ctx.store
        .record_touch(ctx.id.as_str(), &path, ctx.input.tool_name.as_deref())?;
    let mut lines = Vec::new();
    for (c, holder) in &hits {
        ctx.store.add_waiter(c.id, ctx.id.as_str())?;
        lines.push(format!(
            "{} holds a shared claim on {}{}",
            render::handle(holder),
            c.pattern,
            c.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
    }
    for t in &others {
        if let Some(row) = snap
            .live
            .iter()
            .find(|r| r.session_id == t.session_id && !caller.is_self(r))
        {
            let task = row.current_task.as_deref().unwrap_or("(no task set)");
            lines.push(format!(
                "{} ({}) touched {path} {} ago — task: {task}",
                render::handle(row),
                row.name.as_deref().unwrap_or(&row.role),
                clock::age(now - t.at_ms)
            ));
        }
    }
    if lines.is_empty() {
        return Ok(env);
    }
    let msg = format!(
        "[orchestrator] sibling edit warning: {}. Coordinate before editing (message @SA-<id8>).",
        lines.join("; ")
    );
    if ask && !others.is_empty() {
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
        let tool: String = tool.chars().take(64).collect();
        ctx.store.set_last_tool(ctx.id.as_str(), &tool)?;
    } else {
        ctx.store.heartbeat(ctx.id.as_str())?;
    }
    env.push(ctx.due_messages()?);
    Ok(env)
}
