//! `orchestrator wait`: the doorbell's fallback, an `asyncRewake` hook. Claude Code starts
//! it in the background at SessionStart and at every Stop; when it exits 2, its stderr
//! wakes the session (an idle one too) as hook feedback. So it waits — on the store's
//! change signal (`core::changes`: inotify on SQLite, LISTEN on PostgreSQL, so a send from
//! another host wakes it too), no polling — until mail is due while the session is idle,
//! takes it (leased, then confirmed once written, like a hook's answer), prints it and
//! exits 2.
//!
//! Exactly one waiter per session: each records itself on the session's row and SIGTERMs
//! the one it replaces; a waiter that finds another named there exits 0. It exits 0 when
//! the session has a doorbell (the ring does the waking), on SIGTERM, when its agent
//! process dies, and at `--max-secs` (before the hook's timeout kills it); the next Stop
//! starts a new one. Any failure of its own is exit 0: exit 2 is only ever mail.

use super::{guarded, input, quiet_panics};
use crate::core::changes::Changes;
use crate::core::identity::{self, AgentProcess, Probe, SystemProbe};
use crate::core::liveness::Policy;
use crate::core::paths::ProjectPaths;
use crate::core::store::Store;
use crate::core::{clock, doorbell, mailbox, text};
use anyhow::{Context, Result};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Default `--max-secs`: under Claude Code's default hook timeout of 600 s.
pub const DEFAULT_MAX_SECS: u64 = 540;

/// What the waiter did.
#[derive(Debug, PartialEq, Eq)]
enum Exit {
    /// Mail printed on stderr: wake the session.
    Mail,
    /// Nothing to do (doorbell present, replaced, agent gone, time up, not interactive).
    Quiet,
}

extern "C" fn on_term(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe. A lease taken and not yet confirmed lapses
    // after LEASE_MS and the mail is due again.
    unsafe { libc::_exit(0) }
}

/// Runs the waiter; returns the exit code (2 = mail on stderr, else 0).
pub fn run(max_secs: u64) -> i32 {
    quiet_panics();
    // SAFETY: installing a handler that only calls _exit.
    unsafe {
        libc::signal(
            libc::SIGTERM,
            on_term as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    match guarded(|| wait(Duration::from_secs(max_secs.max(1)))) {
        Ok(Exit::Mail) => 2,
        Ok(Exit::Quiet) => 0,
        Err(e) => {
            let why = format!("{e:#}");
            eprintln!("[orchestrator] wait: {}", text::inline(&why, text::LINE));
            0
        }
    }
}

/// This process as a waiter identity (pid plus start time).
fn me() -> Result<AgentProcess> {
    let pid = std::process::id() as i32;
    let st = identity::process::stat(pid).context("cannot read this process's start time")?;
    Ok(AgentProcess {
        pid,
        start_ticks: st.start_ticks,
    })
}

fn wait(max: Duration) -> Result<Exit> {
    // `claude -p` without streaming input runs an asyncRewake hook in the foreground: a
    // waiter there would hold the run up. Such a run has nobody to wake anyway.
    if std::env::var("CLAUDE_CODE_ENTRYPOINT").as_deref() == Ok("sdk-cli") {
        return Ok(Exit::Quiet);
    }
    let input = input::read(std::io::stdin().lock())?;
    // The session has a doorbell: a ring wakes it, no waiter needed.
    if doorbell::own_socket().is_some() {
        return Ok(Exit::Quiet);
    }
    let deadline = Instant::now() + max;
    let mut id = input.session()?.as_str().to_string();
    let paths = ProjectPaths::resolve()?;
    let mut store = Store::open(&paths).map_err(|e| crate::core::store::describe(e, &paths))?;
    let agent = identity::process::agent_process();
    identity::trust::may_act_for(
        store.get(&id)?.as_ref(),
        agent,
        clock::now_ms(),
        &SystemProbe,
        Policy::from_env(),
    )
    .map_err(|e| anyhow::anyhow!("refused: {e}"))?;
    let me = me()?;
    // Before the first look, so nothing that changes after it goes unheard. Its troubles
    // stay off stderr, which is the wake message; it retries on its own.
    let watch = Changes::open(&paths, &store, None)?;
    let agent_fd = agent.and_then(pidfd);
    let mut registered = false;
    loop {
        if let Some(a) = agent {
            if !SystemProbe.is_alive(a.pid, a.start_ticks) {
                return Ok(quit(&store, &id, me, registered));
            }
        }
        // A server restart broke the store's connection: reopen it. While the server is
        // away, wait: the listener reconnects on its own and reports when it is back.
        match store.reconnect_if_broken() {
            Ok(()) => {
                if let Some(exit) = look(&mut store, &mut id, &mut registered, me, agent)? {
                    return Ok(exit);
                }
            }
            Err(e) if crate::core::store::is_unreachable(&e) => {}
            Err(e) => return Err(e),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(quit(&store, &id, me, registered));
        }
        if block(&watch, agent_fd.as_ref(), left.min(Duration::from_secs(60))) {
            // Let a burst of writes settle into one look.
            std::thread::sleep(Duration::from_millis(5));
            watch.drain();
        }
    }
}

/// One look at the session: registers as its waiter, and takes and prints its mail when
/// it is idle. `Some` when the waiter is done.
fn look(
    store: &mut Store,
    id: &mut String,
    registered: &mut bool,
    me: AgentProcess,
    agent: Option<AgentProcess>,
) -> Result<Option<Exit>> {
    let mut wake = store.wake_of(id)?;
    if wake.is_none() && *registered {
        // The row moved (/clear): the new id's SessionStart starts its own waiter.
        return Ok(Some(Exit::Quiet));
    }
    if wake.is_none() {
        // SessionStart may not have registered the row yet; /clear may have moved it.
        if let Some(owned) = agent.map(|a| store.owned_by(&a)).transpose()?.flatten() {
            *id = owned;
            wake = store.wake_of(id)?;
        }
    }
    let Some(w) = wake else {
        return Ok(None);
    };
    if !*registered {
        if let Some(old) = store.set_waiter(id, me)?.flatten() {
            if SystemProbe.is_alive(old.pid, old.start_ticks) {
                // SAFETY: plain kill(2) of the process that registered as this
                // session's waiter (pid and start time checked just now).
                unsafe {
                    libc::kill(old.pid, libc::SIGTERM);
                }
            }
        }
        *registered = true;
    } else if w.waiter != Some(me) {
        // A newer waiter took over.
        return Ok(Some(Exit::Quiet));
    }
    if w.doorbell
        .as_deref()
        .is_some_and(|d| doorbell::validate(d).is_ok())
    {
        return Ok(Some(quit(store, id, me, *registered)));
    }
    // A busy session hears its mail from its own hooks (PostToolUse, the next prompt);
    // the Stop that ends the turn wakes us again (and an interrupted turn, which runs no
    // Stop, counts as busy only a minute: we look each minute).
    if doorbell::is_busy(&w) {
        return Ok(None);
    }
    let (body, lease) = mailbox::inject(store, id, mailbox::HOOK_BUDGET_CHARS)?;
    if body.is_empty() {
        return Ok(None);
    }
    let mut err = std::io::stderr().lock();
    match writeln!(err, "{body}").and_then(|_| err.flush()) {
        Ok(()) => {
            store.confirm(&lease, "waiter")?;
            let _ = store.clear_waiter(id, me);
            Ok(Some(Exit::Mail))
        }
        Err(e) => {
            let _ = store.release(&lease);
            Err(e).context("cannot write the mail to stderr")
        }
    }
}

/// Leaves quietly, forgetting ourselves as the session's waiter.
fn quit(store: &Store, id: &str, me: AgentProcess, registered: bool) -> Exit {
    if registered {
        let _ = store.clear_waiter(id, me);
    }
    Exit::Quiet
}

/// A pidfd that becomes readable when `agent` exits (no polling of /proc).
fn pidfd(agent: AgentProcess) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags; a negative return is an error.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, agent.pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd was just returned by pidfd_open and is owned by nobody else.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Waits for a database change, the agent's exit or `timeout`; true when something changed.
fn block(watch: &Changes, agent: Option<&OwnedFd>, timeout: Duration) -> bool {
    let mut fds = vec![libc::pollfd {
        fd: watch.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    if let Some(a) = agent {
        fds.push(libc::pollfd {
            fd: a.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
    }
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: a valid array of pollfds of the stated length.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    r > 0
}
