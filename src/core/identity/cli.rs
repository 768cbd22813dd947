//! Which coding-agent CLI a process is: Claude Code (`claude`), OpenAI's Codex CLI
//! (`codex`) or Google's Gemini CLI (`node` running its bundle, `…/gemini.js`).
//!
//! Recognised from `/proc/<pid>/comm`; for `node` processes only, from a bounded read of
//! `/proc/<pid>/cmdline` (the script node runs). Nothing else is read.

use std::io::Read;

/// A coding-agent CLI whose process owns a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentCli {
    Claude,
    Codex,
    Gemini,
}

/// Bytes of `/proc/<pid>/cmdline` read at most (node flags plus the script path).
pub const CMDLINE_CAP: usize = 4096;
/// Arguments of a `node` command line looked at when finding its script.
const MAX_ARGS: usize = 32;

impl AgentCli {
    pub const ALL: [AgentCli; 3] = [AgentCli::Claude, AgentCli::Codex, AgentCli::Gemini];

    /// The name the roster, `status` and the registry use.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentCli::Claude => "claude",
            AgentCli::Codex => "codex",
            AgentCli::Gemini => "gemini",
        }
    }

    pub fn parse(s: &str) -> Option<AgentCli> {
        AgentCli::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// What a person calls it.
    pub fn product(self) -> &'static str {
        match self {
            AgentCli::Claude => "Claude Code",
            AgentCli::Codex => "Codex CLI",
            AgentCli::Gemini => "Gemini CLI",
        }
    }
}

impl std::fmt::Display for AgentCli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The CLI a process named `comm` is, when its name alone says so; `None` for `node`
/// (see [`needs_cmdline`]) and for everything else.
pub fn by_name(comm: &str) -> Option<AgentCli> {
    match comm {
        "claude" | "claude.exe" => Some(AgentCli::Claude),
        "codex" | "codex.exe" => Some(AgentCli::Codex),
        // A self-contained Gemini CLI binary, should one be installed under that name.
        "gemini" => Some(AgentCli::Gemini),
        _ => None,
    }
}

/// Whether a process named `comm` is worth reading the command line of: a JavaScript
/// runtime, which the Gemini CLI runs under.
pub fn needs_cmdline(comm: &str) -> bool {
    matches!(comm, "node" | "nodejs")
}

/// The CLI a process is, from its name and (for `node` only) its command line.
pub fn of_process(pid: i32, comm: &str) -> Option<AgentCli> {
    if let Some(c) = by_name(comm) {
        return Some(c);
    }
    if !needs_cmdline(comm) {
        return None;
    }
    let raw = read_cmdline(pid)?;
    by_cmdline(&raw)
}

/// At most [`CMDLINE_CAP`] bytes of `/proc/<pid>/cmdline` (NUL-separated arguments).
pub fn read_cmdline(pid: i32) -> Option<Vec<u8>> {
    if pid <= 0 {
        return None;
    }
    let f = std::fs::File::open(format!("/proc/{pid}/cmdline")).ok()?;
    let mut buf = Vec::with_capacity(512);
    f.take(CMDLINE_CAP as u64).read_to_end(&mut buf).ok()?;
    Some(buf)
}

/// The CLI a node command line runs: the Gemini CLI when its script is the Gemini bundle
/// (`…/gemini.js`, `…/@google/gemini-cli/…`) or the `gemini` launcher node was started
/// through. The script is node's first argument that is not an option (nor an option's
/// value); `-e`/`-p` code has none.
pub fn by_cmdline(raw: &[u8]) -> Option<AgentCli> {
    let mut args = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .take(MAX_ARGS)
        .skip(1); // node itself
    while let Some(arg) = args.next() {
        let arg = String::from_utf8_lossy(arg);
        if let Some(opt) = arg.strip_prefix('-') {
            if matches!(opt, "e" | "-eval" | "p" | "-print" | "-") {
                return None;
            }
            // Options whose value is the next argument.
            if matches!(
                opt,
                "r" | "-require"
                    | "-import"
                    | "-loader"
                    | "-experimental-loader"
                    | "C"
                    | "-conditions"
                    | "-env-file"
                    | "-title"
                    | "-inspect-port"
            ) {
                args.next();
            }
            continue;
        }
        return is_gemini_script(&arg).then_some(AgentCli::Gemini);
    }
    None
}

fn is_gemini_script(path: &str) -> bool {
    let base = path.rsplit('/').next().unwrap_or(path);
    matches!(base, "gemini.js" | "gemini.mjs" | "gemini")
        || path.contains("/@google/gemini-cli/")
        || path.contains("/gemini-cli/bundle/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(args: &[&str]) -> Vec<u8> {
        let mut v = Vec::new();
        for a in args {
            v.extend_from_slice(a.as_bytes());
            v.push(0);
        }
        v
    }

    #[test]
    fn names() {
        assert_eq!(by_name("claude"), Some(AgentCli::Claude));
        assert_eq!(by_name("codex"), Some(AgentCli::Codex));
        assert_eq!(by_name("node"), None);
        assert_eq!(by_name("bash"), None);
        assert!(needs_cmdline("node") && !needs_cmdline("codex"));
        for c in AgentCli::ALL {
            assert_eq!(AgentCli::parse(c.as_str()), Some(c));
        }
    }

    #[test]
    fn gemini_bundle_under_node() {
        let g = Some(AgentCli::Gemini);
        assert_eq!(
            by_cmdline(&line(&[
                "node",
                "/usr/lib/node_modules/@google/gemini-cli/bundle/gemini.js"
            ])),
            g
        );
        // The relaunched child: node flags before the script, arguments after it.
        assert_eq!(
            by_cmdline(&line(&[
                "/usr/bin/node",
                "--max-old-space-size=8192",
                "--require",
                "/x/preload.js",
                "/home/u/.npm/_npx/1/node_modules/@google/gemini-cli/bundle/gemini.js",
                "--yolo"
            ])),
            g
        );
        // Started through the npm bin link.
        assert_eq!(by_cmdline(&line(&["node", "/usr/local/bin/gemini"])), g);
        // Other node programs, and code given inline, are not agents.
        assert_eq!(
            by_cmdline(&line(&["node", "/srv/app/server.js", "gemini.js"])),
            None
        );
        assert_eq!(
            by_cmdline(&line(&["node", "-e", "require('gemini.js')"])),
            None
        );
        assert_eq!(by_cmdline(&line(&["node"])), None);
        assert_eq!(by_cmdline(b""), None);
        assert_eq!(by_cmdline(&[0xff, 0, 0xfe, 0]), None);
    }

    #[test]
    fn own_process_is_no_agent() {
        let me = std::process::id() as i32;
        assert!(read_cmdline(me).is_some_and(|c| c.len() <= CMDLINE_CAP));
        assert_eq!(read_cmdline(0), None);
    }
}
