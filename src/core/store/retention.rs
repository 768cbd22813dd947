//! Retention: how long the store keeps what sessions leave behind. Without it the database
//! would pile up the way per-process anchor files did — every dead session's mail,
//! notices, history and working-tree snapshot, forever.

use super::Store;
use crate::args;
use crate::core::store::touches::RETAIN_MS as TOUCH_RETAIN_MS;
use anyhow::Result;

/// Messages (queued ones too: a resume after a month is not coming) and the history of
/// ended sessions are kept this long.
pub const KEEP_MS: i64 = 30 * 24 * 3600 * 1000;
/// Notices already delivered are kept this long (for `inbox`-style look-back).
pub const NOTICE_KEEP_MS: i64 = 7 * 24 * 3600 * 1000;

/// What a prune removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    pub messages: usize,
    pub notices: usize,
    pub ended_sessions: usize,
    pub tree_snapshots: usize,
    pub touches: usize,
}

impl Pruned {
    pub fn total(&self) -> usize {
        self.messages + self.notices + self.ended_sessions + self.tree_snapshots + self.touches
    }
}

impl Store {
    /// Removes records past their retention, and tree snapshots of sessions that have no
    /// row any more. One transaction; `dry_run` only counts.
    pub fn prune(&self, now_ms: i64, dry_run: bool) -> Result<Pruned> {
        let old = now_ms - KEEP_MS;
        let seen = now_ms - NOTICE_KEEP_MS;
        let touched = now_ms - TOUCH_RETAIN_MS;
        // The bounds are integers computed here, never input, so they are inlined.
        let messages = format!("FROM messages WHERE created_at_ms < {old}");
        let notices = format!(
            "FROM notices WHERE (delivered_at_ms > 0 AND delivered_at_ms < {seen})
             OR created_at_ms < {old}"
        );
        let ended = format!("FROM ended_sessions WHERE ended_at_ms < {old}");
        let snapshots =
            "FROM tree_snapshots WHERE session_id NOT IN (SELECT session_id FROM sessions)"
                .to_string();
        let touches = format!("FROM touches WHERE at_ms < {touched}");
        let tx = self.conn.begin()?;
        let run = |rule: &str| -> Result<usize> {
            if dry_run {
                let n: i64 =
                    tx.query_row(&format!("SELECT count(*) {rule}"), args![], |r| r.get(0))?;
                Ok(n as usize)
            } else {
                tx.execute(&format!("DELETE {rule}"), args![])
            }
        };
        if !dry_run {
            tx.execute(
                &format!("DELETE FROM deliveries WHERE message_id IN (SELECT id {messages})"),
                args![],
            )?;
        }
        let out = Pruned {
            messages: run(&messages)?,
            notices: run(&notices)?,
            ended_sessions: run(&ended)?,
            tree_snapshots: run(&snapshots)?,
            touches: run(&touches)?,
        };
        tx.commit()?;
        Ok(out)
    }
}
