//! [`super::Conn`] on PostgreSQL, for fleets beyond one machine.
//!
//! One schema per project (`orch_<id>_<hash>`, chosen in the startup packet, so it costs
//! no round trip); writers of a project are ordered by one advisory lock, taken by every
//! transaction first, as SQLite's write lock orders them; `NOTIFY` on the schema's name
//! stands in for watching the database file.
//!
//! The connection is driven on its own thread, so statements can be awaited from any
//! context — a hook's plain `main` as well as `serve`'s async tasks — by blocking on the
//! client's futures, which need no runtime of their own.

use super::{Row, ToValue, Value};
use anyhow::{anyhow, bail, Context, Result};
use bytes::BytesMut;
use std::cell::Cell;
use std::sync::mpsc;
use std::time::Duration;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use tokio_postgres::{AsyncMessage, Client, Config, NoTls};

/// Where a project lives on a server: the URL and the project's identity.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub project_id: String,
}

impl Target {
    /// The schema holding this project's tables: readable prefix, then a hash so two ids
    /// that sanitize alike stay apart.
    pub fn schema(&self) -> String {
        let readable: String = self
            .project_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(24)
            .collect();
        format!("orch_{readable}_{:016x}", fnv64(&self.project_id))
    }

    /// The advisory lock that orders this project's writers.
    pub fn lock_key(&self) -> i64 {
        fnv64(&self.project_id) as i64
    }
}

/// tokio-postgres's keepalive idle time when the URL names none (libpq's too).
const DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

/// FNV-1a: stable across builds and hosts (std's hasher is not).
fn fnv64(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `postgres://user:secret@host/db` with the password hidden, for anything printed.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, tail) = match rest.find('@') {
        Some(at) if !rest[..at].contains('/') => (&rest[..at], &rest[at..]),
        _ => ("", rest),
    };
    let auth = match auth.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => auth.to_string(),
    };
    // `password=` in the query string too.
    let tail: String = match tail.split_once('?') {
        Some((head, q)) => {
            let q: Vec<String> = q
                .split('&')
                .map(|kv| {
                    if kv.to_ascii_lowercase().starts_with("password=") {
                        "password=***".to_string()
                    } else {
                        kv.to_string()
                    }
                })
                .collect();
            format!("{head}?{}", q.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{auth}{tail}")
}

/// An open connection to the project's schema.
pub struct PgConn {
    /// Dropped by hand in `Drop`, before waiting for the connection thread to finish.
    client: std::mem::ManuallyDrop<Client>,
    pub(super) in_tx: Cell<bool>,
    lock_key: i64,
    channel: String,
    target: Target,
    listening: Cell<bool>,
    notes: mpsc::Receiver<()>,
    done: mpsc::Receiver<()>,
}

impl PgConn {
    /// Connects to `target` within `timeout`. The session settings (the project's schema,
    /// how long a writer waits for another) are set by the first statement, not the
    /// startup packet, so a pooler in session mode can stand between (see
    /// `migrations::migrate_pg`).
    pub fn connect(target: &Target, timeout: Duration) -> Result<Self> {
        Self::connect_with(target, timeout, |_| {})
    }

    /// A connection that only listens for the project's notifications (see
    /// `core::changes`); it needs no session settings. It sends nothing while it waits,
    /// so a peer that vanished without closing the socket (a host or network gone) would
    /// go unnoticed for hours: TCP keepalives, unless the URL sets its own, report it
    /// within about a minute.
    pub fn listener(target: &Target, timeout: Duration) -> Result<Self> {
        let conn = Self::connect_with(target, timeout, |config| {
            if config.get_keepalives() && config.get_keepalives_idle() == DEFAULT_KEEPALIVES_IDLE {
                config
                    .keepalives_idle(Duration::from_secs(30))
                    .keepalives_interval(Duration::from_secs(10))
                    .keepalives_retries(3);
            }
        })?;
        conn.listen()?;
        Ok(conn)
    }

    fn connect_with(
        target: &Target,
        timeout: Duration,
        tune: impl FnOnce(&mut Config),
    ) -> Result<Self> {
        let (url, tls) = tls_of(&target.url)?;
        let mut config: Config = url.parse().with_context(|| {
            format!(
                "ORCHESTRATOR_DATABASE_URL {} is not a PostgreSQL URL; use \
                 postgres://user:password@host:port/database",
                redact(&target.url)
            )
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(timeout);
        }
        let schema = target.schema();
        if config.get_application_name().is_none() {
            config.application_name("orchestrator");
        }
        tune(&mut config);
        let (client_tx, client_rx) = mpsc::channel();
        let (note_tx, notes) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        std::thread::Builder::new()
            .name("postgres".into())
            .spawn(move || drive(config, tls, client_tx, note_tx, done_tx))
            .context("cannot start the database connection thread")?;
        let client = client_rx
            .recv()
            .map_err(|_| anyhow!("the database connection thread ended"))?
            .map_err(|e| unreachable_error(e, &target.url))?;
        Ok(Self {
            client: std::mem::ManuallyDrop::new(client),
            in_tx: Cell::new(false),
            lock_key: target.lock_key(),
            channel: schema,
            target: target.clone(),
            listening: Cell::new(false),
            notes,
            done,
        })
    }

    pub(super) fn execute(&self, sql: &str, args: &[&dyn ToValue]) -> Result<usize> {
        let vals: Vec<Value> = args.iter().map(|a| a.to_value()).collect();
        let typed = typed(&vals);
        Ok(
            block(self.client.execute_typed(&placeholders(sql), &typed)).map_err(pg_error)?
                as usize,
        )
    }

    pub(super) fn for_each(
        &self,
        sql: &str,
        args: &[&dyn ToValue],
        mut f: impl FnMut(&Row) -> Result<bool>,
    ) -> Result<()> {
        let vals: Vec<Value> = args.iter().map(|a| a.to_value()).collect();
        let typed = typed(&vals);
        let rows = block(self.client.query_typed(&placeholders(sql), &typed)).map_err(pg_error)?;
        for r in rows {
            let row = Row((0..r.len())
                .map(|i| r.try_get::<_, Value>(i))
                .collect::<std::result::Result<_, _>>()
                .map_err(pg_error)?);
            if !f(&row)? {
                break;
            }
        }
        Ok(())
    }

    pub(super) fn batch(&self, sql: &str) -> Result<()> {
        block(self.client.batch_execute(sql)).map_err(pg_error)
    }

    /// `BEGIN` and the project's advisory lock, in one round trip. When the lock is not
    /// had (`lock_timeout`), the transaction `BEGIN` opened is rolled back here: no `Tx`
    /// exists yet to do it, and a connection left in an aborted transaction refuses
    /// every later statement (a long-lived `serve` would never heartbeat again).
    pub(super) fn begin(&self) -> Result<()> {
        if let Err(e) = self.batch(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({})",
            self.lock_key
        )) {
            // Best effort: on a lost connection there is nothing to roll back.
            let _ = self.batch("ROLLBACK");
            return Err(e);
        }
        self.in_tx.set(true);
        Ok(())
    }

    pub(super) fn end(&self, how: &str) -> Result<()> {
        self.in_tx.set(false);
        self.batch(how)
    }

    pub(super) fn notify(&self) -> Result<()> {
        self.execute("SELECT pg_notify(?1, '')", crate::args![self.channel])?;
        Ok(())
    }

    /// Starts listening for the project's notifications; [`PgConn::wait`] then returns
    /// when one arrives.
    pub fn listen(&self) -> Result<()> {
        self.batch(&format!("LISTEN {}", self.channel))?;
        self.listening.set(true);
        Ok(())
    }

    /// Whether [`PgConn::listen`] was called on this connection.
    pub fn is_listening(&self) -> bool {
        self.listening.get()
    }

    /// True when the connection to the server is gone (reopen the store).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// What this connection was opened for.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Waits up to `timeout` for a notification (after [`PgConn::listen`]); true when one
    /// came. Consumes every one already queued. Errors when the connection is gone.
    pub fn wait(&self, timeout: Duration) -> Result<bool> {
        let got = match self.notes.recv_timeout(timeout) {
            Ok(()) => true,
            Err(mpsc::RecvTimeoutError::Timeout) => false,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                bail!("the database connection closed; it is reopened on the next try")
            }
        };
        while self.notes.try_recv().is_ok() {}
        Ok(got)
    }

    /// The schema (and notification channel) of this project.
    pub fn channel(&self) -> &str {
        &self.channel
    }
}

impl Drop for PgConn {
    fn drop(&mut self) {
        // SAFETY: `client` is not used again: this is `drop`, and the field is never read
        // after this line.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.client) };
        // Dropping the client ends the connection with a Terminate message; wait briefly
        // for it so the server does not log an abrupt end of every hook's connection.
        let _ = self.done.recv_timeout(Duration::from_millis(100));
    }
}

/// How to secure the connection: `sslmode=require`, `verify-ca` or `verify-full` in the URL
/// turn TLS on, verified (chain and host name) against `sslrootcert=FILE` or else the
/// system's roots — stricter than libpq's `require`, on purpose: credentials cross the
/// network. Anything else (libpq's default `prefer`, `disable`, a Unix socket) is plain.
pub enum Tls {
    Plain,
    Verified(tokio_postgres_rustls::MakeRustlsConnect),
}

/// Splits the TLS options tokio-postgres does not parse off `url`, and builds the TLS
/// connector they ask for.
fn tls_of(url: &str) -> Result<(String, Tls)> {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, q),
        None => return Ok((url.to_string(), Tls::Plain)),
    };
    let mut keep = Vec::new();
    let mut root: Option<String> = None;
    let mut verify = false;
    for kv in query.split('&') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match (k, v) {
            ("sslrootcert", path) => root = Some(path.to_string()),
            ("sslmode", "require" | "verify-ca" | "verify-full") => {
                verify = true;
                keep.push("sslmode=require".to_string());
            }
            _ => keep.push(kv.to_string()),
        }
    }
    let url = if keep.is_empty() {
        head.to_string()
    } else {
        format!("{head}?{}", keep.join("&"))
    };
    if !verify {
        return Ok((url, Tls::Plain));
    }
    let mut roots = rustls::RootCertStore::empty();
    match root {
        Some(path) => {
            use rustls::pki_types::{pem::PemObject, CertificateDer};
            let certs = CertificateDer::pem_file_iter(&path).map_err(|e| {
                anyhow!("sslrootcert {path}: {e}; give a PEM file of CA certificates")
            })?;
            for cert in certs {
                let cert = cert.map_err(|e| anyhow!("sslrootcert {path}: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| anyhow!("sslrootcert {path}: {e}"))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    if roots.is_empty() {
        bail!("no CA certificates to verify the server with; add sslrootcert=FILE to the URL");
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((
        url,
        Tls::Verified(tokio_postgres_rustls::MakeRustlsConnect::new(config)),
    ))
}

/// Runs the connection on this thread until the client is dropped or the socket fails,
/// forwarding notifications.
fn drive(
    config: Config,
    tls: Tls,
    client_tx: mpsc::Sender<std::result::Result<Client, tokio_postgres::Error>>,
    note_tx: mpsc::Sender<()>,
    done_tx: mpsc::Sender<()>,
) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return; // client_tx dropped: connect reports the thread ended.
    };
    rt.block_on(async move {
        match tls {
            Tls::Plain => run(config, NoTls, client_tx, note_tx).await,
            Tls::Verified(t) => run(config, t, client_tx, note_tx).await,
        }
    });
    let _ = done_tx.send(());
}

async fn run<T>(
    config: Config,
    tls: T,
    client_tx: mpsc::Sender<std::result::Result<Client, tokio_postgres::Error>>,
    note_tx: mpsc::Sender<()>,
) where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send,
{
    let (client, mut conn) = match config.connect(tls).await {
        Ok(pair) => pair,
        Err(e) => {
            let _ = client_tx.send(Err(e));
            return;
        }
    };
    if client_tx.send(Ok(client)).is_err() {
        return;
    }
    while let Some(msg) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
        match msg {
            Ok(AsyncMessage::Notification(_)) => {
                let _ = note_tx.send(());
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
}

/// Parameters with their types stated, so a statement costs one round trip (parse, bind
/// and execute together) instead of a prepare first: hooks are short processes that run
/// each statement once. NULL goes as `unknown`, which the server fits to its column.
fn typed(vals: &[Value]) -> Vec<(&(dyn ToSql + Sync), Type)> {
    vals.iter()
        .map(|v| {
            let ty = match v {
                Value::Int(_) => Type::INT8,
                Value::Text(_) => Type::TEXT,
                Value::Null => Type::UNKNOWN,
            };
            (v as &(dyn ToSql + Sync), ty)
        })
        .collect()
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}

/// `?1` → `$1` outside string literals: the store's SQL is written once, in SQLite's
/// numbered form.
fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut in_literal = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            in_literal = !in_literal;
        }
        if c == '?' && !in_literal && chars.peek().is_some_and(|n| n.is_ascii_digit()) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

/// The server's message, with its code, instead of tokio-postgres's "db error".
fn pg_error(e: tokio_postgres::Error) -> anyhow::Error {
    match e.as_db_error() {
        Some(db) => anyhow!(
            "PostgreSQL: {} ({}){}",
            db.message(),
            db.code().code(),
            db.detail().map(|d| format!(": {d}")).unwrap_or_default()
        ),
        None => anyhow::Error::new(Unreachable(format!(
            "PostgreSQL connection lost: {e}; it is reopened on the next try"
        ))),
    }
}

/// A failed connect, named with the redacted URL and what to check.
fn unreachable_error(e: tokio_postgres::Error, url: &str) -> anyhow::Error {
    let why = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(inner) = src {
                s.push_str(&format!(": {inner}"));
                src = inner.source();
            }
            s
        }
    };
    anyhow::Error::new(Unreachable(format!(
        "database {} unreachable: {why}; check the server and ORCHESTRATOR_DATABASE_URL \
         (`orchestrator doctor` says more)",
        redact(url)
    )))
}

/// The database server could not be reached (hooks say so at most once a minute).
#[derive(Debug)]
pub struct Unreachable(pub String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreachable {}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> std::result::Result<IsNull, BoxError> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                _ => i.to_string().as_str().to_sql(ty, out),
            },
            Value::Text(t) => match *ty {
                Type::INT8 => t.parse::<i64>()?.to_sql(ty, out),
                Type::INT4 => t.parse::<i32>()?.to_sql(ty, out),
                // PostgreSQL text cannot hold NUL; SQLite can. Keep the rest of the value.
                _ if t.contains('\0') => t.replace('\0', "\u{FFFD}").as_str().to_sql(ty, out),
                _ => t.as_str().to_sql(ty, out),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> std::result::Result<Self, BoxError> {
        Ok(match *ty {
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i64::from(i32::from_sql(ty, raw)?)),
            Type::INT2 => Value::Int(i64::from(i16::from_sql(ty, raw)?)),
            Type::BOOL => Value::Int(i64::from(bool::from_sql(ty, raw)?)),
            _ => Value::Text(String::from_utf8_lossy(raw).into_owned()),
        })
    }

    fn from_sql_null(_: &Type) -> std::result::Result<Self, BoxError> {
        Ok(Value::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_dollars_outside_literals() {
        assert_eq!(
            placeholders("SELECT ?1, '?2' FROM t WHERE a=?12 AND b='x?3'"),
            "SELECT $1, '?2' FROM t WHERE a=$12 AND b='x?3'"
        );
    }

    #[test]
    fn passwords_never_print() {
        assert_eq!(
            redact("postgres://orch:s3cret@db.example:5432/fleet?sslmode=require"),
            "postgres://orch:***@db.example:5432/fleet?sslmode=require"
        );
        assert_eq!(
            redact("postgresql:///fleet?host=/run/pg&password=s3cret"),
            "postgresql:///fleet?host=/run/pg&password=***"
        );
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn schemas_are_valid_identifiers_and_distinct() {
        let a = Target {
            url: String::new(),
            project_id: "My Project!".into(),
        };
        let b = Target {
            url: String::new(),
            project_id: "my_project_".into(),
        };
        assert!(a.schema().starts_with("orch_my_project__"));
        assert_ne!(a.schema(), b.schema());
        assert!(a.schema().len() < 63);
        assert!(a
            .schema()
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
    }
}
