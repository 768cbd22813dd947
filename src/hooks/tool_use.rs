//! PreToolUse / PostToolUse: the file-touch ledger and sibling-edit warnings.

use super::{snapshot, Ctx, Envelope};
use crate::core::{clock, mailbox, paths, render, roster};
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
    let mut env = Envelope::default();
    let Some(path) = edited_path(ctx) else {
        ctx.store.heartbeat(ctx.id.as_str())?;
        return Ok(env);
    };
    ctx.store
        .record_touch(ctx.id.as_str(), &path, ctx.input.tool_name.as_deref())?;
    let now = clock::now_ms();
    let others =
        ctx.store
            .touches_of_path(&path, now - roster::files_window_ms(), ctx.id.as_str())?;
    if others.is_empty() {
        return Ok(env);
    }
    let snap = snapshot(ctx)?;
    let caller = ctx.caller();
    let mut lines = Vec::new();
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
    if std::env::var("ORCHESTRATOR_FILE_GUARD").as_deref() == Ok("ask") {
        env.decision = Some(("ask", msg.clone()));
    }
    env.push(msg);
    Ok(env)
}

/// Records activity and, so a long autonomous run still hears, injects due messages.
pub fn post(ctx: &mut Ctx) -> Result<Envelope> {
    super::ensure_registered(ctx)?;
    if let Some(tool) = ctx.input.tool_name.as_deref() {
        let tool: String = tool.chars().take(64).collect();
        ctx.store.set_last_tool(ctx.id.as_str(), &tool)?;
    } else {
        ctx.store.heartbeat(ctx.id.as_str())?;
    }
    let mut env = Envelope::default();
    if ctx.store.queued_count(ctx.id.as_str())? > 0 || ctx.store.has_notices(ctx.id.as_str())? {
        env.push(mailbox::inject(
            &mut ctx.store,
            ctx.id.as_str(),
            "hook",
            mailbox::HOOK_BUDGET_CHARS,
        )?);
    }
    Ok(env)
}
