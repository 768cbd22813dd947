//! Test harness: temp projects, a fake agent (a script named `claude`), hook runs and a
//! minimal line-delimited JSON-RPC client for `orchestrator serve`.
#![allow(dead_code)]

pub mod pg;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_orchestrator");

/// A temporary project with its own HOME and a fake `claude` on hand.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub home: PathBuf,
    pub claude: PathBuf,
    /// Extra environment for every command (a shared database, say).
    pub env: Vec<(String, String)>,
}

impl Project {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(dir.path())
            .expect("canon")
            .join("proj");
        let home = root.parent().expect("parent").join("home");
        let bin = root.parent().expect("parent").join("bin");
        for d in [&root, &home, &bin] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        let claude = bin.join("claude");
        // The fake agent: runs its arguments as a child and waits, so /proc shows a
        // process named `claude` above whatever it launches.
        // With TEST_GATE set it first waits for that file, so a test can seed anchors for
        // the agent's pid before its children start. With TEST_HARNESS_ID set it writes the
        // harness's own session file for its pid, as Claude Code does.
        std::fs::write(
            &claude,
            "#!/bin/sh\nif [ -n \"$TEST_GATE\" ]; then while [ ! -e \"$TEST_GATE\" ]; do sleep 0.01; done; fi\n\
             if [ -n \"$TEST_HARNESS_ID\" ]; then mkdir -p \"$HOME/.claude/sessions\"; \
             printf '{\"pid\":%s,\"sessionId\":\"%s\"}' $$ \"$TEST_HARNESS_ID\" > \"$HOME/.claude/sessions/$$.json\"; fi\n\
             \"$@\"\n",
        )
        .expect("write claude");
        std::fs::set_permissions(&claude, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Self {
            dir,
            root,
            home,
            claude,
            env: Vec::new(),
        }
    }

    /// A project whose registry is `project_id` on the PostgreSQL server at `url`: its
    /// state dir holds nothing shared, so two of them stand for two machines' checkouts.
    pub fn on_database(url: &str, project_id: &str) -> Self {
        let mut p = Self::new();
        p.env = vec![
            ("ORCHESTRATOR_DATABASE_URL".into(), url.into()),
            ("ORCHESTRATOR_PROJECT_ID".into(), project_id.into()),
        ];
        p
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join(".orchestrator-state")
    }

    /// A command with a clean environment pointing at this project.
    pub fn cmd(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("ORCHESTRATOR_PROJECT_ROOT", &self.root)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.root);
        c
    }

    /// `orchestrator <args>` with the project env.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(Path::new(BIN))
            .args(args)
            .output()
            .expect("run orchestrator")
    }

    /// Runs `orchestrator hook <event>` with `payload` on stdin and extra env.
    pub fn hook(&self, event: &str, payload: &str, env: &[(&str, String)]) -> Output {
        let mut c = self.cmd(Path::new(BIN));
        c.args(["hook", event])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("spawn hook");
        if let Some(mut si) = child.stdin.take() {
            let _ = si.write_all(payload.as_bytes());
        }
        child.wait_with_output().expect("hook output")
    }

    /// Starts a fake agent process that just sleeps (hooks name it via CLAUDE_PID). Its
    /// own process group, so dropping it kills the `sleep` child too.
    pub fn sleeping_agent(&self) -> Sleeper {
        let mut c = self.cmd(&self.claude);
        c.args(["sleep", "600"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        Sleeper(spawn_retrying(&mut c))
    }

    /// A sleeping fake agent whose session `id` has started (SessionStart hook run); the
    /// env names its agent process for later hooks.
    pub fn session(&self, id: &str) -> (Sleeper, Vec<(&'static str, String)>) {
        let agent = self.sleeping_agent();
        let env = vec![("CLAUDE_PID", agent.id().to_string())];
        let out = self.hook(
            "SessionStart",
            &payload(id, serde_json::json!({"source": "startup"})),
            &env,
        );
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "SessionStart {id}: {out:?}"
        );
        (agent, env)
    }

    /// [`Project::session`] for an agent started in `dir` (a worktree or subdirectory):
    /// `dir` is its project dir and working directory.
    pub fn session_in(&self, id: &str, dir: &Path) -> (Sleeper, Vec<(&'static str, String)>) {
        let agent = self.sleeping_agent();
        let env = vec![
            ("CLAUDE_PID", agent.id().to_string()),
            ("ORCHESTRATOR_PROJECT_ROOT", dir.display().to_string()),
        ];
        let out = self.hook(
            "SessionStart",
            &payload(id, serde_json::json!({"source": "startup", "cwd": dir})),
            &env,
        );
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "SessionStart {id}: {out:?}"
        );
        (agent, env)
    }

    /// Starts a fake agent whose child is `orchestrator serve`, with a JSON-RPC client.
    pub fn agent_with_server(&self, env: &[(&str, &str)]) -> Agent {
        let mut c = self.cmd(&self.claude);
        c.arg(BIN);
        self.spawn_server(c, env)
    }

    /// Starts `orchestrator serve` directly (its agent named by CLAUDE_PID in `env`), as
    /// a plugin reload does: a second server for the same agent process.
    pub fn bare_server(&self, env: &[(&str, &str)]) -> Agent {
        self.spawn_server(self.cmd(Path::new(BIN)), env)
    }

    fn spawn_server(&self, mut c: Command, env: &[(&str, &str)]) -> Agent {
        // Tests read serve's ordinary lines (bound, rebound, shutting down) on stderr.
        c.env("ORCHESTRATOR_LOG", "info");
        c.arg("serve")
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = spawn_retrying(&mut c);
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        let (etx, erx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if etx.send(line).is_err() {
                    break;
                }
            }
        });
        Agent {
            pid: child.id() as i32,
            child,
            stdin: Some(stdin),
            rx,
            erx,
            stderr_seen: Vec::new(),
            next_id: 1,
        }
    }
}

/// Spawns, retrying while another test thread's fork still holds the freshly written
/// script open for writing (ETXTBSY).
pub fn spawn_retrying(c: &mut Command) -> Child {
    for _ in 0..200 {
        match c.spawn() {
            Ok(child) => return child,
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("spawn {c:?}: {e}"),
        }
    }
    panic!("spawn {c:?}: executable stayed busy")
}

/// A fake agent process running `orchestrator serve` as its child.
pub struct Agent {
    pub pid: i32,
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    rx: Receiver<Value>,
    erx: Receiver<String>,
    pub stderr_seen: Vec<String>,
    next_id: u64,
}

impl Agent {
    fn send(&mut self, v: &Value) {
        if let Some(si) = self.stdin.as_mut() {
            let _ = writeln!(si, "{v}");
            let _ = si.flush();
        }
    }

    /// Sends a request and waits for its response.
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}));
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            match self.rx.recv_timeout(Duration::from_millis(200)) {
                Ok(v) if v.get("id").and_then(Value::as_u64) == Some(id) => return v,
                Ok(_) => {}
                Err(_) => {}
            }
        }
        panic!(
            "no response to {method}; server stderr: {:?}",
            self.stderr()
        );
    }

    /// The MCP handshake (classic initialize).
    pub fn initialize(&mut self) -> Value {
        let r = self.request(
            "initialize",
            json!({"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"test","version":"0"}}),
        );
        self.send(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
        r
    }

    /// Calls a tool; returns (text, is_error).
    pub fn call(&mut self, tool: &str, args: Value) -> (String, bool) {
        let r = self.request("tools/call", json!({"name": tool, "arguments": args}));
        let res = &r["result"];
        let text = res["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (text, res["isError"].as_bool().unwrap_or(false))
    }

    /// All stderr lines seen so far.
    pub fn stderr(&mut self) -> Vec<String> {
        while let Ok(l) = self.erx.try_recv() {
            self.stderr_seen.push(l);
        }
        self.stderr_seen.clone()
    }

    /// Waits until a stderr line contains `needle`.
    pub fn wait_stderr(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stderr().iter().any(|l| l.contains(needle)) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            if let Ok(l) = self.erx.recv_timeout(Duration::from_millis(50)) {
                self.stderr_seen.push(l);
            }
        }
    }

    /// Waits for a notification named `method` from the server (responses are skipped).
    pub fn wait_notification(&mut self, method: &str, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(v) = self.rx.recv_timeout(Duration::from_millis(100)) {
                if v.get("method").and_then(Value::as_str) == Some(method) {
                    return Some(v);
                }
            }
        }
        None
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Pids of this agent's children (the server).
    pub fn children(&self) -> Vec<i32> {
        let path = format!("/proc/{0}/task/{0}/children", self.pid);
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// Waits for the agent process (and so its server) to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        kill(-self.pid, libc::SIGKILL);
        let _ = self.child.wait();
    }
}

/// A fake agent that only sleeps; killed with its whole process group on drop.
pub struct Sleeper(pub Child);

impl Sleeper {
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// kill -9 the agent and its children, and reap it.
    pub fn kill(&mut self) {
        kill(-(self.0.id() as i32), libc::SIGKILL);
        let _ = self.0.wait();
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn kill(pid: i32, sig: i32) {
    // SAFETY: plain kill(2) on a pid this test spawned.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    f()
}

/// Start ticks of `pid` from /proc (field 22).
pub fn start_ticks(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let rest = &s[s.rfind(')').expect(")") + 1..];
    rest.split_whitespace()
        .nth(19)
        .expect("field")
        .parse()
        .expect("num")
}

/// How each ended session ended, from `status --json --all`.
pub fn ended(p: &Project) -> Vec<(String, String)> {
    let out = p.run(&["status", "--json", "--all"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("status json");
    v.as_array()
        .expect("array")
        .iter()
        .filter(|r| r.get("ended_at").is_some())
        .map(|r| {
            (
                r["session_id"].as_str().unwrap_or("").to_string(),
                r["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The session ids in `orchestrator status --json`.
pub fn live_ids(p: &Project) -> Vec<String> {
    let out = p.run(&["status", "--json"]);
    assert!(
        out.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("status json");
    let mut ids: Vec<String> = v
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|r| r["session_id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

/// Every registry row, live or not (ended sessions excluded).
pub fn all_ids(p: &Project) -> Vec<String> {
    let out = p.run(&["status", "--json", "--all"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("status json");
    let mut ids: Vec<String> = v
        .as_array()
        .expect("array")
        .iter()
        .filter(|r| r.get("ended_at").is_none())
        .filter_map(|r| r["session_id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

pub fn payload(id: &str, extra: Value) -> String {
    let mut v = json!({"session_id": id, "transcript_path": "/dev/null", "cwd": "."});
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, val) in e {
            o.insert(k.clone(), val.clone());
        }
    }
    v.to_string()
}

pub fn context(out: &Output) -> String {
    if out.stdout.is_empty() {
        return String::new();
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("hook stdout is JSON");
    v["hookSpecificOutput"]["additionalContext"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Runs `git -C root <args>` as a test user and asserts it succeeded.
pub fn git(root: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["-c", "user.email=t@example.com", "-c", "user.name=t"])
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes `p` a git repository with one commit (`src/a.rs`) and a linked worktree at
/// `.claude/worktrees/feat` on branch `feat`, the layout `claude --worktree` makes; returns
/// the worktree's root.
pub fn repo_with_worktree(p: &Project) -> PathBuf {
    std::fs::create_dir_all(p.root.join("src")).expect("mkdir");
    std::fs::write(p.root.join("src/a.rs"), "fn a() {}\n").expect("write");
    git(&p.root, &["init", "-q", "-b", "main"]);
    git(&p.root, &["add", "."]);
    git(&p.root, &["commit", "-qm", "init"]);
    git(
        &p.root,
        &[
            "worktree",
            "add",
            "-q",
            ".claude/worktrees/feat",
            "-b",
            "feat",
        ],
    );
    p.root.join(".claude/worktrees/feat")
}
