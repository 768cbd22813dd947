//! A damaged database (truncated, garbage pages, a dropped table) would otherwise turn the
//! tool off for good: every hook fails on it. `diagnose` finds the damage (for `doctor`
//! and `repair`); `repair` moves the damaged files aside and rebuilds, copying over every
//! row it can still read.

use super::migrations::{self, Schema};
use super::{busy_timeout, Store};
use crate::core::clock;
use crate::core::paths::ProjectPaths;
use anyhow::{Context, Result};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::path::PathBuf;

/// What state the project's database is in.
pub enum Diagnosis {
    /// No database yet.
    Missing,
    Healthy(Store),
    /// Opens, but fails its checks: what is wrong, one item each.
    Damaged(Vec<String>),
    /// Does not open at all because it is damaged.
    Unopenable(anyhow::Error),
    /// Does not open for another reason (locked, read-only, a symlink): not ours to fix.
    Unusable(anyhow::Error),
}

/// True when `e` says the file's contents are broken (not a lock or a permission).
pub fn is_damage(e: &anyhow::Error) -> bool {
    use rusqlite::ErrorCode as C;
    let code = e
        .chain()
        .find_map(|c| c.downcast_ref::<rusqlite::Error>())
        .and_then(|se| se.sqlite_error_code());
    let msg = format!("{e:#}");
    matches!(code, Some(C::DatabaseCorrupt | C::NotADatabase))
        || [
            "not a database",
            "malformed",
            "no such table",
            "no such column",
        ]
        .iter()
        .any(|m| msg.contains(m))
}

/// Opens the database and checks it: `quick_check`, and every table, column and index
/// the migrations create. Never creates a database that is not there.
pub fn diagnose(paths: &ProjectPaths) -> Diagnosis {
    let shared = crate::core::fleet::database_url(paths).is_some();
    if !shared && std::fs::symlink_metadata(paths.db_path()).is_err() {
        return Diagnosis::Missing;
    }
    let store = match Store::open(paths) {
        Ok(s) => s,
        Err(e) if is_damage(&e) => return Diagnosis::Unopenable(e),
        Err(e) => return Diagnosis::Unusable(e),
    };
    let damage = store.damage();
    if damage.is_empty() {
        Diagnosis::Healthy(store)
    } else {
        Diagnosis::Damaged(damage)
    }
}

impl Store {
    /// What is wrong with this database's contents; empty when nothing is.
    pub fn damage(&self) -> Vec<String> {
        let mut out = Vec::new();
        match self.quick_check() {
            Ok(r) if r == "ok" => {}
            Ok(r) => out.push(format!("quick_check: {}", first_chars(&r, 300))),
            Err(e) => out.push(format!("quick_check failed: {e:#}")),
        }
        let Some(conn) = self.conn.sqlite() else {
            return out; // A PostgreSQL server checks its own pages.
        };
        let expected = Schema::expected();
        match (Schema::of(conn), expected) {
            (Ok(have), Ok(want)) => {
                let missing = have.missing_from(&want);
                if !missing.is_empty() {
                    out.push(format!("schema lacks {}", missing.join(", ")));
                }
            }
            (Err(e), _) => out.push(format!("schema unreadable: {e}")),
            (_, Err(e)) => out.push(format!("cannot build the expected schema: {e:#}")),
        }
        out
    }
}

fn first_chars(s: &str, n: usize) -> String {
    let mut t: String = s.chars().take(n).collect();
    if t.len() < s.len() {
        t.push('…');
    }
    t
}

/// What a repair did.
#[derive(Debug)]
pub struct Repaired {
    /// Where the damaged database directory (the file with its -wal and -shm) now is.
    pub backup: PathBuf,
    /// Per table, in creation order.
    pub tables: Vec<Copied>,
}

/// What was copied from one table of the damaged file.
#[derive(Debug, Default)]
pub struct Copied {
    pub table: String,
    /// Absent (dropped, or the schema itself unreadable): nothing to copy.
    pub missing: bool,
    pub copied: usize,
    /// Rows seen but unreadable, or refused by the fresh schema (e.g. a delivery whose
    /// message was lost).
    pub skipped: usize,
    /// A scan stopped at an unreadable page: rows stored there were not even seen.
    pub pages_lost: bool,
}

/// Moves the database directory aside (one rename: the file, -wal and -shm stay together
/// and no process can open a mix of old and new), opens a fresh database and copies every
/// readable row of every known table into it.
pub fn repair(paths: &ProjectPaths) -> Result<Repaired> {
    let dir = paths.db_dir();
    let backup = backup_name(paths);
    std::fs::rename(&dir, &backup).with_context(|| {
        format!(
            "cannot move {} aside to {}: check that the state dir is writable",
            dir.display(),
            backup.display()
        )
    })?;
    let mut fresh = Store::open_sqlite(paths)?;
    let old_db = backup.join(
        paths
            .db_path()
            .file_name()
            .context("database path has no file name")?,
    );
    let old = Connection::open_with_flags(
        &old_db,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NOFOLLOW
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    );
    if let Ok(old) = &old {
        let _ = old.busy_timeout(busy_timeout());
        // writable_schema lets SQLite read a file shorter than its header says (a
        // truncated one) instead of refusing it whole; query_only keeps the copy untouched.
        let _ = old.execute_batch("PRAGMA writable_schema=ON; PRAGMA query_only=ON;");
    }
    let want = Schema::expected()?;
    let mut tables = Vec::new();
    for (table, cols) in &want.tables {
        let c = match &old {
            Ok(old) => copy_table(old, fresh.conn.sqlite_mut()?, table, cols)?,
            Err(_) => Copied {
                table: table.clone(),
                missing: true,
                ..Copied::default()
            },
        };
        tables.push(c);
    }
    Ok(Repaired { backup, tables })
}

/// `agent-channel.<UTC stamp>.bak` beside the database directory, never an existing name.
fn backup_name(paths: &ProjectPaths) -> PathBuf {
    let stamp: String = clock::iso(clock::now_ms())
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let base = paths
        .db_dir()
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "agent-channel".into());
    let mut n = 1;
    loop {
        let suffix = if n == 1 {
            String::new()
        } else {
            format!("-{n}")
        };
        let p = paths.state_dir.join(format!("{base}.{stamp}{suffix}.bak"));
        if std::fs::symlink_metadata(&p).is_err() {
            return p;
        }
        n += 1;
    }
}

/// Copies `table` row by row: rowids from a forward and a backward scan (so rows after an
/// unreadable page are still found), then each row fetched alone, so one bad row costs
/// only itself. Columns are those both sides have.
fn copy_table(
    old: &Connection,
    new: &mut Connection,
    table: &str,
    want: &[String],
) -> Result<Copied> {
    let mut out = Copied {
        table: table.to_string(),
        ..Copied::default()
    };
    let have = migrations::columns(old, table).unwrap_or_default();
    let cols: Vec<&String> = want.iter().filter(|c| have.contains(c)).collect();
    if cols.is_empty() {
        out.missing = true;
        return Ok(out);
    }
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let list = cols.iter().map(|c| q(c)).collect::<Vec<_>>().join(", ");
    let mut rowids = std::collections::BTreeSet::new();
    for order in ["ASC", "DESC"] {
        let scan = old.prepare(&format!(
            "SELECT rowid FROM {} ORDER BY rowid {order}",
            q(table)
        ));
        let Ok(mut scan) = scan else {
            out.pages_lost = true;
            continue;
        };
        let Ok(mut rows) = scan.query([]) else {
            out.pages_lost = true;
            continue;
        };
        loop {
            match rows.next() {
                Ok(Some(r)) => match r.get::<_, i64>(0) {
                    // The backward scan stops where the forward one already reached.
                    Ok(id) if !rowids.insert(id) && order == "DESC" => break,
                    Ok(_) => {}
                    Err(_) => out.skipped += 1,
                },
                Ok(None) => break,
                Err(_) => {
                    out.pages_lost = true;
                    break;
                }
            }
        }
        if !out.pages_lost {
            break;
        }
    }
    let fetch = old.prepare(&format!("SELECT {list} FROM {} WHERE rowid = ?1", q(table)));
    let Ok(mut fetch) = fetch else {
        out.skipped += rowids.len();
        return Ok(out);
    };
    let tx = new.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let placeholders = vec!["?"; cols.len()].join(", ");
        let mut insert = tx.prepare(&format!(
            "INSERT OR IGNORE INTO {} ({list}) VALUES ({placeholders})",
            q(table)
        ))?;
        for id in &rowids {
            let row: rusqlite::Result<Vec<Value>> = fetch.query_row([id], |r| {
                (0..cols.len()).map(|i| r.get::<_, Value>(i)).collect()
            });
            match row.map(|v| insert.execute(rusqlite::params_from_iter(v))) {
                Ok(Ok(1)) => out.copied += 1,
                // 0: already there (a hook recreated it meanwhile); kept as it is.
                Ok(Ok(_)) => {}
                _ => out.skipped += 1,
            }
        }
    }
    tx.commit()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_table_is_damage_and_repair_keeps_the_rest() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let paths = ProjectPaths::from_root(tmp.path())?;
        {
            let s = Store::open(&paths)?;
            s.conn.batch(
                "PRAGMA foreign_keys=OFF;
                 INSERT INTO messages (id, sender_id, address, body, created_at_ms)
                     VALUES (7, 'human', '@all', 'hello', 1);
                 INSERT INTO deliveries (message_id, recipient_id, queued_at_ms)
                     VALUES (7, 'abc', 1), (99, 'abc', 1);
                 DROP TABLE claims;",
            )?;
        }
        match diagnose(&paths) {
            Diagnosis::Damaged(d) => assert!(d.join(" ").contains("table claims"), "{d:?}"),
            _ => panic!("a dropped table is damage"),
        }
        let r = repair(&paths)?;
        assert!(r.backup.join("agent_channel.db").is_file());
        let by = |t: &str| r.tables.iter().find(|c| c.table == t);
        assert!(by("claims").is_some_and(|c| c.missing));
        assert_eq!(by("messages").map(|c| c.copied), Some(1));
        // The delivery of a message that does not exist is refused by the foreign key.
        assert_eq!(
            by("deliveries").map(|c| (c.copied, c.skipped)),
            Some((1, 1))
        );
        assert!(matches!(diagnose(&paths), Diagnosis::Healthy(_)));
        Ok(())
    }
}
