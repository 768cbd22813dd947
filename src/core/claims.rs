//! Claims: a session's advisory lock on paths or globs, tied to liveness. A claim lives
//! while its session is live (a ttl is only an upper bound): on confirmed death it is
//! released at once and whoever was refused by it is told.

use crate::core::clock;
use crate::core::clock::Clock;
use crate::core::identity::session_id::id8;
use crate::core::identity::Probe;
use crate::core::liveness::{self, Caller, Policy};
use crate::core::paths;
use crate::core::render;
use crate::core::store::claims::{Claim, Request};
use crate::core::store::{SessionRow, Store};
use crate::core::text::{self, inline};
use anyhow::Result;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use std::cell::OnceCell;
use std::path::Path;

/// Characters that make a pattern a glob; every other character matches itself.
const GLOB_CHARS: [char; 5] = ['*', '?', '[', '{', '\\'];

/// Longest pattern accepted: a glob's matcher grows with it, and every sibling's edit
/// hook may have to build it.
pub const MAX_PATTERN_BYTES: usize = 1024;

/// Longest ttl accepted. A claim ends with its session anyway; this catches typos and
/// keeps the expiry instant far from overflow.
pub const MAX_TTL_MS: i64 = 365 * 86_400_000;

/// A claim pattern ready to match project-relative paths. It covers the path it spells
/// and everything below it (`src` covers `src/a.rs`, and `app/[id]` its own directory),
/// and, when it has wildcards, what its glob matches: `*` and `?` within one segment,
/// `**` across any number of them (`**/` also none), `[ab]`, `{a,b}`, `\` escapes.
///
/// Globs are globset's (matching is linear, so no pattern can stall a hook) and are
/// compiled on first use, only for paths that pass a literal pre-test (compiling costs
/// tens of microseconds): checking a path against a thousand claims elsewhere compiles
/// none.
pub struct Pattern {
    text: String,
    /// Bytes before the first wildcard: every path the glob matches starts with them.
    head: usize,
    /// Literal runs every path the glob matches contains (see [`required_runs`]).
    runs: Vec<String>,
    glob: OnceCell<Option<GlobSet>>,
}

impl Pattern {
    /// A pattern being claimed: refused with the fix when its glob does not parse (an
    /// unclosed `[`, say) or it is too long.
    pub fn parse(text: &str) -> Result<Self, String> {
        let p = Self::stored(text);
        if p.text.len() > MAX_PATTERN_BYTES {
            return Err(format!(
                "pattern {}... is {} bytes long: claim a directory or a glob of at most {MAX_PATTERN_BYTES} bytes",
                p.text.chars().take(40).collect::<String>(),
                p.text.len()
            ));
        }
        if p.is_glob() {
            let g = compile(&p.text).map_err(|e| {
                format!(
                    "{text} is not a valid glob ({e}): fix it, or put a backslash before the character to mean it literally"
                )
            })?;
            let _ = p.glob.set(Some(g));
        }
        Ok(p)
    }

    /// A pattern read back from the store. One that no longer parses (stored before
    /// globs were checked) still covers the path it spells, and nothing else.
    pub fn stored(text: &str) -> Self {
        let text = text.trim_end_matches('/').to_string();
        let head = text.find(GLOB_CHARS).unwrap_or(text.len());
        let runs = required_runs(&text);
        Self {
            text,
            head,
            runs,
            glob: OnceCell::new(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn is_glob(&self) -> bool {
        self.head < self.text.len()
    }

    /// Whether this pattern covers `path`.
    pub fn covers(&self, path: &str) -> bool {
        let t = self.text.as_str();
        if path == t || (path.starts_with(t) && path.as_bytes().get(t.len()) == Some(&b'/')) {
            return true;
        }
        if !self.is_glob()
            || !path.starts_with(&t[..self.head])
            || !self.runs.iter().all(|r| path.contains(r.as_str()))
        {
            return false;
        }
        self.glob
            .get_or_init(|| {
                (t.len() <= MAX_PATTERN_BYTES)
                    .then(|| compile(t).ok())
                    .flatten()
            })
            .as_ref()
            .is_some_and(|g| g.is_match(path))
    }

    /// Whether two patterns may cover a common path, judged on each other's text: exact
    /// for a path or directory against a glob, a heuristic for two globs.
    pub fn overlaps(&self, other: &Pattern) -> bool {
        self.covers(&other.text) || other.covers(&self.text)
    }
}

/// The literal runs between the `*` and `?` of a glob, which every match contains,
/// trimmed of the slashes a `**` may absorb (`**/a` matches `a`). Patterns with classes,
/// alternates or escapes give none (their literals may be optional), keeping only the
/// head test.
fn required_runs(text: &str) -> Vec<String> {
    if text.contains(['[', '{', '\\']) {
        return Vec::new();
    }
    text.split(['*', '?'])
        .map(|r| r.trim_matches('/'))
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect()
}

/// One glob as a set: unlike a lone matcher, a set reports a regex that grows too large
/// as an error instead of panicking.
fn compile(text: &str) -> Result<GlobSet, String> {
    let glob = GlobBuilder::new(text)
        .literal_separator(true)
        .build()
        .map_err(|e| e.kind().to_string())?;
    GlobSetBuilder::new()
        .add(glob)
        .build()
        .map_err(|e| e.kind().to_string())
}

/// Whether a stored claim `pattern` covers the project-relative `path`.
pub fn matches(pattern: &str, path: &str) -> bool {
    Pattern::stored(pattern).covers(path)
}

/// Parses a ttl: `90` (seconds), `90s`, `15m`, `2h`, `1d`; at most [`MAX_TTL_MS`].
pub fn parse_ttl(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let too_long =
        || format!("ttl {s:?} is too long: at most 365d (a claim ends with its session anyway)");
    let n: i64 = match num.parse() {
        Ok(n) => n,
        Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => return Err(too_long()),
        Err(_) => {
            return Err(format!(
                "ttl {s:?} is not a duration: use e.g. 90s, 15m, 2h"
            ))
        }
    };
    let mult: i64 = match unit {
        "" | "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("ttl {s:?} has an unknown unit: use s, m, h or d")),
    };
    if n <= 0 {
        return Err("ttl must be positive".into());
    }
    n.checked_mul(mult)
        .filter(|ms| *ms <= MAX_TTL_MS)
        .ok_or_else(too_long)
}

/// Turns what a session named into the validated project-relative patterns to claim.
pub fn patterns(root: &Path, cwd: &Path, inputs: &[String]) -> Result<Vec<String>, String> {
    if inputs.is_empty() {
        return Err("name at least one path or glob to claim".into());
    }
    inputs
        .iter()
        .map(|i| {
            let p = normalize(root, cwd, i)?;
            Pattern::parse(&p).map(|p| p.as_str().to_string())
        })
        .collect()
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
        .find(GLOB_CHARS)
        .map(|i| input[..i].rfind('/').map(|j| j + 1).unwrap_or(0));
    let (head, tail) = match cut {
        Some(c) => input.split_at(c),
        None => (input, ""),
    };
    // A path inside another worktree of this repository (`.claude/worktrees/feat/src`)
    // is that worktree's path (`src`), as edits there are located.
    let other = paths::other_worktree(root, &cwd.join(head));
    let root = other.as_deref().unwrap_or(root);
    let cwd = paths::physical(cwd);
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
        let r = paths::relativize(root, &cwd, head.trim_end_matches('/'));
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

/// Drops claims lapsed (ttl) at `now_ms` and claims of sessions not in `live`; tells
/// holders of lapsed claims and everyone who waited on a dropped one. A claim another
/// process dropped first is left to it, so nobody is told twice.
pub fn expire(store: &Store, live: &[SessionRow], now_ms: i64) -> Result<()> {
    let mut doomed: Vec<(Claim, bool)> = store
        .lapsed_claims(now_ms)?
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
        let Some(waiters) = store.drop_claim(c.id)? else {
            continue;
        };
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

/// Whether a claim scoped to `a` and an edit or claim in `b` can meet: an unscoped side
/// (the whole repository, or no git at all) meets everything.
fn scopes_meet(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    }
}

/// Stored claims with their patterns, to check many paths against them (each glob is
/// compiled at most once).
pub struct ClaimSet {
    held: Vec<(Claim, Pattern)>,
}

impl ClaimSet {
    pub fn new(claims: Vec<Claim>) -> Self {
        Self {
            held: claims
                .into_iter()
                .map(|c| {
                    let p = Pattern::stored(&c.pattern);
                    (c, p)
                })
                .collect(),
        }
    }

    /// Claims of live siblings covering `path` in `worktree`, exclusive ones first. A claim
    /// covers every worktree of the repository unless it was scoped to one.
    pub fn conflicts<'a>(
        &'a self,
        live: &'a [SessionRow],
        caller: &Caller,
        path: &str,
        worktree: Option<&str>,
    ) -> Vec<(&'a Claim, &'a SessionRow)> {
        let mut out: Vec<(&Claim, &SessionRow)> = self
            .held
            .iter()
            .filter(|(c, _)| scopes_meet(c.worktree.as_deref(), worktree))
            .filter(|(_, p)| p.covers(path))
            .filter_map(|(c, _)| {
                live.iter()
                    .find(|r| r.session_id == c.session_id)
                    .map(|r| (c, r))
            })
            .filter(|(_, r)| !caller.is_self(r))
            .collect();
        out.sort_by_key(|(c, _)| !c.exclusive);
        out
    }
}

/// Claims `req.patterns` (from [`patterns`]) for `req.session_id`. An exclusive claim
/// overlapping another live session's claim, or any claim overlapping another live
/// session's exclusive one, is refused naming the holder. Liveness is judged and the
/// claim written in one store transaction, so of two sessions racing for the same
/// exclusive claim exactly one wins.
pub fn claim(
    store: &Store,
    req: &Request<'_>,
    probe: &dyn Probe,
    clock: &dyn Clock,
) -> Result<Result<(), String>> {
    let now = clock.now_ms();
    let policy = Policy::from_env();
    let mine: Vec<Pattern> = req.patterns.iter().map(|p| Pattern::stored(p)).collect();
    store.claim_checked(req, now, |rows, held| {
        let live = |id: &str| {
            rows.iter()
                .any(|r| r.session_id == id && liveness::verdict(r, now, probe, policy).is_live())
        };
        for c in held.iter().filter(|c| {
            c.session_id != req.session_id
                && (c.exclusive || req.exclusive)
                && scopes_meet(c.worktree.as_deref(), req.worktree)
        }) {
            let theirs = Pattern::stored(&c.pattern);
            let Some(p) = mine.iter().find(|p| p.overlaps(&theirs)) else {
                continue;
            };
            if !live(&c.session_id) {
                continue;
            }
            let kind = if c.exclusive { "exclusive" } else { "shared" };
            return Some(format!(
                "{} overlaps the {kind} claim {} held by live session SA-{}{}: ask them (send_message to @SA-{})",
                inline(p.as_str(), text::PATH),
                inline(&c.pattern, text::PATH),
                text::id8(&c.session_id),
                why(c, " (", ")"),
                text::id8(&c.session_id)
            ));
        }
        None
    })
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
        for w in store.drop_claim(c.id)?.unwrap_or_default() {
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

/// A claim's reason as text shows it, between `pre` and `post`; empty when none.
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
        "{} {}{} by {who}{}{}",
        if c.exclusive {
            "exclusive"
        } else {
            "shared   "
        },
        inline(&c.pattern, text::PATH),
        c.worktree
            .as_deref()
            .map(|w| format!(" (in worktree {})", inline(w, text::PATH)))
            .unwrap_or_default(),
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
            ("**/mod.rs", "mod.rs"),
            ("**/area7/*.rs", "x/area7/a.rs"),
            ("**/area7/*.rs", "area7/a.rs"),
            ("src/**/b/*.rs", "src/b/a.rs"),
            ("*src/lib*", "xsrc/libx"),
            ("a?c*d", "abcxd"),
            ("src/**", "src/a/b.rs"),
            ("src/[ab].rs", "src/b.rs"),
            ("src/{lexer,parser}/*.rs", "src/parser/x.rs"),
            // A pattern always covers the path it spells: a directory named with brackets.
            ("app/[id]", "app/[id]/page.tsx"),
            ("app/[id]", "app/i"),
            ("src/\\*.rs", "src/*.rs"),
            // Stored before globs were checked: still covers its literal path.
            ("src/[x.rs", "src/[x.rs"),
        ];
        let no = [
            ("src/a.rs", "src/a.rsx"),
            ("src", "srcx/a.rs"),
            ("src/*.rs", "src/x/a.rs"),
            ("src/?.rs", "src/ab.rs"),
            ("*.rs", "src/a.rs"),
            ("src/**", "src"),
            ("src/[ab].rs", "src/c.rs"),
            ("src/{lexer,parser}/*.rs", "src/main.rs"),
            ("src/\\*.rs", "src/a.rs"),
            ("src/[x.rs", "src/x.rs"),
            ("**/area7/*.rs", "x/area8/a.rs"),
            ("*src/lib*", "xsrc/x/libx"),
        ];
        for (p, s) in yes {
            assert!(matches(p, s), "{p} should match {s}");
        }
        for (p, s) in no {
            assert!(!matches(p, s), "{p} should not match {s}");
        }
    }

    /// The literal pre-tests (head, required runs) never hide a match the glob makes.
    #[test]
    fn pre_tests_agree_with_the_glob() {
        let pats = [
            "**/area7/*.rs",
            "src/**/b/*.rs",
            "*src/lib*",
            "a?c*d",
            "**",
            "**/*.rs",
            "src/**",
            "a/**/b",
            "**/a/**",
            "?/*/?",
            "src/*_test.go",
            "x*y*z",
            "*/",
            "**/mod.rs",
        ];
        let paths = [
            "area7/a.rs",
            "x/area7/a.rs",
            "src/b/a.rs",
            "src/x/b/c.rs",
            "xsrc/libx",
            "abcd",
            "abcxd",
            "a/b",
            "a/x/y/b",
            "a/c",
            "a",
            "b/a/c",
            "x/y/z",
            "xyz",
            "src/a_test.go",
            "mod.rs",
            "src",
            "src/a",
            "",
        ];
        for p in pats {
            let glob = compile(Pattern::stored(p).as_str()).expect("valid");
            for path in paths {
                let pat = Pattern::stored(p);
                let literal =
                    path == pat.as_str() || path.starts_with(&format!("{}/", pat.as_str()));
                assert_eq!(
                    pat.covers(path),
                    literal || glob.is_match(path),
                    "{p} on {path}"
                );
            }
        }
    }

    /// Exponential backtracking took minutes on this pattern against a long path; the
    /// match must be linear in the path (no timing assertion: it simply has to finish).
    #[test]
    fn hostile_glob_terminates() {
        let hostile = "**?**?**?**?**?**?**?**?**?**?**Q";
        let p = Pattern::parse(hostile).expect("a valid glob");
        // Each holds a `Q`, so the literal pre-tests pass and the glob itself runs.
        let long = format!("src/{}Q.rs", "a".repeat(4000));
        assert!(!p.covers(&long));
        assert!(!p.covers(&format!("{}Q", "a/".repeat(2000))));
        assert!(p.covers("aaaaaaaaaaQ"));
        let other = Pattern::parse("**/*?*?*?*?*?*?*?*?*?*?*R").expect("valid");
        assert!(!p.overlaps(&other));
    }

    #[test]
    fn invalid_globs_are_refused_with_the_fix() {
        for bad in ["src/[x.rs", "src/{a,b", "src/a}/{b"] {
            let e = Pattern::parse(bad).err().unwrap_or_default();
            assert!(
                e.contains(bad) && e.contains("not a valid glob") && e.contains("backslash"),
                "{e}"
            );
            assert!(!e.contains('\n'), "{e}");
        }
        let root = Path::new("/proj");
        let e = patterns(root, root, &["src/ok.rs".into(), "/proj/src/[x.rs".into()]);
        assert!(e.is_err_and(|e| e.contains("src/[x.rs")));
        assert!(Pattern::parse(&"a".repeat(MAX_PATTERN_BYTES + 1)).is_err());
        assert_eq!(
            patterns(root, root, &["/proj/app/[id]/page.tsx".into()]),
            Ok(vec!["app/[id]/page.tsx".to_string()])
        );
        // A literal `}` without `{` is not a glob: fine.
        assert!(Pattern::parse("src/a}.rs").is_ok());
    }

    #[test]
    fn overlaps() {
        let p = |s: &str| Pattern::parse(s).expect("valid");
        let yes = [
            ("src", "src/a.rs"),
            ("src/**", "src/*.rs"),
            ("src/*.rs", "src/[ab].rs"),
            ("src/{a,b}.rs", "src/a.rs"),
            ("**/*.rs", "src/x.rs"),
        ];
        for (a, b) in yes {
            assert!(p(a).overlaps(&p(b)) && p(b).overlaps(&p(a)), "{a} / {b}");
        }
        for (a, b) in [
            ("src/a.rs", "src/b.rs"),
            ("src/*.rs", "docs/**"),
            ("src", "srcx"),
        ] {
            assert!(!p(a).overlaps(&p(b)), "{a} / {b}");
        }
    }

    #[test]
    fn ttl_and_normalize() {
        assert_eq!(parse_ttl("15m"), Ok(900_000));
        assert_eq!(parse_ttl("90"), Ok(90_000));
        assert_eq!(parse_ttl("365d"), Ok(MAX_TTL_MS));
        assert!(parse_ttl("soon").is_err());
        assert!(parse_ttl("5y").is_err());
        assert!(parse_ttl("0s").is_err());
        // Once wrapped to a past instant (the claim vanished at once); now refused.
        for long in [
            "106751991167d",
            "366d",
            "99999999999999999999999",
            "9223372036854775807h",
        ] {
            let e = parse_ttl(long).err().unwrap_or_default();
            assert!(e.contains("too long") && e.contains("365d"), "{long}: {e}");
        }
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

    fn session(store: &mut Store, id: &str) -> SessionRow {
        use crate::core::identity::{Evidence, SessionId};
        use crate::core::store::Registration;
        let sid = SessionId::parse(id).expect("id");
        store
            .register(&Registration::new(&sid, Evidence::Explicit))
            .expect("register");
        store.get(id).expect("get").expect("row")
    }

    /// A ttl lapses at its instant, judged by an injected clock: no sleeping.
    #[test]
    fn ttl_lapses_at_its_instant() {
        use crate::core::identity::SystemProbe;
        let mut store = Store::open_in_memory().expect("store");
        let live = vec![
            session(&mut store, "aaaa0000-1"),
            session(&mut store, "bbbb0000-2"),
        ];
        let t0 = clock::now_ms();
        let pats = vec!["src/x.rs".to_string()];
        let req = Request {
            session_id: "aaaa0000-1",
            patterns: &pats,
            exclusive: true,
            reason: None,
            ttl_ms: Some(60_000),
            worktree: None,
        };
        let at = |ms| clock::Fixed(ms);
        assert_eq!(
            claim(&store, &req, &SystemProbe, &at(t0)).expect("db"),
            Ok(())
        );
        let held = store.all_claims().expect("claims");
        assert_eq!(held[0].expires_at_ms, Some(t0 + 60_000));
        store.add_waiter(held[0].id, "bbbb0000-2").expect("waiter");
        // B is refused while the claim holds.
        let theirs = Request {
            session_id: "bbbb0000-2",
            ..req
        };
        let refused = claim(&store, &theirs, &SystemProbe, &at(t0 + 1)).expect("db");
        assert!(refused.is_err_and(|e| e.contains("SA-aaaa0000")));
        expire(&store, &live, t0 + 59_999).expect("expire");
        assert_eq!(store.all_claims().expect("claims").len(), 1);
        expire(&store, &live, t0 + 60_000).expect("expire");
        assert!(store.all_claims().expect("claims").is_empty());
        let told = |s: &mut Store, id| -> Vec<String> {
            s.take_due(id, true, usize::MAX, |_| 0)
                .expect("notices")
                .notices
                .into_iter()
                .map(|n| n.body)
                .collect()
        };
        assert_eq!(
            told(&mut store, "aaaa0000-1"),
            ["your claim on src/x.rs lapsed (ttl); claim it again if you still need it."]
        );
        assert_eq!(
            told(&mut store, "bbbb0000-2"),
            ["the claim on src/x.rs by SA-aaaa0000 was released (its ttl lapsed); you may edit it now."]
        );
        // Whoever expires it again (another process, same instant) tells nobody twice.
        expire(&store, &live, t0 + 60_000).expect("expire");
        assert!(told(&mut store, "aaaa0000-1").is_empty());
        // Now B may claim it.
        assert_eq!(
            claim(&store, &theirs, &SystemProbe, &at(t0 + 60_001)).expect("db"),
            Ok(())
        );
    }
}
