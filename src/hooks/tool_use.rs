//! PreToolUse / PostToolUse: the file-touch ledger and sibling-edit warnings, for every
//! file an edit tool call names (a Codex patch names several).

use super::{live_snapshot, Ctx, Envelope};
use crate::core::paths::Located;
use crate::core::text::{self, inline};
use crate::core::{claims, clock, render, roster};
use anyhow::Result;

/// The files an edit tool call is about to write (its CLI's adapter says which tools edit
/// which paths), each with its worktree and worktree-relative path; `None` when the tool
/// is not a file edit.
fn edited_paths(ctx: &Ctx) -> Option<Vec<Located>> {
    let tool = ctx.input.tool_name.as_deref()?;
    let files = ctx.adapter.edits(tool, &ctx.input.tool_input)?;
    let cwd = ctx.cwd();
    let mut out: Vec<Located> = Vec::new();
    for f in &files {
        let loc = ctx.paths.locate(&cwd, f);
        if !out
            .iter()
            .any(|o| o.path == loc.path && o.worktree == loc.worktree)
        {
            out.push(loc);
        }
    }
    Some(out)
}

/// Whether this tool call runs a shell command (Bash, run_shell_command, ...).
fn is_shell(ctx: &Ctx) -> bool {
    ctx.input
        .tool_name
        .as_deref()
        .is_some_and(|t| ctx.adapter.is_shell(t))
}

/// One edited path with the claims covering it and siblings' recent touches of it.
struct Check {
    loc: Located,
    covering: Vec<crate::core::store::claims::Claim>,
    others: Vec<crate::core::store::touches::Touch>,
}

pub fn pre(ctx: &mut Ctx) -> Result<Envelope> {
    super::ensure_registered(ctx)?;
    let mut env = Envelope::default();
    let locs = match edited_paths(ctx) {
        Some(locs) if !locs.is_empty() => locs,
        None if is_shell(ctx) => return super::bash::pre(ctx),
        _ => {
            ctx.store.heartbeat(ctx.id.as_str())?;
            return Ok(env);
        }
    };
    // Editing inside another worktree moves the session there.
    if let Some(loc) = locs.iter().find(|l| l.worktree.is_some()) {
        if let Some(wt) = loc.worktree.as_deref() {
            ctx.store
                .set_place(ctx.id.as_str(), wt, loc.branch.as_deref())?;
        }
    }
    let ask = crate::core::settings::get().file_guard_ask;
    let now = clock::now_ms();
    let tool = ctx.input.tool_name.clone();
    // Only the claims covering a path matter; keep them for the checks below.
    let mut checks = Vec::new();
    let mut quiet = Vec::new();
    for loc in locs {
        let covering = ctx.store.claims_covering(&loc.path, claims::matches)?;
        let others = ctx.store.touches_of_path(
            &loc.path,
            now - roster::files_window_ms(),
            ctx.id.as_str(),
        )?;
        if covering.is_empty() && others.is_empty() {
            quiet.push(loc);
        } else {
            checks.push(Check {
                loc,
                covering,
                others,
            });
        }
    }
    if checks.is_empty() {
        for loc in &quiet {
            ctx.store.record_touch(
                ctx.id.as_str(),
                &loc.path,
                loc.worktree.as_deref(),
                tool.as_deref(),
            )?;
        }
        return Ok(env);
    }
    let snap = live_snapshot(ctx)?; // also lapses expired claims and drops dead holders'
    let caller = ctx.caller();
    // The snapshot dropped lapsed claims and those of dead holders; drop them here too.
    let sets: Vec<claims::ClaimSet> = checks
        .iter_mut()
        .map(|c| {
            claims::ClaimSet::new(
                std::mem::take(&mut c.covering)
                    .into_iter()
                    .filter(|c| c.expires_at_ms.is_none_or(|t| t > snap.now_ms))
                    .collect(),
            )
        })
        .collect();
    let hits: Vec<_> = checks
        .iter()
        .zip(&sets)
        .map(|(c, set)| set.conflicts(&snap.live, &caller, &c.loc.path, c.loc.worktree.as_deref()))
        .collect();
    // Any path under an exclusive claim refuses the whole call (a patch applies whole).
    let mut refused = Vec::new();
    for (c, hits) in checks.iter().zip(&hits) {
        let Some((claim, holder)) = hits.iter().find(|(c, _)| c.exclusive) else {
            continue;
        };
        // Everything below that a sibling wrote is shown through `text`; so is the path.
        let shown = inline(&c.loc.path, text::PATH);
        refused.push(format!(
            "[orchestrator] {shown} is under an exclusive claim ({}) by {} ({}) — task: {}{}. \
             Ask them first: send_message(to: \"@{}\", body: \"...\"); you will be told when it is released.",
            inline(&claim.pattern, text::PATH),
            render::handle(holder),
            render::called(holder),
            render::task(holder),
            claims::why(claim, " — reason: ", ""),
            render::handle(holder)
        ));
        ctx.store.add_waiter(claim.id, ctx.id.as_str())?;
        ctx.store.add_notice(
            &holder.session_id,
            &format!(
                "SA-{} was {} editing {shown} because of your exclusive claim on {}.",
                ctx.id.id8(),
                if ask { "asked before" } else { "refused" },
                inline(&claim.pattern, text::PATH)
            ),
        )?;
    }
    if !refused.is_empty() {
        env.decision = Some((if ask { "ask" } else { "deny" }, refused.join("\n")));
        return Ok(env);
    }
    for loc in quiet.iter().chain(checks.iter().map(|c| &c.loc)) {
        ctx.store.record_touch(
            ctx.id.as_str(),
            &loc.path,
            loc.worktree.as_deref(),
            tool.as_deref(),
        )?;
    }
    let mut lines = Vec::new();
    let mut merge_risk = Vec::new();
    let mut touched_here = false;
    for (c, hits) in checks.iter().zip(&hits) {
        let shown = inline(&c.loc.path, text::PATH);
        let wt = c.loc.worktree.as_deref();
        for (claim, holder) in hits {
            ctx.store.add_waiter(claim.id, ctx.id.as_str())?;
            lines.push(format!(
                "{} holds a shared claim on {}{}",
                render::handle(holder),
                inline(&claim.pattern, text::PATH),
                claims::why(claim, " (", ")")
            ));
        }
        for t in &c.others {
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
    // A shell command that applies a patch was checked and recorded as an edit.
    if is_shell(ctx) && edited_paths(ctx).is_none() {
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
