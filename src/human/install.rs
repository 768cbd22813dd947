use anyhow::Result;
pub fn run(_p: Option<&std::path::Path>, _d: bool) -> Result<i32> {
    anyhow::bail!("install is not built yet")
}
