//! `orchestrator doctor`: placeholder until the person-facing issue lands.
use anyhow::Result;
pub fn run() -> Result<i32> {
    anyhow::bail!("doctor is not built yet")
}
