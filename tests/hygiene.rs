//! The reaper, against a simulated process table and against real processes.

use orchestrator::core::hygiene::{reap, reap_anchors};
use orchestrator::core::identity::anchor::write_anchor;
use orchestrator::core::identity::{AgentProcess, Probe, ProcInfo, SessionId, SystemProbe};
use orchestrator::core::paths::ProjectPaths;
use std::collections::HashMap;
use std::fs;
use std::sync::Mutex;

/// A process table the test controls.
#[derive(Default)]
struct Table(Mutex<HashMap<i32, ProcInfo>>);

impl Table {
    fn set(&self, pid: i32, ticks: u64) {
        self.0.lock().expect("lock").insert(
            pid,
            ProcInfo {
                start_ticks: ticks,
                start_unix_ms: 0,
            },
        );
    }
}

impl Probe for Table {
    fn process(&self, pid: i32) -> Option<ProcInfo> {
        self.0.lock().expect("lock").get(&pid).copied()
    }
}

fn project() -> (tempfile::TempDir, ProjectPaths) {
    let t = tempfile::tempdir().expect("tempdir");
    let p = ProjectPaths::from_root(t.path()).expect("paths");
    p.ensure_state_dir().expect("state dir");
    (t, p)
}

fn anchor(p: &ProjectPaths, pid: i32, ticks: u64, id: &str) {
    write_anchor(
        p,
        &SessionId::parse(id).expect("id"),
        &AgentProcess {
            pid,
            start_ticks: ticks,
        },
    )
    .expect("write anchor");
}

fn names(p: &ProjectPaths) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(&p.state_dir)
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn dead_reused_and_live_anchors() {
    let (_t, p) = project();
    let table = Table::default();
    table.set(100, 5); // live, matching
    table.set(200, 9); // live, but the anchor recorded 7: pid reused
    anchor(&p, 100, 5, "live-one");
    anchor(&p, 200, 7, "reused");
    anchor(&p, 300, 1, "dead-one");
    let r = reap_anchors(&p, &table, false).expect("reap");
    assert_eq!(r.anchors_reaped.len(), 2);
    assert_eq!(r.anchors_kept, 1);
    assert!(r.anchors_reaped.iter().any(|x| x.reason.contains("reused")));
    assert!(names(&p).contains(&"active-session-100".to_string()));
    assert!(!names(&p).contains(&"active-session-200".to_string()));
    assert!(!names(&p).contains(&"active-session-300".to_string()));
    assert_eq!(
        r.log_line(),
        "[orchestrator] startup hygiene: reaped 2 stale active-session-<pid> file(s)"
    );
    // Idempotent.
    let again = reap_anchors(&p, &table, false).expect("reap");
    assert_eq!(again.anchors_reaped.len(), 0);
}

#[test]
fn dry_run_removes_nothing() {
    let (_t, p) = project();
    anchor(&p, 300, 1, "dead-one");
    let r = reap_anchors(&p, &Table::default(), true).expect("reap");
    assert_eq!(r.anchors_reaped.len(), 1);
    assert!(r.log_line().contains("would reap 1"));
    assert!(names(&p).contains(&"active-session-300".to_string()));
}

#[test]
fn non_pid_files_and_bad_pids_are_ignored() {
    let (_t, p) = project();
    for n in [
        "active-session",
        "active-session-foo",
        "active-session-0",
        "active-session--5",
        "active-session-12x",
        "notes.txt",
    ] {
        fs::write(p.state_dir.join(n), "whatever\n").expect("write");
    }
    let r = reap_anchors(&p, &Table::default(), false).expect("reap");
    assert_eq!(r.anchors_reaped.len(), 0);
    for n in [
        "active-session",
        "active-session-foo",
        "active-session-0",
        "active-session--5",
        "active-session-12x",
        "notes.txt",
    ] {
        assert!(p.state_dir.join(n).exists(), "{n} was touched");
    }
}

#[test]
fn symlinks_are_never_followed_or_deleted() {
    let (t, p) = project();
    let outside = t.path().join("precious");
    fs::write(&outside, "keep me\n").expect("write");
    std::os::unix::fs::symlink(&outside, p.state_dir.join("active-session-999999"))
        .expect("symlink");
    let r = reap_anchors(&p, &Table::default(), false).expect("reap");
    assert_eq!(r.anchors_reaped.len(), 0);
    assert!(fs::symlink_metadata(p.state_dir.join("active-session-999999")).is_ok());
    assert_eq!(fs::read_to_string(&outside).expect("read"), "keep me\n");
}

#[test]
fn missing_and_empty_dirs_are_no_ops() {
    let t = tempfile::tempdir().expect("tempdir");
    let p = ProjectPaths::from_root(t.path()).expect("paths");
    let r = reap_anchors(&p, &Table::default(), false).expect("missing dir");
    assert_eq!(r.anchors_reaped.len() + r.anchors_kept + r.ignored, 0);
    p.ensure_state_dir().expect("mkdir");
    let r = reap_anchors(&p, &Table::default(), false).expect("empty dir");
    assert_eq!(r.anchors_reaped.len(), 0);
}

#[test]
fn corrupt_anchor_of_a_dead_pid_is_reaped_of_a_live_pid_kept() {
    let (_t, p) = project();
    let table = Table::default();
    table.set(100, 1);
    fs::write(p.state_dir.join("active-session-100"), "{garbage").expect("write");
    fs::write(p.state_dir.join("active-session-101"), "../../etc").expect("write");
    let r = reap_anchors(&p, &table, false).expect("reap");
    assert_eq!(r.anchors_reaped.len(), 1);
    assert!(p.state_dir.join("active-session-100").exists());
}

#[test]
fn racing_reapers_both_succeed() {
    let (_t, p) = project();
    for pid in 1000..1400 {
        anchor(&p, pid, 1, "dead");
    }
    let table = Table::default();
    let (a, b) = std::thread::scope(|s| {
        let h1 = s.spawn(|| reap_anchors(&p, &table, false));
        let h2 = s.spawn(|| reap_anchors(&p, &table, false));
        (h1.join().expect("t1"), h2.join().expect("t2"))
    });
    let (a, b) = (a.expect("reaper 1"), b.expect("reaper 2"));
    assert!(a.anchors_reaped.len() + b.anchors_reaped.len() >= 400);
    assert!(!names(&p).iter().any(|n| n.starts_with("active-session-")));
}

#[test]
fn real_probe_spawn_and_kill() {
    let (_t, p) = project();
    let mut child = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("spawn");
    let pid = child.id() as i32;
    let info = SystemProbe.process(pid).expect("child is alive");
    anchor(&p, pid, info.start_ticks, "child-session");
    let r = reap_anchors(&p, &SystemProbe, false).expect("reap");
    assert_eq!(r.anchors_reaped.len(), 0, "live child's anchor kept");
    child.kill().expect("kill");
    child.wait().expect("wait");
    assert!(SystemProbe.process(pid).is_none());
    let r = reap_anchors(&p, &SystemProbe, false).expect("reap");
    assert_eq!(r.anchors_reaped.len(), 1, "dead child's anchor reaped");
}

#[test]
fn rows_of_dead_agents_are_reaped_with_anchors() {
    use orchestrator::core::identity::Evidence;
    use orchestrator::core::store::{Registration, Store};
    let (_t, p) = project();
    let mut store = Store::open(&p).expect("store");
    let mut child = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("spawn");
    let pid = child.id() as i32;
    let ticks = SystemProbe.process(pid).expect("alive").start_ticks;
    let id = SessionId::parse("rowrow00-1").expect("id");
    let mut reg = Registration::new(&id, Evidence::Explicit);
    reg.agent = Some(AgentProcess {
        pid,
        start_ticks: ticks,
    });
    store.register(&reg).expect("register");
    let heartbeat_only = SessionId::parse("remote00-2").expect("id");
    store
        .register(&Registration::new(&heartbeat_only, Evidence::Explicit))
        .expect("register");
    let r = reap(&p, Some(&store), &SystemProbe, false).expect("reap");
    assert!(r.rows_reaped.is_empty());
    child.kill().expect("kill");
    child.wait().expect("wait");
    let r = reap(&p, Some(&store), &SystemProbe, false).expect("reap");
    assert_eq!(r.rows_reaped, vec!["rowrow00-1".to_string()]);
    assert!(
        store.get("remote00-2").expect("get").is_some(),
        "heartbeat-only row kept"
    );
    assert!(r.log_line().ends_with("and 1 dead session row(s)"));
}

#[test]
fn old_records_and_orphan_snapshots_are_pruned_recent_ones_kept() {
    use orchestrator::core::store::retention::KEEP_MS;
    use orchestrator::core::store::Store;
    let (_t, p) = project();
    let store = Store::open(&p).expect("open");
    let now = orchestrator::core::clock::now_ms();
    let ancient = now - KEEP_MS - 1000;
    let c = rusqlite::Connection::open(p.db_path()).expect("open");
    c.execute_batch(&format!(
        "INSERT INTO sessions (session_id, id8, started_at, last_heartbeat_at)
           VALUES ('livelive-1', 'livelive', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');
         INSERT INTO messages (id, sender_id, address, body, created_at_ms)
           VALUES (1, 'a', '@b', 'old', {ancient}), (2, 'a', '@b', 'new', {now});
         INSERT INTO deliveries (message_id, recipient_id, state, queued_at_ms)
           VALUES (1, 'gonegone-1', 'queued', {ancient}), (2, 'gonegone-1', 'queued', {now});
         INSERT INTO notices (session_id, body, created_at_ms, delivered_at_ms)
           VALUES ('x', 'seen long ago', {ancient}, {ancient}), ('x', 'pending', {now}, NULL);
         INSERT INTO ended_sessions (session_id, id8, ended_at_ms, how)
           VALUES ('oldend-1', 'oldend-1', {ancient}, 'killed'), ('newend-1', 'newend-1', {now}, 'killed');
         INSERT INTO tree_snapshots (session_id, entries, at_ms)
           VALUES ('livelive-1', '{{}}', {now}), ('gonegone-1', '{{}}', {now});
         INSERT INTO touches (session_id, path, at_ms)
           VALUES ('livelive-1', 'a.rs', {ancient}), ('livelive-1', 'b.rs', {now});"
    ))
    .expect("seed");
    let count = |table: &str| -> i64 {
        c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .expect("count")
    };
    let dry = store.prune(now, true).expect("dry run");
    assert_eq!(
        (
            dry.messages,
            dry.notices,
            dry.ended_sessions,
            dry.tree_snapshots,
            dry.touches
        ),
        (1, 1, 1, 1, 1)
    );
    assert_eq!(count("messages"), 2, "a dry run deletes nothing");
    let done = store.prune(now, false).expect("prune");
    assert_eq!(done, dry);
    assert_eq!(count("messages"), 1);
    assert_eq!(
        count("deliveries"),
        1,
        "the old message's delivery went with it"
    );
    assert_eq!(count("notices"), 1);
    assert_eq!(count("ended_sessions"), 1);
    assert_eq!(count("touches"), 1);
    let kept: String = c
        .query_row("SELECT session_id FROM tree_snapshots", [], |r| r.get(0))
        .expect("one snapshot");
    assert_eq!(kept, "livelive-1");
    assert_eq!(
        store.prune(now, false).expect("again").total(),
        0,
        "idempotent"
    );
}
