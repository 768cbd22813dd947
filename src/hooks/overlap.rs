//! Overlap hints: a prompt's words against siblings' tasks, and shared files.

use std::collections::BTreeSet;

const STOPWORDS: &[&str] = &[
    "about", "above", "after", "again", "all", "also", "and", "any", "are", "because", "been",
    "before", "being", "below", "between", "both", "but", "can", "could", "did", "does", "doing",
    "done", "down", "each", "few", "file", "files", "fix", "for", "from", "further", "get", "had",
    "has", "have", "having", "help", "her", "here", "him", "his", "how", "into", "its", "just",
    "let", "like", "make", "more", "most", "need", "not", "now", "off", "once", "only", "other",
    "our", "out", "over", "own", "please", "same", "see", "should", "some", "such", "than", "that",
    "the", "their", "them", "then", "there", "these", "they", "thing", "this", "those", "through",
    "too", "under", "until", "use", "very", "want", "was", "way", "were", "what", "when", "where",
    "which", "while", "who", "why", "will", "with", "work", "working", "would", "you", "your",
    "code", "change", "changes", "add", "update", "check", "run", "test", "tests", "new", "one",
    "two", "sure", "still", "yes", "okay", "task", "look", "find", "show",
];

/// Significant lowercase words (≥ 3 chars, not a stopword, not a number).
pub fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| w.chars().count() >= 3 && !w.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_lowercase)
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .collect()
}

/// Words `prompt` shares with `task`, sorted.
pub fn shared_words(prompt: &str, task: &str) -> Vec<String> {
    let p = words(prompt);
    words(task).intersection(&p).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_meaningful_overlap_only() {
        assert_eq!(
            shared_words(
                "please refactor the Parser error handling",
                "Refactor parser errors"
            ),
            vec!["parser".to_string(), "refactor".to_string()]
        );
        assert!(shared_words("fix the tests please", "fix the tests now").is_empty());
        assert!(shared_words("", "anything").is_empty());
    }
}
