//! `orchestrator repair`: when `doctor` finds the database damaged, move it aside and
//! rebuild it with every row that can still be read.

use crate::core::paths::ProjectPaths;
use crate::core::store::repair::{self, Diagnosis};
use anyhow::Result;

pub fn run() -> Result<i32> {
    let paths = ProjectPaths::resolve()?;
    let db = paths.db_path();
    match repair::diagnose(&paths) {
        Diagnosis::Missing => {
            println!("no database at {} yet; nothing to repair", db.display());
            return Ok(0);
        }
        Diagnosis::Healthy(_) => {
            println!("database {} is healthy; nothing to repair", db.display());
            return Ok(0);
        }
        Diagnosis::Unusable(e) => {
            eprintln!("orchestrator repair: {e:#}");
            eprintln!("that is not damage repair can fix; `orchestrator doctor` explains it");
            return Ok(1);
        }
        Diagnosis::Damaged(what) => {
            println!("database {} is corrupt: {}", db.display(), what.join("; "))
        }
        Diagnosis::Unopenable(_) => {
            println!("database {} is corrupt: it does not open", db.display())
        }
    }
    let r = repair::repair(&paths)?;
    println!("moved the damaged files aside to {}", r.backup.display());
    for t in &r.tables {
        if t.missing {
            println!("  {:<15} not readable in the damaged file", t.table);
            continue;
        }
        let mut line = format!("  {:<15} {} row(s) copied", t.table, t.copied);
        if t.skipped > 0 {
            line.push_str(&format!(", {} unreadable or refused", t.skipped));
        }
        if t.pages_lost {
            line.push_str(", some pages unreadable (rows there are lost)");
        }
        println!("{line}");
    }
    println!(
        "database rebuilt. Running sessions re-register at their next hook; an MCP server \
         started before the repair keeps the old file until it restarts (/mcp to reconnect)."
    );
    Ok(0)
}
