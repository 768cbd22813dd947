//! Messages: stored once, one delivery row per recipient moving
//! queued → in_context (injected by a hook, pushed on a channel, or read from the inbox)
//! → acked. Taking deliveries for a context is one immediate transaction, so two racing
//! hooks never inject the same message twice.

use super::Store;
use crate::core::clock;
use anyhow::Result;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

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
    pub in_context_at: Option<String>,
    pub acked_at: Option<String>,
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

fn inbound(r: &rusqlite::Row<'_>) -> rusqlite::Result<Inbound> {
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
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let thread: Option<i64> = match reply_to {
            Some(r) => tx
                .query_row(
                    "SELECT COALESCE(thread_id, id) FROM messages WHERE id=?1",
                    [r],
                    |row| row.get(0),
                )
                .optional()?,
            None => None,
        };
        if reply_to.is_some() && thread.is_none() {
            anyhow::bail!(
                "reply_to names message {} which does not exist",
                reply_to.unwrap_or(0)
            );
        }
        tx.execute(
            "INSERT INTO messages (sender_id, sender_name, sender_role, sender_task, address, body,
               reply_to, thread_id, created_at_ms) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
            params![from.id, from.name, from.role, from.task, address, body, reply_to, thread, now],
        )?;
        let id = tx.last_insert_rowid();
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO deliveries (message_id, recipient_id, queued_at_ms) VALUES (?1,?2,?3)",
            )?;
            for r in recipients {
                stmt.execute(params![id, r, now])?;
            }
        }
        tx.commit()?;
        Ok(id)
    }

    /// Takes queued messages for `recipient` into a context, oldest first, while the
    /// rendered size (by `cost`) fits `budget`; marks exactly those in_context via `via`.
    pub fn take_for_context(
        &mut self,
        recipient: &str,
        via: &str,
        budget: usize,
        cost: impl Fn(&Inbound) -> usize,
    ) -> Result<(Vec<Inbound>, usize)> {
        let now = clock::now_ms();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let all: Vec<Inbound> = {
            let mut stmt = tx.prepare_cached(&format!(
                "{INBOUND} WHERE d.recipient_id=?1 AND d.state='queued' ORDER BY m.id"
            ))?;
            let rows = stmt
                .query_map([recipient], inbound)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows
        };
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
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE deliveries SET state='in_context', via=?3, in_context_at_ms=?4
                 WHERE message_id=?1 AND recipient_id=?2 AND state='queued'",
            )?;
            for m in &taken {
                stmt.execute(params![m.id, recipient, via, now])?;
            }
        }
        tx.commit()?;
        let left = all.len() - taken.len();
        Ok((taken, left))
    }

    /// Puts deliveries back to queued (a push that could not be sent).
    pub fn requeue(&self, recipient: &str, ids: &[i64]) -> Result<()> {
        for id in ids {
            self.conn.execute(
                "UPDATE deliveries SET state='queued', via=NULL, in_context_at_ms=NULL
                 WHERE message_id=?1 AND recipient_id=?2 AND state='in_context'",
                params![id, recipient],
            )?;
        }
        Ok(())
    }

    /// Messages to `recipient`, newest first; `unread_only` hides acknowledged ones.
    pub fn inbox(&self, recipient: &str, unread_only: bool, limit: usize) -> Result<Vec<Inbound>> {
        let cond = if unread_only {
            "AND d.state<>'acked'"
        } else {
            ""
        };
        let mut stmt = self.conn.prepare(&format!(
            "{INBOUND} WHERE d.recipient_id=?1 {cond} ORDER BY m.id DESC LIMIT ?2"
        ))?;
        let rows = stmt
            .query_map(params![recipient, limit as i64], inbound)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Marks the inbox's queued messages as in context (the agent is reading them now).
    pub fn mark_read(&self, recipient: &str, ids: &[i64]) -> Result<()> {
        let now = clock::now_ms();
        for id in ids {
            self.conn.execute(
                "UPDATE deliveries SET state='in_context', via='inbox', in_context_at_ms=?3
                 WHERE message_id=?1 AND recipient_id=?2 AND state='queued'",
                params![id, recipient, now],
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
            params![message_id, recipient, now],
        )? > 0)
    }

    /// The sender of message `id`, if it exists.
    pub fn message_sender(&self, id: i64) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT sender_id FROM messages WHERE id=?1", [id], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Per-recipient receipts of message `id`.
    pub fn receipts(&self, id: i64) -> Result<Vec<Receipt>> {
        let mut stmt = self.conn.prepare(
            "SELECT recipient_id, state, via, queued_at_ms, in_context_at_ms, acked_at_ms
             FROM deliveries WHERE message_id=?1 ORDER BY recipient_id",
        )?;
        let rows = stmt
            .query_map([id], |r| {
                let t = |v: Option<i64>| v.map(clock::iso);
                Ok(Receipt {
                    recipient_id: r.get(0)?,
                    state: r.get(1)?,
                    via: r.get(2)?,
                    queued_at: clock::iso(r.get(3)?),
                    in_context_at: t(r.get(4)?),
                    acked_at: t(r.get(5)?),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Count of deliveries to `recipient` not yet acknowledged.
    pub fn unacked_count(&self, recipient: &str) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM deliveries WHERE recipient_id=?1 AND state<>'acked'",
            [recipient],
            |r| r.get(0),
        )?)
    }

    /// Count of queued (never seen) deliveries to `recipient`.
    pub fn queued_count(&self, recipient: &str) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM deliveries WHERE recipient_id=?1 AND state='queued'",
            [recipient],
            |r| r.get(0),
        )?)
    }

    /// Queued (never seen) delivery counts per recipient, for `doctor`.
    pub fn queued_by_recipient(&self) -> Result<Vec<(String, i64)>> {
        let mut stmt = self.conn.prepare(
            "SELECT recipient_id, count(*) FROM deliveries WHERE state='queued'
             GROUP BY recipient_id ORDER BY recipient_id",
        )?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// True when `session_id` has a pending notice (a cheap read before a write).
    pub fn has_notices(&self, session_id: &str) -> Result<bool> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM notices WHERE session_id=?1 AND delivered_at_ms IS NULL",
            [session_id],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// Queues a system notice for `session_id`'s next turn.
    pub fn add_notice(&self, session_id: &str, body: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO notices (session_id, body, created_at_ms) VALUES (?1, ?2, ?3)",
            params![session_id, body, clock::now_ms()],
        )?;
        Ok(())
    }

    /// Takes (marks delivered) the pending notices of `session_id`, oldest first.
    pub fn take_notices(&mut self, session_id: &str) -> Result<Vec<Notice>> {
        let now = clock::now_ms();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out: Vec<Notice> = {
            let mut stmt = tx.prepare_cached(
                "SELECT id, body FROM notices WHERE session_id=?1 AND delivered_at_ms IS NULL ORDER BY id",
            )?;
            let rows = stmt
                .query_map([session_id], |r| {
                    Ok(Notice {
                        id: r.get(0)?,
                        body: r.get(1)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows
        };
        if !out.is_empty() {
            tx.execute(
                "UPDATE notices SET delivered_at_ms=?2 WHERE session_id=?1 AND delivered_at_ms IS NULL",
                params![session_id, now],
            )?;
        }
        tx.commit()?;
        Ok(out)
    }

    /// Senders (other than `human`) with queued messages to `recipient`, and how many each.
    pub fn queued_senders(&self, recipient: &str) -> Result<Vec<(String, i64)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT m.sender_id, count(*) FROM deliveries d JOIN messages m ON m.id=d.message_id
             WHERE d.recipient_id=?1 AND d.state='queued' AND m.sender_id<>'human' GROUP BY m.sender_id",
        )?;
        let rows = stmt
            .query_map([recipient], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Ids of every session that ever had a delivery or a row, for queueing to absent ids.
    pub fn known_ids(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare(
            "SELECT session_id FROM sessions UNION SELECT recipient_id FROM deliveries
             UNION SELECT sender_id FROM messages WHERE sender_id<>'human'",
        )?;
        let rows = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
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
        let mut stmt = self.conn.prepare_cached(
            "SELECT m.id, m.sender_id, m.sender_name, m.address, m.body, m.created_at_ms,
               (SELECT count(*) FROM deliveries d WHERE d.message_id=m.id AND d.state<>'queued'),
               (SELECT count(*) FROM deliveries d WHERE d.message_id=m.id)
             FROM messages m ORDER BY m.id DESC LIMIT ?1",
        )?;
        let rows = stmt
            .query_map([limit as i64], |r| {
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
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}
