//! Ringing for senders on other hosts. On a shared server a send to a session on another
//! host stores its delivery as [`code::REMOTE`]: the sender cannot reach that session's
//! socket. The session's own `serve`, woken by the send's `NOTIFY`, plans the ring here,
//! on the session's host, and [`super::ring`]s and [`record`]s it like a sender would:
//! one claim per burst ([`Store::claim_ring`]), the fixed notice, never a byte of the body.
//!
//! It rings only deliveries still marked `remote`, so mail a sender on this host rang (or
//! could have rung) is never rung twice, and every delivery it looks at is recorded with
//! its outcome, so it is looked at once.

use super::{code, codex_of, is_busy, record, socket_of, waiter_runs, Announce, Plan, Ring};
use super::{Arrival, Target};
use crate::core::clock;
use crate::core::store::wake::Claim;
use crate::core::store::Store;
use anyhow::Result;

/// A ring for the oldest delivery left to this host, and the later ones that ride on it.
#[derive(Debug, Clone)]
pub struct OwnRing {
    pub plan: Plan,
    /// Messages waiting with it: recorded as riding on its ring, or sharing its fate.
    riders: Vec<i64>,
}

/// Plans the ring of session `me` (served by this process, on this host) for mail that
/// senders on other hosts left to it; `None` when there is none.
pub fn plan(store: &Store, me: &str) -> Result<Option<OwnRing>> {
    let waiting = store.remote_waiting(me)?;
    let Some((first, from)) = waiting.first().cloned() else {
        return Ok(None);
    };
    let Some(wake) = store.wake_of(me)? else {
        return Ok(None);
    };
    let target = |c: &str, rung: Option<i64>, ring: Option<Ring>| Target {
        recipient: me.to_string(),
        code: c.to_string(),
        rung_at_ms: rung,
        ring,
    };
    let codex = socket_of(&wake)
        .is_none()
        .then(|| codex_of(store, me))
        .flatten();
    let socket = socket_of(&wake).or_else(|| codex.as_ref().map(|_| String::new()));
    let t = match socket {
        None if waiter_runs(&wake) => target(code::WAITER, None, None),
        None => target(code::NO_DOORBELL, None, None),
        Some(socket) => match store.claim_ring(Some(first), me, clock::now_ms())? {
            Claim::Ring(stamp) => target(
                code::FAILED,
                None,
                Some(Ring {
                    socket,
                    codex,
                    stamp,
                    bypass: wake.bypass(),
                    busy: is_busy(&wake),
                }),
            ),
            Claim::Pending(at) => target(code::COALESCED, Some(at), None),
            Claim::Taken => target(code::TAKEN, None, None),
            Claim::NoRow => return Ok(None),
        },
    };
    Ok(Some(OwnRing {
        plan: Plan {
            message_id: Some(first),
            announce: Some(Announce::Message { id: first, from }),
            targets: vec![t],
        },
        riders: waiting.iter().skip(1).map(|(id, _)| *id).collect(),
    }))
}

/// Records how the ring went for every delivery it covered (after [`super::ring`]).
pub fn record_own(store: &Store, own: &OwnRing) -> Vec<Arrival> {
    let out = record(store, &own.plan);
    if let Some(t) = own.plan.targets.first() {
        // Rung (or pending): the rest arrive with that turn. Not rung: they share the
        // reason (no doorbell, a failure), and arrive at the next turn like it.
        let c = if t.rung_at_ms.is_some() {
            code::COALESCED
        } else {
            t.code.as_str()
        };
        for id in &own.riders {
            let _ = store.record_ring(*id, &t.recipient, c, t.rung_at_ms);
        }
    }
    out
}
