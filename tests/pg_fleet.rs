//! Choosing and securing the shared server: TLS verified against the server's CA (and
//! refused without it), passwords never printed, `install --database-url` recording the
//! server privately for the project, `doctor` saying where the registry lives, and one
//! database serving many projects apart.

mod common;
use common::*;
use orchestrator::core::store::db::pg::Target;
use orchestrator::core::store::Store;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;

fn with_query(url: &str, q: &str) -> String {
    format!("{url}{}{q}", if url.contains('?') { "&" } else { "?" })
}

#[test]
fn tls_is_verified_against_the_servers_ca() {
    let db = pg::database("tls");
    let ca = pg::cluster().ca_cert.display().to_string();
    let good = Target {
        url: with_query(
            &db.tcp_url,
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        project_id: "tls".into(),
    };
    let store = Store::open_pg(&good).expect("TLS with the server's CA");
    let on_tls = pg::psql(&db.socket_url)
        .args([
            "-c",
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.application_name = 'orchestrator' AND s.ssl",
        ])
        .output()
        .expect("psql");
    let n: i64 = String::from_utf8_lossy(&on_tls.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(n >= 1, "the store's connection is encrypted: {on_tls:?}");
    drop(store);
    // The system's roots do not vouch for a throwaway self-signed server.
    let unverified = Target {
        url: with_query(&db.tcp_url, "sslmode=require"),
        project_id: "tls".into(),
    };
    assert!(
        Store::open_pg(&unverified).is_err(),
        "an unverifiable server is refused"
    );
    let missing = Target {
        url: with_query(
            &db.tcp_url,
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        ),
        project_id: "tls".into(),
    };
    let e = Store::open_pg(&missing)
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(
        e.contains("sslrootcert") && e.contains("/nonexistent/ca.pem"),
        "{e}"
    );
}

#[test]
fn a_wrong_password_is_named_without_the_password() {
    let db = pg::database("password");
    let wrong = db.scram_url.replace("orch-secret", "not-the-secret");
    let e = Store::open_pg(&Target {
        url: wrong,
        project_id: "pw".into(),
    })
    .err()
    .map(|e| format!("{e:#}"))
    .unwrap_or_default();
    assert!(e.contains("orch:***@") && e.contains("unreachable"), "{e}");
    assert!(!e.contains("not-the-secret"), "{e}");
}

#[test]
fn install_records_the_server_privately_and_doctor_reports_it() {
    let db = pg::database("install");
    let p = Project::new();
    git(&p.root, &["init", "-q"]);
    git(&p.root, &["commit", "-q", "--allow-empty", "-m", "root"]);
    let out = p.run(&["install", "--database-url", &db.scram_url]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("orch:***@") && !said.contains("orch-secret"),
        "{said}"
    );
    let file = p.state_dir().join("database.url");
    let mode = std::fs::metadata(&file)
        .expect("database.url")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    // Sessions now register on the server without any environment.
    let agent = p.sleeping_agent();
    let env = vec![("CLAUDE_PID", agent.id().to_string())];
    let id = "1nstall0-aaaa-bbbb-cccc-dddddddddddd";
    let started = p.hook(
        "SessionStart",
        &payload(id, json!({"source": "startup"})),
        &env,
    );
    assert!(
        started.status.success() && started.stderr.is_empty(),
        "{started:?}"
    );
    let rows = pg::psql(&db.socket_url)
        .args([
            "-c",
            "SELECT count(*) FROM pg_tables WHERE tablename = 'sessions' AND schemaname LIKE 'orch_git_%'",
        ])
        .output()
        .expect("psql");
    assert_eq!(
        String::from_utf8_lossy(&rows.stdout).trim(),
        "1",
        "{rows:?}"
    );
    assert!(
        !p.root
            .join(".orchestrator-state/db/agent_channel.db")
            .exists(),
        "no SQLite file"
    );
    let doctor = p.run(&["doctor"]);
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        report.contains("shared database postgres://orch:***@"),
        "{report}"
    );
    assert!(
        report.contains("1 session row(s) from 1 host(s)"),
        "{report}"
    );
    assert!(!report.contains("orch-secret"), "{report}");
    let status = p.run(&["status", "--json"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("1nstall0"),
        "{status:?}"
    );
    // A typo is refused before it is written.
    let bad = p.run(&["install", "--database-url", "mysql://x"]);
    assert!(!bad.status.success());
    let kept = std::fs::read_to_string(&file).expect("kept");
    assert!(
        kept.contains("orch-secret"),
        "the recorded URL is unchanged"
    );
    drop(agent);
}

#[test]
fn one_database_keeps_projects_apart() {
    let db = pg::database("projects");
    let mut stores: Vec<Store> = ["alpha", "beta"]
        .iter()
        .map(|id| {
            Store::open_pg(&Target {
                url: db.socket_url.clone(),
                project_id: (*id).into(),
            })
            .expect("open")
        })
        .collect();
    let sid = orchestrator::core::identity::SessionId::parse("aaaaaaaa-alpha").expect("id");
    stores[0]
        .register(&orchestrator::core::store::Registration::new(
            &sid,
            orchestrator::core::identity::Evidence::Explicit,
        ))
        .expect("register");
    assert_eq!(stores[0].all_sessions().expect("rows").len(), 1);
    assert!(
        stores[1].all_sessions().expect("rows").is_empty(),
        "beta sees nothing of alpha"
    );
}

#[test]
fn a_schema_from_a_newer_orchestrator_is_refused_by_name() {
    let db = pg::database("newer");
    let target = Target {
        url: db.socket_url.clone(),
        project_id: "newer".into(),
    };
    drop(Store::open_pg(&target).expect("create"));
    let set = pg::psql(&db.socket_url)
        .args([
            "-c",
            &format!(
                "COMMENT ON SCHEMA {} IS 'orchestrator schema v99'",
                target.schema()
            ),
        ])
        .output()
        .expect("psql");
    assert!(set.status.success(), "{set:?}");
    let e = Store::open_pg(&target)
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(
        e.contains("newer than this orchestrator") && e.contains("upgrade"),
        "{e}"
    );
}

/// Backends of `orchestrator` processes connected to `db` now.
fn connections(db: &pg::Db) -> i64 {
    let out = pg::psql(&db.socket_url)
        .args([
            "-c",
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' \
                 AND application_name = 'orchestrator'",
                db.name
            ),
        ])
        .output()
        .expect("psql");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(-1)
}

#[test]
fn an_idle_server_holds_only_its_listening_connection() {
    let db = pg::database("idle");
    let p = Project::new();
    let mut server = p.agent_with_server(&[
        (
            "CLAUDE_CODE_SESSION_ID",
            "1d1e0000-aaaa-bbbb-cccc-dddddddddddd",
        ),
        ("ORCHESTRATOR_DATABASE_URL", db.socket_url.as_str()),
        ("ORCHESTRATOR_PROJECT_ID", "idle"),
        ("ORCHESTRATOR_HEARTBEAT_SECS", "5"),
        ("ORCHESTRATOR_CHANNEL", "off"),
    ]);
    server.initialize();
    // Between heartbeats the store's connection is closed: a fleet of idle sessions
    // costs the server one connection each (the listener), not two.
    assert!(
        wait_until(std::time::Duration::from_secs(30), || connections(&db) == 1),
        "connections: {}",
        connections(&db)
    );
    let (roster, failed) = server.call("whoami", json!({}));
    assert!(
        !failed && roster.contains("1d1e0000"),
        "a tool call reopens it: {roster}"
    );
}
