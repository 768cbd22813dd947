//! The MCP tools an agent calls. Each accepts an optional `session_id`, treated as
//! explicit identity evidence (the server rebinds to it).

use super::state::ServerState;
use crate::core::clock::SystemClock;
use crate::core::identity::profile::validate_name;
use crate::core::identity::session_id::id8;
use crate::core::identity::SystemProbe;
use crate::core::roster::Snapshot;
use crate::core::store::claims::Request;
use crate::core::store::messages::Sender;
use crate::core::{claims, mailbox, render, roles};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::{schemars, tool, tool_router, ErrorData as McpError};
use serde::Deserialize;
use std::sync::Arc;

/// Longest task description kept.
pub const MAX_TASK_CHARS: usize = 200;

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct IdentityArgs {
    /// Your harness session id, if you know it; the server rebinds to it.
    #[serde(default)]
    pub session_id: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct TaskArgs {
    /// One line saying what you are working on (at most 200 characters); empty clears it.
    pub task: String,
    #[serde(default)]
    pub session_id: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct NameArgs {
    /// A short name siblings can address you by as @name: 1-32 of [A-Za-z0-9_.-].
    pub name: String,
    #[serde(default)]
    pub session_id: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SendArgs {
    /// Recipients: @SA-<id8>, @<name>, @PA (the prime session), @all, or a comma list.
    pub to: String,
    /// The message (at most 8 KiB). Recipients see it fenced as another agent's words.
    pub body: String,
    /// The message id this replies to (threads the conversation).
    #[serde(default)]
    pub reply_to: Option<i64>,
    /// Queue for a session that is not live now (it may resume) instead of failing.
    #[serde(default)]
    pub queue: Option<bool>,
    #[serde(default)]
    pub session_id: Option<String>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct InboxArgs {
    /// Only messages not yet acknowledged (default true).
    #[serde(default)]
    pub unread_only: Option<bool>,
    #[serde(default)]
    pub session_id: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct MessageIdArgs {
    /// The message id (shown as #N).
    pub message_id: i64,
    #[serde(default)]
    pub session_id: Option<String>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct PrimeArgs {
    /// Take prime even while another live session holds it.
    #[serde(default)]
    pub force: Option<bool>,
    #[serde(default)]
    pub session_id: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ClaimArgs {
    /// Files, directories or globs (`src/parser/**`, `*.{md,txt}`), relative to the project root or absolute.
    pub paths_or_globs: Vec<String>,
    /// Exclusive: siblings' edits there are refused until you release it. Default: shared (they are warned).
    #[serde(default)]
    pub exclusive: Option<bool>,
    /// Why, shown to siblings.
    #[serde(default)]
    pub reason: Option<String>,
    /// Upper bound on the claim's life, e.g. `30m`, `2h`, at most `365d` (it always ends with your session).
    #[serde(default)]
    pub ttl: Option<String>,
    /// Only in your git worktree. Default: every worktree of the repository (a claim is
    /// there to avoid the merge conflict).
    #[serde(default)]
    pub worktree_only: Option<bool>,
    #[serde(default)]
    pub session_id: Option<String>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct ReleaseArgs {
    /// Claims to release; all of yours when omitted.
    #[serde(default)]
    pub paths: Option<Vec<String>>,
    #[serde(default)]
    pub session_id: Option<String>,
}

/// The server handler: state plus the generated tool router.
#[derive(Clone)]
pub struct Tools {
    pub state: Arc<ServerState>,
    pub tool_router: ToolRouter<Self>,
}

/// Unwraps a `Result<T, String>` or returns it as a tool error.
macro_rules! or_fail {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return fail(e),
        }
    };
}

fn ok(text: impl Into<String>) -> Result<CallToolResult, McpError> {
    Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
}

fn fail(text: impl Into<String>) -> Result<CallToolResult, McpError> {
    Ok(CallToolResult::error(vec![ContentBlock::text(text)]))
}

impl Tools {
    pub fn new(state: Arc<ServerState>) -> Self {
        Self {
            state,
            tool_router: Self::tool_router(),
        }
    }

    /// Applies explicit evidence and returns the bound id, or a tool error saying what to do.
    fn bound(&self, session_id: Option<&str>) -> Result<String, String> {
        self.state.apply_explicit(session_id)?;
        self.state
            .binding()
            .map(|b| b.id.to_string())
            .ok_or_else(|| {
                "this server does not know its session yet: pass your session_id argument \
             (it is in your SessionStart context) or wait for the next hook"
                    .to_string()
            })
    }
}

#[tool_router(vis = "pub(crate)")]
impl Tools {
    #[tool(
        description = "Show which session this server is bound to, how sure it is, and your role, name, agent pid and project root."
    )]
    async fn whoami(
        &self,
        Parameters(a): Parameters<IdentityArgs>,
    ) -> Result<CallToolResult, McpError> {
        if let Err(e) = self.state.apply_explicit(a.session_id.as_deref()) {
            return fail(e);
        }
        let b = self.state.binding();
        let row = match b.as_ref().map(|b| self.state.store().get(b.id.as_str())) {
            Some(Ok(row)) => row,
            Some(Err(e)) => {
                return fail(format!(
                    "cannot read the registry: {e:#}; run `orchestrator doctor`"
                ))
            }
            None => None,
        };
        let v = serde_json::json!({
            "session_id": b.as_ref().map(|b| b.id.to_string()),
            "id8": b.as_ref().map(|b| b.id.id8().to_string()),
            "evidence": b.as_ref().map(|b| b.evidence.as_str()),
            "provisional": b.as_ref().map(|b| b.evidence.is_provisional()).unwrap_or(true),
            "role": row.as_ref().map(|r| r.role.clone()),
            "name": row.as_ref().and_then(|r| r.name.clone()),
            "current_task": row.as_ref().and_then(|r| r.current_task.clone()),
            "agent_pid": self.state.agent.map(|a| a.pid),
            "server_pid": self.state.pid,
            "project_root": self.state.paths.root.to_string_lossy(),
            "held_ids": self.state.self_ids().into_iter().collect::<Vec<_>>(),
        });
        ok(serde_json::to_string_pretty(&v).unwrap_or_default())
    }

    #[tool(
        description = "List the live sibling sessions on this project (who, role, task, recent files) and yourself."
    )]
    async fn roster(
        &self,
        Parameters(a): Parameters<IdentityArgs>,
    ) -> Result<CallToolResult, McpError> {
        let me = or_fail!(self.bound(a.session_id.as_deref()));
        let snap = match Snapshot::load(
            &self.state.store(),
            &SystemProbe,
            crate::core::liveness::Policy::from_env(),
        ) {
            Ok(s) => s,
            Err(e) => {
                return fail(format!(
                    "cannot read the registry: {e:#}; run `orchestrator doctor`"
                ))
            }
        };
        let caller = self.state.caller();
        let sibs = snap.siblings(&caller);
        let mut text = String::new();
        if let Some(row) = snap.live.iter().find(|r| r.session_id == me) {
            text.push_str("[orchestrator] you:\n");
            text.push_str(&render::session_line(
                row,
                snap.files_of(&me),
                snap.now_ms,
                None,
            ));
            text.push('\n');
        }
        if sibs.is_empty() {
            text.push_str("[orchestrator] no sibling sessions active.");
        } else {
            text.push_str(&render::sibling_block(
                &sibs,
                snap.now_ms,
                snap.worktree_of(&me),
            ));
        }
        ok(text)
    }

    #[tool(
        description = "Set the one-line description of what you are working on; sibling sessions see it every turn."
    )]
    async fn update_session_task(
        &self,
        Parameters(a): Parameters<TaskArgs>,
    ) -> Result<CallToolResult, McpError> {
        let me = or_fail!(self.bound(a.session_id.as_deref()));
        let task = crate::core::text::inline(&a.task, usize::MAX);
        let task = task.trim();
        if task.chars().count() > MAX_TASK_CHARS {
            return fail(format!(
                "task is {} characters: keep it to one line of at most {MAX_TASK_CHARS}",
                task.chars().count()
            ));
        }
        let value = (!task.is_empty()).then_some(task);
        match self.state.store().set_task(&me, value) {
            Ok(_) => ok(match value {
                Some(t) => format!(
                    "task set for SA-{}: {t}",
                    crate::core::identity::session_id::id8(&me)
                ),
                None => "task cleared".into(),
            }),
            Err(e) => fail(format!("cannot store the task: {e:#}; retry")),
        }
    }

    #[tool(description = "Set a short name siblings can address you by (@name).")]
    async fn set_name(
        &self,
        Parameters(a): Parameters<NameArgs>,
    ) -> Result<CallToolResult, McpError> {
        let me = or_fail!(self.bound(a.session_id.as_deref()));
        let name = a.name.trim();
        if let Err(e) = validate_name(name) {
            return fail(e);
        }
        match self.state.store().set_unique_name(&me, name) {
            Ok(true) => ok(format!("name set: siblings can address you as @{name}")),
            Ok(false) => fail(format!(
                "name {name:?} is already used by another session: pick another"
            )),
            Err(e) => fail(format!("cannot store the name: {e:#}; retry")),
        }
    }

    #[tool(
        description = "Send a message to other sessions (@SA-<id8>, @<name>, @PA, @all); it reaches them at their next turn or live."
    )]
    async fn send_message(
        &self,
        Parameters(a): Parameters<SendArgs>,
    ) -> Result<CallToolResult, McpError> {
        let me = or_fail!(self.bound(a.session_id.as_deref()));
        let sent = {
            let mut store = self.state.store();
            let row = match store.get(&me) {
                Ok(row) => row,
                Err(e) => {
                    return fail(format!(
                        "cannot read the registry: {e:#}; run `orchestrator doctor`"
                    ))
                }
            };
            let from = Sender {
                id: me.clone(),
                name: row.as_ref().and_then(|r| r.name.clone()),
                role: row.as_ref().map(|r| r.role.clone()),
                task: row.as_ref().and_then(|r| r.current_task.clone()),
            };
            mailbox::send(
                &mut store,
                &from,
                &a.to,
                &a.body,
                a.reply_to,
                a.queue.unwrap_or(false),
                &SystemProbe,
            )
        };
        let mut sent = or_fail!(sent);
        // Ring without holding the store (at most doorbell::RING_TIMEOUT, off the runtime
        // thread); the message is stored, so nothing here can fail the send.
        let root = self.state.paths.root.clone();
        let mut plan = sent.plan.clone();
        sent.plan = tokio::task::spawn_blocking(move || {
            crate::core::doorbell::ring(&mut plan, &root);
            plan
        })
        .await
        .unwrap_or(sent.plan);
        sent.arrivals = crate::core::doorbell::record(&self.state.store(), &sent.plan);
        ok(format!(
            "message #{} sent to {}; ask message_status({}) for receipts\n{}",
            sent.message_id,
            sent.recipients
                .iter()
                .map(|r| format!("SA-{}", id8(r)))
                .collect::<Vec<_>>()
                .join(", "),
            sent.message_id,
            sent.arrival_lines().join("\n")
        ))
    }

    #[tool(description = "Read messages addressed to you (unread ones by default), newest first.")]
    async fn inbox(
        &self,
        Parameters(a): Parameters<InboxArgs>,
    ) -> Result<CallToolResult, McpError> {
        let me = or_fail!(self.bound(a.session_id.as_deref()));
        let store = self.state.store();
        let msgs = match store.inbox(&me, a.unread_only.unwrap_or(true), 50) {
            Ok(m) => m,
            Err(e) => return fail(format!("cannot read the inbox: {e:#}; retry")),
        };
        if msgs.is_empty() {
            return ok("[orchestrator] no unread messages.");
        }
        let ids: Vec<i64> = msgs.iter().map(|m| m.id).collect();
        if let Err(e) = store.mark_read(&me, &ids) {
            return fail(format!("cannot mark messages read: {e:#}; retry"));
        }
        ok(msgs
            .iter()
            .map(mailbox::render)
            .collect::<Vec<_>>()
            .join("\n\n"))
    }

    #[tool(
        description = "Acknowledge a message you have read and acted on, so its sender sees the receipt."
    )]
    async fn ack(
        &self,
        Parameters(a): Parameters<MessageIdArgs>,
    ) -> Result<CallToolResult, McpError> {
        let me = or_fail!(self.bound(a.session_id.as_deref()));
        match self.state.store().ack(&me, a.message_id) {
            Ok(true) => ok(format!("message #{} acknowledged", a.message_id)),
            Ok(false) => fail(format!(
                "message #{} was not addressed to you: check the id in your inbox",
                a.message_id
            )),
            Err(e) => fail(format!("cannot store the ack: {e:#}; retry")),
        }
    }

    #[tool(
        description = "Show the delivery receipts of a message you sent: queued, in context (how), acknowledged, with times."
    )]
    async fn message_status(
        &self,
        Parameters(a): Parameters<MessageIdArgs>,
    ) -> Result<CallToolResult, McpError> {
        let me = or_fail!(self.bound(a.session_id.as_deref()));
        let store = self.state.store();
        match store.message_sender(a.message_id) {
            Ok(Some(s)) if s == me || self.state.self_ids().contains(&s) => {}
            Ok(Some(_)) => return fail(format!("message #{} was not sent by you", a.message_id)),
            Ok(None) => return fail(format!("no message #{}", a.message_id)),
            Err(e) => return fail(format!("cannot read receipts: {e:#}; retry")),
        }
        match store.receipts(a.message_id) {
            Ok(mut r) => {
                r.iter_mut().for_each(crate::core::doorbell::explain);
                // Where a queued message waits for a CLI that cannot be woken, say so.
                let mut v = serde_json::to_value(&r).unwrap_or_default();
                for (rec, out) in r.iter().zip(v.as_array_mut().into_iter().flatten()) {
                    let cli = store.get(&rec.recipient_id).ok().flatten();
                    let note = crate::core::wake::delivery_note(
                        cli.as_ref().and_then(|c| c.agent_cli.as_deref()),
                    );
                    if let (Some(n), "queued") = (note, rec.state.as_str()) {
                        out["note"] = serde_json::json!(n);
                    }
                }
                ok(serde_json::to_string_pretty(&v).unwrap_or_default())
            }
            Err(e) => fail(format!("cannot read receipts: {e:#}; retry")),
        }
    }

    #[tool(
        description = "Claim files or globs while you work on them: exclusive claims make siblings' edits there ask you first; claims end with your session."
    )]
    async fn claim(
        &self,
        Parameters(a): Parameters<ClaimArgs>,
    ) -> Result<CallToolResult, McpError> {
        let me = or_fail!(self.bound(a.session_id.as_deref()));
        let ttl = or_fail!(a.ttl.as_deref().map(claims::parse_ttl).transpose());
        let root = &self.state.paths.root;
        let pats = or_fail!(claims::patterns(root, root, &a.paths_or_globs));
        let exclusive = a.exclusive.unwrap_or(false);
        let scope = match (a.worktree_only.unwrap_or(false), self.state.paths.worktree.as_ref()) {
            (false, _) => None,
            (true, Some(w)) => Some(w.label()),
            (true, None) => {
                return fail("worktree_only scopes a claim to a git worktree, and this project is not in git: leave it out".to_string())
            }
        };
        let req = Request {
            session_id: &me,
            patterns: &pats,
            exclusive,
            reason: a.reason.as_deref(),
            ttl_ms: ttl,
            worktree: scope.as_deref(),
        };
        match claims::claim(&self.state.store(), &req, &SystemProbe, &SystemClock) {
            Ok(Ok(())) => ok(format!(
                "{} claim on {} (released when you call release or your session ends)",
                if exclusive { "exclusive" } else { "shared" },
                pats.join(", ")
            )),
            Ok(Err(e)) => fail(e),
            Err(e) => fail(format!(
                "cannot claim: {e:#}; retry, and run `orchestrator doctor` if it persists"
            )),
        }
    }

    #[tool(
        description = "Release your claims (the named ones, or all); siblings who waited are told."
    )]
    async fn release(
        &self,
        Parameters(a): Parameters<ReleaseArgs>,
    ) -> Result<CallToolResult, McpError> {
        let me = or_fail!(self.bound(a.session_id.as_deref()));
        let root = self.state.paths.root.clone();
        match claims::release(
            &self.state.store(),
            &me,
            &root,
            &root,
            &a.paths.unwrap_or_default(),
        ) {
            Ok(Ok(r)) if r.is_empty() => ok("you held no claims"),
            Ok(Ok(r)) => ok(format!("released: {}", r.join(", "))),
            Ok(Err(e)) => fail(e),
            Err(e) => fail(format!("cannot release: {e:#}; retry")),
        }
    }

    #[tool(
        description = "List the live claims on this project: who holds what, exclusive or shared, and why."
    )]
    async fn claims(
        &self,
        Parameters(a): Parameters<IdentityArgs>,
    ) -> Result<CallToolResult, McpError> {
        if let Err(e) = self.state.apply_explicit(a.session_id.as_deref()) {
            return fail(e);
        }
        let store = self.state.store();
        let snap = match Snapshot::load(
            &store,
            &SystemProbe,
            crate::core::liveness::Policy::from_env(),
        ) {
            Ok(s) => s,
            Err(e) => return fail(format!("cannot read the registry: {e:#}")),
        };
        let all = match store.all_claims() {
            Ok(all) => all,
            Err(e) => {
                return fail(format!(
                    "cannot read the claims: {e:#}; run `orchestrator doctor`"
                ))
            }
        };
        if all.is_empty() {
            return ok("[orchestrator] no claims.");
        }
        let lines: Vec<String> = all
            .iter()
            .map(|c| {
                claims::describe(
                    c,
                    snap.live.iter().find(|r| r.session_id == c.session_id),
                    snap.now_ms,
                )
            })
            .collect();
        ok(lines.join("\n"))
    }

    #[tool(
        description = "Become the prime session (the coordinator, addressed as @PA); refused while another live session holds it unless force is true."
    )]
    async fn claim_prime(
        &self,
        Parameters(a): Parameters<PrimeArgs>,
    ) -> Result<CallToolResult, McpError> {
        let me = or_fail!(self.bound(a.session_id.as_deref()));
        match roles::claim_prime(
            &self.state.store(),
            &me,
            a.force.unwrap_or(false),
            &SystemProbe,
        ) {
            Ok(Ok(Some(prev))) => ok(format!(
                "you are prime now (took it from SA-{})",
                id8(&prev)
            )),
            Ok(Ok(None)) => ok("you are prime now"),
            Ok(Err(e)) => fail(e),
            Err(e) => fail(format!("cannot change roles: {e:#}; retry")),
        }
    }
}
