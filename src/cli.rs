//! Command-line dispatch only: parse arguments, call the room that does the work.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "orchestrator",
    version,
    about = "Lets concurrent AI coding-agent sessions on one project see, message and stay out of each other's way"
)]
struct Cli {
    /// The project (any directory in it; a git repository's worktrees share one registry).
    /// Default: ORCHESTRATOR_PROJECT_ROOT, else CLAUDE_PROJECT_DIR, else the enclosing
    /// repository or registry of the working directory.
    #[arg(long, global = true, value_name = "DIR")]
    project: Option<std::path::PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the MCP server over stdio (what Claude Code starts for each session).
    ///
    /// Writes only warnings and errors to stderr (Claude Code logs every stderr line of a
    /// server as an error); ORCHESTRATOR_LOG=info or debug adds the ordinary ones.
    Serve,
    /// Answer a Claude Code hook: reads the hook JSON on stdin, prints the JSON answer.
    Hook {
        /// The hook event: SessionStart, UserPromptSubmit, PreToolUse, PostToolUse, Stop,
        /// StopFailure, PreCompact or SessionEnd (Gemini CLI: BeforeAgent, BeforeTool, ...).
        event: String,
        /// The CLI running the hook: claude, codex or gemini (default: detected).
        #[arg(long)]
        agent: Option<String>,
    },
    /// Wait in the background until mail is due for this idle session, print it and exit 2
    /// (an `asyncRewake` hook for sessions without a doorbell; reads the hook JSON on stdin).
    Wait {
        /// Exit 0 after this many seconds (keep it under the hook's timeout).
        #[arg(long, default_value_t = crate::hooks::wait::DEFAULT_MAX_SECS)]
        max_secs: u64,
    },
    /// Show the live sessions of this project.
    Status {
        /// Print JSON for scripts (one object per session, with liveness and files).
        #[arg(long)]
        json: bool,
        /// Include rows that are no longer live, with why.
        #[arg(long)]
        all: bool,
    },
    /// Live full-screen view of sessions, messages and file overlaps (q quits); plain
    /// periodic output when stdout is not a terminal.
    Watch,
    /// Remove stale anchors and rows of dead sessions.
    Gc {
        /// Report what would be removed without removing it.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Explain identity, anchors, rows and database health; non-zero exit when something is wrong.
    Doctor,
    /// Move a damaged database aside (kept as a timestamped .bak) and rebuild it with
    /// every row still readable.
    Repair,
    /// Send a message as `human` to @SA-<id8>, @<name>, @PA or @all.
    Send {
        /// Recipient address(es), e.g. @all or @SA-1a2b3c4d,@reviewer.
        to: String,
        /// The message text (several words are joined with spaces).
        body: Vec<String>,
        /// Queue for a session that is not live now (it may resume).
        #[arg(long)]
        queue: bool,
    },
    /// Claim files or globs for a session (exclusive: siblings' edits there are refused).
    Claim {
        /// The session to claim for, e.g. SA-1a2b3c4d (default: the one this terminal's
        /// agent runs).
        #[arg(long)]
        session: Option<String>,
        /// Exclusive: a sibling's Edit/Write there is denied (or asked, with
        /// ORCHESTRATOR_FILE_GUARD=ask) and the pre-commit guard refuses commits there.
        /// Without it the claim is advisory: siblings are told, not stopped.
        #[arg(long)]
        exclusive: bool,
        /// Upper bound on the claim's life, e.g. 30m, 2h.
        #[arg(long)]
        ttl: Option<String>,
        /// Why, shown to siblings.
        #[arg(long)]
        reason: Option<String>,
        /// Only in this git worktree (default: every worktree of the repository).
        #[arg(long)]
        worktree: bool,
        /// Files, directories or globs relative to the project root, e.g. src/parser.rs
        /// 'src/parser/**' (quote globs so the shell leaves them alone).
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Release a session's claims (the named ones, or all).
    Release {
        /// The session whose claims to release, e.g. SA-1a2b3c4d (default: the one this
        /// terminal's agent runs).
        #[arg(long)]
        session: Option<String>,
        /// The claimed patterns to release, as they were claimed (default: all of them).
        paths: Vec<String>,
    },
    /// List live claims.
    Claims {
        /// Print JSON for scripts: an array of claims (session, pattern, exclusive, reason,
        /// times).
        #[arg(long)]
        json: bool,
    },
    /// The git pre-commit guard for exclusive claims.
    Guard {
        #[command(subcommand)]
        action: GuardCmd,
    },
    /// Make a live session the prime (@PA), taking the role from whoever holds it.
    Takeover {
        /// The session, e.g. @SA-1a2b3c4d or @name.
        to: String,
    },
    /// Wire the hooks and MCP server into a project's Claude Code settings, or yours.
    ///
    /// Default: the project's .claude/settings.json (hooks) and .mcp.json (MCP server),
    /// which the team shares: the command written is `orchestrator`, found on each person's
    /// PATH. Claude Code asks each person once to approve the project's MCP server. With
    /// --user: your own ~/.claude/settings.json and ~/.claude.json, for every project you
    /// open. Idempotent; prints a diff; backs up what it changes under
    /// ${XDG_STATE_HOME:-~/.local/state}/orchestrator/backups.
    Install {
        /// Project directory (default: the project root).
        #[arg(long, conflicts_with = "user")]
        project: Option<std::path::PathBuf>,
        /// Install for you alone, in every project (Claude Code's user scope; no
        /// per-project approval of the MCP server).
        #[arg(long)]
        user: bool,
        /// Write this binary's absolute path instead of the bare `orchestrator` (for a
        /// binary not on PATH; do not commit such a path for a team).
        #[arg(long)]
        absolute: bool,
        /// Print the changes (a diff with context) without writing them.
        #[arg(long)]
        dry_run: bool,
        /// Wire Claude Code (the default when no CLI is named).
        #[arg(long)]
        claude: bool,
        /// Wire OpenAI's Codex CLI (.codex/hooks.json, .codex/config.toml).
        #[arg(long)]
        codex: bool,
        /// Wire Google's Gemini CLI (.gemini/settings.json).
        #[arg(long)]
        gemini: bool,
        /// Keep this project's registry on a shared PostgreSQL server
        /// (`postgres://user:password@host:port/database`; `sslmode=verify-full` for TLS).
        /// Written to the private state dir, not to files you commit; "" forgets it.
        #[arg(long, value_name = "URL", conflicts_with = "user")]
        database_url: Option<String>,
    },
    /// Take out exactly what `install` put in; other hooks, servers and settings stay.
    ///
    /// Backs up what it changes as install does; a project file left empty is removed.
    Uninstall {
        /// Project directory (default: the project root).
        #[arg(long, conflicts_with = "user")]
        project: Option<std::path::PathBuf>,
        /// Remove it from your user settings (what `install --user` wrote).
        #[arg(long)]
        user: bool,
        /// Print the changes without writing them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run three simulated agent sessions in a temporary project and show what each is told.
    Demo,
}

#[derive(Subcommand)]
enum GuardCmd {
    /// Install the pre-commit hook in this project's git repository.
    Install,
    /// Run the check (what the installed hook calls).
    PreCommit,
}

/// The top-level help's closing part: every setting, from the settings module's list.
fn settings_help() -> String {
    let mut text = String::from(
        "Settings (environment; an invalid value falls back to the default, `orchestrator \
         doctor` names it):\n",
    );
    for (name, accepted, default) in crate::core::settings::KNOWN {
        text.push_str(&format!(
            "  {name}\n      {accepted} (default: {default})\n"
        ));
    }
    text.push_str(
        "\nThe project is ORCHESTRATOR_PROJECT_ROOT, else CLAUDE_PROJECT_DIR, else the working \
         directory.\nThe plugin's shim runs ORCHESTRATOR_BIN when set, else `orchestrator` \
         from $CARGO_HOME/bin, ~/.cargo/bin or PATH.",
    );
    text
}

/// Parses arguments (clap exits on --help, --version and usage errors).
fn parse() -> Cli {
    let matches = Cli::command()
        .after_long_help(settings_help())
        .after_help("Environment settings: `orchestrator --help` lists them.")
        .get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Parses arguments and runs the command; returns the process exit code.
pub fn run() -> i32 {
    let cli = parse();
    if let Some(dir) = cli.project.as_ref() {
        // The one place the project is chosen for this process: every room resolves it
        // through ProjectPaths::resolve, which reads this first.
        // SAFETY: set before any other thread exists (the runtime starts later).
        unsafe { std::env::set_var("ORCHESTRATOR_PROJECT_ROOT", dir) };
    }
    if !matches!(cli.cmd, Cmd::Hook { .. } | Cmd::Serve | Cmd::Wait { .. }) {
        // People pipe these into `head`; die quietly on a closed pipe like other Unix
        // tools. Not for serve/hook: they must clean up or answer whatever happens.
        // SAFETY: setting a signal disposition to the default has no preconditions.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let result = match cli.cmd {
        Cmd::Hook { event, agent } => return crate::hooks::run_as(&event, agent.as_deref()),
        Cmd::Serve => crate::mcp::run(),
        Cmd::Wait { max_secs } => return crate::hooks::wait::run(max_secs),
        Cmd::Status { json, all } => crate::human::status::run(json, all),
        Cmd::Watch => crate::human::watch::run(),
        Cmd::Gc { dry_run, json } => crate::human::gc::run(dry_run, json),
        Cmd::Doctor => crate::human::doctor::run(),
        Cmd::Repair => crate::human::repair::run(),
        Cmd::Send { to, body, queue } => crate::human::send::run(&to, &body.join(" "), queue),
        Cmd::Claim {
            session,
            exclusive,
            ttl,
            reason,
            worktree,
            paths,
        } => crate::human::claims::claim(
            &crate::human::claims::ClaimOpts {
                session: session.as_deref(),
                exclusive,
                ttl: ttl.as_deref(),
                reason: reason.as_deref(),
                worktree_only: worktree,
            },
            &paths,
        ),
        Cmd::Release { session, paths } => {
            crate::human::claims::release(session.as_deref(), &paths)
        }
        Cmd::Claims { json } => crate::human::claims::list(json),
        Cmd::Guard {
            action: GuardCmd::Install,
        } => crate::human::claims::guard_install(),
        Cmd::Guard {
            action: GuardCmd::PreCommit,
        } => crate::human::claims::guard_pre_commit(),
        Cmd::Takeover { to } => crate::human::send::takeover(&to),
        Cmd::Install {
            project,
            user,
            absolute,
            dry_run,
            claude,
            codex,
            gemini,
            database_url,
        } => database_url
            .map_or(Ok(()), |url| {
                crate::human::install::set_database_url(project.as_deref(), &url, dry_run)
            })
            .and_then(|()| {
                crate::human::install_hooks::run_for(
                    &crate::human::install::Options {
                        project: project.as_deref(),
                        user,
                        absolute,
                        dry_run,
                    },
                    claude,
                    codex,
                    gemini,
                )
            }),
        Cmd::Uninstall {
            project,
            user,
            dry_run,
        } => crate::human::install::uninstall(&crate::human::install::Options {
            project: project.as_deref(),
            user,
            absolute: false,
            dry_run,
        }),
        Cmd::Demo => crate::human::demo::run(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("orchestrator: {e:#}");
            2
        }
    }
}
