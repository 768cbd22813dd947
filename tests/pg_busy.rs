//! A writer that gives up waiting for the project's lock on PostgreSQL keeps a usable
//! connection: the transaction its `BEGIN` opened is rolled back, so the next write on
//! the same connection works — a long-lived `serve` that once met a busy fleet would
//! otherwise fail every heartbeat after ("current transaction is aborted").
//!
//! And vouching for a host's rows never waits for a row another transaction holds (nor
//! deadlocks with another server vouching for the same rows): it skips that row.
//!
//! Its own test binary: the busy timeout is a process-wide setting, read once.

mod common;
use orchestrator::core::identity::{AgentProcess, Evidence, SessionId};
use orchestrator::core::store::db::pg::Target;
use orchestrator::core::store::{Registration, Store};
use std::sync::mpsc::channel;

fn register(store: &mut Store, id: &str) -> anyhow::Result<()> {
    let id = SessionId::parse(id).expect("id");
    let mut reg = Registration::new(&id, Evidence::Explicit);
    reg.agent = Some(AgentProcess {
        pid: 4242,
        start_ticks: 7,
    });
    store.register(&reg).map(|_| ())
}

#[test]
fn a_writer_that_timed_out_on_the_lock_writes_again() {
    // Before the first settings read in this process (this binary's only test).
    std::env::set_var("ORCHESTRATOR_BUSY_TIMEOUT_MS", "300");
    let db = common::pg::database("busy");
    let target = Target {
        url: db.socket_url.clone(),
        project_id: "busy-test".into(),
    };
    let mut waiter = Store::open_pg(&target).expect("open");
    let holder = Store::open_pg(&target).expect("open");
    let (locked_tx, locked) = channel();
    let (release, release_rx) = channel::<()>();
    let t = std::thread::spawn(move || {
        holder
            .atomically(|_| {
                let _ = locked_tx.send(());
                let _ = release_rx.recv();
                Ok(())
            })
            .expect("holder's transaction");
    });
    locked.recv().expect("holder took the lock");
    let err = register(&mut waiter, "aaaaaaaa-busy").expect_err("the lock is held");
    assert!(format!("{err:#}").contains("lock timeout"), "{err:#}");
    release.send(()).expect("release");
    t.join().expect("holder thread");
    register(&mut waiter, "aaaaaaaa-busy").expect("the same connection writes again");
    let ids: Vec<String> = waiter
        .all_sessions()
        .expect("rows")
        .into_iter()
        .map(|r| r.session_id)
        .collect();
    assert_eq!(ids, ["aaaaaaaa-busy"]);

    // A hook's transaction holds one row (and the project's lock); a server vouching for
    // that row and another refreshes the other at once and skips the held one.
    let mut holder = Store::open_pg(&target).expect("open");
    let id = SessionId::parse("bbbbbbbb-held").expect("id");
    holder
        .register(&Registration::new(&id, Evidence::Explicit))
        .expect("register");
    let (locked_tx, locked) = channel();
    let (release, release_rx) = channel::<()>();
    let t = std::thread::spawn(move || {
        holder
            .atomically(|s| {
                s.heartbeat("bbbbbbbb-held")?;
                let _ = locked_tx.send(());
                let _ = release_rx.recv();
                Ok(())
            })
            .expect("holder's transaction");
    });
    locked.recv().expect("holder holds the row");
    let both = ["aaaaaaaa-busy".to_string(), "bbbbbbbb-held".to_string()];
    assert_eq!(waiter.heartbeat_all(&both).expect("vouch"), 1);
    release.send(()).expect("release");
    t.join().expect("holder thread");
    assert_eq!(waiter.heartbeat_all(&both).expect("vouch"), 2);
}
