//! Role, name and kind a terminal was started with (`ORCHESTRATOR_AGENT_*` env).

pub struct EnvProfile {
    pub role: Option<String>,
    pub name: Option<String>,
    pub kind: Option<String>,
}

impl EnvProfile {
    /// From `settings`, which validated them: a name that cannot be addressed as @name
    /// is ignored rather than stored.
    pub fn from_env() -> Self {
        let s = crate::core::settings::get();
        Self {
            role: s.agent_role.clone(),
            name: s.agent_name.clone(),
            kind: s.session_kind.clone(),
        }
    }
}

/// Validates a session name for `@name` addressing.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 32 {
        return Err("name must be 1-32 characters of [A-Za-z0-9_.-]".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "name contains {c:?}: use 1-32 characters of [A-Za-z0-9_.-]"
        ));
    }
    if name.starts_with("SA-")
        || name.eq_ignore_ascii_case("all")
        || name.eq_ignore_ascii_case("pa")
        || name.eq_ignore_ascii_case("PrimeAgent")
        || name == "human"
    {
        return Err(format!(
            "name {name:?} is reserved for addressing: pick another"
        ));
    }
    Ok(())
}
