//! Command-line dispatch only: parse arguments, call the room that does the work.

use clap::{Parser, Subcommand};

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
    Serve,
    /// Answer a Claude Code hook: reads the hook JSON on stdin, prints the JSON answer.
    Hook {
        /// The hook event, e.g. SessionStart, UserPromptSubmit, PreToolUse (Gemini CLI:
        /// BeforeAgent, BeforeTool, ...).
        event: String,
        /// The CLI running the hook: claude, codex or gemini (default: detected).
        #[arg(long)]
        agent: Option<String>,
    },
    /// Show the live sessions of this project.
    Status {
        /// Print JSON for scripts.
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
        /// The message text.
        body: Vec<String>,
        /// Queue for a session that is not live now (it may resume).
        #[arg(long)]
        queue: bool,
    },
    /// Claim files or globs for a session (exclusive: siblings' edits there are refused).
    Claim {
        /// The session (default: the one this terminal's agent runs).
        #[arg(long)]
        session: Option<String>,
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
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Release a session's claims (the named ones, or all).
    Release {
        #[arg(long)]
        session: Option<String>,
        paths: Vec<String>,
    },
    /// List live claims.
    Claims {
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
    /// Wire the hooks and MCP server into a project (.claude/settings.json, .mcp.json).
    Install {
        /// Project directory (default: the project root).
        #[arg(long)]
        project: Option<std::path::PathBuf>,
        /// Print the changes without writing them.
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

/// Parses arguments and runs the command; returns the process exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    if let Some(dir) = cli.project.as_ref() {
        // The one place the project is chosen for this process: every room resolves it
        // through ProjectPaths::resolve, which reads this first.
        // SAFETY: set before any other thread exists (the runtime starts later).
        unsafe { std::env::set_var("ORCHESTRATOR_PROJECT_ROOT", dir) };
    }
    if !matches!(cli.cmd, Cmd::Hook { .. } | Cmd::Serve) {
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
            dry_run,
            claude,
            codex,
            gemini,
        } => {
            crate::human::install_hooks::run_for(project.as_deref(), dry_run, claude, codex, gemini)
        }
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
