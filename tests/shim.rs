//! The plugin's `bin/orchestrator` shim, run as Claude Code runs it: a real process with
//! a crafted PATH, HOME and CARGO_HOME. It must find the binary wherever a person put it,
//! never run itself (its own directory is on the Bash PATH), and when there is nothing to
//! run, tell the person once (a SessionStart `systemMessage`) without breaking the agent.

use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SHIM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/plugin/bin/orchestrator");
const BIN: &str = env!("CARGO_BIN_EXE_orchestrator");

/// Tests here write scripts and then exec them; a sibling thread's fork could still hold
/// a script open for writing (ETXTBSY), so they run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

struct Sandbox {
    _dir: tempfile::TempDir,
    base: PathBuf,
    home: PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = std::fs::canonicalize(dir.path()).expect("canon");
        let home = base.join("home");
        std::fs::create_dir_all(&home).expect("mkdir home");
        Self {
            _dir: dir,
            base,
            home,
        }
    }

    /// A directory `name` holding a fake `orchestrator` that prints which one it is.
    fn fake(&self, name: &str) -> PathBuf {
        let dir = self.base.join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("orchestrator");
        std::fs::write(&path, format!("#!/bin/sh\necho \"fake:{name} $*\"\n")).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        dir
    }

    fn dir(&self, name: &str) -> PathBuf {
        let dir = self.base.join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }

    /// Runs the shim with only the given environment (plus HOME), feeding `stdin`.
    /// A shim that loops would exec forever: it is killed after a minute and fails.
    fn run(&self, args: &[&str], env: &[(&str, &Path)], stdin: &str) -> Output {
        let mut c = Command::new(SHIM);
        c.env_clear()
            .env("HOME", &self.home)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("spawn shim");
        if let Some(mut si) = child.stdin.take() {
            let _ = si.write_all(stdin.as_bytes());
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the shim did not finish: it loops");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        child.wait_with_output().expect("output")
    }
}

fn path_of(dirs: &[&Path]) -> PathBuf {
    let s: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    PathBuf::from(s.join(":"))
}

fn shim_dir() -> PathBuf {
    Path::new(SHIM).parent().expect("shim dir").to_path_buf()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// The fallback /usr/local/bin is searched last and cannot be hidden from a test: when
/// this machine has an orchestrator there, "nothing found" cannot be checked.
fn fallback_present() -> bool {
    let present = Path::new("/usr/local/bin/orchestrator").exists();
    if present {
        eprintln!("/usr/local/bin/orchestrator exists here: the not-found case is not checked");
    }
    present
}

#[test]
fn finds_the_binary_on_path_alone_skipping_its_own_directory() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = Sandbox::new();
    let local = s.fake("local-bin");
    let path = path_of(&[&shim_dir(), &local]);
    let out = s.run(&["status", "--json"], &[("PATH", &path)], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "fake:local-bin status --json\n");

    // The real binary behind a PATH symlink gets the arguments and stdin untouched.
    let real = s.dir("real");
    symlink(BIN, real.join("orchestrator")).expect("symlink");
    let path = path_of(&[&shim_dir(), &real]);
    let out = s.run(&["--version"], &[("PATH", &path)], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("orchestrator "),
        "{}",
        stdout(&out)
    );
}

#[test]
fn cargo_home_then_home_cargo_then_path_and_orchestrator_bin_first() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = Sandbox::new();
    let on_path = s.fake("on-path");
    let path = path_of(&[&shim_dir(), &on_path]);

    // ~/.cargo/bin beats PATH.
    let home_cargo = s.home.join(".cargo");
    std::fs::create_dir_all(&home_cargo).expect("mkdir");
    std::fs::rename(s.fake("tmp-home-cargo"), home_cargo.join("bin")).expect("mv");
    let out = s.run(&["doctor"], &[("PATH", &path)], "");
    assert_eq!(stdout(&out), "fake:tmp-home-cargo doctor\n");

    // $CARGO_HOME/bin (as in the rust Docker images) replaces ~/.cargo/bin.
    let cargo_home = s.dir("cargo-home");
    std::fs::rename(s.fake("tmp-cargo-home"), cargo_home.join("bin")).expect("mv");
    let out = s.run(
        &["doctor"],
        &[("PATH", &path), ("CARGO_HOME", &cargo_home)],
        "",
    );
    assert_eq!(stdout(&out), "fake:tmp-cargo-home doctor\n");

    // A CARGO_HOME without the binary does not fall back to ~/.cargo: PATH is next.
    let empty = s.dir("empty-cargo-home");
    let out = s.run(&["doctor"], &[("PATH", &path), ("CARGO_HOME", &empty)], "");
    assert_eq!(stdout(&out), "fake:on-path doctor\n");

    // ORCHESTRATOR_BIN beats everything.
    let chosen = s.fake("chosen").join("orchestrator");
    let out = s.run(
        &["doctor"],
        &[
            ("PATH", &path),
            ("CARGO_HOME", &cargo_home),
            ("ORCHESTRATOR_BIN", &chosen),
        ],
        "",
    );
    assert_eq!(stdout(&out), "fake:chosen doctor\n");
}

#[test]
fn never_runs_itself_nor_another_copy_of_itself() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = Sandbox::new();
    // Every way the shim can meet itself on PATH: its own directory, a symlink to that
    // directory, a symlink to the shim, and a copy of the shim elsewhere (two plugin
    // installs); plus ORCHESTRATOR_BIN and ~/.cargo/bin naming shims.
    let dir_link = s.base.join("shim-dir-link");
    symlink(shim_dir(), &dir_link).expect("symlink dir");
    let file_link = s.dir("shim-file-link");
    symlink(SHIM, file_link.join("orchestrator")).expect("symlink file");
    let copy = s.dir("shim-copy");
    std::fs::copy(SHIM, copy.join("orchestrator")).expect("copy");
    let cargo_bin = s.home.join(".cargo/bin");
    std::fs::create_dir_all(&cargo_bin).expect("mkdir");
    std::fs::copy(SHIM, cargo_bin.join("orchestrator")).expect("copy");
    let via_env = copy.join("orchestrator");
    let real = s.fake("the-real-one");
    let loops = [
        shim_dir(),
        dir_link.clone(),
        file_link.clone(),
        copy.clone(),
    ];

    let mut dirs: Vec<&Path> = loops.iter().map(PathBuf::as_path).collect();
    dirs.push(&real);
    let out = s.run(
        &["claims"],
        &[("PATH", &path_of(&dirs)), ("ORCHESTRATOR_BIN", &via_env)],
        "",
    );
    assert_eq!(
        stdout(&out),
        "fake:the-real-one claims\n",
        "{}",
        stderr(&out)
    );

    if fallback_present() {
        return;
    }
    dirs.pop();
    let out = s.run(
        &["serve"],
        &[("PATH", &path_of(&dirs)), ("ORCHESTRATOR_BIN", &via_env)],
        "",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
}

#[test]
fn nothing_found_tells_the_person_once_and_never_breaks_the_agent() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if fallback_present() {
        return;
    }
    let s = Sandbox::new();
    let empty = s.dir("empty");
    let path = path_of(&[&shim_dir(), &empty]);
    let env: &[(&str, &Path)] = &[("PATH", &path)];
    let one_line = |o: &Output| {
        let e = stderr(o);
        assert_eq!(e.lines().count(), 1, "one stderr line: {e}");
        assert!(e.contains("cargo install --locked --path"), "{e}");
        assert!(e.contains("ORCHESTRATOR_BIN"), "{e}");
    };

    // SessionStart at startup: a systemMessage the person sees, naming the fix.
    let start = r#"{"session_id":"s1","hook_event_name":"SessionStart","source":"startup"}"#;
    let out = s.run(&["hook", "SessionStart"], env, start);
    assert_eq!(out.status.code(), Some(0));
    one_line(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON answer");
    let msg = v["systemMessage"].as_str().expect("systemMessage");
    assert!(msg.contains("cargo install --locked --path"), "{msg}");
    assert!(msg.contains("ORCHESTRATOR_BIN"), "{msg}");
    assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{v}");

    // Not again on /clear or compaction of the same session.
    for source in ["clear", "compact"] {
        let input = start.replace("startup", source);
        let out = s.run(&["hook", "SessionStart"], env, &input);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(stdout(&out), "", "{source}");
    }

    // Other hooks: nothing on stdout, exit 0.
    let out = s.run(
        &["hook", "UserPromptSubmit"],
        env,
        r#"{"session_id":"s1","prompt":"hi"}"#,
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "");
    one_line(&out);

    // serve: fails, so Claude Code shows the server as failed, with the reason.
    let out = s.run(&["serve"], env, "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    one_line(&out);

    // A wrong ORCHESTRATOR_BIN is named as such.
    let wrong = s.base.join("no-such-binary");
    let out = s.run(
        &["hook", "SessionStart"],
        &[("PATH", &path), ("ORCHESTRATOR_BIN", &wrong)],
        start,
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON answer");
    assert!(
        v["systemMessage"]
            .as_str()
            .is_some_and(|m| m.contains("ORCHESTRATOR_BIN does not name")),
        "{v}"
    );
}
