//! `orchestrator hook <Event>` end to end with fake agents, and every bad-input class.

mod common;
use common::*;
use serde_json::json;
use std::process::Output;

fn ok_silent_fail(out: &Output, needle: &str) {
    assert_eq!(out.status.code(), Some(0), "hook must exit 0");
    assert!(
        out.stdout.is_empty(),
        "stdout must be empty: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one stderr line: {err:?}");
    assert!(err.starts_with("[orchestrator] hook "), "{err}");
    assert!(err.contains(needle), "stderr {err:?} lacks {needle:?}");
}

fn pid_env(c: &Sleeper) -> Vec<(&'static str, String)> {
    vec![("CLAUDE_PID", c.id().to_string())]
}

#[test]
fn every_fixture_answers_cleanly() {
    let p = Project::new();
    let mut agent = p.sleeping_agent();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hooks");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file()) // codex/ and gemini/ are other CLIs' (tests/agents.rs)
        .collect();
    files.sort();
    assert!(files.len() >= 8);
    for f in files {
        let body = std::fs::read_to_string(&f).expect("read");
        let v: serde_json::Value = serde_json::from_str(&body).expect("fixture json");
        let event = v["hook_event_name"].as_str().expect("event").to_string();
        let out = p.hook(&event, &body, &pid_env(&agent));
        assert_eq!(out.status.code(), Some(0), "{f:?}");
        assert!(
            out.stderr.is_empty(),
            "{f:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.stdout.is_empty() {
            let ans: serde_json::Value =
                serde_json::from_slice(&out.stdout).expect("answer is JSON");
            assert_eq!(
                ans["hookSpecificOutput"]["hookEventName"],
                event.as_str(),
                "{f:?}"
            );
        }
    }
    agent.kill();
}

#[test]
fn two_agents_end_to_end() {
    let p = Project::new();
    let mut a = p.agent_with_server(&[("ORCHESTRATOR_HEARTBEAT_SECS", "0.3")]);
    let mut b = p.sleeping_agent();
    let (ea, eb) = (vec![("CLAUDE_PID", a.pid.to_string())], pid_env(&b));
    let (ida, idb) = ("aaaa0000-1111", "bbbb0000-2222");
    let out = p.hook(
        "SessionStart",
        &payload(ida, json!({"source":"startup"})),
        &ea,
    );
    assert!(
        context(&out).contains("you are session SA-aaaa0000"),
        "{out:?}"
    );
    // The server binds to the hook's explicit id.
    a.initialize();
    assert!(
        a.wait_stderr("SA-aaaa0000", std::time::Duration::from_secs(10)),
        "{:?}",
        a.stderr()
    );
    let (who, _) = a.call("whoami", json!({}));
    assert!(who.contains("\"explicit\""), "{who}");
    let out = p.hook(
        "SessionStart",
        &payload(idb, json!({"source":"startup"})),
        &eb,
    );
    let ctx = context(&out);
    assert!(
        ctx.contains("1 sibling session active") && ctx.contains("SA-aaaa0000"),
        "{ctx}"
    );
    let (t, e) = a.call(
        "update_session_task",
        json!({"task": "rewrite the tokenizer"}),
    );
    assert!(!e, "{t}");
    // B's prompt: exactly one sibling, with A's task; the overlap is flagged.
    let out = p.hook(
        "UserPromptSubmit",
        &payload(idb, json!({"prompt":"speed up the tokenizer"})),
        &eb,
    );
    let ctx = context(&out);
    assert!(
        ctx.contains("1 sibling session active:\n- SA-aaaa0000"),
        "{ctx}"
    );
    assert!(ctx.contains("rewrite the tokenizer"), "{ctx}");
    assert!(ctx.contains("'tokenizer'"), "{ctx}");
    assert!(!ctx.contains("SA-bbbb0000"), "never itself: {ctx}");
    // Same roster next turn: not repeated.
    let out = p.hook(
        "UserPromptSubmit",
        &payload(idb, json!({"prompt":"and document it"})),
        &eb,
    );
    assert!(
        !context(&out).contains("sibling session active"),
        "{}",
        context(&out)
    );
    // A edits src/a.rs; B's PreToolUse on the same file warns, naming A.
    let edit = |id: &str, path: &str| {
        payload(
            id,
            json!({"tool_name":"Edit","tool_input":{"file_path": path,"old_string":"x","new_string":"y"}}),
        )
    };
    let out = p.hook("PreToolUse", &edit(ida, "src/a.rs"), &ea);
    assert!(
        out.stdout.is_empty(),
        "first toucher is not warned: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let abs = p.root.join("src/a.rs");
    let out = p.hook("PreToolUse", &edit(idb, abs.to_str().expect("utf8")), &eb);
    let ctx = context(&out);
    assert!(
        ctx.contains("SA-aaaa0000") && ctx.contains("src/a.rs"),
        "{ctx}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        v["hookSpecificOutput"]["permissionDecision"].is_null(),
        "warn only by default"
    );
    // With the guard set to ask, the answer asks.
    let mut env = eb.clone();
    env.push(("ORCHESTRATOR_FILE_GUARD", "ask".into()));
    let out = p.hook("PreToolUse", &edit(idb, "src/a.rs"), &env);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["hookSpecificOutput"]["permissionDecision"], "ask");
    assert!(v["hookSpecificOutput"]["permissionDecisionReason"]
        .as_str()
        .unwrap_or("")
        .contains("SA-aaaa0000"));
    // Turn state: busy after a prompt, idle after Stop.
    let st = p.run(&["status", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&st.stdout).expect("json");
    let brow = rows
        .as_array()
        .expect("arr")
        .iter()
        .find(|r| r["session_id"] == idb)
        .cloned()
        .expect("b row");
    assert!(
        brow["state"].as_str().unwrap_or("").starts_with("busy"),
        "{brow}"
    );
    assert!(brow["files"]
        .as_array()
        .expect("files")
        .iter()
        .any(|f| f == "src/a.rs"));
    p.hook("Stop", &payload(idb, json!({})), &eb);
    let st = p.run(&["status"]);
    assert!(String::from_utf8_lossy(&st.stdout).contains("idle"));
    // SessionEnd of both: the roster empties, anchors go.
    for (id, env) in [(ida, &ea), (idb, &eb)] {
        let out = p.hook("SessionEnd", &payload(id, json!({"reason":"logout"})), env);
        assert!(out.stdout.is_empty() && out.stderr.is_empty());
    }
    // A's server may re-create its row on its next beat only while its agent lives; B's row is gone.
    assert!(!live_ids(&p).contains(&idb.to_string()));
    assert!(!p
        .state_dir()
        .join(format!("active-session-{}", b.id()))
        .exists());
    b.kill();
}

#[test]
fn phantom_anchor_through_hooks_never_becomes_a_sibling() {
    let p = Project::new();
    let mut agent = p.sleeping_agent();
    let env = pid_env(&agent);
    std::fs::create_dir_all(p.state_dir()).expect("mkdir");
    let pid = agent.id() as i32;
    std::fs::write(
        p.state_dir().join(format!("active-session-{pid}")),
        format!(
            r#"{{"session_id":"XXXXXXXX-ghost","pid":{pid},"pid_start_ticks":{},"written_at":""}}"#,
            start_ticks(pid)
        ),
    )
    .expect("anchor");
    std::fs::write(p.state_dir().join("active-session"), "XXXXXXXX-ghost\n").expect("legacy");
    // A server bound to X provisionally would have registered it for this agent:
    let out = p.run(&["status"]);
    assert!(out.status.success());
    let out = p.hook(
        "SessionStart",
        &payload("YYYYYYYY-real", json!({"source":"startup"})),
        &env,
    );
    assert!(
        context(&out).contains("no sibling sessions active"),
        "{}",
        context(&out)
    );
    for prompt in ["one", "two", "three"] {
        let out = p.hook(
            "UserPromptSubmit",
            &payload("YYYYYYYY-real", json!({"prompt": prompt})),
            &env,
        );
        assert!(
            !context(&out).contains("sibling session"),
            "{}",
            context(&out)
        );
    }
    assert_eq!(all_ids(&p), vec!["YYYYYYYY-real"]);
    let anchor = std::fs::read_to_string(p.state_dir().join(format!("active-session-{pid}")))
        .expect("anchor");
    assert!(
        anchor.contains("YYYYYYYY-real"),
        "anchor rewritten: {anchor}"
    );
    agent.kill();
}

#[test]
fn phantom_row_registered_by_a_provisional_server_is_moved_by_session_start() {
    let p = Project::new();
    let gate = p.root.join("gate");
    let mut a = p.agent_with_server(&[
        ("TEST_GATE", gate.to_str().expect("utf8")),
        ("ORCHESTRATOR_HEARTBEAT_SECS", "0.3"),
    ]);
    std::fs::create_dir_all(p.state_dir()).expect("mkdir");
    std::fs::write(
        p.state_dir().join(format!("active-session-{}", a.pid)),
        format!(
            r#"{{"session_id":"XXXXXXXX-ghost","pid":{},"pid_start_ticks":{},"written_at":""}}"#,
            a.pid,
            start_ticks(a.pid)
        ),
    )
    .expect("anchor");
    std::fs::write(&gate, "").expect("gate");
    a.initialize();
    assert_eq!(live_ids(&p), vec!["XXXXXXXX-ghost"]);
    let env = vec![("CLAUDE_PID", a.pid.to_string())];
    let out = p.hook(
        "SessionStart",
        &payload("YYYYYYYY-real", json!({"source":"startup"})),
        &env,
    );
    assert!(
        context(&out).contains("no sibling sessions active"),
        "{}",
        context(&out)
    );
    assert_eq!(
        all_ids(&p),
        vec!["YYYYYYYY-real"],
        "X's row moved, not left beside Y"
    );
    let out = p.hook(
        "UserPromptSubmit",
        &payload("YYYYYYYY-real", json!({"prompt":"go"})),
        &env,
    );
    assert!(!context(&out).contains("sibling session"));
    assert!(a.wait_stderr(
        "rebound SA-XXXXXXXX -> SA-YYYYYYYY",
        std::time::Duration::from_secs(10)
    ));
}

#[test]
fn bad_input_never_breaks_the_agent() {
    let p = Project::new();
    ok_silent_fail(
        &p.hook("UserPromptSubmit", "{not json", &[]),
        "not valid JSON",
    );
    ok_silent_fail(&p.hook("UserPromptSubmit", "", &[]), "empty");
    ok_silent_fail(&p.hook("UserPromptSubmit", "[1,2]", &[]), "not an object");
    ok_silent_fail(
        &p.hook("Bogus", &payload("okid", json!({})), &[]),
        "unknown hook event",
    );
    ok_silent_fail(
        &p.hook("UserPromptSubmit", r#"{"prompt":"hi"}"#, &[]),
        "no session_id",
    );
    ok_silent_fail(
        &p.hook(
            "UserPromptSubmit",
            &payload("../../etc/passwd", json!({})),
            &[],
        ),
        "session id contains '.'",
    );
    ok_silent_fail(
        &p.hook(
            "UserPromptSubmit",
            &payload(&"a".repeat(129), json!({})),
            &[],
        ),
        "129 characters",
    );
    ok_silent_fail(
        &p.hook("UserPromptSubmit", r#"{"session_id": 42}"#, &[]),
        "wrong type",
    );
    let big = payload("okid", json!({"prompt": "x".repeat(1_100_000)}));
    ok_silent_fail(&p.hook("UserPromptSubmit", &big, &[]), "exceeds 1 MiB");
    assert!(!p.state_dir().join("active-session-..").exists());
}

#[test]
fn unwritable_state_and_corrupt_db_fail_softly_and_lose_nothing() {
    let p = Project::new();
    let mut agent = p.sleeping_agent();
    let env = pid_env(&agent);
    p.hook(
        "SessionStart",
        &payload("keepme00-1", json!({"source":"startup"})),
        &env,
    );
    // Corrupt database: the hook fails softly and the file is left for the person.
    let db = p.state_dir().join("agent-channel/agent_channel.db");
    let saved = std::fs::read(&db).expect("db");
    let _ = std::fs::remove_file(p.state_dir().join("agent-channel/agent_channel.db-wal"));
    let _ = std::fs::remove_file(p.state_dir().join("agent-channel/agent_channel.db-shm"));
    std::fs::write(
        &db,
        b"this is not a database, but someone's data".repeat(200),
    )
    .expect("corrupt");
    let out = p.hook(
        "UserPromptSubmit",
        &payload("keepme00-1", json!({"prompt":"x"})),
        &env,
    );
    ok_silent_fail(&out, "corrupt");
    assert!(
        std::fs::read(&db)
            .expect("db")
            .starts_with(b"this is not a database"),
        "corrupt db left in place"
    );
    std::fs::write(&db, saved).expect("restore");
    // Unusable state dir: a regular file sits where the directory must be. This
    // holds for root too, who would ignore a mode-0500 directory.
    let q = Project::new();
    std::fs::write(q.state_dir(), b"someone's notes").expect("occupy state dir");
    let out = q.hook(
        "SessionStart",
        &payload("keepme00-2", json!({"source":"startup"})),
        &env,
    );
    ok_silent_fail(&out, "not a directory");
    assert_eq!(
        std::fs::read(q.state_dir()).expect("file kept"),
        b"someone's notes",
        "the file in the way is not touched"
    );
    agent.kill();
}

#[test]
fn locked_database_fails_softly() {
    let p = Project::new();
    let mut agent = p.sleeping_agent();
    let env = pid_env(&agent);
    p.hook(
        "SessionStart",
        &payload("lockme00-1", json!({"source":"startup"})),
        &env,
    );
    let db = p.state_dir().join("agent-channel/agent_channel.db");
    let conn = rusqlite::Connection::open(&db).expect("open");
    conn.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    let mut env2 = env.clone();
    env2.push(("ORCHESTRATOR_BUSY_TIMEOUT_MS", "200".into()));
    let out = p.hook(
        "UserPromptSubmit",
        &payload("lockme00-1", json!({"prompt":"x"})),
        &env2,
    );
    ok_silent_fail(&out, "locked");
    conn.execute_batch("ROLLBACK").expect("unlock");
    let out = p.hook(
        "UserPromptSubmit",
        &payload("lockme00-1", json!({"prompt":"x"})),
        &env,
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    agent.kill();
}

#[test]
fn clear_moves_the_row_with_its_name_claims_and_queued_mail() {
    let p = Project::new();
    let mut a = p.sleeping_agent();
    let mut ea = pid_env(&a);
    ea.push(("ORCHESTRATOR_AGENT_NAME", "builder".into()));
    let (old, new) = ("clearold-1", "clearnew-2");
    p.hook(
        "SessionStart",
        &payload(old, json!({"source":"startup"})),
        &ea,
    );
    let (mut b, eb) = p.session("clearsib-3");
    let out = p.run(&["claim", "--session", old, "--exclusive", "src/x.rs"]);
    assert!(out.status.success(), "{out:?}");
    p.hook(
        "PreToolUse",
        &payload(
            old,
            json!({"tool_name":"Write","tool_input":{"file_path":"src/a.rs","content":""}}),
        ),
        &ea,
    );
    let out = p.run(&["send", "@builder", "hold off src/x.rs for a minute"]);
    assert!(out.status.success(), "{out:?}");
    // The client's /clear: SessionEnd(clear) for the old id, SessionStart(clear) for the new.
    let out = p.hook("SessionEnd", &payload(old, json!({"reason":"clear"})), &ea);
    assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    assert!(
        live_ids(&p).contains(&old.to_string()),
        "row kept for the move"
    );
    let out = p.hook(
        "SessionStart",
        &payload(new, json!({"source":"clear"})),
        &ea,
    );
    let ctx = context(&out);
    assert!(ctx.contains("this terminal was SA-clearold"), "{ctx}");
    assert!(
        ctx.contains("1 claim") && ctx.contains("1 queued message"),
        "{ctx}"
    );
    assert!(
        ctx.contains("hold off src/x.rs"),
        "queued mail delivered: {ctx}"
    );
    assert!(ctx.contains("name \"builder\""), "{ctx}");
    assert_eq!(live_ids(&p), vec!["clearnew-2", "clearsib-3"]);
    assert!(
        ended(&p)
            .iter()
            .any(|(id, how)| id == old && how.contains("moved to SA-clearnew")),
        "{:?}",
        ended(&p)
    );
    // The claim followed the row: the sibling is still refused, naming the new id.
    let out = p.hook(
        "PreToolUse",
        &payload(
            "clearsib-3",
            json!({"tool_name":"Edit","tool_input":{"file_path":"src/x.rs","old_string":"a","new_string":"b"}}),
        ),
        &eb,
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("decision");
    let h = &v["hookSpecificOutput"];
    assert_eq!(h["permissionDecision"], "deny", "{v}");
    assert!(
        h["permissionDecisionReason"]
            .as_str()
            .unwrap_or("")
            .contains("SA-clearnew"),
        "{v}"
    );
    // Nobody sees the old id; the sibling sees the new one under the old name.
    let out = p.hook(
        "UserPromptSubmit",
        &payload("clearsib-3", json!({"prompt":"next"})),
        &eb,
    );
    let ctx = context(&out);
    assert!(!ctx.contains("SA-clearold"), "{ctx}");
    assert!(
        ctx.contains("SA-clearnew") && ctx.contains("builder"),
        "{ctx}"
    );
    assert!(ctx.contains("src/a.rs"), "touches followed the row: {ctx}");
    a.kill();
    b.kill();
}
