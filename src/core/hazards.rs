//! Shell commands that move a checkout shared with sibling sessions, or pull a worktree or
//! branch out from under one.

use crate::core::shell;
use std::path::PathBuf;

/// One git invocation in a command line: the words from `git` on, and the index of its
/// subcommand.
struct GitCall<'a> {
    words: &'a [String],
    sub: usize,
    /// Where it runs, relative to the command line's starting directory: the `cd`s
    /// before it and its own `-C` options.
    dir: PathBuf,
}

impl GitCall<'_> {
    fn sub(&self) -> &str {
        &self.words[self.sub]
    }

    fn args(&self) -> &[String] {
        &self.words[self.sub + 1..]
    }

    fn text(&self) -> String {
        self.words.join(" ")
    }
}

/// Every git invocation in `command`, with global options skipped.
fn git_calls(segments: &[Vec<String>]) -> Vec<GitCall<'_>> {
    let mut out = Vec::new();
    let mut cwd = PathBuf::new();
    for words in segments {
        let Some(g) = shell::command_word(words) else {
            continue;
        };
        if words[g] == "cd" {
            // `cd`, `cd -` and `cd ~` go where this cannot follow: the start is a guess.
            match words.get(g + 1).map(String::as_str) {
                Some(d) if d != "-" && !d.starts_with('~') => cwd = cwd.join(d),
                _ => {}
            }
            continue;
        }
        if !(words[g] == "git" || words[g].ends_with("/git")) {
            continue;
        }
        let mut dir = cwd.clone();
        let mut i = g + 1;
        while i < words.len() && words[i].starts_with('-') {
            if words[i] == "-C" {
                if let Some(d) = words.get(i + 1) {
                    dir = dir.join(d);
                }
            }
            if matches!(words[i].as_str(), "-C" | "-c" | "--git-dir" | "--work-tree") {
                i += 1;
            }
            i += 1;
        }
        if i < words.len() {
            out.push(GitCall {
                words: &words[g..],
                sub: i - g,
                dir,
            });
        }
    }
    out
}

/// If `command` runs a git operation that rewrites the working tree it runs in, the
/// offending git invocation (for the warning text).
pub fn tree_mover(command: &str) -> Option<String> {
    tree_mover_in(command).map(|(git, _)| git)
}

/// [`tree_mover`] with the directory that git call moves, relative to where the command
/// line starts (`cd x && git stash`, `git -C x reset --hard`: `x`).
pub fn tree_mover_in(command: &str) -> Option<(String, PathBuf)> {
    let segs = shell::segments(command);
    git_calls(&segs).into_iter().find_map(|c| {
        let args = c.args();
        let has = |f: &[&str]| args.iter().any(|a| f.contains(&a.as_str()));
        let hazardous = match c.sub() {
            "checkout" | "switch" | "rebase" | "merge" | "pull" | "restore" => true,
            "stash" => !matches!(args.first().map(String::as_str), Some("list" | "show")),
            "reset" => has(&["--hard", "--merge", "--keep"]),
            "clean" => args.iter().any(|a| {
                a == "--force" || (a.starts_with('-') && !a.starts_with("--") && a.contains('f'))
            }),
            _ => false,
        };
        hazardous.then(|| (c.text(), c.dir.clone()))
    })
}

/// What a git command does to worktrees and branches other sessions may be using.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pull {
    /// `git worktree remove <path>`.
    RemoveWorktree { path: String, git: String },
    /// `git worktree prune`: drops worktrees whose directory is gone.
    PruneWorktrees { git: String },
    /// `git branch -d/-D/-f/-m/-M <name>`: deletes, force-moves or renames a branch.
    Branch { name: String, git: String },
}

/// Worktree removals and branch deletions/moves in `command`.
pub fn pulls(command: &str) -> Vec<Pull> {
    let segs = shell::segments(command);
    let mut out = Vec::new();
    for c in git_calls(&segs) {
        let args = c.args();
        let positional: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
        match c.sub() {
            "worktree" => match args.first().map(String::as_str) {
                Some("remove") => {
                    if let Some(p) = positional.get(1) {
                        out.push(Pull::RemoveWorktree {
                            path: p.to_string(),
                            git: c.text(),
                        });
                    }
                }
                Some("prune") => out.push(Pull::PruneWorktrees { git: c.text() }),
                _ => {}
            },
            "branch" => {
                let moves = args.iter().any(|a| {
                    matches!(
                        a.as_str(),
                        "-d" | "-D" | "-f" | "-m" | "-M" | "--delete" | "--force" | "--move"
                    ) || (a.starts_with('-')
                        && !a.starts_with("--")
                        && a.contains(['d', 'D', 'f', 'm', 'M']))
                });
                if moves {
                    for name in &positional {
                        out.push(Pull::Branch {
                            name: name.to_string(),
                            git: c.text(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_tree_movers() {
        for c in [
            "git checkout -b x",
            "git switch main",
            "git reset --hard HEAD~1",
            "git stash",
            "git stash pop",
            "git rebase -i main",
            "git merge feature",
            "git pull --rebase",
            "git clean -fd",
            "cd sub && git -C .. checkout main",
            "echo hi; git restore src/a.rs",
            "GIT_EDITOR=true git rebase --continue",
            "sudo git clean -fdx",
        ] {
            assert!(tree_mover(c).is_some(), "{c}");
        }
        for c in [
            "git status",
            "git diff",
            "git reset --soft HEAD~1",
            "git stash list",
            "git clean -n",
            "git log --oneline",
            "cargo test",
            "echo git checkout",
            "grep -rn 'git reset --hard' docs",
        ] {
            assert!(tree_mover(c).is_none(), "{c}");
        }
    }

    #[test]
    fn recognises_worktree_and_branch_pulls() {
        assert_eq!(
            pulls("git worktree remove --force .claude/worktrees/feat"),
            vec![Pull::RemoveWorktree {
                path: ".claude/worktrees/feat".into(),
                git: "git worktree remove --force .claude/worktrees/feat".into()
            }]
        );
        assert!(matches!(
            pulls("cd x && git worktree prune").as_slice(),
            [Pull::PruneWorktrees { .. }]
        ));
        for c in [
            "git branch -D feat",
            "git branch -f feat main",
            "git branch --delete feat",
        ] {
            assert!(
                pulls(c)
                    .iter()
                    .any(|p| matches!(p, Pull::Branch { name, .. } if name == "feat")),
                "{c}"
            );
        }
        for c in [
            "git branch",
            "git branch -a",
            "git branch new-one",
            "git worktree list",
        ] {
            assert!(pulls(c).is_empty(), "{c}");
        }
        assert!(tree_mover("git worktree remove ../wt").is_none());
    }

    #[test]
    fn a_tree_mover_knows_the_directory_it_moves() {
        for (c, dir) in [
            ("git stash", ""),
            ("git -C wt/feat stash", "wt/feat"),
            ("cd wt && git -C feat reset --hard", "wt/feat"),
            ("cd /abs/wt; git checkout main", "/abs/wt"),
            ("cd - && git stash", ""),
        ] {
            assert_eq!(
                tree_mover_in(c).map(|(_, d)| d),
                Some(PathBuf::from(dir)),
                "{c}"
            );
        }
    }
}
