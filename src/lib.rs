//! orchestrator: lets concurrent AI coding-agent sessions on one project see their live
//! siblings, message each other and stay out of each other's files.
//!
//! `core` knows nothing about MCP, hooks or terminals; `hooks`, `mcp` and `human` are the
//! three front doors. See ARCHITECTURE.md for the map.

pub mod cli;
pub mod core;
pub mod hooks;
pub mod human;
pub mod mcp;
