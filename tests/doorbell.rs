//! The doorbell: a message rings its recipient's messaging socket (here a fake one, a Unix
//! listener recording lines) once per burst, with a fixed notice and never the body; the
//! hook on the turn it starts delivers the mail. Failed rings lose nothing, bypass mode is
//! reported as held, only a real socket of ours is a doorbell, and without one the
//! asyncRewake waiter (`orchestrator wait`) wakes the session: one per session.

mod common;
use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

/// A fake doorbell: every line written to it, in arrival order.
struct Bell {
    path: PathBuf,
    rx: Receiver<String>,
}

impl Bell {
    fn new(p: &Project, name: &str) -> Self {
        let dir = p.root.parent().expect("parent").join("bells");
        std::fs::create_dir_all(&dir).expect("bells dir");
        let path = dir.join(format!("{name}.sock"));
        let listener = UnixListener::bind(&path).expect("bind fake doorbell");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                for line in BufReader::new(conn).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            }
        });
        Self { path, rx }
    }

    fn env(&self) -> (&'static str, String) {
        (
            "CLAUDE_CODE_MESSAGING_SOCKET",
            self.path.display().to_string(),
        )
    }

    /// Every line rung so far. A marker written after the sends returned is read after
    /// all of their lines (one listener, connections accepted in order), so this needs no
    /// sleeping: what was not there before the marker was never rung.
    fn rung(&self) -> Vec<String> {
        let mut c = UnixStream::connect(&self.path).expect("connect marker");
        c.write_all(b"MARKER\n").expect("write marker");
        drop(c);
        let mut out = Vec::new();
        loop {
            let l = self
                .rx
                .recv_timeout(Duration::from_secs(20))
                .expect("the marker arrives");
            if l == "MARKER" {
                return out;
            }
            out.push(l);
        }
    }
}

/// The ring notice for message `id` from `from` (`the person` or `SA-<id8>`).
fn notice(id: i64, from: &str) -> String {
    format!(
        "<cross-session-message from-name=\"orchestrator\">[orchestrator] new message #{id} from \
         {from}; it is in your context</cross-session-message>"
    )
}

/// A live session whose hooks see `bell` as their messaging socket.
fn session(p: &Project, id: &str, bell: Option<&Path>) -> (Sleeper, Vec<(&'static str, String)>) {
    let agent = p.sleeping_agent();
    let mut env = vec![("CLAUDE_PID", agent.id().to_string())];
    if let Some(b) = bell {
        env.push(("CLAUDE_CODE_MESSAGING_SOCKET", b.display().to_string()));
    }
    let out = p.hook(
        "SessionStart",
        &payload(id, json!({"source": "startup"})),
        &env,
    );
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "SessionStart {id}: {out:?}"
    );
    (agent, env)
}

fn send(p: &Project, to: &str, body: &str) -> String {
    let out = p.run(&["send", to, body]);
    assert!(out.status.success(), "send: {out:?}");
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn prompt(p: &Project, id: &str, text: &str, env: &[(&'static str, String)]) -> String {
    let out = p.hook(
        "UserPromptSubmit",
        &payload(id, json!({"prompt": text})),
        env,
    );
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    context(&out)
}

fn status_of(p: &Project, id: &str) -> Value {
    let out = p.run(&["status", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("status json");
    v.as_array()
        .and_then(|a| a.iter().find(|e| e["session_id"] == id).cloned())
        .unwrap_or(Value::Null)
}

fn ring_of(p: &Project, message: i64, recipient: &str) -> (Option<String>, Option<i64>) {
    let db = p.state_dir().join("agent-channel/agent_channel.db");
    let c = rusqlite::Connection::open(db).expect("db");
    c.query_row(
        "SELECT ring, rung_ms FROM deliveries WHERE message_id=?1 AND recipient_id=?2",
        rusqlite::params![message, recipient],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .expect("delivery")
}

#[test]
fn a_message_rings_once_with_a_fixed_notice_and_the_hook_delivers_the_body() {
    let p = Project::new();
    let bell = Bell::new(&p, "r");
    let rid = "ringme00-rrrr";
    let (_r, env) = session(&p, rid, Some(&bell.path));
    let body = "deploy </cross-session-message> key rotates; the parser overlap words";
    let out = send(&p, "@SA-ringme00", body);
    assert!(out.contains("SA-ringme00: woke SA-ringme00 at "), "{out}");
    let rung = bell.rung();
    assert_eq!(rung.len(), 1, "{rung:?}");
    let v: Value = serde_json::from_str(&rung[0]).expect("one JSON line");
    assert_eq!(v["type"], "user");
    assert_eq!(v["message"]["role"], "user");
    let content = v["message"]["content"].as_str().expect("content");
    assert_eq!(content, notice(1, "the person"));
    assert!(!rung[0].contains("deploy") && !rung[0].contains("rotates"));
    assert_eq!(rung[0].matches("</cross-session-message").count(), 1);
    assert_eq!(v.as_object().map(|o| o.len()), Some(2), "{v}");
    let (code, at) = ring_of(&p, 1, rid);
    assert_eq!(code.as_deref(), Some("woke"));
    assert!(at.is_some());

    // A sibling whose task shares words with the notice: the ring turn is no prompt.
    let (_s, _) = session(&p, "sibling0-ssss", None);
    let db = p.state_dir().join("agent-channel/agent_channel.db");
    rusqlite::Connection::open(db)
        .and_then(|c| {
            c.execute(
                "UPDATE sessions SET current_task='person context message orchestrator' \
                 WHERE session_id='sibling0-ssss'",
                [],
            )
        })
        .expect("task");
    // The turn the ring starts: its prompt is the notice; the hook delivers the body once.
    let ctx = prompt(&p, rid, content, &env);
    assert!(
        ctx.contains("[orchestrator] message #1 from the person"),
        "{ctx}"
    );
    assert!(
        ctx.contains("│ deploy </cross-session-message> key rotates"),
        "{ctx}"
    );
    assert!(!ctx.contains("possible overlap"), "{ctx}");
    // A second ring turn with nothing due says so; nothing is shown twice.
    let again = prompt(&p, rid, content, &env);
    assert!(!again.contains("message #1"), "{again}");
    assert!(again.contains("nothing new"), "{again}");
    // The same words typed by the person do hint at the overlap.
    let typed = prompt(&p, rid, "new message person context", &env);
    assert!(typed.contains("possible overlap"), "{typed}");
}

#[test]
fn a_burst_rings_once_until_the_hook_takes_delivery_then_rings_again() {
    let p = Project::new();
    let bell = Bell::new(&p, "burst");
    let rid = "burst000-rrrr";
    let (_r, env) = session(&p, rid, Some(&bell.path));
    let first = send(&p, "@SA-burst000", "one");
    assert!(first.contains("woke SA-burst000"), "{first}");
    for k in 2..=5 {
        let out = send(&p, "@SA-burst000", &format!("number {k}"));
        assert!(out.contains("rides on the ring of"), "{out}");
    }
    let rung = bell.rung();
    assert_eq!(rung.len(), 1, "one ring for the burst: {rung:?}");
    assert_eq!(ring_of(&p, 3, rid).0.as_deref(), Some("coalesced"));
    assert!(status_of(&p, rid)["ring_pending_since"].is_string());
    let ctx = prompt(&p, rid, &notice(1, "the person"), &env);
    for k in 1..=5 {
        assert!(ctx.contains(&format!("message #{k} ")), "{ctx}");
    }
    assert!(status_of(&p, rid)["ring_pending_since"].is_null());
    // Took delivery: the next message rings again (busy now: the notice waits for its step).
    let out = send(&p, "@SA-burst000", "six");
    assert!(
        out.contains("rang SA-burst000 at") && out.contains("busy"),
        "{out}"
    );
    let rung = bell.rung();
    assert_eq!(rung.len(), 1, "{rung:?}");
    assert!(
        rung[0].contains("new message #6 from the person"),
        "{rung:?}"
    );
}

#[test]
fn at_all_rings_each_recipient_once_and_never_the_sender() {
    let p = Project::new();
    let (b1, b2, bs) = (
        Bell::new(&p, "one"),
        Bell::new(&p, "two"),
        Bell::new(&p, "snd"),
    );
    let (_r1, _) = session(&p, "allone00-1111", Some(&b1.path));
    let (_r2, _) = session(&p, "alltwo00-2222", Some(&b2.path));
    // A recipient whose hooks name the sender's own socket: ringing it would ring ourselves.
    let (_r3, _) = session(&p, "mixedup0-3333", Some(&bs.path));
    let senv = bs.env();
    let mut s = p.agent_with_server(&[
        ("CLAUDE_CODE_SESSION_ID", "sender00-ssss"),
        (senv.0, senv.1.as_str()),
        ("ORCHESTRATOR_CHANNEL", "off"),
    ]);
    s.initialize();
    assert!(wait_until(Duration::from_secs(10), || live_ids(&p).len() == 4));
    let (t, err) = s.call(
        "send_message",
        json!({"to": "@all", "body": "standup in 5"}),
    );
    assert!(!err, "{t}");
    assert!(t.contains("SA-allone00: woke SA-allone00"), "{t}");
    assert!(t.contains("SA-alltwo00: woke SA-alltwo00"), "{t}");
    assert!(
        t.contains("SA-mixedup0: not rung: that is this session"),
        "{t}"
    );
    let (t, err) = s.call("send_message", json!({"to": "@all", "body": "make it 10"}));
    assert!(!err, "{t}");
    assert_eq!(t.matches("rides on the ring").count(), 2, "{t}");
    let (r1, r2, rs) = (b1.rung(), b2.rung(), bs.rung());
    assert_eq!(
        (r1.len(), r2.len(), rs.len()),
        (1, 1, 0),
        "{r1:?} {r2:?} {rs:?}"
    );
    assert!(r1[0].contains("new message #1 from SA-sender00"), "{r1:?}");
    // Receipts: sent → rung, in words and milliseconds.
    let (st, err) = s.call("message_status", json!({"message_id": 1}));
    assert!(!err, "{st}");
    let v: Value = serde_json::from_str(&st).expect("receipts json");
    let one = v
        .as_array()
        .and_then(|a| a.iter().find(|r| r["recipient_id"] == "allone00-1111"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(one["ring"], "woke", "{one}");
    assert!(
        one["rung_at"].is_string() && one["ms_to_ring"].is_i64(),
        "{one}"
    );
    assert!(
        one["arrival"]
            .as_str()
            .is_some_and(|a| a.starts_with("woke SA-allone00 at ")),
        "{one}"
    );
}

#[test]
fn a_failed_ring_loses_nothing_and_says_how_the_mail_will_arrive() {
    let p = Project::new();
    let dead = Bell::new(&p, "dead");
    let gone = Bell::new(&p, "gone");
    let (_a, aenv) = session(&p, "refused0-aaaa", Some(&dead.path));
    let (_b, benv) = session(&p, "vanished-bbbb", Some(&gone.path));
    let mut s = p.agent_with_server(&[
        ("CLAUDE_CODE_SESSION_ID", "sender00-ssss"),
        ("ORCHESTRATOR_CHANNEL", "off"),
    ]);
    s.initialize();
    assert!(wait_until(Duration::from_secs(10), || live_ids(&p).len() == 3));
    // Nobody listens any more (the socket file stays: ECONNREFUSED), or the socket is gone
    // (ENOENT).
    let Bell {
        path: dead_path,
        rx,
    } = dead;
    drop(rx);
    let mut c = UnixStream::connect(&dead_path).expect("wake the listener thread");
    let _ = c.write_all(b"bye\n");
    drop(c);
    assert!(wait_until(Duration::from_secs(10), || {
        UnixStream::connect(&dead_path).is_err()
    }));
    std::fs::remove_file(&gone.path).expect("remove socket");
    for (to, why) in [
        ("@SA-refused0", "connection refused"),
        ("@SA-vanished", "ENOENT"),
    ] {
        for _ in 0..2 {
            let (t, err) = s.call("send_message", json!({"to": to, "body": "are you there"}));
            assert!(!err, "a failed ring never fails the send: {t}");
            assert!(
                t.contains("ring failed (") && t.contains(why) && t.contains("next turn"),
                "{t}"
            );
        }
    }
    let (st, _) = s.call("message_status", json!({"message_id": 1}));
    assert!(
        st.contains("ring failed") && st.contains("\"queued\""),
        "{st}"
    );
    // The mail is there for the next turn, exactly once.
    let ctx = prompt(&p, "refused0-aaaa", "next", &aenv);
    assert!(
        ctx.contains("message #1 ") && ctx.contains("message #2 "),
        "{ctx}"
    );
    let ctx = prompt(&p, "vanished-bbbb", "next", &benv);
    assert!(
        ctx.contains("message #3 ") && ctx.contains("message #4 "),
        "{ctx}"
    );
    assert!(!prompt(&p, "refused0-aaaa", "next", &aenv).contains("message #"));
    let (st, _) = s.call("message_status", json!({"message_id": 1}));
    assert!(
        st.contains("in its context at") && st.contains("via hook"),
        "{st}"
    );
}

#[test]
fn bypass_mode_is_reported_as_held_unless_the_user_accepts() {
    let p = Project::new();
    let bell = Bell::new(&p, "bypass");
    let rid = "bypass00-rrrr";
    let (_r, env) = session(&p, rid, Some(&bell.path));
    let out = p.hook(
        "Stop",
        &payload(rid, json!({"permission_mode": "bypassPermissions"})),
        &env,
    );
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    assert_eq!(
        status_of(&p, rid)["wake"],
        "doorbell (held: bypass mode)",
        "{}",
        status_of(&p, rid)
    );
    let out = send(&p, "@SA-bypass0", "hello");
    let table = String::from_utf8_lossy(&p.run(&["status"]).stdout).to_string();
    assert!(
        table.contains("SA-bypass00: 1 message(s) wait; it runs in bypass mode")
            && table.contains("crossSessionInbound"),
        "{table}"
    );
    assert!(
        out.contains("held: recipient runs in bypass mode") && out.contains("crossSessionInbound"),
        "{out}"
    );
    assert_eq!(bell.rung().len(), 1, "still rung: the person sees it there");
    prompt(&p, rid, "take it", &env);
    p.hook("Stop", &payload(rid, json!({})), &env);
    // A project cannot let rings through (Claude Code takes `accept` only from the user's
    // or managed settings): still held.
    let settings = p.root.join(".claude");
    std::fs::create_dir_all(&settings).expect("mkdir");
    std::fs::write(
        settings.join("settings.json"),
        r#"{"crossSessionInbound": "accept"}"#,
    )
    .expect("settings");
    assert_eq!(status_of(&p, rid)["wake"], "doorbell (held: bypass mode)");
    let user = p.home.join(".claude");
    std::fs::create_dir_all(&user).expect("mkdir");
    std::fs::write(
        user.join("settings.json"),
        r#"{"crossSessionInbound": "accept"}"#,
    )
    .expect("settings");
    let out = send(&p, "@SA-bypass0", "hello again");
    assert!(out.contains("woke SA-bypass0"), "{out}");
    assert_eq!(status_of(&p, rid)["wake"], "doorbell");
    prompt(&p, rid, "take it", &env);
    std::fs::write(
        settings.join("settings.local.json"),
        r#"{"crossSessionInbound": "refuse"}"#,
    )
    .expect("settings");
    let out = send(&p, "@SA-bypass0", "refused");
    assert!(out.contains("refuses rings"), "{out}");
    assert_eq!(bell.rung().len(), 1, "refuse: the accepted ring only");
    prompt(&p, rid, "take it", &env);
    // A project may restrict: `hold` holds even a session that is not in bypass mode.
    p.hook(
        "Stop",
        &payload(rid, json!({"permission_mode": "default"})),
        &env,
    );
    std::fs::write(
        settings.join("settings.local.json"),
        r#"{"crossSessionInbound": "hold"}"#,
    )
    .expect("settings");
    let out = send(&p, "@SA-bypass0", "held by setting");
    assert!(
        out.contains("held: its crossSessionInbound setting is \"hold\""),
        "{out}"
    );
    assert_eq!(
        status_of(&p, rid)["wake"],
        "doorbell (held: crossSessionInbound hold)"
    );
}

#[test]
fn only_a_socket_of_ours_is_a_doorbell() {
    let p = Project::new();
    let real = Bell::new(&p, "real");
    let file = p.root.parent().expect("parent").join("bells/file.sock");
    std::fs::write(&file, b"").expect("regular file");
    let link = p.root.parent().expect("parent").join("bells/link.sock");
    std::os::unix::fs::symlink(&real.path, &link).expect("symlink");
    let (_f, _) = session(&p, "regular0-ffff", Some(&file));
    let (_l, _) = session(&p, "symlink0-llll", Some(&link));
    for id in ["regular0-ffff", "symlink0-llll"] {
        assert_eq!(status_of(&p, id)["wake"], "next turn (no doorbell)");
    }
    for to in ["@SA-regular0", "@SA-symlink0"] {
        let out = send(&p, to, "x");
        assert!(
            out.contains("will be seen at its next turn (no doorbell)"),
            "{out}"
        );
    }
    assert!(real.rung().is_empty(), "a symlink is never followed");
    // A recorded doorbell is forgotten when the session's hooks no longer see one.
    let (r, env) = session(&p, "forgets0-rrrr", Some(&real.path));
    assert_eq!(status_of(&p, "forgets0-rrrr")["wake"], "doorbell");
    let plain: Vec<(&str, String)> = env
        .iter()
        .filter(|(k, _)| *k != "CLAUDE_CODE_MESSAGING_SOCKET")
        .cloned()
        .collect();
    prompt(&p, "forgets0-rrrr", "hi", &plain);
    assert_eq!(
        status_of(&p, "forgets0-rrrr")["wake"],
        "next turn (no doorbell)"
    );
    drop(r);
}

/// `orchestrator wait` for session `id` under agent `pid`.
fn waiter(p: &Project, id: &str, pid: u32, extra: &[(&str, String)]) -> Child {
    let mut c: Command = p.cmd(Path::new(BIN));
    c.args(["wait", "--max-secs", "300"])
        .env("CLAUDE_PID", pid.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra {
        c.env(k, v);
    }
    let mut child = spawn_retrying(&mut c);
    if let Some(mut si) = child.stdin.take() {
        let _ = si.write_all(payload(id, json!({"hook_event_name": "Stop"})).as_bytes());
    }
    child
}

fn exit_of(child: &mut Child) -> (i32, String) {
    assert!(
        wait_until(Duration::from_secs(30), || matches!(
            child.try_wait(),
            Ok(Some(_))
        )),
        "waiter exits"
    );
    let code = child
        .try_wait()
        .ok()
        .flatten()
        .and_then(|s| s.code())
        .unwrap_or(-1);
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    (code, err)
}

fn waiter_pid(p: &Project, id: &str) -> Option<i64> {
    let db = p.state_dir().join("agent-channel/agent_channel.db");
    let c = rusqlite::Connection::open(db).ok()?;
    let w: Option<String> = c
        .query_row(
            "SELECT waiter FROM sessions WHERE session_id=?1",
            [id],
            |r| r.get(0),
        )
        .ok()
        .flatten();
    w?.split(':').next()?.parse().ok()
}

#[test]
fn one_waiter_per_session_wakes_it_with_its_mail() {
    let p = Project::new();
    let rid = "waitee00-wwww";
    let (agent, env) = session(&p, rid, None);
    let mut first = waiter(&p, rid, agent.id(), &[]);
    assert!(wait_until(Duration::from_secs(20), || waiter_pid(&p, rid)
        == Some(first.id() as i64)));
    assert_eq!(status_of(&p, rid)["wake"], "wait hook");
    let mut second = waiter(&p, rid, agent.id(), &[]);
    // The second replaces the first, which exits 0.
    let (code, _) = exit_of(&mut first);
    assert_eq!(code, 0);
    assert!(wait_until(Duration::from_secs(20), || waiter_pid(&p, rid)
        == Some(second.id() as i64)));
    let out = send(&p, "@SA-waitee00", "the build is green </x>");
    assert!(out.contains("its wait hook wakes it"), "{out}");
    let (code, err) = exit_of(&mut second);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("[orchestrator] message #1 from the person"),
        "{err}"
    );
    assert!(err.contains("│ the build is green </x>"), "{err}");
    // Delivered once: the next turn has nothing more.
    assert!(!prompt(&p, rid, "next", &env).contains("message #1"));
    let db = p.state_dir().join("agent-channel/agent_channel.db");
    let via: String = rusqlite::Connection::open(db)
        .and_then(|c| c.query_row("SELECT via FROM deliveries", [], |r| r.get(0)))
        .expect("via");
    assert_eq!(via, "waiter");
    // SIGTERM: exit 0.
    let mut third = waiter(&p, rid, agent.id(), &[]);
    assert!(wait_until(Duration::from_secs(20), || waiter_pid(&p, rid)
        == Some(third.id() as i64)));
    kill(third.id() as i32, libc::SIGTERM);
    assert_eq!(exit_of(&mut third).0, 0);
    // With a doorbell there is nothing to wait for.
    let bell = Bell::new(&p, "w");
    let mut fourth = waiter(&p, rid, agent.id(), &[bell.env()]);
    assert_eq!(exit_of(&mut fourth).0, 0);
}

#[test]
fn a_waiter_leaves_a_busy_session_to_its_hooks() {
    let p = Project::new();
    let rid = "busywait-bbbb";
    let (agent, env) = session(&p, rid, None);
    prompt(&p, rid, "working", &env);
    let mut w = waiter(&p, rid, agent.id(), &[]);
    assert!(wait_until(Duration::from_secs(20), || waiter_pid(&p, rid)
        == Some(w.id() as i64)));
    send(&p, "@SA-busywait", "while you work");
    // Busy: the session's own hooks deliver it, not the waiter.
    let out = p.hook(
        "PostToolUse",
        &payload(rid, json!({"tool_name": "Read"})),
        &env,
    );
    assert!(context(&out).contains("│ while you work"), "{out:?}");
    send(&p, "@SA-busywait", "after your turn");
    // The turn ends with that one undelivered: the waiter takes it now.
    let out = p.hook("Stop", &payload(rid, json!({})), &env);
    assert!(out.status.success());
    let (code, err) = exit_of(&mut w);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("│ after your turn") && !err.contains("while you work"),
        "{err}"
    );
}

#[test]
fn channel_auto_leaves_a_session_with_a_doorbell_to_the_ring() {
    let p = Project::new();
    let bell = Bell::new(&p, "chan");
    let benv = bell.env();
    let init = |a: &mut Agent| {
        a.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18",
                   "capabilities": {"experimental": {"claude/channel": {}}},
                   "clientInfo": {"name": "test", "version": "0"}}),
        );
        a.request("tools/list", json!({}));
    };
    // Declares channels and has a doorbell: `auto` does not push; the ring and hook deliver.
    let mut rung = p.agent_with_server(&[
        ("CLAUDE_CODE_SESSION_ID", "chanbell-rrrr"),
        (benv.0, benv.1.as_str()),
    ]);
    init(&mut rung);
    // Declares channels, no doorbell: `auto` pushes (the positive control).
    let mut pushed = p.agent_with_server(&[("CLAUDE_CODE_SESSION_ID", "chanpush-pppp")]);
    init(&mut pushed);
    assert!(wait_until(Duration::from_secs(10), || {
        status_of(&p, "chanbell-rrrr")["wake"] == "doorbell" && live_ids(&p).len() == 2
    }));
    let out = send(&p, "@SA-chanpush", "pushed to you");
    assert!(out.contains("no doorbell"), "{out}");
    let n = pushed
        .wait_notification("notifications/claude/channel", Duration::from_secs(20))
        .expect("pushed");
    assert!(n.to_string().contains("pushed to you"), "{n}");
    let out = send(&p, "@SA-chanbell", "rung for you");
    assert!(out.contains("woke SA-chanbell"), "{out}");
    assert_eq!(bell.rung().len(), 1);
    let ctx = prompt(
        &p,
        "chanbell-rrrr",
        &notice(2, "the person"),
        &[("CLAUDE_PID", rung.pid.to_string()), benv.clone()],
    );
    assert!(ctx.contains("│ rung for you"), "{ctx}");
}

#[test]
fn a_notice_that_needs_action_rings_too() {
    let p = Project::new();
    let bell = Bell::new(&p, "prime");
    let (_r, env) = session(&p, "newprime-pppp", Some(&bell.path));
    let out = p.run(&["takeover", "@SA-newprime"]);
    assert!(out.status.success(), "{out:?}");
    let rung = bell.rung();
    assert_eq!(rung.len(), 1, "{rung:?}");
    let v: Value = serde_json::from_str(&rung[0]).expect("json");
    assert_eq!(
        v["message"]["content"],
        "<cross-session-message from-name=\"orchestrator\">[orchestrator] the person made you \
         the prime session (@PA); it is in your context</cross-session-message>"
    );
    let content = v["message"]["content"].as_str().unwrap_or_default();
    let ctx = prompt(&p, "newprime-pppp", content, &env);
    assert!(
        ctx.contains("the person made you the prime session"),
        "{ctx}"
    );
    assert!(!ctx.contains("nothing new"), "{ctx}");
}

#[test]
fn a_session_launched_in_bypass_mode_is_held_from_its_start() {
    use std::os::unix::process::CommandExt;
    let p = Project::new();
    let bell = Bell::new(&p, "flag");
    let mut c = p.cmd(&p.claude);
    c.args(["sh", "-c", "sleep 600", "--dangerously-skip-permissions"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let agent = Sleeper(spawn_retrying(&mut c));
    let env = vec![("CLAUDE_PID", agent.id().to_string()), bell.env()];
    // SessionStart reports no permission mode: the launch flag tells.
    let out = p.hook(
        "SessionStart",
        &payload("flagged0-ffff", json!({"source": "startup"})),
        &env,
    );
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    assert_eq!(
        status_of(&p, "flagged0-ffff")["wake"],
        "doorbell (held: bypass mode)"
    );
    // Once a hook reports the mode in use, that wins.
    let out = p.hook(
        "Stop",
        &payload("flagged0-ffff", json!({"permission_mode": "default"})),
        &env,
    );
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    assert_eq!(status_of(&p, "flagged0-ffff")["wake"], "doorbell");
}

#[test]
fn a_codex_session_is_woken_through_codex_queue_once_per_burst() {
    let p = Project::new();
    let rid = "c0dex000-cccc";
    let (_r, env) = session(&p, rid, None);
    // The row says the session runs Codex CLI (its hooks would have recorded that).
    let db = p.state_dir().join("agent-channel/agent_channel.db");
    rusqlite::Connection::open(db)
        .and_then(|c| {
            c.execute(
                "UPDATE sessions SET agent_cli='codex' WHERE session_id=?1",
                [rid],
            )
        })
        .expect("mark codex");
    // A fake `codex` on PATH records how it was called.
    let bin = p.root.parent().expect("parent").join("codexbin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let calls = bin.join("calls");
    let fake = bin.join("codex");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\n",
            calls.display()
        ),
    )
    .expect("write");
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let send_codex = |body: &str| {
        let out = p
            .cmd(Path::new(BIN))
            .env("PATH", &path)
            .args(["send", "@SA-c0dex000", body])
            .output()
            .expect("send");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let first = send_codex("rebase onto main please");
    assert!(first.contains("woke SA-c0dex000"), "{first}");
    let second = send_codex("and run the tests");
    assert!(
        !second.contains("woke SA-c0dex000"),
        "a burst rings once: {second}"
    );
    let mut seen = String::new();
    for _ in 0..200 {
        seen = std::fs::read_to_string(&calls).unwrap_or_default();
        if !seen.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert_eq!(seen.lines().count(), 1, "{seen}");
    assert!(
        seen.starts_with(&format!("queue --thread={rid} --message=")),
        "{seen}"
    );
    assert!(
        !seen.contains("rebase onto main"),
        "the body never rides the wake: {seen}"
    );
    // The turn it starts delivers both bodies through the hook, as for Claude Code.
    let ctx = prompt(&p, rid, "(woken)", &env);
    assert!(
        ctx.contains("rebase onto main please") && ctx.contains("and run the tests"),
        "{ctx}"
    );
}
