//! Promises under races: of many sessions asking at once for one exclusive claim, the
//! prime role or a name, exactly one gets it — whether they race as threads (one store
//! connection each) or as processes (the real binary, spawned all at once).
//!
//! To line the racers up, the test holds the database's write lock while they start
//! ([`WriteLock`]): a check made outside the writing transaction would then pass for all
//! of them before any could write. How long the lock is held changes only how hard the
//! race is, never what a correct build answers.

mod common;
use common::*;
use orchestrator::core::clock::SystemClock;
use orchestrator::core::identity::{Evidence, SessionId, SystemProbe};
use orchestrator::core::paths::ProjectPaths;
use orchestrator::core::store::claims::Request;
use orchestrator::core::store::{Registration, Store};
use orchestrator::core::{claims, roles};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Barrier};
use std::time::Duration;

const THREADS: usize = 8;
/// How long racing processes (threads) are held at the write lock: long enough for most
/// to get there, well under the busy timeout they wait with.
const HOLD_PROCESSES: Duration = Duration::from_millis(300);
const HOLD_THREADS: Duration = Duration::from_millis(30);

/// The database's write lock, held by the test until dropped.
struct WriteLock(rusqlite::Connection);

impl WriteLock {
    fn take(paths: &ProjectPaths) -> Self {
        let c = rusqlite::Connection::open(paths.db_path()).expect("open");
        c.execute_batch("BEGIN IMMEDIATE").expect("lock");
        Self(c)
    }

    /// Lets the racers go after they have had `hold` to line up.
    fn release_after(self, hold: Duration) {
        std::thread::sleep(hold);
        self.0.execute_batch("COMMIT").expect("unlock");
    }
}

const ROUNDS: usize = 10;

fn id(i: usize) -> String {
    format!("{i:08x}-race")
}

/// A project store with `n` live sessions (fresh heartbeats, no agent process).
fn project_with_sessions(n: usize) -> (tempfile::TempDir, ProjectPaths) {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = ProjectPaths::from_root(dir.path()).expect("paths");
    let mut store = Store::open(&paths).expect("open");
    for i in 0..n {
        let sid = SessionId::parse(&id(i)).expect("id");
        store
            .register(&Registration::new(&sid, Evidence::Explicit))
            .expect("register");
    }
    (dir, paths)
}

/// Runs `f(i, store)` on `THREADS` threads, each with its own connection, released
/// together by a barrier; returns their results in thread order.
fn race<T: Send + 'static>(
    paths: &ProjectPaths,
    f: impl Fn(usize, &mut Store) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let f = Arc::new(f);
    let gate = Arc::new(Barrier::new(THREADS));
    let stores: Vec<Store> = (0..THREADS)
        .map(|_| Store::open(paths).expect("open"))
        .collect();
    let lock = WriteLock::take(paths);
    let handles: Vec<_> = stores
        .into_iter()
        .enumerate()
        .map(|(i, mut store)| {
            let (f, gate) = (f.clone(), gate.clone());
            std::thread::spawn(move || {
                gate.wait();
                f(i, &mut store)
            })
        })
        .collect();
    lock.release_after(HOLD_THREADS);
    handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect()
}

#[test]
fn threads_racing_for_one_exclusive_claim_have_one_winner() {
    let (_dir, paths) = project_with_sessions(THREADS);
    let store = Store::open(&paths).expect("open");
    for round in 0..ROUNDS {
        let results = race(&paths, |i, store| {
            let me = id(i);
            let pats = vec!["src/x.rs".to_string()];
            let req = Request {
                session_id: &me,
                patterns: &pats,
                exclusive: true,
                reason: None,
                ttl_ms: None,
                worktree: None,
            };
            claims::claim(store, &req, &SystemProbe, &SystemClock).expect("no store error")
        });
        let winners: Vec<usize> = (0..THREADS).filter(|&i| results[i].is_ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        for r in results.iter().filter_map(|r| r.as_ref().err()) {
            assert!(r.contains("overlaps the exclusive claim src/x.rs"), "{r}");
        }
        let held = store.all_claims().expect("claims");
        assert_eq!(held.len(), 1, "round {round}: {held:?}");
        assert_eq!(held[0].session_id, id(winners[0]));
        claims::release(&store, &id(winners[0]), Path::new("/"), Path::new("/"), &[])
            .expect("db")
            .expect("released");
    }
}

#[test]
fn threads_racing_for_prime_or_a_name_have_one_winner() {
    let (_dir, paths) = project_with_sessions(THREADS);
    let store = Store::open(&paths).expect("open");
    let primes = |s: &Store| -> Vec<String> {
        s.all_sessions()
            .expect("rows")
            .into_iter()
            .filter(|r| r.role == roles::PRIME)
            .map(|r| r.session_id)
            .collect()
    };
    let demote_all = |s: &Store| {
        for r in s.all_sessions().expect("rows") {
            s.set_role(&r.session_id, roles::SUBORDINATE).expect("role");
        }
    };
    for round in 0..ROUNDS {
        // Registering with ORCHESTRATOR_AGENT_ROLE=prime (hook and server alike).
        demote_all(&store);
        let held_by = race(&paths, |i, store| {
            let me = id(i);
            let sid = SessionId::parse(&me).expect("id");
            let mut reg = Registration::new(&sid, Evidence::Explicit);
            roles::ask(&mut reg, roles::PRIME);
            store.register(&reg).expect("register").role_held_by
        });
        let p = primes(&store);
        assert_eq!(p.len(), 1, "round {round}: {p:?}");
        assert_eq!(held_by.iter().filter(|h| h.is_none()).count(), 1);
        assert!(held_by.iter().flatten().all(|h| h.session_id == p[0]));
        // claim_prime without force: one winner; with force: all succeed, one ends prime.
        for force in [false, true] {
            demote_all(&store);
            let results = race(&paths, move |i, store| {
                roles::claim_prime(store, &id(i), force, &SystemProbe).expect("db")
            });
            let won = results.iter().filter(|r| r.is_ok()).count();
            assert_eq!(won, if force { THREADS } else { 1 }, "{results:?}");
            assert_eq!(primes(&store).len(), 1, "force {force}, round {round}");
        }
        // set_name: one session gets the name.
        let name = format!("lexer-{round}");
        let n = name.clone();
        let got = race(&paths, move |i, store| {
            store.set_unique_name(&id(i), &n).expect("db")
        });
        assert_eq!(got.iter().filter(|g| **g).count(), 1, "{got:?}");
        let named = store
            .all_sessions()
            .expect("rows")
            .into_iter()
            .filter(|r| r.name.as_deref() == Some(name.as_str()))
            .count();
        assert_eq!(named, 1);
    }
}

const PROCS: usize = 20;

fn spawn(p: &Project, args: &[&str]) -> Child {
    let mut c = p.cmd(Path::new(BIN));
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    spawn_retrying(&mut c)
}

#[test]
fn processes_racing_for_one_exclusive_claim_have_one_winner() {
    let p = Project::new();
    let ids: Vec<String> = (0..PROCS).map(id).collect();
    let agents: Vec<_> = ids.iter().map(|i| p.session(i).0).collect();
    let paths = ProjectPaths::from_root(&p.root).expect("paths");
    for round in 0..5 {
        let lock = WriteLock::take(&paths);
        let kids: Vec<Child> = ids
            .iter()
            .map(|i| spawn(&p, &["claim", "--session", i, "--exclusive", "src/x.rs"]))
            .collect();
        lock.release_after(HOLD_PROCESSES);
        let outs: Vec<_> = kids
            .into_iter()
            .map(|k| k.wait_with_output().expect("wait"))
            .collect();
        let winners: Vec<&String> = ids
            .iter()
            .zip(&outs)
            .filter(|(_, o)| o.status.success())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        for o in outs.iter().filter(|o| !o.status.success()) {
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                err.contains("overlaps the exclusive claim src/x.rs"),
                "{err}"
            );
        }
        let listed = p.run(&["claims", "--json"]);
        let all: Value = serde_json::from_slice(&listed.stdout).expect("json");
        let all = all.as_array().expect("array");
        assert_eq!(all.len(), 1, "round {round}: {all:?}");
        assert_eq!(all[0]["pattern"], "src/x.rs");
        assert_eq!(all[0]["exclusive"], true);
        assert_eq!(all[0]["session_id"], json!(winners[0]));
        assert!(p
            .run(&["release", "--session", winners[0]])
            .status
            .success());
    }
    drop(agents);
}

#[test]
fn processes_racing_for_prime_leave_one_prime() {
    let p = Project::new();
    let prime_rows = || -> Vec<String> {
        let out = p.run(&["status", "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).expect("status json");
        v.as_array()
            .expect("array")
            .iter()
            .filter(|r| r["role"] == "prime")
            .filter_map(|r| r["session_id"].as_str().map(str::to_string))
            .collect()
    };
    // Sessions starting at once, each asking for prime in its environment.
    let agents: Vec<_> = (0..PROCS).map(|_| p.sleeping_agent()).collect();
    // The first session (not asking for prime) creates the database; line the rest up
    // behind the write lock.
    let paths = ProjectPaths::from_root(&p.root).expect("paths");
    let first = p.hook(
        "SessionStart",
        &payload(&id(0), json!({"source": "startup"})),
        &[("CLAUDE_PID", agents[0].id().to_string())],
    );
    assert!(first.status.success());
    let lock = WriteLock::take(&paths);
    let mut hooks = Vec::new();
    for (i, agent) in agents.iter().enumerate().skip(1) {
        let mut c = p.cmd(Path::new(BIN));
        c.args(["hook", "SessionStart"])
            .env("CLAUDE_PID", agent.id().to_string())
            .env("ORCHESTRATOR_AGENT_ROLE", roles::PRIME)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = spawn_retrying(&mut c);
        if let Some(mut si) = child.stdin.take() {
            use std::io::Write;
            let _ = si.write_all(payload(&id(i), json!({"source": "startup"})).as_bytes());
        }
        hooks.push(child);
    }
    lock.release_after(HOLD_PROCESSES);
    for h in hooks {
        let out = h.wait_with_output().expect("hook");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(live_ids(&p).len(), PROCS);
    assert_eq!(prime_rows().len(), 1, "{:?}", prime_rows());
    // The person moving prime from several terminals at once: each takeover succeeds in
    // turn, and one session ends up prime.
    let lock = WriteLock::take(&paths);
    let kids: Vec<Child> = (0..PROCS)
        .map(|i| spawn(&p, &["takeover", &format!("@SA-{}", &id(i)[..8])]))
        .collect();
    lock.release_after(HOLD_PROCESSES);
    for k in kids {
        let out = k.wait_with_output().expect("takeover");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(prime_rows().len(), 1, "{:?}", prime_rows());
    drop(agents);
}
