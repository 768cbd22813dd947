//! Codex CLI and Gemini CLI sessions beside Claude Code: fake agents whose /proc looks like
//! each CLI's (a process named `codex`; `node` running `…/bundle/gemini.js`) run hooks as
//! their own children, with payloads shaped like each CLI's (tests/fixtures/hooks/codex/,
//! …/gemini/), so the ancestor walk, the adapters and the answers are the real ones.

mod common;
use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The fake agent: a shell that runs each hook the test hands it (a directory named on
/// its FIFO: `args`, `in`, optional `env`; it writes `out`, `err`, `rc`) as its own child,
/// so the hook's parent is the agent process. Arguments, if any, run as a child too.
const FAKE_AGENT: &str = r#"#!/bin/sh
exec 3<&0
if [ $# -gt 0 ]; then "$@" <&3 3<&- & fi
while :; do
  read -r d < "$TEST_FIFO" || continue
  [ "$d" = quit ] && exit 0
  ( if [ -f "$d/env" ]; then set -a; . "$d/env"; set +a; fi
    exec "$TEST_ORCH" hook $(cat "$d/args") < "$d/in" > "$d/out" 2> "$d/err" 3<&- )
  echo $? > "$d/rc.tmp"; mv "$d/rc.tmp" "$d/rc"
done
"#;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cli {
    Claude,
    Codex,
    Gemini,
}

impl Cli {
    fn name(self) -> &'static str {
        match self {
            Cli::Claude => "claude",
            Cli::Codex => "codex",
            Cli::Gemini => "gemini",
        }
    }
}

struct Fake {
    child: Child,
    fifo: PathBuf,
    work: PathBuf,
    n: usize,
    /// Held open for a server the agent runs (it stops when its stdin closes).
    _stdin: Option<std::process::ChildStdin>,
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn json(&self) -> Option<Value> {
        (!self.stdout.trim().is_empty())
            .then(|| serde_json::from_str(&self.stdout).expect("answer is one JSON object"))
    }
    fn context(&self) -> String {
        self.json()
            .and_then(|v| {
                v["hookSpecificOutput"]["additionalContext"]
                    .as_str()
                    .map(str::to_string)
            })
            .unwrap_or_default()
    }
}

/// Writes the fake programs once per project: `agents/claude`, `agents/codex`, and
/// `agents/node` (a link to /bin/sh, so /proc says `node`) with the script at
/// `agents/gemini-cli/bundle/gemini.js`; plus `agents/node-other/server.js`.
fn programs(p: &Project) -> PathBuf {
    let dir = p.root.parent().expect("parent").join("agents");
    if dir.exists() {
        return dir;
    }
    std::fs::create_dir_all(dir.join("gemini-cli/bundle")).expect("mkdir");
    std::fs::create_dir_all(dir.join("node-other")).expect("mkdir");
    for f in [
        dir.join("claude"),
        dir.join("codex"),
        dir.join("gemini-cli/bundle/gemini.js"),
        dir.join("node-other/server.js"),
    ] {
        std::fs::write(&f, FAKE_AGENT).expect("write fake");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    std::os::unix::fs::symlink("/bin/sh", dir.join("node")).expect("node link");
    dir
}

/// Starts a fake agent of `cli` (Gemini: `node …/gemini.js`); `script` overrides the
/// node script (a node program that is no agent).
fn start(p: &Project, cli: Cli, script: Option<&str>, args: &[&str]) -> Fake {
    let dir = programs(p);
    let (program, mut argv): (PathBuf, Vec<String>) = match cli {
        Cli::Claude => (dir.join("claude"), vec![]),
        Cli::Codex => (dir.join("codex"), vec![]),
        Cli::Gemini => (
            dir.join("node"),
            vec![dir
                .join(script.unwrap_or("gemini-cli/bundle/gemini.js"))
                .display()
                .to_string()],
        ),
    };
    argv.extend(args.iter().map(|s| s.to_string()));
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let k = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let work = p
        .root
        .parent()
        .expect("parent")
        .join(format!("runs-{}-{k}", cli.name()));
    std::fs::create_dir_all(&work).expect("mkdir work");
    let fifo = work.join("fifo");
    let c = std::ffi::CString::new(fifo.display().to_string()).expect("cstr");
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let mut cmd = p.cmd(&program);
    let log = std::fs::File::create(work.join("agent.err")).expect("log");
    cmd.args(&argv)
        .env("TEST_FIFO", &fifo)
        // serve says what it bound to only at info level; these tests read that line.
        .env("ORCHESTRATOR_LOG", "info")
        .env("TEST_ORCH", BIN)
        .stdin(if args.is_empty() {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0);
    let mut child = spawn_retrying(&mut cmd);
    let stdin = child.stdin.take();
    Fake {
        child,
        fifo,
        work,
        n: 0,
        _stdin: stdin,
    }
}

impl Fake {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// What the agent and the programs it runs wrote on stderr.
    fn log(&self) -> String {
        std::fs::read_to_string(self.work.join("agent.err")).unwrap_or_default()
    }

    /// Runs `orchestrator hook <args>` as this agent's child with `payload` on stdin.
    fn hook(&mut self, args: &[&str], payload: &str, env: &[(&str, &str)]) -> Ran {
        self.n += 1;
        let d = self.work.join(format!("h{}", self.n));
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("args"), args.join(" ")).expect("args");
        std::fs::write(d.join("in"), payload).expect("in");
        let env_text: String = env
            .iter()
            .map(|(k, v)| format!("{k}='{}'\n", v.replace('\'', "'\\''")))
            .collect();
        std::fs::write(d.join("env"), env_text).expect("env");
        // Hang guards, not timing assertions: the agent is asked until it listens.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let w = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&self.fifo);
            if let Ok(mut w) = w {
                use std::io::Write;
                w.write_all(format!("{}\n", d.display()).as_bytes())
                    .expect("write fifo");
                break;
            }
            assert!(Instant::now() < deadline, "fake agent never listened");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            wait_until(Duration::from_secs(60), || d.join("rc").exists()),
            "hook never finished"
        );
        let read = |f: &str| std::fs::read_to_string(d.join(f)).unwrap_or_default();
        Ran {
            code: read("rc").trim().parse().unwrap_or(-1),
            stdout: read("out"),
            stderr: read("err"),
        }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        kill(-self.pid(), libc::SIGKILL);
        let _ = self.child.wait();
    }
}

fn fixtures(cli: &str) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hooks")
        .join(cli);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|f| {
            (
                f.file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default(),
                std::fs::read_to_string(&f).expect("read fixture"),
            )
        })
        .collect()
}

fn field(body: &str, key: &str) -> String {
    let v: Value = serde_json::from_str(body).expect("fixture json");
    v[key].as_str().expect("field").to_string()
}

/// A payload in `cli`'s shape for `event` (raw name), from its fixture with `id` and `extra`.
fn shaped(cli: Cli, fixture: &str, id: &str, extra: Value) -> String {
    let (_, body) = fixtures(cli.name())
        .into_iter()
        .find(|(n, _)| n == fixture)
        .unwrap_or_else(|| panic!("no fixture {fixture}"));
    let mut v: Value = serde_json::from_str(&body).expect("json");
    v["session_id"] = json!(id);
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, val) in e {
            o.insert(k.clone(), val.clone());
        }
    }
    v.to_string()
}

/// The environment each CLI gives its hooks.
fn hook_env(cli: Cli, p: &Project, id: &str) -> Vec<(&'static str, String)> {
    match cli {
        Cli::Gemini => vec![
            ("GEMINI_SESSION_ID", id.to_string()),
            ("GEMINI_PROJECT_DIR", p.root.display().to_string()),
            ("CLAUDE_PROJECT_DIR", p.root.display().to_string()),
        ],
        Cli::Claude => vec![("CLAUDE_CODE_SESSION_ID", id.to_string())],
        Cli::Codex => vec![],
    }
}

fn run_hook(f: &mut Fake, p: &Project, cli: Cli, event: &str, payload: &str, id: &str) -> Ran {
    let env = hook_env(cli, p, id);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    f.hook(&[event], payload, &env)
}

fn clean(r: &Ran, what: &str) {
    assert_eq!(r.code, 0, "{what}: exit code; stderr {}", r.stderr);
    assert!(r.stderr.is_empty(), "{what}: stderr {:?}", r.stderr);
}

fn status(p: &Project) -> Vec<Value> {
    let out = p.run(&["status", "--json"]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice::<Value>(&out.stdout)
        .expect("status json")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn row<'a>(rows: &'a [Value], id: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["session_id"] == id)
        .unwrap_or_else(|| panic!("no row {id} in {rows:?}"))
}

#[test]
fn every_codex_and_gemini_fixture_answers_in_its_cli_format() {
    let p = Project::new();
    for cli in [Cli::Codex, Cli::Gemini] {
        let mut agent = start(&p, cli, None, &[]);
        for (name, body) in fixtures(cli.name()) {
            let event = field(&body, "hook_event_name");
            let id = field(&body, "session_id");
            let r = run_hook(&mut agent, &p, cli, &event, &body, &id);
            clean(&r, &name);
            let Some(ans) = r.json() else { continue };
            match cli {
                Cli::Codex => assert_eq!(
                    ans["hookSpecificOutput"]["hookEventName"], event,
                    "{name}: {ans}"
                ),
                _ => {
                    // Gemini reads no permissionDecision; context only where it reads it.
                    assert!(!r.stdout.contains("permissionDecision"), "{name}: {ans}");
                    assert!(
                        ["SessionStart", "BeforeAgent", "AfterTool", "BeforeTool"]
                            .contains(&event.as_str()),
                        "{name} answered: {ans}"
                    );
                    if event != "BeforeTool" {
                        assert!(ans.get("decision").is_none(), "{name}: {ans}");
                    }
                }
            }
        }
        // The row is the agent's own, and says which CLI it runs.
        let rows = status(&p);
        let id = field(&fixtures(cli.name())[0].1, "session_id");
        if let Some(r) = rows.iter().find(|r| r["session_id"] == id.as_str()) {
            assert_eq!(r["agent_cli"], cli.name());
            assert_eq!(r["agent_pid"], agent.pid());
        }
    }
}

#[test]
fn a_mixed_fleet_sees_itself_correctly() {
    let p = Project::new();
    let fleet = [
        (
            Cli::Claude,
            "c1aude00-0000-4000-8000-000000000001",
            "SessionStart",
        ),
        (
            Cli::Codex,
            "019a8f3c-c0de-7000-8000-000000000002",
            "SessionStart",
        ),
        (
            Cli::Gemini,
            "6e3a1b2c-9e31-4000-8000-000000000003",
            "SessionStart",
        ),
    ];
    let mut agents: Vec<Fake> = Vec::new();
    for (cli, id, event) in fleet {
        let mut a = start(&p, cli, None, &[]);
        let body = match cli {
            Cli::Claude => payload(id, json!({"hook_event_name": event, "source": "startup"})),
            _ => shaped(cli, "SessionStart.json", id, json!({})),
        };
        let r = run_hook(&mut a, &p, cli, event, &body, id);
        clean(&r, &format!("{cli:?} SessionStart"));
        assert!(r.context().contains("you are session SA-"), "{}", r.stdout);
        agents.push(a);
    }
    // One row per agent process, each naming its CLI.
    let rows = status(&p);
    assert_eq!(rows.len(), 3, "{rows:?}");
    for ((cli, id, _), a) in fleet.iter().zip(&agents) {
        let r = row(&rows, id);
        assert_eq!(r["agent_cli"], cli.name(), "{r}");
        assert_eq!(r["agent_pid"], a.pid(), "{r}");
    }
    // Each sees the two others, named with their CLI, and never itself.
    for (i, (cli, id, _)) in fleet.iter().enumerate() {
        let (event, body) = match cli {
            Cli::Claude => (
                "UserPromptSubmit",
                payload(
                    id,
                    json!({"hook_event_name": "UserPromptSubmit", "prompt": "hello"}),
                ),
            ),
            Cli::Codex => (
                "UserPromptSubmit",
                shaped(*cli, "UserPromptSubmit.json", id, json!({})),
            ),
            Cli::Gemini => (
                "BeforeAgent",
                shaped(*cli, "BeforeAgent.json", id, json!({})),
            ),
        };
        let r = run_hook(&mut agents[i], &p, *cli, event, &body, id);
        clean(&r, &format!("{cli:?} prompt"));
        let ctx = r.context();
        assert!(ctx.contains("2 sibling"), "{cli:?} sees: {ctx}");
        for (other, oid, _) in fleet.iter() {
            let line = ctx
                .lines()
                .find(|l| l.contains(&format!("SA-{}", &oid[..8])));
            if oid == id {
                assert!(line.is_none(), "{cli:?} sees itself: {ctx}");
            } else {
                let line = line.unwrap_or_else(|| panic!("{cli:?} misses {other:?}: {ctx}"));
                assert!(
                    line.contains(&format!("({}, subordinate)", other.name())),
                    "{line}"
                );
            }
        }
    }
    // status names each CLI in its table too.
    let table = String::from_utf8_lossy(&p.run(&["status"]).stdout).to_string();
    assert!(table.contains("AGENT"), "{table}");
    for (cli, id, _) in fleet {
        let line = table
            .lines()
            .find(|l| l.starts_with(&format!("SA-{}", &id[..8])))
            .unwrap_or_else(|| panic!("{table}"));
        assert!(line.contains(cli.name()), "{line}");
    }
    // Gemini's /clear: SessionEnd(clear) then SessionStart(clear) with a new id moves the
    // agent's row; the others see the new id, not the old one.
    let (old, new) = (fleet[2].1, "6e3a1b2c-c1ea-4000-8000-000000000004");
    let r = run_hook(
        &mut agents[2],
        &p,
        Cli::Gemini,
        "SessionEnd",
        &shaped(
            Cli::Gemini,
            "SessionEnd.json",
            old,
            json!({"reason": "clear"}),
        ),
        old,
    );
    clean(&r, "gemini SessionEnd clear");
    let r = run_hook(
        &mut agents[2],
        &p,
        Cli::Gemini,
        "SessionStart",
        &shaped(
            Cli::Gemini,
            "SessionStart.json",
            new,
            json!({"source": "clear"}),
        ),
        new,
    );
    clean(&r, "gemini SessionStart clear");
    let rows = status(&p);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|r| r["session_id"] != old), "{rows:?}");
    assert_eq!(row(&rows, new)["agent_pid"], agents[2].pid());
    assert_eq!(row(&rows, new)["agent_cli"], "gemini");
    // A dead Codex agent is gone at once (process truth, not heartbeats).
    let codex_id = fleet[1].1;
    kill(-agents[1].pid(), libc::SIGKILL);
    let _ = agents[1].child.wait();
    assert!(
        status(&p).iter().all(|r| r["session_id"] != codex_id),
        "a killed codex is not live"
    );
}

#[test]
fn claims_refuse_a_codex_patch_in_codex_format() {
    let p = Project::new();
    let holder = "h01der00-0000-4000-8000-00000000000a";
    let mut claude = start(&p, Cli::Claude, None, &[]);
    let r = run_hook(
        &mut claude,
        &p,
        Cli::Claude,
        "SessionStart",
        &payload(
            holder,
            json!({"hook_event_name": "SessionStart", "source": "startup"}),
        ),
        holder,
    );
    clean(&r, "claude start");
    let out = p.run(&[
        "claim",
        "--session",
        "SA-h01der00",
        "--exclusive",
        "--reason",
        "core rewrite",
        "src/core/**",
    ]);
    assert!(out.status.success(), "{out:?}");
    let id = "019a8f3c-7b2e-7d40-9c1e-5f6a7b8c9d0e";
    let mut codex = start(&p, Cli::Codex, None, &[]);
    clean(
        &run_hook(
            &mut codex,
            &p,
            Cli::Codex,
            "SessionStart",
            &shaped(Cli::Codex, "SessionStart.json", id, json!({})),
            id,
        ),
        "codex start",
    );
    // The claimed path is only the patch's move target: still refused, in Codex's format.
    let patch =
        "*** Begin Patch\n*** Add File: docs/notes.md\n+hi\n*** Update File: src/lexer.rs\n\
                 *** Move to: src/core/lexer.rs\n@@\n-a\n+b\n*** End Patch\n";
    let body = shaped(
        Cli::Codex,
        "PreToolUse-apply_patch.json",
        id,
        json!({"tool_input": {"command": patch}}),
    );
    let r = run_hook(&mut codex, &p, Cli::Codex, "PreToolUse", &body, id);
    clean(&r, "codex apply_patch");
    let ans = r.json().expect("a refusal");
    let hso = &ans["hookSpecificOutput"];
    assert_eq!(hso["hookEventName"], "PreToolUse");
    assert_eq!(hso["permissionDecision"], "deny", "{ans}");
    let reason = hso["permissionDecisionReason"].as_str().unwrap_or("");
    assert!(
        reason.contains("src/core/lexer.rs") && reason.contains("SA-h01der00"),
        "{reason}"
    );
    // Refused whole: none of the patch's files entered the ledger.
    assert!(row(&status(&p), id)["files"]
        .as_array()
        .is_some_and(|f| f.is_empty()));
    // A patch clear of claims goes through, and every path it names is recorded.
    let patch = "*** Begin Patch\n*** Add File: docs/notes.md\n+hi\n*** Update File: src/lexer.rs\n\
                 *** Move to: src/lex/mod.rs\n@@\n-a\n+b\n*** Delete File: src/old.rs\n*** End Patch\n";
    let body = shaped(
        Cli::Codex,
        "PreToolUse-apply_patch.json",
        id,
        json!({"tool_input": {"command": patch}}),
    );
    let r = run_hook(&mut codex, &p, Cli::Codex, "PreToolUse", &body, id);
    clean(&r, "codex clear patch");
    assert!(!r.stdout.contains("permissionDecision"), "{}", r.stdout);
    let files: Vec<String> = row(&status(&p), id)["files"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for f in [
        "docs/notes.md",
        "src/lexer.rs",
        "src/lex/mod.rs",
        "src/old.rs",
    ] {
        assert!(files.iter().any(|x| x == f), "{f} not in {files:?}");
    }
    // Codex cannot ask: with ORCHESTRATOR_FILE_GUARD=ask the question is a refusal that
    // says what to ask.
    let body = shaped(
        Cli::Codex,
        "PreToolUse-apply_patch.json",
        id,
        json!({"tool_input": {"command": "*** Begin Patch\n*** Update File: src/core/a.rs\n@@\n-a\n+b\n*** End Patch\n"}}),
    );
    let r = codex.hook(
        &["PreToolUse"],
        &body,
        &[("ORCHESTRATOR_FILE_GUARD", "ask")],
    );
    clean(&r, "codex ask");
    let ans = r.json().expect("answer");
    assert_eq!(
        ans["hookSpecificOutput"]["permissionDecision"], "deny",
        "{ans}"
    );
    assert!(ans["hookSpecificOutput"]["permissionDecisionReason"]
        .as_str()
        .is_some_and(|s| s.contains("cannot ask")));
}

#[test]
fn claims_refuse_gemini_edits_in_gemini_format() {
    let p = Project::new();
    let holder = "h01der00-0000-4000-8000-00000000000b";
    let mut codex = start(&p, Cli::Codex, None, &[]);
    clean(
        &run_hook(
            &mut codex,
            &p,
            Cli::Codex,
            "SessionStart",
            &shaped(Cli::Codex, "SessionStart.json", holder, json!({})),
            holder,
        ),
        "codex start",
    );
    let out = p.run(&[
        "claim",
        "--session",
        "SA-h01der00",
        "--exclusive",
        "src/http.rs",
    ]);
    assert!(out.status.success(), "{out:?}");
    let id = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
    let mut gemini = start(&p, Cli::Gemini, None, &[]);
    clean(
        &run_hook(
            &mut gemini,
            &p,
            Cli::Gemini,
            "SessionStart",
            &shaped(Cli::Gemini, "SessionStart.json", id, json!({})),
            id,
        ),
        "gemini start",
    );
    let abs = p.root.join("src/http.rs").display().to_string();
    for fixture in ["BeforeTool-write_file.json", "BeforeTool-replace.json"] {
        let mut v: Value =
            serde_json::from_str(&shaped(Cli::Gemini, fixture, id, json!({}))).expect("json");
        v["tool_input"]["file_path"] = json!(abs);
        let r = run_hook(
            &mut gemini,
            &p,
            Cli::Gemini,
            "BeforeTool",
            &v.to_string(),
            id,
        );
        clean(&r, fixture);
        let ans = r.json().expect("a refusal");
        assert_eq!(ans["decision"], "deny", "{fixture}: {ans}");
        assert!(
            ans["reason"]
                .as_str()
                .is_some_and(|s| s.contains("src/http.rs") && s.contains("SA-h01der00")),
            "{ans}"
        );
        assert!(ans.get("hookSpecificOutput").is_none(), "{ans}");
    }
}

#[test]
fn gemini_hears_a_sibling_edit_warning_with_the_tool_result() {
    let p = Project::new();
    let sib = "5ib11ng0-0000-4000-8000-00000000000c";
    let mut claude = start(&p, Cli::Claude, None, &[]);
    for (event, extra) in [
        ("SessionStart", json!({"source": "startup"})),
        (
            "PreToolUse",
            json!({"tool_name": "Edit", "tool_input": {"file_path": "src/http.rs"}}),
        ),
    ] {
        let mut body: Value = serde_json::from_str(&payload(sib, extra)).expect("json");
        body["hook_event_name"] = json!(event);
        clean(
            &run_hook(&mut claude, &p, Cli::Claude, event, &body.to_string(), sib),
            event,
        );
    }
    let id = "7c9e6679-7425-40de-944b-e07fc1f90ae8";
    let mut gemini = start(&p, Cli::Gemini, None, &[]);
    let go = |g: &mut Fake, event: &str, fixture: &str| {
        let r = run_hook(
            g,
            &p,
            Cli::Gemini,
            event,
            &shaped(Cli::Gemini, fixture, id, json!({})),
            id,
        );
        clean(&r, fixture);
        r
    };
    go(&mut gemini, "SessionStart", "SessionStart.json");
    // BeforeTool drops context: the warning is not lost there…
    let r = go(&mut gemini, "BeforeTool", "BeforeTool-write_file.json");
    assert!(r.stdout.trim().is_empty(), "{}", r.stdout);
    // …it arrives with the tool's result.
    let r = go(&mut gemini, "AfterTool", "AfterTool-write_file.json");
    let ctx = r.context();
    assert!(
        ctx.contains("sibling edit warning") && ctx.contains("SA-5ib11ng0"),
        "{ctx}"
    );
    assert_eq!(
        r.json().expect("json")["hookSpecificOutput"]["hookEventName"],
        "AfterTool"
    );
}

#[test]
fn gemini_shell_commands_go_through_the_bash_ledger() {
    let p = Project::new();
    std::fs::create_dir_all(p.root.join("src")).expect("mkdir");
    std::fs::write(p.root.join("src/a.rs"), "a").expect("write");
    let id = "7c9e6679-7425-40de-944b-e07fc1f90ae9";
    let mut gemini = start(&p, Cli::Gemini, None, &[]);
    let mut go = |event: &str, fixture: &str, extra: Value| {
        let r = run_hook(
            &mut gemini,
            &p,
            Cli::Gemini,
            event,
            &shaped(Cli::Gemini, fixture, id, extra),
            id,
        );
        clean(&r, fixture);
        r
    };
    go("SessionStart", "SessionStart.json", json!({}));
    let cmd = json!({"tool_input": {"command": "echo b > src/b.rs", "description": "write"}});
    go(
        "BeforeTool",
        "BeforeTool-run_shell_command.json",
        cmd.clone(),
    );
    // The command runs (here: the test does what it would have done).
    std::fs::write(p.root.join("src/b.rs"), "b").expect("write");
    go("AfterTool", "AfterTool-run_shell_command.json", cmd);
    let files = row(&status(&p), id)["files"].clone();
    assert!(
        files
            .as_array()
            .is_some_and(|a| a.iter().any(|f| f == "src/b.rs")),
        "{files}"
    );
}

#[test]
fn node_running_something_else_is_no_agent() {
    let p = Project::new();
    let id = "4e0de000-0000-4000-8000-00000000000d";
    let mut node = start(&p, Cli::Gemini, Some("node-other/server.js"), &[]);
    let r = node.hook(
        &["SessionStart", "--agent", "gemini"],
        &shaped(Cli::Gemini, "SessionStart.json", id, json!({})),
        &[],
    );
    clean(&r, "start under plain node");
    let rows = status(&p);
    let r = row(&rows, id);
    assert!(r["agent_pid"].is_null(), "{r}");
    assert_eq!(r["agent_cli"], "gemini");
}

#[test]
fn a_hook_never_breaks_codex_or_gemini() {
    let p = Project::new();
    let mut gemini = start(&p, Cli::Gemini, None, &[]);
    let mut codex = start(&p, Cli::Codex, None, &[]);
    let id = "7c9e6679-7425-40de-944b-e07fc1f90aea";
    let broken = |r: Ran, needle: &str| {
        assert_eq!(r.code, 0);
        assert!(r.stdout.is_empty(), "{}", r.stdout);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(r.stderr.contains(needle), "{}", r.stderr);
    };
    broken(
        gemini.hook(&["BeforeTool"], "{not json", &[]),
        "not valid JSON",
    );
    broken(
        codex.hook(
            &["BeforeTool", "--agent", "codex"],
            &shaped(Cli::Codex, "SessionStart.json", id, json!({})),
            &[],
        ),
        "not a Codex CLI hook event",
    );
    broken(
        codex.hook(&["PreToolUse", "--agent", "vim"], "{}", &[]),
        "unknown --agent",
    );
    broken(
        codex.hook(&["AfterModelX"], "{}", &[]),
        "unknown hook event",
    );
}

#[test]
fn a_server_under_codex_binds_to_the_session_its_hook_started() {
    let p = Project::new();
    let id = "019a8f3c-5e7e-7000-8000-00000000000e";
    // `codex orchestrator serve`: the server is the fake codex's child, as Codex starts
    // MCP servers; the hook runs as another child.
    let mut codex = start(&p, Cli::Codex, None, &[BIN, "serve"]);
    clean(
        &run_hook(
            &mut codex,
            &p,
            Cli::Codex,
            "SessionStart",
            &shaped(Cli::Codex, "SessionStart.json", id, json!({})),
            id,
        ),
        "codex start",
    );
    // The server finds the anchor its agent process's hook wrote (no CLAUDE_* env) and
    // binds to that session: one row, the agent's.
    assert!(
        wait_until(Duration::from_secs(30), || codex
            .log()
            .contains("SA-019a8f3c")),
        "server log: {}",
        codex.log()
    );
    let rows = status(&p);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(row(&rows, id)["agent_pid"], codex.pid());
    assert_eq!(row(&rows, id)["agent_cli"], "codex");
}

#[test]
fn install_codex_and_gemini_is_idempotent_and_doctor_tells_untrusted_codex_hooks() {
    let p = Project::new();
    std::fs::create_dir_all(p.root.join(".gemini")).expect("mkdir");
    std::fs::write(
        p.root.join(".gemini/settings.json"),
        r#"{"theme": "dark", "hooks": {"BeforeTool": [{"hooks": [{"type": "command", "command": "audit.sh"}]}]}}"#,
    )
    .expect("seed settings");
    let dry = p.run(&["install", "--codex", "--gemini", "--dry-run"]);
    assert!(dry.status.success(), "{dry:?}");
    assert!(String::from_utf8_lossy(&dry.stdout).contains("would change"));
    assert!(!p.root.join(".codex/hooks.json").exists(), "dry run wrote");
    let out = p.run(&["install", "--codex", "--gemini"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("trust"), "{text}");
    assert!(p
        .root
        .join(".gemini/settings.json.orchestrator.bak")
        .exists());
    let settings: Value = serde_json::from_str(
        &std::fs::read_to_string(p.root.join(".gemini/settings.json")).expect("read"),
    )
    .expect("json");
    assert_eq!(settings["theme"], "dark");
    assert_eq!(
        settings["hooks"]["BeforeTool"][0]["hooks"][0]["command"],
        "audit.sh"
    );
    assert_eq!(
        settings["hooks"]["SessionEnd"][0]["hooks"][0]["timeout"],
        2000
    );
    let toml = std::fs::read_to_string(p.root.join(".codex/config.toml")).expect("toml");
    assert!(toml.contains("[mcp_servers.orchestrator]"), "{toml}");
    // Twice changes nothing.
    let hooks_before = std::fs::read_to_string(p.root.join(".codex/hooks.json")).expect("read");
    let again = p.run(&["install", "--codex", "--gemini"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("already installed"));
    assert_eq!(
        std::fs::read_to_string(p.root.join(".codex/hooks.json")).expect("read"),
        hooks_before
    );
    // Doctor: present but untrusted is a problem, with the way out.
    let doc = p.run(&["doctor"]);
    let d = String::from_utf8_lossy(&doc.stdout).to_string();
    assert_eq!(doc.status.code(), Some(1), "{d}");
    assert!(
        d.contains("not trusted") && d.contains("does not trust"),
        "{d}"
    );
    assert!(d.contains("Gemini CLI hooks in"), "{d}");
    // Trusted project, every hook trusted but one.
    let hooks: Value = serde_json::from_str(&hooks_before).expect("json");
    let file = p.root.join(".codex/hooks.json");
    let mut cfg = format!(
        "[projects.\"{}\"]\ntrust_level = \"trusted\"\n",
        p.root.display()
    );
    let events: Vec<String> = hooks["hooks"]
        .as_object()
        .expect("hooks")
        .keys()
        .cloned()
        .collect();
    let snake = |e: &str| {
        let mut s = String::new();
        for (i, c) in e.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                s.push('_');
            }
            s.push(c.to_ascii_lowercase());
        }
        s
    };
    for e in events.iter().skip(1) {
        cfg.push_str(&format!(
            "[hooks.state.\"{}:{}:0:0\"]\ntrusted_hash = \"sha256:00\"\n",
            file.display(),
            snake(e)
        ));
    }
    std::fs::create_dir_all(p.home.join(".codex")).expect("mkdir");
    std::fs::write(p.home.join(".codex/config.toml"), &cfg).expect("cfg");
    let d = String::from_utf8_lossy(&p.run(&["doctor"]).stdout).to_string();
    assert!(!d.contains("does not trust"), "{d}");
    assert!(
        d.contains(&format!(
            "1 of {} not trusted ({})",
            events.len(),
            events[0]
        )),
        "{d}"
    );
    cfg.push_str(&format!(
        "[hooks.state.\"{}:{}:0:0\"]\ntrusted_hash = \"sha256:00\"\n",
        file.display(),
        snake(&events[0])
    ));
    std::fs::write(p.home.join(".codex/config.toml"), &cfg).expect("cfg");
    let doc = p.run(&["doctor"]);
    let d = String::from_utf8_lossy(&doc.stdout).to_string();
    assert!(d.contains("trusted (codex asks again"), "{d}");
    assert!(!d.contains("FAIL"), "{d}");
}

#[test]
fn message_status_says_a_gemini_recipient_gets_mail_at_its_next_turn() {
    let p = Project::new();
    let gid = "6e3a1b2c-9e31-4000-8000-0000000000f1";
    let mut gemini = start(&p, Cli::Gemini, None, &[]);
    clean(
        &run_hook(
            &mut gemini,
            &p,
            Cli::Gemini,
            "SessionStart",
            &shaped(Cli::Gemini, "SessionStart.json", gid, json!({})),
            gid,
        ),
        "gemini start",
    );
    let mut sender = p.agent_with_server(&[
        ("CLAUDE_CODE_SESSION_ID", "5e0de700-aaaa"),
        ("ORCHESTRATOR_CHANNEL", "off"),
    ]);
    sender.initialize();
    let (t, err) = sender.call(
        "send_message",
        json!({"to": "@SA-6e3a1b2c", "body": "please rebase"}),
    );
    assert!(!err, "{t}");
    let (t, err) = sender.call("message_status", json!({"message_id": 1}));
    assert!(!err, "{t}");
    assert!(t.contains("next turn") && t.contains("Gemini"), "{t}");
    // Its next turn brings it.
    let r = run_hook(
        &mut gemini,
        &p,
        Cli::Gemini,
        "BeforeAgent",
        &shaped(Cli::Gemini, "BeforeAgent.json", gid, json!({})),
        gid,
    );
    clean(&r, "gemini prompt");
    assert!(r.context().contains("please rebase"), "{}", r.stdout);
    let (t, _) = sender.call("message_status", json!({"message_id": 1}));
    assert!(!t.contains("next turn"), "delivered now: {t}");
}
