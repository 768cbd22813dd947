//! A seeded randomized fleet driven through the real binary: agents (real `claude`
//! processes with real servers), spread over the worktrees of one git repository, start,
//! `/clear`, message each other, try to act as each other, exit cleanly or are killed -9. After every step: nobody sees itself, every live session sees every other,
//! the registry's live set is exactly the live fleet; at the end every message reached
//! each recipient that stayed live exactly once, and nobody else (mail queued across a
//! `/clear` reaches the new id of the same agent).

mod common;
use common::*;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;

struct Sim {
    agent: Agent,
    id: String,
    /// The worktree this session was started in (its project dir).
    root: String,
}

fn env(pid: i32, root: &str) -> [(&'static str, String); 2] {
    [
        ("CLAUDE_PID", pid.to_string()),
        ("ORCHESTRATOR_PROJECT_ROOT", root.to_string()),
    ]
}

fn id8(id: &str) -> &str {
    &id[..8]
}

/// Runs a hook for the agent `pid` working in `root` and asserts it answered cleanly.
fn clean_hook(p: &Project, ctx: &str, event: &str, payload: &str, pid: i32, root: &str) -> Output {
    let out = p.hook(event, payload, &env(pid, root));
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{ctx}: {event}: {out:?}"
    );
    out
}

fn injected(ctx: &str) -> Vec<i64> {
    ctx.match_indices("[orchestrator] message #")
        .filter_map(|(i, m)| {
            ctx[i + m.len()..]
                .split(' ')
                .next()
                .and_then(|n| n.parse().ok())
        })
        .collect()
}

#[test]
fn randomized_fleet_of_real_processes() {
    let seed: u64 = std::env::var("ORCHESTRATOR_FLEET_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let steps: usize = std::env::var("ORCHESTRATOR_FLEET_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let mut rng = StdRng::seed_from_u64(seed);
    let p = Project::new();
    // One repository, three places to work: the main checkout, a linked worktree inside it
    // and one beside it. One registry serves them all.
    std::fs::write(p.root.join("README"), "x\n").expect("write");
    git(&p.root, &["init", "-q", "-b", "main"]);
    git(&p.root, &["add", "."]);
    git(&p.root, &["commit", "-qm", "init"]);
    git(
        &p.root,
        &["worktree", "add", "-q", ".claude/worktrees/w1", "-b", "w1"],
    );
    let beside = p.root.with_file_name("proj-w2");
    git(
        &p.root,
        &[
            "worktree",
            "add",
            "-q",
            &beside.display().to_string(),
            "-b",
            "w2",
        ],
    );
    let roots = [
        p.root.display().to_string(),
        p.root.join(".claude/worktrees/w1").display().to_string(),
        beside.display().to_string(),
    ];
    let mut live: Vec<Sim> = Vec::new();
    let mut serial = 0u32;
    // message id → recipient id (at send time, or the id its row moved to before delivery)
    let mut sent: BTreeMap<i64, String> = BTreeMap::new();
    let mut got: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut retired: BTreeSet<String> = BTreeSet::new();
    let mut carried_total = 0usize;
    for step in 0..steps {
        let ctx = format!("seed {seed} step {step}");
        match rng.gen_range(0..100) {
            0..=24 if live.len() < 5 => {
                serial += 1;
                let id = format!("{serial:08x}-fleet");
                let root = roots[rng.gen_range(0..roots.len())].clone();
                let mut agent = p.agent_with_server(&[
                    ("CLAUDE_CODE_SESSION_ID", id.as_str()),
                    ("ORCHESTRATOR_CHANNEL", "off"),
                    ("ORCHESTRATOR_PROJECT_ROOT", root.as_str()),
                ]);
                agent.initialize();
                let start = payload(&id, json!({"source":"startup"}));
                clean_hook(&p, &ctx, "SessionStart", &start, agent.pid, &root);
                live.push(Sim { agent, id, root });
            }
            25..=34 if !live.is_empty() => {
                // /clear as the client does it: SessionEnd(clear) for the old id, then
                // SessionStart(clear) for a new id of the same agent process. Mail still
                // queued for the old id follows the row and arrives in that SessionStart.
                let i = rng.gen_range(0..live.len());
                serial += 1;
                let new = format!("{serial:08x}-fleet");
                let pid = live[i].agent.pid;
                let root = live[i].root.clone();
                let old = live[i].id.clone();
                let end = payload(&old, json!({"reason":"clear"}));
                clean_hook(&p, &ctx, "SessionEnd", &end, pid, &root);
                let start = payload(&new, json!({"source":"clear"}));
                let out = clean_hook(&p, &ctx, "SessionStart", &start, pid, &root);
                let seen = got.get(&old).cloned().unwrap_or_default();
                for r in sent
                    .iter_mut()
                    .filter(|(m, r)| **r == old && !seen.contains(m))
                    .map(|(_, r)| r)
                {
                    *r = new.clone();
                }
                let carried = injected(&context(&out));
                carried_total += carried.len();
                got.entry(new.clone()).or_default().extend(carried);
                retired.insert(std::mem::replace(&mut live[i].id, new));
            }
            35..=44 if !live.is_empty() => {
                let mut s = live.swap_remove(rng.gen_range(0..live.len()));
                kill(-s.agent.pid, libc::SIGKILL);
                assert!(
                    s.agent.wait_exit(std::time::Duration::from_secs(10)),
                    "{ctx}"
                );
                retired.insert(s.id);
            }
            45..=52 if !live.is_empty() => {
                let mut s = live.swap_remove(rng.gen_range(0..live.len()));
                s.agent.close_stdin();
                assert!(
                    s.agent.wait_exit(std::time::Duration::from_secs(10)),
                    "{ctx}: server did not exit on EOF"
                );
                retired.insert(s.id);
            }
            53..=79 if live.len() >= 2 => {
                let a = rng.gen_range(0..live.len());
                let mut b = rng.gen_range(0..live.len() - 1);
                if b >= a {
                    b += 1;
                }
                let to = format!("@SA-{}", id8(&live[b].id));
                let rid = live[b].id.clone();
                let (text, err) = live[a].agent.call(
                    "send_message",
                    json!({"to": to, "body": format!("step {step}")}),
                );
                assert!(!err, "{ctx}: {text}");
                let mid: i64 = text
                    .split('#')
                    .nth(1)
                    .and_then(|r| r.split(' ').next())
                    .and_then(|n| n.parse().ok())
                    .expect("id");
                sent.insert(mid, rid);
            }
            80..=84 if live.len() >= 2 => {
                // Impersonation: a tool call naming a sibling's id is refused and moves
                // nothing (the invariants below would catch a stolen row).
                let a = rng.gen_range(0..live.len());
                let b = (a + 1 + rng.gen_range(0..live.len() - 1)) % live.len();
                let theirs = live[b].id.clone();
                let (text, err) = live[a].agent.call(
                    "send_message",
                    json!({"session_id": theirs, "to": "@all", "body": "spoofed"}),
                );
                assert!(
                    err && text.contains("belongs to another live session"),
                    "{ctx}: {text}"
                );
            }
            _ if !live.is_empty() => {
                let s = &live[rng.gen_range(0..live.len())];
                let out = p.hook(
                    "UserPromptSubmit",
                    &payload(&s.id, json!({"prompt":"next"})),
                    &env(s.agent.pid, &s.root),
                );
                assert!(
                    out.stderr.is_empty(),
                    "{ctx}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let c = context(&out);
                assert!(
                    !c.contains(&format!("- SA-{}", id8(&s.id))),
                    "{ctx}: {} sees itself: {c}",
                    s.id
                );
                got.entry(s.id.clone()).or_default().extend(injected(&c));
            }
            _ => {}
        }
        // Invariants after every step.
        let want: BTreeSet<String> = live.iter().map(|s| s.id.clone()).collect();
        let have: BTreeSet<String> = live_ids(&p).into_iter().collect();
        assert_eq!(
            have, want,
            "{ctx}: registry live set differs from the fleet"
        );
        for i in 0..live.len() {
            let me = live[i].id.clone();
            let (ro, err) = live[i].agent.call("roster", json!({}));
            assert!(!err, "{ctx}: {ro}");
            let block = ro
                .split_once("[orchestrator] you:\n")
                .map(|(_, r)| r.split_once('\n').map(|x| x.1).unwrap_or(""))
                .unwrap_or(&ro);
            assert!(
                !block.contains(&format!("SA-{}", id8(&me))),
                "{ctx}: {me} sees itself:\n{ro}"
            );
            for other in live.iter().filter(|o| o.id != me) {
                assert!(
                    block.contains(&format!("SA-{}", id8(&other.id))),
                    "{ctx}: {me} misses {}:\n{ro}",
                    other.id
                );
            }
            for r in &retired {
                assert!(
                    !block.contains(&format!("- SA-{}", id8(r))),
                    "{ctx}: {me} sees retired {r}:\n{ro}"
                );
            }
        }
    }
    // Drain every live session and check exactly-once delivery.
    for s in &live {
        for _ in 0..50 {
            let out = p.hook(
                "UserPromptSubmit",
                &payload(&s.id, json!({"prompt":"drain"})),
                &env(s.agent.pid, &s.root),
            );
            let ids = injected(&context(&out));
            if ids.is_empty() {
                break;
            }
            got.entry(s.id.clone()).or_default().extend(ids);
        }
    }
    for (who, ids) in &got {
        let set: BTreeSet<&i64> = ids.iter().collect();
        assert_eq!(
            set.len(),
            ids.len(),
            "seed {seed}: {who} got a message twice"
        );
        for m in ids {
            assert_eq!(
                sent.get(m),
                Some(who),
                "seed {seed}: message #{m} reached {who}, not its recipient"
            );
        }
    }
    for (m, r) in &sent {
        if live.iter().any(|s| &s.id == r) {
            assert!(
                got.get(r).is_some_and(|v| v.contains(m)),
                "seed {seed}: live {r} never got #{m}"
            );
        }
    }
    assert!(!sent.is_empty(), "the scenario sent messages");
    assert!(
        carried_total > 0,
        "seed {seed}: no mail crossed a /clear; raise ORCHESTRATOR_FLEET_STEPS"
    );
}
