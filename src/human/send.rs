use anyhow::Result;
pub fn run(_to: &str, _body: &str, _queue: bool) -> Result<i32> {
    anyhow::bail!("send is not built yet")
}
