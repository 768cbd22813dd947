//! Push without a shared filesystem: on PostgreSQL, LISTEN/NOTIFY wakes the waiter
//! (`orchestrator wait`) and `serve`, and a recipient's own server rings its doorbell for
//! a sender on another host, once per burst. The recipient and the sender are separate
//! checkouts (own roots and state dirs) sharing one project id on one server; "another
//! host" is a sender run in its own UTS namespace with another hostname, as a container
//! is. A broken listening connection (a killed backend, a server restart) is reopened.
//!
//! Times are printed (`--nocapture`), never asserted: deadlines here are hang guards.

mod common;
use common::pg::{self, Db};
use common::*;
use orchestrator::core::store::db::pg::Target;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const GUARD: Duration = Duration::from_secs(15);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A fake doorbell recording each line with the time it arrived.
struct Bell {
    path: PathBuf,
    rx: Receiver<(String, i64)>,
}

impl Bell {
    fn new(p: &Project) -> Self {
        let path = p.root.parent().expect("parent").join("bell.sock");
        let listener = UnixListener::bind(&path).expect("bind fake doorbell");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                for line in BufReader::new(conn).lines().map_while(Result::ok) {
                    if tx.send((line, now_ms())).is_err() {
                        return;
                    }
                }
            }
        });
        Self { path, rx }
    }

    fn env(&self) -> String {
        self.path.display().to_string()
    }

    /// Every line rung so far: a marker written now is read after all of them (one
    /// listener, connections accepted in order).
    fn rung(&self) -> Vec<(String, i64)> {
        let mut c = UnixStream::connect(&self.path).expect("connect marker");
        c.write_all(b"MARKER\n").expect("write marker");
        drop(c);
        let mut out = Vec::new();
        loop {
            let l = self.rx.recv_timeout(GUARD).expect("the marker arrives");
            if l.0 == "MARKER" {
                return out;
            }
            out.push(l);
        }
    }
}

fn notice(id: i64) -> String {
    format!(
        "<cross-session-message from-name=\"orchestrator\">[orchestrator] new message #{id} from \
         the person; it is in your context</cross-session-message>"
    )
}

/// `psql` on the project's schema; bare values, one row a line.
fn sql(url: &str, project_id: &str, q: &str) -> String {
    let schema = Target {
        url: String::new(),
        project_id: project_id.into(),
    }
    .schema();
    let out = pg::psql(url)
        .args(["-c", &format!("SET search_path TO {schema}"), "-c", q])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{q}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `orchestrator <args>` from `q`'s checkout on "another host": its own UTS namespace
/// with another hostname (same boot, which is fine: the host differs).
fn elsewhere(q: &Project, args: &[&str]) -> Output {
    let mut c = q.cmd(Path::new("unshare"));
    c.args([
        "--uts",
        "--",
        "sh",
        "-c",
        "hostname far-away-host && exec \"$0\" \"$@\"",
        BIN,
    ])
    .args(args);
    let out = c.output().expect("run unshare");
    assert!(out.status.success(), "{args:?} elsewhere: {out:?}");
    out
}

fn send_from_elsewhere(q: &Project, to: &str, body: &str) -> String {
    let out = elsewhere(q, &["send", to, body]);
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// `orchestrator wait` for session `id` under agent `pid`; its exit time is recorded.
struct Waiter {
    pid: u32,
    done: Receiver<(i32, String, i64)>,
}

impl Waiter {
    fn start(p: &Project, id: &str, agent: u32) -> Self {
        let mut c: Command = p.cmd(Path::new(BIN));
        c.args(["wait", "--max-secs", "120"])
            .env("CLAUDE_PID", agent.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child: Child = spawn_retrying(&mut c);
        if let Some(mut si) = child.stdin.take() {
            let _ = si.write_all(payload(id, json!({"hook_event_name": "Stop"})).as_bytes());
        }
        let pid = child.id();
        let (tx, done) = channel();
        std::thread::spawn(move || {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            let code = child.wait().ok().and_then(|s| s.code()).unwrap_or(-1);
            let _ = tx.send((code, err, now_ms()));
        });
        Self { pid, done }
    }

    /// (exit code, stderr, exit time in epoch ms).
    fn exit(&self) -> (i32, String, i64) {
        self.done.recv_timeout(GUARD).expect("the waiter exits")
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        kill(self.pid as i32, libc::SIGKILL);
    }
}

fn waiter_of(url: &str, project: &str, id: &str) -> String {
    sql(
        url,
        project,
        &format!("SELECT coalesce(waiter, '') FROM sessions WHERE session_id='{id}'"),
    )
}

/// The backends listening on `url`'s database (their pids).
fn listeners(url: &str) -> Vec<String> {
    let out = pg::psql(url)
        .args([
            "-c",
            "SELECT pid FROM pg_stat_activity WHERE datname=current_database() \
             AND query ILIKE 'LISTEN %' ORDER BY pid",
        ])
        .output()
        .expect("psql");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn created_at(url: &str, project: &str, message: i64) -> i64 {
    sql(
        url,
        project,
        &format!("SELECT created_at_ms FROM messages WHERE id={message}"),
    )
    .parse()
    .expect("created_at_ms")
}

#[test]
fn a_waiter_wakes_on_a_send_from_another_checkout_and_after_its_connection_is_killed() {
    let db: Db = pg::database("pg push waiter");
    let (url, project) = (db.socket_url.as_str(), "pg-push-waiter");
    let p = Project::on_database(url, project);
    let q = Project::on_database(url, project);
    let rid = "waitpg00-wwww";
    let (agent, env) = p.session(rid);

    let w = Waiter::start(&p, rid, agent.id());
    assert!(wait_until(GUARD, || waiter_of(url, project, rid)
        .starts_with(&format!("{}:", w.pid))));
    assert_eq!(listeners(url).len(), 1, "the waiter listens");
    let out = send_from_elsewhere(&q, "@SA-waitpg00", "the build is green");
    assert!(out.contains("runs on another host"), "{out}");
    let (code, err, at) = w.exit();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("│ the build is green"), "{err}");
    eprintln!(
        "send → waiter exit: {} ms",
        at - created_at(url, project, 1)
    );
    // Delivered once.
    let out = p.hook(
        "UserPromptSubmit",
        &payload(rid, json!({"prompt": "next"})),
        &env,
    );
    assert!(!context(&out).contains("message #1"), "{out:?}");
    // The turn ends: an idle session is the waiter's to wake.
    assert!(p
        .hook("Stop", &payload(rid, json!({})), &env)
        .status
        .success());

    // The listening connection dies (as in a failover): the waiter reconnects and hears.
    let w = Waiter::start(&p, rid, agent.id());
    assert!(wait_until(GUARD, || waiter_of(url, project, rid)
        .starts_with(&format!("{}:", w.pid))));
    let before = listeners(url);
    assert_eq!(before.len(), 1);
    let killed = pg::psql(url)
        .args(["-c", &format!("SELECT pg_terminate_backend({})", before[0])])
        .output()
        .expect("psql");
    assert!(killed.status.success(), "{killed:?}");
    assert!(
        wait_until(GUARD, || {
            let now = listeners(url);
            now.len() == 1 && now != before
        }),
        "the waiter listens again: {:?}",
        listeners(url)
    );
    // Same host this time: only the notification wakes it (nothing shared on disk).
    let out = q.run(&["send", "@SA-waitpg00", "after the failover"]);
    assert!(out.status.success(), "{out:?}");
    let (code, err, at) = w.exit();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("│ after the failover"), "{err}");
    eprintln!(
        "send → waiter exit after a reconnect: {} ms",
        at - created_at(url, project, 2)
    );
}

/// A recipient with a server and a doorbell; the server has bound and recorded the bell.
fn served(p: &Project, rid: &str, bell: &Bell) -> Agent {
    let socket = bell.env();
    let mut a = p.agent_with_server(&[
        ("CLAUDE_CODE_SESSION_ID", rid),
        ("CLAUDE_CODE_MESSAGING_SOCKET", socket.as_str()),
    ]);
    a.initialize();
    let id8 = &rid[..8];
    assert!(
        wait_until(GUARD, || status_wake(p, id8) == "doorbell"),
        "{:?}",
        a.stderr()
    );
    a
}

/// The `wake` column of `p`'s status for the session `id8`.
fn status_wake(p: &Project, id8: &str) -> String {
    wake_in(&p.run(&["status", "--json"]), id8)
}

/// The same, as seen from another host.
fn status_wake_elsewhere(q: &Project, id8: &str) -> String {
    wake_in(&elsewhere(q, &["status", "--json"]), id8)
}

fn wake_in(status: &Output, id8: &str) -> String {
    let v: Value = serde_json::from_slice(&status.stdout).unwrap_or(Value::Null);
    v.as_array()
        .and_then(|a| {
            a.iter()
                .find(|e| e["session_id"].as_str().is_some_and(|s| s.starts_with(id8)))
        })
        .and_then(|e| e["wake"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Waits until the recipient's server has handled every delivery left to it.
fn all_handled(url: &str, project: &str) -> bool {
    wait_until(GUARD, || {
        sql(
            url,
            project,
            "SELECT count(*) FROM deliveries WHERE ring='remote' AND in_context_at_ms IS NULL",
        ) == "0"
    })
}

fn rings(url: &str, project: &str) -> Vec<String> {
    sql(
        url,
        project,
        "SELECT message_id || ' ' || coalesce(ring, '-') FROM deliveries ORDER BY message_id",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

#[test]
fn the_recipients_server_rings_for_a_sender_on_another_host_once_per_burst() {
    let db = pg::database("pg push ring");
    let (url, project) = (db.socket_url.as_str(), "pg-push-ring");
    let p = Project::on_database(url, project);
    let q = Project::on_database(url, project);
    let bell = Bell::new(&p);
    let rid = "ringpg00-rrrr";
    let mut server = served(&p, rid, &bell);
    assert_eq!(
        status_wake_elsewhere(&q, "ringpg00"),
        "doorbell (rung on its host)"
    );

    // A burst from another host: the sender cannot ring, the server there rings once.
    for k in 1..=3 {
        let out = send_from_elsewhere(&q, "@SA-ringpg00", &format!("burst {k}"));
        assert!(
            out.contains("runs on another host: its server there wakes it"),
            "{out}"
        );
    }
    assert!(all_handled(url, project), "{:?}", server.stderr());
    let rung = bell.rung();
    assert_eq!(rung.len(), 1, "{rung:?}");
    let v: Value = serde_json::from_str(&rung[0].0).expect("one JSON line");
    assert_eq!(v["message"]["content"], notice(1));
    assert!(!rung[0].0.contains("burst"), "no body byte in a ring");
    eprintln!(
        "send (other host) → ring by the recipient's server: {} ms",
        rung[0].1 - created_at(url, project, 1)
    );
    assert_eq!(
        rings(url, project),
        ["1 woke", "2 coalesced", "3 coalesced"]
    );

    // The turn the ring starts delivers the whole burst.
    let hook_env = [
        ("CLAUDE_PID", server.pid.to_string()),
        ("CLAUDE_CODE_MESSAGING_SOCKET", bell.env()),
    ];
    let out = p.hook(
        "UserPromptSubmit",
        &payload(rid, json!({"prompt": notice(1)})),
        &hook_env,
    );
    let ctx = context(&out);
    for k in 1..=3 {
        assert!(ctx.contains(&format!("│ burst {k}")), "{ctx}");
    }
    let stop = || {
        let out = p.hook("Stop", &payload(rid, json!({})), &hook_env);
        assert!(out.status.success(), "{out:?}");
    };
    stop();

    // Taken: the next message rings again.
    send_from_elsewhere(&q, "@SA-ringpg00", "one more");
    assert!(all_handled(url, project));
    let rung = bell.rung();
    assert_eq!(rung.len(), 1, "{rung:?}");
    assert!(rung[0].0.contains("new message #4"), "{rung:?}");

    // A sender on this host rings by itself; mail from elsewhere rides on that ring, and
    // the server never rings what this host's sender could.
    let out = p.hook(
        "UserPromptSubmit",
        &payload(rid, json!({"prompt": notice(4)})),
        &hook_env,
    );
    assert!(context(&out).contains("│ one more"), "{out:?}");
    stop();
    let out = q.run(&["send", "@SA-ringpg00", "from this host"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("woke SA-ringpg00"), "{out:?}");
    let out = send_from_elsewhere(&q, "@SA-ringpg00", "and from afar");
    assert!(out.contains("another host"), "{out}");
    assert!(all_handled(url, project));
    let rung = bell.rung();
    assert_eq!(rung.len(), 1, "{rung:?}");
    assert!(rung[0].0.contains("new message #5"), "{rung:?}");
    assert_eq!(&rings(url, project)[4..], ["5 woke", "6 coalesced"]);
}

/// A private cluster (the restart would disturb the shared one's other tests).
struct OwnCluster {
    dir: PathBuf,
    url: String,
}

impl OwnCluster {
    fn start() -> Self {
        let dir = PathBuf::from(format!("/tmp/orch-pgr-{}", std::process::id()));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg-cluster");
        let out = Command::new(script)
            .arg("start")
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .expect("run pg-cluster");
        assert!(out.status.success(), "pg-cluster start: {out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let url = stdout
            .lines()
            .find_map(|l| l.strip_prefix("socket="))
            .expect("socket= line")
            .to_string();
        Self { dir, url }
    }

    fn restart(&self) {
        pg::ctl(&self.dir, "restart");
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg-cluster");
        let _ = Command::new(script)
            .arg("stop")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .output();
    }
}

#[test]
fn server_and_waiter_hear_again_after_the_database_server_restarts() {
    let cluster = OwnCluster::start();
    let (url, project) = (cluster.url.as_str(), "pg-push-restart");
    let p = Project::on_database(url, project);
    let q = Project::on_database(url, project);
    let bell = Bell::new(&p);
    let rung_id = "rstbell0-rrrr";
    let mut server = served(&p, rung_id, &bell);
    let waited_id = "rstwait0-wwww";
    let (agent, _env) = p.session(waited_id);
    let w = Waiter::start(&p, waited_id, agent.id());
    assert!(wait_until(GUARD, || waiter_of(url, project, waited_id)
        .starts_with(&format!("{}:", w.pid))));
    assert_eq!(listeners(url).len(), 2, "the server and the waiter listen");

    cluster.restart();
    assert!(
        server.wait_stderr("hearing the database's changes again", GUARD),
        "{:?}",
        server.stderr()
    );
    assert!(
        wait_until(GUARD, || listeners(url).len() == 2),
        "both listen again: {:?}",
        listeners(url)
    );
    let out = send_from_elsewhere(&q, "@SA-rstbell0", "after the restart");
    assert!(out.contains("another host"), "{out}");
    let out = send_from_elsewhere(&q, "@SA-rstwait0", "you too");
    assert!(out.contains("another host"), "{out}");
    let (code, err, _) = w.exit();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("│ you too"), "{err}");
    assert!(all_handled(url, project), "{:?}", server.stderr());
    let rung = bell.rung();
    assert_eq!(rung.len(), 1, "{rung:?}");
    assert!(rung[0].0.contains("new message #1"), "{rung:?}");
    // One outage, one line each way: no retry loop filling the log.
    let lost = server
        .stderr()
        .iter()
        .filter(|l| l.contains("stopped hearing"))
        .count();
    assert_eq!(lost, 1, "{:?}", server.stderr());
}
