//! The store: the one source of truth for sessions, touches and messages — an SQLite
//! file per project by default, or a schema on a shared PostgreSQL server for fleets
//! beyond one machine (`ORCHESTRATOR_DATABASE_URL`). Callers never see SQL or the engine;
//! the engines differ only below [`db::Conn`].

pub mod claims;
pub mod db;
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
use db::Conn;
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
    pub(crate) conn: Conn,
}

impl Store {
    /// Opens (creating if needed) the project's database and brings its schema up to date:
    /// the PostgreSQL one when `ORCHESTRATOR_DATABASE_URL` names a server, else the
    /// project's SQLite file.
    pub fn open(paths: &ProjectPaths) -> Result<Self> {
        if let Some(url) = crate::core::fleet::database_url(paths) {
            paths.ensure_state_dir()?;
            return Self::open_pg(&db::pg::Target {
                url,
                project_id: crate::core::fleet::project_id(paths)?,
            });
        }
        Self::open_sqlite(paths)
    }

    /// Opens (creating if needed) the project's SQLite file, whatever the settings say.
    pub fn open_sqlite(paths: &ProjectPaths) -> Result<Self> {
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

    /// Opens the project's schema on a PostgreSQL server, creating or upgrading it, and
    /// takes the server's clock as this process's (heartbeats are compared across hosts).
    pub fn open_pg(target: &db::pg::Target) -> Result<Self> {
        let settings = crate::core::settings::get();
        let conn = db::pg::PgConn::connect(target, settings.connect_timeout)?;
        let conn = Conn::Pg(Box::new(conn));
        migrations::migrate_pg(&conn, target, busy_timeout())?;
        Ok(Self { conn })
    }

    /// An in-memory store for tests and benches.
    pub fn open_in_memory() -> Result<Self> {
        Self::from_connection(Connection::open_in_memory()?)
    }

    fn from_connection(conn: Connection) -> Result<Self> {
        conn.busy_handler(Some(busy_wait))?;
        // Only a new, empty database takes it: room for the schema on page 1, which is
        // what lets `repair` read a truncated file (see `migrations::PAGE_SIZE`).
        conn.execute_batch(&format!("PRAGMA page_size={}", migrations::PAGE_SIZE))?;
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
        conn.set_prepared_statement_cache_capacity(64);
        let mut conn = conn;
        retry_busy(|| migrations::migrate(&mut conn))?;
        Ok(Self {
            conn: Conn::Sqlite(conn),
        })
    }

    /// Runs `f` inside one immediate transaction, so nothing `f` reads changes before its
    /// writes commit: the write lock is taken first, and two processes checking then
    /// writing (the same exclusive claim, the prime role, a name) run one after the other.
    /// Nested calls join the outer transaction; `f` must not call `end` or `prune`, which
    /// open their own (the `&mut self` ones cannot be called from `f` at all).
    pub fn atomically<T>(&self, f: impl FnOnce(&Self) -> Result<T>) -> Result<T> {
        if self.conn.in_transaction() {
            return f(self);
        }
        let tx = self.conn.begin()?;
        let out = f(self)?;
        tx.commit()?;
        Ok(out)
    }

    /// `PRAGMA quick_check`: "ok" or the first problems found. A PostgreSQL server
    /// checks its own pages; there it is "ok" when the schema answers.
    pub fn quick_check(&self) -> Result<String> {
        let sql = match self.conn {
            Conn::Sqlite(_) => "PRAGMA quick_check",
            Conn::Pg(_) | Conn::Parked(_) => "SELECT 'ok' FROM meta",
        };
        let rows: Vec<String> = self.conn.query_map(sql, crate::args![], |r| r.get(0))?;
        Ok(rows.join("; "))
    }

    /// The schema version this database is at.
    pub fn schema_version(&self) -> Result<i64> {
        match &self.conn {
            Conn::Sqlite(c) => Ok(c.query_row("PRAGMA user_version", [], |r| r.get(0))?),
            Conn::Pg(c) => migrations::pg_version(&self.conn, c.channel()),
            Conn::Parked(t) => migrations::pg_version(&self.conn, &t.schema()),
        }
    }

    /// True on a shared PostgreSQL server (rows of other hosts are expected).
    pub fn is_shared(&self) -> bool {
        matches!(self.conn, Conn::Pg(_) | Conn::Parked(_))
    }

    /// Closes an idle PostgreSQL connection, keeping what it takes to reopen it (the next
    /// [`Store::reconnect_if_broken`]): a long-lived `serve` then holds a server
    /// connection only while it works, not all its life — a fleet's sessions would
    /// otherwise use up the server's `max_connections` (its listener holds one anyway).
    /// One in a transaction is kept. SQLite: nothing.
    pub fn park(&mut self) {
        let target = match &self.conn {
            Conn::Pg(c) if !self.conn.in_transaction() => c.target().clone(),
            _ => return,
        };
        self.conn = Conn::Parked(Box::new(target));
    }

    /// The PostgreSQL connection, for listening to the project's notifications.
    pub fn pg(&self) -> Option<&db::pg::PgConn> {
        self.conn.pg()
    }

    /// Reconnects a shared server's connection that broke (a server restart, a network
    /// outage), so a long-lived `serve` resumes when the server returns. SQLite: nothing.
    pub fn reconnect_if_broken(&mut self) -> Result<()> {
        let target = match &self.conn {
            Conn::Pg(c) if c.is_closed() => c.target().clone(),
            Conn::Parked(t) => (**t).clone(),
            _ => return Ok(()),
        };
        // A store's connection never listens (listeners are `core::changes`'s own).
        *self = Self::open_pg(&target)?;
        Ok(())
    }
}

/// SQLite's busy handler: may the `attempt`-th retry (0-based) of a lock go ahead, after
/// a sleep? Waits in short steps (0.1, 0.2, 0.4, 0.8, 1.6 ms, then 2 ms) until the busy
/// timeout is spent. SQLite's own `busy_timeout` sleeps 1, 2, 5, 10, 15, 20, 25 ms: a hook
/// that meets a sibling's 0.3 ms write would wait 1 ms, and one that meets a longer write
/// (`serve`'s startup hygiene, beside the SessionStart hook) could oversleep its end by
/// up to 25 ms.
fn busy_wait(attempt: i32) -> bool {
    let n = attempt.max(0) as u64;
    if busy_slept_before(n) >= busy_timeout() {
        return false;
    }
    std::thread::sleep(busy_step(n));
    true
}

/// The sleep before retry `n`.
fn busy_step(n: u64) -> Duration {
    Duration::from_micros(if n < 5 { 100 << n } else { 2000 })
}

/// The total slept before retry `n` (closed form of the sum of [`busy_step`]).
fn busy_slept_before(n: u64) -> Duration {
    Duration::from_micros(if n <= 5 {
        100 * ((1 << n) - 1)
    } else {
        3100 + 2000 * (n - 5)
    })
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
    if is_unreachable(&e) || msg.starts_with("PostgreSQL") {
        // A shared server's errors name the server, not this host's file.
        e
    } else if msg.starts_with(&format!("database {}", db.display())) {
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

/// True when `e` says the shared database server could not be reached (or the
/// connection to it broke): an outage, reported by hooks at most once a minute.
pub fn is_unreachable(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| c.downcast_ref::<db::pg::Unreachable>().is_some())
}

/// Wraps a store error the same way for operations after open.
pub fn describe(e: anyhow::Error, paths: &ProjectPaths) -> anyhow::Error {
    explain(e, &paths.db_path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_steps_are_short_and_sum_to_the_closed_form() {
        let mut sum = Duration::ZERO;
        for n in 0..50u64 {
            assert_eq!(busy_slept_before(n), sum, "before retry {n}");
            assert!(busy_step(n) <= Duration::from_millis(2));
            sum += busy_step(n);
        }
        assert_eq!(busy_step(0), Duration::from_micros(100));
        // The default 5 s timeout gives up after about 2,500 short retries.
        let last = (0..10_000u64)
            .find(|&n| busy_slept_before(n) >= BUSY_TIMEOUT)
            .expect("ends");
        assert!((2_400..2_600).contains(&last), "{last}");
    }
}
