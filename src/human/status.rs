//! `orchestrator status`: the live roster for a person (table or `--json`).

use crate::core::identity::SystemProbe;
use crate::core::liveness::{self, Policy};
use crate::core::{clock, roster};
use anyhow::Result;
use std::io::IsTerminal;

pub fn run(json: bool, all: bool) -> Result<i32> {
    let (_paths, store) = super::open()?;
    let now = clock::now_ms();
    let policy = Policy::from_env();
    let rows = store.all_sessions()?;
    let mut out = Vec::new();
    for r in rows {
        let v = liveness::verdict(&r, now, &SystemProbe, policy);
        if !v.is_live() && !all {
            continue;
        }
        let files = store.paths_of_session(&r.session_id, now - roster::files_window_ms(), 8)?;
        out.push((r, v, files));
    }
    if json {
        let arr: Vec<serde_json::Value> = out
            .iter()
            .map(|(r, v, files)| {
                let mut j = serde_json::to_value(r).unwrap_or_default();
                if let Some(o) = j.as_object_mut() {
                    o.insert("live".into(), v.is_live().into());
                    o.insert("liveness".into(), v.as_str().into());
                    o.insert("files".into(), serde_json::json!(files));
                }
                j
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&arr)?);
        return Ok(0);
    }
    if out.is_empty() {
        println!("no live sessions");
        return Ok(0);
    }
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    println!(
        "{:<11} {:<14} {:<11} {:<32} {:<10} {:<8} {:<8} FILES",
        "SESSION", "NAME", "ROLE", "TASK", "STATE", "SEEN", "PID"
    );
    for (r, v, files) in &out {
        let task: String = r
            .current_task
            .as_deref()
            .unwrap_or("-")
            .chars()
            .take(32)
            .collect();
        let state = match (
            r.activity.as_deref(),
            r.activity_since.as_deref().and_then(clock::parse_iso),
        ) {
            (Some(a), Some(t)) => format!("{a} {}", clock::age(now - t)),
            _ => "-".into(),
        };
        let state = if v.is_live() {
            state
        } else {
            v.as_str().split(' ').next().unwrap_or("dead").to_string()
        };
        let line = format!(
            "{:<11} {:<14} {:<11} {:<32} {:<10} {:<8} {:<8} {}",
            format!("SA-{}", r.id8),
            r.name
                .as_deref()
                .unwrap_or("-")
                .chars()
                .take(14)
                .collect::<String>(),
            r.role,
            task,
            state,
            clock::age(now - r.heartbeat_ms()),
            r.agent_pid
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            if files.is_empty() {
                "-".to_string()
            } else {
                files.join(",")
            }
        );
        if color && !v.is_live() {
            println!("\x1b[2m{line}\x1b[0m");
        } else if color {
            println!("\x1b[1m{}\x1b[0m{}", &line[..11], &line[11..]);
        } else {
            println!("{line}");
        }
    }
    Ok(0)
}
