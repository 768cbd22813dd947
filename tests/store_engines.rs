//! The same store suite on both engines: the SQLite file and a PostgreSQL schema on a
//! throwaway server. Every promise the store makes — one row per agent process (moved,
//! never duplicated), one winner per exclusive claim, one prime, one name, exactly-once
//! delivery, one ring per burst — is checked on each, the races with one connection per
//! racing thread, as separate processes would hold.

mod common;
use orchestrator::core::identity::{AgentProcess, Evidence, SessionId};
use orchestrator::core::paths::ProjectPaths;
use orchestrator::core::roles;
use orchestrator::core::store::claims::Request;
use orchestrator::core::store::db::pg::Target;
use orchestrator::core::store::messages::Sender;
use orchestrator::core::store::wake::Claim as Ring;
use orchestrator::core::store::{Registration, Store};
use std::collections::HashMap;
use std::sync::{Arc, Barrier};

/// Where a test's store lives; `open` gives one more connection to the same store.
#[derive(Clone)]
enum Engine {
    /// The project's paths, and its directory, kept while any clone lives.
    Sqlite(ProjectPaths, #[allow(dead_code)] Arc<tempfile::TempDir>),
    Pg(Target),
}

impl Engine {
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = ProjectPaths::from_root(dir.path()).expect("paths");
        Engine::Sqlite(paths, Arc::new(dir))
    }

    /// A fresh project (its own schema) on the shared throwaway server.
    fn pg(name: &str) -> Self {
        static DB: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let url = DB.get_or_init(|| common::pg::database("store_engines").socket_url.clone());
        Engine::Pg(Target {
            url: url.clone(),
            project_id: format!("test-{name}-{}", std::process::id()),
        })
    }

    fn open(&self) -> Store {
        match self {
            Engine::Sqlite(paths, _) => Store::open_sqlite(paths).expect("open sqlite"),
            Engine::Pg(t) => Store::open_pg(t).expect("open pg"),
        }
    }
}

/// Defines `$name` once per engine: `$name::sqlite` and `$name::postgres`.
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(super::Engine::sqlite());
            }
            #[test]
            fn postgres() {
                super::$name(super::Engine::pg(stringify!($name)));
            }
        }
    )*};
}

both!(
    one_row_per_agent_process_moves_with_its_mail_and_claims,
    one_winner_per_exclusive_claim,
    one_prime,
    one_name,
    exactly_once_delivery_under_racing_answers,
    one_ring_per_burst,
    ended_sessions_and_retention,
    touches_report_each_sessions_latest,
    hostile_text_round_trips,
    waiters_and_snapshots,
    heartbeats_of_many_rows_at_once,
);

fn sid(s: &str) -> SessionId {
    SessionId::parse(s).expect("id")
}

fn register(store: &mut Store, id: &str, agent: Option<(i32, u64)>) {
    let id = sid(id);
    let mut reg = Registration::new(&id, Evidence::Explicit);
    reg.agent = agent.map(|(pid, start_ticks)| AgentProcess { pid, start_ticks });
    store.register(&reg).expect("register");
}

fn one_row_per_agent_process_moves_with_its_mail_and_claims(e: Engine) {
    let mut s = e.open();
    register(&mut s, "aaaaaaaa-old", Some((4242, 7)));
    s.send_message(
        &Sender::human(),
        "@x",
        "for old",
        None,
        &["aaaaaaaa-old".into()],
    )
    .expect("send");
    let req = Request {
        session_id: "aaaaaaaa-old",
        patterns: &["src/a.rs".to_string()],
        exclusive: true,
        reason: None,
        ttl_ms: None,
        worktree: None,
    };
    s.claim_checked(&req, 1, |_, _| None)
        .expect("claim")
        .expect("granted");
    // The same agent process registers a new id (/clear): the row moves, and its mail
    // and claim follow it.
    register(&mut s, "bbbbbbbb-new", Some((4242, 7)));
    let ids: Vec<String> = s
        .all_sessions()
        .expect("rows")
        .into_iter()
        .map(|r| r.session_id)
        .collect();
    assert_eq!(ids, vec!["bbbbbbbb-new".to_string()]);
    assert_eq!(
        s.ended_how("aaaaaaaa-old").expect("how").as_deref(),
        Some("moved to SA-bbbbbbbb")
    );
    assert_eq!(s.inbox("bbbbbbbb-new", true, 10).expect("inbox").len(), 1);
    assert_eq!(s.claims_of("bbbbbbbb-new").expect("claims").len(), 1);
    assert!(s.claims_of("aaaaaaaa-old").expect("claims").is_empty());
    // A second agent process can never take the same owner slot under another id.
    register(&mut s, "cccccccc-other", Some((4343, 9)));
    assert_eq!(s.all_sessions().expect("rows").len(), 2);
    // Racing re-registrations of one agent process under many ids leave one row.
    race(&e, 6, |s, k| {
        register(s, &format!("dddddd{k:02}-race"), Some((5555, 1)))
    });
    let owned = e
        .open()
        .all_sessions()
        .expect("rows")
        .into_iter()
        .filter(|r| r.agent_pid == Some(5555))
        .count();
    assert_eq!(owned, 1, "one row per agent process");
}

/// Runs `f` on `n` threads, one connection each, released together.
fn race(e: &Engine, n: usize, f: impl Fn(&mut Store, usize) + Send + Sync + 'static) {
    let f = Arc::new(f);
    let gate = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|k| {
            let (e, f, gate) = (e.clone(), f.clone(), gate.clone());
            std::thread::spawn(move || {
                let mut s = e.open();
                gate.wait();
                f(&mut s, k);
            })
        })
        .collect();
    for h in handles {
        h.join().expect("racer");
    }
}

fn one_winner_per_exclusive_claim(e: Engine) {
    for round in 0..5 {
        let wins = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let w = wins.clone();
        let pattern = format!("src/r{round}/**");
        race(&e, 6, move |s, k| {
            let me = format!("{k:08}-r{round}");
            register(s, &me, None);
            let patterns = [pattern.clone()];
            let req = Request {
                session_id: &me,
                patterns: &patterns,
                exclusive: true,
                reason: Some("race"),
                ttl_ms: None,
                worktree: None,
            };
            let got = s
                .claim_checked(&req, 1, |_, claims| {
                    claims
                        .iter()
                        .any(|c| c.exclusive && c.pattern == patterns[0] && c.session_id != me)
                        .then(|| "held".to_string())
                })
                .expect("claim");
            if got.is_ok() {
                w.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        assert_eq!(
            wins.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "round {round}"
        );
    }
}

fn one_prime(e: Engine) {
    race(&e, 6, |s, k| {
        let id = sid(&format!("{k:08}-prime"));
        let mut reg = Registration::new(&id, Evidence::Explicit);
        roles::ask(&mut reg, roles::PRIME);
        s.register(&reg).expect("register");
    });
    let primes = e
        .open()
        .all_sessions()
        .expect("rows")
        .into_iter()
        .filter(|r| r.role == roles::PRIME)
        .count();
    assert_eq!(primes, 1);
}

fn one_name(e: Engine) {
    let wins = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let w = wins.clone();
    race(&e, 6, move |s, k| {
        let me = format!("{k:08}-name");
        register(s, &me, None);
        if s.set_unique_name(&me, "reviewer").expect("name") {
            w.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    assert_eq!(wins.load(std::sync::atomic::Ordering::SeqCst), 1);
}

fn exactly_once_delivery_under_racing_answers(e: Engine) {
    let mut s = e.open();
    register(&mut s, "rrrrrrrr-rcpt", None);
    for k in 0..60 {
        s.send_message(
            &Sender::human(),
            "@r",
            &format!("m{k}"),
            None,
            &["rrrrrrrr-rcpt".into()],
        )
        .expect("send");
    }
    let seen = Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
    let out = seen.clone();
    race(&e, 6, move |s, _| loop {
        let due = s
            .take_due("rrrrrrrr-rcpt", true, 200, |m| m.body.len() * 50)
            .expect("take");
        if due.messages.is_empty() {
            break;
        }
        out.lock()
            .expect("lock")
            .extend(due.messages.iter().map(|m| m.id));
        s.confirm(&due.lease, "hook").expect("confirm");
    });
    let mut ids = seen.lock().expect("lock").clone();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        (n, ids.len()),
        (60, 60),
        "each message in exactly one answer"
    );
    assert!(!e.open().has_due("rrrrrrrr-rcpt", false).expect("due"));
}

fn one_ring_per_burst(e: Engine) {
    let mut s = e.open();
    register(&mut s, "bbbbbbbb-bell", None);
    let ids: Vec<i64> = (0..8)
        .map(|k| {
            s.send_message(
                &Sender::human(),
                "@b",
                &format!("m{k}"),
                None,
                &["bbbbbbbb-bell".into()],
            )
            .expect("send")
        })
        .collect();
    let rings = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r = rings.clone();
    let ids = Arc::new(ids);
    race(&e, 8, move |s, k| {
        if let Ring::Ring(_) = s
            .claim_ring(Some(ids[k]), "bbbbbbbb-bell", 1_000 + k as i64)
            .expect("ring")
        {
            r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    assert_eq!(rings.load(std::sync::atomic::Ordering::SeqCst), 1);
}

fn ended_sessions_and_retention(e: Engine) {
    let mut s = e.open();
    register(&mut s, "eeeeeeee-end", None);
    s.put_tree_snapshot("eeeeeeee-end", Some("abc"), "{}")
        .expect("snapshot");
    assert!(s.end("eeeeeeee-end", "agent gone").expect("end"));
    assert!(!s.end("eeeeeeee-end", "again").expect("end twice"));
    assert_eq!(
        s.ended_how("eeeeeeee-end").expect("how").as_deref(),
        Some("agent gone")
    );
    assert_eq!(s.tree_snapshot("eeeeeeee-end").expect("snap"), None);
    s.send_message(&Sender::human(), "@x", "old", None, &["nobody00-x".into()])
        .expect("send");
    let far = orchestrator::core::clock::now_ms() + 400 * 24 * 3600 * 1000;
    let dry = s.prune(far, true).expect("dry");
    assert_eq!((dry.messages, dry.ended_sessions), (1, 1));
    let done = s.prune(far, false).expect("prune");
    assert_eq!(done, dry);
    assert_eq!(s.prune(far, true).expect("again").total(), 0);
}

fn heartbeats_of_many_rows_at_once(e: Engine) {
    let mut s = e.open();
    let ids: Vec<String> = (0..3).map(|i| format!("hhhhhhh{i}-beat")).collect();
    for id in &ids {
        register(&mut s, id, None);
    }
    let before: HashMap<String, String> = s
        .all_sessions()
        .expect("rows")
        .into_iter()
        .map(|r| (r.session_id, r.last_heartbeat_at))
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(5));
    // Two of the three, plus an id with no row.
    let some = vec![ids[0].clone(), ids[2].clone(), "nobody00-beat".to_string()];
    assert_eq!(s.heartbeat_all(&some).expect("beat"), 2);
    assert_eq!(s.heartbeat_all(&[]).expect("none"), 0);
    for r in s.all_sessions().expect("rows") {
        let moved = r.last_heartbeat_at != before[&r.session_id];
        assert_eq!(moved, r.session_id != ids[1], "{}", r.session_id);
    }
}

fn touches_report_each_sessions_latest(e: Engine) {
    let mut s = e.open();
    for id in ["tttttttt-a", "tttttttt-b", "tttttttt-me"] {
        register(&mut s, id, None);
    }
    s.record_touch("tttttttt-a", "src/x.rs", Some("."), Some("Edit"))
        .expect("touch");
    std::thread::sleep(std::time::Duration::from_millis(3));
    s.record_touch("tttttttt-a", "src/x.rs", Some("wt"), Some("Write"))
        .expect("touch");
    s.record_touch("tttttttt-b", "src/x.rs", Some("."), Some("Edit"))
        .expect("touch");
    s.record_touch("tttttttt-me", "src/x.rs", Some("."), Some("Edit"))
        .expect("touch");
    let got = s
        .touches_of_path("src/x.rs", 0, "tttttttt-me")
        .expect("touches");
    let by: HashMap<&str, (&str, Option<&str>)> = got
        .iter()
        .map(|t| {
            (
                t.session_id.as_str(),
                (t.tool.as_deref().unwrap_or(""), t.worktree.as_deref()),
            )
        })
        .collect();
    assert_eq!(got.len(), 2);
    assert_eq!(
        by["tttttttt-a"],
        ("Write", Some("wt")),
        "the latest touch, whole"
    );
    let files = s
        .recent_files(&["tttttttt-a", "tttttttt-b"], 0, 5)
        .expect("recent");
    assert_eq!(files["tttttttt-a"], vec!["src/x.rs".to_string()]);
    assert_eq!(
        s.paths_of_session("tttttttt-b", 0, 5).expect("paths"),
        vec!["src/x.rs".to_string()]
    );
}

fn hostile_text_round_trips(e: Engine) {
    let mut s = e.open();
    register(&mut s, "hhhhhhhh-host", None);
    let nasty = "a'; DROP TABLE sessions; --\u{202e}\u{1b}[31m ?1 $1 ünï \t\n";
    assert!(s.set_task("hhhhhhhh-host", Some(nasty)).expect("task"));
    let row = s.get("hhhhhhhh-host").expect("get").expect("row");
    assert_eq!(row.current_task.as_deref(), Some(nasty));
    let big = "x".repeat(200_000);
    s.record_touch("hhhhhhhh-host", &big, None, None)
        .expect("big path");
    // NUL: SQLite keeps it; PostgreSQL text cannot hold it, so it becomes U+FFFD rather
    // than failing the hook that carried it.
    s.record_touch("hhhhhhhh-host", "a\0b", None, None)
        .expect("nul path");
    let paths = s.paths_of_session("hhhhhhhh-host", 0, 5).expect("paths");
    assert!(
        paths.iter().any(|p| p == "a\0b" || p == "a\u{FFFD}b"),
        "{paths:?}"
    );
    assert_eq!(
        s.all_sessions().expect("rows").len(),
        1,
        "the table is still there"
    );
}

fn waiters_and_snapshots(e: Engine) {
    let mut s = e.open();
    register(&mut s, "wwwwwwww-w", None);
    let a = AgentProcess {
        pid: 10,
        start_ticks: 1,
    };
    let b = AgentProcess {
        pid: 11,
        start_ticks: 2,
    };
    assert_eq!(s.set_waiter("wwwwwwww-w", a).expect("waiter"), Some(None));
    assert_eq!(
        s.set_waiter("wwwwwwww-w", b).expect("waiter"),
        Some(Some(a))
    );
    assert_eq!(s.set_waiter("absent00-x", a).expect("waiter"), None);
    s.put_tree_snapshot("wwwwwwww-w", None, "[1]")
        .expect("snap");
    s.put_tree_snapshot("wwwwwwww-w", Some("h"), "[2]")
        .expect("snap");
    assert_eq!(
        s.tree_snapshot("wwwwwwww-w").expect("snap").map(|x| x.0),
        Some("[2]".into())
    );
    let patterns = ["docs/**".to_string()];
    let req = Request {
        session_id: "wwwwwwww-w",
        patterns: &patterns,
        exclusive: false,
        reason: None,
        ttl_ms: Some(10),
        worktree: Some("."),
    };
    s.claim_checked(&req, 100, |_, _| None)
        .expect("claim")
        .expect("ok");
    let id = s.claims_of("wwwwwwww-w").expect("claims")[0].id;
    s.add_waiter(id, "other000-o").expect("waiter");
    s.add_waiter(id, "other000-o").expect("waiter twice");
    assert_eq!(s.lapsed_claims(111).expect("lapsed").len(), 1);
    assert_eq!(
        s.drop_claim(id).expect("drop"),
        Some(vec!["other000-o".to_string()])
    );
    assert_eq!(s.drop_claim(id).expect("drop again"), None);
}
