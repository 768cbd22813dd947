//! One registry per repository: sessions in different `git worktree`s of one repository
//! are siblings, paths are stored per worktree, claims cover the repository, and the same
//! file changing in two worktrees is said early.

mod common;

use common::{context, git, payload, repo_with_worktree, Project, BIN};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Output;

fn edit(id: &str, path: &Path, cwd: &Path) -> String {
    payload(
        id,
        json!({"cwd": cwd, "tool_name": "Edit",
               "tool_input": {"file_path": path, "old_string": "a", "new_string": "b"}}),
    )
}

/// `orchestrator <args>` run from `dir` with that directory as the project.
fn run_in(p: &Project, dir: &Path, args: &[&str]) -> Output {
    p.cmd(Path::new(BIN))
        .env("ORCHESTRATOR_PROJECT_ROOT", dir)
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run")
}

fn status(p: &Project, dir: &Path) -> Vec<Value> {
    let out = run_in(p, dir, &["status", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("status json");
    v.as_array().cloned().unwrap_or_default()
}

fn entry(entries: &[Value], id: &str) -> Value {
    entries
        .iter()
        .find(|e| e["session_id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn worktrees_of_one_repository_share_one_registry() {
    let p = Project::new();
    let feat = repo_with_worktree(&p);
    // Session A in the main checkout, session B in the linked worktree: each hook runs
    // with its own worktree as the project, as Claude Code started there would.
    let (_a, a_env) = p.session("aaaaaaaa-main");
    let (_b, b_env) = {
        let agent = p.sleeping_agent();
        let env = vec![
            ("CLAUDE_PID", agent.id().to_string()),
            ("ORCHESTRATOR_PROJECT_ROOT", feat.display().to_string()),
        ];
        let out = p.hook(
            "SessionStart",
            &payload("bbbbbbbb-feat", json!({"source": "startup", "cwd": feat})),
            &env,
        );
        assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
        let ctx = context(&out);
        assert!(ctx.contains("SA-aaaaaaaa"), "B does not see A: {ctx}");
        assert!(ctx.contains("in main · main checkout"), "{ctx}");
        (agent, env)
    };
    // A's next turn shows B and where B works.
    let out = p.hook(
        "UserPromptSubmit",
        &payload("aaaaaaaa-main", json!({"prompt": "go", "cwd": p.root})),
        &a_env,
    );
    let ctx = context(&out);
    assert!(
        ctx.contains("SA-bbbbbbbb") && ctx.contains("in feat · .claude/worktrees/feat"),
        "{ctx}"
    );
    assert!(p.root.join(".orchestrator-state").is_dir());
    assert!(
        !feat.join(".orchestrator-state").exists(),
        "a second registry in the worktree"
    );

    // Both see both, from either side, with worktree and branch.
    for dir in [&p.root, &feat] {
        let st = status(&p, dir);
        assert_eq!(st.len(), 2, "{st:?}");
        assert_eq!(entry(&st, "aaaaaaaa-main")["worktree"], ".");
        assert_eq!(entry(&st, "aaaaaaaa-main")["branch"], "main");
        assert_eq!(
            entry(&st, "bbbbbbbb-feat")["worktree"],
            ".claude/worktrees/feat"
        );
        assert_eq!(entry(&st, "bbbbbbbb-feat")["branch"], "feat");
    }

    // A changes src/a.rs in main; B's edit of its own src/a.rs hears a merge conflict coming.
    let out = p.hook(
        "PreToolUse",
        &edit("aaaaaaaa-main", &p.root.join("src/a.rs"), &p.root),
        &a_env,
    );
    assert!(out.status.success(), "{out:?}");
    let out = p.hook(
        "PreToolUse",
        &edit("bbbbbbbb-feat", &feat.join("src/a.rs"), &feat),
        &b_env,
    );
    let ctx = context(&out);
    assert!(
        ctx.contains("merge conflict likely") && ctx.contains("SA-aaaaaaaa"),
        "{ctx}"
    );
    assert!(ctx.contains("src/a.rs"), "{ctx}");

    // A path inside the linked worktree, edited from the main checkout, is that worktree's
    // `src/n.rs`, never `.claude/worktrees/feat/src/n.rs`; A now works there.
    let out = p.hook(
        "PreToolUse",
        &edit("aaaaaaaa-main", &feat.join("src/n.rs"), &p.root),
        &a_env,
    );
    assert!(out.status.success(), "{out:?}");
    let a = entry(&status(&p, &p.root), "aaaaaaaa-main");
    assert_eq!(a["worktree"], ".claude/worktrees/feat", "{a}");
    let files: Vec<String> = a["files"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    assert!(files.contains(&"src/n.rs".to_string()), "{files:?}");
    assert!(!files.iter().any(|f| f.contains(".claude")), "{files:?}");

    // An exclusive claim on src/** taken in the main checkout holds in the worktree too.
    let out = run_in(
        &p,
        &p.root,
        &[
            "claim",
            "--session",
            "aaaaaaaa-main",
            "--exclusive",
            "src/**",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let out = p.hook(
        "PreToolUse",
        &edit("bbbbbbbb-feat", &feat.join("src/c.rs"), &feat),
        &b_env,
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["hookSpecificOutput"]["permissionDecision"], "deny", "{v}");

    // A session whose cwd moves into another worktree follows it.
    let out = p.hook(
        "UserPromptSubmit",
        &payload("bbbbbbbb-feat", json!({"prompt": "hi", "cwd": p.root})),
        &b_env,
    );
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    let b = entry(&status(&p, &feat), "bbbbbbbb-feat");
    assert_eq!(b["worktree"], ".", "{b}");
    assert_eq!(b["branch"], "main", "{b}");
}

fn bash(id: &str, cmd: &str, cwd: &Path) -> String {
    payload(
        id,
        json!({"cwd": cwd, "tool_name": "Bash", "tool_input": {"command": cmd}}),
    )
}

fn decision(out: &Output) -> (String, String) {
    if out.stdout.is_empty() {
        return (String::new(), String::new());
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let h = &v["hookSpecificOutput"];
    (
        h["permissionDecision"].as_str().unwrap_or("").to_string(),
        h["permissionDecisionReason"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    )
}

#[test]
fn hazards_concern_the_worktree_they_happen_in() {
    let p = Project::new();
    let feat = repo_with_worktree(&p);
    let (_a, a_env) = p.session("aaaaaaaa-main");
    let (_c, c_env) = p.session("cccccccc-main");
    let (b, b_env) = p.session_in("bbbbbbbb-feat", &feat);
    // B and C each leave an uncommitted change in their own worktree.
    for (id, env, root) in [
        ("bbbbbbbb-feat", &b_env, &feat),
        ("cccccccc-main", &c_env, &p.root),
    ] {
        let out = p.hook("PreToolUse", &edit(id, &root.join("src/a.rs"), root), env);
        assert!(out.status.success(), "{out:?}");
        std::fs::write(root.join("src/a.rs"), format!("// {id}\n")).expect("write");
    }

    // `git stash` in main endangers C (same worktree), not B.
    let out = p.hook(
        "PreToolUse",
        &bash("aaaaaaaa-main", "git stash", &p.root),
        &a_env,
    );
    let (d, why) = decision(&out);
    assert_eq!(d, "ask", "{out:?}");
    assert!(why.contains("SA-cccccccc"), "{why}");
    assert!(!why.contains("SA-bbbbbbbb"), "{why}");

    // Removing B's worktree or deleting its branch asks first, naming B.
    for cmd in [
        "git worktree remove --force .claude/worktrees/feat",
        "git branch -D feat",
    ] {
        let out = p.hook("PreToolUse", &bash("aaaaaaaa-main", cmd, &p.root), &a_env);
        let (d, why) = decision(&out);
        assert_eq!(d, "ask", "{cmd}: {out:?}");
        assert!(why.contains("SA-bbbbbbbb"), "{cmd}: {why}");
    }
    // A branch nobody has checked out is nobody's business.
    git(&p.root, &["branch", "spare"]);
    let out = p.hook(
        "PreToolUse",
        &bash("aaaaaaaa-main", "git branch -D spare", &p.root),
        &a_env,
    );
    assert_eq!(decision(&out).0, "", "{out:?}");
    drop(b);
}

#[test]
fn a_commit_on_a_file_a_sibling_changes_elsewhere_is_said_once() {
    let p = Project::new();
    let feat = repo_with_worktree(&p);
    let (_a, a_env) = p.session("aaaaaaaa-main");
    let (b, b_env) = p.session_in("bbbbbbbb-feat", &feat);
    // B is changing src/a.rs in its worktree.
    let out = p.hook(
        "PreToolUse",
        &edit("bbbbbbbb-feat", &feat.join("src/a.rs"), &feat),
        &b_env,
    );
    assert!(out.status.success(), "{out:?}");
    // A commits its own change to src/a.rs on main, through Bash.
    std::fs::write(p.root.join("src/a.rs"), "fn a() { /* main */ }\n").expect("write");
    let commit = bash("aaaaaaaa-main", "git commit -qam 'main change'", &p.root);
    assert!(p.hook("PreToolUse", &commit, &a_env).status.success());
    git(&p.root, &["commit", "-qam", "main change"]);
    let out = p.hook("PostToolUse", &commit, &a_env);
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    let prompt = payload("bbbbbbbb-feat", json!({"prompt": "go on", "cwd": feat}));
    let ctx = context(&p.hook("UserPromptSubmit", &prompt, &b_env));
    assert!(
        ctx.contains("SA-aaaaaaaa committed src/a.rs on branch main"),
        "{ctx}"
    );
    let again = context(&p.hook("UserPromptSubmit", &prompt, &b_env));
    assert!(!again.contains("committed src/a.rs"), "said twice: {again}");
    drop(b);
}

#[test]
fn a_claim_scoped_to_a_worktree_holds_only_there() {
    let p = Project::new();
    let feat = repo_with_worktree(&p);
    let (_a, _) = p.session("aaaaaaaa-main");
    let (_c, c_env) = p.session("cccccccc-main");
    let (b, b_env) = p.session_in("bbbbbbbb-feat", &feat);
    let out = run_in(
        &p,
        &p.root,
        &[
            "claim",
            "--session",
            "SA-aaaaaaaa",
            "--exclusive",
            "--worktree",
            "src/**",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let listed = String::from_utf8_lossy(&run_in(&p, &p.root, &["claims"]).stdout).to_string();
    assert!(listed.contains("(in worktree .)"), "{listed}");
    let deny = |out: &Output| {
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        v["hookSpecificOutput"]["permissionDecision"] == "deny"
    };
    let in_main = p.hook(
        "PreToolUse",
        &edit("cccccccc-main", &p.root.join("src/a.rs"), &p.root),
        &c_env,
    );
    assert!(deny(&in_main), "{in_main:?}");
    let in_feat = p.hook(
        "PreToolUse",
        &edit("bbbbbbbb-feat", &feat.join("src/a.rs"), &feat),
        &b_env,
    );
    assert!(!deny(&in_feat), "{in_feat:?}");
    // B may even claim the same files exclusively in its own worktree.
    let out = run_in(
        &p,
        &feat,
        &[
            "claim",
            "--session",
            "SA-bbbbbbbb",
            "--exclusive",
            "--worktree",
            "src/**",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    drop(b);
}
