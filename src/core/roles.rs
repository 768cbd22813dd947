//! Roles: `prime` is a singleton per project among live sessions; everyone else is a
//! `subordinate`. Asking for prime while a live session holds it is refused with the
//! holder's id unless forced (the person insists, or the holder is dead).

use crate::core::clock;
use crate::core::identity::session_id::id8;
use crate::core::identity::Probe;
use crate::core::liveness::{self, Policy};
use crate::core::store::{SessionRow, Store};
use anyhow::Result;

pub const PRIME: &str = "prime";
pub const SUBORDINATE: &str = "subordinate";

/// The live prime other than `me`, if any.
pub fn live_prime(store: &Store, me: &str, probe: &dyn Probe) -> Result<Option<SessionRow>> {
    let live = liveness::live(
        store.all_sessions()?,
        clock::now_ms(),
        probe,
        Policy::from_env(),
    );
    Ok(live
        .into_iter()
        .find(|r| r.role == PRIME && r.session_id != me))
}

/// The role `me` may take when it asks for `wanted`: prime only when no other live
/// session holds it. Returns the role and, when downgraded, why.
pub fn admissible(
    store: &Store,
    me: &str,
    wanted: &str,
    probe: &dyn Probe,
) -> Result<(String, Option<String>)> {
    if wanted != PRIME {
        return Ok((SUBORDINATE.into(), None));
    }
    Ok(match live_prime(store, me, probe)? {
        Some(h) => (
            SUBORDINATE.into(),
            Some(format!(
                "prime is held by live session SA-{} ({}); you run as subordinate. \
                 Use claim_prime(force: true) or `orchestrator takeover` to move it.",
                h.id8,
                h.name.as_deref().unwrap_or("unnamed")
            )),
        ),
        None => (PRIME.into(), None),
    })
}

/// Makes `me` prime. Refused while another live session holds it unless `force`; the
/// previous holder (if any) becomes subordinate and is told. Returns the previous holder.
pub fn claim_prime(
    store: &Store,
    me: &str,
    force: bool,
    probe: &dyn Probe,
) -> Result<Result<Option<String>, String>> {
    let holder = live_prime(store, me, probe)?;
    if let Some(h) = holder.as_ref() {
        if !force {
            return Ok(Err(format!(
                "prime is held by live session SA-{} (session_id {}); pass force: true to take it over",
                h.id8, h.session_id
            )));
        }
    }
    // Dead holders' rows may linger until buried: demote every other prime row.
    for r in store.all_sessions()? {
        if r.role == PRIME && r.session_id != me {
            store.set_role(&r.session_id, SUBORDINATE)?;
            store.add_notice(
                &r.session_id,
                &format!(
                    "SA-{} took over the prime role; you are now subordinate.",
                    id8(me)
                ),
            )?;
        }
    }
    if !store.set_role(me, PRIME)? {
        return Ok(Err(
            "this session has no registry row yet: retry after its first hook".into(),
        ));
    }
    Ok(Ok(holder.map(|h| h.session_id)))
}
