//! `orchestrator demo`: three simulated agent sessions in a temporary project, driven
//! through the real hooks and real `serve` processes, printing what each was told.
//!
//! Each agent is a real process named `claude` (a shell script) whose child is
//! `orchestrator serve`; hooks run as this binary with `CLAUDE_PID` naming the agent,
//! exactly as Claude Code runs them.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

struct Agent {
    name: &'static str,
    id: String,
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<Value>,
    next: u64,
}

impl Agent {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn request(&mut self, method: &str, params: Value) -> Result<Value> {
        let id = self.next;
        self.next += 1;
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let si = self.stdin.as_mut().context("agent stdin closed")?;
        writeln!(si, "{msg}")?;
        si.flush()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(v) = self.rx.recv_timeout(Duration::from_millis(100)) {
                if v.get("id").and_then(Value::as_u64) == Some(id) {
                    return Ok(v);
                }
            }
        }
        bail!("{}'s server did not answer {method}", self.name)
    }

    fn notify(&mut self, method: &str) -> Result<()> {
        let si = self.stdin.as_mut().context("agent stdin closed")?;
        writeln!(si, "{}", json!({"jsonrpc": "2.0", "method": method}))?;
        Ok(())
    }

    fn tool(&mut self, name: &str, args: Value) -> Result<String> {
        let r = self.request("tools/call", json!({"name": name, "arguments": args}))?;
        Ok(r["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this demo created for the agent.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

struct Demo {
    exe: PathBuf,
    root: PathBuf,
    claude: PathBuf,
    step: usize,
}

impl Demo {
    fn env(&self, c: &mut Command) {
        c.env("ORCHESTRATOR_PROJECT_ROOT", &self.root)
            .env("HOME", self.root.join(".home"))
            .env_remove("CLAUDE_CODE_SESSION_ID")
            .env_remove("CLAUDE_PROJECT_DIR")
            .env_remove("CLAUDE_PID")
            .current_dir(&self.root);
    }

    fn header(&mut self, what: &str) {
        self.step += 1;
        if std::io::stdout().is_terminal() {
            println!("\n\x1b[1m== {}. {what}\x1b[0m", self.step);
        } else {
            println!("\n== {}. {what}", self.step);
        }
    }

    fn launch(&self, name: &'static str, id: &str, role: &str) -> Result<Agent> {
        let mut c = Command::new(&self.claude);
        c.arg(&self.exe).arg("serve");
        self.env(&mut c);
        c.env("CLAUDE_CODE_SESSION_ID", id)
            .env("ORCHESTRATOR_AGENT_NAME", name)
            .env("ORCHESTRATOR_AGENT_ROLE", role)
            .env("ORCHESTRATOR_CHANNEL", "off")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0);
        let mut child = c.spawn().context("cannot start a simulated agent")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("no agent stdout")?;
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
        let mut a = Agent {
            name,
            id: id.to_string(),
            child,
            stdin,
            rx,
            next: 1,
        };
        a.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "demo", "version": "0"}}),
        )?;
        a.notify("notifications/initialized")?;
        Ok(a)
    }

    /// Runs a real hook for `a` and prints what the session was told.
    fn hook(&self, a: &Agent, event: &str, extra: Value) -> Result<String> {
        let mut payload = json!({"session_id": a.id, "hook_event_name": event, "cwd": self.root});
        if let (Some(o), Some(e)) = (payload.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        let mut c = Command::new(&self.exe);
        c.args(["hook", event]);
        self.env(&mut c);
        c.env("CLAUDE_PID", a.pid().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn()?;
        if let Some(mut si) = child.stdin.take() {
            si.write_all(payload.to_string().as_bytes())?;
        }
        let out = child.wait_with_output()?;
        let text = if out.stdout.is_empty() {
            String::new()
        } else {
            let v: Value = serde_json::from_slice(&out.stdout)?;
            let h = &v["hookSpecificOutput"];
            let mut t = h["additionalContext"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if let Some(d) = h["permissionDecision"].as_str() {
                let why = h["permissionDecisionReason"].as_str().unwrap_or_default();
                if !t.is_empty() {
                    t.push('\n');
                }
                t.push_str(&format!("(permissionDecision: {d}) {why}"));
            }
            t
        };
        println!("{} ({event} hook) was told:", a.name);
        if text.is_empty() {
            println!("  (nothing)");
        }
        for l in text.lines() {
            println!("  │ {l}");
        }
        Ok(text)
    }

    fn cli(&self, args: &[&str]) -> Result<String> {
        let mut c = Command::new(&self.exe);
        c.args(args);
        self.env(&mut c);
        let out = c.output()?;
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    }
}

fn temp_root() -> Result<PathBuf> {
    let base = std::env::temp_dir().join(format!("orchestrator-demo-{}", std::process::id()));
    std::fs::create_dir_all(base.join("bin"))?;
    std::fs::create_dir_all(base.join("project/src"))?;
    std::fs::create_dir_all(base.join("project/.home"))?;
    Ok(base)
}

pub fn run() -> Result<i32> {
    let t0 = Instant::now();
    let base = temp_root()?;
    let result = run_in(&base);
    let _ = std::fs::remove_dir_all(&base);
    result?;
    println!("\ndemo finished in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(0)
}

fn run_in(base: &Path) -> Result<()> {
    let claude = base.join("bin/claude");
    std::fs::write(
        &claude,
        "#!/bin/sh\n# a simulated agent process: runs its child and waits\n\"$@\"\n",
    )?;
    std::fs::set_permissions(&claude, std::fs::Permissions::from_mode(0o755))?;
    let mut d = Demo {
        exe: std::env::current_exe().context("cannot locate this binary")?,
        root: base.join("project"),
        claude,
        step: 0,
    };
    println!(
        "orchestrator demo: three simulated Claude Code sessions in {}",
        d.root.display()
    );
    println!("(each is a real process named `claude` running `orchestrator serve`; hooks run as Claude Code runs them)");

    d.header("a crashed session from yesterday left a stale anchor behind");
    let state = d.root.join(".orchestrator-state");
    std::fs::create_dir_all(&state)?;
    std::fs::write(
        state.join("active-session-4194000"),
        r#"{"session_id":"0ld5e55i-crashed","pid":4194000,"pid_start_ticks":1,"written_at":"2026-11-23T09:00:00.000Z"}"#,
    )?;
    println!("wrote .orchestrator-state/active-session-4194000 (its process is long gone)");

    d.header("three sessions start: alpha (prime), beta, gamma");
    let mut alpha = d.launch("alpha", "a1fa0000-1111-4000-8000-00000000a1fa", "prime")?;
    let mut beta = d.launch(
        "beta",
        "be7a0000-2222-4000-8000-00000000be7a",
        "subordinate",
    )?;
    let mut gamma = d.launch(
        "gamma",
        "9a33a000-3333-4000-8000-000000009a33",
        "subordinate",
    )?;
    for a in [&alpha, &beta, &gamma] {
        d.hook(a, "SessionStart", json!({"source": "startup"}))?;
    }
    if !state.join("active-session-4194000").exists() {
        println!(
            "(the stale anchor from step 1 is gone: the first server's startup hygiene reaped it, \
             so nobody mistook the dead session for a live one)"
        );
    }

    d.header("they say what they work on (MCP tool update_session_task)");
    println!(
        "alpha: {}",
        alpha.tool(
            "update_session_task",
            json!({"task": "refactor the parser into modules"})
        )?
    );
    println!(
        "beta:  {}",
        beta.tool(
            "update_session_task",
            json!({"task": "add tests for parser error messages"})
        )?
    );
    println!(
        "gamma: {}",
        gamma.tool(
            "update_session_task",
            json!({"task": "write the user guide"})
        )?
    );

    d.header("beta's next prompt overlaps alpha's work");
    d.hook(
        &beta,
        "UserPromptSubmit",
        json!({"prompt": "improve the parser error messages"}),
    )?;

    d.header("alpha edits src/parser.rs, then beta tries to edit it too");
    let edit = |f: &str| json!({"tool_name": "Edit", "tool_input": {"file_path": f, "old_string": "a", "new_string": "b"}});
    d.hook(&alpha, "PreToolUse", edit("src/parser.rs"))?;
    d.hook(
        &beta,
        "PreToolUse",
        edit(&d.root.join("src/parser.rs").to_string_lossy()),
    )?;

    d.header("they message each other");
    println!("alpha: {}", alpha.tool("send_message", json!({"to": "@beta", "body": "I'm splitting parser.rs into modules; please hold off editing it for 10 minutes."}))?);
    println!("gamma: {}", gamma.tool("send_message", json!({"to": "@all", "body": "heads up: the docs build is broken on main, don't push docs changes"}))?);
    d.hook(&beta, "UserPromptSubmit", json!({"prompt": "ok, continue"}))?;
    println!("beta:  {}", beta.tool("send_message", json!({"to": "@PA", "body": "ack, I'll write the tests against the new module layout", "reply_to": 1}))?);
    println!("beta:  {}", beta.tool("ack", json!({"message_id": 1}))?);
    d.hook(&alpha, "UserPromptSubmit", json!({"prompt": "status?"}))?;

    d.header("beta runs /clear: a new conversation in the same terminal keeps its claim and mail");
    println!("beta:  {}", beta.tool("claim", json!({"paths_or_globs": ["tests/parser/**"], "exclusive": true, "reason": "parser tests"}))?);
    println!(
        "gamma: {}",
        gamma.tool(
            "send_message",
            json!({"to": "@beta", "body": "the docs build is green again"})
        )?
    );
    d.hook(&beta, "SessionEnd", json!({"reason": "clear"}))?;
    beta.id = "be7a0001-2222-4000-8000-00000000be7a".into();
    d.hook(&beta, "SessionStart", json!({"source": "clear"}))?;
    println!(
        "(/clear began a new conversation: beta's task did not carry over — the new one says \
         what it works on when it knows — but its name, role, claim and queued mail did)"
    );

    d.header("alpha tries to edit a file under beta's exclusive claim: denied");
    d.hook(&alpha, "PreToolUse", edit("tests/parser/errors.rs"))?;

    d.header("gamma is killed with kill -9 (no SessionEnd, nothing cleaned up)");
    // SAFETY: kill(2) on the process group this demo created.
    unsafe {
        libc::kill(-gamma.pid(), libc::SIGKILL);
    }
    let _ = gamma.child.wait();
    gamma.stdin = None;
    println!("gamma's row and anchor are still on disk; liveness reads the process table:");
    d.hook(
        &alpha,
        "UserPromptSubmit",
        json!({"prompt": "who is still here?"}),
    )?;

    d.header(
        "`orchestrator gc` reaps the anchor the kill left behind (its row went at the read above)",
    );
    print!("{}", d.cli(&["gc"])?);

    d.header("the person's view: `orchestrator status`");
    print!("{}", d.cli(&["status"])?);
    println!("(MSGS: messages delivered to that session and not yet acked)");
    drop(gamma);
    drop(alpha);
    drop(beta);
    Ok(())
}
