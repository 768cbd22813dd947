//! A shared PostgreSQL server that goes away and comes back: hooks keep the agent going
//! (exit 0, empty stdout) and say so on stderr at most once a minute; what was
//! acknowledged before (a sent message) is still delivered after; `send` during the
//! outage fails with one line that names the server without its password. Alone in its
//! test binary: it stops the binary's throwaway cluster.

mod common;
use common::*;
use serde_json::json;
use std::path::Path;

fn lines(b: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(b)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn hooks_stay_quiet_while_the_server_is_down_and_resume_when_it_returns() {
    let db = pg::database("outage");
    let p = Project::new();
    let shared = [
        ("ORCHESTRATOR_DATABASE_URL", db.scram_url.clone()),
        ("ORCHESTRATOR_PROJECT_ID", "outage-test".to_string()),
    ];
    let agent = p.sleeping_agent();
    let mut env: Vec<(&str, String)> = vec![("CLAUDE_PID", agent.id().to_string())];
    env.extend(shared.iter().cloned());
    let id = "0utage00-aaaa-bbbb-cccc-dddddddddddd";
    let out = p.hook(
        "SessionStart",
        &payload(id, json!({"source": "startup"})),
        &env,
    );
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    let send = |body: &str| {
        let mut c = p.cmd(Path::new(BIN));
        c.args(["send", "@SA-0utage00", body]);
        for (k, v) in &shared {
            c.env(k, v);
        }
        c.output().expect("send")
    };
    let sent = send("before the outage");
    assert!(sent.status.success(), "{sent:?}");
    // A sibling with its own server, which holds one connection through it all.
    let mut server = p.agent_with_server(&[
        (
            "CLAUDE_CODE_SESSION_ID",
            "5erver00-aaaa-bbbb-cccc-dddddddddddd",
        ),
        ("ORCHESTRATOR_DATABASE_URL", shared[0].1.as_str()),
        ("ORCHESTRATOR_PROJECT_ID", "outage-test"),
        ("ORCHESTRATOR_CHANNEL", "off"),
    ]);
    server.initialize();
    let (before, failed) = server.call("roster", json!({}));
    assert!(!failed && before.contains("SA-0utage00"), "{before}");

    pg::ctl(&pg::cluster().dir, "stop");
    let prompt = payload(id, json!({"prompt": "go on"}));
    let first = p.hook("UserPromptSubmit", &prompt, &env);
    assert!(
        first.status.success() && first.stdout.is_empty(),
        "{first:?}"
    );
    let said = lines(&first.stderr);
    assert_eq!(said.len(), 1, "one line: {said:?}");
    assert!(said[0].contains("unreachable"), "{said:?}");
    assert!(
        said[0].contains("orch:***@"),
        "the URL, password hidden: {said:?}"
    );
    for _ in 0..3 {
        let again = p.hook("UserPromptSubmit", &prompt, &env);
        assert!(
            again.status.success() && again.stdout.is_empty(),
            "{again:?}"
        );
        assert!(
            again.stderr.is_empty(),
            "said once a minute, not every turn: {again:?}"
        );
    }
    let refused = send("during the outage");
    assert!(
        !refused.status.success(),
        "a send that cannot be stored is not acknowledged"
    );
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    for out in [&first, &refused] {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains("orch-secret"), "password printed: {all}");
    }
    let doctor = {
        let mut c = p.cmd(Path::new(BIN));
        c.arg("doctor");
        for (k, v) in &shared {
            c.env(k, v);
        }
        c.output().expect("doctor")
    };
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        report.contains("shared database") && report.contains("unreachable"),
        "{report}"
    );
    assert!(!report.contains("orch-secret"), "{report}");

    let (during, failed) = server.call("roster", json!({}));
    assert!(
        failed,
        "a tool call during the outage is an error, not a stale answer: {during}"
    );
    assert!(!during.contains("orch-secret"), "{during}");

    pg::ctl(&pg::cluster().dir, "start");
    let (after, failed) = server.call("roster", json!({}));
    assert!(
        !failed && after.contains("SA-0utage00"),
        "serve reconnected: {after}"
    );
    let back = p.hook("UserPromptSubmit", &prompt, &env);
    assert!(back.status.success() && back.stderr.is_empty(), "{back:?}");
    assert!(
        context(&back).contains("before the outage"),
        "acknowledged mail survives: {back:?}"
    );
    drop(agent);
}
