//! `install` and `uninstall` on real files: what a team shares (the bare command), the
//! user scope (~/.claude/settings.json and ~/.claude.json), backups kept out of the
//! project, a diff with context, and uninstall taking out exactly what install put in.

mod common;
use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The commands of every hook and server entry install wrote.
fn commands(settings: &Value, mcp: &Value) -> Vec<String> {
    let mut out: Vec<String> = settings["hooks"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(_, groups)| groups.as_array().cloned().unwrap_or_default())
        .flat_map(|g| g["hooks"].as_array().cloned().unwrap_or_default())
        .filter(|h| h["args"][0] == "hook")
        .filter_map(|h| h["command"].as_str().map(String::from))
        .collect();
    out.extend(
        mcp["mcpServers"]["orchestrator"]["command"]
            .as_str()
            .map(String::from),
    );
    out
}

#[test]
fn project_install_is_team_safe_and_uninstall_restores_it() {
    let p = Project::new();
    let settings = p.root.join(".claude/settings.json");
    std::fs::create_dir_all(settings.parent().expect("dir")).expect("mkdir");
    let original = json!({
        "model": "opus",
        "permissions": {"allow": ["Bash(cargo test)"]},
        "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "notify.sh"}]}]}
    });
    std::fs::write(
        &settings,
        serde_json::to_string_pretty(&original).expect("json"),
    )
    .expect("w");

    // The dry run shows a unified diff with context and writes nothing.
    let dry = ok(&p.run(&["install", "--dry-run"]));
    assert!(dry.contains("@@ -"), "{dry}");
    assert!(
        dry.lines()
            .any(|l| l.starts_with(' ') && l.contains("notify.sh")),
        "context lines around the change:\n{dry}"
    );
    assert!(
        dry.lines().any(|l| l.starts_with("+        \"hooks\"")),
        "{dry}"
    );
    assert!(!p.root.join(".mcp.json").exists(), "dry run writes nothing");
    assert_eq!(read_json(&settings), original);

    let out = ok(&p.run(&["install"]));
    assert!(
        out.contains("Pending approval"),
        "names the approval step:\n{out}"
    );
    let (s, m) = (read_json(&settings), read_json(&p.root.join(".mcp.json")));
    // What teammates share names no one's home directory: the bare command.
    let cmds = commands(&s, &m);
    assert_eq!(cmds.len(), 9, "8 hooks and the server: {cmds:?}");
    assert!(cmds.iter().all(|c| c == "orchestrator"), "{cmds:?}");
    assert_eq!(m["mcpServers"]["orchestrator"]["args"], json!(["serve"]));
    assert_eq!(s["model"], "opus");
    assert_eq!(s["permissions"], original["permissions"]);

    // Backups live under the state home, mirroring the absolute path; none in the project.
    let project_files: Vec<PathBuf> = files_under(&p.root);
    assert_eq!(
        project_files,
        vec![
            p.root.join(".claude/settings.json"),
            p.root.join(".mcp.json")
        ],
        "install adds nothing else to the project"
    );
    let backups = files_under(&p.home.join(".local/state/orchestrator/backups"));
    assert_eq!(backups.len(), 1, "{backups:?}");
    let rel = settings.strip_prefix("/").expect("absolute");
    assert!(backups[0].ends_with(rel), "{backups:?}");
    assert_eq!(read_json(&backups[0]), original);
    let mode = std::fs::metadata(&backups[0])
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "backups are private");

    assert!(ok(&p.run(&["install"])).contains("already installed"));

    // --absolute: this binary's path, for one person's setup.
    ok(&p.run(&["install", "--absolute"]));
    let cmds = commands(&read_json(&settings), &read_json(&p.root.join(".mcp.json")));
    let bin = std::fs::canonicalize(BIN).expect("canon");
    assert!(cmds.iter().all(|c| Path::new(c) == bin), "{cmds:?}");
    assert_eq!(cmds.len(), 9, "replaced, not added: {cmds:?}");

    // Uninstall: a dry run changes nothing; then exactly the original comes back and
    // the .mcp.json that install created is gone.
    let dry = ok(&p.run(&["uninstall", "--dry-run"]));
    assert!(dry.contains("@@ -"), "{dry}");
    assert!(p.root.join(".mcp.json").exists());
    let out = ok(&p.run(&["uninstall"]));
    assert!(out.contains("removed from"), "{out}");
    assert_eq!(read_json(&settings), original);
    assert!(!p.root.join(".mcp.json").exists());
    assert!(ok(&p.run(&["uninstall"])).contains("not installed"));
}

#[test]
fn uninstall_keeps_other_servers_and_a_file_someone_else_wrote() {
    let p = Project::new();
    let mcp = p.root.join(".mcp.json");
    let theirs = json!({"mcpServers": {"db": {"command": "db-mcp", "args": ["--ro"]}}});
    std::fs::write(&mcp, theirs.to_string()).expect("w");
    ok(&p.run(&["install"]));
    assert_eq!(
        read_json(&mcp)["mcpServers"]["db"],
        theirs["mcpServers"]["db"]
    );
    ok(&p.run(&["uninstall"]));
    assert_eq!(read_json(&mcp), theirs);
    assert!(
        !p.root.join(".claude/settings.json").exists(),
        "the settings file install created held only our hooks"
    );
}

#[test]
fn user_scope_writes_claude_settings_and_user_mcp_config() {
    let p = Project::new();
    let claude_json = p.home.join(".claude.json");
    // Claude Code's own state in ~/.claude.json must survive untouched.
    let state = json!({
        "numStartups": 7,
        "projects": {"/src/app": {"allowedTools": [], "mcpServers": {}}},
        "mcpServers": {"other": {"type": "stdio", "command": "other-mcp", "args": [], "env": {}}}
    });
    std::fs::write(
        &claude_json,
        serde_json::to_string_pretty(&state).expect("j"),
    )
    .expect("w");
    std::fs::set_permissions(&claude_json, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    // A dotfiles-managed settings.json is edited where the link points.
    let dotfiles = p.home.join("dotfiles");
    std::fs::create_dir_all(&dotfiles).expect("mkdir");
    std::fs::create_dir_all(p.home.join(".claude")).expect("mkdir");
    std::fs::write(dotfiles.join("settings.json"), r#"{"theme":"dark"}"#).expect("w");
    let settings = p.home.join(".claude/settings.json");
    symlink(dotfiles.join("settings.json"), &settings).expect("symlink");
    let xdg = p.home.join("xdg-state");

    let out = ok(&p
        .cmd(Path::new(BIN))
        .args(["install", "--user"])
        .env("XDG_STATE_HOME", &xdg)
        .output()
        .expect("run"));
    assert!(out.contains("your user settings"), "{out}");
    assert!(
        !out.contains("Pending approval"),
        "no approval in user scope:\n{out}"
    );
    let meta = std::fs::symlink_metadata(&settings).expect("meta");
    assert!(meta.file_type().is_symlink(), "the link is kept");
    let s = read_json(&settings);
    assert_eq!(s["theme"], "dark");
    let c = read_json(&claude_json);
    assert_eq!(commands(&s, &c).len(), 9);
    assert_eq!(c["numStartups"], 7);
    assert_eq!(c["projects"], state["projects"]);
    assert_eq!(c["mcpServers"]["other"], state["mcpServers"]["other"]);
    let mode = std::fs::metadata(&claude_json)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the file's mode is kept");
    assert!(
        !p.root.join(".mcp.json").exists() && !p.root.join(".claude").exists(),
        "the project is not touched"
    );
    let backups = files_under(&xdg.join("orchestrator/backups"));
    assert_eq!(
        backups.len(),
        2,
        "XDG_STATE_HOME holds the backups: {backups:?}"
    );

    ok(&p.run(&["uninstall", "--user"]));
    assert_eq!(read_json(&claude_json), state, "exactly ours removed");
    assert_eq!(read_json(&settings), json!({"theme": "dark"}));
    assert!(std::fs::symlink_metadata(&settings)
        .expect("meta")
        .file_type()
        .is_symlink());
    assert!(ok(&p.run(&["uninstall", "--user"])).contains("not installed"));

    // CLAUDE_CONFIG_DIR moves both files, as it does for Claude Code.
    let cfg = p.home.join("cfg");
    let out = p
        .cmd(Path::new(BIN))
        .args(["install", "--user"])
        .env("CLAUDE_CONFIG_DIR", &cfg)
        .output()
        .expect("run");
    ok(&out);
    assert_eq!(
        commands(
            &read_json(&cfg.join("settings.json")),
            &read_json(&cfg.join(".claude.json"))
        )
        .len(),
        9
    );
    let mode = std::fs::metadata(cfg.join(".claude.json"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "a new user config is private");

    let both = p.run(&["install", "--user", "--project", "."]);
    assert!(
        !both.status.success(),
        "--user and --project exclude each other"
    );
}

#[test]
fn install_says_when_the_bare_command_is_not_on_path() {
    let p = Project::new();
    let bin_dir = p.root.parent().expect("parent").join("path-bin");
    std::fs::create_dir_all(&bin_dir).expect("mkdir");
    let out = ok(&p
        .cmd(Path::new(BIN))
        .args(["install", "--dry-run"])
        .env("PATH", &bin_dir)
        .output()
        .expect("run"));
    assert!(out.contains("not on your PATH"), "{out}");
    assert!(out.contains("cargo install --locked"), "{out}");
    symlink(BIN, bin_dir.join("orchestrator")).expect("symlink");
    let out = ok(&p
        .cmd(Path::new(BIN))
        .args(["install", "--dry-run"])
        .env("PATH", &bin_dir)
        .output()
        .expect("run"));
    assert!(!out.contains("note:"), "{out}");
}
