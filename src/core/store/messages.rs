//! Messages: stored once, one delivery row per recipient moving
//! queued → in_context (injected by a hook, pushed on a channel, or read from the inbox)
//! → acked; and notices, one line each for a session's next turn.
//!
//! Never lost, exactly once short of a crash: what is due is first *leased* to one answer
//! (one immediate transaction, so racing hooks take disjoint sets), and marked in context
//! only after that answer was written ([`Store::confirm`]). A failed write releases the
//! lease; a writer killed in between leaves it to lapse after [`LEASE_MS`], and the mail
//! is due again — the one way a message is shown twice, and it carries its id.
//!
//! A lease is a time stamp: on a delivery, `in_context_at_ms` set while the state is
//! still `queued`; on a notice, the negated stamp in `delivered_at_ms` (NULL is pending,
//! positive is delivered).

use super::db::Row;
use super::Store;
use crate::args;
use crate::core::clock;
use anyhow::Result;

/// How long what a lease took stays withheld from other answers: far longer than writing
/// an answer takes (and than the busy timeout its confirm may wait), short enough that a
/// killed hook's mail reaches a later turn.
pub const LEASE_MS: i64 = 10_000;

/// What one answer took and has not yet confirmed as written.
#[derive(Debug, Default)]
pub struct Lease {
    recipient: String,
    stamp: i64,
    messages: Vec<i64>,
    notices: Vec<i64>,
}

impl Lease {
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.notices.is_empty()
    }

    /// Splits off the messages from index `at` on (the part a push could not send).
    pub fn split_off(&mut self, at: usize) -> Lease {
        Lease {
            recipient: self.recipient.clone(),
            stamp: self.stamp,
            messages: self.messages.split_off(at.min(self.messages.len())),
            notices: Vec::new(),
        }
    }
}

/// What is due for one recipient, leased to one answer.
#[derive(Debug, Default)]
pub struct Due {
    pub notices: Vec<Notice>,
    pub messages: Vec<Inbound>,
    /// Due messages that did not fit the budget (still due).
    pub left: usize,
    pub lease: Lease,
}

/// A delivery that is queued and not leased (or its lease lapsed before `?2`).
const DUE_DELIVERY: &str =
    "d.recipient_id=?1 AND d.state='queued' AND (d.in_context_at_ms IS NULL OR d.in_context_at_ms < ?2)";
/// A notice that is pending and not leased (or its lease, stored negated, lapsed before `?2`).
const DUE_NOTICE: &str =
    "session_id=?1 AND (delivered_at_ms IS NULL OR (delivered_at_ms < 0 AND -delivered_at_ms < ?2))";

/// Who is sending (a session snapshot, or the person as `human`).
#[derive(Debug, Clone)]
pub struct Sender {
    pub id: String,
    pub name: Option<String>,
    pub role: Option<String>,
    pub task: Option<String>,
}

impl Sender {
    pub fn human() -> Self {
        Self {
            id: "human".into(),
            name: Some("human".into()),
            role: Some("human".into()),
            task: None,
        }
    }
}

/// A message as a recipient reads it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Inbound {
    pub id: i64,
    pub sender_id: String,
    pub sender_name: Option<String>,
    pub sender_role: Option<String>,
    pub sender_task: Option<String>,
    pub body: String,
    pub reply_to: Option<i64>,
    pub created_at_ms: i64,
    pub state: String,
}

/// One recipient's receipt.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Receipt {
    pub recipient_id: String,
    pub state: String,
    pub via: Option<String>,
    pub queued_at: String,
    /// How the recipient was (to be) woken: an outcome code of `core::doorbell`.
    pub ring: Option<String>,
    /// When the ring this delivery rides on was sent.
    pub rung_at: Option<String>,
    pub in_context_at: Option<String>,
    pub acked_at: Option<String>,
    /// Milliseconds from sent to rung, and from sent to in context.
    pub ms_to_ring: Option<i64>,
    pub ms_to_context: Option<i64>,
    /// How it arrived or will arrive, in words (filled in by `core::doorbell`).
    pub arrival: String,
    #[serde(skip)]
    pub queued_at_ms: i64,
    #[serde(skip)]
    pub rung_at_ms: Option<i64>,
    #[serde(skip)]
    pub in_context_at_ms: Option<i64>,
}

/// A pending system notice.
#[derive(Debug, Clone)]
pub struct Notice {
    pub id: i64,
    pub body: String,
}

const INBOUND: &str =
    "SELECT m.id, m.sender_id, m.sender_name, m.sender_role, m.sender_task, m.body,
    m.reply_to, m.created_at_ms, d.state FROM deliveries d JOIN messages m ON m.id = d.message_id";

fn inbound(r: &Row) -> Result<Inbound> {
    Ok(Inbound {
        id: r.get(0)?,
        sender_id: r.get(1)?,
        sender_name: r.get(2)?,
        sender_role: r.get(3)?,
        sender_task: r.get(4)?,
        body: r.get(5)?,
        reply_to: r.get(6)?,
        created_at_ms: r.get(7)?,
        state: r.get(8)?,
    })
}

impl Store {
    /// Stores a message once with a queued delivery per recipient; returns its id.
    pub fn send_message(
        &mut self,
        from: &Sender,
        address: &str,
        body: &str,
        reply_to: Option<i64>,
        recipients: &[String],
    ) -> Result<i64> {
        let now = clock::now_ms();
        let tx = self.conn.begin()?;
        let thread: Option<i64> = match reply_to {
            Some(r) => tx.query_opt(
                "SELECT COALESCE(thread_id, id) FROM messages WHERE id=?1",
                args![r],
                |row| row.get(0),
            )?,
            None => None,
        };
        if reply_to.is_some() && thread.is_none() {
            anyhow::bail!(
                "reply_to names message {} which does not exist",
                reply_to.unwrap_or(0)
            );
        }
        let id: i64 = tx.query_row(
            "INSERT INTO messages (sender_id, sender_name, sender_role, sender_task, address, body,
               reply_to, thread_id, created_at_ms) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9) RETURNING id",
            args![from.id, from.name, from.role, from.task, address, body, reply_to, thread, now],
            |r| r.get(0),
        )?;
        for r in recipients {
            tx.execute(
                "INSERT INTO deliveries (message_id, recipient_id, queued_at_ms) VALUES (?1,?2,?3)
                 ON CONFLICT DO NOTHING",
                args![id, r, now],
            )?;
        }
        if self.is_shared() {
            // Recipients on other hosts are rung by their own server (see `wake::REMOTE`).
            let h = crate::core::identity::process::host_id();
            tx.execute(
                "UPDATE deliveries SET ring=?4 WHERE message_id=?1 AND recipient_id IN
                   (SELECT session_id FROM sessions WHERE host IS NOT NULL
                      AND (host <> ?2 OR boot_id IS NULL OR boot_id <> ?3))",
                args![id, h.host, h.boot_id, super::wake::REMOTE],
            )?;
        }
        tx.notify()?;
        tx.commit()?;
        Ok(id)
    }

    /// True when `recipient` may have something due (a cheap read before a write).
    pub fn has_due(&self, recipient: &str, notices: bool) -> Result<bool> {
        Ok(self.due_state(recipient, notices)?.0)
    }

    /// Whether `recipient` may have something due, and whether a ring is pending for it:
    /// one read.
    pub fn due_state(&self, recipient: &str, notices: bool) -> Result<(bool, bool)> {
        let pending_notice = "EXISTS (SELECT 1 FROM notices WHERE session_id=?1
             AND (delivered_at_ms IS NULL OR delivered_at_ms < 0))";
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM deliveries WHERE recipient_id=?1 AND state='queued') OR {},
               EXISTS (SELECT 1 FROM sessions WHERE session_id=?1 AND rung_ms IS NOT NULL)",
            if notices { pending_notice } else { "FALSE" }
        );
        self.conn
            .query_row(&sql, args![recipient], |r| Ok((r.get(0)?, r.get(1)?)))
    }

    /// Leases what is due for `recipient`: its notices (if `notices`), and its messages,
    /// oldest first, while their size by `cost` fits `budget` (the first one always).
    /// Nothing is in context until [`Store::confirm`].
    pub fn take_due(
        &mut self,
        recipient: &str,
        notices: bool,
        budget: usize,
        cost: impl Fn(&Inbound) -> usize,
    ) -> Result<Due> {
        let now = clock::now_ms();
        let lapsed = now - LEASE_MS;
        let tx = self.conn.begin()?;
        let notices: Vec<Notice> = if notices {
            tx.query_map(
                &format!("SELECT id, body FROM notices WHERE {DUE_NOTICE} ORDER BY id"),
                args![recipient, lapsed],
                |r| {
                    Ok(Notice {
                        id: r.get(0)?,
                        body: r.get(1)?,
                    })
                },
            )?
        } else {
            Vec::new()
        };
        let all: Vec<Inbound> = tx.query_map(
            &format!("{INBOUND} WHERE {DUE_DELIVERY} ORDER BY m.id"),
            args![recipient, lapsed],
            inbound,
        )?;
        let mut used = 0;
        let mut taken = Vec::new();
        for m in &all {
            let c = cost(m);
            if used + c > budget && !taken.is_empty() {
                break;
            }
            used += c;
            taken.push(m.clone());
            if used >= budget {
                break;
            }
        }
        for m in &taken {
            tx.execute(
                "UPDATE deliveries SET in_context_at_ms=?3 WHERE message_id=?1 AND recipient_id=?2",
                args![m.id, recipient, now],
            )?;
        }
        for n in &notices {
            tx.execute(
                "UPDATE notices SET delivered_at_ms=?2 WHERE id=?1",
                args![n.id, -now],
            )?;
        }
        // The recipient took delivery: a ring pending for it is spent, and the next
        // message rings again (see `wake.rs`).
        if !taken.is_empty() || !notices.is_empty() {
            tx.execute(
                "UPDATE sessions SET rung_ms=NULL WHERE session_id=?1 AND rung_ms IS NOT NULL",
                args![recipient],
            )?;
        }
        tx.commit()?;
        let lease = Lease {
            recipient: recipient.to_string(),
            stamp: now,
            messages: taken.iter().map(|m| m.id).collect(),
            notices: notices.iter().map(|n| n.id).collect(),
        };
        Ok(Due {
            left: all.len() - taken.len(),
            notices,
            messages: taken,
            lease,
        })
    }

    /// The answer carrying `lease` was written: its messages are in context via `via`,
    /// its notices delivered. What another answer took over after the lease lapsed stays
    /// that answer's.
    pub fn confirm(&mut self, lease: &Lease, via: &str) -> Result<()> {
        self.settle(lease, Some(via))
    }

    /// The answer carrying `lease` could not be written: all it took is due again.
    pub fn release(&mut self, lease: &Lease) -> Result<()> {
        self.settle(lease, None)
    }

    fn settle(&mut self, lease: &Lease, written_via: Option<&str>) -> Result<()> {
        if lease.is_empty() {
            return Ok(());
        }
        let now = clock::now_ms();
        let tx = self.conn.begin()?;
        for id in &lease.messages {
            let (to, stamp) = (&lease.recipient, lease.stamp);
            match written_via {
                Some(via) => tx.execute(
                    "UPDATE deliveries SET state='in_context', via=?4, in_context_at_ms=?5
                     WHERE message_id=?1 AND recipient_id=?2 AND state='queued' AND in_context_at_ms=?3",
                    args![id, to, stamp, via, now],
                )?,
                None => tx.execute(
                    "UPDATE deliveries SET in_context_at_ms=NULL
                     WHERE message_id=?1 AND recipient_id=?2 AND state='queued' AND in_context_at_ms=?3",
                    args![id, to, stamp],
                )?,
            };
        }
        for id in &lease.notices {
            tx.execute(
                "UPDATE notices SET delivered_at_ms=?3 WHERE id=?1 AND delivered_at_ms=?2",
                args![id, -lease.stamp, written_via.map(|_| now)],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Messages to `recipient`, newest first; `unread_only` hides acknowledged ones.
    pub fn inbox(&self, recipient: &str, unread_only: bool, limit: usize) -> Result<Vec<Inbound>> {
        let cond = if unread_only {
            "AND d.state<>'acked'"
        } else {
            ""
        };
        self.conn.query_map(
            &format!("{INBOUND} WHERE d.recipient_id=?1 {cond} ORDER BY m.id DESC LIMIT ?2"),
            args![recipient, limit as i64],
            inbound,
        )
    }

    /// Marks the inbox's queued messages as in context (the agent is reading them now).
    pub fn mark_read(&self, recipient: &str, ids: &[i64]) -> Result<()> {
        let now = clock::now_ms();
        for id in ids {
            self.conn.execute(
                "UPDATE deliveries SET state='in_context', via='inbox', in_context_at_ms=?3
                 WHERE message_id=?1 AND recipient_id=?2 AND state='queued'",
                args![id, recipient, now],
            )?;
        }
        Ok(())
    }

    /// Acknowledges a message addressed to `recipient`; false if there is no such delivery.
    pub fn ack(&self, recipient: &str, message_id: i64) -> Result<bool> {
        let now = clock::now_ms();
        Ok(self.conn.execute(
            "UPDATE deliveries SET state='acked', acked_at_ms=?3,
               in_context_at_ms=COALESCE(in_context_at_ms, ?3), via=COALESCE(via, 'ack')
             WHERE message_id=?1 AND recipient_id=?2",
            args![message_id, recipient, now],
        )? > 0)
    }

    /// The sender of message `id`, if it exists.
    pub fn message_sender(&self, id: i64) -> Result<Option<String>> {
        self.conn.query_opt(
            "SELECT sender_id FROM messages WHERE id=?1",
            args![id],
            |r| r.get(0),
        )
    }

    /// Per-recipient receipts of message `id`.
    pub fn receipts(&self, id: i64) -> Result<Vec<Receipt>> {
        self.conn.query_map(
            "SELECT recipient_id, state, via, queued_at_ms,
               CASE WHEN state='queued' THEN NULL ELSE in_context_at_ms END, acked_at_ms,
               ring, rung_ms
             FROM deliveries WHERE message_id=?1 ORDER BY recipient_id",
            args![id],
            |r| {
                let t = |v: Option<i64>| v.map(clock::iso);
                let queued: i64 = r.get(3)?;
                let in_context: Option<i64> = r.get(4)?;
                let rung: Option<i64> = r.get(7)?;
                Ok(Receipt {
                    recipient_id: r.get(0)?,
                    state: r.get(1)?,
                    via: r.get(2)?,
                    queued_at: clock::iso(queued),
                    ring: r.get(6)?,
                    rung_at: t(rung),
                    in_context_at: t(in_context),
                    acked_at: t(r.get(5)?),
                    ms_to_ring: rung.map(|x| x - queued),
                    ms_to_context: in_context.map(|x| x - queued),
                    arrival: String::new(),
                    queued_at_ms: queued,
                    rung_at_ms: rung,
                    in_context_at_ms: in_context,
                })
            },
        )
    }

    /// Count of deliveries to `recipient` not yet acknowledged.
    pub fn unacked_count(&self, recipient: &str) -> Result<i64> {
        self.conn.query_row(
            "SELECT count(*) FROM deliveries WHERE recipient_id=?1 AND state<>'acked'",
            args![recipient],
            |r| r.get(0),
        )
    }

    /// Queued (never seen) delivery counts per recipient, for `doctor`.
    pub fn queued_by_recipient(&self) -> Result<Vec<(String, i64)>> {
        self.conn.query_map(
            "SELECT recipient_id, count(*) FROM deliveries WHERE state='queued'
             GROUP BY recipient_id ORDER BY recipient_id",
            args![],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// Queues a system notice for `session_id`'s next turn.
    pub fn add_notice(&self, session_id: &str, body: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO notices (session_id, body, created_at_ms) VALUES (?1, ?2, ?3)",
            args![session_id, body, clock::now_ms()],
        )?;
        self.conn.notify()
    }

    /// Senders (other than `human`) with queued messages to `recipient`, and how many each.
    pub fn queued_senders(&self, recipient: &str) -> Result<Vec<(String, i64)>> {
        self.conn.query_map(
            "SELECT m.sender_id, count(*) FROM deliveries d JOIN messages m ON m.id=d.message_id
             WHERE d.recipient_id=?1 AND d.state='queued' AND m.sender_id<>'human' GROUP BY m.sender_id",
            args![recipient],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// Ids of every session that ever had a delivery or a row, for queueing to absent ids.
    pub fn known_ids(&self) -> Result<Vec<String>> {
        self.conn.query_map(
            "SELECT session_id FROM sessions UNION SELECT recipient_id FROM deliveries
             UNION SELECT sender_id FROM messages WHERE sender_id<>'human'",
            args![],
            |r| r.get(0),
        )
    }
}

/// A message as the person's `watch` view shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Recent {
    pub id: i64,
    pub sender_id: String,
    pub sender_name: Option<String>,
    pub address: String,
    pub body: String,
    pub created_at_ms: i64,
    pub delivered: i64,
    pub recipients: i64,
}

impl Store {
    /// The newest `limit` messages with delivery progress.
    pub fn recent_messages(&self, limit: usize) -> Result<Vec<Recent>> {
        self.conn.query_map(
            "SELECT m.id, m.sender_id, m.sender_name, m.address, m.body, m.created_at_ms,
               (SELECT count(*) FROM deliveries d WHERE d.message_id=m.id AND d.state<>'queued'),
               (SELECT count(*) FROM deliveries d WHERE d.message_id=m.id)
             FROM messages m ORDER BY m.id DESC LIMIT ?1",
            args![limit as i64],
            |r| {
                Ok(Recent {
                    id: r.get(0)?,
                    sender_id: r.get(1)?,
                    sender_name: r.get(2)?,
                    address: r.get(3)?,
                    body: r.get(4)?,
                    created_at_ms: r.get(5)?,
                    delivered: r.get(6)?,
                    recipients: r.get(7)?,
                })
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with_mail(n: usize) -> Store {
        let mut s = Store::open_in_memory().expect("store");
        for k in 0..n {
            s.send_message(
                &Sender::human(),
                "@SA-r",
                &format!("m{k}"),
                None,
                &["r".into()],
            )
            .expect("send");
        }
        s.add_notice("r", "a notice").expect("notice");
        s
    }

    fn take(s: &mut Store) -> Due {
        s.take_due("r", true, usize::MAX, |_| 1).expect("take")
    }

    fn state(s: &Store, id: i64) -> String {
        s.inbox("r", false, 100)
            .expect("inbox")
            .into_iter()
            .find(|m| m.id == id)
            .map(|m| m.state)
            .unwrap_or_default()
    }

    #[test]
    fn leased_mail_goes_to_one_answer_and_is_in_context_only_once_confirmed() {
        let mut s = store_with_mail(3);
        let first = take(&mut s);
        assert_eq!((first.messages.len(), first.notices.len()), (3, 1));
        // A racing answer gets nothing while the lease holds.
        let second = take(&mut s);
        assert!(second.messages.is_empty() && second.notices.is_empty());
        assert_eq!(state(&s, 1), "queued");
        s.confirm(&first.lease, "hook").expect("confirm");
        assert_eq!(state(&s, 1), "in_context");
        assert!(!s.has_due("r", true).expect("due"));
    }

    #[test]
    fn a_released_or_lapsed_lease_is_due_again() {
        let mut s = store_with_mail(2);
        let first = take(&mut s);
        s.release(&first.lease).expect("release");
        let mut again = take(&mut s);
        assert_eq!((again.messages.len(), again.notices.len()), (2, 1));
        // The writer died: its lease lapses (moved back in time, stamp and rows).
        again.lease.stamp -= LEASE_MS + 1;
        s.conn
            .batch(&format!(
                "UPDATE deliveries SET in_context_at_ms = in_context_at_ms - {LEASE_MS} - 1;
                 UPDATE notices SET delivered_at_ms = delivered_at_ms + {LEASE_MS} + 1;"
            ))
            .expect("age the lease");
        let third = take(&mut s);
        assert_eq!((third.messages.len(), third.notices.len()), (2, 1));
        // The first holder's late confirm does not touch the new lease's rows.
        s.confirm(&again.lease, "hook").expect("late confirm");
        assert_eq!(state(&s, 1), "queued");
        s.confirm(&third.lease, "hook").expect("confirm");
        assert_eq!(state(&s, 1), "in_context");
        assert!(!s.has_due("r", true).expect("due"));
    }
}
