//! Waking an idle session through Claude Code's own doorbell: the Unix socket each
//! interactive session listens on (`CLAUDE_CODE_MESSAGING_SOCKET`, or `messagingSocketPath`
//! in `~/.claude/sessions/<pid>.json`). One JSON line written there starts a turn in an
//! idle session (a busy one gets it after its current step), and the UserPromptSubmit
//! hook of that turn delivers the mail.
//!
//! The ring carries only a fixed notice — who sent, the message number — never a byte of
//! the body, so a failed ring loses nothing (the mail stays queued for the next hook) and
//! nothing is shown twice (the body reaches the context only through the hook's lease).
//!
//! Order of work for a send: [`plan`] (store: claim one ring per recipient, coalescing a
//! burst), [`ring`] (sockets only, all recipients at once within [`RING_TIMEOUT`]),
//! [`record`] (store: how each delivery will arrive). A send never fails because of a ring.
//!
//! A socket is reachable only on its own host: on a shared server a sender leaves a
//! recipient on another host to that host ([`code::REMOTE`]), whose `serve` rings it
//! ([`remote`]) through the same claim, so a burst still rings once.

pub mod remote;

use crate::core::clock;
use crate::core::identity::{harness, AgentProcess, Probe, SystemProbe};
use crate::core::store::messages::Receipt;
use crate::core::store::wake::{Claim, WakeRow};
use crate::core::store::Store;
use std::io::ErrorKind;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The environment variable Claude Code gives hooks and MCP servers.
pub const SOCKET_ENV: &str = "CLAUDE_CODE_MESSAGING_SOCKET";
/// The longest a send (or a hook) spends ringing, all recipients together.
pub const RING_TIMEOUT: Duration = Duration::from_secs(1);
/// `sun_path` holds 108 bytes with its NUL.
const MAX_SOCKET_PATH: usize = 107;

/// Outcome codes stored per delivery (`deliveries.ring`).
pub mod code {
    /// Rung; the recipient was idle: a turn started.
    pub const WOKE: &str = "woke";
    /// Rung; the recipient was busy: it sees the notice after its current step.
    pub const BUSY: &str = "busy";
    /// Rung, but the recipient runs in bypass mode: the client holds it for approval.
    pub const HELD: &str = "held";
    /// Rung, but the recipient's `crossSessionInbound` is `hold`: held for approval.
    pub const HELD_SETTING: &str = "held_setting";
    /// A ring for earlier mail is still pending: this message arrives with it.
    pub const COALESCED: &str = "coalesced";
    /// A hook took it before the ring: nothing to ring for.
    pub const TAKEN: &str = "taken";
    pub const NO_DOORBELL: &str = "no_doorbell";
    /// No doorbell, but the session's asyncRewake waiter runs.
    pub const WAITER: &str = "waiter";
    /// The recipient's `crossSessionInbound` setting refuses rings.
    pub const REFUSED: &str = "refused";
    /// On another host: its own server rings it there (see [`super::remote`]).
    pub const REMOTE: &str = crate::core::store::wake::REMOTE;
    pub const NOT_LIVE: &str = "not_live";
    pub const SELF: &str = "self";
    /// Prefix of a failed ring: `failed: connection refused`.
    pub const FAILED: &str = "failed";
}

/// Why a path is not a doorbell, or why a ring did not get through.
pub type Why = String;

/// Checks that `path` is a doorbell we may ring: an absolute path of sane length to a
/// Unix socket owned by this user, itself not a symlink (never followed).
pub fn validate(path: &str) -> Result<PathBuf, Why> {
    if path.is_empty() || !path.starts_with('/') {
        return Err("not an absolute path".into());
    }
    if path.len() > MAX_SOCKET_PATH {
        return Err(format!("path longer than {MAX_SOCKET_PATH} bytes"));
    }
    if path.chars().any(char::is_control) {
        return Err("path has control characters".into());
    }
    let p = PathBuf::from(path);
    let meta = match std::fs::symlink_metadata(&p) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err("no socket there (ENOENT)".into()),
        Err(e) => return Err(format!("cannot inspect it: {e}")),
    };
    if meta.file_type().is_symlink() {
        return Err("a symlink (never followed)".into());
    }
    if !meta.file_type().is_socket() {
        return Err("not a socket".into());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!("owned by uid {}, not this user", meta.uid()));
    }
    Ok(p)
}

/// This process's own session's doorbell, from the environment, if valid.
pub fn own_socket() -> Option<String> {
    let v = std::env::var(SOCKET_ENV).ok()?;
    validate(&v).ok().map(|_| v)
}

/// The doorbell of the session a hook or server runs for: the environment's, else the
/// one the harness file of `agent` names; validated. `None` forgets a recorded one.
pub fn discover(agent: Option<AgentProcess>) -> Option<String> {
    own_socket().or_else(|| {
        let a = agent?;
        harness_file(a)?
            .messaging_socket
            .filter(|p| validate(p).is_ok())
    })
}

/// `bypassPermissions` when `agent` was launched with `--dangerously-skip-permissions` (or
/// `--permission-mode bypassPermissions`): the mode a session has before any hook that
/// reports one (SessionStart does not) has run.
pub fn launch_mode(agent: AgentProcess) -> Option<&'static str> {
    let path = PathBuf::from(format!("/proc/{}/cmdline", agent.pid));
    let (bytes, _) = crate::core::private_fs::read_capped(&path, 256 * 1024).ok()?;
    // Read first, then check it is still that process (pid reuse).
    if !SystemProbe.is_alive(agent.pid, agent.start_ticks) {
        return None;
    }
    let args: Vec<&[u8]> = bytes.split(|b| *b == 0).collect();
    let bypass = args.iter().any(|a| *a == b"--dangerously-skip-permissions")
        || args
            .windows(2)
            .any(|w| w[0] == b"--permission-mode" && w[1] == b"bypassPermissions")
        || args
            .iter()
            .any(|a| *a == b"--permission-mode=bypassPermissions");
    bypass.then_some("bypassPermissions")
}

/// The harness's file for a live `agent` (pid reuse checked).
fn harness_file(agent: AgentProcess) -> Option<harness::HarnessFile> {
    let info = SystemProbe
        .process(agent.pid)
        .filter(|p| p.start_ticks == agent.start_ticks)?;
    harness::read_harness_file(&harness::sessions_dir()?, agent.pid, &info)
}

/// `idle` or `busy`, as the harness file of a live `agent` says (newer clients only).
pub fn harness_status(agent: AgentProcess) -> Option<String> {
    harness_file(agent)?.status
}

/// Only letters, digits, `-` and `_`: what may appear of an id in a ring.
fn safe_id8(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(8)
        .collect()
}

/// What a ring announces. Everything in it is fixed text, a number or a cleaned id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announce {
    /// Message `id` from a session id (or `human`).
    Message { id: i64, from: String },
    /// A notice; the text is fixed by the caller, never another session's words.
    Notice(&'static str),
}

/// The notice text a ring carries, wrapped as Claude Code shows cross-session messages.
pub fn ring_content(what: &Announce) -> String {
    let inner = match what {
        Announce::Message { id, from } if from == "human" => {
            format!("[orchestrator] new message #{id} from the person; it is in your context")
        }
        Announce::Message { id, from } => format!(
            "[orchestrator] new message #{id} from SA-{}; it is in your context",
            safe_id8(from)
        ),
        Announce::Notice(what) => format!("[orchestrator] {what}; it is in your context"),
    };
    // Defense in depth: the fixed parts hold no markup, and nothing else gets in.
    let inner: String = inner.chars().filter(|c| !matches!(c, '<' | '>')).collect();
    format!("<cross-session-message from-name=\"orchestrator\">{inner}</cross-session-message>")
}

/// True when a prompt is a ring (ours or another tool's cross-session message), not words
/// the person typed.
pub fn is_ring_prompt(prompt: &str) -> bool {
    prompt.trim_start().starts_with("<cross-session-message")
}

/// True when a prompt is one of our own rings.
pub fn is_our_ring(prompt: &str) -> bool {
    prompt
        .trim_start()
        .starts_with("<cross-session-message from-name=\"orchestrator\">[orchestrator] ")
}

/// The one line written to the socket.
pub fn ring_line(content: &str) -> String {
    let v = serde_json::json!({"type": "user", "message": {"role": "user", "content": content}});
    format!("{v}\n")
}

/// Connects (non-blocking), writes `line`, closes; all before `deadline`.
pub fn ring_socket(path: &Path, line: &[u8], deadline: Instant) -> Result<(), Why> {
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain old data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err("path does not fit a socket address".into());
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
    // SAFETY: plain socket(2) call; a negative return is handled.
    let raw = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if raw < 0 {
        return Err(os_why(&std::io::Error::last_os_error()));
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    loop {
        // SAFETY: `addr` is a valid sockaddr_un of `len` bytes; fd is open.
        let r = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len,
            )
        };
        if r == 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            // The listener's backlog is full: try again until the deadline.
            Some(libc::EAGAIN) => {
                if Instant::now() >= deadline {
                    return Err(timed_out());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Some(libc::EINPROGRESS) => {
                wait_writable(&fd, deadline)?;
                let mut err: libc::c_int = 0;
                let mut l = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
                // SAFETY: SO_ERROR into a c_int of the stated size.
                let r = unsafe {
                    libc::getsockopt(
                        fd.as_raw_fd(),
                        libc::SOL_SOCKET,
                        libc::SO_ERROR,
                        (&mut err as *mut libc::c_int).cast(),
                        &mut l,
                    )
                };
                if r != 0 {
                    return Err(os_why(&std::io::Error::last_os_error()));
                }
                if err != 0 {
                    return Err(os_why(&std::io::Error::from_raw_os_error(err)));
                }
                break;
            }
            _ => return Err(os_why(&e)),
        }
    }
    let mut sent = 0;
    while sent < line.len() {
        let rest = &line[sent..];
        // SAFETY: sending from a live slice of the stated length; MSG_NOSIGNAL keeps a
        // closed peer from raising SIGPIPE.
        let n = unsafe {
            libc::send(
                fd.as_raw_fd(),
                rest.as_ptr().cast(),
                rest.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n > 0 {
            sent += n as usize;
            continue;
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EAGAIN) => wait_writable(&fd, deadline)?,
            _ => return Err(os_why(&e)),
        }
    }
    Ok(())
}

fn timed_out() -> Why {
    format!("timed out after {} s", RING_TIMEOUT.as_secs())
}

fn wait_writable(fd: &OwnedFd, deadline: Instant) -> Result<(), Why> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().clamp(1, 1000) as i32) };
        if r > 0 {
            return Ok(());
        }
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(os_why(&e));
            }
        }
    }
}

fn os_why(e: &std::io::Error) -> Why {
    match e.raw_os_error() {
        Some(libc::ENOENT) => "no socket there (ENOENT)".into(),
        Some(libc::ECONNREFUSED) => "connection refused (ECONNREFUSED)".into(),
        Some(libc::EACCES) | Some(libc::EPERM) => "permission denied".into(),
        Some(libc::ENOTSOCK) => "not a socket".into(),
        _ => e.to_string(),
    }
}

/// A recipient's `crossSessionInbound` as Claude Code applies it (checked on 2.1.331): a
/// project's settings (`.claude/settings.json`, `.claude/settings.local.json`) may only
/// restrict (`hold`, `refuse`); `accept` counts from the user's `settings.json` or managed
/// settings. The most restrictive value found wins.
pub fn inbound_setting(root: &Path) -> Option<String> {
    let user = harness::sessions_dir().and_then(|d| d.parent().map(|p| p.join("settings.json")));
    let managed = Some(PathBuf::from("/etc/claude-code/managed-settings.json"));
    let trusted: Vec<String> = [managed, user]
        .into_iter()
        .flatten()
        .filter_map(|f| read_inbound(&f))
        .collect();
    let project: Vec<String> = [
        root.join(".claude/settings.json"),
        root.join(".claude/settings.local.json"),
    ]
    .iter()
    .filter_map(|f| read_inbound(f))
    .filter(|v| v != "accept")
    .collect();
    let all: Vec<&String> = trusted.iter().chain(&project).collect();
    ["refuse", "hold", "accept"]
        .into_iter()
        .find(|want| all.iter().any(|v| v.as_str() == *want))
        .map(str::to_string)
}

fn read_inbound(file: &Path) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // A person's settings file may be a symlink (dotfiles); a FIFO must not hang a send.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(file)
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut buf = Vec::new();
    f.take(1 << 20).read_to_end(&mut buf).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&buf).ok()?;
    let s = v.get("crossSessionInbound")?.as_str()?;
    matches!(s, "accept" | "hold" | "refuse").then(|| s.to_string())
}

/// One recipient of a send, and how it is to be woken.
#[derive(Debug, Clone)]
pub struct Target {
    pub recipient: String,
    /// The outcome code once known (see [`code`]).
    pub code: String,
    /// The ring this delivery rides on (ours once rung, or the pending one).
    pub rung_at_ms: Option<i64>,
    ring: Option<Ring>,
}

#[derive(Debug, Clone)]
struct Ring {
    /// Claude Code's messaging socket; empty when the ring goes through `codex queue`.
    socket: String,
    /// The Codex CLI binary that queues a turn for this session (Codex has no socket).
    codex: Option<PathBuf>,
    stamp: i64,
    bypass: bool,
    busy: bool,
}

/// What one send (or notice) rings.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The message, or `None` for a notice.
    pub message_id: Option<i64>,
    pub announce: Option<Announce>,
    pub targets: Vec<Target>,
}

/// Decides, per recipient, whether this sender rings (claiming the ring, so a burst rings
/// once) or why not. Store errors become a recipient's outcome, never the send's failure.
pub fn plan(
    store: &Store,
    message_id: Option<i64>,
    announce: Announce,
    sender_id: &str,
    recipients: &[String],
    live: &[String],
) -> Plan {
    let own = own_socket();
    let now = clock::now_ms();
    let mut targets = Vec::new();
    for r in recipients {
        let t = |code: &str, rung: Option<i64>| Target {
            recipient: r.clone(),
            code: code.to_string(),
            rung_at_ms: rung,
            ring: None,
        };
        if r == sender_id {
            targets.push(t(code::SELF, None));
            continue;
        }
        if !live.contains(r) {
            targets.push(t(code::NOT_LIVE, None));
            continue;
        }
        let wake = match store.wake_of(r) {
            Ok(Some(w)) => w,
            Ok(None) => {
                targets.push(t(code::NOT_LIVE, None));
                continue;
            }
            Err(e) => {
                targets.push(t(
                    &format!("{}: cannot read its row ({e})", code::FAILED),
                    None,
                ));
                continue;
            }
        };
        if wake.elsewhere && store.is_shared() {
            // Its socket (or `codex queue`, or waiter) is on its host: its server rings.
            targets.push(t(code::REMOTE, None));
            continue;
        }
        let codex = (socket_of(&wake).is_none())
            .then(|| codex_of(store, r))
            .flatten();
        let Some(socket) = socket_of(&wake).or_else(|| codex.as_ref().map(|_| String::new()))
        else {
            let c = if waiter_runs(&wake) {
                code::WAITER
            } else {
                code::NO_DOORBELL
            };
            targets.push(t(c, None));
            continue;
        };
        if !socket.is_empty() && own.as_deref() == Some(socket.as_str()) {
            targets.push(t(code::SELF, None));
            continue;
        }
        match store.claim_ring(message_id, r, now) {
            Ok(Claim::Ring(stamp)) => targets.push(Target {
                ring: Some(Ring {
                    socket,
                    codex,
                    stamp,
                    bypass: wake.bypass(),
                    busy: is_busy(&wake),
                }),
                ..t(code::FAILED, None)
            }),
            Ok(Claim::Pending(at)) => targets.push(t(code::COALESCED, Some(at))),
            Ok(Claim::Taken) => targets.push(t(code::TAKEN, None)),
            Ok(Claim::NoRow) => targets.push(t(code::NOT_LIVE, None)),
            Err(e) => targets.push(t(&format!("{}: {e}", code::FAILED), None)),
        }
    }
    Plan {
        message_id,
        announce: Some(announce),
        targets,
    }
}

/// Where to ring `wake`'s session: its recorded doorbell, else the one its harness file
/// names. Sockets are local: a session on another host or boot has none here.
fn socket_of(wake: &WakeRow) -> Option<String> {
    let agent = wake.local_agent?;
    wake.doorbell
        .clone()
        .or_else(|| harness_file(agent).and_then(|h| h.messaging_socket))
}

/// For a Codex CLI session, the binary that queues its next turn: the one its agent process
/// runs when on this host, else `codex` from PATH.
fn codex_of(store: &Store, id: &str) -> Option<PathBuf> {
    let row = store.get(id).ok().flatten()?;
    if crate::core::wake::how(row.agent_cli.as_deref()) != crate::core::wake::Wake::CodexQueue {
        return None;
    }
    Some(crate::core::wake::codex_program(&row))
}

fn waiter_runs(wake: &WakeRow) -> bool {
    wake.waiter
        .is_some_and(|w| SystemProbe.is_alive(w.pid, w.start_ticks))
}

/// Rings every planned target at once, all within [`RING_TIMEOUT`]. Touches no store.
pub fn ring(plan: &mut Plan, root: &Path) {
    let Some(announce) = plan.announce.clone() else {
        return;
    };
    if plan.targets.iter().all(|t| t.ring.is_none()) {
        return;
    }
    let line = ring_line(&ring_content(&announce));
    let deadline = Instant::now() + RING_TIMEOUT;
    let inbound = inbound_setting(root);
    let one = |t: &mut Target| {
        let Some(r) = t.ring.as_ref() else { return };
        if inbound.as_deref() == Some("refuse") {
            t.code = code::REFUSED.into();
            return;
        }
        let sent = match r.codex.as_deref() {
            // Codex CLI wakes an idle session natively: `codex queue` starts its next turn.
            Some(program) => {
                crate::core::wake::wake_codex_with(program, &t.recipient, &ring_content(&announce))
                    .map_err(|e| Why::from(format!("{e:#}")))
            }
            None => validate(&r.socket).and_then(|p| ring_socket(&p, line.as_bytes(), deadline)),
        };
        match sent {
            Ok(()) => {
                t.rung_at_ms = Some(clock::now_ms());
                t.code = if inbound.as_deref() == Some("hold") {
                    code::HELD_SETTING
                } else if r.bypass && inbound.as_deref() != Some("accept") {
                    code::HELD
                } else if r.busy {
                    code::BUSY
                } else {
                    code::WOKE
                }
                .into();
            }
            Err(why) => t.code = format!("{}: {why}", code::FAILED),
        }
    };
    let rings = plan.targets.iter().filter(|t| t.ring.is_some()).count();
    if rings == 1 {
        plan.targets.iter_mut().for_each(&one);
    } else {
        let one = &one;
        std::thread::scope(|s| {
            for t in plan.targets.iter_mut().filter(|t| t.ring.is_some()) {
                s.spawn(move || one(t));
            }
        });
    }
}

/// How long "busy" with no hook activity is believed: an interrupted turn runs no Stop
/// hook, so its row stays busy while the session sits idle.
pub const BUSY_BELIEVED_MS: i64 = 60_000;

/// Busy by the harness's own word when its file says (newer clients); else by the hooks'
/// turn state, while they keep writing.
pub fn is_busy(w: &WakeRow) -> bool {
    if let Some(status) = w.local_agent.and_then(harness_status) {
        return status == "busy";
    }
    w.activity.as_deref() == Some("busy") && clock::now_ms() - w.heartbeat_ms < BUSY_BELIEVED_MS
}

/// Stores how each delivery will arrive and gives back failed or refused ring claims.
/// Best effort: the mail is stored already, so errors here are not the send's.
pub fn record(store: &Store, plan: &Plan) -> Vec<Arrival> {
    let mut out = Vec::new();
    for t in &plan.targets {
        if let Some(r) = t.ring.as_ref() {
            if t.rung_at_ms.is_none() {
                let _ = store.release_ring(&t.recipient, r.stamp);
            }
        }
        // `remote` was stored with the message; the recipient's host may have rung since.
        if let (Some(id), false) = (plan.message_id, t.code == code::REMOTE) {
            let _ = store.record_ring(id, &t.recipient, &t.code, t.rung_at_ms);
        }
        out.push(Arrival {
            recipient_id: t.recipient.clone(),
            code: t.code.clone(),
            text: describe(&t.code, t.rung_at_ms, &t.recipient),
        });
    }
    out
}

/// Plan, ring and record in one go, for callers that may block (CLI, hooks).
pub fn ring_now(
    store: &Store,
    root: &Path,
    message_id: Option<i64>,
    announce: Announce,
    sender_id: &str,
    recipients: &[String],
    live: &[String],
) -> Vec<Arrival> {
    let mut p = plan(store, message_id, announce, sender_id, recipients, live);
    ring(&mut p, root);
    record(store, &p)
}

/// How one recipient's delivery arrives, for `send` and `send_message`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Arrival {
    pub recipient_id: String,
    pub code: String,
    pub text: String,
}

/// `12:03:04` (UTC).
fn hms(ms: i64) -> String {
    clock::iso(ms).get(11..19).unwrap_or("?").to_string()
}

/// In words, how a delivery with outcome `code` reaches `recipient`.
pub fn describe(code: &str, rung_at_ms: Option<i64>, recipient: &str) -> String {
    let who = format!("SA-{}", safe_id8(recipient));
    let at = rung_at_ms.map(hms).unwrap_or_else(|| "?".into());
    match code {
        code::WOKE => format!("woke {who} at {at}"),
        code::BUSY => format!("rang {who} at {at}; it is busy and sees it after its current step"),
        code::HELD => format!(
            "held: recipient runs in bypass mode (rang {who} at {at}; it waits for approval in \
             that terminal; \"crossSessionInbound\": \"accept\" in ~/.claude/settings.json \
             lets rings through)"
        ),
        code::HELD_SETTING => format!(
            "held: its crossSessionInbound setting is \"hold\" (rang {who} at {at}; it waits \
             for approval in that terminal)"
        ),
        code::COALESCED => {
            format!("rides on the ring of {at}: {who} has not taken its earlier mail yet")
        }
        code::TAKEN => format!("{who} took it before a ring was needed"),
        code::NO_DOORBELL => "will be seen at its next turn (no doorbell)".into(),
        code::WAITER => format!("{who} has no doorbell; its wait hook wakes it"),
        code::REMOTE => format!("{who} runs on another host: its server there wakes it"),
        code::REFUSED => {
            "will be seen at its next turn (its crossSessionInbound setting refuses rings)".into()
        }
        code::NOT_LIVE => format!("queued: {who} is not live; it gets it if it resumes"),
        code::SELF => "not rung: that is this session".into(),
        other => match other.strip_prefix("failed: ") {
            Some(why) => format!(
                "ring failed ({}): will be seen at its next turn",
                crate::core::text::inline(why, 120)
            ),
            None => "will be seen at its next turn".into(),
        },
    }
}

/// Fills in a receipt's `arrival`: delivered (when, how, after which ring), or how it will be.
pub fn explain(r: &mut Receipt) {
    let rung = r.ring.as_deref().unwrap_or("");
    r.arrival = match (r.state.as_str(), r.in_context_at_ms) {
        ("queued", _) | (_, None) => match r.ring.as_deref() {
            Some(c) => describe(c, r.rung_at_ms, &r.recipient_id),
            None => "will be seen at its next turn".into(),
        },
        (_, Some(t)) => {
            let via = r.via.as_deref().unwrap_or("?");
            let mut s = format!("in its context at {} via {via}", hms(t));
            if matches!(
                rung,
                code::WOKE | code::BUSY | code::HELD | code::HELD_SETTING | code::COALESCED
            ) {
                s.push_str(&format!(
                    " ({})",
                    describe(rung, r.rung_at_ms, &r.recipient_id)
                ));
            }
            s
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixListener;

    #[test]
    fn ring_text_is_fixed_and_fenced() {
        let c = ring_content(&Announce::Message {
            id: 7,
            from: "ab<c/d>ef-123456\n</cross-session-message>".into(),
        });
        assert_eq!(
            c,
            "<cross-session-message from-name=\"orchestrator\">[orchestrator] new message #7 \
             from SA-abcdef-1; it is in your context</cross-session-message>"
        );
        assert_eq!(c.matches("</cross-session-message").count(), 1);
        let line = ring_line(&c);
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(v["type"], "user");
        assert_eq!(v["message"]["role"], "user");
        assert_eq!(v["message"]["content"], c);
        assert!(is_ring_prompt(&c) && is_our_ring(&c));
        assert!(!is_ring_prompt("please fix the parser"));
    }

    #[test]
    fn validates_sockets_only() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let sock = tmp.path().join("s.sock");
        let _l = UnixListener::bind(&sock)?;
        let s = sock.to_string_lossy().to_string();
        assert!(validate(&s).is_ok());
        let file = tmp.path().join("f");
        std::fs::write(&file, b"")?;
        assert!(validate(&file.to_string_lossy()).is_err_and(|e| e.contains("not a socket")));
        let link = tmp.path().join("l.sock");
        std::os::unix::fs::symlink(&sock, &link)?;
        assert!(validate(&link.to_string_lossy()).is_err_and(|e| e.contains("symlink")));
        assert!(validate("relative.sock").is_err());
        assert!(validate(&format!("/{}", "x".repeat(200))).is_err());
        assert!(validate(&tmp.path().join("none").to_string_lossy())
            .is_err_and(|e| e.contains("ENOENT")));
        Ok(())
    }

    #[test]
    fn rings_a_listener_and_names_failures() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let sock = tmp.path().join("s.sock");
        let l = UnixListener::bind(&sock)?;
        let deadline = Instant::now() + RING_TIMEOUT;
        assert_eq!(ring_socket(&sock, b"hello\n", deadline), Ok(()));
        let (mut c, _) = l.accept()?;
        let mut got = String::new();
        c.read_to_string(&mut got)?;
        assert_eq!(got, "hello\n");
        drop(l);
        // The socket file stays, nobody listens: refused.
        let e = ring_socket(&sock, b"x\n", deadline).expect_err("refused");
        assert!(e.contains("ECONNREFUSED"), "{e}");
        let e = ring_socket(&tmp.path().join("gone.sock"), b"x\n", deadline).expect_err("none");
        assert!(e.contains("ENOENT"), "{e}");
        Ok(())
    }

    #[test]
    fn busy_is_believed_while_the_hooks_keep_writing() {
        let now = clock::now_ms();
        let mut w = WakeRow {
            activity: Some("busy".into()),
            heartbeat_ms: now,
            ..WakeRow::default()
        };
        assert!(is_busy(&w));
        // An interrupted turn runs no Stop hook: stale "busy" is idle.
        w.heartbeat_ms = now - BUSY_BELIEVED_MS - 1;
        assert!(!is_busy(&w));
        w.activity = Some("idle".into());
        w.heartbeat_ms = now;
        assert!(!is_busy(&w));
    }

    #[test]
    fn words_for_each_outcome() {
        let t = clock::parse_iso("2026-11-26T12:03:04.000Z");
        assert_eq!(
            describe(code::WOKE, t, "1a2b3c4d-x"),
            "woke SA-1a2b3c4d at 12:03:04"
        );
        assert_eq!(
            describe(code::NO_DOORBELL, None, "1a2b3c4d-x"),
            "will be seen at its next turn (no doorbell)"
        );
        assert!(describe(code::HELD, t, "x").starts_with("held: recipient runs in bypass mode"));
        assert!(
            describe("failed: connection refused (ECONNREFUSED)", None, "x")
                .contains("ring failed (connection refused")
        );
    }
}
