//! `serve`'s stderr. Claude Code files every line a stdio server writes there under
//! `[ERROR] … Server stderr`, so ordinary lines (bound, rebound, shutting down) are written
//! only when `ORCHESTRATOR_LOG` asks (`info`, `debug`); warnings and errors always are.

use crate::core::settings::{self, LogLevel};

/// Something went wrong or needs the person: always written.
pub fn warn(msg: &str) {
    write(msg);
}

/// An ordinary event: written with `ORCHESTRATOR_LOG=info` or `debug`.
pub fn info(msg: &str) {
    if enabled(LogLevel::Info) {
        write(msg);
    }
}

/// Detail for debugging: written with `ORCHESTRATOR_LOG=debug`.
pub fn debug(msg: &str) {
    if enabled(LogLevel::Debug) {
        write(msg);
    }
}

/// True when lines of `level` are written.
pub fn enabled(level: LogLevel) -> bool {
    settings::get().log >= level
}

fn write(msg: &str) {
    eprintln!("[orchestrator] {msg}");
}
