//! The command line a newcomer reads first: every argument described in `--help`, the
//! settings listed, and `serve` quiet on stderr (which Claude Code logs as errors) unless
//! ORCHESTRATOR_LOG asks.

mod common;
use common::*;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;

fn help(args: &[&str]) -> String {
    let p = Project::new();
    let out = p.run(args);
    assert!(out.status.success(), "{args:?}: {:?}", out.status);
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Subcommand names from a help text's `Commands:` section (without `help`).
fn subcommands(text: &str) -> Vec<String> {
    text.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .filter(|c| c != "help")
        .collect()
}

/// Argument and option lines that carry no description (short help: `  --flag  text`).
fn undescribed(text: &str) -> Vec<String> {
    let mut section = "";
    let mut bad = Vec::new();
    for line in text.lines() {
        if !line.starts_with(' ') {
            section = line;
            continue;
        }
        if !(section.starts_with("Arguments:") || section.starts_with("Options:")) {
            continue;
        }
        let t = line.trim();
        let is_entry = t.starts_with('-') || t.starts_with('<') || t.starts_with('[');
        if is_entry && !t.contains("  ") {
            bad.push(line.to_string());
        }
    }
    bad
}

#[test]
fn help_describes_every_argument_of_every_command() {
    let top = help(&["-h"]);
    let mut commands: Vec<Vec<String>> = subcommands(&top).into_iter().map(|c| vec![c]).collect();
    assert!(commands.len() >= 15, "{top}");
    for sub in subcommands(&help(&["guard", "-h"])) {
        commands.push(vec!["guard".into(), sub]);
    }
    let mut missing = Vec::new();
    for cmd in &commands {
        let mut args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        args.push("-h");
        for line in undescribed(&help(&args)) {
            missing.push(format!("{}: {line}", cmd.join(" ")));
        }
    }
    assert!(
        missing.is_empty(),
        "undescribed arguments:\n{}",
        missing.join("\n")
    );
    // The ones a newcomer asked about.
    let claim = help(&["claim", "-h"]);
    assert!(
        claim.contains("<PATHS>...  Files, directories or globs"),
        "{claim}"
    );
    assert!(claim.contains("--exclusive          Exclusive:"), "{claim}");
}

#[test]
fn top_level_help_lists_every_setting() {
    let long = help(&["--help"]);
    for (name, accepted, default) in orchestrator::core::settings::KNOWN {
        assert!(long.contains(name), "--help lacks {name}");
        assert!(
            long.contains(&format!("{accepted} (default: {default})")),
            "--help lacks what {name} accepts"
        );
    }
    assert!(long.contains("ORCHESTRATOR_PROJECT_ROOT") && long.contains("ORCHESTRATOR_BIN"));
    assert!(help(&["-h"]).contains("--help` lists them"));
}

/// Runs `serve` for a session until its stdin closes; returns everything on stderr.
fn serve_stderr(p: &Project, log: &str) -> String {
    let mut child = p
        .cmd(Path::new(BIN))
        .arg("serve")
        .env("CLAUDE_CODE_SESSION_ID", "quiet-serve-0001")
        .env("ORCHESTRATOR_LOG", log)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    if let Some(mut si) = child.stdin.take() {
        let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;
        let _ = writeln!(si, "{init}");
        let _ = writeln!(
            si,
            r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#
        );
    }
    let out = child.wait_with_output().expect("serve exits on EOF");
    assert!(out.status.success(), "{:?}", out.status);
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn serve_says_nothing_ordinary_on_stderr_unless_asked() {
    let p = Project::new();
    let quiet = serve_stderr(&p, "");
    assert_eq!(quiet, "", "default: no ordinary lines");
    let info = serve_stderr(&p, "info");
    assert!(info.contains("bound to session SA-quiet-se"), "{info}");
    assert!(info.contains("shutting down: stdin closed"), "{info}");
    // A wrong value is a warning, written whatever the level.
    let bad = serve_stderr(&p, "verbose");
    assert!(
        bad.contains("ORCHESTRATOR_LOG=\"verbose\" is not valid"),
        "{bad}"
    );
    assert!(!bad.contains("bound to session"), "{bad}");
}
