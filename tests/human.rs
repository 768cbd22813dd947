//! The person's commands on scenarios built with real processes: status and doctor
//! output (normalized snapshots), watch in a pseudo-terminal and piped, and the demo.

mod common;
use common::*;
use serde_json::json;
use std::time::Duration;

/// Replaces run-specific values (ages, pids, paths) so output can be compared whole.
fn normalize(s: &str, p: &Project, pids: &[(i32, &str)]) -> String {
    let mut s = s.replace(&p.root.display().to_string(), "<root>");
    if let Some(i) = s.find("schema v") {
        let end = s[i + 8..].find(')').map(|e| i + 8 + e).unwrap_or(i + 8);
        s.replace_range(i + 8..end, "<n>");
    }
    for (pid, name) in pids {
        s = s.replace(&pid.to_string(), name);
    }
    let mut out = String::new();
    for line in s.lines() {
        out.push_str(&age_free(line));
        out.push('\n');
    }
    out
}

/// "12 s"/"3 min" → "<age>", keeping column layout irrelevant by squeezing spaces.
fn age_free(line: &str) -> String {
    let toks: Vec<&str> = line.split_whitespace().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if i + 1 < toks.len()
            && toks[i].chars().all(|c| c.is_ascii_digit())
            && ["s", "min", "h", "d"].contains(&toks[i + 1])
        {
            out.push("<age>".to_string());
            i += 2;
        } else {
            out.push(toks[i].to_string());
            i += 1;
        }
    }
    out.join(" ")
}

#[test]
fn status_snapshot() {
    let p = Project::new();
    let mut a = p.agent_with_server(&[
        ("CLAUDE_CODE_SESSION_ID", "5a5a5a5a-alpha"),
        ("ORCHESTRATOR_AGENT_NAME", "alpha"),
        ("ORCHESTRATOR_AGENT_ROLE", "prime"),
    ]);
    a.initialize();
    a.call("update_session_task", json!({"task": "refactor parser"}));
    let mut b = p.sleeping_agent();
    let env = vec![
        ("CLAUDE_PID", b.id().to_string()),
        ("ORCHESTRATOR_AGENT_NAME", "beta".to_string()),
    ];
    p.hook(
        "SessionStart",
        &payload("b0b0b0b0-beta", json!({"source":"startup"})),
        &env,
    );
    p.hook(
        "PreToolUse",
        &payload(
            "b0b0b0b0-beta",
            json!({"tool_name":"Write","tool_input":{"file_path":"src/a.rs","content":"x"}}),
        ),
        &env,
    );
    p.run(&["send", "@beta", "hello"]);
    let out = p.run(&["status"]);
    assert!(out.status.success());
    let got = normalize(
        &String::from_utf8_lossy(&out.stdout),
        &p,
        &[(a.pid, "<pidA>"), (b.id() as i32, "<pidB>")],
    );
    let want = "\
SESSION NAME AGENT ROLE TASK STATE SEEN PID MSGS FILES
SA-5a5a5a5a alpha claude prime refactor parser idle <age> <age> <pidA> 0 -
SA-b0b0b0b0 beta claude subordinate - idle <age> <age> <pidB> 1 src/a.rs
SA-b0b0b0b0: 1 message(s) wait for its next turn (no doorbell)
";
    assert_eq!(got, want);
    b.kill();
    let out = p.run(&["status", "--all"]);
    let got = normalize(
        &String::from_utf8_lossy(&out.stdout),
        &p,
        &[(a.pid, "<pidA>"), (b.id() as i32, "<pidB>")],
    );
    assert!(
        got.contains(
            "SA-b0b0b0b0 beta claude subordinate - dead (agent process gone or pid reused)"
        ),
        "{got}"
    );
    // A roster read buries the dead row; --all then reports how it ended.
    a.call("roster", json!({}));
    let out = p.run(&["status", "--all"]);
    let got = normalize(
        &String::from_utf8_lossy(&out.stdout),
        &p,
        &[(a.pid, "<pidA>"), (b.id() as i32, "<pidB>")],
    );
    assert!(got.contains("SA-b0b0b0b0 beta - subordinate - ended: killed or crashed (agent process gone, no clean exit)"), "{got}");
}

#[test]
fn doctor_snapshot_and_exit_codes() {
    let p = Project::new();
    let mut live = p.sleeping_agent();
    let env = vec![("CLAUDE_PID", live.id().to_string())];
    p.hook(
        "SessionStart",
        &payload("d0c0d0c0-live", json!({"source":"startup"})),
        &env,
    );
    let sd = p.state_dir();
    std::fs::write(
        sd.join("active-session-4000001"),
        r#"{"session_id":"deadbeef-x","pid":4000001,"pid_start_ticks":5,"written_at":""}"#,
    )
    .expect("w");
    let lp = live.id();
    std::fs::write(sd.join("active-session-foo"), "x").expect("w");
    std::os::unix::fs::symlink("/etc/hostname", sd.join("active-session-4000002"))
        .expect("symlink");
    let out = p.run(&["doctor"]);
    assert_eq!(out.status.code(), Some(1), "problems found → exit 1");
    let got = normalize(
        &String::from_utf8_lossy(&out.stdout),
        &p,
        &[(lp as i32, "<pid>")],
    );
    let want = "\
info project root <root>
info <root>/.orchestrator-state/active-session-4000001 was mode 644; narrowed to private
ok state dir private (mode 700)
ok database ok (quick_check; schema v<n>)
ok active-session-<pid> names SA-d0c0d0c0: valid, matches its registry row
FAIL active-session-4000001 names SA-deadbeef: stale, its process is not running
fix: orchestrator gc
FAIL active-session-4000002 is a symlink; orchestrator never follows it
fix: rm <root>/.orchestrator-state/active-session-4000002
info legacy anchor active-session names SA-d0c0d0c0 (written <age> ago; weakest evidence, last writer wins)
info active-session-foo: not a per-pid anchor; ignored
ok row SA-d0c0d0c0 (unnamed, agent pid <pid>): live (agent process running)
2 problem(s) found
";
    assert_eq!(got, want);
    std::fs::remove_file(sd.join("active-session-4000002")).expect("rm");
    assert!(p.run(&["gc"]).status.success());
    let out = p.run(&["doctor"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Mail and a claim for the live session: nothing to say while it lives.
    assert!(p.run(&["send", "@SA-d0c0d0c0", "ping"]).status.success());
    assert!(p
        .run(&[
            "claim",
            "--session",
            "d0c0d0c0-live",
            "--exclusive",
            "src/**"
        ])
        .status
        .success());
    let text = String::from_utf8_lossy(&p.run(&["doctor"]).stdout).to_string();
    assert!(!text.contains("not live"), "{text}");
    live.kill();
    let out = p.run(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text.contains("stale, its process is not running")
            && text.contains("dead (agent process gone"),
        "{text}"
    );
    assert!(
        text.contains("1 message(s) queued for SA-d0c0d0c0, which is not live (dead")
            && text.contains("claude --resume d0c0d0c0-live"),
        "{text}"
    );
    assert!(
        text.contains("claim on src/** held by SA-d0c0d0c0, which is not live"),
        "{text}"
    );
    // gc buries the dead session: its claim goes, its mail stays, and doctor now says
    // how it ended.
    assert!(p.run(&["gc"]).status.success());
    let text = String::from_utf8_lossy(&p.run(&["doctor"]).stdout).to_string();
    assert!(!text.contains("claim on src/**"), "{text}");
    assert!(
        text.contains("1 message(s) queued for SA-d0c0d0c0, which is not live (killed"),
        "{text}"
    );
}

#[test]
fn watch_in_a_pty_and_piped() {
    let p = Project::new();
    let mut a = p.sleeping_agent();
    p.hook(
        "SessionStart",
        &payload("wa7c0000-x", json!({"source":"startup"})),
        &[("CLAUDE_PID", a.id().to_string())],
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pty_run.py");
    let out = p
        .cmd(std::path::Path::new("python3"))
        .args([script, "SA-wa7c0000", "q", "15", "--", BIN, "watch"])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Piped: plain frames, periodically.
    let mut child = p
        .cmd(std::path::Path::new(BIN))
        .arg("watch")
        .env("ORCHESTRATOR_WATCH_SECS", "0.2")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn watch");
    std::thread::sleep(Duration::from_millis(900));
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.matches("--- ").count() >= 2, "periodic frames: {text}");
    assert!(
        text.contains("SA-wa7c0000") && text.contains("recent messages:"),
        "{text}"
    );
    a.kill();
}

#[test]
fn demo_shows_the_main_job() {
    let p = Project::new();
    let out = p.run(&["demo"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "alpha (SessionStart hook) was told:",
        "2 sibling sessions active:",
        "your prompt mentions 'parser'",
        "sibling edit warning: SA-a1fa0000 (alpha) touched src/parser.rs",
        "message #1 from SA-a1fa0000 (alpha, prime",
        "heads up: the docs build is broken",
        "replying to #1",
        "1 sibling session active:",
        "startup hygiene: reaped 1 stale active-session-<pid> file(s)",
        "this terminal was SA-be7a0000 before; you took over its name, role, 1 claim, 1 queued message",
        "the docs build is green again",
        "SA-be7a0001 beta",
        "demo finished in",
    ] {
        assert!(
            text.contains(needle),
            "demo output lacks {needle:?}:\n{text}"
        );
    }
    // After gamma's kill -9, alpha's roster no longer lists it.
    let after_kill = text.split("killed with kill -9").nth(1).unwrap_or("");
    let roster = after_kill.split("startup hygiene").next().unwrap_or("");
    assert!(!roster.contains("SA-9a33a000"), "{roster}");
}

#[test]
fn install_merges_idempotently_with_backup() {
    let p = Project::new();
    let settings = p.root.join(".claude/settings.json");
    std::fs::create_dir_all(settings.parent().expect("dir")).expect("mkdir");
    std::fs::write(&settings, r#"{"model":"opus","hooks":{"Stop":[{"hooks":[{"type":"command","command":"notify.sh"}]}]}}"#).expect("w");
    let dry = p.run(&["install", "--dry-run"]);
    assert!(dry.status.success());
    assert!(
        String::from_utf8_lossy(&dry.stdout).contains("+ "),
        "diff shown"
    );
    assert!(!p.root.join(".mcp.json").exists(), "dry run writes nothing");
    let out = p.run(&["install"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&settings).expect("r")).expect("json");
    assert_eq!(v["model"], "opus");
    assert_eq!(
        v["hooks"]["Stop"].as_array().expect("arr").len(),
        2,
        "foreign hook kept, ours added"
    );
    assert_eq!(
        v["hooks"]["PreToolUse"][0]["hooks"][0]["args"],
        json!(["hook", "PreToolUse"])
    );
    let mcp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.root.join(".mcp.json")).expect("r"))
            .expect("json");
    assert_eq!(mcp["mcpServers"]["orchestrator"]["args"], json!(["serve"]));
    // The backup is kept out of the project tree.
    assert!(!p
        .root
        .join(".claude/settings.json.orchestrator.bak")
        .exists());
    assert!(p.home.join(".local/state/orchestrator/backups").is_dir());
    let again = p.run(&["install"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("already installed"));
    std::fs::write(&settings, "{broken").expect("w");
    let bad = p.run(&["install"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("is not valid JSON"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&settings).expect("r"),
        "{broken",
        "nothing lost"
    );
}

#[test]
fn person_commands_find_their_project_and_create_nothing_to_read() {
    let p = Project::new();
    let (_a, _) = p.session("aaaa1111-first");
    let (_b, _) = p.session("bbbb2222-second");
    let sub = p.root.join("src/deep");
    std::fs::create_dir_all(&sub).expect("mkdir");
    let from = |dir: &std::path::Path, args: &[&str]| {
        p.cmd(std::path::Path::new(common::BIN))
            .env_remove("ORCHESTRATOR_PROJECT_ROOT")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("run")
    };
    // From a subdirectory, like git: the enclosing registry.
    let out = from(&sub, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(2), "{out:?}");
    assert!(!sub.join(".orchestrator-state").exists());
    assert!(!p.root.join("src/.orchestrator-state").exists());

    // Acting on the id `status` shows: SA-<id8>, @SA-<id8>, a prefix.
    for (who, claim) in [("SA-aaaa1111", "src/a.rs"), ("@SA-bbbb2222", "src/b.rs")] {
        let out = from(&sub, &["claim", "--session", who, "--exclusive", claim]);
        assert!(out.status.success(), "{who}: {out:?}");
    }
    let out = from(&sub, &["release", "--session", "aaaa1"]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("src/a.rs"),
        "{out:?}"
    );
    let out = from(&sub, &["claim", "--session", "SA-cccc", "src/c.rs"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no session matches"));

    // --project from anywhere.
    let elsewhere = p.home.clone();
    let out = from(
        &elsewhere,
        &[
            "--project",
            &p.root.display().to_string(),
            "claims",
            "--json",
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("src/b.rs"),
        "{out:?}"
    );

    // Commands that only read create nothing where there is no registry, and say so.
    let empty = p.home.join("empty/sub");
    std::fs::create_dir_all(&empty).expect("mkdir");
    for args in [
        &["status"][..],
        &["status", "--json"][..],
        &["claims"][..],
        &["gc", "--dry-run"][..],
        &["doctor"][..],
    ] {
        let out = from(&empty, args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        assert!(
            !empty.join(".orchestrator-state").exists()
                && !p.home.join("empty/.orchestrator-state").exists(),
            "{args:?} created a registry"
        );
    }
    let out = from(&empty, &["status"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no orchestrator registry"),
        "{out:?}"
    );
    // A mistyped project root is named, not created.
    let out = p
        .cmd(std::path::Path::new(common::BIN))
        .env("ORCHESTRATOR_PROJECT_ROOT", p.home.join("typo"))
        .args(["status"])
        .output()
        .expect("run");
    assert!(!out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a directory"));
    assert!(!p.home.join("typo").exists());
}
