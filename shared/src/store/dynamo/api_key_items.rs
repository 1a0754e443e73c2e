//! How an API key is stored in the table: times as Unix seconds (numbers,
//! so that conditions compare them), the tenant's index entry, and what a
//! key stored before keys had ids reads as.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::TenantId;
use crate::api_key::{ApiKey, KeyId, KeyState, PREFIX, Scope};
use crate::store::keys;

#[derive(Serialize, Deserialize)]
pub(super) struct ApiKeyItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    /// Absent on a key stored before keys had ids, until its first use.
    #[serde(rename = "GSI1PK", default, skip_serializing_if = "Option::is_none")]
    pub gsi1pk: Option<String>,
    #[serde(rename = "GSI1SK", default, skip_serializing_if = "Option::is_none")]
    pub gsi1sk: Option<String>,
    pub key_hash: String,
    pub tenant_id: TenantId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<KeyId>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub scope: Scope,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shown: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_unix: Option<i64>,
    /// Not `expires_at`: that is the table's TTL attribute, and an expired
    /// key stays listed (and refused) rather than vanish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_expires_unix: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_unix: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_unix: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<KeyId>,
}

/// A tenant's key set (`TENANT#<tenant>` / `APIKEYS`): what a create
/// counts besides the tenant's index, which lags writes.
#[derive(Serialize, Deserialize)]
pub(super) struct KeySetItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    /// Bumped by every create; 0 before the first.
    pub set_version: u64,
    /// The keys made in the last [`RECENT_SECS`], by id, with the Unix
    /// time each was made.
    #[serde(default)]
    pub recent: BTreeMap<String, i64>,
}

/// Longer than the index ever lags behind its table.
const RECENT_SECS: i64 = 60;

impl KeySetItem {
    pub fn empty(tenant: &TenantId) -> Self {
        Self {
            pk: keys::tenant_pk(tenant),
            sk: keys::API_KEY_SET_SK.into(),
            set_version: 0,
            recent: BTreeMap::new(),
        }
    }

    /// The tenant's keys active at `now`: those `listed` (the index) as
    /// active, and those made lately that the index does not show yet.
    pub fn active(&self, listed: &[ApiKey], now: OffsetDateTime) -> usize {
        let shown = |id: &str| listed.iter().any(|k| k.id.as_str() == id);
        let unseen = self.recent.keys().filter(|id| !shown(id)).count();
        unseen
            + listed
                .iter()
                .filter(|k| k.state(now) == KeyState::Active)
                .count()
    }

    /// The set once `key` is made at `now`, and the condition of writing it
    /// (`:v`: this set's version, so that one create of two counted at once
    /// fails and counts again).
    pub fn with(&self, key: &ApiKey, now: OffsetDateTime) -> (Self, &'static str) {
        let since = now.unix_timestamp() - RECENT_SECS;
        let mut recent: BTreeMap<String, i64> = self
            .recent
            .iter()
            .filter(|(_, made)| **made > since)
            .map(|(id, made)| (id.clone(), *made))
            .collect();
        recent.insert(key.id.to_string(), now.unix_timestamp());
        let next = Self {
            pk: self.pk.clone(),
            sk: self.sk.clone(),
            set_version: self.set_version + 1,
            recent,
        };
        let condition = if self.set_version == 0 {
            "attribute_not_exists(PK) OR set_version = :v"
        } else {
            "set_version = :v"
        };
        (next, condition)
    }
}

pub(super) const REVOKED: &str = "revoked_unix";
pub(super) const EXPIRES: &str = "key_expires_unix";
pub(super) const LAST_USED: &str = "last_used_unix";

fn from_unix(t: Option<i64>) -> Option<OffsetDateTime> {
    t.and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
}

impl From<&ApiKey> for ApiKeyItem {
    fn from(k: &ApiKey) -> Self {
        Self {
            pk: keys::api_key_pk(&k.hash),
            sk: keys::API_KEY_SK.into(),
            gsi1pk: Some(keys::api_keys_gsi_pk(&k.tenant_id)),
            gsi1sk: Some(k.id.to_string()),
            key_hash: k.hash.clone(),
            tenant_id: k.tenant_id.clone(),
            key_id: Some(k.id.clone()),
            name: k.name.clone(),
            scope: k.scope,
            shown: Some(k.shown.clone()),
            created_unix: k.created_at.map(OffsetDateTime::unix_timestamp),
            key_expires_unix: k.expires_at.map(OffsetDateTime::unix_timestamp),
            revoked_unix: k.revoked_at.map(OffsetDateTime::unix_timestamp),
            last_used_unix: k.last_used_at.map(OffsetDateTime::unix_timestamp),
            created_by: k.created_by.clone(),
        }
    }
}

impl From<ApiKeyItem> for ApiKey {
    fn from(i: ApiKeyItem) -> Self {
        Self {
            id: i.key_id.unwrap_or_else(|| KeyId::legacy(&i.key_hash)),
            hash: i.key_hash,
            tenant_id: i.tenant_id,
            name: i.name,
            scope: i.scope,
            shown: i.shown.unwrap_or_else(|| PREFIX.to_owned()),
            created_at: from_unix(i.created_unix),
            expires_at: from_unix(i.key_expires_unix),
            revoked_at: from_unix(i.revoked_unix),
            last_used_at: from_unix(i.last_used_unix),
            created_by: i.created_by,
        }
    }
}
