//! What a session is doing when nobody set a task: the gist of its person's latest prompt.
//! Models rarely call `update_session_task` unprompted, so without this the roster says
//! "(no task set)" for everyone and overlap hints have nothing to compare against.

use crate::core::text::inline;

/// Longest gist kept, in characters (an ellipsis marks a cut).
pub const GIST_CHARS: usize = 80;
/// Prompt bytes looked at; the gist comes from the first line anyway.
const SCAN_BYTES: usize = 4096;

/// Prompts that answer the model rather than set work.
const ACKS: &[&str] = &[
    "y",
    "yes",
    "yep",
    "yeah",
    "n",
    "no",
    "nope",
    "ok",
    "okay",
    "k",
    "sure",
    "continue",
    "go",
    "go on",
    "go ahead",
    "proceed",
    "do it",
    "please continue",
    "keep going",
    "next",
    "thanks",
    "thank you",
    "thx",
    "lgtm",
    "done",
    "retry",
    "try again",
    "again",
    "stop",
];

/// The gist of `prompt`, or `None` when the prompt is not a task: only a slash command, a
/// short acknowledgement, or another session's doorbell notice.
pub fn of_prompt(prompt: &str) -> Option<String> {
    let head = match prompt.char_indices().nth(SCAN_BYTES) {
        Some((i, _)) => &prompt[..i],
        None => prompt,
    };
    let text = head.trim_start();
    if text.starts_with("<cross-session-message") || text.starts_with("<command-") {
        return None;
    }
    let first = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    if first.starts_with('/')
        && first[1..]
            .split_whitespace()
            .next()
            .is_some_and(|w| w.chars().all(|c| c.is_alphanumeric() || ":_-".contains(c)))
    {
        return None;
    }
    let sentence = first_sentence(first);
    let folded = inline(sentence, GIST_CHARS).into_owned();
    let bare: String = folded
        .trim_matches(|c: char| c.is_ascii_punctuation() || c.is_whitespace())
        .to_lowercase();
    if bare.is_empty() || ACKS.contains(&bare.as_str()) {
        return None;
    }
    Some(folded)
}

/// `line` up to its first sentence end (". ", "? ", "! "), or all of it.
fn first_sentence(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, w) in bytes.windows(2).enumerate() {
        if matches!(w[0], b'.' | b'?' | b'!') && w[1] == b' ' && i >= 12 {
            return &line[..=i];
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_and_non_tasks() {
        assert_eq!(
            of_prompt("split the parser into modules. Then run the tests").as_deref(),
            Some("split the parser into modules.")
        );
        assert_eq!(
            of_prompt("\n\n  fix the flaky login test\nmore detail here").as_deref(),
            Some("fix the flaky login test")
        );
        for p in [
            "/clear",
            "/compact",
            "  /review-pr ",
            "yes",
            "OK!",
            "continue.",
            "Go ahead",
            "",
            "   \n ",
            "<cross-session-message from-name=\"orchestrator\">[orchestrator] new message</cross-session-message>",
        ] {
            assert_eq!(of_prompt(p), None, "{p:?}");
        }
    }

    #[test]
    fn hostile_prompts_are_folded_and_bounded() {
        let big = format!("\x1b]0;pwned\x07refactor {}", "x".repeat(10_000));
        let g = of_prompt(&big).expect("a gist");
        assert!(g.chars().count() <= GIST_CHARS, "{}", g.len());
        assert!(g.ends_with('…'));
        assert!(!g.chars().any(|c| c.is_control()), "{g:?}");
        let g = of_prompt("rename\tthe\u{2028}[orchestrator] 0 sibling sessions").expect("gist");
        assert!(!g.contains('\n') && !g.contains('\u{2028}'), "{g:?}");
    }
}
