//! The state dir's promises under hostile conditions: private modes, no symlink followed,
//! no hang on a FIFO, a damaged database found by `doctor` and fixed by `repair`, and
//! invalid settings named.

mod common;
use common::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0)
}

/// Every path under `dir`, depth first.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        out.push(p.clone());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk(&p));
        }
    }
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// A hook that failed as the contract says: exit 0, nothing on stdout, one stderr line.
fn one_line_failure(out: &Output, needles: &[&str]) -> String {
    assert_eq!(out.status.code(), Some(0), "hook must exit 0");
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one stderr line: {err:?}");
    for n in needles {
        assert!(err.contains(n), "stderr {err:?} lacks {n:?}");
    }
    err
}

/// Runs `c` to completion, killing it (and failing) if it hangs: a hang detector with a
/// generous bound, not a timing assertion.
fn finishes(mut c: Command) -> Output {
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn_retrying(&mut c);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("output");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("{c:?} hung");
}

fn mkfifo(p: &Path) {
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    let c = std::ffi::CString::new(p.to_string_lossy().as_bytes()).expect("cstring");
    // SAFETY: a valid NUL-terminated path; mkfifo has no other preconditions.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

fn prompt(id: &str) -> String {
    payload(id, json!({"prompt": "what next"}))
}

#[test]
fn every_state_file_is_private() {
    // The usual umask; a process-wide setting, but nothing else in this binary cares.
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(0o022) };
    let p = Project::new();
    let (_agent, env) = p.session("a0a0a0a0-one");
    assert!(p.run(&["send", "@all", "hello"]).status.success());
    let mut a = p.agent_with_server(&[("CLAUDE_CODE_SESSION_ID", "b0b0b0b0-two")]);
    a.initialize();
    let (_, err) = a.call("update_session_task", json!({"task": "privacy"}));
    assert!(!err);
    let out = p.hook("UserPromptSubmit", &prompt("a0a0a0a0-one"), &env);
    assert!(context(&out).contains("hello"), "{out:?}");
    let sd = p.state_dir();
    let mut seen = Vec::new();
    for path in std::iter::once(sd.clone()).chain(walk(&sd)) {
        let m = std::fs::symlink_metadata(&path).expect("meta");
        let want = if m.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), want, "{}", path.display());
        seen.push(path.file_name().map(|n| n.to_string_lossy().to_string()));
    }
    for name in [
        ".gitignore",
        "agent_channel.db",
        "agent_channel.db-wal",
        "agent_channel.db-shm",
        "active-session",
    ] {
        assert!(seen.contains(&Some(name.into())), "{name} not created");
    }
    assert!(seen
        .iter()
        .flatten()
        .any(|n| n.starts_with("active-session-")));
}

#[test]
fn a_wide_state_dir_is_narrowed_and_doctor_says_so() {
    let p = Project::new();
    let (_agent, env) = p.session("a0a0a0a0-one");
    let sd = p.state_dir();
    let db = sd.join("agent-channel/agent_channel.db");
    // As an older version (or a careless chmod) left them.
    std::fs::set_permissions(&sd, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = p.run(&["doctor"]);
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(
        report.contains(&format!("{} was mode 755; narrowed", sd.display()))
            && report.contains(&format!("{} was mode 644; narrowed", db.display())),
        "{report}"
    );
    assert_eq!((mode(&sd), mode(&db)), (0o700, 0o600));
    // Any open narrows the state dir too.
    std::fs::set_permissions(&sd, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = p.hook("UserPromptSubmit", &prompt("a0a0a0a0-one"), &env);
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    assert_eq!(mode(&sd), 0o700);
}

/// A directory outside the project, for links to point into; must stay empty.
fn outside(p: &Project) -> PathBuf {
    let o = p.root.parent().expect("parent").join("outside");
    std::fs::create_dir_all(&o).expect("mkdir");
    o
}

fn assert_empty(dir: &Path) {
    let left: Vec<_> = walk(dir);
    assert!(left.is_empty(), "created outside the project: {left:?}");
}

#[test]
fn symlinked_database_or_its_dir_is_refused() {
    let p = Project::new();
    let o = outside(&p);
    let agent = p.sleeping_agent();
    let env = vec![("CLAUDE_PID", agent.id().to_string())];
    let start = payload("a0a0a0a0-one", json!({"source": "startup"}));
    let db_dir = p.state_dir().join("agent-channel");
    std::fs::create_dir_all(&db_dir).expect("mkdir");
    // A dangling link, and one to an existing (empty) file.
    let db = db_dir.join("agent_channel.db");
    for target in [o.join("gone.db"), o.join("there.db")] {
        let _ = std::fs::remove_file(&db);
        if target.ends_with("there.db") {
            std::fs::write(&target, "").expect("write");
        }
        std::os::unix::fs::symlink(&target, &db).expect("symlink");
        let out = p.hook("SessionStart", &start, &env);
        one_line_failure(&out, &[&db.display().to_string(), "is a symlink", "rm "]);
        let out = p.run(&["status"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(text(&out.stderr).contains("is a symlink"));
        let doctor = p.run(&["doctor"]);
        assert_eq!(doctor.status.code(), Some(1));
        assert!(text(&doctor.stdout).contains("is a symlink"));
    }
    assert_eq!(walk(&o), vec![o.join("there.db")]);
    assert_eq!(
        std::fs::metadata(o.join("there.db")).expect("meta").len(),
        0
    );
    std::fs::remove_file(o.join("there.db")).expect("rm");
    // The database directory itself a link out.
    std::fs::remove_file(&db).expect("rm");
    std::fs::remove_dir(&db_dir).expect("rmdir");
    std::os::unix::fs::symlink(&o, &db_dir).expect("symlink");
    let out = p.hook("SessionStart", &start, &env);
    one_line_failure(&out, &[&db_dir.display().to_string(), "is a symlink"]);
    assert_empty(&o);
    // Fixed as the message says, everything works again.
    std::fs::remove_file(&db_dir).expect("rm");
    let out = p.hook("SessionStart", &start, &env);
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[test]
fn symlinked_gitignore_state_dir_or_anchor_is_refused() {
    let p = Project::new();
    let o = outside(&p);
    let agent = p.sleeping_agent();
    let env = vec![("CLAUDE_PID", agent.id().to_string())];
    let start = payload("a0a0a0a0-one", json!({"source": "startup"}));
    let sd = p.state_dir();
    // The state dir itself.
    std::os::unix::fs::symlink(&o, &sd).expect("symlink");
    one_line_failure(&p.hook("SessionStart", &start, &env), &["is a symlink"]);
    assert_empty(&o);
    std::fs::remove_file(&sd).expect("rm");
    // A dangling .gitignore.
    std::fs::create_dir_all(&sd).expect("mkdir");
    let gi = sd.join(".gitignore");
    std::os::unix::fs::symlink(o.join("gi"), &gi).expect("symlink");
    one_line_failure(
        &p.hook("SessionStart", &start, &env),
        &[&gi.display().to_string(), "is a symlink", "rm "],
    );
    assert_eq!(p.run(&["gc"]).status.code(), Some(2));
    assert_empty(&o);
    std::fs::remove_file(&gi).expect("rm");
    // This agent's anchor, and the legacy one.
    for anchor in [
        sd.join(format!("active-session-{}", agent.id())),
        sd.join("active-session"),
    ] {
        std::os::unix::fs::symlink(o.join("anchor"), &anchor).expect("symlink");
        one_line_failure(
            &p.hook("SessionStart", &start, &env),
            &[&anchor.display().to_string(), "is a symlink"],
        );
        assert_empty(&o);
        std::fs::remove_file(&anchor).expect("rm");
    }
    let out = p.hook("SessionStart", &start, &env);
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    assert_eq!(live_ids(&p), vec!["a0a0a0a0-one"]);
}

#[test]
fn a_fifo_as_harness_session_file_hangs_nothing() {
    let p = Project::new();
    let gate = p.root.join("gate");
    let mut a = p.agent_with_server(&[("TEST_GATE", gate.to_str().expect("utf8"))]);
    // Claude Code's own record of the agent, replaced by a FIFO nobody writes.
    mkfifo(&p.home.join(format!(".claude/sessions/{}.json", a.pid)));
    std::fs::write(&gate, "").expect("gate");
    let init = a.initialize();
    assert!(init.get("result").is_some(), "{init}");
    // The CLI's resolution reads the same file: claim and doctor finish too.
    let agent = p.sleeping_agent();
    mkfifo(&p.home.join(format!(".claude/sessions/{}.json", agent.id())));
    let mut c = p.cmd(Path::new(BIN));
    c.args(["doctor"]).env("CLAUDE_PID", agent.id().to_string());
    let out = finishes(c);
    assert!(out.status.code().is_some(), "{out:?}");
    let mut c = p.cmd(Path::new(BIN));
    c.args(["claim", "src/**"])
        .env("CLAUDE_PID", agent.id().to_string());
    let out = finishes(c);
    assert!(out.status.code().is_some(), "{out:?}");
}

/// Folds the WAL into the database file so damage to the file is damage to the data.
fn checkpoint(p: &Project) -> PathBuf {
    let db = p.state_dir().join("agent-channel/agent_channel.db");
    let c = rusqlite::Connection::open(&db).expect("open");
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
    db
}

/// The damaged database is found, named, and repaired; what was readable survives.
fn damage_then_repair(damage: impl FnOnce(&Path), problem: &str, messages_survive: bool) {
    let p = Project::new();
    let (_agent, env) = p.session("a0a0a0a0-one");
    assert!(p
        .run(&["send", "@SA-a0a0a0a0", "kept across repair"])
        .status
        .success());
    let db = checkpoint(&p);
    damage(&db);
    let out = p.run(&["doctor"]);
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains(problem) && report.contains("fix: orchestrator repair"),
        "{report}"
    );
    let out = p.hook("UserPromptSubmit", &prompt("a0a0a0a0-one"), &env);
    one_line_failure(&out, &["corrupt", "orchestrator repair"]);
    let out = p.run(&["repair"]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}{}", text(&out.stderr));
    assert!(said.contains("moved the damaged files aside"), "{said}");
    let backups: Vec<_> = walk(&p.state_dir())
        .into_iter()
        .filter(|b| b.to_string_lossy().ends_with(".bak/agent_channel.db"))
        .collect();
    assert_eq!(backups.len(), 1, "{said}");
    let out = p.run(&["doctor"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(
        p.run(&["repair"]).status.code(),
        Some(0),
        "healthy: nothing to do"
    );
    // The session row was readable, so it was kept; the hook works again.
    assert_eq!(live_ids(&p), vec!["a0a0a0a0-one"]);
    let out = p.hook("UserPromptSubmit", &prompt("a0a0a0a0-one"), &env);
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    if messages_survive {
        assert!(context(&out).contains("kept across repair"), "{out:?}");
    }
}

#[test]
fn truncated_database() {
    damage_then_repair(
        |db| {
            let len = std::fs::metadata(db).expect("meta").len();
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(db)
                .expect("open");
            f.set_len(len / 2).expect("truncate");
        },
        "is corrupt",
        false,
    );
}

#[test]
fn garbage_over_pages() {
    damage_then_repair(
        |db| {
            use std::io::{Seek, SeekFrom, Write};
            let c = rusqlite::Connection::open(db).expect("open");
            let page: u64 = c
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .expect("page size");
            let roots: Vec<u64> = ["claims", "touches"]
                .iter()
                .map(|t| {
                    c.query_row(
                        "SELECT rootpage FROM sqlite_master WHERE name = ?1",
                        [t],
                        |r| r.get(0),
                    )
                    .expect("rootpage")
                })
                .collect();
            drop(c);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(db)
                .expect("open");
            for root in roots {
                f.seek(SeekFrom::Start((root - 1) * page)).expect("seek");
                f.write_all(&vec![0xAB; page as usize]).expect("garbage");
            }
        },
        "quick_check",
        true,
    );
}

#[test]
fn dropped_table() {
    damage_then_repair(
        |db| {
            let c = rusqlite::Connection::open(db).expect("open");
            c.execute_batch("DROP TABLE claims").expect("drop");
        },
        "schema lacks table claims",
        true,
    );
}

#[test]
fn read_only_state_dir_is_named() {
    let p = Project::new();
    let _s = p.session("a0a0a0a0-one");
    let db_dir = p.state_dir().join("agent-channel");
    std::fs::set_permissions(&db_dir, std::fs::Permissions::from_mode(0o500)).expect("chmod");
    // Root writes anyway (permission bits do not bind it); then there is nothing to name.
    let probe = db_dir.join("probe");
    let writable = std::fs::write(&probe, "").is_ok();
    let _ = std::fs::remove_file(&probe);
    let out = p.run(&["doctor"]);
    std::fs::set_permissions(&db_dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let report = text(&out.stdout);
    if writable {
        assert!(!report.contains("not writable"), "{report}");
    } else {
        assert_eq!(out.status.code(), Some(1), "{report}");
        assert!(
            report.contains(&format!("{} is not writable", db_dir.display())),
            "{report}"
        );
    }
}

#[test]
fn invalid_settings_are_named_by_doctor_not_by_hooks() {
    let p = Project::new();
    let agent = p.sleeping_agent();
    let env = vec![
        ("CLAUDE_PID", agent.id().to_string()),
        ("ORCHESTRATOR_STALE_SECS", "ninety".to_string()),
        ("ORCHESTRATOR_FILE_GUARD", "warn".to_string()),
    ];
    let out = p.hook(
        "SessionStart",
        &payload("a0a0a0a0-one", json!({"source": "startup"})),
        &env,
    );
    assert!(
        out.stderr.is_empty(),
        "hooks stay quiet: {}",
        text(&out.stderr)
    );
    assert!(context(&out).contains("SA-a0a0a0a0"));
    let mut c = p.cmd(Path::new(BIN));
    c.arg("doctor");
    for (k, v) in &env[1..] {
        c.env(k, v);
    }
    c.env("ORCHESTRATOR_STALE_SEC", "30");
    let out = c.output().expect("doctor");
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    for needle in [
        "ORCHESTRATOR_STALE_SECS=\"ninety\" is not valid (accepted: a whole number of seconds > 0); using 90",
        "fix: set ORCHESTRATOR_STALE_SECS to a whole number of seconds > 0 or unset it",
        "ORCHESTRATOR_FILE_GUARD=\"warn\" is not valid",
        "ORCHESTRATOR_STALE_SEC is not a setting orchestrator knows",
    ] {
        assert!(report.contains(needle), "{needle:?} missing from:\n{report}");
    }
}
