//! [`super::Conn`] on SQLite: cached prepared statements, values converted at the edge.

use super::{Row, ToValue, Value};
use anyhow::Result;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::Connection;

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Owned(rusqlite::types::Value::Null),
            Value::Int(i) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(*i)),
            Value::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
        })
    }
}

fn bind(args: &[&dyn ToValue]) -> Vec<Value> {
    args.iter().map(|a| a.to_value()).collect()
}

fn value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Int(f as i64),
        ValueRef::Text(t) | ValueRef::Blob(t) => Value::Text(String::from_utf8_lossy(t).into()),
    }
}

pub(super) fn execute(c: &Connection, sql: &str, args: &[&dyn ToValue]) -> Result<usize> {
    let mut stmt = c.prepare_cached(sql)?;
    Ok(stmt.execute(rusqlite::params_from_iter(bind(args)))?)
}

pub(super) fn for_each(
    c: &Connection,
    sql: &str,
    args: &[&dyn ToValue],
    mut f: impl FnMut(&Row) -> Result<bool>,
) -> Result<()> {
    let mut stmt = c.prepare_cached(sql)?;
    let n = stmt.column_count();
    let mut rows = stmt.query(rusqlite::params_from_iter(bind(args)))?;
    while let Some(r) = rows.next()? {
        let row = Row((0..n)
            .map(|i| r.get_ref(i).map(value))
            .collect::<rusqlite::Result<_>>()?);
        if !f(&row)? {
            break;
        }
    }
    Ok(())
}
