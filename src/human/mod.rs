//! Commands for the person running the fleet.

pub mod claims;
pub mod demo;
pub mod doctor;
pub mod gc;
pub mod install;
pub mod install_codex;
pub mod install_gemini;
pub mod install_hooks;
pub mod plugin_config;
pub mod repair;
pub mod send;
pub mod status;
pub mod watch;

use crate::core::paths::ProjectPaths;
use crate::core::store::{self, Store};
use anyhow::Result;

/// Resolves the project and opens its store with errors that name the fix.
pub fn open() -> Result<(ProjectPaths, Store)> {
    let paths = ProjectPaths::resolve()?;
    let store = Store::open(&paths).map_err(|e| store::describe(e, &paths))?;
    Ok((paths, store))
}

/// For the person's commands that act on sessions (send, takeover, claim, release): the
/// store of a registry that exists. Acting needs a live session, which needs a registry,
/// so a command run in the wrong directory fails saying where it looked and leaves no
/// state dir behind there (which a later walk-up could take for a project's).
pub fn open_registry() -> Result<(ProjectPaths, Store)> {
    let paths = ProjectPaths::resolve()?;
    if !paths.has_registry() {
        anyhow::bail!(
            "no orchestrator registry for {} (none at {} or above): no session runs here. \
             Elsewhere? pass --project DIR",
            crate::core::text::inline(&paths.root.to_string_lossy(), crate::core::text::PATH),
            crate::core::text::inline(&paths.state_dir.to_string_lossy(), crate::core::text::PATH)
        );
    }
    let store = Store::open(&paths).map_err(|e| store::describe(e, &paths))?;
    Ok((paths, store))
}

/// [`open_existing`] without a word when there is no registry.
pub fn open_existing_quietly() -> Result<Option<(ProjectPaths, Store)>> {
    let paths = ProjectPaths::resolve()?;
    if !paths.has_registry() {
        return Ok(None);
    }
    let store = Store::open(&paths).map_err(|e| store::describe(e, &paths))?;
    Ok(Some((paths, store)))
}

/// For commands that only read: the store if this project has a registry, else `None`
/// after saying where we looked — a command that only reads creates nothing.
pub fn open_existing() -> Result<Option<(ProjectPaths, Store)>> {
    let paths = ProjectPaths::resolve()?;
    if !paths.has_registry() {
        eprintln!(
            "no orchestrator registry for {} (none at {} or above); sessions create it when they start. \
             Elsewhere? pass --project DIR",
            crate::core::text::inline(&paths.root.to_string_lossy(), crate::core::text::PATH),
            crate::core::text::inline(&paths.state_dir.to_string_lossy(), crate::core::text::PATH)
        );
        return Ok(None);
    }
    let store = Store::open(&paths).map_err(|e| store::describe(e, &paths))?;
    Ok(Some((paths, store)))
}
