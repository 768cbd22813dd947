//! `orchestrator send <to> <body>`: the person messages sessions, as sender `human`;
//! `orchestrator takeover <to>`: the person moves the prime role.

use crate::core::identity::{process, SystemProbe};
use crate::core::store::messages::Sender;
use crate::core::store::Store;
use crate::core::text::id8;
use crate::core::{address, clock, doorbell, liveness, mailbox, roles};
use anyhow::{bail, Result};

pub fn run(to: &str, body: &str, queue: bool) -> Result<i32> {
    let (paths, mut store) = super::open_registry()?;
    let from = sender(&store)?;
    match mailbox::send(&mut store, &from, to, body, None, queue, &SystemProbe) {
        Ok(mut sent) => {
            // The message is stored: ringing can only add, never fail the send.
            sent.ring(&store, &paths.root);
            println!(
                "message #{} queued for {}",
                sent.message_id,
                sent.recipients
                    .iter()
                    .map(|r| format!("SA-{}", id8(r)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            for line in sent.arrival_lines() {
                println!("  {line}");
            }
            Ok(0)
        }
        Err(e) => bail!("{e}"),
    }
}

/// Who is sending: the person from a plain shell; from inside an agent's Bash, that
/// agent's own session — an agent never speaks as the person.
fn sender(store: &Store) -> Result<Sender> {
    let Some(agent) = process::agent_process() else {
        return Ok(Sender::human());
    };
    let Some(row) = store
        .owned_by(&agent)?
        .map(|id| store.get(&id))
        .transpose()?
        .flatten()
    else {
        bail!(
            "this runs inside agent process {} which has no session yet, and an agent never \
             sends as the person: use the `send_message` tool, or run `send` from your own terminal",
            agent.pid
        );
    };
    Ok(Sender {
        id: row.session_id,
        name: row.name,
        role: Some(row.role),
        task: row.current_task,
    })
}

pub fn takeover(to: &str) -> Result<i32> {
    let (paths, store) = super::open_registry()?;
    let targets = address::parse(to).map_err(anyhow::Error::msg)?;
    let live = liveness::live(
        store.all_sessions()?,
        clock::now_ms(),
        &SystemProbe,
        liveness::Policy::from_env(),
    );
    let ids = address::resolve(&targets, &live, "human", &[], address::IfNotLive::Refuse).map_err(
        |e| {
            anyhow::anyhow!("{e}: takeover needs a live session (`orchestrator status` lists them)")
        },
    )?;
    let [id] = ids.as_slice() else {
        bail!(
            "takeover needs exactly one session, {to} names {}: use @SA-<id8>",
            ids.len()
        );
    };
    // Inside an agent's Bash, takeover is that agent's own `claim_prime(force)`, never a
    // move of the role onto a sibling.
    if let Some(agent) = process::agent_process() {
        if store.owned_by(&agent)?.as_deref() != Some(id.as_str()) {
            bail!(
                "takeover from inside agent process {} may only make its own session prime; \
                 the person runs `orchestrator takeover` from a plain terminal",
                agent.pid
            );
        }
    }
    match roles::claim_prime(&store, id, true, &SystemProbe)? {
        Ok(prev) => {
            store.add_notice(id, "the person made you the prime session (@PA).")?;
            // A notice that needs action: wake it (best effort; the notice is stored).
            let live_ids: Vec<String> = live.iter().map(|r| r.session_id.clone()).collect();
            doorbell::ring_now(
                &store,
                &paths.root,
                None,
                doorbell::Announce::Notice("the person made you the prime session (@PA)"),
                "human",
                std::slice::from_ref(id),
                &live_ids,
            );
            match prev {
                Some(p) => println!("SA-{} is prime now (was SA-{})", id8(id), id8(&p)),
                None => println!("SA-{} is prime now", id8(id)),
            }
            Ok(0)
        }
        Err(e) => bail!("{e}"),
    }
}
