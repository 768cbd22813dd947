//! The values that cross the store's seam: what a statement binds and a row yields,
//! the same for both engines (SQLite's dynamic types, PostgreSQL's declared ones).

use anyhow::{anyhow, Result};

/// One bound parameter or column value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
}

/// Anything a statement can bind.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}
impl ToValue for i64 {
    fn to_value(&self) -> Value {
        Value::Int(*self)
    }
}
impl ToValue for i32 {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for u32 {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

/// Binds a list of parameters: `args![id, name]` (as rusqlite's `params!`).
#[macro_export]
macro_rules! args {
    () => { &[] as &[&dyn $crate::core::store::db::ToValue] };
    ($($x:expr),+ $(,)?) => { &[$(&$x as &dyn $crate::core::store::db::ToValue),+] as &[&dyn $crate::core::store::db::ToValue] };
}

/// A column value read back as a Rust type.
pub trait FromValue: Sized {
    fn from_value(v: &Value) -> Result<Self>;
}

impl FromValue for Value {
    fn from_value(v: &Value) -> Result<Self> {
        Ok(v.clone())
    }
}
impl FromValue for i64 {
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Int(i) => Ok(*i),
            Value::Text(t) => t
                .parse()
                .map_err(|_| anyhow!("column holds {t:?} where a number belongs")),
            Value::Null => Err(anyhow!("column is NULL where a number belongs")),
        }
    }
}
impl FromValue for i32 {
    fn from_value(v: &Value) -> Result<Self> {
        let i = i64::from_value(v)?;
        i32::try_from(i).map_err(|_| anyhow!("column holds {i}, out of range"))
    }
}
impl FromValue for bool {
    fn from_value(v: &Value) -> Result<Self> {
        Ok(i64::from_value(v)? != 0)
    }
}
impl FromValue for String {
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Text(t) => Ok(t.clone()),
            Value::Int(i) => Ok(i.to_string()),
            Value::Null => Err(anyhow!("column is NULL where text belongs")),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One result row.
#[derive(Debug, Clone, Default)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// Column `i` as `T`; an error names the column when it is missing or of another type.
    pub fn get<T: FromValue>(&self, i: usize) -> Result<T> {
        let v = self
            .0
            .get(i)
            .ok_or_else(|| anyhow!("result has no column {i}"))?;
        T::from_value(v).map_err(|e| e.context(format!("column {i}")))
    }
}
