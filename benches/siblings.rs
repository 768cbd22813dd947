//! `siblings()` and the sibling-block render with 50 live sessions, the every-turn path;
//! and an edit's claim check against 1000 claims.
//!
//! Rows are owned by this (live) process's pid, so liveness reads /proc for real.

use criterion::{criterion_group, criterion_main, Criterion};
use orchestrator::core::claims::{self, ClaimSet};
use orchestrator::core::clock;
use orchestrator::core::identity::process::{host_id, stat};
use orchestrator::core::identity::SystemProbe;
use orchestrator::core::liveness::{self, Caller, Policy};
use orchestrator::core::render::{self, SiblingView};
use orchestrator::core::store::claims::Claim;
use orchestrator::core::store::SessionRow;
use std::hint::black_box;

fn rows(n: usize) -> Vec<SessionRow> {
    let me = std::process::id() as i32;
    let ticks = stat(me).map(|s| s.start_ticks).unwrap_or(0);
    let h = host_id();
    let now = clock::iso(clock::now_ms());
    (0..n)
        .map(|i| {
            let id = format!("{i:08x}-0000-4000-8000-{i:012x}");
            SessionRow {
                id8: id[..8].to_string(),
                session_id: id,
                role: "subordinate".into(),
                name: Some(format!("agent-{i}")),
                started_at: now.clone(),
                last_heartbeat_at: now.clone(),
                current_task: Some(format!("working on module {i} of the parser rewrite")),
                kind: None,
                // Distinct fake owners would all be dead; give half a live owner (this
                // process) and half no owner (heartbeat liveness) to exercise both paths.
                agent_pid: (i % 2 == 0).then_some(me),
                agent_started_at: (i % 2 == 0).then_some(ticks),
                server_pid: None,
                server_token: None,
                host: Some(h.host.clone()),
                boot_id: Some(h.boot_id.clone()),
                evidence: Some("explicit".into()),
                activity: Some("busy".into()),
                activity_since: Some(now.clone()),
                last_tool: None,
                roster_hash: None,
                // Spread over five worktrees of one repository, as parallel sessions are.
                worktree: Some(match i % 5 {
                    0 => ".".into(),
                    k => format!(".claude/worktrees/w{k}"),
                }),
                branch: Some(format!("w{}", i % 5)),
                prompt_gist: None,
                prompt_gist_at_ms: None,
                title: None,
                agent_cli: None,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let all = rows(51);
    let caller = Caller::new(Some(all[1].session_id.as_str()), None);
    let now = clock::now_ms();
    c.bench_function("live+siblings/51 rows", |b| {
        b.iter(|| {
            let live = liveness::live(black_box(all.clone()), now, &SystemProbe, Policy::default());
            let n = liveness::siblings(&live, &caller).len();
            black_box(n)
        })
    });
    let live = liveness::live(all.clone(), now, &SystemProbe, Policy::default());
    let sibs: Vec<SiblingView<'_>> = liveness::siblings(&live, &caller)
        .into_iter()
        .map(|row| SiblingView {
            row,
            files: vec!["src/parser.rs".into(), "src/lexer.rs".into()],
        })
        .collect();
    c.bench_function("render/sibling_block 50 over 5 worktrees", |b| {
        b.iter(|| black_box(render::sibling_block(black_box(&sibs), now, Some("."))))
    });
    c.bench_function("render/roster_fingerprint 50", |b| {
        b.iter(|| black_box(render::roster_fingerprint(black_box(&sibs))))
    });
}

/// 1000 claims of siblings: directories elsewhere, or globs anywhere below (`**/…`),
/// which only a literal pre-test keeps from being compiled for every edit.
fn claim_check(c: &mut Criterion) {
    let all = rows(51);
    let caller = Caller::new(Some(all[1].session_id.as_str()), None);
    let live = liveness::live(
        all.clone(),
        clock::now_ms(),
        &SystemProbe,
        Policy::default(),
    );
    let held = |pattern: &dyn Fn(usize) -> String| -> Vec<Claim> {
        (0..1000)
            .map(|i| Claim {
                id: i as i64,
                session_id: all[2 + i % 49].session_id.clone(),
                pattern: pattern(i),
                exclusive: i % 3 == 1,
                reason: None,
                created_at_ms: 0,
                expires_at_ms: None,
                worktree: None,
            })
            .collect()
    };
    for (name, claims) in [
        ("area{i}/**", held(&|i| format!("area{i}/**"))),
        ("**/area{i}/*.rs", held(&|i| format!("**/area{i}/*.rs"))),
    ] {
        c.bench_function(&format!("claims/1000 {name}, one edit"), |b| {
            b.iter(|| {
                let set = ClaimSet::new(black_box(claims.clone()));
                black_box(
                    set.conflicts(&live, &caller, "area7/src/mod7.rs", Some("."))
                        .len(),
                )
            })
        });
    }
    // The `Q` gets the path past the literal pre-tests: the glob itself runs.
    let long = format!("src/{}Q.rs", "a".repeat(4000));
    c.bench_function("claims/backtracking glob, 4000-byte path", |b| {
        b.iter(|| black_box(claims::matches("**?**?**?**?**?**?**?**?**?**?**Q", &long)))
    });
}

criterion_group!(benches, bench, claim_check);
criterion_main!(benches);
