//! The store's every-turn work on both engines, 50 sibling rows: the roster reads of a
//! UserPromptSubmit hook (rows, recent files, due mail) and a heartbeat write. Opening
//! the store is `benches/connect.rs`. PostgreSQL runs when
//! `ORCHESTRATOR_BENCH_DATABASE_URL` names a server (e.g. one from `scripts/pg-cluster`).

use criterion::{criterion_group, criterion_main, Criterion};
use orchestrator::core::identity::{Evidence, SessionId};
use orchestrator::core::paths::ProjectPaths;
use orchestrator::core::store::db::pg::Target;
use orchestrator::core::store::{Registration, Store};
use std::hint::black_box;

fn fill(store: &mut Store) -> Vec<String> {
    let ids: Vec<String> = (0..51)
        .map(|i| format!("{i:08x}-0000-4000-8000-{i:012x}"))
        .collect();
    for id in &ids {
        let sid = SessionId::parse(id).expect("id");
        store
            .register(&Registration::new(&sid, Evidence::Explicit))
            .expect("register");
        for f in 0..20 {
            store
                .record_touch(id, &format!("src/m{f}.rs"), Some("."), Some("Edit"))
                .expect("touch");
        }
    }
    ids
}

fn turn(c: &mut Criterion, label: &str, open: &dyn Fn() -> Store) {
    let mut store = open();
    let ids = fill(&mut store);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    c.bench_function(&format!("store/{label}/open"), |b| {
        b.iter(|| black_box(open()))
    });
    c.bench_function(&format!("store/{label}/turn reads, 50 siblings"), |b| {
        b.iter(|| {
            let rows = store.all_sessions().expect("rows");
            let files = store.recent_files(&refs, 0, 5).expect("files");
            let due = store.due_state(&ids[0], true).expect("due");
            black_box((rows.len(), files.len(), due))
        })
    });
    c.bench_function(&format!("store/{label}/heartbeat write"), |b| {
        b.iter(|| black_box(store.set_activity(&ids[0], "busy").expect("write")))
    });
}

fn engines(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = ProjectPaths::from_root(dir.path()).expect("paths");
    turn(c, "sqlite", &|| Store::open_sqlite(&paths).expect("open"));
    if let Ok(url) = std::env::var("ORCHESTRATOR_BENCH_DATABASE_URL") {
        let target = Target {
            url,
            project_id: format!("bench-{}", std::process::id()),
        };
        turn(c, "postgres", &|| Store::open_pg(&target).expect("open"));
    }
}

criterion_group!(benches, engines);
criterion_main!(benches);
