use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use super::{Page, Store, StoreError};
use crate::{TenantId, Webhook, WebhookId};

/// The same semantics as the DynamoDB store, in a map. For unit tests.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    webhooks: BTreeMap<(TenantId, WebhookId), Webhook>,
    api_keys: HashMap<String, TenantId>,
}

impl MemoryStore {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Store for MemoryStore {
    async fn create_webhook(&self, webhook: &Webhook, limit: u32) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let count = inner
            .webhooks
            .keys()
            .filter(|(t, _)| *t == webhook.tenant_id)
            .count();
        if count >= limit as usize {
            return Err(StoreError::LimitReached { limit });
        }
        let key = (webhook.tenant_id.clone(), webhook.id);
        if inner.webhooks.contains_key(&key) {
            return Err(StoreError::AlreadyExists);
        }
        inner.webhooks.insert(key, webhook.clone());
        Ok(())
    }

    async fn get_webhook(
        &self,
        tenant: &TenantId,
        id: WebhookId,
    ) -> Result<Option<Webhook>, StoreError> {
        Ok(self.lock().webhooks.get(&(tenant.clone(), id)).cloned())
    }

    async fn list_webhooks(
        &self,
        tenant: &TenantId,
        limit: usize,
        after: Option<WebhookId>,
    ) -> Result<Page<Webhook, WebhookId>, StoreError> {
        let inner = self.lock();
        let mut items: Vec<Webhook> = inner
            .webhooks
            .iter()
            .rev()
            .filter(|((t, id), _)| t == tenant && after.is_none_or(|a| *id < a))
            .map(|(_, w)| w.clone())
            .take(limit + 1)
            .collect();
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|w| w.id)
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn update_webhook(&self, webhook: &Webhook) -> Result<(), StoreError> {
        let mut inner = self.lock();
        match inner
            .webhooks
            .get_mut(&(webhook.tenant_id.clone(), webhook.id))
        {
            Some(slot) => {
                *slot = webhook.clone();
                Ok(())
            }
            None => Err(StoreError::NotFound),
        }
    }

    async fn delete_webhook(&self, tenant: &TenantId, id: WebhookId) -> Result<(), StoreError> {
        match self.lock().webhooks.remove(&(tenant.clone(), id)) {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound),
        }
    }

    async fn put_api_key(&self, key_hash: &str, tenant: &TenantId) -> Result<(), StoreError> {
        self.lock()
            .api_keys
            .insert(key_hash.to_owned(), tenant.clone());
        Ok(())
    }

    async fn tenant_for_api_key(&self, key_hash: &str) -> Result<Option<TenantId>, StoreError> {
        Ok(self.lock().api_keys.get(key_hash).cloned())
    }
}
