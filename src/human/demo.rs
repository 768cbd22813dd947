use anyhow::Result;
pub fn run() -> Result<i32> {
    anyhow::bail!("demo is not built yet")
}
