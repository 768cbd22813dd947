//! A throwaway PostgreSQL 15 cluster for integration tests, made by `scripts/pg-cluster`:
//! one per test binary, started on first use, stopped after the binary exits. Each test
//! takes its own fresh database ([`database`]), so tests run in parallel on one server.
//!
//! Needs the server binaries (`apt-get install postgresql-15`; `.ci/run` installs them). Under
//! root, as in CI, the server runs as user `postgres`; otherwise as the test's user.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg-cluster");

/// The server binaries' directory; `PG_BIN` overrides it, as for `scripts/pg-cluster`.
pub fn pg_bin() -> PathBuf {
    std::env::var_os("PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
}

/// The running cluster. URLs name the `postgres` database; [`database`] gives fresh ones.
pub struct Cluster {
    /// Everything of the cluster's: data, socket dir, cert, log; removed when it stops.
    pub dir: PathBuf,
    pub port: u16,
    /// `postgresql:///postgres?host=DIR/sock&port=PORT&user=postgres` (superuser, trust).
    pub socket_url: String,
    /// `postgres://postgres@127.0.0.1:PORT/postgres` (superuser, trust; TLS offered).
    pub tcp_url: String,
    /// `postgres://orch:orch-secret@127.0.0.1:PORT/postgres`: role `orch` must pass
    /// scram-sha-256 over TCP.
    pub scram_url: String,
    /// The server's self-signed cert (localhost, 127.0.0.1): the root for TLS clients.
    pub ca_cert: PathBuf,
    /// The reaper, with its stdin kept open: statics are never dropped, so it waits for
    /// EOF there, which the kernel gives when this process is gone, however it ended.
    _reaper: Child,
}

/// A fresh database, owned by `orch` so both the superuser and `orch` may create tables
/// in it (PostgreSQL 15 gives schema `public` to the database's owner only).
pub struct Db {
    pub name: String,
    /// [`Cluster::socket_url`] for this database.
    pub socket_url: String,
    /// [`Cluster::tcp_url`] for this database.
    pub tcp_url: String,
    /// [`Cluster::scram_url`] for this database.
    pub scram_url: String,
}

/// The process-wide cluster, started by the first caller (about a second). Panics, in one
/// line if the server binaries are missing, else with the script's complaint.
pub fn cluster() -> &'static Cluster {
    // A failure is kept too, so the other tests fail at once instead of each retrying.
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    match CLUSTER.get_or_init(start) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

/// Creates a database named after `name_hint` (made unique) and returns its URLs.
pub fn database(name_hint: &str) -> Db {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let c = cluster();
    let hint: String = name_hint
        .chars()
        .take(40)
        .map(|ch| match ch {
            'a'..='z' | '0'..='9' | '_' => ch,
            'A'..='Z' => ch.to_ascii_lowercase(),
            _ => '_',
        })
        .collect();
    let name = format!("t_{hint}_{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let out = psql(&c.socket_url)
        .args(["-c", &format!("CREATE DATABASE \"{name}\" OWNER orch")])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "CREATE DATABASE {name}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Db {
        socket_url: with_db(&c.socket_url, &name),
        tcp_url: with_db(&c.tcp_url, &name),
        scram_url: with_db(&c.scram_url, &name),
        name,
    }
}

/// `psql` on `conninfo` (a URL or `key=value` string) that stops at the first error, never
/// prompts for a password and prints bare values (`-tA`); add `-c SQL`. The environment's
/// `PG*` variables are removed so only `conninfo` says where it connects.
pub fn psql(conninfo: &str) -> Command {
    let mut c = Command::new(pg_bin().join("psql"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PG") {
            c.env_remove(k);
        }
    }
    c.env("PGCONNECT_TIMEOUT", "10")
        .args([
            "-X",
            "-w",
            "-q",
            "-tA",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            conninfo,
        ])
        .stdin(Stdio::null());
    c
}

/// `url` (naming database `postgres`, as the script prints them) naming `name` instead.
fn with_db(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = base.strip_suffix("/postgres").expect("URL names /postgres");
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

fn start() -> Result<Cluster, String> {
    let initdb = pg_bin().join("initdb");
    if !initdb.exists() {
        return Err(format!(
            "PostgreSQL 15 server binaries missing ({} not found): apt-get install postgresql-15",
            initdb.display()
        ));
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    // Short: the socket path inside it must fit in 107 bytes.
    let dir = PathBuf::from(format!("/tmp/orch-pg-{}-{nanos:x}", std::process::id()));
    // The reaper first, so a start that fails halfway is cleaned up too. Its own session,
    // so Ctrl-C or a kill of the test's process group does not take it along.
    let reaper = Command::new("setsid")
        .args(["sh", "-c", r#"cat >/dev/null; exec "$0" stop "$1""#, SCRIPT])
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn the cluster's reaper (setsid sh): {e}"))?;
    let out = Command::new(SCRIPT)
        .arg("start")
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run {SCRIPT}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{SCRIPT} start {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let get = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_string)
            .ok_or_else(|| format!("{SCRIPT} start printed no {key}= line: {stdout}"))
    };
    Ok(Cluster {
        dir: get("dir")?.into(),
        port: get("port")?.parse().map_err(|e| format!("port: {e}"))?,
        socket_url: get("socket")?,
        tcp_url: get("tcp")?,
        scram_url: get("scram")?,
        ca_cert: get("ca")?.into(),
        _reaper: reaper,
    })
}

/// `pg_ctl start|stop|restart` on the cluster in `dir` (laid out by `scripts/pg-cluster`),
/// as the script runs it: as user postgres under root; `fast` shutdown, waiting.
#[allow(dead_code)]
pub fn ctl(dir: &Path, action: &str) {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let mut c = if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"])
            .arg(pg_bin().join("pg_ctl"));
        c
    } else {
        Command::new(pg_bin().join("pg_ctl"))
    };
    let out = c
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-l")
        .arg(dir.join("log"))
        .args(["-m", "fast", "-w", "-t", "60", "-s", action])
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .expect("pg_ctl");
    assert!(out.status.success(), "pg_ctl {action}: {out:?}");
}
