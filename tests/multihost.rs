//! A fleet across machines on one PostgreSQL database: each "host" is a UTS+PID namespace
//! (`unshare --uts --pid --fork --mount-proc`, as containers are) with its own hostname,
//! process table and project checkout (no state dir shared: as on different machines),
//! running fake agents (a script named `claude`) whose hooks and `serve` are their own
//! children. The hosts see each other, message each other, and when a whole host dies its
//! sessions leave the others' rosters once their heartbeats go stale, while the idle
//! sessions of live hosts stay (their host's `serve` keeps heartbeating and vouching).
//!
//! Needs root (namespaces) and the PostgreSQL 15 server binaries; skipped, with a line
//! saying why, where namespaces cannot be made.

mod common;
use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A host's init (with `TEST_HOSTNAME`: names its host first) or a fake agent (installed
/// as `claude`; with `TEST_SERVE_LOG` it runs `orchestrator serve` as its child, its stdin
/// held open by a sleeping writer). Runs each request the test hands it on `TEST_FIFO` (a
/// directory holding `run`, a shell script that `exec`s the program, and `in`) as its own
/// child: in the foreground (writes `out`, `err`, `rc`), or in the background when the
/// directory holds `bg` (writes the child's pid, as this host numbers it, to `pid`).
const RUNNER: &str = r#"#!/bin/sh
if [ -n "$TEST_HOSTNAME" ]; then hostname "$TEST_HOSTNAME" || exit 1; unset TEST_HOSTNAME; fi
if [ -n "$TEST_SERVE_LOG" ]; then
  sleep 2147483647 | "$TEST_ORCH" serve > /dev/null 2> "$TEST_SERVE_LOG" &
  unset TEST_SERVE_LOG
fi
while :; do
  read -r d < "$TEST_FIFO" || continue
  [ "$d" = quit ] && exit 0
  if [ -e "$d/bg" ]; then
    sh "$d/run" < /dev/null > "$d/out" 2> "$d/err" &
    echo $! > "$d/pid.tmp"; mv "$d/pid.tmp" "$d/pid"
  else
    sh "$d/run" < "$d/in" > "$d/out" 2> "$d/err"
    echo $? > "$d/rc.tmp"; mv "$d/rc.tmp" "$d/rc"
  fi
done
"#;

/// Hang guard for anything the test waits for; never a timing assertion.
const PATIENCE: Duration = Duration::from_secs(60);
/// Short liveness windows, so a dead host leaves within seconds.
const STALE_SECS: u64 = 3;
const HEARTBEAT_SECS: &str = "0.5";

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn clean(&self, what: &str) -> &Self {
        assert!(
            self.code == 0 && self.stderr.is_empty(),
            "{what}: exit {} stderr {:?} stdout {:?}",
            self.code,
            self.stderr,
            self.stdout
        );
        self
    }

    fn context(&self) -> String {
        if self.stdout.trim().is_empty() {
            return String::new();
        }
        let v: Value = serde_json::from_str(&self.stdout).expect("hook answer is JSON");
        v["hookSpecificOutput"]["additionalContext"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// The test's end of a [`RUNNER`]: hands it requests and collects what they left.
struct Runner {
    fifo: PathBuf,
    work: PathBuf,
    n: usize,
}

impl Runner {
    fn new(work: PathBuf) -> Self {
        std::fs::create_dir_all(&work).expect("mkdir work");
        let fifo = work.join("fifo");
        let c = std::ffi::CString::new(fifo.display().to_string()).expect("cstr");
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
        Self { fifo, work, n: 0 }
    }

    /// Writes the request and hands it over; returns its directory.
    fn hand(&mut self, script: &str, input: &str, bg: bool) -> PathBuf {
        self.n += 1;
        let d = self.work.join(format!("r{}", self.n));
        std::fs::create_dir_all(&d).expect("mkdir request");
        std::fs::write(d.join("run"), script).expect("run");
        std::fs::write(d.join("in"), input).expect("in");
        if bg {
            std::fs::write(d.join("bg"), "").expect("bg");
        }
        // Retried until the runner has the FIFO open for reading (ENXIO before).
        let deadline = Instant::now() + PATIENCE;
        loop {
            let w = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&self.fifo);
            if let Ok(mut w) = w {
                use std::io::Write;
                w.write_all(format!("{}\n", d.display()).as_bytes())
                    .expect("write fifo");
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "runner at {} never listened",
                self.work.display()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Runs `script` in the foreground with `input` on stdin.
    fn run(&mut self, script: &str, input: &str) -> Ran {
        let d = self.hand(script, input, false);
        assert!(
            wait_until(PATIENCE, || d.join("rc").exists()),
            "request {} never finished",
            d.display()
        );
        let read = |f: &str| std::fs::read_to_string(d.join(f)).unwrap_or_default();
        Ran {
            code: read("rc").trim().parse().unwrap_or(-1),
            stdout: read("out"),
            stderr: read("err"),
        }
    }

    /// Starts `script` in the background; its pid as the runner's host numbers it.
    fn start(&mut self, script: &str) -> i32 {
        let d = self.hand(script, "", true);
        assert!(
            wait_until(PATIENCE, || d.join("pid").exists()),
            "background request {} never started",
            d.display()
        );
        std::fs::read_to_string(d.join("pid"))
            .expect("pid")
            .trim()
            .parse()
            .expect("pid number")
    }
}

/// One machine: a UTS+PID+mount namespace with its own hostname, process table, HOME and
/// project checkout, sharing only the database (and, unavoidably here, the filesystem).
struct Host {
    name: String,
    unshare: Child,
    /// The namespace's init (its pid 1) as this test's namespace numbers it; 0 once
    /// killed (the number may be reused then).
    init: i32,
    runner: Runner,
    root: PathBuf,
    /// The directory holding this host's `claude` program.
    bin: PathBuf,
}

impl Host {
    fn start(base: &Path, name: &str, env: &[(&str, String)]) -> Self {
        let dir = base.join(name);
        let root = dir.join("proj");
        let home = dir.join("home");
        let bin = dir.join("bin");
        for d in [&root, &home, &bin] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        for prog in ["host-init", "claude"] {
            let f = bin.join(prog);
            std::fs::write(&f, RUNNER).expect("write runner");
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let runner = Runner::new(dir.join("runs"));
        let mut c = Command::new("unshare");
        c.args(["--uts", "--pid", "--fork", "--mount-proc"])
            .arg(bin.join("host-init"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("ORCHESTRATOR_PROJECT_ROOT", &root)
            .env("ORCHESTRATOR_STALE_SECS", STALE_SECS.to_string())
            .env("ORCHESTRATOR_HEARTBEAT_SECS", HEARTBEAT_SECS)
            .env("ORCHESTRATOR_LOG", "info")
            .env("TEST_ORCH", BIN)
            .env("TEST_HOSTNAME", name)
            .env("TEST_FIFO", &runner.fifo)
            .current_dir(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("init.err")).expect("init log"))
            .process_group(0);
        for (k, v) in env {
            c.env(k, v);
        }
        let unshare = spawn_retrying(&mut c);
        let upid = unshare.id() as i32;
        let mut init = 0;
        assert!(
            wait_until(PATIENCE, || {
                init = std::fs::read_to_string(format!("/proc/{upid}/task/{upid}/children"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                init > 0
            }),
            "unshare never forked the host's init"
        );
        let mut host = Self {
            name: name.to_string(),
            unshare,
            init,
            runner,
            root,
            bin,
        };
        // The host is up once it answers, under its own name, as its own pid 1.
        let who = host.run("exec sh -c 'echo \"$(hostname) $$\"'");
        who.clean("hostname");
        assert_eq!(who.stdout.split_whitespace().next(), Some(name), "{name}");
        host
    }

    /// Runs `script` as a person's shell on this host would (no agent above it).
    fn run(&mut self, script: &str) -> Ran {
        self.runner.run(script, "")
    }

    /// `orchestrator status --json` on this host: its live rows.
    fn status(&mut self) -> Vec<Value> {
        let r = self.run(&format!("exec {} status --json", quote(BIN)));
        r.clean(&format!("status on {}", self.name));
        serde_json::from_str::<Value>(&r.stdout)
            .expect("status json")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// `status --json --all` on this host: every row, and why the gone ones are gone.
    fn status_all(&mut self) -> Vec<Value> {
        let r = self.run(&format!("exec {} status --json --all", quote(BIN)));
        r.clean(&format!("status --all on {}", self.name));
        serde_json::from_str::<Value>(&r.stdout)
            .expect("status json")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Starts a fake agent on this host for session `id`, with its own `serve` when
    /// `served`, and runs its SessionStart hook.
    fn agent(&mut self, id: &str, served: bool) -> Sim {
        let work = self.runner.work.join(format!("agent-{id}"));
        let runner = Runner::new(work.clone());
        let serve_log = work.join("serve.err");
        let mut script = format!(
            "export TEST_FIFO={}\n",
            quote(&runner.fifo.display().to_string())
        );
        if served {
            script.push_str(&format!(
                "export TEST_SERVE_LOG={} CLAUDE_CODE_SESSION_ID={}\n",
                quote(&serve_log.display().to_string()),
                quote(id)
            ));
        }
        script.push_str(&format!(
            "exec {}\n",
            quote(&self.bin.join("claude").display().to_string())
        ));
        let pid = self.runner.start(&script);
        let mut sim = Sim {
            id: id.to_string(),
            host: self.name.clone(),
            pid,
            runner,
            serve_log: served.then_some(serve_log),
        };
        let root = self.root.display().to_string();
        sim.hook("SessionStart", json!({"source": "startup", "cwd": root}))
            .clean(&format!("SessionStart {id} on {}", self.name));
        sim
    }

    /// kill -9 the host's init: the kernel takes every process of its namespace along.
    fn kill(&mut self) {
        if self.init > 0 {
            kill(self.init, libc::SIGKILL);
            self.init = 0;
        }
        let _ = self.unshare.wait();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A session: a fake agent on a host, which runs its hooks as its own children.
struct Sim {
    id: String,
    host: String,
    /// The agent's pid as its host numbers it (the same numbers recur on every host).
    pid: i32,
    runner: Runner,
    serve_log: Option<PathBuf>,
}

impl Sim {
    fn id8(&self) -> &str {
        &self.id[..8]
    }

    fn hook(&mut self, event: &str, extra: Value) -> Ran {
        self.runner.run(
            &format!("exec {} hook {event}", quote(BIN)),
            &payload(&self.id, extra),
        )
    }

    fn prompt(&mut self, text: &str) -> String {
        let r = self.hook(
            "UserPromptSubmit",
            json!({"prompt": text, "permission_mode": "default"}),
        );
        r.clean(&format!("UserPromptSubmit {} on {}", self.id, self.host));
        r.context()
    }

    /// What its server logged (empty without one).
    fn serve_log(&self) -> String {
        self.serve_log
            .as_ref()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .unwrap_or_default()
    }
}

/// Whether this machine lets us make the namespaces (root, a kernel that allows them).
fn namespaces_work() -> bool {
    Command::new("unshare")
        .args(["--uts", "--pid", "--fork", "--mount-proc", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The (session id → host) pairs a status listing shows.
fn hosts_of(rows: &[Value]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["session_id"].as_str().unwrap_or_default().to_string(),
                r["host"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn expected(sims: &[&Sim]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = sims
        .iter()
        .map(|s| (s.id.clone(), s.host.clone()))
        .collect();
    v.sort();
    v
}

#[test]
fn hosts_see_and_message_each_other_and_a_dead_host_leaves() {
    if !namespaces_work() {
        eprintln!("skipped: cannot make UTS+PID namespaces here (needs root and unshare)");
        return;
    }
    let db = common::pg::database("multihost");
    let base = tempfile::tempdir().expect("tempdir");
    let base = std::fs::canonicalize(base.path()).expect("canon");
    // One database and one project id; nothing else shared.
    let env = [
        ("ORCHESTRATOR_DATABASE_URL", db.socket_url.clone()),
        ("ORCHESTRATOR_PROJECT_ID", "multihost-test".to_string()),
    ];
    let mut a = Host::start(&base, "host-a", &env);
    let mut b = Host::start(&base, "host-b", &env);
    let mut c = Host::start(&base, "host-c", &env);

    // Each host: one session with its own server, one without (hooks only, as with a
    // server that failed to start): the host's server vouches for it. The hosts start
    // their agents in the same order, so the same pids recur on every host.
    let mut a1 = a.agent("a1000001-on-host-a", true);
    let mut a2 = a.agent("a2000002-on-host-a", false);
    let b1 = b.agent("b1000001-on-host-b", true);
    let mut b2 = b.agent("b2000002-on-host-b", false);
    let c1 = c.agent("c1000001-on-host-c", true);
    let mut c2 = c.agent("c2000002-on-host-c", false);
    assert_eq!(
        (a1.pid, a2.pid),
        (b1.pid, b2.pid),
        "the hosts number their processes alike (what this test relies on to collide pids)"
    );
    let everyone = [&a1, &a2, &b1, &b2, &c1, &c2];

    // (1) Every host lists every session, with the host it runs on.
    let want = expected(&everyone);
    for h in [&mut a, &mut b, &mut c] {
        let mut last = Vec::new();
        assert!(
            wait_until(PATIENCE, || {
                last = hosts_of(&h.status());
                last == want
            }),
            "status on {} lists {last:?}, not {want:?}",
            h.name
        );
    }
    // The table says where each runs once the fleet spans hosts.
    let table = a.run(&format!("exec {} status", quote(BIN)));
    table.clean("status table on host A");
    for s in &everyone {
        let line = table
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("SA-{}", s.id8())))
            .unwrap_or_else(|| panic!("no line for {}:\n{}", s.id, table.stdout));
        assert!(line.contains(&s.host), "{line}");
    }
    assert!(
        table.stdout.starts_with("SESSION     HOST"),
        "{}",
        table.stdout
    );
    // A hook on host A names the sessions of the other hosts (A1 registered first, so its
    // roster changed since SessionStart and this turn shows it).
    let ctx = a1.prompt("look around the fleet");
    for s in [&a2, &b1, &b2, &c1, &c2] {
        assert!(
            ctx.contains(&format!("SA-{}", s.id8())),
            "A1's turn misses {} on {}:\n{ctx}",
            s.id,
            s.host
        );
    }
    assert!(
        !ctx.contains(&format!("- SA-{}", a1.id8())),
        "A1 sees itself:\n{ctx}"
    );

    // (2) Messages cross hosts: from a session on host A (its agent's Bash) to an idle,
    // server-less session on host B, and from the person on host C to one on host A.
    let sent = a1.runner.run(
        &format!(
            "exec {} send {} 'hello host b from a1'",
            quote(BIN),
            quote(&format!("@SA-{}", b2.id8()))
        ),
        "",
    );
    sent.clean("send from A1 to B2");
    let got = b2.prompt("anything for me?");
    assert!(
        got.contains("hello host b from a1") && got.contains(&format!("from SA-{}", a1.id8())),
        "B2 did not get A1's message:\n{got}"
    );
    let sent = c.run(&format!(
        "exec {} send {} 'hello host a from the person on c'",
        quote(BIN),
        quote(&format!("@SA-{}", a2.id8()))
    ));
    sent.clean("send from the person on C to A2");
    let got = a2.prompt("anything for me?");
    assert!(
        got.contains("hello host a from the person on c"),
        "A2 did not get the message from host C:\n{got}"
    );
    // Each delivered once.
    assert!(
        !b2.prompt("more?").contains("hello host b"),
        "B2 got it twice"
    );

    // (3) Host B dies whole (kill -9 of its init takes every process in it). Its rows stay
    // in the database, but the other hosts drop them once their heartbeats are stale.
    b.kill();
    let gone: Vec<String> = vec![b1.id.clone(), b2.id.clone()];
    let survivors = expected(&[&a1, &a2, &c1, &c2]);
    for h in [&mut a, &mut c] {
        let mut last = Vec::new();
        assert!(
            wait_until(PATIENCE, || {
                last = hosts_of(&h.status());
                last == survivors
            }),
            "status on {} still lists {last:?} (want {survivors:?})",
            h.name
        );
        let all = h.status_all();
        for id in &gone {
            let r = all
                .iter()
                .find(|r| r["session_id"] == id.as_str())
                .unwrap_or_else(|| panic!("{id} missing from status --all on {}", h.name));
            assert_eq!(r["live"], false, "{r}");
            assert!(
                r["state"].as_str().unwrap_or_default().starts_with("stale"),
                "{r}"
            );
        }
    }
    // Meanwhile the live hosts' sessions stay, idle ones included (A2 and C2 run no server
    // of their own and no hook now): watched over more than two stale windows.
    let watch_until = Instant::now() + Duration::from_secs(STALE_SECS * 2 + 2);
    let mut polls = 0;
    while Instant::now() < watch_until || polls < 4 {
        polls += 1;
        for h in [&mut a, &mut c] {
            let rows = hosts_of(&h.status());
            assert_eq!(
                rows, survivors,
                "poll {polls}: status on {} lost a live host's session",
                h.name
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // And a hook on host C sees host A's sessions but none of host B's.
    let ctx = c2.prompt("who is still here?");
    if !ctx.is_empty() {
        for id in &gone {
            assert!(!ctx.contains(&format!("SA-{}", &id[..8])), "{id}:\n{ctx}");
        }
    }
    // The servers never complained about the database.
    for s in [&a1, &c1] {
        let log = s.serve_log();
        assert!(
            !log.contains("failed") && !log.contains("cannot"),
            "{} on {}: serve warned:\n{log}",
            s.id,
            s.host
        );
    }
}
