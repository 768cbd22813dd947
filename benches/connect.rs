//! Connection setup: what a hook pays before its first real query, per engine — the
//! SQLite file's open, and a PostgreSQL server's connect (socket or TCP: startup packet,
//! authentication, a backend forked for us), its open (connect plus the one-round-trip
//! schema and clock probe) and its open plus a first read (a fresh backend's first use of
//! the tables).
//!
//!   BENCH_PG_URLS="socket=postgresql:///db?host=DIR&port=P tcp=postgres://u@127.0.0.1:P/db" \
//!     cargo bench --bench connect
//!
//! Each `name=URL` is measured (none: SQLite only); `BENCH_RUNS` (default
//! 200) sets how many of each. A fresh project id per run of the bench, its schema
//! dropped at the end.

use orchestrator::core::paths::ProjectPaths;
use orchestrator::core::store::db::pg::{PgConn, Target};
use orchestrator::core::store::Store;
use std::time::{Duration, Instant};

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Vec<f64> {
    // One unmeasured run: creates what the others find (file, schema).
    drop(f());
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            let v = f();
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            drop(v);
            ms
        })
        .collect()
}

fn line(what: &str, mut xs: Vec<f64>) {
    xs.sort_by(f64::total_cmp);
    let q = |p: f64| xs[((xs.len() as f64 * p) as usize).min(xs.len() - 1)];
    println!(
        "{what:<44} p50 {:>6.2} ms  p90 {:>6.2} ms  p99 {:>6.2} ms",
        q(0.5),
        q(0.9),
        q(0.99)
    );
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = ProjectPaths::from_root(dir.path()).expect("paths");
    println!("{runs} runs each, in one process (no process start counted)");
    line(
        "sqlite: open",
        time(runs, || Store::open_sqlite(&paths).expect("open sqlite")),
    );
    line(
        "sqlite: open + all_sessions",
        time(runs, || {
            let s = Store::open_sqlite(&paths).expect("open sqlite");
            s.all_sessions().expect("read")
        }),
    );
    let project_id = format!("bench-connect-{}", std::process::id());
    let spec = std::env::var("BENCH_PG_URLS").unwrap_or_default();
    for item in spec.split_whitespace() {
        let (name, url) = item.split_once('=').unwrap_or(("pg", item));
        let target = Target {
            url: url.to_string(),
            project_id: project_id.clone(),
        };
        let timeout = Duration::from_secs(10);
        line(
            &format!("{name}: connect"),
            time(runs, || PgConn::connect(&target, timeout).expect("connect")),
        );
        line(
            &format!("{name}: open (connect + schema/clock probe)"),
            time(runs, || Store::open_pg(&target).expect("open pg")),
        );
        line(
            &format!("{name}: open + all_sessions"),
            time(runs, || {
                let s = Store::open_pg(&target).expect("open pg");
                s.all_sessions().expect("read")
            }),
        );
    }
    // The bench's schema goes when it is done.
    if let Some(url) = spec
        .split_whitespace()
        .next()
        .map(|i| i.split_once('=').map_or(i, |(_, u)| u))
    {
        let schema = Target {
            url: url.to_string(),
            project_id,
        }
        .schema();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dropped = rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .await
        });
        if let Err(e) = dropped {
            eprintln!("could not drop schema {schema}: {e}");
        }
    }
}
