//! API keys, by hash.

use time::OffsetDateTime;

use super::MemoryStore;
use crate::TenantId;
use crate::api_key::{ApiKey, KeyState};
use crate::audit::AuditEntry;
use crate::store::{ApiKeyStore, Conditional, Keep, StoreError};

impl ApiKeyStore for MemoryStore {
    async fn put_api_key(
        &self,
        key: &ApiKey,
        limit: Option<usize>,
        entry: &AuditEntry,
    ) -> Result<Conditional, StoreError> {
        let mut inner = self.lock();
        if inner.api_keys.contains_key(&key.hash) {
            return Err(StoreError::AlreadyExists);
        }
        let now = key.created_at.unwrap_or_else(crate::api_key::now);
        let active = inner
            .api_keys
            .values()
            .filter(|k| k.tenant_id == key.tenant_id && k.state(now) == KeyState::Active)
            .count();
        if limit.is_some_and(|limit| active >= limit) {
            return Ok(Conditional::Refused);
        }
        inner.api_keys.insert(key.hash.clone(), key.clone());
        inner.audit(entry);
        Ok(Conditional::Applied)
    }

    async fn api_key(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        Ok(self.lock().api_keys.get(key_hash).cloned())
    }

    async fn current_api_key(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        self.api_key(key_hash).await
    }

    async fn api_keys_of(&self, tenant: &TenantId) -> Result<Vec<ApiKey>, StoreError> {
        let mut keys: Vec<ApiKey> = self
            .lock()
            .api_keys
            .values()
            .filter(|k| &k.tenant_id == tenant)
            .cloned()
            .collect();
        keys.sort_by(|a, b| b.id.cmp(&a.id));
        Ok(keys)
    }

    async fn revoke_api_key(
        &self,
        key: &ApiKey,
        at: OffsetDateTime,
        keep: Option<Keep<'_>>,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let revoked = |k: Option<&ApiKey>| k.is_none_or(|k| k.revoked_at.is_some());
        if revoked(inner.api_keys.get(&key.hash)) {
            return Err(StoreError::NotFound);
        }
        let kept = |keep: Keep<'_>| {
            inner.api_keys.get(&keep.key.hash).is_some_and(|k| {
                k.revoked_at.is_none() && k.expires_at.is_none_or(|e| e > keep.until)
            })
        };
        if keep.is_some_and(|k| !kept(k)) {
            return Err(StoreError::Conflict);
        }
        if let Some(k) = inner.api_keys.get_mut(&key.hash) {
            k.revoked_at = Some(at);
        }
        inner.audit(entry);
        Ok(())
    }

    async fn expire_api_key(
        &self,
        key: &ApiKey,
        at: OffsetDateTime,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        match inner.api_keys.get_mut(&key.hash) {
            Some(k) if k.revoked_at.is_none() => {
                if k.expires_at.is_none_or(|e| e > at) {
                    k.expires_at = Some(at);
                    inner.audit(entry);
                }
                Ok(())
            }
            _ => Err(StoreError::NotFound),
        }
    }

    async fn touch_api_key(&self, key: &ApiKey, now: OffsetDateTime) -> Result<(), StoreError> {
        if let Some(k) = self.lock().api_keys.get_mut(&key.hash)
            && k.use_is_news(now)
        {
            k.last_used_at = Some(now);
        }
        Ok(())
    }
}
