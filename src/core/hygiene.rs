//! Startup hygiene: remove anchors of dead processes and registry rows of dead agents.
//!
//! Safe to run by many processes at once: a file a sibling reaper removed first counts as
//! done, symlinks are never followed or deleted, and only `active-session-<pid>` names
//! with pid > 0 are ever considered.

use crate::core::identity::anchor::{self, StaleReason};
use crate::core::identity::Probe;
use crate::core::liveness::{self, Policy, Verdict};
use crate::core::paths::ProjectPaths;
use crate::core::store::retention::Pruned;
use crate::core::store::{SessionRow, Store};
use anyhow::Result;
use std::fs;
use std::io::ErrorKind;
use std::path::PathBuf;

/// A heartbeat-only row silent this long is removed by `gc` (a process-owned row is
/// removed as soon as its process is provably dead).
pub const ABANDONED_AFTER_MS: i64 = 24 * 3600 * 1000;

/// What one reap found and did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    /// Stale anchors removed (or, in a dry run, that would be).
    pub anchors_reaped: Vec<Reaped>,
    /// Valid anchors left alone.
    pub anchors_kept: usize,
    /// Files that are not per-pid anchors (legacy file, symlinks, other names).
    pub ignored: usize,
    /// Registry rows removed because their agent process is provably dead.
    pub rows_reaped: Vec<String>,
    /// Old records removed from the store (see `store::retention`).
    pub pruned: Pruned,
    pub dry_run: bool,
}

/// One stale thing and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reaped {
    pub path: PathBuf,
    pub reason: String,
}

impl Report {
    /// The one log line the design fixes.
    pub fn log_line(&self) -> String {
        let verb = if self.dry_run { "would reap" } else { "reaped" };
        let mut s = format!(
            "[orchestrator] startup hygiene: {verb} {} stale active-session-<pid> file(s)",
            self.anchors_reaped.len()
        );
        if !self.rows_reaped.is_empty() {
            s.push_str(&format!(
                " and {} dead session row(s)",
                self.rows_reaped.len()
            ));
        }
        let n = self.pruned.total();
        if n > 0 {
            let verb = if self.dry_run {
                "would prune"
            } else {
                "pruned"
            };
            s.push_str(&format!("; {verb} {n} record(s) past retention"));
        }
        s
    }
}

/// Judges every per-pid anchor in the state dir; removes stale ones unless `dry_run`.
pub fn reap_anchors(paths: &ProjectPaths, probe: &dyn Probe, dry_run: bool) -> Result<Report> {
    reap_anchors_with_progress(paths, probe, dry_run, &|_| {})
}

/// [`reap_anchors`], calling `progress` with the number of entries examined so far.
pub fn reap_anchors_with_progress(
    paths: &ProjectPaths,
    probe: &dyn Probe,
    dry_run: bool,
    progress: &dyn Fn(usize),
) -> Result<Report> {
    let mut report = Report {
        dry_run,
        ..Report::default()
    };
    let entries = match fs::read_dir(&paths.state_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(report),
        Err(e) => {
            return Err(anyhow::anyhow!(
                "cannot list {}: {e}; check permissions of the state dir",
                paths.state_dir.display()
            ))
        }
    };
    for (seen, entry) in entries.flatten().enumerate() {
        progress(seen + 1);
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(anchor::parse_anchor_name) else {
            report.ignored += 1;
            continue;
        };
        let path = entry.path();
        // Never follow or delete through a symlink; it may point out of the state dir.
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() || !m.is_file() => {
                report.ignored += 1;
                continue;
            }
            Ok(_) => {}
            Err(_) => continue, // a sibling reaper removed it first
        }
        let reason = match anchor::read_anchor(&path) {
            Ok((content, mtime)) => match anchor::judge(pid, &content, mtime, probe) {
                Ok(()) => None,
                Err(r) => Some(r.to_string()),
            },
            Err(e) => {
                if !path.exists() {
                    continue;
                }
                // Corrupt content: stale only if its process is gone; a live agent's
                // anchor is rewritten by its next SessionStart.
                match probe.process(pid) {
                    None => Some(format!("{} (and unreadable: {e:#})", StaleReason::DeadPid)),
                    Some(_) => None,
                }
            }
        };
        match reason {
            None => report.anchors_kept += 1,
            Some(reason) => {
                if !dry_run {
                    match fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(anyhow::anyhow!(
                                "cannot remove stale anchor {}: {e}; check permissions",
                                path.display()
                            ))
                        }
                    }
                }
                report.anchors_reaped.push(Reaped { path, reason });
            }
        }
    }
    report.anchors_reaped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(report)
}

/// Deletes rows whose agent process is provably dead (process gone, pid reused, or host
/// rebooted). Heartbeat-only rows are left: their absence of a process proves nothing.
pub fn reap_rows(store: &Store, probe: &dyn Probe, dry_run: bool) -> Result<Vec<String>> {
    let now = crate::core::clock::now_ms();
    let mut dead = Vec::new();
    let mut abandoned = Vec::new();
    for row in store.all_sessions()? {
        match liveness::verdict(&row, now, probe, Policy::default()) {
            Verdict::DeadProcess | Verdict::Rebooted => dead.push(row),
            // No process to ask (another host, or no agent): silent for a day = gone.
            Verdict::StaleHeartbeat if now - row.heartbeat_ms() > ABANDONED_AFTER_MS => {
                abandoned.push(row)
            }
            _ => {}
        }
    }
    if !dry_run {
        bury(store, &dead)?;
        for r in &abandoned {
            store.end(&r.session_id, "stale (no heartbeat for a day)")?;
        }
    }
    Ok(dead
        .into_iter()
        .chain(abandoned)
        .map(|r| r.session_id)
        .collect())
}

/// Removes rows of confirmed-dead sessions. Their unread messages stay queued for their
/// id (a resumed session gets them) and each sender is told at its next turn.
pub fn bury(store: &Store, dead: &[SessionRow]) -> Result<()> {
    for row in dead {
        for (sender, n) in store.queued_senders(&row.session_id)? {
            store.add_notice(
                &sender,
                &format!(
                    "SA-{} ended (its agent process is gone) before reading {n} message(s) from you; \
                     they stay queued for its id in case it resumes.",
                    row.id8
                ),
            )?;
        }
        let how = match row.local_agent() {
            Some(_) => "killed or crashed (agent process gone, no clean exit)",
            None => "host rebooted",
        };
        store.end(&row.session_id, how)?;
    }
    Ok(())
}

/// Anchors and rows together, as `serve` start and `gc` run it.
pub fn reap(
    paths: &ProjectPaths,
    store: Option<&Store>,
    probe: &dyn Probe,
    dry_run: bool,
) -> Result<Report> {
    reap_with_progress(paths, store, probe, dry_run, &|_| {})
}

/// [`reap`] with a progress callback (entries of the state dir examined).
pub fn reap_with_progress(
    paths: &ProjectPaths,
    store: Option<&Store>,
    probe: &dyn Probe,
    dry_run: bool,
    progress: &dyn Fn(usize),
) -> Result<Report> {
    let mut report = reap_anchors_with_progress(paths, probe, dry_run, progress)?;
    if let Some(store) = store {
        let now = crate::core::clock::now_ms();
        report.rows_reaped = reap_rows(store, probe, dry_run)?;
        report.pruned = store.prune(now, dry_run)?;
        if !dry_run {
            // Claims end with their session: release what the buried rows held now, as
            // any roster snapshot would, so a `gc` leaves nothing of the dead behind.
            let live = liveness::live(store.all_sessions()?, now, probe, Policy::from_env());
            crate::core::claims::expire(store, &live, now)?;
        }
    }
    Ok(report)
}
