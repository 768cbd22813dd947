//! A hostile tester's findings: each test is an attack that once worked (or an odd
//! newcomer's setup that once went wrong), kept so it stays fixed.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::Path;

fn decision(out: &std::process::Output) -> (String, String) {
    if out.stdout.is_empty() {
        return (String::new(), String::new());
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let h = &v["hookSpecificOutput"];
    (
        h["permissionDecision"].as_str().unwrap_or("").to_string(),
        format!(
            "{}{}",
            h["permissionDecisionReason"].as_str().unwrap_or(""),
            h["additionalContext"].as_str().unwrap_or("")
        ),
    )
}

fn edit_in(id: &str, path: &str, cwd: &Path) -> String {
    payload(
        id,
        json!({"cwd": cwd, "tool_name":"Edit",
               "tool_input":{"file_path": path,"old_string":"a","new_string":"b"}}),
    )
}

fn claim(p: &Project, args: &[&str]) {
    let mut all = vec!["claim"];
    all.extend_from_slice(args);
    let out = p.run(&all);
    assert!(out.status.success(), "claim {args:?}: {out:?}");
}

/// A symlink whose *last* component is the link (`alias.rs -> src/secret.rs`): an Edit of
/// it writes the claimed file, so it must meet the claim on its target.
#[test]
fn a_symlinked_file_does_not_dodge_an_exclusive_claim() {
    let p = Project::new();
    std::fs::create_dir_all(p.root.join("src")).expect("mkdir");
    std::fs::write(p.root.join("src/secret.rs"), "x").expect("write");
    std::os::unix::fs::symlink("src/secret.rs", p.root.join("alias.rs")).expect("symlink");
    let (_a, _ea) = p.session("aaaa0000-holder");
    let (_b, eb) = p.session("bbbb0000-dodger");
    claim(
        &p,
        &[
            "--session",
            "aaaa0000-holder",
            "--exclusive",
            "src/secret.rs",
        ],
    );
    let out = p.hook(
        "PreToolUse",
        &edit_in("bbbb0000-dodger", "alias.rs", &p.root),
        &eb,
    );
    let (d, why) = decision(&out);
    assert_eq!(d, "deny", "edit through a file symlink: {why} {out:?}");
}

/// `link/../secret.rs` where `link` is a symlink to `src/sub`: the kernel resolves `..`
/// after the link (it is `src/secret.rs`), a lexical clean-up says `secret.rs`.
#[test]
fn dot_dot_after_a_symlink_does_not_dodge_an_exclusive_claim() {
    let p = Project::new();
    std::fs::create_dir_all(p.root.join("src/sub")).expect("mkdir");
    std::fs::write(p.root.join("src/secret.rs"), "x").expect("write");
    std::os::unix::fs::symlink(p.root.join("src/sub"), p.root.join("link")).expect("symlink");
    let (_a, _ea) = p.session("aaaa0000-holder");
    let (_b, eb) = p.session("bbbb0000-dodger");
    claim(
        &p,
        &[
            "--session",
            "aaaa0000-holder",
            "--exclusive",
            "src/secret.rs",
        ],
    );
    let out = p.hook(
        "PreToolUse",
        &edit_in("bbbb0000-dodger", "link/../secret.rs", &p.root),
        &eb,
    );
    let (d, why) = decision(&out);
    assert_eq!(d, "deny", "edit through link/..: {why} {out:?}");
}

/// A `.git` file naming a git dir that does not exist is no repository (git says so);
/// a hook must not create a registry wherever that file points.
#[test]
fn a_dangling_gitdir_pointer_creates_nothing_outside_the_project() {
    let p = Project::new();
    std::fs::write(p.root.join(".git"), "gitdir: ../elsewhere/deep/gitdir\n").expect("write");
    let (_a, _ea) = p.session("aaaa0000-odd");
    let elsewhere = p.root.parent().expect("parent").join("elsewhere");
    assert!(
        !elsewhere.exists(),
        "a hook created {} from a dangling .git pointer",
        elsewhere.display()
    );
    assert!(p.state_dir().is_dir(), "the registry is the project's own");
}

fn bash(id: &str, cmd: &str, cwd: &Path) -> String {
    payload(
        id,
        json!({"cwd": cwd, "tool_name": "Bash", "tool_input": {"command": cmd}}),
    )
}

fn status_entry(p: &Project, id: &str) -> Value {
    let out = p.run(&["status", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("status json");
    v.as_array()
        .and_then(|a| a.iter().find(|e| e["session_id"] == id).cloned())
        .unwrap_or(Value::Null)
}

/// `git -C <worktree> stash` run from the main checkout moves the *other* worktree: the
/// siblings with uncommitted changes there must be asked about, as for a plain
/// `git stash` run inside it.
#[test]
fn git_dash_c_into_a_siblings_worktree_still_asks() {
    let p = Project::new();
    let feat = repo_with_worktree(&p);
    let (_a, a_env) = p.session("aaaaaaaa-main");
    let (_b, b_env) = p.session_in("bbbbbbbb-feat", &feat);
    let out = p.hook(
        "PreToolUse",
        &edit_in(
            "bbbbbbbb-feat",
            &feat.join("src/a.rs").display().to_string(),
            &feat,
        ),
        &b_env,
    );
    assert!(out.status.success(), "{out:?}");
    std::fs::write(feat.join("src/a.rs"), "// B's work\n").expect("write");
    for cmd in [
        "git -C .claude/worktrees/feat stash",
        "cd .claude/worktrees/feat && git reset --hard",
    ] {
        let out = p.hook("PreToolUse", &bash("aaaaaaaa-main", cmd, &p.root), &a_env);
        let (d, why) = decision(&out);
        assert_eq!(d, "ask", "{cmd}: {out:?}");
        assert!(why.contains("SA-bbbbbbbb"), "{cmd}: {why}");
    }
}

/// A session whose working directory reaches a worktree through a symlink is in that
/// worktree (same label), so hazards and scoped claims see it there.
#[test]
fn a_worktree_reached_through_a_symlink_has_its_own_label() {
    let p = Project::new();
    let feat = repo_with_worktree(&p);
    let link = p.root.parent().expect("parent").join("feat-link");
    std::os::unix::fs::symlink(&feat, &link).expect("symlink");
    let (_b, b_env) = p.session_in("bbbbbbbb-feat", &feat);
    // Claude Code reports the logical working directory.
    let out = p.hook(
        "UserPromptSubmit",
        &payload("bbbbbbbb-feat", json!({"prompt": "go on", "cwd": link})),
        &b_env,
    );
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    let e = status_entry(&p, "bbbbbbbb-feat");
    assert_eq!(e["worktree"], ".claude/worktrees/feat", "{e}");
}

/// `@pa` addresses the prime session, so no session may take `pa` as its name (it could
/// never be reached as @pa, and a sibling reading `@pa` would misread who is meant).
#[test]
fn names_that_parse_as_addresses_are_refused() {
    let p = Project::new();
    let agent = p.sleeping_agent();
    let env = vec![
        ("CLAUDE_PID", agent.id().to_string()),
        ("ORCHESTRATOR_AGENT_NAME", "pa".to_string()),
    ];
    let out = p.hook(
        "SessionStart",
        &payload("aaaa0000-name", json!({"source": "startup"})),
        &env,
    );
    assert!(out.status.success(), "{out:?}");
    let e = status_entry(&p, "aaaa0000-name");
    assert_ne!(e["name"], "pa", "{e}");
}

fn owner_of(p: &Project, id: &str) -> Option<i64> {
    status_entry(p, id)["agent_pid"].as_i64()
}

/// A hostile session's Bash starts its own `orchestrator serve` with the victim's id in
/// `CLAUDE_CODE_SESSION_ID` (an environment variable it chooses) and calls tools: the
/// server must not take the victim's row, nor act for it.
#[test]
fn a_server_started_with_a_siblings_id_in_its_environment_does_not_take_it() {
    let p = Project::new();
    let (v, v_env) = p.session("vvvvvvvv-victim");
    let sent = p.run(&["send", "@SA-vvvvvvvv", "the deploy key rotates at noon"]);
    assert!(sent.status.success(), "{sent:?}");
    let mut h = p.agent_with_server(&[
        ("CLAUDE_CODE_SESSION_ID", "vvvvvvvv-victim"),
        ("ORCHESTRATOR_CHANNEL", "off"),
    ]);
    h.initialize();
    let (t, _) = h.call("update_session_task", json!({"task": "pwned"}));
    let (inbox, _) = h.call("inbox", json!({}));
    assert_eq!(
        owner_of(&p, "vvvvvvvv-victim"),
        Some(v.id() as i64),
        "the victim's row moved to the hostile agent: {t}"
    );
    assert_ne!(
        status_entry(&p, "vvvvvvvv-victim")["current_task"],
        "pwned",
        "{t}"
    );
    assert!(
        !inbox.contains("deploy key"),
        "read the victim's mail: {inbox}"
    );
    // The victim's own hooks still work and its mail is still there.
    let own = p.hook(
        "UserPromptSubmit",
        &payload("vvvvvvvv-victim", json!({"prompt": "mail?"})),
        &v_env,
    );
    assert!(own.stderr.is_empty(), "{own:?}");
    assert!(context(&own).contains("deploy key"), "{own:?}");
}

/// The person's acting commands run in a directory without a registry (a typo'd
/// directory, their home) fail saying so, and leave no state dir there for a later
/// walk-up to take for a project's registry.
#[test]
fn acting_commands_outside_any_registry_create_nothing() {
    let p = Project::new();
    for args in [
        &["send", "@all", "hi"][..],
        &["claim", "--session", "aaaa0000-x", "src/a.rs"][..],
        &["release", "--session", "aaaa0000-x"][..],
        &["takeover", "@SA-aaaa0000"][..],
        &["guard", "pre-commit"][..],
    ] {
        let out = p.run(args);
        assert!(
            !p.state_dir().exists(),
            "{args:?} created {}: {out:?}",
            p.state_dir().display()
        );
    }
}

/// A claim named by its path inside another worktree (`.claude/worktrees/feat/src/a.rs`
/// from the main checkout) is that worktree's `src/a.rs`: it must hold against the edits
/// there, not sit as a main-checkout path no edit ever has.
#[test]
fn a_claim_named_through_another_worktrees_path_protects_that_file() {
    let p = Project::new();
    let feat = repo_with_worktree(&p);
    let (_a, _) = p.session("aaaaaaaa-main");
    let (_b, b_env) = p.session_in("bbbbbbbb-feat", &feat);
    for (i, pat) in [
        ".claude/worktrees/feat/src/a.rs",
        ".claude/worktrees/feat/src/*.rs",
    ]
    .iter()
    .enumerate()
    {
        claim(&p, &["--session", "aaaaaaaa-main", "--exclusive", pat]);
        let out = p.hook(
            "PreToolUse",
            &edit_in(
                "bbbbbbbb-feat",
                &feat.join("src/a.rs").display().to_string(),
                &feat,
            ),
            &b_env,
        );
        let (d, why) = decision(&out);
        assert_eq!(d, "deny", "claim #{i} {pat}: {why} {out:?}");
        let out = p.run(&["release", "--session", "aaaaaaaa-main"]);
        assert!(out.status.success(), "{out:?}");
    }
}

/// A sibling's Bash that detaches from its agent (double fork, `setsid`, `CLAUDE_PID`
/// unset) looks like the person's own shell, which may act for any session: it takes the
/// victim's mail. Any same-user process can also open the database itself, so this is a
/// limit of the trust model (who is "under an agent" is read from the process tree),
/// not a bug with a small fix.
#[test]
#[ignore = "limit of the trust model: a process that leaves its agent's process tree and drops CLAUDE_PID is taken for the person's shell"]
fn a_detached_process_cannot_read_a_siblings_mail() {
    let p = Project::new();
    let (_v, _) = p.session("vvvvvvvv-victim");
    let sent = p.run(&["send", "@SA-vvvvvvvv", "the deploy key rotates at noon"]);
    assert!(sent.status.success(), "{sent:?}");
    let pl = p.root.join("pl");
    let stolen = p.root.join("stolen");
    std::fs::write(&pl, payload("vvvvvvvv-victim", json!({"prompt": "mail?"}))).expect("write");
    let script = format!(
        "(env -u CLAUDE_PID setsid {BIN} hook UserPromptSubmit < {} > {}.tmp 2>&1; mv {}.tmp {} ) &",
        pl.display(),
        stolen.display(),
        stolen.display(),
        stolen.display()
    );
    let out = p
        .cmd(&p.claude)
        .args(["sh", "-c", &script])
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    assert!(wait_until(std::time::Duration::from_secs(20), || stolen.exists()));
    let got = std::fs::read_to_string(&stolen).unwrap_or_default();
    assert!(
        !got.contains("deploy key"),
        "mail read by a detached process: {got}"
    );
}
