//! Claims and hazards with real processes: exclusive claims refuse sibling edits, die with
//! their holder, Bash writes are attributed, tree-moving git commands ask, and the
//! pre-commit guard refuses (with an override).

mod common;
use common::*;
use serde_json::{json, Value};
use std::process::Command;

fn decision(out: &std::process::Output) -> (String, String) {
    if out.stdout.is_empty() {
        return (String::new(), String::new());
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let h = &v["hookSpecificOutput"];
    (
        h["permissionDecision"].as_str().unwrap_or("").to_string(),
        format!(
            "{}{}",
            h["permissionDecisionReason"].as_str().unwrap_or(""),
            h["additionalContext"].as_str().unwrap_or("")
        ),
    )
}

fn edit(id: &str, path: &str) -> String {
    payload(
        id,
        json!({"tool_name":"Edit","tool_input":{"file_path": path,"old_string":"a","new_string":"b"}}),
    )
}

#[test]
fn exclusive_claim_refuses_then_dies_with_its_holder() {
    let p = Project::new();
    let mut holder = p.agent_with_server(&[
        ("CLAUDE_CODE_SESSION_ID", "h01der00-aaaa"),
        ("ORCHESTRATOR_CHANNEL", "off"),
    ]);
    holder.initialize();
    holder.call("update_session_task", json!({"task": "rewrite the lexer"}));
    let (t, err) = holder.call(
        "claim",
        json!({"paths_or_globs": ["src/lexer/**", "/etc/passwd"], "exclusive": true}),
    );
    assert!(err && t.contains("outside the project"), "{t}");
    let (t, err) = holder.call(
        "claim",
        json!({"paths_or_globs": ["src/lexer/**"], "exclusive": true, "reason": "big refactor"}),
    );
    assert!(!err, "{t}");
    let mut other = p.sleeping_agent();
    let env = vec![("CLAUDE_PID", other.id().to_string())];
    p.hook(
        "SessionStart",
        &payload("0ther000-bbbb", json!({"source":"startup"})),
        &env,
    );
    // Absolute and relative paths both hit the glob; the answer names holder, task, how to ask.
    let abs = p.root.join("src/lexer/token.rs");
    for path in [abs.to_str().expect("utf8"), "src/lexer/deep/x.rs"] {
        let (d, why) = decision(&p.hook("PreToolUse", &edit("0ther000-bbbb", path), &env));
        assert_eq!(d, "deny", "{why}");
        assert!(
            why.contains("SA-h01der00")
                && why.contains("rewrite the lexer")
                && why.contains("@SA-h01der00")
                && why.contains("big refactor"),
            "{why}"
        );
    }
    // Outside the glob: allowed, silent.
    let (d, _) = decision(&p.hook("PreToolUse", &edit("0ther000-bbbb", "src/parser.rs"), &env));
    assert_eq!(d, "");
    // With the guard in ask mode: ask instead of deny.
    let mut env_ask = env.clone();
    env_ask.push(("ORCHESTRATOR_FILE_GUARD", "ask".into()));
    let (d, _) = decision(&p.hook(
        "PreToolUse",
        &edit("0ther000-bbbb", "src/lexer/a.rs"),
        &env_ask,
    ));
    assert_eq!(d, "ask");
    // A competing exclusive claim is refused with the holder's id.
    let out = p.run(&[
        "claim",
        "--session",
        "0ther000-bbbb",
        "--exclusive",
        "src/lexer/a.rs",
    ]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("SA-h01der00"));
    // The holder was told someone was refused.
    let (.., holder_pid) = ((), holder.pid);
    let out = p.hook(
        "UserPromptSubmit",
        &payload("h01der00-aaaa", json!({"prompt":"x"})),
        &[("CLAUDE_PID", holder_pid.to_string())],
    );
    assert!(
        context(&out).contains("SA-0ther000 was refused editing src/lexer/"),
        "{}",
        context(&out)
    );
    // kill -9 the holder: the next edit is allowed and the waiter hears the claim is gone.
    let kids = holder.children();
    kill(holder.pid, libc::SIGKILL);
    for k in kids {
        kill(k, libc::SIGKILL);
    }
    assert!(holder.wait_exit(std::time::Duration::from_secs(10)));
    let (d, _) = decision(&p.hook(
        "PreToolUse",
        &edit("0ther000-bbbb", "src/lexer/token.rs"),
        &env,
    ));
    assert_eq!(d, "", "claim died with its holder");
    let out = p.hook(
        "UserPromptSubmit",
        &payload("0ther000-bbbb", json!({"prompt":"x"})),
        &env,
    );
    assert!(
        context(&out)
            .contains("claim on src/lexer/** by SA-h01der00 was released (its session ended)"),
        "{}",
        context(&out)
    );
    other.kill();
}

#[test]
fn shared_claims_warn_ttl_lapses_and_release_tells_waiters() {
    let p = Project::new();
    let (mut a, ea) = p.session("aaaa0000-1");
    let (mut b, eb) = p.session("bbbb0000-2");
    let ok = |o: std::process::Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    ok(p.run(&[
        "claim",
        "--session",
        "aaaa0000-1",
        "--reason",
        "docs pass",
        "docs",
    ]));
    let (d, why) = decision(&p.hook("PreToolUse", &edit("bbbb0000-2", "docs/guide.md"), &eb));
    assert_eq!(d, "");
    assert!(
        why.contains("SA-aaaa0000 holds a shared claim on docs (docs pass)"),
        "{why}"
    );
    let listed = ok(p.run(&["claims"]));
    assert!(listed.contains("shared    docs by SA-aaaa0000"), "{listed}");
    ok(p.run(&["release", "--session", "aaaa0000-1", "docs"]));
    let out = p.hook(
        "UserPromptSubmit",
        &payload("bbbb0000-2", json!({"prompt":"x"})),
        &eb,
    );
    assert!(
        context(&out).contains("SA-aaaa0000 released its claim on docs"),
        "{}",
        context(&out)
    );
    // ttl lapse: the holder is told, the claim no longer refuses. (The instant it lapses
    // is unit-tested on an injected clock; here the ttl is moved into the past instead of
    // sleeping through it.)
    ok(p.run(&[
        "claim",
        "--session",
        "aaaa0000-1",
        "--exclusive",
        "--ttl",
        "1h",
        "src/x.rs",
    ]));
    let (d, _) = decision(&p.hook("PreToolUse", &edit("bbbb0000-2", "src/x.rs"), &eb));
    assert_eq!(d, "deny");
    let db = orchestrator::core::paths::ProjectPaths::from_root(&p.root)
        .expect("paths")
        .db_path();
    rusqlite::Connection::open(db)
        .expect("open")
        .execute(
            "UPDATE claims SET expires_at_ms = expires_at_ms - 3600000 WHERE pattern = 'src/x.rs'",
            [],
        )
        .expect("lapse");
    let (d, _) = decision(&p.hook("PreToolUse", &edit("bbbb0000-2", "src/x.rs"), &eb));
    assert_eq!(d, "");
    let out = p.hook(
        "UserPromptSubmit",
        &payload("aaaa0000-1", json!({"prompt":"x"})),
        &ea,
    );
    assert!(
        context(&out).contains("your claim on src/x.rs lapsed"),
        "{}",
        context(&out)
    );
    let bad = p.run(&["claim", "--session", "aaaa0000-1", "--ttl", "soon", "a"]);
    assert!(
        !bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("not a duration")
    );
    // A ttl that once wrapped to the past (success printed, the claim gone at once).
    let bad = p.run(&[
        "claim",
        "--session",
        "aaaa0000-1",
        "--ttl",
        "106751991167d",
        "a",
    ]);
    assert!(
        !bad.status.success()
            && String::from_utf8_lossy(&bad.stderr).contains("too long: at most 365d"),
        "{bad:?}"
    );
    a.kill();
    b.kill();
}

#[test]
fn symlinked_paths_hit_the_claim_of_their_target() {
    let p = Project::new();
    std::fs::create_dir_all(p.root.join("real")).expect("mkdir");
    std::os::unix::fs::symlink(p.root.join("real"), p.root.join("alias")).expect("symlink");
    let mut a = p.sleeping_agent();
    let mut b = p.sleeping_agent();
    let eb = vec![("CLAUDE_PID", b.id().to_string())];
    p.hook(
        "SessionStart",
        &payload("aaaa0000-1", json!({"source":"startup"})),
        &[("CLAUDE_PID", a.id().to_string())],
    );
    p.hook(
        "SessionStart",
        &payload("bbbb0000-2", json!({"source":"startup"})),
        &eb,
    );
    assert!(p
        .run(&[
            "claim",
            "--session",
            "aaaa0000-1",
            "--exclusive",
            "real/*.rs"
        ])
        .status
        .success());
    let (d, _) = decision(&p.hook("PreToolUse", &edit("bbbb0000-2", "alias/m.rs"), &eb));
    assert_eq!(d, "deny", "a symlinked path resolves to the claimed file");
    a.kill();
    b.kill();
}

#[test]
fn bash_ledger_hazards_and_guard_in_a_git_repo() {
    let p = Project::new();
    git(&p.root, &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(p.root.join("src")).expect("mkdir");
    std::fs::write(p.root.join("src/a.rs"), "fn a() {}\n").expect("w");
    std::fs::write(p.root.join("src/b.rs"), "fn b() {}\n").expect("w");
    std::fs::write(p.root.join(".gitignore"), ".orchestrator-state/\n").expect("w");
    git(&p.root, &["add", "."]);
    git(&p.root, &["commit", "-q", "-m", "init"]);
    let (mut a, ea) = p.session("aaaa0000-1");
    let (mut b, eb) = p.session("bbbb0000-2");
    // B changes src/b.rs through Bash (sed -i): attributed to B, not A.
    let bash = |id: &str, cmd: &str| {
        payload(
            id,
            json!({"tool_name":"Bash","tool_input":{"command": cmd}}),
        )
    };
    p.hook(
        "PreToolUse",
        &bash("bbbb0000-2", "sed -i s/b/bee/ src/b.rs"),
        &eb,
    );
    let st = Command::new("sed")
        .args(["-i", "s/b/bee/", "src/b.rs"])
        .current_dir(&p.root)
        .status()
        .expect("sed");
    assert!(st.success());
    p.hook(
        "PostToolUse",
        &bash("bbbb0000-2", "sed -i s/b/bee/ src/b.rs"),
        &eb,
    );
    let status: Value = serde_json::from_slice(&p.run(&["status", "--json"]).stdout).expect("json");
    let row = |id: &str| {
        status
            .as_array()
            .expect("arr")
            .iter()
            .find(|r| r["session_id"] == id)
            .cloned()
            .expect("row")
    };
    assert!(
        row("bbbb0000-2")["files"]
            .as_array()
            .expect("f")
            .iter()
            .any(|f| f == "src/b.rs"),
        "{status}"
    );
    assert!(
        row("bbbb0000-2")["uncommitted_files"]
            .as_array()
            .expect("f")
            .iter()
            .any(|f| f == "src/b.rs"),
        "{status}"
    );
    assert!(
        row("aaaa0000-1")["files"].as_array().expect("f").is_empty(),
        "{status}"
    );
    // A read-only command of A (no snapshots taken) is not blamed for a write that
    // happened meanwhile elsewhere.
    p.hook(
        "PreToolUse",
        &bash("aaaa0000-1", "git status && cat src/a.rs"),
        &ea,
    );
    std::fs::write(p.root.join("src/a.rs"), "fn a() { /* by hand */ }\n").expect("w");
    p.hook(
        "PostToolUse",
        &bash("aaaa0000-1", "git status && cat src/a.rs"),
        &ea,
    );
    let status: Value = serde_json::from_slice(&p.run(&["status", "--json"]).stdout).expect("json");
    let a_row = status
        .as_array()
        .expect("arr")
        .iter()
        .find(|r| r["session_id"] == "aaaa0000-1")
        .cloned()
        .expect("row");
    assert!(a_row["files"].as_array().expect("f").is_empty(), "{status}");
    git(&p.root, &["checkout", "-q", "src/a.rs"]);
    // A sibling editing src/b.rs is now warned about B's shell write.
    let (_, why) = decision(&p.hook("PreToolUse", &edit("aaaa0000-1", "src/b.rs"), &ea));
    assert!(why.contains("SA-bbbb0000"), "{why}");
    // A's `git checkout -b x` while B has uncommitted changes: ask, naming B.
    let (d, why) = decision(&p.hook("PreToolUse", &bash("aaaa0000-1", "git checkout -b x"), &ea));
    assert_eq!(d, "ask", "{why}");
    assert!(
        why.contains("SA-bbbb0000") && why.contains("src/b.rs"),
        "{why}"
    );
    git(&p.root, &["checkout", "-q", "-b", "x"]);
    p.hook("PostToolUse", &bash("aaaa0000-1", "git checkout -b x"), &ea);
    let out = p.hook(
        "UserPromptSubmit",
        &payload("bbbb0000-2", json!({"prompt":"x"})),
        &eb,
    );
    let ctx = context(&out);
    assert!(
        ctx.contains("SA-aaaa0000 ran `git checkout -b x`")
            && ctx.contains("(main)")
            && ctx.contains("(x)"),
        "{ctx}"
    );
    // Pre-commit guard: B holds an exclusive claim on src/b.rs; A's commit of it is refused.
    assert!(p
        .run(&[
            "claim",
            "--session",
            "bbbb0000-2",
            "--exclusive",
            "src/b.rs"
        ])
        .status
        .success());
    let inst = p.run(&["guard", "install"]);
    assert!(
        inst.status.success(),
        "{}",
        String::from_utf8_lossy(&inst.stderr)
    );
    git(&p.root, &["add", "src/b.rs"]);
    let commit = |env: &[(&str, &str)]| {
        let mut c = p.cmd(std::path::Path::new("claude"));
        c.args([
            "git",
            "-c",
            "user.email=t@example.com",
            "-c",
            "user.name=t",
            "commit",
            "-q",
            "-m",
            "by a",
        ]);
        c.env("CLAUDE_PID", a.id().to_string());
        for (k, v) in env {
            c.env(k, v);
        }
        c.env(
            "PATH",
            format!(
                "{}:{}",
                p.claude.parent().expect("bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );
        c.output().expect("commit")
    };
    let out = commit(&[]);
    assert!(!out.status.success(), "guard must refuse");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exclusive claim src/b.rs by SA-bbbb0000"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = commit(&[("ORCHESTRATOR_GUARD_OVERRIDE", "1")]);
    assert!(
        out.status.success(),
        "override: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    a.kill();
    b.kill();
}

#[test]
fn cli_never_claims_as_a_sibling_named_by_weak_evidence() {
    let p = Project::new();
    let mut mine = p.sleeping_agent();
    // A sibling starts later; its SessionStart rewrites the shared legacy file.
    let (mut sib, _) = p.session("bbbbbbbb-owner");
    let out = p
        .cmd(std::path::Path::new(BIN))
        .args(["claim", "--exclusive", "src/x.rs"])
        .env("CLAUDE_PID", mine.id().to_string())
        .output()
        .expect("claim");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("legacy active-session file names a session here (SA-bbbbbbbb)")
            && err.contains("--session"),
        "{err}"
    );
    let claims = p.run(&["claims", "--json"]);
    assert_eq!(
        String::from_utf8_lossy(&claims.stdout).trim(),
        "[]",
        "no claim made in the sibling's name"
    );
    mine.kill();
    sib.kill();
}
