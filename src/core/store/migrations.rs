//! Versioned schema, tracked in `PRAGMA user_version`. Append steps; never edit old ones.
//!
//! `sessions` keeps the original TypeScript orchestrator's column names so a mixed fleet
//! reads one registry; everything after `kind` is additive.

use anyhow::{bail, Result};
use rusqlite::{Connection, TransactionBehavior};

const STEPS: &[&str] = &[
    // 1: the registry.
    "CREATE TABLE IF NOT EXISTS sessions (
        session_id TEXT PRIMARY KEY,
        id8 TEXT NOT NULL,
        role TEXT NOT NULL DEFAULT 'subordinate',
        name TEXT,
        started_at TEXT NOT NULL,
        last_heartbeat_at TEXT NOT NULL,
        current_task TEXT,
        kind TEXT
     );
     ALTER TABLE sessions ADD COLUMN agent_pid INTEGER;
     ALTER TABLE sessions ADD COLUMN agent_started_at INTEGER;
     ALTER TABLE sessions ADD COLUMN server_pid INTEGER;
     ALTER TABLE sessions ADD COLUMN server_token TEXT;
     ALTER TABLE sessions ADD COLUMN host TEXT;
     ALTER TABLE sessions ADD COLUMN boot_id TEXT;
     ALTER TABLE sessions ADD COLUMN evidence TEXT;
     ALTER TABLE sessions ADD COLUMN activity TEXT;
     ALTER TABLE sessions ADD COLUMN activity_since TEXT;
     ALTER TABLE sessions ADD COLUMN last_tool TEXT;
     ALTER TABLE sessions ADD COLUMN roster_hash TEXT;
     CREATE UNIQUE INDEX sessions_one_row_per_agent
        ON sessions(host, boot_id, agent_pid, agent_started_at)
        WHERE agent_pid IS NOT NULL;",
    // 2: the file-touch ledger.
    "CREATE TABLE touches (
        id INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL,
        path TEXT NOT NULL,
        tool TEXT,
        at_ms INTEGER NOT NULL
     );
     CREATE INDEX touches_path_at ON touches(path, at_ms);
     CREATE INDEX touches_session_at ON touches(session_id, at_ms);",
    // 3: the roster reads every session's recent files in one range scan.
    "CREATE INDEX touches_at ON touches(at_ms);",
    // 4: messages, one delivery row per recipient, and notices for a session's next turn.
    "CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        sender_id TEXT NOT NULL,
        sender_name TEXT,
        sender_role TEXT,
        sender_task TEXT,
        address TEXT NOT NULL,
        body TEXT NOT NULL,
        reply_to INTEGER,
        thread_id INTEGER,
        created_at_ms INTEGER NOT NULL
     );
     CREATE TABLE deliveries (
        message_id INTEGER NOT NULL REFERENCES messages(id),
        recipient_id TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'queued',
        via TEXT,
        queued_at_ms INTEGER NOT NULL,
        in_context_at_ms INTEGER,
        acked_at_ms INTEGER,
        PRIMARY KEY (message_id, recipient_id)
     );
     CREATE INDEX deliveries_recipient_state ON deliveries(recipient_id, state);
     CREATE TABLE notices (
        id INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        delivered_at_ms INTEGER
     );
     CREATE INDEX notices_pending ON notices(session_id, delivered_at_ms);",
    // 5: how sessions ended, for `status --all` and `doctor`.
    "CREATE TABLE ended_sessions (
        session_id TEXT PRIMARY KEY,
        id8 TEXT NOT NULL,
        name TEXT,
        role TEXT,
        current_task TEXT,
        agent_pid INTEGER,
        ended_at_ms INTEGER NOT NULL,
        how TEXT NOT NULL
     );
     CREATE INDEX ended_at ON ended_sessions(ended_at_ms);",
    // 6: claims (tied to their session's liveness), who waits on them, and the Bash ledger's
    // per-session working-tree snapshots.
    "CREATE TABLE claims (
        id INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL,
        pattern TEXT NOT NULL,
        exclusive INTEGER NOT NULL,
        reason TEXT,
        created_at_ms INTEGER NOT NULL,
        expires_at_ms INTEGER,
        UNIQUE (session_id, pattern)
     );
     CREATE TABLE claim_waiters (
        claim_id INTEGER NOT NULL,
        session_id TEXT NOT NULL,
        PRIMARY KEY (claim_id, session_id)
     );
     CREATE TABLE tree_snapshots (
        session_id TEXT PRIMARY KEY,
        head TEXT,
        entries TEXT NOT NULL,
        at_ms INTEGER NOT NULL
     );",
    // 7: one registry per repository: rows, touches and claims know their worktree.
    "ALTER TABLE sessions ADD COLUMN worktree TEXT;
     ALTER TABLE sessions ADD COLUMN branch TEXT;
     ALTER TABLE touches ADD COLUMN worktree TEXT;
     ALTER TABLE claims ADD COLUMN worktree TEXT;",
];

/// Brings the schema to the latest version in one immediate transaction per step.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let latest = STEPS.len() as i64;
    if current == latest {
        return Ok(());
    }
    if current > latest {
        bail!(
            "database schema is version {current}, newer than this orchestrator ({latest}); \
             upgrade orchestrator"
        );
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Another process may have migrated while we waited for the lock.
    let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, step) in STEPS.iter().enumerate().skip(current as usize) {
        if i == 0 {
            apply_first(&tx, step)?;
        } else {
            tx.execute_batch(step)?;
        }
    }
    tx.execute_batch(&format!("PRAGMA user_version = {latest}"))?;
    tx.commit()?;
    Ok(())
}

/// Step 1 may meet a registry the original orchestrator created: add only missing columns.
fn apply_first(tx: &rusqlite::Transaction<'_>, step: &str) -> Result<()> {
    let existing: Vec<String> = {
        let mut stmt = tx.prepare("SELECT name FROM pragma_table_info('sessions')")?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        names
    };
    for stmt in step.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        if let Some(col) = stmt
            .strip_prefix("ALTER TABLE sessions ADD COLUMN ")
            .and_then(|r| r.split_whitespace().next())
        {
            if existing.iter().any(|c| c == col) {
                continue;
            }
        }
        tx.execute_batch(stmt)?;
    }
    Ok(())
}
