//! The harness's session id: `[A-Za-z0-9_-]{1,128}`, so it is always safe in a path.

use std::fmt;

/// A validated session id. Construct only through [`SessionId::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(String);

/// Longest accepted session id.
pub const MAX_LEN: usize = 128;

impl SessionId {
    /// Validates `s`; the error names the problem and what is allowed.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("session id is empty: expected 1-128 characters of [A-Za-z0-9_-]".into());
        }
        if s.len() > MAX_LEN {
            return Err(format!(
                "session id is {} characters long: at most {MAX_LEN} of [A-Za-z0-9_-] are allowed",
                s.len()
            ));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return Err(format!(
                "session id contains {c:?}: only [A-Za-z0-9_-] is allowed"
            ));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 8 characters, the short form people read.
    pub fn id8(&self) -> &str {
        id8(&self.0)
    }
}

/// First 8 characters of any id (ids are ASCII once validated).
pub fn id8(s: &str) -> &str {
    s.get(..8).unwrap_or(s)
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_harness_ids() {
        let id = SessionId::parse("1a2b3c4d-5e6f-7a8b-9c0d-e1f2a3b4c5d6").expect("valid");
        assert_eq!(id.id8(), "1a2b3c4d");
        assert_eq!(SessionId::parse("a_b").expect("valid").id8(), "a_b");
    }

    #[test]
    fn rejects_path_characters_and_lengths() {
        for bad in ["", "../etc", "a/b", "a b", "é", "a\0b", &"x".repeat(129)] {
            assert!(SessionId::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(SessionId::parse(&"x".repeat(128)).is_ok());
    }
}
