//! Claims: a session's advisory lock on paths or globs, tied to liveness. A claim lives
//! while its session is live (a ttl is only an upper bound): on confirmed death it is
//! released at once and whoever was refused by it is told.

use crate::core::identity::session_id::id8;
use crate::core::paths;
use crate::core::store::claims::Claim;
use crate::core::store::{SessionRow, Store};
use crate::core::text::{self, inline};
use crate::core::{clock, liveness::Caller, render};
use anyhow::Result;
use std::path::Path;

/// Matches a project-relative `path` against a claim pattern: `*` (within a segment),
/// `**` (any depth), `?`; a pattern with no wildcard also covers everything below it.
pub fn matches(pattern: &str, path: &str) -> bool {
    let pattern = pattern.trim_end_matches('/');
    if !pattern.contains(['*', '?']) {
        return path == pattern || path.starts_with(&format!("{pattern}/"));
    }
    glob(pattern.as_bytes(), path.as_bytes())
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') if p.get(1) == Some(&b'*') => {
            // `**/` also matches zero directories.
            let rest = if p.get(2) == Some(&b'/') {
                &p[3..]
            } else {
                &p[2..]
            };
            (0..=s.len()).any(|i| glob(rest, &s[i..]))
                || (p.get(2) == Some(&b'/') && glob(&p[2..], s))
        }
        Some(b'*') => (0..=s.len())
            .take_while(|&i| i == 0 || s[i - 1] != b'/')
            .any(|i| glob(&p[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && s[0] != b'/' && glob(&p[1..], &s[1..]),
        Some(c) => s.first() == Some(c) && glob(&p[1..], &s[1..]),
    }
}

/// Parses a ttl: `90` (seconds), `90s`, `15m`, `2h`, `1d`.
pub fn parse_ttl(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| format!("ttl {s:?} is not a duration: use e.g. 90s, 15m, 2h"))?;
    let mult = match unit {
        "" | "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("ttl {s:?} has an unknown unit: use s, m, h or d")),
    };
    if n <= 0 {
        return Err("ttl must be positive".into());
    }
    Ok(n * mult)
}

/// Turns a user's path or glob into the project-relative pattern stored; refuses paths
/// outside the project.
pub fn normalize(root: &Path, cwd: &Path, input: &str) -> Result<String, String> {
    let input = input.trim();
    if input.is_empty() {
        return Err("empty path: name a file, a directory or a glob".into());
    }
    // Relativize the part before the first wildcard, keep the wildcard tail as written.
    let cut = input
        .find(['*', '?'])
        .map(|i| input[..i].rfind('/').map(|j| j + 1).unwrap_or(0));
    let (head, tail) = match cut {
        Some(c) => input.split_at(c),
        None => (input, ""),
    };
    let rel = if head.is_empty() {
        // A bare glob is relative to the working directory.
        match cwd.strip_prefix(root) {
            Ok(r) => r.to_string_lossy().to_string(),
            Err(_) => {
                return Err(format!(
                    "{input} is relative to {}, outside the project",
                    cwd.display()
                ))
            }
        }
    } else {
        let r = paths::relativize(root, cwd, head.trim_end_matches('/'));
        if r.starts_with('/') {
            return Err(format!(
                "{input} is outside the project ({}): claims cover project files only",
                root.display()
            ));
        }
        r
    };
    Ok(match (rel.is_empty(), tail.is_empty()) {
        (true, _) => tail.to_string(),
        (false, true) => rel,
        (false, false) => format!("{rel}/{tail}"),
    })
}

/// Drops lapsed (ttl) claims and claims of sessions not in `live`; tells holders of
/// lapsed claims and everyone who waited on a dropped one.
pub fn expire(store: &Store, live: &[SessionRow]) -> Result<()> {
    let now = clock::now_ms();
    let mut doomed: Vec<(Claim, bool)> = store
        .lapsed_claims(now)?
        .into_iter()
        .map(|c| (c, true))
        .collect();
    for h in store.claim_holders()? {
        if !live.iter().any(|r| r.session_id == h) {
            for c in store.claims_of(&h)? {
                if !doomed.iter().any(|(d, _)| d.id == c.id) {
                    doomed.push((c, false));
                }
            }
        }
    }
    for (c, lapsed) in doomed {
        let holder_live = live.iter().any(|r| r.session_id == c.session_id);
        let waiters = store.drop_claim(c.id)?;
        let why = if lapsed {
            "its ttl lapsed"
        } else {
            "its session ended"
        };
        if lapsed && holder_live {
            store.add_notice(
                &c.session_id,
                &format!(
                    "your claim on {} lapsed (ttl); claim it again if you still need it.",
                    c.pattern
                ),
            )?;
        }
        for w in waiters {
            if w != c.session_id {
                store.add_notice(
                    &w,
                    &format!(
                        "the claim on {} by SA-{} was released ({why}); you may edit it now.",
                        c.pattern,
                        id8(&c.session_id)
                    ),
                )?;
            }
        }
    }
    Ok(())
}

/// Claims of live siblings covering `path`, exclusive ones first.
pub fn conflicts<'a>(
    claims: &'a [Claim],
    live: &'a [SessionRow],
    caller: &Caller,
    path: &str,
) -> Vec<(&'a Claim, &'a SessionRow)> {
    let mut out: Vec<(&Claim, &SessionRow)> = claims
        .iter()
        .filter(|c| matches(&c.pattern, path))
        .filter_map(|c| {
            live.iter()
                .find(|r| r.session_id == c.session_id)
                .map(|r| (c, r))
        })
        .filter(|(_, r)| !caller.is_self(r))
        .collect();
    out.sort_by_key(|(c, _)| !c.exclusive);
    out
}

/// Claims `inputs` for `me`. An exclusive claim overlapping another live session's
/// exclusive claim is refused, naming the holder.
#[allow(clippy::too_many_arguments)]
pub fn claim(
    store: &Store,
    me: &str,
    live: &[SessionRow],
    root: &Path,
    cwd: &Path,
    inputs: &[String],
    exclusive: bool,
    reason: Option<&str>,
    ttl_ms: Option<i64>,
) -> Result<Result<Vec<String>, String>> {
    if inputs.is_empty() {
        return Ok(Err("name at least one path or glob to claim".into()));
    }
    let mut pats = Vec::new();
    for i in inputs {
        match normalize(root, cwd, i) {
            Ok(p) => pats.push(p),
            Err(e) => return Ok(Err(e)),
        }
    }
    let others: Vec<Claim> = store
        .all_claims()?
        .into_iter()
        .filter(|c| c.session_id != me && live.iter().any(|r| r.session_id == c.session_id))
        .collect();
    for p in &pats {
        for c in others.iter().filter(|c| c.exclusive || exclusive) {
            if matches(&c.pattern, p) || matches(p, &c.pattern) {
                let kind = if c.exclusive { "exclusive" } else { "shared" };
                return Ok(Err(format!(
                    "{} overlaps the {kind} claim {} held by live session SA-{}{}: ask them (send_message to @SA-{})",
                    inline(p, text::PATH),
                    inline(&c.pattern, text::PATH),
                    text::id8(&c.session_id),
                    why(c, " (", ")"),
                    text::id8(&c.session_id)
                )));
            }
        }
    }
    for p in &pats {
        store.put_claim(me, p, exclusive, reason, ttl_ms)?;
    }
    Ok(Ok(pats))
}

/// Releases `me`'s claims on `inputs` (all when empty) and tells their waiters.
pub fn release(
    store: &Store,
    me: &str,
    root: &Path,
    cwd: &Path,
    inputs: &[String],
) -> Result<Result<Vec<String>, String>> {
    let mut wanted = Vec::new();
    for i in inputs {
        match normalize(root, cwd, i) {
            Ok(p) => wanted.push(p),
            Err(e) => return Ok(Err(e)),
        }
    }
    let mut released = Vec::new();
    for c in store.claims_of(me)? {
        if !wanted.is_empty() && !wanted.contains(&c.pattern) {
            continue;
        }
        for w in store.drop_claim(c.id)? {
            store.add_notice(
                &w,
                &format!(
                    "SA-{} released its claim on {}; you may edit it now.",
                    id8(me),
                    c.pattern
                ),
            )?;
        }
        released.push(c.pattern);
    }
    if released.is_empty() && !wanted.is_empty() {
        return Ok(Err(format!(
            "you hold no claim on {}: see the `claims` tool",
            wanted.join(", ")
        )));
    }
    Ok(Ok(released))
}

/// A claim's reason as text shows it, between `pre` and `post`; empty when it has none.
pub fn why(c: &Claim, pre: &str, post: &str) -> String {
    c.reason
        .as_deref()
        .map(|r| format!("{pre}{}{post}", inline(r, text::REASON)))
        .unwrap_or_default()
}

/// One line per claim for people and agents.
pub fn describe(c: &Claim, holder: Option<&SessionRow>, now_ms: i64) -> String {
    let who = match holder {
        Some(h) => format!("{} ({})", render::handle(h), render::called(h)),
        None => format!("SA-{} (not live)", text::id8(&c.session_id)),
    };
    format!(
        "{} {} by {who}{}{}",
        if c.exclusive {
            "exclusive"
        } else {
            "shared   "
        },
        inline(&c.pattern, text::PATH),
        why(c, " — ", ""),
        c.expires_at_ms
            .map(|t| format!(" (ttl: {} left)", clock::age(t - now_ms)))
            .unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let yes = [
            ("src/a.rs", "src/a.rs"),
            ("src", "src/a.rs"),
            ("src/", "src/deep/a.rs"),
            ("src/*.rs", "src/a.rs"),
            ("src/**/*.rs", "src/x/y/a.rs"),
            ("src/**/*.rs", "src/a.rs"),
            ("**/mod.rs", "a/b/mod.rs"),
            ("src/?.rs", "src/a.rs"),
        ];
        let no = [
            ("src/a.rs", "src/a.rsx"),
            ("src", "srcx/a.rs"),
            ("src/*.rs", "src/x/a.rs"),
            ("src/?.rs", "src/ab.rs"),
            ("*.rs", "src/a.rs"),
        ];
        for (p, s) in yes {
            assert!(matches(p, s), "{p} should match {s}");
        }
        for (p, s) in no {
            assert!(!matches(p, s), "{p} should not match {s}");
        }
    }

    #[test]
    fn ttl_and_normalize() {
        assert_eq!(parse_ttl("15m"), Ok(900_000));
        assert_eq!(parse_ttl("90"), Ok(90_000));
        assert!(parse_ttl("soon").is_err());
        assert!(parse_ttl("5y").is_err());
        let root = Path::new("/proj");
        assert_eq!(
            normalize(root, root, "/proj/src/a.rs"),
            Ok("src/a.rs".into())
        );
        assert_eq!(
            normalize(root, root, "src/**/*.rs"),
            Ok("src/**/*.rs".into())
        );
        assert_eq!(
            normalize(root, Path::new("/proj/src"), "*.rs"),
            Ok("src/*.rs".into())
        );
        assert_eq!(normalize(root, root, "**/*.md"), Ok("**/*.md".into()));
        assert_eq!(
            normalize(root, root, "/proj/src/*.rs"),
            Ok("src/*.rs".into())
        );
        assert!(normalize(root, root, "/etc/passwd").is_err());
        assert!(normalize(root, root, "../other/x").is_err());
    }
}
