//! On a shared server, this server rings its own session's doorbell for mail from senders
//! on other hosts, which cannot reach a socket on this host (`core::doorbell::remote`).
//! [`super::push`] calls it on every change the store reports, and the heartbeat now and
//! then, for mail that came while the server was not yet bound (or a notification lost).

use super::state::ServerState;
use crate::core::doorbell::{self, remote};
use crate::core::log;

/// Plans under the store lock, rings without it (at most `doorbell::RING_TIMEOUT`, off
/// the runtime thread), records under it again. One pass at a time: two planning at once
/// would each record the other's ring as their own outcome.
pub async fn ring_own(state: &ServerState) {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(b) = state.binding() else { return };
    let me = b.id.to_string();
    let planned = remote::plan(&state.store(), &me);
    let mut own = match planned {
        Ok(Some(own)) => own,
        Ok(None) => return,
        Err(e) => {
            // Looked at again on the next change; the mail itself waits safely.
            log::debug(&format!("cannot plan this session's ring: {e:#}"));
            return;
        }
    };
    let root = state.paths.root.clone();
    let mut plan = own.plan.clone();
    own.plan = tokio::task::spawn_blocking(move || {
        doorbell::ring(&mut plan, &root);
        plan
    })
    .await
    .unwrap_or(own.plan);
    for a in remote::record_own(&state.store(), &own) {
        log::info(&format!("rang for mail from another host: {}", a.text));
    }
}
