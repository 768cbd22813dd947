pub fn run() -> anyhow::Result<i32> { anyhow::bail!("serve is not built yet") }
