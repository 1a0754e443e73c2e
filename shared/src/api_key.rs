//! API keys: random, shown once, stored only as SHA-256 hashes, each an
//! object with an id, a name, a scope, and a life (expiry, revocation).

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use ulid::Ulid;

use crate::{TenantId, ValidationError, random};

/// The prefix makes a leaked key easy to recognise (secret scanners).
pub const PREFIX: &str = "whk_";

/// Characters of a key kept in clear, to recognise it in a list: the prefix
/// and four of the 43 random ones (24 bits of 256: nothing to guess from).
pub const SHOWN_CHARS: usize = PREFIX.len() + 4;

/// `last_used_at` is written at most this often per key.
pub const LAST_USED_EVERY: time::Duration = time::Duration::HOUR;

/// Longest name of a key.
pub const MAX_NAME_CHARS: usize = 100;

/// A fresh key: `whk_` + base64url of 32 random bytes.
pub fn generate() -> String {
    format!("{PREFIX}{}", random::base64url_32())
}

/// The SHA-256 of a key, lowercase hex: what the table stores and looks up.
pub fn hash(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    out
}

/// Compares two hashes without leaking, through timing, where they differ.
pub fn hashes_match(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// What a key may do: `full`, everything; `read`, every `GET` and nothing
/// that changes anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Read,
    #[default]
    Full,
}

impl Scope {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        match s {
            "full" => Ok(Scope::Full),
            "read" => Ok(Scope::Read),
            _ => Err(ValidationError::new(
                "scope",
                "must be \"full\" or \"read\"",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Full => "full",
            Scope::Read => "read",
        }
    }
}

/// `key_` followed by a ULID (sorts by creation time). Keys made before ids
/// existed get `key_legacy` and the start of their hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    const PREFIX: &'static str = "key_";

    pub fn generate() -> Self {
        Self(format!("{}{}", Self::PREFIX, Ulid::generate()))
    }

    /// The id given to a key stored before keys had ids: the same for the
    /// same key, whoever computes it.
    pub fn legacy(key_hash: &str) -> Self {
        let start: String = key_hash.chars().take(16).collect();
        Self(format!("{}legacy{start}", Self::PREFIX))
    }

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let rest = s.strip_prefix(Self::PREFIX).unwrap_or("");
        if rest.is_empty() || rest.len() > 40 || !rest.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(ValidationError::new(
                "id",
                "must be key_ followed by letters and digits (as GET /api-keys lists them)",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

crate::validation::deserialize_via_parse!(KeyId);

/// Where a key stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Active,
    Expired,
    Revoked,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Expired => "expired",
            KeyState::Revoked => "revoked",
        }
    }
}

/// An API key as stored: its hash, never the key.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: KeyId,
    pub hash: String,
    pub tenant_id: TenantId,
    pub name: String,
    pub scope: Scope,
    /// The key's first [`SHOWN_CHARS`] characters; just the prefix for a
    /// key stored before they were kept.
    pub shown: String,
    /// None for a key stored before keys had dates.
    pub created_at: Option<OffsetDateTime>,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    /// The key that made it through the API; `None` for a key the operator
    /// made.
    pub created_by: Option<KeyId>,
}

/// Most keys a tenant may hold that are neither revoked nor expired.
pub const MAX_ACTIVE_KEYS: usize = 50;

/// Now, to the second: what the table keeps of a key's times.
pub fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

/// A name as the operator or the tenant gave it: trimmed, at most
/// [`MAX_NAME_CHARS`] characters, no control characters.
pub fn parse_name(name: &str) -> Result<String, ValidationError> {
    let name = name.trim();
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ValidationError::new(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters, without control characters"),
        ));
    }
    Ok(name.to_owned())
}

impl ApiKey {
    /// A new key: the key itself (shown once, never stored) and what is stored.
    pub fn issue(
        tenant: TenantId,
        name: String,
        scope: Scope,
        expires_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> (String, ApiKey) {
        let key = generate();
        let stored = ApiKey {
            id: KeyId::generate(),
            hash: hash(&key),
            tenant_id: tenant,
            name,
            scope,
            shown: key.chars().take(SHOWN_CHARS).collect(),
            created_at: Some(now),
            expires_at,
            revoked_at: None,
            last_used_at: None,
            created_by: None,
        };
        (key, stored)
    }

    pub fn state(&self, now: OffsetDateTime) -> KeyState {
        if self.revoked_at.is_some() {
            KeyState::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            KeyState::Expired
        } else {
            KeyState::Active
        }
    }

    /// Whether this request should write `last_used_at` (at most hourly).
    pub fn use_is_news(&self, now: OffsetDateTime) -> bool {
        self.last_used_at
            .is_none_or(|at| now - at >= LAST_USED_EVERY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_hash_stably() {
        let a = generate();
        assert!(a.starts_with(PREFIX));
        assert_eq!(a.len(), PREFIX.len() + 43);
        assert_ne!(a, generate());
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(hashes_match(&hash(&a), &hash(&a)));
        assert!(!hashes_match(&hash(&a), &hash("other")));
        assert!(!hashes_match("ab", "abc"));
    }

    #[test]
    fn a_key_is_active_until_it_expires_or_is_revoked() {
        let now = OffsetDateTime::now_utc();
        let tenant = TenantId::parse("acme").unwrap();
        let (key, mut k) = ApiKey::issue(tenant, "ci".into(), Scope::Read, None, now);
        assert_eq!(k.hash, hash(&key));
        assert!(key.starts_with(&k.shown) && k.shown.len() == SHOWN_CHARS);
        assert!(KeyId::parse(k.id.as_str()).is_ok());
        assert_eq!(k.state(now), KeyState::Active);
        k.expires_at = Some(now + time::Duration::seconds(1));
        assert_eq!(k.state(now), KeyState::Active);
        assert_eq!(k.state(now + time::Duration::seconds(1)), KeyState::Expired);
        k.revoked_at = Some(now);
        assert_eq!(k.state(now), KeyState::Revoked);
    }

    #[test]
    fn last_use_is_written_at_most_hourly() {
        let now = OffsetDateTime::now_utc();
        let (_, mut k) = ApiKey::issue(
            TenantId::parse("a").unwrap(),
            String::new(),
            Scope::Full,
            None,
            now,
        );
        assert!(k.use_is_news(now), "never used");
        k.last_used_at = Some(now);
        assert!(!k.use_is_news(now + time::Duration::minutes(59)));
        assert!(k.use_is_news(now + time::Duration::minutes(60)));
    }

    #[test]
    fn ids_names_and_scopes_are_checked() {
        assert!(KeyId::parse("key_01ARZ3NDEKTSV4RRFFQ69G5FAV").is_ok());
        assert!(KeyId::parse(KeyId::legacy(&hash("x")).as_str()).is_ok());
        for bad in ["", "key_", "wh_01ARZ", "key_a#b", "key_a/b"] {
            assert!(KeyId::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_name("  ci  ").unwrap(), "ci");
        assert!(parse_name("deploy bot (CI)").is_ok());
        assert!(parse_name("a\u{7}b").is_err());
        assert!(parse_name(&"x".repeat(101)).is_err());
        assert_eq!(Scope::parse("read").unwrap(), Scope::Read);
        assert!(Scope::parse("admin").is_err());
        assert!(Scope::Read < Scope::Full);
    }
}
