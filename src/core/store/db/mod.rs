//! The store's seam: one connection type over two engines. Every store operation is
//! written once, in SQL both engines run, against [`Conn`]; the invariants (one row per
//! agent process, one winner per exclusive claim, one prime, exactly-once delivery) live
//! in those operations' transactions, so both engines keep them the same way.
//!
//! - SQLite (the default): one file per project; a transaction takes the database's
//!   write lock first (`BEGIN IMMEDIATE`).
//! - PostgreSQL (`ORCHESTRATOR_DATABASE_URL`): one schema per project on a shared
//!   server; a transaction takes the project's advisory lock first, which orders writers
//!   exactly as SQLite's write lock does.

pub mod pg;
mod sqlite;
mod value;

pub use value::{FromValue, Row, ToValue, Value};

use anyhow::{anyhow, Result};
use std::cell::Cell;

/// An open connection to either engine.
pub enum Conn {
    Sqlite(rusqlite::Connection),
    Pg(Box<pg::PgConn>),
    /// A PostgreSQL connection closed while idle (`Store::park`): every statement fails
    /// until `Store::reconnect_if_broken` opens it again.
    Parked(Box<pg::Target>),
}

/// What a statement on a parked connection says.
fn parked() -> anyhow::Error {
    anyhow::Error::new(pg::Unreachable(
        "not connected to the database server (closed while idle, or the server is away); reconnected on the next use".into(),
    ))
}

impl Conn {
    /// Runs one statement; returns the rows it changed.
    pub fn execute(&self, sql: &str, args: &[&dyn ToValue]) -> Result<usize> {
        match self {
            Conn::Sqlite(c) => sqlite::execute(c, sql, args),
            Conn::Pg(c) => c.execute(sql, args),
            Conn::Parked(_) => Err(parked()),
        }
    }

    /// Every row of one query, each mapped by `f`.
    pub fn query_map<T>(
        &self,
        sql: &str,
        args: &[&dyn ToValue],
        mut f: impl FnMut(&Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.for_each(sql, args, |r| {
            out.push(f(r)?);
            Ok(true)
        })?;
        Ok(out)
    }

    /// Visits rows until `f` returns false.
    pub fn for_each(
        &self,
        sql: &str,
        args: &[&dyn ToValue],
        f: impl FnMut(&Row) -> Result<bool>,
    ) -> Result<()> {
        match self {
            Conn::Sqlite(c) => sqlite::for_each(c, sql, args, f),
            Conn::Pg(c) => c.for_each(sql, args, f),
            Conn::Parked(_) => Err(parked()),
        }
    }

    /// The first row, or `None`.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        args: &[&dyn ToValue],
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut first = None;
        self.for_each(sql, args, |r| {
            first = Some(r.clone());
            Ok(false)
        })?;
        first.as_ref().map(f).transpose()
    }

    /// The first row; an error when there is none.
    pub fn query_row<T>(
        &self,
        sql: &str,
        args: &[&dyn ToValue],
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<T> {
        self.query_opt(sql, args, f)?
            .ok_or_else(|| anyhow!("query returned no row"))
    }

    /// Runs statements separated by `;`, with no parameters.
    pub fn batch(&self, sql: &str) -> Result<()> {
        match self {
            Conn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Conn::Pg(c) => c.batch(sql),
            Conn::Parked(_) => Err(parked()),
        }
    }

    /// True inside a transaction [`Conn::begin`] opened.
    pub fn in_transaction(&self) -> bool {
        match self {
            Conn::Sqlite(c) => !c.is_autocommit(),
            Conn::Pg(c) => c.in_tx.get(),
            Conn::Parked(_) => false,
        }
    }

    /// Opens a transaction that holds the writers' lock from its first statement: what it
    /// reads cannot change before it commits.
    pub fn begin(&self) -> Result<Tx<'_>> {
        match self {
            Conn::Sqlite(c) => c.execute_batch("BEGIN IMMEDIATE")?,
            Conn::Pg(c) => c.begin()?,
            Conn::Parked(_) => return Err(parked()),
        }
        Ok(Tx {
            conn: self,
            open: Cell::new(true),
        })
    }

    /// Tells listeners (`serve`, `watch`, waiters) that something for them changed. SQLite
    /// needs nothing: they watch the database file. On PostgreSQL it is a `NOTIFY`, sent
    /// when the surrounding transaction commits.
    pub fn notify(&self) -> Result<()> {
        match self {
            Conn::Sqlite(_) => Ok(()),
            Conn::Pg(c) => c.notify(),
            Conn::Parked(_) => Err(parked()),
        }
    }

    /// The SQLite connection, for what only SQLite has (repair, quick_check).
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Conn::Sqlite(c) => Some(c),
            Conn::Pg(_) | Conn::Parked(_) => None,
        }
    }

    /// The SQLite connection to change by hand (repair).
    pub fn sqlite_mut(&mut self) -> Result<&mut rusqlite::Connection> {
        match self {
            Conn::Sqlite(c) => Ok(c),
            Conn::Pg(_) | Conn::Parked(_) => {
                Err(anyhow!("only an SQLite store is repaired by hand"))
            }
        }
    }

    /// The PostgreSQL connection, when that is the engine.
    pub fn pg(&self) -> Option<&pg::PgConn> {
        match self {
            Conn::Sqlite(_) | Conn::Parked(_) => None,
            Conn::Pg(c) => Some(c),
        }
    }
}

/// An open transaction; rolled back when dropped uncommitted.
pub struct Tx<'a> {
    conn: &'a Conn,
    open: Cell<bool>,
}

impl Tx<'_> {
    pub fn commit(self) -> Result<()> {
        self.open.set(false);
        match self.conn {
            Conn::Sqlite(c) => Ok(c.execute_batch("COMMIT")?),
            Conn::Pg(c) => c.end("COMMIT"),
            Conn::Parked(_) => Err(parked()),
        }
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open.get() {
            // Best effort: a failed rollback leaves a connection nobody uses again.
            let _ = match self.conn {
                Conn::Sqlite(c) => c.execute_batch("ROLLBACK").map_err(anyhow::Error::from),
                Conn::Pg(c) => c.end("ROLLBACK"),
                Conn::Parked(_) => Ok(()),
            };
        }
    }
}
