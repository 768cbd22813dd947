//! SessionStart / SessionEnd / Stop: registration, anchors, turn state.

use super::{snapshot, Ctx, Envelope};
use crate::core::identity::{anchor, profile::EnvProfile, Evidence};
use crate::core::store::{Registered, Registration};
use crate::core::text::{self, inline};
use crate::core::{render, roles};
use anyhow::Result;

/// Writes the anchors and registers this id as the row of this agent process (moving any
/// row the process held under another id, with what it was owed).
pub fn register(ctx: &mut Ctx) -> Result<Registered> {
    // The state dir exists: opening the store made sure of it.
    let prof = EnvProfile::from_env();
    let mut reg = Registration::new(&ctx.id, Evidence::Explicit);
    reg.agent = ctx.agent;
    if let Some(wanted) = prof.role.as_deref() {
        roles::ask(&mut reg, wanted);
    }
    reg.name = prof.name.as_deref();
    reg.kind = prof.kind.as_deref();
    reg.cli = Some(ctx.cli.as_str());
    let out = ctx.store.register(&reg)?;
    if let Some(h) = out.role_held_by.as_ref() {
        ctx.store
            .add_notice(ctx.id.as_str(), &roles::held_notice(h))?;
    }
    ctx.record_place()?;
    // Anchors only after the row exists: a server reading them on weak evidence then
    // finds the row and sees whose session it is, never an unowned id to adopt.
    if let Some(a) = ctx.agent {
        anchor::write_anchor(&ctx.paths, &ctx.id, &a)?;
    }
    anchor::write_legacy(&ctx.paths, &ctx.id, ctx.agent.as_ref())?;
    Ok(out)
}

pub fn start(ctx: &mut Ctx) -> Result<Envelope> {
    let reg = register(ctx)?;
    if crate::core::settings::get().share_prompts {
        if let Some(t) = ctx
            .input
            .session_title
            .as_deref()
            .map(|t| crate::core::text::inline(t, crate::core::gist::GIST_CHARS))
            .filter(|t| !t.trim().is_empty())
        {
            ctx.store.set_title(ctx.id.as_str(), &t)?;
        }
    }
    ctx.store.set_activity(ctx.id.as_str(), "idle")?;
    ctx.note_wake()?;
    let snap = snapshot(ctx)?;
    let sibs = snap.siblings(&ctx.caller());
    let me = ctx.store.get(ctx.id.as_str())?;
    let mut env = Envelope::default();
    let mut intro = format!(
        "[orchestrator] you are session SA-{} (session_id {})",
        ctx.id.id8(),
        ctx.id
    );
    if let Some(me) = me.as_ref() {
        intro.push_str(&format!(", role {}", inline(&me.role, text::NAME)));
        if let Some(n) = me.name.as_deref() {
            intro.push_str(&format!(", name \"{}\"", inline(n, text::NAME)));
        }
    }
    intro.push_str(". Siblings address you as @SA-");
    intro.push_str(ctx.id.id8());
    intro.push_str("; tell them what you work on with the `update_session_task` tool.");
    env.push(intro);
    if let Some(line) = carried_line(&reg) {
        env.push(line);
    }
    let compact = ctx.input.source.as_deref() == Some("compact");
    if compact {
        if let Some(t) = me.as_ref().and_then(|m| m.current_task.as_deref()) {
            env.push(format!(
                "[orchestrator] your task (set before compaction): {}",
                inline(t, text::TASK)
            ));
        }
    }
    if compact {
        let seen: Vec<String> = ctx
            .store
            .inbox(ctx.id.as_str(), true, 20)?
            .into_iter()
            .filter(|m| m.state == "in_context")
            .map(|m| format!("#{} from SA-{}", m.id, text::id8(&m.sender_id)))
            .collect();
        if !seen.is_empty() {
            env.push(format!(
                "[orchestrator] messages you saw but have not acked: {} (the `inbox` tool shows them).",
                seen.join(", ")
            ));
        }
    }
    if sibs.is_empty() {
        env.push("[orchestrator] no sibling sessions active.");
    } else {
        env.push(render::sibling_block(
            &sibs,
            snap.now_ms,
            snap.worktree_of(ctx.id.as_str()),
        ));
    }
    ctx.store
        .set_roster_hash(ctx.id.as_str(), &render::roster_fingerprint(&sibs))?;
    ctx.deliver_due(&mut env)?;
    Ok(env)
}

pub fn stop(ctx: &mut Ctx) -> Result<Envelope> {
    super::ensure_registered(ctx)?;
    ctx.store.set_activity(ctx.id.as_str(), "idle")?;
    ctx.note_wake()?;
    Ok(Envelope::default())
}

/// Best effort: the client may kill this hook; the reaper is the real cleanup.
pub fn end(ctx: &mut Ctx) -> Result<Envelope> {
    let reason = inline(ctx.input.reason.as_deref().unwrap_or("other"), 40);
    // `/clear` and `/resume` end a conversation, not the agent: the SessionStart that
    // follows moves this row, with its name, role, claims and queued mail, to the new id.
    if ctx.agent.is_some() && matches!(&*reason, "clear" | "resume") {
        return Ok(Envelope::default());
    }
    ctx.store.end(
        ctx.id.as_str(),
        &format!("clean exit (SessionEnd: {reason})"),
    )?;
    if let Some(a) = ctx.agent {
        remove_anchor_if_names(&ctx.paths.anchor_path(a.pid), ctx.id.as_str());
    }
    remove_anchor_if_names(&ctx.paths.legacy_anchor_path(), ctx.id.as_str());
    Ok(Envelope::default())
}

/// One line telling a new conversation what its agent process carried over from the old id.
fn carried_line(reg: &Registered) -> Option<String> {
    let from = reg.carried_from.as_deref()?;
    let c = reg.carried;
    let mut parts = Vec::new();
    let mut count = |n: usize, one: &str, many: &str| {
        if n > 0 {
            parts.push(format!("{n} {}", if n == 1 { one } else { many }));
        }
    };
    count(c.claims, "claim", "claims");
    count(c.messages, "queued message", "queued messages");
    count(c.notices, "notice", "notices");
    if c.touches > 0 {
        parts.push("its touched files".to_string());
    }
    let what = if parts.is_empty() {
        "its name and role".to_string()
    } else {
        format!("its name, role, {}", parts.join(", "))
    };
    Some(format!(
        "[orchestrator] this terminal was SA-{} before; you took over {what}{}.",
        text::id8(from),
        if c.claims > 0 {
            " (the `claims` tool lists them; `release` what you no longer need)"
        } else {
            ""
        }
    ))
}

fn remove_anchor_if_names(path: &std::path::Path, id: &str) {
    if let Ok((content, _)) = anchor::read_anchor(path) {
        if content.session_id().as_str() == id {
            let _ = std::fs::remove_file(path);
        }
    }
}
