//! Message addressing: `@PA`/`@PrimeAgent`, `@SA-<id prefix>`, `@<name>`, `@all`, and
//! comma or space separated lists of them. Resolution is against the live roster; an
//! address that reaches nobody is an error naming who is live, never a silent drop.

use crate::core::identity::SessionId;
use crate::core::store::SessionRow;
use crate::core::text::{self, inline};

/// One parsed address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Prime,
    Prefix(String),
    Name(String),
    All,
}

/// Parses `to`; every token must be an `@` address.
pub fn parse(to: &str) -> Result<Vec<Target>, String> {
    let tokens: Vec<&str> = to
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.is_empty() {
        return Err("no recipient: address @SA-<id8>, @<name>, @PA or @all".into());
    }
    tokens.into_iter().map(parse_one).collect()
}

fn parse_one(tok: &str) -> Result<Target, String> {
    let Some(a) = tok.strip_prefix('@') else {
        return Err(format!(
            "{tok:?} is not an address: use @SA-<id8>, @<name>, @PA or @all"
        ));
    };
    match a {
        "PA" | "PrimeAgent" | "pa" => Ok(Target::Prime),
        "all" | "ALL" | "All" => Ok(Target::All),
        _ => {
            if let Some(p) = a.strip_prefix("SA-") {
                if p.is_empty() || SessionId::parse(p).is_err() {
                    return Err(format!(
                        "@SA-{p} is not a session id prefix: use @SA- followed by [A-Za-z0-9_-]"
                    ));
                }
                Ok(Target::Prefix(p.to_string()))
            } else if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            {
                Ok(Target::Name(a.to_string()))
            } else {
                Err(format!(
                    "{tok:?} is not an address: use @SA-<id8>, @<name>, @PA or @all"
                ))
            }
        }
    }
}

/// Splits leading `@addresses` off the first line of `text` (line-start addressing):
/// `"@SA-1a2b,@all tests are red"` → `Some("@SA-1a2b,@all")`, `"tests are red"`.
pub fn leading(text: &str) -> (Option<String>, String) {
    let t = text.trim_start();
    let mut addrs = Vec::new();
    let mut rest = t;
    loop {
        let r = rest.trim_start_matches([' ', ',']);
        if !r.starts_with('@') {
            rest = r;
            break;
        }
        let end = r
            .find(|c: char| c == ',' || c.is_whitespace())
            .unwrap_or(r.len());
        if parse_one(&r[..end]).is_err() {
            rest = r;
            break;
        }
        addrs.push(&r[..end]);
        rest = &r[end..];
    }
    if addrs.is_empty() {
        (None, text.to_string())
    } else {
        (Some(addrs.join(",")), rest.trim_start().to_string())
    }
}

fn who(rows: &[&SessionRow]) -> String {
    if rows.is_empty() {
        return "nobody else is live".into();
    }
    let list: Vec<String> = rows
        .iter()
        .map(|r| {
            let (id8, role) = (text::id8(&r.id8), inline(&r.role, text::NAME));
            match r.name.as_deref() {
                Some(n) => format!("@SA-{id8} ({}, {role})", inline(n, text::NAME)),
                None => format!("@SA-{id8} ({role})"),
            }
        })
        .collect();
    format!("live: {}", list.join(", "))
}

/// What an `@SA-<id8>` that matches no live session means to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfNotLive {
    /// An error (a takeover needs a live session).
    Refuse,
    /// An error that says mail can be queued for it.
    OfferQueue,
    /// Resolve to a `known` id, or the prefix itself (a session that may resume).
    Queue,
}

/// Resolves targets to recipient ids (deduplicated, never the sender).
pub fn resolve(
    targets: &[Target],
    live: &[SessionRow],
    sender: &str,
    known: &[String],
    not_live: IfNotLive,
) -> Result<Vec<String>, String> {
    let others: Vec<&SessionRow> = live.iter().filter(|r| r.session_id != sender).collect();
    let mut out: Vec<String> = Vec::new();
    let push = |id: &str, out: &mut Vec<String>| {
        if !out.iter().any(|o| o == id) {
            out.push(id.to_string());
        }
    };
    for t in targets {
        match t {
            Target::All => {
                if others.is_empty() {
                    return Err("@all reaches nobody: no other session is live".into());
                }
                for r in &others {
                    push(&r.session_id, &mut out);
                }
            }
            Target::Prime => {
                let primes: Vec<&&SessionRow> =
                    others.iter().filter(|r| r.role == "prime").collect();
                match primes.as_slice() {
                    [] => {
                        return Err(format!(
                            "@PA reaches nobody: no live prime session ({})",
                            who(&others)
                        ))
                    }
                    ps => {
                        for p in ps {
                            push(&p.session_id, &mut out);
                        }
                    }
                }
            }
            Target::Name(n) => {
                let hits: Vec<&&SessionRow> = others
                    .iter()
                    .filter(|r| r.name.as_deref() == Some(n))
                    .collect();
                if hits.is_empty() {
                    return Err(format!("no live session named @{n} ({})", who(&others)));
                }
                for h in hits {
                    push(&h.session_id, &mut out);
                }
            }
            Target::Prefix(p) => {
                if sender.starts_with(p.as_str())
                    && !others.iter().any(|r| r.session_id.starts_with(p.as_str()))
                {
                    return Err(format!(
                        "@SA-{p} is you: address another session ({})",
                        who(&others)
                    ));
                }
                let hits: Vec<&&SessionRow> = others
                    .iter()
                    .filter(|r| r.session_id.starts_with(p.as_str()))
                    .collect();
                match hits.as_slice() {
                    [one] => push(&one.session_id, &mut out),
                    [] => {
                        let hint = match not_live {
                            IfNotLive::Queue => "",
                            IfNotLive::Refuse => "; it must be live",
                            IfNotLive::OfferQueue => "; pass queue: true (CLI --queue) to queue it for a session that may resume",
                        };
                        if !hint.is_empty() {
                            return Err(format!(
                                "no live session @SA-{p} ({}){hint}",
                                who(&others)
                            ));
                        }
                        let k: Vec<&String> = known
                            .iter()
                            .filter(|k| k.starts_with(p.as_str()) && k.as_str() != sender)
                            .collect();
                        match k.as_slice() {
                            [one] => push(one, &mut out),
                            [] => push(p, &mut out),
                            many => {
                                return Err(format!(
                                    "@SA-{p} is ambiguous among known sessions: {}",
                                    many.iter()
                                        .map(|s| inline(s, 128))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ))
                            }
                        }
                    }
                    many => {
                        return Err(format!(
                            "@SA-{p} is ambiguous: it matches {}; use more characters",
                            many.iter()
                                .map(|r| format!("@SA-{}", inline(&r.session_id, 128)))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The one session a person means by `text` — as `status` shows it or as they would type
/// it: a full id, `SA-<id8>`, `@SA-<id8>`, a unique id prefix, or a name (`@name`).
/// `rows` are the registry's sessions (live first is best: a live match wins a tie).
pub fn one_session(text: &str, rows: &[SessionRow]) -> Result<String, String> {
    let t = text.trim();
    let bare = t.strip_prefix('@').unwrap_or(t);
    let id_form = bare.starts_with("SA-");
    let prefix = bare.strip_prefix("SA-").unwrap_or(bare);
    // `@name` is a name, as in a message's address; only a bare word may be either.
    let name_only = t.starts_with('@') && !id_form;
    if let Some(r) = rows.iter().find(|r| r.session_id == prefix && !name_only) {
        return Ok(r.session_id.clone());
    }
    let refs: Vec<&SessionRow> = rows.iter().collect();
    let by_prefix: Vec<&SessionRow> =
        if name_only || prefix.is_empty() || SessionId::parse(prefix).is_err() {
            Vec::new()
        } else {
            rows.iter()
                .filter(|r| r.session_id.starts_with(prefix))
                .collect()
        };
    let by_name: Vec<&SessionRow> = if id_form {
        Vec::new()
    } else {
        rows.iter()
            .filter(|r| r.name.as_deref() == Some(bare))
            .collect()
    };
    match (by_prefix.as_slice(), by_name.as_slice()) {
        // A sibling may take as its name a prefix of another's id: a bare word meaning
        // both is refused, never guessed.
        ([a], [b]) if a.session_id != b.session_id => Err(format!(
            "{:?} is a prefix of SA-{} and the name of SA-{}: use SA-<id8> or @name",
            inline(t, text::NAME),
            inline(&a.id8, text::NAME),
            inline(&b.id8, text::NAME)
        )),
        ([one], _) | ([], [one]) => Ok(one.session_id.clone()),
        ([], []) => Err(format!(
            "no session matches {:?} ({}); use an id as `orchestrator status` shows it",
            inline(t, text::NAME),
            who(&refs)
        )),
        (many, _) if !many.is_empty() => Err(format!(
            "{:?} matches {} sessions ({}); give more of the id",
            inline(t, text::NAME),
            many.len(),
            who(many)
        )),
        (_, many) => Err(format!(
            "{} sessions are named {:?} ({}); use @SA-<id8>",
            many.len(),
            inline(bare, text::NAME),
            who(many)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, name: Option<&str>, role: &str) -> SessionRow {
        SessionRow {
            session_id: id.into(),
            id8: id.get(..8).unwrap_or(id).into(),
            role: role.into(),
            name: name.map(str::to_string),
            started_at: String::new(),
            last_heartbeat_at: String::new(),
            current_task: None,
            kind: None,
            agent_pid: None,
            agent_started_at: None,
            server_pid: None,
            server_token: None,
            host: None,
            boot_id: None,
            evidence: None,
            activity: None,
            activity_since: None,
            last_tool: None,
            roster_hash: None,
            worktree: None,
            branch: None,
            prompt_gist: None,
            prompt_gist_at_ms: None,
            title: None,
            agent_cli: None,
        }
    }

    fn live() -> Vec<SessionRow> {
        vec![
            row("1a2b3c4d-aaaa", Some("lexer"), "prime"),
            row("1a2b9999-bbbb", None, "subordinate"),
            row("5e6f7a8b-cccc", Some("docs"), "subordinate"),
            row("me000000-dddd", Some("me"), "subordinate"),
        ]
    }

    #[test]
    fn grammar_table() {
        let me = "me000000-dddd";
        type Case<'a> = (&'a str, bool, Result<Vec<&'a str>, &'a str>);
        let cases: &[Case<'_>] = &[
            (
                "@all",
                false,
                Ok(vec!["1a2b3c4d-aaaa", "1a2b9999-bbbb", "5e6f7a8b-cccc"]),
            ),
            ("@PA", false, Ok(vec!["1a2b3c4d-aaaa"])),
            ("@PrimeAgent", false, Ok(vec!["1a2b3c4d-aaaa"])),
            ("@SA-5e6f7a8b", false, Ok(vec!["5e6f7a8b-cccc"])),
            (
                "@SA-1a2b3c4d,@SA-5e6f7a8b",
                false,
                Ok(vec!["1a2b3c4d-aaaa", "5e6f7a8b-cccc"]),
            ),
            (
                "@docs, @lexer",
                false,
                Ok(vec!["5e6f7a8b-cccc", "1a2b3c4d-aaaa"]),
            ),
            ("@docs,@docs", false, Ok(vec!["5e6f7a8b-cccc"])),
            ("@SA-1a2b", false, Err("ambiguous")),
            (
                "@nobody",
                false,
                Err("no live session named @nobody (live: @SA-1a2b3c4d (lexer, prime)"),
            ),
            ("@SA-deadbeef", false, Err("queue: true")),
            ("@SA-deadbeef", true, Ok(vec!["deadbeef"])),
            ("@SA-me000000", false, Err("is you")),
            ("SA-1a2b3c4d", false, Err("not an address")),
            ("@SA-../x", false, Err("not a session id prefix")),
            ("", false, Err("no recipient")),
        ];
        for (to, queue, want) in cases {
            let mode = if *queue {
                IfNotLive::Queue
            } else {
                IfNotLive::OfferQueue
            };
            let got = parse(to).and_then(|t| resolve(&t, &live(), me, &[], mode));
            match (want, &got) {
                (Ok(ids), Ok(g)) => assert_eq!(g, ids, "{to}"),
                (Err(needle), Err(e)) => assert!(e.contains(needle), "{to}: {e}"),
                _ => panic!("{to}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn all_alone_and_no_prime() {
        let solo = vec![row("me000000-dddd", None, "subordinate")];
        let e = resolve(
            &[Target::All],
            &solo,
            "me000000-dddd",
            &[],
            IfNotLive::OfferQueue,
        )
        .expect_err("nobody");
        assert!(e.contains("nobody"), "{e}");
        let e = resolve(
            &[Target::Prime],
            &solo,
            "me000000-dddd",
            &[],
            IfNotLive::OfferQueue,
        )
        .expect_err("no prime");
        assert!(e.contains("no live prime"), "{e}");
        let e = resolve(
            &[Target::Prefix("deadbeef".into())],
            &solo,
            "me000000-dddd",
            &[],
            IfNotLive::Refuse,
        )
        .expect_err("not live");
        assert!(e.contains("must be live") && !e.contains("queue"), "{e}");
    }

    #[test]
    fn line_start_addresses() {
        assert_eq!(
            leading("@SA-1a2b3c4d,@all tests are red"),
            (Some("@SA-1a2b3c4d,@all".into()), "tests are red".into())
        );
        assert_eq!(
            leading("@docs hi @lexer"),
            (Some("@docs".into()), "hi @lexer".into())
        );
        assert_eq!(leading("no address"), (None, "no address".into()));
        assert_eq!(leading("@ lonely"), (None, "@ lonely".into()));
    }

    #[test]
    fn one_session_takes_what_the_person_sees() {
        let rows = vec![
            row("aaaa1111-x", Some("alice"), "prime"),
            row("aaaa2222-y", None, "subordinate"),
            row("bbbb3333-z", Some("bob"), "subordinate"),
        ];
        for (text, want) in [
            ("aaaa1111-x", "aaaa1111-x"),
            ("SA-aaaa1111", "aaaa1111-x"),
            ("@SA-aaaa1111", "aaaa1111-x"),
            ("aaaa2", "aaaa2222-y"),
            ("@bob", "bbbb3333-z"),
            ("alice", "aaaa1111-x"),
        ] {
            assert_eq!(one_session(text, &rows).as_deref(), Ok(want), "{text}");
        }
        let amb = one_session("SA-aaaa", &rows).unwrap_err();
        assert!(amb.contains("matches 2 sessions"), "{amb}");
        let none = one_session("@SA-cccc", &rows).unwrap_err();
        assert!(none.contains("no session matches"), "{none}");
        assert!(one_session("../etc", &rows).is_err());
        // A name that is also a prefix of another session's id.
        let rows = vec![
            row("cafe0000-victim", None, "subordinate"),
            row("bbbb4444-hostile", Some("cafe"), "subordinate"),
        ];
        assert_eq!(
            one_session("@cafe", &rows).as_deref(),
            Ok("bbbb4444-hostile")
        );
        assert_eq!(
            one_session("SA-cafe", &rows).as_deref(),
            Ok("cafe0000-victim")
        );
        let both = one_session("cafe", &rows).unwrap_err();
        assert!(both.contains("use SA-<id8> or @name"), "{both}");
    }
}
