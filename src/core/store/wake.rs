//! What it takes to wake a session, as stored: its doorbell (Claude Code's messaging
//! socket, validated before it is stored and again before each ring), the permission mode
//! its hooks last reported, the ring still pending for it, and its asyncRewake waiter.
//!
//! Coalescing lives here: a sender *claims* a recipient's ring in one write
//! ([`Store::claim_ring`]), so of many senders at once only one rings; the claim is
//! cleared when the recipient takes delivery (`take_due`) or finds nothing due, and
//! lapses after [`RING_AGAIN_AFTER_MS`] in case that ring never started a turn.

use super::Store;
use crate::args;
use crate::core::identity::process::host_id;
use crate::core::identity::AgentProcess;
use anyhow::Result;

/// A ring not followed by a delivery within this long no longer holds back the next one.
pub const RING_AGAIN_AFTER_MS: i64 = 5 * 60 * 1000;

/// `deliveries.ring` of a delivery to a session on another host (shared server only):
/// the sender cannot reach its doorbell, so the recipient's own server rings it there.
/// Set in the sending transaction, so that server, woken by the send's `NOTIFY`, already
/// sees it; replaced by the outcome once that server rang (or decided not to).
pub const REMOTE: &str = "remote";

/// One session's wake facts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WakeRow {
    pub session_id: String,
    pub doorbell: Option<String>,
    pub permission_mode: Option<String>,
    /// When a ring for it was claimed and not yet followed by a delivery.
    pub rung_at_ms: Option<i64>,
    /// The waiter process (pid, start ticks) it runs, if one registered.
    pub waiter: Option<AgentProcess>,
    /// `busy` / `idle` as its hooks last said.
    pub activity: Option<String>,
    /// Its last heartbeat (any hook or server write), epoch ms.
    pub heartbeat_ms: i64,
    /// Its agent process, when that runs on this host and boot.
    pub local_agent: Option<AgentProcess>,
    /// The row names another host (or boot) than this one's.
    pub elsewhere: bool,
}

impl WakeRow {
    /// Whether its hooks report bypass mode (`--dangerously-skip-permissions`).
    pub fn bypass(&self) -> bool {
        self.permission_mode.as_deref() == Some("bypassPermissions")
    }
}

/// How a ring claim came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This sender rings; the stamp identifies the claim (to release it on failure).
    Ring(i64),
    /// A ring claimed at this time is still pending: this message rides on it.
    Pending(i64),
    /// The delivery is no longer waiting (a hook already took it).
    Taken,
    /// No such session row.
    NoRow,
}

impl Store {
    /// The wake facts of `id`.
    pub fn wake_of(&self, id: &str) -> Result<Option<WakeRow>> {
        let h = host_id();
        self.conn.query_opt(
            "SELECT session_id, doorbell, perm_mode, rung_ms, waiter, activity, agent_pid,
                   agent_started_at, host, boot_id, last_heartbeat_at
                 FROM sessions WHERE session_id=?1",
            args![id],
            |r| {
                let waiter = r
                    .get::<Option<String>>(4)?
                    .as_deref()
                    .and_then(parse_waiter);
                let host = r.get::<Option<String>>(8)?;
                let local = host.as_deref() == Some(&h.host)
                    && r.get::<Option<String>>(9)?.as_deref() == Some(&h.boot_id);
                let agent = match (r.get::<Option<i32>>(6)?, r.get::<Option<i64>>(7)?) {
                    (Some(pid), Some(t)) if local => Some(AgentProcess {
                        pid,
                        start_ticks: t as u64,
                    }),
                    _ => None,
                };
                Ok(WakeRow {
                    session_id: r.get(0)?,
                    doorbell: r.get(1)?,
                    permission_mode: r.get(2)?,
                    rung_at_ms: r.get(3)?,
                    waiter,
                    activity: r.get(5)?,
                    heartbeat_ms: r
                        .get::<Option<String>>(10)?
                        .as_deref()
                        .and_then(crate::core::clock::parse_iso)
                        .unwrap_or(0),
                    local_agent: agent,
                    elsewhere: host.is_some() && !local,
                })
            },
        )
    }

    /// Records `id`'s doorbell (`None` forgets it) and, when given, its permission mode.
    /// Reads first and writes only what changed, so a hook takes no write lock for it on
    /// an ordinary turn. False when nothing changed or there is no row.
    pub fn note_wake(&self, id: &str, doorbell: Option<&str>, mode: Option<&str>) -> Result<bool> {
        let Some(now) = self.wake_of(id)? else {
            return Ok(false);
        };
        let bell_changed = now.doorbell.as_deref() != doorbell;
        let mode_changed = mode.is_some() && now.permission_mode.as_deref() != mode;
        if !bell_changed && !mode_changed {
            return Ok(false);
        }
        self.conn.execute(
            "UPDATE sessions SET doorbell=?2, perm_mode=COALESCE(?3, perm_mode)
             WHERE session_id=?1",
            args![id, doorbell, mode],
        )?;
        Ok(true)
    }

    /// Claims the ring for `recipient`'s delivery of `message_id` (a notice when `None`)
    /// at `now`: granted when no ring is pending for it (or the pending one is older than
    /// [`RING_AGAIN_AFTER_MS`]) and the delivery still waits, unleased.
    pub fn claim_ring(&self, message_id: Option<i64>, recipient: &str, now: i64) -> Result<Claim> {
        const WAITING: &str = "(CAST(?2 AS BIGINT) IS NULL OR EXISTS (SELECT 1 FROM deliveries
            WHERE message_id=?2 AND recipient_id=?1 AND state='queued' AND in_context_at_ms IS NULL))";
        let tx = self.conn.begin()?;
        let n = tx.execute(
            &format!(
                "UPDATE sessions SET rung_ms=?3 WHERE session_id=?1
                   AND (rung_ms IS NULL OR rung_ms < ?4) AND {WAITING}"
            ),
            args![recipient, message_id, now, now - RING_AGAIN_AFTER_MS],
        )?;
        let out = if n > 0 {
            Claim::Ring(now)
        } else {
            let waiting: bool = tx.query_row(
                &format!("SELECT {WAITING}"),
                args![recipient, message_id],
                |r| r.get(0),
            )?;
            let pending: Option<Option<i64>> = tx.query_opt(
                "SELECT rung_ms FROM sessions WHERE session_id=?1",
                args![recipient],
                |r| r.get(0),
            )?;
            match (pending, waiting) {
                (None, _) => Claim::NoRow,
                (Some(_), false) => Claim::Taken,
                (Some(Some(t)), true) => Claim::Pending(t),
                // Unreachable in one transaction; treat as taken rather than ring twice.
                (Some(None), true) => Claim::Taken,
            }
        };
        tx.commit()?;
        Ok(out)
    }

    /// Gives back a ring claim that did not ring (failed, or refused by the recipient's
    /// settings), so the next message tries again.
    pub fn release_ring(&self, recipient: &str, stamp: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE sessions SET rung_ms=NULL WHERE session_id=?1 AND rung_ms=?2",
            args![recipient, stamp],
        )?;
        Ok(())
    }

    /// The recipient had a turn with nothing due: any ring it was sent is spent.
    pub fn clear_ring(&self, recipient: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE sessions SET rung_ms=NULL WHERE session_id=?1 AND rung_ms IS NOT NULL",
            args![recipient],
        )?;
        Ok(())
    }

    /// Records how `recipient`'s delivery of `message_id` is (to be) rung: an outcome code
    /// (see `core::doorbell`) and the time of the ring it rides on. Once per delivery: only
    /// over nothing or [`REMOTE`] (which the recipient's host replaces), so a sender's
    /// late record never hides what that host did.
    pub fn record_ring(
        &self,
        message_id: i64,
        recipient: &str,
        code: &str,
        rung_at_ms: Option<i64>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE deliveries SET ring=?3, rung_ms=?4 WHERE message_id=?1 AND recipient_id=?2
               AND (ring IS NULL OR ring=?5)",
            args![message_id, recipient, code, rung_at_ms, REMOTE],
        )?;
        Ok(())
    }

    /// `id`'s deliveries left for this host to ring ([`REMOTE`]) and still waiting:
    /// (message id, sender id), oldest first.
    pub fn remote_waiting(&self, id: &str) -> Result<Vec<(i64, String)>> {
        self.conn.query_map(
            "SELECT d.message_id, m.sender_id FROM deliveries d JOIN messages m ON m.id=d.message_id
             WHERE d.recipient_id=?1 AND d.ring=?2 AND d.state='queued'
               AND d.in_context_at_ms IS NULL
             ORDER BY d.message_id",
            args![id, REMOTE],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// Makes `waiter` the one waiter of `id`; returns the one it replaces, if any.
    /// `None` when there is no row.
    pub fn set_waiter(
        &self,
        id: &str,
        waiter: AgentProcess,
    ) -> Result<Option<Option<AgentProcess>>> {
        let tx = self.conn.begin()?;
        let Some(old) = tx.query_opt(
            "SELECT waiter FROM sessions WHERE session_id=?1",
            args![id],
            |r| r.get::<Option<String>>(0),
        )?
        else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE sessions SET waiter=?2 WHERE session_id=?1",
            args![id, waiter_text(waiter)],
        )?;
        tx.commit()?;
        Ok(Some(
            old.as_deref()
                .and_then(parse_waiter)
                .filter(|o| *o != waiter),
        ))
    }

    /// Forgets `waiter` as `id`'s waiter (only if it still is).
    pub fn clear_waiter(&self, id: &str, waiter: AgentProcess) -> Result<()> {
        self.conn.execute(
            "UPDATE sessions SET waiter=NULL WHERE session_id=?1 AND waiter=?2",
            args![id, waiter_text(waiter)],
        )?;
        Ok(())
    }
}

/// A waiter as stored: `pid:start_ticks`.
fn waiter_text(w: AgentProcess) -> String {
    format!("{}:{}", w.pid, w.start_ticks)
}

fn parse_waiter(s: &str) -> Option<AgentProcess> {
    let (pid, ticks) = s.split_once(':')?;
    Some(AgentProcess {
        pid: pid.parse().ok()?,
        start_ticks: ticks.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::identity::{Evidence, SessionId};
    use crate::core::store::messages::Sender;
    use crate::core::store::Registration;

    fn store_with(id: &str) -> Result<Store> {
        let mut s = Store::open_in_memory()?;
        let sid = SessionId::parse(id).map_err(anyhow::Error::msg)?;
        s.register(&Registration::new(&sid, Evidence::Explicit))?;
        Ok(s)
    }

    #[test]
    fn one_ring_until_delivery_is_taken() -> Result<()> {
        let mut s = store_with("rcpt0000-r")?;
        s.note_wake("rcpt0000-r", Some("/tmp/x.sock"), Some("default"))?;
        let send = |s: &mut Store| {
            s.send_message(&Sender::human(), "@x", "b", None, &["rcpt0000-r".into()])
        };
        let m1 = send(&mut s)?;
        assert_eq!(
            s.claim_ring(Some(m1), "rcpt0000-r", 1_000)?,
            Claim::Ring(1_000)
        );
        let m2 = send(&mut s)?;
        assert_eq!(
            s.claim_ring(Some(m2), "rcpt0000-r", 1_001)?,
            Claim::Pending(1_000)
        );
        // The hook takes both: the next message rings again.
        let due = s.take_due("rcpt0000-r", true, usize::MAX, |_| 1)?;
        assert_eq!(due.messages.len(), 2);
        assert_eq!(s.claim_ring(Some(m2), "rcpt0000-r", 1_002)?, Claim::Taken);
        s.confirm(&due.lease, "hook")?;
        let m3 = send(&mut s)?;
        assert_eq!(
            s.claim_ring(Some(m3), "rcpt0000-r", 1_003)?,
            Claim::Ring(1_003)
        );
        // A failed ring gives the claim back.
        s.release_ring("rcpt0000-r", 1_003)?;
        assert_eq!(
            s.claim_ring(Some(m3), "rcpt0000-r", 1_004)?,
            Claim::Ring(1_004)
        );
        // A stale pending ring no longer holds the next one back.
        let later = 1_004 + RING_AGAIN_AFTER_MS + 1;
        assert_eq!(
            s.claim_ring(Some(m3), "rcpt0000-r", later)?,
            Claim::Ring(later)
        );
        assert_eq!(s.claim_ring(Some(m3), "nobody00-x", later)?, Claim::NoRow);
        Ok(())
    }

    #[test]
    fn one_waiter_per_session() -> Result<()> {
        let s = store_with("waitee00-w")?;
        let a = AgentProcess {
            pid: 10,
            start_ticks: 1,
        };
        let b = AgentProcess {
            pid: 11,
            start_ticks: 2,
        };
        assert_eq!(s.set_waiter("waitee00-w", a)?, Some(None));
        assert_eq!(s.set_waiter("waitee00-w", a)?, Some(None), "itself");
        assert_eq!(s.set_waiter("waitee00-w", b)?, Some(Some(a)));
        s.clear_waiter("waitee00-w", a)?;
        assert_eq!(s.wake_of("waitee00-w")?.and_then(|w| w.waiter), Some(b));
        s.clear_waiter("waitee00-w", b)?;
        assert_eq!(s.wake_of("waitee00-w")?.and_then(|w| w.waiter), None);
        assert_eq!(s.set_waiter("absent00-x", a)?, None);
        Ok(())
    }
}
