//! Roles: `prime` is a singleton per project among live sessions; everyone else is a
//! `subordinate`. Asking for prime while a live session holds it is refused with the
//! holder's id unless forced (the person insists, or the holder is dead).

use crate::core::clock;
use crate::core::identity::session_id::id8;
use crate::core::identity::{Probe, SystemProbe};
use crate::core::liveness::{self, Policy};
use crate::core::store::sessions::LiveTest;
use crate::core::store::{Registration, SessionRow, Store};
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

/// Whether `row` is live now: the test a registration asking for prime hands the store,
/// which applies it to the current holders inside its transaction
/// (`Registration::sole_role`).
pub fn holder_live(row: &SessionRow) -> bool {
    liveness::verdict(row, clock::now_ms(), &SystemProbe, Policy::from_env()).is_live()
}

/// Asks for `wanted` in `reg`: prime as a singleton, anything else as subordinate.
pub fn ask(reg: &mut Registration<'_>, wanted: &str) {
    if wanted == PRIME {
        reg.role = Some(PRIME);
        reg.sole_role = Some(LiveTest(&holder_live));
    } else {
        reg.role = Some(SUBORDINATE);
    }
}

/// What a session that asked for prime is told when `holder` has it.
pub fn held_notice(holder: &SessionRow) -> String {
    format!(
        "prime is held by live session SA-{} ({}); you run as subordinate. \
         Use claim_prime(force: true) or `orchestrator takeover` to move it.",
        holder.id8,
        holder.name.as_deref().unwrap_or("unnamed")
    )
}

/// Makes `me` prime. Refused while another live session holds it unless `force`; the
/// previous holder (if any) becomes subordinate and is told. Returns the previous holder.
/// One immediate transaction, so two sessions claiming at once cannot both end prime.
pub fn claim_prime(
    store: &Store,
    me: &str,
    force: bool,
    probe: &dyn Probe,
) -> Result<Result<Option<String>, String>> {
    store.atomically(|store| {
        let holder = live_prime(store, me, probe)?;
        if let Some(h) = holder.as_ref() {
            if !force {
                return Ok(Err(format!(
                    "prime is held by live session SA-{} (session_id {}); pass force: true to take it over",
                    h.id8, h.session_id
                )));
            }
        }
        if !store.set_role(me, PRIME)? {
            return Ok(Err(
                "this session has no registry row yet: retry after its first hook".into(),
            ));
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
        Ok(Ok(holder.map(|h| h.session_id)))
    })
}
