//! The registry's identity rules through the library API, with real processes where the
//! rule depends on them, and a seeded randomized scenario over a simulated process table.

use orchestrator::core::hygiene;
use orchestrator::core::identity::anchor::{parse_anchor_name, read_anchor, write_anchor};
use orchestrator::core::identity::resolver::{resolve, Inputs};
use orchestrator::core::identity::{
    AgentProcess, Evidence, Probe, ProcInfo, SessionId, SystemProbe,
};
use orchestrator::core::liveness::{self, Caller, Policy};
use orchestrator::core::paths::ProjectPaths;
use orchestrator::core::store::{Registration, Store};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::collections::{BTreeSet, HashMap, HashSet};

fn sid(s: &str) -> SessionId {
    SessionId::parse(s).expect("valid id")
}

fn project() -> (tempfile::TempDir, ProjectPaths, Store) {
    let t = tempfile::tempdir().expect("tempdir");
    let p = ProjectPaths::from_root(t.path()).expect("paths");
    let s = Store::open(&p).expect("store");
    (t, p, s)
}

fn reg(id: &SessionId, ev: Evidence, agent: Option<AgentProcess>) -> Registration<'_> {
    let mut r = Registration::new(id, ev);
    r.agent = agent;
    r
}

fn real_agent() -> (std::process::Child, AgentProcess) {
    let c = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("spawn");
    let pid = c.id() as i32;
    let ticks = SystemProbe.process(pid).expect("alive").start_ticks;
    (
        c,
        AgentProcess {
            pid,
            start_ticks: ticks,
        },
    )
}

fn sibling_ids(store: &Store, caller: &Caller) -> Vec<String> {
    let live = liveness::live(
        store.all_sessions().expect("rows"),
        orchestrator::core::clock::now_ms(),
        &SystemProbe,
        Policy::default(),
    );
    liveness::siblings(&live, caller)
        .into_iter()
        .map(|r| r.session_id.clone())
        .collect()
}

#[test]
fn drift_is_repaired_by_moving_the_row() {
    let (_t, paths, mut store) = project();
    let (mut child, agent) = real_agent();
    // A stale anchor X for our agent pid (same start time: the worst case) wins at start.
    write_anchor(&paths, &sid("XXXXXXXX-stale"), &agent).expect("anchor");
    let inp = Inputs {
        explicit: None,
        env_id: None,
        agent: Some(agent),
        paths: &paths,
        harness_dir: None,
        probe: &SystemProbe,
    };
    let r = resolve(&inp).expect("resolve").expect("some");
    assert_eq!(
        (r.id.as_str(), r.evidence),
        ("XXXXXXXX-stale", Evidence::PidAnchor)
    );
    assert!(r.evidence.is_provisional());
    store
        .register(&reg(&r.id, r.evidence, Some(agent)))
        .expect("register X");
    // The harness's real id Y arrives: the row moves.
    let y = sid("YYYYYYYY-real");
    let moved = store
        .rebind("XXXXXXXX-stale", &reg(&y, Evidence::Explicit, Some(agent)))
        .expect("rebind");
    assert_eq!(moved.moved_from, vec!["XXXXXXXX-stale".to_string()]);
    assert!(
        store.get("XXXXXXXX-stale").expect("get").is_none(),
        "X's row is gone"
    );
    let mut caller = Caller::new(Some("YYYYYYYY-real"), Some(agent));
    caller.self_ids.insert("XXXXXXXX-stale".into());
    assert!(sibling_ids(&store, &caller).is_empty());
    // Registering Y again for the same process (a hook) is a no-op apart from the heartbeat.
    let again = store
        .register(&reg(&y, Evidence::Explicit, Some(agent)))
        .expect("again");
    assert!(again.moved_from.is_empty() && !again.created);
    assert_eq!(store.all_sessions().expect("rows").len(), 1);
    let same = store
        .rebind("YYYYYYYY-real", &reg(&y, Evidence::Explicit, Some(agent)))
        .expect("same");
    assert!(same.moved_from.is_empty());
    child.kill().expect("kill");
    child.wait().expect("wait");
}

#[test]
fn a_hook_registering_a_new_id_moves_the_processes_row_keeping_name_and_role() {
    let (_t, _paths, mut store) = project();
    let (mut child, agent) = real_agent();
    let x = sid("XXXXXXXX-1");
    let mut r = reg(&x, Evidence::Environment, Some(agent));
    r.name = Some("builder");
    r.role = Some("prime");
    r.server = Some((4242, "tok"));
    store.register(&r).expect("X");
    let y = sid("YYYYYYYY-2");
    let out = store
        .register(&reg(&y, Evidence::Explicit, Some(agent)))
        .expect("Y");
    assert_eq!(out.moved_from, vec!["XXXXXXXX-1".to_string()]);
    let row = store.get("YYYYYYYY-2").expect("get").expect("row");
    assert_eq!(row.name.as_deref(), Some("builder"));
    assert_eq!(row.role, "prime");
    assert_eq!(
        row.server_token.as_deref(),
        Some("tok"),
        "the server still owns the moved row"
    );
    assert_eq!(
        store.owned_by(&agent).expect("owned").as_deref(),
        Some("YYYYYYYY-2")
    );
    assert_eq!(store.all_sessions().expect("rows").len(), 1);
    // A server only deletes what it still owns.
    assert!(!store
        .end_if_owned("YYYYYYYY-2", "other-token", "test")
        .expect("rm"));
    assert!(store.end_if_owned("YYYYYYYY-2", "tok", "test").expect("rm"));
    child.kill().expect("kill");
    child.wait().expect("wait");
}

#[test]
fn two_real_agents_see_exactly_each_other() {
    let (_t, _paths, mut store) = project();
    let (mut c1, a1) = real_agent();
    let (mut c2, a2) = real_agent();
    let (i1, i2) = (sid("agent111-a"), sid("agent222-b"));
    store
        .register(&reg(&i1, Evidence::Explicit, Some(a1)))
        .expect("1");
    store
        .register(&reg(&i2, Evidence::Explicit, Some(a2)))
        .expect("2");
    assert_eq!(
        sibling_ids(&store, &Caller::new(Some("agent111-a"), Some(a1))),
        vec!["agent222-b"]
    );
    assert_eq!(
        sibling_ids(&store, &Caller::new(Some("agent222-b"), Some(a2))),
        vec!["agent111-a"]
    );
    // Even a caller that lost its own id still never sees its own process's row.
    assert_eq!(
        sibling_ids(&store, &Caller::new(None, Some(a1))),
        vec!["agent222-b"]
    );
    c2.kill().expect("kill");
    c2.wait().expect("wait");
    assert!(sibling_ids(&store, &Caller::new(Some("agent111-a"), Some(a1))).is_empty());
    c1.kill().expect("kill");
    c1.wait().expect("wait");
}

#[test]
fn heartbeat_rows_go_stale_process_rows_do_not() {
    let (_t, _paths, mut store) = project();
    let (mut c, a) = real_agent();
    store
        .register(&reg(&sid("proc0000-1"), Evidence::Explicit, Some(a)))
        .expect("1");
    store
        .register(&reg(&sid("beat0000-2"), Evidence::Explicit, None))
        .expect("2");
    let rows = store.all_sessions().expect("rows");
    let far_future = orchestrator::core::clock::now_ms() + 90 * 60 * 1000;
    let live: Vec<String> = liveness::live(rows, far_future, &SystemProbe, Policy::default())
        .into_iter()
        .map(|r| r.session_id)
        .collect();
    assert_eq!(
        live,
        vec!["proc0000-1"],
        "a 90-minute silence never hides a running agent"
    );
    c.kill().expect("kill");
    c.wait().expect("wait");
}

/// A simulated process table: the scenario decides who lives and which pids are reused.
#[derive(Default)]
struct Table(HashMap<i32, ProcInfo>);

impl Probe for Table {
    fn process(&self, pid: i32) -> Option<ProcInfo> {
        self.0.get(&pid).copied()
    }
}

struct Sim {
    id: SessionId,
    agent: AgentProcess,
    held: HashSet<String>,
}

#[test]
fn randomized_fleet_keeps_its_invariants() {
    let seed: u64 = std::env::var("ORCHESTRATOR_SCENARIO_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0001);
    let steps: usize = std::env::var("ORCHESTRATOR_SCENARIO_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1500);
    let mut rng = StdRng::seed_from_u64(seed);
    let (_t, paths, mut store) = project();
    let mut table = Table::default();
    let mut live: Vec<Sim> = Vec::new();
    let mut next_tick: u64 = 1;
    let mut serial = 0u32;
    let policy = Policy::default();
    for step in 0..steps {
        let ctx = format!("seed {seed} step {step}");
        let action = rng.gen_range(0..100);
        match action {
            // Launch, often on a reused pid; sometimes the server starts on an old anchor.
            0..=34 if live.len() < 12 => {
                let pid = loop {
                    let p = rng.gen_range(100..130);
                    if !table.0.contains_key(&p) {
                        break p;
                    }
                };
                next_tick += rng.gen_range(1..5);
                table.0.insert(
                    pid,
                    ProcInfo {
                        start_ticks: next_tick,
                        start_unix_ms: 0,
                    },
                );
                let agent = AgentProcess {
                    pid,
                    start_ticks: next_tick,
                };
                // A leftover anchor for this pid belongs to a dead process: never believed.
                let inp = Inputs {
                    explicit: None,
                    env_id: None,
                    agent: Some(agent),
                    paths: &paths,
                    harness_dir: None,
                    probe: &table,
                };
                if let Ok(Some(r)) = resolve(&inp) {
                    assert_ne!(
                        r.evidence,
                        Evidence::PidAnchor,
                        "{ctx}: stale per-pid anchor believed"
                    );
                }
                serial += 1;
                let id = sid(&format!("s{serial:07}-{pid}"));
                let mut held = HashSet::new();
                if rng.gen_bool(0.3) {
                    // Provisional start on a wrong id, then the hook's real id moves it.
                    let wrong = sid(&format!("w{serial:07}-{pid}"));
                    store
                        .register(&reg(&wrong, Evidence::PidAnchor, Some(agent)))
                        .expect("provisional");
                    held.insert(wrong.to_string());
                    store
                        .rebind(wrong.as_str(), &reg(&id, Evidence::Explicit, Some(agent)))
                        .expect("rebind");
                } else {
                    store
                        .register(&reg(&id, Evidence::Explicit, Some(agent)))
                        .expect("register");
                }
                write_anchor(&paths, &id, &agent).expect("anchor");
                held.insert(id.to_string());
                live.push(Sim { id, agent, held });
            }
            // Clean exit (SessionEnd ran).
            35..=49 if !live.is_empty() => {
                let s = live.swap_remove(rng.gen_range(0..live.len()));
                store.end(s.id.as_str(), "clean exit").expect("end");
                let _ = std::fs::remove_file(paths.anchor_path(s.agent.pid));
                table.0.remove(&s.agent.pid);
            }
            // kill -9: nothing is cleaned up.
            50..=64 if !live.is_empty() => {
                let s = live.swap_remove(rng.gen_range(0..live.len()));
                table.0.remove(&s.agent.pid);
            }
            // /clear: a hook registers a new id for the same agent process.
            65..=79 if !live.is_empty() => {
                let i = rng.gen_range(0..live.len());
                serial += 1;
                let new = sid(&format!("c{serial:07}-{}", live[i].agent.pid));
                store
                    .register(&reg(&new, Evidence::Explicit, Some(live[i].agent)))
                    .expect("clear");
                write_anchor(&paths, &new, &live[i].agent).expect("anchor");
                live[i].held.insert(new.to_string());
                live[i].id = new;
            }
            // Server restart / duplicate hook: same id again is a no-op.
            80..=89 if !live.is_empty() => {
                let s = &live[rng.gen_range(0..live.len())];
                let before = store.all_sessions().expect("rows").len();
                store
                    .rebind(
                        s.id.as_str(),
                        &reg(&s.id, Evidence::Explicit, Some(s.agent)),
                    )
                    .expect("same");
                assert_eq!(
                    store.all_sessions().expect("rows").len(),
                    before,
                    "{ctx}: same-id rebind changed rows"
                );
            }
            // Startup hygiene.
            _ => {
                hygiene::reap(&paths, Some(&store), &table, false).expect("reap");
                for e in std::fs::read_dir(&paths.state_dir).expect("ls").flatten() {
                    let name = e.file_name().to_string_lossy().to_string();
                    if let Some(pid) = parse_anchor_name(&name) {
                        let (content, _) = read_anchor(&e.path()).expect("anchor readable");
                        let ok = match content {
                            orchestrator::core::identity::anchor::AnchorContent::Current {
                                pid_start_ticks,
                                ..
                            } => table.is_alive(pid, pid_start_ticks),
                            _ => false,
                        };
                        assert!(ok, "{ctx}: anchor of dead process {name} survived a reap");
                    }
                }
            }
        }
        // Invariants after every step.
        let rows = store.all_sessions().expect("rows");
        let now = orchestrator::core::clock::now_ms();
        let live_rows = liveness::live(rows.clone(), now, &table, policy);
        let mut owners = HashSet::new();
        for r in &rows {
            if let (Some(p), Some(t)) = (r.agent_pid, r.agent_started_at) {
                assert!(
                    owners.insert((p, t)),
                    "{ctx}: two rows owned by one agent process"
                );
            }
        }
        let current: BTreeSet<String> = live.iter().map(|s| s.id.to_string()).collect();
        let live_ids: BTreeSet<String> = live_rows.iter().map(|r| r.session_id.clone()).collect();
        assert_eq!(
            live_ids, current,
            "{ctx}: live rows differ from live sessions"
        );
        for s in &live {
            let mut caller = Caller::new(Some(s.id.as_str()), Some(s.agent));
            caller.self_ids = s.held.clone();
            let sibs: BTreeSet<String> = liveness::siblings(&live_rows, &caller)
                .into_iter()
                .map(|r| r.session_id.clone())
                .collect();
            assert!(
                !sibs.iter().any(|x| s.held.contains(x)),
                "{ctx}: {} sees itself",
                s.id
            );
            let others: BTreeSet<String> = current
                .iter()
                .filter(|x| **x != s.id.to_string())
                .cloned()
                .collect();
            assert_eq!(
                sibs, others,
                "{ctx}: {} does not see exactly its live siblings",
                s.id
            );
        }
    }
}

#[test]
fn opens_a_registry_created_by_the_original_orchestrator() {
    let t = tempfile::tempdir().expect("tempdir");
    let paths = ProjectPaths::from_root(t.path()).expect("paths");
    std::fs::create_dir_all(paths.db_dir()).expect("mkdir");
    {
        let c = rusqlite::Connection::open(paths.db_path()).expect("open");
        c.execute_batch(
            "CREATE TABLE sessions (session_id TEXT PRIMARY KEY, id8 TEXT NOT NULL, role TEXT NOT NULL DEFAULT 'subordinate',
               name TEXT, started_at TEXT NOT NULL, last_heartbeat_at TEXT NOT NULL, current_task TEXT, kind TEXT);
             INSERT INTO sessions VALUES ('tsrow000-1', 'tsrow000', 'prime', 'old', '2026-11-01T00:00:00.000Z',
               '2026-11-01T00:00:00.000Z', 'from the TypeScript fleet', 'claude');",
        )
        .expect("seed");
    }
    let store = Store::open(&paths).expect("migrates");
    let row = store.get("tsrow000-1").expect("get").expect("row kept");
    assert_eq!(
        row.current_task.as_deref(),
        Some("from the TypeScript fleet")
    );
    assert_eq!(row.role, "prime");
    assert!(row.agent_pid.is_none());
    assert!(store.schema_version().expect("version") >= 6);
    // A heartbeat-only row that old is not live.
    let live = liveness::live(
        store.all_sessions().expect("rows"),
        orchestrator::core::clock::now_ms(),
        &SystemProbe,
        Policy::default(),
    );
    assert!(live.is_empty());
}
