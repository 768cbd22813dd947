//! The engine every front door shares: paths, identity, store, liveness, hygiene, render.

pub mod address;
pub mod claims;
pub mod clock;
pub mod doorbell;
pub mod fleet;
pub mod fswatch;
pub mod gist;
pub mod hazards;
pub mod hygiene;
pub mod identity;
pub mod ledger;
pub mod liveness;
pub mod log;
pub mod mailbox;
pub mod paths;
pub mod private_fs;
pub mod render;
pub mod repo;
pub mod roles;
pub mod roster;
pub mod settings;
pub mod shell;
pub mod store;
pub mod text;
pub mod treewatch;
pub mod wake;
