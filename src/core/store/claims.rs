//! Claims on paths or globs, owned by a session and lived only while it lives.

use super::db::Row;
use super::{SessionRow, Store};
use crate::args;
use crate::core::clock;
use anyhow::Result;

/// One claim.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Claim {
    pub id: i64,
    pub session_id: String,
    pub pattern: String,
    pub exclusive: bool,
    pub reason: Option<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    /// The worktree the claim is scoped to; `None` covers the whole repository.
    pub worktree: Option<String>,
}

fn claim(r: &Row) -> Result<Claim> {
    Ok(Claim {
        id: r.get(0)?,
        session_id: r.get(1)?,
        pattern: r.get(2)?,
        exclusive: r.get::<i64>(3)? != 0,
        reason: r.get(4)?,
        created_at_ms: r.get(5)?,
        expires_at_ms: r.get(6)?,
        worktree: r.get(7)?,
    })
}

const COLS: &str =
    "id, session_id, pattern, exclusive, reason, created_at_ms, expires_at_ms, worktree";

/// What a session asks to claim.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub session_id: &'a str,
    /// Project-relative patterns, already validated.
    pub patterns: &'a [String],
    pub exclusive: bool,
    pub reason: Option<&'a str>,
    pub ttl_ms: Option<i64>,
    /// Scope to one worktree (its label); `None` claims across the repository.
    pub worktree: Option<&'a str>,
}

impl Store {
    /// Creates or updates `req`'s claims unless `refuse`, shown every session row and
    /// every claim as they stand under the write lock, names a reason. The check and the
    /// writes are one immediate transaction: two sessions racing for overlapping
    /// exclusive claims run one after the other, and the second sees the first's claim.
    pub fn claim_checked(
        &self,
        req: &Request<'_>,
        now_ms: i64,
        refuse: impl FnOnce(&[SessionRow], &[Claim]) -> Option<String>,
    ) -> Result<Result<(), String>> {
        self.atomically(|s| {
            if let Some(why) = refuse(&s.all_sessions()?, &s.all_claims()?) {
                return Ok(Err(why));
            }
            let sql = "INSERT INTO claims
                   (session_id, pattern, exclusive, reason, created_at_ms, expires_at_ms, worktree)
                 VALUES (?1,?2,?3,?4,?5,?6,?7)
                 ON CONFLICT(session_id, pattern)
                 DO UPDATE SET exclusive=excluded.exclusive, reason=excluded.reason,
                   expires_at_ms=excluded.expires_at_ms, worktree=excluded.worktree";
            let expires = req.ttl_ms.map(|t| now_ms.saturating_add(t));
            for p in req.patterns {
                s.conn.execute(
                    sql,
                    args![
                        req.session_id,
                        p,
                        req.exclusive as i64,
                        req.reason,
                        now_ms,
                        expires,
                        req.worktree
                    ],
                )?;
            }
            Ok(Ok(()))
        })
    }

    /// Every claim, oldest first.
    pub fn all_claims(&self) -> Result<Vec<Claim>> {
        self.conn.query_map(
            &format!("SELECT {COLS} FROM claims ORDER BY id"),
            args![],
            claim,
        )
    }

    /// Claims whose pattern covers `path` (the pattern test runs here, in Rust; globs
    /// cannot use an index). Reads only ids and patterns for the rest.
    pub fn claims_covering(
        &self,
        path: &str,
        covers: impl Fn(&str, &str) -> bool,
    ) -> Result<Vec<Claim>> {
        let mut ids: Vec<i64> = Vec::new();
        self.conn
            .for_each("SELECT id, pattern FROM claims", args![], |r| {
                let pattern: String = r.get(1)?;
                if covers(&pattern, path) {
                    ids.push(r.get(0)?);
                }
                Ok(true)
            })?;
        let mut out = Vec::new();
        for id in ids {
            let sql = format!("SELECT {COLS} FROM claims WHERE id=?1");
            if let Some(c) = self.conn.query_opt(&sql, args![id], claim)? {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// Sessions holding at least one claim.
    pub fn claim_holders(&self) -> Result<Vec<String>> {
        self.conn
            .query_map("SELECT DISTINCT session_id FROM claims", args![], |r| {
                r.get(0)
            })
    }

    /// Claims whose ttl has passed at `now_ms`.
    pub fn lapsed_claims(&self, now_ms: i64) -> Result<Vec<Claim>> {
        self.conn.query_map(
            &format!(
                "SELECT {COLS} FROM claims WHERE expires_at_ms IS NOT NULL AND expires_at_ms<=?1"
            ),
            args![now_ms],
            claim,
        )
    }

    pub fn claims_of(&self, session_id: &str) -> Result<Vec<Claim>> {
        self.conn.query_map(
            &format!("SELECT {COLS} FROM claims WHERE session_id=?1 ORDER BY id"),
            args![session_id],
            claim,
        )
    }

    /// Deletes one claim; returns the sessions that were waiting on it, or `None` when
    /// it was already gone (another process dropped it first, and told them).
    pub fn drop_claim(&self, id: i64) -> Result<Option<Vec<String>>> {
        self.atomically(|s| {
            if s.conn
                .execute("DELETE FROM claims WHERE id=?1", args![id])?
                == 0
            {
                return Ok(None);
            }
            let waiters: Vec<String> = s.conn.query_map(
                "SELECT session_id FROM claim_waiters WHERE claim_id=?1",
                args![id],
                |r| r.get(0),
            )?;
            s.conn
                .execute("DELETE FROM claim_waiters WHERE claim_id=?1", args![id])?;
            Ok(Some(waiters))
        })
    }

    /// Records that `session_id` was refused or warned because of claim `id` (unless the
    /// claim is gone meanwhile: nobody would ever tell that waiter).
    pub fn add_waiter(&self, id: i64, session_id: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO claim_waiters (claim_id, session_id)
             SELECT CAST(?1 AS BIGINT), CAST(?2 AS TEXT) WHERE EXISTS (SELECT 1 FROM claims WHERE id=?1)
             ON CONFLICT DO NOTHING",
            args![id, session_id],
        )?;
        Ok(())
    }

    /// The stored working-tree snapshot of `session_id`: (entries JSON, taken at ms).
    pub fn tree_snapshot(&self, session_id: &str) -> Result<Option<(String, i64)>> {
        self.conn.query_opt(
            "SELECT entries, at_ms FROM tree_snapshots WHERE session_id=?1",
            args![session_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    pub fn put_tree_snapshot(
        &self,
        session_id: &str,
        head: Option<&str>,
        entries: &str,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO tree_snapshots (session_id, head, entries, at_ms) VALUES (?1,?2,?3,?4)
             ON CONFLICT (session_id) DO UPDATE SET head=excluded.head, entries=excluded.entries,
               at_ms=excluded.at_ms",
            args![session_id, head, entries, clock::now_ms()],
        )?;
        Ok(())
    }
}
