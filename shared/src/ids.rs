use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};
use ulid::Ulid;

use crate::ValidationError;

/// A customer account of the platform. It becomes part of DynamoDB keys, so it
/// is restricted to characters that cannot collide with the `#` key separator.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
        if s.is_empty() || s.len() > Self::MAX_LEN || !s.chars().all(ok_char) {
            return Err(ValidationError::new(
                "tenant_id",
                format!(
                    "must be 1 to {} characters of letters, digits, '-', '_' or '.'",
                    Self::MAX_LEN
                ),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

crate::validation::deserialize_via_parse!(TenantId);

/// `wh_` followed by a ULID: unique, and sorts by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WebhookId(Ulid);

impl WebhookId {
    const PREFIX: &'static str = "wh_";

    pub fn generate() -> Self {
        Self(Ulid::generate())
    }
}

impl fmt::Display for WebhookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, self.0)
    }
}

impl FromStr for WebhookId {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        prefixed_ulid(s, Self::PREFIX)
            .map(Self)
            .ok_or_else(|| ValidationError::new("id", "is not a webhook id (wh_ + 26 characters)"))
    }
}

impl Serialize for WebhookId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The ULID after `prefix` in `s`, when `s` is exactly that.
pub(crate) fn prefixed_ulid(s: &str, prefix: &str) -> Option<Ulid> {
    s.strip_prefix(prefix)
        .filter(|rest| rest.len() == ulid::ULID_LEN)
        .and_then(|rest| Ulid::from_string(rest).ok())
}

impl<'de> Deserialize<'de> for WebhookId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse()
            .map_err(|e: ValidationError| serde::de::Error::custom(e.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_id_bounds() {
        assert!(TenantId::parse("acme").is_ok());
        assert!(TenantId::parse("a").is_ok());
        assert!(TenantId::parse(&"a".repeat(64)).is_ok());
        assert!(TenantId::parse(&"a".repeat(65)).is_err());
        assert!(TenantId::parse("").is_err());
        assert!(TenantId::parse("ac#me").is_err());
        assert!(TenantId::parse("ac me").is_err());
    }

    #[test]
    fn webhook_ids_round_trip_and_sort_by_time() {
        let a = WebhookId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = WebhookId::generate();
        assert!(a.to_string().starts_with("wh_"));
        assert_eq!(a.to_string().len(), 29);
        assert_eq!(a.to_string().parse::<WebhookId>(), Ok(a));
        assert!(a.to_string() < b.to_string());
        for bad in [
            "",
            "wh_",
            "wh_123",
            "xx_01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        ] {
            assert!(bad.parse::<WebhookId>().is_err(), "{bad}");
        }
        assert!("wh_01ARZ3NDEKTSV4RRFFQ69G5FAV".parse::<WebhookId>().is_ok());
    }
}
