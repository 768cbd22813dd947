//! Versioned schema, tracked in `PRAGMA user_version`. Append steps; never edit old ones.
//!
//! `sessions` keeps the original TypeScript orchestrator's column names so a mixed fleet
//! reads one registry; everything after `kind` is additive.

use super::db::pg::Target;
use super::db::Conn;
use crate::args;
use crate::core::clock;
use anyhow::{bail, Result};
use rusqlite::{Connection, TransactionBehavior};

/// Page size of new databases: sqlite_master must fit page 1 for `repair` to read a
/// truncated file, and the schema outgrew 4 KiB.
pub const PAGE_SIZE: u32 = 8192;

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
    // 8: what a session does without a set task: its latest prompt's gist (and when), its
    // title. Short and untyped to keep sqlite_master small (see step 9).
    "ALTER TABLE sessions ADD COLUMN gist;
     ALTER TABLE sessions ADD COLUMN gist_ms;
     ALTER TABLE sessions ADD COLUMN title;",
    // 9: waking a session: its doorbell (Claude Code's messaging socket), the permission
    // mode its hooks report, the ring still pending for it (epoch ms; coalescing), its
    // asyncRewake waiter ("pid:start_ticks"); per delivery, how it was rung (an outcome
    // code of core::doorbell) and when (epoch ms). Short and untyped on purpose: every
    // ALTER lengthens the CREATE text in sqlite_master, which must stay on page 1 for
    // `repair` to read a truncated file (see tests/state.rs truncated_database).
    "ALTER TABLE sessions ADD COLUMN doorbell;
     ALTER TABLE sessions ADD COLUMN perm_mode;
     ALTER TABLE sessions ADD COLUMN rung_ms;
     ALTER TABLE sessions ADD COLUMN waiter;
     ALTER TABLE deliveries ADD COLUMN ring;
     ALTER TABLE deliveries ADD COLUMN rung_ms;",
    // 10: which coding-agent CLI a session runs (claude, codex, gemini).
    "ALTER TABLE sessions ADD COLUMN agent_cli;",
];

/// The same tables on PostgreSQL, one schema per project. Its own steps, numbered from
/// 1: step 1 is SQLite's steps 1–10 at once. Append a step to both lists.
const PG_STEPS: &[&str] = &[
    // 1: everything SQLite has at its step 10, typed.
    "CREATE TABLE sessions (
        session_id TEXT PRIMARY KEY,
        id8 TEXT NOT NULL,
        role TEXT NOT NULL DEFAULT 'subordinate',
        name TEXT,
        started_at TEXT NOT NULL,
        last_heartbeat_at TEXT NOT NULL,
        current_task TEXT,
        kind TEXT,
        agent_pid INTEGER,
        agent_started_at BIGINT,
        server_pid INTEGER,
        server_token TEXT,
        host TEXT,
        boot_id TEXT,
        evidence TEXT,
        activity TEXT,
        activity_since TEXT,
        last_tool TEXT,
        roster_hash TEXT,
        worktree TEXT,
        branch TEXT,
        gist TEXT,
        gist_ms BIGINT,
        title TEXT,
        doorbell TEXT,
        perm_mode TEXT,
        rung_ms BIGINT,
        waiter TEXT,
        agent_cli TEXT
     );
     CREATE UNIQUE INDEX sessions_one_row_per_agent
        ON sessions(host, boot_id, agent_pid, agent_started_at)
        WHERE agent_pid IS NOT NULL;
     CREATE TABLE touches (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        session_id TEXT NOT NULL,
        path TEXT NOT NULL,
        tool TEXT,
        at_ms BIGINT NOT NULL,
        worktree TEXT
     );
     CREATE INDEX touches_path_at ON touches(path, at_ms);
     CREATE INDEX touches_session_at ON touches(session_id, at_ms);
     CREATE INDEX touches_at ON touches(at_ms);
     CREATE TABLE messages (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        sender_id TEXT NOT NULL,
        sender_name TEXT,
        sender_role TEXT,
        sender_task TEXT,
        address TEXT NOT NULL,
        body TEXT NOT NULL,
        reply_to BIGINT,
        thread_id BIGINT,
        created_at_ms BIGINT NOT NULL
     );
     CREATE TABLE deliveries (
        message_id BIGINT NOT NULL REFERENCES messages(id),
        recipient_id TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'queued',
        via TEXT,
        queued_at_ms BIGINT NOT NULL,
        in_context_at_ms BIGINT,
        acked_at_ms BIGINT,
        ring TEXT,
        rung_ms BIGINT,
        PRIMARY KEY (message_id, recipient_id)
     );
     CREATE INDEX deliveries_recipient_state ON deliveries(recipient_id, state);
     CREATE TABLE notices (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        session_id TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL,
        delivered_at_ms BIGINT
     );
     CREATE INDEX notices_pending ON notices(session_id, delivered_at_ms);
     CREATE TABLE ended_sessions (
        session_id TEXT PRIMARY KEY,
        id8 TEXT NOT NULL,
        name TEXT,
        role TEXT,
        current_task TEXT,
        agent_pid INTEGER,
        ended_at_ms BIGINT NOT NULL,
        how TEXT NOT NULL
     );
     CREATE INDEX ended_at ON ended_sessions(ended_at_ms);
     CREATE TABLE claims (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        session_id TEXT NOT NULL,
        pattern TEXT NOT NULL,
        exclusive INTEGER NOT NULL,
        reason TEXT,
        created_at_ms BIGINT NOT NULL,
        expires_at_ms BIGINT,
        worktree TEXT,
        UNIQUE (session_id, pattern)
     );
     CREATE TABLE claim_waiters (
        claim_id BIGINT NOT NULL,
        session_id TEXT NOT NULL,
        PRIMARY KEY (claim_id, session_id)
     );
     CREATE TABLE tree_snapshots (
        session_id TEXT PRIMARY KEY,
        head TEXT,
        entries TEXT NOT NULL,
        at_ms BIGINT NOT NULL
     );",
];

/// The version a project's schema is at, kept as the schema's comment
/// (`orchestrator schema v1`): readable in the same statement that sets up a session,
/// and absent (0) before the schema exists, without an error.
const VERSION_PREFIX: &str = "orchestrator schema v";

fn parse_version(comment: Option<String>) -> i64 {
    comment
        .as_deref()
        .and_then(|c| c.strip_prefix(VERSION_PREFIX))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The version of `schema` (0 when it does not exist).
pub fn pg_version(conn: &Conn, schema: &str) -> Result<i64> {
    let comment = conn.query_row(
        "SELECT obj_description(to_regnamespace(?1), 'pg_namespace')",
        args![schema],
        |r| r.get::<Option<String>>(0),
    )?;
    Ok(parse_version(comment))
}

/// Sets up a PostgreSQL session for the project and brings its schema to the latest
/// version. The fast path is one round trip: it chooses the schema and the lock timeout
/// (session settings, so a pooler in session mode can stand between), reads the schema's
/// version and the server's clock — every heartbeat and comparison of this process then
/// uses the server's time, so hosts with skewed clocks agree. The schema is created and
/// upgraded under the project's advisory lock.
pub fn migrate_pg(conn: &Conn, target: &Target, lock_timeout: std::time::Duration) -> Result<()> {
    let latest = PG_STEPS.len() as i64;
    let schema = target.schema();
    let sent = clock::system_ms();
    let (comment, server_ms) = conn.query_row(
        "SELECT set_config('search_path', ?1, false), set_config('lock_timeout', ?2, false),
           obj_description(to_regnamespace(?1), 'pg_namespace'),
           CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT)",
        args![schema, lock_timeout.as_millis().max(1).to_string()],
        |r| Ok((r.get::<Option<String>>(2)?, r.get::<i64>(3)?)),
    )?;
    let back = clock::system_ms();
    clock::set_offset_ms(server_ms - (sent + back) / 2);
    let current = parse_version(comment);
    if current == latest {
        return Ok(());
    }
    if current > latest {
        bail!(
            "database schema {schema} is version {current}, newer than this orchestrator \
             ({latest}); upgrade orchestrator"
        );
    }
    let tx = conn.begin()?;
    tx.batch(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.meta (project_id TEXT NOT NULL)"
    ))?;
    // Another process may have migrated while we waited for the lock.
    let current = pg_version(&tx, &schema)?;
    if current == 0 {
        tx.execute(
            "INSERT INTO meta (project_id) VALUES (?1)",
            args![target.project_id],
        )?;
    }
    for step in PG_STEPS.iter().skip(current.max(0) as usize) {
        tx.batch(step)?;
    }
    tx.batch(&format!(
        "COMMENT ON SCHEMA {schema} IS '{VERSION_PREFIX}{latest}'"
    ))?;
    tx.commit()
}

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

/// The shape a database has: each table (in creation order) with its columns, and the
/// named indexes. Compared against a fresh migration to find a dropped table or index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    pub tables: Vec<(String, Vec<String>)>,
    pub indexes: Vec<String>,
}

impl Schema {
    /// What `conn`'s database holds (SQLite's own `sqlite_*` objects left out).
    pub fn of(conn: &Connection) -> rusqlite::Result<Self> {
        let names = |kind: &str| -> rusqlite::Result<Vec<String>> {
            let mut stmt = conn.prepare(
                "SELECT name FROM sqlite_master WHERE type = ?1 AND name NOT LIKE 'sqlite_%' \
                 ORDER BY rowid",
            )?;
            let v = stmt
                .query_map([kind], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>();
            v
        };
        let mut tables = Vec::new();
        for t in names("table")? {
            let cols = columns(conn, &t)?;
            tables.push((t, cols));
        }
        Ok(Self {
            tables,
            indexes: names("index")?,
        })
    }

    /// What the migrations build, from a fresh in-memory database.
    pub fn expected() -> Result<Self> {
        let mut conn = Connection::open_in_memory()?;
        migrate(&mut conn)?;
        Ok(Self::of(&conn)?)
    }

    /// What `self` lacks that `expected` has: "table claims", "column sessions.kind",
    /// "index touches_at". Extra tables and columns (an older tool's) are fine.
    pub fn missing_from(&self, expected: &Schema) -> Vec<String> {
        let mut out = Vec::new();
        for (t, cols) in &expected.tables {
            match self.tables.iter().find(|(n, _)| n == t) {
                None => out.push(format!("table {t}")),
                Some((_, have)) => out.extend(
                    cols.iter()
                        .filter(|c| !have.contains(c))
                        .map(|c| format!("column {t}.{c}")),
                ),
            }
        }
        out.extend(
            expected
                .indexes
                .iter()
                .filter(|i| !self.indexes.contains(i))
                .map(|i| format!("index {i}")),
        );
        out
    }
}

/// The column names of `table` (none when it does not exist).
pub fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
    let v = stmt
        .query_map([table], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>();
    v
}

/// Step 1 may meet a registry the original orchestrator created: add only missing columns.
fn apply_first(tx: &rusqlite::Transaction<'_>, step: &str) -> Result<()> {
    let existing = columns(tx, "sessions")?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_fits_page_one() -> Result<()> {
        // `repair` reads a truncated file only while sqlite_master is on page 1: once its
        // text outgrows the page, it moves to a page at the end of the file, the first to
        // go. Every table and index has one root page; any page more is the schema's.
        let mut conn = Connection::open_in_memory()?;
        conn.execute_batch(&format!("PRAGMA page_size={PAGE_SIZE}"))?;
        migrate(&mut conn)?;
        let objects: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE rootpage > 0",
            [],
            |r| r.get(0),
        )?;
        let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        assert_eq!(
            pages,
            objects + 1,
            "sqlite_master no longer fits page 1: shorten new column definitions"
        );
        Ok(())
    }

    #[test]
    fn a_dropped_table_or_index_is_missing() -> Result<()> {
        let expected = Schema::expected()?;
        assert!(expected.tables.iter().any(|(t, _)| t == "claims"));
        let mut conn = Connection::open_in_memory()?;
        migrate(&mut conn)?;
        assert_eq!(
            Schema::of(&conn)?.missing_from(&expected),
            Vec::<String>::new()
        );
        conn.execute_batch("DROP TABLE claims; DROP INDEX touches_at;")?;
        assert_eq!(
            Schema::of(&conn)?.missing_from(&expected),
            vec!["table claims".to_string(), "index touches_at".to_string()]
        );
        Ok(())
    }
}
