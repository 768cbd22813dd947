//! Hostile input: globs that would backtrack for minutes, globs that do not parse (typed
//! now, or stored by an older version), ttls that overflow, and a store that fails under
//! an MCP tool. Each is refused with one line naming the fix, or handled without a stall
//! or a crash.

mod common;
use common::*;
use orchestrator::core::paths::ProjectPaths;
use serde_json::{json, Value};

fn edit(id: &str, path: &str) -> String {
    payload(
        id,
        json!({"tool_name":"Edit","tool_input":{"file_path": path,"old_string":"a","new_string":"b"}}),
    )
}

/// The permission decision of a PreToolUse answer ("" when none), after checking the
/// hook answered cleanly.
fn decision(out: &std::process::Output) -> String {
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "hook: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if out.stdout.is_empty() {
        return String::new();
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    v["hookSpecificOutput"]["permissionDecision"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn db(p: &Project) -> rusqlite::Connection {
    let path = ProjectPaths::from_root(&p.root).expect("paths").db_path();
    rusqlite::Connection::open(path).expect("open")
}

#[test]
fn a_backtracking_glob_does_not_stall_sibling_edits() {
    let p = Project::new();
    let (mut a, _) = p.session("aaaa0000-1");
    let (mut b, eb) = p.session("bbbb0000-2");
    let hostile = "**?**?**?**?**?**?**?**?**?**?**Q";
    let out = p.run(&["claim", "--session", "aaaa0000-1", "--exclusive", hostile]);
    assert!(out.status.success(), "{out:?}");
    // Minutes per edit with a backtracking matcher; these must simply finish.
    let long = format!("src/{}Q.rs", "a".repeat(200));
    assert_eq!(
        decision(&p.hook("PreToolUse", &edit("bbbb0000-2", &long), &eb)),
        ""
    );
    assert_eq!(
        decision(&p.hook("PreToolUse", &edit("bbbb0000-2", "aaaaaaaaaaQ"), &eb)),
        "deny"
    );
    // Overlap with a later claim is judged as fast.
    let out = p.run(&[
        "claim",
        "--session",
        "bbbb0000-2",
        "--exclusive",
        "**/*?*?*?*?*?*?*?*?*?*?*R",
    ]);
    assert!(out.status.success(), "{out:?}");
    a.kill();
    b.kill();
}

#[test]
fn invalid_globs_and_long_ttls_are_refused_when_claimed() {
    let p = Project::new();
    let (mut a, _) = p.session("aaaa0000-1");
    let out = p.run(&["claim", "--session", "aaaa0000-1", "src/[x.rs"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        err.contains("src/[x.rs is not a valid glob")
            && err.contains("backslash")
            && err.trim().lines().count() == 1,
        "{err}"
    );
    let out = p.run(&["claims", "--json"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    // The MCP tool says the same.
    let mut s = p.agent_with_server(&[
        ("CLAUDE_CODE_SESSION_ID", "5erver00-cccc"),
        ("ORCHESTRATOR_CHANNEL", "off"),
    ]);
    s.initialize();
    let (t, err) = s.call("claim", json!({"paths_or_globs": ["src/{a,b"]}));
    assert!(err && t.contains("src/{a,b is not a valid glob"), "{t}");
    let (t, err) = s.call(
        "claim",
        json!({"paths_or_globs": ["src/a.rs"], "ttl": "106751991167d"}),
    );
    assert!(err && t.contains("too long: at most 365d"), "{t}");
    let (t, err) = s.call(
        "claim",
        json!({"paths_or_globs": ["app/[id]/page.tsx"], "ttl": "365d"}),
    );
    assert!(!err, "{t}");
    drop(s);
    a.kill();
}

#[test]
fn a_stored_pattern_that_no_longer_parses_covers_its_literal_path() {
    let p = Project::new();
    let (mut a, _) = p.session("aaaa0000-1");
    let (mut b, eb) = p.session("bbbb0000-2");
    // Accepted silently before globs were checked.
    db(&p)
        .execute(
            "INSERT INTO claims (session_id, pattern, exclusive, created_at_ms)
             VALUES ('aaaa0000-1', 'src/[x.rs', 1, 0)",
            [],
        )
        .expect("insert");
    assert_eq!(
        decision(&p.hook("PreToolUse", &edit("bbbb0000-2", "src/[x.rs"), &eb)),
        "deny"
    );
    assert_eq!(
        decision(&p.hook("PreToolUse", &edit("bbbb0000-2", "src/x.rs"), &eb)),
        ""
    );
    let out = p.run(&["claims"]);
    assert!(out.status.success(), "{out:?}");
    a.kill();
    b.kill();
}

#[test]
fn tools_report_store_errors_instead_of_empty_answers() {
    let p = Project::new();
    let (mut a, _) = p.session("aaaa0000-1");
    let out = p.run(&[
        "claim",
        "--session",
        "aaaa0000-1",
        "--exclusive",
        "src/x.rs",
    ]);
    assert!(out.status.success(), "{out:?}");
    let mut s = p.agent_with_server(&[
        ("CLAUDE_CODE_SESSION_ID", "5erver00-cccc"),
        ("ORCHESTRATOR_CHANNEL", "off"),
    ]);
    s.initialize();
    let (t, err) = s.call("claims", json!({}));
    assert!(!err && t.contains("src/x.rs"), "{t}");
    // A claim row that cannot be read: `claims` used to answer "no claims".
    db(&p)
        .execute(
            "INSERT INTO claims (session_id, pattern, exclusive, created_at_ms)
             VALUES ('5erver00-cccc', 'docs', 'not a number', 0)",
            [],
        )
        .expect("insert");
    let (t, err) = s.call("claims", json!({}));
    assert!(err && t.contains("cannot read the claims"), "{t}");
    db(&p)
        .execute("DELETE FROM claims WHERE pattern='docs'", [])
        .expect("delete");
    // Session rows that cannot be read: `claim` used to see nobody live and grant a claim
    // overlapping A's exclusive one.
    db(&p)
        .execute(
            "UPDATE sessions SET agent_started_at='not a number' WHERE session_id='aaaa0000-1'",
            [],
        )
        .expect("update");
    let (t, err) = s.call(
        "claim",
        json!({"paths_or_globs": ["src/x.rs"], "exclusive": true}),
    );
    assert!(err && t.contains("cannot claim"), "{t}");
    drop(s);
    a.kill();
}
