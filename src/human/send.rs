//! `orchestrator send <to> <body>`: the person messages sessions, as sender `human`;
//! `orchestrator takeover <to>`: the person moves the prime role.

use crate::core::identity::SystemProbe;
use crate::core::store::messages::Sender;
use crate::core::text::id8;
use crate::core::{address, clock, liveness, mailbox, roles};
use anyhow::{bail, Result};

pub fn run(to: &str, body: &str, queue: bool) -> Result<i32> {
    let (_paths, mut store) = super::open()?;
    match mailbox::send(
        &mut store,
        &Sender::human(),
        to,
        body,
        None,
        queue,
        &SystemProbe,
    ) {
        Ok(sent) => {
            println!(
                "message #{} queued for {}",
                sent.message_id,
                sent.recipients
                    .iter()
                    .map(|r| format!("SA-{}", id8(r)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Ok(0)
        }
        Err(e) => bail!("{e}"),
    }
}

pub fn takeover(to: &str) -> Result<i32> {
    let (_paths, store) = super::open()?;
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
    match roles::claim_prime(&store, id, true, &SystemProbe)? {
        Ok(prev) => {
            store.add_notice(id, "the person made you the prime session (@PA).")?;
            match prev {
                Some(p) => println!("SA-{} is prime now (was SA-{})", id8(id), id8(&p)),
                None => println!("SA-{} is prime now", id8(id)),
            }
            Ok(0)
        }
        Err(e) => bail!("{e}"),
    }
}
