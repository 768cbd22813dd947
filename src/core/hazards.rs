//! Shell commands that move a checkout shared with sibling sessions.

use crate::core::shell;

/// If `command` runs a git operation that rewrites the shared working tree, the
/// offending git invocation (for the warning text).
pub fn tree_mover(command: &str) -> Option<String> {
    for words in shell::segments(command) {
        let Some(g) = shell::command_word(&words) else {
            continue;
        };
        if !(words[g] == "git" || words[g].ends_with("/git")) {
            continue;
        }
        let mut i = g + 1;
        // Skip git's global options.
        while i < words.len() && words[i].starts_with('-') {
            if matches!(words[i].as_str(), "-C" | "-c" | "--git-dir" | "--work-tree") {
                i += 1;
            }
            i += 1;
        }
        let Some(sub) = words.get(i) else { continue };
        let args = &words[i + 1..];
        let has = |f: &[&str]| args.iter().any(|a| f.contains(&a.as_str()));
        let hazardous = match sub.as_str() {
            "checkout" | "switch" | "rebase" | "merge" | "pull" | "restore" => true,
            "stash" => !matches!(args.first().map(String::as_str), Some("list" | "show")),
            "reset" => has(&["--hard", "--merge", "--keep"]),
            "clean" => args.iter().any(|a| {
                a == "--force" || (a.starts_with('-') && !a.starts_with("--") && a.contains('f'))
            }),
            "worktree" => matches!(args.first().map(String::as_str), Some("remove" | "prune")),
            _ => false,
        };
        if hazardous {
            return Some(words[g..].join(" "));
        }
    }
    None
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
            "git worktree remove ../wt",
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
}
