//! Live push: on every change the store reports (`core::changes`: inotify on SQLite, the
//! shared server's notifications on PostgreSQL, so no polling either way), send each new
//! message for this session as `notifications/claude/channel`, and on a shared server
//! ring this session's doorbell for mail from other hosts ([`super::bell`]). A message is
//! leased while it is pushed, so the hook path does not repeat it, and marked in context
//! once sent; if the send fails it is released, due again.

use super::state::ServerState;
use crate::core::changes::Changes;
use crate::core::settings::Channel;
use crate::core::{log, mailbox, text};
use rmcp::model::{CustomNotification, ServerNotification};
use rmcp::{Peer, RoleServer};
use std::sync::Arc;
use std::time::Duration;

/// Whether this client should get pushes: `ORCHESTRATOR_CHANNEL=on|off|auto`. A push marks
/// the mail delivered, so `auto` (the default) pushes only where the client itself says it
/// takes channel messages — it declared the experimental `claude/channel` capability in
/// its `initialize` — and, per delivery, only while the session has no doorbell (see
/// [`deliver`]). Claude Code declares no such capability (checked on 2.1.197), and
/// 2.1.331 with an API key skips channel notifications anyway: with it `auto` never
/// pushes, and the doorbell plus the hook deliver instead.
pub fn enabled(peer: &Peer<RoleServer>) -> bool {
    match crate::core::settings::get().channel {
        Channel::On => true,
        Channel::Off => false,
        Channel::Auto => peer
            .peer_info()
            .and_then(|i| {
                i.capabilities
                    .experimental
                    .as_ref()
                    .map(|e| e.contains_key("claude/channel"))
            })
            .unwrap_or(false),
    }
}

/// Runs until the peer goes away. Listens only when there is something to do: pushes
/// for this client, or rings for other hosts' senders (a shared server).
pub async fn run(state: Arc<ServerState>, peer: Peer<RoleServer>) {
    let push = enabled(&peer);
    let (ring, target) = {
        let store = state.store();
        (store.is_shared(), store.pg().map(|c| c.target().clone()))
    };
    if !push && !ring {
        return;
    }
    // Connecting to listen may take the connect timeout: not on the runtime thread, and
    // not under the store lock the tools use.
    let paths = state.paths.clone();
    let opened = tokio::task::spawn_blocking(move || {
        Changes::open_for(&paths, target.as_ref(), Some(log::warn))
    })
    .await;
    let changes = match opened {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            let what = if ring {
                "live push and rings"
            } else {
                "live push"
            };
            log::warn(&format!("{what} disabled: {e:#}"));
            return;
        }
        Err(_) => return,
    };
    if let Some(why) = changes.unheard() {
        log::warn(&format!(
            "not hearing the database's changes yet ({why}); retrying in the background"
        ));
    }
    // SAFETY: `Changes` owns its descriptor (an inotify fd or an eventfd) for as long as it
    // lives and always returns that same one; the AsyncFd owns the `Changes`.
    let Ok(afd) = (unsafe { tokio::io::unix::AsyncFd::register(changes) }) else {
        return;
    };
    let pass = || async {
        if push && !deliver(&state, &peer).await {
            return false;
        }
        if ring {
            super::bell::ring_own(&state).await;
        }
        true
    };
    if !pass().await {
        return;
    }
    loop {
        let Ok(mut guard) = afd.readable().await else {
            return;
        };
        // Only that something changed matters, not what.
        guard.get_inner().drain();
        guard.clear_ready();
        // Let a burst of writes settle into one pass.
        tokio::time::sleep(Duration::from_millis(5)).await;
        if !pass().await {
            return;
        }
    }
}

/// Pushes every queued message; false once the client is gone.
async fn deliver(state: &ServerState, peer: &Peer<RoleServer>) -> bool {
    let Some(b) = state.binding() else {
        return true;
    };
    let me = b.id.to_string();
    let (taken, mut lease) = {
        let mut store = state.store();
        // `auto` leaves a session with a doorbell to the ring and its hook: that path is
        // known to reach the context; a push might be skipped and the mail lost.
        if crate::core::settings::get().channel == Channel::Auto
            && store
                .wake_of(&me)
                .ok()
                .flatten()
                .is_some_and(|w| w.doorbell.is_some())
        {
            return true;
        }
        match store.has_due(&me, false) {
            Ok(false) | Err(_) => return true,
            Ok(true) => {}
        }
        match store.take_due(&me, false, usize::MAX, |_| 0) {
            Ok(due) => (due.messages, due.lease),
            Err(_) => return true,
        }
    };
    for (i, m) in taken.iter().enumerate() {
        let mut meta = serde_json::Map::new();
        // The client shows meta beside the content: the same choke point applies.
        let s = |v: &str| serde_json::Value::String(text::inline(v, 128).into_owned());
        meta.insert("message_id".into(), s(&m.id.to_string()));
        meta.insert("from_id".into(), s(&m.sender_id));
        meta.insert("from_id8".into(), s(&text::id8(&m.sender_id)));
        meta.insert(
            "from_name".into(),
            s(m.sender_name.as_deref().unwrap_or("")),
        );
        meta.insert(
            "from_role".into(),
            s(m.sender_role.as_deref().unwrap_or("")),
        );
        if let Some(r) = m.reply_to {
            meta.insert("reply_to".into(), s(&r.to_string()));
        }
        let params = serde_json::json!({"content": mailbox::render(m), "meta": meta});
        let n = ServerNotification::CustomNotification(CustomNotification::new(
            "notifications/claude/channel",
            Some(params),
        ));
        if peer.send_notification(n).await.is_err() {
            let rest = lease.split_off(i);
            let mut store = state.store();
            let _ = store.confirm(&lease, "channel");
            let _ = store.release(&rest);
            return false;
        }
    }
    // Not confirmed (the store is busy): the lease lapses and a hook delivers them again.
    let _ = state.store().confirm(&lease, "channel");
    true
}
