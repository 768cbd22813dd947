//! `orchestrator hook <Event>`: one handler per hook event, named as Claude Code names
//! them; Codex CLI and Gemini CLI enter through their adapters (`adapter/`), which map
//! their events and tools onto these and write the answer each CLI reads.
//!
//! Contract with every client: exit 0 always — a panic included; stdout is either nothing
//! or one JSON answer; on any failure, one `[orchestrator] ...` line on stderr and nothing
//! on stdout. Mail is marked in context only after the answer carrying it was written.

pub mod adapter;
mod bash;
mod input;
mod output;
mod overlap;
mod prompt;
mod session;
mod tool_use;
pub mod wait;

pub use input::{parse as parse_input, HookInput, MAX_PAYLOAD};
pub use output::{Answer, Envelope, MAX_CONTEXT_CHARS};
pub use overlap::{shared_words, words};

use crate::core::identity::{self, AgentCli, AgentProcess, SessionId, SystemProbe};
use crate::core::liveness::{Caller, Policy};
use crate::core::paths::ProjectPaths;
use crate::core::store::Store;
use crate::core::text;
use anyhow::{anyhow, bail, Result};
use std::cell::RefCell;

/// Every event the handlers answer (Claude Code's names; other CLIs' events map onto
/// these through their adapter).
pub const EVENTS: &[&str] = &[
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "PermissionRequest",
    "PostCompact",
    "Stop",
    "StopFailure",
    "SubagentStop",
    "PreCompact",
    "Notification",
    "SessionEnd",
];

/// What every handler works with.
pub struct Ctx {
    /// The handler's event (Claude Code's name for it).
    pub event: &'static str,
    /// The CLI that ran the hook, and its adapter.
    pub cli: AgentCli,
    pub adapter: &'static dyn adapter::Adapter,
    pub input: HookInput,
    pub id: SessionId,
    pub paths: ProjectPaths,
    pub store: Store,
    pub agent: Option<AgentProcess>,
    pub policy: Policy,
    /// The session's row as the hook found it (before any write of its own).
    pub row: Option<crate::core::store::SessionRow>,
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
            // Nearly every turn is in the same place: skip the write (and its lock) then.
            let same = self
                .row
                .as_ref()
                .is_some_and(|r| r.worktree.as_deref() == Some(wt.as_str()) && r.branch == branch);
            if !same {
                self.store
                    .set_place(self.id.as_str(), &wt, branch.as_deref())?;
            }
        }
        Ok(())
    }

    /// Records how this session can be woken: its doorbell (the messaging socket from the
    /// environment or the harness file, validated; none forgets it) and the permission
    /// mode the client reports. Writes only when something changed.
    pub fn note_wake(&self) -> Result<()> {
        let bell = crate::core::doorbell::discover(self.agent);
        // SessionStart reports no mode: until a hook does, the launch flags tell.
        let mode = match self.input.permission_mode() {
            Some(m) => Some(text::inline(m, 40)),
            None => self
                .agent
                .and_then(crate::core::doorbell::launch_mode)
                .map(std::borrow::Cow::Borrowed),
        };
        self.store
            .note_wake(self.id.as_str(), bell.as_deref(), mode.as_deref())?;
        Ok(())
    }

    /// Adds this session's due notices and messages to `env`, leased to this answer.
    pub fn deliver_due(&mut self, env: &mut Envelope) -> Result<()> {
        let (text, lease) = crate::core::mailbox::inject(
            &mut self.store,
            self.id.as_str(),
            crate::core::mailbox::HOOK_BUDGET_CHARS,
        )?;
        env.push(text);
        env.lease = lease;
        Ok(())
    }
}

/// Runs the hook for `event` with stdin as input; always returns exit code 0.
pub fn run(event: &str) -> i32 {
    run_as(event, None)
}

/// [`run`] for the CLI `agent` names (`claude`, `codex`, `gemini`; `None`: detected).
pub fn run_as(event: &str, agent: Option<&str>) -> i32 {
    quiet_panics();
    let answered = guarded(|| {
        let answer = handle_as(event, agent, std::io::stdin().lock())?;
        // Debug builds only: lets a test panic between leasing mail and writing it.
        #[cfg(debug_assertions)]
        if std::env::var_os("ORCHESTRATOR_DEBUG_PANIC").is_some() {
            panic!("ORCHESTRATOR_DEBUG_PANIC is set");
        }
        answer.send(&mut std::io::stdout().lock())
    });
    if let Err(e) = answered {
        // A shared server that is down is said at most once a minute, not every turn.
        if crate::core::store::is_unreachable(&e)
            && !ProjectPaths::resolve()
                .is_ok_and(|p| crate::core::fleet::should_say_unreachable(&p))
        {
            return 0;
        }
        let why = format!("{e:#}");
        let why = text::inline(&why, text::LINE);
        eprintln!("[orchestrator] hook {}: {why}", printable(event));
    }
    0
}

fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    text::inline(s, 64)
}

thread_local! {
    /// Where the last panic on this thread happened, for the one stderr line.
    static PANICKED_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replaces the default panic message (several lines on stderr) with a note of where it
/// happened, which [`guarded`] puts on its one line.
pub(crate) fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()));
        PANICKED_AT.with(|p| *p.borrow_mut() = at);
    }));
}

/// Runs `f`, turning a panic into an error, so a hook that panics still exits 0.
pub fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        let at = PANICKED_AT
            .with(|p| p.borrow_mut().take())
            .map(|at| format!(" at {at}"))
            .unwrap_or_default();
        Err(anyhow!(
            "internal error ({what}{at}); nothing more was done, please report it"
        ))
    })
}

/// Parses, validates and dispatches; the answer to print (possibly nothing).
pub fn handle(event: &str, stdin: impl std::io::Read) -> Result<Answer> {
    handle_as(event, None, stdin)
}

/// [`handle`] for the CLI `agent` names, else the CLI [`adapter::detect`] finds.
pub fn handle_as(raw: &str, agent: Option<&str>, stdin: impl std::io::Read) -> Result<Answer> {
    if !adapter::known_events().contains(&raw) {
        bail!(
            "unknown hook event {:?}; known events: {}",
            printable(raw),
            adapter::known_events().join(", ")
        );
    }
    let explicit = match agent {
        Some(a) => Some(AgentCli::parse(a).ok_or_else(|| {
            anyhow!(
                "unknown --agent {:?}: use claude, codex or gemini",
                printable(a)
            )
        })?),
        None => None,
    };
    let input = input::read(stdin)?;
    let found = identity::process::agent_process_cli();
    let cli = adapter::detect(raw, explicit, &input, found.map(|(_, c)| c));
    let adapter = adapter::of(cli);
    let Some(event) = adapter.event(raw) else {
        bail!(
            "{:?} is not a {} hook event; wire this hook to one of: {}",
            printable(raw),
            cli.product(),
            adapter::known_events()
                .into_iter()
                .filter(|e| adapter.event(e).is_some())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let id = input.session()?;
    let paths = ProjectPaths::resolve()?;
    let store = Store::open(&paths).map_err(|e| crate::core::store::describe(e, &paths))?;
    let agent = found.map(|(a, _)| a);
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
    // Rows registered before the CLI was known (or by a server) learn it here.
    if let Some(r) = row.as_ref() {
        if r.agent_cli.as_deref() != Some(cli.as_str()) {
            store
                .set_agent_cli(id.as_str(), cli.as_str())
                .map_err(|e| crate::core::store::describe(e, &paths))?;
        }
    }
    let mut ctx = Ctx {
        event,
        cli,
        adapter,
        input,
        id,
        paths,
        store,
        agent,
        policy,
        row,
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
    .and_then(|mut env| adapter.settle(&mut ctx, &mut env).map(|_| env))
    .map_err(|e| crate::core::store::describe(e, &ctx.paths))?;
    let json = adapter.answer(&env, event, raw);
    Ok(Answer::with_json(json, env.lease, ctx.store))
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
        None => ctx.agent.is_none() && ctx.row.is_some(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_one_line_error() {
        let r: Result<()> = guarded(|| panic!("boom\nsecond line {}", 7));
        let e = format!("{:#}", r.expect_err("caught"));
        assert!(e.contains("internal error (boom"), "{e}");
        assert!(guarded(|| Ok(5)).is_ok_and(|v| v == 5));
        assert!(guarded::<()>(|| bail!("plain")).is_err());
    }

    #[test]
    fn release_builds_unwind_so_panics_are_caught() {
        let manifest = include_str!("../../Cargo.toml");
        assert!(
            !manifest.contains("panic = \"abort\""),
            "panic = \"abort\" would kill a hook by SIGABRT"
        );
    }
}
