//! Every `ORCHESTRATOR_*` setting, read from the environment once and validated.
//!
//! A bad value never stops anything: it falls back to the default, and is kept in
//! [`Settings::problems`] so `doctor` names it with what is accepted (and `serve` logs it
//! once). Hooks stay quiet about it: they run every turn and must not repeat a warning.
//! Identity inputs (`CLAUDE_PID`, session ids, `HOME`, the project root) are not settings.

use crate::core::identity::profile;
use crate::core::{liveness, roster, store};
use std::ffi::OsString;
use std::sync::OnceLock;
use std::time::Duration;

/// Whether live push (`notifications/claude/channel`) is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Only when the client declares the experimental `claude/channel` capability.
    Auto,
    On,
    Off,
}

/// How much `serve` writes to stderr, which Claude Code files under `[ERROR]` whatever it
/// says: warnings and errors always, ordinary lines only when asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Warn,
    Info,
    Debug,
}

/// The settings in effect.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `ORCHESTRATOR_STALE_SECS`: a row whose agent cannot be probed is live this long
    /// after its last heartbeat.
    pub stale_after_ms: i64,
    /// `ORCHESTRATOR_HEARTBEAT_SECS`: how often `serve` refreshes its row.
    pub heartbeat: Duration,
    /// `ORCHESTRATOR_FILE_WINDOW_SECS`: how far back "files touched recently" looks.
    pub files_window_ms: i64,
    /// `ORCHESTRATOR_BUSY_TIMEOUT_MS`: how long a writer waits for another.
    pub busy_timeout: Duration,
    /// `ORCHESTRATOR_FILE_GUARD=ask`: ask instead of deny on a sibling's exclusive claim.
    pub file_guard_ask: bool,
    /// `ORCHESTRATOR_CHANNEL`.
    pub channel: Channel,
    /// `ORCHESTRATOR_AGENT_ROLE`: the role this terminal's session asks for.
    pub agent_role: Option<String>,
    /// `ORCHESTRATOR_AGENT_NAME`: the `@name` this terminal's session takes.
    pub agent_name: Option<String>,
    /// `ORCHESTRATOR_SESSION_KIND`: a free label (at most 32 characters are kept).
    pub session_kind: Option<String>,
    /// `ORCHESTRATOR_WATCH_SECS`: the longest `watch` waits between redraws.
    pub watch_every: Duration,
    /// `ORCHESTRATOR_GUARD_OVERRIDE=1`: the pre-commit guard lets a blocked commit through.
    pub guard_override: bool,
    /// `ORCHESTRATOR_LOG`: how much `serve` says on stderr.
    pub log: LogLevel,
    /// `ORCHESTRATOR_SHARE_PROMPTS=0`: keep prompts private; siblings see only set tasks.
    pub share_prompts: bool,
    /// `ORCHESTRATOR_LEDGER_WATCH=0`: `serve` does not watch the checkout; Bash commands
    /// are attributed from `git status` snapshots.
    pub ledger_watch: bool,
    /// `ORCHESTRATOR_DATABASE_URL`: a PostgreSQL server shared by a fleet (else the
    /// project's `database.url` file, else the SQLite file). Never printed whole.
    pub database_url: Option<String>,
    /// `ORCHESTRATOR_PROJECT_ID`: the project's key on a shared server (else the
    /// repository's root commit).
    pub project_id: Option<String>,
    /// How long connecting to a shared server may take (`connect_timeout` in the URL
    /// overrides it).
    pub connect_timeout: Duration,
    /// Values that were set but not valid (each fell back to its default).
    pub problems: Vec<Problem>,
}

/// A set value that is not valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub name: &'static str,
    /// The value as given, escaped and bounded for printing.
    pub value: String,
    pub accepted: &'static str,
    pub default: &'static str,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}={} is not valid (accepted: {}); using {}",
            self.name, self.value, self.accepted, self.default
        )
    }
}

/// Every setting: name, what it accepts, its default. README lists the same.
pub const KNOWN: &[(&str, &str, &str)] = &[
    (STALE, SECS, "90"),
    (HEARTBEAT, SECS_FRACTION, "30"),
    (FILE_WINDOW, SECS, "900"),
    (BUSY_TIMEOUT, "a whole number of milliseconds > 0", "5000"),
    (FILE_GUARD, "`deny` or `ask`", "deny"),
    (CHANNEL, "`auto`, `on` or `off`", "auto"),
    (AGENT_ROLE, "`prime` or `subordinate`", "subordinate"),
    (AGENT_NAME, NAME_RULE, "no name"),
    (SESSION_KIND, "any text (32 characters kept)", "none"),
    (WATCH, SECS_FRACTION, "2"),
    (GUARD_OVERRIDE, "`1` (or `0`)", "0"),
    (LOG, "`warn`, `info` or `debug`", "warn"),
    (SHARE_PROMPTS, "`1` or `0`", "1"),
    (LEDGER_WATCH, "`1` or `0`", "1"),
    (
        DATABASE_URL,
        "`postgres://user:password@host:port/database`",
        "SQLite file",
    ),
    (PROJECT_ID, "any text (128 characters kept)", "root commit"),
];

const STALE: &str = "ORCHESTRATOR_STALE_SECS";
const HEARTBEAT: &str = "ORCHESTRATOR_HEARTBEAT_SECS";
const FILE_WINDOW: &str = "ORCHESTRATOR_FILE_WINDOW_SECS";
const BUSY_TIMEOUT: &str = "ORCHESTRATOR_BUSY_TIMEOUT_MS";
const FILE_GUARD: &str = "ORCHESTRATOR_FILE_GUARD";
const CHANNEL: &str = "ORCHESTRATOR_CHANNEL";
const AGENT_ROLE: &str = "ORCHESTRATOR_AGENT_ROLE";
const AGENT_NAME: &str = "ORCHESTRATOR_AGENT_NAME";
const SESSION_KIND: &str = "ORCHESTRATOR_SESSION_KIND";
const WATCH: &str = "ORCHESTRATOR_WATCH_SECS";
const GUARD_OVERRIDE: &str = "ORCHESTRATOR_GUARD_OVERRIDE";
const LOG: &str = "ORCHESTRATOR_LOG";
const SHARE_PROMPTS: &str = "ORCHESTRATOR_SHARE_PROMPTS";
const LEDGER_WATCH: &str = "ORCHESTRATOR_LEDGER_WATCH";
const DATABASE_URL: &str = "ORCHESTRATOR_DATABASE_URL";
const PROJECT_ID: &str = "ORCHESTRATOR_PROJECT_ID";
/// Not settings but expected `ORCHESTRATOR_*` names: where the project is, and the binary
/// the plugin's shim runs.
const OTHER_NAMES: &[&str] = &["ORCHESTRATOR_PROJECT_ROOT", "ORCHESTRATOR_BIN"];

const SECS: &str = "a whole number of seconds > 0";
const SECS_FRACTION: &str = "a number of seconds > 0, e.g. 30 or 0.5";
const NAME_RULE: &str = "1-32 characters of [A-Za-z0-9_.-], not a reserved address";

/// This process's settings, read on first use.
pub fn get() -> &'static Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    SETTINGS.get_or_init(|| Settings::from_lookup(|k| std::env::var_os(k)))
}

/// `ORCHESTRATOR_*` names in the environment that are neither a setting nor the project
/// root: likely typos, which would otherwise be ignored without a word.
pub fn unknown_names() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("ORCHESTRATOR_"))
        .filter(|k| !OTHER_NAMES.contains(&k.as_str()) && !KNOWN.iter().any(|(n, _, _)| n == k))
        .collect()
}

impl Settings {
    /// Reads and validates every setting through `lookup` (the environment, or a test's map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Self {
        let mut r = Reader {
            lookup: &lookup,
            problems: Vec::new(),
        };
        let secs = |v: &str| v.parse::<i64>().ok().filter(|s| *s > 0);
        let secs_fraction = |v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
                .map(Duration::from_secs_f64)
        };
        let stale = r.read(STALE, secs);
        let heartbeat = r.read(HEARTBEAT, secs_fraction);
        let window = r.read(FILE_WINDOW, secs);
        let busy = r.read(BUSY_TIMEOUT, |v| {
            v.parse::<u64>()
                .ok()
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis)
        });
        let guard = r.read(FILE_GUARD, |v| match v {
            "ask" => Some(true),
            "deny" => Some(false),
            _ => None,
        });
        let channel = r.read(CHANNEL, |v| match v {
            "auto" => Some(Channel::Auto),
            "on" | "always" => Some(Channel::On),
            "off" | "never" => Some(Channel::Off),
            _ => None,
        });
        let role = r.read(AGENT_ROLE, |v| {
            matches!(v, "prime" | "subordinate").then(|| v.to_string())
        });
        let name = r.read(AGENT_NAME, |v| {
            profile::validate_name(v).ok().map(|()| v.to_string())
        });
        let kind = r.read(SESSION_KIND, |v| Some(v.chars().take(32).collect()));
        let watch = r.read(WATCH, secs_fraction);
        let flag = |v: &str| match v {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        };
        let guard_override = r.read(GUARD_OVERRIDE, flag);
        let share_prompts = r.read(SHARE_PROMPTS, flag);
        let log = r.read(LOG, |v| match v.to_ascii_lowercase().as_str() {
            "warn" | "warning" | "error" | "off" => Some(LogLevel::Warn),
            "info" => Some(LogLevel::Info),
            "debug" | "trace" => Some(LogLevel::Debug),
            _ => None,
        });
        let ledger_watch = r.read(LEDGER_WATCH, flag);
        let database_url = r.read(DATABASE_URL, |v| Some(v.to_string()));
        let project_id = r.read(PROJECT_ID, |v| Some(v.chars().take(128).collect()));
        Self {
            stale_after_ms: stale.map_or(liveness::STALE_AFTER_MS, |s| s * 1000),
            heartbeat: heartbeat.unwrap_or(Duration::from_secs(30)),
            files_window_ms: window.map_or(roster::FILES_WINDOW_MS, |s| s * 1000),
            busy_timeout: busy.unwrap_or(store::BUSY_TIMEOUT),
            file_guard_ask: guard.unwrap_or(false),
            channel: channel.unwrap_or(Channel::Auto),
            agent_role: role,
            agent_name: name,
            session_kind: kind,
            watch_every: watch.unwrap_or(Duration::from_secs(2)),
            guard_override: guard_override.unwrap_or(false),
            log: log.unwrap_or(LogLevel::Warn),
            share_prompts: share_prompts.unwrap_or(true),
            ledger_watch: ledger_watch.unwrap_or(true),
            database_url,
            project_id,
            connect_timeout: Duration::from_secs(2),
            problems: r.problems,
        }
    }
}

struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<OsString>,
    problems: Vec<Problem>,
}

impl Reader<'_> {
    /// The parsed value of `name`; `None` when unset, empty or invalid (then noted).
    fn read<T>(&mut self, name: &'static str, parse: impl Fn(&str) -> Option<T>) -> Option<T> {
        let raw = (self.lookup)(name)?;
        let text = raw.to_str().map(str::trim);
        if text == Some("") {
            return None;
        }
        if let Some(v) = text.and_then(&parse) {
            return Some(v);
        }
        let (accepted, default) = KNOWN
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, a, d)| (*a, *d))
            .unwrap_or(("?", "the default"));
        let shown: String = raw.to_string_lossy().chars().take(64).collect();
        self.problems.push(Problem {
            name,
            value: format!("{shown:?}"),
            accepted,
            default,
        });
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)]) -> Settings {
        let m: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Settings::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_when_unset_or_empty() {
        let s = with(&[(STALE, ""), (CHANNEL, "  ")]);
        assert!(s.problems.is_empty());
        assert_eq!(s.stale_after_ms, 90_000);
        assert_eq!(s.heartbeat, Duration::from_secs(30));
        assert_eq!(s.files_window_ms, 900_000);
        assert_eq!(s.busy_timeout, Duration::from_secs(5));
        assert!(!s.file_guard_ask && !s.guard_override);
        assert_eq!(s.channel, Channel::Auto);
        assert_eq!(s.watch_every, Duration::from_secs(2));
        assert_eq!(s.log, LogLevel::Warn);
    }

    #[test]
    fn valid_values_are_taken() {
        let s = with(&[
            (STALE, "10"),
            (HEARTBEAT, "0.3"),
            (FILE_GUARD, "ask"),
            (CHANNEL, "off"),
            (AGENT_ROLE, "prime"),
            (AGENT_NAME, "rev-1"),
            (SESSION_KIND, &"k".repeat(40)),
            (GUARD_OVERRIDE, "1"),
            (LOG, "Debug"),
        ]);
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert_eq!(s.log, LogLevel::Debug);
        assert_eq!(s.stale_after_ms, 10_000);
        assert_eq!(s.heartbeat, Duration::from_millis(300));
        assert!(s.file_guard_ask && s.guard_override);
        assert_eq!(s.channel, Channel::Off);
        assert_eq!(s.agent_role.as_deref(), Some("prime"));
        assert_eq!(s.agent_name.as_deref(), Some("rev-1"));
        assert_eq!(s.session_kind.map(|k| k.len()), Some(32));
    }

    #[test]
    fn invalid_values_fall_back_and_are_named() {
        let s = with(&[
            (STALE, "ninety"),
            (HEARTBEAT, "-1"),
            (FILE_WINDOW, "0"),
            (BUSY_TIMEOUT, "1e3"),
            (FILE_GUARD, "warn"),
            (CHANNEL, "yes"),
            (AGENT_ROLE, "boss"),
            (AGENT_NAME, "all"),
            (WATCH, "NaN"),
            (GUARD_OVERRIDE, "true\u{1b}[2J"),
            (LOG, "loud"),
        ]);
        assert_eq!(s.stale_after_ms, 90_000);
        assert_eq!(s.channel, Channel::Auto);
        assert_eq!(s.agent_role, None);
        assert_eq!(s.agent_name, None);
        let names: Vec<&str> = s.problems.iter().map(|p| p.name).collect();
        assert_eq!(names.len(), 11, "{names:?}");
        let line = s.problems[0].to_string();
        assert!(
            line.contains(STALE) && line.contains("\"ninety\"") && line.contains("using 90"),
            "{line}"
        );
        // Printed escaped: no raw control characters reach a terminal.
        assert!(s.problems.iter().all(|p| !p.value.contains('\u{1b}')));
    }

    #[test]
    fn readme_lists_exactly_these() {
        let readme = include_str!("../../README.md");
        for (name, _, _) in KNOWN {
            assert!(readme.contains(name), "README does not list {name}");
        }
        for (i, _) in readme.match_indices("ORCHESTRATOR_") {
            let name: String = readme[i..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            assert!(
                OTHER_NAMES.contains(&name.as_str()) || KNOWN.iter().any(|(n, _, _)| *n == name),
                "README names {name}, which settings.rs does not know"
            );
        }
    }
}
