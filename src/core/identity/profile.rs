//! Role, name and kind a terminal was started with (`ORCHESTRATOR_AGENT_*` env).

pub struct EnvProfile {
    pub role: Option<String>,
    pub name: Option<String>,
    pub kind: Option<String>,
}

impl EnvProfile {
    pub fn from_env() -> Self {
        let get = |k: &str| {
            std::env::var(k)
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        Self {
            role: get("ORCHESTRATOR_AGENT_ROLE").filter(|r| r == "prime" || r == "subordinate"),
            name: get("ORCHESTRATOR_AGENT_NAME").map(|n| n.chars().take(64).collect()),
            kind: get("ORCHESTRATOR_SESSION_KIND").map(|n| n.chars().take(32).collect()),
        }
    }
}
