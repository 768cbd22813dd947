//! Claims on paths or globs, owned by a session and lived only while it lives.

use super::{SessionRow, Store};
use crate::core::clock;
use anyhow::Result;
use rusqlite::{params, OptionalExtension};

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

fn claim(r: &rusqlite::Row<'_>) -> rusqlite::Result<Claim> {
    Ok(Claim {
        id: r.get(0)?,
        session_id: r.get(1)?,
        pattern: r.get(2)?,
        exclusive: r.get::<_, i64>(3)? != 0,
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
            let mut stmt = s.conn.prepare_cached(
                "INSERT INTO claims
                   (session_id, pattern, exclusive, reason, created_at_ms, expires_at_ms, worktree)
                 VALUES (?1,?2,?3,?4,?5,?6,?7)
                 ON CONFLICT(session_id, pattern)
                 DO UPDATE SET exclusive=?3, reason=?4, expires_at_ms=?6, worktree=?7",
            )?;
            let expires = req.ttl_ms.map(|t| now_ms.saturating_add(t));
            for p in req.patterns {
                stmt.execute(params![
                    req.session_id,
                    p,
                    req.exclusive as i64,
                    req.reason,
                    now_ms,
                    expires,
                    req.worktree
                ])?;
            }
            Ok(Ok(()))
        })
    }

    /// Every claim, oldest first.
    pub fn all_claims(&self) -> Result<Vec<Claim>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {COLS} FROM claims ORDER BY id"))?;
        let rows = stmt
            .query_map([], claim)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Claims whose pattern covers `path` (the pattern test runs here, in Rust; globs
    /// cannot use an index). Reads only ids and patterns for the rest.
    pub fn claims_covering(
        &self,
        path: &str,
        covers: impl Fn(&str, &str) -> bool,
    ) -> Result<Vec<Claim>> {
        let ids: Vec<i64> = {
            let mut stmt = self.conn.prepare_cached("SELECT id, pattern FROM claims")?;
            let mut rows = stmt.query([])?;
            let mut ids = Vec::new();
            while let Some(r) = rows.next()? {
                let pattern: String = r.get(1)?;
                if covers(&pattern, path) {
                    ids.push(r.get(0)?);
                }
            }
            ids
        };
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {COLS} FROM claims WHERE id=?1"))?;
        let mut out = Vec::new();
        for id in ids {
            if let Some(c) = stmt.query_row([id], claim).optional()? {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// Sessions holding at least one claim.
    pub fn claim_holders(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT DISTINCT session_id FROM claims")?;
        let rows = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Claims whose ttl has passed at `now_ms`.
    pub fn lapsed_claims(&self, now_ms: i64) -> Result<Vec<Claim>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLS} FROM claims WHERE expires_at_ms IS NOT NULL AND expires_at_ms<=?1"
        ))?;
        let rows = stmt
            .query_map([now_ms], claim)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn claims_of(&self, session_id: &str) -> Result<Vec<Claim>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLS} FROM claims WHERE session_id=?1 ORDER BY id"
        ))?;
        let rows = stmt
            .query_map([session_id], claim)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Deletes one claim; returns the sessions that were waiting on it, or `None` when
    /// it was already gone (another process dropped it first, and told them).
    pub fn drop_claim(&self, id: i64) -> Result<Option<Vec<String>>> {
        self.atomically(|s| {
            if s.conn.execute("DELETE FROM claims WHERE id=?1", [id])? == 0 {
                return Ok(None);
            }
            let waiters = s
                .conn
                .prepare_cached("SELECT session_id FROM claim_waiters WHERE claim_id=?1")?
                .query_map([id], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            s.conn
                .execute("DELETE FROM claim_waiters WHERE claim_id=?1", [id])?;
            Ok(Some(waiters))
        })
    }

    /// Records that `session_id` was refused or warned because of claim `id` (unless the
    /// claim is gone meanwhile: nobody would ever tell that waiter).
    pub fn add_waiter(&self, id: i64, session_id: &str) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO claim_waiters (claim_id, session_id)
             SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM claims WHERE id=?1)",
            params![id, session_id],
        )?;
        Ok(())
    }

    /// The stored working-tree snapshot of `session_id`: (entries JSON, taken at ms).
    pub fn tree_snapshot(&self, session_id: &str) -> Result<Option<(String, i64)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT entries, at_ms FROM tree_snapshots WHERE session_id=?1",
                [session_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    pub fn put_tree_snapshot(
        &self,
        session_id: &str,
        head: Option<&str>,
        entries: &str,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO tree_snapshots (session_id, head, entries, at_ms) VALUES (?1,?2,?3,?4)",
            params![session_id, head, entries, clock::now_ms()],
        )?;
        Ok(())
    }
}
