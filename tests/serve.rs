//! `orchestrator serve` driven by fake agents over real stdio: the seed's manual test plan.

mod common;
use common::*;
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

#[test]
fn protocol_handshake_tools_and_capabilities() {
    let p = Project::new();
    let mut a = p.agent_with_server(&[("CLAUDE_CODE_SESSION_ID", "proto-1111")]);
    let init = a.initialize();
    let r = &init["result"];
    assert_eq!(r["serverInfo"]["name"], "orchestrator");
    assert!(
        r["capabilities"]["experimental"]["claude/channel"].is_object(),
        "{init}"
    );
    assert!(r["capabilities"]["tools"].is_object());
    assert!(r["instructions"].as_str().unwrap_or("").contains("roster"));
    // The newest protocol is refused in favour of 2025-11-25 so channels keep working.
    let tools = a.request("tools/list", json!({}));
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for want in ["whoami", "roster", "update_session_task", "set_name"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for t in tools["result"]["tools"].as_array().expect("tools") {
        assert!(
            t["inputSchema"]["properties"]["session_id"].is_object(),
            "{t}"
        );
        assert!(!t["description"].as_str().unwrap_or("").is_empty());
    }
    let (who, err) = a.call("whoami", json!({}));
    assert!(!err);
    let who: serde_json::Value = serde_json::from_str(&who).expect("whoami json");
    assert_eq!(who["session_id"], "proto-1111");
    assert_eq!(who["evidence"], "environment");
    assert_eq!(who["agent_pid"], a.pid);
    let (t, err) = a.call(
        "update_session_task",
        json!({"task": "refactor the parser"}),
    );
    assert!(!err, "{t}");
    let (t, err) = a.call("set_name", json!({"name": "parser-bot"}));
    assert!(!err, "{t}");
    let (t, err) = a.call("set_name", json!({"name": "bad name!"}));
    assert!(err && t.contains("[A-Za-z0-9_.-]"), "{t}");
    let (t, err) = a.call("update_session_task", json!({"task": "x".repeat(500)}));
    assert!(err && t.contains("200"), "{t}");
    let (t, err) = a.call("whoami", json!({"session_id": "../../etc"}));
    assert!(err && t.contains("session_id"), "{t}");
    let (roster, err) = a.call("roster", json!({}));
    assert!(!err);
    assert!(
        roster.contains("parser-bot") && roster.contains("refactor the parser"),
        "{roster}"
    );
    assert!(roster.contains("no sibling sessions"), "{roster}");
}

#[test]
fn a_thirty_stale_anchors_are_reaped_at_start() {
    let p = Project::new();
    std::fs::create_dir_all(p.state_dir()).expect("mkdir");
    // Pids far above pid_max are never alive.
    for i in 0..30 {
        std::fs::write(
            p.state_dir()
                .join(format!("active-session-{}", 4_000_000 + i)),
            "old-session\n",
        )
        .expect("write");
    }
    std::fs::write(p.state_dir().join("active-session"), "legacy\n").expect("write");
    let mut a = p.agent_with_server(&[("CLAUDE_CODE_SESSION_ID", "fresh-1")]);
    assert!(
        a.wait_stderr(
            "startup hygiene: reaped 30 stale active-session-<pid> file(s)",
            T
        ),
        "{:?}",
        a.stderr()
    );
    let left: Vec<_> = std::fs::read_dir(p.state_dir())
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("active-session-"))
        .collect();
    assert!(left.is_empty(), "left: {left:?}");
    assert!(
        p.state_dir().join("active-session").exists(),
        "legacy file is not a per-pid anchor"
    );
}

#[test]
fn b_stale_anchor_then_explicit_id_moves_the_row() {
    let p = Project::new();
    let gate = p.root.join("gate");
    let mut a = p.agent_with_server(&[("TEST_GATE", gate.to_str().expect("utf8"))]);
    // Seed an anchor for *this* claude pid naming a stale id X (as a reused pid would
    // have left it had the dead session had the same start time), before serve starts.
    std::fs::create_dir_all(p.state_dir()).expect("mkdir");
    let ticks = start_ticks(a.pid);
    std::fs::write(
        p.state_dir().join(format!("active-session-{}", a.pid)),
        format!(r#"{{"session_id":"XXXXXXXX-stale","pid":{},"pid_start_ticks":{ticks},"written_at":""}}"#, a.pid),
    )
    .expect("write anchor");
    std::fs::write(&gate, "").expect("gate");
    a.initialize();
    let (who, _) = a.call("whoami", json!({}));
    let who: serde_json::Value = serde_json::from_str(&who).expect("json");
    assert_eq!(who["session_id"], "XXXXXXXX-stale");
    assert_eq!(who["evidence"], "pid-anchor");
    assert_eq!(who["provisional"], true);
    assert_eq!(live_ids(&p), vec!["XXXXXXXX-stale"]);
    let (roster, err) = a.call("roster", json!({"session_id": "YYYYYYYY-real"}));
    assert!(!err, "{roster}");
    assert!(roster.contains("no sibling sessions"), "{roster}");
    assert_eq!(
        all_ids(&p),
        vec!["YYYYYYYY-real"],
        "X's row must be gone, Y's live"
    );
    assert!(a.wait_stderr("rebound SA-XXXXXXXX -> SA-YYYYYYYY", T));
}

#[test]
fn reused_pid_anchor_and_old_legacy_file_are_never_believed() {
    let p = Project::new();
    let gate = p.root.join("gate");
    let mut a = p.agent_with_server(&[("TEST_GATE", gate.to_str().expect("utf8"))]);
    std::fs::create_dir_all(p.state_dir()).expect("mkdir");
    let ticks = start_ticks(a.pid);
    // Same pid, other start time: the anchor of a dead session whose pid was reused.
    std::fs::write(
        p.state_dir().join(format!("active-session-{}", a.pid)),
        format!(
            r#"{{"session_id":"PHANTOM1-x","pid":{},"pid_start_ticks":{},"written_at":""}}"#,
            a.pid,
            ticks - 1
        ),
    )
    .expect("write anchor");
    // A legacy file older than this agent process.
    let legacy = p.state_dir().join("active-session");
    std::fs::write(&legacy, "PHANTOM2-y\n").expect("write legacy");
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&legacy)
        .expect("open")
        .set_modified(old)
        .expect("mtime");
    std::fs::write(&gate, "").expect("gate");
    a.initialize();
    assert!(a.wait_stderr("reaped 1 stale", T), "{:?}", a.stderr());
    let (t, err) = a.call("whoami", json!({}));
    assert!(!err);
    assert!(!t.contains("PHANTOM"), "{t}");
    assert!(
        all_ids(&p).is_empty(),
        "nothing registered on stale evidence: {:?}",
        all_ids(&p)
    );
}

#[test]
fn harness_session_file_outranks_anchors() {
    let p = Project::new();
    let gate = p.root.join("gate");
    let mut a = p.agent_with_server(&[("TEST_GATE", gate.to_str().expect("utf8"))]);
    let sessions = p.home.join(".claude/sessions");
    std::fs::create_dir_all(&sessions).expect("mkdir");
    std::fs::write(
        sessions.join(format!("{}.json", a.pid)),
        format!(
            r#"{{"pid":{},"sessionId":"HARNESS1-id","cwd":"/x","startedAt":1}}"#,
            a.pid
        ),
    )
    .expect("write");
    std::fs::create_dir_all(p.state_dir()).expect("mkdir");
    std::fs::write(p.state_dir().join("active-session"), "LEGACY00-id\n").expect("write legacy");
    std::fs::write(&gate, "").expect("gate");
    a.initialize();
    let (t, _) = a.call("whoami", json!({}));
    let v: serde_json::Value = serde_json::from_str(&t).expect("json");
    assert_eq!(v["session_id"], "HARNESS1-id");
    assert_eq!(v["evidence"], "harness-session-file");
    assert_eq!(v["provisional"], false);
}

#[test]
fn c_d_two_agents_see_each_other_and_kill_9_drops_at_once() {
    let p = Project::new();
    let mut a = p.agent_with_server(&[("CLAUDE_CODE_SESSION_ID", "aaaaaaaa-1")]);
    let mut b = p.agent_with_server(&[("CLAUDE_CODE_SESSION_ID", "bbbbbbbb-2")]);
    a.initialize();
    b.initialize();
    let (ra, _) = a.call("roster", json!({}));
    let (rb, _) = b.call("roster", json!({}));
    assert!(
        ra.contains("1 sibling session active") && ra.contains("SA-bbbbbbbb"),
        "{ra}"
    );
    assert!(!ra.contains("SA-aaaaaaaa (") || ra.contains("you:"), "{ra}");
    assert!(
        rb.contains("1 sibling session active") && rb.contains("SA-aaaaaaaa"),
        "{rb}"
    );
    // kill -9 the whole agent (claude and its server): nothing cleans up the row...
    let kids = b.children();
    kill(b.pid, libc::SIGKILL);
    for k in kids {
        kill(k, libc::SIGKILL);
    }
    assert!(b.wait_exit(T));
    assert!(
        all_ids(&p).contains(&"bbbbbbbb-2".to_string()),
        "row left behind by kill -9"
    );
    // ...yet the very next read does not show it.
    let (ra, _) = a.call("roster", json!({}));
    assert!(ra.contains("no sibling sessions"), "{ra}");
    let how = ended(&p);
    assert!(
        how.iter()
            .any(|(id, h)| id == "bbbbbbbb-2" && h.contains("killed or crashed")),
        "{how:?}"
    );
}

#[test]
fn e_server_stop_keeps_the_session_while_its_agent_lives() {
    let p = Project::new();
    // A plugin reload or MCP restart: the server gets EOF or SIGINT, the agent runs on.
    let mut agent = p.sleeping_agent();
    let pid = agent.id().to_string();
    let env = [
        ("CLAUDE_PID", pid.as_str()),
        ("CLAUDE_CODE_SESSION_ID", "eofeofeo-1"),
    ];
    let mut a = p.bare_server(&env);
    a.initialize();
    let (r, err) = a.call(
        "claim",
        json!({"paths_or_globs": ["src/x.rs"], "exclusive": true}),
    );
    assert!(!err, "{r}");
    a.close_stdin();
    assert!(a.wait_exit(T), "server did not exit on EOF");
    assert_eq!(
        live_ids(&p),
        vec!["eofeofeo-1"],
        "session ended with its server"
    );
    let claims = p.run(&["claims", "--json"]);
    assert!(
        String::from_utf8_lossy(&claims.stdout).contains("src/x.rs"),
        "claim dropped with the server: {claims:?}"
    );
    let mut b = p.bare_server(&env);
    b.initialize();
    let (who, _) = b.call("whoami", json!({}));
    assert!(who.contains("eofeofeo-1"), "{who}");
    kill(b.pid, libc::SIGINT);
    assert!(b.wait_exit(T), "server did not exit on SIGINT");
    assert!(b.wait_stderr("shutting down: SIGINT", T));
    assert_eq!(live_ids(&p), vec!["eofeofeo-1"], "session ended on SIGINT");
    // The agent's death ends it at once.
    agent.kill();
    assert!(live_ids(&p).is_empty());

    // A server with no agent process at all owns its row outright: EOF removes it.
    let mut lone = p.bare_server(&[("CLAUDE_CODE_SESSION_ID", "lonelone-2")]);
    lone.initialize();
    assert_eq!(live_ids(&p), vec!["lonelone-2"]);
    lone.close_stdin();
    assert!(lone.wait_exit(T));
    assert!(
        !all_ids(&p).contains(&"lonelone-2".to_string()),
        "row left after EOF"
    );
    let how = ended(&p);
    assert!(
        how.iter()
            .any(|(id, h)| id == "lonelone-2"
                && h.contains("clean exit (server stopped: stdin closed)")),
        "{how:?}"
    );
}

#[test]
fn f_clear_hook_moves_the_servers_row_within_a_heartbeat() {
    let p = Project::new();
    let mut a = p.agent_with_server(&[
        ("CLAUDE_CODE_SESSION_ID", "XXXXXXXX-spawned"),
        ("ORCHESTRATOR_HEARTBEAT_SECS", "0.3"),
    ]);
    a.initialize();
    let mut other = p.agent_with_server(&[("CLAUDE_CODE_SESSION_ID", "oooooooo-other")]);
    other.initialize();
    assert_eq!(live_ids(&p), vec!["XXXXXXXX-spawned", "oooooooo-other"]);
    // /clear: the agent's SessionStart hook (source clear) registers Y for the same process.
    let out = p.hook(
        "SessionStart",
        &payload(
            "YYYYYYYY-cleared",
            json!({"hook_event_name":"SessionStart","source":"clear"}),
        ),
        &[("CLAUDE_PID", a.pid.to_string())],
    );
    assert!(out.status.success());
    assert!(
        a.wait_stderr("rebound SA-XXXXXXXX -> SA-YYYYYYYY", T),
        "{:?}",
        a.stderr()
    );
    assert_eq!(live_ids(&p), vec!["YYYYYYYY-cleared", "oooooooo-other"]);
    let (who, _) = a.call("whoami", json!({}));
    assert!(who.contains("YYYYYYYY-cleared"), "{who}");
    let (ro, _) = other.call("roster", json!({}));
    assert!(
        !ro.contains("SA-XXXXXXXX") && ro.contains("SA-YYYYYYYY"),
        "{ro}"
    );
    let (ra, _) = a.call("roster", json!({}));
    assert!(
        !ra.contains("SA-XXXXXXXX") && ra.contains("1 sibling session"),
        "{ra}"
    );
    // The server heartbeats Y from now on: its heartbeat advances.
    let hb = || -> String {
        let out = p.run(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        v.as_array()
            .and_then(|a| {
                a.iter()
                    .find(|r| r["session_id"] == "YYYYYYYY-cleared")
                    .cloned()
            })
            .map(|r| r["last_heartbeat_at"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    let first = hb();
    assert!(
        wait_until(T, || hb() > first),
        "Y's heartbeat did not advance"
    );
}

#[test]
fn no_evidence_binds_later_via_hook_and_logs_it() {
    let p = Project::new();
    let mut a = p.agent_with_server(&[("ORCHESTRATOR_HEARTBEAT_SECS", "0.3")]);
    a.initialize();
    assert!(a.wait_stderr("no session id yet", T));
    let (t, err) = a.call("roster", json!({}));
    assert!(err && t.contains("session_id"), "{t}");
    let out = p.hook(
        "SessionStart",
        &payload("late-bind-1", json!({"source":"startup"})),
        &[("CLAUDE_PID", a.pid.to_string())],
    );
    assert!(out.status.success());
    assert!(
        a.wait_stderr("bound to session SA-late-bin", T),
        "{:?}",
        a.stderr()
    );
}

#[test]
fn thirty_two_servers_start_at_once() {
    let p = Project::new();
    let mut agents: Vec<Agent> = (0..32)
        .map(|i| {
            let id = format!("conc{i:04}-x");
            p.agent_with_server(&[("CLAUDE_CODE_SESSION_ID", id.as_str())])
        })
        .collect();
    for a in agents.iter_mut() {
        a.initialize();
    }
    assert!(
        wait_until(T, || live_ids(&p).len() == 32),
        "{:?}",
        live_ids(&p)
    );
    for a in agents.iter_mut() {
        let errs: Vec<String> = a
            .stderr()
            .into_iter()
            .filter(|l| l.contains("locked") || l.contains("BUSY") || l.contains("failed"))
            .collect();
        assert!(errs.is_empty(), "{errs:?}");
    }
}

#[test]
fn plugin_reload_old_server_never_deletes_the_new_servers_row() {
    let p = Project::new();
    let mut agent = p.sleeping_agent();
    let pid = agent.id().to_string();
    let env = [
        ("CLAUDE_PID", pid.as_str()),
        ("CLAUDE_CODE_SESSION_ID", "re10ad00-x"),
    ];
    let mut old = p.bare_server(&env);
    old.initialize();
    // The reloaded plugin starts its server before the old one exits.
    let mut new = p.bare_server(&env);
    new.initialize();
    assert_eq!(
        live_ids(&p),
        vec!["re10ad00-x"],
        "one row for one agent process"
    );
    old.close_stdin();
    assert!(old.wait_exit(T));
    assert_eq!(
        live_ids(&p),
        vec!["re10ad00-x"],
        "the old server left the new one's row alone"
    );
    let (who, err) = new.call("whoami", json!({}));
    assert!(!err && who.contains("re10ad00-x"), "{who}");
    new.close_stdin();
    assert!(new.wait_exit(T));
    assert_eq!(live_ids(&p), vec!["re10ad00-x"], "the agent still runs");
    agent.kill();
    assert!(live_ids(&p).is_empty(), "gone with its agent");
}

#[test]
fn server_exits_when_its_agent_dies() {
    let p = Project::new();
    let mut agent = p.sleeping_agent();
    let pid = agent.id().to_string();
    let mut s = p.bare_server(&[
        ("CLAUDE_PID", pid.as_str()),
        ("CLAUDE_CODE_SESSION_ID", "orphan00-x"),
    ]);
    s.initialize();
    agent.kill();
    assert!(s.wait_exit(T), "no orphan server left behind");
    assert!(
        s.wait_stderr("shutting down: agent process exited", T),
        "{:?}",
        s.stderr()
    );
    assert!(all_ids(&p).is_empty());
}

#[test]
fn legacy_file_naming_a_siblings_session_is_not_taken() {
    let p = Project::new();
    let mut a = p.agent_with_server(&[("ORCHESTRATOR_HEARTBEAT_SECS", "0.3")]);
    a.initialize();
    assert!(a.wait_stderr("no session id yet", T), "{:?}", a.stderr());
    // A sibling starts after A: its SessionStart rewrites the shared legacy file, which is
    // then "fresher" than A's process — weak evidence that names the sibling.
    let (mut b, _) = p.session("bbbbbbbb-owner");
    assert!(
        a.wait_stderr("which is the session of live agent pid", T),
        "{:?}",
        a.stderr()
    );
    let status: serde_json::Value =
        serde_json::from_slice(&p.run(&["status", "--json"]).stdout).expect("json");
    let rows = status.as_array().expect("array");
    assert_eq!(rows.len(), 1, "{status}");
    assert_eq!(rows[0]["session_id"], "bbbbbbbb-owner");
    assert_eq!(
        rows[0]["agent_pid"],
        b.id() as i64,
        "the sibling keeps its row"
    );
    // A's own SessionStart names A; the server binds to it and each sees the other.
    let out = p.hook(
        "SessionStart",
        &payload("aaaaaaaa-real", json!({"source":"startup"})),
        &[("CLAUDE_PID", a.pid.to_string())],
    );
    assert!(context(&out).contains("SA-bbbbbbbb"), "{out:?}");
    assert!(
        a.wait_stderr("bound to session SA-aaaaaaaa", T),
        "{:?}",
        a.stderr()
    );
    let (ro, err) = a.call("roster", json!({}));
    assert!(!err && ro.contains("SA-bbbbbbbb"), "{ro}");
    assert_eq!(live_ids(&p), vec!["aaaaaaaa-real", "bbbbbbbb-owner"]);
    b.kill();
}

#[test]
fn a_tool_call_cannot_take_a_siblings_session_id() {
    let p = Project::new();
    let mut a = p.agent_with_server(&[("CLAUDE_CODE_SESSION_ID", "aaaaaaaa-mine")]);
    a.initialize();
    let (mut b, _) = p.session("bbbbbbbb-theirs");
    for tool in ["whoami", "send_message"] {
        let (t, err) = a.call(
            tool,
            json!({"session_id": "bbbbbbbb-theirs", "to": "@all", "body": "I am b"}),
        );
        assert!(
            err && t.contains("belongs to another live session"),
            "{tool}: {t}"
        );
    }
    let status: serde_json::Value =
        serde_json::from_slice(&p.run(&["status", "--json"]).stdout).expect("json");
    let owner = status
        .as_array()
        .expect("array")
        .iter()
        .find(|r| r["session_id"] == "bbbbbbbb-theirs")
        .map(|r| r["agent_pid"].clone());
    assert_eq!(owner, Some(json!(b.id())), "{status}");
    let (who, err) = a.call("whoami", json!({}));
    assert!(!err && who.contains("aaaaaaaa-mine"), "{who}");
    b.kill();
}

#[test]
fn legacy_file_naming_a_dead_siblings_session_is_not_taken_nor_its_mail() {
    let p = Project::new();
    let mut a = p.agent_with_server(&[]);
    a.initialize();
    assert!(a.wait_stderr("no session id yet", T), "{:?}", a.stderr());
    // A sibling starts after A (rewriting the legacy file), gets mail, and is killed.
    let (mut b, _) = p.session("deadbeef-gone");
    assert!(p
        .run(&["send", "@SA-deadbeef", "for the dead one"])
        .status
        .success());
    b.kill();
    // Whether A retries before or after the kill, it must not become the sibling.
    assert!(a.wait_stderr("not taking it", T), "{:?}", a.stderr());
    assert!(
        !a.stderr()
            .iter()
            .any(|l| l.contains("bound to session SA-deadbeef")),
        "{:?}",
        a.stderr()
    );
    let out = p.hook(
        "SessionStart",
        &payload("aaaaaaaa-real", json!({"source":"startup"})),
        &[("CLAUDE_PID", a.pid.to_string())],
    );
    let ctx = context(&out);
    assert!(
        !ctx.contains("for the dead one") && !ctx.contains("this terminal was"),
        "{ctx}"
    );
    // The dead session's mail is still kept for its id.
    let text = String::from_utf8_lossy(&p.run(&["doctor"]).stdout).to_string();
    assert!(
        text.contains("1 message(s) queued for SA-deadbeef"),
        "{text}"
    );
}
