//! `orchestrator hook <Event>`: one handler per Claude Code hook event.
//!
//! Contract with the client: exit 0 always; stdout is either nothing or one JSON answer;
//! on any failure, one `[orchestrator] ...` line on stderr and nothing on stdout.

mod bash;
mod input;
mod output;
mod overlap;
mod prompt;
mod session;
mod tool_use;

pub use input::{parse as parse_input, HookInput, MAX_PAYLOAD};
pub use output::{Envelope, MAX_CONTEXT_CHARS};
pub use overlap::{shared_words, words};

use crate::core::identity::{self, AgentProcess, SessionId, SystemProbe};
use crate::core::liveness::{Caller, Policy};
use crate::core::paths::ProjectPaths;
use crate::core::store::Store;
use anyhow::{bail, Result};
use std::io::Write;

/// Every event this binary answers.
pub const EVENTS: &[&str] = &[
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "Stop",
    "StopFailure",
    "SubagentStop",
    "PreCompact",
    "Notification",
    "SessionEnd",
];

/// What every handler works with.
pub struct Ctx {
    pub event: &'static str,
    pub input: HookInput,
    pub id: SessionId,
    pub paths: ProjectPaths,
    pub store: Store,
    pub agent: Option<AgentProcess>,
    pub policy: Policy,
}

impl Ctx {
    pub fn caller(&self) -> Caller {
        Caller::new(Some(self.id.as_str()), self.agent)
    }

    /// The hook's working directory, absolute.
    pub fn cwd(&self) -> std::path::PathBuf {
        self.input
            .cwd
            .as_deref()
            .map(|c| self.paths.root.join(c))
            .unwrap_or_else(|| self.paths.root.clone())
    }

    /// Records which worktree and branch the session works in now (its `cwd` decides).
    pub fn record_place(&self) -> Result<()> {
        if let Some((wt, branch)) = self.paths.place_of(Some(&self.cwd())) {
            self.store
                .set_place(self.id.as_str(), &wt, branch.as_deref())?;
        }
        Ok(())
    }

    /// This session's due notices and messages, taken into this turn's context.
    pub fn due_messages(&mut self) -> Result<String> {
        crate::core::mailbox::inject(
            &mut self.store,
            self.id.as_str(),
            "hook",
            crate::core::mailbox::HOOK_BUDGET_CHARS,
        )
    }
}

/// Runs the hook for `event` with stdin as input; always returns exit code 0.
pub fn run(event: &str) -> i32 {
    let stdin = std::io::stdin();
    match handle(event, stdin.lock()) {
        Ok(Some(json)) => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{json}");
        }
        Ok(None) => {}
        Err(e) => eprintln!("[orchestrator] hook {}: {e:#}", printable(event)),
    }
    0
}

fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// Parses, validates and dispatches; the JSON answer if there is one.
pub fn handle(event: &str, stdin: impl std::io::Read) -> Result<Option<serde_json::Value>> {
    let Some(event) = EVENTS.iter().copied().find(|e| *e == event) else {
        bail!(
            "unknown hook event {:?}; known events: {}",
            printable(event),
            EVENTS.join(", ")
        );
    };
    let input = input::read(stdin)?;
    let id = input.session()?;
    let paths = ProjectPaths::resolve()?;
    let store = Store::open(&paths).map_err(|e| crate::core::store::describe(e, &paths))?;
    let agent = identity::process::agent_process();
    let policy = Policy::from_env();
    // Nobody acts as another live session: refused before anything is read or written.
    let row = store
        .get(id.as_str())
        .map_err(|e| crate::core::store::describe(e, &paths))?;
    identity::trust::may_act_for(
        row.as_ref(),
        agent,
        crate::core::clock::now_ms(),
        &SystemProbe,
        policy,
    )
    .map_err(|e| anyhow::anyhow!("refused: {e}"))?;
    let mut ctx = Ctx {
        event,
        input,
        id,
        paths,
        store,
        agent,
        policy,
    };
    let env = match event {
        "SessionStart" => session::start(&mut ctx),
        "SessionEnd" => session::end(&mut ctx),
        "UserPromptSubmit" => prompt::submit(&mut ctx),
        "PreToolUse" => tool_use::pre(&mut ctx),
        "PostToolUse" => tool_use::post(&mut ctx),
        "Stop" | "StopFailure" | "SubagentStop" => session::stop(&mut ctx),
        _ => ensure_registered(&mut ctx)
            .and_then(|_| ctx.store.heartbeat(ctx.id.as_str()))
            .map(|_| Envelope::default()),
    }
    .map_err(|e| crate::core::store::describe(e, &ctx.paths))?;
    Ok(env.to_json(event))
}

/// Registers the session if its row is missing (SessionStart not wired, or reaped).
/// Either way the row this agent process owns is this id afterwards. The caller's next
/// write refreshes the heartbeat.
pub fn ensure_registered(ctx: &mut Ctx) -> Result<()> {
    let owned = match ctx.agent {
        Some(a) => ctx.store.owned_by(&a)?,
        None => None,
    };
    let row_ok = match owned.as_deref() {
        Some(o) => o == ctx.id.as_str(),
        None => ctx.agent.is_none() && ctx.store.get(ctx.id.as_str())?.is_some(),
    };
    if row_ok {
        ctx.record_place()
    } else {
        session::register(ctx).map(|_| ())
    }
}

/// Live rows without their files (edit-time checks).
pub fn live_snapshot(ctx: &Ctx) -> Result<crate::core::roster::Snapshot> {
    crate::core::roster::Snapshot::load_live(&ctx.store, &SystemProbe, ctx.policy)
}

/// Snapshot of live rows and their recent files.
pub fn snapshot(ctx: &Ctx) -> Result<crate::core::roster::Snapshot> {
    crate::core::roster::Snapshot::load(&ctx.store, &SystemProbe, ctx.policy)
}
