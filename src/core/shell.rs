//! A cheap look at a shell command line: its simple commands and their command words.
//! Used to spot git invocations that move the tree and to skip the working-tree ledger
//! for commands that can only read. Anything it cannot be sure of counts as a write.

/// The simple commands of `line`, split at `; & | ( )` and newlines, each as words with
/// surrounding quotes trimmed.
pub fn segments(line: &str) -> Vec<Vec<String>> {
    line.split(['\n', ';', '|', '&', '(', ')'])
        .map(|seg| {
            seg.split_whitespace()
                .map(|w| w.trim_matches(|c| c == '"' || c == '\'').to_string())
                .collect::<Vec<_>>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Index of the command word in `words`: past `VAR=value` assignments and wrappers that
/// run their argument (`sudo`, `env`, `command`, `exec`, `time`, `nice`, `nohup`).
pub fn command_word(words: &[String]) -> Option<usize> {
    let mut i = 0;
    while let Some(w) = words.get(i) {
        let assignment = w.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_')
        });
        let wrapper = matches!(
            w.as_str(),
            "sudo" | "env" | "command" | "exec" | "time" | "nice" | "nohup"
        );
        if assignment || wrapper {
            i += 1;
        } else {
            return Some(i);
        }
    }
    None
}

/// Programs that only read files whatever their arguments (output redirection is checked
/// separately). Deliberately short: `sort -o`, `find -delete`, `sed -i` and build tools
/// write, so they are not here.
const READERS: &[&str] = &[
    "ls", "cat", "head", "tail", "wc", "grep", "egrep", "fgrep", "rg", "pwd", "echo", "printf",
    "which", "type", "file", "stat", "du", "df", "diff", "cmp", "date", "whoami", "id", "true",
    "false", "test", "[", "basename", "dirname", "realpath", "readlink", "nproc", "uname", "cd",
];

/// Git subcommands that neither write the working tree nor move HEAD.
const GIT_READERS: &[&str] = &[
    "status",
    "diff",
    "log",
    "show",
    "rev-parse",
    "ls-files",
    "blame",
    "grep",
    "describe",
    "shortlog",
    "cat-file",
    "ls-tree",
];

/// Redirections that write nowhere in the tree.
const HARMLESS_REDIRECTS: &[&str] = &[
    "2>&1",
    "1>&2",
    ">&2",
    "&>/dev/null",
    "2>/dev/null",
    ">/dev/null",
];

/// True only when every simple command in `line` is a known reader, with no output
/// redirection into a file and no command substitution.
pub fn read_only(line: &str) -> bool {
    let mut rest = line.to_string();
    for r in HARMLESS_REDIRECTS {
        rest = rest.replace(r, " ");
    }
    if rest.contains('>') || rest.contains('`') || rest.contains("$(") || rest.contains("<(") {
        return false;
    }
    let segs = segments(&rest);
    !segs.is_empty()
        && segs.iter().all(|words| {
            let Some(i) = command_word(words) else {
                return true;
            };
            let prog = words[i].rsplit('/').next().unwrap_or("");
            if prog == "git" {
                return git_reads(&words[i + 1..]);
            }
            READERS.contains(&prog)
        })
}

/// `git <args>` with a read-only subcommand and no option that writes a file.
fn git_reads(args: &[String]) -> bool {
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') {
        if matches!(args[i].as_str(), "-C" | "-c" | "--git-dir" | "--work-tree") {
            i += 1;
        }
        i += 1;
    }
    let Some(sub) = args.get(i) else { return false };
    GIT_READERS.contains(&sub.as_str()) && !args.iter().any(|a| a.starts_with("--output"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_and_writers() {
        for c in [
            "ls -la src",
            "cat src/a.rs | head -20",
            "grep -rn foo src 2>/dev/null | wc -l",
            "git status",
            "git -C sub diff --stat && git log --oneline -5",
            "rg 'fn main' src; echo done",
            "cd sub && ls",
            "LC_ALL=C grep x y",
        ] {
            assert!(read_only(c), "{c}");
        }
        for c in [
            "sed -i s/a/b/ src/a.rs",
            "echo hi > src/a.rs",
            "cat a >> b",
            "ls $(touch x)",
            "grep x `rm y`",
            "git checkout main",
            "git diff --output=patch.diff",
            "git",
            "cargo build",
            "find . -delete",
            "ls; python gen.py",
            "sort -o a.txt a.txt",
            "sudo rm -rf build",
            "",
        ] {
            assert!(!read_only(c), "{c}");
        }
    }

    #[test]
    fn command_word_skips_assignments_and_wrappers() {
        let w = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(command_word(&w("A=1 B=2 git status")), Some(2));
        assert_eq!(command_word(&w("sudo env X=1 git pull")), Some(3));
        assert_eq!(command_word(&w("echo git checkout")), Some(0));
        assert_eq!(command_word(&w("X=1")), None);
    }
}
