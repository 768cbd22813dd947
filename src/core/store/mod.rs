//! The SQLite store: the one source of truth for sessions, touches and messages.
//!
//! Kept behind this narrow type so another backend (PostgreSQL for multi-host fleets) can
//! replace it; callers never see SQL.

pub mod claims;
pub mod messages;
mod migrations;
pub mod repair;
pub mod retention;
pub mod sessions;
pub mod touches;
pub mod wake;

use crate::core::paths::ProjectPaths;
use crate::core::private_fs;
use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

pub use sessions::{Carried, ForeignSession, Registered, Registration, SessionRow};

/// How long a writer waits for another writer before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// `ORCHESTRATOR_BUSY_TIMEOUT_MS` (see `settings`) overrides [`BUSY_TIMEOUT`].
pub fn busy_timeout() -> Duration {
    crate::core::settings::get().busy_timeout
}

/// An open store; one connection, used from one thread at a time.
pub struct Store {
    pub(crate) conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the project's database and brings its schema up to date.
    pub fn open(paths: &ProjectPaths) -> Result<Self> {
        paths.ensure_state_dir()?;
        private_fs::ensure_dir(&paths.db_dir())?;
        let db = paths.db_path();
        // Created here 0600 so SQLite gives its -wal and -shm the same mode; an existing
        // one is checked (no symlink, regular) and narrowed, and so are its companions.
        private_fs::ensure_file(&db, b"")?;
        for companion in paths.db_companions() {
            private_fs::secure_existing(&companion)?;
        }
        let conn = Connection::open_with_flags(
            &db,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NOFOLLOW
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open database {}", db.display()))?;
        Self::from_connection(conn).map_err(|e| explain(e, &db))
    }

    /// An in-memory store for tests and benches.
    pub fn open_in_memory() -> Result<Self> {
        Self::from_connection(Connection::open_in_memory()?)
    }

    fn from_connection(conn: Connection) -> Result<Self> {
        conn.busy_timeout(busy_timeout())?;
        // WAL persists in the file, so only the creator switches it. Switching (and the
        // first migration) can meet SQLITE_BUSY without the busy handler being invoked
        // when many processes create the database at once: retry those by hand.
        retry_busy(|| {
            let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))?;
            }
            Ok(())
        })?;
        // A small auto-checkpoint keeps the WAL short, because a process that finds no
        // other connection open must re-read (checksum) the whole WAL before its first read.
        conn.execute_batch(
            "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA wal_autocheckpoint=200;",
        )?;
        // Hooks are short-lived processes, usually the only connection: without this,
        // every exit would checkpoint (fsync) and delete the WAL, and the next hook would
        // recreate it. Writers' auto-checkpoints keep the WAL bounded instead.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )?;
        let mut store = Self { conn };
        retry_busy(|| migrations::migrate(&mut store.conn))?;
        Ok(store)
    }

    /// `PRAGMA quick_check`: "ok" or the first problems found.
    pub fn quick_check(&self) -> Result<String> {
        let mut stmt = self.conn.prepare("PRAGMA quick_check")?;
        let rows: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows.join("; "))
    }

    /// The schema version this database is at.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }
}

/// Retries `f` while SQLite reports the database busy or locked, up to the busy timeout.
fn retry_busy<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let deadline = std::time::Instant::now() + busy_timeout();
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) => {
                let busy = e.downcast_ref::<rusqlite::Error>().is_some_and(|se| {
                    matches!(
                        se.sqlite_error_code(),
                        Some(
                            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                        )
                    )
                });
                if !busy || std::time::Instant::now() >= deadline {
                    return Err(e);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// Turns SQLite's terse errors into one line that names the file and the fix.
fn explain(e: anyhow::Error, db: &Path) -> anyhow::Error {
    let msg = format!("{e:#}");
    if msg.starts_with(&format!("database {}", db.display())) {
        // Already explained.
        e
    } else if repair::is_damage(&e) {
        anyhow::anyhow!(
            "database {} is corrupt ({msg}); run `orchestrator repair` (keeps a .bak copy and \
             what it can still read)",
            db.display()
        )
    } else if msg.contains("locked") || msg.contains("busy") {
        anyhow::anyhow!(
            "database {} stayed locked for {} ms ({msg}); another process holds a write lock: retry, \
             and if it persists run `orchestrator doctor`",
            db.display(),
            busy_timeout().as_millis()
        )
    } else if msg.contains("readonly") || msg.contains("read-only") {
        anyhow::anyhow!(
            "database {} is read-only ({msg}); make the state dir writable",
            db.display()
        )
    } else if names_a_state_path(&msg, db) || msg.starts_with("cannot ") {
        e
    } else {
        anyhow::anyhow!("database {}: {msg}", db.display())
    }
}

/// True when `msg` already names a path under the state dir (it says which file).
fn names_a_state_path(msg: &str, db: &Path) -> bool {
    db.parent()
        .and_then(Path::parent)
        .is_some_and(|state_dir| msg.contains(&state_dir.display().to_string()))
}

/// Wraps a store error the same way for operations after open.
pub fn describe(e: anyhow::Error, paths: &ProjectPaths) -> anyhow::Error {
    explain(e, &paths.db_path())
}
