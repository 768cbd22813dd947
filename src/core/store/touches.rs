//! The file-touch ledger: which session touched which project-relative path, and when.

use super::Store;
use crate::args;
use crate::core::clock;
use anyhow::Result;
use std::collections::HashMap;

/// One touch of a path by a session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Touch {
    pub session_id: String,
    pub path: String,
    /// The worktree the path is in (`.` = main checkout; `None` outside git).
    pub worktree: Option<String>,
    pub tool: Option<String>,
    pub at_ms: i64,
}

/// Touches older than this are pruned on write (the ledger is for recent overlap).
pub const RETAIN_MS: i64 = 7 * 24 * 3600 * 1000;

impl Store {
    /// Records that `session_id` touched `path` (relative to `worktree`) now.
    pub fn record_touch(
        &self,
        session_id: &str,
        path: &str,
        worktree: Option<&str>,
        tool: Option<&str>,
    ) -> Result<()> {
        let now = clock::now_ms();
        self.conn.execute(
            "INSERT INTO touches (session_id, path, tool, at_ms, worktree)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            args![session_id, path, tool, now, worktree],
        )?;
        // Cheap amortised prune: roughly one write in 256 pays for it.
        if now % 256 == 0 {
            self.conn.execute(
                "DELETE FROM touches WHERE at_ms < ?1",
                args![now - RETAIN_MS],
            )?;
        }
        Ok(())
    }

    /// Latest touch per other session of `path` since `since_ms`, in any worktree (the
    /// same path changed in two worktrees is a merge conflict in the making).
    pub fn touches_of_path(&self, path: &str, since_ms: i64, except: &str) -> Result<Vec<Touch>> {
        // Each session's newest touch of the path (a window, which both engines run; not
        // SQLite's bare columns beside MAX()).
        self.conn.query_map(
            "SELECT session_id, path, tool, at_ms, worktree FROM (
               SELECT session_id, path, tool, at_ms, worktree, ROW_NUMBER() OVER
                 (PARTITION BY session_id ORDER BY at_ms DESC, id DESC) AS n
               FROM touches WHERE path=?1 AND at_ms>=?2 AND session_id<>?3) AS latest
             WHERE n=1 ORDER BY at_ms DESC",
            args![path, since_ms, except],
            |r| {
                Ok(Touch {
                    session_id: r.get(0)?,
                    path: r.get(1)?,
                    worktree: r.get(4)?,
                    tool: r.get(2)?,
                    at_ms: r.get(3)?,
                })
            },
        )
    }

    /// For each of `ids`, its most recent distinct paths since `since_ms` (newest first,
    /// at most `per_session`). One range scan of the newest touches serves the usual case;
    /// only a session crowded out of that scan gets its own short index query. (Bound
    /// parameters in per-session loops cost a re-prepare each under SQLite's STAT4.)
    pub fn recent_files(
        &self,
        ids: &[&str],
        since_ms: i64,
        per_session: usize,
    ) -> Result<HashMap<String, Vec<String>>> {
        const SCAN: i64 = 2_000;
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        let mut n = 0i64;
        self.conn.for_each(
            "SELECT session_id, path FROM touches WHERE at_ms>=?1 ORDER BY at_ms DESC LIMIT ?2",
            args![since_ms, SCAN],
            |r| {
                n += 1;
                let sid: String = r.get(0)?;
                if !ids.contains(&sid.as_str()) {
                    return Ok(true);
                }
                let v = out.entry(sid).or_default();
                if v.len() < per_session {
                    let p: String = r.get(1)?;
                    if !v.contains(&p) {
                        v.push(p);
                    }
                }
                Ok(true)
            },
        )?;
        if n < SCAN {
            return Ok(out);
        }
        for id in ids {
            if out.get(*id).is_some_and(|v| v.len() >= per_session) {
                continue;
            }
            let mut seen: Vec<String> = Vec::new();
            self.conn.for_each(
                "SELECT path FROM touches WHERE session_id=?1 AND at_ms>=?2 ORDER BY at_ms DESC LIMIT ?3",
                args![id, since_ms, (per_session * 64) as i64],
                |r| {
                    let p: String = r.get(0)?;
                    if !seen.contains(&p) {
                        seen.push(p);
                    }
                    Ok(seen.len() < per_session)
                },
            )?;
            if !seen.is_empty() {
                out.insert((*id).to_string(), seen);
            }
        }
        Ok(out)
    }

    /// Distinct paths `session_id` touched since `since_ms`, most recent first.
    pub fn paths_of_session(
        &self,
        session_id: &str,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<String>> {
        self.conn.query_map(
            "SELECT path, MAX(at_ms) AS t FROM touches WHERE session_id=?1 AND at_ms>=?2
             GROUP BY path ORDER BY t DESC LIMIT ?3",
            args![session_id, since_ms, limit as i64],
            |r| r.get(0),
        )
    }
}
