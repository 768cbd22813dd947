//! The throwaway PostgreSQL cluster that store tests run against (tests/common/pg.rs,
//! scripts/pg-cluster): databases answer over the socket and TCP, the password role needs
//! its password, TLS is on with a cert that verifies, and the cluster goes away with the
//! test process.

mod common;
use common::pg;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn answer(out: &Output) -> String {
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn query(conninfo: &str, sql: &str) -> String {
    answer(&pg::psql(conninfo).args(["-c", sql]).output().expect("psql"))
}

#[test]
fn each_database_answers_over_the_socket_and_tcp() {
    let (a, b) = (pg::database("smoke a"), pg::database("smoke a"));
    assert_ne!(a.name, b.name, "database names are unique");
    for db in [&a, &b] {
        for (url, via) in [(&db.socket_url, "socket"), (&db.tcp_url, "127.0.0.1")] {
            let got = query(
                url,
                "select 1, current_database(), coalesce(host(inet_server_addr()), 'socket')",
            );
            assert_eq!(got, format!("1|{}|{via}", db.name));
        }
    }
}

#[test]
fn the_scram_role_needs_its_password_over_tcp() {
    let db = pg::database("scram");
    let wrong = db.scram_url.replace(":orch-secret@", ":wrong@");
    let out = pg::psql(&wrong)
        .args(["-c", "select 1"])
        .output()
        .expect("psql");
    assert!(!out.status.success(), "a wrong password was accepted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("password authentication failed for user \"orch\""),
        "{err}"
    );
    assert_eq!(
        query(&db.scram_url, "select 1, current_user"),
        "1|orch",
        "the right password"
    );
    // As owner, orch may create tables (schema public is the owner's in PostgreSQL 15).
    query(&db.scram_url, "create table t (x int)");
}

#[test]
fn tls_is_on_and_the_cert_verifies_for_localhost_and_127_0_0_1() {
    let c = pg::cluster();
    let ca = c.ca_cert.display();
    for host in ["host=localhost hostaddr=127.0.0.1", "host=127.0.0.1"] {
        let conninfo = format!(
            "{host} port={} user=postgres dbname=postgres sslmode=verify-full sslrootcert={ca}",
            c.port
        );
        assert_eq!(query(&conninfo, "show ssl"), "on");
        assert_eq!(
            query(
                &conninfo,
                "select ssl from pg_stat_ssl where pid = pg_backend_pid()"
            ),
            "t"
        );
    }
}

/// Run by [`the_cluster_is_gone_after_its_test_process_exits`] in a child test process
/// (with PG_HARNESS_REAPER_CHILD set): starts the cluster, names it and its server's pid,
/// and exits. Does nothing otherwise.
#[test]
fn reaper_child() {
    if std::env::var_os("PG_HARNESS_REAPER_CHILD").is_none() {
        return;
    }
    let c = pg::cluster();
    let pid = std::fs::read_to_string(c.dir.join("data/postmaster.pid")).expect("pid file");
    println!(
        "CHILD dir={} pid={}",
        c.dir.display(),
        pid.lines().next().unwrap_or("")
    );
}

/// Whether `pid` runs (a zombie waiting for its reaper does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

#[test]
fn the_cluster_is_gone_after_its_test_process_exits() {
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args(["reaper_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("PG_HARNESS_REAPER_CHILD", "1")
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| Some(l.split_once("CHILD ")?.1))
        .unwrap_or_else(|| panic!("child printed no cluster: {stdout} {out:?}"));
    let (dir, pid) = line.split_once(" pid=").expect("dir and pid");
    let dir = std::path::PathBuf::from(dir.strip_prefix("dir=").expect("dir"));
    let pid: u32 = pid.parse().expect("pid");
    let deadline = Instant::now() + Duration::from_secs(20);
    while dir.exists() || alive(pid) {
        assert!(
            Instant::now() < deadline,
            "{} or server {pid} still there 20 s after the child exited",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
