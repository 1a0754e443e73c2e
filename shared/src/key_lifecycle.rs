//! What can happen to a tenant's API keys after they are made: found by id,
//! revoked, rotated. The operator CLI and the API share these.

use serde_json::json;
use time::OffsetDateTime;

use crate::TenantId;
use crate::ValidationError;
use crate::api_key::{self, ApiKey, KeyId, KeyState, Scope};
use crate::audit::{self, Action, Actor};
use crate::store::{ApiKeyStore, Conditional, Keep, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No key with this id for this tenant (it may be another tenant's).
    #[error("no API key with this id for this tenant")]
    NotFound,
    /// Revoking it would leave the tenant without an active full-scope key.
    #[error(
        "this is the tenant's last active full-scope key: create another full-scope key first, so that the tenant is not locked out"
    )]
    LastFullKey,
    /// The tenant already holds this many active keys.
    #[error("a tenant may hold at most {0} active API keys: revoke one first")]
    Limit(usize),
    /// Only an active key can be rotated.
    #[error("this API key is {}: create a new key instead", .0.as_str())]
    NotActive(KeyState),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long the full-scope key a revocation keeps must stay usable: a key
/// about to expire does not keep a tenant from locking itself out.
pub const KEPT_KEY_MIN_LIFE: time::Duration = time::Duration::minutes(10);

/// Whether a revocation must leave the tenant an active full-scope key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// The API: a tenant cannot lock itself out.
    KeepOneFullKey,
    /// The operator: a leaked only key must be revocable; the operator
    /// then makes the tenant a new one.
    None,
}

/// The operator makes a key for `tenant` and stores it: the key itself
/// (to show once) and what is stored of it.
pub async fn issue(
    store: &impl ApiKeyStore,
    tenant: TenantId,
    name: String,
    scope: Scope,
    expires_at: Option<OffsetDateTime>,
) -> Result<(String, ApiKey), StoreError> {
    issue_as(store, tenant, (name, scope), expires_at, json!({})).await
}

/// The operator's key, its entry's changes adding `extra`.
async fn issue_as(
    store: &impl ApiKeyStore,
    tenant: TenantId,
    (name, scope): (String, Scope),
    expires_at: Option<OffsetDateTime>,
    extra: serde_json::Value,
) -> Result<(String, ApiKey), StoreError> {
    let (key, stored) = ApiKey::issue(tenant, name, scope, expires_at, api_key::now());
    let entry = audit::api_key(&stored, Action::ApiKeyCreated, &Actor::Operator, extra);
    // No limit: the operator's keys are made whatever the tenant holds.
    store.put_api_key(&stored, None, &entry).await?;
    Ok((key, stored))
}

/// Makes a key through the API, with `maker`: the new key records who made
/// it, and expires with its maker at the latest (an expiring key cannot
/// make itself a successor that never expires). Refused while the tenant
/// holds [`api_key::MAX_ACTIVE_KEYS`] active keys.
pub async fn issue_by(
    store: &impl ApiKeyStore,
    maker: &ApiKey,
    name: String,
    scope: Scope,
    expires_at: Option<OffsetDateTime>,
) -> Result<(String, ApiKey), KeyError> {
    let expires_at = match (expires_at, maker.expires_at) {
        (Some(asked), Some(theirs)) => Some(asked.min(theirs)),
        (asked, theirs) => asked.or(theirs),
    };
    let (key, mut stored) = ApiKey::issue(
        maker.tenant_id.clone(),
        name,
        scope,
        expires_at,
        api_key::now(),
    );
    stored.created_by = Some(maker.id.clone());
    let limit = api_key::MAX_ACTIVE_KEYS;
    let entry = audit::api_key(
        &stored,
        Action::ApiKeyCreated,
        &Actor::api_key(maker),
        json!({}),
    );
    match store.put_api_key(&stored, Some(limit), &entry).await? {
        Conditional::Applied => Ok((key, stored)),
        Conditional::Refused => Err(KeyError::Limit(limit)),
    }
}

/// The tenant's key with this id.
pub async fn find(
    store: &impl ApiKeyStore,
    tenant: &TenantId,
    id: &KeyId,
) -> Result<ApiKey, KeyError> {
    store
        .api_keys_of(tenant)
        .await?
        .into_iter()
        .find(|k| &k.id == id)
        .ok_or(KeyError::NotFound)
}

/// Revokes the tenant's key `id` now, by `actor`, and returns it as
/// revoked. Revoking a revoked key changes nothing and is not an error.
pub async fn revoke(
    store: &impl ApiKeyStore,
    tenant: &TenantId,
    id: &KeyId,
    guard: Guard,
    actor: &Actor,
) -> Result<ApiKey, KeyError> {
    let now = api_key::now();
    // A race (the key, or the one kept, revoked meanwhile) reads again.
    for _ in 0..3 {
        let keys = store.api_keys_of(tenant).await?;
        let key = keys
            .iter()
            .find(|k| &k.id == id)
            .ok_or(KeyError::NotFound)?;
        if key.revoked_at.is_some() {
            return Ok(key.clone());
        }
        let guarded = guard == Guard::KeepOneFullKey
            && key.scope == Scope::Full
            && key.state(now) == KeyState::Active;
        let keep = if guarded {
            Some(kept(&keys, &[&key.id], now).ok_or(KeyError::LastFullKey)?)
        } else {
            None
        };
        let entry = audit::api_key(key, Action::ApiKeyRevoked, actor, json!({}));
        match store.revoke_api_key(key, now, keep, &entry).await {
            Ok(()) => {
                return Ok(ApiKey {
                    revoked_at: Some(now),
                    ..key.clone()
                });
            }
            Err(StoreError::NotFound | StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// The full-scope key a revocation of `going` keeps: active, lasting at
/// least [`KEPT_KEY_MIN_LIFE`], the longest-lasting (one that never expires
/// first).
fn kept<'k>(keys: &'k [ApiKey], going: &[&KeyId], now: OffsetDateTime) -> Option<Keep<'k>> {
    let until = now + KEPT_KEY_MIN_LIFE;
    keys.iter()
        .filter(|k| {
            !going.contains(&&k.id)
                && k.scope == Scope::Full
                && k.state(now) == KeyState::Active
                && k.expires_at.is_none_or(|e| e > until)
        })
        .max_by_key(|k| k.expires_at.map_or((1, now), |e| (0, e)))
        .map(|key| Keep { key, until })
}

/// Revokes the tenant's key `id` and every key made from it, directly or
/// through keys it made (a leaked key and whatever its holder made with
/// it), in one call; returns them, revoked. With the guard, the tenant
/// keeps an active full-scope key outside them, or nothing is revoked
/// (`LastFullKey`). Each key revoked has its own entry, by `actor`.
pub async fn revoke_with_descendants(
    store: &impl ApiKeyStore,
    tenant: &TenantId,
    id: &KeyId,
    guard: Guard,
    actor: &Actor,
) -> Result<Vec<ApiKey>, KeyError> {
    let now = api_key::now();
    let keys = store.api_keys_of(tenant).await?;
    if !keys.iter().any(|k| &k.id == id) {
        return Err(KeyError::NotFound);
    }
    // The key, then whatever each key in the tree made, until nothing new.
    let mut tree: Vec<&KeyId> = vec![id];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        for k in &keys {
            if k.created_by.as_ref() == Some(parent) && !tree.contains(&&k.id) {
                tree.push(&k.id);
            }
        }
        i += 1;
    }
    // In the tree's order: the key first, then what it made.
    let going: Vec<&ApiKey> = tree
        .iter()
        .filter_map(|id| keys.iter().find(|k| &k.id == *id))
        .collect();
    let guarded = guard == Guard::KeepOneFullKey
        && going
            .iter()
            .any(|k| k.scope == Scope::Full && k.state(now) == KeyState::Active);
    let keep = if guarded {
        Some(kept(&keys, &tree, now).ok_or(KeyError::LastFullKey)?)
    } else {
        None
    };
    let mut revoked = Vec::with_capacity(going.len());
    for key in going {
        if key.revoked_at.is_none() {
            let with = (&key.id != id).then(|| id.to_string());
            let entry = audit::api_key(key, Action::ApiKeyRevoked, actor, json!({ "with": with }));
            match store.revoke_api_key(key, now, keep, &entry).await {
                // Revoked meanwhile: it is revoked either way.
                Ok(()) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        revoked.push(ApiKey {
            revoked_at: key.revoked_at.or(Some(now)),
            ..key.clone()
        });
    }
    Ok(revoked)
}

/// A new key with the old one's tenant, name and scope; the old one expires
/// `overlap` from now (or sooner, if it already would), so that whoever
/// holds it has that long to switch. Returns the new key (to show once),
/// the new key as stored, and the old one as it now stands.
pub async fn rotate(
    store: &impl ApiKeyStore,
    tenant: &TenantId,
    id: &KeyId,
    overlap: time::Duration,
) -> Result<(String, ApiKey, ApiKey), KeyError> {
    let now = api_key::now();
    let old = find(store, tenant, id).await?;
    let state = old.state(now);
    if state != KeyState::Active {
        return Err(KeyError::NotActive(state));
    }
    let (key, new) = issue_as(
        store,
        tenant.clone(),
        (old.name.clone(), old.scope),
        None,
        json!({ "rotated_from": old.id }),
    )
    .await?;
    let until = now + overlap;
    let entry = audit::api_key(
        &old,
        Action::ApiKeyRotated,
        &Actor::Operator,
        json!({ "successor": new.id, "expires_at": rfc3339(Some(until)) }),
    );
    store.expire_api_key(&old, until, &entry).await?;
    let expires_at = Some(old.expires_at.map_or(until, |e| e.min(until)));
    Ok((key, new, ApiKey { expires_at, ..old }))
}

/// A time as an entry shows it (`null` for none).
fn rfc3339(at: Option<OffsetDateTime>) -> Option<String> {
    at.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
}

/// `90d`, `24h`, `30m` or `0`: how the CLI and the API write a lifetime.
pub fn parse_duration(field: &'static str, s: &str) -> Result<time::Duration, ValidationError> {
    let bad = || {
        ValidationError::new(
            field,
            "must be a whole number followed by m, h or d (minutes, hours, days), e.g. 90d, 24h, 30m",
        )
    };
    let s = s.trim();
    if s == "0" {
        return Ok(time::Duration::ZERO);
    }
    // The last character is the unit (split on a character boundary: the
    // input may be any text).
    let Some((cut, _)) = s.char_indices().last() else {
        return Err(bad());
    };
    let (number, unit) = s.split_at(cut);
    let n: i64 = number.parse().map_err(|_| bad())?;
    if !(0..=36_500 * 24 * 60).contains(&n) {
        return Err(bad());
    }
    let d = match unit {
        "m" => time::Duration::minutes(n),
        "h" => time::Duration::hours(n),
        "d" => time::Duration::days(n),
        _ => return Err(bad()),
    };
    Ok(d)
}

/// When a key made now with this lifetime expires; `None`, never.
pub fn expiry_in(lifetime: Option<time::Duration>) -> Option<OffsetDateTime> {
    lifetime.map(|d| api_key::now() + d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn acme() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    async fn key(store: &MemoryStore, tenant: &TenantId, scope: Scope) -> ApiKey {
        issue(store, tenant.clone(), "k".into(), scope, None)
            .await
            .unwrap()
            .1
    }

    #[tokio::test]
    async fn the_last_full_key_is_kept_for_the_tenant_not_for_the_operator() {
        let store = MemoryStore::default();
        let first = key(&store, &acme(), Scope::Full).await;
        let read = key(&store, &acme(), Scope::Read).await;
        assert!(matches!(
            revoke(
                &store,
                &acme(),
                &first.id,
                Guard::KeepOneFullKey,
                &Actor::Operator
            )
            .await,
            Err(KeyError::LastFullKey)
        ));
        // A read key never counts as the one kept, and may always go.
        let gone = revoke(
            &store,
            &acme(),
            &read.id,
            Guard::KeepOneFullKey,
            &Actor::Operator,
        )
        .await
        .unwrap();
        assert!(gone.revoked_at.is_some());
        let second = key(&store, &acme(), Scope::Full).await;
        revoke(
            &store,
            &acme(),
            &first.id,
            Guard::KeepOneFullKey,
            &Actor::Operator,
        )
        .await
        .unwrap();
        assert!(matches!(
            revoke(
                &store,
                &acme(),
                &second.id,
                Guard::KeepOneFullKey,
                &Actor::Operator
            )
            .await,
            Err(KeyError::LastFullKey)
        ));
        revoke(&store, &acme(), &second.id, Guard::None, &Actor::Operator)
            .await
            .unwrap();
        // Again: no change, no error.
        revoke(&store, &acme(), &second.id, Guard::None, &Actor::Operator)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn another_tenants_key_is_not_found() {
        let store = MemoryStore::default();
        let k = key(&store, &acme(), Scope::Full).await;
        let other = TenantId::parse("other").unwrap();
        assert!(matches!(
            revoke(
                &store,
                &other,
                &k.id,
                Guard::None,
                &crate::audit::Actor::Operator
            )
            .await,
            Err(KeyError::NotFound)
        ));
        assert!(matches!(
            rotate(&store, &other, &k.id, time::Duration::HOUR).await,
            Err(KeyError::NotFound)
        ));
        assert!(
            store
                .api_key(&k.hash)
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_none()
        );
    }

    #[tokio::test]
    async fn rotation_keeps_name_and_scope_and_ends_the_old_key_after_the_overlap() {
        let store = MemoryStore::default();
        let old = key(&store, &acme(), Scope::Read).await;
        let (new_key, new, old_now) = rotate(&store, &acme(), &old.id, time::Duration::HOUR)
            .await
            .unwrap();
        assert_eq!((new.name.as_str(), new.scope), ("k", Scope::Read));
        assert_eq!(new.hash, api_key::hash(&new_key));
        let until = old_now.expires_at.unwrap();
        assert_eq!(
            store.api_key(&old.hash).await.unwrap().unwrap().expires_at,
            Some(until)
        );
        assert_eq!(
            old_now.state(until - time::Duration::SECOND),
            KeyState::Active
        );
        assert_eq!(old_now.state(until), KeyState::Expired);
        // An overlap never lengthens a key's life.
        let (_, _, again) = rotate(&store, &acme(), &old.id, time::Duration::days(2))
            .await
            .unwrap();
        assert_eq!(again.expires_at, Some(until));
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("x", "90d").unwrap(),
            time::Duration::days(90)
        );
        assert_eq!(
            parse_duration("x", "24h").unwrap(),
            time::Duration::hours(24)
        );
        assert_eq!(
            parse_duration("x", "30m").unwrap(),
            time::Duration::minutes(30)
        );
        assert_eq!(parse_duration("x", "0").unwrap(), time::Duration::ZERO);
        for bad in [
            "",
            "d",
            "90",
            "-1d",
            "1.5h",
            "1w",
            "9999999999d",
            "90д",
            "д",
        ] {
            let e = parse_duration("expires_in", bad).unwrap_err();
            assert_eq!(e.field, "expires_in", "{bad}");
        }
    }
}
