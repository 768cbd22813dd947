//! The Bash ledger answered by the session's server (inotify picture, no `git status` on
//! the hook path) attributes exactly what the `git status` snapshots attribute: the same
//! scripts run in two identical repositories, one session with a server and one without,
//! and after every step both sessions have been given the same files, and the server's
//! picture of uncommitted files is what `git status` says.

mod common;

use common::{git, payload, wait_until, Agent, Project, BIN};
use orchestrator::core::{ledger, treewatch};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A repository with tracked files, an ignored `target/`, and an ignored `build/` that
/// holds one tracked file.
fn repo(p: &Project) {
    let root = &p.root;
    std::fs::create_dir_all(root.join("src")).expect("mkdir");
    std::fs::create_dir_all(root.join("build")).expect("mkdir");
    for f in ["a", "b", "c", "d", "e", "f", "g"] {
        std::fs::write(root.join(format!("src/{f}.rs")), format!("fn {f}() {{}}\n")).expect("w");
    }
    std::fs::write(root.join("build/keep.txt"), "keep\n").expect("w");
    std::fs::write(
        root.join(".gitignore"),
        ".orchestrator-state/\ntarget/\nbuild/\n*.log\n",
    )
    .expect("w");
    git(root, &["init", "-q", "-b", "main"]);
    git(root, &["add", "."]);
    git(root, &["add", "-f", "build/keep.txt"]);
    git(root, &["commit", "-qm", "init"]);
}

struct Side {
    p: Project,
    env: Vec<(&'static str, String)>,
    sib_env: Vec<(&'static str, String)>,
    _keep: Vec<Box<dyn std::any::Any>>,
}

const ME: &str = "aaaaaaaa-ledger";
const SIB: &str = "bbbbbbbb-ledger";

fn side(watched: bool) -> Side {
    let p = Project::new();
    repo(&p);
    side_in(p, watched)
}

fn side_in(p: Project, watched: bool) -> Side {
    let mut keep: Vec<Box<dyn std::any::Any>> = Vec::new();
    let env = if watched {
        let agent: Agent = p.agent_with_server(&[]);
        let env = vec![("CLAUDE_PID", agent.pid.to_string())];
        let out = p.hook(
            "SessionStart",
            &payload(ME, json!({"source": "startup"})),
            &env,
        );
        assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
        let dir = p.state_dir().join("ledger");
        assert!(
            wait_until(Duration::from_secs(30), || std::fs::read_dir(&dir)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false)),
            "the server never listened"
        );
        keep.push(Box::new(agent));
        env
    } else {
        let (s, env) = p.session(ME);
        keep.push(Box::new(s));
        env
    };
    let (s, sib_env) = p.session(SIB);
    keep.push(Box::new(s));
    Side {
        p,
        env,
        sib_env,
        _keep: keep,
    }
}

fn bash(id: &str, n: usize, cmd: &str) -> String {
    payload(
        id,
        json!({"tool_name": "Bash", "tool_use_id": format!("toolu_{n}"), "tool_input": {"command": cmd}}),
    )
}

fn db(p: &Project) -> rusqlite::Connection {
    rusqlite::Connection::open(p.state_dir().join("agent-channel/agent_channel.db")).expect("db")
}

/// Bash touches of `id` with a row id above `after`; and the highest row id.
fn touched(p: &Project, id: &str, after: i64) -> (BTreeSet<String>, i64) {
    let c = db(p);
    let mut st = c
        .prepare("SELECT id, path FROM touches WHERE session_id=?1 AND tool='Bash' AND id>?2")
        .expect("prepare");
    let rows: Vec<(i64, String)> = st
        .query_map(rusqlite::params![id, after], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    let max = c
        .query_row("SELECT COALESCE(MAX(id), 0) FROM touches", [], |r| r.get(0))
        .expect("max");
    (rows.into_iter().map(|(_, p)| p).collect(), max)
}

fn sh(root: &Path, script: &str) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(root)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("sh");
    assert!(out.status.success(), "{script}: {out:?}");
}

fn uncommitted(p: &Project, id: &str) -> Vec<Value> {
    let out = p.run(&["status", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("status json");
    v.as_array()
        .and_then(|a| a.iter().find(|r| r["session_id"] == id))
        .and_then(|r| r["uncommitted_files"].as_array().cloned())
        .unwrap_or_default()
}

/// One step: (script, the sibling edits this file meanwhile, what the session is given).
const STEPS: &[(&str, Option<&str>, &[&str])] = &[
    ("sed -i s/a/A/ src/a.rs", None, &["src/a.rs"]),
    (
        "echo x > src/new.rs && mkdir -p src/sub/deeper && echo y > src/sub/deeper/n.rs",
        None,
        &["src/new.rs", "src/sub/deeper/n.rs"],
    ),
    ("rm src/b.rs", None, &["src/b.rs"]),
    ("mv src/c.rs src/c2.rs", None, &["src/c.rs", "src/c2.rs"]),
    (
        "mkdir -p target/debug && echo z > target/debug/out && echo w > build/new.o && echo l > x.log",
        None,
        &[],
    ),
    ("echo more >> build/keep.txt", None, &["build/keep.txt"]),
    // Rewritten with the same content: git sees no change.
    ("sed -i s/zzz/y/ src/d.rs", None, &[]),
    ("chmod +x src/g.rs", None, &["src/g.rs"]),
    ("echo t > tmp.txt && rm tmp.txt", None, &[]),
    ("echo 'fn e2() {}' >> src/e.rs && echo 'fn f2() {}' >> src/f.rs", Some("src/e.rs"), &["src/f.rs"]),
    ("mv src/sub src/sub2", None, &["src/sub2/deeper/n.rs"]),
    ("ln -s a.rs src/link", None, &["src/link"]),
    // Reverted: clean again, nothing to attribute (the index is rewritten, same objects).
    ("git checkout -- src/a.rs", None, &[]),
    ("echo 'src/sub2/' >> .gitignore", None, &[".gitignore"]),
    // Staged: its status changed, which the ledger has always counted as a change.
    ("git add src/new.rs", None, &["src/new.rs"]),
    ("echo again >> src/new.rs", None, &["src/new.rs"]),
    ("git add -A && git commit -qm step", None, &[]),
    ("echo after >> src/a.rs && git stash -q", None, &[]),
    ("git stash pop -q", None, &["src/a.rs"]),
    // A nested repository shows as one entry, whose mtime its top-level files move.
    ("git init -q nested && echo x > nested/f", None, &["nested/"]),
    ("echo y > nested/g", None, &["nested/"]),
    ("rm -rf nested", None, &[]),
];

#[test]
fn the_watcher_attributes_what_git_status_attributes() {
    let w = side(true);
    let g = side(false);
    let (mut seen_w, mut seen_g) = (0, 0);
    for (n, (script, sibling, expected)) in STEPS.iter().enumerate() {
        for (s, seen) in [(&w, &mut seen_w), (&g, &mut seen_g)] {
            let out = s.p.hook("PreToolUse", &bash(ME, n, script), &s.env);
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "{script}: {out:?}"
            );
            if let Some(f) = sibling {
                let edit = payload(
                    SIB,
                    json!({"tool_name": "Edit", "tool_input": {"file_path": f, "old_string": "x", "new_string": "y"}}),
                );
                let out = s.p.hook("PreToolUse", &edit, &s.sib_env);
                assert!(out.status.success(), "{out:?}");
            }
            sh(&s.p.root, script);
            let out = s.p.hook("PostToolUse", &bash(ME, n, script), &s.env);
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "{script}: {out:?}"
            );
            let (files, max) = touched(&s.p, ME, *seen);
            *seen = max;
            let want: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
            assert_eq!(
                files,
                want,
                "step {n} `{script}` ({})",
                if std::ptr::eq(s, &w) {
                    "watcher"
                } else {
                    "git status"
                }
            );
        }
        assert_eq!(
            uncommitted(&w.p, ME),
            uncommitted(&g.p, ME),
            "step {n} `{script}`: uncommitted files differ"
        );
        // The server's picture is what git status says of the whole checkout.
        let picture =
            treewatch::client::dirty(&w.p.state_dir(), &w.p.root).expect("server picture");
        let truth: Vec<String> = ledger::snapshot(&w.p.root)
            .entries
            .keys()
            .cloned()
            .collect();
        assert_eq!(picture, truth, "step {n} `{script}`");
    }
    // Whole `git status` runs only at start and where HEAD, the index's objects, a
    // .gitignore or the repositories inside changed (.gitignore, add, commit, git init);
    // path-limited ones only for the nested repository's entry.
    let info = treewatch::client::info(&w.p.state_dir());
    let t = &info[0].trees[0];
    assert!(t.full_runs <= 6, "{t:?}");
    assert!(t.path_runs <= 3, "{t:?}");
    // The watched side really was answered by its server, every time.
    let doctor = String::from_utf8_lossy(&w.p.run(&["doctor"]).stdout).to_string();
    let want = format!("{} command windows answered", 2 * STEPS.len());
    assert!(doctor.contains(&want), "{doctor}");
    let doctor = String::from_utf8_lossy(&g.p.run(&["doctor"]).stdout).to_string();
    assert!(!doctor.contains("Bash ledger"), "{doctor}");
}

#[test]
fn without_a_server_or_with_the_watcher_off_git_status_answers() {
    let p = Project::new();
    repo(&p);
    let agent = p.agent_with_server(&[("ORCHESTRATOR_LEDGER_WATCH", "0")]);
    let env = vec![("CLAUDE_PID", agent.pid.to_string())];
    let out = p.hook(
        "SessionStart",
        &payload(ME, json!({"source": "startup"})),
        &env,
    );
    assert!(out.status.success(), "{out:?}");
    assert!(p
        .hook("PreToolUse", &bash(ME, 1, "touch src/z.rs"), &env)
        .status
        .success());
    sh(&p.root, "touch src/z.rs");
    assert!(p
        .hook("PostToolUse", &bash(ME, 1, "touch src/z.rs"), &env)
        .status
        .success());
    let (files, _) = touched(&p, ME, 0);
    assert_eq!(files, BTreeSet::from(["src/z.rs".to_string()]));
    assert!(!p.state_dir().join("ledger").exists());
    let _ = BIN;
}

/// The attributed files (path, worktree) of `id` through Bash.
fn bash_touches(p: &Project, id: &str) -> BTreeSet<(String, Option<String>)> {
    let c = db(p);
    let mut st = c
        .prepare("SELECT path, worktree FROM touches WHERE session_id=?1 AND tool='Bash'")
        .expect("prepare");
    let rows = st
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    rows
}

fn started_watching(p: &Project, root: &Path) -> bool {
    let root = root.to_string_lossy().to_string();
    wait_until(Duration::from_secs(30), || {
        treewatch::client::info(&p.state_dir())
            .iter()
            .any(|r| r.trees.iter().any(|t| t.root == root && t.covered))
    })
}

#[test]
fn a_session_that_moves_into_a_worktree_is_watched_there() {
    let p = Project::new();
    repo(&p);
    git(
        &p.root,
        &[
            "worktree",
            "add",
            "-q",
            ".claude/worktrees/feat",
            "-b",
            "feat",
        ],
    );
    let feat = p.root.join(".claude/worktrees/feat");
    let agent = p.agent_with_server(&[]);
    let env = vec![("CLAUDE_PID", agent.pid.to_string())];
    let out = p.hook(
        "SessionStart",
        &payload(ME, json!({"source": "startup"})),
        &env,
    );
    assert!(out.status.success(), "{out:?}");
    assert!(started_watching(&p, &p.root), "main checkout never watched");
    let in_feat = |n: usize, cmd: &str| {
        payload(
            ME,
            json!({"cwd": feat, "tool_name": "Bash", "tool_use_id": format!("toolu_{n}"),
                   "tool_input": {"command": cmd}}),
        )
    };
    // First command there: the server starts watching it; git status answers meanwhile.
    for (n, file) in [(1, "src/a.rs"), (2, "src/b.rs")] {
        let cmd = format!("echo more >> {file}");
        assert!(p
            .hook("PreToolUse", &in_feat(n, &cmd), &env)
            .status
            .success());
        sh(&feat, &cmd);
        let out = p.hook("PostToolUse", &in_feat(n, &cmd), &env);
        assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
        if n == 1 {
            assert!(started_watching(&p, &feat), "worktree never watched");
        }
    }
    let label = Some(".claude/worktrees/feat".to_string());
    assert_eq!(
        bash_touches(&p, ME),
        BTreeSet::from([
            ("src/a.rs".to_string(), label.clone()),
            ("src/b.rs".to_string(), label.clone())
        ])
    );
    let info = treewatch::client::info(&p.state_dir());
    let t = info[0]
        .trees
        .iter()
        .find(|t| t.root == feat.to_string_lossy())
        .expect("feat watched");
    assert_eq!(t.answered, 2, "{t:?}");
    // The main checkout's picture holds the nested worktree as git shows it.
    let picture = treewatch::client::dirty(&p.state_dir(), &p.root).expect("picture");
    let truth: Vec<String> = ledger::snapshot(&p.root).entries.keys().cloned().collect();
    assert_eq!(picture, truth);
}

#[test]
fn a_watch_limit_falls_back_to_git_status_and_doctor_says_so_once() {
    if !cfg!(debug_assertions) {
        return;
    }
    let p = Project::new();
    repo(&p);
    let agent = p.agent_with_server(&[("ORCHESTRATOR_DEBUG_MAX_WATCHES", "1")]);
    let env = vec![("CLAUDE_PID", agent.pid.to_string())];
    let out = p.hook(
        "SessionStart",
        &payload(ME, json!({"source": "startup"})),
        &env,
    );
    assert!(out.status.success(), "{out:?}");
    let dir = p.state_dir().join("ledger");
    assert!(wait_until(Duration::from_secs(30), || std::fs::read_dir(
        &dir
    )
    .map(|mut d| d.next().is_some())
    .unwrap_or(false)));
    let cmd = "echo more >> src/a.rs";
    assert!(p
        .hook("PreToolUse", &bash(ME, 1, cmd), &env)
        .status
        .success());
    sh(&p.root, cmd);
    let out = p.hook("PostToolUse", &bash(ME, 1, cmd), &env);
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    let (files, _) = touched(&p, ME, 0);
    assert_eq!(files, BTreeSet::from(["src/a.rs".to_string()]));
    let doctor = String::from_utf8_lossy(&p.run(&["doctor"]).stdout).to_string();
    assert_eq!(doctor.matches("watch limit").count(), 1, "{doctor}");
    assert!(doctor.contains("max_user_watches"), "{doctor}");
    drop(agent);
}

#[test]
fn without_git_the_watcher_attributes_what_the_walk_attributes() {
    const PLAIN: &[(&str, &[&str])] = &[
        ("echo a > a.txt", &["a.txt"]),
        (
            "mkdir -p src/deep && echo b > src/deep/b.txt",
            &["src/deep/b.txt"],
        ),
        ("echo more >> a.txt", &["a.txt"]),
        ("mv a.txt c.txt", &["a.txt", "c.txt"]),
        ("rm src/deep/b.txt", &["src/deep/b.txt"]),
        ("mv src src2", &[]),
        (
            "mkdir -p target node_modules/x && echo t > target/t && echo n > node_modules/x/n",
            &[],
        ),
        ("echo n > src2/target && echo k > src2/keep", &["src2/keep"]),
    ];
    let w = side_in(Project::new(), true);
    let g = side_in(Project::new(), false);
    let (mut seen_w, mut seen_g) = (0, 0);
    for (n, (script, expected)) in PLAIN.iter().enumerate() {
        for (s, seen) in [(&w, &mut seen_w), (&g, &mut seen_g)] {
            assert!(s
                .p
                .hook("PreToolUse", &bash(ME, n, script), &s.env)
                .status
                .success());
            sh(&s.p.root, script);
            let out = s.p.hook("PostToolUse", &bash(ME, n, script), &s.env);
            assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
            let (files, max) = touched(&s.p, ME, *seen);
            *seen = max;
            let want: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
            let which = if std::ptr::eq(s, &w) {
                "watcher"
            } else {
                "walk"
            };
            assert_eq!(files, want, "step {n} `{script}` ({which})");
        }
    }
    let info = treewatch::client::info(&w.p.state_dir());
    assert_eq!(
        info[0].trees[0].answered,
        2 * PLAIN.len() as u64,
        "{info:?}"
    );
}
