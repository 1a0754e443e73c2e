//! Configuration read from the environment, once, at cold start.

use crate::UrlPolicy;

#[derive(Debug, Clone)]
pub struct Settings {
    pub table_name: String,
    pub url_policy: UrlPolicy,
    pub max_webhooks_per_tenant: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {name} {problem}")]
pub struct SettingsError {
    pub name: &'static str,
    pub problem: String,
}

impl Settings {
    pub const DEFAULT_MAX_WEBHOOKS: u32 = 50;

    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let table_name = lookup("TABLE_NAME")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| SettingsError {
                name: "TABLE_NAME",
                problem: "must be set".into(),
            })?;
        let allow_private_targets = parse_bool(&lookup, "ALLOW_PRIVATE_TARGETS")?.unwrap_or(false);
        let max_webhooks_per_tenant = match lookup("MAX_WEBHOOKS_PER_TENANT") {
            None => Self::DEFAULT_MAX_WEBHOOKS,
            Some(v) => v
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| SettingsError {
                    name: "MAX_WEBHOOKS_PER_TENANT",
                    problem: format!("must be a positive integer (got {v:?})"),
                })?,
        };
        Ok(Self {
            table_name,
            url_policy: UrlPolicy {
                allow_private_targets,
            },
            max_webhooks_per_tenant,
        })
    }
}

pub fn parse_bool(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<bool>, SettingsError> {
    match lookup(name).as_deref() {
        None | Some("") => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(SettingsError {
            name,
            problem: format!("must be \"true\" or \"false\" (got {other:?})"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::from_lookup(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults_and_errors() {
        let s = from(&[("TABLE_NAME", "t")]).unwrap();
        assert!(!s.url_policy.allow_private_targets);
        assert_eq!(s.max_webhooks_per_tenant, 50);
        assert!(from(&[]).unwrap_err().to_string().contains("TABLE_NAME"));
        let s = from(&[("TABLE_NAME", "t"), ("ALLOW_PRIVATE_TARGETS", "true")]).unwrap();
        assert!(s.url_policy.allow_private_targets);
        let e = from(&[("TABLE_NAME", "t"), ("ALLOW_PRIVATE_TARGETS", "yes")]).unwrap_err();
        assert!(e.to_string().contains("ALLOW_PRIVATE_TARGETS"));
        let e = from(&[("TABLE_NAME", "t"), ("MAX_WEBHOOKS_PER_TENANT", "0")]).unwrap_err();
        assert!(e.to_string().contains("MAX_WEBHOOKS_PER_TENANT"));
    }
}
