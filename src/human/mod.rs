//! Commands for the person running the fleet.

pub mod claims;
pub mod demo;
pub mod doctor;
pub mod gc;
pub mod install;
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
