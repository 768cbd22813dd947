//! UserPromptSubmit: mark busy, show the roster when it changed, and always the overlaps.

use super::{overlap, snapshot, Ctx, Envelope};
use crate::core::text::{self, inline};
use crate::core::{doorbell, gist, render};
use anyhow::Result;

pub fn submit(ctx: &mut Ctx) -> Result<Envelope> {
    super::ensure_registered(ctx)?;
    ctx.store.set_activity(ctx.id.as_str(), "busy")?;
    ctx.note_wake()?;
    // What this session is doing, for siblings, from the person's own words (unless the
    // person keeps prompts private, or the prompt is not a task).
    if crate::core::settings::get().share_prompts {
        if let Some(g) = ctx.input.prompt.as_deref().and_then(gist::of_prompt) {
            ctx.store
                .set_gist(ctx.id.as_str(), &g, crate::core::clock::now_ms())?;
        }
    }
    let snap = snapshot(ctx)?;
    let sibs = snap.siblings(&ctx.caller());
    let mut env = Envelope::default();

    let fp = render::roster_fingerprint(&sibs);
    // Only this hook writes the roster hash, so the row as the hook found it has it.
    let prev = ctx.row.as_ref().and_then(|r| r.roster_hash.clone());
    if prev.as_deref() != Some(fp.as_str()) {
        if sibs.is_empty() {
            if prev.as_deref().is_some_and(|p| !p.ends_with(":0")) {
                env.push("[orchestrator] no sibling sessions active any more.");
            }
        } else {
            env.push(render::sibling_block(
                &sibs,
                snap.now_ms,
                snap.worktree_of(ctx.id.as_str()),
            ));
        }
        ctx.store.set_roster_hash(ctx.id.as_str(), &fp)?;
    }

    let prompt = ctx.input.prompt.as_deref().unwrap_or("");
    // A turn a doorbell started: its "prompt" is the ring notice, not the person's words,
    // so it has no overlap to hint at; the mail it announces is delivered below.
    let rang = doorbell::is_ring_prompt(prompt);
    let prompt = if rang { "" } else { prompt };
    let mine = snap.files_of(ctx.id.as_str());
    let mut hints = Vec::new();
    for s in &sibs {
        let handle = render::handle(s.row);
        if let Some((_, task)) = render::doing(s.row) {
            let shared = overlap::shared_words(prompt, task);
            if !shared.is_empty() {
                hints.push(format!(
                    "- your prompt mentions {} — {handle} is working on: {}",
                    shared
                        .iter()
                        .map(|w| format!("'{}'", inline(w, text::NAME)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    inline(task, text::TASK)
                ));
            }
        }
        let both: Vec<&String> = s.files.iter().filter(|f| mine.contains(f)).collect();
        if !both.is_empty() {
            hints.push(format!(
                "- you and {handle} both touched: {}",
                render::paths(&both)
            ));
        }
    }
    if !hints.is_empty() {
        env.push(format!(
            "[orchestrator] possible overlap with sibling sessions (coordinate with @SA-<id8>):\n{}",
            hints.join("\n")
        ));
    }
    ctx.deliver_due(&mut env)?;
    if rang
        && doorbell::is_our_ring(ctx.input.prompt.as_deref().unwrap_or(""))
        && env.lease.is_empty()
    {
        env.push("[orchestrator] (that notice is about mail already in your context: nothing new)");
    }
    Ok(env)
}
