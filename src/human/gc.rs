//! `orchestrator gc`: startup hygiene on demand.

use crate::core::hygiene;
use crate::core::identity::SystemProbe;
use crate::core::text;
use anyhow::Result;
use std::io::IsTerminal;

pub fn run(dry_run: bool, json: bool) -> Result<i32> {
    // No state dir: nothing to collect, and nothing is created to find that out.
    let paths = crate::core::paths::ProjectPaths::resolve()?;
    if std::fs::symlink_metadata(&paths.state_dir).is_err() {
        eprintln!(
            "no orchestrator state for {} (none at {}): nothing to collect",
            text::inline(&paths.root.to_string_lossy(), text::PATH),
            text::inline(&paths.state_dir.to_string_lossy(), text::PATH)
        );
        if json {
            println!("{{}}");
        }
        return Ok(0);
    }
    let (paths, store) = super::open()?;
    let tty = std::io::stderr().is_terminal();
    let progress = |n: usize| {
        if tty && n.is_multiple_of(500) {
            eprint!("\rexamining state dir: {n} entries");
        }
    };
    let report =
        hygiene::reap_with_progress(&paths, Some(&store), &SystemProbe, dry_run, &progress)?;
    if tty {
        eprint!("\r\x1b[2K");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(0);
    }
    for r in &report.anchors_reaped {
        let name = r
            .path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        println!(
            "{} {}: {}",
            if dry_run { "would remove" } else { "removed" },
            text::inline(&name, text::PATH),
            r.reason
        );
    }
    for id in &report.rows_reaped {
        println!(
            "{} session row SA-{}: agent process is dead or silent for a day",
            if dry_run { "would remove" } else { "removed" },
            text::id8(id)
        );
    }
    let p = report.pruned;
    for (n, what) in [
        (p.messages, "message(s) older than 30 days"),
        (
            p.notices,
            "notice(s) delivered over 7 days ago or older than 30 days",
        ),
        (
            p.ended_sessions,
            "ended-session record(s) older than 30 days",
        ),
        (
            p.tree_snapshots,
            "working-tree snapshot(s) of sessions that are gone",
        ),
        (p.touches, "file touch(es) older than 7 days"),
    ] {
        if n > 0 {
            println!(
                "{} {n} {what}",
                if dry_run { "would prune" } else { "pruned" }
            );
        }
    }
    println!("{}", report.log_line());
    Ok(0)
}
